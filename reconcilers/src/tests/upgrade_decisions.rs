//! Table tests of the UpgradeTask decisions (docs/upgrades.md): the checks before anything is
//! touched with their exact words, each step of a CSPI, CSPC and volume task, the waits and
//! their timeout, and `ignoreStepsOnError`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::upgrade::decide::{
    Act, ClusterView, Decision, Kind, Next, OtherTask, PoolView, Subject, View, VolumeView, decide,
    reason,
};
use cstor_api::cstor_v1::{
    CStorPoolCluster, CStorPoolInstance, CStorVolume, CStorVolumeConfig, CStorVolumeReplica,
};
use cstor_api::openebs_v1alpha1::{TaskStepStatus, UpgradeTask};
use k8s_openapi::api::apps::v1::Deployment;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn vd(current: &str, desired: &str) -> Value {
    json!({"desired": desired, "status": {"current": current, "dependentsUpgraded": true}})
}

fn task(member: Value, done: &[&str]) -> UpgradeTask {
    let mut spec = json!({"fromVersion": "4.0.0", "toVersion": "4.1.0"});
    for (k, v) in member.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let mut t: UpgradeTask = from(json!({
        "metadata": {"name": "t", "namespace": "openebs", "uid": "task-uid"},
        "spec": spec,
    }));
    t.status.upgrade_detailed_statuses = done
        .iter()
        .map(|s| TaskStepStatus {
            step: (*s).into(),
            phase: "Completed".into(),
            message: "done".into(),
            ..TaskStepStatus::default()
        })
        .collect();
    t
}

fn cspi(name: &str, current: &str, desired: &str, phase: &str) -> CStorPoolInstance {
    from(json!({
        "metadata": {"name": name, "namespace": "openebs",
            "labels": {"openebs.io/cstor-pool-cluster": "c"}},
        "spec": {"hostName": "n", "nodeSelector": {}, "dataRaidGroups": []},
        "versionDetails": vd(current, desired),
        "status": {"phase": phase, "readOnly": false, "provisionedReplicas": 0, "healthyReplicas": 0},
    }))
}

fn cvr(name: &str, pv: &str, pool: &str, phase: &str, current: &str) -> CStorVolumeReplica {
    from(json!({
        "metadata": {"name": name, "namespace": "openebs",
            "labels": {"cstorvolume.openebs.io/name": pv, "cstorpoolinstance.openebs.io/name": pool}},
        "spec": {"targetIP": "", "capacity": "1Gi", "zvolWorkers": "", "replicaid": "", "compression": ""},
        "versionDetails": vd(current, current),
        "status": {"phase": phase},
    }))
}

fn cv(name: &str, phase: &str, current: &str, desired: &str) -> CStorVolume {
    from(json!({
        "metadata": {"name": name, "namespace": "openebs"},
        "spec": {"capacity": "1Gi", "consistencyFactor": 2, "replicationFactor": 3},
        "versionDetails": vd(current, desired),
        "status": {"phase": phase, "capacity": "1Gi"},
    }))
}

fn deployment(name: &str, version: &str) -> Deployment {
    from(json!({"metadata": {"name": name, "labels": {"openebs.io/version": version}}}))
}

fn view(t: UpgradeTask) -> View {
    View {
        ours: "4.1.0".into(),
        task: t,
        others: Vec::new(),
        pool: PoolView::default(),
        cluster: ClusterView::default(),
        volume: VolumeView::default(),
        step_age: BTreeMap::new(),
        migrations: Vec::new(),
    }
}

fn says(d: &Decision) -> String {
    format!("{} {:?}: {}", d.step, d.next, d.message)
}

fn pool_view(phase: &str, replicas: &[(&str, &str)]) -> PoolView {
    let cvrs: Vec<CStorVolumeReplica> = replicas
        .iter()
        .map(|(pv, ph)| cvr(&format!("{pv}-p1"), pv, "p1", ph, "4.0.0"))
        .collect();
    let mut all = cvrs.clone();
    for (pv, _) in replicas {
        all.push(cvr(&format!("{pv}-p2"), pv, "p2", "Healthy", "4.0.0"));
        all.push(cvr(&format!("{pv}-p3"), pv, "p3", "Healthy", "4.0.0"));
    }
    PoolView {
        cspi: Some(cspi("p1", "4.0.0", "4.0.0", phase)),
        deployment: Some(deployment("p1", "4.0.0")),
        cvrs,
        volume_cvrs: all,
        volumes: replicas
            .iter()
            .map(|(pv, _)| cv(pv, "Healthy", "4.0.0", "4.0.0"))
            .collect(),
    }
}

