//! maya's legacy kinds (openebs/maya `pkg/apis/openebs.io/v1alpha1`; deprecated CRDs): the
//! StoragePoolClaim (spc) and its CStorPools (csp), and the old CStorVolume and
//! CStorVolumeReplica. We only read them (and clear finalizers) while migrating to
//! `cstor.openebs.io/v1` (docs/admission.md). None of their top-level fields is omitempty.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::null_as_default;
use crate::common::LegacyVersionDetails;

// ---------------------------------------------------------------------------------------------
// StoragePoolClaim

/// A StoragePoolClaim (cluster-scoped): the old declaration of cStor pools, laid out by maya
/// into one CStorPool per node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct StoragePoolClaim {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: StoragePoolClaimSpec,
    #[serde(default)]
    pub status: StoragePoolClaimStatus,
    #[serde(default)]
    pub version_details: LegacyVersionDetails,
}

crate::cstor_resource!(StoragePoolClaim {
    group: "openebs.io",
    version: "v1alpha1",
    kind: "StoragePoolClaim",
    plural: "storagepoolclaims",
    namespaced: false,
    short_names: ["spc"],
    status_subresource: false,
    printer_columns: [],
    deprecation: "openebs.io/v1alpha1 StoragePoolClaim is deprecated; migrate it to cstor.openebs.io/v1 CStorPoolCluster with a MigrationTask",
    categories: ["openebs"],
});

/// `spec` of a StoragePoolClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoragePoolClaimSpec {
    /// Legacy name field.
    #[serde(default)]
    pub name: String,
    /// `sparse` | `disk` (see [`spc_type`]).
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Auto mode: number of pools (one per node); required when there is no BD list.
    #[serde(default)]
    pub max_pools: Option<i64>,
    /// Unused.
    #[serde(default)]
    pub min_pools: i64,
    /// Manual mode: the BlockDevices to use.
    #[serde(default)]
    pub block_devices: BlockDeviceAttr,
    /// Pool settings, copied into each CStorPool.
    #[serde(default)]
    pub pool_spec: CStorPoolAttr,
}

/// `spec.blockDevices` of a StoragePoolClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockDeviceAttr {
    /// BlockDevice names; empty (often `null`) means auto mode.
    #[serde(default, deserialize_with = "null_as_default")]
    pub block_device_list: Vec<String>,
}

/// `poolSpec` of a StoragePoolClaim or CStorPool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolAttr {
    /// zpool cache file.
    #[serde(default)]
    pub cache_file: String,
    /// `striped` | `mirrored` | `raidz` | `raidz2` (see [`legacy_pool_type`]).
    #[serde(default)]
    pub pool_type: String,
    /// Deprecated and not honoured.
    #[serde(default)]
    pub over_provisioning: bool,
    /// Thick provisioning (disables over-provisioning).
    #[serde(default)]
    pub thick_provisioning: bool,
    /// Percent used at which the pool turns read-only, 0–100; maya turns 0 into 85 when it
    /// creates the CStorPool.
    #[serde(default)]
    pub ro_threshold_limit: i64,
}

/// `status` of a StoragePoolClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoragePoolClaimStatus {
    /// Free-form phase.
    #[serde(default)]
    pub phase: String,
}

/// Values of a StoragePoolClaim's `spec.type`.
pub mod spc_type {
    pub const SPARSE: &str = "sparse";
    pub const DISK: &str = "disk";
}

/// Values of `poolSpec.poolType` of a StoragePoolClaim or CStorPool, with the disks per raid
/// group maya used for each.
pub mod legacy_pool_type {
    pub const STRIPED: &str = "striped";
    pub const MIRRORED: &str = "mirrored";
    pub const RAIDZ: &str = "raidz";
    pub const RAIDZ2: &str = "raidz2";

