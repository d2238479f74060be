//! The pool-manager: the per-CSPI node agent that imports or creates the zpool
//! `cstor-<CSPC UID>`, replaces and adds disks as the CSPI spec says, keeps the pool's
//! properties, and reports the pool in the CSPI status (docs/pools.md, with our changes
//! and docs/pools.md). Decisions are pure ([`decide`], [`zfs`]); [`reconcile`] runs them.

pub mod backup;
pub mod commands;
pub(crate) mod decide;
pub(crate) mod kube_ops;
pub(crate) mod reconcile;
pub mod replica;
pub mod restore;
pub mod snapshot;
pub mod zfs;
pub mod zpool;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cstor_api::cstor_v1::cspi::CStorPoolInstance;
use cstor_api::cstor_v1::cvr::CStorVolumeReplica;
use cstor_api::keys;
use cstor_api::openebs_v1alpha1::BlockDeviceClaim;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::pool_manager::commands::Dialect;
use crate::runner::{RunError, Runner};

/// What `cstor pool-manager` is configured with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespace of the CSPI, its BlockDevices and claims.
    pub namespace: String,
    /// UID of the one CSPI this process runs.
    pub cspi_uid: String,
    /// CSPC UID: the zpool is `cstor-<pool_uid>`.
    pub pool_uid: String,
    /// Node name (field manager `cstor-pool-manager/<node>`).
    pub node: String,
    /// The zpool cache file.
    pub cache_file: PathBuf,
    pub dialect: Dialect,
    /// Safety-net requeue of a healthy pool.
    pub resync: Duration,
    /// Timeout of each zpool/zfs command.
    pub command_timeout: Duration,
    /// The only directories BlockDevice paths may be under (`/dev`, the sparse directory).
    pub disk_dirs: Vec<PathBuf>,
}

