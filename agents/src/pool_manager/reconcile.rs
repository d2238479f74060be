//! One reconcile of our CSPI: disable → destroy → finalizer → validate → import or
//! create → update pass (replacement, expansion) → status → property sync. Every zpool/zfs
//! call goes through the runner; every decision comes from [`super::decide`].

use cstor_runtime::errors::{ApiError, Step};
use cstor_runtime::reasons;
use cstor_runtime::reasons::cspi as cspi_reasons;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cstor_api::common::{ConditionStatus, PoolCondition};
use cstor_api::cstor_v1::cspi::{
    CStorPoolInstance, CStorPoolInstanceStatus, condition_type, phase,
};
use cstor_api::cstor_v1::cvr::CStorVolumeReplica;
use cstor_api::keys::{annotations, finalizers, labels};
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::commands::{self, Dialect};
use super::decide::{self, ReadOnlyChange, ReplaceStep, Wanted};
use super::{Context, Error, kube_ops, zfs};
use crate::pool_manager::zpool::{self, PoolStatus};
use crate::runner::{Output, RunError};

/// Requeue while a resilver runs (the only polling: nothing else tells us it finished).
const RESILVER_POLL: Duration = Duration::from_secs(2);
/// Import retries of a lost pool (its daemon or disks may come back any moment).
const LOST_POLL: Duration = Duration::from_secs(5);
/// Our condition for a failed create (the API lists none): False/`PoolCreationFailed`.
pub const POOL_CREATION: &str = "PoolCreation";
/// The pool's read-only flag, a dataset user property (zfs-fuse has no pool user properties).
pub const READONLY_PROPERTY: &str = "io.openebs:readonly";

use cstor_runtime::now;

/// The command's own words for a condition or event: stderr when it failed.
fn command_message(e: &RunError) -> String {
    match e {
        RunError::Failed { stderr, stdout, .. } if stderr.is_empty() => {
            decide::trim_message(stdout)
        }
        RunError::Failed { stderr, .. } => decide::trim_message(stderr),
        other => decide::trim_message(&other.to_string()),
    }
}

impl Context {
    async fn run(&self, argv: &[&str]) -> Result<Output, RunError> {
        let (program, args) = argv.split_first().unwrap_or((&"true", &[]));
        self.runner.run(program, args).await
    }

    async fn run_owned(&self, argv: &[String]) -> Result<Output, RunError> {
        let v: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.run(&v).await
    }

    fn cspis(&self) -> Api<CStorPoolInstance> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    fn bds(&self) -> Api<BlockDevice> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    fn bdcs(&self) -> Api<BlockDeviceClaim> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    async fn event(
        &self,
        r: &ObjectReference,
        t: EventType,
        reason: &str,
        note: impl Into<String>,
        action: &str,
    ) {
        cstor_runtime::events::publish(&self.recorder, r, t, reason, note, action).await;
    }

    async fn present(&self) -> bool {
        let argv = commands::presence(&self.pool);
        self.run_owned(&argv).await.is_ok()
    }

    async fn zpool_status(&self) -> Result<PoolStatus, Error> {
        let out = self.run(&["zpool", "status", &self.pool]).await?;
        Ok(zpool::parse_status(&out.stdout)?)
    }

    /// Applies `status` to our CSPI's status subresource when it differs from the live one.
    async fn write_status(
        &self,
        cspi: &CStorPoolInstance,
        status: &CStorPoolInstanceStatus,
    ) -> Result<(), Error> {
        if !decide::status_differs(cspi.status.as_ref(), status) {
            return Ok(());
        }
        let name = cspi.name_any();
        let body = kube_ops::status_apply_body(&name, &self.config.namespace, status);
        kube_ops::apply_status(&self.cspis(), &name, &self.manager, &body).await
    }
}

/// The controller's reconcile: only our CSPI (by UID) is acted on.
pub async fn reconcile(cspi: Arc<CStorPoolInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    if cspi.uid().as_deref() != Some(ctx.config.cspi_uid.as_str()) {
        return Ok(Action::await_change());
    }
    let name = cspi.name_any();
    // A fresh read: the reflector's copy may predate our own last patch.
    let Some(live) = ctx.cspis().get_opt(&name).await.step("get CSPI", &name)? else {
        return Ok(Action::await_change());
    };
    remember(&ctx, &live);
    let action = ctx
        .failures
        .reconcile("cspi", &name, reconcile_own(&live, &ctx))
        .await?;
    Ok(action)
}

fn remember(ctx: &Context, cspi: &CStorPoolInstance) {
    if let Ok(mut w) = ctx.watched.lock() {
        w.cspi = Some(kube::runtime::reflector::ObjectRef::from_obj(cspi));
        w.cspc = cspi
            .labels()
            .get(labels::CSTOR_POOL_CLUSTER)
            .cloned()
            .unwrap_or_default();
        w.bds = cspi.spec.block_device_names().map(String::from).collect();
    }
}

