//! Table tests of a Bound volume's decisions: replica scale up/down (including the wait for
//! the target's knownReplicas and B quirk 9), resize (grow, in progress, done, shrink refused)
//! and the CVC condition merge.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::cvc_common::*;
use crate::cvc::decide::{
    Pending, ProvisionRequest, ResizeStep, ScaleDownStep, ScaleOp, provision_request, resize_step,
    scale_down_step, scale_op, scale_up_drf,
};
use crate::cvc::status::{condition, remove_condition, set_condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pretty_assertions::assert_eq;

fn v(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn scale_operations() {
    let cases: Vec<(&[&str], &[&str], ScaleOp)> = vec![
        (&["a", "b"], &["b", "a"], ScaleOp::None),
        (
            &["a", "b", "c", "d"],
            &["a", "b"],
            ScaleOp::Up {
                add: v(&["c", "d"]),
            },
        ),
        (
            &["a", "c"],
            &["a", "b", "c"],
            ScaleOp::Down { remove: "b".into() },
        ),
        (&["a", "x"], &["a", "b"], ScaleOp::Migration),
    ];
    for (spec, status, want) in cases {
        assert_eq!(
            scale_op(&v(spec), &v(status)),
            want,
            "{spec:?} vs {status:?}"
        );
    }
}

#[test]
fn scale_up_raises_the_desired_replication_factor_only_upwards() {
    assert_eq!(scale_up_drf(&cv(2), 3), Some(3));
    assert_eq!(scale_up_drf(&cv(3), 3), None);
    assert_eq!(scale_up_drf(&cv(4), 3), None);
}

#[test]
fn scale_down_steps() {
    let cvr = "pvc-1-p3";
    // 1. The CV still wants 3 and trusts replica 333: lower DRF and drop the id.
    let mut start = cv(3);
    start.spec.replica_details = known(&["111", "222", "333"]);
    let start = with_status_known(start, &["111", "222", "333"]);
    assert_eq!(
        scale_down_step(&start, cvr, Some("333"), 3, 2),
        ScaleDownStep::UpdateVolume {
            drf: 2,
            known: BTreeMap::from([
                ("111".to_string(), "111".to_string()),
                ("222".to_string(), "222".to_string())
            ]),
        }
    );
    // 2. Spec updated, the target still lists 333: wait, saying so.
    let mut asked = cv(2);
    asked.spec.replica_details = known(&["111", "222"]);
    let asked = with_status_known(asked, &["111", "222", "333"]);
    let asked = with_modes(
        asked,
        &[("111", "Healthy"), ("222", "Healthy"), ("333", "Healthy")],
    );
    assert_eq!(
        scale_down_step(&asked, cvr, Some("333"), 3, 2),
        ScaleDownStep::WaitForTarget {
            message: "scaling down volume replicas from 3 to 2: waiting for the target to drop \
                      replica 333 (pvc-1-p3) from status.replicaDetails.knownReplicas \
                      (3 known, 2 wanted)"
                .into()
        }
    );
    // Without an id (the pool manager never wrote one) B's count test decides.
    assert_eq!(
        scale_down_step(&asked, cvr, None, 3, 2),
        ScaleDownStep::WaitForTarget {
            message: "scaling down volume replicas from 3 to 2: waiting for the target to drop \
                      the replica of pvc-1-p3 from status.replicaDetails.knownReplicas \
                      (3 known, 2 wanted)"
                .into()
        }
    );
    // 2b. A replica that stays is not Healthy: the target keeps 333 serving; wait, saying why.
    let short = with_modes(
        asked.clone(),
        &[("111", "Healthy"), ("222", "Degraded"), ("333", "Healthy")],
    );
    assert_eq!(
        scale_down_step(&short, cvr, Some("333"), 3, 2),
        ScaleDownStep::WaitForHealthy {
            message: "scaling down volume replicas from 3 to 2 waits for replicas 222 to be \
                      Healthy: pvc-1-p3 keeps serving until then, so the volume never has fewer \
                      than consistencyFactor Healthy replicas"
                .into()
        }
    );
    // 3. The target let go: delete the CVR.
    let mut done = cv(2);
    done.spec.replica_details = known(&["111", "222"]);
    let done = with_status_known(done, &["111", "222"]);
    assert_eq!(
        scale_down_step(&done, cvr, Some("333"), 3, 2),
        ScaleDownStep::DeleteReplica
    );
    // As in the Go operators: the CVR is already gone (no id) and DRF is right: never blocks.
    assert_eq!(
        scale_down_step(&done, cvr, None, 3, 2),
        ScaleDownStep::DeleteReplica
    );
    // A target that keeps no spec.knownReplicas never blocks on counts alone.
    let bare = with_status_known(cv(2), &["111", "222"]);
    assert_eq!(
        scale_down_step(&bare, cvr, None, 3, 2),
        ScaleDownStep::DeleteReplica
    );
    assert_eq!(
        scale_down_step(&bare, cvr, Some("111"), 3, 2),
        ScaleDownStep::WaitForTarget {
            message: "scaling down volume replicas from 3 to 2: waiting for the target to drop \
                      replica 111 (pvc-1-p3) from status.replicaDetails.knownReplicas \
                      (2 known, 0 wanted)"
                .into()
        }
    );
}

#[test]
fn resize_steps() {
    let fresh = with_capacities(cv(1), "1Gi", Some("1Gi"));
    let asked = with_capacities(cv(1), "2Gi", Some("1Gi"));
    let grown = with_capacities(cv(1), "2Gi", Some("2Gi"));
    let cases = vec![
        ("1Gi", Some("1Gi"), &fresh, ResizeStep::Nothing),
        ("1024Mi", Some("1Gi"), &fresh, ResizeStep::Nothing),
        (
            "2Gi",
            Some("1Gi"),
            &fresh,
            ResizeStep::Grow { to: q("2Gi") },
        ),
        (
            "2Gi",
            Some("1Gi"),
            &asked,
            ResizeStep::InProgress { to: q("2Gi") },
        ),
        (
            "2Gi",
            Some("1Gi"),
            &grown,
            ResizeStep::Done { to: q("2Gi") },
        ),
        (
            "512Mi",
            Some("1Gi"),
            &fresh,
            ResizeStep::Shrink {
                from: "1Gi".into(),
                to: "512Mi".into(),
            },
        ),
        (
            "lots",
            Some("1Gi"),
            &fresh,
            ResizeStep::Invalid {
                message: "spec.capacity.storage \"lots\" is not a quantity".into(),
            },
        ),
        ("2Gi", None, &fresh, ResizeStep::Nothing),
    ];
    for (desired, current, volume, want) in cases {
        let d = q(desired);
        let c = current.map(q);
        assert_eq!(
            resize_step(Some(&d), c.as_ref(), volume),
            want,
            "{desired} over {current:?}"
        );
    }
    assert_eq!(
        resize_step(None, Some(&q("1Gi")), &fresh),
        ResizeStep::Invalid {
            message: "spec.capacity.storage is missing".into()
        }
    );
}

fn t(s: &str) -> Time {
    Time(s.parse().unwrap())
}

#[test]
fn condition_merge() {
    let t1 = t("2024-01-01T00:00:00Z");
    let t2 = t("2024-01-01T00:05:00Z");
    let t3 = t("2024-01-01T00:10:00Z");
    let mut conds = Vec::new();
    assert!(set_condition(
        &mut conds,
        condition("PoolPlacement", "NotEnoughPools", "need 3", Some(1)),
        &t1
    ));
    assert_eq!(conds[0].last_transition_time, Some(t1.clone()));
    assert_eq!(conds[0].observed_generation, Some(1));
    // Identical: untouched.
    assert!(!set_condition(
        &mut conds,
        condition("PoolPlacement", "NotEnoughPools", "need 3", Some(1)),
        &t2
    ));
    assert_eq!(conds[0].last_probe_time, Some(t1.clone()));
    // Same reason, new message: transition time kept, probe time moves.
    assert!(set_condition(
        &mut conds,
        condition(
            "PoolPlacement",
            "NotEnoughPools",
            "need 3, 2 usable",
            Some(2)
        ),
        &t2
    ));
    assert_eq!(conds[0].last_transition_time, Some(t1.clone()));
    assert_eq!(conds[0].last_probe_time, Some(t2.clone()));
    assert_eq!(conds[0].observed_generation, Some(2));
    // A flip: both move.
    assert!(set_condition(
        &mut conds,
        condition("PoolPlacement", "PoolsSelected", "placing 3", Some(2)),
        &t3
    ));
    assert_eq!(conds[0].last_transition_time, Some(t3.clone()));
    assert_eq!(conds[0].reason, "PoolsSelected");
    // Other types live next to it; removal is by type.
    set_condition(
        &mut conds,
        condition("VolumeResizeFailed", "ShrinkNotSupported", "no", Some(2)),
        &t3,
    );
    assert_eq!(conds.len(), 2);
    assert!(remove_condition(&mut conds, "VolumeResizeFailed"));
    assert!(!remove_condition(&mut conds, "VolumeResizeFailed"));
    assert_eq!(conds.len(), 1);
}

/// A Pending CVC's own inputs: each unusable one is the `Provisioning` condition's reason and
/// message, never a panic.
#[test]
fn provision_inputs() {
    assert_eq!(
        provision_request(&cvc(3)),
        Ok(ProvisionRequest {
            cspc: "cspc-a".into(),
            capacity: "1Gi".into(),
            replica_count: 3,
        })
    );
    let mut no_cspc = cvc(3);
    no_cspc.metadata.labels = None;
    assert_eq!(
        provision_request(&no_cspc),
        Err(Pending {
            reason: "NoPoolCluster",
            message: "the CVC has no openebs.io/cstor-pool-cluster label naming the CStorPoolCluster to place replicas on".into(),
        })
    );
    let mut zero = cvc(3);
    zero.spec.provision.capacity = BTreeMap::from([("storage".to_string(), q("0"))]);
    assert_eq!(
        provision_request(&zero),
        Err(Pending {
            reason: "InvalidCapacity",
            message: "spec.provision.capacity.storage \"0\" is not a positive quantity".into(),
        })
    );
    let mut bad = cvc(3);
    bad.spec.capacity = BTreeMap::from([("storage".to_string(), q("1GB"))]);
    assert_eq!(
        provision_request(&bad).map_err(|p| p.reason),
        Err("InvalidCapacity")
    );
    assert_eq!(
        provision_request(&cvc(0)),
        Err(Pending {
            reason: "InvalidReplicaCount",
            message: "spec.provision.replicaCount is 0; it must be at least 1".into(),
        })
    );
}

#[test]
fn scale_up_progress_names_the_failure() {
    use crate::cvc::decide::scale_up_progress;
    assert_eq!(
        scale_up_progress(1, 3, &[]),
        (
            "ScalingUp",
            "scaling replicas from 1 to 3 in progress".to_string()
        )
    );
    assert_eq!(
        scale_up_progress(1, 2, &["CStorPoolInstance cstor-x not found".to_string()]),
        (
            "ScalingFailed",
            "scaling replicas from 1 to 2: CStorPoolInstance cstor-x not found".to_string()
        )
    );
}

#[test]
fn missing_replicas_are_the_pools_without_a_cvr() {
    use crate::cvc::decide::missing_replicas;
    let have: std::collections::BTreeSet<String> = ["p1".to_string(), "p3".to_string()].into();
    assert_eq!(
        missing_replicas(&v(&["p1", "p2", "p3", "p4"]), &have),
        v(&["p2", "p4"])
    );
    assert!(missing_replicas(&v(&["p1", "p3"]), &have).is_empty());
    let known: BTreeMap<String, String> = [("111", "111"), ("222", "222"), ("333", "333")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let ids: std::collections::BTreeSet<String> =
        ["111".to_string(), "333".to_string(), "444".to_string()].into();
    assert_eq!(crate::cvc::decide::stale_known(&known, &ids), v(&["222"]));
}