    /// Disks per raid group maya used for a pool type (`DefaultDiskCount`).
    pub fn default_disk_count(pool_type: &str) -> Option<usize> {
        match pool_type {
            STRIPED => Some(1),
            MIRRORED => Some(2),
            RAIDZ => Some(3),
            RAIDZ2 => Some(6),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CStorPool

/// A CStorPool (cluster-scoped): one SPC pool on one node, named `<spc>-<rand4>`; its zpool is
/// `cstor-<CSP UID>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorPool {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorPoolSpec,
    #[serde(default)]
    pub status: CStorPoolStatus,
    #[serde(default)]
    pub version_details: LegacyVersionDetails,
}

crate::cstor_resource!(CStorPool {
    group: "openebs.io",
    version: "v1alpha1",
    kind: "CStorPool",
    plural: "cstorpools",
    namespaced: false,
    short_names: ["csp"],
    status_subresource: false,
    printer_columns: [
        (
            "Allocated",
            "string",
            ".status.capacity.used",
            "space physically allocated in the pool",
            0
        ),
        (
            "Free",
            "string",
            ".status.capacity.free",
            "free space in the pool",
            0
        ),
        (
            "Capacity",
            "string",
            ".status.capacity.total",
            "total size of the pool",
            0
        ),
        ("Status", "string", ".status.phase", "health of the pool", 0),
        (
            "ReadOnly",
            "boolean",
            ".status.readOnly",
            "whether the pool is read-only",
            0
        ),
        (
            "Type",
            "string",
            ".spec.poolSpec.poolType",
            "raid type of the pool",
            0
        ),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    deprecation: "openebs.io/v1alpha1 CStorPool is deprecated; migrate its StoragePoolClaim to cstor.openebs.io/v1 CStorPoolCluster with a MigrationTask",
    categories: ["openebs"],
});

/// `spec` of a CStorPool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolSpec {
    /// Raid groups (vdevs).
    #[serde(default, deserialize_with = "null_as_default")]
    pub group: Vec<BlockDeviceGroup>,
    /// Pool settings, from the SPC.
    #[serde(default)]
    pub pool_spec: CStorPoolAttr,
}

/// A raid group of a CStorPool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockDeviceGroup {
    /// The disks of the group.
    #[serde(default, deserialize_with = "null_as_default")]
    pub block_device: Vec<CspBlockDevice>,
}

/// A disk of a CStorPool raid group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CspBlockDevice {
    /// BlockDevice name.
    #[serde(default)]
    pub name: String,
    /// Device link (by-id, else by-path) or, for a sparse device, its path.
    #[serde(rename = "deviceID", default)]
    pub device_id: String,
    /// Whether the pool uses the device.
    #[serde(default)]
    pub in_use_by_pool: bool,
}

/// `status` of a CStorPool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolStatus {
    /// Pool health (see [`csp_phase`]).
    #[serde(default)]
    pub phase: String,
    /// Pool capacity, as zfs prints it.
    #[serde(default)]
    pub capacity: CStorPoolCapacityAttr,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Whether the pool is read-only.
    #[serde(default)]
    pub read_only: bool,
    /// When the status was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `status.capacity` of a CStorPool: strings such as `9.94G`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolCapacityAttr {
    #[serde(default)]
    pub total: String,
    #[serde(default)]
    pub free: String,
    #[serde(default)]
    pub used: String,
}

/// Values of a CStorPool's `status.phase` (mixed case, unlike the v1 CSPI's zpool states).
pub mod csp_phase {
    pub const EMPTY: &str = "";
    pub const INIT: &str = "Init";
    pub const PENDING: &str = "Pending";
    pub const HEALTHY: &str = "Healthy";
    pub const OFFLINE: &str = "Offline";
    pub const DEGRADED: &str = "Degraded";
    pub const FAULTED: &str = "Faulted";
    pub const REMOVED: &str = "Removed";
    pub const UNAVAIL: &str = "Unavail";
    pub const ERROR: &str = "Error";
    pub const DELETION_FAILED: &str = "DeletionFailed";
    pub const INVALID: &str = "Invalid";
    pub const ERROR_DUPLICATE: &str = "ErrorDuplicate";
    pub const POOL_CREATION_FAILED: &str = "PoolCreationFailed";
}

// ---------------------------------------------------------------------------------------------
// Old CStorVolume

