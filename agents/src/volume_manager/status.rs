//! Pure decisions of the volume-manager: where a CVR's replica file is, which CVRs belong in
//! the fan-out, the whole CV status from what the daemon observes ([`derive_status`]), and the
//! CV spec/status edits of the Go operators (knownReplicas, replicationFactor,
//! consistencyFactor). `reconcile.rs` reads and writes; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cstor_api::cstor_v1::cv::{
    CStorVolume, CStorVolumeCondition, CStorVolumeReplicaDetails, CStorVolumeStatus, ReplicaStatus,
    condition_status, condition_type, phase,
};
use cstor_api::cstor_v1::cvr::{self, CStorVolumeReplica};
use cstor_api::keys;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
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

/// Where replica files live on a node when no `CSTOR_REPLICA_ROOTS` entry says otherwise.
pub use cstor_api::keys::DEFAULT_REPLICA_ROOT;

/// Where this process reaches a CVR's lun file. The annotation only names which pool
/// directory holds it: the path must be `<replica root of the node>/<pool dir>/replicas/<this
/// volume>/lun`, every part a plain name, or the replica is refused (`Err`, the reason). So an
/// edited annotation cannot point the volume-manager at any other file. `Ok(None)` while the
/// annotation is missing. The path is reached under the node's root from `node_roots`.
pub fn replica_path(
    cvr: &CStorVolumeReplica,
    volume: &str,
    node_roots: &BTreeMap<String, PathBuf>,
    replica_roots: &BTreeMap<String, PathBuf>,
) -> Result<Option<PathBuf>, String> {
    let Some(lun) = cvr
        .annotations()
        .get(REPLICA_LUN_ANNOTATION)
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
    else {
        return Ok(None);
    };
    let node = cvr
        .annotations()
        .get(keys::annotations::CSPI_HOSTNAME)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("annotation {} is not set", keys::annotations::CSPI_HOSTNAME))?;
    let root = replica_roots
        .get(node)
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REPLICA_ROOT));
    let refuse = |why: &str| format!("replica file {lun:?} refused: {why}");
    let path = Path::new(lun);
    if path.components().collect::<PathBuf>().as_os_str() != path.as_os_str() {
        return Err(refuse("not a normalized path"));
    }
    let rest = path
        .strip_prefix(&root)
        .map_err(|_| refuse(&format!("not under the replica root {}", root.display())))?;
    let parts: Vec<&str> = rest
        .components()
        .map(|c| match c {
            std::path::Component::Normal(p) => p.to_str().ok_or(()),
            _ => Err(()),
        })
        .collect::<Result<_, ()>>()
        .map_err(|()| refuse("only plain names may follow the replica root"))?;
    match parts.as_slice() {
        [_, "replicas", pv, "lun"] if *pv == volume => {}
        _ => {
            return Err(refuse(&format!(
                "not <replica root>/<pool>/replicas/{volume}/lun"
            )));
        }
    }
    Ok(Some(match node_roots.get(node) {
        Some(r) => r.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }))
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
/// the spec, or the spec still has room for it (`len(knownReplicas) < DRF`), or (ours) it is
/// still in status.knownReplicas: a scale-down in progress. This keeps a scaled-down replica
/// out once the scale-down is done, while its CVR still exists.
pub fn admitted(cv: &CStorVolume, id: &str) -> bool {
    let known = spec_known(cv);
    // A replica being scaled away stays (it still counts) until the scale-down completes,
    // which waits for the remaining replicas to be Healthy ([`plan_known`]).
    known.contains_key(id) || status_known(cv).contains_key(id) || (known.len() as i64) < drf(cv)
}

/// The replica ids (with their files' paths) that belong in the fan-out now: CVRs not being
/// deleted nor awaiting a restore, with an id and an acceptable lun path ([`replica_path`]),
/// admitted by [`admitted`].
pub fn wanted_replicas(
    cv: &CStorVolume,
    cvrs: &[CStorVolumeReplica],
    node_roots: &BTreeMap<String, PathBuf>,
    replica_roots: &BTreeMap<String, PathBuf>,
) -> BTreeMap<String, (PathBuf, bool)> {
    let volume = cv.name_any();
    cvrs.iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none() && !c.awaiting_restore())
        .filter_map(|c| {
            let id = replica_id(c)?;
            let path = match replica_path(c, &volume, node_roots, replica_roots) {
                Ok(p) => p?,
                Err(why) => {
                    tracing::warn!(replica = %id, cvr = %c.name_any(), "{why}");
                    return None;
                }
            };
            admitted(cv, &id).then(|| (id, (path, needs_rebuild_phase(c))))
        })
        .collect()
}

