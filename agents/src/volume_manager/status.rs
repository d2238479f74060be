//! Pure decisions of the volume-manager: where a CVR's replica file is, which CVRs belong in
//! the fan-out, the CV phase and `replicaStatuses` from the fan-out's replicas, and the CV
//! spec/status edits of the Go operators (knownReplicas, replicationFactor, consistencyFactor).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cstor_api::cstor_v1::cv::{CStorVolume, ReplicaStatus, phase};
use cstor_api::cstor_v1::cvr::{self, CStorVolumeReplica};
use cstor_api::keys;
use kube::ResourceExt;

use super::fanout::{ReplicaInfo, ReplicaState};

/// CVR annotation with the absolute path of the replica's lun file on its node (ours).
pub const REPLICA_LUN_ANNOTATION: &str = "cstor.openebs.io/replica-lun";

/// `CSTOR_NODE_ROOTS` (`node=/proc/<pid>/root,…`) as a map; malformed entries are skipped.
pub fn parse_node_roots(s: &str) -> BTreeMap<String, PathBuf> {
    s.split(',')
        .filter_map(|e| {
            let (node, root) = e.split_once('=')?;
            let (node, root) = (node.trim(), root.trim());
            (!node.is_empty() && !root.is_empty()).then(|| (node.to_string(), root.into()))
        })
        .collect()
}

/// The replica id of a CVR (`spec.replicaid`), None while the pool-manager has not set it.
pub fn replica_id(cvr: &CStorVolumeReplica) -> Option<String> {
    let id = cvr.spec.replica_id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Where this process reaches a CVR's lun file: the annotated path under the node's root
/// from `node_roots`, or the path as it is. None while the annotation is missing.
pub fn replica_path(
    cvr: &CStorVolumeReplica,
    node_roots: &BTreeMap<String, PathBuf>,
) -> Option<PathBuf> {
    let lun = cvr.annotations().get(REPLICA_LUN_ANNOTATION)?.trim();
    if lun.is_empty() {
        return None;
    }
    let node = cvr.annotations().get(keys::annotations::CSPI_HOSTNAME);
    Some(match node.and_then(|n| node_roots.get(n)) {
        Some(root) => root.join(Path::new(lun.trim_start_matches('/'))),
        None => PathBuf::from(lun),
    })
}

/// A CVR whose data must be copied in before it counts: phase `Recreate` (a scale-up replica).
pub fn needs_rebuild_phase(cvr: &CStorVolumeReplica) -> bool {
    cvr.status
        .as_ref()
        .is_some_and(|s| s.phase == cvr::phase::RECREATE)
}

/// `desiredReplicationFactor`, falling back to `replicationFactor` when unset or 0.
pub fn drf(cv: &CStorVolume) -> i64 {
    match cv.spec.desired_replication_factor {
        Some(d) if d > 0 => d,
        _ => cv.spec.replication_factor.unwrap_or(0),
    }
}

pub fn spec_known(cv: &CStorVolume) -> BTreeMap<String, String> {
    cv.spec
        .replica_details
        .as_ref()
        .map(|d| d.known_replicas.clone())
        .unwrap_or_default()
}

pub fn status_known(cv: &CStorVolume) -> BTreeMap<String, String> {
    cv.status
        .as_ref()
        .and_then(|s| s.replica_details.as_ref())
        .map(|d| d.known_replicas.clone())
        .unwrap_or_default()
}

/// Whether a replica id may be in the fan-out (the Go operators' registration rule): it is known in
/// the spec, or the spec still has room for it (`len(knownReplicas) < DRF`). This keeps a
/// scaled-down replica out while its CVR still exists.
pub fn admitted(cv: &CStorVolume, id: &str) -> bool {
    let known = spec_known(cv);
    known.contains_key(id) || (known.len() as i64) < drf(cv)
}

/// The replica ids (with their files' paths) that belong in the fan-out now: CVRs not being
/// deleted, with an id and a lun annotation, admitted by [`admitted`].
pub fn wanted_replicas(
    cv: &CStorVolume,
    cvrs: &[CStorVolumeReplica],
    node_roots: &BTreeMap<String, PathBuf>,
) -> BTreeMap<String, (PathBuf, bool)> {
    cvrs.iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| {
            let id = replica_id(c)?;
            let path = replica_path(c, node_roots)?;
            admitted(cv, &id).then(|| (id, (path, needs_rebuild_phase(c))))
        })
        .collect()
}

/// istgt's replica mode for a fan-out state.
pub fn mode(state: ReplicaState) -> &'static str {
    match state {
        ReplicaState::Healthy => "Healthy",
        ReplicaState::Rebuilding => "Rebuilding",
        ReplicaState::Degraded => "Degraded",
    }
}

/// `status.replicaStatuses` from the fan-out, in id order.
pub fn replica_statuses(infos: &[ReplicaInfo], now: Instant) -> Vec<ReplicaStatus> {
    let mut v: Vec<ReplicaStatus> = infos
        .iter()
        .map(|r| ReplicaStatus {
            id: r.id.clone(),
            mode: mode(r.state).to_string(),
            checkpointed_io_seq: r.io_seq.to_string(),
            inflight_read: r.inflight_read.to_string(),
            inflight_write: r.inflight_write.to_string(),
            inflight_sync: r.inflight_sync.to_string(),
            up_time: i64::try_from(now.saturating_duration_since(r.since).as_secs())
                .unwrap_or(i64::MAX),
            quorum: if r.ever_healthy { "1" } else { "0" }.to_string(),
        })
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// The CV phase: `Init` until the target serves; then `Healthy` with RF Healthy replicas and
/// none behind, `Degraded` with at least CF, else `Offline`.
pub fn volume_phase(infos: &[ReplicaInfo], rf: i64, cf: i64, serving: bool) -> &'static str {
    if !serving || infos.is_empty() {
        return phase::INIT;
    }
    let healthy = infos
        .iter()
        .filter(|r| r.state == ReplicaState::Healthy)
        .count() as i64;
    if healthy >= rf.max(1) && healthy == infos.len() as i64 {
        phase::HEALTHY
    } else if healthy >= cf.max(1) {
        phase::DEGRADED
    } else {
        phase::OFFLINE
    }
}

