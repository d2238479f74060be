//! The snapshot handshake of a volume, carried in annotations (docs/backup-restore.md,
//! "Snapshots"): a requester asks on the CStorVolume, the volume-manager holds writes and
//! names the replicas in a barrier on the CStorVolume, each pool-manager snapshots its
//! replica's dataset and answers on its CVR, and the volume-manager writes the result on the
//! CStorVolume. Each value is JSON; `id` ties the four together.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// CStorVolume: what a requester asks ([`Request`]).
pub const REQUEST: &str = "cstor.openebs.io/snapshot-request";
/// CStorVolume: the volume-manager's barrier ([`Barrier`]); present only while it holds.
pub const BARRIER: &str = "cstor.openebs.io/snapshot-barrier";
/// CVR: a pool-manager's answer ([`Answer`]).
pub const ANSWER: &str = "cstor.openebs.io/snapshot-answer";
/// CStorVolume: the outcome ([`Outcome`]).
pub const OUTCOME: &str = "cstor.openebs.io/snapshot-outcome";

/// Take or destroy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    #[default]
    Create,
    Destroy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Request {
    pub id: String,
    pub snapshot: String,
    pub op: Op,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Barrier {
    pub id: String,
    pub snapshot: String,
    pub op: Op,
    /// Replica ids (CVR `spec.replicaID`) that must answer.
    pub replicas: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Answer {
    pub id: String,
    /// Empty when done.
    pub error: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Outcome {
    pub id: String,
    pub snapshot: String,
    pub op: Op,
    /// Replica ids that took (or destroyed) it.
    pub done: Vec<String>,
    /// Replica id → why not (an error, or no answer in time).
    pub failed: BTreeMap<String, String>,
    /// How long writes were held (create only).
    pub held_ms: u64,
    /// Why nothing was attempted (no replica Healthy, a bad name); empty otherwise.
    pub refused: String,
}

/// Parses one of the values above; `None` when absent or not JSON of that shape.
pub fn parse<T: for<'de> Deserialize<'de>>(value: Option<&String>) -> Option<T> {
    value.and_then(|v| serde_json::from_str(v).ok())
}

/// A snapshot name zfs accepts and that cannot reach another dataset: 1–200 of
/// `[A-Za-z0-9_.:-]`, not starting with `-` (Velero backup names, `<name>-YYYYMMDDhhmmss`, pass).
pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err(format!(
            "snapshot name {name:?} must be 1 to 200 characters"
        ));
    }
    if name.starts_with('-') {
        return Err(format!("snapshot name {name:?} must not start with '-'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(format!(
            "snapshot name {name:?} has {c:?}; only letters, digits, '_', '.', ':' and '-' are allowed"
        ));
    }
    Ok(())
}