async fn reconcile_own(cspi: &CStorPoolInstance, ctx: &Context) -> Result<Action, Error> {
    let reference = cspi.object_ref(&());
    let resync = Action::requeue(ctx.config.resync);
    if cspi
        .annotations()
        .get(annotations::RECONCILE_DISABLE)
        .map(String::as_str)
        == Some("true")
    {
        // Reason and message swapped, as the Go operator has them.
        ctx.event(
            &reference,
            EventType::Warning,
            "reconcile is disabled via \"reconcile.openebs.io/disable\" annotation",
            reasons::SKIPPING_RECONCILE,
            reasons::action::RECONCILE,
        )
        .await;
        return Ok(resync);
    }
    if cspi.meta().deletion_timestamp.is_some() {
        destroy(cspi, ctx, &reference).await?;
        return Ok(Action::await_change());
    }
    if !cspi
        .finalizers()
        .iter()
        .any(|f| f == finalizers::POOL_PROTECTION)
    {
        let name = cspi.name_any();
        if let Err(e) = kube_ops::add_finalizer(
            &ctx.client,
            &ctx.cspis(),
            &name,
            finalizers::POOL_PROTECTION,
        )
        .await
        {
            ctx.event(
                &reference,
                EventType::Warning,
                "Failed to add openebs.io/pool-protection finalizer.",
                e.to_string(),
                reasons::action::RECONCILE,
            )
            .await;
            return Err(e);
        }
    }
    let cspis = ctx.cspis();
    let (recorder, manager) = (&ctx.recorder, &ctx.manager);
    let details = cspi.version_details.as_ref();
    if !crate::version::step(&cspis, recorder, manager, cspi, "CSPI", details).await? {
        return Ok(resync);
    }
    if let Err(e) = decide::validate(&cspi.spec) {
        ctx.event(
            &reference,
            EventType::Warning,
            reasons::VALIDATION_FAILED,
            e,
            reasons::action::RECONCILE,
        )
        .await;
        return Ok(resync);
    }
    let paths = spec_paths(cspi, ctx).await?;
    let generation = cspi.meta().generation;
    let live_phase = cspi
        .status
        .as_ref()
        .map(|s| s.phase.as_str())
        .unwrap_or_default();
    let mut conditions = cspi
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();

    // A CSPI made by a migration imports the old pool under our name and never creates one:
    // a failed import must never put an empty pool over the data (docs/migration.md).
    let existing = cspi
        .annotations()
        .get(annotations::EXISTING_POOL_NAME)
        .filter(|v| !v.is_empty())
        .cloned();
    let mut imported = import(cspi, ctx, &paths, &reference).await;
    let mut not_found = None;
    if !imported && let Some(old) = existing.as_deref() {
        match import_renamed(cspi, ctx, &paths, &reference, old).await {
            Ok(()) => imported = true,
            Err(why) => not_found = why,
        }
    }
    if !imported {
        let may_create = existing.is_none()
            && matches!(
                live_phase,
                phase::EMPTY | phase::PENDING | phase::INIT | phase::POOL_CREATION_FAILED
            );
        if let (Some(old), Some(why)) = (existing.as_deref(), not_found) {
            let wanted = Wanted::new(
                condition_type::POOL_LOST,
                ConditionStatus::True,
                cspi_reasons::POOL_NOT_FOUND,
                why.clone(),
            );
            if decide::set_condition(&mut conditions, wanted, generation, &now()) {
                ctx.event(
                    &reference,
                    EventType::Warning,
                    cspi_reasons::POOL_NOT_FOUND,
                    why,
                    reasons::action::IMPORT,
                )
                .await;
            }
            tracing::warn!(old, pool = %ctx.pool, "pool to import is not on this node's disks");
            let mut status = cspi.status.clone().unwrap_or_default();
            status.phase = phase::OFFLINE.into();
            status.conditions = conditions;
            ctx.write_status(cspi, &status).await?;
            return Ok(Action::requeue(LOST_POLL.min(ctx.config.resync)));
        }
        if !may_create {
            let already_lost = decide::condition(&conditions, condition_type::POOL_LOST)
                .is_some_and(|c| c.status == ConditionStatus::True)
                && live_phase == phase::OFFLINE;
            if !already_lost {
                ctx.event(
                &reference,
                EventType::Warning,
                reasons::FAILED_SYNC,
                "Failed to import the pool as the underlying pool might be lost or the disk(s) has gone bad",
                reasons::action::IMPORT,
            )
            .await;
            }
            let wanted = Wanted::new(
                condition_type::POOL_LOST,
                ConditionStatus::True,
                cspi_reasons::POOL_LOST,
                format!("failed to import{}pool", ctx.pool),
            );
            decide::set_condition(&mut conditions, wanted, generation, &now());
            let mut status = cspi.status.clone().unwrap_or_default();
            // Ours: the Go manager keeps the last phase (often ONLINE) here; a pool that cannot
            // be imported serves nothing, so placement and `cstor status` must not see ONLINE.
            status.phase = phase::OFFLINE.into();
            status.conditions = conditions;
            ctx.write_status(cspi, &status).await?;
            return Ok(Action::requeue(LOST_POLL.min(ctx.config.resync)));
        }
        if let Err(message) = create(cspi, ctx, &paths).await {
            ctx.event(
                &reference,
                EventType::Warning,
                reasons::FAIL_CREATE,
                format!("Failed to create pool due to '{message}'"),
                reasons::action::CREATE,
            )
            .await;
            let wanted = Wanted::new(
                POOL_CREATION,
                ConditionStatus::False,
                cspi_reasons::POOL_CREATION_FAILED,
                message.clone(),
            );
            decide::set_condition(&mut conditions, wanted, generation, &now());
            let mut status = cspi.status.clone().unwrap_or_default();
            status.phase = phase::POOL_CREATION_FAILED.into();
            status.conditions = conditions;
            ctx.write_status(cspi, &status).await?;
            return Err(Error::Create {
                pool: ctx.pool.clone(),
                message,
            });
        }
        ctx.event(
            &reference,
            EventType::Normal,
            reasons::CREATED,
            reasons::POOL_CREATED_SUCCESSFULLY,
            reasons::action::CREATE,
        )
        .await;
        if decide::condition(&conditions, POOL_CREATION).is_some() {
            let wanted = Wanted::new(
                POOL_CREATION,
                ConditionStatus::True,
                cspi_reasons::POOL_CREATED,
                "Pool created successfully",
            );
            decide::set_condition(&mut conditions, wanted, generation, &now());
        }
    } else if decide::condition(&conditions, condition_type::POOL_LOST)
        .is_some_and(|c| c.status == ConditionStatus::True)
    {
        let wanted = Wanted::new(
            condition_type::POOL_LOST,
            ConditionStatus::False,
            cspi_reasons::POOL_IMPORTED,
            format!("Pool {} is imported", ctx.pool),
        );
        decide::set_condition(&mut conditions, wanted, generation, &now());
    }

    let mut errors = Vec::new();
    let resilvering = match update(cspi, ctx, &paths, &mut conditions, &reference).await {
        Ok(r) => r,
        Err(e) => {
            ctx.event(
                &reference,
                EventType::Warning,
                reasons::FAILED_SYNC,
                e.to_string(),
                reasons::action::UPDATE,
            )
            .await;
            errors.push(e.to_string());
            false
        }
    };
    update_status(cspi, ctx, &paths, conditions, &reference).await?;
    if let Err(e) = sync_properties(cspi, ctx).await {
        ctx.event(
            &reference,
            EventType::Warning,
            reasons::POOL_PROPERTIES_FAILED,
            format!("Failed to set pool properties: {e}"),
            reasons::action::PROPERTIES,
        )
        .await;
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(Error::Update {
            pool: ctx.pool.clone(),
            message: errors.join("; "),
        });
    }
    Ok(if resilvering {
        Action::requeue(RESILVER_POLL)
    } else {
        resync
    })
}

