//! `cstor migrate spc NAME` / `cstor migrate volume PV`: creates the MigrationTask that moves
//! an SPC pool to a CSPC (or an old-provisioner volume to a CSI volume) and follows it step by
//! step; with `--dry-run`, prints what it would do and every problem in the way, changing
//! nothing (docs/migration.md).

use cstor_api::keys::env;
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim, CStorPool, StoragePoolClaim};
use cstor_policy::migrate::{SpcFacts, plan};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;

/// What to migrate.
#[derive(Subcommand, Debug, Clone)]
pub enum MigrateCmd {
    /// A StoragePoolClaim (SPC) and its CStorPools to a CStorPoolCluster.
    Spc(SpcArgs),
    /// A volume (PV) of the old external provisioner to a cStor CSI volume; its pool first.
    Volume(VolumeArgs),
}

/// Flags of `cstor migrate volume`.
#[derive(Args, Debug, Clone)]
pub struct VolumeArgs {
    /// The PersistentVolume's name.
    pub pv: String,
    /// Only say what would stop the migration, or its first step; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Flags of `cstor migrate spc`.
#[derive(Args, Debug, Clone)]
pub struct SpcArgs {
    /// The SPC's name.
    pub name: String,
    /// Name of the CSPC to create (default: the SPC's name).
    #[arg(long)]
    pub cspc_name: Option<String>,
    /// Only print the CSPC and the problems; change nothing. Without it, the migration runs
    /// (a MigrationTask) and each step is printed as it goes.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Where the cluster is, for both targets.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// The operator namespace (devices, claims, pool Deployments, the new CSPC or CVC, the task).
    #[arg(long, env = env::OPENEBS_NAMESPACE, default_value = "openebs")]
    pub namespace: String,
    /// kubeconfig (default: KUBECONFIG, then in-cluster).
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

/// Exit status of a dry run that found problems.
pub const PROBLEMS_FOUND: u8 = 2;

/// Runs the subcommand; `Ok(false)` when problems were found.
pub async fn run(cmd: MigrateCmd) -> anyhow::Result<bool> {
    let args = match cmd {
        MigrateCmd::Spc(args) => args,
        MigrateCmd::Volume(args) => return volume(args).await,
    };
    let client = crate::common::client(args.cluster.kubeconfig.as_ref()).await?;
    if !args.dry_run {
        return migrate_and_follow(client, &args).await;
    }
    let ns = args.cluster.namespace.as_str();
    let cspc_name = args.cspc_name.clone().unwrap_or_else(|| args.name.clone());
    let spcs: Api<StoragePoolClaim> = Api::all(client.clone());
    let spc = spcs
        .get_opt(&args.name)
        .await
        .context("reading the StoragePoolClaim")?
        .with_context(|| format!("StoragePoolClaim {} not found", args.name))?;
    let csps: Api<CStorPool> = Api::all(client.clone());
    let csps = csps
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            labels::STORAGE_POOL_CLAIM,
            args.name
        )))
        .await
        .context("listing CStorPools")?
        .items;
    let deployments_api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut deployments = BTreeMap::new();
    for csp in &csps {
        let name = csp.metadata.name.clone().unwrap_or_default();
        let found = deployments_api
            .list(&ListParams::default().labels(&format!("{}={name}", labels::CSTOR_POOL)))
            .await
            .context("listing pool Deployments")?
            .items;
        deployments.insert(name, found);
    }
    let bds: Api<BlockDevice> = Api::namespaced(client.clone(), ns);
    let block_devices = bds
        .list(&ListParams::default())
        .await
        .context("listing BlockDevices")?
        .items
        .into_iter()
        .map(|b| (b.metadata.name.clone().unwrap_or_default(), b))
        .collect();
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), ns);
    let claims = bdcs
        .list(&ListParams::default())
        .await
        .context("listing BlockDeviceClaims")?
        .items
        .into_iter()
        .map(|c| (c.spec.block_device_name.clone(), c))
        .collect();
    let cspcs: Api<cstor_api::cstor_v1::CStorPoolCluster> = Api::namespaced(client, ns);
    let existing_cspc = cspcs
        .get_opt(&cspc_name)
        .await
        .context("reading the CSPC")?;
    let facts = SpcFacts {
        spc,
        csps,
        deployments,
        block_devices,
        claims,
        existing_cspc,
    };
    let plan = plan(&facts, &cspc_name, ns);
    let yaml = serde_yaml_ng::to_string(&plan.cspc).context("rendering the CSPC")?;
    println!(
        "# CStorPoolCluster that `cstor migrate spc {}` would create (dry run: nothing was changed)",
        args.name
    );
    print!("{yaml}");
    for note in &plan.notes {
        println!("# note: {note}");
    }
    if plan.problems.is_empty() {
        println!("# no problems found");
        return Ok(true);
    }
    for problem in &plan.problems {
        eprintln!("problem: {problem}");
    }
    eprintln!(
        "{} problem(s) would stop the migration of spc {}",
        plan.problems.len(),
        args.name
    );
    Ok(false)
}

