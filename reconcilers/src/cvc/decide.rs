//! Pure decisions of a Bound volume: replica scaling (as the Go operators do it: one scale-down at a time, waiting
//! for the target to forget the removed replica) and resize (shrinking is refused).

use std::collections::BTreeMap;

use cstor_api::cstor_v1::{CStorVolume, CStorVolumeConfig};
use cstor_api::keys::labels;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

/// What the replica set of a Bound volume needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleOp {
    /// `replicaPoolInfo` and `status.poolInfo` name the same pools.
    None,
    /// New pools in the spec (in spec order).
    Up { add: Vec<String> },
    /// The first pool of the status that the spec dropped.
    Down { remove: String },
    /// Same count, different names: not supported.
    Migration,
}

/// Compares the desired pools (`spec.policy.replicaPoolInfo`) with `status.poolInfo` as sets.
pub fn scale_op(spec_pools: &[String], status_pools: &[String]) -> ScaleOp {
    let add: Vec<String> = spec_pools
        .iter()
        .filter(|p| !status_pools.contains(p))
        .cloned()
        .collect();
    let removed = status_pools.iter().find(|p| !spec_pools.contains(p));
    if add.is_empty() && removed.is_none() {
        return ScaleOp::None;
    }
    if spec_pools.len() > status_pools.len() {
        ScaleOp::Up { add }
    } else if spec_pools.len() < status_pools.len() {
        match removed {
            Some(r) => ScaleOp::Down { remove: r.clone() },
            None => ScaleOp::None,
        }
    } else {
        ScaleOp::Migration
    }
}

/// The pools of `status.poolInfo` that hold no CVR of the volume (`have`): replicas to make
/// again, in poolInfo order.
pub fn missing_replicas(
    pool_info: &[String],
    have: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    pool_info
        .iter()
        .filter(|p| !have.contains(*p))
        .cloned()
        .collect()
}

/// Replica ids of the target's `spec.replicaDetails.knownReplicas` that no CVR of the volume
/// holds (`ids`): replicas that are gone for good.
pub fn stale_known(
    spec_known: &BTreeMap<String, String>,
    ids: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    spec_known
        .keys()
        .filter(|k| !ids.contains(*k))
        .cloned()
        .collect()
}

/// The desiredReplicationFactor the CV must be raised to before a scale-up, if any.
pub fn scale_up_drf(cv: &CStorVolume, target: usize) -> Option<i64> {
    let target = i64::try_from(target).ok()?;
    (cv.spec.desired_replication_factor.unwrap_or(0) < target).then_some(target)
}

/// The `ReplicaScaling` condition (reason, message) while a scale-up from `from` to `to`
/// replicas is not finished: in progress, or failed with `errors`.
pub fn scale_up_progress(from: usize, to: usize, errors: &[String]) -> (&'static str, String) {
    use cstor_runtime::reasons::cvc::{SCALING_FAILED, SCALING_UP};
    if errors.is_empty() {
        (
            SCALING_UP,
            format!("scaling replicas from {from} to {to} in progress"),
        )
    } else {
        (
            SCALING_FAILED,
            format!(
                "scaling replicas from {from} to {to}: {}",
                errors.join("; ")
            ),
        )
    }
}

/// The next step of a scale-down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleDownStep {
    /// Lower the CV's desiredReplicationFactor and drop the replica from
    /// `spec.replicaDetails.knownReplicas`.
    UpdateVolume {
        drf: i64,
        known: BTreeMap<String, String>,
    },
    /// The target still lists the replica: wait (condition `ReplicaScaling`).
    WaitForTarget { message: String },
    /// The target keeps the replica because replicas that stay are not Healthy yet: dropping
    /// it now would leave fewer than consistencyFactor Healthy (condition `ReplicaScaling`,
    /// reason `WaitingForHealthyReplicas`).
    WaitForHealthy { message: String },
    /// The target has let go: delete the CVR (if still there) and record the new pool set.
    DeleteReplica,
}

