//! kill -9 of the operator and of pool-managers at random points, seeded (the seed is printed;
//! `CSTOR_CHAOS_SEED=N` replays a run), during provisioning and during a disk replacement:
//! every run still converges to ONLINE pools with the replaced disk in place, and deleting
//! the CSPC leaves no zpool, claim, CSPI or Deployment behind.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// xorshift64*: a tiny seeded generator, so a failing run can be replayed exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const RUNS: usize = 10;

/// Kills one random process among the operator replicas and this CSPC's pool-managers.
async fn kill_one(rng: &mut Rng, cspc: &str, log: &mut Vec<String>) {
    let client = admin().await;
    let mut targets: Vec<(String, u32)> = stack()
        .pods
        .pids_of("cstor-cspc-operator")
        .into_iter()
        .map(|p| ("operator".to_string(), p))
        .collect();
    for c in cspis_of(&client, cspc).await {
        let name = c.metadata.name.unwrap_or_default();
        for pid in stack().pods.pids_of(&name) {
            targets.push((format!("pool-manager {name}"), pid));
        }
    }
    if targets.is_empty() {
        return;
    }
    let (what, pid) = &targets[rng.below(targets.len() as u64) as usize];
    if kill(Pid::from_raw(*pid as i32), Signal::SIGKILL).is_ok() {
        log.push(format!("killed {what} (pid {pid})"));
    }
}

/// While `until` is pending, kills a process every 0.2–2.5 s (at most `max` kills).
async fn chaos_during<F: std::future::Future>(
    rng: &mut Rng,
    cspc: &str,
    max: usize,
    log: &mut Vec<String>,
    until: F,
) -> F::Output {
    tokio::pin!(until);
    let mut kills = 0;
    loop {
        let wait = Duration::from_millis(200 + rng.below(2300));
        tokio::select! {
            out = &mut until => return out,
            _ = tokio::time::sleep(wait), if kills < max => {
                kill_one(rng, cspc, log).await;
                kills += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_provisioning_and_replacement_still_converges_without_orphans() {
    let seed = std::env::var("CSTOR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("chaos seed: {seed} (replay with CSTOR_CHAOS_SEED={seed})");
    let mut rng = Rng(seed);
    stack();
    let client = admin().await;
    for run in 0..RUNS {
        let name = format!("chaos-{run}");
        // Disks 1,2 form the mirror; on one node disk 1 is replaced by disk 3.
        let target = 1 + (run % NODES);
        let all: Vec<(usize, usize)> = (1..=NODES).flat_map(|n| [(n, 1), (n, 2), (n, 3)]).collect();
        wait_disks_free(&client, &all).await;
        let mut log = Vec::new();
        let pools = (1..=NODES).map(|n| pool(n, "mirror", &[&[1, 2]])).collect();
        kubectl_apply(&cspc(&name, pools));
        chaos_during(
            &mut rng,
            &name,
            3,
            &mut log,
            wait_online(&client, &name, NODES),
        )
        .await;
        let zpool = zpool_of(&client, &name).await;
        let pools = (1..=NODES)
            .map(|n| {
                if n == target {
                    pool(n, "mirror", &[&[3, 2]])
                } else {
                    pool(n, "mirror", &[&[1, 2]])
                }
            })
            .collect();
        kubectl_apply(&cspc(&name, pools));
        let replaced = async {
            wait_for(
                &format!("replacement on node {target} in {name}"),
                Duration::from_secs(180),
                || async {
                    let c = cspi_on(&client, &name, target).await;
                    let groups = zpool_groups(target, &zpool);
                    match condition(&c, "DiskReplacement") {
                        Some(cond)
                            if cond.reason == "BlockDeviceReplacementSucceess"
                                && groups == vec![("mirror".to_string(), vec![3, 2])] =>
                        {
                            Ok(())
                        }
                        other => Err(format!(
                            "{other:?}, zpool status:\n{}",
                            node(target)
                                .zpool(&["status", &zpool])
                                .unwrap_or_else(|e| e)
                        )),
                    }
                },
            )
            .await
        };
        chaos_during(&mut rng, &name, 2, &mut log, replaced).await;
        wait_online(&client, &name, NODES).await;
        eprintln!("run {run} (seed {seed}): {}", log.join("; "));
        delete_and_verify_clean(&client, &name, &all).await;
    }
}