/// The name of the task that migrates SPC `spc`.
pub fn pool_task_name(spc: &str) -> String {
    format!("migrate-cstor-pool-{spc}")
}

/// Creates (or finds) the MigrationTask of `args.name` and prints a line per step change until
/// it ends; `Ok(false)` when it ends in Error.
async fn migrate_and_follow(client: kube::Client, args: &SpcArgs) -> anyhow::Result<bool> {
    let mut pool = serde_json::json!({"spcName": args.name});
    if let Some(rename) = &args.cspc_name {
        pool["rename"] = serde_json::json!(rename);
    }
    let spec = serde_json::json!({"cstorPool": pool});
    run_task(
        client,
        &args.cluster.namespace,
        &pool_task_name(&args.name),
        spec,
        &format!("spc {}", args.name),
    )
    .await
}

/// Makes the task `name` with `spec` (a failed one of that name is replaced: its successor
/// resumes from what it finds) and follows it.
async fn run_task(
    client: kube::Client,
    namespace: &str,
    name: &str,
    spec: serde_json::Value,
    what: &str,
) -> anyhow::Result<bool> {
    use cstor_api::openebs_v1alpha1::{MigrationTask, task_phase};
    let tasks: Api<MigrationTask> = Api::namespaced(client, namespace);
    let fresh: MigrationTask = serde_json::from_value(serde_json::json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "MigrationTask",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))?;
    crate::common::start_task(
        &tasks,
        &fresh,
        "MigrationTask",
        |t| (t.status.phase == task_phase::ERROR).then(|| "in Error".to_string()),
        &format!("created MigrationTask {namespace}/{name}"),
    )
    .await?;
    let mut shown: Vec<(String, String, String)> = Vec::new();
    loop {
        let t = tasks.get(name).await.context("reading the MigrationTask")?;
        for s in &t.status.migration_detailed_statuses {
            let line = (s.step.clone(), s.phase.clone(), s.message.clone());
            if !shown.contains(&line) {
                let reason = if s.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", s.reason)
                };
                println!("[{}] {}{reason}: {}", s.phase, s.step, s.message);
                shown.push(line);
            }
        }
        match t.status.phase.as_str() {
            task_phase::SUCCESS => {
                println!("{what} migrated");
                return Ok(true);
            }
            task_phase::ERROR => {
                eprintln!(
                    "migration of {what} failed; see docs/migration.md \"When a migration fails\""
                );
                return Ok(false);
            }
            _ => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
        }
    }
}

/// `cstor migrate volume PV`: the volume path; `--dry-run` prints the first step it would take
/// or what stops it.
async fn volume(args: VolumeArgs) -> anyhow::Result<bool> {
    let client = crate::common::client(args.cluster.kubeconfig.as_ref()).await?;
    if !args.dry_run {
        let spec = serde_json::json!({"cstorVolume": {"pvName": args.pv}});
        return run_task(
            client,
            &args.cluster.namespace,
            &format!("migrate-cstor-volume-{}", args.pv),
            spec,
            &format!("pv {}", args.pv),
        )
        .await;
    }
    use cstor_reconcilers::migrate::{Context as TaskContext, decide::Next, volume};
    let recorder = cstor_runtime::events::recorder(client.clone(), "cstor-cli", None);
    let ctx = TaskContext::new(client, args.cluster.namespace.clone(), recorder);
    let view = cstor_reconcilers::migrate::volume_view(&ctx, &args.pv)
        .await
        .context("reading the volume's objects")?;
    let d = volume::decide_volume(&view);
    println!(
        "# `cstor migrate volume {}` (dry run: nothing was changed)",
        args.pv
    );
    match d.next {
        Next::Fail { reason } => {
            eprintln!("problem ({reason}): {}", d.message);
            Ok(false)
        }
        Next::Done => {
            println!("# already migrated: {}", d.message);
            Ok(true)
        }
        _ => {
            println!(
                "# no problems found; the first step: {}: {}",
                d.step, d.message
            );
            Ok(true)
        }
    }
}
