//! Volumes end to end on the real apiserver, zfs-fuse and tgt, checked with real iSCSI clients
//! (libiscsi's iscsi-inq / iscsi-readcapacity16, qemu-io with `iscsi://` URLs): a 3-replica
//! volume becomes Bound and Healthy and replicates every write; resize; scale 3 → 4 → 3 with a
//! rebuild; deletion removes everything.

mod common;

use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use common::volumes::*;
use common::*;
use cstor_api::common::ConditionStatus;
use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::cstor_v1::cvc::CStorVolumeConfig;
use cstor_api::cstor_v1::cvr::CStorVolumeReplica;
use cstor_api::keys::{annotations, labels};
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

static SERIAL: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

const CSPC: &str = "vols";

/// One stripe pool per node (disk 1), shared by the tests of this binary.
async fn pools(client: &kube::Client) {
    volume_stack();
    let cspcs: Api<cstor_api::cstor_v1::cspc::CStorPoolCluster> =
        Api::namespaced(client.clone(), NS);
    if cspcs.get_opt(CSPC).await.expect("get cspc").is_none() {
        let pools = (1..=4).map(|n| pool(n, "stripe", &[&[1]])).collect();
        kubectl_apply(&cspc(CSPC, pools));
    }
    wait_online(client, CSPC, 4).await;
}

const PATTERNS: [&str; 3] = [
    "write -P 0xab 0 1M",
    "write -P 0x5c 7M 3M",
    "write -P 0xe1 100M 2M",
];
const CHECKS: [&str; 3] = [
    "read -P 0xab 0 1M",
    "read -P 0x5c 7M 3M",
    "read -P 0xe1 100M 2M",
];

/// The local node holding a replica (its `cstorpoolinstance.openebs.io/hostname`).
fn node_of(cvr: &CStorVolumeReplica) -> &'static cstor_local::node::LocalNode {
    let host = cvr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::CSPI_HOSTNAME))
        .expect("hostname annotation");
    volume_stack()
        .nodes
        .iter()
        .find(|n| &n.name == host)
        .expect("node")
}

/// sha256 of every replica's lun file, read on its node.
async fn replica_sums(client: &kube::Client, volume: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for cvr in cvrs_of(client, volume).await {
        let path = cvr
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("cstor.openebs.io/replica-lun"))
            .cloned()
            .expect("replica-lun annotation");
        let node = node_of(&cvr);
        let out_sum = node
            .command("sha256sum")
            .arg(&path)
            .output()
            .expect("sha256sum");
        assert!(out_sum.status.success(), "{out_sum:?}");
        let sum = String::from_utf8_lossy(&out_sum.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        out.push((cvr.metadata.name.clone().unwrap_or_default(), sum));
    }
    out
}

async fn assert_replicas_identical(client: &kube::Client, volume: &str, n: usize) {
    let sums = replica_sums(client, volume).await;
    assert_eq!(sums.len(), n, "{sums:?}");
    assert!(
        sums.iter().all(|(_, s)| s == &sums[0].1),
        "replicas differ: {sums:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_replica_volume_serves_iscsi_replicates_resizes_and_is_removed() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    let said = cstor(&[
        "volume",
        "create",
        "vol-a",
        "--size",
        "1Gi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    assert!(said.contains("vol-a"), "{said}");
    wait_healthy(&client, "vol-a", 3).await;

    let inq = client_tool("iscsi-inq", &[&url("vol-a")]);
    assert!(inq.contains("DIRECT_ACCESS"), "{inq}");
    assert_eq!(lun_bytes("vol-a"), 1 << 30);
    qemu_io("vol-a", &PATTERNS);
    qemu_io("vol-a", &CHECKS);
    assert_replicas_identical(&client, "vol-a", 3).await;

    // 1 GiB → 2 GiB, visible to the initiator, data kept.
    let (ok, out) = kubectl(
        &[
            "patch",
            "cvc",
            "vol-a",
            "--type=merge",
            "-p",
            &json!({"spec": {"capacity": {"storage": "2Gi"}}}).to_string(),
        ],
        None,
    );
    assert!(ok, "{out}");
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), NS);
    wait_for("resize to 2Gi", Duration::from_secs(120), || async {
        let cvc = cvcs.get("vol-a").await.map_err(|e| e.to_string())?;
        let status = cvc.status.unwrap_or_default();
        let cap = status.capacity.get("storage").map(|q| q.0.clone());
        let done = status
            .conditions
            .iter()
            .any(|c| c.type_ == "VolumeResizeSuccessful");
        if cap.as_deref() == Some("2Gi") && done && lun_bytes("vol-a") == 2 << 30 {
            Ok(())
        } else {
            Err(format!(
                "capacity {cap:?}, conditions {:?}",
                status.conditions
            ))
        }
    })
    .await;
    qemu_io("vol-a", &CHECKS);
    qemu_io(
        "vol-a",
        &["write -P 0x77 1900M 1M", "read -P 0x77 1900M 1M"],
    );
    assert_replicas_identical(&client, "vol-a", 3).await;

    // Shrinking is refused with a reason (by admission or by the operator), nothing changes.
    let (ok, out) = kubectl(
        &[
            "patch",
            "cvc",
            "vol-a",
            "--type=merge",
            "-p",
            &json!({"spec": {"capacity": {"storage": "1Gi"}}}).to_string(),
        ],
        None,
    );
    if ok {
        wait_for("shrink refused", Duration::from_secs(60), || async {
            let cvc = cvcs.get("vol-a").await.map_err(|e| e.to_string())?;
            let conds = cvc.status.unwrap_or_default().conditions;
            if conds
                .iter()
                .any(|c| c.type_ == "VolumeResizeFailed" && c.reason == "ShrinkNotSupported")
            {
                Ok(())
            } else {
                Err(format!("{conds:?}"))
            }
        })
        .await;
    } else {
        assert!(out.contains("denied"), "{out}");
    }
    assert_eq!(lun_bytes("vol-a"), 2 << 30);

    delete_volume(&client, "vol-a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_3_to_4_rebuilds_the_new_replica_and_4_to_3_removes_one() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    cstor(&[
        "volume",
        "create",
        "vol-s",
        "--size",
        "256Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-s", 3).await;
    qemu_io("vol-s", &PATTERNS[..2]);
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), NS);
    let used: Vec<String> = cvcs
        .get("vol-s")
        .await
        .expect("cvc")
        .status
        .unwrap_or_default()
        .pool_info;
    assert_eq!(used.len(), 3, "{used:?}");
    let all: Vec<String> = cspis_of(&client, CSPC)
        .await
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let extra = all
        .iter()
        .find(|p| !used.contains(p))
        .expect("a fourth pool")
        .clone();
    let info = |pools: &[String]| {
        json!({"spec": {"policy": {"replicaPoolInfo":
            pools.iter().map(|p| json!({"poolName": p})).collect::<Vec<_>>()}}})
        .to_string()
    };
    let mut four = used.clone();
    four.push(extra.clone());
    let (ok, out) = kubectl(
        &["patch", "cvc", "vol-s", "--type=merge", "-p", &info(&four)],
        None,
    );
    assert!(ok, "{out}");
    wait_healthy(&client, "vol-s", 4).await;
    let cv: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    let spec = cv.get("vol-s").await.expect("cv").spec;
    assert_eq!(spec.replication_factor, Some(4));
    assert_eq!(spec.consistency_factor, Some(3));
    qemu_io("vol-s", &CHECKS[..2]);
    assert_replicas_identical(&client, "vol-s", 4).await;

    let three: Vec<String> = four[1..].to_vec();
    let (ok, out) = kubectl(
        &["patch", "cvc", "vol-s", "--type=merge", "-p", &info(&three)],
        None,
    );
    assert!(ok, "{out}");
    wait_for("scale down to 3", Duration::from_secs(120), || async {
        let pools = cvcs
            .get("vol-s")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default()
            .pool_info;
        let cvrs = cvrs_of(&client, "vol-s").await.len();
        if pools.len() == 3 && cvrs == 3 && !pools.contains(&four[0]) {
            Ok(())
        } else {
            Err(format!("poolInfo {pools:?}, {cvrs} cvrs"))
        }
    })
    .await;
    wait_healthy(&client, "vol-s", 3).await;
    qemu_io("vol-s", &CHECKS[..2]);
    assert_replicas_identical(&client, "vol-s", 3).await;
    delete_volume(&client, "vol-s").await;
}