#[test]
fn nothing_is_touched_unless_the_versions_and_the_object_allow_it() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "",
            "4.1.0",
            "PRE_UPGRADE Fail { reason: \"InvalidVersion\" }: Cannot execute upgrade job: fromVersion and toVersion are required",
        ),
        (
            "1.9.0",
            "4.1.0",
            "PRE_UPGRADE Fail { reason: \"InvalidVersion\" }: Invalid from version 1.9.0 or to version 4.1.0: fromVersion must be at least 1.10.0 and older than 4.1.0",
        ),
        (
            "4.1.0",
            "4.1.0",
            "PRE_UPGRADE Fail { reason: \"InvalidVersion\" }: Invalid from version 4.1.0 or to version 4.1.0: fromVersion must be at least 1.10.0 and older than 4.1.0",
        ),
        (
            "4.0.0",
            "4.0.5",
            "PRE_UPGRADE Fail { reason: \"InvalidVersion\" }: Invalid from version 4.0.0 or to version 4.0.5: toVersion must be this operator's version 4.1.0",
        ),
        // A newer operator is rolling in: the task waits for it.
        (
            "4.0.0",
            "4.2.0",
            "PRE_UPGRADE Wait: waiting for operators of version 4.2.0 (this one is 4.1.0)",
        ),
    ];
    for (f, to, want) in cases {
        let mut t = task(json!({"cstorPoolInstance": {"cspiName": "p1"}}), &[]);
        t.spec.from_version = (*f).into();
        t.spec.to_version = (*to).into();
        let mut v = view(t);
        v.pool = pool_view("ONLINE", &[]);
        assert_eq!(says(&decide(&v)), *want);
    }

    // One task per object: a later one is refused, a child of this task is not a rival.
    let mut v = view(task(json!({"cstorPoolInstance": {"cspiName": "p1"}}), &[]));
    v.pool = pool_view("ONLINE", &[]);
    v.others = vec![OtherTask {
        name: "first".into(),
        subject: Subject::Cspi("p1".into()),
        earlier: true,
        child: false,
    }];
    assert_eq!(
        says(&decide(&v)),
        "PRE_UPGRADE Fail { reason: \"DuplicateTask\" }: UpgradeTask first is already upgrading this object; one task at a time"
    );
    v.others[0].earlier = false;
    assert_eq!(decide(&v).next, Next::Complete);

    // Kinds nobody upgrades here.
    for (member, words) in [
        (
            json!({"jivaVolume": {"pvName": "v"}}),
            "jivaVolume: Jiva volumes",
        ),
        (
            json!({"storagePoolClaim": {"spcName": "s"}}),
            "migrated to a CSPC first",
        ),
        (json!({}), "resource details are missing"),
    ] {
        let d = decide(&view(task(member, &[])));
        assert_eq!(
            d.next,
            Next::Fail {
                reason: reason::NOT_SUPPORTED
            }
        );
        assert!(d.message.contains(words), "{}", d.message);
    }
}

