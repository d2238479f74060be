//! The volume-manager beside istgt, the cluster's target (docs/volumes.md "istgt"): waits for
//! istgt's control socket, writes istgt.conf from the CStorVolume and has istgt re-read it,
//! answers istgt's replica registrations, and then follows the CV — `REPLICA` mapped to its
//! status, `DRF` for replica scale up and down, `RESIZE`, `SNAPCREATE` / `SNAPDESTROY` for the
//! snapshot requests on the CV — each decision made by [`super::decide`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cstor_api::cstor_v1::CStorVolume;
use cstor_api::cstor_v1::cv::{CStorVolumeStatus, phase};
use cstor_api::snapshot::{self as snap, Op};
use cstor_runtime::errors::Step;
use cstor_runtime::{now, reasons};
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Mutex, watch};

use super::decide::{self, DrfStep, Seen};
use super::register::{self, Registration};
use super::reply::VolumeReport;
use super::{CONTROL_SOCKET, Istgt, IstgtError, TOTAL_WAIT_SECS, conf};
use crate::volume_manager::reconcile::{
    apply_status, event, find_cv, live_cv, stopped, strip_volatile, versioned, with_status_known,
};
use crate::volume_manager::{Config, Error, snapshot, status};

/// How often istgt's replicas are looked at (a status is written only when it changed, or
/// every resync).
const POLL: Duration = Duration::from_secs(3);
/// How often a missing istgt is looked for at start.
const WAIT_ISTGT: Duration = Duration::from_secs(3);
/// How long a stop tries to report `Offline`.
const OFFLINE_REPORT_WAIT: Duration = Duration::from_secs(10);

/// Where istgt and the volume-manager meet (the pod's shared `/var/run` and conf emptyDirs).
#[derive(Clone, Debug)]
pub struct Paths {
    pub control: PathBuf,
    pub registration: PathBuf,
    pub conf: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            control: CONTROL_SOCKET.into(),
            registration: register::REGISTRATION_SOCKET.into(),
            conf: conf::CONF_PATH.into(),
        }
    }
}

/// What the pass and the registration server share. `lock` makes each read-decide-write of
/// the CV's status or of the conf one step, so a registration is never overwritten by a pass
/// that read the CV before it; it is never held across a call to istgt (a snapshot may take
/// istgt a minute, and a registration must be answered within istgt's 20 s).
struct Shared {
    cvs: Api<CStorVolume>,
    name: String,
    namespace: String,
    manager: String,
    recorder: Recorder,
    conf: PathBuf,
    lock: Mutex<()>,
}

/// Runs the volume-manager for CV `config.volume_uid` beside istgt until `stop_rx` says stop
/// (or the CV is deleted); then reports phase `Offline`.
pub async fn run(
    client: Client,
    config: Config,
    stop_rx: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut stop = stop_rx.clone();
    let paths = config.istgt.clone();
    let quick = Istgt::new(&paths.control, config.command_timeout);
    // A snapshot may take istgt's whole wait; the deadline leaves it that.
    let slow = Istgt::new(
        &paths.control,
        Duration::from_secs(u64::from(TOTAL_WAIT_SECS) + 15).max(config.command_timeout),
    );
    if !wait_for_istgt(&quick, &mut stop).await {
        return Ok(());
    }
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), &config.namespace);
    let Some(cv) = find_cv(&cvs, &config.volume_uid, &mut stop).await? else {
        return Ok(());
    };
    let name = cv.name_any();
    tracing::info!(volume = %name, uid = %config.volume_uid, "volume-manager starting beside istgt");
    let shared = Arc::new(Shared {
        cvs: cvs.clone(),
        name: name.clone(),
        namespace: config.namespace.clone(),
        manager: format!("cstor-volume-manager/{name}"),
        recorder: crate::volume_manager::recorder(&client),
        conf: paths.conf.clone(),
        lock: Mutex::new(()),
    });

    let listener = register::bind(&paths.registration).map_err(|source| Error::Io {
        context: format!(
            "bind the registration socket {}",
            paths.registration.display()
        ),
        source,
    })?;
    let registrations = {
        let shared = shared.clone();
        tokio::spawn(register::serve(
            listener,
            register::ANSWER_BUDGET,
            move |reg: Registration| {
                let shared = shared.clone();
                async move { shared.register(reg).await }
            },
        ))
    };

    let mut pass = Pass {
        shared: shared.clone(),
        quick,
        slow,
        resync: config.resync,
        configured: false,
        report: None,
        last_status: None,
        last_apply: None,
        phase: cv
            .status
            .as_ref()
            .map(|s| s.phase.clone())
            .unwrap_or_default(),
        resize_error: None,
        warned: String::new(),
    };
    let cv_watch = watcher(
        cvs.clone(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .map(|_| ())
    .boxed();
    let mut events = cv_watch;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            () = stopped(&mut stop) => break Ok(()),
            e = events.next() => if e.is_none() {
                tracing::warn!("CStorVolume watch ended");
                break Ok(());
            },
            _ = poll.tick() => {}
        }
        let outcome = tokio::select! {
            r = pass.run() => r,
            () = stopped(&mut stop) => break Ok(()),
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => tracing::warn!(error = %e, "pass failed"),
        }
    };
    registrations.abort();
    let _ = std::fs::remove_file(&paths.registration);
    let _ = tokio::time::timeout(OFFLINE_REPORT_WAIT, pass.report_offline()).await;
    result
}

