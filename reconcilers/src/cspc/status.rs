//! CSPC status (as the Go operators write it, with docs/pools.md's conditions): instance counts, `PoolManagerAvailable`
//! and `PoolsProvisioned`; a condition keeps its `lastTransitionTime` unless its status flips,
//! and is left untouched entirely when nothing about it changed (so a no-op reconcile writes
//! nothing new).

use cstor_api::common::{ConditionStatus, PoolCondition};
use cstor_api::cstor_v1::CStorPoolClusterStatus;
use cstor_api::cstor_v1::cspi::phase;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use cstor_runtime::reasons::cspc::{
    ALL_PROVISIONED, CLAIMS_PENDING, MIN_AVAILABLE, MIN_UNAVAILABLE, NODE_NOT_FOUND,
    POOL_DEPROVISIONING, POOL_MANAGER_AVAILABLE, POOLS_PROVISIONED, REPLICAS_ON_POOL,
};

/// One existing CSPI of the CSPC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    /// Its pool-manager Deployment has `readyReplicas ≥ 1`.
    pub manager_ready: bool,
    /// `status.phase` of the CSPI.
    pub phase: String,
    /// Has a deletionTimestamp (not counted as provisioned).
    pub deleting: bool,
}

/// Why pools are not (all) provisioned, each a list of human-readable items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    pub node_not_found: Vec<String>,
    /// "`<bdc>` for `<bd>` on `<host>`: `<reason>`" items.
    pub claims_pending: Vec<String>,
    pub replicas_on_pool: Vec<String>,
    pub deprovisioning: Vec<String>,
}

/// The `PoolsProvisioned` item of one pending claim.
pub fn pending_item(claim: Option<&str>, bd: &str, host: &str, reason: &str) -> String {
    match claim {
        Some(c) => format!("{c} for {bd} on {host}: {reason}"),
        None => format!("{bd} on {host}: {reason}"),
    }
}

/// Everything the status is computed from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusInput {
    pub desired: usize,
    pub instances: Vec<Instance>,
    pub problems: Problems,
    pub generation: Option<i64>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The new status from `input`, the `previous` status and the time `now`.
pub fn cspc_status(
    input: &StatusInput,
    previous: Option<&CStorPoolClusterStatus>,
    now: &Time,
) -> CStorPoolClusterStatus {
    let live: Vec<&Instance> = input.instances.iter().filter(|i| !i.deleting).collect();
    let healthy = live
        .iter()
        .filter(|i| i.manager_ready && i.phase == phase::ONLINE)
        .count();
    let not_ready: Vec<&str> = live
        .iter()
        .filter(|i| !i.manager_ready)
        .map(|i| i.name.as_str())
        .collect();
    let manager = if not_ready.is_empty() {
        condition(
            POOL_MANAGER_AVAILABLE,
            ConditionStatus::True,
            MIN_AVAILABLE,
            "Pool manager(s) have minimum available pod".into(),
            input.generation,
        )
    } else {
        condition(
            POOL_MANAGER_AVAILABLE,
            ConditionStatus::False,
            MIN_UNAVAILABLE,
            format!(
                "Pool manager(s): {} :does not have minimum available pod",
                not_ready.join(" ")
            ),
            input.generation,
        )
    };
    let p = &input.problems;
    let categories = [
        (NODE_NOT_FOUND, &p.node_not_found),
        (CLAIMS_PENDING, &p.claims_pending),
        (REPLICAS_ON_POOL, &p.replicas_on_pool),
        (POOL_DEPROVISIONING, &p.deprovisioning),
    ];
    let reason = categories
        .iter()
        .find(|(_, items)| !items.is_empty())
        .map(|(r, _)| *r);
    let provisioned = match reason {
        Some(reason) => {
            let message = categories
                .iter()
                .flat_map(|(_, items)| items.iter().cloned())
                .collect::<Vec<_>>()
                .join("; ");
            condition(
                POOLS_PROVISIONED,
                ConditionStatus::False,
                reason,
                message,
                input.generation,
            )
        }
        None if live.len() < input.desired => condition(
            POOLS_PROVISIONED,
            ConditionStatus::False,
            CLAIMS_PENDING,
            format!("{}/{} pools provisioned", live.len(), input.desired),
            input.generation,
        ),
        None => condition(
            POOLS_PROVISIONED,
            ConditionStatus::True,
            ALL_PROVISIONED,
            format!("All {} pools are provisioned", input.desired),
            input.generation,
        ),
    };
    let mut conditions = previous.map(|s| s.conditions.clone()).unwrap_or_default();
    set_condition(&mut conditions, manager, now);
    set_condition(&mut conditions, provisioned, now);
    CStorPoolClusterStatus {
        provisioned_instances: Some(count(live.len())),
        desired_instances: Some(count(input.desired)),
        healthy_instances: Some(count(healthy)),
        conditions,
    }
}

fn condition(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> PoolCondition {
    PoolCondition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_update_time: None,
        last_transition_time: None,
    }
}

pub use cstor_runtime::conditions::set_condition;

/// The conditions of `new` whose status, reason or message differ from `old` (for Events).
pub fn changed_conditions<'a>(
    old: &[PoolCondition],
    new: &'a [PoolCondition],
) -> Vec<&'a PoolCondition> {
    new.iter()
        .filter(|n| {
            !old.iter().any(|o| {
                o.type_ == n.type_
                    && o.status == n.status
                    && o.reason == n.reason
                    && o.message == n.message
            })
        })
        .collect()
}
