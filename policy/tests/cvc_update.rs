//! CVC UPDATE rules: one row per rule id (docs/admission.md), with the exact message.

use cstor_api::cstor_v1::CStorVolumeConfig;
use cstor_policy::cvc::validate_update;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn cvc(count: i64, cap: &str, phase: &str, spec_pools: &[&str], status_pools: &[&str]) -> Value {
    json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeConfig",
        "metadata": {"name": "pvc-1", "namespace": "openebs"},
        "spec": {
            "capacity": {"storage": "5Gi"},
            "provision": {"capacity": {"storage": cap}, "replicaCount": count},
            "policy": {"replicaPoolInfo": spec_pools.iter().map(|p| json!({"poolName": p})).collect::<Vec<_>>()},
        },
        "status": {"phase": phase, "poolInfo": status_pools},
    })
}

fn verdict(old: Value, new: Value) -> Result<(), String> {
    let old: CStorVolumeConfig = serde_json::from_value(old).expect("old");
    let new: CStorVolumeConfig = serde_json::from_value(new).expect("new");
    let v = validate_update(&old, &new);
    if v.allowed {
        Ok(())
    } else {
        assert_eq!(v.code, 400);
        Err(v.message)
    }
}

#[test]
fn every_rule_denies_with_its_exact_message() {
    let bound3 = cvc(3, "5Gi", "Bound", &["p1", "p2", "p3"], &["p1", "p2", "p3"]);
    let rows: Vec<(&str, Value, Value, &str)> = vec![
        (
            "CVC-1",
            bound3.clone(),
            cvc(4, "5Gi", "Bound", &["p1", "p2", "p3"], &["p1", "p2", "p3"]),
            "cvc pvc-1 replicaCount got modified from 3 to 4",
        ),
        (
            "CVC-2",
            bound3.clone(),
            cvc(3, "6Gi", "Bound", &["p1", "p2", "p3"], &["p1", "p2", "p3"]),
            "cvc initial provisioned capacity `Spec.Provision.Capacity` is immutable, can't be modified ",
        ),
        (
            "CVC-3",
            cvc(3, "5Gi", "Pending", &[], &[]),
            cvc(3, "5Gi", "Pending", &["p1"], &[]),
            "Can't perform scaling of volume replicas when CVC is not in Bound state",
        ),
        (
            "CVC-4",
            bound3.clone(),
            cvc(3, "5Gi", "Bound", &["p1", "p2", "p4"], &["p1", "p2", "p3"]),
            "volume replica migration directly by modifying pool names [p3] is not yet supported",
        ),
        (
            "CVC-5",
            bound3.clone(),
            cvc(3, "5Gi", "Bound", &["p1"], &["p1", "p2", "p3"]),
            "Can't perform more than one replica scale down requested scale down count 2",
        ),
        (
            "CVC-6",
            cvc(
                3,
                "5Gi",
                "Bound",
                &["p1", "p2", "p3", "p4"],
                &["p1", "p2", "p3"],
            ),
            cvc(
                3,
                "5Gi",
                "Bound",
                &["p1", "p2", "p3", "p4", "p5"],
                &["p1", "p2", "p3"],
            ),
            "scaling of CVC pvc-1 is already in progress",
        ),
        (
            "CVC-7",
            bound3.clone(),
            cvc(
                3,
                "5Gi",
                "Bound",
                &["p1", "p2", "p3", "p3"],
                &["p1", "p2", "p3"],
            ),
            "duplicate pool names [p3] found under spec of cvc pvc-1",
        ),
        (
            "CVC-8",
            bound3.clone(),
            cvc(
                3,
                "5Gi",
                "Bound",
                &["p1", "p2", "p3"],
                &["p1", "p1", "p2", "p3"],
            ),
            "duplicate pool names [p1] found under status of cvc pvc-1",
        ),
    ];
    for (id, old, new, want) in rows {
        assert_eq!(verdict(old, new), Err(want.to_string()), "rule {id}");
    }
}

#[test]
fn allowed_changes() {
    let bound3 = cvc(3, "5Gi", "Bound", &["p1", "p2", "p3"], &["p1", "p2", "p3"]);
    // Scale up by two at once, scale down by one, same capacity written differently, the
    // controller's own bind with pool info, and a resize of spec.capacity.
    let mut resized = bound3.clone();
    resized["spec"]["capacity"]["storage"] = json!("10Gi");
    for (old, new) in [
        (
            bound3.clone(),
            cvc(
                3,
                "5Gi",
                "Bound",
                &["p1", "p2", "p3", "p4", "p5"],
                &["p1", "p2", "p3"],
            ),
        ),
        (
            bound3.clone(),
            cvc(3, "5Gi", "Bound", &["p1", "p2"], &["p1", "p2", "p3"]),
        ),
        (
            bound3.clone(),
            cvc(
                3,
                "5368709120",
                "Bound",
                &["p1", "p2", "p3"],
                &["p1", "p2", "p3"],
            ),
        ),
        (
            cvc(3, "5Gi", "Pending", &[], &[]),
            cvc(3, "5Gi", "Bound", &[], &["p1", "p2", "p3"]),
        ),
        (bound3.clone(), resized),
    ] {
        assert_eq!(verdict(old, new), Ok(()));
    }
}

#[test]
fn the_cvc_operator_may_record_its_placement_but_not_break_immutability() {
    use cstor_policy::cvc::validate_update_by;
    use cstor_policy::owned::OperatorAccounts;
    let ops = OperatorAccounts(vec![
        "system:serviceaccount:openebs:cstor-cvc-operator".to_string(),
    ]);
    let by = |user: &str, old: Value, new: Value| {
        let old: CStorVolumeConfig = serde_json::from_value(old).expect("old");
        let new: CStorVolumeConfig = serde_json::from_value(new).expect("new");
        let v = validate_update_by(&old, &new, user, &ops);
        if v.allowed { Ok(()) } else { Err(v.message) }
    };
    // Bound with status.poolInfo written first; the spec then records the same pools.
    let old = cvc(3, "5Gi", "Bound", &[], &["a", "b", "c"]);
    let new = cvc(3, "5Gi", "Bound", &["a", "b", "c"], &["a", "b", "c"]);
    let operator = "system:serviceaccount:openebs:cstor-cvc-operator";
    assert_eq!(by(operator, old.clone(), new.clone()), Ok(()));
    assert_eq!(
        by("alice", old, new),
        Err("scaling of CVC pvc-1 is already in progress".into())
    );
    // Immutable fields stay immutable for the operator too.
    assert_eq!(
        by(
            operator,
            cvc(3, "5Gi", "Bound", &[], &[]),
            cvc(4, "5Gi", "Bound", &[], &[])
        ),
        Err("cvc pvc-1 replicaCount got modified from 3 to 4".into())
    );
}
