//! The webhook's watch caches against a real apiserver: a BlockDevice created after the cache
//! last heard from the watch is still found (a live read), so a CSPC applied right after its
//! disks is never refused with "not found" (the race CI once hit in cert_rotation).

use std::time::{Duration, Instant};

use cstor_local::components;
use cstor_local::testing;
use cstor_webhooks::facts::{CachedFacts, Facts};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_device_the_cache_has_not_seen_is_read_live() {
    let env = testing::env("facts-cache").await;
    let ns = env.namespace.as_str();
    let (facts, drive) = CachedFacts::new(env.client.clone(), ns, Duration::from_secs(5));
    let driving = tokio::spawn(drive);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !facts.is_ready() {
        assert!(Instant::now() < deadline, "caches never listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Freeze the caches: from here on they hear nothing from the watch.
    driving.abort();
    let _ = driving.await;

    let name = "bd-facts-late";
    let bd = json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"kubernetes.io/hostname": "cstor-node-1"}},
        "spec": {"capacity": {"storage": 1u64 << 30}, "nodeAttributes": {"nodeName": "cstor-node-1"},
                 "path": "/dev/late", "partitioned": "No", "details": {}, "devlinks": []},
        "status": {"claimState": "Unclaimed", "state": "Active"},
    });
    components::apply(&env.client, &[bd]).await.expect("apply");

    let cached = facts.cspc_facts(ns, ns, &[]).await.expect("cached facts");
    assert!(
        !cached.block_devices.contains_key(name),
        "the frozen cache must not know the new device (else this test proves nothing)"
    );
    let asked = facts
        .cspc_facts(ns, ns, &[name])
        .await
        .expect("facts naming the device");
    let found = asked.block_devices.get(name).expect("read live");
    assert_eq!(found.spec.path, "/dev/late");
    assert_eq!(found.spec.capacity.storage, 1u64 << 30);

    // A name that exists nowhere is still missing after the live read (policy then denies it).
    let absent = facts
        .cspc_facts(ns, ns, &["bd-nowhere"])
        .await
        .expect("facts");
    assert!(!absent.block_devices.contains_key("bd-nowhere"));
    assert!(absent.block_devices.contains_key(name));
}

/// A review that arrives while the caches are still listing (the webhook has just started) is
/// answered from live reads, not refused: CI once saw `kubectl apply` of a CSPC denied with
/// "cluster facts are not loaded yet" right after the stack came up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_are_read_live_until_the_caches_have_listed() {
    let env = testing::env("facts-listing").await;
    let ns = env.namespace.as_str();
    let name = "bd-facts-early";
    let bd = json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"kubernetes.io/hostname": "cstor-node-1"}},
        "spec": {"capacity": {"storage": 1u64 << 30}, "nodeAttributes": {"nodeName": "cstor-node-1"},
                 "path": "/dev/early", "partitioned": "No", "details": {}, "devlinks": []},
        "status": {"claimState": "Unclaimed", "state": "Active"},
    });
    components::apply(&env.client, &[bd]).await.expect("apply");
    // The caches are never driven, so they never finish listing.
    let (facts, _drive) = CachedFacts::new(env.client.clone(), ns, Duration::from_secs(5));
    assert!(!facts.is_ready());
    let early = facts
        .cspc_facts(ns, ns, &[])
        .await
        .expect("answered from live reads while listing");
    let found = early
        .block_devices
        .get(name)
        .expect("the device, read live");
    assert_eq!(found.spec.path, "/dev/early");
}
