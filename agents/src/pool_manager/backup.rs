//! The pool-manager's backup controller (docs/backup-restore.md, "Backups"): for each
//! CStorBackup labelled with our CSPI's UID, `zfs send [-i prev] <pool>/<volume>@<snap>` is
//! streamed over one TCP connection to `spec.backupDest` (the velero-plugin's listener), up to
//! ten tries; the schedule's last-backup record is then advanced and the status set Done, or
//! Failed. A send that fails is a failed backup whatever the connection did.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cstor_api::cstor_v1::backup::{CStorBackup, CStorCompletedBackup, backup_status as st};
use cstor_api::keys::labels;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::Context as PoolContext;
use super::replica::decide::dataset_name;

/// Tries of a transfer and the pause between them (as the Go pool-manager).
pub const TRIES: u32 = 10;
pub const RETRY_PAUSE: Duration = Duration::from_secs(5);
/// A connection that takes no byte for this long is given up (that try fails).
const IDLE: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Event reason (the Go pool-manager's).
const REASON: &str = "Backup";

/// What to do with a CStorBackup in `status`; `running`: its transfer runs in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// Pending (or unset) → Init.
    Init,
    /// Init → InProgress, and start the transfer.
    Start,
    /// InProgress with no transfer here: this process restarted mid-transfer; the outcome is
    /// judged from the last-backup record.
    Recover,
}

pub fn step(status: &str, running: bool) -> Step {
    match status {
        st::DONE | st::FAILED | st::INVALID => Step::Nothing,
        st::EMPTY | st::PENDING => Step::Init,
        st::INIT if !running => Step::Start,
        st::IN_PROGRESS if !running => Step::Recover,
        _ => Step::Nothing,
    }
}

/// `zfs send` of the backup: incremental from `prev` when there is one.
pub fn send_argv(dataset: &str, snap: &str, prev: &str) -> Vec<String> {
    let mut v = vec!["send".to_string()];
    if !prev.is_empty() {
        v.push("-i".into());
        v.push(format!("{dataset}@{prev}"));
    }
    v.push(format!("{dataset}@{snap}"));
    v
}

struct Ctx {
    base: Arc<PoolContext>,
    running: Mutex<HashSet<String>>,
}

fn key(b: &CStorBackup) -> String {
    format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any())
}

/// Runs the controller until `stop` turns true.
pub async fn run(base: Arc<PoolContext>, stop: tokio::sync::watch::Receiver<bool>) {
    let backups: Api<CStorBackup> = Api::all(base.client.clone());
    let selector = format!("{}={}", labels::CSPI_UID, base.config.cspi_uid);
    let ctx = Arc::new(Ctx {
        base,
        running: Mutex::new(HashSet::new()),
    });
    let mut stopper = stop.clone();
    Controller::new(backups, watcher::Config::default().labels(&selector))
        .graceful_shutdown_on(async move {
            let _ = stopper.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "backup controller");
            }
        })
        .await;
}

