//! Mutating defaults (docs/admission.md A.7) and the PVC delete rule.

use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_policy::defaults::with_pool_defaults;
use cstor_policy::pvc;
use pretty_assertions::assert_eq;
use serde_json::json;

fn cspc(v: serde_json::Value) -> CStorPoolCluster {
    serde_json::from_value(v).expect("typed CSPC")
}

#[test]
fn pools_inherit_cspc_defaults_without_overriding_the_user() {
    let input = cspc(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster", "metadata": {"name": "pc"},
        "spec": {
            "resources": {"requests": {"memory": "1Gi"}},
            "tolerations": [{"key": "storage", "operator": "Exists"}],
            "priorityClassName": "high",
            "pools": [
                {"nodeSelector": {"h": "1"}, "dataRaidGroups": [], "poolConfig": {"dataRaidGroupType": "stripe"}},
                {"nodeSelector": {"h": "2"}, "dataRaidGroups": [], "poolConfig": {
                    "dataRaidGroupType": "stripe", "compression": "off", "roThresholdLimit": 100,
                    "resources": {"requests": {"memory": "2Gi"}}, "priorityClassName": ""}},
            ],
        },
    }));
    let out = serde_json::to_value(with_pool_defaults(&input)).expect("json");
    assert_eq!(
        out["spec"]["pools"][0]["poolConfig"],
        json!({"dataRaidGroupType": "stripe", "compression": "lz4", "roThresholdLimit": 85,
               "resources": {"requests": {"memory": "1Gi"}},
               "tolerations": [{"key": "storage", "operator": "Exists"}], "priorityClassName": "high"})
    );
    assert_eq!(
        out["spec"]["pools"][1]["poolConfig"],
        json!({"dataRaidGroupType": "stripe", "compression": "off", "roThresholdLimit": 100,
               "resources": {"requests": {"memory": "2Gi"}},
               "tolerations": [{"key": "storage", "operator": "Exists"}], "priorityClassName": ""})
    );
    // Idempotent: defaults of defaults change nothing (so the webhook sends no patch).
    let once = with_pool_defaults(&input);
    assert_eq!(with_pool_defaults(&once), once);
}

#[test]
fn pvc_with_clones_cannot_be_deleted() {
    let v = pvc::validate_delete("apps", "data", 2, 0);
    assert_eq!(
        (v.allowed, v.code, v.reason.as_deref(), v.message.as_str()),
        (
            false,
            403,
            Some("PVC with cloned volumes can't be deleted"),
            "pvc \"data\" has '2' cloned volume(s)"
        )
    );
    assert_eq!(
        pvc::validate_delete("apps", "data", 0, 1).message,
        "pvc \"data\" has '1' cloned volume(s)"
    );
    assert!(pvc::validate_delete("apps", "data", 0, 0).allowed);
    assert!(pvc::validate_delete("kube-system", "data", 3, 3).allowed);
    assert!(pvc::validate_delete("apps", "", 3, 3).allowed);
}

#[test]
fn ns_4_operator_namespace_with_pools_or_volumes_cannot_be_deleted() {
    use cstor_policy::namespace;
    let v = namespace::validate_delete("openebs", "openebs", 1, 2);
    assert!(!v.allowed);
    assert_eq!(v.code, 403);
    assert_eq!(
        v.message,
        "namespace openebs runs the cStor operators and still holds 1 CStorPoolCluster(s) and 2 \
         CStorVolumeConfig(s); delete them first, since deleting the namespace would destroy \
         their pools and volumes"
    );
    // NS-2: other namespaces, and an empty operator namespace, are never held.
    assert!(namespace::validate_delete("apps", "openebs", 1, 2).allowed);
    assert!(namespace::validate_delete("openebs", "openebs", 0, 0).allowed);
    assert!(namespace::validate_delete("", "openebs", 1, 1).allowed);
}
