//! The whole product on the local cluster, as `cstor up` and the end-to-end tests run it:
//! deploy/'s RBAC, the webhook, per node a zfs-fuse daemon, sparse disks and disk discovery,
//! the operator Deployment of deploy/ and every pool-manager Deployment it makes, run by
//! [`crate::pods`]. Every component talks to the apiserver with a token of its own
//! ServiceAccount, so deploy/'s RBAC is exactly what runs.

use cstor_api::keys::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::Client;

use crate::Error;
use crate::cluster;
use crate::components::{self, Access, OPERATOR_NAMESPACE, WEBHOOK_ACCOUNT};
use crate::node::{self, DiskLayout, LocalNode};
use crate::pods::{self, PodEnv, PodTable, PortTable};
use crate::process::Supervisor;

/// deploy/operator/operator.yaml: the cspc-operator's ServiceAccount, RBAC and Deployment.
pub const OPERATOR_MANIFEST: &str = include_str!("../../deploy/operator/operator.yaml");
/// deploy/pool-manager/rbac.yaml: what a pool-manager may do.
pub const POOL_MANAGER_RBAC: &str = include_str!("../../deploy/pool-manager/rbac.yaml");
/// deploy/disk-discovery/disk-discovery.yaml: the node agent's RBAC and DaemonSet.
pub const DISK_DISCOVERY_MANIFEST: &str =
    include_str!("../../deploy/disk-discovery/disk-discovery.yaml");
/// deploy/cvc-operator/operator.yaml: the cvc-operator's ServiceAccount, RBAC and Deployment.
pub const CVC_OPERATOR_MANIFEST: &str = include_str!("../../deploy/cvc-operator/operator.yaml");
/// deploy/volume-manager/rbac.yaml: what a volume target may do.
pub const VOLUME_MANAGER_RBAC: &str = include_str!("../../deploy/volume-manager/rbac.yaml");
/// The disk-discovery ServiceAccount.
pub const DISCOVERY_ACCOUNT: &str = "cstor-disk-discovery";

/// What to start.
#[derive(Clone, Debug)]
pub struct StackOptions {
    pub nodes: usize,
    pub disks: DiskLayout,
    /// The `cstor` binary.
    pub exe: PathBuf,
    /// How often disk discovery rescans.
    pub discovery_interval: Duration,
    /// Replicas of the operator Deployment (deploy/ says 2).
    pub operator_replicas: Option<i32>,
}

/// The running stack; [`Stack::stop`] (or drop) ends it.
pub struct Stack {
    pub nodes: Vec<LocalNode>,
    /// The processes run for Deployments (operator, pool-managers).
    pub pods: PodTable,
    /// Host ports of the pods' named ports (the cvc-operators' backup REST API).
    pub ports: PortTable,
    /// The webhook's port on 127.0.0.1.
    pub webhook_port: u16,
    /// The iSCSI portal of the machine's tgtd (`127.0.0.1:PORT`).
    pub iscsi_port: u16,
    /// tgtd's management port (`tgtadm -C`).
    pub tgt_control_port: u16,
    sup: Supervisor,
    stop_tx: Option<tokio::sync::oneshot::Sender<()>>,
    runner: Option<tokio::task::JoinHandle<()>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

/// Node `i`'s directory under `dir`.
pub fn node_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join("nodes").join(name)
}