/// Why a reconcile or the pool-manager failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed; it names its step and object.
    #[error(transparent)]
    Api(#[from] cstor_runtime::errors::ApiError),
    #[error(transparent)]
    Command(#[from] RunError),
    #[error(transparent)]
    Status(#[from] crate::pool_manager::zpool::ParseError),
    #[error(transparent)]
    Zfs(#[from] zfs::ZfsParseError),
    #[error(transparent)]
    Patch(#[from] cstor_runtime::finalizers::PatchError),
    #[error("`zpool list` did not succeed within {secs} s: {last}")]
    NotReady { secs: u64, last: String },
    #[error("pool {pool} could not be created: {message}")]
    Create { pool: String, message: String },
    #[error("pool {pool} could not be destroyed: {message}")]
    Destroy { pool: String, message: String },
    #[error("update of pool {pool}: {message}")]
    Update { pool: String, message: String },
}

impl Error {
    /// A bounded label for logs and metrics (never the message, whose cardinality is not).
    pub fn category(&self) -> &'static str {
        match self {
            Error::Api(e) => e.category(),
            Error::Command(_) => "command",
            Error::Status(_) | Error::Zfs(_) => "parse",
            Error::Patch(_) => "metadata_patch",
            Error::NotReady { .. } => "zfs_not_ready",
            Error::Create { .. } => "create",
            Error::Destroy { .. } => "destroy",
            Error::Update { .. } => "update",
        }
    }
}

/// What the BDC watch needs to map a claim to our CSPI (filled by reconcile).
#[derive(Debug, Default)]
pub(crate) struct Watched {
    pub cspi: Option<ObjectRef<CStorPoolInstance>>,
    /// The CSPI's `openebs.io/cstor-pool-cluster` label.
    pub cspc: String,
    /// BlockDevices in the CSPI spec.
    pub bds: HashSet<String>,
}

/// Shared by every reconcile.
pub struct Context {
    pub(crate) client: Client,
    pub(crate) config: Config,
    pub(crate) pool: String,
    pub(crate) runner: Runner,
    pub(crate) recorder: Recorder,
    pub(crate) manager: String,
    pub(crate) watched: Arc<Mutex<Watched>>,
    /// Consecutive failures per object, for the backoff.
    pub(crate) failures: cstor_runtime::Backoff,
    /// Pool properties known to hold their desired value (the Go operators' cache).
    pub(crate) properties: Mutex<BTreeMap<String, String>>,
    pub(crate) labelclear_logged: AtomicBool,
    /// Volumes whose replica on this pool is receiving a restore: the replica controller
    /// leaves their dataset alone meanwhile (`zfs recv -F` unmounts and mounts it).
    pub(crate) receiving: Mutex<std::collections::HashSet<String>>,
}

/// Startup gate: `zpool list` answering means the ZFS daemon (zrepl or zfs-fuse) is up.
const GATE_TRIES: u32 = 60;

pub use cstor_runtime::backoff::base_delay as backoff;

async fn wait_for_zfs(
    runner: &Runner,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<bool, Error> {
    let mut last = String::new();
    for attempt in 1..=GATE_TRIES {
        match runner.run("zpool", &["list"]).await {
            Ok(_) => return Ok(true),
            Err(e) => {
                tracing::warn!(attempt, error = %e, "zpool list failed; ZFS not ready yet");
                last = e.to_string();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.wait_for(|s| *s) => return Ok(false),
        }
    }
    Err(Error::NotReady {
        secs: u64::from(GATE_TRIES),
        last,
    })
}

fn error_policy(cspi: Arc<CStorPoolInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = cspi.name_any();
    let (n, delay) = ctx.failures.failed(&key);
    tracing::warn!(cspi = %key, error = %error, category = error.category(), failures = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the pool-manager for CSPI `config.cspi_uid` until `shutdown` resolves; then marks the
/// CSPI OFFLINE (unless it never got a pool) and returns.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    // The controller wants a Sync shutdown future; a watch channel is one.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let runner = Runner {
        timeout: config.command_timeout,
    };
    let mut gate_rx = stop_rx.clone();
    if !wait_for_zfs(&runner, &mut gate_rx).await? {
        return Ok(());
    }
    let pool = keys::zpool_name(&config.pool_uid);
    tracing::info!(%pool, cspi_uid = %config.cspi_uid, node = %config.node, "pool-manager starting");
    let recorder = cstor_runtime::events::recorder(
        client.clone(),
        "cstor-pool-manager",
        Some(config.node.clone()),
    );
    let watched = Arc::new(Mutex::new(Watched::default()));
    let ctx = Arc::new(Context {
        client: client.clone(),
        manager: format!("cstor-pool-manager/{}", config.node),
        pool,
        runner,
        recorder,
        watched: watched.clone(),
        failures: cstor_runtime::Backoff::default(),
        properties: Mutex::new(BTreeMap::new()),
        labelclear_logged: AtomicBool::new(false),
        receiving: Mutex::new(std::collections::HashSet::new()),
        config: config.clone(),
    });
    let cspis: Api<CStorPoolInstance> = Api::namespaced(client.clone(), &config.namespace);
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), &config.namespace);
    let claims = watcher::Config::default().labels(keys::labels::CSTOR_POOL_CLUSTER);
    // Our CVRs: the CSPI status counts them (provisioned / healthy replicas).
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(client.clone(), &config.namespace);
    let ours = watcher::Config::default().labels(&replica::selector(&config.cspi_uid));
    let watched_cvrs = watched.clone();
    let replicas = tokio::spawn(replica::run(ctx.clone(), stop_rx.clone()));
    let snapshots = tokio::spawn(snapshot::run(ctx.clone(), stop_rx.clone()));
    let backups = tokio::spawn(backup::run(ctx.clone(), stop_rx.clone()));
    let restores = tokio::spawn(restore::run(ctx.clone(), stop_rx.clone()));
    let mut stop = stop_rx.clone();
    Controller::new(cspis, watcher::Config::default())
        .with_config(controller::Config::default().debounce(Duration::from_millis(300)))
        .watches(bdcs, claims, move |bdc: BlockDeviceClaim| {
            claim_trigger(&watched, &bdc)
        })
        .watches(cvrs, ours, move |_: CStorVolumeReplica| {
            watched_cvrs.lock().ok().and_then(|w| w.cspi.clone())
        })
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(reconcile::reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            match res {
                Ok((obj, action)) => tracing::debug!(cspi = %obj.name, ?action, "reconciled"),
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => tracing::warn!(error = %e, "controller"),
            }
        })
        .await;
    if let Err(e) = replicas.await {
        tracing::warn!(error = %e, "replica controller task");
    }
    if let Err(e) = snapshots.await {
        tracing::warn!(error = %e, "snapshot task");
    }
    if let Err(e) = backups.await {
        tracing::warn!(error = %e, "backup controller task");
    }
    if let Err(e) = restores.await {
        tracing::warn!(error = %e, "restore controller task");
    }
    reconcile::mark_offline(&ctx).await
}

/// A claim event concerns our CSPI when it is of our CSPC and either names a predecessor or
/// claims one of our BlockDevices (a Bound change).
fn claim_trigger(
    watched: &Mutex<Watched>,
    bdc: &BlockDeviceClaim,
) -> Option<ObjectRef<CStorPoolInstance>> {
    let w = watched.lock().ok()?;
    let cspi = w.cspi.clone()?;
    let cspc = bdc.labels().get(keys::labels::CSTOR_POOL_CLUSTER)?;
    if *cspc != w.cspc {
        return None;
    }
    let predecessor = bdc
        .annotations()
        .contains_key(keys::annotations::BD_PREDECESSOR);
    (predecessor || w.bds.contains(&bdc.spec.block_device_name)).then_some(cspi)
}
