//! The replica (CVR) controller of the pool-manager (docs/volumes.md with
//! docs/volumes.md "Replica store"): for every CVR of our CSPI it validates, waits for the
//! pool, fixes the replica id, creates the store ([`store`]), annotates the lun path, resizes,
//! and writes the phase the volume-manager's view of the replica implies; on deletion it
//! destroys the store and releases the finalizer. Decisions are pure ([`decide`]).

pub(crate) mod decide;
pub mod store;

use cstor_runtime::errors::Step;
use cstor_runtime::reasons;
use std::sync::Arc;
use std::time::Duration;

use cstor_api::cstor_v1::cspi::{self, CStorPoolInstance};
use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::cstor_v1::cvr::{CStorVolumeReplica, phase};
use cstor_api::keys::{annotations, finalizers, labels};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use self::decide::{PhaseInput, PhaseOutcome, PoolState};
use self::store::{
    AnyStore, DatasetStore, Ensured, ReplicaSpec, ReplicaStore, StoreError, ZvolStore,
};
use super::{Context as PoolContext, Error, kube_ops};
use crate::pool_manager::commands::Dialect;

/// Requeue while the pool is not imported (the CSPI watch also wakes us).
const POOL_WAIT: Duration = Duration::from_secs(5);

/// Shared by every CVR reconcile.
pub struct Context {
    pub(crate) base: Arc<PoolContext>,
    pub(crate) store: AnyStore,
    failures: cstor_runtime::Backoff,
}

use cstor_runtime::now;

/// The label selector of our CVRs.
pub fn selector(cspi_uid: &str) -> String {
    format!("{}={cspi_uid}", labels::CSPI_UID)
}

/// The store for the dialect: datasets + lun files on zfs-fuse, zvols on uZFS.
pub fn store_for(ctx: &PoolContext) -> AnyStore {
    match ctx.config.dialect {
        Dialect::ZfsFuse => AnyStore::Dataset(DatasetStore {
            runner: ctx.runner.clone(),
            replicas_dir: decide::replicas_dir(&ctx.config.cache_file),
        }),
        Dialect::Uzfs => AnyStore::Zvol(ZvolStore {
            runner: ctx.runner.clone(),
        }),
    }
}

impl Context {
    fn cvrs(&self) -> Api<CStorVolumeReplica> {
        Api::namespaced(self.base.client.clone(), &self.base.config.namespace)
    }

    fn cvs(&self) -> Api<CStorVolume> {
        Api::namespaced(self.base.client.clone(), &self.base.config.namespace)
    }

    fn cspis(&self) -> Api<CStorPoolInstance> {
        Api::namespaced(self.base.client.clone(), &self.base.config.namespace)
    }

    async fn event(
        &self,
        r: &ObjectReference,
        t: EventType,
        reason: &str,
        note: impl Into<String>,
        action: &str,
    ) {
        cstor_runtime::events::publish(&self.base.recorder, r, t, reason, note, action).await;
    }

    /// `zpool list -H -o health POOL`: Usable when ONLINE or DEGRADED.
    async fn pool_state(&self) -> PoolState {
        match self
            .base
            .runner
            .run("zpool", &["list", "-H", "-o", "health", &self.base.pool])
            .await
        {
            Ok(out) => {
                let health = out.stdout.trim().to_string();
                if health == cspi::phase::ONLINE || health == cspi::phase::DEGRADED {
                    PoolState::Usable
                } else {
                    PoolState::Unusable(health)
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "pool not listed");
                PoolState::Absent
            }
        }
    }

