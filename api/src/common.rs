//! Types shared by several kinds: version details and condition status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `versionDetails` of the v1 kinds (CSPC, CSPI, CV, CVR, CVC): every field omitempty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionDetails {
    /// Upgrade automatically.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_upgrade: bool,
    /// Target (control-plane) version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desired: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<VersionStatus>,
}

/// `versionDetails.status` (v1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    /// All children upgraded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dependents_upgraded: bool,
    /// Current version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current: String,
    /// `Reconciled` | `ReconcileInProgress` | `ReconcilePending`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
}

/// `versionDetails` of maya's legacy v1alpha1 kinds (SPC, CSP, old CV/CVR): the same JSON names,
/// written without omitempty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyVersionDetails {
    #[serde(default)]
    pub auto_upgrade: bool,
    #[serde(default)]
    pub desired: String,
    #[serde(default)]
    pub status: LegacyVersionStatus,
}

/// `versionDetails.status` of maya's legacy kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyVersionStatus {
    #[serde(default)]
    pub dependents_upgraded: bool,
    #[serde(default)]
    pub current: String,
    #[serde(default)]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default)]
    pub last_update_time: Option<Time>,
}

/// `True`, `False` or `Unknown`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

// One type for CSPC and CSPI (identical on the wire), so one helper computes both kinds'
// conditions; `observedGeneration` is ours (docs/architecture.md).
/// A pool condition: type, status (True/False/Unknown), times, reason, message and the
/// generation it was computed for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