/// A one-line explanation for `status.message`.
pub fn volume_message(infos: &[ReplicaInfo], rf: i64, cf: i64) -> String {
    let healthy = infos
        .iter()
        .filter(|r| r.state == ReplicaState::Healthy)
        .count();
    let mut behind: Vec<String> = infos
        .iter()
        .filter(|r| r.state != ReplicaState::Healthy)
        .map(|r| {
            if r.reason.is_empty() {
                format!("{} {}", r.id, mode(r.state))
            } else {
                format!("{} {} ({})", r.id, mode(r.state), r.reason)
            }
        })
        .collect();
    behind.sort();
    let mut m = format!("{healthy} of {rf} replicas healthy (writes need {cf})");
    if !behind.is_empty() {
        m.push_str("; ");
        m.push_str(&behind.join(", "));
    }
    m
}

/// Edits of the CV after looking at the fan-out the Go operators with our transport).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownPlan {
    /// New `spec.replicaDetails.knownReplicas`, when it changes.
    pub spec_known: Option<BTreeMap<String, String>>,
    /// New `spec.replicationFactor`/`consistencyFactor`, when they change.
    pub rf_cf: Option<(i64, i64)>,
    /// `status.replicaDetails.knownReplicas` to report.
    pub status_known: BTreeMap<String, String>,
    /// Ids leaving the fan-out (scale down).
    pub removed: Vec<String>,
    /// A pending scale-down is waiting for this (no edit made).
    pub waiting: Option<String>,
}

/// Decides knownReplicas / RF / CF:
/// - scale down (`len(spec.known) < len(status.known)`): once every replica in spec.known is
///   Healthy, the ids only in status leave, `RF = DRF` and `CF = DRF/2+1` when `DRF < RF`, and
///   status.known becomes spec.known (the cvc-operator then deletes the CVR);
/// - otherwise a Healthy replica missing from spec.known is added (id → id) while
///   `len(spec.known) < DRF`, `RF` grows to the number known (never beyond DRF) and
///   `CF = RF/2+1`; status.known = spec.known.
pub fn plan_known(cv: &CStorVolume, infos: &[ReplicaInfo]) -> KnownPlan {
    let spec = spec_known(cv);
    let status = status_known(cv);
    let rf = cv.spec.replication_factor.unwrap_or(0);
    let cf = cv.spec.consistency_factor.unwrap_or(0);
    let drf = drf(cv);
    let healthy: BTreeSet<&str> = infos
        .iter()
        .filter(|r| r.state == ReplicaState::Healthy)
        .map(|r| r.id.as_str())
        .collect();
    let mut plan = KnownPlan::default();
    if spec.len() < status.len() {
        let removed: Vec<String> = status
            .keys()
            .filter(|k| !spec.contains_key(*k))
            .cloned()
            .collect();
        let not_healthy: Vec<&String> = spec
            .keys()
            .filter(|k| !healthy.contains(k.as_str()))
            .collect();
        if !not_healthy.is_empty() {
            plan.waiting = Some(format!(
                "scale down to {drf} waits for replicas {not_healthy:?} to be Healthy"
            ));
            plan.status_known = status;
            return plan;
        }
        if drf > 0 && drf < rf {
            plan.rf_cf = Some((drf, drf / 2 + 1));
        }
        plan.removed = removed;
        plan.status_known = spec;
        return plan;
    }
    let mut known = spec.clone();
    let mut new_ids: Vec<&str> = healthy
        .iter()
        .copied()
        .filter(|id| !known.contains_key(*id))
        .collect();
    new_ids.sort_unstable();
    for id in new_ids {
        if (known.len() as i64) >= drf {
            break;
        }
        known.insert(id.to_string(), id.to_string());
    }
    let n = known.len() as i64;
    let new_rf = rf.max(n.min(drf.max(rf)));
    let new_cf = cf.max(new_rf / 2 + 1);
    if (new_rf, new_cf) != (rf, cf) {
        plan.rf_cf = Some((new_rf, new_cf));
    }
    if known != spec {
        plan.spec_known = Some(known.clone());
    }
    plan.status_known = known;
    plan
}

/// A CV is fresh (never served data) when no replica has been known and no status reported
/// replicas: then every replica present at start is Healthy without a copy.
pub fn is_fresh(cv: &CStorVolume) -> bool {
    let reported = cv
        .status
        .as_ref()
        .is_some_and(|s| !s.replica_statuses.is_empty());
    spec_known(cv).is_empty() && status_known(cv).is_empty() && !reported
}

/// At a restart of a volume that served data: replicas the last status showed Healthy rejoin
/// Healthy (they hold every acknowledged write: the fan-out was down, nothing was written
/// since); every other one is rebuilt.
pub fn was_healthy(cv: &CStorVolume, id: &str) -> bool {
    cv.status.as_ref().is_some_and(|s| {
        s.replica_statuses
            .iter()
            .any(|r| r.id == id && r.mode == "Healthy")
    })
}