/// A replica's pool goes offline (its node's zfs-fuse is killed, as a pool container crash
/// would): the CSPI turns OFFLINE with PoolLost, the replica Offline and the volume Degraded
/// with the reason, I/O goes on with 2 of 3; once the daemon is back the replica is rebuilt
/// (it missed writes, and the crash lost its unsynced ones) and every replica is identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_pool_goes_offline_degrades_the_volume_and_is_rebuilt_after() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    cstor(&[
        "volume",
        "create",
        "vol-o",
        "--size",
        "256Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-o", 3).await;
    qemu_io("vol-o", &PATTERNS[..2]);

    let victim = cvrs_of(&client, "vol-o")
        .await
        .into_iter()
        .next()
        .expect("a replica");
    let victim_name = victim.metadata.name.clone().unwrap_or_default();
    let victim_id = victim.spec.replica_id.clone();
    let cspi_name = victim
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .get(labels::CSPI_NAME)
        .cloned()
        .expect("cspi label");
    let node = node_of(&victim);
    node.kill_zfs().expect("kill zfs-fuse");

    // Writes go on with quorum (2 of 3) while the pool is gone.
    qemu_io("vol-o", &["write -P 0x3d 40M 4M"]);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(client.clone(), NS);
    let cspis: Api<cstor_api::cstor_v1::cspi::CStorPoolInstance> =
        Api::namespaced(client.clone(), NS);
    wait_for(
        "CSPI OFFLINE, replica Offline, volume Degraded, each with its reason",
        Duration::from_secs(120),
        || async {
            let cv = cvs.get("vol-o").await.map_err(|e| e.to_string())?;
            let st = cv.status.unwrap_or_default();
            let cvr = cvrs.get(&victim_name).await.map_err(|e| e.to_string())?;
            let cvr_st = cvr.status.unwrap_or_default();
            let cspi = cspis.get(&cspi_name).await.map_err(|e| e.to_string())?;
            let lost = condition(&cspi, "PoolLost")
                .is_some_and(|c| c.status == ConditionStatus::True && c.reason == "PoolLost");
            let cspi_st = cspi.status.clone().unwrap_or_default();
            let mode = st
                .replica_statuses
                .iter()
                .find(|r| r.id == victim_id)
                .map(|r| r.mode.clone());
            if st.phase == "Degraded"
                && mode.as_deref() == Some("Degraded")
                && st.message.contains(&format!("{victim_id} Degraded ("))
                && cvr_st.phase == "Offline"
                && cvr_st.message.contains("not imported")
                && cspi_st.phase == "OFFLINE"
                && lost
            {
                Ok(())
            } else {
                Err(format!(
                    "cv {} ({:?}, {mode:?}), cvr {} ({:?}), cspi {} lost={lost}",
                    st.phase, st.message, cvr_st.phase, cvr_st.message, cspi_st.phase
                ))
            }
        },
    )
    .await;
    qemu_io("vol-o", &["write -P 0x4e 60M 1M"]);
    qemu_io(
        "vol-o",
        &[
            CHECKS[0],
            CHECKS[1],
            "read -P 0x3d 40M 4M",
            "read -P 0x4e 60M 1M",
        ],
    );

    node.restart_zfs().expect("restart zfs-fuse");
    wait_healthy(&client, "vol-o", 3).await;
    let cspi = cspis.get(&cspi_name).await.expect("cspi");
    assert_eq!(cspi.status.clone().unwrap_or_default().phase, "ONLINE");
    assert!(
        condition(&cspi, "PoolLost").is_some_and(|c| c.status == ConditionStatus::False),
        "{:?}",
        cspi.status
    );
    qemu_io(
        "vol-o",
        &[
            CHECKS[0],
            CHECKS[1],
            "read -P 0x3d 40M 4M",
            "read -P 0x4e 60M 1M",
        ],
    );
    assert_replicas_identical(&client, "vol-o", 3).await;
    delete_volume(&client, "vol-o").await;
}

fn kill_target(volume: &str) -> usize {
    let pids = volume_stack().pods.pids_of(&format!("{volume}-target"));
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids.len()
}

/// How many `Resync` Events the volume-manager has published for `volume` (repeats counted).
async fn resyncs(client: &kube::Client, volume: &str) -> i32 {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    events
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some("Resync")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(volume)
        })
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}

/// Waits for the restarted volume-manager's resync (one more `Resync` Event than `before`)
/// and a Healthy volume.
async fn wait_resynced(client: &kube::Client, volume: &str, before: i32) {
    wait_for(
        "resync after the restart",
        Duration::from_secs(180),
        || async {
            let now = resyncs(client, volume).await;
            if now > before {
                Ok(())
            } else {
                let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
                let st = cvs
                    .get(volume)
                    .await
                    .map_err(|e| e.to_string())?
                    .status
                    .unwrap_or_default();
                let target = format!("{volume}-target");
                Err(format!(
                    "{now} Resync events; cv {} ({}); target pids {:?}, restarts {}",
                    st.phase,
                    st.message,
                    volume_stack().pods.pids_of(&target),
                    volume_stack().pods.restarts_of(&target)
                ))
            }
        },
    )
    .await;
    wait_healthy(client, volume, 3).await;
}

