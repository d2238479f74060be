//! istgt's unit-control replies, read as istgt writes them (docs/volumes.md "istgt"): a banner
//! line, data lines, then `OK <CMD>` or `ERR <message>`, every line CRLF-terminated and often
//! split across writes; and the `REPLICA` JSON mapped to CStorVolume status. Pure.

use cstor_api::cstor_v1::cv::ReplicaStatus;
use serde::Deserialize;

/// The banner istgt sends on every connection, before any reply.
pub const BANNER_PREFIX: &str = "iSCSI Target Controller version";
/// REFRESH while another runs: the one failure that does not say `ERR`.
pub const REFRESH_BUSY: &str = "Error Previous Refresh command still running";

/// Why a reply is not a success.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// `ERR <message>` (or REFRESH's busy line): istgt's own words.
    #[error("istgt refused {command}: {message}")]
    Refused { command: String, message: String },
    #[error("istgt's reply to {command} is not understood: {what}")]
    Malformed { command: String, what: String },
}

/// A complete reply: the data lines (without the command word), and whether istgt said OK.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub data: Vec<String>,
}

/// The command word of a request line, upper-cased as istgt answers it.
pub fn command_word(request: &str) -> String {
    request
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

/// Whether `line` ends a reply to `word`: `OK <word>`, any `ERR …`, or REFRESH's busy line.
pub fn is_final(word: &str, line: &str) -> bool {
    line == format!("OK {word}") || line.starts_with("ERR") || line == REFRESH_BUSY
}

/// Splits complete CRLF lines off the front of `buf` (a line may also end in a bare LF).
pub fn take_lines(buf: &mut Vec<u8>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(end) = buf.iter().position(|b| *b == b'\n') {
        let raw: Vec<u8> = buf.drain(..=end).collect();
        let text = String::from_utf8_lossy(&raw);
        lines.push(text.trim_end_matches(['\r', '\n']).to_string());
    }
    lines
}

/// The reply to `request` from the lines read so far; `None` while it is not complete.
pub fn parse(request: &str, lines: &[String]) -> Option<Result<Reply, ReplyError>> {
    let word = command_word(request);
    let body: Vec<&String> = lines
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with(BANNER_PREFIX))
        .collect();
    let last = body.last()?;
    if !is_final(&word, last) {
        return None;
    }
    if *last == &format!("OK {word}") {
        let data = body[..body.len() - 1]
            .iter()
            .map(|l| {
                l.strip_prefix(&word)
                    .map(|rest| rest.trim_start().to_string())
                    .unwrap_or_else(|| l.to_string())
            })
            .collect();
        return Some(Ok(Reply { data }));
    }
    let message = last
        .strip_prefix("ERR")
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| last.to_string());
    Some(Err(ReplyError::Refused {
        command: word,
        message,
    }))
}

/// One replica in `REPLICA`'s JSON (`Mode` capitalised, counters as strings, `Address` extra).
#[derive(Clone, Debug, Deserialize)]
struct WireReplica {
    #[serde(rename = "replicaId")]
    replica_id: String,
    #[serde(rename = "Mode", alias = "mode")]
    mode: String,
    #[serde(rename = "checkpointedIOSeq", default)]
    checkpointed_io_seq: String,
    #[serde(rename = "inflightRead", default)]
    inflight_read: String,
    #[serde(rename = "inflightWrite", default)]
    inflight_write: String,
    #[serde(rename = "inflightSync", default)]
    inflight_sync: String,
    #[serde(rename = "upTime", default)]
    up_time: i64,
    #[serde(default)]
    quorum: String,
}

#[derive(Clone, Debug, Deserialize)]
struct WireVolume {
    name: String,
    status: String,
    #[serde(rename = "replicaStatus", default)]
    replica_status: Vec<WireReplica>,
}

#[derive(Clone, Debug, Deserialize)]
struct WireReplicas {
    #[serde(rename = "volumeStatus", default)]
    volume_status: Vec<WireVolume>,
}

/// A volume as istgt reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeReport {
    pub name: String,
    /// `Offline` | `Degraded` | `Healthy` as istgt computes it.
    pub status: String,
    /// The replicas, ids being their zvol GUIDs.
    pub replicas: Vec<ReplicaStatus>,
}

impl VolumeReport {
    /// The CStorVolume phase the Go sidecar writes: istgt's status, but `Init` while no
    /// replica is connected.
    pub fn phase(&self) -> &str {
        if self.replicas.is_empty() {
            "Init"
        } else {
            &self.status
        }
    }
}

/// The volumes of a `REPLICA` reply's data line; an empty list is an error (istgt has no LU).
pub fn parse_replicas(data: &[String]) -> Result<Vec<VolumeReport>, ReplyError> {
    let malformed = |what: String| ReplyError::Malformed {
        command: "REPLICA".into(),
        what,
    };
    let line = data
        .iter()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| malformed("no JSON line".into()))?;
    let wire: WireReplicas =
        serde_json::from_str(line.trim()).map_err(|e| malformed(e.to_string()))?;
    if wire.volume_status.is_empty() {
        return Err(malformed("empty volume status from istgt".into()));
    }
    Ok(wire
        .volume_status
        .into_iter()
        .map(|v| VolumeReport {
            name: v.name,
            status: v.status,
            replicas: v
                .replica_status
                .into_iter()
                .map(|r| ReplicaStatus {
                    id: r.replica_id,
                    mode: r.mode,
                    checkpointed_io_seq: r.checkpointed_io_seq,
                    inflight_read: r.inflight_read,
                    inflight_write: r.inflight_write,
                    inflight_sync: r.inflight_sync,
                    up_time: r.up_time,
                    quorum: r.quorum,
                })
                .collect(),
        })
        .collect())
}

/// `STATUS`'s LU lines: `(iqn, real)` where `real` is false while the LU is not ready.
pub fn parse_status(data: &[String]) -> Vec<(String, bool)> {
    data.iter()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let iqn = parts.next()?;
            let kind = parts.next()?;
            (kind == "REAL" || kind == "FAKE").then(|| (iqn.to_string(), kind == "REAL"))
        })
        .collect()
}