/// The old CStorVolume (`openebs.io/v1alpha1`, kind `CStorVolume`): the iSCSI target of an
/// external-provisioned volume. Named `LegacyCStorVolume` here only to keep it apart from
/// `cstor_v1::CStorVolume`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct LegacyCStorVolume {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: LegacyCStorVolumeSpec,
    #[serde(default)]
    pub status: LegacyCStorVolumeStatus,
    #[serde(default)]
    pub version_details: LegacyVersionDetails,
}

crate::cstor_resource!(LegacyCStorVolume {
    group: "openebs.io",
    version: "v1alpha1",
    kind: "CStorVolume",
    plural: "cstorvolumes",
    namespaced: true,
    short_names: [],
    status_subresource: false,
    printer_columns: [
        (
            "Status",
            "string",
            ".status.phase",
            "health of the target",
            0
        ),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
        (
            "Capacity",
            "string",
            ".status.capacity",
            "current volume capacity",
            0
        ),
    ],
    deprecation: "openebs.io/v1alpha1 CStorVolume is deprecated; migrate its volume to cstor.openebs.io/v1 with a MigrationTask",
    categories: ["openebs"],
});

/// `spec` of an old CStorVolume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCStorVolumeSpec {
    /// Desired size of the volume.
    #[serde(default)]
    pub capacity: Quantity,
    /// Target Service cluster IP.
    #[serde(rename = "targetIP", default)]
    pub target_ip: String,
    #[serde(default)]
    pub target_port: String,
    /// iSCSI qualified name.
    #[serde(default)]
    pub iqn: String,
    /// `<ip>:<port>`.
    #[serde(default)]
    pub target_portal: String,
    /// Legacy status string.
    #[serde(default)]
    pub status: String,
    /// iSCSI node base.
    #[serde(default)]
    pub node_base: String,
    #[serde(default)]
    pub replication_factor: i64,
    #[serde(default)]
    pub consistency_factor: i64,
    /// Most replicas allowed to connect to the target.
    #[serde(default)]
    pub desired_replication_factor: i64,
    /// Trusted replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_details: Option<LegacyCStorVolumeReplicaDetails>,
}

/// `replicaDetails` of an old CStorVolume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCStorVolumeReplicaDetails {
    /// Replica ID → replica GUID, for the replicas the target trusts to read from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub known_replicas: BTreeMap<String, String>,
}

/// `status` of an old CStorVolume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCStorVolumeStatus {
    /// Target health (see [`legacy_cv_phase`]).
    #[serde(default)]
    pub phase: String,
    /// Replicas as the target sees them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_statuses: Vec<LegacyReplicaStatus>,
    /// Actual size of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// When the status was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Conditions (`Resizing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<LegacyCStorVolumeCondition>,
    /// Trusted replicas connected now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_details: Option<LegacyCStorVolumeReplicaDetails>,
}

/// A replica as an old target reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyReplicaStatus {
    #[serde(rename = "replicaId", default)]
    pub id: String,
    /// `Healthy`, `Degraded`, ….
    #[serde(default)]
    pub mode: String,
    #[serde(rename = "checkpointedIOSeq", default)]
    pub checkpointed_io_seq: String,
    #[serde(default)]
    pub inflight_read: String,
    #[serde(default)]
    pub inflight_write: String,
    #[serde(default)]
    pub inflight_sync: String,
    /// Seconds since the replica connected.
    #[serde(default)]
    pub up_time: i64,
    /// `0` / `1`.
    #[serde(default)]
    pub quorum: String,
}

/// A condition of an old CStorVolume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCStorVolumeCondition {
    /// `Resizing`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// `InProgress` | `Success` (maya's own condition statuses, not True/False).
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Values of an old CStorVolume's `status.phase` (cstor-volume-mgmt).
pub mod legacy_cv_phase {
    pub const INIT: &str = "Init";
    pub const HEALTHY: &str = "Healthy";
    pub const DEGRADED: &str = "Degraded";
    pub const OFFLINE: &str = "Offline";
    pub const ERROR: &str = "Error";
    pub const INVALID: &str = "Invalid";
    /// Internal to cstor-volume-mgmt.
    pub const IGNORE: &str = "Ignore";
}

