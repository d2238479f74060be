//! CRD conversion through the real apiserver: a v1alpha1 manifest applied with kubectl (which
//! prints the deprecation warning), read back at v1 and at v1alpha1, a watch at v1alpha1 that
//! sees an update made at v1, and a 1.x pool using what v1 cannot run denied at admission.

use std::time::Duration;

use cstor_api::cstor_v1alpha1 as alpha;
use cstor_local::components::OPERATOR_NAMESPACE;
use cstor_local::{cluster, testing};
use futures::StreamExt;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

const NS: &str = OPERATOR_NAMESPACE;

fn kubectl(env: &testing::TestEnv, args: &[&str]) -> cstor_tests::Output {
    let mut c = env.control_plane.kubectl();
    c.args(["--namespace", NS]).args(args);
    cstor_tests::run(c)
}

fn apply(env: &testing::TestEnv, name: &str, doc: &Value) -> cstor_tests::Output {
    let file = env.control_plane.dir().join(format!("conv-{name}.json"));
    std::fs::write(&file, doc.to_string()).expect("write");
    kubectl(env, &["apply", "-f", &file.display().to_string()])
}

fn alpha_cspc(name: &str, groups: Value) -> Value {
    json!({
        "apiVersion": "cstor.openebs.io/v1alpha1", "kind": "CStorPoolCluster",
        "metadata": {"name": name},
        "spec": {"pools": [{"nodeSelector": {"kubernetes.io/hostname": "cstor-node-1"},
                            "raidGroups": groups,
                            "poolConfig": {"defaultRaidGroupType": "mirror", "compression": "off"}}]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v1alpha1_manifests_work_through_conversion() {
    let cp = testing::control_plane();
    let _server = cstor_tests::webhook::start(
        cp,
        Duration::from_secs(90 * 86_400),
        Duration::from_secs(30),
    );
    let env = testing::env("conversion").await;
    cluster::create_nodes(&env.client, 1).await.expect("node");
    for i in 1..=4 {
        let bd = json!({
            "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
            "metadata": {"name": format!("bd-conv-{i}"), "labels": {"kubernetes.io/hostname": "cstor-node-1"}},
            "spec": {"capacity": {"storage": 1u64 << 30}, "nodeAttributes": {"nodeName": "cstor-node-1"},
                     "path": format!("/dev/conv{i}"), "partitioned": "No", "details": {}, "devlinks": []},
            "status": {"claimState": "Unclaimed", "state": "Active"},
        });
        let out = apply(&env, &format!("bd{i}"), &bd);
        assert!(out.success, "{}", out.stderr);
    }

    let manifest = alpha_cspc(
        "legacy",
        json!([{"type": "mirror", "blockDevices": [{"blockDeviceName": "bd-conv-1"}, {"blockDeviceName": "bd-conv-2"}]}]),
    );
    let out = apply(&env, "legacy", &manifest);
    assert!(out.success, "v1alpha1 apply: {}", out.stderr);
    assert!(
        out.stderr.contains(
            "Warning: cstor.openebs.io/v1alpha1 CStorPoolCluster is deprecated; use cstor.openebs.io/v1"
        ),
        "deprecation warning: {}",
        out.stderr
    );

    let get = |version: &str| -> Value {
        let out = kubectl(
            &env,
            &[
                "get",
                &format!("cstorpoolclusters.{version}.cstor.openebs.io"),
                "legacy",
                "-o",
                "json",
            ],
        );
        assert!(out.success, "get at {version}: {}", out.stderr);
        serde_json::from_str(&out.stdout).expect("json")
    };
    let at_v1 = get("v1");
    assert_eq!(at_v1["apiVersion"], "cstor.openebs.io/v1");
    assert_eq!(
        at_v1["spec"]["pools"][0]["dataRaidGroups"][0]["blockDevices"][1]["blockDeviceName"],
        "bd-conv-2"
    );
    assert_eq!(
        at_v1["spec"]["pools"][0]["poolConfig"]["dataRaidGroupType"],
        "mirror"
    );
    // The mutating webhook's defaults, made at v1, show at both versions.
    assert_eq!(
        at_v1["spec"]["pools"][0]["poolConfig"]["roThresholdLimit"],
        85
    );
    let at_alpha = get("v1alpha1");
    assert_eq!(at_alpha["apiVersion"], "cstor.openebs.io/v1alpha1");
    assert_eq!(
        at_alpha["spec"]["pools"][0]["raidGroups"][0]["type"],
        "mirror"
    );
    assert_eq!(
        at_alpha["spec"]["pools"][0]["poolConfig"]["compression"],
        "off"
    );
    assert!(at_alpha["spec"]["pools"][0].get("dataRaidGroups").is_none());

    // A watch at v1alpha1 sees an update made at v1.
    let old_api: Api<alpha::CStorPoolCluster> = Api::namespaced(env.client.clone(), NS);
    let mut events = watcher(
        old_api,
        watcher::Config::default().fields("metadata.name=legacy"),
    )
    .applied_objects()
    .boxed();
    let first = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("initial watch event")
        .expect("stream")
        .expect("object");
    assert_eq!(first.spec.pools[0].pool_config.compression, "off");
    let v1_api: Api<cstor_api::cstor_v1::CStorPoolCluster> =
        Api::namespaced(env.client.clone(), NS);
    v1_api
        .patch(
            "legacy",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "replace", "path": "/spec/pools/0/poolConfig/compression", "value": "lz4"}
                ]))
                .expect("patch"),
            ),
        )
        .await
        .expect("update at v1");
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = events.next().await {
            if let Ok(obj) = ev
                && obj.spec.pools[0].pool_config.compression == "lz4"
            {
                return obj;
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("the v1alpha1 watch sees the v1 update");
    assert_eq!(seen.spec.pools[0].raid_groups[0].type_, "mirror");

    // CSPIs are served at v1alpha1 too (1.x tooling reads pool instances); the operator writes
    // them at v1 under its own account.
    let cspi = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
        "metadata": {"name": "legacy-x1", "labels": {"openebs.io/cstor-pool-cluster": "legacy"}},
        "spec": {"hostName": "cstor-node-1", "nodeSelector": {"kubernetes.io/hostname": "cstor-node-1"},
                 "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "bd-conv-1"}, {"blockDeviceName": "bd-conv-2"}]}],
                 "poolConfig": {"dataRaidGroupType": "mirror"}},
    });
    let file = env.control_plane.dir().join("conv-cspi.json");
    std::fs::write(&file, cspi.to_string()).expect("write");
    let out = kubectl(
        &env,
        &[
            "apply",
            &format!("--as=system:serviceaccount:{NS}:cstor-cspc-operator"),
            "--as-group=system:masters",
            "-f",
            &file.display().to_string(),
        ],
    );
    assert!(out.success, "{}", out.stderr);
    let out = kubectl(
        &env,
        &[
            "get",
            "cstorpoolinstances.v1alpha1.cstor.openebs.io",
            "legacy-x1",
            "-o",
            "json",
        ],
    );
    assert!(out.success, "{}", out.stderr);
    let old_cspi: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(old_cspi["apiVersion"], "cstor.openebs.io/v1alpha1");
    assert_eq!(old_cspi["spec"]["hostName"], "cstor-node-1");
    assert_eq!(old_cspi["spec"]["raidGroup"][0]["type"], "mirror");
    assert_eq!(
        old_cspi["spec"]["poolConfig"]["defaultRaidGroupType"],
        "mirror"
    );

    // What v1 pools cannot run is denied at admission, after conversion.
    let spare = alpha_cspc(
        "spare",
        json!([{"type": "mirror", "blockDevices": [{"blockDeviceName": "bd-conv-3"}, {"blockDeviceName": "bd-conv-4"}]},
               {"isSpare": true, "blockDevices": [{"blockDeviceName": "bd-conv-1"}]}]),
    );
    let out = apply(&env, "spare", &spare);
    assert!(!out.success, "spare pool admitted: {}", out.stdout);
    assert!(
        out.stderr.contains(
            "admission webhook \"validate.cstor.openebs.io\" denied the request: pool on node cstor-node-1 uses spare raid groups, which cStor v1 pools do not support"
        ),
        "{}",
        out.stderr
    );
}
