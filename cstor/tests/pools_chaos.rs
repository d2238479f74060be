//! kill -9 of the operator and of pool-managers at random points, seeded (the seed is printed;
//! `CSTOR_CHAOS_SEED=N` replays a run), during provisioning and during a disk replacement:
//! every run still converges to ONLINE pools with the replaced disk in place, and deleting
//! the CSPC leaves no zpool, claim, CSPI or Deployment behind.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

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
    let mut rng = Rng::seeded("CSTOR_CHAOS_SEED", "chaos");
    let seed = rng.0;
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

/// One leader: the leading cspc-operator's Lease renewals are refused (a
/// ValidatingAdmissionPolicy denies any Lease update naming it holder) while its other calls
/// work. It steps down at the renew deadline and its process exits before the Lease could
/// expire; the other replica takes the Lease only after that, so the two never act in the
/// same window; pools still get provisioned by the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_fail_steps_down_before_another_leads() {
    use k8s_openapi::api::coordination::v1::Lease;
    stack();
    let client = admin().await;
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), NS);
    let holder = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default()
    };
    let leader = wait_for("a cspc-operator leads", Duration::from_secs(60), || async {
        let l = leases
            .get_opt("cspc-controller-leader")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no Lease yet")?;
        let h = holder(&l);
        if h.is_empty() {
            Err("no holder".into())
        } else {
            Ok(h)
        }
    })
    .await;
    let pid = stack()
        .pods
        .pids()
        .into_iter()
        .find(|(pod, _)| *pod == leader)
        .map(|(_, pid)| pid)
        .unwrap_or_else(|| panic!("no process for the leader {leader}"));
    let policy = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "block-leader-renewals"},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": [{"apiGroups": ["coordination.k8s.io"], "apiVersions": ["v1"],
                                                          "operations": ["UPDATE"], "resources": ["leases"]}]},
                  "validations": [{"expression": format!(
                      "object.metadata.name != 'cspc-controller-leader' || object.spec.?holderIdentity.orValue('') != '{leader}'"),
                                   "message": "renewals of this leader are blocked by the test"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "block-leader-renewals"},
         "spec": {"policyName": "block-leader-renewals", "validationActions": ["Deny"]}},
    ]});
    let blocked_at = std::time::Instant::now();
    kubectl_apply(&policy);
    // The leader's process stops (it exits; the runner starts it again as a fresh candidate).
    let exited = wait_for(
        "the blocked leader steps down and exits",
        Duration::from_secs(60),
        || async {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Ok(s) if !s.contains(") Z ") => Err("still running".to_string()),
                _ => Ok(std::time::SystemTime::now()),
            }
        },
    )
    .await;
    eprintln!(
        "leader {leader} exited {} ms after its renewals were blocked",
        blocked_at.elapsed().as_millis()
    );
    let (next, acquired) = wait_for("another replica leads", Duration::from_secs(60), || async {
        let l = leases
            .get("cspc-controller-leader")
            .await
            .map_err(|e| e.to_string())?;
        let h = holder(&l);
        let acquired = l.spec.as_ref().and_then(|s| s.acquire_time.clone());
        match acquired {
            Some(t) if !h.is_empty() && h != leader => Ok((h, t)),
            _ => Err(format!("holder {h:?}")),
        }
    })
    .await;
    let acquired: std::time::SystemTime = acquired.0.into();
    assert!(
        exited <= acquired,
        "{next} acquired the Lease before {leader} had stopped"
    );
    eprintln!(
        "{next} leads; it acquired the Lease {} ms after the old leader exited",
        acquired
            .duration_since(exited)
            .unwrap_or_default()
            .as_millis()
    );
    let (ok, out) = kubectl(
        &[
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            "block-leader-renewals",
        ],
        None,
    );
    assert!(ok, "{out}");
    // The new leader works.
    kubectl_apply(&cspc("after-lead", vec![pool(3, "stripe", &[&[8]])]));
    wait_online(&client, "after-lead", 1).await;
    delete_and_verify_clean(&client, "after-lead", &[(3, 8)]).await;
}
