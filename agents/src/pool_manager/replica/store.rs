//! Where a replica's data lives: the [`ReplicaStore`] trait and its two implementations,
//! [`DatasetStore`] (zfs-fuse: a dataset with a quota holding one sparse file `lun`) and
//! [`ZvolStore`] (uZFS: the Go operators' zvol). Command lines are pure functions (tested exactly);
//! every command goes through the crate's runner.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::decide::{self, REPLICA_ID_PROPERTY, ResizeStep, Shrink};
use crate::runner::{RunError, Runner};

/// What the store is asked to hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSpec {
    /// `cstor-<CSPC UID>/<pv>`.
    pub dataset: String,
    /// The PV (the dataset's last component; the mount directory's name).
    pub pv: String,
    /// The CVR's name (`io.openebs:volname`).
    pub cvr: String,
    pub replica_id: String,
    /// `io.openebs:targetip`; `None` for a restore target (annotation `isRestoreVol`).
    pub target_ip: Option<String>,
    /// `spec.capacity` in bytes.
    pub capacity: u64,
    /// `spec.capacity` as written (the zvol's `-V`).
    pub capacity_text: String,
    /// The pool is thick provisioned: reserve the capacity.
    pub thick: bool,
    /// `quorum=on` (off for a Recreate replica, which rebuilds before it counts).
    pub quorum: bool,
    /// `spec.zvolWorkers` (zvol only).
    pub zvol_workers: String,
    /// A clone's source snapshot, `<pool>/<source volume>@<snapshot>` (CVR label
    /// `openebs.io/cloned`): the store is made with `zfs clone` of it.
    pub clone_from: Option<String>,
}

/// Exact figures of an existing store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub used: u64,
    pub referenced: u64,
    /// Dataset `quota` (0 = none) or zvol `volsize`.
    pub size_limit: u64,
    pub refreservation: u64,
    /// Dataset mounted (always true for a zvol).
    pub mounted: bool,
}

/// An existing store as read now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub stats: Stats,
    /// The capacity the replica offers: the lun file's length (None when the file is missing)
    /// or the zvol's volsize.
    pub size: Option<u64>,
}

