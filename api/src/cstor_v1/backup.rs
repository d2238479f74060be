//! The backup family: CStorBackup, CStorCompletedBackup and CStorRestore, created by the velero
//! plugin (with `status` already set) and served by the pool managers. `status` is a plain
//! string at the root of CStorBackup and CStorRestore.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A CStorBackup: one snapshot of a volume to send to a remote (or keep locally).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorBackup {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorBackupSpec,
    /// `Init`, `Pending`, `InProgress`, `Done`, `Failed` or `Invalid`; `""` until reconciled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
}

crate::cstor_resource!(CStorBackup {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorBackup",
    plural: "cstorbackups",
    namespaced: true,
    short_names: ["cbackup"],
    status_subresource: false,
    printer_columns: [
        (
            "Volume",
            "string",
            ".spec.volumeName",
            "volume backed up",
            0
        ),
        (
            "Backup/Schedule",
            "string",
            ".spec.backupName",
            "backup or schedule name",
            0
        ),
        ("Status", "string", ".status", "backup state", 0),
    ],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorBackup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorBackupSpec {
    /// Name of the backup or the schedule.
    pub backup_name: String,
    /// Volume to back up.
    pub volume_name: String,
    /// Snapshot taken for this backup.
    pub snap_name: String,
    /// Snapshot of the last completed backup (base of an incremental send).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev_snap_name: String,
    /// Remote address to send the stream to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup_dest: String,
    /// Only take a local snapshot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_snap: bool,
}

/// A CStorCompletedBackup: the last two successful snapshots of a backup schedule, for the next
/// incremental backup. It has no status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorCompletedBackup {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorCompletedBackupSpec,
}

crate::cstor_resource!(CStorCompletedBackup {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorCompletedBackup",
    plural: "cstorcompletedbackups",
    namespaced: true,
    short_names: ["ccompletedbackup"],
    status_subresource: false,
    printer_columns: [
        (
            "Volume",
            "string",
            ".spec.volumeName",
            "volume backed up",
            0
        ),
        (
            "Backup/Schedule",
            "string",
            ".spec.backupName",
            "backup or schedule name",
            0
        ),
        (
            "LastSnap",
            "string",
            ".spec.lastSnapName",
            "snapshot of the last successful backup",
            0
        ),
    ],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorCompletedBackup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorCompletedBackupSpec {
    /// Name of the backup or the schedule.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup_name: String,
    /// Volume backed up.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub volume_name: String,
    /// Snapshot of the second-last successful backup.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub second_last_snap_name: String,
    /// Snapshot of the last successful backup.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_snap_name: String,
}

/// A CStorRestore: restore a backup into one replica of a volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorRestore {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorRestoreSpec,
    /// `Init`, `Pending`, `InProgress`, `Done`, `Failed` or `Invalid`; `""` until reconciled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
}

crate::cstor_resource!(CStorRestore {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorRestore",
    plural: "cstorrestores",
    namespaced: true,
    short_names: ["crestore"],
    status_subresource: false,
    printer_columns: [
        (
            "Backup",
            "string",
            ".spec.restoreName",
            "backup being restored",
            0
        ),
        (
            "Volume",
            "string",
            ".spec.volumeName",
            "volume restored into",
            0
        ),
        ("Status", "string", ".status", "restore state", 0),
    ],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorRestore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorRestoreSpec {
    /// Name of the restore (the backup snapshot restored).
    pub restore_name: String,
    /// Volume to restore into.
    pub volume_name: String,
    /// `ip:port` of the remote for a remote restore, or a volume name for a local one.
    pub restore_src: String,
    /// Most restore attempts.
    #[serde(
        rename = "maxretrycount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_retry_count: Option<i64>,
    /// Restore attempts made so far.
    #[serde(
        rename = "retrycount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_count: Option<i64>,
    /// StorageClass of the restored volume.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_class: String,
    /// Size of the snapshot to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// Restore from a local snapshot (Go `Local`).
    #[serde(
        rename = "localRestore",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub local: bool,
}

/// Values of a CStorBackup's `status`.
pub mod backup_status {
    /// Created, not yet reconciled.
    pub const EMPTY: &str = "";
    pub const INIT: &str = "Init";
    pub const PENDING: &str = "Pending";
    pub const IN_PROGRESS: &str = "InProgress";
    pub const DONE: &str = "Done";
    pub const FAILED: &str = "Failed";
    pub const INVALID: &str = "Invalid";
}

/// Values of a CStorRestore's `status`.
pub mod restore_status {
    /// Created, not yet reconciled.
    pub const EMPTY: &str = "";
    pub const INIT: &str = "Init";
    pub const PENDING: &str = "Pending";
    pub const IN_PROGRESS: &str = "InProgress";
    pub const DONE: &str = "Done";
    pub const FAILED: &str = "Failed";
    pub const INVALID: &str = "Invalid";
}
