//! The next step of a pool MigrationTask, decided from a snapshot of the old and new objects
//! (docs/migration.md "What each step does"). Pure: every step is derived from what is observed,
//! so a crash at any point resumes at the first step not yet done.

use std::collections::BTreeMap;
use std::time::Duration;

use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_api::cstor_v1::cspi::{CStorPoolInstance, condition_type, phase};
use cstor_api::keys::{annotations, labels, zpool_name};
use cstor_api::openebs_v1alpha1::{LegacyCStorVolumeReplica, StoragePoolClaim};
use cstor_policy::migrate::{SpcFacts, plan};
use cstor_runtime::reasons::cspi as cspi_reasons;
use kube::ResourceExt;

/// How long the CSPC controller may take to make every CSPI.
pub const CSPI_COUNT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the old pool pods may take to stop.
pub const POOL_STOP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the new pool-manager may take to import the renamed pool and report ONLINE.
pub const IMPORT_TIMEOUT: Duration = Duration::from_secs(600);

/// Machine-readable reasons of an Errored step.
pub mod reason {
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    pub const SPC_NOT_FOUND: &str = "SpcNotFound";
    pub const CSPC_CONFLICT: &str = "CspcConflict";
    pub const CSPI_MISSING: &str = "CspiMissing";
    pub const TIMED_OUT: &str = "TimedOut";
    pub const IMPORT_FAILED: &str = "ImportFailed";
    pub const RETRIES_EXHAUSTED: &str = "RetriesExhausted";
    pub const NOT_SUPPORTED: &str = "NotSupported";
    pub const VOLUME_IN_USE: &str = "VolumeInUse";
}

/// Step names of the pool path, as `status.migrationDetailedStatuses[].step` shows them.
pub mod step {
    pub const PRE_MIGRATION: &str = cstor_api::openebs_v1alpha1::migration_step::PRE_MIGRATION;
    pub const RELABEL_CLAIMS: &str = "Relabel BlockDeviceClaims";
    pub const CREATE_CSPC: &str = "Create CStorPoolCluster";
    pub const OWN_CLAIMS: &str = "Hand BlockDeviceClaims to the CStorPoolCluster";
    pub const CLEAN_UP: &str = "Clean up StoragePoolClaim";

    pub fn stop(csp: &str) -> String {
        format!("Stop old pool {csp}")
    }
    pub fn import(csp: &str) -> String {
        format!("Import pool of {csp}")
    }
    pub fn relabel_replicas(csp: &str) -> String {
        format!("Relabel volume replicas of {csp}")
    }
    pub fn carry_backups(csp: &str) -> String {
        format!("Carry backups of {csp}")
    }
    pub fn release(csp: &str) -> String {
        format!("Release old pool {csp}")
    }
}

/// Everything one decision reads.
#[derive(Clone, Debug, Default)]
pub struct PoolView {
    pub spc_name: String,
    pub cspc_name: String,
    pub namespace: String,
    pub spc: Option<StoragePoolClaim>,
    /// The SPC's CSPs, their Deployments, the namespace's devices and claims; `existing_cspc`
    /// is the CSPC of the target name.
    pub facts: SpcFacts,
    /// CSPIs labelled with the target CSPC.
    pub cspis: Vec<CStorPoolInstance>,
    /// Pods labelled `openebs.io/cstor-pool=<csp>`, counted by CSP.
    pub old_pods: BTreeMap<String, usize>,
    /// Old (v1alpha1) CVRs labelled `cstorpool.openebs.io/name=<csp>` of the SPC's CSPs.
    pub old_cvrs: Vec<LegacyCStorVolumeReplica>,
    /// Old (v1alpha1) backups, restores and completed-backup records of the SPC's pools.
    pub old_backups: Vec<OldBackup>,
    /// When the current step started (for its timeout).
    pub step_age: BTreeMap<String, Duration>,
}

/// An `openebs.io/v1alpha1` CStorBackup, CStorRestore or CStorCompletedBackup of an old pool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OldBackup {
    /// `cstorbackups` | `cstorrestores` | `cstorcompletedbackups`.
    pub plural: String,
    pub namespace: String,
    pub name: String,
    /// Its label `cstorpool.openebs.io/uid`.
    pub csp_uid: String,
}

