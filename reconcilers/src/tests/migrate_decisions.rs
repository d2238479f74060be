//! The pool MigrationTask's decisions, step by step, from snapshots of the old and new objects:
//! each test is one point of the migration (what a crash there resumes from).

use std::collections::BTreeMap;
use std::time::Duration;

use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_api::cstor_v1::cspi::CStorPoolInstance;
use cstor_api::openebs_v1alpha1::{
    BlockDevice, BlockDeviceClaim, CStorPool, LegacyCStorVolumeReplica, StoragePoolClaim,
    TaskStepStatus, step_phase, task_phase,
};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

use crate::migrate::decide::{Action, Next, PoolView, decide_pool, reason, step};
use crate::migrate::next_status;

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("object")
}

fn spc(annotations: Value) -> StoragePoolClaim {
    from(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "StoragePoolClaim",
        "metadata": {"name": "old", "annotations": annotations},
        "spec": {"type": "disk", "maxPools": 1, "poolSpec": {"poolType": "striped", "roThresholdLimit": 0}},
    }))
}

fn csp(finalizers: Value) -> CStorPool {
    from(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "CStorPool",
        "metadata": {"name": "old-abcd", "uid": "csp-uid", "finalizers": finalizers,
                     "labels": {"openebs.io/storage-pool-claim": "old", "kubernetes.io/hostname": "n1"}},
        "spec": {"group": [{"blockDevice": [{"name": "bd1"}]}], "poolSpec": {"poolType": "striped"}},
    }))
}

fn claim(labels: Value, owner_kind: &str) -> BlockDeviceClaim {
    from(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
        "metadata": {"name": "bdc-1", "namespace": "openebs", "labels": labels,
                     "ownerReferences": [{"apiVersion": "x", "kind": owner_kind, "name": "o", "uid": "cspc-uid"}]},
        "spec": {"blockDeviceName": "bd1"},
        "status": {"phase": "Bound"},
    }))
}

fn deployment(replicas: i32) -> Deployment {
    from(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "old-abcd", "namespace": "openebs", "labels": {"openebs.io/cstor-pool": "old-abcd"}},
        "spec": {"replicas": replicas, "selector": {}, "template": {}},
    }))
}

fn cspc(annotations: Value) -> CStorPoolCluster {
    from(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
        "metadata": {"name": "old", "namespace": "openebs", "uid": "cspc-uid", "annotations": annotations},
        "spec": {"pools": [{"nodeSelector": {"kubernetes.io/hostname": "n1"},
                            "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "bd1"}]}],
                            "poolConfig": {"dataRaidGroupType": "stripe"}}]},
    }))
}

fn cspi(annotations: Value, status: Value) -> CStorPoolInstance {
    // Only the fields a test sets; the rest as the pool-manager writes them by default.
    let mut full =
        serde_json::to_value(cstor_api::cstor_v1::cspi::CStorPoolInstanceStatus::default())
            .expect("status");
    if let (Some(full), Some(given)) = (full.as_object_mut(), status.as_object()) {
        for (k, v) in given {
            full.insert(k.clone(), v.clone());
        }
    }
    let status = full;
    from(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
        "metadata": {"name": "old-wxyz", "namespace": "openebs", "uid": "cspi-uid",
                     "labels": {"kubernetes.io/hostname": "n1", "openebs.io/cstor-pool-cluster": "old"},
                     "annotations": annotations},
        "spec": {"hostName": "n1", "nodeSelector": {"kubernetes.io/hostname": "n1"}, "dataRaidGroups": [], "poolConfig": {"dataRaidGroupType": "stripe"}},
        "status": status,
    }))
}

fn bd() -> BlockDevice {
    from(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
        "metadata": {"name": "bd1", "namespace": "openebs", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {"capacity": {"storage": 1073741824u64}},
        "status": {"state": "Active", "claimState": "Claimed"},
    }))
}

const PROMISED: &str = "openebs.io/cstor-pool-cluster";
const MIGRATED: &str = "openebs.io/migrated-from";