/// The volume-manager is killed (SIGKILL) as a replica comes back for its rebuild, and again
/// in the middle of a write: each time the runner restarts it, it trusts only what the CV
/// status recorded, rebuilds the rest, resyncs the trusted replicas, and the acknowledged data
/// is intact and identical on all replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_volume_manager_around_a_rebuild_and_mid_write_loses_nothing() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    cstor(&[
        "volume",
        "create",
        "vol-k",
        "--size",
        "256Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-k", 3).await;
    qemu_io("vol-k", &["write -P 0x21 0 96M"]);

    // A replica falls behind: its node's zfs-fuse dies while writes go on.
    let victim = cvrs_of(&client, "vol-k")
        .await
        .into_iter()
        .next()
        .expect("a replica");
    let victim_name = victim.metadata.name.clone().unwrap_or_default();
    let node = node_of(&victim);
    node.kill_zfs().expect("kill zfs-fuse");
    qemu_io("vol-k", &["write -P 0x32 100M 32M"]);
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(client.clone(), NS);
    let phase_of = || async {
        cvrs.get(&victim_name)
            .await
            .map_err(|e| e.to_string())
            .map(|c| c.status.unwrap_or_default().phase)
    };
    wait_for("replica Offline", Duration::from_secs(120), || async {
        match phase_of().await? {
            p if p == "Offline" => Ok(()),
            p => Err(p),
        }
    })
    .await;

    // The pool returns; as the rebuild starts, the volume-manager is killed.
    node.restart_zfs().expect("restart zfs-fuse");
    wait_for(
        "replica back from Offline",
        Duration::from_secs(120),
        || async {
            match phase_of().await? {
                p if p != "Offline" => Ok(()),
                p => Err(p),
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = resyncs(&client, "vol-k").await;
    assert_eq!(kill_target("vol-k"), 1, "one volume-manager runs");
    wait_resynced(&client, "vol-k", before).await;
    qemu_io("vol-k", &["read -P 0x21 0 96M", "read -P 0x32 100M 32M"]);
    assert_replicas_identical(&client, "vol-k", 3).await;

    // Killed in the middle of a write: the write is not acknowledged (qemu-io fails), the
    // acknowledged data stays, and the replicas agree on every byte afterwards.
    let url_k = url("vol-k");
    let writer = std::thread::spawn(move || {
        Command::new("qemu-io")
            .args(["-f", "raw", "-c", "write -P 0x43 140M 64M", &url_k])
            .output()
            .expect("qemu-io")
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = resyncs(&client, "vol-k").await;
    assert_eq!(kill_target("vol-k"), 1, "one volume-manager runs");
    let _ = writer.join();
    wait_resynced(&client, "vol-k", before).await;
    qemu_io("vol-k", &["read -P 0x21 0 96M", "read -P 0x32 100M 32M"]);
    assert_replicas_identical(&client, "vol-k", 3).await;
    delete_volume(&client, "vol-k").await;
}

/// `zfs destroy -r` of a scratch dataset; zfs-fuse calls a just-read one busy for a moment
/// (seen: gone a second later).
fn destroy_clone(node: &cstor_local::node::LocalNode, clone: &str) {
    let mut last = String::new();
    for _ in 0..20 {
        match node.zfs(&["destroy", "-r", clone]) {
            Ok(_) => return,
            Err(e) if e.contains("dataset is busy") => last = e,
            Err(e) => panic!("destroy {clone}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("destroy {clone}: still busy after 5 s: {last}");
}

/// A replica's snapshot as bytes: cloned on its node under a private mountpoint, hashed, and
/// the clone destroyed.
fn snapshot_sum(cvr: &CStorVolumeReplica, dataset: &str, snap: &str, tag: &str) -> String {
    let node = node_of(cvr);
    let pool = dataset.split('/').next().expect("pool");
    let clone = format!("{pool}/chk-{tag}");
    let dir = format!("/tmp/cstor-snapchk-{}-{tag}", std::process::id());
    node.zfs(&[
        "clone",
        "-o",
        &format!("mountpoint={dir}"),
        &format!("{dataset}@{snap}"),
        &clone,
    ])
    .unwrap_or_else(|e| panic!("clone of {dataset}@{snap}: {e}"));
    let out = node
        .command("sha256sum")
        .arg(format!("{dir}/lun"))
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "{out:?}");
    destroy_clone(node, &clone);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Snapshots taken while a logged-in initiator writes every few milliseconds: each one holds
/// the same bytes on every replica (writes are held while the pools snapshot), what was
/// written before it is in it, and a destroy removes it everywhere. The writes never fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_taken_under_writes_are_identical_on_every_replica() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    cstor(&[
        "volume",
        "create",
        "vol-snap",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-snap", 3).await;
    qemu_io("vol-snap", &["write -P 0x6d 40M 2M"]);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sessions = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut cmds = Vec::new();
                for j in 0..40u32 {
                    let (kb, pattern) = (((sessions * 40 + j) % 96) * 256, (j % 250) + 1);
                    cmds.push(format!("write -P {pattern} {kb}k 256k"));
                    cmds.push("sleep 10".to_string());
                }
                let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
                qemu_io("vol-snap", &refs);
                sessions += 1;
            }
            sessions
        })
    };
    let pool = zpool_of(&client, CSPC).await;
    let dataset = format!("{pool}/vol-snap");
    let mut held = Vec::new();
    for k in 1..=4 {
        let snap = format!("s{k}-20261205101010");
        let said = cstor(&["volume", "snapshot", "vol-snap", &snap]);
        let ms: u64 = said
            .split("writes held ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no hold time in {said:?}"));
        held.push(ms);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sessions = writer.join().expect("writer");
    eprintln!("4 snapshots under {sessions} write sessions; writes held (ms): {held:?}");
    assert!(sessions > 0);

    let cvrs = cvrs_of(&client, "vol-snap").await;
    assert_eq!(cvrs.len(), 3);
    for k in 1..=4 {
        let snap = format!("s{k}-20261205101010");
        let sums: Vec<String> = cvrs
            .iter()
            .enumerate()
            .map(|(i, c)| snapshot_sum(c, &dataset, &snap, &format!("{k}-{i}")))
            .collect();
        assert!(
            sums.iter().all(|s| s == &sums[0]),
            "snapshot {snap} differs between replicas: {sums:?}"
        );
    }
    // What was written before the snapshots is in them (read through a clone of the first).
    let node = node_of(&cvrs[0]);
    let dir = format!("/tmp/cstor-snapchk-{}-data", std::process::id());
    node.zfs(&[
        "clone",
        "-o",
        &format!("mountpoint={dir}"),
        &format!("{dataset}@s1-20261205101010"),
        &format!("{pool}/chk-data"),
    ])
    .expect("clone");
    let out = node
        .command("cmp")
        .args(["-n", "2097152", "-i", "41943040:0", &format!("{dir}/lun")])
        .arg("-")
        .stdin(std::process::Stdio::from(
            std::fs::File::open({
                let p = std::env::temp_dir().join(format!("pattern-6d-{}", std::process::id()));
                std::fs::write(&p, vec![0x6du8; 2 << 20]).expect("pattern");
                p
            })
            .expect("open pattern"),
        ))
        .output()
        .expect("cmp");
    assert!(
        out.status.success(),
        "data written before the snapshot is not in it: {out:?}"
    );
    destroy_clone(node, &format!("{pool}/chk-data"));

    // A bad name is refused before anything is asked.
    let out = Command::new(env!("CARGO_BIN_EXE_cstor"))
        .args(["volume", "snapshot", "vol-snap", "a/b"])
        .env(
            "KUBECONFIG",
            cstor_local::testing::control_plane().kubeconfig(),
        )
        .output()
        .expect("cstor");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("snapshot name \"a/b\" has '/'"), "{err}");

    // Destroy: gone from every replica.
    let said = cstor(&[
        "volume",
        "snapshot",
        "vol-snap",
        "s1-20261205101010",
        "--destroy",
    ]);
    assert!(said.contains("destroyed on replicas"), "{said}");
    for c in &cvrs {
        let listed = node_of(c)
            .zfs(&["list", "-H", "-o", "name", "-t", "snapshot"])
            .expect("zfs list");
        assert!(
            !listed.contains(&format!("{dataset}@s1-")),
            "s1 still on {}: {listed}",
            node_of(c).name
        );
        assert!(listed.contains(&format!("{dataset}@s2-")), "{listed}");
    }
    delete_volume(&client, "vol-snap").await;
}

fn snapshots_on_replicas(cvrs: &[CStorVolumeReplica], dataset: &str) -> Vec<String> {
    cvrs.iter()
        .map(|c| {
            node_of(c)
                .zfs(&["list", "-H", "-o", "name", "-t", "snapshot"])
                .expect("zfs list")
                .lines()
                .filter(|l| l.starts_with(&format!("{dataset}@")))
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// The backup REST API as the velero-plugin sees it: discovery by the Service label, the
/// validation messages and codes, a local snapshot, a remote backup's CStorBackup and
/// last-backup record, a GET for a backup that does not exist, the clean-up DELETE, and a
/// remote restore's CStorRestores and status. (Streams come with the pool-manager's backup
/// controller.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_api_answers_the_plugin_as_its_contract_says() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    // Discovery: the Service the plugin lists, API port first.
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), NS);
    let found = services
        .list(&ListParams::default().labels("openebs.io/component-name=cvc-operator-svc"))
        .await
        .expect("services")
        .items;
    assert_eq!(found.len(), 1);
    let port = found[0]
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .map(|p| p.port);
    assert_eq!(port, Some(5757));

    cstor(&[
        "volume",
        "create",
        "vol-bk",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-bk", 3).await;
    qemu_io("vol-bk", &["write -P 0x42 0 1M"]);
    let (ok, out) = kubectl(&["create", "namespace", "app-bk"], None);
    assert!(ok || out.contains("AlreadyExists"), "{out}");
    let cvrs = cvrs_of(&client, "vol-bk").await;
    let dataset = format!("{}/vol-bk", zpool_of(&client, CSPC).await);

    // Validation, in the Go order and words; nothing is snapshotted.
    for (body, code, message) in [
        (backup_body("app-bk", "", "vol-bk", "b1", "127.0.0.1:9001", false), 400,
         "Failed to create backup: missing backup name ".to_string()),
        (backup_body("app-bk", "b1", "vol-bk", "b1", "", false), 400,
         "Failed to create backup 'b1': missing backupIP".to_string()),
        (backup_body("app-bk", "b1", "vol-bk", "b1", "10.0.0.5", false), 400,
         "Failed to create backup 'b1': backupIP '10.0.0.5' is not <ip>:<port>".to_string()),
        (backup_body("app-bk", "b1", "vol-bk", "", "127.0.0.1:9001", false), 400,
         "Failed to create backup 'b1': missing snapName".to_string()),
        (backup_body("app-bk", "b1", "nosuch", "b1", "127.0.0.1:9001", false), 400,
         "Failed to create snapshot 'failed to get CStor volumeIP: CStorVolume nosuch not found'".to_string()),
    ] {
        assert_eq!(plugin_call("POST", "/latest/backups/", Some(&body)), (code, message));
    }
    let (code, said) = plugin_call("POST", "/latest/backups/", Some("{not json"));
    assert_eq!(code, 500, "{said}");
    assert_eq!(
        plugin_call("PUT", "/latest/backups/", Some("{}")),
        (405, "Invalid http method".into())
    );
    assert_eq!(
        snapshots_on_replicas(&cvrs, &dataset),
        vec![String::new(); 3]
    );

    // Local snapshot mode: the snapshot only.
    let body = backup_body("app-bk", "b-local", "vol-bk", "b-local", "", true);
    assert_eq!(
        plugin_call("POST", "/latest/backups/", Some(&body)),
        (200, "\"\"".into())
    );
    for s in snapshots_on_replicas(&cvrs, &dataset) {
        assert_eq!(s, format!("{dataset}@b-local"));
    }

    // A remote (scheduled) backup: its CStorBackup, Pending, and the schedule's record.
    let snap = "sched-20261205101010";
    let body = backup_body("app-bk", "sched", "vol-bk", snap, "127.0.0.1:9", false);
    assert_eq!(
        plugin_call("POST", "/latest/backups/", Some(&body)),
        (200, "\"\"".into())
    );
    let backups: Api<cstor_api::cstor_v1::backup::CStorBackup> =
        Api::namespaced(client.clone(), "app-bk");
    let b = backups
        .get(&format!("{snap}-vol-bk"))
        .await
        .expect("CStorBackup");
    // Pending as created; its pool-manager may have moved it on already (nothing listens on
    // port 9, so it never finishes while this test looks).
    assert!(
        ["Pending", "Init", "InProgress"].contains(&b.status.as_str()),
        "{}",
        b.status
    );
    assert_eq!(b.spec.prev_snap_name, "");
    let l = b.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        l.get("openebs.io/backup").map(String::as_str),
        Some("sched")
    );
    assert_eq!(
        l.get("openebs.io/persistent-volume").map(String::as_str),
        Some("vol-bk")
    );
    assert!(cvrs.iter().any(|c| {
        c.metadata
            .labels
            .as_ref()
            .and_then(|x| x.get("cstorpoolinstance.openebs.io/uid"))
            == l.get("cstorpoolinstance.openebs.io/uid")
    }));
    let records: Api<cstor_api::cstor_v1::backup::CStorCompletedBackup> =
        Api::namespaced(client.clone(), "app-bk");
    let r = records.get("sched-vol-bk").await.expect("record");
    assert_eq!(
        (r.spec.backup_name.as_str(), r.spec.last_snap_name.as_str()),
        ("sched", "")
    );
    for s in snapshots_on_replicas(&cvrs, &dataset) {
        assert!(s.contains(&format!("@{snap}")), "{s}");
    }
    // The same backup again is refused (and no snapshot is taken for it).
    let (code, said) = plugin_call("POST", "/latest/backups/", Some(&body));
    assert_eq!(code, 500, "{said}");
    assert!(
        said.starts_with(&format!("failed to create backup {snap}-vol-bk: ")),
        "{said}"
    );
    // GET: the CR as JSON; one that does not exist reads Failed (the plugin then finishes).
    let (code, said) = plugin_call("GET", "/latest/backups/", Some(&body));
    assert_eq!(code, 200, "{said}");
    let got: serde_json::Value = serde_json::from_str(&said).expect("json");
    assert!(
        ["Pending", "Init", "InProgress"].contains(&got["status"].as_str().unwrap_or_default()),
        "{said}"
    );
    let missing = backup_body(
        "app-bk",
        "sched",
        "vol-bk",
        "sched-20261205111111",
        "127.0.0.1:9",
        false,
    );
    let (code, said) = plugin_call("GET", "/latest/backups/", Some(&missing));
    assert_eq!(code, 200, "{said}");
    let got: serde_json::Value = serde_json::from_str(&said).expect("json");
    assert_eq!(got["status"], "Failed");

    // DELETE: all four values or 405; then the CR, the record (its last is empty) and the
    // snapshot go.
    assert_eq!(
        plugin_call("DELETE", &format!("/latest/backups/{snap}?namespace=app-bk&volume=vol-bk"), None),
        (405, "failed to delete backup: Insufficient info -- required values volume_name, backup_name, namespace, schedule_name".into())
    );
    assert_eq!(
        plugin_call(
            "DELETE",
            &format!("/latest/backups/{snap}?namespace=app-bk&schedule=sched&volume=vol-bk"),
            None
        ),
        (200, "\"\"".into())
    );
    assert!(
        backups
            .get_opt(&format!("{snap}-vol-bk"))
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        records
            .get_opt("sched-vol-bk")
            .await
            .expect("get")
            .is_none()
    );
    for s in snapshots_on_replicas(&cvrs, &dataset) {
        assert_eq!(s, format!("{dataset}@b-local"));
    }

    // A remote restore into a Bound volume: one CStorRestore per replica, Pending; the
    // answer is the volume's iSCSI source.
    let restore = json!({"metadata": {"namespace": NS, "creationTimestamp": null},
        "spec": {"restoreName": "bk1", "volumeName": "vol-bk", "restoreSrc": "127.0.0.1:9000",
                 "maxretrycount": 0, "retrycount": 0, "storageClass": "cstor-csi", "size": "0"},
        "status": ""})
    .to_string();
    let (code, said) = plugin_call("POST", "/latest/restore/", Some(&restore));
    assert_eq!(code, 200, "{said}");
    let src: serde_json::Value = serde_json::from_str(&said).expect("json");
    assert_eq!(src["iqn"], "iqn.2016-09.com.openebs.cstor:vol-bk");
    let restores: Api<cstor_api::cstor_v1::backup::CStorRestore> =
        Api::namespaced(client.clone(), NS);
    let made = restores
        .list(
            &ListParams::default()
                .labels("openebs.io/restore=bk1,openebs.io/persistent-volume=vol-bk"),
        )
        .await
        .expect("restores")
        .items;
    assert_eq!(made.len(), 3);
    // Pending as made; vol-bk is in use, so each pool-manager then fails its restore (a
    // restore never overwrites a live volume), and the GET says so.
    let cvr_pools: std::collections::BTreeSet<String> = cvrs
        .iter()
        .filter_map(|c| {
            c.metadata
                .labels
                .as_ref()?
                .get("cstorpoolinstance.openebs.io/name")
                .cloned()
        })
        .collect();
    let restore_pools: std::collections::BTreeSet<String> = made
        .iter()
        .filter_map(|r| {
            r.metadata
                .labels
                .as_ref()?
                .get("cstorpoolinstance.openebs.io/name")
                .cloned()
        })
        .collect();
    assert_eq!(restore_pools, cvr_pools, "one restore per replica's pool");
    wait_for(
        "the restore into a live volume failed",
        Duration::from_secs(60),
        || async {
            match plugin_call("GET", "/latest/restore/", Some(&restore)) {
                (200, s) if s == "\"Failed\"" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let bad = json!({"metadata": {"namespace": NS}, "spec": {"restoreName": "bk1", "volumeName": "vol-bk", "restoreSrc": "127.0.0.1"}}).to_string();
    assert_eq!(
        plugin_call("POST", "/latest/restore/", Some(&bad)),
        (400, "restore create validation failed error: {failed to create restore '': restoreSrc '127.0.0.1' is not <ip>:<port>}".into())
    );
    let _ = restores
        .delete_collection(
            &kube::api::DeleteParams::default(),
            &ListParams::default().labels("openebs.io/restore=bk1"),
        )
        .await;
    let _ = kubectl(&["delete", "namespace", "app-bk", "--wait=false"], None);
    delete_volume(&client, "vol-bk").await;
}

/// The plugin's backup listener: every connection's bytes go to a fresh sink, finished when the
/// peer closes; the streams in the order they completed.
struct Listener {
    port: u16,
    streams: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

fn plugin_listener() -> Listener {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let streams = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = streams.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut data = Vec::new();
                if c.read_to_end(&mut data).is_ok() {
                    keep.lock().expect("streams").push(data);
                }
            });
        }
    });
    Listener { port, streams }
}

/// POST a backup, then GET it every 2 s (the plugin waits 5 s) until it is finished; its status.
async fn back_up(body: &str) -> String {
    assert_eq!(
        plugin_call("POST", "/latest/backups/", Some(body)),
        (200, "\"\"".into())
    );
    for _ in 0..90 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (code, said) = plugin_call("GET", "/latest/backups/", Some(body));
        if code != 200 {
            continue;
        }
        let got: serde_json::Value = serde_json::from_str(&said).expect("json");
        let status = got["status"].as_str().unwrap_or_default().to_string();
        if ["Done", "Failed", "Invalid"].contains(&status.as_str()) {
            return status;
        }
    }
    panic!("backup never finished: {body}");
}

