//! The bodies the velero-plugin sends to the cvc-operator's REST API (docs/backup-restore.md):
//! decoded leniently, as Go's `encoding/json` does (a missing field is empty, unknown fields
//! are ignored, `creationTimestamp: null` is fine), so validation can name what is missing.

use serde::{Deserialize, Serialize};

/// `metadata` of a request body: only the namespace and name are read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestMeta {
    pub name: String,
    pub namespace: String,
}

/// POST / GET `/latest/backups/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupRequest {
    pub metadata: RequestMeta,
    pub spec: BackupRequestSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackupRequestSpec {
    /// The backup's schedule name, or the backup's own name.
    pub backup_name: String,
    pub volume_name: String,
    /// The Velero backup's name: the snapshot's name.
    pub snap_name: String,
    pub prev_snap_name: String,
    /// `<ip>:<port>` the pool-manager pushes the stream to.
    pub backup_dest: String,
    pub local_snap: bool,
}

/// POST / GET `/latest/restore/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreRequest {
    pub metadata: RequestMeta,
    pub spec: RestoreRequestSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RestoreRequestSpec {
    /// The Velero backup being restored.
    pub restore_name: String,
    /// The new volume.
    pub volume_name: String,
    /// `<ip>:<port>` to pull the stream from (remote) or the source volume (local).
    pub restore_src: String,
    pub storage_class: String,
    /// A quantity string (`"5G"`); `"0"` on remote restores.
    pub size: String,
    #[serde(rename = "localRestore")]
    pub local_restore: bool,
}

/// Why a body could not be read: Go's server answers 500 with the decoder's text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Decodes a request body: YAML when the content type says so, else JSON.
pub fn decode<T: serde::de::DeserializeOwned>(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<T, DecodeError> {
    if content_type.is_some_and(|c| c.to_ascii_lowercase().contains("yaml")) {
        serde_yaml_ng::from_slice(body).map_err(|e| DecodeError(e.to_string()))
    } else {
        serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))
    }
}

/// The schedule a Velero backup belongs to, as the plugin computes it: the name without its
/// last `-`-separated part when that part is a `YYYYMMDDhhmmss` timestamp, else the name.
pub fn schedule_name(backup: &str) -> &str {
    match backup.rsplit_once('-') {
        Some((schedule, stamp))
            if !schedule.is_empty()
                && stamp.len() == 14
                && stamp.bytes().all(|b| b.is_ascii_digit())
                && valid_stamp(stamp) =>
        {
            schedule
        }
        _ => backup,
    }
}

/// Whether `s` (14 digits) is a real `YYYYMMDDhhmmss` time (as Go's `time.Parse` judges it:
/// the day must exist in that month).
fn valid_stamp(s: &str) -> bool {
    let n = |a: usize, b: usize| s[a..b].parse::<u32>().unwrap_or(u32::MAX);
    let (year, month, day) = (n(0, 4), n(4, 6), n(6, 8));
    let (hour, min, sec) = (n(8, 10), n(10, 12), n(12, 14));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day) && hour < 24 && min < 60 && sec < 60
}
