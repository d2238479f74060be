//! MigrationTask (mtask) and UpgradeTask: one-shot jobs recorded as objects, with a status
//! listing each step (docs/migration.md "What each step does").

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A MigrationTask: moves one SPC pool (`spec.cstorPool`) or one volume (`spec.cstorVolume`)
/// from the old operators to cStor v1. Exactly one member of the spec is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct MigrationTask {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: MigrationTaskSpec,
    #[serde(default)]
    pub status: MigrationTaskStatus,
}

crate::cstor_resource!(MigrationTask {
    group: "openebs.io",
    version: "v1alpha1",
    kind: "MigrationTask",
    plural: "migrationtasks",
    namespaced: true,
    short_names: ["mtask"],
    status_subresource: true,
    printer_columns: [
        (
            "Phase",
            "string",
            ".status.phase",
            "Started, Success or Error",
            0
        ),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    categories: ["openebs"],
});

/// `spec` of a MigrationTask: one of `cstorPool` / `cstorVolume`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationTaskSpec {
    /// The volume (PV) to migrate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cstor_volume: Option<MigrateCStorVolume>,
    /// The pool (SPC) to migrate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cstor_pool: Option<MigrateCStorPool>,
}

/// `spec.cstorVolume` of a MigrationTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrateCStorVolume {
    /// Name of the PV of the volume.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pv_name: String,
}

/// `spec.cstorPool` of a MigrationTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrateCStorPool {
    /// Name of the StoragePoolClaim to migrate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spc_name: String,
    /// Name of the CStorPoolCluster to create; empty means the SPC's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rename: String,
}

/// `status` of a MigrationTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationTaskStatus {
    /// `Started` | `Success` | `Error` (see [`task_phase`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// When the migration started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the migration ended (`Success` or `Error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_time: Option<Time>,
    /// One entry per step of the current attempt (see [`migration_step`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migration_detailed_statuses: Vec<TaskStepStatus>,
    /// Failed attempts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

/// An UpgradeTask: upgrades one resource from `fromVersion` to `toVersion`. Exactly one of the
/// resource members of the spec is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct UpgradeTask {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: UpgradeTaskSpec,
    #[serde(default)]
    pub status: UpgradeTaskStatus,
}

crate::cstor_resource!(UpgradeTask {
    group: "openebs.io",
    version: "v1alpha1",
    kind: "UpgradeTask",
    plural: "upgradetasks",
    namespaced: true,
    short_names: [],
    status_subresource: true,
    printer_columns: [
        (
            "Phase",
            "string",
            ".status.phase",
            "Started, Success or Error",
            0
        ),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    categories: ["openebs"],
});

/// `spec` of an UpgradeTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeTaskSpec {
    /// Current version of the resource.
    #[serde(default)]
    pub from_version: String,
    /// Target version; must be the control-plane version.
    #[serde(default)]
    pub to_version: String,
    /// Options for the whole upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<UpgradeOptions>,
    /// A Jiva volume (not handled by cStor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jiva_volume: Option<UpgradeVolume>,
    /// A cStor volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cstor_volume: Option<UpgradeVolume>,
    /// An old CStorPool (in the API, never handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cstor_pool: Option<UpgradeCStorPool>,
    /// An old StoragePoolClaim (in the API, never handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_pool_claim: Option<UpgradeStoragePoolClaim>,
    /// A CStorPoolInstance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cstor_pool_instance: Option<UpgradeCStorPoolInstance>,
    /// A CStorPoolCluster (upgraded as one task per CSPI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cstor_pool_cluster: Option<UpgradeCStorPoolCluster>,
    /// Registry prefix of the images; empty keeps the current one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_prefix: String,
    /// Image tag; empty means `toVersion`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_tag: String,
}

/// `spec.options` of an UpgradeTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeOptions {
    /// Maximum seconds to wait at any step.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
}

/// `options` of an UpgradeTask resource member.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceOptions {
    /// Steps whose failure is ignored (see [`upgrade_step`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_steps_on_error: Vec<String>,
}

/// `spec.cstorVolume` / `spec.jivaVolume` of an UpgradeTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeVolume {
    /// Name of the PV of the volume.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pv_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<ResourceOptions>,
}

/// `spec.cstorPool` of an UpgradeTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeCStorPool {
    /// Name of the CStorPool.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pool_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<ResourceOptions>,
}

/// `spec.storagePoolClaim` of an UpgradeTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStoragePoolClaim {
    /// Name of the StoragePoolClaim.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spc_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<ResourceOptions>,
}

/// `spec.cstorPoolInstance` of an UpgradeTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeCStorPoolInstance {
    /// Name of the CStorPoolInstance.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cspi_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<ResourceOptions>,
}

/// `spec.cstorPoolCluster` of an UpgradeTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeCStorPoolCluster {
    /// Name of the CStorPoolCluster.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cspc_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<ResourceOptions>,
}

/// `status` of an UpgradeTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeTaskStatus {
    /// `Started` | `Success` | `Error` (see [`task_phase`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// When the upgrade started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the upgrade ended (`Success` or `Error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_time: Option<Time>,
    /// One entry per step of the current attempt (see [`upgrade_step`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrade_detailed_statuses: Vec<TaskStepStatus>,
    /// Failed attempts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

/// One step of a MigrationTask (`migrationDetailedStatuses[]`) or UpgradeTask
/// (`upgradeDetailedStatuses[]`); both have this shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStepStatus {
    /// The step ([`migration_step`] / [`upgrade_step`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub step: String,
    /// When the step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the entry was last written.
    #[serde(
        rename = "lastUpdatedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_updated_time: Option<Time>,
    /// `Waiting` | `Errored` | `Completed` (see [`step_phase`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Why the step is in this phase, for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Why the step failed, CamelCase, for machines.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl TaskStepStatus {
    /// The rule the Go tools check before every status write: step and phase are set, a message
    /// is given unless the phase is `Waiting`, and a reason when it is `Errored`.
    pub fn is_valid(&self) -> bool {
        !self.step.is_empty()
            && !self.phase.is_empty()
            && (self.phase == step_phase::WAITING || !self.message.is_empty())
            && (self.phase != step_phase::ERRORED || !self.reason.is_empty())
    }
}

/// Values of `status.phase` of a MigrationTask or UpgradeTask.
pub mod task_phase {
    pub const STARTED: &str = "Started";
    pub const SUCCESS: &str = "Success";
    pub const ERROR: &str = "Error";
}

/// Values of a step's `phase`.
pub mod step_phase {
    /// Running, or (quirk of the Go migrate tool) failed with a message and reason.
    pub const WAITING: &str = "Waiting";
    pub const ERRORED: &str = "Errored";
    pub const COMPLETED: &str = "Completed";
}

/// Steps of a MigrationTask.
pub mod migration_step {
    pub const PRE_MIGRATION: &str = "Pre-migration";
    pub const MIGRATE: &str = "Migrate";
}

/// Steps of an UpgradeTask.
pub mod upgrade_step {
    pub const PRE_UPGRADE: &str = "PRE_UPGRADE";
    pub const TARGET_UPGRADE: &str = "TARGET_UPGRADE";
    pub const REPLICA_UPGRADE: &str = "REPLICA_UPGRADE";
    pub const VERIFY: &str = "VERIFY";
    pub const ROLLBACK: &str = "ROLLBACK";
    pub const POOL_INSTANCE_UPGRADE: &str = "POOL_INSTANCE_UPGRADE";
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}