/// Receives `stream` into `target` on `node` (`zfs recv -F`, stdin from a file).
fn zfs_recv(node: &cstor_local::node::LocalNode, target: &str, stream: &[u8]) {
    let file = std::env::temp_dir().join(format!("stream-{}-{}", std::process::id(), stream.len()));
    std::fs::write(&file, stream).expect("write stream");
    let out = node
        .command("zfs")
        .args(["recv", "-F", target])
        .stdin(std::fs::File::open(&file).expect("open stream"))
        .output()
        .expect("zfs recv");
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "zfs recv {target}: {out:?}");
}

/// A schedule's first backup streams a full `zfs send` to the plugin's listener and the next one
/// an increment from it; the plugin's clean-up then destroys the first snapshot; received in
/// order on another dataset, the two streams give back exactly the volume's data at each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_streams_a_full_then_an_incremental_backup_that_restore_the_data() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    cstor(&[
        "volume",
        "create",
        "vol-rb",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-rb", 3).await;
    let (ok, out) = kubectl(&["create", "namespace", "app-rb"], None);
    assert!(ok || out.contains("AlreadyExists"), "{out}");
    let pool = zpool_of(&client, CSPC).await;
    let dataset = format!("{pool}/vol-rb");
    let cvrs = cvrs_of(&client, "vol-rb").await;
    let listener = plugin_listener();
    let dest = format!("127.0.0.1:{}", listener.port);

    // More data in the base than in the increment, so the increment is smaller whatever the
    // stream headers weigh.
    qemu_io("vol-rb", &["write -P 0x11 0 16M"]);
    let first = "rb-20261205100000";
    let body1 = backup_body("app-rb", "rb", "vol-rb", first, &dest, false);
    assert_eq!(back_up(&body1).await, "Done");
    let sum1 = snapshot_sum(&cvrs[0], &dataset, first, "rb1");
    // The schedule's base: the plugin's clean-up has no previous snapshot to delete.
    qemu_io("vol-rb", &["write -P 0x22 8M 4M"]);
    let second = "rb-20261205110000";
    let body2 = backup_body("app-rb", "rb", "vol-rb", second, &dest, false);
    assert_eq!(back_up(&body2).await, "Done");
    let backups: Api<cstor_api::cstor_v1::backup::CStorBackup> =
        Api::namespaced(client.clone(), "app-rb");
    let b2 = backups
        .get(&format!("{second}-vol-rb"))
        .await
        .expect("backup 2");
    assert_eq!(b2.spec.prev_snap_name, first);
    let records: Api<cstor_api::cstor_v1::backup::CStorCompletedBackup> =
        Api::namespaced(client.clone(), "app-rb");
    let r = records.get("rb-vol-rb").await.expect("record");
    assert_eq!(
        (
            r.spec.last_snap_name.as_str(),
            r.spec.second_last_snap_name.as_str()
        ),
        (second, first)
    );
    let sum2 = snapshot_sum(&cvrs[0], &dataset, second, "rb2");
    // Scheduled and Done: the plugin deletes the previous snapshot.
    assert_eq!(
        plugin_call(
            "DELETE",
            &format!("/latest/backups/{first}?namespace=app-rb&schedule=rb&volume=vol-rb"),
            None
        ),
        (200, "\"\"".into())
    );
    for s in snapshots_on_replicas(&cvrs, &dataset) {
        assert_eq!(s, format!("{dataset}@{second}"));
    }
    assert!(
        records.get_opt("rb-vol-rb").await.expect("get").is_some(),
        "the record stays"
    );

    let streams = listener.streams.lock().expect("streams").clone();
    assert_eq!(streams.len(), 2, "one connection per backup");
    assert!(
        streams[1].len() < streams[0].len(),
        "the second stream is an increment"
    );
    let node = node_of(&cvrs[0]);
    let copy = format!("{pool}/rb-copy");
    zfs_recv(node, &copy, &streams[0]);
    assert_eq!(snapshot_sum(&cvrs[0], &copy, first, "rbc1"), sum1);
    zfs_recv(node, &copy, &streams[1]);
    assert_eq!(snapshot_sum(&cvrs[0], &copy, second, "rbc2"), sum2);
    destroy_clone(node, &copy);

    let _ = kubectl(&["delete", "namespace", "app-rb", "--wait=false"], None);
    delete_volume(&client, "vol-rb").await;
}