#[test]
fn a_pool_instance_is_checked_then_rolled_then_verified() {
    let member = json!({"cstorPoolInstance": {"cspiName": "p1"}});
    // Preflight refusals, each with what is wrong.
    type Replicas<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(&str, Replicas, &str)] = &[
        ("DEGRADED", &[], "pool p1 is \"DEGRADED\", not ONLINE"),
        (
            "ONLINE",
            &[("v1", "Degraded")],
            "replica v1-p1 on pool p1 is \"Degraded\", not Healthy",
        ),
    ];
    for (phase, replicas, words) in cases {
        let mut v = view(task(member.clone(), &[]));
        v.pool = pool_view(phase, replicas);
        assert_eq!(
            says(&decide(&v)),
            format!(
                "PRE_UPGRADE Fail {{ reason: \"PreflightFailed\" }}: Pre-upgrade checks failed: {words}"
            )
        );
    }
    // Quorum: with another replica of v1 already down, restarting p1 would leave one of two.
    let mut v = view(task(member.clone(), &[]));
    v.pool = pool_view("ONLINE", &[("v1", "Healthy")]);
    if let Some(s) = v.pool.volume_cvrs[1].status.as_mut() {
        s.phase = "Offline".into();
    }
    assert_eq!(
        decide(&v).message,
        "Pre-upgrade checks failed: volume v1 would lose its quorum while pool p1 restarts: 1 Healthy replica(s) elsewhere, 2 needed"
    );
    // A volume its target already reports Degraded (the pool-manager has not noticed yet).
    let mut v = view(task(member.clone(), &[]));
    v.pool = pool_view("ONLINE", &[("v1", "Healthy")]);
    v.pool.volumes[0] = cv("v1", "Degraded", "4.0.0", "4.0.0");
    assert_eq!(
        decide(&v).message,
        "Pre-upgrade checks failed: volume v1 is \"Degraded\", not Healthy"
    );
    // A volume being resized.
    let mut v = view(task(member.clone(), &[]));
    v.pool = pool_view("ONLINE", &[("v1", "Healthy")]);
    v.pool.volumes[0].spec.capacity = Some(
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("2Gi".into()),
    );
    assert!(
        decide(&v)
            .message
            .ends_with("volume v1 is being resized; upgrade once it is done")
    );
    // ignoreStepsOnError: the failed preflight is recorded and the task goes on.
    let ignoring = json!({"cstorPoolInstance": {"cspiName": "p1",
        "options": {"ignoreStepsOnError": ["PRE_UPGRADE"]}}});
    let mut v = view(task(ignoring, &[]));
    v.pool = pool_view("DEGRADED", &[]);
    assert_eq!(
        says(&decide(&v)),
        "PRE_UPGRADE Complete: failed (PreflightFailed), ignored by ignoreStepsOnError: Pre-upgrade checks failed: pool p1 is \"DEGRADED\", not ONLINE"
    );

    // The steps, as the objects move.
    let mut v = view(task(member.clone(), &[]));
    v.pool = pool_view("ONLINE", &[("v1", "Healthy")]);
    assert_eq!(
        says(&decide(&v)),
        "PRE_UPGRADE Complete: Pre-upgrade checks passed"
    );
    let mut v = view(task(member.clone(), &["PRE_UPGRADE"]));
    v.pool = pool_view("ONLINE", &[("v1", "Healthy")]);
    assert_eq!(
        decide(&v).next,
        Next::Act(Act::Desire {
            kind: Kind::Cspi,
            name: "p1".into()
        })
    );
    v.pool.cspi = Some(cspi("p1", "4.0.0", "4.1.0", "ONLINE"));
    assert_eq!(
        decide(&v).next,
        Next::Act(Act::RollPool { cspi: "p1".into() })
    );
    v.pool.deployment = Some(deployment("p1", "4.1.0"));
    assert_eq!(
        says(&decide(&v)),
        "POOL_INSTANCE_UPGRADE Wait: waiting for the pool-manager of p1 at version 4.1.0 to take over"
    );
    v.step_age
        .insert("POOL_INSTANCE_UPGRADE".into(), Duration::from_secs(601));
    assert_eq!(
        says(&decide(&v)),
        "POOL_INSTANCE_UPGRADE Fail { reason: \"TimedOut\" }: waiting for the pool-manager of p1 at version 4.1.0 to take over (gave up after 600 s)"
    );
    v.step_age.clear();
    // The new pool-manager could not take it: its words end the task.
    let mut failed = cspi("p1", "4.0.0", "4.1.0", "ONLINE");
    if let Some(s) = failed
        .version_details
        .as_mut()
        .and_then(|d| d.status.as_mut())
    {
        s.message = "Failed to reconcile CSPI version".into();
        s.reason = "current version 4.0.0 is not between 1.10.0 and 4.1.0".into();
    }
    v.pool.cspi = Some(failed);
    assert_eq!(
        decide(&v).next,
        Next::Fail {
            reason: reason::UPGRADE_FAILED
        }
    );
    v.pool.cspi = Some(cspi("p1", "4.1.0", "4.1.0", "ONLINE"));
    v.pool.cvrs[0].status.as_mut().unwrap().phase = "Offline".into();
    assert_eq!(
        says(&decide(&v)),
        "POOL_INSTANCE_UPGRADE Wait: waiting for the pool to serve again: replica v1-p1 on pool p1 is \"Offline\", not Healthy"
    );
    v.pool.cvrs[0].status.as_mut().unwrap().phase = "Healthy".into();
    assert_eq!(
        says(&decide(&v)),
        "POOL_INSTANCE_UPGRADE Complete: Pool instance upgrade was successful"
    );
    v.task = task(member, &["PRE_UPGRADE", "POOL_INSTANCE_UPGRADE"]);
    assert_eq!(
        says(&decide(&v)),
        "VERIFY Done: CStorPoolInstance p1 is ONLINE at version 4.1.0"
    );
}

