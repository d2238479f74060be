//! CStorVolumePolicy (cvp): target and replica settings for volumes, referred to by a CVC's
//! annotation `openebs.io/volume-policy` or a StorageClass parameter `cstorVolumePolicy`. The
//! resolved spec is copied into each CVC's `spec.policy`.

use k8s_openapi::api::core::v1::{PodAffinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A CStorVolumePolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorVolumePolicy {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorVolumePolicySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CStorVolumePolicyStatus>,
}

crate::cstor_resource!(CStorVolumePolicy {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorVolumePolicy",
    plural: "cstorvolumepolicies",
    namespaced: true,
    short_names: ["cvp"],
    status_subresource: false,
    printer_columns: [],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorVolumePolicy, also a CVC's `spec.policy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumePolicySpec {
    /// Replica placement at provisioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<Provision>,
    /// The iSCSI target (cstor-istgt) pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,
    /// The volume replicas (zvols).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaSpec>,
    /// Pins replicas to named CSPIs; its length must equal the replica count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_pool_info: Vec<ReplicaPoolInfo>,
}

/// `spec.provision` of a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provision {
    /// Spread replicas across CSPIs by topology, preferring the node the app is published on.
    pub replica_affinity: bool,
    /// Volume block size in bytes: a power of 2 from 512 to 128 KiB (default 4 KiB); fixed once
    /// written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
}

/// `spec.target` of a policy: the target Deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// iSCSI queue depth (outstanding IOs from the initiator).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub queue_depth: String,
    /// Threads working the queue (Go `IOWorkers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lu_workers: Option<i64>,
    /// Run the exporter sidecar.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monitor: bool,
    /// Most replicas allowed to connect to the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i64>,
    /// Resources of the `cstor-istgt` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Resources of the sidecars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_resources: Option<ResourceRequirements>,
    /// Tolerations of the target pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Pod affinity of the target pod (only pod affinity, not a full `Affinity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<PodAffinity>,
    /// Node labels for the target pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Priority class of the target pod; none when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
}

/// `spec.replica` of a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    /// Threads executing client IOs (Go `IOWorkers`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zvol_workers: String,
    /// ZFS compression: on|off|gzip|gzip-N|lz4|lzjb|zle.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compression: String,
}

/// One entry of `spec.replicaPoolInfo`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaPoolInfo {
    /// CSPI name.
    pub pool_name: String,
}

/// `status` of a CStorVolumePolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumePolicyStatus {
    /// Free-form.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
}
