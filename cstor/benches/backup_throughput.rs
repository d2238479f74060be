//! Backup load run, in one run: a 1 GiB volume filled with data is backed up through the
//! REST API to a listener that counts the bytes (as the plugin's would store them), beside a raw
//! `zfs send` of the same snapshot on the same node read to the end, and the ratio; the stream
//! restored through the API into a new 3-replica volume (every pool receives it), beside a raw
//! `zfs recv` of it on one node; then the write hold of snapshots taken while a logged-in
//! initiator writes (p50 and max).
//! `BENCH_ROUNDS` (default 3) rounds of the backup; the median is reported.
//!
//! cargo bench --profile dev -p cstor --bench backup_throughput

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::volumes::*;
use common::*;

const CSPC: &str = "bench-backup";
const VOLUME: &str = "vol-bench-bk";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A listener that reads every connection to its end and counts the bytes.
fn counting_listener() -> (u16, std::sync::mpsc::Receiver<u64>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 20];
                let mut n = 0u64;
                while let Ok(k) = c.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                let _ = tx.send(n);
            });
        }
    });
    (port, rx)
}

async fn backup_done(body: &str) -> Duration {
    let started = Instant::now();
    let (code, said) = plugin_call("POST", "/latest/backups/", Some(body));
    assert_eq!(code, 200, "{said}");
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (code, said) = plugin_call("GET", "/latest/backups/", Some(body));
        if code != 200 {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&said).expect("json");
        match v["status"].as_str() {
            Some("Done") => return started.elapsed(),
            Some("Failed") | Some("Invalid") => panic!("backup failed: {said}"),
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "backup too slow"
        );
    }
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let client = admin().await;
        volume_stack();
        let pools = (1..=3).map(|n| pool(n, "stripe", &[&[1]])).collect();
        kubectl_apply(&cspc(CSPC, pools));
        wait_online(&client, CSPC, 3).await;
        cstor(&["volume", "create", VOLUME, "--size", "1Gi", "--replicas", "3", "--pool-cluster", CSPC]);
        wait_healthy(&client, VOLUME, 3).await;
        // 1 GiB of non-zero data (zfs-fuse would store zeros as holes).
        qemu_io(VOLUME, &["write -P 0x5a 0 1G"]);
        let pool = zpool_of(&client, CSPC).await;
        let dataset = format!("{pool}/{VOLUME}");
        let (port, sizes) = counting_listener();
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let snap = format!("bench{round}");
            let body = backup_body(NS, &snap, VOLUME, &snap, &format!("127.0.0.1:{port}"), false);
            let took = backup_done(&body).await;
            let bytes = sizes.recv_timeout(Duration::from_secs(30)).expect("stream size");
            ours.push(bytes as f64 / took.as_secs_f64() / 1e6);
            // The same snapshot sent raw on the node that sent it, read to the end.
            let backups: kube::Api<cstor_api::cstor_v1::backup::CStorBackup> =
                kube::Api::namespaced(client.clone(), NS);
            let b = backups.get(&format!("{snap}-{VOLUME}")).await.expect("backup");
            let cspi = b.metadata.labels.unwrap_or_default()["cstorpoolinstance.openebs.io/name"].clone();
            let cvr = cvrs_of(&client, VOLUME)
                .await
                .into_iter()
                .find(|c| c.metadata.labels.as_ref().and_then(|l| l.get("cstorpoolinstance.openebs.io/name")) == Some(&cspi))
                .expect("the sending replica");
            let host = cvr.metadata.annotations.as_ref().and_then(|a| a.get("cstorpoolinstance.openebs.io/hostname")).cloned().expect("host");
            let node = volume_stack().nodes.iter().find(|n| n.name == host).expect("node");
            let started = Instant::now();
            let out = node
                .command("sh")
                .args(["-c", &format!("zfs send {dataset}@{snap} | wc -c")])
                .output()
                .expect("zfs send");
            let secs = started.elapsed().as_secs_f64();
            let raw_bytes: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("wc");
            raw.push(raw_bytes / secs / 1e6);
            println!(
                "round {round}: backup {bytes} bytes in {:.2} s ({:.1} MB/s, POST to Done); raw zfs send {:.1} MB/s",
                took.as_secs_f64(),
                ours[round],
                raw[round]
            );
            let del = format!("/latest/backups/{snap}?namespace={NS}&schedule={snap}&volume={VOLUME}");
            assert_eq!(plugin_call("DELETE", &del, None).0, 200);
        }
        let (o, r) = (median(&mut ours), median(&mut raw));
        println!("backup median {o:.1} MB/s, raw zfs send median {r:.1} MB/s, ratio {:.2}", o / r);

        // Restore: the stream stored, then served to every pool of a new volume.
        let stream = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = l.local_addr().expect("addr").port();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                if let Some(Ok(mut c)) = l.incoming().next() {
                    let mut data = Vec::new();
                    let _ = c.read_to_end(&mut data);
                    let _ = tx.send(data);
                }
            });
            let body = backup_body(NS, "bench-rs", VOLUME, "bench-rs", &format!("127.0.0.1:{port}"), false);
            backup_done(&body).await;
            rx.recv_timeout(Duration::from_secs(60)).expect("stream")
        };
        let stream_bytes = stream.len();
        let file = std::env::temp_dir().join(format!("bench-stream-{}", std::process::id()));
        std::fs::write(&file, &stream).expect("stream file");
        let serve_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = l.local_addr().expect("addr").port();
            let stream = std::sync::Arc::new(stream);
            std::thread::spawn(move || {
                use std::io::Write;
                for c in l.incoming().flatten() {
                    let stream = stream.clone();
                    std::thread::spawn(move || {
                        let mut c = c;
                        let _ = c.write_all(&stream);
                    });
                }
            });
            port
        };
        apply_restore_volume("vol-bench-rs", CSPC, "1Gi");
        wait_awaiting_restore(&client, "vol-bench-rs").await;
        let restore = serde_json::json!({"metadata": {"namespace": NS},
            "spec": {"restoreName": "bench-rs", "volumeName": "vol-bench-rs",
                     "restoreSrc": format!("127.0.0.1:{serve_port}")}})
        .to_string();
        let started = Instant::now();
        assert_eq!(plugin_call("POST", "/latest/restore/", Some(&restore)).0, 200);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let said = plugin_call("GET", "/latest/restore/", Some(&restore)).1;
            if said == "\"Done\"" {
                break;
            }
            assert!(said != "\"Failed\"", "restore failed");
            assert!(started.elapsed() < Duration::from_secs(900), "restore too slow");
        }
        let restore_secs = started.elapsed().as_secs_f64();
        let node = &volume_stack().nodes[0];
        let started = Instant::now();
        let out = node
            .command("zfs")
            .args(["recv", "-F", &format!("{pool}/bench-raw-recv")])
            .stdin(std::fs::File::open(&file).expect("stream file"))
            .output()
            .expect("zfs recv");
        let raw_secs = started.elapsed().as_secs_f64();
        assert!(out.status.success(), "{out:?}");
        let _ = std::fs::remove_file(&file);
        let mb = stream_bytes as f64 / 1e6;
        println!(
            "restore of {mb:.0} MB into 3 replicas (POST to Done): {restore_secs:.2} s ({:.1} MB/s per replica); raw zfs recv on one node: {raw_secs:.2} s ({:.1} MB/s); ratio {:.2}",
            mb / restore_secs,
            mb / raw_secs,
            raw_secs / restore_secs
        );
        for _ in 0..20 {
            if node.zfs(&["destroy", "-r", &format!("{pool}/bench-raw-recv")]).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        // The write hold of snapshots under a writer.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let mut cmds = Vec::new();
                    for j in 0..40u32 {
                        cmds.push(format!("write -P {} {}k 64k", j % 250 + 1, (j % 64) * 64));
                        cmds.push("sleep 10".to_string());
                    }
                    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
                    qemu_io(VOLUME, &refs);
                }
            })
        };
        let mut held = Vec::new();
        for k in 0..10 {
            let said = cstor(&["volume", "snapshot", VOLUME, &format!("hold{k}")]);
            let ms: f64 = said
                .split("writes held ")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .expect("hold time");
            held.push(ms);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = writer.join();
        held.sort_by(|a, b| a.total_cmp(b));
        println!(
            "snapshot write hold over 10 snapshots under a writer: p50 {:.0} ms, max {:.0} ms",
            held[held.len() / 2],
            held[held.len() - 1]
        );
        delete_volume(&client, "vol-bench-rs").await;
        delete_volume(&client, VOLUME).await;
    });
}
