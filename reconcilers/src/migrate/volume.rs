//! The next step of a volume MigrationTask (docs/migration.md "Volumes"): an iSCSI PV made by
//! the old external provisioner becomes a cStor CSI volume with the same names, served by the
//! same replicas. Pure, like the pool path: every step is derived from what is observed.

use std::collections::BTreeMap;
use std::time::Duration;

use cstor_api::cstor_v1::cv::phase as cv_phase;
use cstor_api::cstor_v1::cvc::phase as cvc_phase;
use cstor_api::cstor_v1::{CStorVolume, CStorVolumeConfig, CStorVolumePolicy, CStorVolumeReplica};
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::{LegacyCStorVolume, LegacyCStorVolumeReplica};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;

use super::decide::{Action, Decision, Next, reason};

/// The CSI driver name of cStor volumes.
pub const CSI_DRIVER: &str = "cstor.csi.openebs.io";
/// Annotation naming the provisioner of a PVC.
pub const PVC_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Annotation on the temporary StorageClass copy: the PV whose task owns the rewrite.
pub const TMP_SC_OWNER: &str = "pv-name";
/// Annotation on the PV: its reclaim policy before the migration set Retain.
pub const RECLAIM_BEFORE: &str = "cstor.openebs.io/reclaim-policy-before-migration";
/// How long the new volume may take to be Bound and Healthy.
pub const VOLUME_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an old PVC / PV / target may take to go.
pub const GONE_TIMEOUT: Duration = Duration::from_secs(300);

/// Step names of the volume path.
pub mod step {
    pub const PRE_MIGRATION: &str = cstor_api::openebs_v1alpha1::migration_step::PRE_MIGRATION;
    pub const POLICY: &str = "Pin replicas to their pools";
    pub const RETAIN: &str = "Retain the PersistentVolume";
    pub const STORAGE_CLASS: &str = "Rewrite the StorageClass";
    pub const PVC: &str = "Recreate the PersistentVolumeClaim";
    pub const PV: &str = "Recreate the PersistentVolume";
    pub const OLD_TARGET: &str = "Remove the old target";
    pub const CVC: &str = "Create the CStorVolumeConfig";
    pub const HEALTHY: &str = "Wait for the volume";
    pub const CLEAN_UP: &str = "Clean up old volume objects";
}

/// Everything one decision of the volume path reads.
#[derive(Clone, Debug, Default)]
pub struct VolumeView {
    pub pv_name: String,
    pub namespace: String,
    pub pv: Option<PersistentVolume>,
    /// The claim of the PV (by its claimRef, else any claim whose volumeName is the PV).
    pub pvc: Option<PersistentVolumeClaim>,
    /// The StorageClass the claim names, and its temporary copy `tmp-migrate-<sc>`.
    pub sc: Option<StorageClass>,
    pub tmp_sc: Option<StorageClass>,
    /// Old CStorVolumes labelled with the PV (any namespace).
    pub old_cvs: Vec<LegacyCStorVolume>,
    /// Old replicas labelled with the PV.
    pub old_cvrs: Vec<LegacyCStorVolumeReplica>,
    /// CSPI name → its CSPC, for the pools the old replicas are on.
    pub cspc_of_cspi: BTreeMap<String, String>,
    /// Whether the old target Deployment `<pv>-target` still exists.
    pub old_target: bool,
    /// Pods in the claim's namespace that use the claim: `name (owner kind/name)`.
    pub users: Vec<String>,
    /// Old-provisioner VolumeSnapshots of the PV.
    pub old_snapshots: Vec<String>,
    pub policy: Option<CStorVolumePolicy>,
    pub cvc: Option<CStorVolumeConfig>,
    pub cv: Option<CStorVolume>,
    pub cvrs: Vec<CStorVolumeReplica>,
    pub step_age: BTreeMap<String, Duration>,
}

