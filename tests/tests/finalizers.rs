//! The shared kit's finalizer edit against a real apiserver: a patch built from a stale
//! object is refused by its resourceVersion `test` (so a concurrent writer's list is never
//! overwritten), is classified as a lost race, and the guarded edit re-reads and succeeds.

use cstor_local::testing;
use cstor_runtime::errors::{is_lost_race, is_webhook_denial};
use cstor_runtime::finalizers::{
    add_finalizer, add_finalizer_ops, has_finalizer, remove_finalizer,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_resource_version_is_refused_and_the_guarded_edit_retries() {
    let env = testing::env("finalizers").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "guarded", "finalizers": ["other.example/keep"]},
    }))
    .expect("configmap");
    let stale = api
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");

    // Another writer changes the object: the copy we hold is now stale.
    api.patch(
        "guarded",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
    )
    .await
    .expect("concurrent write");

    let ops = add_finalizer_ops(&stale, "cstor.example/mine").expect("ops");
    let patch = serde_json::from_value(ops).expect("patch");
    let err = api
        .patch(
            "guarded",
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
        .expect_err("a patch from a stale object must be refused");
    assert!(is_lost_race(&err), "refused as a lost race: {err}");
    assert!(!is_webhook_denial(&err));

    // The guarded edit re-reads and lands, keeping the other writer's finalizer.
    assert!(
        add_finalizer(&api, "guarded", "cstor.example/mine")
            .await
            .expect("add")
    );
    assert!(
        !add_finalizer(&api, "guarded", "cstor.example/mine")
            .await
            .expect("again")
    );
    let live = api.get("guarded").await.expect("get");
    assert!(has_finalizer(&live, "cstor.example/mine"));
    assert!(has_finalizer(&live, "other.example/keep"));
    assert!(
        remove_finalizer(&api, "guarded", "cstor.example/mine")
            .await
            .expect("remove")
    );
    let live = api.get("guarded").await.expect("get");
    assert_eq!(
        live.metadata.finalizers,
        Some(vec!["other.example/keep".to_string()])
    );
    remove_finalizer(&api, "guarded", "other.example/keep")
        .await
        .expect("cleanup");
}