/// The plugin's restore listener: every connection gets the whole stream, then is closed.
fn serving_listener(stream: Vec<u8>) -> u16 {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let stream = std::sync::Arc::new(stream);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let stream = stream.clone();
            std::thread::spawn(move || {
                let _ = c.set_nodelay(true);
                let _ = c.write_all(&stream);
            });
        }
    });
    port
}

/// A remote restore as the plugin drives it: a new volume made through a claim annotated
/// `openebs.io/created-through: restore` waits with its replicas in Error (never Offline, which
/// the plugin would wait on forever); the restore's stream is received on every replica; the
/// plugin's `openebs.io/restore-completed` then hands the replicas to the target, or, with no
/// mark, they go to it by themselves once the restores are over; either way the volume becomes
/// Healthy with the backed-up bytes. A restore into a volume in use is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_restore_fills_a_new_volume_that_then_serves_the_backed_up_data() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    cstor(&[
        "volume",
        "create",
        "vol-rsrc",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-rsrc", 3).await;
    qemu_io("vol-rsrc", &["write -P 0x3c 0 2M", "write -P 0xc3 30M 1M"]);
    let listener = plugin_listener();
    let backup = "bk-restore";
    let body = backup_body(
        NS,
        backup,
        "vol-rsrc",
        backup,
        &format!("127.0.0.1:{}", listener.port),
        false,
    );
    assert_eq!(back_up(&body).await, "Done");
    let stream = listener.streams.lock().expect("streams")[0].clone();

    let port = serving_listener(stream);
    // With autoSetTargetIP: the plugin marks every replica once the restore is Done.
    restore_into_new_volume(&client, "vol-rdst", backup, port, true).await;
    // Without it: the volume goes to the target by itself once its restores are over.
    restore_into_new_volume(&client, "vol-rdst2", backup, port, false).await;

    // A restore into a volume in use: every replica's restore fails, nothing is received.
    let into_live = json!({"metadata": {"namespace": NS},
        "spec": {"restoreName": "bk-live", "volumeName": "vol-rsrc", "restoreSrc": format!("127.0.0.1:{port}")}}).to_string();
    assert_eq!(
        plugin_call("POST", "/latest/restore/", Some(&into_live)).0,
        200
    );
    let mut status = String::new();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        status = serde_json::from_str(&plugin_call("GET", "/latest/restore/", Some(&into_live)).1)
            .expect("json");
        if status == "Failed" {
            break;
        }
    }
    assert_eq!(status, "Failed");
    qemu_io("vol-rsrc", &["read -P 0x3c 0 2M"]);

    let restores: Api<cstor_api::cstor_v1::backup::CStorRestore> =
        Api::namespaced(client.clone(), NS);
    let _ = restores
        .delete_collection(
            &kube::api::DeleteParams::default(),
            &ListParams::default().labels("openebs.io/restore"),
        )
        .await;
    delete_volume(&client, "vol-rdst").await;
    delete_volume(&client, "vol-rdst2").await;
    delete_volume(&client, "vol-rsrc").await;
}

