//! The CVC controller (cvc-operator): turns each CStorVolumeConfig into a target Service, a
//! CStorVolume, a target Deployment, one CStorVolumeReplica per chosen pool and, for 3+
//! replicas, a PodDisruptionBudget; then resizes, scales replicas, follows policy edits and
//! cleans up on deletion (docs/volumes.md with part A; docs/volumes.md). Decisions are
//! pure functions in the submodules; `reconcile` and the step modules (`provision`, `bound`, `pdb`, `deprovision`) do the I/O.

mod bound;
pub(crate) mod decide;
mod deprovision;
pub(crate) mod objects;
mod pdb;
pub(crate) mod placement;
mod provision;
pub(crate) mod reconcile;
pub(crate) mod status;

use std::time::Duration;

/// Field manager of every server-side apply (and patch) the CVC controller makes.
pub const FIELD_MANAGER: &str = "cstor-operator/cvc";

/// Everything `cstor cvc-operator` is configured with (the lead fills it from flags and env).
#[derive(Clone, Debug)]
pub struct CvcConfig {
    /// The operator namespace (`OPENEBS_NAMESPACE`): CVCs and everything made for them, the Lease.
    pub namespace: String,
    /// This replica's name in the Lease and in Events.
    pub identity: String,
    pub leader_election: bool,
    /// "cvc-controller-leader".
    pub lease_name: String,
    pub lease_seconds: u64,
    /// Written into `openebs.io/version` labels and `versionDetails`.
    pub operator_version: String,
    /// Image of the `cstor-volume-mgmt` container (env `OPENEBS_IO_CSTOR_VOLUME_MGMT_IMAGE`).
    pub volume_manager_image: String,
    /// Image of the `cstor-istgt` container (env `OPENEBS_IO_CSTOR_TARGET_IMAGE`).
    pub istgt_image: String,
    /// Image of the `maya-volume-exporter` container (env `OPENEBS_IO_VOLUME_MONITOR_IMAGE`).
    pub exporter_image: String,
    /// imagePullSecrets of the target pods (env `OPENEBS_IO_IMAGE_PULL_SECRETS`, comma-separated).
    pub image_pull_secrets: Vec<String>,
    /// ServiceAccount of the target pods ("cstor-volume-manager").
    pub volume_manager_account: String,
    /// Host base directory (env `OPENEBS_IO_BASE_DIR`, "/var/openebs").
    pub base_dir: String,
    /// Safety-net requeue of every CVC (minutes, not seconds: the watches bring every change).
    pub resync: Duration,
}

impl Default for CvcConfig {
    fn default() -> Self {
        CvcConfig {
            namespace: "openebs".into(),
            identity: "cstor-cvc-operator".into(),
            leader_election: true,
            lease_name: "cvc-controller-leader".into(),
            lease_seconds: 15,
            operator_version: "4.0.0".into(),
            volume_manager_image: "openebs/cstor-rs:4.0.0".into(),
            istgt_image: "openebs/cstor-istgt:ci".into(),
            exporter_image: "openebs/m-exporter:ci".into(),
            image_pull_secrets: Vec::new(),
            volume_manager_account: "cstor-volume-manager".into(),
            base_dir: "/var/openebs".into(),
            resync: Duration::from_secs(300),
        }
    }
}
