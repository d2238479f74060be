//! Upgrades between our versions on the local stack (docs/upgrades.md): the operators' image
//! is bumped (the local runner plays `openebs/cstor-rs:4.1.0` as version 4.1.0), the older
//! CSPC and volume are refused until UpgradeTasks roll them one Deployment at a time while a
//! qemu-io write-and-verify loop runs; refused tasks touch nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::volumes::*;
use common::*;
use cstor_api::cstor_v1::cspc::CStorPoolCluster;
use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::cstor_v1::cvc::CStorVolumeConfig;
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::UpgradeTask;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const FROM: &str = "4.0.0";
const TO: &str = "4.1.0";

fn current(d: Option<&cstor_api::common::VersionDetails>) -> String {
    d.and_then(|d| d.status.as_ref())
        .map(|s| s.current.clone())
        .unwrap_or_default()
}

/// Replaces our image of `FROM` with that of `TO` in an operator Deployment (image and the
/// image env it hands to the pods it makes), as a chart upgrade would.
async fn bump_operator(client: &Client, name: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let d = api.get(name).await.expect("operator Deployment");
    let text = serde_json::to_string(&d.spec).expect("json");
    let mut spec: Value = serde_json::from_str(&text.replace(
        &format!("openebs/cstor-rs:{FROM}"),
        &format!("openebs/cstor-rs:{TO}"),
    ))
    .expect("json");
    // These tests write their tasks themselves (the automatic ones are the take-over's).
    if let Some(env) = spec["template"]["spec"]["containers"][0]["env"].as_array_mut() {
        env.push(json!({"name": "CSTOR_AUTO_UPGRADE", "value": "false"}));
    }
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .expect("bump");
}

async fn create_task(client: &Client, name: &str, from: &str, member: Value) {
    let api: Api<UpgradeTask> = Api::namespaced(client.clone(), NS);
    let mut body = json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "UpgradeTask",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"fromVersion": from, "toVersion": TO, "options": {"timeout": 300}},
    });
    for (k, v) in member.as_object().expect("member") {
        body["spec"][k] = v.clone();
    }
    let task: UpgradeTask = serde_json::from_value(body).expect("task");
    api.create(&PostParams::default(), &task)
        .await
        .expect("create task");
}

fn steps(t: &UpgradeTask) -> String {
    t.status
        .upgrade_detailed_statuses
        .iter()
        .map(|s| format!("{} {} [{}] {}", s.step, s.phase, s.reason, s.message))
        .collect::<Vec<_>>()
        .join("\n  ")
}

async fn wait_task(client: &Client, name: &str, within: Duration) -> UpgradeTask {
    let api: Api<UpgradeTask> = Api::namespaced(client.clone(), NS);
    wait_for(&format!("UpgradeTask {name} to end"), within, || async {
        let t = api
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no task")?;
        let said = format!("{}\n  {}", t.status.phase, steps(&t));
        if matches!(t.status.phase.as_str(), "Success" | "Error") {
            eprintln!("{name}: {said}");
            Ok(t)
        } else {
            Err(said)
        }
    })
    .await
}

fn errored_reason(t: &UpgradeTask) -> String {
    t.status
        .upgrade_detailed_statuses
        .iter()
        .find(|s| s.phase == "Errored")
        .map(|s| s.reason.clone())
        .unwrap_or_default()
}

