//! Volumes under the faults storage must survive, on the real apiserver, zfs-fuse and tgt,
//! seen through a real initiator (qemu-io over iSCSI): a pool that fills up refuses the write
//! that does not fit, the volume stays Healthy, the pool turns read-only at its threshold, and
//! once space is freed writes go on with no manual step; the same when the replicas hit their
//! dataset quota.

mod common;

use std::process::Command;
use std::time::Duration;

use common::volumes::*;
use common::*;
use cstor_api::common::ConditionStatus;
use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::keys::annotations;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;

/// qemu-io commands whose failure is expected: the whole output, success or not.
fn qemu_io_any(volume: &str, cmds: &[&str]) -> String {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "raw"]);
    for c in cmds {
        cmd.args(["-c", c]);
    }
    let out = cmd
        .arg(url(volume))
        .output()
        .unwrap_or_else(|e| panic!("qemu-io is required (Debian qemu-utils): {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Events with `reason` about `name`, repeats counted.
async fn events(client: &kube::Client, name: &str, reason: &str) -> i32 {
    let api: Api<Event> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}

/// sha256 of each replica's lun file of `volume`, read on its node.
async fn replica_sums(client: &kube::Client, volume: &str) -> Vec<String> {
    let mut sums = Vec::new();
    for cvr in cvrs_of(client, volume).await {
        let a = cvr.metadata.annotations.clone().unwrap_or_default();
        let host = a.get(annotations::CSPI_HOSTNAME).expect("hostname");
        let path = a.get("cstor.openebs.io/replica-lun").expect("lun path");
        let node = fault_stack()
            .nodes
            .iter()
            .find(|n| &n.name == host)
            .expect("node");
        let out = node
            .command("sha256sum")
            .arg(path)
            .output()
            .expect("sha256sum");
        assert!(out.status.success(), "{out:?}");
        sums.push(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    sums
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_refuses_the_write_keeps_the_volume_healthy_and_recovers_when_space_is_freed() {
    fault_stack();
    let client = admin().await;
    // Three one-disk pools (320 MiB each), compression off so the test's patterns take
    // their full size; roThresholdLimit is the default 85 %.
    let pools = (1..=3)
        .map(|n| {
            let mut p = pool(n, "stripe", &[&[1]]);
            p["poolConfig"]["compression"] = "off".into();
            p
        })
        .collect();
    kubectl_apply(&cspc("full", pools));
    wait_online(&client, "full", 3).await;
    for v in ["vol-1", "vol-2"] {
        cstor(&[
            "volume",
            "create",
            v,
            "--size",
            "200Mi",
            "--replicas",
            "3",
            "--pool-cluster",
            "full",
        ]);
    }
    wait_healthy(&client, "vol-1", 3).await;
    wait_healthy(&client, "vol-2", 3).await;

    // 150 MiB fits on every pool; 150 MiB more on the same pools does not.
    qemu_io("vol-1", &["write -P 0x11 0 150M"]);
    let said = qemu_io_any("vol-2", &["write -P 0x22 0 50M", "write -P 0x33 50M 100M"]);
    eprintln!("qemu-io on the full pools said: {said}");
    assert!(
        said.contains("write failed"),
        "the initiator must see the refused write: {said}"
    );
    // The write that fitted is there; the refused one is the initiator's to retry.
    qemu_io("vol-2", &["read -P 0x22 0 50M"]);

    // The replicas refused alike: none is degraded, the volume stays Healthy and says why.
    wait_healthy(&client, "vol-2", 3).await;
    wait_healthy(&client, "vol-1", 3).await;
    wait_for("a WriteRefused Event", Duration::from_secs(30), || async {
        match events(&client, "vol-2", "WriteRefused").await {
            0 => Err("none yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;

    // Every pool reached its threshold: read-only, with the condition and the Event.
    wait_for("pools read-only", Duration::from_secs(120), || async {
        let cspis = cspis_of(&client, "full").await;
        let states: Vec<String> = cspis
            .iter()
            .map(|c| {
                let st = c.status.clone().unwrap_or_default();
                let cond = condition(c, "PoolReadOnly")
                    .map(|c| format!("{:?} {} {}", c.status, c.reason, c.message));
                format!(
                    "{} readOnly={} {cond:?}",
                    c.metadata.name.clone().unwrap_or_default(),
                    st.read_only
                )
            })
            .collect();
        let all = cspis.len() == 3
            && cspis.iter().all(|c| {
                let st = c.status.clone().unwrap_or_default();
                st.read_only
                    && condition(c, "PoolReadOnly")
                        .is_some_and(|c| c.status == ConditionStatus::True)
            });
        if all {
            Ok(())
        } else {
            Err(format!("{states:?}"))
        }
    })
    .await;
    for cspi in cspis_of(&client, "full").await {
        let name = cspi.metadata.name.clone().unwrap_or_default();
        assert!(
            events(&client, &name, "PoolReadOnlyThreshold").await > 0,
            "no PoolReadOnlyThreshold Event for {name}"
        );
    }

    // Free the space: no manual step, the same write now succeeds and reads back.
    delete_volume(&client, "vol-1").await;
    wait_for("the write fits again", Duration::from_secs(120), || async {
        let said = qemu_io_any("vol-2", &["write -P 0x33 50M 100M"]);
        if said.contains("write failed") || said.contains("error") {
            Err(said)
        } else {
            Ok(())
        }
    })
    .await;
    qemu_io("vol-2", &["read -P 0x22 0 50M", "read -P 0x33 50M 100M"]);
    wait_healthy(&client, "vol-2", 3).await;

    // The replicas end byte-identical (the refused write's range was settled).
    wait_for("replicas identical", Duration::from_secs(60), || async {
        let sums = replica_sums(&client, "vol-2").await;
        if sums.len() == 3 && sums.iter().all(|s| s == &sums[0]) {
            Ok(())
        } else {
            Err(format!("{sums:?}"))
        }
    })
    .await;

    // And the pools leave read-only once under the threshold.
    wait_for("pools writable again", Duration::from_secs(120), || async {
        let cspis = cspis_of(&client, "full").await;
        let ro: Vec<bool> = cspis
            .iter()
            .map(|c| c.status.clone().unwrap_or_default().read_only)
            .collect();
        if ro.iter().all(|r| !r) {
            Ok(())
        } else {
            Err(format!("{ro:?}"))
        }
    })
    .await;

    // Replicas that hit their dataset quota (set just above what they use): EDQUOT alike,
    // the same answer. The pool-manager puts the quota back at its next pass (the quota
    // "raised"), which any event starts within a second: its processes are stopped
    // (SIGSTOP, as a busy node would leave them) while the quota is low and the write is
    // tried, so the refusal does not depend on winning a race with it; they go on after.
    let dataset = format!("{}/vol-2", zpool_of(&client, "full").await);
    let managers: Vec<u32> = cvrs_of(&client, "vol-2")
        .await
        .iter()
        .flat_map(|cvr| fault_stack().pods.pids_of(&pool_of(cvr)))
        .collect();
    assert_eq!(
        managers.len(),
        3,
        "one pool-manager per replica: {managers:?}"
    );
    signal_pids(&managers, nix::sys::signal::Signal::SIGSTOP);
    let mut refused = String::new();
    for _ in 0..3 {
        for node in &fault_stack().nodes {
            let used: u64 = node
                .zfs(&["get", "-Hp", "-o", "value", "used", &dataset])
                .expect("zfs get used")
                .trim()
                .parse()
                .expect("used bytes");
            node.zfs(&["set", &format!("quota={}", used + (4 << 20)), &dataset])
                .expect("zfs set quota");
        }
        refused = qemu_io_any("vol-2", &["write -P 0x44 160M 16M"]);
        if refused.contains("write failed") {
            break;
        }
    }
    signal_pids(&managers, nix::sys::signal::Signal::SIGCONT);
    assert!(
        refused.contains("write failed"),
        "quota never hit: {refused}"
    );
    wait_healthy(&client, "vol-2", 3).await;
    wait_for(
        "the quota is raised and the write fits",
        Duration::from_secs(120),
        || async {
            let said = qemu_io_any("vol-2", &["write -P 0x44 160M 16M"]);
            if said.contains("write failed") || said.contains("error") {
                Err(said)
            } else {
                Ok(())
            }
        },
    )
    .await;
    qemu_io(
        "vol-2",
        &[
            "read -P 0x22 0 50M",
            "read -P 0x33 50M 100M",
            "read -P 0x44 160M 16M",
        ],
    );
    wait_for(
        "replicas identical after the quota",
        Duration::from_secs(60),
        || async {
            let sums = replica_sums(&client, "vol-2").await;
            if sums.len() == 3 && sums.iter().all(|s| s == &sums[0]) {
                Ok(())
            } else {
                Err(format!("{sums:?}"))
            }
        },
    )
    .await;
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    let cv = cvs.get("vol-2").await.expect("cv");
    assert_eq!(cv.status.unwrap_or_default().phase, "Healthy");
    delete_volume(&client, "vol-2").await;
}

/// The local node holding `cvr` (its CSPI hostname annotation).
fn node_of(
    cvr: &cstor_api::cstor_v1::cvr::CStorVolumeReplica,
) -> &'static cstor_local::node::LocalNode {
    let host = cvr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::CSPI_HOSTNAME))
        .expect("hostname annotation");
    fault_stack()
        .nodes
        .iter()
        .find(|n| &n.name == host)
        .expect("node")
}

/// Whether process `pid` still runs: it exists and is not a zombie (the local runner reaps
/// its children, but it may be waiting on the stopped API server meanwhile).
fn running(pid: u32) -> bool {
    // Ours still (a pid can be reused once the process is gone).
    let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("cstor"));
    ours && std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Sends `signal` to each of `pids` (pods' processes).
fn signal_pids(pids: &[u32], signal: nix::sys::signal::Signal) {
    for pid in pids {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), signal).expect("signal");
    }
}

fn pool_of(cvr: &cstor_api::cstor_v1::cvr::CStorVolumeReplica) -> String {
    cvr.metadata
        .labels
        .clone()
        .unwrap_or_default()
        .get(cstor_api::keys::labels::CSPI_NAME)
        .cloned()
        .expect("cspi label")
}

/// A scale-down 3 → 2 asked while a replica that stays is Degraded (its pool is gone) would
/// leave one Healthy replica, under consistencyFactor 2. It waits, saying why, with the
/// replica being removed still serving; once the other is rebuilt it completes, data kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scale_down_waits_until_the_replicas_that_stay_are_healthy() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[2]])).collect();
    kubectl_apply(&cspc("scale", pools));
    wait_online(&client, "scale", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-d",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "scale",
    ]);
    wait_healthy(&client, "vol-d", 3).await;
    qemu_io("vol-d", &["write -P 0x5a 0 8M"]);

    let cvrs = cvrs_of(&client, "vol-d").await;
    let (lost, removed) = (&cvrs[0], &cvrs[1]);
    let lost_id = lost.spec.replica_id.clone();
    let removed_id = removed.spec.replica_id.clone();
    let removed_pool = pool_of(removed);
    let node = node_of(lost);
    node.kill_zfs().expect("kill zfs-fuse");
    // A write notices the lost pool at once: 2 of 3 Healthy.
    qemu_io("vol-d", &["write -P 0x6b 8M 4M"]);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    wait_for("the replica Degraded", Duration::from_secs(60), || async {
        let st = cvs
            .get("vol-d")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        let mode = st
            .replica_statuses
            .iter()
            .find(|r| r.id == lost_id)
            .map(|r| r.mode.clone());
        if st.phase == "Degraded" && mode.as_deref() == Some("Degraded") {
            Ok(())
        } else {
            Err(format!("{} {mode:?}", st.phase))
        }
    })
    .await;

    // Ask for 2 replicas without the Healthy `removed` one.
    let keep: Vec<serde_json::Value> = cvrs
        .iter()
        .map(pool_of)
        .filter(|p| *p != removed_pool)
        .map(|p| serde_json::json!({"poolName": p}))
        .collect();
    let patch = serde_json::json!({"spec": {"policy": {"replicaPoolInfo": keep}}}).to_string();
    let (ok, out) = kubectl(
        &["patch", "cvc", "vol-d", "--type=merge", "-p", &patch],
        None,
    );
    assert!(ok, "{out}");
    let cvcs: Api<cstor_api::cstor_v1::cvc::CStorVolumeConfig> =
        Api::namespaced(client.clone(), NS);
    wait_for(
        "the scale-down waits, saying why",
        Duration::from_secs(60),
        || async {
            let st = cvcs
                .get("vol-d")
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            let c = st.conditions.iter().find(|c| c.type_ == "ReplicaScaling");
            match c {
                Some(c)
                    if c.reason == "WaitingForHealthyReplicas" && c.message.contains(&lost_id) =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    // Meanwhile the replica being removed still serves: it is in the fan-out, Healthy, and
    // I/O goes on with 2 Healthy of 3.
    let st = cvs
        .get("vol-d")
        .await
        .expect("cv")
        .status
        .unwrap_or_default();
    assert!(
        st.replica_statuses
            .iter()
            .any(|r| r.id == removed_id && r.mode == "Healthy"),
        "{:?}",
        st.replica_statuses
    );
    qemu_io(
        "vol-d",
        &[
            "write -P 0x7c 12M 4M",
            "read -P 0x5a 0 8M",
            "read -P 0x6b 8M 4M",
            "read -P 0x7c 12M 4M",
        ],
    );

    // The pool comes back: the lost replica is rebuilt, then the scale-down completes.
    node.restart_zfs().expect("restart zfs-fuse");
    wait_for("scaled down to 2", Duration::from_secs(180), || async {
        let st = cvcs
            .get("vol-d")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        let n = cvrs_of(&client, "vol-d").await.len();
        if st.pool_info.len() == 2 && !st.pool_info.contains(&removed_pool) && n == 2 {
            Ok(())
        } else {
            Err(format!("poolInfo {:?}, {n} cvrs", st.pool_info))
        }
    })
    .await;
    wait_healthy(&client, "vol-d", 2).await;
    qemu_io(
        "vol-d",
        &[
            "read -P 0x5a 0 8M",
            "read -P 0x6b 8M 4M",
            "read -P 0x7c 12M 4M",
        ],
    );
    wait_for(
        "the two replicas identical",
        Duration::from_secs(60),
        || async {
            let sums = replica_sums(&client, "vol-d").await;
            if sums.len() == 2 && sums[0] == sums[1] {
                Ok(())
            } else {
                Err(format!("{sums:?}"))
            }
        },
    )
    .await;
    delete_volume(&client, "vol-d").await;
}

/// A restart with fewer than consistencyFactor replicas openable: one replica is already
/// Degraded, a second one's pool is gone, and the volume-manager is killed. It waits, saying
/// why, and its status keeps the record of which replicas hold every acknowledged write; when
/// the pool returns the volume serves again (resynced), then the Degraded one is rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_with_too_few_replicas_waits_and_serves_again_when_they_return() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[2]])).collect();
    kubectl_apply(&cspc("restart", pools));
    wait_online(&client, "restart", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-r",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "restart",
    ]);
    wait_healthy(&client, "vol-r", 3).await;
    qemu_io("vol-r", &["write -P 0x11 0 16M"]);

    let cvrs = cvrs_of(&client, "vol-r").await;
    let (degraded, gone) = (&cvrs[0], &cvrs[1]);
    let degraded_id = degraded.spec.replica_id.clone();
    let gone_id = gone.spec.replica_id.clone();
    let (degraded_node, gone_node) = (node_of(degraded), node_of(gone));
    degraded_node.kill_zfs().expect("kill zfs-fuse");
    qemu_io("vol-r", &["write -P 0x22 16M 4M"]);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    let modes = |st: &cstor_api::cstor_v1::cv::CStorVolumeStatus| -> Vec<(String, String)> {
        st.replica_statuses
            .iter()
            .map(|r| (r.id.clone(), r.mode.clone()))
            .collect()
    };
    wait_for("one replica Degraded", Duration::from_secs(60), || async {
        let st = cvs
            .get("vol-r")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        if st.phase == "Degraded" && modes(&st).contains(&(degraded_id.clone(), "Degraded".into()))
        {
            Ok(())
        } else {
            Err(format!("{} {:?}", st.phase, modes(&st)))
        }
    })
    .await;

    // A second pool goes, and the target restarts: 1 of 2 needed can be opened.
    gone_node.kill_zfs().expect("kill zfs-fuse");
    let pids = fault_stack().pods.pids_of("vol-r-target");
    assert!(!pids.is_empty(), "no volume-manager running");
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_for(
        "the restarted target waits, saying why",
        Duration::from_secs(120),
        || async {
            let st = cvs
                .get("vol-r")
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            let kept = modes(&st).contains(&(gone_id.clone(), "Healthy".into()))
                && modes(&st).contains(&(degraded_id.clone(), "Degraded".into()));
            if st.phase == "Init" && st.message.contains("waiting for replicas") && kept {
                Ok(())
            } else {
                Err(format!("{} {:?} {:?}", st.phase, st.message, modes(&st)))
            }
        },
    )
    .await;
    // It stays so (the record survives every status write while waiting).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let st = cvs
        .get("vol-r")
        .await
        .expect("cv")
        .status
        .unwrap_or_default();
    assert_eq!(st.phase, "Init", "{st:?}");
    assert!(
        modes(&st).contains(&(gone_id.clone(), "Healthy".into())),
        "{st:?}"
    );

    // The pool returns: two trusted replicas, the volume serves again with the data.
    gone_node.restart_zfs().expect("restart zfs-fuse");
    wait_for("serving again", Duration::from_secs(180), || async {
        let st = cvs
            .get("vol-r")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        let healthy = st
            .replica_statuses
            .iter()
            .filter(|r| r.mode == "Healthy")
            .count();
        if st.phase == "Degraded" && healthy == 2 {
            Ok(())
        } else {
            Err(format!("{} {:?} {:?}", st.phase, st.message, modes(&st)))
        }
    })
    .await;
    qemu_io("vol-r", &["read -P 0x11 0 16M", "read -P 0x22 16M 4M"]);

    // And the first one is rebuilt once its pool is back.
    degraded_node.restart_zfs().expect("restart zfs-fuse");
    wait_healthy(&client, "vol-r", 3).await;
    qemu_io("vol-r", &["read -P 0x11 0 16M", "read -P 0x22 16M 4M"]);
    wait_for("replicas identical", Duration::from_secs(60), || async {
        let sums = replica_sums(&client, "vol-r").await;
        if sums.len() == 3 && sums.iter().all(|s| s == &sums[0]) {
            Ok(())
        } else {
            Err(format!("{sums:?}"))
        }
    })
    .await;
    delete_volume(&client, "vol-r").await;
}

/// The lun annotation of a CVR (anyone may edit annotations) pointed at another file on the
/// node: the privileged volume-manager never opens it (the file stays as it was), the volume
/// goes on with its other replicas, and with the annotation put back all three are Healthy
/// and identical again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edited_lun_annotation_cannot_point_the_target_at_another_file() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[2]])).collect();
    kubectl_apply(&cspc("paths", pools));
    wait_online(&client, "paths", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-p",
        "--size",
        "32Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "paths",
    ]);
    wait_healthy(&client, "vol-p", 3).await;
    qemu_io("vol-p", &["write -P 0x31 0 4M"]);

    let cvr = cvrs_of(&client, "vol-p").await.remove(0);
    let name = cvr.metadata.name.clone().unwrap_or_default();
    let lun = cvr
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .get("cstor.openebs.io/replica-lun")
        .cloned()
        .expect("lun annotation");
    let node = node_of(&cvr);
    // A decoy next to the replica root, of the right size to pass for a replica.
    let decoy = std::path::Path::new(&lun)
        .ancestors()
        .nth(4)
        .expect("replica root")
        .join("decoy");
    let decoy = decoy.to_string_lossy().into_owned();
    let made = node
        .command("sh")
        .args([
            "-c",
            &format!("head -c 33554432 /dev/zero > {decoy} && sha256sum {decoy}"),
        ])
        .output()
        .expect("make decoy");
    assert!(made.status.success(), "{made:?}");
    let before = String::from_utf8_lossy(&made.stdout).into_owned();
    for bad in [
        decoy.clone(),
        format!(
            "{}/../decoy",
            std::path::Path::new(&lun).parent().expect("dir").display()
        ),
    ] {
        let annotate = |who: &[&str]| {
            let mut args: Vec<String> = who.iter().map(|s| s.to_string()).collect();
            args.extend([
                "annotate".to_string(),
                "cvr".to_string(),
                name.clone(),
                format!("cstor.openebs.io/replica-lun={bad}"),
                "--overwrite".to_string(),
            ]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            kubectl(&args, None)
        };
        // A user cannot (admission guards the keys the operators rely on)...
        let (ok, out) = annotate(&[]);
        assert!(!ok, "{out}");
        assert!(
            out.contains("annotation cstor.openebs.io/replica-lun is set by the operators"),
            "{out}"
        );
        // ...and even if an operator's account did, the target would not follow it.
        let (ok, out) = annotate(&[
            "--as=system:serviceaccount:openebs:cstor-cvc-operator",
            "--as-group=system:masters",
        ]);
        assert!(ok, "{out}");
        // Writes go on (two replicas remain); the decoy is never written.
        qemu_io(
            "vol-p",
            &[
                "write -P 0x42 4M 4M",
                "read -P 0x31 0 4M",
                "read -P 0x42 4M 4M",
            ],
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = node
            .command("sha256sum")
            .arg(&decoy)
            .output()
            .expect("sha256sum");
        assert_eq!(
            String::from_utf8_lossy(&now.stdout),
            before,
            "the decoy was touched"
        );
    }

    // Put back: the replica returns (rebuilt: it missed writes) and all three agree.
    let (ok, out) = kubectl(
        &[
            "--as=system:serviceaccount:openebs:cstor-cvc-operator",
            "--as-group=system:masters",
            "annotate",
            "cvr",
            &name,
            &format!("cstor.openebs.io/replica-lun={lun}"),
            "--overwrite",
        ],
        None,
    );
    assert!(ok, "{out}");
    wait_healthy(&client, "vol-p", 3).await;
    qemu_io("vol-p", &["read -P 0x31 0 4M", "read -P 0x42 4M 4M"]);
    wait_for("replicas identical", Duration::from_secs(60), || async {
        let sums = replica_sums(&client, "vol-p").await;
        if sums.len() == 3 && sums.iter().all(|s| s == &sums[0]) {
            Ok(())
        } else {
            Err(format!("{sums:?}"))
        }
    })
    .await;
    delete_volume(&client, "vol-p").await;
}

/// A Bound volume whose CVR is deleted (here by the cvc-operator's own account, the only one
/// admission lets): the loss is recorded (the volume turns Degraded), the operator makes the
/// replica again with an Event, it is rebuilt from the others, and all three end identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_replica_of_a_bound_volume_is_made_again_and_rebuilt() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[2]])).collect();
    kubectl_apply(&cspc("again", pools));
    wait_online(&client, "again", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-g",
        "--size",
        "32Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "again",
    ]);
    wait_healthy(&client, "vol-g", 3).await;
    qemu_io("vol-g", &["write -P 0x51 0 8M"]);
    let cvr = cvrs_of(&client, "vol-g").await.remove(0);
    let name = cvr.metadata.name.clone().unwrap_or_default();
    let uid = cvr.metadata.uid.clone().unwrap_or_default();
    let (ok, out) = kubectl(
        &[
            "delete",
            "cvr",
            &name,
            "--wait=false",
            "--as=system:serviceaccount:openebs:cstor-cvc-operator",
        ],
        None,
    );
    assert!(ok, "{out}");
    // Writes go on with the other two meanwhile.
    qemu_io("vol-g", &["write -P 0x62 8M 4M"]);
    let cvrs: Api<cstor_api::cstor_v1::cvr::CStorVolumeReplica> =
        Api::namespaced(client.clone(), NS);
    wait_for("the CVR made again", Duration::from_secs(120), || async {
        match cvrs.get_opt(&name).await.map_err(|e| e.to_string())? {
            Some(c) if c.metadata.uid.as_deref() != Some(uid.as_str()) => Ok(()),
            Some(_) => Err("the old one is still there".to_string()),
            None => Err("gone, not made again yet".to_string()),
        }
    })
    .await;
    wait_healthy(&client, "vol-g", 3).await;
    assert!(
        events(&client, "vol-g", "ReplicaMissing").await > 0,
        "no ReplicaMissing Event"
    );
    qemu_io("vol-g", &["read -P 0x51 0 8M", "read -P 0x62 8M 4M"]);
    wait_for("replicas identical", Duration::from_secs(60), || async {
        let sums = replica_sums(&client, "vol-g").await;
        if sums.len() == 3 && sums.iter().all(|s| s == &sums[0]) {
            Ok(())
        } else {
            Err(format!("{sums:?}"))
        }
    })
    .await;
    delete_volume(&client, "vol-g").await;
}

/// A replica that hangs (its node's zfs-fuse stopped with SIGSTOP, as a suspended pool would)
/// during a write loop: the initiator sees one bounded stall (the per-replica deadline), the
/// replica is fenced and Degraded with the reason, I/O goes on with the other two; after
/// SIGCONT it is rebuilt and all three are identical. Prints each write's latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_replica_is_fenced_and_io_goes_on() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[2]])).collect();
    kubectl_apply(&cspc("hang", pools));
    wait_online(&client, "hang", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-h",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "hang",
    ]);
    wait_healthy(&client, "vol-h", 3).await;
    let hung = cvrs_of(&client, "vol-h").await.remove(0);
    let hung_id = hung.spec.replica_id.clone();
    let node = node_of(&hung);
    let pid = nix::unistd::Pid::from_raw(node.zfs_pid() as i32);

    // 24 writes of 1 MiB, each its own pattern; the pool hangs after the fourth.
    let mut latencies = Vec::new();
    for i in 0..24u32 {
        if i == 4 {
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
        }
        let started = std::time::Instant::now();
        let said = qemu_io_any("vol-h", &[&format!("write -P {} {i}M 1M", i + 1)]);
        latencies.push(started.elapsed());
        assert!(
            said.contains("wrote 1048576/1048576") && !said.contains("failed"),
            "write {i} while a replica hangs: {said}"
        );
    }
    let mut sorted = latencies.clone();
    sorted.sort();
    let (p50, max) = (sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
    eprintln!(
        "write latencies with a hung replica (ms): {:?}; p50 {} ms, max {} ms",
        latencies.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        p50.as_millis(),
        max.as_millis()
    );
    // One stall of about the deadline (8 s) plus recording the loss, not a frozen volume.
    assert!(max < Duration::from_secs(30), "stall of {max:?}");
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    let st = cvs
        .get("vol-h")
        .await
        .expect("cv")
        .status
        .unwrap_or_default();
    assert_eq!(st.phase, "Degraded", "{st:?}");
    assert!(
        st.message.contains(&hung_id) && st.message.contains("no answer within"),
        "{:?}",
        st.message
    );
    // Reads come from the others.
    let reads: Vec<String> = (0..24u32)
        .map(|i| format!("read -P {} {i}M 1M", i + 1))
        .collect();
    let reads: Vec<&str> = reads.iter().map(String::as_str).collect();
    qemu_io("vol-h", &reads);

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    wait_healthy(&client, "vol-h", 3).await;
    qemu_io("vol-h", &reads);
    wait_for("replicas identical", Duration::from_secs(60), || async {
        let sums = replica_sums(&client, "vol-h").await;
        if sums.len() == 3 && sums.iter().all(|s| s == &sums[0]) {
            Ok(())
        } else {
            Err(format!("{sums:?}"))
        }
    })
    .await;
    delete_volume(&client, "vol-h").await;
}

/// kube-apiserver stopped (SIGSTOP) for a while: I/O that needs no status record goes on; a
/// replica lost meanwhile must be recorded before a write is acknowledged, so that write
/// fails with EIO after the documented wait (10 s); a SIGTERM to the volume-manager, a
/// pool-manager and both operators is honoured although the API hangs; once the API is back
/// everything recovers with no manual step.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_server_hangs_io_goes_on_a_loss_fails_writes_and_a_stop_is_honoured() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[2]])).collect();
    kubectl_apply(&cspc("api", pools));
    wait_online(&client, "api", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-api",
        "--size",
        "32Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "api",
    ]);
    wait_healthy(&client, "vol-api", 3).await;
    qemu_io("vol-api", &["write -P 0x11 0 4M"]);
    let replicas = cvrs_of(&client, "vol-api").await;
    let victim = node_of(&replicas[0]);
    let apiserver = cstor_local::testing::control_plane()
        .pids()
        .into_iter()
        .find(|(name, _)| name == "kube-apiserver")
        .map(|(_, pid)| nix::unistd::Pid::from_raw(pid as i32))
        .expect("kube-apiserver pid");
    let signal = |pid, s| nix::sys::signal::kill(pid, s).expect("signal");
    // Taken before the API stops: a leader that sees no renewal for 10 s exits by itself.
    let other_pool = pool_of(&replicas[1]);
    let stoppable: Vec<(String, Vec<u32>)> = [
        "vol-api-target",
        other_pool.as_str(),
        "cstor-cspc-operator",
        "cstor-cvc-operator",
    ]
    .iter()
    .map(|d| (d.to_string(), fault_stack().pods.pids_of(d)))
    .collect();
    for (d, pids) in &stoppable {
        assert!(!pids.is_empty(), "no pod of {d}");
    }
    signal(apiserver, nix::sys::signal::Signal::SIGSTOP);

    // Writes and reads that lose nothing need no status record: they go on.
    let started = std::time::Instant::now();
    qemu_io(
        "vol-api",
        &[
            "write -P 0x22 4M 4M",
            "read -P 0x11 0 4M",
            "read -P 0x22 4M 4M",
        ],
    );
    let plain = started.elapsed();
    eprintln!("I/O with the API server stopped: {} ms", plain.as_millis());
    assert!(plain < Duration::from_secs(10), "{plain:?}");

    // A replica is lost: the write that finds out fails after the record wait (10 s).
    victim.kill_zfs().expect("kill zfs-fuse");
    let started = std::time::Instant::now();
    let said = qemu_io_any("vol-api", &["write -P 0x33 8M 1M"]);
    let waited = started.elapsed();
    eprintln!(
        "write needing a record, API stopped: {} ms: {said}",
        waited.as_millis()
    );
    assert!(said.contains("write failed"), "{said}");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(60),
        "{waited:?}"
    );

    // A stop is honoured while the API hangs, by the volume-manager, a pool-manager and both
    // operators (within the kubelet's 30 s grace; an operator may have stepped down and
    // exited by itself already, its Lease renewals failing).
    for (deployment, pids) in &stoppable {
        for pid in pids.iter().filter(|p| running(**p)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let started = std::time::Instant::now();
        while pids.iter().any(|p| running(*p)) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{deployment} did not stop within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "{deployment} stopped {} ms after SIGTERM, API stopped",
            started.elapsed().as_millis()
        );
    }

    // The API returns, so does the pool: all recovers by itself.
    signal(apiserver, nix::sys::signal::Signal::SIGCONT);
    victim.restart_zfs().expect("restart zfs-fuse");
    // The stopped volume-manager could not report Offline (no API): the CV still says
    // Healthy until the restarted one reports; wait for the target itself.
    wait_for(
        "the restarted target serves",
        Duration::from_secs(180),
        || async {
            let said = qemu_io_any("vol-api", &["read -P 0x11 0 4M", "read -P 0x22 4M 4M"]);
            if said.contains("read 4194304/4194304") && !said.contains("fail") {
                Ok(())
            } else {
                Err(said)
            }
        },
    )
    .await;
    wait_healthy(&client, "vol-api", 3).await;
    qemu_io("vol-api", &["read -P 0x11 0 4M", "read -P 0x22 4M 4M"]);
    qemu_io("vol-api", &["write -P 0x44 8M 1M", "read -P 0x44 8M 1M"]);
    wait_for("replicas identical", Duration::from_secs(60), || async {
        let sums = replica_sums(&client, "vol-api").await;
        if sums.len() == 3 && sums.iter().all(|s| s == &sums[0]) {
            Ok(())
        } else {
            Err(format!("{sums:?}"))
        }
    })
    .await;
    delete_volume(&client, "vol-api").await;
}

