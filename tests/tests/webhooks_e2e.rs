//! The webhook server as deployed, called by the real kube-apiserver over TLS: deploy/'s
//! configurations (pointed at loopback) and RBAC, the server under its own ServiceAccount's
//! token, facts as real objects. kubectl sees our exact denials, `--dry-run=server` gives the
//! same answer and stores nothing, and the mutating webhook's JSONPatch lands in the stored
//! object (settling kube-rs/kube#1781).

use std::time::Duration;

use cstor_api::cstor_v1::{CStorPoolCluster, CStorVolume, CStorVolumeReplica};
use cstor_local::components::OPERATOR_NAMESPACE;
use cstor_local::{cluster, testing};
use cstor_tests::run;
use kube::Api;
use serde_json::json;

const NS: &str = OPERATOR_NAMESPACE;

struct Ctx {
    env: testing::TestEnv,
}

impl Ctx {
    /// kubectl in the operator namespace, where BlockDevices, pools and volumes live.
    fn kubectl(&self, args: &[&str]) -> cstor_tests::Output {
        let mut c = self.env.control_plane.kubectl();
        c.args(["--namespace", NS]).args(args);
        run(c)
    }

    fn apply(&self, name: &str, doc: serde_json::Value) -> cstor_tests::Output {
        self.apply_with(name, doc, &[])
    }

    /// Applies `doc` as an operator's service account would (system:masters for RBAC, so
    /// the webhook, which looks at the username, is what decides).
    fn apply_as_operator(&self, name: &str, doc: serde_json::Value) -> cstor_tests::Output {
        self.apply_with(
            name,
            doc,
            &[
                &format!("--as=system:serviceaccount:{NS}:cstor-cspc-operator"),
                "--as-group=system:masters",
            ],
        )
    }

    fn apply_with(
        &self,
        name: &str,
        doc: serde_json::Value,
        extra: &[&str],
    ) -> cstor_tests::Output {
        let file = self
            .env
            .control_plane
            .dir()
            .join(format!("e2e-{name}.json"));
        std::fs::write(&file, doc.to_string()).expect("write");
        let file = file.display().to_string();
        let mut args = vec!["apply"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-f", &file]);
        self.kubectl(&args)
    }
}

fn denied(out: &cstor_tests::Output, webhook: &str, msg: &str) {
    assert!(!out.success, "expected a denial: {}", out.stdout);
    let want = format!("admission webhook \"{webhook}\" denied the request: {msg}");
    assert!(
        out.stderr.contains(&want),
        "want {want:?} in {}",
        out.stderr
    );
}

const CSPC_HOOK: &str = "validate.cstor.openebs.io";

fn block_device(name: &str, node: &str, bytes: u64) -> serde_json::Value {
    json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": node}},
        "spec": {"capacity": {"storage": bytes}, "nodeAttributes": {"nodeName": node},
                 "path": format!("/dev/{name}"), "partitioned": "No", "details": {}, "devlinks": []},
        "status": {"claimState": "Unclaimed", "state": "Active"},
    })
}

fn cspc(name: &str, pools: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
        "metadata": {"name": name},
        "spec": {"pools": pools},
    })
}

fn pool(node: &str, kind: &str, groups: &[&[&str]]) -> serde_json::Value {
    let groups: Vec<serde_json::Value> = groups
        .iter()
        .map(|g| json!({"blockDevices": g.iter().map(|b| json!({"blockDeviceName": b})).collect::<Vec<_>>()}))
        .collect();
    json!({"nodeSelector": {"kubernetes.io/hostname": node},
           "dataRaidGroups": groups,
           "poolConfig": {"dataRaidGroupType": kind}})
}

