//! Pure decisions of the replica (CVR) controller: capacity parsing, the replica id, validation,
//! the phase mapping, resize steps, the status and its apply body, and the CSPI's replica
//! counts (docs/volumes.md "Replica store").

use std::path::{Path, PathBuf};

use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::cstor_v1::cvr::{
    CStorVolumeReplica, CStorVolumeReplicaStatus, CVRCapacityInfo, phase,
};
use cstor_api::keys::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::{Value, json};

/// Ours: the absolute path of the replica's lun file on its node (the local transport).
pub const LUN_ANNOTATION: &str = "cstor.openebs.io/replica-lun";
/// The user property holding the replica id on the dataset or zvol.
pub const REPLICA_ID_PROPERTY: &str = "io.openebs:zvol_replica_id";

/// The Go operators' `-V` argument: `spec.capacity` without a trailing `i` (`5Gi` → `5G`; zfs reads G
/// as GiB).
pub fn zvol_size_arg(capacity: &str) -> String {
    let c = capacity.trim();
    c.strip_suffix('i').unwrap_or(c).to_string()
}

/// As in the Go operators: XXH64 (seed 0) of the JSON-encoded CVR UID (with its quotes), as unsigned decimal.
pub fn replica_id_for(uid: &str) -> String {
    let encoded = serde_json::to_string(uid).unwrap_or_else(|_| format!("\"{uid}\""));
    xxhash_rust::xxh64::xxh64(encoded.as_bytes(), 0).to_string()
}

/// The volume (PV) a CVR belongs to: label `cstorvolume.openebs.io/name`, else
/// `openebs.io/persistent-volume`.
pub fn volume_of(cvr: &CStorVolumeReplica) -> Option<String> {
    let l = cvr.labels();
    l.get(labels::CSTOR_VOLUME_NAME)
        .or_else(|| l.get(labels::PERSISTENT_VOLUME))
        .filter(|v| !v.is_empty())
        .cloned()
}

/// The CVRs a CStorVolume event concerns: label `openebs.io/persistent-volume` (or
/// `cstorvolume.openebs.io/name`) equal to the CV's name.
pub fn concerns(cvr: &CStorVolumeReplica, cv_name: &str) -> bool {
    let l = cvr.labels();
    l.get(labels::PERSISTENT_VOLUME).map(String::as_str) == Some(cv_name)
        || l.get(labels::CSTOR_VOLUME_NAME).map(String::as_str) == Some(cv_name)
}

/// A clone replica's source (volume, snapshot): label `openebs.io/cloned: "true"` with the
/// annotations `openebs.io/source-volume` and `openebs.io/snapshot` the cvc-operator sets.
pub fn clone_source(cvr: &CStorVolumeReplica) -> Option<(String, String)> {
    use cstor_api::keys::annotations::{SNAPSHOT, SOURCE_VOLUME};
    if cvr.labels().get(labels::CLONED).map(String::as_str) != Some("true") {
        return None;
    }
    let a = cvr.annotations();
    let src = a.get(SOURCE_VOLUME).filter(|v| !v.is_empty())?;
    let snap = a.get(SNAPSHOT).filter(|v| !v.is_empty())?;
    Some((src.clone(), snap.clone()))
}

/// `cstor-<CSPC UID>/<pv>`.
pub fn dataset_name(pool: &str, pv: &str) -> String {
    format!("{pool}/{pv}")
}

/// The directory replicas are mounted under: `<dir of the cache file>/replicas`.
pub fn replicas_dir(cache_file: &Path) -> PathBuf {
    cache_file
        .parent()
        .unwrap_or_else(|| Path::new("/"))
        .join("replicas")
}