/// Paths of every BD in the spec (missing BDs are absent from the map).
async fn spec_paths(
    cspi: &CStorPoolInstance,
    ctx: &Context,
) -> Result<HashMap<String, Vec<String>>, Error> {
    let mut out = HashMap::new();
    for (_, _, group) in decide::spec_groups(&cspi.spec) {
        for bd in &group.block_devices {
            if out.contains_key(&bd.block_device_name) {
                continue;
            }
            match bd_paths(ctx, &bd.block_device_name).await? {
                Some(p) => {
                    out.insert(bd.block_device_name.clone(), p);
                }
                None => tracing::warn!(bd = %bd.block_device_name, "BlockDevice not found"),
            }
        }
    }
    Ok(out)
}

/// The checked paths of BlockDevice `name`; None when it is missing or its paths are refused
/// (logged with the reason: such a disk never reaches `zpool`).
async fn bd_paths(ctx: &Context, name: &str) -> Result<Option<Vec<String>>, Error> {
    let bd = ctx
        .bds()
        .get_opt(name)
        .await
        .step("get BlockDevice", name)?;
    Ok(bd.and_then(|bd| {
        match decide::checked_paths(&bd, &ctx.config.node, &ctx.config.disk_dirs) {
            Ok(paths) => Some(paths),
            Err(why) => {
                tracing::warn!(bd = %name, %why, "BlockDevice refused");
                None
            }
        }
    }))
}

/// The first BD path of the first data group (the `-d` scan directory comes from it).
fn first_path(cspi: &CStorPoolInstance, paths: &HashMap<String, Vec<String>>) -> Option<String> {
    let bd = cspi.spec.data_raid_groups.first()?.block_devices.first()?;
    paths.get(&bd.block_device_name)?.first().cloned()
}

/// Import, as in the Go operators: present → imported; else cachefile import; else a `-d` scan import.
async fn import(
    cspi: &CStorPoolInstance,
    ctx: &Context,
    paths: &HashMap<String, Vec<String>>,
    reference: &ObjectReference,
) -> bool {
    if ctx.present().await {
        return true;
    }
    let cache = ctx.config.cache_file.to_string_lossy().into_owned();
    let cache_opt = format!("cachefile={cache}");
    let mut imported = false;
    if ctx.config.cache_file.exists() {
        match ctx
            .run(&["zpool", "import", "-o", &cache_opt, "-c", &cache, &ctx.pool])
            .await
        {
            Ok(_) => imported = true,
            Err(e) => tracing::info!(error = %e, "cache-file import failed; scanning"),
        }
    }
    if !imported {
        let mut argv = vec!["zpool", "import", "-o", &cache_opt];
        let dir = first_path(cspi, paths).and_then(|p| decide::import_dir(&p));
        if let Some(dir) = dir.as_deref() {
            argv.extend(["-d", dir]);
        }
        argv.push(&ctx.pool);
        match ctx.run(&argv).await {
            Ok(_) => imported = true,
            Err(e) => tracing::info!(error = %e, "scan import failed"),
        }
    }
    if imported {
        ctx.event(
            reference,
            EventType::Normal,
            reasons::POOL_IMPORTED,
            format!("Pool Import successful: {}", ctx.pool),
            reasons::action::IMPORT,
        )
        .await;
    }
    imported
}