// kubectl runs block a worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apiserver_calls_the_deployed_webhook_over_tls() {
    let cp = testing::control_plane();
    let _server = cstor_tests::webhook::start(
        cp,
        Duration::from_secs(90 * 86_400),
        Duration::from_secs(30),
    );
    let ctx = Ctx {
        env: testing::env("webhook").await,
    };
    cluster::create_nodes(&ctx.env.client, 3)
        .await
        .expect("nodes");
    for i in 1..=7 {
        let out = ctx.apply(
            &format!("bd{i}"),
            block_device(&format!("bd-e2e-{i}"), "cstor-node-1", 1 << 30),
        );
        assert!(out.success, "{}", out.stderr);
    }
    for (name, node, bytes) in [
        ("bd-n2-1", "cstor-node-2", 1u64 << 30),
        ("bd-small", "cstor-node-1", 1024),
    ] {
        let out = ctx.apply(name, block_device(name, node, bytes));
        assert!(out.success, "{}", out.stderr);
    }

    let bad = cspc(
        "bad",
        json!([pool("cstor-node-1", "raid5", &[&["bd-e2e-1"]])]),
    );
    let want = "invalid cspc specification: invalid pool spec: unsupported dataRaidGroupType 'raid5' specified";
    // The apiserver picks up new webhook configurations within about a second.
    let mut last = String::new();
    for _ in 0..50 {
        let out = ctx.apply_with("bad", bad.clone(), &["--dry-run=server"]);
        if !out.success && out.stderr.contains(want) {
            last.clear();
            break;
        }
        last = format!(
            "success={} stdout={} stderr={}",
            out.success, out.stdout, out.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(last.is_empty(), "no denial from our webhook: {last}");
    denied(&ctx.apply("bad", bad), CSPC_HOOK, want);

    let good = cspc(
        "good",
        json!([pool("cstor-node-1", "stripe", &[&["bd-e2e-1"]])]),
    );
    let dry = ctx.apply_with("good", good.clone(), &["--dry-run=server"]);
    assert!(dry.success, "{}", dry.stderr);
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(ctx.env.client.clone(), NS);
    assert!(
        cspcs.get_opt("good").await.expect("get").is_none(),
        "dry run stored the object"
    );
    let out = ctx.apply("good", good);
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

    more_rule_groups_through_kubectl(&ctx).await;
}

/// One rule of every group through kubectl, with the facts as real objects: valid mirror /
/// raidz / raidz2, CVC-1, A.4 (CSPI edits by a user vs the operator, label edits free), CD-3,
/// CU-2e, CU-4a, CU-5b, CU-5g, PVC-7 (and a non-cStor PVC untouched), NS-4.
async fn more_rule_groups_through_kubectl(ctx: &Ctx) {
    for (kind, disks) in [("mirror", 2..=3), ("raidz", 2..=4), ("raidz2", 2..=7)] {
        let names: Vec<String> = disks.map(|i| format!("bd-e2e-{i}")).collect();
        let group: Vec<&str> = names.iter().map(String::as_str).collect();
        let out = ctx.apply(
            kind,
            cspc(
                &format!("pc-{kind}"),
                json!([pool("cstor-node-1", kind, &[&group])]),
            ),
        );
        assert!(out.success, "{kind} CSPC refused: {}", out.stderr);
    }

    // CU-4a: a pool's raid type is fixed.
    let out = ctx.apply(
        "cu4a",
        cspc(
            "pc-mirror",
            json!([pool("cstor-node-1", "stripe", &[&["bd-e2e-2", "bd-e2e-3"]])]),
        ),
    );
    denied(
        &out,
        CSPC_HOOK,
        "invalid cspc specification: raidgroup can't be modified",
    );
    // CU-5b: one disk per raid group per edit.
    let out = ctx.apply(
        "cu5b",
        cspc(
            "pc-raidz",
            json!([pool(
                "cstor-node-1",
                "raidz",
                &[&["bd-e2e-2", "bd-e2e-6", "bd-e2e-7"]]
            )]),
        ),
    );
    denied(
        &out,
        CSPC_HOOK,
        "invalid cspc specification: cannot replace more than one blockdevice in a raid group",
    );
    // CU-5g: the replacement must not be smaller.
    let out = ctx.apply(
        "cu5g",
        cspc(
            "pc-mirror",
            json!([pool("cstor-node-1", "mirror", &[&["bd-e2e-2", "bd-small"]])]),
        ),
    );
    denied(
        &out,
        CSPC_HOOK,
        "invalid cspc specification: error: capacity of replacing block device {bd-small:1024} should be greater than or equal to existing block device {bd-e2e-3:1073741824}",
    );

    // CVC-1.
    let cvc = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeConfig",
        "metadata": {"name": "pvc-e2e"},
        "spec": {"capacity": {"storage": "1Gi"}, "provision": {"capacity": {"storage": "1Gi"}, "replicaCount": 3},
                 "policy": {}},
    });
    let out = ctx.apply("cvc", cvc);
    assert!(out.success, "{}", out.stderr);
    let out = ctx.kubectl(&[
        "patch",
        "cvc",
        "pvc-e2e",
        "--type=merge",
        "-p",
        r#"{"spec":{"provision":{"replicaCount":4}}}"#,
    ]);
    denied(
        &out,
        CSPC_HOOK,
        "cvc pvc-e2e replicaCount got modified from 3 to 4",
    );

    // A CSPI of the CSPC "good" (owned by it, as the operator makes it), and RBAC that lets
    // alice and the cspc-operator's account edit CSPIs, so the webhook (not RBAC) is what
    // decides. No operator runs here: the guard holds without one putting things back.
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(ctx.env.client.clone(), NS);
    let good_uid = cspcs
        .get("good")
        .await
        .expect("cspc good")
        .metadata
        .uid
        .expect("uid");
    let cspi = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
        "metadata": {"name": "good-abcd", "labels": {"openebs.io/cstor-pool-cluster": "good",
                                                     "kubernetes.io/hostname": "cstor-node-1"},
                     "ownerReferences": [{"apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
                                          "name": "good", "uid": good_uid, "controller": true}]},
        "spec": {"hostName": "cstor-node-1", "nodeSelector": {"kubernetes.io/hostname": "cstor-node-1"},
                 "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "bd-e2e-1"}]}],
                 "poolConfig": {"dataRaidGroupType": "stripe"}},
    });
    // Only the operators make CSPIs.
    denied(
        &ctx.apply("cspi-by-admin", cspi.clone()),
        "validate-owned.cstor.openebs.io",
        "CStorPoolInstance objects are made by the operators; create or edit a CStorPoolCluster instead",
    );
    let out = ctx.apply_as_operator("cspi", cspi);
    assert!(out.success, "{}", out.stderr);
    let rbac = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cstor-cspc-operator"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cspi-editor"},
         "rules": [{"apiGroups": ["cstor.openebs.io"], "resources": ["cstorpoolinstances"],
                    "verbs": ["get", "patch", "update", "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "cspi-editors"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cspi-editor"},
         "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
                      {"kind": "ServiceAccount", "name": "cstor-cspc-operator", "namespace": NS}]},
    ]});
    let out = ctx.apply("rbac", rbac);
    assert!(out.success, "{}", out.stderr);
    let spec_edit = r#"{"spec":{"poolConfig":{"compression":"off"}}}"#;
    let out = ctx.kubectl(&[
        "--as=alice",
        "patch",
        "cspi",
        "good-abcd",
        "--type=merge",
        "-p",
        spec_edit,
    ]);
    denied(
        &out,
        "validate-owned.cstor.openebs.io",
        "direct CStorPoolInstance good-abcd spec changes are not allowed; edit CStorPoolCluster good instead",
    );
    let out = ctx.kubectl(&["--as=alice", "label", "cspi", "good-abcd", "team=storage"]);
    assert!(out.success, "a user's own label is free: {}", out.stderr);
    // The labels the operators rely on are not: relabelling to a CSPC that does not exist
    // (which once made a delete look like a cascade) is refused, and so is the delete.
    let out = ctx.kubectl(&[
        "--as=alice",
        "label",
        "--overwrite",
        "cspi",
        "good-abcd",
        "openebs.io/cstor-pool-cluster=ghost",
    ]);
    denied(
        &out,
        "validate-owned.cstor.openebs.io",
        "CStorPoolInstance good-abcd: label openebs.io/cstor-pool-cluster is set by the operators and cannot be changed directly",
    );
    let out = ctx.kubectl(&[
        "--as=alice",
        "patch",
        "cspi",
        "good-abcd",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#,
    ]);
    denied(
        &out,
        "validate-owned.cstor.openebs.io",
        "CStorPoolInstance good-abcd: ownerReferences is set by the operators and cannot be changed directly",
    );
    let out = ctx.kubectl(&["--as=alice", "delete", "cspi", "good-abcd", "--wait=false"]);
    denied(
        &out,
        "validate-owned.cstor.openebs.io",
        "direct deletion of CStorPoolInstance good-abcd is not allowed; remove its pool from CStorPoolCluster good or delete that CStorPoolCluster instead",
    );
    let operator = format!("--as=system:serviceaccount:{NS}:cstor-cspc-operator");
    let out = ctx.kubectl(&[
        &operator,
        "patch",
        "cspi",
        "good-abcd",
        "--type=merge",
        "-p",
        spec_edit,
    ]);
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
    denied(
        &ctx.apply("cvr-by-admin", cvr.clone()),
        "validate-owned.cstor.openebs.io",
        "CStorVolumeReplica objects are made by the operators; create a CStorVolumeConfig (or a PersistentVolumeClaim of the cStor CSI driver) instead",
    );
    assert!(ctx.apply_as_operator("cvr", cvr).success);
    let out = ctx.kubectl(&["delete", "cspc", "good", "--wait=false"]);
    denied(
        &out,
        CSPC_HOOK,
        "invalid cspc good deletion: volume still exists on pool good-abcd",
    );

    // CU-2e: removing a pool whose CSPI holds a replica.
    let two = |pools| cspc("two", pools);
    let out = ctx.apply(
        "two",
        two(json!([
            pool("cstor-node-1", "stripe", &[&["bd-e2e-5"]]),
            pool("cstor-node-2", "stripe", &[&["bd-n2-1"]])
        ])),
    );
    assert!(out.success, "{}", out.stderr);
    let cspi2 = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
        "metadata": {"name": "two-n2", "labels": {"openebs.io/cstor-pool-cluster": "two",
                                                  "kubernetes.io/hostname": "cstor-node-2"}},
        "spec": {"hostName": "cstor-node-2", "nodeSelector": {"kubernetes.io/hostname": "cstor-node-2"},
                 "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "bd-n2-1"}]}],
                 "poolConfig": {"dataRaidGroupType": "stripe"}},
    });
    assert!(ctx.apply_as_operator("cspi2", cspi2).success);
    let cvr2 = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": "pvc-e2e-two-n2", "labels": {"cstorpoolinstance.openebs.io/name": "two-n2"}},
        "spec": {},
    });
    assert!(ctx.apply_as_operator("cvr2", cvr2).success);
    let out = ctx.apply(
        "two-less",
        two(json!([pool("cstor-node-1", "stripe", &[&["bd-e2e-5"]])])),
    );
    denied(
        &out,
        CSPC_HOOK,
        "invalid cspc specification: volume still exists on pool two-n2",
    );

    // PVC-7: a cStor claim whose volume has a clone; a claim of another provisioner is not ours.
    let pvc = |name: &str, provisioner: &str| {
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name,
                         "annotations": {"volume.kubernetes.io/storage-provisioner": provisioner}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                     "volumeName": format!("pv-{name}")},
        })
    };
    assert!(
        ctx.apply("pvc-data", pvc("data", "cstor.csi.openebs.io"))
            .success
    );
    assert!(
        ctx.apply("pvc-other", pvc("other", "example.com/other"))
            .success
    );
    let clone = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
        "metadata": {"name": "pv-clone-1", "labels": {"openebs.io/source-volume": "pv-data"}},
        "spec": {},
    });
    let out = ctx.apply_as_operator("clone", clone);
    assert!(out.success, "{}", out.stderr);
    let out = ctx.kubectl(&["delete", "pvc", "data", "--wait=false"]);
    denied(
        &out,
        "validate-pvc.cstor.openebs.io",
        "pvc \"data\" has '1' cloned volume(s)",
    );
    let out = ctx.kubectl(&["delete", "pvc", "other", "--wait=false"]);
    assert!(
        out.success,
        "a claim of another provisioner is not guarded: {}",
        out.stderr
    );

    // A replica owned by a live CStorVolume: a user's delete is refused (the owner is read by
    // its UID, live); once the volume is deleted, the garbage collector's cascade goes through.
    let cvs: Api<CStorVolume> = Api::namespaced(ctx.env.client.clone(), NS);
    let cv_uid = cvs
        .get("pv-clone-1")
        .await
        .expect("cv")
        .metadata
        .uid
        .expect("uid");
    let owned_cvr = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": "pv-clone-1-r1", "labels": {"openebs.io/persistent-volume": "pv-clone-1"},
                     "ownerReferences": [{"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
                                          "name": "pv-clone-1", "uid": cv_uid, "controller": true}]},
        "spec": {},
    });
    assert!(ctx.apply_as_operator("owned-cvr", owned_cvr).success);
    let out = ctx.kubectl(&["delete", "cvr", "pv-clone-1-r1", "--wait=false"]);
    denied(
        &out,
        "validate-owned.cstor.openebs.io",
        "direct deletion of CStorVolumeReplica pv-clone-1-r1 is not allowed; scale the volume down in CStorVolumeConfig pv-clone-1 (spec.policy.replicaPoolInfo) instead",
    );
    let out = ctx.kubectl(&[
        &format!("--as=system:serviceaccount:{NS}:cstor-cvc-operator"),
        "--as-group=system:masters",
        "delete",
        "cstorvolume",
        "pv-clone-1",
        "--wait=false",
    ]);
    assert!(
        out.success,
        "the operator deletes the volume: {}",
        out.stderr
    );
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(ctx.env.client.clone(), NS);
    let mut gone = false;
    for _ in 0..200 {
        if cvrs
            .get_opt("pv-clone-1-r1")
            .await
            .expect("get cvr")
            .is_none()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        gone,
        "the cascade removed the replica of the deleted volume"
    );

    // NS-4: the operator namespace is not deleted while it holds pools and volumes.
    let out = ctx.kubectl(&["delete", "namespace", NS, "--dry-run=server"]);
    denied(
        &out,
        "validate-namespace.cstor.openebs.io",
        "namespace openebs runs the cStor operators and still holds 5 CStorPoolCluster(s) and 1 CStorVolumeConfig(s); delete them first, since deleting the namespace would destroy their pools and volumes",
    );
}
