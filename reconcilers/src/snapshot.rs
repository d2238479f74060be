//! Asking a volume for a snapshot and waiting for the outcome (docs/backup-restore.md,
//! "Snapshots"): the requester's side of the handshake, used by the backup REST API and by
//! `cstor volume snapshot`.

use std::time::{Duration, Instant};

use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::snapshot::{self, OUTCOME, Op, Outcome, REQUEST, Request};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

/// How often the outcome is looked for.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Invalid(String),
    #[error("CStorVolume {0} not found")]
    NoVolume(String),
    #[error("{step} of CStorVolume {volume}: {source}")]
    Api {
        step: &'static str,
        volume: String,
        source: kube::Error,
    },
    #[error(
        "no outcome for snapshot {snapshot} of volume {volume} within {secs} s (is its target running?)"
    )]
    Timeout {
        snapshot: String,
        volume: String,
        secs: u64,
    },
    /// Not attempted, or failed on some replicas: the outcome says which.
    #[error("snapshot {} of volume {volume}: {}", .outcome.snapshot, describe(.outcome))]
    Failed { volume: String, outcome: Outcome },
}

/// The words of an outcome that is not a success.
pub fn describe(o: &Outcome) -> String {
    if !o.refused.is_empty() {
        return format!("not attempted: {}", o.refused);
    }
    let failed: Vec<String> = o
        .failed
        .iter()
        .map(|(id, why)| format!("{id}: {why}"))
        .collect();
    format!(
        "done on replicas [{}], failed on {}",
        o.done.join(", "),
        failed.join("; ")
    )
}

/// A request id no earlier request of this process shares.
fn request_id(op: Op) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos:x}", if op == Op::Create { "c" } else { "d" })
}

/// Asks volume `volume` to take (or destroy) snapshot `name` on every Healthy replica and
/// waits up to `wait` for the outcome. Ok only when every replica the volume-manager named
/// did it.
pub async fn request(
    cvs: &Api<CStorVolume>,
    volume: &str,
    name: &str,
    op: Op,
    wait: Duration,
) -> Result<Outcome, SnapshotError> {
    snapshot::valid_name(name).map_err(SnapshotError::Invalid)?;
    let api = |step: &'static str| {
        let volume = volume.to_string();
        move |source| SnapshotError::Api {
            step,
            volume,
            source,
        }
    };
    if cvs.get_opt(volume).await.map_err(api("get"))?.is_none() {
        return Err(SnapshotError::NoVolume(volume.to_string()));
    }
    let req = Request {
        id: request_id(op),
        snapshot: name.to_string(),
        op,
    };
    let value = serde_json::to_string(&req).unwrap_or_default();
    let patch = serde_json::json!({"metadata": {"annotations": {REQUEST: value}}});
    cvs.patch(volume, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api("patch snapshot request"))?;
    let until = Instant::now() + wait;
    loop {
        if let Some(cv) = cvs.get_opt(volume).await.map_err(api("get"))? {
            if let Some(o) = snapshot::parse::<Outcome>(cv.annotations().get(OUTCOME))
                && o.id == req.id
            {
                if o.refused.is_empty() && o.failed.is_empty() {
                    return Ok(o);
                }
                return Err(SnapshotError::Failed {
                    volume: volume.to_string(),
                    outcome: o,
                });
            }
        } else {
            return Err(SnapshotError::NoVolume(volume.to_string()));
        }
        if Instant::now() >= until {
            return Err(SnapshotError::Timeout {
                snapshot: name.to_string(),
                volume: volume.to_string(),
                secs: wait.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