/// One qemu-io session of write-then-verify pairs over `span` MiB; returns (acknowledged
/// writes, failed commands, output).
fn io_round(volume: &str, pattern: u8, span: u64) -> (Vec<u64>, usize, String) {
    let mut args: Vec<String> = vec!["-f".into(), "raw".into()];
    for mib in 0..span {
        args.push("-c".into());
        args.push(format!("write -P {pattern} {mib}M 1M"));
        args.push("-c".into());
        args.push(format!("read -P {pattern} {mib}M 1M"));
    }
    args.push(url(volume));
    let out = Command::new("qemu-io")
        .args(&args)
        .output()
        .expect("qemu-io is required (Debian qemu-utils)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let acked = text.matches("wrote 1048576/1048576 bytes").count() as u64;
    let failed = text.matches("failed").count() + usize::from(!out.status.success());
    ((0..acked).collect(), failed, text)
}

/// The longest command of a qemu-io session (`… ops; 0.0054 sec (…)`, or `00:00:01.23`), in
/// seconds.
fn slowest_op(text: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            l.split_once(" ops; ")?
                .1
                .split_whitespace()
                .next()
                .map(String::from)
        })
        .filter_map(|t| {
            t.split(':').try_fold(0.0, |acc, part| {
                part.parse::<f64>().ok().map(|v| acc * 60.0 + v)
            })
        })
        .fold(0.0, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cspc_and_a_volume_are_upgraded_one_pod_at_a_time_with_io_running() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[1]])).collect();
    kubectl_apply(&cspc("up", pools));
    let cspis = wait_online(&client, "up", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-up",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "up",
    ]);
    wait_healthy(&client, "vol-up", 3).await;
    qemu_io("vol-up", &["write -P 7 0 16M"]);
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let uid_before: Vec<(String, Option<String>)> =
        cspis.iter().map(|c| (c.name_any(), c.uid())).collect();
    let cv_uid = cvs.get("vol-up").await.unwrap().uid();
    for c in &cspis {
        assert_eq!(current(c.version_details.as_ref()), FROM);
    }

    // The operators become 4.1.0: the CSPC and the volume are older and wait for a task.
    bump_operator(&client, "cstor-cspc-operator").await;
    bump_operator(&client, "cstor-cvc-operator").await;
    wait_for(
        "the CSPC refused with a condition",
        Duration::from_secs(120),
        || async {
            let c = cspcs.get("up").await.map_err(|e| e.to_string())?;
            let conds = c.status.map(|s| s.conditions).unwrap_or_default();
            match conds.iter().find(|c| c.type_ == "VersionReconciled") {
                Some(c) if c.reason == "UpgradeRequired" && c.message.contains("UpgradeTask") => {
                    Ok(())
                }
                _ => Err(format!("{conds:?}")),
            }
        },
    )
    .await;
    wait_for(
        "the CVC refused with a condition",
        Duration::from_secs(120),
        || async {
            let c = cvcs.get("vol-up").await.map_err(|e| e.to_string())?;
            let conds = c.status.map(|s| s.conditions).unwrap_or_default();
            match conds.iter().find(|c| c.type_ == "VersionReconciled") {
                Some(c) if c.reason == "UpgradeRequired" => Ok(()),
                _ => Err(format!("{conds:?}")),
            }
        },
    )
    .await;
    let generations = |ds: Vec<Deployment>| {
        ds.into_iter()
            .map(|d| (d.name_any(), d.metadata.generation))
            .collect::<Vec<_>>()
    };
    let pool_deployments = || async {
        let mut out = Vec::new();
        for c in &cspis {
            out.push(deployments.get(&c.name_any()).await.unwrap());
        }
        out.push(deployments.get("vol-up-target").await.unwrap());
        out
    };
    let before = generations(pool_deployments().await);

    // Refusals: nothing is restarted.
    create_task(
        &client,
        "too-old",
        "1.9.0",
        json!({"cstorPoolCluster": {"cspcName": "up"}}),
    )
    .await;
    let t = wait_task(&client, "too-old", Duration::from_secs(60)).await;
    assert_eq!(
        (t.status.phase.as_str(), errored_reason(&t).as_str()),
        ("Error", "InvalidVersion"),
        "{}",
        steps(&t)
    );
    assert!(
        steps(&t).contains("Invalid from version 1.9.0 or to version 4.1.0"),
        "{}",
        steps(&t)
    );
    create_task(
        &client,
        "vol-first",
        FROM,
        json!({"cstorVolume": {"pvName": "vol-up"}}),
    )
    .await;
    let t = wait_task(&client, "vol-first", Duration::from_secs(60)).await;
    assert_eq!(errored_reason(&t), "PoolsNotUpgraded", "{}", steps(&t));
    assert!(
        steps(&t).contains("upgrade the pools first"),
        "{}",
        steps(&t)
    );
    create_task(
        &client,
        "jiva",
        FROM,
        json!({"jivaVolume": {"pvName": "vol-up"}}),
    )
    .await;
    let t = wait_task(&client, "jiva", Duration::from_secs(60)).await;
    assert_eq!(errored_reason(&t), "NotSupported", "{}", steps(&t));

    // A degraded replica at preflight: node 1's pool is lost (its zfs-fuse killed), so its
    // replica is Offline and the volume Degraded; neither the pool nor the volume is touched.
    let node1 = &cstor_local::testing::current().nodes[0];
    let pool1 = cspis
        .iter()
        .find(|c| c.spec.host_name == node1.name)
        .map(|c| c.name_any())
        .expect("a pool on node 1");
    node1.kill_zfs().expect("kill zfs-fuse");
    qemu_io("vol-up", &["write -P 0x3c 20M 1M"]);
    wait_for("the volume Degraded", Duration::from_secs(120), || async {
        let cv = cvs.get("vol-up").await.map_err(|e| e.to_string())?;
        let ph = cv.status.map(|s| s.phase).unwrap_or_default();
        if ph == "Degraded" { Ok(()) } else { Err(ph) }
    })
    .await;
    create_task(
        &client,
        "degraded-volume",
        FROM,
        json!({"cstorVolume": {"pvName": "vol-up"}}),
    )
    .await;
    let t = wait_task(&client, "degraded-volume", Duration::from_secs(60)).await;
    assert_eq!(errored_reason(&t), "PreflightFailed", "{}", steps(&t));
    assert!(
        steps(&t).contains("is \"Degraded\", not Healthy"),
        "{}",
        steps(&t)
    );
    create_task(
        &client,
        "degraded-pool",
        FROM,
        json!({"cstorPoolInstance": {"cspiName": pool1}}),
    )
    .await;
    let t = wait_task(&client, "degraded-pool", Duration::from_secs(60)).await;
    assert_eq!(errored_reason(&t), "PreflightFailed", "{}", steps(&t));
    // Whichever the pool's own report or its volume's shows first.
    assert!(
        steps(&t).contains("not ONLINE") || steps(&t).contains("is \"Degraded\", not Healthy"),
        "{}",
        steps(&t)
    );
    node1.restart_zfs().expect("restart zfs-fuse");
    wait_healthy(&client, "vol-up", 3).await;
    qemu_io("vol-up", &["read -P 0x3c 20M 1M"]);
    assert_eq!(
        generations(pool_deployments().await),
        before,
        "a refused task restarted something"
    );

    // I/O runs through the whole upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let io = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut rounds, mut acked, mut failed, mut slowest) = (0u32, 0usize, 0usize, 0.0f64);
            while !stop.load(Ordering::Relaxed) {
                let pattern = 0x20 + (rounds % 64) as u8;
                let (a, f, text) = io_round("vol-up", pattern, 8);
                if f > 0 {
                    eprintln!("io round {rounds}: {f} failed command(s):\n{text}");
                }
                acked += a.len();
                failed += f;
                rounds += 1;
                slowest = slowest.max(slowest_op(&text));
            }
            (rounds, acked, failed, slowest)
        })
    };

    // What would be upgraded, changing nothing.
    let said = cstor(&["upgrade", "check", "--to", TO]);
    eprintln!("{said}");
    for (kind, verdict) in [
        (
            "CStorPoolCluster",
            "upgradable: 3 pool instance(s) to upgrade, one at a time",
        ),
        ("CStorPoolInstance", "upgradable: Pre-upgrade checks passed"),
    ] {
        assert!(
            said.lines()
                .any(|l| l.trim_start().starts_with(kind) && l.contains(verdict)),
            "{said}"
        );
    }
    assert!(said.contains("upgradable after its pools"), "{said}");
    let started = Instant::now();
    cstor(&["upgrade", "cspc", "up", "--to", TO, "--no-wait"]);
    // A second task for the same CSPC is refused while the first runs.
    let tasks: Api<UpgradeTask> = Api::namespaced(client.clone(), NS);
    wait_for(
        "the first task started",
        Duration::from_secs(60),
        || async {
            let t = tasks
                .get("upgrade-cstor-cspc-up")
                .await
                .map_err(|e| e.to_string())?;
            if t.status.phase.is_empty() {
                Err("not started".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    create_task(
        &client,
        "up-pools-again",
        FROM,
        json!({"cstorPoolCluster": {"cspcName": "up"}}),
    )
    .await;
    let t = wait_task(&client, "up-pools-again", Duration::from_secs(60)).await;
    assert_eq!(errored_reason(&t), "DuplicateTask", "{}", steps(&t));
    let t = wait_task(&client, "upgrade-cstor-cspc-up", Duration::from_secs(900)).await;
    let pools_took = started.elapsed();
    assert_eq!(t.status.phase, "Success", "{}", steps(&t));
    let started = Instant::now();
    // The command follows the task to its end, a line per step.
    let said = tokio::task::spawn_blocking(|| cstor(&["upgrade", "volume", "vol-up", "--to", TO]))
        .await
        .expect("cstor upgrade volume");
    let volume_took = started.elapsed();
    eprintln!("{said}");
    for step in ["PRE_UPGRADE", "REPLICA_UPGRADE", "TARGET_UPGRADE", "VERIFY"] {
        assert!(said.contains(&format!("[Completed] {step}")), "{said}");
    }
    assert!(
        said.contains("UpgradeTask upgrade-cstor-csi-volume-vol-up succeeded"),
        "{said}"
    );
    stop.store(true, Ordering::Relaxed);
    let (rounds, acked, failed, slowest) = io.join().expect("io thread");
    eprintln!(
        "UPGRADE FIGURES: 3-pool CSPC {:.1} s, volume {:.1} s; initiator: {rounds} qemu-io sessions, {acked} acknowledged 1 MiB writes (each read back), {failed} failed commands, slowest command {slowest:.2} s",
        pools_took.as_secs_f64(),
        volume_took.as_secs_f64()
    );
    assert!(acked > 0, "the I/O loop never wrote");
    assert_eq!(failed, 0, "the initiator saw errors while the pods rolled");
    let rolled = generations(pool_deployments().await);
    for ((name, was), (_, now)) in before.iter().zip(&rolled) {
        assert_eq!(now.unwrap_or(0), was.unwrap_or(0) + 1, "{name} rolled once");
    }

    // Every object at 4.1.0, nothing recreated, every pod rolled once.
    let now_cspis = cspis_of(&client, "up").await;
    let uid_after: Vec<(String, Option<String>)> =
        now_cspis.iter().map(|c| (c.name_any(), c.uid())).collect();
    assert_eq!(uid_after, uid_before);
    for c in &now_cspis {
        assert_eq!(current(c.version_details.as_ref()), TO, "{}", c.name_any());
        let d = deployments.get(&c.name_any()).await.unwrap();
        assert_eq!(
            d.labels().get(labels::VERSION).map(String::as_str),
            Some(TO)
        );
    }
    wait_for(
        "the CSPC at 4.1.0 without the condition",
        Duration::from_secs(60),
        || async {
            let c = cspcs.get("up").await.map_err(|e| e.to_string())?;
            let conds = c.status.map(|s| s.conditions).unwrap_or_default();
            let at = current(c.version_details.as_ref());
            if at == TO && !conds.iter().any(|c| c.type_ == "VersionReconciled") {
                Ok(())
            } else {
                Err(format!("{at} {conds:?}"))
            }
        },
    )
    .await;
    let cv = cvs.get("vol-up").await.unwrap();
    assert_eq!(cv.uid(), cv_uid);
    assert_eq!(current(cv.version_details.as_ref()), TO);
    for r in cvrs_of(&client, "vol-up").await {
        assert_eq!(current(r.version_details.as_ref()), TO, "{}", r.name_any());
    }
    let cvc = cvcs.get("vol-up").await.unwrap();
    assert_eq!(current(cvc.version_details.as_ref()), TO);
    wait_healthy(&client, "vol-up", 3).await;
    let said = cstor(&["upgrade", "check", "--to", TO]);
    assert!(
        said.lines()
            .skip(2)
            .all(|l| l.trim_end().ends_with("current")),
        "{said}"
    );
    // What was written before the upgrade is still there.
    qemu_io("vol-up", &["read -P 7 8M 8M"]);
}

/// Kills (SIGKILL) the pods of operator Deployment `name`; the local runner restarts them.
fn kill_operator(name: &str) -> usize {
    let pids = cstor_local::testing::current().pods.pids_of(name);
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids.len()
}

/// Follows the unfinished tasks until `name` ends, killing `operator` the first time a task of
/// each kind records each step; returns the task and where it killed.
async fn follow_killing(
    client: &Client,
    name: &str,
    operator: &str,
    within: Duration,
) -> (UpgradeTask, Vec<String>) {
    let api: Api<UpgradeTask> = Api::namespaced(client.clone(), NS);
    let deadline = Instant::now() + within;
    let mut seen = std::collections::BTreeSet::new();
    let mut kills = Vec::new();
    let finished_before: Vec<String> = api
        .list(&Default::default())
        .await
        .expect("list tasks")
        .items
        .iter()
        .filter(|t| matches!(t.status.phase.as_str(), "Success" | "Error"))
        .map(|t| t.name_any())
        .collect();
    loop {
        assert!(
            Instant::now() < deadline,
            "{name} did not end within {within:?}"
        );
        let tasks = api
            .list(&Default::default())
            .await
            .expect("list tasks")
            .items;
        for t in tasks
            .iter()
            .filter(|t| !finished_before.contains(&t.name_any()))
        {
            // Once at each step of each kind of task (CSPC, CSPI, volume).
            let kind = if t.spec.cstor_pool_cluster.is_some() {
                "cspc"
            } else if t.spec.cstor_pool_instance.is_some() {
                "cspi"
            } else {
                "volume"
            };
            for s in &t.status.upgrade_detailed_statuses {
                let key = format!("{kind} task {}", s.step);
                if s.phase != "Errored" && seen.insert(key.clone()) {
                    let n = kill_operator(operator);
                    eprintln!(
                        "kill -9 {operator} ({n} pod) at {key} ({}: {})",
                        t.name_any(),
                        s.phase
                    );
                    kills.push(key);
                }
            }
        }
        if let Some(t) = tasks.iter().find(|t| t.name_any() == name)
            && matches!(t.status.phase.as_str(), "Success" | "Error")
        {
            return (t.clone(), kills);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_task_resumes_after_its_operator_is_killed_at_every_step() {
    fault_stack();
    let client = admin().await;
    let pools = (1..=3).map(|n| pool(n, "stripe", &[&[1]])).collect();
    kubectl_apply(&cspc("kill", pools));
    let cspis = wait_online(&client, "kill", 3).await;
    cstor(&[
        "volume",
        "create",
        "vol-kill",
        "--size",
        "64Mi",
        "--replicas",
        "3",
        "--pool-cluster",
        "kill",
    ]);
    wait_healthy(&client, "vol-kill", 3).await;
    qemu_io("vol-kill", &["write -P 9 0 8M"]);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let mut names: Vec<String> = cspis.iter().map(|c| c.name_any()).collect();
    names.push("vol-kill-target".into());
    let mut before = Vec::new();
    for n in &names {
        before.push(
            deployments
                .get(n)
                .await
                .unwrap()
                .metadata
                .generation
                .unwrap_or(0),
        );
    }
    bump_operator(&client, "cstor-cspc-operator").await;
    bump_operator(&client, "cstor-cvc-operator").await;

    create_task(
        &client,
        "kill-pools",
        FROM,
        json!({"cstorPoolCluster": {"cspcName": "kill"}}),
    )
    .await;
    let (t, kills) = follow_killing(
        &client,
        "kill-pools",
        "cstor-cspc-operator",
        Duration::from_secs(900),
    )
    .await;
    assert_eq!(t.status.phase, "Success", "{}", steps(&t));
    // PRE_UPGRADE, POOL_INSTANCE_UPGRADE and VERIFY of the CSPC task and of a CSPI task.
    assert_eq!(kills.len(), 6, "killed at {kills:?}");
    create_task(
        &client,
        "kill-volume",
        FROM,
        json!({"cstorVolume": {"pvName": "vol-kill"}}),
    )
    .await;
    let (t, kills) = follow_killing(
        &client,
        "kill-volume",
        "cstor-cvc-operator",
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(t.status.phase, "Success", "{}", steps(&t));
    assert_eq!(kills.len(), 4, "killed at {kills:?}");
    for s in &t.status.upgrade_detailed_statuses {
        assert_eq!(s.phase, "Completed", "{}", steps(&t));
    }

    // Each pod was rolled exactly once, whatever the kills interrupted.
    for (n, was) in names.iter().zip(&before) {
        let d = deployments.get(n).await.unwrap();
        assert_eq!(d.metadata.generation.unwrap_or(0), was + 1, "{n}");
        assert_eq!(
            d.labels().get(labels::VERSION).map(String::as_str),
            Some(TO)
        );
    }
    wait_healthy(&client, "vol-kill", 3).await;
    qemu_io("vol-kill", &["read -P 9 0 8M"]);
}