/// How [`ReplicaStore::ensure`] found the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    Created,
    AlreadyPresent,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Command(#[from] RunError),
    #[error("{0}")]
    Parse(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Shrink(#[from] Shrink),
    #[error("dataset {0} is not mounted")]
    NotMounted(String),
}

impl StoreError {
    /// The words for a message or an Event: a failed command's stderr, else the error.
    pub fn message(&self) -> String {
        let text = match self {
            StoreError::Command(RunError::Failed { stderr, stdout, .. }) if stderr.is_empty() => {
                stdout.clone()
            }
            StoreError::Command(RunError::Failed { stderr, .. }) => stderr.clone(),
            other => other.to_string(),
        };
        crate::pool_manager::decide::trim_message(&text)
    }
}

/// A replica's storage on the pool.
pub trait ReplicaStore: Send + Sync {
    /// The lun file the local transport reads and writes (`None`: a zvol has none).
    fn lun_path(&self, spec: &ReplicaSpec) -> Option<PathBuf>;
    /// Creates the store when missing (and, for a dataset, its lun file).
    fn ensure(
        &self,
        spec: &ReplicaSpec,
    ) -> impl Future<Output = Result<Ensured, StoreError>> + Send;
    /// Reads the store (mounting a dataset zfs-fuse left unmounted); `None` when the dataset
    /// or zvol does not exist.
    fn probe(
        &self,
        spec: &ReplicaSpec,
    ) -> impl Future<Output = Result<Option<Probe>, StoreError>> + Send;
    /// What a resize to `spec.capacity` takes (empty: nothing); Err when it would shrink.
    fn resize_steps(&self, spec: &ReplicaSpec, probe: &Probe) -> Result<Vec<ResizeStep>, Shrink>;
    /// Runs resize steps in order.
    fn resize(
        &self,
        spec: &ReplicaSpec,
        steps: &[ResizeStep],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// `zfs destroy -r` (never dependent clones); a store that does not exist is success.
    fn destroy(&self, dataset: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// `io.openebs:zvol_replica_id` of an existing store (`None`: unset or no store).
    fn replica_id(
        &self,
        dataset: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

fn s(v: &str) -> String {
    v.to_string()
}

/// `zfs create` of a dataset store (zfs-fuse): quota with metadata room, refreservation when
/// thick, the mountpoint and the three user properties.
pub fn dataset_create_argv(spec: &ReplicaSpec, mountpoint: &Path) -> Vec<String> {
    let mut argv = vec![s("zfs"), s("create")];
    let mut opt = |o: String| {
        argv.push(s("-o"));
        argv.push(o);
    };
    opt(format!("quota={}", decide::quota_for(spec.capacity)));
    if spec.thick {
        opt(format!("refreservation={}", spec.capacity));
    }
    opt(format!("mountpoint={}", mountpoint.display()));
    opt(format!("{REPLICA_ID_PROPERTY}={}", spec.replica_id));
    opt(format!("io.openebs:volname={}", spec.cvr));
    if let Some(ip) = &spec.target_ip {
        opt(format!("{TARGET_IP_PROPERTY}={ip}"));
    }
    argv.push(spec.dataset.clone());
    argv
}

/// `zfs clone` of a dataset store from `source` (`<pool>/<volume>@<snap>`): the clone's own
/// quota, reservation, mountpoint and user properties, as [`dataset_create_argv`] sets them;
/// its lun file is the snapshot's.
pub fn dataset_clone_argv(spec: &ReplicaSpec, mountpoint: &Path, source: &str) -> Vec<String> {
    let mut argv = dataset_create_argv(spec, mountpoint);
    argv[1] = s("clone");
    let dataset = argv.pop().unwrap_or_default();
    argv.push(source.to_string());
    argv.push(dataset);
    argv
}

/// The Go operators' plain-volume argv, exactly.
pub fn zvol_create_argv(spec: &ReplicaSpec) -> Vec<String> {
    let mut argv = vec![
        s("zfs"),
        s("create"),
        s("-b"),
        s("4K"),
        s("-s"),
        s("-o"),
        s("compression=on"),
        s("-o"),
        format!("quorum={}", if spec.quorum { "on" } else { "off" }),
        s("-o"),
        format!("{REPLICA_ID_PROPERTY}={}", spec.replica_id),
        s("-o"),
        format!("io.openebs:volname={}", spec.cvr),
    ];
    if !spec.zvol_workers.is_empty() {
        argv.push(s("-o"));
        argv.push(format!("io.openebs:zvol_workers={}", spec.zvol_workers));
    }
    if let Some(ip) = &spec.target_ip {
        argv.push(s("-o"));
        argv.push(format!("{TARGET_IP_PROPERTY}={ip}"));
    }
    argv.push(s("-V"));
    argv.push(decide::zvol_size_arg(&spec.capacity_text));
    argv.push(spec.dataset.clone());
    argv
}

/// The Go operators' clone argv (label `openebs.io/cloned`), `source` = `<pool>/<vol>@<snap>`.
pub fn zvol_clone_argv(spec: &ReplicaSpec, target_ip: &str, source: &str) -> Vec<String> {
    let mut argv = vec![
        s("zfs"),
        s("clone"),
        s("-o"),
        s("compression=on"),
        s("-o"),
        format!("{TARGET_IP_PROPERTY}={target_ip}"),
        s("-o"),
        s("quorum=on"),
    ];
    let id = format!("{REPLICA_ID_PROPERTY}={}", spec.replica_id);
    let name = format!("io.openebs:volname={}", spec.cvr);
    if spec.zvol_workers.is_empty() {
        argv.extend([s("-o"), id, s("-o"), name]);
    } else {
        argv.extend([
            s("-o"),
            format!("io.openebs:zvol_workers={}", spec.zvol_workers),
            s("-o"),
            name,
            s("-o"),
            id,
        ]);
    }
    argv.push(source.to_string());
    argv.push(spec.dataset.clone());
    argv
}

/// `zfs destroy -r DS`: the replica's own snapshots and children, never (as `-R` would) the
/// clones other volumes made from its snapshots; with such a clone the destroy fails and says
/// so, and the replica waits.
pub fn destroy_argv(dataset: &str) -> Vec<String> {
    vec![s("zfs"), s("destroy"), s("-r"), s(dataset)]
}

/// `zfs list -H -o name DS` (exit 1 + "dataset does not exist" when absent).
pub fn exists_argv(dataset: &str) -> Vec<String> {
    vec![s("zfs"), s("list"), s("-H"), s("-o"), s("name"), s(dataset)]
}

/// `zfs get -H -o value PROPERTY DS`.
pub fn get_argv(property: &str, dataset: &str) -> Vec<String> {
    vec![
        s("zfs"),
        s("get"),
        s("-H"),
        s("-o"),
        s("value"),
        s(property),
        s(dataset),
    ]
}

/// `zfs get -Hp -o value used,referenced,quota,refreservation,mounted DS`.
pub fn dataset_stats_argv(dataset: &str) -> Vec<String> {
    vec![
        s("zfs"),
        s("get"),
        s("-Hp"),
        s("-o"),
        s("value"),
        s("used,referenced,quota,refreservation,mounted"),
        s(dataset),
    ]
}

/// `zfs get -Hp -o value used,logicalreferenced,volsize,refreservation DS` (uZFS).
pub fn zvol_stats_argv(dataset: &str) -> Vec<String> {
    vec![
        s("zfs"),
        s("get"),
        s("-Hp"),
        s("-o"),
        s("value"),
        s("used,logicalreferenced,volsize,refreservation"),
        s(dataset),
    ]
}

/// The zvol property a replica dials its target with (`IP` or `IP:port`).
pub const TARGET_IP_PROPERTY: &str = "io.openebs:targetip";

/// `zfs stats DS` (uZFS only): the replica's state as its target sees it, JSON.
pub fn uzfs_stats_argv(dataset: &str) -> Vec<String> {
    vec![s("zfs"), s("stats"), s(dataset)]
}

/// `zfs set PROP=VALUE DS` (zfs-fuse takes one property per call).
pub fn set_argv(property: &str, value: &str, dataset: &str) -> Vec<String> {
    vec![
        s("zfs"),
        s("set"),
        format!("{property}={value}"),
        s(dataset),
    ]
}

/// `zfs get -H -o value io.openebs:zvol_replica_id DS`.
pub fn replica_id_argv(dataset: &str) -> Vec<String> {
    get_argv(REPLICA_ID_PROPERTY, dataset)
}

/// `zfs snapshot DS@SNAP`.
pub fn snapshot_argv(dataset: &str, snapshot: &str) -> Vec<String> {
    vec![s("zfs"), s("snapshot"), format!("{dataset}@{snapshot}")]
}

/// `zfs destroy DS@SNAP` (fails, and says so, while a clone depends on it).
pub fn snapshot_destroy_argv(dataset: &str, snapshot: &str) -> Vec<String> {
    vec![s("zfs"), s("destroy"), format!("{dataset}@{snapshot}")]
}

/// zfs refused a snapshot because it exists already (a repeated request): done.
pub fn snapshot_exists(text: &str) -> bool {
    text.contains("cannot create snapshot") && text.contains("dataset already exists")
}

/// `zfs mount DS`.
pub fn mount_argv(dataset: &str) -> Vec<String> {
    vec![s("zfs"), s("mount"), s(dataset)]
}

/// A command's words say the dataset is not there.
pub fn is_missing(text: &str) -> bool {
    text.contains("dataset does not exist")
}

fn byte_count(what: &str, v: &str) -> Result<u64, StoreError> {
    v.parse::<u64>()
        .map_err(|_| StoreError::Parse(format!("zfs get: {what} {v:?} is not a byte count")))
}

/// Parses [`dataset_stats_argv`]'s output: four exact byte counts and `yes`/`no`. A quota of
/// `none` prints 0.
pub fn parse_dataset_stats(text: &str) -> Result<Stats, StoreError> {
    let v: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let [used, referenced, quota, refres, mounted] = v.as_slice() else {
        return Err(StoreError::Parse(format!(
            "zfs get used,referenced,quota,refreservation,mounted: expected 5 lines, got {}",
            v.len()
        )));
    };
    let mounted = match *mounted {
        "yes" => true,
        "no" => false,
        other => {
            return Err(StoreError::Parse(format!(
                "zfs get: mounted {other:?} is not yes/no"
            )));
        }
    };
    Ok(Stats {
        used: byte_count("used", used)?,
        referenced: byte_count("referenced", referenced)?,
        size_limit: byte_count("quota", quota)?,
        refreservation: byte_count("refreservation", refres)?,
        mounted,
    })
}

/// Parses [`zvol_stats_argv`]'s output: four exact byte counts.
pub fn parse_zvol_stats(text: &str) -> Result<Stats, StoreError> {
    let v: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let [used, referenced, volsize, refres] = v.as_slice() else {
        return Err(StoreError::Parse(format!(
            "zfs get used,logicalreferenced,volsize,refreservation: expected 4 lines, got {}",
            v.len()
        )));
    };
    Ok(Stats {
        used: byte_count("used", used)?,
        referenced: byte_count("logicalreferenced", referenced)?,
        size_limit: byte_count("volsize", volsize)?,
        refreservation: byte_count("refreservation", refres)?,
        mounted: true,
    })
}

async fn run(runner: &Runner, argv: &[String]) -> Result<crate::runner::Output, RunError> {
    let v: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (program, args) = v.split_first().unwrap_or((&"true", &[]));
    runner.run(program, args).await
}

/// Runs `argv`; `Ok(None)` when it failed because the dataset does not exist.
async fn run_unless_missing(
    runner: &Runner,
    argv: &[String],
) -> Result<Option<crate::runner::Output>, StoreError> {
    match run(runner, argv).await {
        Ok(o) => Ok(Some(o)),
        Err(RunError::Failed { stderr, stdout, .. })
            if is_missing(&stderr) || is_missing(&stdout) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn exists(runner: &Runner, dataset: &str) -> Result<bool, StoreError> {
    Ok(run_unless_missing(runner, &exists_argv(dataset))
        .await?
        .is_some())
}

async fn destroy(runner: &Runner, dataset: &str) -> Result<(), StoreError> {
    run_unless_missing(runner, &destroy_argv(dataset)).await?;
    Ok(())
}

/// Takes or destroys snapshot `snapshot` of `dataset`; one that exists already (create) or is
/// gone already (destroy) is success, so a repeated request is harmless.
pub async fn snapshot(
    runner: &Runner,
    dataset: &str,
    snapshot: &str,
    op: cstor_api::snapshot::Op,
) -> Result<(), StoreError> {
    use cstor_api::snapshot::Op;
    match op {
        Op::Create => match run(runner, &snapshot_argv(dataset, snapshot)).await {
            Ok(_) => Ok(()),
            Err(RunError::Failed { stderr, .. }) if snapshot_exists(&stderr) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Op::Destroy => {
            run_unless_missing(runner, &snapshot_destroy_argv(dataset, snapshot)).await?;
            Ok(())
        }
    }
}

async fn read_replica_id(runner: &Runner, dataset: &str) -> Result<Option<String>, StoreError> {
    Ok(run_unless_missing(runner, &replica_id_argv(dataset))
        .await?
        .and_then(|o| crate::pool_manager::zfs::parse_value(&o.stdout)))
}

/// File work off the async threads, bounded by the command timeout (a hung FUSE daemon must
/// not hang the controller).
async fn blocking<T: Send + 'static>(
    timeout: Duration,
    path: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    let io = |message: String| StoreError::Io {
        path: path.display().to_string(),
        message,
    };
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(io(e.to_string())),
        Ok(Err(e)) => Err(io(e.to_string())),
        Err(_) => Err(io(format!("no answer within {} ms", timeout.as_millis()))),
    }
}

/// Creates the lun file when missing and grows it to `size` (sparse, `set_len`); never
/// shrinks it. Returns its length.
pub fn grow_lun(path: &Path, size: u64) -> std::io::Result<u64> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = file.metadata()?.len();
    if len < size {
        file.set_len(size)?;
        file.sync_all()?;
        return Ok(size);
    }
    Ok(len)
}

/// The lun file's length; `None` when it does not exist.
pub fn lun_len(path: &Path) -> std::io::Result<Option<u64>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// zfs-fuse: a dataset per replica with one sparse `lun` file (docs/volumes.md). The files are
/// made by this process, which runs in the node's mount namespace (where zfs-fuse mounts).
#[derive(Clone, Debug)]
pub struct DatasetStore {
    pub runner: Runner,
    /// `<dir of the cache file>/replicas`.
    pub replicas_dir: PathBuf,
}

impl DatasetStore {
    pub fn mountpoint(&self, pv: &str) -> PathBuf {
        self.replicas_dir.join(pv)
    }

    fn lun(&self, pv: &str) -> PathBuf {
        self.mountpoint(pv).join("lun")
    }

    async fn stats(&self, dataset: &str) -> Result<Option<Stats>, StoreError> {
        match run_unless_missing(&self.runner, &dataset_stats_argv(dataset)).await? {
            Some(o) => Ok(Some(parse_dataset_stats(&o.stdout)?)),
            None => Ok(None),
        }
    }

    /// Mounts the dataset when zfs-fuse has not (the lun must never land in the bare
    /// mountpoint directory underneath).
    /// A dataset found, not made (a migrated pool's replica): moved to our mountpoint, so its
    /// lun file is where we look and no empty file is ever made beside the data.
    async fn adopt_mountpoint(&self, spec: &ReplicaSpec) -> Result<(), StoreError> {
        let ours = self.mountpoint(&spec.pv);
        let out = run(&self.runner, &get_argv("mountpoint", &spec.dataset)).await?;
        let now = crate::pool_manager::zfs::parse_value(&out.stdout);
        if now.as_deref() == Some(&*ours.to_string_lossy()) {
            return Ok(());
        }
        tracing::info!(dataset = %spec.dataset, from = ?now, to = %ours.display(), "adopting the dataset's mountpoint");
        run(
            &self.runner,
            &set_argv("mountpoint", &ours.to_string_lossy(), &spec.dataset),
        )
        .await?;
        Ok(())
    }

    async fn ensure_mounted(&self, dataset: &str, stats: &Stats) -> Result<(), StoreError> {
        if stats.mounted {
            return Ok(());
        }
        run(&self.runner, &mount_argv(dataset)).await?;
        match self.stats(dataset).await? {
            Some(s) if s.mounted => Ok(()),
            _ => Err(StoreError::NotMounted(dataset.to_string())),
        }
    }
}

impl ReplicaStore for DatasetStore {
    fn lun_path(&self, spec: &ReplicaSpec) -> Option<PathBuf> {
        Some(self.lun(&spec.pv))
    }

    async fn ensure(&self, spec: &ReplicaSpec) -> Result<Ensured, StoreError> {
        let mut ensured = Ensured::AlreadyPresent;
        let stats = match self.stats(&spec.dataset).await? {
            Some(s) => s,
            None => {
                let argv = match &spec.clone_from {
                    Some(source) => dataset_clone_argv(spec, &self.mountpoint(&spec.pv), source),
                    None => dataset_create_argv(spec, &self.mountpoint(&spec.pv)),
                };
                run(&self.runner, &argv).await?;
                ensured = Ensured::Created;
                self.stats(&spec.dataset)
                    .await?
                    .ok_or_else(|| StoreError::Parse(format!("{} vanished", spec.dataset)))?
            }
        };
        if ensured == Ensured::AlreadyPresent {
            self.adopt_mountpoint(spec).await?;
        }
        let stats = self.stats(&spec.dataset).await?.unwrap_or(stats);
        self.ensure_mounted(&spec.dataset, &stats).await?;
        let lun = self.lun(&spec.pv);
        let size = spec.capacity;
        let path = lun.clone();
        let before = blocking(self.runner.timeout, &lun, move || lun_len(&path)).await?;
        if before.is_none() {
            let path = lun.clone();
            blocking(self.runner.timeout, &lun, move || grow_lun(&path, size)).await?;
            ensured = Ensured::Created;
        }
        Ok(ensured)
    }

    async fn probe(&self, spec: &ReplicaSpec) -> Result<Option<Probe>, StoreError> {
        let Some(mut stats) = self.stats(&spec.dataset).await? else {
            return Ok(None);
        };
        // A restarted zfs-fuse imports its pools without mounting them: mount (never create),
        // so a replica whose daemon came back is found with its data.
        if !stats.mounted {
            match self.ensure_mounted(&spec.dataset, &stats).await {
                Ok(()) => stats.mounted = true,
                Err(e) => {
                    tracing::warn!(dataset = %spec.dataset, error = %e.message(), "replica dataset not mounted")
                }
            }
        }
        let size = if stats.mounted {
            let lun = self.lun(&spec.pv);
            let path = lun.clone();
            blocking(self.runner.timeout, &lun, move || lun_len(&path)).await?
        } else {
            None
        };
        Ok(Some(Probe { stats, size }))
    }

    fn resize_steps(&self, spec: &ReplicaSpec, probe: &Probe) -> Result<Vec<ResizeStep>, Shrink> {
        let Some(len) = probe.size else {
            return Ok(Vec::new());
        };
        decide::dataset_resize(
            spec.capacity,
            len,
            probe.stats.size_limit,
            probe.stats.refreservation,
            spec.thick,
        )
    }

    async fn resize(&self, spec: &ReplicaSpec, steps: &[ResizeStep]) -> Result<(), StoreError> {
        for step in steps {
            match *step {
                ResizeStep::Quota(q) => {
                    run(
                        &self.runner,
                        &set_argv("quota", &q.to_string(), &spec.dataset),
                    )
                    .await?;
                }
                ResizeStep::Refreservation(r) => {
                    run(
                        &self.runner,
                        &set_argv("refreservation", &r.to_string(), &spec.dataset),
                    )
                    .await?;
                }
                ResizeStep::GrowLun(n) => {
                    let lun = self.lun(&spec.pv);
                    let path = lun.clone();
                    blocking(self.runner.timeout, &lun, move || grow_lun(&path, n)).await?;
                }
            }
        }
        Ok(())
    }

    async fn destroy(&self, dataset: &str) -> Result<(), StoreError> {
        destroy(&self.runner, dataset).await?;
        // zfs-fuse leaves the empty mountpoint directory behind.
        if let Some(pv) = dataset.rsplit('/').next() {
            let dir = self.mountpoint(pv);
            let d = dir.clone();
            if let Err(e) =
                blocking(self.runner.timeout, &dir, move || std::fs::remove_dir(&d)).await
            {
                tracing::debug!(error = %e, "mountpoint directory not removed");
            }
        }
        Ok(())
    }

    async fn replica_id(&self, dataset: &str) -> Result<Option<String>, StoreError> {
        read_replica_id(&self.runner, dataset).await
    }
}

/// uZFS: one zvol per replica; tested against its command lines only.
#[derive(Clone, Debug)]
pub struct ZvolStore {
    pub runner: Runner,
}

impl ReplicaStore for ZvolStore {
    fn lun_path(&self, _spec: &ReplicaSpec) -> Option<PathBuf> {
        None
    }

    async fn ensure(&self, spec: &ReplicaSpec) -> Result<Ensured, StoreError> {
        if exists(&self.runner, &spec.dataset).await? {
            return Ok(Ensured::AlreadyPresent);
        }
        let argv = match &spec.clone_from {
            Some(source) => {
                zvol_clone_argv(spec, spec.target_ip.as_deref().unwrap_or_default(), source)
            }
            None => zvol_create_argv(spec),
        };
        run(&self.runner, &argv).await?;
        Ok(Ensured::Created)
    }

    async fn probe(&self, spec: &ReplicaSpec) -> Result<Option<Probe>, StoreError> {
        match run_unless_missing(&self.runner, &zvol_stats_argv(&spec.dataset)).await? {
            Some(o) => {
                let stats = parse_zvol_stats(&o.stdout)?;
                let size = Some(stats.size_limit);
                Ok(Some(Probe { stats, size }))
            }
            None => Ok(None),
        }
    }

    fn resize_steps(&self, spec: &ReplicaSpec, probe: &Probe) -> Result<Vec<ResizeStep>, Shrink> {
        decide::zvol_resize(spec.capacity, probe.stats.size_limit)
    }

    async fn resize(&self, spec: &ReplicaSpec, steps: &[ResizeStep]) -> Result<(), StoreError> {
        for step in steps {
            if let ResizeStep::Quota(n) = step {
                run(
                    &self.runner,
                    &set_argv("volsize", &n.to_string(), &spec.dataset),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn destroy(&self, dataset: &str) -> Result<(), StoreError> {
        destroy(&self.runner, dataset).await
    }

    async fn replica_id(&self, dataset: &str) -> Result<Option<String>, StoreError> {
        read_replica_id(&self.runner, dataset).await
    }
}

impl ZvolStore {
    /// The replica's state from `zfs stats` (B §3.5 of the Go pool-manager's mapping).
    pub async fn stats(&self, dataset: &str) -> Result<super::decide::UzfsStat, StoreError> {
        let out = run(&self.runner, &uzfs_stats_argv(dataset)).await?;
        super::decide::parse_uzfs_stats(&out.stdout).map_err(StoreError::Parse)
    }

    /// After a restore the zvol gets its target (`io.openebs:targetip`) unless it has one;
    /// true when it was set now.
    pub async fn ensure_target_ip(&self, dataset: &str, ip: &str) -> Result<bool, StoreError> {
        let current = run_unless_missing(&self.runner, &get_argv(TARGET_IP_PROPERTY, dataset))
            .await?
            .and_then(|o| crate::pool_manager::zfs::parse_value(&o.stdout));
        if current.is_some() || ip.is_empty() {
            return Ok(false);
        }
        run(&self.runner, &set_argv(TARGET_IP_PROPERTY, ip, dataset)).await?;
        Ok(true)
    }
}

/// The store of the dialect this pool-manager runs.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Dataset(DatasetStore),
    Zvol(ZvolStore),
}

impl ReplicaStore for AnyStore {
    fn lun_path(&self, spec: &ReplicaSpec) -> Option<PathBuf> {
        match self {
            AnyStore::Dataset(s) => s.lun_path(spec),
            AnyStore::Zvol(s) => s.lun_path(spec),
        }
    }

    async fn ensure(&self, spec: &ReplicaSpec) -> Result<Ensured, StoreError> {
        match self {
            AnyStore::Dataset(s) => s.ensure(spec).await,
            AnyStore::Zvol(s) => s.ensure(spec).await,
        }
    }

    async fn probe(&self, spec: &ReplicaSpec) -> Result<Option<Probe>, StoreError> {
        match self {
            AnyStore::Dataset(s) => s.probe(spec).await,
            AnyStore::Zvol(s) => s.probe(spec).await,
        }
    }

    fn resize_steps(&self, spec: &ReplicaSpec, probe: &Probe) -> Result<Vec<ResizeStep>, Shrink> {
        match self {
            AnyStore::Dataset(s) => s.resize_steps(spec, probe),
            AnyStore::Zvol(s) => s.resize_steps(spec, probe),
        }
    }

    async fn resize(&self, spec: &ReplicaSpec, steps: &[ResizeStep]) -> Result<(), StoreError> {
        match self {
            AnyStore::Dataset(s) => s.resize(spec, steps).await,
            AnyStore::Zvol(s) => s.resize(spec, steps).await,
        }
    }

    async fn destroy(&self, dataset: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::Dataset(s) => s.destroy(dataset).await,
            AnyStore::Zvol(s) => s.destroy(dataset).await,
        }
    }

    async fn replica_id(&self, dataset: &str) -> Result<Option<String>, StoreError> {
        match self {
            AnyStore::Dataset(s) => s.replica_id(dataset).await,
            AnyStore::Zvol(s) => s.replica_id(dataset).await,
        }
    }
}