/// The Go operators' validation; Err is the reason (the CVR's message).
pub fn validate(cvr: &CStorVolumeReplica) -> Result<u64, String> {
    let l = cvr.labels();
    let set = |k: &str| l.get(k).is_some_and(|v| !v.is_empty());
    if !set(labels::CSTOR_VOLUME_NAME) {
        return Err(format!("label {} is not set", labels::CSTOR_VOLUME_NAME));
    }
    if cvr.spec.target_ip.is_empty() {
        return Err("spec.targetIP is not set".into());
    }
    if cvr.spec.capacity.is_empty() {
        return Err("spec.capacity is not set".into());
    }
    if set(labels::CSP_UID) == set(labels::CSPI_UID) {
        return Err(format!(
            "exactly one of the labels {} and {} must be set",
            labels::CSP_UID,
            labels::CSPI_UID
        ));
    }
    match cstor_api::quantity::bytes(&cvr.spec.capacity) {
        Ok(0) => Err("spec.capacity is zero".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("spec.capacity: {e}")),
    }
}

/// Phases before the store is made (case-insensitive, as the Go operators compare them).
pub fn is_initial(p: &str) -> bool {
    p.is_empty() || p.eq_ignore_ascii_case(phase::INIT) || p.eq_ignore_ascii_case(phase::RECREATE)
}

/// Whether the store was made before: the lun annotation is there (dataset store), or the
/// phase has left Init/Recreate (a store without a lun file, the zvol). A store missing after
/// that is lost (Offline), not created again.
pub fn created_before(current: &str, lun_annotated: bool, store_has_lun: bool) -> bool {
    if store_has_lun {
        lun_annotated
    } else {
        !is_initial(current) && current != phase::OFFLINE || lun_annotated
    }
}

/// Where the pool is, for the phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolState {
    /// `zpool list` health ONLINE or DEGRADED.
    Usable,
    /// Imported but FAULTED, UNAVAIL, SUSPENDED, … (the health).
    Unusable(String),
    /// Not imported (yet).
    Absent,
}

/// What the phase is computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseInput<'a> {
    /// The CVR's phase now.
    pub current: &'a str,
    pub pool: &'a str,
    pub pool_state: PoolState,
    /// The store (dataset + lun, or zvol) exists.
    pub store_present: bool,
    /// The store was made before (see [`created_before`]).
    pub created_before: bool,
    /// `mode` of the CV's `status.replicaStatuses` entry whose id is ours.
    pub mode: Option<&'a str>,
    /// The CV lists our id in `replicaDetails.knownReplicas` (it has been Healthy).
    pub known: bool,
    /// The replica waits for its restore (`isRestoreVol`): the target leaves it alone.
    pub awaiting_restore: bool,
}

/// The phase and its message (the reason of Offline/Error; empty otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseOutcome {
    pub phase: String,
    pub message: String,
}

impl PhaseOutcome {
    fn new(phase: &str, message: impl Into<String>) -> Self {
        PhaseOutcome {
            phase: phase.to_string(),
            message: message.into(),
        }
    }
}

/// The phase kept while nothing changes it: `""` → `Init`, else the current one.
pub fn kept_phase(current: &str) -> String {
    if current.is_empty() {
        phase::INIT.to_string()
    } else {
        current.to_string()
    }
}

/// `""` → `Init`; Init/Recreate kept (case normalised).
fn initial_phase(current: &str) -> &'static str {
    if current.eq_ignore_ascii_case(phase::RECREATE) {
        phase::RECREATE
    } else {
        phase::INIT
    }
}