// ---------------------------------------------------------------------------------------------
// Old CStorVolumeReplica

/// The old CStorVolumeReplica (`openebs.io/v1alpha1`, kind `CStorVolumeReplica`): a zvol on a
/// CStorPool. Named `LegacyCStorVolumeReplica` here only to keep it apart from
/// `cstor_v1::CStorVolumeReplica`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct LegacyCStorVolumeReplica {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: LegacyCStorVolumeReplicaSpec,
    #[serde(default)]
    pub status: LegacyCStorVolumeReplicaStatus,
    #[serde(default)]
    pub version_details: LegacyVersionDetails,
}

crate::cstor_resource!(LegacyCStorVolumeReplica {
    group: "openebs.io",
    version: "v1alpha1",
    kind: "CStorVolumeReplica",
    plural: "cstorvolumereplicas",
    namespaced: true,
    short_names: [],
    status_subresource: false,
    printer_columns: [
        (
            "Used",
            "string",
            ".status.capacity.used",
            "space logically used by the replica",
            0
        ),
        (
            "Allocated",
            "string",
            ".status.capacity.totalAllocated",
            "space allocated to the replica and its snapshots",
            0
        ),
        (
            "Status",
            "string",
            ".status.phase",
            "health of the replica",
            0
        ),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    deprecation: "openebs.io/v1alpha1 CStorVolumeReplica is deprecated; migrate its volume to cstor.openebs.io/v1 with a MigrationTask",
    categories: ["openebs"],
});

/// `spec` of an old CStorVolumeReplica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCStorVolumeReplicaSpec {
    /// Target Service cluster IP.
    #[serde(rename = "targetIP", default)]
    pub target_ip: String,
    /// zvol size, e.g. `5G`.
    #[serde(default)]
    pub capacity: String,
    /// Threads serving client IO.
    #[serde(default)]
    pub zvol_workers: String,
    /// Unique replica ID.
    #[serde(rename = "replicaid", default)]
    pub replica_id: String,
}

/// `status` of an old CStorVolumeReplica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCStorVolumeReplicaStatus {
    /// Replica health (see [`legacy_cvr_phase`]).
    #[serde(default)]
    pub phase: String,
    /// Space figures.
    #[serde(default)]
    pub capacity: LegacyCStorVolumeCapacityAttr,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// When the status was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Snapshots on the replica, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snapshots: BTreeMap<String, LegacyCStorSnapshotInfo>,
    /// Snapshots not yet on the replica (being rebuilt), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_snapshots: BTreeMap<String, LegacyCStorSnapshotInfo>,
}

/// `status.capacity` of an old CStorVolumeReplica (v1 calls `totalAllocated` `total`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCStorVolumeCapacityAttr {
    /// Space used by the dataset and its descendants.
    #[serde(default)]
    pub total_allocated: String,
    /// Space logically used.
    #[serde(default)]
    pub used: String,
}

/// A snapshot of an old CStorVolumeReplica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCStorSnapshotInfo {
    /// Bytes logically referenced by the snapshot.
    #[serde(default)]
    pub logical_referenced: u64,
}

/// Values of an old CStorVolumeReplica's `status.phase`.
pub mod legacy_cvr_phase {
    pub const EMPTY: &str = "";
    pub const HEALTHY: &str = "Healthy";
    pub const OFFLINE: &str = "Offline";
    pub const DEGRADED: &str = "Degraded";
    pub const NEW_REPLICA_DEGRADED: &str = "NewReplicaDegraded";
    pub const REBUILDING: &str = "Rebuilding";
    pub const RECONSTRUCTING_NEW_REPLICA: &str = "ReconstructingNewReplica";
    pub const ERROR: &str = "Error";
    pub const DELETION_FAILED: &str = "DeletionFailed";
    pub const INVALID: &str = "Invalid";
    pub const INIT: &str = "Init";
    pub const RECREATE: &str = "Recreate";
}
