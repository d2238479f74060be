//! Nothing destroyed by mistake, on the real apiserver, operators and zfs-fuse: destructive
//! steps re-check, live, right before they act (docs/pools.md "Deleting a pool cluster").

mod common;

use std::time::Duration;

use common::*;
use cstor_api::cstor_v1::{CStorPoolCluster, CStorPoolInstance, CStorVolumeConfig};
use kube::Api;
use serde_json::json;

const OPERATOR: &str = "--as=system:serviceaccount:openebs:cstor-cvc-operator";
const CSPC_OPERATOR: &str = "--as=system:serviceaccount:openebs:cstor-cspc-operator";
const MASTERS: &str = "--as-group=system:masters";

/// A replica placed on a pool just after admission let its CSPC's delete through (its cache
/// was behind) is simulated by an operator-made CVR while the deletion is paused. The
/// cspc-operator re-counts replicas live and waits with a reason instead of deleting the
/// CSPI; a CSPI deleted anyway is not destroyed by its pool-manager while the CVR names it;
/// a volume asked for meanwhile is not placed on the dying pools. Once the replica is gone
/// the deletion completes and the disks are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_placed_during_a_pool_cluster_delete_is_never_destroyed_with_it() {
    fault_stack();
    let client = admin().await;
    kubectl_apply(&cspc("gone", vec![pool(1, "stripe", &[&[1]])]));
    let cspi = wait_online(&client, "gone", 1).await.remove(0);
    let cspi_name = cspi.metadata.name.clone().expect("name");
    let zpool = zpool_of(&client, "gone").await;

    // Pause the operator, delete the CSPC (admission sees no replica), then a replica lands.
    let (ok, out) = kubectl(
        &[
            "annotate",
            "cspc",
            "gone",
            "reconcile.openebs.io/disable=true",
        ],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&["delete", "cspc", "gone", "--wait=false"], None);
    assert!(ok, "{out}");
    let cvr = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": format!("vol-late-{cspi_name}"), "namespace": "openebs",
                     "labels": {"cstorpoolinstance.openebs.io/name": cspi_name,
                                "cstorpoolinstance.openebs.io/uid": cspi.metadata.uid.clone().expect("uid"),
                                "openebs.io/persistent-volume": "vol-late"}},
        "spec": {"capacity": "16Mi"},
    });
    let (ok, out) = kubectl(
        &[OPERATOR, MASTERS, "apply", "-f", "-"],
        Some(cvr.to_string()),
    );
    assert!(ok, "{out}");

    // A volume asked for now is not placed on a pool cluster being deleted.
    common::volumes::cstor(&[
        "volume",
        "create",
        "vol-new",
        "--size",
        "16Mi",
        "--replicas",
        "1",
        "--pool-cluster",
        "gone",
    ]);
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), "openebs");
    wait_for(
        "vol-new refused placement on the dying pool cluster",
        Duration::from_secs(60),
        || async {
            let cvc = cvcs.get("vol-new").await.map_err(|e| e.to_string())?;
            let conds = cvc.status.clone().unwrap_or_default().conditions;
            match conds.iter().find(|c| c.type_ == "PoolPlacement") {
                Some(c) if c.reason == "PoolClusterDeleting" => {
                    assert_eq!(
                        c.message,
                        "CStorPoolCluster gone is being deleted: no replica is placed on its pools"
                    );
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // Resume: the operator counts the replica live and waits, saying why.
    let (ok, out) = kubectl(
        &["annotate", "cspc", "gone", "reconcile.openebs.io/disable-"],
        None,
    );
    assert!(ok, "{out}");
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), "openebs");
    wait_for(
        "the deletion waits for the replica",
        Duration::from_secs(60),
        || async {
            let c = cspcs.get("gone").await.map_err(|e| e.to_string())?;
            let conds = c.status.clone().unwrap_or_default().conditions;
            match conds.iter().find(|c| c.type_ == "PoolsProvisioned") {
                Some(c) if c.reason == "ReplicasOnPool" => {
                    assert!(
                        c.message.contains(&format!(
                            "{cspi_name}: 1 volume replica(s) still live on it (vol-late-{cspi_name})"
                        )),
                        "{}",
                        c.message
                    );
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let cspis: Api<CStorPoolInstance> = Api::namespaced(client.clone(), "openebs");
    let kept = cspis.get(&cspi_name).await.expect("the CSPI is kept");
    assert!(kept.metadata.deletion_timestamp.is_none(), "CSPI deleted");
    assert!(has_zpool(1, &zpool), "pool destroyed");

    // Deleted anyway (by the operator's account): its pool-manager re-checks and refuses.
    let (ok, out) = kubectl(
        &[
            CSPC_OPERATOR,
            MASTERS,
            "delete",
            "cspi",
            &cspi_name,
            "--wait=false",
        ],
        None,
    );
    assert!(ok, "{out}");
    wait_for(
        "the pool-manager refuses to destroy a pool a replica names",
        Duration::from_secs(60),
        || async {
            let c = cspis.get(&cspi_name).await.map_err(|e| e.to_string())?;
            let phase = c.status.clone().unwrap_or_default().phase;
            if phase == "DeletionFailed" {
                Ok(())
            } else {
                Err(phase)
            }
        },
    )
    .await;
    assert!(has_zpool(1, &zpool), "pool destroyed");

    // The replica goes: everything completes by itself.
    let (ok, out) = kubectl(
        &[
            OPERATOR,
            MASTERS,
            "delete",
            "cvr",
            &format!("vol-late-{cspi_name}"),
            "--wait=false",
        ],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&["delete", "cvc", "vol-new", "--wait=false"], None);
    assert!(ok, "{out}");
    wait_for(
        "the CSPC and its pool gone",
        Duration::from_secs(120),
        || async {
            let left = cspcs.get_opt("gone").await.map_err(|e| e.to_string())?;
            if left.is_none() && !has_zpool(1, &zpool) {
                Ok(())
            } else {
                Err(format!(
                    "cspc {:?}, pool there {}",
                    left.map(|c| c.status),
                    has_zpool(1, &zpool)
                ))
            }
        },
    )
    .await;
    wait_disks_free(&client, &[(1, 1)]).await;
}

/// A claim deleted while its disk is in a live pool: the BlockDevice stays Claimed (the pool's
/// finalizer still holds the claim) and the pool stays ONLINE; deleting the pool cluster
/// releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disk_in_a_live_pool_stays_claimed_when_its_claim_is_deleted() {
    fault_stack();
    let client = admin().await;
    kubectl_apply(&cspc("held", vec![pool(2, "stripe", &[&[1]])]));
    let cspi = wait_online(&client, "held", 1).await.remove(0);
    let bds: Api<cstor_api::openebs_v1alpha1::BlockDevice> = Api::namespaced(client.clone(), NS);
    let disk = bds.get(&bd(2, 1)).await.expect("bd");
    let claim = disk
        .spec
        .claim_ref
        .as_ref()
        .and_then(|r| r.name.clone())
        .expect("claimed");
    let (ok, out) = kubectl(&["delete", "bdc", &claim, "--wait=false"], None);
    assert!(ok, "{out}");
    // Give claim binding every chance to (wrongly) release it.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let disk = bds.get(&bd(2, 1)).await.expect("bd");
    assert_eq!(disk.status.claim_state, "Claimed");
    assert_eq!(
        disk.spec.claim_ref.and_then(|r| r.name).as_deref(),
        Some(claim.as_str())
    );
    let cspis: Api<CStorPoolInstance> = Api::namespaced(client.clone(), NS);
    let now = cspis
        .get(cspi.metadata.name.as_deref().expect("name"))
        .await
        .expect("cspi");
    assert_eq!(now.status.unwrap_or_default().phase, "ONLINE");
    delete_and_verify_clean(&client, "held", &[(2, 1)]).await;
}

/// The webhook process (`cstor webhook`) of the stack: the one listening on `port`.
fn webhook_pid(port: u16) -> u32 {
    let listen = format!("127.0.0.1:{port}");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.contains(&b"webhook".as_slice()) && args.contains(&listen.as_bytes())
            })
        })
        .expect("the webhook process")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A webhook that can't be starved: a few hundred idle, slow-handshake and slow-body
/// connections (3 MiB bodies at 2 KiB/s, small ones at 100 B/s; bounded in count and time,
/// loopback only) while kubectl's CSPC applies still get their answers, the exact denial
/// included, well within the webhook's 10 s; idle connections are closed by the server; the
/// process stays under the Deployment's 128 Mi.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_answers_kubectl_under_idle_and_slow_connections() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let port = fault_stack().webhook_port;
    let pid = webhook_pid(port);
    let dir = tempfile::tempdir().expect("tmp");
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 3 << 20]).expect("big body");
    let small = dir.path().join("small.json");
    std::fs::write(&small, vec![b' '; 8 << 10]).expect("small body");
    let url = format!("https://127.0.0.1:{port}/validate");
    let curl = |file: &std::path::Path, rate: &str| {
        Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "25",
                "--limit-rate",
                rate,
                "-X",
                "POST",
            ])
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl (Debian curl) is required")
    };
    let base_rss = rss_kib(pid);
    let mut idle = Vec::new();
    for i in 0..250 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        if i % 5 == 0 {
            // A TLS record header and nothing more: a handshake that never completes.
            let _ = s.write_all(&[0x16, 0x03]);
        }
        idle.push(s);
    }
    let mut slow: Vec<_> = (0..50).map(|_| curl(&big, "2K")).collect();
    slow.extend((0..30).map(|_| curl(&small, "100")));
    let started = std::time::Instant::now();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(base_rss));
    let sampler = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            while started.elapsed() < Duration::from_secs(12) {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let good = cspc("flood", vec![pool(3, "stripe", &[&[2]])]).to_string();
    let mut bad = cspc("flood", vec![pool(3, "stripe", &[&[2]])]);
    bad["spec"]["pools"][0]["poolConfig"]["dataRaidGroupType"] = serde_json::json!("raid5");
    for round in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = std::time::Instant::now();
        let (ok, out) = kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(good.clone()),
        );
        let took = t.elapsed();
        eprintln!(
            "round {round}: kubectl apply answered in {} ms",
            took.as_millis()
        );
        assert!(ok, "{out}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        let (ok, out) = kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(bad.to_string()),
        );
        assert!(!ok);
        assert!(
            out.contains("invalid pool spec: unsupported dataRaidGroupType 'raid5' specified"),
            "{out}"
        );
    }
    // The server closed the connections that never sent a request.
    // The server closes the connections that never sent a request (5 s handshake timeout);
    // on a busy machine its timers may fire a little late, so look for up to 20 s.
    let is_closed = |s: &mut std::net::TcpStream| {
        use std::io::{ErrorKind, Read};
        s.set_read_timeout(Some(Duration::from_millis(50))).ok();
        let mut buf = [0u8; 256];
        // EOF or a reset is closed; a TLS alert first is read past.
        for _ in 0..4 {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false;
                }
                Err(_) => return true,
            }
        }
        false
    };
    let mut open = idle;
    let total = open.len();
    let looking = std::time::Instant::now();
    while !open.is_empty() && looking.elapsed() < Duration::from_secs(20) {
        open.retain_mut(|s| !is_closed(s));
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let closed = total - open.len();
    sampler.join().expect("sampler");
    for mut c in slow {
        let _ = c.kill();
        let _ = c.wait();
    }
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "webhook RSS: {} MiB before, {} MiB at peak; {closed}/{total} idle connections closed by the server",
        base_rss / 1024,
        peak / 1024,
    );
    assert!(peak < 128 * 1024, "RSS {peak} KiB over the 128 Mi limit");
    assert_eq!(closed, total, "idle connections left open");
}

