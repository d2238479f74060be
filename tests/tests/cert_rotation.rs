//! Certificate rotation under load: serving certificates of a 2-minute lifetime are renewed
//! with a third left (every 80 s); admission through the real apiserver keeps answering with
//! zero failed calls across 3 rotations.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_certs::secret::annotations;
use cstor_local::components::OPERATOR_NAMESPACE;
use cstor_local::{cluster, testing};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

fn cspc(kind: &str) -> CStorPoolCluster {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
        "metadata": {"name": format!("rot-{kind}")},
        "spec": {"pools": [{"nodeSelector": {"kubernetes.io/hostname": "cstor-node-1"},
                            "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "bd-rot-1"}]}],
                            "poolConfig": {"dataRaidGroupType": kind}}]},
    }))
    .expect("cspc")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admission_survives_three_rotations_with_zero_failed_calls() {
    let cp = testing::control_plane();
    let _server =
        cstor_tests::webhook::start(cp, Duration::from_secs(120), Duration::from_secs(30));
    let env = testing::env("rotation").await;
    cluster::create_nodes(&env.client, 1).await.expect("node");
    let bd = serde_json::json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
        "metadata": {"name": "bd-rot-1", "namespace": OPERATOR_NAMESPACE,
                     "labels": {"kubernetes.io/hostname": "cstor-node-1"}},
        "spec": {"capacity": {"storage": 1u64 << 30}, "nodeAttributes": {"nodeName": "cstor-node-1"},
                 "path": "/dev/rot1", "partitioned": "No", "details": {}, "devlinks": []},
        "status": {"claimState": "Unclaimed", "state": "Active"},
    });
    cstor_local::components::apply(&env.client, &[bd])
        .await
        .expect("block device");

    let cspcs: Api<CStorPoolCluster> = Api::namespaced(env.client.clone(), OPERATOR_NAMESPACE);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let want_denial = "unsupported dataRaidGroupType 'raid5' specified";
    // Wait for the apiserver to call us (configuration pickup), and check the valid one passes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match cspcs.create(&dry, &cspc("raid5")).await {
            Err(kube::Error::Api(s)) if s.message.contains(want_denial) => {
                cspcs
                    .create(&dry, &cspc("stripe"))
                    .await
                    .expect("a valid CSPC is admitted");
                break;
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "webhook never answered: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    let calls = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (calls, failures, stop, cspcs) =
            (calls.clone(), failures.clone(), stop.clone(), cspcs.clone());
        tokio::spawn(async move {
            let mut first_failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // An admitted create (dry run: nothing stored) and a denied one, alternately.
                let ok = cspcs.create(&dry, &cspc("stripe")).await;
                calls.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                    first_failures.push(format!("admit: {e}"));
                }
                let denied = cspcs.create(&dry, &cspc("raid5")).await;
                calls.fetch_add(1, Ordering::Relaxed);
                match denied {
                    Err(kube::Error::Api(s)) if s.message.contains(want_denial) => {}
                    other => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        first_failures.push(format!("deny: {other:?}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            first_failures.truncate(5);
            first_failures
        })
    };

    // Rotations are read from the Secret: each new serving cert has a new not-after.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), OPERATOR_NAMESPACE);
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(330);
    while seen.len() < 4 && Instant::now() < deadline {
        if let Some(s) = secrets
            .get_opt("openebs-cstor-admission-secret")
            .await
            .expect("read secret")
            && let Some(t) = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(annotations::NOT_AFTER))
        {
            seen.insert(t.clone());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // A little load after the last rotation, so calls on the newest certificate count too.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let first_failures = load.await.expect("load task");
    let calls = calls.load(Ordering::Relaxed);
    let failures = failures.load(Ordering::Relaxed);
    eprintln!(
        "rotation: {} certificates seen, {calls} admission calls, {failures} failed",
        seen.len()
    );
    assert!(
        seen.len() >= 4,
        "expected the first certificate and 3 rotations, saw {seen:?}"
    );
    assert!(
        calls > 500,
        "too little load to prove anything: {calls} calls"
    );
    assert_eq!(failures, 0, "failed calls: {first_failures:?}");
}