#[test]
fn a_cspc_task_upgrades_its_pools_one_task_at_a_time_then_itself() {
    let member = json!({"cstorPoolCluster": {"cspcName": "c"}});
    let mut v = view(task(member.clone(), &["PRE_UPGRADE"]));
    v.cluster = ClusterView {
        cspc: Some(from::<CStorPoolCluster>(json!({
            "metadata": {"name": "c", "namespace": "openebs"},
            "spec": {"pools": []},
            "versionDetails": vd("4.0.0", "4.0.0"),
        }))),
        cspis: vec![
            cspi("c-b", "4.0.0", "4.0.0", "ONLINE"),
            cspi("c-a", "4.1.0", "4.1.0", "ONLINE"),
        ],
        children: BTreeMap::new(),
        facts: Default::default(),
    };
    assert_eq!(
        says(&decide(&v)),
        "POOL_INSTANCE_UPGRADE Act(CreateChild { cspi: \"c-b\" }): 1 of 2 pool instances upgraded; upgrading c-b"
    );
    let mut child = task(
        json!({"cstorPoolInstance": {"cspiName": "c-b"}}),
        &["PRE_UPGRADE"],
    );
    child.metadata.name = Some("upgrade-cstor-cspi-c-b".into());
    child.status.phase = "Started".into();
    v.cluster.children.insert("c-b".into(), child.clone());
    assert_eq!(
        says(&decide(&v)),
        "POOL_INSTANCE_UPGRADE Wait: 1 of 2 pool instances upgraded; upgrading c-b with UpgradeTask upgrade-cstor-cspi-c-b (PRE_UPGRADE: done)"
    );
    child.status.phase = "Error".into();
    child.status.upgrade_detailed_statuses.push(TaskStepStatus {
        step: "POOL_INSTANCE_UPGRADE".into(),
        phase: "Errored".into(),
        message: "timed out".into(),
        reason: "TimedOut".into(),
        ..TaskStepStatus::default()
    });
    v.cluster.children.insert("c-b".into(), child.clone());
    assert_eq!(
        says(&decide(&v)),
        "POOL_INSTANCE_UPGRADE Fail { reason: \"UpgradeFailed\" }: UpgradeTask upgrade-cstor-cspi-c-b failed: POOL_INSTANCE_UPGRADE: timed out"
    );
    child.status.phase = "Success".into();
    v.cluster.children.insert("c-b".into(), child);
    v.cluster.cspis[0] = cspi("c-b", "4.1.0", "4.1.0", "ONLINE");
    assert_eq!(
        says(&decide(&v)),
        "POOL_INSTANCE_UPGRADE Complete: All 2 pool instances upgraded"
    );
    v.task = task(member, &["PRE_UPGRADE", "POOL_INSTANCE_UPGRADE"]);
    assert_eq!(
        decide(&v).next,
        Next::Act(Act::Desire {
            kind: Kind::Cspc,
            name: "c".into()
        })
    );
    v.cluster.cspc.as_mut().unwrap().version_details = Some(from(vd("4.1.0", "4.1.0")));
    assert_eq!(
        says(&decide(&v)),
        "VERIFY Done: CStorPoolCluster c and its pool instances are at version 4.1.0"
    );
}

