//! CStorVolume (cv): the iSCSI target of a volume, made by the cvc-operator and kept up to date
//! by the volume manager next to the target.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::common::VersionDetails;

/// A CStorVolume, named after the PV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorVolume {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorVolumeSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CStorVolumeStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_details: Option<VersionDetails>,
}

crate::cstor_resource!(CStorVolume {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorVolume",
    plural: "cstorvolumes",
    namespaced: true,
    short_names: ["cv"],
    status_subresource: true,
    printer_columns: [
        (
            "Capacity",
            "string",
            ".status.capacity",
            "actual volume size",
            0
        ),
        ("Status", "string", ".status.phase", "volume health", 0),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorVolume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeSpec {
    /// Desired volume size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// IP of the target Service.
    #[serde(rename = "targetIP", default, skip_serializing_if = "String::is_empty")]
    pub target_ip: String,
    /// iSCSI port, normally 3260.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_port: String,
    /// Target IQN.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iqn: String,
    /// `IP:port`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_portal: String,
    /// Replicas created at provisioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i64>,
    /// Replicas that must be connected for writes: `replicationFactor/2 + 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency_factor: Option<i64>,
    /// Most replicas allowed to connect (changed to scale replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replication_factor: Option<i64>,
    /// Replicas the target trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_details: Option<CStorVolumeReplicaDetails>,
}

/// `replicaDetails` of a CStorVolume's spec or status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeReplicaDetails {
    /// Replica id → replica GUID, for the replicas the target can read data from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub known_replicas: BTreeMap<String, String>,
}

/// `status` of a CStorVolume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeStatus {
    /// `Init`, `Healthy`, `Degraded`, `Offline`, `Error` or `Invalid`; `""` before the first
    /// status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Per-replica state as the target reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_statuses: Vec<ReplicaStatus>,
    /// Actual volume size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// When the status was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// Why the volume is in this state.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Conditions, one per `type` (`Resizing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CStorVolumeCondition>,
    /// Replicas the target trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_details: Option<CStorVolumeReplicaDetails>,
}

/// One replica as the target sees it (istgt's replica status).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Replica id.
    #[serde(rename = "replicaId")]
    pub id: String,
    /// Replica mode, e.g. `Healthy`, `Degraded`.
    pub mode: String,
    /// Last IO number the replica persisted.
    #[serde(rename = "checkpointedIOSeq")]
    pub checkpointed_io_seq: String,
    /// Reads in flight from the target to the replica.
    pub inflight_read: String,
    /// Writes in flight.
    pub inflight_write: String,
    /// Syncs in flight.
    pub inflight_sync: String,
    /// Seconds since the replica connected.
    pub up_time: i64,
    /// `"0"`: the replica's data was lost and is being rebuilt; `"1"`: the replica has its data.
    pub quorum: String,
}

/// A CStorVolume condition (types in `cv::condition_type`, statuses in `cv::condition_status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `InProgress` or `Success` (not True/False).
    pub status: String,
    /// Last time the condition was probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Values of `status.phase`.
pub mod phase {
    /// The volume is being initialised.
    pub const INIT: &str = "Init";
    /// IOs and snapshots are allowed.
    pub const HEALTHY: &str = "Healthy";
    /// Only the consistency factor is met.
    pub const DEGRADED: &str = "Degraded";
    pub const OFFLINE: &str = "Offline";
    /// The volume details could not be read.
    pub const ERROR: &str = "Error";
    /// The target config could not be generated from the parameters.
    pub const INVALID: &str = "Invalid";
}

/// Values of a CStorVolume condition's `type`.
pub mod condition_type {
    /// A resize of the PVC is under way.
    pub const RESIZING: &str = "Resizing";
}

/// Values of a CStorVolume condition's `status`.
pub mod condition_status {
    pub const IN_PROGRESS: &str = "InProgress";
    pub const SUCCESS: &str = "Success";
}
