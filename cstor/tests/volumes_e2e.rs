//! Volumes end to end on the real apiserver, zfs-fuse and tgt, checked with real iSCSI clients
//! (libiscsi's iscsi-inq / iscsi-readcapacity16, qemu-io with `iscsi://` URLs): a 3-replica
//! volume becomes Bound and Healthy and replicates every write; resize; scale 3 → 4 → 3 with a
//! rebuild; deletion removes everything.

mod common;

use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use common::*;
use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::cstor_v1::cvc::CStorVolumeConfig;
use cstor_api::cstor_v1::cvr::CStorVolumeReplica;
use cstor_api::keys::{annotations, labels};
use k8s_openapi::api::apps::v1::Deployment;
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

fn cstor(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cstor"))
        .args(args)
        .env(
            "KUBECONFIG",
            cstor_local::testing::control_plane().kubeconfig(),
        )
        .output()
        .expect("cstor");
    assert!(out.status.success(), "cstor {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn url(volume: &str) -> String {
    format!(
        "iscsi://127.0.0.1:{}/iqn.2016-09.com.openebs.cstor:{volume}/1",
        volume_stack().iscsi_port
    )
}

/// Runs a real iSCSI client; panics with its output unless it succeeds.
fn client_tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is required (Debian libiscsi-bin / qemu-utils): {e}")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}: {text}");
    text
}

fn lun_bytes(volume: &str) -> u64 {
    let text = client_tool("iscsi-readcapacity16", &[&url(volume)]);
    text.lines()
        .find_map(|l| l.strip_prefix("Total size:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in {text}"))
}

/// qemu-io commands against the volume; a `read -P` that finds other bytes fails the run.
fn qemu_io(volume: &str, cmds: &[&str]) -> String {
    let mut args = vec!["-f", "raw"];
    for c in cmds {
        args.push("-c");
        args.push(c);
    }
    let u = url(volume);
    args.push(&u);
    let text = client_tool("qemu-io", &args);
    assert!(
        !text.contains("Pattern verification failed") && !text.contains("error"),
        "qemu-io {cmds:?}: {text}"
    );
    text
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

async fn cvrs_of(client: &kube::Client, volume: &str) -> Vec<CStorVolumeReplica> {
    let api: Api<CStorVolumeReplica> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default().labels(&format!("{}={volume}", labels::PERSISTENT_VOLUME)))
        .await
        .expect("list cvrs")
        .items
}

/// sha256 of every replica's lun file, read on its node.
async fn replica_sums(client: &kube::Client, volume: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for cvr in cvrs_of(client, volume).await {
        let ann = cvr.metadata.annotations.clone().unwrap_or_default();
        let host = ann
            .get(annotations::CSPI_HOSTNAME)
            .cloned()
            .expect("hostname annotation");
        let path = ann
            .get("cstor.openebs.io/replica-lun")
            .cloned()
            .expect("replica-lun annotation");
        let node = volume_stack()
            .nodes
            .iter()
            .find(|n| n.name == host)
            .expect("node");
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

/// Waits for CVC Bound, CV Healthy with `n` Healthy replicas, and `n` Healthy CVRs.
async fn wait_healthy(client: &kube::Client, volume: &str, n: usize) {
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), NS);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    wait_for(
        &format!("volume {volume} Healthy with {n} replicas"),
        Duration::from_secs(180),
        || async {
            let cvc = cvcs.get(volume).await.map_err(|e| e.to_string())?;
            let phase = cvc.status.clone().unwrap_or_default().phase;
            let cv = cvs.get_opt(volume).await.map_err(|e| e.to_string())?;
            let cv_status = cv.and_then(|v| v.status).unwrap_or_default();
            let healthy = cv_status
                .replica_statuses
                .iter()
                .filter(|r| r.mode == "Healthy")
                .count();
            let cvrs: Vec<String> = cvrs_of(client, volume)
                .await
                .into_iter()
                .map(|c| c.status.unwrap_or_default().phase)
                .collect();
            if phase == "Bound"
                && cv_status.phase == "Healthy"
                && healthy == n
                && cvrs.len() == n
                && cvrs.iter().all(|p| p == "Healthy")
            {
                Ok(())
            } else {
                Err(format!(
                    "cvc {phase}, cv {} ({healthy} healthy), cvrs {cvrs:?}",
                    cv_status.phase
                ))
            }
        },
    )
    .await
}

/// Deletes the CVC; waits until target, CVRs and datasets are gone.
async fn delete_volume(client: &kube::Client, volume: &str) {
    let (ok, out) = kubectl(&["delete", "cvc", volume, "--wait=false"], None);
    assert!(ok, "{out}");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    wait_for(
        &format!("volume {volume} removed"),
        Duration::from_secs(120),
        || async {
            let target = deploys
                .get_opt(&format!("{volume}-target"))
                .await
                .map_err(|e| e.to_string())?
                .is_some();
            let cv = cvs
                .get_opt(volume)
                .await
                .map_err(|e| e.to_string())?
                .is_some();
            let cvrs = cvrs_of(client, volume).await.len();
            let datasets: Vec<String> = volume_stack()
                .nodes
                .iter()
                .filter_map(|n| n.zfs(&["list", "-H", "-o", "name"]).ok())
                .flat_map(|l| l.lines().map(str::to_string).collect::<Vec<_>>())
                .filter(|l| l.ends_with(&format!("/{volume}")))
                .collect();
            if !target && !cv && cvrs == 0 && datasets.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "target {target}, cv {cv}, cvrs {cvrs}, datasets {datasets:?}"
                ))
            }
        },
    )
    .await
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
