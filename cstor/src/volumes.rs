//! `cstor cvc-operator`, `cstor volume-manager` and `cstor volume create`: flags and
//! environment (the names the Go original's Deployments use), then the crates' entry points.

use cstor_api::keys::env;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use cstor_api::cstor_v1::cvc::CStorVolumeConfig;
use cstor_api::keys::{annotations, finalizers, labels};
use kube::Api;
use kube::api::PostParams;

use crate::common::client;

/// Flags of `cstor cvc-operator`.
#[derive(Args, Debug, Clone)]
pub struct CvcOperatorArgs {
    #[arg(long, env = env::OPENEBS_NAMESPACE)]
    pub namespace: String,
    #[arg(long, env = env::POD_NAME)]
    pub identity: Option<String>,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    #[arg(long, default_value = "cvc-controller-leader")]
    pub lease_name: String,
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// Image of the volume-manager container of the target Deployments (default: our image
    /// of this version).
    #[arg(long, env = env::OPENEBS_IO_CSTOR_VOLUME_MGMT_IMAGE)]
    pub volume_manager_image: Option<String>,
    /// Image of cStor's istgt container of those Deployments.
    #[arg(
        long,
        env = env::OPENEBS_IO_CSTOR_TARGET_IMAGE,
        default_value = "openebs/cstor-istgt:3.6.0"
    )]
    pub istgt_image: String,
    /// Image of the metrics (m-exporter) container of those Deployments.
    #[arg(
        long,
        env = env::OPENEBS_IO_VOLUME_MONITOR_IMAGE,
        default_value = "openebs/m-exporter:3.6.0"
    )]
    pub volume_exporter_image: String,
    /// imagePullSecrets of the target pods (comma-separated Secret names).
    #[arg(long, env = env::OPENEBS_IO_IMAGE_PULL_SECRETS, default_value = "")]
    pub image_pull_secrets: String,
    #[arg(
        long,
        env = env::OPENEBS_SERVICEACCOUNT_NAME,
        default_value = "cstor-volume-manager"
    )]
    pub volume_manager_account: String,
    #[arg(long, env = env::OPENEBS_IO_BASE_DIR, default_value = "/var/openebs")]
    pub base_dir: String,
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
    /// Where the velero-plugin's backup/restore REST API listens (plain HTTP; empty: not
    /// served). Every replica serves it, leader or not: it only reads and writes the API.
    #[arg(long, env = env::CSTOR_BACKUP_API_BIND, default_value = "0.0.0.0:5757")]
    pub backup_api_bind: String,
}

pub async fn cvc_operator(args: CvcOperatorArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_ref()).await?;
    let version = cstor_runtime::version::ours();
    let config = cstor_reconcilers::cvc::CvcConfig {
        namespace: args.namespace.clone(),
        identity: args
            .identity
            .clone()
            .unwrap_or_else(|| format!("cstor-cvc-operator-{}", std::process::id())),
        leader_election: args.leader_election,
        lease_name: args.lease_name.clone(),
        lease_seconds: args.lease_seconds,
        operator_version: version.clone(),
        volume_manager_image: args
            .volume_manager_image
            .clone()
            .unwrap_or_else(|| cstor_runtime::version::image(&version)),
        istgt_image: args.istgt_image.clone(),
        exporter_image: args.volume_exporter_image.clone(),
        image_pull_secrets: cstor_reconcilers::podspec::pull_secret_names(&args.image_pull_secrets),
        volume_manager_account: args.volume_manager_account.clone(),
        base_dir: args.base_dir.clone(),
        resync: Duration::from_secs(args.resync_seconds.max(1)),
    };
    let operator =
        cstor_reconcilers::cvc_operator::run(client.clone(), config, crate::common::terminated());
    if args.backup_api_bind.trim().is_empty() {
        return operator.await.context("cvc-operator");
    }
    let addr: std::net::SocketAddr = args.backup_api_bind.trim().parse().with_context(|| {
        format!(
            "--backup-api-bind {:?} is not host:port",
            args.backup_api_bind
        )
    })?;
    let apis = cstor_reconcilers::backup::Apis {
        client,
        config: cstor_reconcilers::backup::RestConfig::new(&args.namespace),
    };
    // The API stops with the operator (whose own stop waits for the termination signal).
    tokio::select! {
        r = operator => r.context("cvc-operator"),
        r = cstor_reconcilers::backup::rest::serve(apis, addr, std::future::pending()) => {
            r.with_context(|| format!("backup REST API on {addr}"))?;
            anyhow::bail!("the backup REST API on {addr} stopped")
        }
    }
}

