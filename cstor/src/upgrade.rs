//! `cstor upgrade cspc NAME | volume PV --to VERSION`: creates the UpgradeTask that rolls a
//! pool cluster or a volume to the operators' version and follows it step by step;
//! `cstor upgrade check` says, for a running cluster, what would be upgraded and what stops
//! it, changing nothing (docs/upgrades.md). Both exit 2 when blocked or failed.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use cstor_api::common::VersionDetails;
use cstor_api::cstor_v1::{CStorPoolCluster, CStorPoolInstance, CStorVolume};
use cstor_api::keys::env;
use cstor_api::openebs_v1alpha1::{UpgradeTask, task_phase};
use cstor_policy::version::{OLDEST_UPGRADABLE, Version, base};
use cstor_reconcilers::upgrade::decide::reason::POOLS_FIRST;
use cstor_reconcilers::upgrade::decide::{Next, cspi_task_name};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

/// What to upgrade.
#[derive(Subcommand, Debug, Clone)]
pub enum UpgradeCmd {
    /// A CStorPoolCluster: its pool instances one at a time, then the CSPC.
    Cspc(TargetArgs),
    /// A volume (PV name): its replicas, then its target, then its CVC. Its pools first.
    Volume(TargetArgs),
    /// For every CSPC and volume: its version and whether an upgrade to `--to` could start now
    /// (or what stops it). Changes nothing; exits 2 when something is blocked.
    Check(CheckArgs),
}

/// Flags of `cstor upgrade cspc|volume`.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// The CSPC's or the PV's name.
    pub name: String,
    /// The version to upgrade to: the running operators' version.
    #[arg(long)]
    pub to: String,
    /// The version it is at (default: what its record says).
    #[arg(long)]
    pub from: Option<String>,
    /// Longest wait of any one step, in seconds (default 600).
    #[arg(long)]
    pub timeout: Option<i64>,
    /// Steps whose failure is ignored (PRE_UPGRADE skips the pre-upgrade checks).
    #[arg(long, value_delimiter = ',')]
    pub ignore_steps_on_error: Vec<String>,
    /// Create the task and return without following it.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Flags of `cstor upgrade check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// The version to check against (default: this binary's).
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Where the cluster is.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// The operator namespace (CSPCs, volumes, tasks).
    #[arg(long, env = env::OPENEBS_NAMESPACE, default_value = "openebs")]
    pub namespace: String,
    /// kubeconfig (default: KUBECONFIG, then in-cluster).
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

/// The name of the task of a CSPC.
pub fn cspc_task_name(cspc: &str) -> String {
    format!("upgrade-cstor-cspc-{cspc}")
}

/// The name of the task of a volume (the Go tool's).
pub fn volume_task_name(pv: &str) -> String {
    format!("upgrade-cstor-csi-volume-{pv}")
}

fn current(d: Option<&VersionDetails>) -> String {
    d.and_then(|d| d.status.as_ref())
        .map(|s| s.current.clone())
        .unwrap_or_default()
}

/// Runs the subcommand; `Ok(false)` when the task failed or the check found a blocker.
pub async fn run(cmd: UpgradeCmd) -> anyhow::Result<bool> {
    match cmd {
        UpgradeCmd::Cspc(args) => start(args, true).await,
        UpgradeCmd::Volume(args) => start(args, false).await,
        UpgradeCmd::Check(args) => check(args).await,
    }
}

fn task(
    name: &str,
    namespace: &str,
    from: &str,
    to: &str,
    member: Value,
    timeout: Option<i64>,
) -> anyhow::Result<UpgradeTask> {
    let mut spec = json!({"fromVersion": from, "toVersion": to});
    if let Some(t) = timeout {
        spec["options"] = json!({"timeout": t});
    }
    if let Some((k, v)) = member.as_object().and_then(|m| m.iter().next()) {
        spec[k] = v.clone();
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "UpgradeTask",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))?)
}

async fn start(args: TargetArgs, pool: bool) -> anyhow::Result<bool> {
    let client = crate::common::client(args.cluster.kubeconfig.as_ref()).await?;
    let ns = args.cluster.namespace.as_str();
    let from = match &args.from {
        Some(f) => f.clone(),
        None if pool => {
            let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), ns);
            let c = cspcs
                .get(&args.name)
                .await
                .with_context(|| format!("reading CStorPoolCluster {}", args.name))?;
            current(c.version_details.as_ref())
        }
        None => {
            let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), ns);
            let c = cvs
                .get(&args.name)
                .await
                .with_context(|| format!("reading CStorVolume {}", args.name))?;
            current(c.version_details.as_ref())
        }
    };
    let options = (!args.ignore_steps_on_error.is_empty())
        .then(|| json!({"ignoreStepsOnError": args.ignore_steps_on_error}));
    let (name, member) = if pool {
        let mut m = json!({"cspcName": args.name});
        if let Some(o) = &options {
            m["options"] = o.clone();
        }
        (cspc_task_name(&args.name), json!({"cstorPoolCluster": m}))
    } else {
        let mut m = json!({"pvName": args.name});
        if let Some(o) = &options {
            m["options"] = o.clone();
        }
        (volume_task_name(&args.name), json!({"cstorVolume": m}))
    };
    let fresh = task(&name, ns, &from, &args.to, member, args.timeout)?;
    let tasks: Api<UpgradeTask> = Api::namespaced(client.clone(), ns);
    crate::common::start_task(
        &tasks,
        &fresh,
        "UpgradeTask",
        |t| {
            matches!(
                t.status.phase.as_str(),
                task_phase::ERROR | task_phase::SUCCESS
            )
            .then(|| format!("({})", t.status.phase))
        },
        &format!("created UpgradeTask {ns}/{name} ({from} → {})", args.to),
    )
    .await?;
    if args.no_wait {
        return Ok(true);
    }
    follow(&tasks, &name).await
}