#[test]
fn a_volume_is_upgraded_replicas_then_target_then_its_claim() {
    let member = json!({"cstorVolume": {"pvName": "v1"}});
    let volume = |cv_phase: &str, pools_at: &str| VolumeView {
        cvc: Some(from::<CStorVolumeConfig>(json!({
            "metadata": {"name": "v1", "namespace": "openebs"},
            "spec": {"capacity": {"storage": "1Gi"},
                "provision": {"capacity": {"storage": "1Gi"}, "replicaCount": 3}, "policy": {}},
            "versionDetails": vd("4.0.0", "4.0.0"),
        }))),
        cv: Some(cv("v1", cv_phase, "4.0.0", "4.0.0")),
        cvrs: ["p1", "p2", "p3"]
            .iter()
            .map(|p| cvr(&format!("v1-{p}"), "v1", p, "Healthy", "4.0.0"))
            .collect(),
        cspis: ["p1", "p2", "p3"]
            .iter()
            .map(|p| (p.to_string(), cspi(p, pools_at, pools_at, "ONLINE")))
            .collect(),
        deployment: Some(deployment("v1-target", "4.0.0")),
    };
    let mut v = view(task(member.clone(), &[]));
    v.volume = volume("Degraded", "4.1.0");
    assert_eq!(
        says(&decide(&v)),
        "PRE_UPGRADE Fail { reason: \"PreflightFailed\" }: Pre-upgrade checks failed: volume v1 is \"Degraded\", not Healthy"
    );
    v.volume = volume("Healthy", "4.0.0");
    assert_eq!(
        says(&decide(&v)),
        "PRE_UPGRADE Fail { reason: \"PoolsNotUpgraded\" }: Pre-upgrade checks failed: the pool p1 of replica v1-p1 is not at version 4.1.0 yet: upgrade the pools first"
    );
    v.volume = volume("Healthy", "4.1.0");
    assert_eq!(decide(&v).next, Next::Complete);

    v.task = task(member.clone(), &["PRE_UPGRADE"]);
    assert_eq!(
        says(&decide(&v)),
        "REPLICA_UPGRADE Act(Desire { kind: Cvr, name: \"v1-p1\" }): asking replica v1-p1 for version 4.1.0"
    );
    for c in v.volume.cvrs.iter_mut() {
        c.version_details = Some(from(vd("4.0.0", "4.1.0")));
    }
    assert_eq!(
        says(&decide(&v)),
        "REPLICA_UPGRADE Wait: waiting for the pool-managers to upgrade replica(s) v1-p1, v1-p2, v1-p3"
    );
    for c in v.volume.cvrs.iter_mut() {
        c.version_details = Some(from(vd("4.1.0", "4.1.0")));
    }
    assert_eq!(decide(&v).next, Next::Complete);

    v.task = task(member.clone(), &["PRE_UPGRADE", "REPLICA_UPGRADE"]);
    assert_eq!(
        decide(&v).next,
        Next::Act(Act::Desire {
            kind: Kind::Cv,
            name: "v1".into()
        })
    );
    v.volume.cv = Some(cv("v1", "Healthy", "4.0.0", "4.1.0"));
    assert_eq!(
        decide(&v).next,
        Next::Act(Act::RollTarget { pv: "v1".into() })
    );
    v.volume.deployment = Some(deployment("v1-target", "4.1.0"));
    v.volume.cv = Some(cv("v1", "Init", "4.1.0", "4.1.0"));
    assert_eq!(
        says(&decide(&v)),
        "TARGET_UPGRADE Wait: waiting for the target of v1 at version 4.1.0 to serve (phase \"Init\")"
    );
    v.volume.cv = Some(cv("v1", "Healthy", "4.1.0", "4.1.0"));
    assert_eq!(decide(&v).next, Next::Complete);

    v.task = task(
        member,
        &["PRE_UPGRADE", "REPLICA_UPGRADE", "TARGET_UPGRADE"],
    );
    assert_eq!(
        decide(&v).next,
        Next::Act(Act::Desire {
            kind: Kind::Cvc,
            name: "v1".into()
        })
    );
    v.volume.cvc.as_mut().unwrap().version_details = Some(from(vd("4.1.0", "4.1.0")));
    assert_eq!(
        says(&decide(&v)),
        "VERIFY Done: volume v1 is Healthy at version 4.1.0"
    );
}

#[test]
fn the_step_list_follows_the_decisions() {
    use crate::upgrade::next_status;
    let at = cstor_runtime::now();
    let t = task(json!({"cstorPoolInstance": {"cspiName": "p1"}}), &[]);
    let d = |step: &str, next: Next| Decision {
        step: step.into(),
        message: "m".into(),
        next,
    };
    let s = next_status(&t.status, &d("PRE_UPGRADE", Next::Complete), &at);
    assert_eq!(s.phase, "Started");
    let s = next_status(&s, &d("POOL_INSTANCE_UPGRADE", Next::Wait), &at);
    let s = next_status(
        &s,
        &d(
            "POOL_INSTANCE_UPGRADE",
            Next::Fail {
                reason: reason::TIMED_OUT,
            },
        ),
        &at,
    );
    let got: Vec<(String, String, String)> = s
        .upgrade_detailed_statuses
        .iter()
        .map(|e| (e.step.clone(), e.phase.clone(), e.reason.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("PRE_UPGRADE".into(), "Completed".into(), "".into()),
            (
                "POOL_INSTANCE_UPGRADE".into(),
                "Errored".into(),
                "TimedOut".into()
            ),
        ]
    );
    assert_eq!(s.phase, "Error");
    assert!(s.completed_time.is_some());
    assert!(s.upgrade_detailed_statuses.iter().all(|e| e.is_valid()));
}

