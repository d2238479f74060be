//! Objects the operators own (docs/admission.md, "Objects the operators own"): who may
//! create, change and delete CSPIs, CVRs and CStorVolumes, with the exact messages.

use cstor_api::cstor_v1::{CStorPoolInstance, CStorVolume, CStorVolumeReplica};
use cstor_policy::owned::{self, Operation, OperatorAccounts, Request};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const OPERATOR: &str = "system:serviceaccount:openebs:cstor-cspc-operator";

fn operators() -> OperatorAccounts {
    OperatorAccounts(vec![OPERATOR.to_string()])
}

fn cspi_json() -> Value {
    json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
        "metadata": {"name": "pc-abcd",
                     "labels": {"openebs.io/cstor-pool-cluster": "pc", "kubernetes.io/hostname": "node-1"},
                     "ownerReferences": [{"apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
                                          "name": "pc", "uid": "u-pc", "controller": true}]},
        "spec": {"hostName": "node-1", "nodeSelector": {"kubernetes.io/hostname": "node-1"},
                 "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "a1"}]}],
                 "poolConfig": {"dataRaidGroupType": "stripe"}},
    })
}

fn cspi(edit: impl FnOnce(&mut Value)) -> CStorPoolInstance {
    let mut v = cspi_json();
    edit(&mut v);
    serde_json::from_value(v).expect("cspi")
}

fn req(user: &str, operation: Operation, owner_deleting: bool) -> Request<'_> {
    Request {
        username: user,
        operation,
        owner_deleting,
    }
}

/// (case, edit of the stored CSPI into the new one, user, allowed, message when denied)
type Row = (
    &'static str,
    fn(&mut Value),
    &'static str,
    Option<&'static str>,
);

#[test]
fn cspi_updates_by_a_user_and_by_the_operator() {
    let rows: [Row; 9] = [
        (
            "spec",
            |v| v["spec"]["poolConfig"]["compression"] = json!("off"),
            "alice",
            Some(
                "direct CStorPoolInstance pc-abcd spec changes are not allowed; edit CStorPoolCluster pc instead",
            ),
        ),
        (
            "owner label",
            |v| v["metadata"]["labels"]["openebs.io/cstor-pool-cluster"] = json!("ghost"),
            "alice",
            Some(
                "CStorPoolInstance pc-abcd: label openebs.io/cstor-pool-cluster is set by the operators and cannot be changed directly",
            ),
        ),
        (
            "hostname label removed",
            |v| {
                v["metadata"]["labels"]
                    .as_object_mut()
                    .map(|l| l.remove("kubernetes.io/hostname"));
            },
            "alice",
            Some(
                "CStorPoolInstance pc-abcd: label kubernetes.io/hostname is set by the operators and cannot be changed directly",
            ),
        ),
        (
            "operator annotation added",
            |v| {
                v["metadata"]["annotations"] =
                    json!({"cstorpoolinstance.openebs.io/hostname": "node-2"})
            },
            "alice",
            Some(
                "CStorPoolInstance pc-abcd: annotation cstorpoolinstance.openebs.io/hostname is set by the operators and cannot be changed directly",
            ),
        ),
        (
            "ownerReferences dropped",
            |v| v["metadata"]["ownerReferences"] = json!([]),
            "alice",
            Some(
                "CStorPoolInstance pc-abcd: ownerReferences is set by the operators and cannot be changed directly",
            ),
        ),
        (
            "a user's own label",
            |v| v["metadata"]["labels"]["team"] = json!("storage"),
            "alice",
            None,
        ),
        (
            "pausing reconciliation",
            |v| v["metadata"]["annotations"] = json!({"reconcile.openebs.io/disable": "true"}),
            "alice",
            None,
        ),
        (
            "finalizers and status",
            |v| {
                v["metadata"]["finalizers"] = json!(["openebs.io/pool-protection"]);
                let status = cstor_api::cstor_v1::CStorPoolInstanceStatus {
                    phase: "ONLINE".into(),
                    ..Default::default()
                };
                v["status"] = serde_json::to_value(status).expect("status");
            },
            "alice",
            None,
        ),
        (
            "the operator relabels",
            |v| v["metadata"]["labels"]["openebs.io/cstor-pool-cluster"] = json!("other"),
            OPERATOR,
            None,
        ),
    ];
    let old = cspi(|_| {});
    for (case, edit, user, denied) in rows {
        let new = cspi(edit);
        let v = owned::cspi(
            Some(&old),
            Some(&new),
            &req(user, Operation::Update, false),
            &operators(),
        );
        match denied {
            None => assert!(v.allowed, "{case}: {}", v.message),
            Some(m) => {
                assert!(!v.allowed, "{case}");
                assert_eq!((v.code, v.message.as_str()), (403, m), "{case}");
            }
        }
    }
}