fn error_policy(_b: Arc<CStorBackup>, e: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "backup reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

fn api(ctx: &Ctx, ns: &str) -> Api<CStorBackup> {
    Api::namespaced(ctx.base.client.clone(), ns)
}

async fn set_status(ctx: &Ctx, b: &CStorBackup, status: &str) -> Result<(), kube::Error> {
    let ns = b.namespace().unwrap_or_default();
    api(ctx, &ns)
        .patch(
            &b.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .map(|_| ())
}

async fn event(ctx: &Ctx, b: &CStorBackup, t: EventType, note: String) {
    cstor_runtime::events::publish(
        &ctx.base.recorder,
        &b.object_ref(&()),
        t,
        REASON,
        note,
        "Backup",
    )
    .await;
}

async fn reconcile(b: Arc<CStorBackup>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let ns = b.namespace().unwrap_or_default();
    let Some(live) = api(&ctx, &ns).get_opt(&b.name_any()).await? else {
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
        .map(|r| r.contains(&key(&live)))
        .unwrap_or(false);
    match step(&live.status, running) {
        Step::Nothing => Ok(Action::await_change()),
        Step::Init => {
            set_status(&ctx, &live, st::INIT).await?;
            event(
                &ctx,
                &live,
                EventType::Normal,
                format!(
                    "backup {} of volume {} initialised",
                    live.spec.snap_name, live.spec.volume_name
                ),
            )
            .await;
            Ok(Action::requeue(Duration::ZERO))
        }
        Step::Start => {
            set_status(&ctx, &live, st::IN_PROGRESS).await?;
            if let Ok(mut r) = ctx.running.lock() {
                r.insert(key(&live));
            }
            let task_ctx = ctx.clone();
            let backup = live.clone();
            tokio::spawn(async move {
                transfer(&task_ctx, &backup).await;
                if let Ok(mut r) = task_ctx.running.lock() {
                    r.remove(&key(&backup));
                }
            });
            Ok(Action::await_change())
        }
        Step::Recover => {
            let status = status_from_record(&ctx, &live).await;
            set_status(&ctx, &live, status).await?;
            event(
                &ctx,
                &live,
                if status == st::DONE { EventType::Normal } else { EventType::Warning },
                format!(
                    "backup {} was in progress when the pool-manager restarted; {} from the last-backup record",
                    live.spec.snap_name,
                    if status == st::DONE { "done" } else { "failed" }
                ),
            )
            .await;
            Ok(Action::await_change())
        }
    }
}

fn record_name(b: &CStorBackup) -> String {
    format!("{}-{}", b.spec.backup_name, b.spec.volume_name)
}

async fn status_from_record(ctx: &Ctx, b: &CStorBackup) -> &'static str {
    let ns = b.namespace().unwrap_or_default();
    let records: Api<CStorCompletedBackup> = Api::namespaced(ctx.base.client.clone(), &ns);
    let last = match records.get_opt(&record_name(b)).await {
        Ok(r) => r.map(|r| (r.spec.last_snap_name, r.spec.second_last_snap_name)),
        Err(e) => {
            tracing::warn!(error = %e, "last-backup record not read");
            None
        }
    };
    cstor_policy::backup::backup_status_from_record(
        &b.spec.snap_name,
        last.as_ref().map(|(l, s)| (l.as_str(), s.as_str())),
    )
}

/// Resolves once the CStorBackup is gone or being deleted (the plugin's clean-up, Velero's
/// deletion): dropping the send then kills `zfs send`, so the snapshot can be destroyed.
async fn cancelled(ctx: &Ctx, b: &CStorBackup) -> String {
    let ns = b.namespace().unwrap_or_default();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        match api(ctx, &ns).get_opt(&b.name_any()).await {
            Ok(None) => return "cancelled: the CStorBackup was deleted".into(),
            Ok(Some(live)) if live.meta().deletion_timestamp.is_some() => {
                return "cancelled: the CStorBackup is being deleted".into();
            }
            _ => {}
        }
    }
}

/// One try: connect, stream `zfs send` into the connection.
async fn send_once(ctx: &Ctx, b: &CStorBackup, dataset: &str) -> Result<u64, String> {
    let dest = b.spec.backup_dest.trim();
    let addr: std::net::SocketAddr = dest
        .parse()
        .map_err(|_| format!("backupDest {dest:?} is not <ip>:<port>"))?;
    let mut socket = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let argv = send_argv(dataset, &b.spec.snap_name, &b.spec.prev_snap_name);
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    ctx.base
        .runner
        .stream_out("zfs", &args, &mut socket, IDLE)
        .await
        .map_err(|e| e.to_string())
}

async fn transfer(ctx: &Ctx, b: &CStorBackup) {
    let dataset = dataset_name(&ctx.base.pool, &b.spec.volume_name);
    let mut last = String::new();
    let mut sent = None;
    for attempt in 1..=TRIES {
        let attempt_result = tokio::select! {
            sent = send_once(ctx, b, &dataset) => sent,
            why = cancelled(ctx, b) => {
                last = why;
                break;
            }
        };
        match attempt_result {
            Ok(bytes) => {
                sent = Some(bytes);
                break;
            }
            Err(e) => {
                tracing::warn!(backup = %b.name_any(), attempt, error = %e, "backup try failed");
                last = e;
                if attempt < TRIES {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
    let outcome = match sent {
        Some(bytes) => advance_record(ctx, b).await.map(|()| bytes),
        None => Err(format!("{TRIES} tries failed, the last: {last}")),
    };
    let (status, t, note) = match &outcome {
        Ok(bytes) => (
            st::DONE,
            EventType::Normal,
            format!(
                "backup creation is successful: {bytes} bytes of {dataset}@{} sent",
                b.spec.snap_name
            ),
        ),
        Err(e) => (
            st::FAILED,
            EventType::Warning,
            format!("failed to create backup error: {e}"),
        ),
    };
    if let Err(e) = set_status(ctx, b, status).await {
        // Left InProgress: judged from the record at the next look (the Recover step).
        tracing::warn!(backup = %b.name_any(), error = %e, "backup status not written");
    }
    event(ctx, b, t, note).await;
}

/// The schedule's record: its last snapshot becomes the second last, this one the last. A
/// record that does not exist is not an error (the Go pool-manager's rule).
async fn advance_record(ctx: &Ctx, b: &CStorBackup) -> Result<(), String> {
    let ns = b.namespace().unwrap_or_default();
    let records: Api<CStorCompletedBackup> = Api::namespaced(ctx.base.client.clone(), &ns);
    let name = record_name(b);
    let Some(r) = records.get_opt(&name).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let rv = r.resource_version().unwrap_or_default();
    let patch = json!({
        "metadata": {"resourceVersion": rv},
        "spec": {"secondLastSnapName": r.spec.last_snap_name, "lastSnapName": b.spec.snap_name}
    });
    records
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("last-backup record {name} not updated: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_state_machine() {
        assert_eq!(step("", false), Step::Init);
        assert_eq!(step("Pending", false), Step::Init);
        assert_eq!(step("Init", false), Step::Start);
        assert_eq!(step("Init", true), Step::Nothing);
        assert_eq!(step("InProgress", true), Step::Nothing);
        assert_eq!(step("InProgress", false), Step::Recover);
        for done in ["Done", "Failed", "Invalid"] {
            assert_eq!(step(done, false), Step::Nothing);
        }
    }

    #[test]
    fn send_is_incremental_only_with_a_previous_snapshot() {
        assert_eq!(
            send_argv("cstor-x/pvc-1", "s-2", ""),
            vec!["send", "cstor-x/pvc-1@s-2"]
        );
        assert_eq!(
            send_argv("cstor-x/pvc-1", "s-2", "s-1"),
            vec!["send", "-i", "cstor-x/pvc-1@s-1", "cstor-x/pvc-1@s-2"]
        );
    }
}