/// The CVR phase (docs/volumes.md with the Go operators' mapping): Init/Recreate until the store is
/// made and the target reports the replica; then the target's mode; Offline when the pool is
/// unusable or a made store is missing, or the target lost a replica it had.
pub fn replica_phase(input: &PhaseInput<'_>) -> PhaseOutcome {
    let current = input.current;
    let made = input.created_before || input.store_present;
    match &input.pool_state {
        PoolState::Usable => {}
        PoolState::Unusable(health) if made => {
            return PhaseOutcome::new(phase::OFFLINE, format!("pool {} is {health}", input.pool));
        }
        PoolState::Absent if made => {
            return PhaseOutcome::new(
                phase::OFFLINE,
                format!("pool {} is not imported", input.pool),
            );
        }
        PoolState::Unusable(health) => {
            return PhaseOutcome::new(
                initial_phase(current),
                format!("waiting for pool {} (it is {health})", input.pool),
            );
        }
        PoolState::Absent => {
            return PhaseOutcome::new(
                initial_phase(current),
                format!("waiting for pool {} to be imported", input.pool),
            );
        }
    }
    if !input.store_present {
        return if input.created_before {
            PhaseOutcome::new(phase::OFFLINE, "replica store is missing")
        } else {
            PhaseOutcome::new(initial_phase(current), "replica store not created yet")
        };
    }
    // What uZFS reports for a replica with no target IP; the velero-plugin waits for
    // Healthy, Degraded or Error before it restores, never for Offline or Init.
    if input.awaiting_restore {
        return PhaseOutcome::new(
            phase::ERROR,
            "waiting for its restore: the target uses it once the restore is complete",
        );
    }
    let new_replica = !input.known
        && (current.eq_ignore_ascii_case(phase::RECREATE)
            || current == phase::NEW_REPLICA_DEGRADED
            || current == phase::RECONSTRUCTING_NEW_REPLICA);
    match input.mode {
        None if is_initial(current) => PhaseOutcome::new(initial_phase(current), ""),
        None => PhaseOutcome::new(phase::OFFLINE, "not connected to the target"),
        Some("Healthy") => PhaseOutcome::new(phase::HEALTHY, ""),
        Some("Degraded") if new_replica => PhaseOutcome::new(phase::NEW_REPLICA_DEGRADED, ""),
        Some("Degraded") => PhaseOutcome::new(phase::DEGRADED, ""),
        Some("Rebuilding") if new_replica => {
            PhaseOutcome::new(phase::RECONSTRUCTING_NEW_REPLICA, "")
        }
        Some("Rebuilding") => PhaseOutcome::new(phase::REBUILDING, ""),
        Some("Offline") => {
            PhaseOutcome::new(phase::OFFLINE, "the target reports the replica Offline")
        }
        Some(other) => PhaseOutcome::new(
            phase::ERROR,
            format!("the target reports the replica in mode {other:?}"),
        ),
    }
}

/// Our entry in the CV status and whether the CV knows our id as a replica that was Healthy.
pub fn cv_view<'a>(cv: Option<&'a CStorVolume>, replica_id: &str) -> (Option<&'a str>, bool) {
    let Some(cv) = cv else {
        return (None, false);
    };
    let status = cv.status.as_ref();
    let mode = status
        .and_then(|s| s.replica_statuses.iter().find(|r| r.id == replica_id))
        .map(|r| r.mode.as_str());
    let known = status
        .and_then(|s| s.replica_details.as_ref())
        .into_iter()
        .chain(cv.spec.replica_details.as_ref())
        .any(|d| d.known_replicas.contains_key(replica_id));
    (mode, known)
}

/// Quota of a dataset for a lun of `capacity` bytes: the capacity plus room for ZFS's own
/// metadata (indirect blocks). With `quota` exactly the capacity, zfs-fuse refuses the last
/// 128 KiB record of a first full write of the lun (ENOSPC; measured, fixtures README).
pub fn quota_for(capacity: u64) -> u64 {
    capacity
        .saturating_add(capacity / 64)
        .saturating_add(1 << 20)
}

/// One change to a dataset store's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResizeStep {
    /// `zfs set quota=<bytes>` (or `volsize=` of a zvol).
    Quota(u64),
    /// `zfs set refreservation=<bytes>` (thick pools).
    Refreservation(u64),
    /// `set_len` of the lun file to the bytes.
    GrowLun(u64),
}

/// The store is bigger than the spec asks: never shrunk.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("shrinking the replica from {from} to {to} bytes is not supported")]
pub struct Shrink {
    pub from: u64,
    pub to: u64,
}