/// The `zpool import [-d DIR]` listing of importable pools (its words whether it succeeded or
/// not: an empty listing exits 1); `None` when the command did not run to an answer.
async fn importable_listing(ctx: &Context, dir: Option<&str>) -> Option<String> {
    let listing = match dir {
        Some(dir) => ctx.run(&["zpool", "import", "-d", dir]).await,
        None => ctx.run(&["zpool", "import"]).await,
    };
    match listing {
        Ok(o) => Some(format!("{}{}", o.stdout, o.stderr)),
        Err(RunError::Failed { stdout, stderr, .. }) => Some(format!("{stdout}{stderr}")),
        Err(_) => None,
    }
}

/// Imports `old` (a migrated pool) as our pool. An `old` imported in this daemon (the local
/// stack's shared zfs-fuse; the migration has already stopped its pool pod) is exported first.
/// `Err(Some(why))` when no disk of this node holds `old`; `Err(None)` on any other failure
/// (retried: the daemon may be restarting).
async fn import_renamed(
    cspi: &CStorPoolInstance,
    ctx: &Context,
    paths: &HashMap<String, Vec<String>>,
    reference: &ObjectReference,
    old: &str,
) -> Result<(), Option<String>> {
    if ctx.run_owned(&commands::presence(old)).await.is_ok()
        && let Err(e) = ctx.run(&["zpool", "export", old]).await
    {
        tracing::warn!(error = %e, old, "could not export the old pool before its rename");
        return Err(None);
    }
    let cache = ctx.config.cache_file.to_string_lossy().into_owned();
    let cache_opt = format!("cachefile={cache}");
    let dir = first_path(cspi, paths).and_then(|p| decide::import_dir(&p));
    let mut argv = vec!["zpool", "import", "-o", &cache_opt];
    if let Some(dir) = dir.as_deref() {
        argv.extend(["-d", dir]);
    }
    argv.extend([old, ctx.pool.as_str()]);
    match ctx.run(&argv).await {
        Ok(_) => {
            ctx.event(
                reference,
                EventType::Normal,
                reasons::POOL_IMPORTED,
                format!("Pool Import successful: {old} imported as {}", ctx.pool),
                reasons::action::IMPORT,
            )
            .await;
            Ok(())
        }
        Err(e) => {
            tracing::info!(error = %e, old, "rename import failed");
            // No listing, no verdict: retry.
            let Some(text) = importable_listing(ctx, dir.as_deref()).await else {
                return Err(None);
            };
            if zfs::listing_has_pool(&text, old) {
                Err(None)
            } else {
                Err(Some(format!(
                    "pool {old} to import as {} is not on the disks of this node: {}",
                    ctx.pool,
                    command_message(&e)
                )))
            }
        }
    }
}

/// Create, as in the Go operators: refuse when the pool is importable, then create + adds in spec order; on a
/// failed add, destroy what was made. Err is the message for the condition and event.
async fn create(
    cspi: &CStorPoolInstance,
    ctx: &Context,
    paths: &HashMap<String, Vec<String>>,
) -> Result<(), String> {
    let dir = first_path(cspi, paths).and_then(|p| decide::import_dir(&p));
    let text = importable_listing(ctx, dir.as_deref())
        .await
        .unwrap_or_default();
    if zfs::listing_has_pool(&text, &ctx.pool) {
        return Err(decide::trim_message(&format!(
            "Pool {{{}}} is in faulty state.. {}",
            ctx.pool, text
        )));
    }
    let path_of = |bd: &str| paths.get(bd).and_then(|p| p.first().cloned());
    let mut commands = commands::create(&cspi.spec, &ctx.pool, ctx.config.dialect, &path_of)
        .map_err(|e| e.to_string())?;
    // pool_commands writes the in-cluster cache path; ours is configurable (local runs).
    let cache_opt = format!("cachefile={}", ctx.config.cache_file.to_string_lossy());
    for cmd in &mut commands {
        for arg in cmd.iter_mut().filter(|a| a.starts_with("cachefile=")) {
            *arg = cache_opt.clone();
        }
    }
    let mut made = false;
    for argv in &commands {
        if let Err(e) = ctx.run_owned(argv).await {
            let message = command_message(&e);
            if made {
                let all: Vec<String> = paths.values().filter_map(|p| p.first().cloned()).collect();
                destroy_pool(ctx, &all).await.unwrap_or_else(|d| {
                    tracing::warn!(error = %d, "could not destroy the half-made pool");
                });
            }
            return Err(message);
        }
        made = true;
    }
    Ok(())
}