#[test]
fn deletes_by_operators_kubernetes_cleanup_or_with_the_owner_going() {
    let old = cspi(|_| {});
    let delete = |user, owner_deleting| {
        owned::cspi(
            Some(&old),
            None,
            &req(user, Operation::Delete, owner_deleting),
            &operators(),
        )
    };
    let v = delete("alice", false);
    assert!(!v.allowed);
    assert_eq!(
        v.message,
        "direct deletion of CStorPoolInstance pc-abcd is not allowed; remove its pool from CStorPoolCluster pc or delete that CStorPoolCluster instead"
    );
    assert!(delete(OPERATOR, false).allowed);
    assert!(delete(owned::GARBAGE_COLLECTOR, false).allowed);
    assert!(delete(owned::NAMESPACE_CONTROLLER, false).allowed);
    assert!(delete("alice", true).allowed, "the owner is being deleted");
}

#[test]
fn the_owner_named_comes_from_the_owner_reference_not_a_label() {
    // Relabelled before the guard existed: the message (and the webhook's owner lookup) still
    // follow the ownerReference.
    let old = cspi(|v| v["metadata"]["labels"]["openebs.io/cstor-pool-cluster"] = json!("ghost"));
    let v = owned::cspi(
        Some(&old),
        None,
        &req("alice", Operation::Delete, false),
        &operators(),
    );
    assert!(v.message.contains("CStorPoolCluster pc "), "{}", v.message);
}

#[test]
fn creates_only_by_the_operators() {
    let new = cspi(|_| {});
    let v = owned::cspi(
        None,
        Some(&new),
        &req("alice", Operation::Create, false),
        &operators(),
    );
    assert_eq!(
        (v.allowed, v.message.as_str()),
        (
            false,
            "CStorPoolInstance objects are made by the operators; create or edit a CStorPoolCluster instead"
        )
    );
    assert!(
        owned::cspi(
            None,
            Some(&new),
            &req(OPERATOR, Operation::Create, false),
            &operators()
        )
        .allowed
    );
    let cvr: CStorVolumeReplica = serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": "pvc-1-pc-abcd", "labels": {"openebs.io/persistent-volume": "pvc-1"}},
        "spec": {"capacity": "5G"},
    }))
    .expect("cvr");
    let v = owned::cvr(
        None,
        Some(&cvr),
        &req("alice", Operation::Create, false),
        &operators(),
    );
    assert_eq!(
        v.message,
        "CStorVolumeReplica objects are made by the operators; create a CStorVolumeConfig (or a PersistentVolumeClaim of the cStor CSI driver) instead"
    );
}