/// Resize of a dataset store whose lun is `lun_len` bytes, quota `quota`, refreservation
/// `refreservation`: raise the quota (then the refreservation when thick), then grow the lun.
/// Also repairs a half-done resize (quota raised, lun not yet grown). Empty: nothing to do.
pub fn dataset_resize(
    desired: u64,
    lun_len: u64,
    quota: u64,
    refreservation: u64,
    thick: bool,
) -> Result<Vec<ResizeStep>, Shrink> {
    if desired < lun_len {
        return Err(Shrink {
            from: lun_len,
            to: desired,
        });
    }
    let mut steps = Vec::new();
    let want_quota = quota_for(desired);
    if quota != 0 && quota < want_quota {
        steps.push(ResizeStep::Quota(want_quota));
    }
    if thick && refreservation < desired {
        steps.push(ResizeStep::Refreservation(desired));
    }
    if lun_len < desired {
        steps.push(ResizeStep::GrowLun(desired));
    }
    Ok(steps)
}

/// Resize of a zvol of `volsize` bytes: `volsize` only (uZFS grows it in place).
pub fn zvol_resize(desired: u64, volsize: u64) -> Result<Vec<ResizeStep>, Shrink> {
    match desired.cmp(&volsize) {
        std::cmp::Ordering::Less => Err(Shrink {
            from: volsize,
            to: desired,
        }),
        std::cmp::Ordering::Equal => Ok(Vec::new()),
        std::cmp::Ordering::Greater => Ok(vec![ResizeStep::Quota(desired)]),
    }
}

/// `status.capacity` from exact bytes: `total` = ZFS `used`, `used` = `referenced` (zfs-fuse
/// has no `logicalreferenced`), both decimal byte counts.
pub fn capacity_info(used: u64, referenced: u64) -> CVRCapacityInfo {
    CVRCapacityInfo {
        total: used.to_string(),
        used: referenced.to_string(),
    }
}

/// The status we own: phase, capacity (kept from before when not read), message,
/// `lastUpdateTime` now, `lastTransitionTime` now only when the phase changes. Snapshot
/// bookkeeping is not ours and left out.
pub fn next_status(
    previous: Option<&CStorVolumeReplicaStatus>,
    outcome: &PhaseOutcome,
    capacity: Option<CVRCapacityInfo>,
    now: &Time,
) -> CStorVolumeReplicaStatus {
    let changed = previous.is_none_or(|p| p.phase != outcome.phase);
    CStorVolumeReplicaStatus {
        phase: outcome.phase.clone(),
        capacity: capacity.or_else(|| previous.and_then(|p| p.capacity.clone())),
        last_transition_time: if changed {
            Some(now.clone())
        } else {
            previous
                .and_then(|p| p.last_transition_time.clone())
                .or_else(|| Some(now.clone()))
        },
        last_update_time: Some(now.clone()),
        message: outcome.message.clone(),
        snapshots: Default::default(),
        pending_snapshots: Default::default(),
    }
}

/// Whether `new` changes anything we own in `live` (ignoring `lastUpdateTime`, which alone
/// must not cause a write: our own write would wake us again).
pub fn status_differs(
    live: Option<&CStorVolumeReplicaStatus>,
    new: &CStorVolumeReplicaStatus,
) -> bool {
    let Some(live) = live else {
        return true;
    };
    live.phase != new.phase
        || live.capacity != new.capacity
        || live.message != new.message
        || live.last_transition_time != new.last_transition_time
}

/// The server-side-apply body of a CVR status: identity plus `status` only.
pub fn status_apply_body(name: &str, namespace: &str, status: &CStorVolumeReplicaStatus) -> Value {
    json!({
        "apiVersion": "cstor.openebs.io/v1",
        "kind": "CStorVolumeReplica",
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    })
}

/// JSON patch writing `spec.replicaid`, guarded by `resourceVersion`; `None` when set.
pub fn replica_id_ops(cvr: &CStorVolumeReplica, id: &str) -> Option<Value> {
    if !cvr.spec.replica_id.is_empty() {
        return None;
    }
    let rv = cvr.resource_version().unwrap_or_default();
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/spec/replicaid", "value": id}
    ]))
}