/// The plugin's remote restore of `backup` (served on `port`) into new volume `volume`, then
/// the check that it serves the backed-up bytes; `mark`: the plugin's autoSetTargetIP.
async fn restore_into_new_volume(
    client: &kube::Client,
    volume: &str,
    backup: &str,
    port: u16,
    mark: bool,
) {
    // The claim the plugin makes, as cstor-csi turns it into a CVC.
    apply_restore_volume(volume, CSPC, "64Mi");
    // The plugin's wait: as many CVRs as the CV's replicationFactor, each Healthy, Degraded or Error.
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    wait_for(
        "restore replicas waiting",
        Duration::from_secs(180),
        || async {
            let rf = cvs
                .get_opt(volume)
                .await
                .map_err(|e| e.to_string())?
                .and_then(|cv| cv.spec.replication_factor)
                .unwrap_or(0);
            let phases: Vec<String> = cvrs_of(client, volume)
                .await
                .iter()
                .map(|c| {
                    c.status
                        .as_ref()
                        .map(|s| s.phase.clone())
                        .unwrap_or_default()
                })
                .collect();
            if rf == 3
                && phases.len() == 3
                && phases
                    .iter()
                    .all(|p| ["Healthy", "Degraded", "Error"].contains(&p.as_str()))
            {
                Ok(())
            } else {
                Err(format!("rf {rf}, phases {phases:?}"))
            }
        },
    )
    .await;
    assert!(
        cvrs_of(client, volume)
            .await
            .iter()
            .all(|c| c.status.as_ref().is_some_and(|s| s.phase == "Error"))
    );

    let restore = json!({"metadata": {"namespace": NS, "creationTimestamp": null},
        "spec": {"restoreName": backup, "volumeName": volume, "restoreSrc": format!("127.0.0.1:{port}"),
                 "maxretrycount": 0, "retrycount": 0, "storageClass": "cstor-csi", "size": "0"},
        "status": ""}).to_string();
    let (code, said) = plugin_call("POST", "/latest/restore/", Some(&restore));
    assert_eq!(code, 200, "{said}");
    let mut status = String::new();
    for _ in 0..90 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (code, said) = plugin_call("GET", "/latest/restore/", Some(&restore));
        assert_eq!(code, 200, "{said}");
        status = serde_json::from_str(&said).expect("json string");
        if ["Done", "Failed", "Invalid"].contains(&status.as_str()) {
            break;
        }
    }
    assert_eq!(status, "Done");
    if mark {
        for c in cvrs_of(client, volume).await {
            let name = c.metadata.name.clone().unwrap_or_default();
            let (ok, out) = kubectl(
                &[
                    "annotate",
                    "cvr",
                    &name,
                    "openebs.io/restore-completed=true",
                ],
                None,
            );
            assert!(ok, "{out}");
        }
    }
    wait_healthy(client, volume, 3).await;
    qemu_io(
        volume,
        &[
            "read -P 0x3c 0 2M",
            "read -P 0xc3 30M 1M",
            "read -P 0 4M 1M",
        ],
    );
    assert_replicas_identical(client, volume, 3).await;
    assert!(cvrs_of(client, volume).await.iter().all(|c| {
        let a = c.metadata.annotations.clone().unwrap_or_default();
        !a.contains_key("isRestoreVol") && !a.contains_key("openebs.io/restore-completed")
    }));
}

