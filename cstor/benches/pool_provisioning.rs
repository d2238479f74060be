//! Pool provisioning load run: time from `kubectl apply` of a 3-node mirror CSPC to all CSPIs
//! ONLINE, beside the same three `zpool create`s run directly (in parallel, one per node, as the
//! pool-managers run them), as a ratio in one run; and the resident memory of the operator and
//! pool-manager processes. `BENCH_ROUNDS` (default 5) rounds; the median is reported.
//!
//! cargo bench -p cstor --bench pool_provisioning

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The three `zpool create`s of the CSPC, run directly on the nodes in parallel.
fn direct_round(round: usize) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (1..=NODES)
        .map(|n| {
            std::thread::spawn(move || {
                let node = node(n);
                let pool = format!("bench-direct-{round}");
                let cache = node.dir.join("bench.cache");
                let d1 = node.disk(1).to_string_lossy().into_owned();
                let d2 = node.disk(2).to_string_lossy().into_owned();
                node.zpool(&[
                    "create",
                    "-o",
                    &format!("cachefile={}", cache.display()),
                    "-O",
                    "compression=on",
                    "-O",
                    "canmount=off",
                    &pool,
                    "mirror",
                    &d1,
                    &d2,
                ])
                .unwrap_or_else(|e| panic!("direct create on node {n}: {e}"));
                node.zpool(&["list", "-H", "-o", "health", &pool])
                    .unwrap_or_else(|e| panic!("direct list on node {n}: {e}"));
            })
        })
        .collect();
    for h in handles {
        h.join().expect("direct create thread");
    }
    let took = started.elapsed();
    for n in 1..=NODES {
        node(n)
            .zpool(&["destroy", &format!("bench-direct-{round}")])
            .unwrap_or_else(|e| panic!("destroy on node {n}: {e}"));
    }
    took
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    stack();
    let disks: Vec<(usize, usize)> = (1..=NODES).flat_map(|n| [(n, 1), (n, 2)]).collect();
    let mut operator_s = Vec::new();
    let mut direct_s = Vec::new();
    let mut ratios = Vec::new();
    let mut operator_rss = 0;
    let mut manager_rss = Vec::new();
    for round in 0..rounds {
        let (took, rss) = rt.block_on(async {
            let client = admin().await;
            wait_disks_free(&client, &disks).await;
            let name = format!("bench-{round}");
            let pools = (1..=NODES).map(|n| pool(n, "mirror", &[&[1, 2]])).collect();
            let started = Instant::now();
            kubectl_apply(&cspc(&name, pools));
            let cspis = wait_online(&client, &name, NODES).await;
            let took = started.elapsed();
            let ops: u64 = stack()
                .pods
                .pids_of("cstor-cspc-operator")
                .into_iter()
                .map(rss_kib)
                .max()
                .unwrap_or(0);
            let managers: Vec<u64> = cspis
                .iter()
                .flat_map(|c| {
                    stack()
                        .pods
                        .pids_of(c.metadata.name.as_deref().unwrap_or(""))
                })
                .map(rss_kib)
                .collect();
            delete_and_verify_clean(&client, &name, &disks).await;
            (took, (ops, managers))
        });
        let direct = direct_round(round);
        let ratio = took.as_secs_f64() / direct.as_secs_f64();
        println!(
            "round {round}: operator path {:.2}s, direct zpool create {:.3}s, ratio {ratio:.1}",
            took.as_secs_f64(),
            direct.as_secs_f64()
        );
        operator_s.push(took.as_secs_f64());
        direct_s.push(direct.as_secs_f64());
        ratios.push(ratio);
        operator_rss = operator_rss.max(rss.0);
        manager_rss.extend(rss.1);
    }
    let manager_max = manager_rss.iter().copied().max().unwrap_or(0);
    println!(
        "\n| rounds | apply → 3 CSPIs ONLINE (median) | 3 direct zpool creates (median) | ratio (median) | operator RSS (max) | pool-manager RSS (max) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {rounds} | {:.2} s | {:.3} s | {:.1}× | {:.1} MiB | {:.1} MiB |",
        median(&mut operator_s),
        median(&mut direct_s),
        median(&mut ratios),
        operator_rss as f64 / 1024.0,
        manager_max as f64 / 1024.0
    );
}