/// Node agents act on their own objects only: each pool-manager runs as its own
/// ServiceAccount, and one node's account can't write another node's CSPI or replicas (the
/// ValidatingAdmissionPolicy of deploy/pool-manager), while writing its own works; the same
/// for a volume target and CStorVolumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_agents_account_writes_only_its_own_objects() {
    fault_stack();
    let client = admin().await;
    kubectl_apply(&cspc(
        "own",
        vec![pool(1, "stripe", &[&[2]]), pool(2, "stripe", &[&[2]])],
    ));
    wait_online(&client, "own", 2).await;
    let (a, b) = (
        cspi_on(&client, "own", 1).await,
        cspi_on(&client, "own", 2).await,
    );
    let (a, b) = (
        a.metadata.name.expect("name"),
        b.metadata.name.expect("name"),
    );
    let bds: Api<cstor_api::openebs_v1alpha1::BlockDevice> = Api::namespaced(client.clone(), NS);
    // The pool-managers run as their own accounts, made by the operator.
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), NS);
    let account = deploys
        .get(&b)
        .await
        .expect("deployment")
        .spec
        .template
        .spec
        .and_then(|p| p.service_account_name);
    assert_eq!(account, Some(format!("cstor-pool-manager-{b}")));
    let as_b = format!("--as=system:serviceaccount:{NS}:cstor-pool-manager-{b}");
    let label = r#"{"metadata":{"labels":{"cstor.test/touched":"yes"}}}"#;
    let (ok, out) = kubectl(
        &[&as_b, "patch", "cspi", &a, "--type=merge", "-p", label],
        None,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "pool-manager {b} may write only its own CStorPoolInstance, not {a}"
        )),
        "{out}"
    );
    let (ok, out) = kubectl(
        &[&as_b, "patch", "cspi", &b, "--type=merge", "-p", label],
        None,
    );
    assert!(ok, "its own CSPI: {out}");
    // A replica on node 1's pool, written with node 2's account.
    let cvr = serde_json::json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": format!("vol-x-{a}"), "namespace": NS,
                     "labels": {"cstorpoolinstance.openebs.io/name": a, "openebs.io/persistent-volume": "vol-x"}},
        "spec": {"capacity": "16Mi"},
    });
    let (ok, out) = kubectl(
        &[
            "--as=system:serviceaccount:openebs:cstor-cvc-operator",
            "--as-group=system:masters",
            "apply",
            "-f",
            "-",
        ],
        Some(cvr.to_string()),
    );
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &[
            &as_b,
            "patch",
            "cvr",
            &format!("vol-x-{a}"),
            "--type=merge",
            "-p",
            label,
        ],
        None,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "pool-manager {b} may write only the replicas on its own pool, not vol-x-{a}"
        )),
        "{out}"
    );
    // A claim of another pool cluster (a disk it does not own), with node 2's account; a
    // claim of its own pool cluster is fine.
    let foreign = serde_json::json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
        "metadata": {"name": "bdc-elsewhere", "namespace": NS,
                     "labels": {"openebs.io/cstor-pool-cluster": "elsewhere"}},
        "spec": {"blockDeviceName": "bd-not-there", "resources": {"requests": {"storage": "1Mi"}}},
    });
    kubectl_apply(&foreign);
    let (ok, out) = kubectl(
        &[
            &as_b,
            "patch",
            "bdc",
            "bdc-elsewhere",
            "--type=merge",
            "-p",
            label,
        ],
        None,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "pool-manager {b} may write only the claims of its own pool cluster, not bdc-elsewhere"
        )),
        "{out}"
    );
    let own_claim = bds
        .get(&bd(2, 2))
        .await
        .expect("bd")
        .spec
        .claim_ref
        .and_then(|r| r.name)
        .expect("claimed");
    let (ok, out) = kubectl(
        &[
            &as_b,
            "patch",
            "bdc",
            &own_claim,
            "--type=merge",
            "-p",
            label,
        ],
        None,
    );
    assert!(ok, "a claim of its own pool cluster: {out}");
    let (ok, out) = kubectl(&["delete", "bdc", "bdc-elsewhere", "--wait=false"], None);
    assert!(ok, "{out}");

    // A volume target's account and another volume's CStorVolume (RBAC granted through
    // system:masters here, so the policy alone decides).
    common::volumes::cstor(&[
        "volume",
        "create",
        "vol-own",
        "--size",
        "16Mi",
        "--replicas",
        "1",
        "--pool-cluster",
        "own",
    ]);
    let cvs: Api<cstor_api::cstor_v1::cv::CStorVolume> = Api::namespaced(client.clone(), NS);
    wait_for("the CStorVolume", Duration::from_secs(60), || async {
        cvs.get_opt("vol-own")
            .await
            .map_err(|e| e.to_string())?
            .map(|_| ())
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    let (ok, out) = kubectl(
        &[
            &format!("--as=system:serviceaccount:{NS}:cstor-volume-manager-vol-other"),
            "--as-group=system:masters",
            "patch",
            "cstorvolume",
            "vol-own",
            "--type=merge",
            "-p",
            label,
        ],
        None,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("volume-manager vol-other may write only its own CStorVolume, not vol-own"),
        "{out}"
    );
    // Cleanup: the replica, the volume, the pools.
    let (ok, out) = kubectl(
        &[
            "--as=system:serviceaccount:openebs:cstor-cvc-operator",
            "--as-group=system:masters",
            "delete",
            "cvr",
            &format!("vol-x-{a}"),
            "--wait=false",
        ],
        None,
    );
    assert!(ok, "{out}");
    common::volumes::delete_volume(&client, "vol-own").await;
    delete_and_verify_clean(&client, "own", &[(1, 2), (2, 2)]).await;
}

/// Who may log in to a volume's target: with `--initiators` and `--chap-secret` (the Secret's
/// `username` / `password`), only the named initiator presenting those CHAP credentials gets
/// in; without them, or under another initiator name, the login is refused (libiscsi's
/// `iscsi-inq` as the initiator).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_admits_only_the_named_initiator_with_its_chap_credentials() {
    fault_stack();
    let client = admin().await;
    kubectl_apply(&cspc("chap", vec![pool(3, "stripe", &[&[1]])]));
    wait_online(&client, "chap", 1).await;
    let (ok, out) = kubectl(
        &[
            "create",
            "secret",
            "generic",
            "vol-chap-chap",
            "--from-literal=username=alice",
            "--from-literal=password=s3cret-pass-12",
        ],
        None,
    );
    assert!(ok, "{out}");
    common::volumes::cstor(&[
        "volume",
        "create",
        "vol-chap",
        "--size",
        "16Mi",
        "--replicas",
        "1",
        "--pool-cluster",
        "chap",
        "--initiators",
        "iqn.2024-01.io.cstor.test:allowed",
        "--chap-secret",
        "vol-chap-chap",
    ]);
    common::volumes::wait_healthy(&client, "vol-chap", 1).await;
    let port = fault_stack().iscsi_port;
    let target = "iqn.2016-09.com.openebs.cstor:vol-chap/1";
    let inq = |initiator: &str, creds: &str| {
        let out = std::process::Command::new("iscsi-inq")
            .args(["-i", initiator])
            .arg(format!("iscsi://{creds}127.0.0.1:{port}/{target}"))
            .output()
            .expect("iscsi-inq (Debian libiscsi-bin) is required");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let allowed = "iqn.2024-01.io.cstor.test:allowed";
    let (ok, out) = inq(allowed, "alice%s3cret-pass-12@");
    assert!(ok, "the named initiator with its credentials: {out}");
    let (ok, out) = inq(allowed, "");
    assert!(!ok, "no CHAP credentials: {out}");
    let (ok, out) = inq(allowed, "alice%wrong-pass-123@");
    assert!(!ok, "a wrong password: {out}");
    let (ok, out) = inq("iqn.2024-01.io.cstor.test:other", "alice%s3cret-pass-12@");
    assert!(!ok, "another initiator: {out}");
    common::volumes::delete_volume(&client, "vol-chap").await;
    delete_and_verify_clean(&client, "chap", &[(3, 1)]).await;
}