/// One write of the volume path.
#[derive(Clone, Debug, PartialEq)]
pub enum VolumeAction {
    /// Create the CStorVolumePolicy `<pv>` pinning the replicas to `pools`.
    CreatePolicy {
        pools: Vec<String>,
    },
    /// Set the PV's reclaim policy to Retain, noting the one it had.
    RetainPv,
    /// Copy the StorageClass to `tmp-migrate-<sc>` (the lock and the template).
    CopyStorageClass,
    DeleteStorageClass,
    /// Create the StorageClass anew for the CSI driver, from its copy.
    CreateStorageClass {
        cspc: String,
        replicas: i64,
    },
    DeleteTmpStorageClass,
    DeletePvc,
    CreatePvc,
    DeletePv,
    CreatePv,
    DeleteOldTarget,
    CreateCvc {
        cspc: String,
        replicas: i64,
    },
    /// Clear the old replica's finalizers and delete it.
    DeleteOldReplica {
        name: String,
    },
    /// Drop the policy annotation from the CVC (the volume no longer needs it).
    UnpinCvc,
    DeleteOldVolume {
        namespace: String,
    },
    DeletePolicy,
}

fn act(step: &str, message: String, action: VolumeAction) -> Decision {
    Decision {
        step: step.into(),
        message,
        next: Next::Act(Action::Volume(action)),
    }
}

fn plain(step: &str, message: String, next: Next) -> Decision {
    Decision {
        step: step.into(),
        message,
        next,
    }
}

fn fail(step: &str, reason: &'static str, message: String) -> Decision {
    plain(step, message, Next::Fail { reason })
}

fn wait(view: &VolumeView, step: &str, message: String, limit: Duration) -> Decision {
    if view.step_age.get(step).copied().unwrap_or_default() > limit {
        return fail(
            step,
            reason::TIMED_OUT,
            format!("{message} (gave up after {} s)", limit.as_secs()),
        );
    }
    plain(step, message, Next::Wait)
}

/// The SC name of the claim (or of the PV).
pub fn sc_name(view: &VolumeView) -> Option<String> {
    view.pvc
        .as_ref()
        .and_then(|c| c.spec.as_ref()?.storage_class_name.clone())
        .or_else(|| {
            view.pv
                .as_ref()
                .and_then(|p| p.spec.as_ref()?.storage_class_name.clone())
        })
        .filter(|s| !s.is_empty())
}

fn is_csi_pv(pv: &PersistentVolume) -> bool {
    pv.spec.as_ref().is_some_and(|s| s.csi.is_some())
}

fn is_csi_pvc(pvc: &PersistentVolumeClaim) -> bool {
    pvc.annotations().get(PVC_PROVISIONER).map(String::as_str) == Some(CSI_DRIVER)
}