#[test]
fn automatic_upgrades_take_pools_first_one_task_at_a_time() {
    use crate::upgrade::auto::{Versioned, next};
    let v = |name: &str, current: &str| Versioned {
        name: name.into(),
        current: current.into(),
    };
    let task = |name: &str, phase: &str| (name.to_string(), phase.to_string());
    let cspcs = [v("b", "3.6.0"), v("a", "4.1.0"), v("c", "1.9.0")];
    let volumes = [v("pv-2", "3.6.0"), v("pv-1", "3.6.0"), v("pv-0", "4.1.0")];
    // The older CSPC first (c is below the oldest upgradable version: left to its condition).
    let first = next("4.1.0", &cspcs, &volumes, &[]).unwrap();
    assert_eq!(first.name, "auto-upgrade-cspc-b-4.1.0");
    assert_eq!(first.from, "3.6.0");
    assert_eq!(first.member.0, "cstorPoolCluster");
    // Nothing while any task runs, ours or anyone's.
    assert_eq!(
        next("4.1.0", &cspcs, &volumes, &[task("manual", "Started")]),
        None
    );
    assert_eq!(next("4.1.0", &cspcs, &volumes, &[task("manual", "")]), None);
    // A failed pool task stops the volumes too (their pools would refuse them).
    assert_eq!(
        next(
            "4.1.0",
            &cspcs,
            &volumes,
            &[task("auto-upgrade-cspc-b-4.1.0", "Error")]
        ),
        None
    );
    // Pools done: the volumes, by name, each once.
    let pools_done = [v("b", "4.1.0"), v("a", "4.1.0")];
    let t = next("4.1.0", &pools_done, &volumes, &[]).unwrap();
    assert_eq!(
        (t.name.as_str(), t.member.0),
        ("auto-upgrade-volume-pv-1-4.1.0", "cstorVolume")
    );
    let t = next(
        "4.1.0",
        &pools_done,
        &volumes,
        &[task("auto-upgrade-volume-pv-1-4.1.0", "Error")],
    )
    .unwrap();
    assert_eq!(t.name, "auto-upgrade-volume-pv-2-4.1.0");
    // Everything current (or newer): nothing.
    assert_eq!(next("4.1.0", &pools_done, &[v("pv", "4.2.0")], &[]), None);
}

#[test]
fn nothing_moving_or_unadmittable_is_upgraded() {
    // A pool cluster being migrated, and its pools.
    let mut v = view(task(json!({"cstorPoolInstance": {"cspiName": "p1"}}), &[]));
    v.pool = pool_view("ONLINE", &[]);
    v.migrations = vec![("migrate-cstor-pool-old".into(), "c".into(), String::new())];
    assert_eq!(
        says(&decide(&v)),
        "PRE_UPGRADE Fail { reason: \"PreflightFailed\" }: Pre-upgrade checks failed: MigrationTask migrate-cstor-pool-old is moving this pool; upgrade once it is done"
    );
    // A volume being migrated.
    let mut v = view(task(json!({"cstorVolume": {"pvName": "v1"}}), &[]));
    v.volume.cv = Some(cv("v1", "Healthy", "4.0.0", "4.0.0"));
    v.volume.cvc = Some(from(json!({
        "metadata": {"name": "v1"},
        "spec": {"capacity": {"storage": "1Gi"},
            "provision": {"capacity": {"storage": "1Gi"}, "replicaCount": 3}, "policy": {}},
    })));
    v.migrations = vec![("migrate-cstor-volume-v1".into(), String::new(), "v1".into())];
    assert!(
        decide(&v)
            .message
            .contains("MigrationTask migrate-cstor-volume-v1 is moving this volume")
    );
    // A CSPC this version would not admit: refused with the rule's words, nothing touched.
    let mut v = view(task(json!({"cstorPoolCluster": {"cspcName": "c"}}), &[]));
    v.cluster.cspc = Some(from(json!({
        "metadata": {"name": "c", "namespace": "openebs"},
        "spec": {"pools": []},
        "versionDetails": vd("4.0.0", "4.0.0"),
    })));
    assert_eq!(
        says(&decide(&v)),
        "PRE_UPGRADE Fail { reason: \"NotAdoptable\" }: CStorPoolCluster c breaks a rule of version 4.1.0, so it is not adopted; fix the CSPC first: pools in cspc should have at least one item"
    );
}
