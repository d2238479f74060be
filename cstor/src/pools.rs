//! `cstor operator`, `cstor pool-manager`, `cstor disk-discovery` and `cstor status`: flags
//! and environment (the names the Go original's Deployments use), then the crates' entry
//! points.

use cstor_api::keys::env;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use cstor_agents::pool_manager::commands::Dialect;

use crate::common::client;

/// Flags of `cstor operator`.
#[derive(Args, Debug, Clone)]
pub struct OperatorArgs {
    /// The operator namespace (CSPCs, CSPIs, BlockDevices, claims, pool-manager Deployments).
    #[arg(long, env = env::OPENEBS_NAMESPACE)]
    pub namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = env::POD_NAME)]
    pub identity: Option<String>,
    /// Run the controllers only while holding the Lease `cspc-controller-leader`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    #[arg(long, default_value = "cspc-controller-leader")]
    pub lease_name: String,
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// Bind BlockDeviceClaims (off where OpenEBS NDM runs and does it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub claim_binding: bool,
    /// Create the UpgradeTasks that bring older CSPCs and volumes (the Go operators', or an
    /// earlier release's) to this version, one at a time (docs/upgrades.md).
    #[arg(long, env = env::CSTOR_AUTO_UPGRADE, default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_upgrade: bool,
    /// Image of the pool-manager container of the Deployments made per CSPI (default: our
    /// image of this version).
    #[arg(long, env = env::OPENEBS_IO_CSPI_MGMT_IMAGE)]
    pub pool_manager_image: Option<String>,
    /// Image of the uZFS (zrepl) container of those Deployments.
    #[arg(
        long,
        env = env::OPENEBS_IO_CSTOR_POOL_IMAGE,
        default_value = "openebs/cstor-pool:3.6.0"
    )]
    pub pool_image: String,
    /// Image of the metrics (m-exporter) container of those Deployments.
    #[arg(
        long,
        env = env::OPENEBS_IO_CSTOR_POOL_EXPORTER_IMAGE,
        default_value = "openebs/m-exporter:3.6.0"
    )]
    pub pool_exporter_image: String,
    /// imagePullSecrets of the pool pods (comma-separated Secret names).
    #[arg(long, env = env::OPENEBS_IO_IMAGE_PULL_SECRETS, default_value = "")]
    pub image_pull_secrets: String,
    /// ServiceAccount of the pool-manager pods.
    #[arg(
        long,
        env = env::OPENEBS_SERVICEACCOUNT_NAME,
        default_value = "cstor-pool-manager"
    )]
    pub pool_manager_account: String,
    #[arg(long, env = env::OPENEBS_IO_BASE_DIR, default_value = "/var/openebs")]
    pub base_dir: String,
    #[arg(
        long,
        env = env::OPENEBS_IO_CSTOR_POOL_SPARSE_DIR,
        default_value = "/var/openebs/sparse"
    )]
    pub sparse_dir: String,
    /// Safety-net requeue of every CSPC (changes are watch-driven).
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

pub async fn operator(args: OperatorArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_ref()).await?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("cstor-operator-{}", std::process::id()));
    let version = cstor_runtime::version::ours();
    let config = cstor_reconcilers::cspc_operator::OperatorConfig {
        namespace: args.namespace.clone(),
        identity,
        leader_election: args.leader_election,
        lease_name: args.lease_name.clone(),
        lease_seconds: args.lease_seconds,
        claim_binding: args.claim_binding,
        auto_upgrade: args.auto_upgrade,
        cspc: cstor_reconcilers::cspc::CspcConfig {
            operator_version: version.clone(),
            pool_manager_image: args
                .pool_manager_image
                .clone()
                .unwrap_or_else(|| cstor_runtime::version::image(&version)),
            pool_image: args.pool_image.clone(),
            exporter_image: args.pool_exporter_image.clone(),
            image_pull_secrets: cstor_reconcilers::podspec::pull_secret_names(
                &args.image_pull_secrets,
            ),
            pool_manager_account: args.pool_manager_account.clone(),
            base_dir: args.base_dir.clone(),
            sparse_dir: args.sparse_dir.clone(),
            resync: Duration::from_secs(args.resync_seconds.max(1)),
        },
    };
    cstor_reconcilers::cspc_operator::run(client, config, crate::common::terminated())
        .await
        .context("operator")
}