/// The Event type of a volume phase change: Normal for Init and Healthy, Warning otherwise
/// (a Degraded volume has lost redundancy: an administrator should see it).
pub fn phase_event_type(phase: &str) -> kube::runtime::events::EventType {
    use kube::runtime::events::EventType;
    match phase {
        cstor_api::cstor_v1::cv::phase::INIT | cstor_api::cstor_v1::cv::phase::HEALTHY => {
            EventType::Normal
        }
        _ => EventType::Warning,
    }
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

/// Edits of the CV after looking at the fan-out (as the Go operators do, with our transport).
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

/// What the last status recorded for replica `id`. Our target records a replica under its
/// replica id; istgt (a volume the Go operators ran) under the replica's zvol GUID, which
/// `knownReplicas` maps the id to: either is found (docs/upgrades.md, "Taking over").
pub fn recorded<'a>(cv: &'a CStorVolume, id: &str) -> Option<&'a ReplicaStatus> {
    let guid = spec_known(cv)
        .get(id)
        .cloned()
        .or_else(|| status_known(cv).get(id).cloned());
    let statuses = &cv.status.as_ref()?.replica_statuses;
    statuses
        .iter()
        .find(|r| r.id == id)
        .or_else(|| statuses.iter().find(|r| Some(&r.id) == guid.as_ref()))
}

/// At a restart of a volume that served data: replicas the last status showed Healthy rejoin
/// Healthy (they hold every acknowledged write: the fan-out was down, nothing was written
/// since); every other one is rebuilt.
pub fn was_healthy(cv: &CStorVolume, id: &str) -> bool {
    recorded(cv, id).is_some_and(|r| r.mode == "Healthy")
}

/// What the volume-manager observes for one status write.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The fan-out's replicas.
    pub infos: &'a [ReplicaInfo],
    /// Whether the target serves the LUN.
    pub serving: bool,
    /// The LUN's size now, in bytes.
    pub lun_size: u64,
    /// Why the last resize failed, if it did.
    pub resize_error: Option<&'a str>,
    /// Whether a resync after a restart is running.
    pub resyncing: bool,
}

/// The CStorVolume status from what the volume-manager observes: phase and message from the
/// replicas against RF and CF, `replicaStatuses`, `capacity` (the spec's once the LUN has that
/// size, else the last reported), a `Resizing` condition while the LUN is smaller than the spec
/// or a resize failed, and the known replicas. Transition times move only when the phase (or
/// the condition) changes; `now` stamps the rest.
pub fn derive_status(
    cv: &CStorVolume,
    seen: &Observed<'_>,
    now: &Time,
    at: Instant,
) -> CStorVolumeStatus {
    let infos = seen.infos;
    let rf = cv.spec.replication_factor.unwrap_or(0);
    let cf = cv.spec.consistency_factor.unwrap_or(0);
    let ph = volume_phase(infos, rf, cf, seen.serving).to_string();
    let old = cv.status.clone().unwrap_or_default();
    let transition = transition_time(&old, &ph, now);
    let want = cv
        .spec
        .capacity
        .as_ref()
        .and_then(|q| cstor_api::quantity::bytes(&q.0).ok());
    let capacity = match (want, &cv.spec.capacity) {
        (Some(w), Some(q)) if seen.lun_size >= w && seen.serving => Some(q.clone()),
        _ => old
            .capacity
            .clone()
            .or_else(|| Some(Quantity(seen.lun_size.to_string()))),
    };
    let resizing = want.is_some_and(|w| w > seen.lun_size) || seen.resize_error.is_some();
    let conditions = resizing_conditions(&old, resizing, seen.resize_error, now);
    let known = status_known(cv);
    let message = volume_message(infos, rf, cf);
    CStorVolumeStatus {
        phase: ph,
        replica_statuses: replica_statuses(infos, at),
        capacity,
        last_transition_time: transition,
        last_update_time: Some(now.clone()),
        message: if seen.resyncing {
            format!("{message}; resyncing the replicas after a restart")
        } else {
            message
        },
        conditions,
        replica_details: (!known.is_empty()).then_some(CStorVolumeReplicaDetails {
            known_replicas: known,
        }),
    }
}

/// The status's `lastTransitionTime` for phase `phase`: kept while the phase stays, `now` when
/// it changes (or was never set).
pub fn transition_time(old: &CStorVolumeStatus, phase: &str, now: &Time) -> Option<Time> {
    if old.phase == phase {
        old.last_transition_time
            .clone()
            .or_else(|| Some(now.clone()))
    } else {
        Some(now.clone())
    }
}

/// The `Resizing` condition while a resize is pending (`resizing`) or failed (`error`, its
/// message), keeping its transition time; none otherwise.
pub fn resizing_conditions(
    old: &CStorVolumeStatus,
    resizing: bool,
    error: Option<&str>,
    now: &Time,
) -> Vec<CStorVolumeCondition> {
    if !resizing && error.is_none() {
        return Vec::new();
    }
    let prev = old
        .conditions
        .iter()
        .find(|c| c.type_ == condition_type::RESIZING);
    vec![CStorVolumeCondition {
        type_: condition_type::RESIZING.into(),
        status: condition_status::IN_PROGRESS.into(),
        last_probe_time: Some(now.clone()),
        last_transition_time: prev
            .and_then(|c| c.last_transition_time.clone())
            .or_else(|| Some(now.clone())),
        reason: "Resizing".into(),
        message: error
            .map(String::from)
            .unwrap_or_else(|| "Triggered resize by changing capacity in spec".into()),
    }]
}

