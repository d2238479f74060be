//! In-process tests of the handlers with fixture AdmissionReviews and a facts snapshot; the
//! end-to-end path through the real apiserver comes with the server.

use cstor_policy::owned::OperatorAccounts;
use cstor_policy::{CspcFacts, NodeFact};
use cstor_webhooks::Config;
use cstor_webhooks::facts::{Facts, FactsError, OwnerKind};
use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// A fixed snapshot of cluster state.
struct Snapshot(CspcFacts);

impl Facts for Snapshot {
    async fn cspc_facts(
        &self,
        _: &str,
        _: &str,
        _: &[&str],
    ) -> Result<std::sync::Arc<CspcFacts>, FactsError> {
        Ok(std::sync::Arc::new(self.0.clone()))
    }
    async fn clone_counts(&self, _: &str) -> Result<(usize, usize), FactsError> {
        Ok((0, 0))
    }
    async fn owner_deleting(
        &self,
        _: OwnerKind,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<bool, FactsError> {
        Ok(false)
    }
    async fn namespace_holdings(&self, _: &str) -> Result<(usize, usize), FactsError> {
        Ok((1, 0))
    }
    async fn migration_tasks(
        &self,
        _: &str,
    ) -> Result<Vec<cstor_api::openebs_v1alpha1::MigrationTask>, FactsError> {
        // One running task for spc "old-pool".
        Ok(vec![
            serde_json::from_value(json!({
                "apiVersion": "openebs.io/v1alpha1", "kind": "MigrationTask",
                "metadata": {"name": "migrate-cstor-pool-old-pool", "namespace": "openebs"},
                "spec": {"cstorPool": {"spcName": "old-pool"}},
                "status": {"phase": "Started"},
            }))
            .expect("task"),
        ])
    }
}

fn snapshot() -> Snapshot {
    let mut f = CspcFacts::default();
    f.nodes.push(NodeFact {
        name: "node-1".into(),
        labels: [("kubernetes.io/hostname".to_string(), "node-1".to_string())].into(),
    });
    let bd = json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
        "metadata": {"name": "a1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {"capacity": {"storage": 1073741824u64}, "nodeAttributes": {"nodeName": "node-1"},
                 "path": "/d/a1", "partitioned": "No", "details": {}, "devlinks": []},
        "status": {"claimState": "Unclaimed", "state": "Active"},
    });
    f.block_devices
        .insert("a1".into(), serde_json::from_value(bd).expect("bd"));
    Snapshot(f)
}

fn config() -> Config {
    Config {
        openebs_namespace: "openebs".into(),
        operator_accounts: OperatorAccounts(vec![
            "system:serviceaccount:openebs:cstor-operator".into(),
        ]),
    }
}

fn cspc(kind: &str, compression: Option<&str>) -> Value {
    let mut config = json!({"dataRaidGroupType": kind});
    if let Some(c) = compression {
        config["compression"] = json!(c);
        config["roThresholdLimit"] = json!(85);
    }
    json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
        "metadata": {"name": "pc", "namespace": "openebs"},
        "spec": {"pools": [{"nodeSelector": {"kubernetes.io/hostname": "node-1"},
                            "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "a1"}]}],
                            "poolConfig": config}]},
    })
}

fn review(
    kind: &str,
    group: &str,
    operation: &str,
    user: &str,
    object: Value,
    old: Value,
) -> AdmissionReview<DynamicObject> {
    serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
            "name": "pc", "namespace": "openebs", "operation": operation,
            "userInfo": {"username": user},
            "object": object, "oldObject": old, "dryRun": false,
        },
    }))
    .expect("review")
}

fn response(r: AdmissionReview<DynamicObject>) -> Value {
    serde_json::to_value(r).expect("json")["response"].clone()
}