/// JSON patch ending a restore: `openebs.io/restore-completed: "true"` (the velero-plugin's mark)
/// removes it and `isRestoreVol`, so the target starts using the replica; `None` without the
/// mark. Guarded by `resourceVersion`.
pub fn restore_completed_ops(cvr: &CStorVolumeReplica) -> Option<Value> {
    use cstor_api::keys::annotations::{IS_RESTORE_VOL, RESTORE_COMPLETED};
    let annotations = cvr.annotations();
    if annotations.get(RESTORE_COMPLETED).map(String::as_str) != Some("true") {
        return None;
    }
    let rv = cvr.resource_version().unwrap_or_default();
    let mut ops = vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})];
    for key in [RESTORE_COMPLETED, IS_RESTORE_VOL] {
        if annotations.contains_key(key) {
            ops.push(json!({
                "op": "remove",
                "path": format!("/metadata/annotations/{}", super::super::kube_ops::pointer_segment(key)),
            }));
        }
    }
    Some(Value::Array(ops))
}

/// JSON patch setting annotation `key=value`, guarded by `resourceVersion`; `None` when it
/// already has that value.
pub fn annotation_ops(cvr: &CStorVolumeReplica, key: &str, value: &str) -> Option<Value> {
    let annotations = cvr.annotations();
    if annotations.get(key).map(String::as_str) == Some(value) {
        return None;
    }
    let rv = cvr.resource_version().unwrap_or_default();
    let set = if cvr.metadata.annotations.is_none() {
        json!({"op": "add", "path": "/metadata/annotations", "value": {key: value}})
    } else {
        json!({
            "op": "add",
            "path": format!("/metadata/annotations/{}", super::super::kube_ops::pointer_segment(key)),
            "value": value
        })
    };
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        set
    ]))
}

/// The CSPI's `provisionedReplicas` and `healthyReplicas`: CVRs whose dataset is in the
/// `zfs list -H -o name` output, and of those the ones in phase Healthy.
pub fn replica_counts(cvrs: &[CStorVolumeReplica], listing: &str, pool: &str) -> (i32, i32) {
    let names: std::collections::HashSet<&str> = listing.lines().map(str::trim).collect();
    let mut provisioned = 0i32;
    let mut healthy = 0i32;
    for cvr in cvrs {
        let Some(pv) = volume_of(cvr) else {
            continue;
        };
        if !names.contains(dataset_name(pool, &pv).as_str()) {
            continue;
        }
        provisioned = provisioned.saturating_add(1);
        if cvr
            .status
            .as_ref()
            .is_some_and(|s| s.phase == phase::HEALTHY)
        {
            healthy = healthy.saturating_add(1);
        }
    }
    (provisioned, healthy)
}

/// One volume of uZFS's `zfs stats <vol>` JSON (`{"stats":[{"name","status","rebuildStatus",
/// …,"quorum":1,…}]}`); only what the phase needs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct UzfsStat {
    pub name: String,
    pub status: String,
    #[serde(rename = "rebuildStatus", default)]
    pub rebuild_status: String,
    #[serde(default)]
    pub quorum: i64,
}

/// `zfs stats <vol>` → its first entry; an empty list is an error (the Go pool-manager
/// panics on it).
pub fn parse_uzfs_stats(text: &str) -> Result<UzfsStat, String> {
    #[derive(serde::Deserialize)]
    struct All {
        #[serde(default)]
        stats: Vec<UzfsStat>,
    }
    let all: All =
        serde_json::from_str(text.trim()).map_err(|e| format!("zfs stats is not JSON: {e}"))?;
    all.stats
        .into_iter()
        .next()
        .ok_or_else(|| "zfs stats listed no volume".to_string())
}

/// The CVR phase of a uZFS replica from its stats, as the Go pool-manager maps them: a
/// non-quorum replica (one joined to be rebuilt) is a new replica while degraded or rebuilding.
pub fn uzfs_phase(stat: &UzfsStat) -> &'static str {
    let quorum = stat.quorum == 1;
    match stat.status.as_str() {
        "Healthy" => phase::HEALTHY,
        "Offline" => phase::OFFLINE,
        "Degraded" if quorum => phase::DEGRADED,
        "Degraded" => phase::NEW_REPLICA_DEGRADED,
        "Rebuilding" if quorum => phase::REBUILDING,
        "Rebuilding" => phase::RECONSTRUCTING_NEW_REPLICA,
        _ => phase::ERROR,
    }
}
