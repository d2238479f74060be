//! The webhook server called by the real kube-apiserver over TLS (`clientConfig.url`, the local
//! mode): kubectl sees our exact denial, `--dry-run=server` gives the same answer, and the
//! mutating webhook's JSONPatch lands in the stored object (settling kube-rs/kube#1781).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_local::{cluster, testing};
use cstor_server::tls::CertStore;
use cstor_server::{AppState, Bound, Limits, router};
use cstor_tests::run;
use cstor_webhooks::facts::KubeFacts;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn webhook(name: &str, url: &str, ca_b64_pem: &str, ns: &str) -> serde_json::Value {
    json!({
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_b64_pem},
        "rules": [{"apiGroups": ["cstor.openebs.io"], "apiVersions": ["v1"],
                   "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["cstorpoolclusters"]}],
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 10,
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
    })
}

/// Standard base64 of `bytes` (the caBundle field is base64 on the wire).
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// kubectl runs block a worker; the server needs another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apiserver_calls_our_webhooks_over_tls() {
    let env = testing::env("webhook").await;
    let ns = env.namespace.clone();
    cluster::create_nodes(&env.client, 1).await.expect("node");
    let bd = json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
        "metadata": {"name": "bd-e2e-1", "labels": {"kubernetes.io/hostname": "cstor-node-1"}},
        "spec": {"capacity": {"storage": 1073741824u64}, "nodeAttributes": {"nodeName": "cstor-node-1"},
                 "path": "/d/1", "partitioned": "No", "details": {}, "devlinks": []},
        "status": {"claimState": "Unclaimed", "state": "Active"},
    });
    let bd_file = env.control_plane.dir().join(format!("{ns}-bd.json"));
    std::fs::write(&bd_file, bd.to_string()).expect("write");
    let out = run({
        let mut c = env.kubectl();
        c.arg("apply").arg("-f").arg(&bd_file);
        c
    });
    assert!(out.success, "{}", out.stderr);

    // Server on loopback with a certificate for 127.0.0.1, facts read live as admin.
    let now = SystemTime::now();
    let ca = cstor_certs::new_ca(now).expect("ca");
    let serving = cstor_certs::issue_serving(
        &ca,
        &["localhost".into()],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        now,
        Duration::from_secs(3600),
    )
    .expect("serving");
    let certs = Arc::new(CertStore::default());
    certs
        .load(&serving.cert_pem, &serving.key_pem, serving.not_after)
        .expect("load");
    let config = cstor_webhooks::Config {
        openebs_namespace: ns.clone(),
        operator_accounts: cstor_policy::owned::OperatorAccounts(vec![format!(
            "system:serviceaccount:{ns}:cstor-operator"
        )]),
    };
    let state = Arc::new(AppState::new(
        KubeFacts::new(env.client.clone(), Duration::from_secs(3)),
        config,
        certs.clone(),
        Limits::default(),
    ));
    state.facts_ready.store(true, Ordering::Relaxed);
    let bound = Bound::bind("127.0.0.1:0".parse().expect("addr"), certs)
        .await
        .expect("bind");
    let port = bound.local_addr().expect("addr").port();
    tokio::spawn(bound.serve(
        router(state),
        std::future::pending(),
        Duration::from_secs(1),
    ));

    let ca_bundle = base64(ca.cert_pem.as_bytes());
    let pp = PatchParams::apply("cstor-e2e").force();
    let vwc: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    let mwc: Api<MutatingWebhookConfiguration> = Api::all(env.client.clone());
    let vname = format!("validate-{ns}");
    let mname = format!("mutate-{ns}");
    let mut validating = webhook(
        "validate.cstor.openebs.io",
        &format!("https://127.0.0.1:{port}/validate"),
        &ca_bundle,
        &ns,
    );
    validating["rules"] = json!([
        {"apiGroups": ["cstor.openebs.io"], "apiVersions": ["v1"],
         "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["cstorpoolclusters"]},
        {"apiGroups": ["cstor.openebs.io"], "apiVersions": ["v1"], "operations": ["UPDATE", "DELETE"],
         "resources": ["cstorpoolinstances", "cstorvolumereplicas", "cstorvolumes"]},
        {"apiGroups": ["cstor.openebs.io"], "apiVersions": ["v1"], "operations": ["UPDATE"],
         "resources": ["cstorvolumeconfigs"]},
    ]);
    vwc.patch(&vname, &pp, &Patch::Apply(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": vname},
        "webhooks": [validating],
    }))).await.expect("register validating webhook");
    let mut mutating = webhook(
        "mutate.cstor.openebs.io",
        &format!("https://127.0.0.1:{port}/mutate"),
        &ca_bundle,
        &ns,
    );
    mutating["rules"][0]["operations"] = json!(["CREATE", "UPDATE"]);
    mutating["reinvocationPolicy"] = json!("Never");
    mwc.patch(
        &mname,
        &pp,
        &Patch::Apply(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": mname},
            "webhooks": [mutating],
        })),
    )
    .await
    .expect("register mutating webhook");

    let cspc = |name: &str, kind: &str| {
        json!({
            "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
            "metadata": {"name": name},
            "spec": {"pools": [{"nodeSelector": {"kubernetes.io/hostname": "cstor-node-1"},
                                "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "bd-e2e-1"}]}],
                                "poolConfig": {"dataRaidGroupType": kind}}]},
        })
    };
    let bad = env.control_plane.dir().join(format!("{ns}-bad.json"));
    std::fs::write(&bad, cspc("bad", "raid5").to_string()).expect("write");
    let want = "admission webhook \"validate.cstor.openebs.io\" denied the request: invalid cspc specification: invalid pool spec: unsupported dataRaidGroupType 'raid5' specified";
    // The apiserver picks up new webhook configurations within about a second.
    let mut last = String::new();
    for _ in 0..25 {
        let out = run({
            let mut c = env.kubectl();
            c.arg("apply").arg("-f").arg(&bad);
            c
        });
        if !out.success && out.stderr.contains(want) {
            last.clear();
            break;
        }
        last = format!(
            "success={} stdout={} stderr={}",
            out.success, out.stdout, out.stderr
        );
        let _ = run({
            let mut c = env.kubectl();
            c.args(["delete", "cspc", "bad", "--ignore-not-found"]);
            c
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(last.is_empty(), "no denial from our webhook: {last}");
    let dry = run({
        let mut c = env.kubectl();
        c.arg("apply").arg("--dry-run=server").arg("-f").arg(&bad);
        c
    });
    assert!(
        !dry.success && dry.stderr.contains(want),
        "dry run: {}",
        dry.stderr
    );

    let good = env.control_plane.dir().join(format!("{ns}-good.json"));
    std::fs::write(&good, cspc("good", "stripe").to_string()).expect("write");
    let dry = run({
        let mut c = env.kubectl();
        c.arg("apply").arg("--dry-run=server").arg("-f").arg(&good);
        c
    });
    assert!(dry.success, "{}", dry.stderr);
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(env.client.clone(), &ns);
    assert!(
        cspcs.get_opt("good").await.expect("get").is_none(),
        "dry run stored the object"
    );
    let out = run({
        let mut c = env.kubectl();
        c.arg("apply").arg("-f").arg(&good);
        c
    });
    assert!(out.success, "{}", out.stderr);
    let stored = cspcs.get("good").await.expect("stored");
    let config = stored.spec.pools[0]
        .pool_config
        .clone()
        .expect("poolConfig");
    assert_eq!(
        (config.compression.as_str(), config.ro_threshold_limit),
        ("lz4", Some(85)),
        "mutating defaults"
    );

    more_rule_groups_through_kubectl(&env).await;
}

fn kubectl(env: &testing::TestEnv, args: &[&str]) -> cstor_tests::Output {
    let mut c = env.kubectl();
    c.args(args);
    run(c)
}

fn apply_json(env: &testing::TestEnv, name: &str, doc: serde_json::Value) -> cstor_tests::Output {
    let file = env
        .control_plane
        .dir()
        .join(format!("{}-{name}.json", env.namespace));
    std::fs::write(&file, doc.to_string()).expect("write");
    let mut c = env.kubectl();
    c.arg("apply").arg("-f").arg(&file);
    run(c)
}

/// CVC-1, A.4 (CSPI edits by user vs operator, status/label edits free) and CD-3, each with our
/// exact message in kubectl's output.
async fn more_rule_groups_through_kubectl(env: &testing::TestEnv) {
    let ns = env.namespace.as_str();
    let denied = |out: &cstor_tests::Output, msg: &str| {
        assert!(!out.success, "expected a denial: {}", out.stdout);
        let want = format!("denied the request: {msg}");
        assert!(
            out.stderr.contains(&want),
            "want {want:?} in {}",
            out.stderr
        );
    };
    // Valid mirror, raidz and raidz2 pools are admitted (stripe is admitted above).
    for i in 2..=7 {
        let bd = json!({
            "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
            "metadata": {"name": format!("bd-e2e-{i}"), "labels": {"kubernetes.io/hostname": "cstor-node-1"}},
            "spec": {"capacity": {"storage": 1073741824u64}, "nodeAttributes": {"nodeName": "cstor-node-1"},
                     "path": format!("/d/{i}"), "partitioned": "No", "details": {}, "devlinks": []},
            "status": {"claimState": "Unclaimed", "state": "Active"},
        });
        assert!(apply_json(env, &format!("bd{i}"), bd).success);
    }
    for (kind, disks) in [("mirror", 2..=3), ("raidz", 2..=4), ("raidz2", 2..=7)] {
        let bds: Vec<serde_json::Value> = disks
            .map(|i| json!({"blockDeviceName": format!("bd-e2e-{i}")}))
            .collect();
        let pool = json!({
            "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
            "metadata": {"name": format!("pc-{kind}")},
            "spec": {"pools": [{"nodeSelector": {"kubernetes.io/hostname": "cstor-node-1"},
                                "dataRaidGroups": [{"blockDevices": bds}],
                                "poolConfig": {"dataRaidGroupType": kind}}]},
        });
        let out = apply_json(env, kind, pool);
        assert!(out.success, "{kind} CSPC refused: {}", out.stderr);
    }

    // CVC-1.
    let cvc = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeConfig",
        "metadata": {"name": "pvc-e2e"},
        "spec": {"capacity": {"storage": "1Gi"}, "provision": {"capacity": {"storage": "1Gi"}, "replicaCount": 3},
                 "policy": {}},
    });
    let out = apply_json(env, "cvc", cvc);
    assert!(out.success, "{}", out.stderr);
    let out = kubectl(
        env,
        &[
            "patch",
            "cvc",
            "pvc-e2e",
            "--type=merge",
            "-p",
            r#"{"spec":{"provision":{"replicaCount":4}}}"#,
        ],
    );
    denied(&out, "cvc pvc-e2e replicaCount got modified from 3 to 4");

    // A CSPI of the CSPC "good", and the RBAC that lets alice and the operator edit CSPIs, so the
    // webhook (not RBAC) is what decides.
    let cspi = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
        "metadata": {"name": "good-abcd", "labels": {"openebs.io/cstor-pool-cluster": "good"}},
        "spec": {"hostName": "cstor-node-1", "nodeSelector": {"kubernetes.io/hostname": "cstor-node-1"},
                 "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "bd-e2e-1"}]}],
                 "poolConfig": {"dataRaidGroupType": "stripe"}},
    });
    assert!(apply_json(env, "cspi", cspi).success);
    let rbac = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cspi-editor"},
         "rules": [{"apiGroups": ["cstor.openebs.io"], "resources": ["cstorpoolinstances"],
                    "verbs": ["get", "patch", "update", "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "cspi-editors"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cspi-editor"},
         "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
                      {"kind": "ServiceAccount", "name": "cstor-operator", "namespace": ns}]},
    ]});
    let out = apply_json(env, "rbac", rbac);
    assert!(out.success, "{}", out.stderr);
    let spec_edit = r#"{"spec":{"poolConfig":{"compression":"off"}}}"#;
    let out = kubectl(
        env,
        &[
            "--as=alice",
            "patch",
            "cspi",
            "good-abcd",
            "--type=merge",
            "-p",
            spec_edit,
        ],
    );
    denied(
        &out,
        "direct CStorPoolInstance good-abcd spec changes are not allowed; edit CStorPoolCluster good instead",
    );
    let out = kubectl(
        env,
        &["--as=alice", "label", "cspi", "good-abcd", "team=storage"],
    );
    assert!(out.success, "a label edit is free: {}", out.stderr);
    let operator = format!("--as=system:serviceaccount:{ns}:cstor-operator");
    let out = kubectl(
        env,
        &[
            &operator,
            "patch",
            "cspi",
            "good-abcd",
            "--type=merge",
            "-p",
            spec_edit,
        ],
    );
    assert!(
        out.success,
        "the operator may edit the spec: {}",
        out.stderr
    );

    // CD-3: a replica on the CSPC's pool blocks deleting the CSPC.
    let cvr = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": "pvc-e2e-good-abcd", "labels": {"cstorpoolinstance.openebs.io/name": "good-abcd"}},
        "spec": {},
    });
    assert!(apply_json(env, "cvr", cvr).success);
    let out = kubectl(env, &["delete", "cspc", "good", "--wait=false"]);
    denied(
        &out,
        "invalid cspc good deletion: volume still exists on pool good-abcd",
    );
}