/// Local mode: a snapshot only (no stream), then a local restore makes a new volume cloned
/// from it on the same pools, through the StorageClass the plugin names; the clone serves the
/// snapshot's bytes, writes to it leave the source alone, and the source is removable once
/// the clone is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_restore_clones_the_snapshot_into_a_new_volume() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    cstor(&[
        "volume",
        "create",
        "vol-lsrc",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-lsrc", 3).await;
    qemu_io("vol-lsrc", &["write -P 0x71 0 2M"]);
    let body = backup_body("default", "bk-local", "vol-lsrc", "bk-local", "", true);
    assert_eq!(
        plugin_call("POST", "/latest/backups/", Some(&body)),
        (200, "\"\"".into())
    );
    // Written after the snapshot: not in the clone.
    qemu_io("vol-lsrc", &["write -P 0x72 0 1M"]);
    kubectl_apply(&json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "cstor-local-bk"},
        "provisioner": "cstor.csi.openebs.io",
        "parameters": {"cstorPoolCluster": CSPC, "replicaCount": "3", "cas-type": "cstor"}
    }));
    let restore = json!({"metadata": {"namespace": NS, "creationTimestamp": null},
        "spec": {"restoreName": "bk-local", "volumeName": "cstor-clone-1234", "restoreSrc": "vol-lsrc",
                 "maxretrycount": 0, "retrycount": 0, "storageClass": "cstor-local-bk", "size": "64Mi",
                 "localRestore": true},
        "status": ""}).to_string();
    let (code, said) = plugin_call("POST", "/latest/restore/", Some(&restore));
    assert_eq!(code, 200, "{said}");
    let src: serde_json::Value = serde_json::from_str(&said).expect("json");
    assert_eq!(src["iqn"], "iqn.2016-09.com.openebs.cstor:cstor-clone-1234");
    wait_healthy(&client, "cstor-clone-1234", 3).await;
    let pools_of = |cvrs: Vec<CStorVolumeReplica>| {
        let mut p: Vec<String> = cvrs
            .iter()
            .filter_map(|c| {
                c.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("cstorpoolinstance.openebs.io/name"))
                    .cloned()
            })
            .collect();
        p.sort();
        p
    };
    assert_eq!(
        pools_of(cvrs_of(&client, "cstor-clone-1234").await),
        pools_of(cvrs_of(&client, "vol-lsrc").await)
    );
    qemu_io(
        "cstor-clone-1234",
        &["read -P 0x71 0 2M", "write -P 0x73 1M 1M"],
    );
    qemu_io("vol-lsrc", &["read -P 0x72 0 1M", "read -P 0x71 1M 1M"]);
    // A StorageClass without a pool cluster is refused with the Go words.
    kubectl_apply(&json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "cstor-no-cspc"}, "provisioner": "cstor.csi.openebs.io",
        "parameters": {"replicaCount": "3"}
    }));
    let bad = restore
        .replace("cstor-local-bk", "cstor-no-cspc")
        .replace("cstor-clone-1234", "cstor-clone-5678");
    assert_eq!(
        plugin_call("POST", "/latest/restore/", Some(&bad)),
        (400, "Failed to create resources for volume: {storageclass cstor-no-cspc doesn't have cstorPoolCluster details}".into())
    );
    delete_volume(&client, "cstor-clone-1234").await;
    delete_volume(&client, "vol-lsrc").await;
    let _ = kubectl(
        &["delete", "storageclass", "cstor-local-bk", "cstor-no-cspc"],
        None,
    );
}

/// A listener that takes a connection and then reads nothing (a stalled plugin): the sender
/// blocks once the socket's buffers are full.
fn stalled_listener() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    port
}

/// SIGKILL of the pool-manager of `cspi`, as a crash would; the local runner restarts it.
fn kill_pool_manager(cspi: &str) {
    let pids = volume_stack().pods.pids_of(cspi);
    assert!(!pids.is_empty(), "no pool-manager for {cspi}");
    for pid in pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
    }
}