/// `zpool destroy` then, on uZFS, `zpool labelclear -f` of each disk (zfs-fuse has no
/// labelclear).
async fn destroy_pool(ctx: &Context, disks: &[String]) -> Result<(), String> {
    ctx.run(&["zpool", "destroy", &ctx.pool])
        .await
        .map_err(|e| command_message(&e))?;
    match ctx.config.dialect {
        Dialect::ZfsFuse => {
            if !ctx.labelclear_logged.swap(true, Ordering::Relaxed) {
                tracing::info!("zfs-fuse has no `zpool labelclear`; disk labels are left in place");
            }
        }
        Dialect::Uzfs => {
            for disk in disks {
                if let Err(e) = ctx.run(&["zpool", "labelclear", "-f", disk]).await {
                    tracing::warn!(%disk, error = %e, "labelclear failed");
                }
            }
        }
    }
    Ok(())
}

/// Why the pool must not be destroyed now (volume datasets on it, CVRs naming its CSPI), read
/// live; a listing that fails blocks too.
async fn destroy_blocker(ctx: &Context, cspi: &str) -> Result<Option<String>, Error> {
    let columns = format!("name,{}", super::replica::decide::REPLICA_ID_PROPERTY);
    let listing = match ctx
        .run(&["zfs", "list", "-H", "-o", &columns, "-r", &ctx.pool])
        .await
    {
        Ok(out) => out.stdout,
        Err(e) => {
            return Ok(Some(format!(
                "pool {} is not destroyed: its datasets could not be listed ({})",
                ctx.pool,
                command_message(&e)
            )));
        }
    };
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    let lp =
        ListParams::default().labels(&format!("{}={cspi}", cstor_api::keys::labels::CSPI_NAME));
    let mut names: Vec<String> = cvrs
        .list_metadata(&lp)
        .await
        .step("list CVRs on pool", cspi)?
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    names.sort();
    Ok(decide::destroy_blocked(&listing, &ctx.pool, &names))
}

/// As in the Go operators: destroy the pool, then release `openebs.io/pool-protection`.
async fn destroy(
    cspi: &CStorPoolInstance,
    ctx: &Context,
    reference: &ObjectReference,
) -> Result<(), Error> {
    if !cspi
        .finalizers()
        .iter()
        .any(|f| f == finalizers::POOL_PROTECTION)
    {
        return Ok(());
    }
    let name = cspi.name_any();
    let mut failure = None;
    if ctx.present().await {
        // Re-checked live right before acting: whatever admitted this delete may have been
        // behind a replica placed just before.
        if let Some(why) = destroy_blocker(ctx, &name).await? {
            ctx.event(
                reference,
                EventType::Warning,
                reasons::DELETION_BLOCKED,
                why.clone(),
                reasons::action::DESTROY,
            )
            .await;
            let mut status = cspi.status.clone().unwrap_or_default();
            status.phase = phase::DELETION_FAILED.into();
            ctx.write_status(cspi, &status).await?;
            return Err(Error::Destroy {
                pool: ctx.pool.clone(),
                message: why,
            });
        }
        let paths = spec_paths(cspi, ctx).await?;
        let disks: Vec<String> = paths.values().filter_map(|p| p.first().cloned()).collect();
        if let Err(message) = destroy_pool(ctx, &disks).await {
            ctx.event(
                reference,
                EventType::Warning,
                reasons::FAIL_DESTROY,
                format!("Failed to delete pool due to '{message}'"),
                reasons::action::DESTROY,
            )
            .await;
            failure = Some(message);
        }
    }
    if failure.is_none()
        && let Err(e) = kube_ops::remove_finalizer(
            &ctx.client,
            &ctx.cspis(),
            &name,
            finalizers::POOL_PROTECTION,
        )
        .await
    {
        failure = Some(e.to_string());
    }
    match failure {
        None => {
            tracing::info!(pool = %ctx.pool, cspi = %name, "Pool deleted successfully");
            Ok(())
        }
        Some(message) => {
            let mut status = cspi.status.clone().unwrap_or_default();
            status.phase = phase::DELETION_FAILED.into();
            ctx.write_status(cspi, &status).await?;
            Err(Error::Destroy {
                pool: ctx.pool.clone(),
                message,
            })
        }
    }
}

/// As in the Go operators: replacements, then expansion. Returns whether a resilver is running.
/// Reads the claims and the topology, lets [`decide`] choose each step and each condition, and
/// only runs what it chose.
async fn update(
    cspi: &CStorPoolInstance,
    ctx: &Context,
    paths: &HashMap<String, Vec<String>>,
    conditions: &mut Vec<PoolCondition>,
    reference: &ObjectReference,
) -> Result<bool, Error> {
    let generation = cspi.meta().generation;
    let cspc = cspi
        .labels()
        .get(labels::CSTOR_POOL_CLUSTER)
        .cloned()
        .unwrap_or_default();
    let claims = ctx
        .bdcs()
        .list(&ListParams::default().labels(&format!("{}={cspc}", labels::CSTOR_POOL_CLUSTER)))
        .await
        .step("list BlockDeviceClaims of CSPC", &cspc)?
        .items;
    let status = ctx.zpool_status().await?;

    let (wanted, mut errors) = decide::replacements(&cspi.spec, &claims);
    let replaced = replace_disks(ctx, &status, &claims, paths, &wanted, reference).await;
    errors.extend(replaced.errors);
    if let Some(c) =
        decide::replacement_condition(wanted.len(), replaced.in_progress, &errors, conditions)
    {
        decide::set_condition(conditions, c, generation, &now());
    }

    // Expansion against the topology as it is now.
    let status = if replaced.topology_changed {
        ctx.zpool_status().await?
    } else {
        status
    };
    let additions = decide::expansions(&status, &decide::spec_disks(&cspi.spec, paths, &claims));
    let expansion_errors = expand(ctx, &additions, reference).await;
    if let Some(c) = decide::expansion_condition(additions.len(), &expansion_errors, conditions) {
        decide::set_condition(conditions, c, generation, &now());
    }
    errors.extend(expansion_errors);
    if errors.is_empty() {
        Ok(replaced.resilvering)
    } else {
        Err(Error::Update {
            pool: ctx.pool.clone(),
            message: errors.join("; "),
        })
    }
}

