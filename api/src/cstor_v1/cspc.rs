//! CStorPoolCluster (cspc): the user's declaration of pools, one per node.

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::common::VersionDetails;

/// A CStorPoolCluster: pools across nodes, each turned into a CStorPoolInstance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorPoolCluster {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorPoolClusterSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CStorPoolClusterStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_details: Option<VersionDetails>,
}

crate::cstor_resource!(CStorPoolCluster {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorPoolCluster",
    plural: "cstorpoolclusters",
    namespaced: true,
    short_names: ["cspc"],
    status_subresource: true,
    printer_columns: [
        (
            "HealthyInstances",
            "integer",
            ".status.healthyInstances",
            "CSPIs whose pool is ONLINE",
            0
        ),
        (
            "ProvisionedInstances",
            "integer",
            ".status.provisionedInstances",
            "CSPIs that exist",
            0
        ),
        (
            "DesiredInstances",
            "integer",
            ".status.desiredInstances",
            "pools in the spec",
            0
        ),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorPoolCluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolClusterSpec {
    /// One pool per node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolSpec>,
    /// Default `cstor-pool` container resources, used when a pool's `poolConfig.resources` is nil.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Default sidecar resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_resources: Option<ResourceRequirements>,
    /// Default tolerations, used if a pool's list is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Default priority class, used if the pool's is nil.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
}

/// One pool of a CSPC, copied into its CSPI's spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// Labels selecting exactly one node.
    pub node_selector: BTreeMap<String, String>,
    /// Data vdevs.
    pub data_raid_groups: Vec<RaidGroup>,
    /// Write-cache vdevs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_cache_raid_groups: Option<Vec<RaidGroup>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_config: Option<PoolConfig>,
}

/// `poolConfig` of a pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolConfig {
    /// `stripe` | `mirror` | `raidz` | `raidz2`.
    pub data_raid_group_type: String,
    /// Same values; required by the webhook when write-cache groups exist.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub write_cache_group_type: String,
    /// Thick provisioning (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thick_provision: bool,
    /// "", on, off, lzjb, gzip, zle, lz4; "" means lz4.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// nil means the CSPC default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Percent used at which the pool turns read-only; nil means 85, 100 never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ro_threshold_limit: Option<i32>,
}

/// A raid group (vdev).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RaidGroup {
    pub block_devices: Vec<CStorPoolInstanceBlockDevice>,
}

/// A disk of a raid group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolInstanceBlockDevice {
    /// BlockDevice name.
    pub block_device_name: String,
    /// Bytes; filled by the system.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub capacity: u64,
    /// Filled by the system.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dev_link: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `status` of a CStorPoolCluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolClusterStatus {
    /// CSPIs that exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_instances: Option<i32>,
    /// Pools in the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_instances: Option<i32>,
    /// CSPIs that are healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CStorPoolClusterCondition>,
}

/// A CSPC condition (type `PoolManagerAvailable`, and ours).
pub type CStorPoolClusterCondition = crate::common::PoolCondition;

/// Pool raid types (`poolConfig.dataRaidGroupType`).
pub mod pool_type {
    pub const STRIPE: &str = "stripe";
    pub const MIRROR: &str = "mirror";
    pub const RAIDZ: &str = "raidz";
    pub const RAIDZ2: &str = "raidz2";
}

/// `roThresholdLimit` of a pool that leaves it unset: the percent used at which it turns
/// read-only. One definition for the webhook's defaults, the cspc-operator and the pool-manager.
pub const DEFAULT_RO_THRESHOLD: i32 = 85;
/// The compression a pool gets when it leaves it empty (the pool-manager's meaning of "").
pub const DEFAULT_COMPRESSION: &str = "lz4";

/// The BlockDevice names of raid groups, data groups first, then write-cache groups.
fn names<'a>(
    data: &'a [RaidGroup],
    write_cache: Option<&'a Vec<RaidGroup>>,
) -> impl Iterator<Item = &'a str> {
    data.iter()
        .chain(write_cache.into_iter().flatten())
        .flat_map(RaidGroup::block_device_names)
}

impl RaidGroup {
    /// The BlockDevice names of this group, in spec order.
    pub fn block_device_names(&self) -> impl Iterator<Item = &str> {
        self.block_devices
            .iter()
            .map(|b| b.block_device_name.as_str())
    }
}

impl PoolSpec {
    /// Every BlockDevice of the pool: data groups, then write-cache groups, in spec order
    /// (duplicates kept: the webhook reports them).
    pub fn block_device_names(&self) -> impl Iterator<Item = &str> {
        names(
            &self.data_raid_groups,
            self.write_cache_raid_groups.as_ref(),
        )
    }
}

impl super::cspi::CStorPoolInstanceSpec {
    /// Every BlockDevice of the pool instance: data groups, then write-cache groups.
    pub fn block_device_names(&self) -> impl Iterator<Item = &str> {
        names(
            &self.data_raid_groups,
            self.write_cache_raid_groups.as_ref(),
        )
    }
}

impl CStorPoolClusterSpec {
    /// A pool's config with the CSPC-wide defaults applied: what the mutating webhook writes
    /// into the CSPC and what the cspc-operator writes into the CSPI (one rule, so they agree).
    /// resources and auxResources come from the CSPC when unset; tolerations when unset or
    /// empty and the CSPC has some; priorityClassName when unset and the CSPC names one;
    /// roThresholdLimit [`DEFAULT_RO_THRESHOLD`]; compression [`DEFAULT_COMPRESSION`] when
    /// empty. Nothing the pool sets is overridden, and applying it twice changes nothing.
    pub fn effective_pool_config(&self, pool: &PoolSpec) -> PoolConfig {
        let mut c = pool.pool_config.clone().unwrap_or_default();
        if c.resources.is_none() {
            c.resources = self.resources.clone();
        }
        if c.aux_resources.is_none() {
            c.aux_resources = self.aux_resources.clone();
        }
        if c.tolerations.as_ref().is_none_or(Vec::is_empty) && !self.tolerations.is_empty() {
            c.tolerations = Some(self.tolerations.clone());
        }
        if c.priority_class_name.is_none() && !self.priority_class_name.is_empty() {
            c.priority_class_name = Some(self.priority_class_name.clone());
        }
        if c.ro_threshold_limit.is_none() {
            c.ro_threshold_limit = Some(DEFAULT_RO_THRESHOLD);
        }
        if c.compression.is_empty() {
            c.compression = DEFAULT_COMPRESSION.into();
        }
        c
    }
}