    /// Our CSPI's thick provisioning flag (false when the CSPI cannot be read).
    async fn thick(&self, cvr: &CStorVolumeReplica) -> bool {
        let Some(name) = cvr.labels().get(labels::CSPI_NAME) else {
            return false;
        };
        match self.cspis().get_opt(name).await {
            Ok(Some(c)) if c.uid().as_deref() == Some(self.base.config.cspi_uid.as_str()) => c
                .spec
                .pool_config
                .as_ref()
                .is_some_and(|p| p.thick_provision),
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "CSPI not read; assuming thin provisioning");
                false
            }
        }
    }

    /// A replica's state could not be read from its store: a `FailStatusSync` Warning, and
    /// the error the reconcile ends with.
    async fn status_sync_failed(&self, reference: &ObjectReference, e: &StoreError) -> Error {
        self.event(
            reference,
            EventType::Warning,
            reasons::FAIL_STATUS_SYNC,
            format!("Resource status sync failed: {}", e.message()),
            reasons::action::SYNC,
        )
        .await;
        Error::Update {
            pool: self.base.pool.clone(),
            message: e.message(),
        }
    }

    /// Writes the phase; a replica that was serving and goes Offline also gets a Warning
    /// `Offline` Event with the reason.
    async fn write_phase(
        &self,
        cvr: &CStorVolumeReplica,
        reference: &ObjectReference,
        current: &str,
        outcome: &PhaseOutcome,
        capacity: Option<cstor_api::cstor_v1::cvr::CVRCapacityInfo>,
    ) -> Result<bool, Error> {
        if outcome.phase == phase::OFFLINE
            && current != phase::OFFLINE
            && !decide::is_initial(current)
        {
            self.event(
                reference,
                EventType::Warning,
                reasons::OFFLINE,
                format!("Replica is Offline: {}", outcome.message),
                reasons::action::SYNC,
            )
            .await;
        }
        self.write_status(cvr, outcome, capacity).await
    }

    /// Writes `status` (server-side apply, forced) when it changes what we own.
    async fn write_status(
        &self,
        cvr: &CStorVolumeReplica,
        outcome: &PhaseOutcome,
        capacity: Option<cstor_api::cstor_v1::cvr::CVRCapacityInfo>,
    ) -> Result<bool, Error> {
        let new = decide::next_status(cvr.status.as_ref(), outcome, capacity, &now());
        if !decide::status_differs(cvr.status.as_ref(), &new) {
            return Ok(false);
        }
        let name = cvr.name_any();
        let body = decide::status_apply_body(&name, &self.base.config.namespace, &new);
        kube_ops::apply_status(&self.cvrs(), &name, &self.base.manager, &body).await?;
        Ok(true)
    }
}

fn error_policy(cvr: Arc<CStorVolumeReplica>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = cvr.name_any();
    let (n, delay) = ctx.failures.failed(&key);
    tracing::warn!(cvr = %key, error = %error, category = error.category(), failures = n, retry_in = ?delay, "replica reconcile failed");
    Action::requeue(delay)
}

/// Runs the CVR controller until `stop` turns true; then marks our created replicas Offline
/// (the Go operators' shutdown).
pub async fn run(base: Arc<PoolContext>, stop: tokio::sync::watch::Receiver<bool>) {
    let client = base.client.clone();
    let ns = base.config.namespace.clone();
    let cspi_uid = base.config.cspi_uid.clone();
    let rctx = Arc::new(Context {
        store: store_for(&base),
        base,
        failures: cstor_runtime::Backoff::default(),
    });
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(client.clone(), &ns);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), &ns);
    let cspis: Api<CStorPoolInstance> = Api::namespaced(client, &ns);
    let controller = Controller::new(
        cvrs,
        watcher::Config::default().labels(&selector(&cspi_uid)),
    );
    let by_volume = controller.store();
    let all = controller.store();
    let mut stopper = stop.clone();
    controller
        .with_config(controller::Config::default().debounce(Duration::from_millis(300)))
        .watches(cvs, watcher::Config::default(), move |cv: CStorVolume| {
            let name = cv.name_any();
            by_volume
                .state()
                .iter()
                .filter(|c| decide::concerns(c, &name))
                .map(|c| ObjectRef::from_obj(&**c))
                .collect::<Vec<_>>()
        })
        .watches(
            cspis,
            watcher::Config::default(),
            move |c: CStorPoolInstance| {
                if c.uid().as_deref() == Some(cspi_uid.as_str()) {
                    all.state()
                        .iter()
                        .map(|c| ObjectRef::from_obj(&**c))
                        .collect::<Vec<_>>()
                } else {
                    Vec::new()
                }
            },
        )
        .graceful_shutdown_on(async move {
            let _ = stopper.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, rctx.clone())
        .for_each(|res| async move {
            match res {
                Ok((obj, action)) => tracing::debug!(cvr = %obj.name, ?action, "reconciled"),
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => tracing::warn!(error = %e, "replica controller"),
            }
        })
        .await;
    if let Err(e) = mark_offline(&rctx).await {
        tracing::warn!(error = %e, "replicas not marked Offline at shutdown");
    }
}

