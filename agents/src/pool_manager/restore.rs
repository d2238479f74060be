//! The pool-manager's restore controller (docs/backup-restore.md, "Restores"): for each
//! CStorRestore labelled with our CSPI's UID, the stream the velero-plugin serves at
//! `spec.restoreSrc` is received with `zfs recv -F <pool>/<volume>`, up to ten tries. Only
//! into a replica that awaits a restore (`isRestoreVol`, a new volume the target does not use
//! yet): a restore never overwrites a volume in use.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cstor_api::cstor_v1::backup::{CStorRestore, restore_status as st};
use cstor_api::cstor_v1::cvr::CStorVolumeReplica;
use cstor_api::keys::labels;
use futures::StreamExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::Context as PoolContext;
use super::backup::{RETRY_PAUSE, TRIES};
use super::replica::decide::dataset_name;

const IDLE: Duration = Duration::from_secs(60);
/// CStorRestore: when its receive finished (RFC 3339), for [`settled`].
pub const FINISHED_ANNOTATION: &str = "cstor.openebs.io/restore-finished";
/// A restored replica with no `restore-completed` mark goes to the target once its volume's
/// restores on this pool have all finished, the last this long ago: the plugin posts the next
/// restore of a chain within seconds of seeing one Done (docs/backup-restore.md).
pub const SETTLE: Duration = Duration::from_secs(30);

/// Whether the restores of one replica (`restores`: its volume's on its pool) are over, so the
/// replica can be handed to the target without the plugin's mark: at least one Done, none
/// still to run or running, and the last finished `settle` ago or more.
pub fn settled(
    restores: &[CStorRestore],
    now: k8s_openapi::jiff::Timestamp,
    settle: Duration,
) -> bool {
    let running = restores.iter().any(|r| {
        matches!(
            r.status.as_str(),
            st::EMPTY | st::PENDING | st::INIT | st::IN_PROGRESS
        )
    });
    if running {
        return false;
    }
    let finished: Vec<Option<k8s_openapi::jiff::Timestamp>> = restores
        .iter()
        .filter(|r| r.status == st::DONE)
        .map(|r| {
            r.annotations()
                .get(FINISHED_ANNOTATION)
                .and_then(|t| t.parse().ok())
        })
        .collect();
    if finished.is_empty() || finished.iter().any(Option::is_none) {
        return false;
    }
    let Some(last) = finished.into_iter().flatten().max() else {
        return false;
    };
    let Ok(settle) = k8s_openapi::jiff::SignedDuration::try_from(settle) else {
        return false;
    };
    now.duration_since(last) >= settle
}
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do with a CStorRestore in `status`; `running`: its transfer runs in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Nothing,
    Init,
    Start,
    /// InProgress with no transfer here: the pool-manager restarted mid-stream; a partial
    /// receive is not a restore, so it failed (the plugin's next try makes a new one).
    Abandoned,
}

pub fn step(status: &str, running: bool) -> Step {
    match status {
        st::DONE | st::FAILED | st::INVALID => Step::Nothing,
        st::EMPTY | st::PENDING => Step::Init,
        st::INIT if !running => Step::Start,
        st::IN_PROGRESS if !running => Step::Abandoned,
        _ => Step::Nothing,
    }
}

/// `zfs recv -F DATASET`.
pub fn recv_argv(dataset: &str) -> Vec<String> {
    vec!["recv".into(), "-F".into(), dataset.to_string()]
}

struct Ctx {
    base: Arc<PoolContext>,
    running: Mutex<HashSet<String>>,
}

fn key(r: &CStorRestore) -> String {
    format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any())
}

/// Runs the controller until `stop` turns true.
pub async fn run(base: Arc<PoolContext>, stop: tokio::sync::watch::Receiver<bool>) {
    let restores: Api<CStorRestore> = Api::all(base.client.clone());
    let selector = format!("{}={}", labels::CSPI_UID, base.config.cspi_uid);
    let ctx = Arc::new(Ctx {
        base,
        running: Mutex::new(HashSet::new()),
    });
    let mut stopper = stop.clone();
    Controller::new(restores, watcher::Config::default().labels(&selector))
        .graceful_shutdown_on(async move {
            let _ = stopper.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "restore controller");
            }
        })
        .await;
}