/// Flags of `cstor volume-manager` (env names as in the target Deployment).
#[derive(Args, Debug, Clone)]
pub struct VolumeManagerArgs {
    /// UID of the CStorVolume this target serves.
    #[arg(long, env = env::OPENEBS_IO_CSTOR_VOLUME_ID)]
    pub volume_id: String,
    #[arg(long, env = env::OPENEBS_NAMESPACE)]
    pub namespace: String,
    /// Where the FUSE fan-out is mounted (its file `lun` is the iSCSI LUN).
    #[arg(
        long,
        env = env::CSTOR_FANOUT_DIR,
        default_value = "/var/openebs/cstor-target/fanout"
    )]
    pub mount_dir: PathBuf,
    /// tgtd's management port (`tgtadm -C`), when not the default.
    #[arg(long, env = env::CSTOR_TGT_CONTROL_PORT)]
    pub tgt_control_port: Option<u16>,
    /// `node=/path,…`: where each node's filesystem is reached (local mode).
    #[arg(long, env = env::CSTOR_NODE_ROOTS, default_value = "")]
    pub node_roots: String,
    /// `node=/path,…`: where replica files live on each node (local mode); default
    /// `/var/openebs/cstor-pool`.
    #[arg(long, env = env::CSTOR_REPLICA_ROOTS, default_value = "")]
    pub replica_roots: String,
    #[arg(long, env = env::RESYNC_INTERVAL, default_value_t = 30)]
    pub resync_seconds: u64,
    #[arg(long, default_value_t = 60)]
    pub command_timeout_seconds: u64,
    /// Initiators allowed to log in (IQNs, addresses or subnets, comma-separated; empty: all).
    #[arg(long, env = env::CSTOR_TARGET_INITIATORS, default_value = "")]
    pub initiators: String,
    /// CHAP user initiators must log in as (with the password; from the volume's Secret).
    #[arg(long, env = env::CSTOR_TARGET_CHAP_USER, hide_env_values = true)]
    pub chap_user: Option<String>,
    #[arg(long, env = env::CSTOR_TARGET_CHAP_PASSWORD, hide_env_values = true)]
    pub chap_password: Option<String>,
    /// The target: `istgt` (cStor's, beside this container in a cluster) or `tgt` (the local
    /// stack's tgtd over the FUSE fan-out).
    #[arg(long, env = env::CSTOR_TARGET, default_value = "istgt")]
    pub target: cstor_agents::volume_manager::Target,
    /// istgt's control socket.
    #[arg(long, default_value = cstor_agents::volume_manager::istgt::CONTROL_SOCKET)]
    pub istgt_control_socket: PathBuf,
    /// Where istgt registers replicas.
    #[arg(long, default_value = cstor_agents::volume_manager::istgt::register::REGISTRATION_SOCKET)]
    pub istgt_registration_socket: PathBuf,
    /// The istgt.conf istgt reads.
    #[arg(long, default_value = cstor_agents::volume_manager::istgt::conf::CONF_PATH)]
    pub istgt_conf: PathBuf,
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

pub async fn volume_manager(args: VolumeManagerArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_ref()).await?;
    let resync = if args.resync_seconds == 0 {
        30
    } else {
        args.resync_seconds
    };
    let config = cstor_agents::volume_manager::Config {
        namespace: args.namespace.clone(),
        volume_uid: args.volume_id.clone(),
        mount_dir: args.mount_dir.clone(),
        tgt_control_port: args.tgt_control_port,
        node_roots: cstor_agents::volume_manager::status::parse_node_roots(&args.node_roots),
        replica_roots: cstor_agents::volume_manager::status::parse_node_roots(&args.replica_roots),
        resync: Duration::from_secs(resync),
        command_timeout: Duration::from_secs(args.command_timeout_seconds.max(1)),
        access: cstor_agents::volume_manager::tgt::Access::from_parts(
            &args.initiators,
            args.chap_user.clone(),
            args.chap_password.clone(),
        ),
        target: args.target,
        istgt: cstor_agents::volume_manager::istgt::serve::Paths {
            control: args.istgt_control_socket.clone(),
            registration: args.istgt_registration_socket.clone(),
            conf: args.istgt_conf.clone(),
        },
    };
    cstor_agents::volume_manager::run(client, config, crate::common::terminated())
        .await
        .context("volume-manager")
}

