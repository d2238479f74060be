//! The volume-manager's istgt decisions: conf line edits as the Go sidecar makes them,
//! replication-factor steps (scale up, scale down and its waits), resize, the status from a
//! `REPLICA` report, and the snapshot outcome.

use std::collections::BTreeMap;

use cstor_api::cstor_v1::CStorVolume;
use cstor_api::cstor_v1::cv::ReplicaStatus;
use cstor_api::snapshot::{Op, Request};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use pretty_assertions::assert_eq;
use serde_json::json;

use crate::volume_manager::istgt::decide::{
    self, DrfStep, KEY_CF, KEY_DRF, KEY_RF, Seen, drf_step, line_value, resize_to, set_line,
};
use crate::volume_manager::istgt::reply::VolumeReport;

const TAIL: &str = "  ReplicationFactor 3\n  ConsistencyFactor 2\n  DesiredReplicationFactor 3\n  LUN0 Storage 1Gi 32k\n  LUN0 Option XCOPY Disable\n";

fn cv(rf: i64, cf: i64, drf: i64, spec: &[(&str, &str)], status: &[(&str, &str)]) -> CStorVolume {
    let known = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    serde_json::from_value(json!({
        "metadata": {"name": "pvc-1", "uid": "u-1"},
        "spec": {"capacity": "1Gi", "targetIP": "10.0.0.5",
                 "replicationFactor": rf, "consistencyFactor": cf,
                 "desiredReplicationFactor": drf,
                 "replicaDetails": {"knownReplicas": known(spec)}},
        "status": {"phase": "Healthy", "capacity": "1Gi",
                   "replicaDetails": {"knownReplicas": known(status)}},
    }))
    .expect("cv")
}

fn replica(guid: &str, mode: &str) -> ReplicaStatus {
    ReplicaStatus {
        id: guid.into(),
        mode: mode.into(),
        checkpointed_io_seq: "1000".into(),
        inflight_read: "0".into(),
        inflight_write: "0".into(),
        inflight_sync: "0".into(),
        up_time: 9,
        quorum: "1".into(),
    }
}

fn report(status: &str, replicas: &[(&str, &str)]) -> VolumeReport {
    VolumeReport {
        name: "pvc-1".into(),
        status: status.into(),
        replicas: replicas.iter().map(|(g, m)| replica(g, m)).collect(),
    }
}

#[test]
fn conf_lines_are_replaced_by_prefix_appended_when_missing_and_removed() {
    // Replaced in place; `  Replica…` never matches `  ReplicationFactor`.
    let conf = set_line(TAIL, KEY_RF, Some("4"));
    assert!(conf.starts_with("  ReplicationFactor 4\n"));
    let conf = set_line(&conf, "  Replica A1", Some("6161"));
    assert!(conf.ends_with("  LUN0 Option XCOPY Disable\n  Replica A1 6161\n"));
    assert_eq!(line_value(&conf, KEY_RF), Some("4"));
    // A known replica's GUID changes (replacement): the line is rewritten, not duplicated.
    let conf = set_line(&conf, "  Replica A1", Some("7171"));
    assert_eq!(conf.matches("  Replica A1").count(), 1);
    assert_eq!(line_value(&conf, "  Replica A1"), Some("7171"));
    // Removed.
    let conf = set_line(&conf, "  Replica A1", None);
    assert!(!conf.contains("Replica A1"));
    assert_eq!(line_value(&conf, KEY_DRF), Some("3"));
    // The Go sidecar's edits.
    let conf = decide::registered_conf(TAIL, 4, 3, "B2", "6262");
    assert_eq!(line_value(&conf, KEY_RF), Some("4"));
    assert_eq!(line_value(&conf, KEY_CF), Some("3"));
    assert!(conf.ends_with("  Replica B2 6262\n"));
    let conf = decide::resized_conf(TAIL, "2Gi");
    assert!(conf.contains("  LUN0 Storage 2Gi 32K\n"));
    let conf =
        decide::scaled_down_conf(&decide::registered_conf(TAIL, 3, 2, "B2", "6262"), 2, "B2");
    assert_eq!(
        conf,
        "  ReplicationFactor 2\n  ConsistencyFactor 2\n  DesiredReplicationFactor 2\n  LUN0 Storage 1Gi 32k\n  LUN0 Option XCOPY Disable\n"
    );
}

