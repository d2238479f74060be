//! The caBundle patch: only `caBundle` is written, fields our compiled types do not know are
//! kept, and a concurrent edit (another resourceVersion, a webhook moved) fails the patch.

use cstor_certs::inject::bundle_patch;
use serde_json::json;

fn configuration() -> serde_json::Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "v", "resourceVersion": "7"},
        "webhooks": [
            {"name": "a.example", "clientConfig": {"caBundle": "b2xk"}, "aFieldFromTheFuture": {"x": 1}},
            {"name": "b.example", "clientConfig": {}},
        ],
    })
}

#[test]
fn only_the_bundle_is_written_and_unknown_fields_stay() {
    let guards = vec![
        ("/webhooks/0/name".to_string(), "a.example".to_string()),
        ("/webhooks/1/name".to_string(), "b.example".to_string()),
    ];
    let paths = vec![
        "/webhooks/0/clientConfig/caBundle".to_string(),
        "/webhooks/1/clientConfig/caBundle".to_string(),
    ];
    let patch = bundle_patch("7", &guards, &paths, b"new").expect("patch");
    let mut doc = configuration();
    json_patch::patch(&mut doc, &patch).expect("applies");
    assert_eq!(doc["webhooks"][0]["clientConfig"]["caBundle"], "bmV3");
    assert_eq!(doc["webhooks"][1]["clientConfig"]["caBundle"], "bmV3");
    assert_eq!(doc["webhooks"][0]["aFieldFromTheFuture"], json!({"x": 1}));
    // Someone edited it since we read it, or a webhook moved: the patch does not apply.
    let stale = bundle_patch("6", &guards, &paths, b"new").expect("patch");
    assert!(json_patch::patch(&mut configuration(), &stale).is_err());
    let moved = vec![("/webhooks/0/name".to_string(), "b.example".to_string())];
    let wrong = bundle_patch("7", &moved, &paths[..1], b"new").expect("patch");
    assert!(json_patch::patch(&mut configuration(), &wrong).is_err());
}
