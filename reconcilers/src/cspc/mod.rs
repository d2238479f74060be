//! The CSPC controller (cspc-operator): turns each CStorPoolCluster pool spec into a
//! CStorPoolInstance, its BlockDeviceClaims and its pool-manager Deployment, keeps them
//! converged, scales down, cleans up on deletion and reports status (docs/pools.md,
//! with part A's decisions; docs/pools.md). The decisions are pure functions in the submodules;
//! `reconcile` does the I/O.

pub(crate) mod claim;
pub(crate) mod deployment;
pub(crate) mod naming;
pub(crate) mod node;
pub(crate) mod reconcile;
pub(crate) mod status;
pub(crate) mod topology;

use std::time::Duration;

/// Field manager of every server-side apply the CSPC controller makes.
pub const FIELD_MANAGER: &str = "cstor-operator/cspc";

/// What the CSPC controller is configured with (the lead fills it from flags and env).
#[derive(Clone, Debug)]
pub struct CspcConfig {
    /// Written into `openebs.io/version` labels and `versionDetails` ("4.0.0").
    pub operator_version: String,
    /// Image of the `cstor-pool-mgmt` container (env `OPENEBS_IO_CSPI_MGMT_IMAGE`).
    pub pool_manager_image: String,
    /// Image of the `cstor-pool` container (env `OPENEBS_IO_CSTOR_POOL_IMAGE`).
    pub pool_image: String,
    /// Image of the `maya-exporter` container (env `OPENEBS_IO_CSTOR_POOL_EXPORTER_IMAGE`).
    pub exporter_image: String,
    /// imagePullSecrets of the pool pods (env `OPENEBS_IO_IMAGE_PULL_SECRETS`, comma-separated).
    pub image_pull_secrets: Vec<String>,
    /// ServiceAccount of the pool-manager pods (env `OPENEBS_SERVICEACCOUNT_NAME`).
    pub pool_manager_account: String,
    /// Host base directory (env `OPENEBS_IO_BASE_DIR`, "/var/openebs").
    pub base_dir: String,
    /// Host sparse-file directory (env `OPENEBS_IO_CSTOR_POOL_SPARSE_DIR`).
    pub sparse_dir: String,
    /// Safety-net requeue of every CSPC (minutes, not seconds: the watches bring every change).
    pub resync: Duration,
}

impl Default for CspcConfig {
    fn default() -> Self {
        CspcConfig {
            operator_version: "4.0.0".into(),
            pool_manager_image: "openebs/cstor-rs:4.0.0".into(),
            pool_image: "openebs/cstor-pool:ci".into(),
            exporter_image: "quay.io/openebs/m-exporter:ci".into(),
            image_pull_secrets: Vec::new(),
            pool_manager_account: "cstor-pool-manager".into(),
            base_dir: "/var/openebs".into(),
            sparse_dir: "/var/openebs/sparse".into(),
            resync: Duration::from_secs(300),
        }
    }
}
