//! CStorPoolCluster `v1alpha1` (the 1.x schema): pools as typed raid groups, one type per group.

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::common::LegacyVersionDetails;
use crate::openebs_v1alpha1::null_as_default;

/// A 1.x CStorPoolCluster: pools across nodes, each turned into a CStorPoolInstance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorPoolCluster {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorPoolClusterSpec,
    #[serde(default)]
    pub status: CStorPoolClusterStatus,
    #[serde(default)]
    pub version_details: LegacyVersionDetails,
}

crate::cstor_resource!(CStorPoolCluster {
    group: "cstor.openebs.io",
    version: "v1alpha1",
    kind: "CStorPoolCluster",
    plural: "cstorpoolclusters",
    namespaced: true,
    short_names: ["cspc"],
    status_subresource: true,
    printer_columns: [("Age", "date", ".metadata.creationTimestamp", "", 0)],
    deprecation: "cstor.openebs.io/v1alpha1 CStorPoolCluster is deprecated; use cstor.openebs.io/v1",
    categories: ["cstor", "openebs"],
});

/// `spec` of a 1.x CStorPoolCluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolClusterSpec {
    /// One pool per node.
    #[serde(default, deserialize_with = "null_as_default")]
    pub pools: Vec<PoolSpec>,
    /// Default `cstor-pool` container resources, used when a pool's `poolConfig.resources` is
    /// null.
    #[serde(default)]
    pub resources: Option<ResourceRequirements>,
    /// Default sidecar resources.
    #[serde(default)]
    pub aux_resources: Option<ResourceRequirements>,
    /// Default tolerations, used when a pool's list is empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tolerations: Vec<Toleration>,
    /// Default priority class, used when a pool's is empty.
    #[serde(default)]
    pub priority_class_name: String,
}

/// One pool of a 1.x CSPC, on the node its selector picks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// Labels selecting exactly one node.
    #[serde(default, deserialize_with = "null_as_default")]
    pub node_selector: BTreeMap<String, String>,
    /// Every vdev of the pool: data, write cache, spare and read cache groups.
    #[serde(default, deserialize_with = "null_as_default")]
    pub raid_groups: Vec<RaidGroup>,
    #[serde(default)]
    pub pool_config: PoolConfig,
}

/// `poolConfig` of a 1.x pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolConfig {
    /// zpool cache file; empty means none (v1 has no such field).
    #[serde(default)]
    pub cache_file: String,
    /// Raid type of the groups whose `type` is empty (see [`pool_type`]).
    #[serde(default)]
    pub default_raid_group_type: String,
    /// Thin provisioning; v1 has `thickProvision = !overProvisioning`.
    #[serde(default)]
    pub over_provisioning: bool,
    /// Compression (`""`, `on`, `off`, `lz4`, …).
    #[serde(default)]
    pub compression: String,
    /// `cstor-pool` container resources.
    #[serde(default)]
    pub resources: Option<ResourceRequirements>,
    /// Sidecar resources.
    #[serde(default)]
    pub aux_resources: Option<ResourceRequirements>,
    /// Pool pod tolerations.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tolerations: Vec<Toleration>,
    /// Pool pod priority class; empty means the CSPC default.
    #[serde(default)]
    pub priority_class_name: String,
}

/// A 1.x raid group (vdev), typed and flagged by role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RaidGroup {
    /// `stripe` | `mirror` | `raidz` | `raidz2`; empty means `poolConfig.defaultRaidGroupType`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// A write-cache (log) group.
    #[serde(default)]
    pub is_write_cache: bool,
    /// A spare group.
    #[serde(default)]
    pub is_spare: bool,
    /// A read-cache group.
    #[serde(default)]
    pub is_read_cache: bool,
    /// The disks of the group.
    #[serde(default, deserialize_with = "null_as_default")]
    pub block_devices: Vec<CStorPoolClusterBlockDevice>,
}

impl RaidGroup {
    /// A data group: not write cache, spare or read cache.
    pub fn is_data(&self) -> bool {
        !self.is_write_cache && !self.is_spare && !self.is_read_cache
    }

    /// The group's raid type: its own `type`, else the pool's `defaultRaidGroupType`.
    pub fn effective_type<'a>(&'a self, config: &'a PoolConfig) -> &'a str {
        if self.type_.is_empty() {
            &config.default_raid_group_type
        } else {
            &self.type_
        }
    }
}

/// A disk of a 1.x raid group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolClusterBlockDevice {
    /// BlockDevice name.
    #[serde(default)]
    pub block_device_name: String,
    /// Capacity as a string (system-filled; v1 has bytes).
    #[serde(default)]
    pub capacity: String,
    /// Device link (system-filled).
    #[serde(default)]
    pub dev_link: String,
}

/// `status` of a 1.x CStorPoolCluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolClusterStatus {
    /// `Healthy`, `Degraded`, `Offline`, `Pending`, … (derived from v1's instance counts).
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub capacity: CStorPoolCapacityAttr,
}

/// Pool capacity strings (`status.capacity` of a 1.x CSPC or CSPI).
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

/// Raid group types (`type`, `poolConfig.defaultRaidGroupType`): the same strings as v1.
pub mod pool_type {
    pub const STRIPE: &str = "stripe";
    pub const MIRROR: &str = "mirror";
    pub const RAIDZ: &str = "raidz";
    pub const RAIDZ2: &str = "raidz2";
}

/// Values of `status.phase` of a 1.x CStorPoolCluster, as the conversion derives them.
pub mod cspc_phase {
    /// Every desired instance is healthy (and there is at least one).
    pub const HEALTHY: &str = "Healthy";
    /// Some but not all desired instances are healthy.
    pub const DEGRADED: &str = "Degraded";
    /// No desired instance is healthy.
    pub const OFFLINE: &str = "Offline";
    /// Otherwise.
    pub const PENDING: &str = "Pending";
}