/// One CVR: only ours (label) and a fresh read.
pub async fn reconcile(cvr: Arc<CStorVolumeReplica>, ctx: Arc<Context>) -> Result<Action, Error> {
    if cvr.labels().get(labels::CSPI_UID).map(String::as_str)
        != Some(ctx.base.config.cspi_uid.as_str())
    {
        return Ok(Action::await_change());
    }
    let name = cvr.name_any();
    let Some(live) = ctx.cvrs().get_opt(&name).await.step("get CVR", &name)? else {
        return Ok(Action::await_change());
    };
    let action = ctx
        .failures
        .reconcile("cvr", &name, reconcile_one(&live, &ctx))
        .await?;
    Ok(action)
}

async fn reconcile_one(cvr: &CStorVolumeReplica, ctx: &Context) -> Result<Action, Error> {
    let reference = cvr.object_ref(&());
    let name = cvr.name_any();
    let resync = Action::requeue(ctx.base.config.resync);
    let current = cvr
        .status
        .as_ref()
        .map(|s| s.phase.clone())
        .unwrap_or_default();
    let previous_message = cvr
        .status
        .as_ref()
        .map(|s| s.message.clone())
        .unwrap_or_default();

    if cvr.meta().deletion_timestamp.is_some() {
        return destroy(cvr, ctx, &reference).await;
    }
    let cvrs = ctx.cvrs();
    let (recorder, manager) = (&ctx.base.recorder, &ctx.base.manager);
    let details = cvr.version_details.as_ref();
    if !crate::version::step(&cvrs, recorder, manager, cvr, "CVR", details).await? {
        return Ok(resync);
    }

    let capacity = match decide::validate(cvr) {
        Ok(c) => c,
        Err(reason) => {
            let outcome = PhaseOutcome {
                phase: phase::OFFLINE.into(),
                message: format!("validation failed: {reason}"),
            };
            if previous_message != outcome.message {
                ctx.event(
                    &reference,
                    EventType::Warning,
                    reasons::FAIL_VALIDATE,
                    format!("Resource validation failed: {reason}"),
                    reasons::action::VALIDATE,
                )
                .await;
            }
            ctx.write_status(cvr, &outcome, None).await?;
            return Ok(resync);
        }
    };
    // Awaiting its restore with no mark from the plugin: handed to the target once the
    // volume's restores on this pool are over (no manual step; docs/backup-restore.md).
    if cvr.awaiting_restore()
        && decide::restore_completed_ops(cvr).is_none()
        && let Some(action) = settle_restore(cvr, ctx, &reference).await?
    {
        return Ok(action);
    }
    // The plugin marked the restore complete: the replica is the target's from now on.
    if decide::restore_completed_ops(cvr).is_some() {
        // A restored zvol was made without its target; it dials it from now on.
        if let AnyStore::Zvol(zvols) = &ctx.store {
            let pv = decide::volume_of(cvr).unwrap_or_default();
            let dataset = decide::dataset_name(&ctx.base.pool, &pv);
            match zvols.ensure_target_ip(&dataset, &cvr.spec.target_ip).await {
                Ok(set) if set => {
                    tracing::info!(cvr = %name, target = %cvr.spec.target_ip, "restored zvol given its target")
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::Update {
                        pool: ctx.base.pool.clone(),
                        message: e.message(),
                    });
                }
            }
        }
        kube_ops::patch_metadata(&ctx.base.client, &ctx.cvrs(), &name, |c| {
            decide::restore_completed_ops(c)
        })
        .await?;
        tracing::info!(cvr = %name, "restore complete; the target may use the replica");
        return Ok(Action::requeue(Duration::ZERO));
    }
    let pv = decide::volume_of(cvr).unwrap_or_default();
    let receiving = ctx
        .base
        .receiving
        .lock()
        .map(|r| r.contains(&pv))
        .unwrap_or(false);
    if receiving {
        return Ok(Action::requeue(RESTORE_LOOK));
    }
    let dataset = decide::dataset_name(&ctx.base.pool, &pv);
    let lun_annotated = cvr.annotations().contains_key(decide::LUN_ANNOTATION);
    let has_lun = matches!(ctx.store, AnyStore::Dataset(_));
    let created_before = decide::created_before(&current, lun_annotated, has_lun);

    let pool_state = ctx.pool_state().await;
    if pool_state != PoolState::Usable {
        let outcome = decide::replica_phase(&PhaseInput {
            current: &current,
            pool: &ctx.base.pool,
            pool_state,
            store_present: false,
            created_before,
            mode: None,
            known: false,
            awaiting_restore: false,
        });
        ctx.write_phase(cvr, &reference, &current, &outcome, None)
            .await?;
        return Ok(Action::requeue(POOL_WAIT));
    }

    // The replica id: spec, else the store's property (a restarted manager), else the hash.
    let mut replica_id = cvr.spec.replica_id.clone();
    if replica_id.is_empty() {
        replica_id = match ctx.store.replica_id(&dataset).await {
            Ok(Some(id)) => id,
            Ok(None) => decide::replica_id_for(&cvr.uid().unwrap_or_default()),
            Err(e) => {
                let message = e.message();
                ctx.write_status(
                    cvr,
                    &PhaseOutcome {
                        phase: decide::kept_phase(&current),
                        message: format!("replica id not read: {message}"),
                    },
                    None,
                )
                .await?;
                return Err(Error::Update {
                    pool: ctx.base.pool.clone(),
                    message,
                });
            }
        };
        let id = replica_id.clone();
        kube_ops::patch_metadata(&ctx.base.client, &ctx.cvrs(), &name, |c| {
            decide::replica_id_ops(c, &id)
        })
        .await?;
    }

    let spec = ReplicaSpec {
        dataset: dataset.clone(),
        pv: pv.clone(),
        cvr: name.clone(),
        replica_id: replica_id.clone(),
        target_ip: (cvr
            .annotations()
            .get(annotations::IS_RESTORE_VOL)
            .map(String::as_str)
            != Some("true"))
        .then(|| cvr.spec.target_ip.clone()),
        capacity,
        capacity_text: cvr.spec.capacity.clone(),
        thick: ctx.thick(cvr).await,
        quorum: !current.eq_ignore_ascii_case(phase::RECREATE),
        zvol_workers: cvr.spec.zvol_workers.clone(),
        clone_from: decide::clone_source(cvr)
            .map(|(src, snap)| format!("{}@{snap}", decide::dataset_name(&ctx.base.pool, &src))),
    };

    if !created_before {
        match ctx.store.ensure(&spec).await {
            Ok(Ensured::Created) => {
                ctx.event(
                    &reference,
                    EventType::Normal,
                    reasons::CREATED,
                    "Resource created successfully",
                    reasons::action::CREATE,
                )
                .await;
            }
            // Once: a dataset store is annotated right after; a zvol is reported at first look.
            Ok(Ensured::AlreadyPresent) if has_lun || current.is_empty() => {
                ctx.event(
                    &reference,
                    EventType::Warning,
                    reasons::ALREADY_PRESENT,
                    "Resource already present",
                    reasons::action::CREATE,
                )
                .await;
            }
            Ok(Ensured::AlreadyPresent) => {}
            Err(e) => {
                let message = e.message();
                let outcome = PhaseOutcome {
                    phase: decide::kept_phase(&current),
                    message: format!("failed to create volume replica: {message}"),
                };
                ctx.event(
                    &reference,
                    EventType::Warning,
                    reasons::FAIL_CREATE,
                    format!("failed to create volume replica error: {message}"),
                    reasons::action::CREATE,
                )
                .await;
                ctx.write_status(cvr, &outcome, None).await?;
                return Err(Error::Update {
                    pool: ctx.base.pool.clone(),
                    message,
                });
            }
        }
    }

    let mut probe = match ctx.store.probe(&spec).await {
        Ok(p) => p,
        Err(e) => return Err(ctx.status_sync_failed(&reference, &e).await),
    };
    // A dataset store is there only with its lun file.
    let present = probe.as_ref().is_some_and(|p| p.size.is_some() || !has_lun);

    let mut resize_message = String::new();
    if present {
        if let Some(path) = ctx.store.lun_path(&spec) {
            let value = path.display().to_string();
            kube_ops::patch_metadata(&ctx.base.client, &ctx.cvrs(), &name, |c| {
                decide::annotation_ops(c, decide::LUN_ANNOTATION, &value)
            })
            .await?;
        }
        if let Some(p) = &probe {
            match ctx.store.resize_steps(&spec, p) {
                Ok(steps) if steps.is_empty() => {}
                Ok(steps) => match ctx.store.resize(&spec, &steps).await {
                    Ok(()) => {
                        ctx.event(
                            &reference,
                            EventType::Normal,
                            reasons::RESIZED,
                            format!("Replica resized to {} bytes", spec.capacity),
                            reasons::action::RESIZE,
                        )
                        .await;
                        probe = ctx.store.probe(&spec).await.ok().flatten().or(probe);
                    }
                    Err(e) => {
                        let message = e.message();
                        ctx.event(
                            &reference,
                            EventType::Warning,
                            reasons::FAIL_RESIZE,
                            format!("Failed to resize replica: {message}"),
                            reasons::action::RESIZE,
                        )
                        .await;
                        resize_message = format!("resize failed: {message}");
                    }
                },
                Err(shrink) => {
                    resize_message = shrink.to_string();
                    if previous_message != resize_message {
                        ctx.event(
                            &reference,
                            EventType::Warning,
                            reasons::FAIL_RESIZE,
                            resize_message.clone(),
                            reasons::action::RESIZE,
                        )
                        .await;
                    }
                }
            }
        }
    }

    let cv = match ctx.cvs().get_opt(&pv).await {
        Ok(cv) => cv,
        Err(e) => {
            tracing::warn!(error = %e, cv = %pv, "CStorVolume not read");
            None
        }
    };
    let (mode, known) = decide::cv_view(cv.as_ref(), &replica_id);
    let mut outcome = decide::replica_phase(&PhaseInput {
        current: &current,
        pool: &ctx.base.pool,
        pool_state: PoolState::Usable,
        store_present: present,
        created_before: created_before || present,
        mode,
        known,
        awaiting_restore: cvr.awaiting_restore(),
    });
    // uZFS knows the replica's state itself (istgt drives it): `zfs stats`, as the Go
    // pool-manager reads it.
    if let AnyStore::Zvol(zvols) = &ctx.store
        && present
        && !cvr.awaiting_restore()
    {
        match zvols.stats(&dataset).await {
            Ok(stat) => outcome.phase = decide::uzfs_phase(&stat).to_string(),
            Err(e) => return Err(ctx.status_sync_failed(&reference, &e).await),
        }
    }
    if outcome.message.is_empty() {
        outcome.message = resize_message;
    }
    let capacity = probe
        .as_ref()
        .map(|p| decide::capacity_info(p.stats.used, p.stats.referenced));
    ctx.write_phase(cvr, &reference, &current, &outcome, capacity)
        .await?;
    if cvr.awaiting_restore() {
        return Ok(Action::requeue(RESTORE_LOOK));
    }
    Ok(resync)
}