/// Starts everything on the control plane reached by `access` and `admin`, with state under
/// `dir`; returns once the webhook serves and the nodes' daemons answer.
pub async fn start(
    admin: &Client,
    access: &Access,
    dir: &Path,
    opts: &StackOptions,
) -> Result<Stack, Error> {
    node::check_tools()?;
    components::ensure_namespace(admin, OPERATOR_NAMESPACE).await?;
    let names = cluster::create_nodes(admin, opts.nodes).await?;
    for manifest in [
        components::WEBHOOK_RBAC,
        POOL_MANAGER_RBAC,
        VOLUME_MANAGER_RBAC,
        DISK_DISCOVERY_MANIFEST,
    ] {
        components::apply(admin, &without_workloads(components::documents(manifest)?)).await?;
    }
    let logs = dir.join("logs");
    let token_dir = dir.join("components");
    let mut sup = Supervisor::new(logs.clone(), None)?;
    let webhook_port = start_webhook(admin, access, &opts.exe, &mut sup, &token_dir).await?;

    let mut nodes = Vec::new();
    let discovery_kc = components::account_kubeconfig(
        access,
        admin,
        OPERATOR_NAMESPACE,
        DISCOVERY_ACCOUNT,
        &token_dir,
    )
    .await?;
    for name in &names {
        let ndir = node_dir(dir, name);
        let local = node::start(&mut sup, name, &ndir)?;
        node::make_disks(&local.disks_dir(), opts.disks)?;
        let mut cmd = Command::new(&opts.exe);
        cmd.arg("disk-discovery")
            .arg("--node")
            .arg(name)
            .arg("--namespace")
            .arg(OPERATOR_NAMESPACE)
            .arg("--sparse-dir")
            .arg(local.disks_dir())
            .arg("--interval-ms")
            .arg(opts.discovery_interval.as_millis().to_string())
            .env(env::KUBECONFIG, &discovery_kc)
            .env("RUST_LOG", rust_log());
        sup.spawn(&format!("disk-discovery-{name}"), cmd)?;
        nodes.push(local);
    }

    let (tgt_control_port, iscsi_port) = start_tgtd(&mut sup)?;

    let mut operator = components::documents(OPERATOR_MANIFEST)?;
    operator.extend(components::documents(CVC_OPERATOR_MANIFEST)?);
    if let Some(replicas) = opts.operator_replicas {
        for doc in &mut operator {
            if doc.get("kind").and_then(|k| k.as_str()) == Some("Deployment")
                && let Some(spec) = doc.get_mut("spec").and_then(|s| s.as_object_mut())
            {
                spec.insert("replicas".into(), serde_json::json!(replicas));
            }
        }
    }
    components::apply(admin, &operator).await?;

    let pods = PodTable::default();
    let ports = PortTable::default();
    let env = PodEnv {
        namespace: OPERATOR_NAMESPACE.into(),
        exe: opts.exe.clone(),
        nodes: nodes.clone(),
        access: access.clone(),
        token_dir: token_dir.clone(),
        logs: logs.clone(),
        pgid: sup.pgid(),
        extra_env: [
            (
                env::CSTOR_TGT_CONTROL_PORT.to_string(),
                tgt_control_port.to_string(),
            ),
            (
                env::CSTOR_NODE_ROOTS.to_string(),
                nodes
                    .iter()
                    .map(|n| format!("{}={}", n.name, n.root().display()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                env::CSTOR_DISK_DIRS.to_string(),
                nodes
                    .iter()
                    .map(|n| format!("{}={}", n.name, n.disks_dir().display()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                env::CSTOR_REPLICA_ROOTS.to_string(),
                nodes
                    .iter()
                    .map(|n| {
                        format!(
                            "{}={}",
                            n.name,
                            n.host_path(cstor_api::keys::DEFAULT_REPLICA_ROOT).display()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]
        .into(),
        scratch: dir.join("pods"),
        ports: ports.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(pods::run(admin.clone(), env, pods.clone(), async move {
        let _ = stop_rx.await;
    }));
    let renewer = tokio::spawn(renew_tokens(
        admin.clone(),
        token_dir,
        vec![WEBHOOK_ACCOUNT.into(), DISCOVERY_ACCOUNT.into()],
    ));
    Ok(Stack {
        nodes,
        pods,
        ports,
        webhook_port,
        iscsi_port,
        tgt_control_port,
        sup,
        stop_tx: Some(stop_tx),
        runner: Some(runner),
        renewer: Some(renewer),
    })
}

/// Starts the machine's tgtd (every volume-manager adds its target to it) on a free iSCSI
/// port and a management port of its own; returns (control port, iSCSI port).
/// The lock (in /var/run/tgtd) that serializes picking a tgtd control port machine-wide.
const PICK_LOCK: &str = "cstor-port-pick.lock";

fn start_tgtd(sup: &mut Supervisor) -> Result<(u16, u16), Error> {
    if !Path::new("/usr/sbin/tgtd").exists() {
        return Err(Error::Tool(
            "`tgtd` is not installed: local volumes need it (apt-get install tgt)".into(),
        ));
    }
    // tgtd's management socket is /var/run/tgtd/socket.<port>: pick one nobody uses. Stacks
    // of other test processes pick at the same time; a machine-wide lock, held until our tgtd
    // answers (its socket then exists), keeps two of them from picking the same port.
    let dir = Path::new("/var/run/tgtd");
    let io = |source| Error::Io {
        path: dir.join(PICK_LOCK),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let pick = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(PICK_LOCK))
        .map_err(io)?;
    pick.lock().map_err(io)?;
    let taken = |p: u16| {
        dir.join(format!("socket.{p}")).exists() || dir.join(format!("socket.{p}.lock")).exists()
    };
    let control = (100..60000u16)
        .map(|i| i.wrapping_add((std::process::id() % 997) as u16))
        .find(|p| !taken(*p))
        .unwrap_or(4242);
    let iscsi = components::free_port()?;
    let mut cmd = Command::new("tgtd");
    cmd.arg("-f")
        .arg("-C")
        .arg(control.to_string())
        .arg("--iscsi")
        .arg(format!("portal=127.0.0.1:{iscsi}"));
    sup.spawn("tgtd", cmd)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let shown = Command::new("tgtadm")
            .args([
                "-C",
                &control.to_string(),
                "--lld",
                "iscsi",
                "--mode",
                "target",
                "--op",
                "show",
            ])
            .output();
        if shown.is_ok_and(|o| o.status.success()) {
            return Ok((control, iscsi));
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "tgtd did not answer tgtadm -C {control} within 20s; log {}",
                sup.log_path("tgtd").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Keeps only what the local stack applies itself: ServiceAccounts and RBAC (DaemonSets are
/// run by the stack directly, one process per node).
fn without_workloads(docs: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    docs.into_iter()
        .filter(|d| d.get("kind").and_then(|k| k.as_str()) != Some("DaemonSet"))
        .collect()
}

fn rust_log() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into())
}

async fn renew_tokens(admin: Client, dir: PathBuf, accounts: Vec<String>) {
    let mut tick = tokio::time::interval(components::TOKEN_LIFETIME / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        for account in &accounts {
            let path = components::token_path(&dir, account);
            if let Err(e) =
                components::refresh_token(&admin, OPERATOR_NAMESPACE, account, &path).await
            {
                tracing::warn!(error = %e, account, "service-account token not renewed");
            }
        }
    }
}

/// Applies deploy/webhook's RBAC and configurations (pointed at loopback) and runs
/// `cstor webhook` with a token of its own ServiceAccount; returns its port once it serves.
async fn start_webhook(
    admin: &Client,
    access: &Access,
    exe: &Path,
    sup: &mut Supervisor,
    token_dir: &Path,
) -> Result<u16, Error> {
    let kubeconfig = components::account_kubeconfig(
        access,
        admin,
        OPERATOR_NAMESPACE,
        WEBHOOK_ACCOUNT,
        token_dir,
    )
    .await?;
    let port = components::free_port()?;
    let base = format!("https://127.0.0.1:{port}");
    components::apply(admin, &components::local_webhook_configurations(&base)?).await?;
    components::local_conversion(admin, &base).await?;
    let mut cmd = Command::new(exe);
    cmd.arg("webhook")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--namespace")
        .arg(OPERATOR_NAMESPACE)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--ip")
        .arg("127.0.0.1")
        .env("RUST_LOG", rust_log());
    sup.spawn("webhook", cmd)?;
    components::wait_for_ca_bundles(admin, Duration::from_secs(60)).await?;
    components::wait_for_webhook_ready(port, Duration::from_secs(60)).await?;
    Ok(port)
}

impl Stack {
    /// The local node called `name`.
    pub fn node(&self, name: &str) -> Option<&LocalNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// A supervised child (webhook, zfs-fuse, disk discovery) that has exited, if any.
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.sup.exited()
    }

    /// The log file of a supervised child.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.sup.log_path(name)
    }

    /// Stops the Deployments' processes, then the node daemons and the webhook.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(runner) = self.runner.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), runner).await;
        }
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        // tgtd ignores SIGTERM; this is its clean stop.
        let _ = Command::new("tgtadm")
            .args([
                "-C",
                &self.tgt_control_port.to_string(),
                "--op",
                "delete",
                "--mode",
                "system",
            ])
            .output();
        self.sup.stop(Duration::from_secs(10));
    }
}