#[test]
fn replication_factor_steps_follow_the_go_sidecar() {
    let three = [("A", "6161"), ("B", "6162"), ("C", "6163")];
    let healthy3 = report(
        "Healthy",
        &[
            ("6161", "Healthy"),
            ("6162", "Healthy"),
            ("6163", "Healthy"),
        ],
    );
    // Nothing pending.
    assert_eq!(
        drf_step(&cv(3, 2, 3, &three, &three), TAIL, Some(&healthy3)),
        DrfStep::None
    );
    // DRF raised: scale up.
    assert_eq!(
        drf_step(&cv(3, 2, 4, &three, &three), TAIL, None),
        DrfStep::ScaleUp { drf: 4 }
    );
    // A pre-1.3 CV (DRF 0) is RF.
    assert_eq!(
        drf_step(&cv(3, 2, 0, &three, &three), TAIL, None),
        DrfStep::None
    );
    // Scale down 3 → 2 (C leaves): needs the report, Healthy, with A and B Healthy.
    let two = [("A", "6161"), ("B", "6162")];
    let down = cv(3, 2, 2, &two, &three);
    assert_eq!(
        drf_step(&down, TAIL, None),
        DrfStep::Wait("scale down to 2 waits for istgt's replica report".into())
    );
    assert_eq!(
        drf_step(
            &down,
            TAIL,
            Some(&report(
                "Degraded",
                &[("6161", "Healthy"), ("6162", "Degraded")]
            ))
        ),
        DrfStep::Wait(
            "scale down to 2 waits for the volume to be Healthy (istgt reports Degraded)".into()
        )
    );
    assert_eq!(
        drf_step(
            &down,
            TAIL,
            Some(&report(
                "Healthy",
                &[
                    ("6161", "Healthy"),
                    ("6163", "Healthy"),
                    ("6162", "Degraded")
                ]
            ))
        ),
        DrfStep::Wait("scale down to 2 waits for replicas [\"B\"] to be Healthy".into())
    );
    assert_eq!(
        drf_step(&down, TAIL, Some(&healthy3)),
        DrfStep::ScaleDown {
            drf: 2,
            keep: vec!["A".into(), "B".into()],
            removed: "C".into(),
            rf_cf: Some((2, 2)),
        }
    );
    // The factors were lowered already (a retry after the conf and CV were edited).
    let conf = decide::scaled_down_conf(TAIL, 2, "C");
    assert_eq!(
        drf_step(&cv(2, 2, 2, &two, &three), &conf, Some(&healthy3)),
        DrfStep::ScaleDown {
            drf: 2,
            keep: vec!["A".into(), "B".into()],
            removed: "C".into(),
            rf_cf: None,
        }
    );
    // The spec knows more than the status: nothing pending is left alone; a change is
    // refused, never guessed.
    assert_eq!(
        drf_step(&cv(3, 2, 3, &three, &two), TAIL, Some(&healthy3)),
        DrfStep::None
    );
    assert_eq!(
        drf_step(&cv(3, 2, 4, &three, &two), TAIL, Some(&healthy3)),
        DrfStep::Invalid(
            "spec.replicaDetails knows 3 replicas, status only 2: a scale-down cannot be told apart"
                .into()
        )
    );
}

#[test]
fn a_resize_is_pending_while_the_spec_exceeds_what_istgt_serves() {
    let mut v = cv(3, 2, 3, &[], &[]);
    let q = |s: &str| Quantity(s.into());
    assert_eq!(resize_to(&v, Some(&q("1Gi"))), None);
    v.spec.capacity = Some(q("2Gi"));
    assert_eq!(resize_to(&v, Some(&q("1Gi"))), Some("2Gi".into()));
    assert_eq!(resize_to(&v, Some(&q("2048Mi"))), None);
    // A shrink is never sent.
    assert_eq!(resize_to(&v, Some(&q("3Gi"))), None);
    // Nothing served yet: nothing to resize.
    assert_eq!(resize_to(&v, None), None);
}