/// What a pass over the replacements did.
#[derive(Default)]
struct Replaced {
    /// Replacements not finished (resilvering, just started, or failed).
    in_progress: usize,
    resilvering: bool,
    /// A `zpool replace` ran: the topology must be read again.
    topology_changed: bool,
    errors: Vec<String>,
}

/// Takes the next step of each replacement `(new, old)`: `zpool replace`, wait for the
/// resilver, or clean up the claims once it is done.
async fn replace_disks(
    ctx: &Context,
    status: &PoolStatus,
    claims: &[BlockDeviceClaim],
    paths: &HashMap<String, Vec<String>>,
    wanted: &[(String, String)],
    reference: &ObjectReference,
) -> Replaced {
    let mut out = Replaced {
        in_progress: wanted.len(),
        ..Replaced::default()
    };
    for (new_bd, old_bd) in wanted {
        let new_paths = paths.get(new_bd).cloned().unwrap_or_default();
        let old_paths = match bd_paths(ctx, old_bd).await {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                out.errors.push(e.to_string());
                continue;
            }
        };
        match decide::replace_step(status, &old_paths, &new_paths) {
            ReplaceStep::Replace { old, new } => {
                if let Err(e) = ctx.run(&["zpool", "replace", &ctx.pool, &old, &new]).await {
                    out.errors.push(command_message(&e));
                    continue;
                }
                out.topology_changed = true;
                out.resilvering = true;
                ctx.event(
                    reference,
                    EventType::Normal,
                    reasons::BLOCK_DEVICE_REPLACEMENT,
                    format!("Replacement of {old_bd} BlockDevice with {new_bd} BlockDevice is in-Progress"),
                    reasons::action::REPLACE,
                )
                .await;
            }
            ReplaceStep::Resilvering => out.resilvering = true,
            ReplaceStep::Done => {
                let Some(claim) = claims.iter().find(|c| &c.spec.block_device_name == new_bd)
                else {
                    continue;
                };
                if let Err(e) = clean_up_replacement(ctx, claims, old_bd, claim).await {
                    out.errors.push(e.to_string());
                    continue;
                }
                out.in_progress -= 1;
                ctx.event(
                    reference,
                    EventType::Normal,
                    reasons::BLOCK_DEVICE_REPLACEMENT,
                    format!("Resilvering is successfull on BlockDevice {new_bd}"),
                    reasons::action::REPLACE,
                )
                .await;
            }
            ReplaceStep::Error(e) => out
                .errors
                .push(format!("replace {old_bd} with {new_bd}: {e}")),
        }
    }
    out
}

/// Runs each `zpool add`, with an Event each; returns the failures.
async fn expand(
    ctx: &Context,
    additions: &[decide::Addition],
    reference: &ObjectReference,
) -> Vec<String> {
    let mut errors = Vec::new();
    for addition in additions {
        match ctx.run_owned(&addition.argv(&ctx.pool)).await {
            Ok(_) => {
                ctx.event(
                    reference,
                    EventType::Normal,
                    reasons::POOL_EXPANSION,
                    addition.message(),
                    reasons::action::EXPAND,
                )
                .await;
            }
            Err(e) => {
                let message = command_message(&e);
                ctx.event(
                    reference,
                    EventType::Warning,
                    reasons::POOL_EXPANSION,
                    format!("Failed to expand pool... Error: {message}"),
                    reasons::action::EXPAND,
                )
                .await;
                errors.push(message);
            }
        }
    }
    errors
}

/// After a finished resilver: release and delete the old disk's claim, drop the predecessor
/// annotation from the new one.
async fn clean_up_replacement(
    ctx: &Context,
    claims: &[BlockDeviceClaim],
    old_bd: &str,
    new_claim: &BlockDeviceClaim,
) -> Result<(), Error> {
    let api = ctx.bdcs();
    if let Some(old) = claims.iter().find(|c| c.spec.block_device_name == old_bd) {
        let name = old.name_any();
        kube_ops::remove_finalizer(&ctx.client, &api, &name, finalizers::CSPC).await?;
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if cstor_runtime::errors::is_not_found(&e) => {}
            Err(e) => return Err(ApiError::new("delete BlockDeviceClaim", &name, e).into()),
        }
    }
    kube_ops::remove_annotation(
        &ctx.client,
        &api,
        &new_claim.name_any(),
        annotations::BD_PREDECESSOR,
    )
    .await
}

