//! The volume-manager process: finds its CStorVolume by UID, builds the fan-out from the
//! volume's CVRs, mounts and serves it with tgt, then follows the CV and CVRs (replicas in
//! and out, rebuilds, resize, RF/CF and knownReplicas) and reports the CV status by
//! server-side apply; on shutdown it removes the target, unmounts and reports `Offline`.

use cstor_runtime::reasons;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cstor_api::cstor_v1::cv::{CStorVolume, CStorVolumeReplicaDetails, CStorVolumeStatus, phase};
use cstor_api::cstor_v1::cvr::{CStorVolumeReplica, phase as cvr_phase};
use cstor_api::keys;
use futures::{StreamExt, stream};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use super::fanout::{Fanout, Replica, ReplicaState, ResyncStats};
use super::fuse::{self, Mounted};
use super::snapshot;
use super::status::{self, KnownPlan};
use super::tgt::{Tgt, Tgtadm};
use super::{Config, Error};
use crate::runner::Runner;
use cstor_api::snapshot as snap;

/// How often the fan-out's replica states are looked at (a degraded replica shows up in the
/// CV status within this).
const POLL: Duration = Duration::from_secs(1);
/// How long a stop tries to report `Offline` (the API may not answer).
const OFFLINE_REPORT_WAIT: Duration = Duration::from_secs(10);
/// How long a stop waits for the FUSE unmount.
const UNMOUNT_WAIT: Duration = Duration::from_secs(15);
/// How long a write waits for the status recording a lost replica before failing with EIO.
const RECORD_WAIT: Duration = Duration::from_secs(10);
/// First and longest wait between rebuild attempts of one replica.
/// I/O still in flight after this gives up the re-open (tried again next pass) rather than
/// stall the volume longer.
const IO_HOLD_DEADLINE: Duration = Duration::from_secs(5);
/// A snapshot's writes wait at most this long for I/O in flight to finish.
const SNAPSHOT_HOLD_DEADLINE: Duration = Duration::from_secs(5);
/// How long a snapshot waits for the pool-managers' answers (writes held meanwhile).
const SNAPSHOT_ANSWER_DEADLINE: Duration = Duration::from_secs(15);
const SNAPSHOT_ANSWER_POLL: Duration = Duration::from_millis(25);
const REBUILD_BACKOFF_MIN: Duration = Duration::from_secs(2);
const REBUILD_BACKOFF_MAX: Duration = Duration::from_secs(60);

use cstor_runtime::errors::{ApiError, Step};
use cstor_runtime::now;

/// Opens a replica file on a blocking thread, given at most the replica I/O deadline (a hung
/// replica must not hold the start); the file and its length, or the reason it cannot. The
/// file is never grown here: that is the pool-manager's, once the replica's quota allows it.
async fn open_off_runtime(path: PathBuf) -> Result<(File, u64), String> {
    let shown = path.display().to_string();
    let task = tokio::task::spawn_blocking(move || {
        let file = open_replica(&path)?;
        let len = file
            .metadata()
            .map(|m| m.len())
            .map_err(|source| Error::Io {
                context: format!("stat replica file {}", path.display()),
                source,
            })?;
        Ok::<(File, u64), Error>((file, len))
    });
    match tokio::time::timeout(super::fanout::DEFAULT_IO_DEADLINE, task).await {
        Ok(Ok(Ok(opened))) => Ok(opened),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(format!("open {shown}: {e}")),
        Err(_) => Err(format!(
            "open {shown}: no answer within {} s (the replica hangs)",
            super::fanout::DEFAULT_IO_DEADLINE.as_secs()
        )),
    }
}

