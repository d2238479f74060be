//! CStorPoolInstance (cspi): one pool on one node, made by the cspc-operator from a CSPC pool and
//! run by the pool manager on that node.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::cspc::{PoolConfig, RaidGroup};
use crate::common::VersionDetails;

/// A CStorPoolInstance: the zpool `cstor-<CSPC UID>` on one node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorPoolInstance {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorPoolInstanceSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CStorPoolInstanceStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_details: Option<VersionDetails>,
}

crate::cstor_resource!(CStorPoolInstance {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorPoolInstance",
    plural: "cstorpoolinstances",
    namespaced: true,
    short_names: ["cspi"],
    status_subresource: true,
    printer_columns: [
        (
            "HostName",
            "string",
            ".spec.hostName",
            "node the pool runs on",
            0
        ),
        (
            "Allocated",
            "string",
            ".status.capacity.used",
            "space physically written to the pool",
            1
        ),
        (
            "Free",
            "string",
            ".status.capacity.free",
            "usable free space in the pool",
            0
        ),
        (
            "Capacity",
            "string",
            ".status.capacity.total",
            "usable space in the pool",
            0
        ),
        (
            "ReadOnly",
            "boolean",
            ".status.readOnly",
            "whether the pool is read-only",
            0
        ),
        (
            "ProvisionedReplicas",
            "integer",
            ".status.provisionedReplicas",
            "volume replicas on the pool",
            0
        ),
        (
            "HealthyReplicas",
            "integer",
            ".status.healthyReplicas",
            "healthy volume replicas on the pool",
            0
        ),
        (
            "Type",
            "string",
            ".spec.poolConfig.dataRaidGroupType",
            "raid type of the data groups",
            1
        ),
        ("Status", "string", ".status.phase", "zpool state", 0),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorPoolInstance: a CSPC pool with the CSPC defaults applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolInstanceSpec {
    /// Name of the node the pool is created on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_name: String,
    /// Labels selecting the node; copied from the pool spec.
    pub node_selector: BTreeMap<String, String>,
    /// The pool config, with resources, auxResources, tolerations, priorityClassName and
    /// roThresholdLimit (85) defaulted from the CSPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_config: Option<PoolConfig>,
    /// Data vdevs.
    pub data_raid_groups: Vec<RaidGroup>,
    /// Write-cache vdevs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_cache_raid_groups: Option<Vec<RaidGroup>>,
}

/// `status` of a CStorPoolInstance, written by the pool manager.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolInstanceStatus {
    /// Conditions: `PoolExpansion`, `DiskReplacement`, `DiskUnavailable`, `PoolLost`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CStorPoolInstanceCondition>,
    /// Pool state: a zpool state (`ONLINE`, `OFFLINE`, `DEGRADED`, `FAULTED`, `REMOVED`,
    /// `UNAVAIL`) or `Init`, `Pending`, `Error`, `PoolCreationFailed`, …; `""` before the first
    /// import or create.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Pool capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CStorPoolInstanceCapacity>,
    /// Whether the pool is read-only (used space past `roThresholdLimit`).
    pub read_only: bool,
    /// Volume replicas (CVRs) on the pool.
    pub provisioned_replicas: i32,
    /// Healthy volume replicas on the pool.
    pub healthy_replicas: i32,
}

/// `status.capacity` of a CStorPoolInstance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolInstanceCapacity {
    /// Physical space written to the pool (data and metadata, after compression).
    pub used: Quantity,
    /// Usable free space, excluding metadata and raid parity.
    pub free: Quantity,
    /// Usable space of all data raid groups.
    pub total: Quantity,
    /// ZFS-specific figures.
    pub zfs: ZFSCapacityAttributes,
}

/// `status.capacity.zfs` of a CStorPoolInstance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZFSCapacityAttributes {
    /// Space logically used by the pool and its datasets, ignoring compression and copies.
    pub logical_used: Quantity,
}

/// A CSPI condition (types in `cspi::condition_type`).
pub type CStorPoolInstanceCondition = crate::common::PoolCondition;

/// Values of `status.phase`: UPPERCASE zpool states plus the operator's own.
pub mod phase {
    /// Not yet imported or created: create the pool if import fails.
    pub const EMPTY: &str = "";
    pub const ONLINE: &str = "ONLINE";
    pub const OFFLINE: &str = "OFFLINE";
    pub const DEGRADED: &str = "DEGRADED";
    pub const FAULTED: &str = "FAULTED";
    pub const REMOVED: &str = "REMOVED";
    pub const UNAVAIL: &str = "UNAVAIL";
    /// The pool state could not be read.
    pub const ERROR: &str = "Error";
    pub const DELETION_FAILED: &str = "DeletionFailed";
    pub const INVALID: &str = "Invalid";
    pub const ERROR_DUPLICATE: &str = "ErrorDuplicate";
    /// Also allows create.
    pub const PENDING: &str = "Pending";
    /// Before the pool is created.
    pub const INIT: &str = "Init";
    pub const POOL_CREATION_FAILED: &str = "PoolCreationFailed";
}

/// Values of a CSPI condition's `type`.
pub mod condition_type {
    /// A disk or raid group was added, or a disk grew.
    pub const POOL_EXPANSION: &str = "PoolExpansion";
    /// A block device is being replaced.
    pub const DISK_REPLACEMENT: &str = "DiskReplacement";
    /// One or more disks are unavailable.
    pub const DISK_UNAVAILABLE: &str = "DiskUnavailable";
    /// The pool could not be imported.
    pub const POOL_LOST: &str = "PoolLost";
    /// Ours: the pool reached its roThresholdLimit and refuses writes (True) until space is
    /// freed or the pool grows.
    pub const POOL_READ_ONLY: &str = "PoolReadOnly";
}
