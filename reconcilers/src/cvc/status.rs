//! CVC status bookkeeping: condition types and reasons of ours, and the condition merge
//! (`observedGeneration` on every condition, `lastTransitionTime` only on a flip).
//! CVC conditions have no `status` field, so a flip is a new type or a changed reason.

use cstor_api::cstor_v1::CStorVolumeConfigCondition;

pub use cstor_runtime::reasons::cvc::{
    INVALID_CAPACITY, MIGRATION_NOT_SUPPORTED, NO_POOL_CLUSTER, POLICY_NOT_FOUND, POOL_PLACEMENT,
    PROVISIONING, REPLICA_SCALING, REPLICAS_SCALED, RESIZE_IN_PROGRESS, RESIZE_SUCCEEDED,
    SHRINK_NOT_SUPPORTED, WAITING_FOR_CLUSTER_IP, WAITING_FOR_HEALTHY_REPLICAS, WAITING_FOR_TARGET,
};

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

pub use cstor_runtime::conditions::{remove_condition, set_condition};