#[tokio::test]
async fn cspc_create_denial_carries_uid_code_and_exact_message() {
    let r = review(
        "CStorPoolCluster",
        "cstor.openebs.io",
        "CREATE",
        "alice",
        cspc("raid5", None),
        Value::Null,
    );
    let resp = response(cstor_webhooks::validate::review(r, &snapshot(), &config()).await);
    assert_eq!(resp["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 422);
    assert_eq!(resp["status"]["status"], "Failure");
    assert_eq!(
        resp["status"]["message"],
        "invalid cspc specification: invalid pool spec: unsupported dataRaidGroupType 'raid5' specified"
    );
    let ok = review(
        "CStorPoolCluster",
        "cstor.openebs.io",
        "CREATE",
        "alice",
        cspc("stripe", None),
        Value::Null,
    );
    assert_eq!(
        response(cstor_webhooks::validate::review(ok, &snapshot(), &config()).await)["allowed"],
        true
    );
}

#[tokio::test]
async fn cspi_spec_edit_only_by_the_operator() {
    let cspi = |compression: &str| {
        json!({
            "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
            "metadata": {"name": "pc-abcd", "namespace": "openebs", "labels": {"openebs.io/cstor-pool-cluster": "pc"}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": "node-1"}, "dataRaidGroups": [],
                     "poolConfig": {"dataRaidGroupType": "stripe", "compression": compression}},
        })
    };
    let as_user = review(
        "CStorPoolInstance",
        "cstor.openebs.io",
        "UPDATE",
        "alice",
        cspi("off"),
        cspi("lz4"),
    );
    let resp = response(cstor_webhooks::validate::review(as_user, &snapshot(), &config()).await);
    assert_eq!(resp["status"]["code"], 403);
    assert_eq!(
        resp["status"]["message"],
        "direct CStorPoolInstance pc-abcd spec changes are not allowed; edit CStorPoolCluster pc instead"
    );
    let as_operator = review(
        "CStorPoolInstance",
        "cstor.openebs.io",
        "UPDATE",
        "system:serviceaccount:openebs:cstor-operator",
        cspi("off"),
        cspi("lz4"),
    );
    assert_eq!(
        response(cstor_webhooks::validate::review(as_operator, &snapshot(), &config()).await)["allowed"],
        true
    );
}

#[tokio::test]
async fn malformed_objects_and_envelopes_get_answers() {
    let mut bad = cspc("stripe", None);
    bad["spec"]["pools"] = json!("not-a-list");
    let r = review(
        "CStorPoolCluster",
        "cstor.openebs.io",
        "CREATE",
        "alice",
        bad,
        Value::Null,
    );
    let resp = response(cstor_webhooks::validate::review(r, &snapshot(), &config()).await);
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 400);
    let msg = resp["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("could not decode CStorPoolCluster: invalid type: string"),
        "{msg}"
    );

    let empty: AdmissionReview<DynamicObject> = serde_json::from_value(
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
    )
    .expect("review");
    let resp = response(cstor_webhooks::validate::review(empty, &snapshot(), &config()).await);
    assert_eq!(resp["allowed"], false);
}

#[test]
fn mutate_patches_missing_defaults_and_nothing_else() {
    let r = review(
        "CStorPoolCluster",
        "cstor.openebs.io",
        "CREATE",
        "alice",
        cspc("stripe", None),
        Value::Null,
    );
    let resp = response(cstor_webhooks::mutate::review(r));
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    // kube 5 writes the patch as a JSON array of bytes, not base64 (kube-rs/kube#1781); the real
    // apiserver accepts it: tests/tests/webhooks_e2e.rs finds the defaults in the stored object.
    let bytes: Vec<u8> = resp["patch"]
        .as_array()
        .expect("patch is an array of bytes")
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()).expect("byte"))
        .collect();
    let ops: Value = serde_json::from_slice(&bytes).expect("patch is JSON");
    assert_eq!(
        ops,
        json!([
            {"op": "add", "path": "/spec/pools/0/poolConfig/compression", "value": "lz4"},
            {"op": "add", "path": "/spec/pools/0/poolConfig/roThresholdLimit", "value": 85},
        ])
    );

    let full = review(
        "CStorPoolCluster",
        "cstor.openebs.io",
        "CREATE",
        "alice",
        cspc("stripe", Some("lz4")),
        Value::Null,
    );
    let resp = response(cstor_webhooks::mutate::review(full));
    assert_eq!(resp["allowed"], true);
    assert!(
        resp.get("patch").is_none_or(Value::is_null),
        "no patch when nothing changes: {resp}"
    );
}