/// How often a replica awaiting its restore looks whether its restores are over.
const RESTORE_LOOK: Duration = Duration::from_secs(10);

/// For a replica awaiting its restore: once [`super::restore::settled`], `isRestoreVol` is
/// removed (Some: reconcile again now); else None and the caller goes on, looking again
/// within [`RESTORE_LOOK`].
async fn settle_restore(
    cvr: &CStorVolumeReplica,
    ctx: &Context,
    reference: &ObjectReference,
) -> Result<Option<Action>, Error> {
    use cstor_api::cstor_v1::backup::CStorRestore;
    let pv = decide::volume_of(cvr).unwrap_or_default();
    let restores: Api<CStorRestore> = Api::all(ctx.base.client.clone());
    let lp = ListParams::default().labels(&format!(
        "{}={},{}={pv}",
        labels::CSPI_UID,
        ctx.base.config.cspi_uid,
        labels::PERSISTENT_VOLUME
    ));
    let list = match restores.list(&lp).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(error = %e, "restores not listed");
            return Ok(None);
        }
    };
    if !super::restore::settled(
        &list,
        k8s_openapi::jiff::Timestamp::now(),
        super::restore::SETTLE,
    ) {
        return Ok(None);
    }
    let name = cvr.name_any();
    kube_ops::patch_metadata(&ctx.base.client, &ctx.cvrs(), &name, |c| {
        c.annotations().contains_key(annotations::IS_RESTORE_VOL).then(|| {
            serde_json::json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": c.resource_version().unwrap_or_default()},
                {"op": "remove", "path": "/metadata/annotations/isRestoreVol"}
            ])
        })
    })
    .await?;
    ctx.event(
        reference,
        EventType::Normal,
        "Restored",
        format!(
            "every restore of volume {pv} on this pool finished {} s ago or more; the target may use the replica",
            super::restore::SETTLE.as_secs()
        ),
        reasons::action::UPDATE,
    )
    .await;
    Ok(Some(Action::requeue(Duration::ZERO)))
}