/// One write the controller makes.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Annotate the SPC `openebs.io/cstor-pool-cluster=<cspc>`: the name is promised.
    PromiseSpc,
    /// Claim labelled for the SPC → labelled for the CSPC, finalizer swapped.
    RelabelClaim {
        name: String,
    },
    CreateCspc(Box<CStorPoolCluster>),
    /// All owner references of the claim → one controller reference to the CSPC.
    OwnClaim {
        name: String,
    },
    /// Drop `reconcile.openebs.io/disable-dependants` from the CSPC.
    EnableDependants,
    ScaleDown {
        deployment: String,
    },
    /// Annotate the CSPI with the old pool's name and enable its reconcile.
    Import {
        cspi: String,
        old_pool: String,
    },
    RelabelReplica {
        name: String,
        cspi: String,
        cspi_uid: String,
        host: String,
    },
    /// Make the v1 object of an old backup record for the CSPI, then delete the old one.
    CarryBackup {
        record: OldBackup,
        cspi: String,
        cspi_uid: String,
    },
    /// Clear the CSP's finalizers (its pool pod, which would, is gone).
    ReleaseCsp {
        csp: String,
    },
    /// `openebs.io/skip-validations: "true"` on the SPC (maya's webhook lets it go).
    SkipValidations,
    DeleteDeployment {
        name: String,
    },
    DeleteCsp {
        name: String,
    },
    /// Drop the SPC's finalizer (no claim carries its label any more) and delete it.
    DeleteSpc,
    /// A write of the volume path.
    Volume(super::volume::VolumeAction),
}

/// What to do now.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Act(Action),
    /// Nothing to write; look again soon.
    Wait,
    Fail {
        reason: &'static str,
    },
    Done,
}

/// The step the task is in, what is happening (for its status entry) and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub step: String,
    pub message: String,
    pub next: Next,
}

fn decision(step: impl Into<String>, message: impl Into<String>, next: Next) -> Decision {
    Decision {
        step: step.into(),
        message: message.into(),
        next,
    }
}

/// A wait that turns into a failure once its step is older than `limit`.
fn wait(view: &PoolView, step: String, message: String, limit: Duration) -> Decision {
    let age = view.step_age.get(&step).copied().unwrap_or_default();
    if age > limit {
        return decision(
            step,
            format!("{message} (gave up after {} s)", limit.as_secs()),
            Next::Fail {
                reason: reason::TIMED_OUT,
            },
        );
    }
    decision(step, message, Next::Wait)
}

fn annotation<'a, K: ResourceExt>(obj: &'a K, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}

