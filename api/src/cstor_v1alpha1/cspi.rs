//! CStorPoolInstance `v1alpha1` (the 1.x schema): a 1.x pool spec plus the host, and the old
//! CStorPool status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::cspc::{CStorPoolCapacityAttr, PoolConfig, RaidGroup};
use crate::common::LegacyVersionDetails;
use crate::openebs_v1alpha1::null_as_default;

/// A 1.x CStorPoolInstance: one pool on one node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorPoolInstance {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorPoolInstanceSpec,
    #[serde(default)]
    pub status: CStorPoolInstanceStatus,
    #[serde(default)]
    pub version_details: LegacyVersionDetails,
}

crate::cstor_resource!(CStorPoolInstance {
    group: "cstor.openebs.io",
    version: "v1alpha1",
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
        ("Status", "string", ".status.phase", "pool state", 0),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    deprecation: "cstor.openebs.io/v1alpha1 CStorPoolInstance is deprecated; use cstor.openebs.io/v1",
    categories: ["cstor", "openebs"],
});

/// `spec` of a 1.x CStorPoolInstance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolInstanceSpec {
    /// Name of the node the pool is created on.
    #[serde(default)]
    pub host_name: String,
    /// Labels selecting the node; copied from the pool spec.
    #[serde(default, deserialize_with = "null_as_default")]
    pub node_selector: BTreeMap<String, String>,
    /// The pool config, with the CSPC defaults applied.
    #[serde(default)]
    pub pool_config: PoolConfig,
    /// Every vdev of the pool. The JSON name is singular (`raidGroup`) in the 1.x schema.
    #[serde(rename = "raidGroup", default, deserialize_with = "null_as_default")]
    pub raid_groups: Vec<RaidGroup>,
}

/// `status` of a 1.x CStorPoolInstance (the old CStorPool status).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorPoolInstanceStatus {
    /// Pool state.
    #[serde(default)]
    pub phase: String,
    /// Pool capacity strings.
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