/// How soon a deletion that could not destroy the store yet tries again. Not the error
/// back-off: what blocks a destroy (a dataset busy under a receive that is being cancelled,
/// a pool being imported) passes in seconds, and a back-off grown by earlier failures of the
/// replica would leave a deleted volume's replica behind for minutes.
const DESTROY_RETRY: Duration = Duration::from_secs(2);

/// Deletion: destroy the store, then drop only our finalizer.
async fn destroy(
    cvr: &CStorVolumeReplica,
    ctx: &Context,
    reference: &ObjectReference,
) -> Result<Action, Error> {
    let name = cvr.name_any();
    if !cvr.finalizers().iter().any(|f| f == finalizers::CVR) {
        return Ok(Action::await_change());
    }
    // `zfs destroy` of a dataset on a pool not imported "succeeds" (does not exist): wait for
    // the pool rather than leak the replica.
    if ctx.pool_state().await == PoolState::Absent {
        let message = format!(
            "pool {} is not imported; the replica is destroyed once it is",
            ctx.base.pool
        );
        let outcome = PhaseOutcome {
            phase: phase::DELETION_FAILED.into(),
            message: message.clone(),
        };
        ctx.write_status(cvr, &outcome, None).await?;
        tracing::warn!(cvr = %name, %message, "replica not destroyed yet");
        return Ok(Action::requeue(DESTROY_RETRY));
    }
    match decide::volume_of(cvr) {
        Some(pv) => {
            let dataset = decide::dataset_name(&ctx.base.pool, &pv);
            if let Err(e) = ctx.store.destroy(&dataset).await {
                let message = e.message();
                ctx.event(
                    reference,
                    EventType::Warning,
                    reasons::FAIL_DESTROY,
                    format!("Resource Destroy failed: {message}"),
                    reasons::action::DESTROY,
                )
                .await;
                let outcome = PhaseOutcome {
                    phase: phase::DELETION_FAILED.into(),
                    message: format!("destroy of {dataset} failed: {message}"),
                };
                ctx.write_status(cvr, &outcome, None).await?;
                tracing::warn!(cvr = %name, %dataset, %message, "replica not destroyed yet");
                return Ok(Action::requeue(DESTROY_RETRY));
            }
        }
        None => tracing::warn!(cvr = %name, "no volume label: nothing to destroy"),
    }
    if let Err(e) =
        kube_ops::remove_finalizer(&ctx.base.client, &ctx.cvrs(), &name, finalizers::CVR).await
    {
        ctx.event(
            reference,
            EventType::Warning,
            reasons::FAIL_REMOVE_FINALIZER,
            format!("Resource Destroy failed: {e}"),
            reasons::action::DESTROY,
        )
        .await;
        return Err(e);
    }
    ctx.event(
        reference,
        EventType::Normal,
        reasons::DESTROYED,
        "Resource destroyed successfully",
        reasons::action::DESTROY,
    )
    .await;
    Ok(Action::await_change())
}

/// At shutdown: every created replica of ours (phase not ""/Init/Recreate) is Offline.
pub async fn mark_offline(ctx: &Context) -> Result<(), Error> {
    let list = ctx
        .cvrs()
        .list(&ListParams::default().labels(&selector(&ctx.base.config.cspi_uid)))
        .await
        .step("list CVRs of CSPI", &ctx.base.config.cspi_uid)?;
    for cvr in list.items {
        let current = cvr
            .status
            .as_ref()
            .map(|s| s.phase.as_str())
            .unwrap_or_default();
        if decide::is_initial(current) || cvr.meta().deletion_timestamp.is_some() {
            continue;
        }
        let outcome = PhaseOutcome {
            phase: phase::OFFLINE.into(),
            message: "pool-manager stopped".into(),
        };
        if let Err(e) = ctx.write_status(&cvr, &outcome, None).await {
            tracing::warn!(cvr = %cvr.name_any(), error = %e, "not marked Offline");
        }
    }
    Ok(())
}
