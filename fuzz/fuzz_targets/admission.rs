//! Decode + policy + conversion never panic: arbitrary bytes as an AdmissionReview, and arbitrary JSON as
//! the object (and old object) of well-formed CSPC, CVC, CSPI, PVC and Namespace reviews, go
//! through `/validate` and `/mutate` with facts in memory.
#![no_main]

use cstor_policy::{CspcFacts, NodeFact};
use cstor_webhooks::facts::MemoryFacts;
use cstor_webhooks::{Config, mutate, validate};
use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn facts() -> MemoryFacts {
    let mut cspc = CspcFacts::default();
    for n in ["node-1", "node-2"] {
        cspc.nodes.push(NodeFact {
            name: n.into(),
            labels: [("kubernetes.io/hostname".to_string(), n.to_string())].into(),
        });
    }
    for (bd, node) in [("a1", "node-1"), ("a2", "node-1"), ("b1", "node-2")] {
        let value = json!({
            "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
            "metadata": {"name": bd, "labels": {"kubernetes.io/hostname": node}},
            "spec": {"capacity": {"storage": 1073741824u64}, "nodeAttributes": {"nodeName": node}},
            "status": {"claimState": "Unclaimed", "state": "Active"},
        });
        if let Ok(bd_obj) = serde_json::from_value(value) {
            cspc.block_devices.insert(bd.into(), bd_obj);
        }
    }
    MemoryFacts {
        cspc: std::sync::Arc::new(cspc),
        clones: (1, 0),
        owner_deleting: false,
        holdings: (1, 1),
        migration_tasks: Vec::new(),
    }
}

const KINDS: [(&str, &str, &str, &str); 7] = [
    ("cstor.openebs.io", "v1", "CStorPoolCluster", "cstorpoolclusters"),
    ("openebs.io", "v1alpha1", "MigrationTask", "migrationtasks"),
    ("cstor.openebs.io", "v1", "CStorVolumeConfig", "cstorvolumeconfigs"),
    ("cstor.openebs.io", "v1", "CStorPoolInstance", "cstorpoolinstances"),
    ("cstor.openebs.io", "v1", "CStorVolumeReplica", "cstorvolumereplicas"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("", "v1", "Namespace", "namespaces"),
];
const OPERATIONS: [&str; 3] = ["CREATE", "UPDATE", "DELETE"];

/// A well-formed review around fuzzed objects, so the policy (not only the envelope) is hit.
fn wrap(selector: u8, object: Value, old: Value) -> Value {
    let (group, version, kind, resource) = KINDS[usize::from(selector) % KINDS.len()];
    let operation = OPERATIONS[usize::from(selector / 8) % OPERATIONS.len()];
    let (object, old) = match operation {
        "CREATE" => (object, Value::Null),
        "DELETE" => (Value::Null, old),
        _ => (object, old),
    };
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz", "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": "x", "namespace": "openebs", "operation": operation,
            "userInfo": {"username": if selector & 0x80 == 0 { "alice" } else { "system:serviceaccount:openebs:cstor-cspc-operator" }},
            "object": object, "oldObject": old, "dryRun": false,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 4 == 3 {
        // Conversion: arbitrary bytes as a ConversionReview, and as an object converted both ways.
        if let Ok(review) = serde_json::from_slice(rest) {
            let answer = cstor_webhooks::convert::review(review);
            assert!(answer.response.is_some());
        }
        if let Ok(object) = serde_json::from_slice::<Value>(rest) {
            for version in ["cstor.openebs.io/v1", "cstor.openebs.io/v1alpha1"] {
                if let Ok(converted) = cstor_webhooks::convert::convert_object(&object, version) {
                    // What we produce, we can convert back.
                    let back = if version.ends_with("v1") {
                        "cstor.openebs.io/v1alpha1"
                    } else {
                        "cstor.openebs.io/v1"
                    };
                    let _ = cstor_webhooks::convert::convert_object(&converted, back);
                }
            }
        }
        return;
    }
    let review: Option<AdmissionReview<DynamicObject>> = if mode & 1 == 0 {
        serde_json::from_slice(rest).ok()
    } else {
        // The rest is `object` JSON, optionally followed by a NUL and `oldObject` JSON.
        let mut parts = rest.splitn(2, |b| *b == 0);
        let object = parts
            .next()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or(Value::Null);
        let old = parts
            .next()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or_else(|| object.clone());
        serde_json::from_value(wrap(mode >> 1, object, old)).ok()
    };
    let Some(review) = review else { return };
    let config = Config {
        openebs_namespace: "openebs".into(),
        operator_accounts: cstor_policy::owned::OperatorAccounts(vec![
            "system:serviceaccount:openebs:cstor-cspc-operator".into(),
        ]),
    };
    let answer = futures::executor::block_on(validate::review(review.clone(), &facts(), &config));
    // Totality: an answer always has a response.
    assert!(answer.response.is_some());
    let mutated = mutate::review(review);
    assert!(mutated.response.is_some());
});
