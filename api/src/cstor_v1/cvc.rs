//! CStorVolumeConfig (cvc): the claim for a cStor volume, made by the CSI driver for a PVC; the
//! cvc-operator turns it into a CStorVolume, its target and its replicas.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::cvp::CStorVolumePolicySpec;
use crate::common::VersionDetails;

/// A CStorVolumeConfig, named after the PV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorVolumeConfig {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorVolumeConfigSpec,
    /// Where the volume is attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<CStorVolumeConfigPublish>,
    /// Required in the Go CRD; optional here so objects without it are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CStorVolumeConfigStatus>,
    /// Required in the Go CRD; optional here so objects without it are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_details: Option<VersionDetails>,
}

crate::cstor_resource!(CStorVolumeConfig {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorVolumeConfig",
    plural: "cstorvolumeconfigs",
    namespaced: true,
    short_names: ["cvc"],
    status_subresource: true,
    printer_columns: [
        (
            "Capacity",
            "string",
            ".status.capacity.storage",
            "actual volume size",
            0
        ),
        ("Status", "string", ".status.phase", "provisioning phase", 0),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorVolumeConfig.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeConfigSpec {
    /// Current volume size (`storage`); raising it resizes the volume.
    pub capacity: BTreeMap<String, Quantity>,
    /// The CStorVolume made for this claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cstor_volume_ref: Option<ObjectReference>,
    /// `srcVolume@snapshot`, only for clones.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cstor_volume_source: String,
    /// Initial settings; immutable.
    pub provision: VolumeProvision,
    /// The resolved volume policy.
    pub policy: CStorVolumePolicySpec,
}

/// `spec.provision` of a CVC: what the volume was created with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeProvision {
    /// Initial replica capacity (`storage`).
    pub capacity: BTreeMap<String, Quantity>,
    /// Initial replica count; never updated by scaling, used for validation.
    pub replica_count: i64,
}

/// `publish` of a CVC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeConfigPublish {
    /// Node the volume is attached to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_id: String,
}

/// `status` of a CStorVolumeConfig.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeConfigStatus {
    /// `Pending`, `Bound` or `Failed`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// CSPIs that currently hold a replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pool_info: Vec<String>,
    /// Actual volume size (`storage`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, Quantity>,
    /// Conditions; the JSON name is singular (`condition`).
    #[serde(rename = "condition", default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CStorVolumeConfigCondition>,
}

/// A CVC condition (types in `cvc::condition_type`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeConfigCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// Last time the condition was probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Short CamelCase reason.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// Ours (docs/architecture.md): the generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Values of `status.phase`.
pub mod phase {
    /// Waiting for the CStorVolume to be created and bound.
    pub const PENDING: &str = "Pending";
    /// The CStorVolume exists and is bound to the claim.
    pub const BOUND: &str = "Bound";
    /// Provisioning failed.
    pub const FAILED: &str = "Failed";
}

/// Values of a CVC condition's `type`.
pub mod condition_type {
    pub const RESIZING: &str = "Resizing";
    pub const VOLUME_RESIZE_FAILED: &str = "VolumeResizeFailed";
    pub const VOLUME_RESIZE_SUCCESSFUL: &str = "VolumeResizeSuccessful";
    pub const VOLUME_RESIZE_PENDING: &str = "VolumeResizePending";
}
