//! CVC status bookkeeping: condition types and reasons of ours, and the condition merge
//! (spec A.1: `observedGeneration` on every condition, `lastTransitionTime` only on a flip).
//! CVC conditions have no `status` field, so a flip is a new type or a changed reason.

use cstor_api::cstor_v1::CStorVolumeConfigCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Condition types (ours next to B's `Resizing`, `VolumeResizeSuccessful`, `VolumeResizeFailed`).
pub const POOL_PLACEMENT: &str = "PoolPlacement";
pub const REPLICA_SCALING: &str = "ReplicaScaling";
pub const PROVISIONING: &str = "Provisioning";

/// `ReplicaScaling` reasons.
pub const SCALING_UP: &str = "ScalingUp";
pub const WAITING_FOR_TARGET: &str = "WaitingForTarget";
pub const REPLICAS_SCALED: &str = "ReplicasScaled";
pub const MIGRATION_NOT_SUPPORTED: &str = "MigrationNotSupported";
pub const SCALING_FAILED: &str = "ScalingFailed";

/// Resize reasons.
pub const SHRINK_NOT_SUPPORTED: &str = "ShrinkNotSupported";
pub const RESIZE_IN_PROGRESS: &str = "ResizeInProgress";
pub const RESIZE_SUCCEEDED: &str = "ResizeSucceeded";
pub const INVALID_CAPACITY: &str = "InvalidCapacity";

/// `Provisioning` reasons (the CVC stays Pending).
pub const POLICY_NOT_FOUND: &str = "PolicyNotFound";
pub const NO_POOL_CLUSTER: &str = "NoPoolCluster";
pub const WAITING_FOR_CLUSTER_IP: &str = "WaitingForClusterIP";

/// A condition without times.
pub fn condition(
    type_: &str,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> CStorVolumeConfigCondition {
    CStorVolumeConfigCondition {
        type_: type_.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_probe_time: None,
        last_transition_time: None,
    }
}

/// Sets `new` into `conditions`; `true` when something changed. Identical → untouched; same
/// reason → old `lastTransitionTime` kept, `lastProbeTime` = now; new type or reason → both now.
pub fn set_condition(
    conditions: &mut Vec<CStorVolumeConfigCondition>,
    mut new: CStorVolumeConfigCondition,
    now: &Time,
) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.reason == new.reason
                && old.message == new.message
                && old.observed_generation == new.observed_generation
            {
                return false;
            }
            new.last_probe_time = Some(now.clone());
            new.last_transition_time = if old.reason == new.reason {
                old.last_transition_time
                    .clone()
                    .or_else(|| Some(now.clone()))
            } else {
                Some(now.clone())
            };
            *old = new;
            true
        }
        None => {
            new.last_probe_time = Some(now.clone());
            new.last_transition_time = Some(now.clone());
            conditions.push(new);
            true
        }
    }
}

/// Drops the conditions of `type_`; `true` when one was there.
pub fn remove_condition(conditions: &mut Vec<CStorVolumeConfigCondition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}
