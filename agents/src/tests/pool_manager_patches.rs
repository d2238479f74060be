//! The pool-manager's status body (its metadata patches are the shared kit's, tested in
//! cstor-runtime: every edit guarded by a `test` of resourceVersion).

use crate::pool_manager::kube_ops::status_apply_body;
use pretty_assertions::assert_eq;
use serde_json::json;

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