/// The status written while the volume cannot be served yet (`Init` waiting for replicas, or
/// `Invalid`): phase and message change, but the record of which replicas hold every
/// acknowledged write (`replicaStatuses`, `replicaDetails`) and the capacity are kept as the
/// last status had them. Dropping them would make no replica trusted at the next start (or,
/// with knownReplicas cleared, every replica trusted without a resync).
pub fn waiting_status(
    cv: &CStorVolume,
    phase: &str,
    message: &str,
    now: &Time,
) -> CStorVolumeStatus {
    let last = cv.status.clone().unwrap_or_default();
    let flipped = last.phase != phase;
    CStorVolumeStatus {
        phase: phase.to_string(),
        message: message.to_string(),
        last_update_time: Some(now.clone()),
        last_transition_time: if flipped {
            Some(now.clone())
        } else {
            last.last_transition_time
                .clone()
                .or_else(|| Some(now.clone()))
        },
        ..last
    }
}

/// The size a start serves: the spec's, unless an opened replica file is shorter (a resize
/// was in flight at the stop and its pool-manager has not grown that file yet).
pub fn start_size(spec: u64, lens: &[u64]) -> u64 {
    lens.iter().copied().fold(spec, u64::min)
}

/// Orders replicas by the write sequence the last status recorded for them
/// (`checkpointedIOSeq`), highest first, then by id: the first is the resync reference, the
/// replica that took the most writes, whatever order the CVRs were listed in.
pub fn order_by_write_sequence<T>(cv: &CStorVolume, replicas: &mut [T], id: impl Fn(&T) -> &str) {
    let seq = |i: &str| -> u64 {
        recorded(cv, i)
            .and_then(|r| r.checkpointed_io_seq.parse().ok())
            .unwrap_or(0)
    };
    replicas.sort_by(|a, b| seq(id(b)).cmp(&seq(id(a))).then_with(|| id(a).cmp(id(b))));
}

/// CV annotation set by `cstor volume recover`: the replica id to trust when no replica is
/// recorded Healthy.
pub const RECOVER_FROM_ANNOTATION: &str = cstor_api::keys::annotations::RECOVER_FROM;

/// One replica as `cstor volume recover` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryRow {
    pub id: String,
    pub cvr: String,
    /// The mode the last CV status recorded ("" when none).
    pub mode: String,
    /// The write sequence the last CV status recorded.
    pub io_seq: u64,
    /// The CVR's phase and when it last changed (for a replica that is not Healthy: about
    /// when it stopped being Healthy).
    pub phase: String,
    pub since: String,
}

/// The replica a supervised recovery promotes, and what it is chosen from. Refused while
/// any replica is recorded Healthy (the volume recovers by itself then), or when `from`
/// names no replica of the volume. Without `from`: the highest recorded write sequence.
pub fn recovery_plan(
    cv: &CStorVolume,
    cvrs: &[CStorVolumeReplica],
    from: Option<&str>,
) -> Result<(String, Vec<RecoveryRow>), String> {
    let recorded = |id: &str| recorded(cv, id);
    let mut rows: Vec<RecoveryRow> = cvrs
        .iter()
        .filter_map(|c| {
            let id = replica_id(c)?;
            let r = recorded(&id);
            let st = c.status.clone().unwrap_or_default();
            Some(RecoveryRow {
                cvr: c.name_any(),
                mode: r.map(|r| r.mode.clone()).unwrap_or_default(),
                io_seq: r
                    .and_then(|r| r.checkpointed_io_seq.parse().ok())
                    .unwrap_or(0),
                phase: st.phase,
                since: st
                    .last_transition_time
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                id,
            })
        })
        .collect();
    rows.sort_by(|a, b| b.io_seq.cmp(&a.io_seq).then_with(|| a.id.cmp(&b.id)));
    if let Some(h) = rows.iter().find(|r| r.mode == "Healthy") {
        return Err(format!(
            "refused: replica {} ({}) is Healthy; the volume recovers from it by itself",
            h.id, h.cvr
        ));
    }
    let chosen = match from {
        Some(f) => rows
            .iter()
            .find(|r| r.id == f || r.cvr == f)
            .ok_or_else(|| format!("no replica {f} in this volume"))?,
        None => rows
            .first()
            .ok_or_else(|| "the volume has no replica with an id".to_string())?,
    };
    Ok((chosen.id.clone(), rows))
}

/// The replica a start must trust because `cstor volume recover` named it: only when no
/// replica is recorded Healthy (a recovery never overrides the record of a Healthy one).
pub fn promoted(cv: &CStorVolume) -> Option<String> {
    let id = cv.annotations().get(RECOVER_FROM_ANNOTATION)?.trim();
    let any_healthy = cv
        .status
        .as_ref()
        .is_some_and(|s| s.replica_statuses.iter().any(|r| r.mode == "Healthy"));
    (!id.is_empty() && !any_healthy).then(|| id.to_string())
}