/// Flags of `cstor pool-manager` (env names as in the pool-manager Deployment).
#[derive(Args, Debug, Clone)]
pub struct PoolManagerArgs {
    /// UID of the CSPI this manager runs.
    #[arg(long, env = env::OPENEBS_IO_CSPI_ID)]
    pub cspi_id: String,
    /// UID of the CSPC: the zpool is `cstor-<this>`.
    #[arg(long, env = env::OPENEBS_IO_POOL_NAME)]
    pub pool_name: String,
    #[arg(long, env = env::NAMESPACE)]
    pub namespace: String,
    #[arg(long, env = env::NODE_NAME)]
    pub node: String,
    #[arg(
        long,
        env = env::CSTOR_POOL_CACHE_FILE,
        default_value = "/var/openebs/cstor-pool/pool.cache"
    )]
    pub cache_file: PathBuf,
    /// `uzfs` (cStor's pool container) or `zfs-fuse` (the local data plane).
    #[arg(long, env = env::CSTOR_ZFS_DIALECT, default_value = "uzfs", value_parser = parse_dialect)]
    pub dialect: Dialect,
    #[arg(long, env = env::RESYNC_INTERVAL, default_value_t = 30)]
    pub resync_seconds: u64,
    /// Timeout of one zpool/zfs command.
    #[arg(long, default_value_t = 120)]
    pub command_timeout_seconds: u64,
    /// Where sparse-file disks live (the pool container's mount); `/dev` is always allowed.
    #[arg(long, env = env::OPENEBS_IO_CSTOR_POOL_SPARSE_DIR, default_value = "/var/openebs/sparse")]
    pub sparse_dir: PathBuf,
    /// `node=dir,…`: more disk directories per node (the local runner's).
    #[arg(long, env = env::CSTOR_DISK_DIRS, default_value = "")]
    pub disk_dirs: String,
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    match s {
        "uzfs" => Ok(Dialect::Uzfs),
        "zfs-fuse" => Ok(Dialect::ZfsFuse),
        other => Err(format!("unknown ZFS dialect {other:?} (uzfs | zfs-fuse)")),
    }
}

pub async fn pool_manager(args: PoolManagerArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_ref()).await?;
    let resync = if args.resync_seconds == 0 {
        30
    } else {
        args.resync_seconds
    };
    let config = cstor_agents::pool_manager::Config {
        namespace: args.namespace.clone(),
        cspi_uid: args.cspi_id.clone(),
        pool_uid: args.pool_name.clone(),
        node: args.node.clone(),
        cache_file: args.cache_file.clone(),
        dialect: args.dialect,
        resync: Duration::from_secs(resync),
        command_timeout: Duration::from_secs(args.command_timeout_seconds.max(1)),
        disk_dirs: [PathBuf::from("/dev"), args.sparse_dir.clone()]
            .into_iter()
            .chain(
                cstor_agents::volume_manager::status::parse_node_roots(&args.disk_dirs)
                    .remove(&args.node),
            )
            .collect(),
    };
    cstor_agents::pool_manager::run(client, config, crate::common::terminated())
        .await
        .context("pool-manager")
}

/// Flags of `cstor disk-discovery`.
#[derive(Args, Debug, Clone)]
pub struct DiscoveryArgs {
    #[arg(long, env = env::NODE_NAME)]
    pub node: String,
    #[arg(long, env = env::OPENEBS_NAMESPACE)]
    pub namespace: String,
    /// Regular files in this directory are the node's disks.
    #[arg(long, default_value = "/var/openebs/sparse")]
    pub sparse_dir: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    pub interval_ms: u64,
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

pub async fn disk_discovery(args: DiscoveryArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_ref()).await?;
    let config = cstor_agents::discovery_agent::DiscoveryConfig {
        namespace: args.namespace,
        node: args.node,
        sparse_dir: args.sparse_dir,
        interval: Duration::from_millis(args.interval_ms.max(100)),
    };
    cstor_agents::discovery_agent::run(client, config, crate::common::terminated()).await;
    Ok(())
}