/// Prints each new step line of the task (and of the tasks it made) until it ends.
async fn follow(tasks: &Api<UpgradeTask>, name: &str) -> anyhow::Result<bool> {
    let mut shown: Vec<String> = Vec::new();
    loop {
        let all = tasks
            .list(&ListParams::default())
            .await
            .context("listing UpgradeTasks")?;
        let Some(me) = all.items.iter().find(|t| t.name_any() == name) else {
            anyhow::bail!("UpgradeTask {name} is gone");
        };
        let uid = me.uid();
        let mine = all.items.iter().filter(|t| {
            t.name_any() == name
                || t.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == uid.as_ref())
        });
        for t in mine {
            for s in &t.status.upgrade_detailed_statuses {
                let reason = if s.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", s.reason)
                };
                let line = format!(
                    "{}: [{}] {}{reason}: {}",
                    t.name_any(),
                    s.phase,
                    s.step,
                    s.message
                );
                if !shown.contains(&line) {
                    println!("{line}");
                    shown.push(line);
                }
            }
        }
        match me.status.phase.as_str() {
            task_phase::SUCCESS => {
                println!("UpgradeTask {name} succeeded");
                return Ok(true);
            }
            task_phase::ERROR => {
                eprintln!(
                    "UpgradeTask {name} failed; see docs/upgrades.md \"When an upgrade stops\""
                );
                return Ok(false);
            }
            _ => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
        }
    }
}

/// One line of the check.
fn verdict(kind: &str, name: &str, at: &str, to: &str) -> Option<String> {
    let (Some(v), Some(t), Some(oldest)) = (
        Version::parse(at),
        Version::parse(to),
        Version::parse(OLDEST_UPGRADABLE),
    ) else {
        return Some(format!("BLOCKED: version {at:?} is not a version"));
    };
    if base(at) == base(to) || v == t {
        return None;
    }
    if v > t {
        return Some(format!(
            "BLOCKED: {kind} {name} is at {at}, newer than {to}: run operators of {at} or later"
        ));
    }
    if v < oldest {
        return Some(format!(
            "BLOCKED: {kind} {name} is at {at}, older than {OLDEST_UPGRADABLE}: upgrade it with the Go operators to at least {OLDEST_UPGRADABLE} first"
        ));
    }
    Some(String::new())
}

async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    let client = crate::common::client(args.cluster.kubeconfig.as_ref()).await?;
    let ns = args.cluster.namespace.as_str();
    let to = args.to.unwrap_or_else(cstor_runtime::version::ours);
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), ns);
    let cspis: Api<CStorPoolInstance> = Api::namespaced(client.clone(), ns);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), ns);
    let mut blocked = false;
    println!("upgrade check against version {to} (namespace {ns}); nothing is changed");
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let mut pending: Vec<(&str, String, String, UpgradeTask)> = Vec::new();
    for c in cspcs
        .list(&ListParams::default())
        .await
        .context("listing CSPCs")?
        .items
    {
        let name = c.name_any();
        let at = current(c.version_details.as_ref());
        let t = task(
            &cspc_task_name(&name),
            ns,
            &at,
            &to,
            json!({"cstorPoolCluster": {"cspcName": name}}),
            None,
        )?;
        pending.push(("CStorPoolCluster", name.clone(), at, t));
        let lp = ListParams::default().labels(&format!(
            "{}={name}",
            cstor_api::keys::labels::CSTOR_POOL_CLUSTER
        ));
        for p in cspis.list(&lp).await.context("listing CSPIs")?.items {
            let pname = p.name_any();
            let at = current(p.version_details.as_ref());
            let t = task(
                &cspi_task_name(&pname),
                ns,
                &at,
                &to,
                json!({"cstorPoolInstance": {"cspiName": pname}}),
                None,
            )?;
            pending.push(("  CStorPoolInstance", pname, at, t));
        }
    }
    for v in cvs
        .list(&ListParams::default())
        .await
        .context("listing CStorVolumes")?
        .items
    {
        let name = v.name_any();
        let at = current(v.version_details.as_ref());
        let t = task(
            &volume_task_name(&name),
            ns,
            &at,
            &to,
            json!({"cstorVolume": {"pvName": name}}),
            None,
        )?;
        pending.push(("volume", name, at, t));
    }
    for (kind, name, at, t) in pending {
        let word = match verdict(kind.trim(), &name, &at, &to) {
            None => "current".to_string(),
            Some(b) if b.starts_with("BLOCKED") => {
                blocked = true;
                b
            }
            Some(_) => {
                let d = cstor_reconcilers::upgrade::preview(client.clone(), ns, &to, &t).await?;
                match d.next {
                    Next::Fail { reason } if reason == POOLS_FIRST => {
                        format!("upgradable after its pools: {}", d.message)
                    }
                    Next::Fail { reason } => {
                        blocked = true;
                        format!("BLOCKED ({reason}): {}", d.message)
                    }
                    _ => format!("upgradable: {}", d.message),
                }
            }
        };
        rows.push((kind.to_string(), name, at, word));
    }
    println!("{:<22} {:<40} {:<10} VERDICT", "KIND", "NAME", "VERSION");
    for (kind, name, at, word) in rows {
        println!("{kind:<22} {name:<40} {at:<10} {word}");
    }
    Ok(!blocked)
}
