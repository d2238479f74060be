//! Direct edits of operator-owned objects (docs/admission.md A.4).

use cstor_api::cstor_v1::{CStorPoolInstance, CStorVolume, CStorVolumeReplica};
use cstor_policy::owned::{self, Operation, OperatorAccounts, Request};
use pretty_assertions::assert_eq;
use serde_json::json;

const OPERATOR: &str = "system:serviceaccount:openebs:cstor-operator";

fn operators() -> OperatorAccounts {
    OperatorAccounts(vec![OPERATOR.to_string()])
}

fn cspi() -> CStorPoolInstance {
    serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
        "metadata": {"name": "pc-abcd", "labels": {"openebs.io/cstor-pool-cluster": "pc"}},
        "spec": {"hostName": "node-1", "nodeSelector": {"kubernetes.io/hostname": "node-1"},
                 "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "a1"}]}],
                 "poolConfig": {"dataRaidGroupType": "stripe"}},
    }))
    .expect("cspi")
}

fn req(user: &str, operation: Operation) -> Request<'_> {
    Request {
        username: user,
        operation,
        owner_deleting: false,
    }
}

#[test]
fn spec_edit_by_a_user_is_denied_and_by_the_operator_allowed() {
    let old = cspi();
    let mut new = old.clone();
    new.spec
        .pool_config
        .get_or_insert_with(Default::default)
        .compression = "off".into();
    let denied = owned::cspi(
        &old,
        Some(&new),
        &req("alice", Operation::Update),
        &operators(),
    );
    assert!(!denied.allowed);
    assert_eq!(denied.code, 403);
    assert_eq!(
        denied.message,
        "direct CStorPoolInstance pc-abcd spec changes are not allowed; edit CStorPoolCluster pc instead"
    );
    assert!(
        owned::cspi(
            &old,
            Some(&new),
            &req(OPERATOR, Operation::Update),
            &operators()
        )
        .allowed
    );
}

#[test]
fn status_label_and_finalizer_edits_are_allowed() {
    let old = cspi();
    let mut new = old.clone();
    new.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("x".into(), "y".into());
    new.metadata.finalizers = Some(vec!["openebs.io/pool-protection".into()]);
    new.status = Some(Default::default());
    assert!(
        owned::cspi(
            &old,
            Some(&new),
            &req("alice", Operation::Update),
            &operators()
        )
        .allowed
    );
}

#[test]
fn deletes_only_by_operators_and_kubernetes_cleanup() {
    let old = cspi();
    assert!(!owned::cspi(&old, None, &req("alice", Operation::Delete), &operators()).allowed);
    assert!(owned::cspi(&old, None, &req(OPERATOR, Operation::Delete), &operators()).allowed);
    assert!(
        owned::cspi(
            &old,
            None,
            &req(owned::GARBAGE_COLLECTOR, Operation::Delete),
            &operators()
        )
        .allowed
    );
    assert!(
        owned::cspi(
            &old,
            None,
            &req(owned::NAMESPACE_CONTROLLER, Operation::Delete),
            &operators()
        )
        .allowed
    );
    let cascading = Request {
        username: "alice",
        operation: Operation::Delete,
        owner_deleting: true,
    };
    assert!(owned::cspi(&old, None, &cascading, &operators()).allowed);
}

#[test]
fn cvr_and_cstor_volume_point_at_the_cvc() {
    let cvr: CStorVolumeReplica = serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": "pvc-1-pc-abcd", "labels": {"openebs.io/persistent-volume": "pvc-1"}},
        "spec": {"capacity": "5G"},
    }))
    .expect("cvr");
    let v = owned::cvr(&cvr, None, &req("alice", Operation::Delete), &operators());
    assert_eq!(
        v.message,
        "direct CStorVolumeReplica pvc-1-pc-abcd spec changes are not allowed; edit CStorVolumeConfig pvc-1 instead"
    );
    let cv: CStorVolume = serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
        "metadata": {"name": "pvc-1"}, "spec": {"replicationFactor": 3},
    }))
    .expect("cv");
    let mut edited = cv.clone();
    edited.spec.replication_factor = Some(1);
    let v = owned::cstor_volume(
        &cv,
        Some(&edited),
        &req("alice", Operation::Update),
        &operators(),
    );
    assert_eq!(
        v.message,
        "direct CStorVolume pvc-1 spec changes are not allowed; edit CStorVolumeConfig pvc-1 instead"
    );
}