/// The view at the start: an SPC with one CSP, its claim, Deployment and pod, nothing new.
fn start() -> PoolView {
    let mut v = PoolView {
        spc_name: "old".into(),
        cspc_name: "old".into(),
        namespace: "openebs".into(),
        spc: Some(spc(json!({}))),
        ..PoolView::default()
    };
    v.facts.spc = spc(json!({}));
    v.facts.csps = vec![csp(json!(["f"]))];
    v.facts.deployments = BTreeMap::from([("old-abcd".into(), vec![deployment(1)])]);
    v.facts.block_devices = BTreeMap::from([("bd1".into(), bd())]);
    v.facts.claims = BTreeMap::from([(
        "bd1".into(),
        claim(
            json!({"openebs.io/storage-pool-claim": "old"}),
            "StoragePoolClaim",
        ),
    )]);
    v.old_pods = BTreeMap::from([("old-abcd".into(), 1)]);
    v
}

/// The view once the CSPC and its CSPI exist (reconcile still off on the CSPI).
fn with_cspc() -> PoolView {
    let mut v = start();
    v.spc = Some(spc(json!({PROMISED: "old"})));
    v.facts.claims = BTreeMap::from([(
        "bd1".into(),
        claim(
            json!({"openebs.io/cstor-pool-cluster": "old"}),
            "CStorPoolCluster",
        ),
    )]);
    v.facts.existing_cspc = Some(cspc(json!({MIGRATED: "old"})));
    v.cspis = vec![cspi(
        json!({"reconcile.openebs.io/disable": "true"}),
        json!({}),
    )];
    v
}

