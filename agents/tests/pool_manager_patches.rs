//! The pool-manager's metadata patches: every edit is guarded by a `test` of
//! resourceVersion, removals test the element they remove, and nothing is a blind overwrite.

use std::collections::BTreeMap;

use cstor_agents::pool_manager::kube_ops::{
    add_finalizer_ops, pointer_segment, remove_annotation_ops, remove_finalizer_ops,
    status_apply_body,
};
use pretty_assertions::assert_eq;
use serde_json::json;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn add_finalizer_appends_or_creates_the_list() {
    assert_eq!(
        add_finalizer_ops(&[], "41", "openebs.io/pool-protection"),
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
            {"op": "add", "path": "/metadata/finalizers", "value": ["openebs.io/pool-protection"]}
        ]))
    );
    assert_eq!(
        add_finalizer_ops(
            &s(&["cstorpoolcluster.openebs.io/finalizer"]),
            "42",
            "openebs.io/pool-protection"
        ),
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "openebs.io/pool-protection"}
        ]))
    );
    assert_eq!(
        add_finalizer_ops(
            &s(&["openebs.io/pool-protection"]),
            "43",
            "openebs.io/pool-protection"
        ),
        None
    );
}

#[test]
fn remove_finalizer_by_tested_index() {
    let list = s(&["a", "cstorpoolcluster.openebs.io/finalizer", "b"]);
    assert_eq!(
        remove_finalizer_ops(&list, "7", "cstorpoolcluster.openebs.io/finalizer"),
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
            {"op": "test", "path": "/metadata/finalizers/1", "value": "cstorpoolcluster.openebs.io/finalizer"},
            {"op": "remove", "path": "/metadata/finalizers/1"}
        ]))
    );
    assert_eq!(
        remove_finalizer_ops(&list, "7", "openebs.io/pool-protection"),
        None
    );
}

#[test]
fn remove_annotation_escapes_the_key() {
    assert_eq!(
        pointer_segment("openebs.io/bd-predecessor"),
        "openebs.io~1bd-predecessor"
    );
    assert_eq!(pointer_segment("a~b/c"), "a~0b~1c");
    let mut ann = BTreeMap::new();
    ann.insert(
        "openebs.io/bd-predecessor".to_string(),
        "bd-old".to_string(),
    );
    assert_eq!(
        remove_annotation_ops(&ann, "9", "openebs.io/bd-predecessor"),
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "9"},
            {"op": "remove", "path": "/metadata/annotations/openebs.io~1bd-predecessor"}
        ]))
    );
    assert_eq!(
        remove_annotation_ops(&BTreeMap::new(), "9", "openebs.io/bd-predecessor"),
        None
    );
}

#[test]
fn status_apply_body_names_only_identity_and_status() {
    let body = status_apply_body("cspc-a-bcdf", "openebs", &json!({"phase": "ONLINE"}));
    assert_eq!(
        body,
        json!({
            "apiVersion": "cstor.openebs.io/v1",
            "kind": "CStorPoolInstance",
            "metadata": {"name": "cspc-a-bcdf", "namespace": "openebs"},
            "status": {"phase": "ONLINE"}
        })
    );
}
