//! Migration load run: per round, an SPC-era installation made for real on the local stack (a
//! 3-node striped SPC, one old pool `cstor-<CSP UID>` per node, a 3-replica 64 MiB volume of the
//! old provisioner with its data on those pools), then the wall time of the pool's
//! MigrationTask (created → Success) and of the volume's (created → Success: claim, PV and
//! StorageClass recreated, CVC Bound, volume Healthy, old objects gone), beside the bare ZFS
//! work a migration cannot avoid (`zpool export` + `zpool import OLD NEW` of a same-sized pool
//! on the three nodes in parallel). `BENCH_ROUNDS` (default 3) rounds; medians reported.
//!
//! cargo bench --profile dev -p cstor --bench migration

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::migration::*;
use common::*;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `zpool create` on disk `d` of the three nodes, then the timed export + renaming import.
fn bare_rename(d: usize, round: usize) -> f64 {
    let old = format!("bench-old-{round}");
    let new = format!("bench-new-{round}");
    for n in 1..=3 {
        let disk = node(n).disk(d).to_string_lossy().into_owned();
        node(n)
            .zpool(&["create", "-f", "-O", "canmount=off", &old, &disk])
            .expect("zpool create");
    }
    let started = Instant::now();
    let handles: Vec<_> = (1..=3)
        .map(|n| {
            let (old, new) = (old.clone(), new.clone());
            let dir = node(n).disks_dir().to_string_lossy().into_owned();
            std::thread::spawn(move || {
                node(n).zpool(&["export", &old]).expect("export");
                node(n)
                    .zpool(&["import", "-d", &dir, &old, &new])
                    .expect("import with rename");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("rename thread");
    }
    let secs = started.elapsed().as_secs_f64();
    for n in 1..=3 {
        let _ = node(n).zpool(&["destroy", "-f", &new]);
    }
    secs
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    stack();
    let client = admin().await;
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .clamp(1, 3);
    let mut rng = Rng::from_env_or_clock("bench data");
    let kubelet = old_kubelet(client.clone());
    let (mut pools, mut volumes, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let spc = format!("bench-spc-{round}");
        let disk = round + 1;
        let lun = OldLun {
            size: 64 << 20,
            pattern: vec![0x5a, 0xa5],
        };
        let old = make_old_install(
            &client,
            &mut rng,
            &spc,
            "striped",
            &[
                (1, vec![vec![disk]]),
                (2, vec![vec![disk]]),
                (3, vec![vec![disk]]),
            ],
            false,
            85,
            Some(&lun),
        )
        .await;
        let started = Instant::now();
        start_task(&client, &spc, None).await;
        let t = wait_ended(&client, &spc, Duration::from_secs(300)).await;
        assert_eq!(t.status.phase, "Success", "{}", steps_of(&t));
        pools.push(started.elapsed().as_secs_f64());

        // Each round's volume has its own StorageClass and claim names.
        let objects: Vec<serde_json::Value> = old_volume_objects(&old.pv, false)
            .into_iter()
            .map(|o| {
                let text = o
                    .to_string()
                    .replace("openebs-cstor-old", &format!("openebs-cstor-old-{round}"))
                    .replace("\"name\":\"data\"", &format!("\"name\":\"data-{round}\""));
                serde_json::from_str(&text).expect("object")
            })
            .collect();
        kubectl(&["create", "namespace", "app"], None);
        cstor_local::components::apply(&client, &objects)
            .await
            .expect("old volume objects");
        let started = Instant::now();
        let name = start_volume_task(&client, &old.pv).await;
        let t = wait_task(&client, &name, Duration::from_secs(300)).await;
        assert_eq!(t.status.phase, "Success", "{}", steps_of(&t));
        volumes.push(started.elapsed().as_secs_f64());
        volumes::wait_healthy(&client, &old.pv, 3).await;
        volumes::qemu_io(&old.pv, &["read -P 90 0 1M", "read -P 165 1M 1M"]);

        bare.push(bare_rename(8 - round, round));
        eprintln!(
            "round {round}: pool {:.2} s, volume {:.2} s, bare export+import on 3 nodes {:.3} s",
            pools[round], volumes[round], bare[round]
        );
    }
    kubelet.abort();
    let (p, v, b) = (median(&mut pools), median(&mut volumes), median(&mut bare));
    println!(
        "| rounds | 3-pool SPC → Success (median) | 3-replica volume → Success (median) | bare export + renaming import, 3 nodes (median) |"
    );
    println!("|---|---|---|---|");
    println!("| {rounds} | {p:.2} s | {v:.2} s | {b:.3} s |");
}