/// Opens a replica's lun file for reading and writing.
pub(crate) fn open_replica(path: &Path) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source: std::io::Error| Error::Io {
        context: format!("open replica file {}", path.display()),
        source,
    };
    // The three directories above the file (`<pool>/replicas/<volume>`) must be real
    // directories, and the file itself a regular file reached without a symlink.
    for dir in path.ancestors().skip(1).take(3) {
        let meta = std::fs::symlink_metadata(dir).map_err(err)?;
        if !meta.file_type().is_dir() {
            return Err(err(std::io::Error::other(format!(
                "{} is not a directory (a symlink?)",
                dir.display()
            ))));
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if !meta.file_type().is_file() {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    Ok(file)
}

/// Checks what the target needs from the CV spec (the Go operators' add validation, our subset).
pub fn validate(cv: &CStorVolume) -> Result<u64, String> {
    let mut bad = Vec::new();
    if cv.spec.iqn.is_empty() {
        bad.push("spec.iqn is empty".to_string());
    }
    let cap = cv
        .spec
        .capacity
        .as_ref()
        .and_then(|q| cstor_api::quantity::bytes(&q.0).ok())
        .unwrap_or(0);
    if cap == 0 {
        bad.push("spec.capacity is missing or zero".to_string());
    }
    let rf = cv.spec.replication_factor.unwrap_or(0);
    let cf = cv.spec.consistency_factor.unwrap_or(0);
    if rf <= 0 {
        bad.push("spec.replicationFactor is not positive".to_string());
    }
    if cf <= 0 {
        bad.push("spec.consistencyFactor is not positive".to_string());
    }
    if rf > 0 && cf > rf {
        bad.push(format!("consistencyFactor {cf} > replicationFactor {rf}"));
    }
    if bad.is_empty() {
        Ok(cap)
    } else {
        Err(bad.join("; "))
    }
}

/// A rebuild running on a blocking thread.
struct RebuildTask {
    handle: tokio::task::JoinHandle<Result<(), Error>>,
}

/// Per-replica retry bookkeeping.
#[derive(Default)]
struct Retry {
    failures: u32,
    next: Option<Instant>,
}

fn rebuild_backoff(failures: u32) -> Duration {
    cstor_runtime::backoff::exponential(REBUILD_BACKOFF_MIN, REBUILD_BACKOFF_MAX, failures + 1)
}

/// Everything the running volume-manager holds.
struct Volume {
    config: Config,
    cvs: Api<CStorVolume>,
    cvrs: Api<CStorVolumeReplica>,
    name: String,
    manager: String,
    recorder: Recorder,
    fanout: Arc<Fanout>,
    mounted: Option<Mounted>,
    tgt: Tgt,
    tid: Option<u32>,
    rebuilds: HashMap<String, RebuildTask>,
    /// The resync of the trusted replicas after a restart, while it runs.
    resync: Option<tokio::task::JoinHandle<Result<ResyncStats, Error>>>,
    retries: HashMap<String, Retry>,
    /// The CVR phase of each replica at the last look (a replica leaving Offline is retried
    /// at once instead of after its back-off).
    cvr_phases: HashMap<String, String>,
    /// The last status applied (times and upTime cleared), to skip identical applies.
    last_status: Option<CStorVolumeStatus>,
    last_apply: Option<Instant>,
    phase: String,
    /// Resize failure to report in the Resizing condition.
    resize_error: Option<String>,
    /// Refused writes already reported in an Event.
    refused_seen: u64,
    /// The LUN size tgt serves (confirmed with `tgtadm --op show` after a resize).
    served_size: u64,
    /// The settling of refused writes' ranges, while it runs.
    settling: Option<tokio::task::JoinHandle<usize>>,
    /// A snapshot request waits for a resync or settling to end: passes run every poll.
    snapshot_waiting: bool,
}

/// Runs the volume-manager for CV `config.volume_uid` until `stop_rx` says stop (or the CV is
/// deleted); then removes the tgt target, unmounts and reports phase `Offline`.
pub async fn run(
    client: Client,
    config: Config,
    stop_rx: watch::Receiver<bool>,
) -> Result<(), Error> {
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), &config.namespace);
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(client.clone(), &config.namespace);
    let mut stop = stop_rx.clone();
    let Some(cv) = find_cv(&cvs, &config.volume_uid, &mut stop).await? else {
        return Ok(());
    };
    let name = cv.name_any();
    tracing::info!(volume = %name, uid = %config.volume_uid, "volume-manager starting");
    let recorder = super::recorder(&client);
    let manager = format!("cstor-volume-manager/{name}");
    let tgt = Tgt {
        adm: Tgtadm {
            control_port: config.tgt_control_port,
        },
        runner: Runner {
            timeout: config.command_timeout,
        },
    };

    // Until the spec is usable and CF replicas can be opened, report Init/Invalid and wait.
    let Some((fanout, size, fresh)) =
        initial_fanout(&cvs, &cvrs, &name, &config, &recorder, &manager, &mut stop).await?
    else {
        return Ok(());
    };
    fanout.require_recording(RECORD_WAIT);
    let fanout = Arc::new(fanout);
    // A restart: writes in flight at the stop may sit on some replicas only.
    let resync = (!fresh && fanout.healthy_count() > 1).then(|| {
        let f = fanout.clone();
        tokio::task::spawn_blocking(move || f.resync())
    });
    let mut vol = Volume {
        config: config.clone(),
        cvs: cvs.clone(),
        cvrs: cvrs.clone(),
        name: name.clone(),
        manager,
        recorder,
        fanout: fanout.clone(),
        mounted: None,
        tgt,
        tid: None,
        rebuilds: HashMap::new(),
        resync,
        cvr_phases: HashMap::new(),
        retries: HashMap::new(),
        last_status: None,
        last_apply: None,
        phase: cv
            .status
            .as_ref()
            .map(|s| s.phase.clone())
            .unwrap_or_default(),
        resize_error: None,
        refused_seen: 0,
        settling: None,
        snapshot_waiting: false,
        served_size: size,
    };
    let result = vol.serve_and_follow(size, stop_rx).await;
    vol.teardown().await;
    result
}

/// Resolves once a stop is asked; the receiver's guard is not held across awaits (the
/// volume-manager's future stays `Send`).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The CV as it is now; None (logged) once it is deleted or being deleted: the target stops.
pub(crate) async fn live_cv(
    cvs: &Api<CStorVolume>,
    name: &str,
) -> Result<Option<CStorVolume>, Error> {
    let Some(cv) = cvs.get_opt(name).await.step("get CStorVolume", name)? else {
        tracing::info!(volume = %name, "CStorVolume deleted; stopping");
        return Ok(None);
    };
    if cv.metadata.deletion_timestamp.is_some() {
        tracing::info!(volume = %name, "CStorVolume being deleted; stopping");
        return Ok(None);
    }
    Ok(Some(cv))
}

/// The version step of the CV (docs/upgrades.md); false: leave the rest of this pass (the
/// target keeps serving either way).
pub(crate) async fn versioned(
    cvs: &Api<CStorVolume>,
    recorder: &Recorder,
    manager: &str,
    cv: &CStorVolume,
) -> Result<bool, Error> {
    Ok(crate::version::step(
        cvs,
        recorder,
        manager,
        cv,
        "CV",
        cv.version_details.as_ref(),
    )
    .await?)
}