/// As in the Go operators, with our sources: health and disk states from `zpool status`, exact bytes from
/// `zfs get -Hp`, the read-only flag as a dataset user property.
async fn update_status(
    cspi: &CStorPoolInstance,
    ctx: &Context,
    paths: &HashMap<String, Vec<String>>,
    mut conditions: Vec<PoolCondition>,
    reference: &ObjectReference,
) -> Result<(), Error> {
    let generation = cspi.meta().generation;
    let previous = cspi.status.as_ref();
    let pool = ctx.pool.as_str();
    let status = ctx.zpool_status().await?;

    // A suspended pool answers `zpool status` but not `zfs get`: keep the last capacity then.
    let used_available = match ctx
        .run(&["zfs", "get", "-Hp", "-o", "value", "used,available", pool])
        .await
    {
        Ok(out) => match zfs::parse_used_available(&out.stdout) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "capacity not read");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "capacity not read");
            None
        }
    };
    // The pool's read-only state as last recorded: the status, else (first pass) the
    // property. The property only mirrors it for uZFS; setting it can fail on a pool at its
    // headroom, which must not keep the pool from being reported read-only.
    let property_on = match ctx
        .run(&["zfs", "get", "-H", "-o", "value", READONLY_PROPERTY, pool])
        .await
    {
        Ok(out) => Some(zfs::parse_value(&out.stdout).as_deref() == Some("on")),
        Err(e) => {
            tracing::warn!(error = %e, "read-only flag not read");
            None
        }
    };
    let mut read_only = previous
        .map(|p| p.read_only)
        .or(property_on)
        .unwrap_or(false);
    let limit = cspi
        .spec
        .pool_config
        .as_ref()
        .and_then(|c| c.ro_threshold_limit);
    // What the data uses and the pool holds, the headroom's reservation taken out of "used".
    let usage = match used_available {
        Some((used, available)) => {
            let headroom = keep_headroom(ctx, limit, used, available).await;
            Some((
                used.saturating_sub(headroom),
                used.saturating_add(available),
                available,
            ))
        }
        None => None,
    };
    if let Some((data_used, total, left)) = usage {
        match decide::read_only(limit, data_used, total, left, read_only) {
            ReadOnlyChange::SetOn => {
                read_only = true;
                ctx.event(
                    reference,
                    EventType::Warning,
                    reasons::POOL_READ_ONLY_THRESHOLD,
                    "Pool storage limit reached to read only threshold limit. Pool expansion is required to make its volume replicas RW",
                    reasons::action::READ_ONLY,
                )
                .await;
            }
            ReadOnlyChange::SetOff => {
                read_only = false;
                ctx.event(
                    reference,
                    EventType::Normal,
                    reasons::POOL_READ_ONLY_THRESHOLD,
                    "Pool roThresholdLimit or pool got expanded due to that pool readOnly mode is unset",
                    reasons::action::READ_ONLY,
                )
                .await;
            }
            ReadOnlyChange::None => {}
        }
    }
    if property_on.is_some_and(|on| on != read_only) {
        let value = if read_only { "on" } else { "off" };
        if let Err(e) = ctx
            .run(&["zfs", "set", &format!("{READONLY_PROPERTY}={value}"), pool])
            .await
        {
            tracing::warn!(error = %e, value, "read-only property not mirrored; tried again next pass");
        }
    }
    let (provisioned, healthy) = replica_counts(ctx, previous).await;

    let bds: Vec<(String, Vec<String>)> = decide::spec_groups(&cspi.spec)
        .iter()
        .flat_map(|(_, _, g)| g.block_devices.iter())
        .map(|b| {
            (
                b.block_device_name.clone(),
                paths.get(&b.block_device_name).cloned().unwrap_or_default(),
            )
        })
        .collect();
    let unavailable = decide::unavailable_disks(&status, &bds);
    let existed = decide::condition(&conditions, condition_type::DISK_UNAVAILABLE).is_some();
    if let Some(wanted) = decide::disk_unavailable_condition(&unavailable, existed)
        && decide::set_condition(&mut conditions, wanted, generation, &now())
    {
        for (bd, state) in &unavailable {
            ctx.event(
                reference,
                EventType::Warning,
                reasons::DEVICE_STATE,
                format!("{bd} device was in {state} state"),
                reasons::action::STATUS,
            )
            .await;
        }
    }
    if let Some((data_used, total, _)) = usage
        && let Some(c) =
            decide::read_only_condition(read_only, data_used, total, limit, &conditions)
    {
        decide::set_condition(&mut conditions, c, generation, &now());
    }
    let live_phase = previous.map(|p| p.phase.as_str()).unwrap_or_default();
    if matches!(
        status.state.as_str(),
        phase::DEGRADED | phase::FAULTED | phase::UNAVAIL
    ) && live_phase != status.state
    {
        ctx.event(
            reference,
            EventType::Warning,
            reasons::POOL_STATE,
            format!("Pool {pool} is {}: {}", status.state, status.status),
            reasons::action::STATUS,
        )
        .await;
    }
    let mut new = decide::build_status(
        &status.state,
        usage.map(|(data_used, total, _)| decide::capacity(data_used, total - data_used)),
        previous,
        read_only,
        provisioned,
        conditions,
    );
    new.healthy_replicas = healthy;
    ctx.write_status(cspi, &new).await
}

