//! What the volume-manager does next with istgt, decided purely (docs/volumes.md "istgt"):
//! the CStorVolume status from a `REPLICA` report, the istgt.conf lines it edits in place,
//! replication-factor changes (`DRF`), resize and the snapshot outcome.

use std::collections::BTreeMap;

use cstor_api::cstor_v1::CStorVolume;
use cstor_api::cstor_v1::cv::{CStorVolumeReplicaDetails, CStorVolumeStatus, phase};
use cstor_api::snapshot::{Outcome, Request};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::reply::VolumeReport;
use crate::volume_manager::status::{self, drf, spec_known, status_known};

/// Conf keys the sidecar edits (matched at the start of a line, as the Go sidecar does).
pub const KEY_DRF: &str = "  DesiredReplicationFactor";
pub const KEY_RF: &str = "  ReplicationFactor";
pub const KEY_CF: &str = "  ConsistencyFactor";
pub const KEY_STORAGE: &str = "  LUN0 Storage";

/// The conf line key of a known replica.
pub fn replica_key(id: &str) -> String {
    format!("  Replica {id}")
}

/// `conf` with the line starting with `key` (followed by a space or the end) replaced by
/// `key value`, appended when there is none, or removed when `value` is None.
pub fn set_line(conf: &str, key: &str, value: Option<&str>) -> String {
    let is_key = |line: &str| {
        line.strip_prefix(key)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    };
    let mut lines: Vec<String> = Vec::new();
    let mut found = false;
    for line in conf.lines() {
        if is_key(line) {
            found = true;
            if let Some(v) = value {
                lines.push(format!("{key} {v}"));
            }
        } else {
            lines.push(line.to_string());
        }
    }
    if !found && let Some(v) = value {
        lines.push(format!("{key} {v}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The value after `key` in `conf`, if the line is there.
pub fn line_value<'a>(conf: &'a str, key: &str) -> Option<&'a str> {
    conf.lines().find_map(|l| {
        l.strip_prefix(key)
            .filter(|rest| rest.is_empty() || rest.starts_with(' '))
            .map(str::trim)
    })
}

/// The conf after a replica registered: its factors and its `Replica` line.
pub fn registered_conf(conf: &str, rf: i64, cf: i64, id: &str, guid: &str) -> String {
    let conf = set_line(conf, KEY_RF, Some(&rf.to_string()));
    let conf = set_line(&conf, KEY_CF, Some(&cf.to_string()));
    set_line(&conf, &replica_key(id), Some(guid))
}

/// The conf after a resize to `capacity` (the Go sidecar writes `32K` here, not `32k`).
pub fn resized_conf(conf: &str, capacity: &str) -> String {
    set_line(conf, KEY_STORAGE, Some(&format!("{capacity} 32K")))
}

/// What a replication-factor change needs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrfStep {
    /// Nothing pending.
    None,
    /// `DRF <vol> <drf>`, then the conf's DesiredReplicationFactor line.
    ScaleUp { drf: i64 },
    /// Conf lines and the CV's factors first (when `rf_cf`), then `DRF <vol> <drf> <keep…>`,
    /// then status.knownReplicas = spec.knownReplicas.
    ScaleDown {
        drf: i64,
        keep: Vec<String>,
        removed: String,
        rf_cf: Option<(i64, i64)>,
    },
    /// Pending, but not yet possible (why).
    Wait(String),
    /// Pending and never possible as the CV stands (why).
    Invalid(String),
}

/// The replication-factor change pending between `cv` and istgt's `conf` (the Go sidecar's
/// `IsDRFPending` / `updateCStorVolumeDRF`): the conf's desired factor is not the CV's, or the
/// spec knows fewer replicas than the status (a scale-down). A scale-down waits until istgt
/// reports the volume Healthy with every replica the spec keeps Healthy.
pub fn drf_step(cv: &CStorVolume, conf: &str, report: Option<&VolumeReport>) -> DrfStep {
    let want = drf(cv);
    let spec = spec_known(cv);
    let status = status_known(cv);
    let conf_drf = line_value(conf, KEY_DRF).and_then(|v| v.parse::<i64>().ok());
    if conf_drf == Some(want) && spec.len() >= status.len() {
        return DrfStep::None;
    }
    if spec.len() > status.len() {
        return DrfStep::Invalid(format!(
            "spec.replicaDetails knows {} replicas, status only {}: a scale-down cannot be told apart",
            spec.len(),
            status.len()
        ));
    }
    if spec.len() == status.len() {
        return DrfStep::ScaleUp { drf: want };
    }
    let Some(removed) = status.keys().find(|k| !spec.contains_key(*k)).cloned() else {
        return DrfStep::Invalid(
            "no replica to remove: the spec's replicas are not a subset of the status's".into(),
        );
    };
    let Some(report) = report else {
        return DrfStep::Wait(format!(
            "scale down to {want} waits for istgt's replica report"
        ));
    };
    if report.status != phase::HEALTHY {
        return DrfStep::Wait(format!(
            "scale down to {want} waits for the volume to be Healthy (istgt reports {})",
            report.status
        ));
    }
    let not_healthy: Vec<&String> = spec
        .iter()
        .filter(|(_, guid)| {
            !report
                .replicas
                .iter()
                .any(|r| &r.id == *guid && r.mode == phase::HEALTHY)
        })
        .map(|(id, _)| id)
        .collect();
    if !not_healthy.is_empty() {
        return DrfStep::Wait(format!(
            "scale down to {want} waits for replicas {not_healthy:?} to be Healthy"
        ));
    }
    let rf = cv.spec.replication_factor.unwrap_or(0);
    DrfStep::ScaleDown {
        drf: want,
        keep: spec.keys().cloned().collect(),
        removed,
        rf_cf: (want < rf).then_some((want, want / 2 + 1)),
    }
}

/// The conf lines a scale-down edits before its `DRF` command.
pub fn scaled_down_conf(conf: &str, drf: i64, removed: &str) -> String {
    let conf = set_line(conf, KEY_RF, Some(&drf.to_string()));
    let conf = set_line(&conf, KEY_CF, Some(&(drf / 2 + 1).to_string()));
    let conf = set_line(&conf, KEY_DRF, Some(&drf.to_string()));
    set_line(&conf, &replica_key(removed), None)
}

/// A pending resize: `spec.capacity` (as written, istgt's 1024-based reading of it, as the Go
/// sidecar sends it) when it exceeds what istgt serves (`served`).
pub fn resize_to(cv: &CStorVolume, served: Option<&Quantity>) -> Option<String> {
    let want = cv.spec.capacity.as_ref()?;
    let want_bytes = cstor_api::quantity::bytes(&want.0).ok()?;
    let have = served.and_then(|q| cstor_api::quantity::bytes(&q.0).ok())?;
    (want_bytes > have).then(|| want.0.clone())
}

/// What the volume-manager saw of istgt for one status write.
#[derive(Clone, Debug)]
pub struct Seen<'a> {
    /// The CV's volume in `REPLICA`, or why it could not be read.
    pub report: Result<&'a VolumeReport, &'a str>,
    /// The capacity istgt serves (the conf's, once istgt took it).
    pub served: Option<&'a Quantity>,
    /// Why the last resize failed, if it did.
    pub resize_error: Option<&'a str>,
    /// A replication-factor change waiting (why), if any.
    pub drf_waiting: Option<&'a str>,
}