/// A pool-manager killed while it sends a backup, or receives a restore, ends that backup or
/// restore Failed (judged from the record, or as a partial receive), never stuck InProgress;
/// after the failed base of a schedule and the plugin's clean-up, the next backup is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_manager_killed_mid_backup_or_mid_restore_never_leaves_it_in_progress() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    cstor(&[
        "volume",
        "create",
        "vol-kb",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-kb", 3).await;
    // More than the socket buffers hold, so the send blocks on the stalled listener.
    qemu_io("vol-kb", &["write -P 0x44 0 48M"]);
    let stalled = stalled_listener();
    let first = "kb-20261205100000";
    let body = backup_body(
        NS,
        "kb",
        "vol-kb",
        first,
        &format!("127.0.0.1:{stalled}"),
        false,
    );
    assert_eq!(
        plugin_call("POST", "/latest/backups/", Some(&body)),
        (200, "\"\"".into())
    );
    let backups: Api<cstor_api::cstor_v1::backup::CStorBackup> =
        Api::namespaced(client.clone(), NS);
    let name = format!("{first}-vol-kb");
    wait_for("backup in progress", Duration::from_secs(60), || async {
        let b = backups.get(&name).await.map_err(|e| e.to_string())?;
        if b.status == "InProgress" {
            Ok(b)
        } else {
            Err(b.status)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cspi = backups
        .get(&name)
        .await
        .expect("backup")
        .metadata
        .labels
        .unwrap_or_default()["cstorpoolinstance.openebs.io/name"]
        .clone();
    kill_pool_manager(&cspi);
    wait_for(
        "backup failed after the kill",
        Duration::from_secs(120),
        || async {
            let (code, said) = plugin_call("GET", "/latest/backups/", Some(&body));
            let v: serde_json::Value =
                serde_json::from_str(&said).map_err(|e| format!("{code} {said}: {e}"))?;
            if v["status"] == "Failed" {
                Ok(())
            } else {
                Err(said)
            }
        },
    )
    .await;
    // The plugin's clean-up of a failed scheduled backup: this snapshot (and the empty record).
    assert_eq!(
        plugin_call(
            "DELETE",
            &format!("/latest/backups/{first}?namespace={NS}&schedule=kb&volume=vol-kb"),
            None
        ),
        (200, "\"\"".into())
    );
    let listener = plugin_listener();
    let second = "kb-20261205110000";
    let body2 = backup_body(
        NS,
        "kb",
        "vol-kb",
        second,
        &format!("127.0.0.1:{}", listener.port),
        false,
    );
    assert_eq!(back_up(&body2).await, "Done");
    assert_eq!(
        backups
            .get(&format!("{second}-vol-kb"))
            .await
            .expect("b2")
            .spec
            .prev_snap_name,
        "",
        "the next backup is full"
    );
    let stream = listener.streams.lock().expect("streams")[0].clone();

    // Mid-restore: the stream is served in part, then stalls; the receiving pool-manager dies.
    apply_restore_volume("vol-kr", CSPC, "64Mi");
    wait_awaiting_restore(&client, "vol-kr").await;
    let half = stream[..stream.len() / 2].to_vec();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut held = Vec::new();
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(&half);
            held.push(c);
        }
    });
    let restore = json!({"metadata": {"namespace": NS},
        "spec": {"restoreName": second, "volumeName": "vol-kr", "restoreSrc": format!("127.0.0.1:{port}")}}).to_string();
    assert_eq!(
        plugin_call("POST", "/latest/restore/", Some(&restore)).0,
        200
    );
    let restores: Api<cstor_api::cstor_v1::backup::CStorRestore> =
        Api::namespaced(client.clone(), NS);
    let victim = wait_for("a restore in progress", Duration::from_secs(60), || async {
        let list = restores
            .list(&ListParams::default().labels(&format!("openebs.io/restore={second}")))
            .await
            .map_err(|e| e.to_string())?
            .items;
        list.iter()
            .find(|r| r.status == "InProgress")
            .and_then(|r| {
                r.metadata
                    .labels
                    .as_ref()?
                    .get("cstorpoolinstance.openebs.io/name")
                    .cloned()
            })
            .ok_or_else(|| {
                format!(
                    "{:?}",
                    list.iter().map(|r| r.status.clone()).collect::<Vec<_>>()
                )
            })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    kill_pool_manager(&victim);
    wait_for(
        "restore failed after the kill",
        Duration::from_secs(120),
        || async {
            let (_, said) = plugin_call("GET", "/latest/restore/", Some(&restore));
            if said == "\"Failed\"" {
                Ok(())
            } else {
                Err(said)
            }
        },
    )
    .await;
    let _ = restores
        .delete_collection(
            &kube::api::DeleteParams::default(),
            &ListParams::default().labels(&format!("openebs.io/restore={second}")),
        )
        .await;
    assert_eq!(
        plugin_call(
            "DELETE",
            &format!("/latest/backups/{second}?namespace={NS}&schedule=kb&volume=vol-kb"),
            None
        )
        .0,
        200
    );
    delete_volume(&client, "vol-kr").await;
    delete_volume(&client, "vol-kb").await;
}

/// `restoreAllIncrementalSnapshots`: three backups of a schedule (data changed between them,
/// the plugin's clean-up after each), then the chain restored into a new volume in order (the
/// full stream, then each increment), the replicas marked complete: the volume holds exactly
/// the data of the third backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedules_chain_restores_in_order_to_the_last_backups_data() {
    let _one = SERIAL.lock().await;
    let client = admin().await;
    pools(&client).await;
    cstor(&[
        "volume",
        "create",
        "vol-ch",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        CSPC,
    ]);
    wait_healthy(&client, "vol-ch", 3).await;
    let listener = plugin_listener();
    let dest = format!("127.0.0.1:{}", listener.port);
    let snaps = [
        "ch-20261205100000",
        "ch-20261205110000",
        "ch-20261205120000",
    ];
    let writes = [
        ["write -P 0x01 0 4M", "write -P 0x0a 40M 1M"],
        ["write -P 0x02 4M 4M", "write -P 0x0b 40M 1M"],
        ["write -P 0x03 8M 4M", "write -P 0x0c 41M 1M"],
    ];
    let mut prev: Option<&str> = None;
    for (snap, w) in snaps.iter().zip(writes) {
        qemu_io("vol-ch", &w);
        let body = backup_body(NS, "ch", "vol-ch", snap, &dest, false);
        assert_eq!(back_up(&body).await, "Done");
        // The plugin's clean-up of a Done scheduled backup: the previous snapshot.
        if let Some(p) = prev {
            assert_eq!(
                plugin_call(
                    "DELETE",
                    &format!("/latest/backups/{p}?namespace={NS}&schedule=ch&volume=vol-ch"),
                    None
                )
                .0,
                200
            );
        }
        prev = Some(snap);
    }
    let streams = listener.streams.lock().expect("streams").clone();
    assert_eq!(streams.len(), 3);

    apply_restore_volume("vol-chr", CSPC, "64Mi");
    wait_awaiting_restore(&client, "vol-chr").await;
    for (snap, stream) in snaps.iter().zip(streams) {
        let port = serving_listener(stream);
        let restore = json!({"metadata": {"namespace": NS},
            "spec": {"restoreName": snap, "volumeName": "vol-chr", "restoreSrc": format!("127.0.0.1:{port}"),
                     "storageClass": "cstor-csi", "size": "0"}}).to_string();
        assert_eq!(
            plugin_call("POST", "/latest/restore/", Some(&restore)).0,
            200
        );
        let mut status = String::new();
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            status =
                serde_json::from_str(&plugin_call("GET", "/latest/restore/", Some(&restore)).1)
                    .expect("json");
            if ["Done", "Failed", "Invalid"].contains(&status.as_str()) {
                break;
            }
        }
        assert_eq!(status, "Done", "restore of {snap}");
    }
    // restoreAllIncrementalSnapshots implies autoSetTargetIP: the plugin marks the replicas.
    for c in cvrs_of(&client, "vol-chr").await {
        let name = c.metadata.name.clone().unwrap_or_default();
        let (ok, out) = kubectl(
            &[
                "annotate",
                "cvr",
                &name,
                "openebs.io/restore-completed=true",
            ],
            None,
        );
        assert!(ok, "{out}");
    }
    wait_healthy(&client, "vol-chr", 3).await;
    qemu_io(
        "vol-chr",
        &[
            "read -P 0x01 0 4M",
            "read -P 0x02 4M 4M",
            "read -P 0x03 8M 4M",
            "read -P 0x0b 40M 1M",
            "read -P 0x0c 41M 1M",
        ],
    );
    assert_replicas_identical(&client, "vol-chr", 3).await;
    let restores: Api<cstor_api::cstor_v1::backup::CStorRestore> =
        Api::namespaced(client.clone(), NS);
    let _ = restores
        .delete_collection(
            &kube::api::DeleteParams::default(),
            &ListParams::default().labels("openebs.io/persistent-volume=vol-chr"),
        )
        .await;
    delete_volume(&client, "vol-chr").await;
    delete_volume(&client, "vol-ch").await;
}