/// Keeps the headroom dataset's reservation at `(100 - roThresholdLimit)` % of the pool, so
/// ZFS itself refuses writers at the threshold; returns the reservation in effect (0 when it
/// cannot be read: the pool is then judged on its raw usage).
async fn keep_headroom(ctx: &Context, limit: Option<i32>, used: u64, available: u64) -> u64 {
    let dataset = format!("{}/{}", ctx.pool, decide::HEADROOM_DATASET);
    let current = match ctx
        .run(&["zfs", "get", "-Hp", "-o", "value", "reservation", &dataset])
        .await
    {
        Ok(out) => zfs::parse_value(&out.stdout).and_then(|v| v.parse::<u64>().ok()),
        Err(e) if e.to_string().contains("dataset does not exist") => None,
        Err(e) => {
            tracing::warn!(error = %e, "headroom not read");
            return 0;
        }
    };
    let total = used.saturating_add(available);
    let want = decide::headroom_bytes(limit, total);
    let (argv, now): (Vec<String>, u64) =
        match decide::headroom_step(current, want, total, available) {
            decide::HeadroomStep::None => return current.unwrap_or(0),
            decide::HeadroomStep::Create(bytes) => (
                [
                    "zfs",
                    "create",
                    "-o",
                    &format!("reservation={bytes}"),
                    "-o",
                    "canmount=off",
                    "-o",
                    "mountpoint=none",
                    &dataset,
                ]
                .map(String::from)
                .to_vec(),
                bytes,
            ),
            decide::HeadroomStep::Set(bytes) => (
                ["zfs", "set", &format!("reservation={bytes}"), &dataset]
                    .map(String::from)
                    .to_vec(),
                bytes,
            ),
        };
    match ctx.run_owned(&argv).await {
        Ok(_) => {
            tracing::info!(pool = %ctx.pool, bytes = now, "headroom reservation set");
            now
        }
        Err(e) => {
            tracing::warn!(error = %e, "headroom not set");
            current.unwrap_or(0)
        }
    }
}

/// `provisionedReplicas` / `healthyReplicas`: our CVRs that have a dataset, and of those the
/// Healthy ones. Without the CVR list, the datasets are counted; the last values are kept
/// when nothing can be read.
async fn replica_counts(ctx: &Context, previous: Option<&CStorPoolInstanceStatus>) -> (i32, i32) {
    let pool = ctx.pool.as_str();
    let last = (
        previous.map(|p| p.provisioned_replicas).unwrap_or_default(),
        previous.map(|p| p.healthy_replicas).unwrap_or_default(),
    );
    let listing = match ctx.run(&["zfs", "list", "-H", "-o", "name"]).await {
        Ok(out) => out.stdout,
        Err(e) => {
            tracing::warn!(error = %e, "datasets not listed");
            return last;
        }
    };
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
    let selector = super::replica::selector(&ctx.config.cspi_uid);
    match cvrs.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => super::replica::decide::replica_counts(&list.items, &listing, pool),
        Err(e) => {
            tracing::warn!(error = %e, "replicas not listed");
            (zfs::count_replicas(&listing, pool), last.1)
        }
    }
}

/// As in the Go operators: `canmount=off` and the (dialect-mapped) compression on the pool dataset.
async fn sync_properties(cspi: &CStorPoolInstance, ctx: &Context) -> Result<(), String> {
    let compression = commands::compression(cspi.spec.pool_config.as_ref(), ctx.config.dialect)
        .map_err(|e| e.to_string())?;
    let pool = ctx.pool.as_str();
    let mut errors = Vec::new();
    for (prop, want) in [
        ("canmount", "off".to_string()),
        ("compression", compression),
    ] {
        let cached = ctx
            .properties
            .lock()
            .ok()
            .and_then(|c| c.get(prop).cloned());
        if cached.as_deref() == Some(want.as_str()) {
            continue;
        }
        let live = match ctx
            .run(&["zfs", "get", "-H", "-o", "value", prop, pool])
            .await
        {
            Ok(out) => zfs::parse_value(&out.stdout),
            Err(e) => {
                errors.push(command_message(&e));
                continue;
            }
        };
        if live.as_deref() != Some(want.as_str()) {
            // zfs-fuse's `zfs set` takes one property at a time.
            if let Err(e) = ctx
                .run(&["zfs", "set", &format!("{prop}={want}"), pool])
                .await
            {
                errors.push(command_message(&e));
                continue;
            }
        }
        if let Ok(mut c) = ctx.properties.lock() {
            c.insert(prop.to_string(), want);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// At shutdown: phase OFFLINE unless the CSPI never had a pool ("" or Pending).
pub async fn mark_offline(ctx: &Context) -> Result<(), Error> {
    let list = ctx
        .cspis()
        .list(&ListParams::default())
        .await
        .step("list CSPIs", "(all)")?;
    let Some(cspi) = list
        .items
        .into_iter()
        .find(|c| c.uid().as_deref() == Some(ctx.config.cspi_uid.as_str()))
    else {
        return Ok(());
    };
    let mut status = cspi.status.clone().unwrap_or_default();
    if matches!(status.phase.as_str(), phase::EMPTY | phase::PENDING) {
        return Ok(());
    }
    status.phase = phase::OFFLINE.into();
    tracing::info!(cspi = %cspi.name_any(), "shutting down: phase OFFLINE");
    ctx.write_status(&cspi, &status).await
}