/// The next step of migrating `view.spc_name` to `view.cspc_name`.
pub fn decide_pool(view: &PoolView) -> Decision {
    let spc_name = view.spc_name.as_str();
    let cspc_name = view.cspc_name.as_str();
    let cspc = view.facts.existing_cspc.as_ref();
    let ours = cspc.is_some_and(|c| annotation(c, annotations::MIGRATED_FROM) == Some(spc_name));
    let Some(spc) = view.spc.as_ref() else {
        // The SPC is deleted last: a CSPC made from it means the migration is complete.
        if ours {
            return decision(
                step::CLEAN_UP,
                format!("StoragePoolClaim {spc_name} migrated to CStorPoolCluster {cspc_name}"),
                Next::Done,
            );
        }
        return decision(
            step::PRE_MIGRATION,
            format!("StoragePoolClaim {spc_name} not found"),
            Next::Fail {
                reason: reason::SPC_NOT_FOUND,
            },
        );
    };

    let Some(cspc) = cspc else {
        return before_cspc(view, spc);
    };
    if !ours {
        return decision(
            step::PRE_MIGRATION,
            format!(
                "CStorPoolCluster {}/{cspc_name} already exists and was not made from spc {spc_name}",
                view.namespace
            ),
            Next::Fail {
                reason: reason::CSPC_CONFLICT,
            },
        );
    }
    let pools = cspc.spec.pools.len();
    if view.cspis.len() < pools {
        return wait(
            view,
            step::CREATE_CSPC.into(),
            format!(
                "waiting for the CStorPoolCluster's pool instances: {} of {pools}",
                view.cspis.len()
            ),
            CSPI_COUNT_TIMEOUT,
        );
    }
    for claim in view.facts.claims.values() {
        let labelled = claim
            .labels()
            .get(labels::CSTOR_POOL_CLUSTER)
            .map(String::as_str)
            == Some(cspc_name);
        let owned = claim
            .owner_references()
            .first()
            .is_some_and(|o| o.kind == "CStorPoolCluster" && Some(&o.uid) == cspc.uid().as_ref());
        if labelled && !owned {
            return decision(
                step::OWN_CLAIMS,
                format!(
                    "handing BlockDeviceClaim {} to the CStorPoolCluster",
                    claim.name_any()
                ),
                Next::Act(Action::OwnClaim {
                    name: claim.name_any(),
                }),
            );
        }
    }
    if annotation(cspc, annotations::RECONCILE_DISABLE_DEPENDANTS).is_some() {
        return decision(
            step::OWN_CLAIMS,
            "letting pool instances made from now on reconcile",
            Next::Act(Action::EnableDependants),
        );
    }

    for csp in &view.facts.csps {
        if let Some(d) = per_csp(view, csp) {
            return d;
        }
    }

    // Every pool moved: remove what is left of the old pools.
    if annotation(spc, annotations::SKIP_VALIDATIONS) != Some("true") {
        return decision(
            step::CLEAN_UP,
            "marking the StoragePoolClaim for deletion",
            Next::Act(Action::SkipValidations),
        );
    }
    for deployments in view.facts.deployments.values() {
        if let Some(d) = deployments.first() {
            return decision(
                step::CLEAN_UP,
                format!("deleting the old pool Deployment {}", d.name_any()),
                Next::Act(Action::DeleteDeployment { name: d.name_any() }),
            );
        }
    }
    if let Some(csp) = view.facts.csps.first() {
        return decision(
            step::CLEAN_UP,
            format!("deleting the old CStorPool {}", csp.name_any()),
            Next::Act(Action::DeleteCsp {
                name: csp.name_any(),
            }),
        );
    }
    decision(
        step::CLEAN_UP,
        format!("deleting StoragePoolClaim {spc_name}"),
        Next::Act(Action::DeleteSpc),
    )
}

/// Before the CSPC exists: validate, promise the name, re-label the claims, create it.
fn before_cspc(view: &PoolView, spc: &StoragePoolClaim) -> Decision {
    let spc_name = view.spc_name.as_str();
    let cspc_name = view.cspc_name.as_str();
    let found = plan(&view.facts, cspc_name, &view.namespace);
    if !found.problems.is_empty() {
        return decision(
            step::PRE_MIGRATION,
            found.problems.join("; "),
            Next::Fail {
                reason: reason::VALIDATION_FAILED,
            },
        );
    }
    if annotation(spc, annotations::MIGRATED_TO_CSPC) != Some(cspc_name) {
        let mut message = format!(
            "StoragePoolClaim {spc_name} ({} pool(s)) is to become CStorPoolCluster {cspc_name}",
            view.facts.csps.len()
        );
        for note in &found.notes {
            message.push_str("; note: ");
            message.push_str(note);
        }
        return decision(step::PRE_MIGRATION, message, Next::Act(Action::PromiseSpc));
    }
    for claim in view.facts.claims.values() {
        if claim
            .labels()
            .get(labels::STORAGE_POOL_CLAIM)
            .map(String::as_str)
            == Some(spc_name)
        {
            return decision(
                step::RELABEL_CLAIMS,
                format!(
                    "labelling BlockDeviceClaim {} for CStorPoolCluster {cspc_name}",
                    claim.name_any()
                ),
                Next::Act(Action::RelabelClaim {
                    name: claim.name_any(),
                }),
            );
        }
    }
    let mut cspc = found.cspc;
    cspc.annotations_mut().insert(
        annotations::RECONCILE_DISABLE_DEPENDANTS.into(),
        "true".into(),
    );
    let message = format!(
        "creating CStorPoolCluster {}/{cspc_name} with {} pool(s)",
        view.namespace,
        cspc.spec.pools.len()
    );
    decision(
        step::CREATE_CSPC,
        message,
        Next::Act(Action::CreateCspc(Box::new(cspc))),
    )
}