/// Sends `STATUS` until istgt answers (its socket appears once its replication module is up);
/// false when stopped first.
async fn wait_for_istgt(istgt: &Istgt, stop: &mut watch::Receiver<bool>) -> bool {
    let mut said = String::new();
    loop {
        match istgt.status().await {
            Ok(lus) => {
                tracing::info!(?lus, "istgt answers");
                return true;
            }
            Err(e) => {
                let now = e.to_string();
                if now != said {
                    tracing::info!(error = %now, "waiting for istgt");
                    said = now;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(WAIT_ISTGT) => {}
            () = stopped(stop) => return false,
        }
    }
}

/// Writes `text` to `path` whole (a temporary file renamed over it), mode 0644.
fn write_conf(path: &Path, text: &str) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| Error::Io {
        context: format!("write {}", path.display()),
        source,
    };
    let tmp = path.with_extension("conf.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn read_conf(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The capacity istgt serves: the conf's `LUN0 Storage` size.
fn served_capacity(conf: &str) -> Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
    decide::line_value(conf, decide::KEY_STORAGE)
        .and_then(|v| v.split_whitespace().next())
        .map(|c| k8s_openapi::apimachinery::pkg::api::resource::Quantity(c.to_string()))
}

impl Shared {
    async fn event(&self, cv: &CStorVolume, type_: EventType, reason: &str, note: String) {
        event(&self.recorder, cv, type_, reason, note).await;
    }

    async fn apply(&self, status: &CStorVolumeStatus) -> Result<(), Error> {
        apply_status(
            &self.cvs,
            &self.name,
            &self.namespace,
            &self.manager,
            status,
        )
        .await
    }

    /// Rewrites the conf under the lock: `edit` gets the current text.
    async fn edit_conf(&self, edit: impl FnOnce(String) -> String) -> Result<(), Error> {
        let _held = self.lock.lock().await;
        write_conf(&self.conf, &edit(read_conf(&self.conf)))
    }

    /// A replica istgt asks to trust: decided by [`register::decide`], recorded in the CV's
    /// spec (factors, knownReplicas; optimistic concurrency) and status, then in istgt.conf;
    /// only then does istgt get `Ok`.
    async fn register(&self, reg: Registration) -> Result<(), String> {
        let _held = self.lock.lock().await;
        let cv = self
            .cvs
            .get(&self.name)
            .await
            .map_err(|e| format!("get CStorVolume {}: {e}", self.name))?;
        let accepted = register::decide(&cv, &reg)?;
        let patch = json!({
            "metadata": {"resourceVersion": cv.resource_version()},
            "spec": {
                "replicationFactor": accepted.replication_factor,
                "consistencyFactor": accepted.consistency_factor,
                "replicaDetails": {"knownReplicas": {&reg.replica_id: &reg.replica_zvol_guid}},
            }
        });
        let cv = self
            .cvs
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("record replica {} in the CV spec: {e}", reg.replica_id))?;
        let mut known = status::status_known(&cv);
        known.insert(reg.replica_id.clone(), reg.replica_zvol_guid.clone());
        let cv = with_status_known(cv, known);
        let st = cv.status.clone().unwrap_or_default();
        self.apply(&st)
            .await
            .map_err(|e| format!("record replica {} in the CV status: {e}", reg.replica_id))?;
        let text = decide::registered_conf(
            &read_conf(&self.conf),
            accepted.replication_factor,
            accepted.consistency_factor,
            &reg.replica_id,
            &reg.replica_zvol_guid,
        );
        write_conf(&self.conf, &text).map_err(|e| e.to_string())?;
        tracing::info!(
            replica = %reg.replica_id,
            guid = %reg.replica_zvol_guid,
            rf = accepted.replication_factor,
            cf = accepted.consistency_factor,
            "replica registered"
        );
        Ok(())
    }
}

/// The main loop's state.
struct Pass {
    shared: Arc<Shared>,
    quick: Istgt,
    slow: Istgt,
    resync: Duration,
    /// istgt serves the volume from the conf written at this start.
    configured: bool,
    /// The volume in istgt's last `REPLICA`.
    report: Option<VolumeReport>,
    last_status: Option<CStorVolumeStatus>,
    last_apply: Option<Instant>,
    phase: String,
    resize_error: Option<String>,
    /// The last warning published for a problem that repeats every pass.
    warned: String,
}

impl Pass {
    /// One pass; false when the CV is gone (stop).
    async fn run(&mut self) -> Result<bool, Error> {
        let shared = self.shared.clone();
        let Some(cv) = live_cv(&shared.cvs, &shared.name).await? else {
            return Ok(false);
        };
        if !versioned(&shared.cvs, &shared.recorder, &shared.manager, &cv).await? {
            return Ok(true);
        }
        if !self.configured {
            match conf::render(&cv) {
                Err(invalid) => {
                    let why = invalid.to_string();
                    self.warn_once(
                        &cv,
                        reasons::FAIL_CREATE,
                        format!("failed to create cstorvolume validation failed: {why}"),
                    )
                    .await;
                    return self
                        .write(|cv| status::waiting_status(cv, phase::INVALID, &why, &now()))
                        .await
                        .map(|()| true);
                }
                Ok(text) => {
                    shared.edit_conf(|_| text).await?;
                    match self.quick.refresh(&shared.name).await {
                        Ok(report) => {
                            tracing::info!(volume = %shared.name, "istgt serves the volume");
                            self.configured = true;
                            self.report = Some(report);
                        }
                        Err(e) => {
                            let why = format!("istgt did not take the volume's conf: {e}");
                            self.warn_once(&cv, reasons::FAIL_CREATE, why.clone()).await;
                            return self
                                .write(|cv| status::waiting_status(cv, phase::ERROR, &why, &now()))
                                .await
                                .map(|()| true);
                        }
                    }
                }
            }
        }
        let report = match self.quick.replicas().await {
            Ok(volumes) => match volumes.into_iter().find(|v| v.name == shared.name) {
                Some(v) => Ok(v),
                None => {
                    // istgt restarted without our LU: write and re-read the conf next pass.
                    self.configured = false;
                    Err(format!("istgt does not serve {}", shared.name))
                }
            },
            Err(IstgtError::Reply(e)) => {
                self.configured = false;
                Err(e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        self.report = report.as_ref().ok().cloned();
        let (scaled_down, drf_waiting) = self.follow_drf(&cv).await?;
        self.follow_resize(&cv).await;
        self.follow_snapshot(&cv).await;
        let served = served_capacity(&read_conf(&shared.conf));
        let resize_error = self.resize_error.clone();
        self.write(|fresh| {
            // A finished scale-down: the status knows what the spec knows.
            let fresh = if scaled_down {
                let known = status::spec_known(fresh);
                with_status_known(fresh.clone(), known)
            } else {
                fresh.clone()
            };
            let seen = Seen {
                report: report.as_ref().map_err(String::as_str),
                served: served.as_ref(),
                resize_error: resize_error.as_deref(),
                drf_waiting: drf_waiting.as_deref(),
            };
            decide::status(&fresh, &seen, &now())
        })
        .await?;
        Ok(true)
    }

    /// Under the lock, the status `derive` makes of the CV as it is now, applied when it differs
    /// from the last written (or a resync is due); an Event when the phase changes.
    async fn write(
        &mut self,
        derive: impl FnOnce(&CStorVolume) -> CStorVolumeStatus,
    ) -> Result<(), Error> {
        let shared = self.shared.clone();
        let (cv, st) = {
            let _held = shared.lock.lock().await;
            let cv = shared
                .cvs
                .get(&shared.name)
                .await
                .step("get CStorVolume", &shared.name)?;
            let st = derive(&cv);
            let mut cmp = st.clone();
            strip_volatile(&mut cmp);
            let due = self.last_apply.is_none_or(|t| t.elapsed() >= self.resync);
            if !due && self.last_status.as_ref() == Some(&cmp) {
                return Ok(());
            }
            shared.apply(&st).await?;
            self.last_status = Some(cmp);
            self.last_apply = Some(Instant::now());
            (cv, st)
        };
        if st.phase != self.phase {
            shared
                .event(
                    &cv,
                    status::phase_event_type(&st.phase),
                    &st.phase,
                    format!("Volume is in {} state: {}", st.phase, st.message),
                )
                .await;
            self.phase = st.phase.clone();
        }
        Ok(())
    }

    async fn warn_once(&mut self, cv: &CStorVolume, reason: &str, note: String) {
        if self.warned != note {
            self.shared
                .event(cv, EventType::Warning, reason, note.clone())
                .await;
            self.warned = note;
        }
    }

    /// Scale up and down (the Go sidecar's `updateCStorVolumeDRF`); whether a scale-down was
    /// completed (the status's known replicas then become the spec's), and why a change waits.
    async fn follow_drf(&mut self, cv: &CStorVolume) -> Result<(bool, Option<String>), Error> {
        let shared = self.shared.clone();
        let name = shared.name.clone();
        let conf_text = read_conf(&shared.conf);
        let failed = |drf: i64, e: IstgtError| {
            format!("failed to update desired replication factor to {drf} Error: {e}")
        };
        match decide::drf_step(cv, &conf_text, self.report.as_ref()) {
            DrfStep::None => Ok((false, None)),
            DrfStep::Wait(why) => {
                tracing::info!(volume = %name, "{why}");
                Ok((false, Some(why)))
            }
            DrfStep::Invalid(why) => {
                self.warn_once(cv, reasons::FAIL_UPDATE, why.clone()).await;
                Ok((false, Some(why)))
            }
            DrfStep::ScaleUp { drf } => {
                let n = u32::try_from(drf).unwrap_or(0);
                if let Err(e) = self.quick.desired_replication(&name, n, &[]).await {
                    let why = failed(drf, e);
                    self.warn_once(cv, reasons::FAIL_UPDATE, why.clone()).await;
                    return Ok((false, Some(why)));
                }
                shared
                    .edit_conf(|text| {
                        decide::set_line(&text, decide::KEY_DRF, Some(&drf.to_string()))
                    })
                    .await?;
                shared
                    .event(
                        cv,
                        EventType::Normal,
                        reasons::UPDATED,
                        format!("Successfully updated the desiredReplicationFactor to {drf}"),
                    )
                    .await;
                Ok((false, None))
            }
            DrfStep::ScaleDown {
                drf,
                keep,
                removed,
                rf_cf,
            } => {
                shared
                    .edit_conf(|text| decide::scaled_down_conf(&text, drf, &removed))
                    .await?;
                if let Some((rf, cf)) = rf_cf {
                    let patch = json!({"spec": {"replicationFactor": rf, "consistencyFactor": cf}});
                    shared
                        .cvs
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .step("patch factors of CStorVolume", &name)?;
                }
                let n = u32::try_from(drf).unwrap_or(0);
                if let Err(e) = self.quick.desired_replication(&name, n, &keep).await {
                    let why = failed(drf, e);
                    self.warn_once(cv, reasons::FAIL_UPDATE, why.clone()).await;
                    return Ok((false, Some(why)));
                }
                tracing::info!(volume = %name, replica = %removed, "scale down: replica removed");
                shared
                    .event(
                        cv,
                        EventType::Normal,
                        reasons::UPDATED,
                        format!(
                            "Successfully updated the desiredReplicationFactor to {drf} (replica {removed} removed)"
                        ),
                    )
                    .await;
                Ok((true, None))
            }
        }
    }

    /// `RESIZE` when spec.capacity exceeds what istgt serves; the conf's storage line follows.
    async fn follow_resize(&mut self, cv: &CStorVolume) {
        let shared = self.shared.clone();
        let served = served_capacity(&read_conf(&shared.conf));
        let Some(to) = decide::resize_to(cv, served.as_ref()) else {
            self.resize_error = None;
            return;
        };
        let from = served.map(|q| q.0).unwrap_or_default();
        if let Err(e) = self.quick.resize(&shared.name, &to).await {
            let why = format!("resize from {from} to {to} failed: {e}");
            self.warn_once(cv, reasons::FAIL_UPDATE, why.clone()).await;
            self.resize_error = Some(why);
            return;
        }
        if let Err(e) = shared
            .edit_conf(|text| decide::resized_conf(&text, &to))
            .await
        {
            tracing::warn!(error = %e, "conf not updated after the resize; RESIZE is sent again");
            return;
        }
        self.resize_error = None;
        shared
            .event(
                cv,
                EventType::Normal,
                reasons::UPDATED,
                format!("successfully resized volume from {from} to {to}"),
            )
            .await;
    }

    /// A snapshot asked on the CStorVolume (docs/backup-restore.md, "Snapshots"): istgt takes
    /// it on every Healthy replica at one point of the I/O stream.
    async fn follow_snapshot(&mut self, cv: &CStorVolume) {
        let shared = self.shared.clone();
        let request = match snapshot::next(cv.annotations(), None) {
            snapshot::Next::Nothing | snapshot::Next::Later(_) => return,
            snapshot::Next::Refuse(request, why) => {
                self.record_snapshot(cv, snapshot::refused(&request, &why))
                    .await;
                return;
            }
            snapshot::Next::Take(request) => request,
        };
        let result = match request.op {
            Op::Create => {
                self.slow
                    .snapshot_create(&shared.name, &request.snapshot)
                    .await
            }
            Op::Destroy => {
                self.slow
                    .snapshot_destroy(&shared.name, &request.snapshot)
                    .await
            }
        };
        let healthy = decide::healthy_known(cv, self.report.as_ref());
        let outcome =
            decide::snapshot_outcome(&request, result.map_err(|e| e.to_string()), healthy);
        self.record_snapshot(cv, outcome).await;
    }

    async fn record_snapshot(&mut self, cv: &CStorVolume, outcome: snap::Outcome) {
        let shared = self.shared.clone();
        let (type_, reason, note) = if !outcome.refused.is_empty() {
            (
                EventType::Warning,
                reasons::SNAPSHOT_FAILED,
                format!(
                    "snapshot {} not taken: {}",
                    outcome.snapshot, outcome.refused
                ),
            )
        } else if outcome.op == Op::Create {
            (
                EventType::Normal,
                reasons::SNAPSHOT_TAKEN,
                format!(
                    "snapshot {} taken by istgt on replicas [{}]",
                    outcome.snapshot,
                    outcome.done.join(", ")
                ),
            )
        } else {
            (
                EventType::Normal,
                reasons::SNAPSHOT_DESTROYED,
                format!("snapshot {} destroyed", outcome.snapshot),
            )
        };
        let value = serde_json::to_string(&outcome).unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {snap::OUTCOME: value}}});
        match shared
            .cvs
            .patch(&shared.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => shared.event(cv, type_, reason, note).await,
            Err(e) => {
                tracing::warn!(error = %e, "snapshot outcome not written; tried again next pass")
            }
        }
    }

    /// At a stop: phase `Offline` with no replica statuses, as the Go sidecar reports it.
    async fn report_offline(&mut self) {
        let shared = self.shared.clone();
        let _held = shared.lock.lock().await;
        let Ok(Some(cv)) = shared.cvs.get_opt(&shared.name).await else {
            return;
        };
        let mut st = cv.status.clone().unwrap_or_default();
        if st.phase != phase::OFFLINE {
            st.last_transition_time = Some(now());
        }
        st.phase = phase::OFFLINE.into();
        st.message = "the volume-manager stopped".into();
        st.replica_statuses.clear();
        st.last_update_time = Some(now());
        match shared.apply(&st).await {
            Ok(()) if self.phase != phase::OFFLINE => {
                shared
                    .event(
                        &cv,
                        EventType::Warning,
                        phase::OFFLINE,
                        "Volume is in Offline state: the volume-manager stopped".into(),
                    )
                    .await;
            }
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "reporting Offline failed"),
        }
    }
}