#[test]
fn each_point_of_the_pool_path_has_one_next_step() {
    let online = json!({"phase": "ONLINE"});
    let imported = json!({"import.cspi.cstor.openebs.io/existing-pool-name": "cstor-csp-uid"});
    let mut cases: Vec<(&str, PoolView, &str, Next)> = Vec::new();

    cases.push((
        "fresh",
        start(),
        step::PRE_MIGRATION,
        Next::Act(Action::PromiseSpc),
    ));
    let mut v = start();
    v.spc = Some(spc(json!({PROMISED: "old"})));
    cases.push((
        "promised",
        v.clone(),
        step::RELABEL_CLAIMS,
        Next::Act(Action::RelabelClaim {
            name: "bdc-1".into(),
        }),
    ));
    v.facts.claims = BTreeMap::from([(
        "bd1".into(),
        claim(
            json!({"openebs.io/cstor-pool-cluster": "old"}),
            "StoragePoolClaim",
        ),
    )]);
    let d = decide_pool(&v);
    assert_eq!(d.step, step::CREATE_CSPC);
    let Next::Act(Action::CreateCspc(made)) = d.next else {
        panic!("expected the CSPC: {d:?}");
    };
    assert_eq!(
        made.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MIGRATED))
            .map(String::as_str),
        Some("old")
    );
    assert_eq!(
        made.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("reconcile.openebs.io/disable-dependants"))
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        made.spec.pools[0]
            .pool_config
            .as_ref()
            .and_then(|c| c.ro_threshold_limit),
        Some(85)
    );

    let mut v = with_cspc();
    v.cspis.clear();
    cases.push(("no CSPI yet", v.clone(), step::CREATE_CSPC, Next::Wait));
    v.step_age
        .insert(step::CREATE_CSPC.into(), Duration::from_secs(301));
    cases.push((
        "CSPIs never came",
        v,
        step::CREATE_CSPC,
        Next::Fail {
            reason: reason::TIMED_OUT,
        },
    ));

    let mut v = with_cspc();
    v.facts.claims = BTreeMap::from([(
        "bd1".into(),
        claim(
            json!({"openebs.io/cstor-pool-cluster": "old"}),
            "StoragePoolClaim",
        ),
    )]);
    cases.push((
        "claim still SPC-owned",
        v,
        step::OWN_CLAIMS,
        Next::Act(Action::OwnClaim {
            name: "bdc-1".into(),
        }),
    ));
    let mut v = with_cspc();
    v.facts.existing_cspc = Some(cspc(
        json!({MIGRATED: "old", "reconcile.openebs.io/disable-dependants": "true"}),
    ));
    cases.push((
        "dependants off",
        v,
        step::OWN_CLAIMS,
        Next::Act(Action::EnableDependants),
    ));

    cases.push((
        "old pool running",
        with_cspc(),
        "Stop old pool old-abcd",
        Next::Act(Action::ScaleDown {
            deployment: "old-abcd".into(),
        }),
    ));
    let mut v = with_cspc();
    v.facts.deployments = BTreeMap::from([("old-abcd".into(), vec![deployment(0)])]);
    cases.push((
        "old pod still there",
        v.clone(),
        "Stop old pool old-abcd",
        Next::Wait,
    ));
    v.old_pods.clear();
    cases.push((
        "old pool stopped",
        v.clone(),
        "Import pool of old-abcd",
        Next::Act(Action::Import {
            cspi: "old-wxyz".into(),
            old_pool: "cstor-csp-uid".into(),
        }),
    ));
    v.cspis = vec![cspi(imported.clone(), json!({"phase": ""}))];
    cases.push((
        "importing",
        v.clone(),
        "Import pool of old-abcd",
        Next::Wait,
    ));
    v.cspis = vec![cspi(
        imported.clone(),
        json!({"phase": "OFFLINE", "conditions": [{"type": "PoolLost", "status": "True", "reason": "PoolNotFound",
               "message": "pool cstor-csp-uid to import as cstor-cspc-uid is not on the disks of this node"}]}),
    )];
    cases.push((
        "old pool not on the disks",
        v.clone(),
        "Import pool of old-abcd",
        Next::Fail {
            reason: reason::IMPORT_FAILED,
        },
    ));

    v.cspis = vec![cspi(imported.clone(), online.clone())];
    let old_cvr: LegacyCStorVolumeReplica = from(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "CStorVolumeReplica",
        "metadata": {"name": "pv-old-abcd", "namespace": "openebs", "labels": {"cstorpool.openebs.io/name": "old-abcd"}},
    }));
    v.old_cvrs = vec![old_cvr];
    cases.push((
        "imported, replicas not relabelled",
        v.clone(),
        "Relabel volume replicas of old-abcd",
        Next::Act(Action::RelabelReplica {
            name: "pv-old-abcd".into(),
            cspi: "old-wxyz".into(),
            cspi_uid: "cspi-uid".into(),
            host: "n1".into(),
        }),
    ));
    v.old_cvrs.clear();
    cases.push((
        "CSP holds finalizers",
        v.clone(),
        "Release old pool old-abcd",
        Next::Act(Action::ReleaseCsp {
            csp: "old-abcd".into(),
        }),
    ));
    v.facts.csps = vec![csp(json!([]))];
    cases.push((
        "every pool moved",
        v.clone(),
        step::CLEAN_UP,
        Next::Act(Action::SkipValidations),
    ));
    v.spc = Some(spc(
        json!({PROMISED: "old", "openebs.io/skip-validations": "true"}),
    ));
    cases.push((
        "old Deployment left",
        v.clone(),
        step::CLEAN_UP,
        Next::Act(Action::DeleteDeployment {
            name: "old-abcd".into(),
        }),
    ));
    v.facts.deployments.clear();
    cases.push((
        "CSP left",
        v.clone(),
        step::CLEAN_UP,
        Next::Act(Action::DeleteCsp {
            name: "old-abcd".into(),
        }),
    ));
    v.facts.csps.clear();
    cases.push((
        "SPC left",
        v.clone(),
        step::CLEAN_UP,
        Next::Act(Action::DeleteSpc),
    ));
    v.spc = None;
    cases.push(("SPC gone, CSPC ours", v.clone(), step::CLEAN_UP, Next::Done));
    v.facts.existing_cspc = None;
    cases.push((
        "nothing at all",
        v,
        step::PRE_MIGRATION,
        Next::Fail {
            reason: reason::SPC_NOT_FOUND,
        },
    ));

    let mut v = start();
    v.facts.existing_cspc = Some(cspc(json!({})));
    v.spc = Some(spc(json!({PROMISED: "old"})));
    cases.push((
        "a CSPC of that name made by someone else",
        v,
        step::PRE_MIGRATION,
        Next::Fail {
            reason: reason::CSPC_CONFLICT,
        },
    ));

    for (what, view, want_step, want_next) in cases {
        let d = decide_pool(&view);
        assert_eq!(
            (d.step.as_str(), &d.next),
            (want_step, &want_next),
            "{what}: {}",
            d.message
        );
    }
}

#[test]
fn problems_found_before_the_cspc_stop_the_task_with_their_words() {
    let mut v = start();
    v.facts.block_devices.clear();
    let d = decide_pool(&v);
    assert_eq!(
        d.next,
        Next::Fail {
            reason: reason::VALIDATION_FAILED
        }
    );
    assert_eq!(d.message, "blockdevice bd1 of csp old-abcd not found");
    let d = decide_pool(&start());
    assert!(
        d.message.contains(
            "note: csp old-abcd: roThresholdLimit 0 (off for the old pool manager) becomes 85"
        ),
        "{}",
        d.message
    );
}