/// The next step of migrating PV `view.pv_name`.
pub fn decide_volume(view: &VolumeView) -> Decision {
    let pv = view.pv_name.as_str();
    if view.old_cvs.is_empty() {
        // The old CStorVolume is deleted at clean-up: a v1 one means the move is complete.
        if view.cv.is_some() {
            return finish(view);
        }
        return fail(
            step::PRE_MIGRATION,
            reason::VALIDATION_FAILED,
            format!("no cStor volume (openebs.io/v1alpha1 CStorVolume) found for pv {pv}"),
        );
    }
    if view.old_cvs.len() != 1 || view.old_cvs[0].name_any() != pv {
        return fail(
            step::PRE_MIGRATION,
            reason::VALIDATION_FAILED,
            format!(
                "expected exactly 1 cv named {pv} for pv {pv}, got {}",
                view.old_cvs.len()
            ),
        );
    }
    let old_cv = &view.old_cvs[0];
    let replicas = old_cv.spec.replication_factor;
    let pools: Vec<String> = view
        .old_cvrs
        .iter()
        .filter_map(|c| c.labels().get(labels::CSPI_NAME).cloned())
        .collect();

    // Checked only until the claim is rewritten: after that the old objects go one by one.
    let started = view.pvc.as_ref().is_some_and(is_csi_pvc) || view.cvc.is_some();
    if !started {
        if view.pv.is_none() && view.pvc.is_none() {
            return fail(
                step::PRE_MIGRATION,
                reason::VALIDATION_FAILED,
                format!("PersistentVolume {pv} not found, and no claim names it"),
            );
        }
        if usize::try_from(replicas).ok() != Some(view.old_cvrs.len()) {
            return fail(
                step::PRE_MIGRATION,
                reason::VALIDATION_FAILED,
                format!(
                    "failed to get cvrs for volume {pv}, expected {replicas} got {}",
                    view.old_cvrs.len()
                ),
            );
        }
        if let Some(c) = view
            .old_cvrs
            .iter()
            .find(|c| !c.labels().contains_key(labels::CSPI_NAME))
        {
            return fail(
                step::PRE_MIGRATION,
                reason::VALIDATION_FAILED,
                format!(
                    "no cspi label found on cvr {}: migrate the pool (spc) it is on first",
                    c.name_any()
                ),
            );
        }
        if !view.users.is_empty() {
            let ns = view
                .pvc
                .as_ref()
                .and_then(|c| c.namespace())
                .unwrap_or_default();
            return fail(
                step::PRE_MIGRATION,
                reason::VOLUME_IN_USE,
                format!(
                    "the volume {pv} is mounted by pod(s) in namespace {ns}: {}; scale them down (kubectl scale --replicas=0 on their owners) before migrating",
                    view.users.join(", ")
                ),
            );
        }
        if !view.old_snapshots.is_empty() {
            return fail(
                step::PRE_MIGRATION,
                reason::NOT_SUPPORTED,
                format!(
                    "the volume {pv} has snapshot(s) of the old snapshot provisioner ({}); carrying them over is not supported: delete them, or keep the volume on the old operators",
                    view.old_snapshots.join(", ")
                ),
            );
        }
    }
    // The pool cluster of the replicas' pools (known while the old replicas exist).
    let cspc = pools
        .first()
        .and_then(|p| view.cspc_of_cspi.get(p))
        .cloned();
    let no_cspc = || {
        fail(
            step::PRE_MIGRATION,
            reason::VALIDATION_FAILED,
            format!("the pool instances of pv {pv}'s replicas ({pools:?}) were not found"),
        )
    };

    if view.policy.is_none() && view.cvc.is_none() {
        return act(
            step::POLICY,
            format!(
                "CStorVolumePolicy {pv} pins the replicas to {}",
                pools.join(", ")
            ),
            VolumeAction::CreatePolicy { pools },
        );
    }
    if let Some(p) = &view.pv
        && !is_csi_pv(p)
        && p.spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            != Some("Retain")
    {
        return act(
            step::RETAIN,
            format!("PersistentVolume {pv} is set to Retain while its objects are recreated"),
            VolumeAction::RetainPv,
        );
    }

    if let Some(sc) = sc_name(view) {
        let tmp_owner = view
            .tmp_sc
            .as_ref()
            .and_then(|t| t.annotations().get(TMP_SC_OWNER).cloned());
        let ours = tmp_owner.as_deref() == Some(pv);
        let sc_is_csi = view
            .sc
            .as_ref()
            .is_some_and(|s| s.provisioner == CSI_DRIVER);
        match (&view.sc, &view.tmp_sc) {
            (Some(_), _) if sc_is_csi => {
                if ours {
                    return act(
                        step::STORAGE_CLASS,
                        format!("removing the copy tmp-migrate-{sc}"),
                        VolumeAction::DeleteTmpStorageClass,
                    );
                }
            }
            (Some(_), None) => {
                return act(
                    step::STORAGE_CLASS,
                    format!("copying StorageClass {sc} to tmp-migrate-{sc}"),
                    VolumeAction::CopyStorageClass,
                );
            }
            (Some(_), Some(_)) if ours => {
                return act(
                    step::STORAGE_CLASS,
                    format!("deleting StorageClass {sc} to make it anew for {CSI_DRIVER}"),
                    VolumeAction::DeleteStorageClass,
                );
            }
            (Some(_), Some(_)) => {
                return wait(
                    view,
                    step::STORAGE_CLASS,
                    format!(
                        "waiting for the migration of pv {} to finish rewriting StorageClass {sc}",
                        tmp_owner.unwrap_or_default()
                    ),
                    GONE_TIMEOUT,
                );
            }
            (None, Some(_)) => {
                let Some(cspc) = cspc.clone() else {
                    return no_cspc();
                };
                return act(
                    step::STORAGE_CLASS,
                    format!("creating StorageClass {sc} for {CSI_DRIVER} (pool cluster {cspc})"),
                    VolumeAction::CreateStorageClass { cspc, replicas },
                );
            }
            (None, None) => {
                return fail(
                    step::STORAGE_CLASS,
                    reason::VALIDATION_FAILED,
                    format!("failed to get storageclass {sc}"),
                );
            }
        }
    }

    match &view.pvc {
        Some(c) if !is_csi_pvc(c) => {
            if c.metadata.deletion_timestamp.is_some() {
                return wait(
                    view,
                    step::PVC,
                    format!("waiting for the old claim {} to go", c.name_any()),
                    GONE_TIMEOUT,
                );
            }
            return act(
                step::PVC,
                format!(
                    "deleting the old claim {} (its PV is retained)",
                    c.name_any()
                ),
                VolumeAction::DeletePvc,
            );
        }
        None if view.cvc.is_none() => {
            return act(
                step::PVC,
                format!("creating the claim for {CSI_DRIVER}, bound to {pv}"),
                VolumeAction::CreatePvc,
            );
        }
        _ => {}
    }
    match &view.pv {
        Some(p) if !is_csi_pv(p) => {
            if p.metadata.deletion_timestamp.is_some() {
                return wait(
                    view,
                    step::PV,
                    format!("waiting for the old PersistentVolume {pv} to go"),
                    GONE_TIMEOUT,
                );
            }
            return act(
                step::PV,
                format!("deleting the old PersistentVolume {pv} (Retain: the data stays)"),
                VolumeAction::DeletePv,
            );
        }
        None => {
            return act(
                step::PV,
                format!("creating PersistentVolume {pv} for {CSI_DRIVER}"),
                VolumeAction::CreatePv,
            );
        }
        _ => {}
    }
    if view.old_target && view.cvc.is_none() {
        return act(
            step::OLD_TARGET,
            format!("deleting the old target Deployment {pv}-target"),
            VolumeAction::DeleteOldTarget,
        );
    }
    let Some(cvc) = &view.cvc else {
        let Some(cspc) = cspc else {
            return no_cspc();
        };
        return act(
            step::CVC,
            format!("creating CStorVolumeConfig {pv} with {replicas} replica(s) on {cspc}"),
            VolumeAction::CreateCvc { cspc, replicas },
        );
    };
    let bound = cvc.status.as_ref().map(|s| s.phase.as_str()) == Some(cvc_phase::BOUND);
    let cv_phase_now = view
        .cv
        .as_ref()
        .and_then(|v| v.status.as_ref())
        .map(|s| s.phase.clone())
        .unwrap_or_default();
    if !bound || cv_phase_now != cv_phase::HEALTHY {
        let on: Vec<String> = view
            .cvrs
            .iter()
            .filter_map(|c| c.labels().get(labels::CSPI_NAME).cloned())
            .collect();
        if let Some(stray) = on.iter().find(|p| !pools.is_empty() && !pools.contains(p)) {
            return fail(
                step::HEALTHY,
                reason::VALIDATION_FAILED,
                format!(
                    "cvr expected to be scheduled {pools:?} pools, but cvrs scheduled on pools {on:?} ({stray})"
                ),
            );
        }
        return wait(
            view,
            step::HEALTHY,
            format!(
                "waiting for CStorVolumeConfig {pv} Bound and CStorVolume Healthy (now {:?} and {cv_phase_now:?})",
                cvc.status
                    .as_ref()
                    .map(|s| s.phase.clone())
                    .unwrap_or_default()
            ),
            VOLUME_TIMEOUT,
        );
    }
    if let Some(c) = view.old_cvrs.first() {
        return act(
            step::CLEAN_UP,
            format!("deleting the old replica {}", c.name_any()),
            VolumeAction::DeleteOldReplica { name: c.name_any() },
        );
    }
    if cvc
        .annotations()
        .contains_key(cstor_api::keys::annotations::VOLUME_POLICY)
    {
        return act(
            step::CLEAN_UP,
            format!("CStorVolumeConfig {pv} no longer needs the temporary policy"),
            VolumeAction::UnpinCvc,
        );
    }
    act(
        step::CLEAN_UP,
        format!("deleting the old CStorVolume {pv}"),
        VolumeAction::DeleteOldVolume {
            namespace: old_cv.namespace().unwrap_or_default(),
        },
    )
}

/// After the old CStorVolume is gone: the temporary objects, then the end.
fn finish(view: &VolumeView) -> Decision {
    let pv = view.pv_name.as_str();
    if view.policy.is_some() {
        return act(
            step::CLEAN_UP,
            format!("deleting the temporary CStorVolumePolicy {pv}"),
            VolumeAction::DeletePolicy,
        );
    }
    plain(
        step::CLEAN_UP,
        format!("pv {pv} is served by cStor CSI volume {pv}"),
        Next::Done,
    )
}