#[test]
fn cvr_and_cstor_volume_point_at_the_cvc() {
    let cvr: CStorVolumeReplica = serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": "pvc-1-pc-abcd", "labels": {"openebs.io/persistent-volume": "pvc-1"},
                     "annotations": {"cstor.openebs.io/replica-lun": "/var/openebs/cstor-pool/p/replicas/pvc-1/lun"},
                     "ownerReferences": [{"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
                                          "name": "pvc-1", "uid": "u-cv", "controller": true}]},
        "spec": {"capacity": "5G"},
    }))
    .expect("cvr");
    let v = owned::cvr(
        Some(&cvr),
        None,
        &req("alice", Operation::Delete, false),
        &operators(),
    );
    assert_eq!(
        v.message,
        "direct deletion of CStorVolumeReplica pvc-1-pc-abcd is not allowed; scale the volume down in CStorVolumeConfig pvc-1 (spec.policy.replicaPoolInfo) instead"
    );
    let mut pointed = cvr.clone();
    pointed
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("cstor.openebs.io/replica-lun".into(), "/etc/shadow".into());
    let v = owned::cvr(
        Some(&cvr),
        Some(&pointed),
        &req("alice", Operation::Update, false),
        &operators(),
    );
    assert_eq!(
        v.message,
        "CStorVolumeReplica pvc-1-pc-abcd: annotation cstor.openebs.io/replica-lun is set by the operators and cannot be changed directly"
    );

    let cv: CStorVolume = serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
        "metadata": {"name": "pvc-1"}, "spec": {"replicationFactor": 3},
    }))
    .expect("cv");
    let mut edited = cv.clone();
    edited.spec.replication_factor = Some(1);
    let v = owned::cstor_volume(
        Some(&cv),
        Some(&edited),
        &req("alice", Operation::Update, false),
        &operators(),
    );
    assert_eq!(
        v.message,
        "direct CStorVolume pvc-1 spec changes are not allowed; edit CStorVolumeConfig pvc-1 instead"
    );
    let v = owned::cstor_volume(
        Some(&cv),
        None,
        &req("alice", Operation::Delete, false),
        &operators(),
    );
    assert_eq!(
        v.message,
        "direct deletion of CStorVolume pvc-1 is not allowed; delete the volume's PersistentVolumeClaim (or CStorVolumeConfig pvc-1) instead"
    );
    // `cstor volume recover` runs as the user: its annotation is theirs to set.
    let mut recover = cv.clone();
    recover.metadata.annotations = Some(
        [(
            "cstor.openebs.io/recover-from".to_string(),
            "123".to_string(),
        )]
        .into_iter()
        .collect(),
    );
    assert!(
        owned::cstor_volume(
            Some(&cv),
            Some(&recover),
            &req("alice", Operation::Update, false),
            &operators()
        )
        .allowed
    );
}

#[test]
fn users_may_ask_for_a_snapshot_and_mark_a_restore_but_not_forge_its_answers() {
    use cstor_policy::owned::operator_key;
    // `cstor volume snapshot` and the velero-plugin run as users.
    assert!(!operator_key("cstor.openebs.io/snapshot-request"));
    assert!(!operator_key("openebs.io/restore-completed"));
    // The barrier, the pool-managers' answers and the outcome are the operators'.
    assert!(operator_key("cstor.openebs.io/snapshot-barrier"));
    assert!(operator_key("cstor.openebs.io/snapshot-answer"));
    assert!(operator_key("cstor.openebs.io/snapshot-outcome"));
}

#[test]
fn operator_accounts_ending_in_a_star_are_prefixes() {
    let ops = OperatorAccounts(vec![
        "system:serviceaccount:openebs:cstor-cspc-operator".into(),
        "system:serviceaccount:openebs:cstor-pool-manager-*".into(),
    ]);
    assert!(ops.contains("system:serviceaccount:openebs:cstor-cspc-operator"));
    assert!(ops.contains("system:serviceaccount:openebs:cstor-pool-manager-pc-abcd"));
    assert!(!ops.contains("system:serviceaccount:openebs:cstor-pool-manager-"));
    assert!(!ops.contains("system:serviceaccount:openebs:cstor-cspc-operator-x"));
    assert!(!ops.contains("system:serviceaccount:other:cstor-pool-manager-pc-abcd"));
}
