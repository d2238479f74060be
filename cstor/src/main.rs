//! `cstor`: the one binary of the cStor operators in Rust.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod common;
mod migrate;
mod pools;
mod status;
mod upgrade;
mod volumes;
mod webhook;

#[derive(Parser, Debug)]
#[command(name = "cstor", version, about = "cStor operators in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the product on the embedded local default: a real control plane on loopback,
    /// our CRDs and N nodes, in the foreground until Ctrl-C.
    Up {
        /// Number of Node objects to create.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// State directory (one `cstor up` per directory).
        #[arg(long, env = "CSTOR_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Sparse-file disks per node.
        #[arg(long, default_value_t = 4)]
        disks_per_node: usize,
        /// Size of each disk, a Kubernetes quantity: 1Gi, 512Mi (1G is 10^9 bytes).
        #[arg(long, default_value = "1Gi", value_parser = common::disk_size_bytes)]
        disk_size: u64,
    },
    /// Run the cspc-operator (CSPC -> pools) and claim binding, leader-elected.
    Operator(Box<pools::OperatorArgs>),
    /// Run the pool manager of one CStorPoolInstance (zpool/zfs on its node).
    PoolManager(Box<pools::PoolManagerArgs>),
    /// Register a node's disks as BlockDevices.
    DiskDiscovery(pools::DiscoveryArgs),
    /// Run the cvc-operator (CVC -> volume, target, replicas), leader-elected.
    CvcOperator(Box<volumes::CvcOperatorArgs>),
    /// Run the iSCSI target of one CStorVolume (the target Deployment's sidecar).
    VolumeManager(Box<volumes::VolumeManagerArgs>),
    /// Volumes: `cstor volume create NAME --size 1Gi --replicas 3 --pool-cluster CSPC`.
    #[command(subcommand)]
    Volume(volumes::VolumeCmd),
    /// Print the pools and volumes of the cluster.
    Status(status::StatusArgs),
    /// Run the admission webhook server (HTTPS): validation, mutation, certificates.
    Webhook(Box<webhook::WebhookArgs>),
    /// Move old-operator objects (SPC pools) to their current form, or plan it (--dry-run).
    #[command(subcommand)]
    Migrate(migrate::MigrateCmd),
    /// Upgrade a pool cluster or a volume to the operators' version, or check what would be.
    #[command(subcommand)]
    Upgrade(upgrade::UpgradeCmd),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(migrate::PROBLEMS_FOUND),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `Ok(false)`: the command ran and found problems (a dry run's findings).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Cmd::Up {
            nodes,
            state_dir,
            disks_per_node,
            disk_size,
        } => {
            let opts = cstor_local::up::UpOptions {
                state_dir: state_dir.unwrap_or_else(cstor_local::up::default_state_dir),
                nodes,
                cstor_exe: std::env::current_exe()?,
                disks: cstor_local::node::DiskLayout {
                    per_node: disks_per_node,
                    bytes: disk_size,
                },
            };
            cstor_local::up::run(opts).await?;
        }
        Cmd::Operator(args) => pools::operator(*args).await?,
        Cmd::PoolManager(args) => pools::pool_manager(*args).await?,
        Cmd::DiskDiscovery(args) => pools::disk_discovery(args).await?,
        Cmd::Status(args) => status::run(args).await?,
        Cmd::CvcOperator(args) => volumes::cvc_operator(*args).await?,
        Cmd::VolumeManager(args) => volumes::volume_manager(*args).await?,
        Cmd::Volume(cmd) => volumes::run(cmd).await?,
        Cmd::Webhook(args) => webhook::run(*args).await?,
        Cmd::Migrate(cmd) => return migrate::run(cmd).await,
        Cmd::Upgrade(cmd) => return upgrade::run(cmd).await,
    }
    Ok(true)
}