/// `cstor volume …`.
#[derive(Subcommand, Debug, Clone)]
pub enum VolumeCmd {
    /// Create a volume the way the cStor CSI driver does: a CStorVolumeConfig named NAME.
    Create(CreateArgs),
    /// Supervised recovery of a volume none of whose replicas is Healthy: shows each
    /// replica's recorded write sequence and since when it is not Healthy, then promotes one
    /// (the most recent unless --from) and the others are rebuilt from it. Refused while any
    /// replica is Healthy.
    Recover(RecoverArgs),
    /// Take a crash-consistent snapshot of a volume: writes are held while every Healthy
    /// replica's dataset is snapshotted at the same point (docs/backup-restore.md).
    Snapshot(SnapshotArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SnapshotArgs {
    /// Volume (PV) name.
    pub name: String,
    /// Snapshot name (letters, digits, `_`, `.`, `:`, `-`).
    pub snapshot: String,
    /// Destroy the snapshot instead.
    #[arg(long)]
    pub destroy: bool,
    /// Seconds to wait for the outcome.
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
    #[arg(long, env = env::OPENEBS_NAMESPACE, default_value = "openebs")]
    pub namespace: String,
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct RecoverArgs {
    /// Volume (PV) name.
    pub name: String,
    /// The replica to promote (replica id or CVR name); default: the highest write sequence.
    #[arg(long)]
    pub from: Option<String>,
    /// Only show the replicas and the choice.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, env = env::OPENEBS_NAMESPACE, default_value = "openebs")]
    pub namespace: String,
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Volume (PV) name.
    pub name: String,
    /// Capacity, a Kubernetes quantity, e.g. 1Gi.
    #[arg(long, value_parser = size_quantity)]
    pub size: String,
    /// Number of replicas.
    #[arg(long, default_value_t = 3)]
    pub replicas: i64,
    /// The CStorPoolCluster whose pools hold the replicas.
    #[arg(long)]
    pub pool_cluster: String,
    /// Initiators allowed to log in to the target: IQNs, addresses or subnets,
    /// comma-separated (default: all).
    #[arg(long)]
    pub initiators: Option<String>,
    /// A Secret (keys `username`, `password`) whose CHAP credentials initiators must present.
    #[arg(long)]
    pub chap_secret: Option<String>,
    #[arg(long, env = env::OPENEBS_NAMESPACE, default_value = "openebs")]
    pub namespace: String,
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

/// The CVC the CSI driver's CreateVolume makes (docs/volumes.md).
pub fn cvc_for(args: &CreateArgs) -> anyhow::Result<CStorVolumeConfig> {
    let mut value = serde_json::json!({
        "apiVersion": "cstor.openebs.io/v1",
        "kind": "CStorVolumeConfig",
        "metadata": {
            "name": args.name,
            "namespace": args.namespace,
            "labels": {labels::CSTOR_POOL_CLUSTER: args.pool_cluster},
            "annotations": {
                annotations::VOLUME_ID: args.name,
                annotations::VOLUME_POLICY: "",
            },
            "finalizers": [finalizers::CVC],
        },
        "spec": {
            "capacity": {"storage": args.size},
            "provision": {"capacity": {"storage": args.size}, "replicaCount": args.replicas},
            "policy": {},
        },
    });
    if let Some(who) = &args.initiators {
        value["metadata"]["annotations"][annotations::TARGET_INITIATORS] = serde_json::json!(who);
    }
    if let Some(secret) = &args.chap_secret {
        value["metadata"]["annotations"][annotations::TARGET_CHAP_SECRET] =
            serde_json::json!(secret);
    }
    serde_json::from_value(value).context("building the CStorVolumeConfig")
}

pub async fn run(cmd: VolumeCmd) -> anyhow::Result<()> {
    match cmd {
        VolumeCmd::Create(args) => {
            let client = crate::common::user_client(args.kubeconfig.clone()).await?;
            let api: Api<CStorVolumeConfig> = Api::namespaced(client, &args.namespace);
            let cvc = cvc_for(&args)?;
            api.create(&PostParams::default(), &cvc)
                .await
                .with_context(|| format!("creating CStorVolumeConfig {}", args.name))?;
            println!(
                "cstorvolumeconfig {}/{} created ({} replicas of {} on {}); watch it with `cstor status`",
                args.namespace, args.name, args.replicas, args.size, args.pool_cluster
            );
            Ok(())
        }
        VolumeCmd::Recover(args) => recover(args).await,
        VolumeCmd::Snapshot(args) => snapshot(args).await,
    }
}

async fn recover(args: RecoverArgs) -> anyhow::Result<()> {
    use cstor_agents::volume_manager::status::{RECOVER_FROM_ANNOTATION, recovery_plan};
    let client = crate::common::user_client(args.kubeconfig.clone()).await?;
    let cvs: Api<cstor_api::cstor_v1::cv::CStorVolume> =
        Api::namespaced(client.clone(), &args.namespace);
    let cvrs: Api<cstor_api::cstor_v1::cvr::CStorVolumeReplica> =
        Api::namespaced(client, &args.namespace);
    let cv = cvs
        .get(&args.name)
        .await
        .with_context(|| format!("reading CStorVolume {}", args.name))?;
    let list = cvrs
        .list(&kube::api::ListParams::default().labels(&format!(
            "{}={}",
            labels::PERSISTENT_VOLUME,
            args.name
        )))
        .await
        .with_context(|| format!("listing the replicas of {}", args.name))?
        .items;
    let (chosen, rows) =
        recovery_plan(&cv, &list, args.from.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "{:<22} {:<28} {:<10} {:>12} {:<10} SINCE",
        "REPLICA", "CVR", "RECORDED", "WRITE SEQ", "PHASE"
    );
    for r in &rows {
        let mark = if r.id == chosen { " <- promoted" } else { "" };
        println!(
            "{:<22} {:<28} {:<10} {:>12} {:<10} {}{mark}",
            r.id, r.cvr, r.mode, r.io_seq, r.phase, r.since
        );
    }
    if args.dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }
    let patch = serde_json::json!({"metadata": {"annotations": {RECOVER_FROM_ANNOTATION: chosen}}});
    cvs.patch(
        &args.name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .with_context(|| format!("marking replica {chosen} of {} for recovery", args.name))?;
    println!(
        "volume {}: replica {chosen} is promoted; the target serves from it as soon as it can open it, and rebuilds the others from it (watch it with `cstor status`)",
        args.name
    );
    Ok(())
}

async fn snapshot(args: SnapshotArgs) -> anyhow::Result<()> {
    use cstor_api::snapshot::Op;
    let client = crate::common::user_client(args.kubeconfig.clone()).await?;
    let cvs: Api<cstor_api::cstor_v1::cv::CStorVolume> = Api::namespaced(client, &args.namespace);
    let op = if args.destroy {
        Op::Destroy
    } else {
        Op::Create
    };
    let o = cstor_reconcilers::snapshot::request(
        &cvs,
        &args.name,
        &args.snapshot,
        op,
        std::time::Duration::from_secs(args.wait),
    )
    .await?;
    if op == Op::Create {
        println!(
            "snapshot {}@{} taken on replicas {} (writes held {} ms)",
            args.name,
            o.snapshot,
            o.done.join(", "),
            o.held_ms
        );
    } else {
        println!(
            "snapshot {}@{} destroyed on replicas {}",
            args.name,
            o.snapshot,
            o.done.join(", ")
        );
    }
    Ok(())
}

/// A volume size as typed: refused here unless it is a positive number of bytes.
fn size_quantity(s: &str) -> Result<String, String> {
    match cstor_api::quantity::bytes(s) {
        Ok(0) => Err("a volume size must be more than 0 bytes".into()),
        Ok(_) => Ok(s.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