/// Lists CVs until one with `uid` shows up (the target can start before the API has it).
pub(crate) async fn find_cv(
    cvs: &Api<CStorVolume>,
    uid: &str,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<CStorVolume>, Error> {
    loop {
        match cvs.list(&ListParams::default()).await {
            Ok(list) => {
                if let Some(cv) = list
                    .items
                    .into_iter()
                    .find(|c| c.metadata.uid.as_deref() == Some(uid))
                {
                    return Ok(Some(cv));
                }
                tracing::info!(uid, "CStorVolume not there yet");
            }
            Err(e) => tracing::warn!(error = %e, "listing CStorVolumes failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = stopped(stop) => return Ok(None),
        }
    }
}

fn cvr_params(name: &str) -> ListParams {
    ListParams::default().labels(&format!("{}={name}", keys::labels::PERSISTENT_VOLUME))
}

/// Applies `status` (with identity) to the CV's status subresource.
pub(crate) async fn apply_status(
    cvs: &Api<CStorVolume>,
    name: &str,
    namespace: &str,
    manager: &str,
    status: &CStorVolumeStatus,
) -> Result<(), Error> {
    let body = json!({
        "apiVersion": "cstor.openebs.io/v1",
        "kind": "CStorVolume",
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    });
    cvs.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
    .step("apply status of CStorVolume", name)?;
    Ok(())
}

pub(crate) async fn event(
    recorder: &Recorder,
    cv: &CStorVolume,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = cv.object_ref(&());
    cstor_runtime::events::publish(
        recorder,
        &reference,
        type_,
        reason,
        note,
        reasons::action::RECONCILE,
    )
    .await;
}

/// Waits for a valid spec and for CF openable replicas; returns the fan-out and the size.
/// A fresh volume's replicas start Healthy; at a restart only those the last status showed
/// Healthy do (the others are rebuilt by the main loop).
async fn initial_fanout(
    cvs: &Api<CStorVolume>,
    cvrs: &Api<CStorVolumeReplica>,
    name: &str,
    config: &Config,
    recorder: &Recorder,
    manager: &str,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<(Fanout, u64, bool)>, Error> {
    let mut reported = String::new();
    loop {
        let cv = cvs.get(name).await.step("get CStorVolume", name)?;
        let (phase, message) = match validate(&cv) {
            Err(why) => (phase::INVALID, why),
            Ok(size) => {
                let list = cvrs
                    .list(&cvr_params(name))
                    .await
                    .step("list CVRs of CStorVolume", name)?;
                let wanted = status::wanted_replicas(
                    &cv,
                    &list.items,
                    &config.node_roots,
                    &config.replica_roots,
                );
                let fresh = status::is_fresh(&cv);
                // A supervised recovery (`cstor volume recover`) names the one replica to
                // trust when none is recorded Healthy; the others are rebuilt from it.
                let promoted = status::promoted(&cv);
                let mut replicas = Vec::new();
                let mut lens = Vec::new();
                let mut problems = Vec::new();
                for (id, (path, recreate)) in &wanted {
                    let healthy = match &promoted {
                        Some(p) => p == id,
                        None => !recreate && (fresh || status::was_healthy(&cv, id)),
                    };
                    if !healthy {
                        continue;
                    }
                    match open_off_runtime(path.clone()).await {
                        Ok((file, len)) => {
                            lens.push(len);
                            replicas.push(Replica {
                                id: id.clone(),
                                file,
                                state: ReplicaState::Healthy,
                            })
                        }
                        Err(e) => problems.push(e),
                    }
                }
                // A resize in flight at the stop: serve what every replica holds; the main
                // loop grows the volume once the pool-managers have grown every file.
                let size = status::start_size(size, &lens);
                let cf = cv.spec.consistency_factor.unwrap_or(1).max(1) as usize;
                // The resync reference is the first: the replica with the most writes.
                status::order_by_write_sequence(&cv, &mut replicas, |r| r.id.as_str());
                if replicas.len() >= cf || (promoted.is_some() && !replicas.is_empty()) {
                    if let Some(p) = &promoted {
                        tracing::warn!(replica = %p, "recovering from this replica; the others are rebuilt from it");
                        event(
                            recorder,
                            &cv,
                            EventType::Warning,
                            reasons::RECOVERED,
                            format!("supervised recovery: replica {p} promoted; the others are rebuilt from it"),
                        )
                        .await;
                    }
                    tracing::info!(
                        replicas = replicas.len(),
                        wanted = wanted.len(),
                        fresh,
                        "starting the fan-out"
                    );
                    return Ok(Some((Fanout::new(replicas, size, cf), size, fresh)));
                }
                let mut m = format!(
                    "waiting for replicas: {} of {cf} needed can be opened ({} CVRs ready)",
                    replicas.len(),
                    wanted.len()
                );
                if !problems.is_empty() {
                    m.push_str(": ");
                    m.push_str(&problems.join("; "));
                }
                (phase::INIT, m)
            }
        };
        if reported != message {
            tracing::info!(phase, %message, "volume not ready");
            let st = status::waiting_status(&cv, phase, &message, &now());
            if phase == phase::INVALID {
                event(
                    recorder,
                    &cv,
                    EventType::Warning,
                    reasons::FAIL_CREATE,
                    format!("failed to create cstorvolume validation failed: {message}"),
                )
                .await;
            }
            if let Err(e) = apply_status(cvs, name, &config.namespace, manager, &st).await {
                tracing::warn!(error = %e, "status apply failed");
            }
            reported = message;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = stopped(stop) => return Ok(None),
        }
    }
}

impl Volume {
    async fn serve_and_follow(
        &mut self,
        size: u64,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let mounted = {
            let fanout = self.fanout.clone();
            let dir = self.config.mount_dir.clone();
            tokio::task::spawn_blocking(move || fuse::mount(fanout, &dir))
                .await
                .map_err(|e| Error::Io {
                    context: "FUSE mount task".into(),
                    source: std::io::Error::other(e.to_string()),
                })??
        };
        let lun = mounted.lun_path().display().to_string();
        self.mounted = Some(mounted);
        let cv = self
            .cvs
            .get(&self.name)
            .await
            .step("get CStorVolume", &self.name)?;
        let tid = self
            .tgt
            .serve(&cv.spec.iqn, &lun, &self.config.access)
            .await?;
        self.tid = Some(tid);
        tracing::info!(volume = %self.name, tid, size, "serving");

        let cv_watch = watcher(
            self.cvs.clone(),
            watcher::Config::default().fields(&format!("metadata.name={}", self.name)),
        )
        .default_backoff()
        .map(|_| ())
        .boxed();
        let cvr_watch = watcher(
            self.cvrs.clone(),
            watcher::Config::default().labels(&format!(
                "{}={}",
                keys::labels::PERSISTENT_VOLUME,
                self.name
            )),
        )
        .default_backoff()
        .map(|_| ())
        .boxed();
        let mut events = stream::select(cv_watch, cvr_watch);
        let loss = self.fanout.loss_notify();
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = true;
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return Ok(()),
                e = events.next() => {
                    if e.is_none() {
                        tracing::warn!("watch streams ended");
                        return Ok(());
                    }
                    dirty = true;
                }
                _ = poll.tick() => self.follow_refusals().await,
                // A replica was lost: writes wait until the status shows it.
                () = loss.notified() => dirty = true,
            }
            // Watch events come in bursts; one pass per tick picks them all up.
            let due = self
                .last_apply
                .is_none_or(|t| t.elapsed() >= self.config.resync);
            if dirty || due || self.snapshot_waiting || self.fanout_changed() {
                // A stop is honoured even while a pass waits on the API.
                let pass = tokio::select! {
                    r = self.reconcile() => r,
                    () = stopped(&mut stop) => return Ok(()),
                };
                match pass {
                    Ok(true) => {}
                    Ok(false) => return Ok(()),
                    Err(e) => tracing::warn!(error = %e, "reconcile failed"),
                }
                dirty = false;
            }
        }
    }

    /// True when the fan-out's view differs from the last applied status (a replica failed or
    /// finished its rebuild).
    /// Reports writes the replicas refused alike (an Event per burst) and makes their ranges
    /// equal again in the background, retrying while space is short.
    async fn follow_refusals(&mut self) {
        let refused = self.fanout.refused_writes();
        if refused > self.refused_seen {
            let n = refused - self.refused_seen;
            self.refused_seen = refused;
            if let Ok(Ok(Some(cv))) =
                tokio::time::timeout(Duration::from_secs(5), self.cvs.get_opt(&self.name)).await
            {
                event(
                    &self.recorder,
                    &cv,
                    EventType::Warning,
                    reasons::WRITE_REFUSED,
                    format!(
                        "{n} write(s) refused: the replicas' pools are out of space (or read-only); the initiator got the error and the replicas stay Healthy. Free space or expand the pools, and writes go on."
                    ),
                )
                .await;
            }
        }
        if self.settling.as_ref().is_some_and(|h| h.is_finished())
            && let Some(h) = self.settling.take()
            && let Ok(left) = h.await
            && left > 0
        {
            tracing::debug!(left, "refused ranges not settled yet");
        }
        if self.settling.is_none() && self.fanout.unsettled_ranges() > 0 {
            let fanout = self.fanout.clone();
            self.settling = Some(tokio::task::spawn_blocking(move || fanout.settle()));
        }
    }

    fn fanout_changed(&self) -> bool {
        let Some(last) = &self.last_status else {
            return true;
        };
        let infos = self.fanout.replicas();
        let now = Instant::now();
        let mut current = status::replica_statuses(&infos, now);
        for r in &mut current {
            r.up_time = 0;
            r.checkpointed_io_seq.clear();
            r.inflight_read.clear();
            r.inflight_write.clear();
            r.inflight_sync.clear();
        }
        let mut prev = last.replica_statuses.clone();
        for r in &mut prev {
            r.checkpointed_io_seq.clear();
            r.inflight_read.clear();
            r.inflight_write.clear();
            r.inflight_sync.clear();
        }
        current != prev
            || self.rebuilds.values().any(|t| t.handle.is_finished())
            || self.resync.as_ref().is_some_and(|h| h.is_finished())
    }

    /// One pass; false when the CV is gone (stop serving).
    async fn reconcile(&mut self) -> Result<bool, Error> {
        let Some(cv) = live_cv(&self.cvs, &self.name).await? else {
            return Ok(false);
        };
        if !versioned(&self.cvs, &self.recorder, &self.manager, &cv).await? {
            return Ok(true);
        }
        // A supervised recovery applies at a start (which replica to trust): stop, and the
        // restarted process promotes the chosen replica.
        if status::promoted(&cv).is_some() && self.fanout.healthy_count() == 0 {
            tracing::warn!(volume = %self.name, "recovery asked with no replica Healthy; restarting to promote it");
            return Ok(false);
        }
        let cvrs = self
            .cvrs
            .list(&cvr_params(&self.name))
            .await
            .step("list CVRs of CStorVolume", &self.name)?
            .items;
        self.reap_rebuilds().await;
        self.reap_resync(&cv).await;
        self.follow_replicas(&cv, &cvrs);
        if let Some(cf) = cv.spec.consistency_factor
            && cf > 0
        {
            self.fanout.set_consistency_factor(cf as usize);
        }
        let cv = self.follow_known(cv).await?;
        self.follow_resize(&cv).await;
        self.follow_snapshot(&cv).await;
        self.report(&cv).await?;
        self.finish_recovery(&cv).await;
        Ok(true)
    }

    /// A supervised recovery's annotation is removed once the status records a Healthy
    /// replica: left in place, it would promote that replica again, unsupervised, the next
    /// time none is Healthy.
    async fn finish_recovery(&self, cv: &CStorVolume) {
        if !cv
            .annotations()
            .contains_key(status::RECOVER_FROM_ANNOTATION)
            || self.fanout.healthy_count() == 0
        {
            return;
        }
        let patch = json!({"metadata": {"annotations": {status::RECOVER_FROM_ANNOTATION: null}}});
        if let Err(e) = self
            .cvs
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(error = %e, "recovery annotation not removed; tried again next pass");
        }
    }

    /// A snapshot asked on the CStorVolume (docs/backup-restore.md, "Snapshots"): taken now,
    /// later (while a resync or settling could still change a replica), or refused.
    async fn follow_snapshot(&mut self, cv: &CStorVolume) {
        let busy = if self.resync.is_some() {
            Some("a resync after a restart is running")
        } else if self.settling.is_some() || self.fanout.unsettled_ranges() > 0 {
            Some("refused writes are being settled on the replicas")
        } else {
            None
        };
        self.snapshot_waiting = false;
        let outcome = match snapshot::next(cv.annotations(), busy) {
            snapshot::Next::Nothing => return,
            snapshot::Next::Later(why) => {
                tracing::info!(volume = %self.name, "snapshot waits: {why}");
                self.snapshot_waiting = true;
                return;
            }
            snapshot::Next::Refuse(request, why) => snapshot::refused(&request, &why),
            snapshot::Next::Take(request) => self.take_snapshot(request).await,
        };
        let (type_, reason) = match (
            outcome.failed.is_empty() && outcome.refused.is_empty(),
            outcome.op,
        ) {
            (true, snap::Op::Create) => (EventType::Normal, reasons::SNAPSHOT_TAKEN),
            (true, snap::Op::Destroy) => (EventType::Normal, reasons::SNAPSHOT_DESTROYED),
            (false, _) => (EventType::Warning, reasons::SNAPSHOT_FAILED),
        };
        let note = if !outcome.refused.is_empty() {
            format!(
                "snapshot {} not attempted: {}",
                outcome.snapshot, outcome.refused
            )
        } else if outcome.failed.is_empty() && outcome.op == snap::Op::Create {
            format!(
                "snapshot {} taken on replicas {} (writes held {} ms)",
                outcome.snapshot,
                outcome.done.join(", "),
                outcome.held_ms
            )
        } else if outcome.failed.is_empty() {
            format!(
                "snapshot {} destroyed on replicas {}",
                outcome.snapshot,
                outcome.done.join(", ")
            )
        } else {
            let failed: Vec<String> = outcome
                .failed
                .iter()
                .map(|(id, why)| format!("{id}: {why}"))
                .collect();
            format!(
                "snapshot {} done on replicas [{}], failed on {}",
                outcome.snapshot,
                outcome.done.join(", "),
                failed.join("; ")
            )
        };
        let value = serde_json::to_string(&outcome).unwrap_or_default();
        let patch =
            json!({"metadata": {"annotations": {snap::BARRIER: null, snap::OUTCOME: value}}});
        if let Err(e) = self
            .cvs
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            // The request stays without an outcome: taken again at the next pass (the
            // pool-managers answer a repeated snapshot as done).
            tracing::warn!(error = %e, "snapshot outcome not written; tried again next pass");
            return;
        }
        event(&self.recorder, cv, type_, reason, note).await;
    }

    /// Writes held (create), the barrier on the CStorVolume, every named replica's answer
    /// awaited, writes released: the outcome.
    async fn take_snapshot(&mut self, request: snap::Request) -> snap::Outcome {
        let replicas: Vec<String> = self
            .fanout
            .replicas()
            .into_iter()
            .filter(|r| r.state == ReplicaState::Healthy)
            .map(|r| r.id)
            .collect();
        if replicas.is_empty() {
            return snapshot::refused(&request, "no replica is Healthy");
        }
        let mut hold = None;
        if request.op == snap::Op::Create {
            let Some(gate) = self.mounted.as_ref().map(|m| m.gate().clone()) else {
                return snapshot::refused(&request, "the volume is not served yet");
            };
            let held = tokio::task::spawn_blocking(move || {
                gate.hold(Duration::ZERO, SNAPSHOT_HOLD_DEADLINE)
            })
            .await;
            match held {
                Ok(Ok(h)) => hold = Some(h),
                Ok(Err(e)) => {
                    return snapshot::refused(&request, &format!("writes did not pause: {e}"));
                }
                Err(e) => {
                    return snapshot::refused(&request, &format!("writes did not pause: {e}"));
                }
            }
            // What the replicas acknowledged reaches their pools before the snapshot.
            let fanout = self.fanout.clone();
            let flushed = tokio::task::spawn_blocking(move || fanout.fsync()).await;
            match flushed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return snapshot::refused(&request, &format!("flush failed: {e}")),
                Err(e) => return snapshot::refused(&request, &format!("flush failed: {e}")),
            }
        }
        let barrier = snap::Barrier {
            id: request.id.clone(),
            snapshot: request.snapshot.clone(),
            op: request.op,
            replicas,
        };
        let value = serde_json::to_string(&barrier).unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {snap::BARRIER: value}}});
        if let Err(e) = self
            .cvs
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            return snapshot::refused(&request, &format!("barrier not written: {e}"));
        }
        let until = Instant::now() + SNAPSHOT_ANSWER_DEADLINE;
        let mut answers = BTreeMap::new();
        loop {
            match self.cvrs.list(&cvr_params(&self.name)).await {
                Ok(list) => {
                    answers = list
                        .items
                        .iter()
                        .filter_map(|c| {
                            let id = status::replica_id(c)?;
                            let a = snap::parse::<snap::Answer>(c.annotations().get(snap::ANSWER))?;
                            Some((id, a))
                        })
                        .collect();
                }
                Err(e) => tracing::debug!(error = %e, "replicas not listed for the snapshot"),
            }
            if snapshot::all_answered(&barrier, &answers) || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(SNAPSHOT_ANSWER_POLL).await;
        }
        let held_ms = hold
            .map(|h| u64::try_from(h.held_for().as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        tracing::info!(volume = %self.name, snapshot = %barrier.snapshot, held_ms, "snapshot barrier released");
        snapshot::outcome(&barrier, &answers, held_ms)
    }

    /// Reports a finished resync (an Event with what it repaired).
    async fn reap_resync(&mut self, cv: &CStorVolume) {
        if !self.resync.as_ref().is_some_and(|h| h.is_finished()) {
            return;
        }
        let Some(handle) = self.resync.take() else {
            return;
        };
        let (type_, note) = match handle.await {
            Ok(Ok(s)) => (
                EventType::Normal,
                format!(
                    "replicas resynced after a restart: {} chunks compared, {} repaired",
                    s.chunks, s.repaired
                ),
            ),
            Ok(Err(e)) => (EventType::Warning, format!("resync stopped: {e}")),
            Err(e) => (EventType::Warning, format!("resync aborted: {e}")),
        };
        event(&self.recorder, cv, type_, "Resync", note).await;
    }

    /// Collects finished rebuilds (errors go into the replica's backoff).
    async fn reap_rebuilds(&mut self) {
        let done: Vec<String> = self
            .rebuilds
            .iter()
            .filter(|(_, t)| t.handle.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            let Some(task) = self.rebuilds.remove(&id) else {
                continue;
            };
            let result = match task.handle.await {
                Ok(r) => r,
                Err(e) => Err(Error::RebuildAborted {
                    id: id.clone(),
                    reason: e.to_string(),
                }),
            };
            let retry = self.retries.entry(id.clone()).or_default();
            match result {
                Ok(()) => {
                    retry.failures = 0;
                    retry.next = None;
                }
                Err(e) => {
                    self.fanout.note_failure(&id, &e.to_string());
                    let wait = rebuild_backoff(retry.failures);
                    retry.failures = retry.failures.saturating_add(1);
                    retry.next = Some(Instant::now() + wait);
                    tracing::warn!(replica = %id, error = %e, retry_in = ?wait, "rebuild failed");
                }
            }
        }
    }

    /// Replicas in and out: CVRs gone or not admitted leave; new or Degraded ones are
    /// (re)opened and rebuilt in the background.
    fn follow_replicas(&mut self, cv: &CStorVolume, cvrs: &[CStorVolumeReplica]) {
        let wanted = status::wanted_replicas(
            cv,
            cvrs,
            &self.config.node_roots,
            &self.config.replica_roots,
        );
        for cvr in cvrs {
            let Some(id) = status::replica_id(cvr) else {
                continue;
            };
            let now = cvr
                .status
                .as_ref()
                .map(|s| s.phase.clone())
                .unwrap_or_default();
            let before = self.cvr_phases.insert(id.clone(), now.clone());
            if before.as_deref() == Some(cvr_phase::OFFLINE) && now != cvr_phase::OFFLINE {
                tracing::info!(replica = %id, phase = %now, "replica's pool is back; retrying now");
                self.retries.remove(&id);
            }
        }
        self.cvr_phases.retain(|id, _| wanted.contains_key(id));
        for id in self.fanout.ids() {
            if !wanted.contains_key(&id) {
                tracing::info!(replica = %id, "replica left the volume");
                self.fanout.remove_replica(&id);
                self.retries.remove(&id);
            }
        }
        for (id, (path, _)) in wanted {
            let state = self.fanout.state(&id);
            if matches!(
                state,
                Some(ReplicaState::Healthy | ReplicaState::Rebuilding)
            ) || self.rebuilds.contains_key(&id)
            {
                continue;
            }
            if self
                .retries
                .get(&id)
                .and_then(|r| r.next)
                .is_some_and(|t| Instant::now() < t)
            {
                continue;
            }
            if state.is_none() {
                self.fanout.add_replica(&id);
            }
            self.start_rebuild(id, path);
        }
    }

    fn start_rebuild(&mut self, id: String, path: PathBuf) {
        let fanout = self.fanout.clone();
        let task_id = id.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let file = open_replica(&path)?;
            fanout.rebuild(&task_id, file).map(|_| ())
        });
        self.rebuilds.insert(id, RebuildTask { handle });
    }

    /// knownReplicas, RF and CF; returns the CV as it is afterwards.
    async fn follow_known(&mut self, cv: CStorVolume) -> Result<CStorVolume, Error> {
        let plan: KnownPlan = status::plan_known(&cv, &self.fanout.replicas());
        if let Some(w) = &plan.waiting {
            tracing::info!(volume = %self.name, "{w}");
        }
        for id in &plan.removed {
            tracing::info!(replica = %id, "scale down: replica leaves the fan-out");
            self.fanout.remove_replica(id);
        }
        if plan.spec_known.is_none() && plan.rf_cf.is_none() {
            return Ok(with_status_known(cv, plan.status_known));
        }
        let mut spec = serde_json::Map::new();
        if let Some((rf, cf)) = plan.rf_cf {
            spec.insert("replicationFactor".into(), json!(rf));
            spec.insert("consistencyFactor".into(), json!(cf));
        }
        if let Some(known) = &plan.spec_known {
            let old = status::spec_known(&cv);
            let mut m = serde_json::Map::new();
            for (k, v) in known {
                m.insert(k.clone(), json!(v));
            }
            for k in old.keys().filter(|k| !known.contains_key(*k)) {
                m.insert(k.clone(), serde_json::Value::Null);
            }
            spec.insert("replicaDetails".into(), json!({"knownReplicas": m}));
        }
        let patch = json!({"spec": spec});
        let drf = status::drf(&cv);
        match self
            .cvs
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => {
                if let Some((rf, cf)) = plan.rf_cf {
                    self.fanout.set_consistency_factor(cf.max(1) as usize);
                    event(
                        &self.recorder,
                        &updated,
                        EventType::Normal,
                        reasons::UPDATED,
                        format!(
                            "Successfully updated the desiredReplicationFactor to {drf} \
                             (replicationFactor {rf}, consistencyFactor {cf})"
                        ),
                    )
                    .await;
                }
                Ok(with_status_known(updated, plan.status_known))
            }
            Err(e) => {
                event(
                    &self.recorder,
                    &cv,
                    EventType::Warning,
                    reasons::FAIL_UPDATE,
                    format!("failed to update desired replication factor to {drf} Error: {e}"),
                )
                .await;
                Err(ApiError::new("patch spec of CStorVolume", &self.name, e).into())
            }
        }
    }

    /// Grows the replicas and the LUN when `spec.capacity` exceeds the fan-out's size.
    async fn follow_resize(&mut self, cv: &CStorVolume) {
        let Some(want) = cv
            .spec
            .capacity
            .as_ref()
            .and_then(|q| cstor_api::quantity::bytes(&q.0).ok())
        else {
            return;
        };
        let have = self.served_size;
        if want <= have {
            if want < have {
                tracing::warn!(
                    want,
                    have,
                    "spec.capacity below the volume size; shrink ignored"
                );
            }
            return;
        }
        // 1. The fan-out grows only once every pool-manager has raised its replica's quota and
        //    grown the file: before that, a write past the old end could fail on a replica.
        if self.fanout.size() < want {
            let fanout = self.fanout.clone();
            let short = tokio::task::spawn_blocking(move || fanout.replicas_short_of(want))
                .await
                .unwrap_or_else(|e| vec![format!("(check failed: {e})")]);
            if !short.is_empty() {
                self.resize_error = Some(format!(
                    "waiting for the pool-managers to grow replicas {} to {want} bytes",
                    short.join(", ")
                ));
                return;
            }
            let fanout = self.fanout.clone();
            let grown = tokio::task::spawn_blocking(move || fanout.resize(want))
                .await
                .unwrap_or_else(|e| {
                    Err(Error::Io {
                        context: "resize task".into(),
                        source: std::io::Error::other(e.to_string()),
                    })
                });
            if let Err(e) = grown {
                self.resize_failed(cv, have, want, &e.to_string()).await;
                return;
            }
        }
        // 2. tgt sees the new size; 3. confirmed by what tgt shows, then reported.
        let (Some(tid), Some(m)) = (self.tid, &self.mounted) else {
            return;
        };
        let lun = m.lun_path().display().to_string();
        // I/O waits at the gate while tgt re-opens the file: held, not failed.
        let gate = m.gate().clone();
        let held = tokio::task::spawn_blocking(move || {
            gate.hold(super::gate::REOPEN_QUIET, IO_HOLD_DEADLINE)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        let hold = match held {
            Ok(h) => h,
            Err(e) => {
                self.resize_failed(cv, have, want, &e).await;
                return;
            }
        };
        let refreshed = self.tgt.refresh_lun(tid, &lun).await;
        tracing::info!(
            held_ms = hold.held_for().as_millis() as u64,
            "LUN I/O held for the re-open"
        );
        drop(hold);
        let confirmed = match refreshed {
            Ok(()) => match self.tgt.lun_mb(tid).await {
                Ok(Some(mb)) if mb >= super::tgt::shown_mb(want) => Ok(()),
                Ok(shown) => Err(format!("tgt shows LUN 1 as {shown:?} MB after the refresh")),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match confirmed {
            Ok(()) => {
                self.served_size = want;
                self.resize_error = None;
                event(
                    &self.recorder,
                    cv,
                    EventType::Normal,
                    reasons::UPDATED,
                    format!("successfully resized volume from {have} to {want} bytes"),
                )
                .await;
            }
            // Tried again at the next pass.
            Err(e) => self.resize_failed(cv, have, want, &e).await,
        }
    }

    async fn resize_failed(&mut self, cv: &CStorVolume, have: u64, want: u64, why: &str) {
        let message = format!("resize from {have} to {want} bytes failed: {why}");
        if self.resize_error.as_deref() != Some(message.as_str()) {
            event(
                &self.recorder,
                cv,
                EventType::Warning,
                reasons::FAIL_UPDATE,
                message.clone(),
            )
            .await;
        }
        self.resize_error = Some(message);
    }

    /// The CV status from the fan-out; applied when it changed or the resync is due; an
    /// Event on a phase change.
    async fn report(&mut self, cv: &CStorVolume) -> Result<(), Error> {
        // Taken before the snapshot: the status written covers at least these losses.
        let losses = self.fanout.losses();
        let st = self.desired_status(cv);
        let mut cmp = st.clone();
        strip_volatile(&mut cmp);
        let due = self
            .last_apply
            .is_none_or(|t| t.elapsed() >= self.config.resync);
        if !due && self.last_status.as_ref() == Some(&cmp) {
            self.fanout.mark_recorded(losses);
            return Ok(());
        }
        apply_status(
            &self.cvs,
            &self.name,
            &self.config.namespace,
            &self.manager,
            &st,
        )
        .await?;
        self.fanout.mark_recorded(losses);
        self.last_status = Some(cmp);
        self.last_apply = Some(Instant::now());
        if st.phase != self.phase {
            let type_ = status::phase_event_type(&st.phase);
            event(
                &self.recorder,
                cv,
                type_,
                &st.phase,
                format!("Volume is in {} state: {}", st.phase, st.message),
            )
            .await;
            self.phase = st.phase.clone();
        }
        Ok(())
    }

    fn desired_status(&self, cv: &CStorVolume) -> CStorVolumeStatus {
        let infos = self.fanout.replicas();
        let seen = status::Observed {
            infos: &infos,
            serving: self.tid.is_some(),
            lun_size: self.served_size,
            resize_error: self.resize_error.as_deref(),
            resyncing: self.resync.is_some(),
        };
        status::derive_status(cv, &seen, &now(), Instant::now())
    }

    /// Removes the target, unmounts, reports `Offline` (keeping replicaStatuses, which tell
    /// the next start which replicas hold every write).
    async fn teardown(&mut self) {
        for (_, t) in self.rebuilds.drain() {
            t.handle.abort();
        }
        if let Some(h) = self.resync.take() {
            h.abort();
        }
        if let Some(tid) = self.tid.take()
            && let Err(e) = self.tgt.remove(tid).await
        {
            tracing::warn!(tid, error = %e, "removing the tgt target failed");
        }
        if let Some(m) = self.mounted.take() {
            let r = tokio::time::timeout(
                UNMOUNT_WAIT,
                tokio::task::spawn_blocking(move || m.unmount()),
            )
            .await;
            match r {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "unmount failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "unmount task failed"),
                Err(_) => tracing::warn!("unmount did not finish in {UNMOUNT_WAIT:?}; leaving it"),
            }
        }
        // The API may hang (the process must still stop within its grace period).
        if tokio::time::timeout(OFFLINE_REPORT_WAIT, self.report_offline())
            .await
            .is_err()
        {
            tracing::warn!("Offline not reported within {OFFLINE_REPORT_WAIT:?}; stopping anyway");
        }
    }

    /// Reports phase `Offline` (and the Event) as the volume-manager stops.
    async fn report_offline(&mut self) {
        let Ok(Some(cv)) = self.cvs.get_opt(&self.name).await else {
            return;
        };
        let mut st = self.desired_status(&cv);
        st.phase = phase::OFFLINE.into();
        st.message = "the volume-manager stopped".into();
        if cv.status.as_ref().map(|s| s.phase.as_str()) != Some(phase::OFFLINE) {
            st.last_transition_time = Some(now());
        }
        if let Err(e) = apply_status(
            &self.cvs,
            &self.name,
            &self.config.namespace,
            &self.manager,
            &st,
        )
        .await
        {
            tracing::warn!(error = %e, "reporting Offline failed");
        } else if self.phase != phase::OFFLINE {
            event(
                &self.recorder,
                &cv,
                EventType::Warning,
                phase::OFFLINE,
                "Volume is in Offline state".into(),
            )
            .await;
        }
    }
}

/// The CV with `status.replicaDetails.knownReplicas` as the plan says (used for the status
/// computed from it).
pub(crate) fn with_status_known(
    mut cv: CStorVolume,
    known: BTreeMap<String, String>,
) -> CStorVolume {
    let st = cv.status.get_or_insert_with(Default::default);
    st.replica_details = (!known.is_empty()).then_some(CStorVolumeReplicaDetails {
        known_replicas: known,
    });
    cv
}

/// Clears what changes every second (times, upTime, counters) for the "did it change" check.
pub(crate) fn strip_volatile(st: &mut CStorVolumeStatus) {
    st.last_update_time = None;
    st.last_transition_time = None;
    for c in &mut st.conditions {
        c.last_probe_time = None;
    }
    for r in &mut st.replica_statuses {
        r.up_time = 0;
        r.checkpointed_io_seq.clear();
        r.inflight_read.clear();
        r.inflight_write.clear();
        r.inflight_sync.clear();
    }
}