/// Resize under a write load, then with one pool-manager stopped: the initiator sees the new
/// size only once every replica can hold it, no write fails on the way, and the CVC reports the
/// new capacity only after the target serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resize_waits_for_every_replica_and_is_reported_once_served() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[2]])).collect();
    kubectl_apply(&cspc("grow", pools));
    wait_online(&client, "grow", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-z",
        "--size",
        "32Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "grow",
    ]);
    wait_healthy(&client, "vol-z", 3).await;
    let cvcs: Api<cstor_api::cstor_v1::cvc::CStorVolumeConfig> =
        Api::namespaced(client.clone(), NS);
    let resize_to = |size: &str| {
        let patch = serde_json::json!({"spec": {"capacity": {"storage": size}}}).to_string();
        let (ok, out) = kubectl(
            &["patch", "cvc", "vol-z", "--type=merge", "-p", &patch],
            None,
        );
        assert!(ok, "{out}");
    };
    let reported = |size: &'static str, bytes: u64| {
        let cvcs = cvcs.clone();
        async move {
            let st = cvcs
                .get("vol-z")
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            let cap = st.capacity.get("storage").map(|q| q.0.clone());
            if cap.as_deref() == Some(size) && lun_bytes("vol-z") == bytes {
                Ok(())
            } else {
                Err(format!("capacity {cap:?}, conditions {:?}", st.conditions))
            }
        }
    };

    // 1. Under a write load: logged-in sessions of 40 paced writes each, so the LUN's re-open
    //    lands inside a session. Every write must succeed (the re-open holds I/O, it does not
    //    fail it), and each offset then reads back what was last written there.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut last = std::collections::BTreeMap::new();
            let (mut sessions, mut writes) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut cmds = Vec::new();
                for j in 0..40u32 {
                    let (mb, pattern) = ((sessions + j) % 24, (sessions * 40 + j) % 250 + 1);
                    cmds.push(format!("write -P {pattern} {mb}M 1M"));
                    cmds.push("sleep 25".to_string());
                    last.insert(mb, pattern);
                }
                let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
                let said = qemu_io_any("vol-z", &refs);
                assert!(
                    !said.contains("failed") && said.matches("wrote ").count() == 40,
                    "session {sessions} during the resize: {said}"
                );
                sessions += 1;
                writes += 40;
            }
            (sessions, writes, last)
        })
    };
    resize_to("64Mi");
    wait_for("resized to 64Mi", Duration::from_secs(120), || {
        reported("64Mi", 64 << 20)
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sessions, writes, last) = writer.join().expect("writer");
    eprintln!("{writes} writes in {sessions} sessions went on during the resize, none failed");
    assert!(sessions > 0);
    let checks: Vec<String> = last
        .iter()
        .map(|(mb, pattern)| format!("read -P {pattern} {mb}M 1M"))
        .collect();
    let refs: Vec<&str> = checks.iter().map(String::as_str).collect();
    let said = qemu_io_any("vol-z", &refs);
    assert!(
        !said.contains("failed") && !said.contains("Pattern verification"),
        "data written during the resize: {said}"
    );

    // 2. One pool-manager stopped: the LUN stays at 64Mi, the CVC says it is resizing and why.
    let cvr = cvrs_of(&client, "vol-z").await.remove(0);
    let pm = fault_stack().pods.pids_of(&pool_of(&cvr));
    assert!(!pm.is_empty(), "no pool-manager for {}", pool_of(&cvr));
    signal_pids(&pm, nix::sys::signal::Signal::SIGSTOP);
    resize_to("96Mi");
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    wait_for(
        "the target waits for the replica",
        Duration::from_secs(60),
        || async {
            let st = cvs
                .get("vol-z")
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            let waiting = st.conditions.iter().any(|c| {
                c.type_ == "Resizing"
                    && c.message
                        .contains("waiting for the pool-managers to grow replicas")
            });
            if waiting {
                Ok(())
            } else {
                Err(format!("{:?}", st.conditions))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        lun_bytes("vol-z"),
        64 << 20,
        "the initiator saw the size before every replica"
    );
    let st = cvcs
        .get("vol-z")
        .await
        .expect("cvc")
        .status
        .unwrap_or_default();
    assert_eq!(
        st.capacity.get("storage").map(|q| q.0.as_str()),
        Some("64Mi")
    );
    qemu_io("vol-z", &["write -P 0x7e 40M 1M", "read -P 0x7e 40M 1M"]);

    signal_pids(&pm, nix::sys::signal::Signal::SIGCONT);
    wait_for("resized to 96Mi", Duration::from_secs(180), || {
        reported("96Mi", 96 << 20)
    })
    .await;
    qemu_io(
        "vol-z",
        &[
            "write -P 0x6d 90M 1M",
            "read -P 0x6d 90M 1M",
            "read -P 0x7e 40M 1M",
        ],
    );
    wait_healthy(&client, "vol-z", 3).await;
    wait_for("replicas identical", Duration::from_secs(60), || async {
        let sums = replica_sums(&client, "vol-z").await;
        if sums.len() == 3 && sums.iter().all(|s| s == &sums[0]) {
            Ok(())
        } else {
            Err(format!("{sums:?}"))
        }
    })
    .await;
    delete_volume(&client, "vol-z").await;
}

/// No replica Healthy (their pools lost one after the other), even once the pools are back:
/// `cstor volume recover` refuses nothing is changed while one is Healthy, otherwise shows
/// the replicas with their write sequence, promotes the most recent one, and the others are
/// rebuilt from it; every write acknowledged before the losses reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_healthy_replica_is_recovered_under_supervision() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[2]])).collect();
    kubectl_apply(&cspc("rec", pools));
    wait_online(&client, "rec", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-rec",
        "--size",
        "32Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "rec",
    ]);
    wait_healthy(&client, "vol-rec", 3).await;
    qemu_io("vol-rec", &["write -P 0x15 0 4M"]);
    // While one replica is Healthy, recovery is refused.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_cstor"))
        .args(["volume", "recover", "vol-rec"])
        .env(
            "KUBECONFIG",
            cstor_local::testing::control_plane().kubeconfig(),
        )
        .output()
        .expect("cstor");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("is Healthy; the volume recovers from it by itself"),
        "{refused:?}"
    );

    // Lose one pool and write (acknowledged by the two others), then lose the other two at
    // once and write: that write fails on both, so no replica is Healthy, and the two
    // lost last hold a write the first one lacks.
    let nodes: Vec<_> = cvrs_of(&client, "vol-rec")
        .await
        .iter()
        .map(node_of)
        .collect();
    nodes[0].kill_zfs().expect("kill zfs-fuse");
    qemu_io("vol-rec", &["write -P 0x20 8M 1M"]);
    nodes[1].kill_zfs().expect("kill zfs-fuse");
    nodes[2].kill_zfs().expect("kill zfs-fuse");
    let lost = qemu_io_any("vol-rec", &["write -P 0x21 9M 1M"]);
    eprintln!("the write after the losses: {lost:?}");
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    wait_for("no replica Healthy", Duration::from_secs(60), || async {
        let st = cvs
            .get("vol-rec")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        if !st.replica_statuses.is_empty()
            && st.replica_statuses.iter().all(|r| r.mode != "Healthy")
        {
            Ok(())
        } else {
            Err(format!(
                "{} {:?}",
                st.phase,
                st.replica_statuses
                    .iter()
                    .map(|r| (&r.id, &r.mode))
                    .collect::<Vec<_>>()
            ))
        }
    })
    .await;
    for node in &nodes {
        node.restart_zfs().expect("restart zfs-fuse");
    }
    // The pools are back, yet nothing is trusted: the volume stays down by itself.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let st = cvs
        .get("vol-rec")
        .await
        .expect("cv")
        .status
        .unwrap_or_default();
    assert!(
        st.replica_statuses.iter().all(|r| r.mode != "Healthy"),
        "{st:?}"
    );

    let said = cstor(&["volume", "recover", "vol-rec"]);
    eprintln!("{said}");
    assert!(
        said.contains("<- promoted") && said.contains("WRITE SEQ"),
        "{said}"
    );
    wait_healthy(&client, "vol-rec", 3).await;
    // Both the writes before the losses and the one acknowledged by two replicas read back.
    qemu_io("vol-rec", &["read -P 0x15 0 4M", "read -P 0x20 8M 1M"]);
    qemu_io("vol-rec", &["write -P 0x33 12M 1M", "read -P 0x33 12M 1M"]);
    let cv = cvs.get("vol-rec").await.expect("cv");
    assert!(
        !cv.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("cstor.openebs.io/recover-from"),
        "the recovery annotation is removed once done"
    );
    wait_for("replicas identical", Duration::from_secs(60), || async {
        let sums = replica_sums(&client, "vol-rec").await;
        if sums.len() == 3 && sums.iter().all(|s| s == &sums[0]) {
            Ok(())
        } else {
            Err(format!("{sums:?}"))
        }
    })
    .await;
    delete_volume(&client, "vol-rec").await;
}
