//! The registration socket istgt calls when a replica becomes trusted (docs/volumes.md
//! "istgt"): one CRLF-terminated JSON line per connection, answered `Ok` or `Err` well within
//! istgt's 20 s. Who may register is decided here, purely, by the rule our fan-out uses
//! ([`crate::volume_manager::status::admitted`]); the caller records the result in the
//! CStorVolume before the answer goes out.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use cstor_api::cstor_v1::CStorVolume;
use kube::ResourceExt;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::volume_manager::status::{admitted, drf, spec_known};

/// Where istgt connects (compiled into istgt).
pub const REGISTRATION_SOCKET: &str = "/var/run/volume_mgmt_sock";
/// istgt waits 20 s for the answer; ours leaves it room to read it.
pub const ANSWER_BUDGET: Duration = Duration::from_secs(15);

/// What istgt sends: `{"replicaId":…,"replicaZvolGuid":…,"volumeName":…,
/// "replicationFactor":n,"consistencyFactor":n}`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    #[serde(default)]
    pub replica_id: String,
    #[serde(default)]
    pub replica_zvol_guid: String,
    #[serde(default)]
    pub volume_name: String,
    #[serde(default)]
    pub replication_factor: i64,
    #[serde(default)]
    pub consistency_factor: i64,
}

/// What to record before answering `Ok`: the new factors and known replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub replication_factor: i64,
    pub consistency_factor: i64,
    pub known_replicas: BTreeMap<String, String>,
}

/// Parses one registration line.
pub fn parse(line: &str) -> Result<Registration, String> {
    serde_json::from_str(line.trim()).map_err(|e| format!("registration is not JSON: {e}"))
}

/// Whether `reg` may join `cv`, and what `cv` becomes: every field set; the CV's own volume;
/// a replica already known (a new GUID after a rebuild or replacement is taken), or a new one
/// while the known replicas are fewer than the desired factor; factors never lowered.
pub fn decide(cv: &CStorVolume, reg: &Registration) -> Result<Accepted, String> {
    let empty = reg.replica_id.is_empty()
        || reg.replica_zvol_guid.is_empty()
        || reg.volume_name.is_empty()
        || reg.replication_factor == 0
        || reg.consistency_factor == 0;
    if empty {
        return Err(format!("registration with empty fields: {reg:?}"));
    }
    if reg.volume_name != cv.name_any() {
        return Err(format!(
            "registration for volume {} reached the target of {}",
            reg.volume_name,
            cv.name_any()
        ));
    }
    if !admitted(cv, &reg.replica_id) {
        return Err(format!(
            "replica {} is not known and volume {} already has its {} desired replicas",
            reg.replica_id,
            cv.name_any(),
            drf(cv)
        ));
    }
    let rf = cv.spec.replication_factor.unwrap_or(0);
    let cf = cv.spec.consistency_factor.unwrap_or(0);
    if rf > reg.replication_factor || cf > reg.consistency_factor {
        return Err(format!(
            "registration lowers the factors of {} (rf {rf} → {}, cf {cf} → {})",
            cv.name_any(),
            reg.replication_factor,
            reg.consistency_factor
        ));
    }
    let mut known = spec_known(cv);
    known.insert(reg.replica_id.clone(), reg.replica_zvol_guid.clone());
    Ok(Accepted {
        replication_factor: reg.replication_factor,
        consistency_factor: reg.consistency_factor,
        known_replicas: known,
    })
}

/// Serves registrations on `listener` until the task is dropped: each connection's line goes
/// to `handle` (which decides and records), and istgt gets `Ok` only when `handle` succeeded
/// within [`ANSWER_BUDGET`]; a bad line, a refusal, a failed record or a late one get `Err`.
pub async fn serve<H, F>(listener: UnixListener, budget: Duration, handle: H)
where
    H: Fn(Registration) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<(), String>> + Send,
{
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let answer = tokio::time::timeout(budget, async {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.ends_with(b"\r\n") {
                    let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("connection closed before a full line".to_string());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                let reg = parse(&line)?;
                handle(reg).await
            })
            .await;
            let reply: &[u8] = match answer {
                Ok(Ok(())) => b"Ok\r\n",
                Ok(Err(why)) => {
                    tracing::warn!(%why, "replica registration refused");
                    b"Err\r\n"
                }
                Err(_) => {
                    tracing::warn!("replica registration not decided in time");
                    b"Err\r\n"
                }
            };
            let _ = stream.write_all(reply).await;
        });
    }
}

/// Binds the registration socket at `path`, replacing a stale one.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(path)
}