/// The CStorVolume status as the Go sidecar writes it from `REPLICA` (phase = istgt's volume
/// status, `Init` while no replica is connected, `Error` when the report failed; the
/// replicas' statuses as istgt lists them), plus ours: a message, the capacity istgt serves, a
/// `Resizing` condition while a resize is pending or failed, and the known replicas.
pub fn status(cv: &CStorVolume, seen: &Seen<'_>, now: &Time) -> CStorVolumeStatus {
    let old = cv.status.clone().unwrap_or_default();
    let rf = cv.spec.replication_factor.unwrap_or(0);
    let cf = cv.spec.consistency_factor.unwrap_or(0);
    let (ph, replicas, mut message) = match seen.report {
        Ok(r) => {
            let healthy = r
                .replicas
                .iter()
                .filter(|x| x.mode == phase::HEALTHY)
                .count();
            let message = if r.replicas.is_empty() {
                format!("waiting for replicas: 0 of {rf} connected to istgt ({cf} needed for I/O)")
            } else {
                format!(
                    "istgt reports {}: {} of {rf} replicas connected, {healthy} Healthy ({cf} needed for I/O)",
                    r.status,
                    r.replicas.len()
                )
            };
            (r.phase().to_string(), r.replicas.clone(), message)
        }
        Err(why) => (
            phase::ERROR.to_string(),
            old.replica_statuses.clone(),
            format!("istgt's replica report failed: {why}"),
        ),
    };
    if let Some(w) = seen.drf_waiting {
        message.push_str("; ");
        message.push_str(w);
    }
    let transition = status::transition_time(&old, &ph, now);
    let capacity = seen.served.cloned().or(old.capacity.clone());
    let pending = resize_to(cv, capacity.as_ref()).is_some();
    let conditions = status::resizing_conditions(&old, pending, seen.resize_error, now);
    let known = status_known(cv);
    CStorVolumeStatus {
        phase: ph,
        replica_statuses: replicas,
        capacity,
        last_transition_time: transition,
        last_update_time: Some(now.clone()),
        message,
        conditions,
        replica_details: (!known.is_empty()).then_some(CStorVolumeReplicaDetails {
            known_replicas: known,
        }),
    }
}

/// The known replicas (CVR replica ids) istgt reports Healthy: the report lists zvol GUIDs,
/// the CV maps replica id → GUID.
pub fn healthy_known(cv: &CStorVolume, report: Option<&VolumeReport>) -> Vec<String> {
    let Some(report) = report else {
        return Vec::new();
    };
    let known: BTreeMap<String, String> = spec_known(cv);
    known
        .into_iter()
        .filter(|(_, guid)| {
            report
                .replicas
                .iter()
                .any(|r| &r.id == guid && r.mode == phase::HEALTHY)
        })
        .map(|(id, _)| id)
        .collect()
}

/// The outcome of a snapshot istgt took or destroyed (`result`: istgt's refusal, if any):
/// istgt answers OK only once the consistency factor of Healthy replicas took it, so `done`
/// is the known replicas it last reported Healthy.
pub fn snapshot_outcome(
    request: &Request,
    result: Result<(), String>,
    healthy: Vec<String>,
) -> Outcome {
    match result {
        Ok(()) => Outcome {
            id: request.id.clone(),
            snapshot: request.snapshot.clone(),
            op: request.op,
            done: healthy,
            ..Outcome::default()
        },
        Err(why) => crate::volume_manager::snapshot::refused(request, &why),
    }
}
