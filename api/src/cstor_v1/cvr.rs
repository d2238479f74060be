//! CStorVolumeReplica (cvr): one replica (zvol) of a volume on one CSPI, named `<pv>-<cspi>`;
//! made by the cvc-operator and reconciled by that CSPI's pool manager.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::common::VersionDetails;

/// A CStorVolumeReplica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorVolumeReplica {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorVolumeReplicaSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CStorVolumeReplicaStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_details: Option<VersionDetails>,
}

crate::cstor_resource!(CStorVolumeReplica {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorVolumeReplica",
    plural: "cstorvolumereplicas",
    namespaced: true,
    short_names: ["cvr"],
    status_subresource: true,
    printer_columns: [
        (
            "Allocated",
            "string",
            ".status.capacity.total",
            "space consumed by the replica and its snapshots",
            0
        ),
        (
            "Used",
            "string",
            ".status.capacity.used",
            "space logically used by the replica",
            0
        ),
        ("Status", "string", ".status.phase", "replica state", 0),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorVolumeReplica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeReplicaSpec {
    /// IP of the target Service the replica connects to (IO, snapshots, resize).
    #[serde(rename = "targetIP", default, skip_serializing_if = "String::is_empty")]
    pub target_ip: String,
    /// Volume size, e.g. `5G`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capacity: String,
    /// Threads executing client IOs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zvol_workers: String,
    /// Unique replica id, also kept in the ZFS property `io.openebs:zvol_replica_id`.
    #[serde(
        rename = "replicaid",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub replica_id: String,
    /// ZFS compression: on|off|gzip|gzip-N|lz4|lzjb|zle.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compression: String,
    /// Volume block size in bytes: a power of 2 from 512 to 128 KiB (default 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
}

/// `status` of a CStorVolumeReplica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeReplicaStatus {
    /// `Init`, `Healthy`, `Degraded`, `Rebuilding`, `Offline`, `Error`, … (`cvr::phase`); `""`
    /// before the pool manager first looks at the replica.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Space figures of the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CVRCapacityInfo>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// When the status was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// Detail of the last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Snapshots on the replica, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snapshots: BTreeMap<String, CStorSnapshotInfo>,
    /// Snapshots not yet on this replica (still rebuilding), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_snapshots: BTreeMap<String, CStorSnapshotInfo>,
}

/// `status.capacity` of a CVR (Go `CStorVolumeReplicaCapacityDetails`): ZFS sizes as strings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CVRCapacityInfo {
    /// Space consumed by the replica and all its descendants (ZFS `used`).
    pub total: String,
    /// Space logically referenced, ignoring compression (ZFS `logicalreferenced`).
    pub used: String,
}

/// A snapshot of a replica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorSnapshotInfo {
    /// Bytes logically accessible through the snapshot, ignoring compression.
    pub logical_referenced: u64,
}

/// Values of `status.phase`.
impl CStorVolumeReplica {
    /// The replica of a volume being restored (`isRestoreVol: "true"`, set by the cvc-operator
    /// from the CVC's `openebs.io/created-through: restore`): its data comes from `zfs recv`,
    /// so the target does not use it until the restore is complete (docs/backup-restore.md).
    pub fn awaiting_restore(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::keys::annotations::IS_RESTORE_VOL))
            .is_some_and(|v| v == "true")
    }
}

pub mod phase {
    /// Just created; not yet looked at by the pool manager.
    pub const EMPTY: &str = "";
    /// Created, but the zvol is not yet made.
    pub const INIT: &str = "Init";
    /// Recreated after the pool was recreated or the volume scaled up.
    pub const RECREATE: &str = "Recreate";
    /// Connected and up to date.
    pub const HEALTHY: &str = "Healthy";
    /// Created but not connected to the target.
    pub const OFFLINE: &str = "Offline";
    /// Connected, serving IO, rebuild not yet started.
    pub const DEGRADED: &str = "Degraded";
    /// A new (or recreated) replica just connected; it must copy everything from a healthy one.
    pub const NEW_REPLICA_DEGRADED: &str = "NewReplicaDegraded";
    /// Rebuilding missing data from other replicas.
    pub const REBUILDING: &str = "Rebuilding";
    /// A new replica copying all data from a healthy one.
    pub const RECONSTRUCTING_NEW_REPLICA: &str = "ReconstructingNewReplica";
    /// The zvol does not exist in the pool.
    pub const ERROR: &str = "Error";
    pub const DELETION_FAILED: &str = "DeletionFailed";
    pub const INVALID: &str = "Invalid";
}