/// The hand-over of one old pool to the CSPI on its node; `None` once it is complete.
fn per_csp(view: &PoolView, csp: &cstor_api::openebs_v1alpha1::CStorPool) -> Option<Decision> {
    let csp_name = csp.name_any();
    let host = csp
        .labels()
        .get(labels::HOSTNAME)
        .cloned()
        .unwrap_or_default();
    let Some(cspi) = view
        .cspis
        .iter()
        .find(|c| c.labels().get(labels::HOSTNAME) == Some(&host))
    else {
        return Some(decision(
            step::import(&csp_name),
            format!(
                "no pool instance of CStorPoolCluster {} on node {host}",
                view.cspc_name
            ),
            Next::Fail {
                reason: reason::CSPI_MISSING,
            },
        ));
    };
    let cspi_name = cspi.name_any();
    let old_pool = zpool_name(&csp.uid().unwrap_or_default());
    let disabled = annotation(cspi, annotations::RECONCILE_DISABLE) == Some("true");
    if disabled {
        let stop = step::stop(&csp_name);
        for d in view.facts.deployments.get(&csp_name).into_iter().flatten() {
            if d.spec.replicas != Some(0) {
                return Some(decision(
                    stop,
                    format!("scaling the old pool Deployment {} to 0", d.name_any()),
                    Next::Act(Action::ScaleDown {
                        deployment: d.name_any(),
                    }),
                ));
            }
        }
        let pods = view.old_pods.get(&csp_name).copied().unwrap_or_default();
        if pods > 0 {
            return Some(wait(
                view,
                stop,
                format!("waiting for {pods} old pool pod(s) of {csp_name} to stop"),
                POOL_STOP_TIMEOUT,
            ));
        }
        return Some(decision(
            step::import(&csp_name),
            format!("pool instance {cspi_name} imports {old_pool} on node {host}"),
            Next::Act(Action::Import {
                cspi: cspi_name,
                old_pool,
            }),
        ));
    }
    let status = cspi.status.as_ref();
    let cspi_phase = status.map(|s| s.phase.as_str()).unwrap_or_default();
    if cspi_phase != phase::ONLINE {
        let import = step::import(&csp_name);
        let lost = status.into_iter().flat_map(|s| &s.conditions).find(|c| {
            c.type_ == condition_type::POOL_LOST
                && c.reason == cspi_reasons::POOL_NOT_FOUND
                && c.status == cstor_api::common::ConditionStatus::True
        });
        if let Some(c) = lost {
            return Some(decision(
                import,
                c.message.clone(),
                Next::Fail {
                    reason: reason::IMPORT_FAILED,
                },
            ));
        }
        return Some(wait(
            view,
            import,
            format!(
                "waiting for pool instance {cspi_name} to import {old_pool} (phase {:?})",
                cspi_phase
            ),
            IMPORT_TIMEOUT,
        ));
    }
    for cvr in &view.old_cvrs {
        let on_csp = cvr.labels().get(labels::CSP_NAME) == Some(&csp_name);
        if on_csp && !cvr.labels().contains_key(labels::CSPI_NAME) {
            return Some(decision(
                step::relabel_replicas(&csp_name),
                format!(
                    "labelling volume replica {} for pool instance {cspi_name}",
                    cvr.name_any()
                ),
                Next::Act(Action::RelabelReplica {
                    name: cvr.name_any(),
                    cspi: cspi_name,
                    cspi_uid: cspi.uid().unwrap_or_default(),
                    host: cspi.spec.host_name.clone(),
                }),
            ));
        }
    }
    let csp_uid = csp.uid().unwrap_or_default();
    if let Some(record) = view.old_backups.iter().find(|b| b.csp_uid == csp_uid) {
        return Some(decision(
            step::carry_backups(&csp_name),
            format!(
                "moving {} {}/{} to pool instance {cspi_name}",
                record.plural, record.namespace, record.name
            ),
            Next::Act(Action::CarryBackup {
                record: record.clone(),
                cspi: cspi_name,
                cspi_uid: cspi.uid().unwrap_or_default(),
            }),
        ));
    }
    if !csp.finalizers().is_empty() {
        return Some(decision(
            step::release(&csp_name),
            format!("releasing the old CStorPool {csp_name}"),
            Next::Act(Action::ReleaseCsp { csp: csp_name }),
        ));
    }
    None
}