#[test]
fn status_completes_earlier_steps_and_ends_with_the_task() {
    let at = cstor_runtime::now();
    let waiting = |step: &str, message: &str| TaskStepStatus {
        step: step.into(),
        phase: step_phase::WAITING.into(),
        message: message.into(),
        start_time: Some(at.clone()),
        last_updated_time: Some(at.clone()),
        ..TaskStepStatus::default()
    };
    let status = cstor_api::openebs_v1alpha1::MigrationTaskStatus {
        migration_detailed_statuses: vec![waiting(
            step::CREATE_CSPC,
            "waiting for the CStorPoolCluster's pool instances: 0 of 1",
        )],
        ..Default::default()
    };
    let d = crate::migrate::decide::Decision {
        step: step::OWN_CLAIMS.into(),
        message: "handing".into(),
        next: Next::Act(Action::EnableDependants),
    };
    let s = next_status(&status, &d, &at);
    assert_eq!(s.phase, task_phase::STARTED);
    assert_eq!(
        s.migration_detailed_statuses[0].phase,
        step_phase::COMPLETED
    );
    assert_eq!(s.migration_detailed_statuses[0].message, "done");
    assert_eq!(s.migration_detailed_statuses[1].phase, step_phase::WAITING);
    assert!(
        s.migration_detailed_statuses
            .iter()
            .all(TaskStepStatus::is_valid)
    );
    let failed = crate::migrate::decide::Decision {
        step: step::OWN_CLAIMS.into(),
        message: "boom".into(),
        next: Next::Fail {
            reason: reason::RETRIES_EXHAUSTED,
        },
    };
    let s = next_status(&s, &failed, &at);
    assert_eq!(s.phase, task_phase::ERROR);
    assert!(s.completed_time.is_some());
    let last = s.migration_detailed_statuses.last().expect("entry");
    assert_eq!(
        (
            last.phase.as_str(),
            last.reason.as_str(),
            last.message.as_str()
        ),
        (step_phase::ERRORED, reason::RETRIES_EXHAUSTED, "boom")
    );
    assert!(
        s.migration_detailed_statuses
            .iter()
            .all(TaskStepStatus::is_valid)
    );
    // The same decision again writes nothing new.
    assert_eq!(next_status(&s, &failed, &at), s);
}

#[test]
fn old_backup_records_move_to_the_pool_instance_as_v1_objects() {
    use crate::migrate::decide::OldBackup;
    let mut v = with_cspc();
    v.facts.deployments = BTreeMap::from([("old-abcd".into(), vec![deployment(0)])]);
    v.old_pods.clear();
    v.cspis = vec![cspi(
        json!({"import.cspi.cstor.openebs.io/existing-pool-name": "cstor-csp-uid"}),
        json!({"phase": "ONLINE"}),
    )];
    let record = OldBackup {
        plural: "cstorcompletedbackups".into(),
        namespace: "app".into(),
        name: "b-pv".into(),
        csp_uid: "csp-uid".into(),
    };
    v.old_backups = vec![record.clone()];
    let d = decide_pool(&v);
    assert_eq!(d.step, "Carry backups of old-abcd");
    assert_eq!(
        d.next,
        Next::Act(Action::CarryBackup {
            record,
            cspi: "old-wxyz".into(),
            cspi_uid: "cspi-uid".into()
        })
    );
    let old: kube::core::DynamicObject = from(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "CStorCompletedBackup",
        "metadata": {"name": "b-pv", "namespace": "app",
                     "labels": {"cstorpool.openebs.io/uid": "csp-uid", "openebs.io/persistent-volume": "pv"}},
        "spec": {"backupName": "b", "volumeName": "pv", "prevSnapName": "s2", "snapName": "s1"},
    }));
    let v1 = crate::migrate::carried_backup(&old, "cstorcompletedbackups", "old-wxyz", "cspi-uid");
    assert_eq!(
        v1,
        json!({
            "apiVersion": "cstor.openebs.io/v1", "kind": "CStorCompletedBackup",
            "metadata": {"name": "b-pv", "namespace": "app", "annotations": {},
                         "labels": {"openebs.io/persistent-volume": "pv",
                                    "cstorpoolinstance.openebs.io/name": "old-wxyz",
                                    "cstorpoolinstance.openebs.io/uid": "cspi-uid"}},
            "spec": {"backupName": "b", "volumeName": "pv", "lastSnapName": "s2", "secondLastSnapName": "s1"},
        })
    );
}