fn error_policy(_r: Arc<CStorRestore>, e: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "restore reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

fn api(ctx: &Ctx, ns: &str) -> Api<CStorRestore> {
    Api::namespaced(ctx.base.client.clone(), ns)
}

async fn set_status(ctx: &Ctx, r: &CStorRestore, status: &str) -> Result<(), kube::Error> {
    api(ctx, &r.namespace().unwrap_or_default())
        .patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .map(|_| ())
}

async fn event(ctx: &Ctx, r: &CStorRestore, t: EventType, reason: &str, note: String) {
    cstor_runtime::events::publish(
        &ctx.base.recorder,
        &r.object_ref(&()),
        t,
        reason,
        note,
        "Restore",
    )
    .await;
}

async fn reconcile(r: Arc<CStorRestore>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let ns = r.namespace().unwrap_or_default();
    let Some(live) = api(&ctx, &ns).get_opt(&r.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if live.labels().get(labels::CSPI_UID).map(String::as_str)
        != Some(ctx.base.config.cspi_uid.as_str())
    {
        return Ok(Action::await_change());
    }
    let running = ctx
        .running
        .lock()
        .map(|s| s.contains(&key(&live)))
        .unwrap_or(false);
    match step(&live.status, running) {
        Step::Nothing => Ok(Action::await_change()),
        Step::Init => {
            set_status(&ctx, &live, st::INIT).await?;
            Ok(Action::requeue(Duration::ZERO))
        }
        Step::Start => {
            set_status(&ctx, &live, st::IN_PROGRESS).await?;
            if let Ok(mut s) = ctx.running.lock() {
                s.insert(key(&live));
            }
            let task_ctx = ctx.clone();
            let restore = live.clone();
            tokio::spawn(async move {
                transfer(&task_ctx, &restore).await;
                if let Ok(mut s) = task_ctx.running.lock() {
                    s.remove(&key(&restore));
                }
            });
            Ok(Action::await_change())
        }
        Step::Abandoned => {
            set_status(&ctx, &live, st::FAILED).await?;
            event(
                &ctx,
                &live,
                EventType::Warning,
                "FailCreate",
                format!(
                    "restore {} was receiving when the pool-manager restarted; a partial receive is not a restore",
                    live.spec.restore_name
                ),
            )
            .await;
            Ok(Action::await_change())
        }
    }
}

/// Our replica of the restore's volume, if it awaits a restore.
async fn restorable_replica(ctx: &Ctx, volume: &str) -> Result<(), String> {
    let cvrs: Api<CStorVolumeReplica> =
        Api::namespaced(ctx.base.client.clone(), &ctx.base.config.namespace);
    let lp = ListParams::default().labels(&format!(
        "{}={},{}={volume}",
        labels::CSPI_UID,
        ctx.base.config.cspi_uid,
        labels::PERSISTENT_VOLUME
    ));
    let list = cvrs.list(&lp).await.map_err(|e| e.to_string())?.items;
    match list.first() {
        None => Err(format!("no replica of volume {volume} on this pool")),
        Some(c) if !c.awaiting_restore() => Err(format!(
            "replica {} of volume {volume} is in use (not awaiting a restore); a restore goes into a new volume",
            c.name_any()
        )),
        Some(_) => Ok(()),
    }
}

/// How often a running restore checks that it is still wanted.
const WANTED_LOOK: Duration = Duration::from_secs(2);

/// Resolves (with the reason) once the restore is no longer wanted: its CStorRestore or the
/// replica it fills is gone or being deleted. Dropping the receive then kills `zfs recv`, so a
/// stalled stream never holds up deleting the volume.
async fn cancelled(ctx: &Ctx, r: &CStorRestore) -> String {
    let ns = r.namespace().unwrap_or_default();
    let cvrs: Api<CStorVolumeReplica> =
        Api::namespaced(ctx.base.client.clone(), &ctx.base.config.namespace);
    let ours = ListParams::default().labels(&format!(
        "{}={},{}={}",
        labels::CSPI_UID,
        ctx.base.config.cspi_uid,
        labels::PERSISTENT_VOLUME,
        r.spec.volume_name
    ));
    loop {
        tokio::time::sleep(WANTED_LOOK).await;
        match api(ctx, &ns).get_opt(&r.name_any()).await {
            Ok(None) => return "cancelled: the CStorRestore was deleted".into(),
            Ok(Some(live)) if live.meta().deletion_timestamp.is_some() => {
                return "cancelled: the CStorRestore is being deleted".into();
            }
            _ => {}
        }
        if let Ok(list) = cvrs.list(&ours).await
            && list
                .items
                .iter()
                .all(|c| c.meta().deletion_timestamp.is_some())
        {
            return format!(
                "cancelled: the replica of volume {} is being deleted",
                r.spec.volume_name
            );
        }
    }
}

async fn receive_once(ctx: &Ctx, r: &CStorRestore, dataset: &str) -> Result<u64, String> {
    let src = r.spec.restore_src.trim();
    let addr: std::net::SocketAddr = src
        .parse()
        .map_err(|_| format!("restoreSrc {src:?} is not <ip>:<port>"))?;
    let mut socket = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let argv = recv_argv(dataset);
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    ctx.base
        .runner
        .stream_in("zfs", &args, &mut socket, IDLE)
        .await
        .map_err(|e| e.to_string())
}

/// Whether `dataset@snap` exists: a receive that got the data but failed after (its mount)
/// has it, and trying again would be refused.
async fn received(ctx: &Ctx, dataset: &str, snap: &str) -> bool {
    let name = format!("{dataset}@{snap}");
    ctx.base
        .runner
        .run(
            "zfs",
            &["list", "-H", "-o", "name", "-t", "snapshot", &name],
        )
        .await
        .is_ok()
}

/// Mounts the dataset unless zfs-fuse already has (a receive that failed at its mount).
async fn mounted(ctx: &Ctx, dataset: &str) -> Result<(), String> {
    let out = ctx
        .base
        .runner
        .run("zfs", &["get", "-H", "-o", "value", "mounted", dataset])
        .await
        .map_err(|e| e.to_string())?;
    if out.stdout.trim() == "yes" {
        return Ok(());
    }
    ctx.base
        .runner
        .run("zfs", &["mount", dataset])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn transfer(ctx: &Ctx, r: &CStorRestore) {
    let volume = r.spec.volume_name.clone();
    if let Ok(mut set) = ctx.base.receiving.lock() {
        set.insert(volume.clone());
    }
    let dataset = dataset_name(&ctx.base.pool, &volume);
    let outcome = receive(ctx, r, &dataset).await;
    if let Ok(mut set) = ctx.base.receiving.lock() {
        set.remove(&volume);
    }
    report(ctx, r, &dataset, outcome).await;
}

async fn receive(ctx: &Ctx, r: &CStorRestore, dataset: &str) -> Result<u64, String> {
    let snap = r.spec.restore_name.trim();
    restorable_replica(ctx, &r.spec.volume_name).await?;
    let mut last = String::new();
    for attempt in 1..=TRIES {
        let attempt_result = tokio::select! {
            got = receive_once(ctx, r, dataset) => got,
            why = cancelled(ctx, r) => return Err(why),
        };
        match attempt_result {
            Ok(bytes) => return Ok(bytes),
            Err(e) => {
                // The data may be in already (the mount after the receive failed).
                if !snap.is_empty() && received(ctx, dataset, snap).await {
                    tracing::warn!(restore = %r.name_any(), error = %e, "received, then failed; mounting");
                    mounted(ctx, dataset).await?;
                    return Ok(0);
                }
                tracing::warn!(restore = %r.name_any(), attempt, error = %e, "restore try failed");
                last = e;
                if attempt < TRIES {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
    Err(format!("{TRIES} tries failed, the last: {last}"))
}

async fn report(ctx: &Ctx, r: &CStorRestore, dataset: &str, outcome: Result<u64, String>) {
    let (status, t, reason, note) = match &outcome {
        Ok(bytes) => (
            st::DONE,
            EventType::Normal,
            "Created",
            format!("Resource created successfully: {bytes} bytes received into {dataset}"),
        ),
        Err(e) => (
            st::FAILED,
            EventType::Warning,
            "FailCreate",
            format!("restore failed: {e}"),
        ),
    };
    let written = if status == st::DONE {
        let finished = k8s_openapi::jiff::Timestamp::now().to_string();
        api(ctx, &r.namespace().unwrap_or_default())
            .patch(
                &r.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({
                    "status": status,
                    "metadata": {"annotations": {FINISHED_ANNOTATION: finished}}
                })),
            )
            .await
            .map(|_| ())
    } else {
        set_status(ctx, r, status).await
    };
    if let Err(e) = written {
        tracing::warn!(restore = %r.name_any(), error = %e, "restore status not written");
    }
    event(ctx, r, t, reason, note).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore(status: &str, finished: Option<&str>) -> CStorRestore {
        let mut r = CStorRestore {
            status: status.into(),
            ..CStorRestore::default()
        };
        if let Some(f) = finished {
            r.annotations_mut()
                .insert(FINISHED_ANNOTATION.into(), f.into());
        }
        r
    }

    #[test]
    fn a_replica_settles_once_every_restore_finished_long_enough_ago() {
        let now: k8s_openapi::jiff::Timestamp = "2026-12-05T10:01:00Z".parse().expect("time");
        let settle = Duration::from_secs(30);
        let done_early = restore("Done", Some("2026-12-05T10:00:00Z"));
        let done_late = restore("Done", Some("2026-12-05T10:00:45Z"));
        assert!(settled(std::slice::from_ref(&done_early), now, settle));
        // The last of the chain counts.
        assert!(!settled(&[done_early.clone(), done_late], now, settle));
        // One still to run or running: not over.
        for s in ["", "Pending", "Init", "InProgress"] {
            assert!(
                !settled(&[done_early.clone(), restore(s, None)], now, settle),
                "{s}"
            );
        }
        // Failed ones do not hand over a replica by themselves; a Done one with no time waits.
        assert!(!settled(&[restore("Failed", None)], now, settle));
        assert!(!settled(&[], now, settle));
        assert!(!settled(&[restore("Done", None)], now, settle));
        assert!(settled(&[done_early, restore("Failed", None)], now, settle));
    }

    #[test]
    fn steps_follow_the_state_machine() {
        assert_eq!(step("", false), Step::Init);
        assert_eq!(step("Pending", false), Step::Init);
        assert_eq!(step("Init", false), Step::Start);
        assert_eq!(step("Init", true), Step::Nothing);
        assert_eq!(step("InProgress", false), Step::Abandoned);
        assert_eq!(step("InProgress", true), Step::Nothing);
        for done in ["Done", "Failed", "Invalid"] {
            assert_eq!(step(done, false), Step::Nothing);
        }
        assert_eq!(
            recv_argv("cstor-x/pvc-2"),
            vec!["recv", "-F", "cstor-x/pvc-2"]
        );
    }
}