#[test]
fn the_status_is_istgts_report_with_init_error_and_resizing_as_the_sidecar_writes_them() {
    let now = cstor_runtime::now();
    let three = [("A", "6161"), ("B", "6162"), ("C", "6163")];
    let v = cv(3, 2, 3, &three, &three);
    let served = Quantity("1Gi".into());
    let seen = |r| Seen {
        report: r,
        served: Some(&served),
        resize_error: None,
        drf_waiting: None,
    };
    // No replica connected: Init, whatever istgt says.
    let empty = report("Offline", &[]);
    let st = decide::status(&v, &seen(Ok(&empty)), &now);
    assert_eq!(st.phase, "Init");
    assert_eq!(
        st.message,
        "waiting for replicas: 0 of 3 connected to istgt (2 needed for I/O)"
    );
    // istgt's status, its replica list as is.
    let one = report("Offline", &[("6161", "Degraded")]);
    let st = decide::status(&v, &seen(Ok(&one)), &now);
    assert_eq!(st.phase, "Offline");
    assert_eq!(st.replica_statuses, vec![replica("6161", "Degraded")]);
    assert_eq!(
        st.message,
        "istgt reports Offline: 1 of 3 replicas connected, 0 Healthy (2 needed for I/O)"
    );
    assert_eq!(st.capacity, Some(served.clone()));
    assert_eq!(
        st.replica_details.map(|d| d.known_replicas.len()),
        Some(3),
        "the known replicas are kept"
    );
    // The report failed: Error, the last replica statuses kept.
    let mut with_replicas = v.clone();
    if let Some(s) = with_replicas.status.as_mut() {
        s.replica_statuses = vec![replica("6161", "Healthy")];
    }
    let st = decide::status(&with_replicas, &seen(Err("no answer")), &now);
    assert_eq!(st.phase, "Error");
    assert_eq!(st.message, "istgt's replica report failed: no answer");
    assert_eq!(st.replica_statuses, vec![replica("6161", "Healthy")]);
    // The same phase keeps its transition time; a new one moves it.
    let healthy = report("Healthy", &[("6161", "Healthy"), ("6162", "Healthy")]);
    let st = decide::status(&v, &seen(Ok(&healthy)), &now);
    assert_eq!(st.phase, "Healthy");
    // A resize pending, then failed: the Resizing condition says so.
    let mut bigger = v.clone();
    bigger.spec.capacity = Some(Quantity("2Gi".into()));
    let st = decide::status(&bigger, &seen(Ok(&healthy)), &now);
    assert_eq!(st.conditions.len(), 1);
    assert_eq!(st.conditions[0].type_, "Resizing");
    assert_eq!(
        st.conditions[0].message,
        "Triggered resize by changing capacity in spec"
    );
    let failed = Seen {
        resize_error: Some("resize from 1Gi to 2Gi failed: istgt refused RESIZE: failed RESIZE"),
        ..seen(Ok(&healthy))
    };
    let st = decide::status(&bigger, &failed, &now);
    assert_eq!(
        st.conditions[0].message,
        "resize from 1Gi to 2Gi failed: istgt refused RESIZE: failed RESIZE"
    );
    // A replication-factor change waiting is in the message.
    let waiting = Seen {
        drf_waiting: Some("scale down to 2 waits for replicas [\"B\"] to be Healthy"),
        ..seen(Ok(&healthy))
    };
    assert!(
        decide::status(&v, &waiting, &now)
            .message
            .ends_with("; scale down to 2 waits for replicas [\"B\"] to be Healthy")
    );
}

#[test]
fn a_snapshot_istgt_took_is_done_on_the_known_replicas_it_reports_healthy() {
    let v = cv(3, 2, 3, &[("A", "6161"), ("B", "6162"), ("C", "6163")], &[]);
    let r = report(
        "Degraded",
        &[
            ("6161", "Healthy"),
            ("6162", "Degraded"),
            ("6163", "Healthy"),
        ],
    );
    let healthy = decide::healthy_known(&v, Some(&r));
    assert_eq!(healthy, vec!["A".to_string(), "C".to_string()]);
    let request = Request {
        id: "r1".into(),
        snapshot: "s1".into(),
        op: Op::Create,
    };
    let o = decide::snapshot_outcome(&request, Ok(()), healthy);
    assert_eq!(o.done, vec!["A".to_string(), "C".to_string()]);
    assert!(o.failed.is_empty() && o.refused.is_empty());
    let o = decide::snapshot_outcome(
        &request,
        Err("istgt refused SNAPCREATE: failed SNAPCREATE".into()),
        Vec::new(),
    );
    assert_eq!(o.refused, "istgt refused SNAPCREATE: failed SNAPCREATE");
    assert!(o.done.is_empty());
}