/// The scale-down step for CVR `cvr` (replica id `replica_id`, `None` when the CVR is gone or
/// has no id yet), going from `from` to `to` replicas. A missing CVR never blocks (as in the Go operators).
pub fn scale_down_step(
    cv: &CStorVolume,
    cvr: &str,
    replica_id: Option<&str>,
    from: usize,
    to: usize,
) -> ScaleDownStep {
    let target = i64::try_from(to).unwrap_or(i64::MAX);
    let spec_known = cv
        .spec
        .replica_details
        .as_ref()
        .map(|d| d.known_replicas.clone())
        .unwrap_or_default();
    let drf = cv.spec.desired_replication_factor.unwrap_or(target);
    let id_in_spec = replica_id.is_some_and(|id| spec_known.contains_key(id));
    if drf > target || id_in_spec {
        let mut known = spec_known;
        if let Some(id) = replica_id {
            known.remove(id);
        }
        return ScaleDownStep::UpdateVolume {
            drf: drf.min(target),
            known,
        };
    }
    let status_known = cv
        .status
        .as_ref()
        .and_then(|s| s.replica_details.as_ref())
        .map(|d| d.known_replicas.clone())
        .unwrap_or_default();
    // By id when the CVR has one; else B's count test (only meaningful once the target keeps
    // spec.knownReplicas, so an empty spec list never blocks forever).
    let waiting = match replica_id {
        Some(id) => status_known.contains_key(id),
        None => !spec_known.is_empty() && status_known.len() > spec_known.len(),
    };
    if waiting {
        let healthy: Vec<&str> = cv
            .status
            .as_ref()
            .map(|s| {
                s.replica_statuses
                    .iter()
                    .filter(|r| r.mode == "Healthy")
                    .map(|r| r.id.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let not_healthy: Vec<&str> = spec_known
            .keys()
            .map(String::as_str)
            .filter(|id| !healthy.contains(id))
            .collect();
        if !not_healthy.is_empty() {
            return ScaleDownStep::WaitForHealthy {
                message: format!(
                    "scaling down volume replicas from {from} to {to} waits for replicas {} to be Healthy: {cvr} keeps serving until then, so the volume never has fewer than consistencyFactor Healthy replicas",
                    not_healthy.join(", ")
                ),
            };
        }
        let what = match replica_id {
            Some(id) => format!("replica {id} ({cvr})"),
            None => format!("the replica of {cvr}"),
        };
        return ScaleDownStep::WaitForTarget {
            message: format!(
                "scaling down volume replicas from {from} to {to}: waiting for the target to drop {what} from status.replicaDetails.knownReplicas ({} known, {} wanted)",
                status_known.len(),
                spec_known.len()
            ),
        };
    }
    ScaleDownStep::DeleteReplica
}

/// What a Bound volume's size needs.
#[derive(Clone, Debug, PartialEq)]
pub enum ResizeStep {
    /// `spec.capacity` equals `status.capacity`.
    Nothing,
    /// `spec.capacity` is below `status.capacity`: refused, nothing changes.
    Shrink { from: String, to: String },
    /// Raise the CV's and every CVR's `spec.capacity` to `to`.
    Grow { to: Quantity },
    /// The CV already asks for `to`; the target has not reported it yet (CVRs are still
    /// brought to `to` if one lags).
    InProgress { to: Quantity },
    /// The target reports the new size: `status.capacity = to`.
    Done { to: Quantity },
    /// A capacity is not a quantity.
    Invalid { message: String },
}

fn bytes(q: Option<&Quantity>) -> Option<u128> {
    q.and_then(|q| cstor_api::quantity::bytes(&q.0).ok())
        .map(u128::from)
}

/// The resize step from the CVC's `spec.capacity.storage` (`desired`), its
/// `status.capacity.storage` (`current`) and the CV.
pub fn resize_step(
    desired: Option<&Quantity>,
    current: Option<&Quantity>,
    cv: &CStorVolume,
) -> ResizeStep {
    let Some(want) = desired else {
        return ResizeStep::Invalid {
            message: "spec.capacity.storage is missing".into(),
        };
    };
    let Some(want_b) = bytes(Some(want)) else {
        return ResizeStep::Invalid {
            message: format!("spec.capacity.storage {:?} is not a quantity", want.0),
        };
    };
    let Some(have) = current else {
        return ResizeStep::Nothing;
    };
    let Some(have_b) = bytes(Some(have)) else {
        return ResizeStep::Invalid {
            message: format!("status.capacity.storage {:?} is not a quantity", have.0),
        };
    };
    if want_b < have_b {
        return ResizeStep::Shrink {
            from: have.0.clone(),
            to: want.0.clone(),
        };
    }
    if want_b == have_b {
        return ResizeStep::Nothing;
    }
    let reported = bytes(cv.status.as_ref().and_then(|s| s.capacity.as_ref())).unwrap_or(0);
    if reported >= want_b {
        return ResizeStep::Done { to: want.clone() };
    }
    let asked = bytes(cv.spec.capacity.as_ref()).unwrap_or(0);
    if asked >= want_b {
        ResizeStep::InProgress { to: want.clone() }
    } else {
        ResizeStep::Grow { to: want.clone() }
    }
}

/// What a Pending CVC asks for, once its inputs are known to be usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionRequest {
    /// The CStorPoolCluster whose pools hold the replicas (label `openebs.io/cstor-pool-cluster`).
    pub cspc: String,
    /// `spec.provision.capacity.storage`, as written.
    pub capacity: String,
    pub replica_count: usize,
}

/// Why a Pending CVC can't proceed: the `Provisioning` condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub reason: &'static str,
    pub message: String,
}

/// Checks a Pending CVC's own inputs (each problem a condition, never a panic): the pool
/// cluster label, both capacities positive quantities, at least one replica.
pub fn provision_request(cvc: &CStorVolumeConfig) -> Result<ProvisionRequest, Pending> {
    let Some(cspc) = cvc
        .labels()
        .get(labels::CSTOR_POOL_CLUSTER)
        .filter(|c| !c.is_empty())
        .cloned()
    else {
        return Err(Pending {
            reason: super::status::NO_POOL_CLUSTER,
            message: format!(
                "the CVC has no {} label naming the CStorPoolCluster to place replicas on",
                labels::CSTOR_POOL_CLUSTER
            ),
        });
    };
    let storage = |map: &BTreeMap<String, Quantity>| {
        map.get("storage").map(|q| q.0.clone()).unwrap_or_default()
    };
    let capacity = storage(&cvc.spec.provision.capacity);
    let spec_capacity = storage(&cvc.spec.capacity);
    for (field, value) in [
        ("spec.provision.capacity.storage", &capacity),
        ("spec.capacity.storage", &spec_capacity),
    ] {
        if cstor_api::quantity::bytes(value)
            .ok()
            .is_none_or(|b| b == 0)
        {
            return Err(Pending {
                reason: super::status::INVALID_CAPACITY,
                message: format!("{field} {value:?} is not a positive quantity"),
            });
        }
    }
    let replica_count = match usize::try_from(cvc.spec.provision.replica_count) {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(Pending {
                reason: cstor_runtime::reasons::cvc::INVALID_REPLICA_COUNT,
                message: format!(
                    "spec.provision.replicaCount is {}; it must be at least 1",
                    cvc.spec.provision.replica_count
                ),
            });
        }
    };
    Ok(ProvisionRequest {
        cspc,
        capacity,
        replica_count,
    })
}