#[test]
fn mutate_patch_applies_to_the_object() {
    let obj = cspc("stripe", None);
    let r = review(
        "CStorPoolCluster",
        "cstor.openebs.io",
        "CREATE",
        "alice",
        obj.clone(),
        Value::Null,
    );
    let req: kube::core::admission::AdmissionRequest<DynamicObject> =
        r.try_into().expect("request");
    let patch = cstor_webhooks::mutate::patch_for(&req)
        .expect("patch")
        .expect("some patch");
    let mut patched = obj;
    json_patch::patch(&mut patched, &patch).expect("applies");
    assert_eq!(
        patched["spec"]["pools"][0]["poolConfig"],
        json!({"dataRaidGroupType": "stripe", "compression": "lz4", "roThresholdLimit": 85})
    );
}

#[tokio::test]
async fn a_second_running_migration_of_the_same_spc_is_refused() {
    let task = |name: &str, spec: Value| {
        json!({
            "apiVersion": "openebs.io/v1alpha1", "kind": "MigrationTask",
            "metadata": {"name": name, "namespace": "openebs"},
            "spec": spec,
        })
    };
    let ask = |object: Value, old: Value, op: &str| {
        review("MigrationTask", "openebs.io", op, "alice", object, old)
    };
    let cases = [
        (
            ask(
                task("again", json!({"cstorPool": {"spcName": "old-pool"}})),
                Value::Null,
                "CREATE",
            ),
            Some((
                409,
                "MigrationTask migrate-cstor-pool-old-pool is already migrating spc old-pool; wait for it to end or delete it",
            )),
        ),
        (
            ask(
                task("other", json!({"cstorPool": {"spcName": "other-pool"}})),
                Value::Null,
                "CREATE",
            ),
            None,
        ),
        (
            ask(
                task(
                    "both",
                    json!({"cstorPool": {"spcName": "a"}, "cstorVolume": {"pvName": "b"}}),
                ),
                Value::Null,
                "CREATE",
            ),
            Some((
                422,
                "a MigrationTask names exactly one of spec.cstorPool and spec.cstorVolume",
            )),
        ),
        (
            ask(task("none", json!({})), Value::Null, "CREATE"),
            Some((
                422,
                "a MigrationTask names exactly one of spec.cstorPool and spec.cstorVolume",
            )),
        ),
        (
            ask(
                task("blank", json!({"cstorVolume": {}})),
                Value::Null,
                "CREATE",
            ),
            Some((422, "spec.cstorVolume.pvName is required")),
        ),
        (
            ask(
                task("blank", json!({"cstorPool": {"rename": "x"}})),
                Value::Null,
                "CREATE",
            ),
            Some((422, "spec.cstorPool.spcName is required")),
        ),
        (
            ask(
                task("t", json!({"cstorPool": {"spcName": "a", "rename": "c"}})),
                task("t", json!({"cstorPool": {"spcName": "a"}})),
                "UPDATE",
            ),
            Some((
                422,
                "the spec of a MigrationTask cannot change; delete the task and create a new one",
            )),
        ),
    ];
    for (r, want) in cases {
        let resp = response(cstor_webhooks::validate::review(r, &snapshot(), &config()).await);
        match want {
            None => assert_eq!(resp["allowed"], true, "{resp}"),
            Some((code, message)) => {
                assert_eq!(resp["allowed"], false, "{resp}");
                assert_eq!(resp["status"]["code"], code, "{resp}");
                assert_eq!(resp["status"]["message"], message);
            }
        }
    }
}
