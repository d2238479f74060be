//! `cstor migrate spc NAME --dry-run`: the CSPC an SPC would become and every problem in the
//! way, read from the cluster; nothing is written (docs/admission.md C).

use cstor_api::keys::env;
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
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
}

/// Flags of `cstor migrate spc`.
#[derive(Args, Debug, Clone)]
pub struct SpcArgs {
    /// The SPC's name.
    pub name: String,
    /// Name of the CSPC to create (default: the SPC's name).
    #[arg(long)]
    pub cspc_name: Option<String>,
    /// Only print the CSPC and the problems; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The operator namespace (BlockDevices, claims, pool Deployments, the new CSPC).
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
    let MigrateCmd::Spc(args) = cmd;
    if !args.dry_run {
        bail!(
            "only `--dry-run` is available: the MigrationTask controller that performs the migration comes with the pools work"
        );
    }
    let client = crate::common::client(args.kubeconfig.as_ref()).await?;
    let ns = args.namespace.as_str();
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
