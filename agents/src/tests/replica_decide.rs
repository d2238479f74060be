//! The replica controller's pure decisions (docs/volumes.md, docs/volumes.md).

use std::collections::BTreeMap;

use crate::pool_manager::replica::decide::{
    self, LUN_ANNOTATION, PhaseInput, PhaseOutcome, PoolState, ResizeStep, Shrink,
};
use cstor_api::cstor_v1::cv::{
    CStorVolume, CStorVolumeReplicaDetails, CStorVolumeStatus, ReplicaStatus,
};
use cstor_api::cstor_v1::cvr::{
    CStorVolumeReplica, CStorVolumeReplicaSpec, CStorVolumeReplicaStatus, CVRCapacityInfo, phase,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use pretty_assertions::assert_eq;
use serde_json::json;

const UID: &str = "3f8a1c2e-5b6d-4e7f-8a9b-0c1d2e3f4a5b";

fn cvr(labels: &[(&str, &str)], phase: &str) -> CStorVolumeReplica {
    CStorVolumeReplica {
        metadata: ObjectMeta {
            name: Some("pvc-1-cspi-a".into()),
            namespace: Some("openebs".into()),
            uid: Some(UID.into()),
            resource_version: Some("42".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: CStorVolumeReplicaSpec {
            target_ip: "10.96.0.10".into(),
            capacity: "1Gi".into(),
            ..Default::default()
        },
        status: (!phase.is_empty()).then(|| CStorVolumeReplicaStatus {
            phase: phase.into(),
            ..Default::default()
        }),
        version_details: None,
    }
}

fn good() -> CStorVolumeReplica {
    cvr(
        &[
            ("cstorvolume.openebs.io/name", "pvc-1"),
            ("openebs.io/persistent-volume", "pvc-1"),
            ("cstorpoolinstance.openebs.io/uid", "cspi-uid"),
            ("cstorpoolinstance.openebs.io/name", "cspi-a"),
        ],
        "",
    )
}

/// The capacity is read by the one quantity parser (cstor_api::quantity, whose table test
/// holds the awkward inputs); here only that validation uses it and reports its errors.
#[test]
fn capacity_is_read_as_kubernetes_reads_it() {
    for (text, bytes) in [("1Gi", 1u64 << 30), ("1G", 1_000_000_000), ("1.5", 2)] {
        let mut c = good();
        c.spec.capacity = text.into();
        assert_eq!(decide::validate(&c), Ok(bytes), "{text:?}");
    }
    let mut c = good();
    c.spec.capacity = "16Ei".into();
    assert_eq!(
        decide::validate(&c),
        Err(format!(
            "spec.capacity: \"16Ei\" is more than {} bytes",
            u64::MAX
        ))
    );
}

#[test]
fn zvol_size_drops_the_trailing_i() {
    assert_eq!(decide::zvol_size_arg("5Gi"), "5G");
    assert_eq!(decide::zvol_size_arg("5G"), "5G");
    assert_eq!(decide::zvol_size_arg("1073741824"), "1073741824");
}

#[test]
fn replica_id_is_xxh64_of_the_json_encoded_uid() {
    // Computed independently (a Python XXH64, checked against XXH64("") = 0xEF46DB3751D8E999
    // and XXH64("a") = 0xD24EC4F1A98C6E5B) over the 38 bytes `"3f8a…4a5b"` with the quotes.
    assert_eq!(decide::replica_id_for(UID), "14605127560351622684");
    assert_eq!(
        decide::replica_id_for("c0ffee00-0000-4000-8000-000000000001"),
        "4991056698298190161"
    );
}

#[test]
fn replica_id_patch_is_guarded_and_only_when_unset() {
    let c = good();
    assert_eq!(
        decide::replica_id_ops(&c, "7"),
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "add", "path": "/spec/replicaid", "value": "7"}
        ]))
    );
    let mut set = good();
    set.spec.replica_id = "9".into();
    assert_eq!(decide::replica_id_ops(&set, "7"), None);
}

#[test]
fn lun_annotation_patch() {
    let c = good();
    assert_eq!(
        decide::annotation_ops(&c, LUN_ANNOTATION, "/var/openebs/replicas/pvc-1/lun"),
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "add", "path": "/metadata/annotations",
             "value": {"cstor.openebs.io/replica-lun": "/var/openebs/replicas/pvc-1/lun"}}
        ]))
    );
    let mut with = good();
    with.metadata.annotations = Some(BTreeMap::from([("a".to_string(), "b".to_string())]));
    assert_eq!(
        decide::annotation_ops(&with, LUN_ANNOTATION, "/x/lun"),
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "add", "path": "/metadata/annotations/cstor.openebs.io~1replica-lun", "value": "/x/lun"}
        ]))
    );
    with.metadata
        .annotations
        .as_mut()
        .expect("annotations")
        .insert(LUN_ANNOTATION.into(), "/x/lun".into());
    assert_eq!(
        decide::annotation_ops(&with, LUN_ANNOTATION, "/x/lun"),
        None
    );
}

#[test]
fn the_plugins_restore_completed_mark_ends_the_restore() {
    let mut c = good();
    assert_eq!(decide::restore_completed_ops(&c), None);
    c.metadata.annotations = Some(BTreeMap::from([
        ("isRestoreVol".to_string(), "true".to_string()),
        (
            "openebs.io/restore-completed".to_string(),
            "true".to_string(),
        ),
    ]));
    assert!(c.awaiting_restore());
    assert_eq!(
        decide::restore_completed_ops(&c),
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "remove", "path": "/metadata/annotations/openebs.io~1restore-completed"},
            {"op": "remove", "path": "/metadata/annotations/isRestoreVol"}
        ]))
    );
    // Only "true" is the mark.
    c.metadata.annotations = Some(BTreeMap::from([
        ("isRestoreVol".to_string(), "true".to_string()),
        (
            "openebs.io/restore-completed".to_string(),
            "false".to_string(),
        ),
    ]));
    assert_eq!(decide::restore_completed_ops(&c), None);
}

#[test]
fn validation_as_b_3_3() {
    assert_eq!(decide::validate(&good()), Ok(1 << 30));
    let mut no_ip = good();
    no_ip.spec.target_ip.clear();
    assert_eq!(
        decide::validate(&no_ip),
        Err("spec.targetIP is not set".into())
    );
    let mut no_cap = good();
    no_cap.spec.capacity.clear();
    assert_eq!(
        decide::validate(&no_cap),
        Err("spec.capacity is not set".into())
    );
    let mut zero = good();
    zero.spec.capacity = "0".into();
    assert_eq!(decide::validate(&zero), Err("spec.capacity is zero".into()));
    let mut bad = good();
    bad.spec.capacity = "1GB".into();
    assert_eq!(
        decide::validate(&bad),
        Err("spec.capacity: \"1GB\" is not a quantity: expected a number and one of the suffixes Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>".into())
    );
    let no_vol = cvr(&[("cstorpoolinstance.openebs.io/uid", "u")], "");
    assert_eq!(
        decide::validate(&no_vol),
        Err("label cstorvolume.openebs.io/name is not set".into())
    );
    let both = cvr(
        &[
            ("cstorvolume.openebs.io/name", "pvc-1"),
            ("cstorpoolinstance.openebs.io/uid", "u"),
            ("cstorpool.openebs.io/uid", "v"),
        ],
        "",
    );
    let neither = cvr(&[("cstorvolume.openebs.io/name", "pvc-1")], "");
    for c in [both, neither] {
        assert_eq!(
            decide::validate(&c),
            Err("exactly one of the labels cstorpool.openebs.io/uid and cstorpoolinstance.openebs.io/uid must be set".into())
        );
    }
}

#[test]
fn names_and_paths() {
    let c = good();
    assert_eq!(decide::volume_of(&c).as_deref(), Some("pvc-1"));
    assert_eq!(
        decide::dataset_name("cstor-abc", "pvc-1"),
        "cstor-abc/pvc-1"
    );
    assert_eq!(
        decide::replicas_dir(std::path::Path::new("/var/openebs/cstor-pool/pool.cache")),
        std::path::PathBuf::from("/var/openebs/cstor-pool/replicas")
    );
    assert!(decide::concerns(&c, "pvc-1"));
    assert!(!decide::concerns(&c, "pvc-2"));
}

#[test]
fn created_before_follows_the_annotation_or_the_phase() {
    // Dataset store: the lun annotation is the mark.
    assert!(!decide::created_before("Init", false, true));
    assert!(!decide::created_before("Healthy", false, true));
    assert!(!decide::created_before("Offline", false, true));
    assert!(decide::created_before("Init", true, true));
    assert!(decide::created_before("Offline", true, true));
    // Zvol: the phase has left Init/Recreate (Offline may be a failed validation).
    assert!(!decide::created_before("", false, false));
    assert!(!decide::created_before("init", false, false));
    assert!(!decide::created_before("Recreate", false, false));
    assert!(!decide::created_before("Offline", false, false));
    assert!(decide::created_before("Healthy", false, false));
    assert!(decide::created_before("Degraded", false, false));
}

fn input<'a>(current: &'a str, mode: Option<&'a str>) -> PhaseInput<'a> {
    PhaseInput {
        current,
        pool: "cstor-abc",
        pool_state: PoolState::Usable,
        store_present: true,
        created_before: true,
        mode,
        known: false,
        awaiting_restore: false,
    }
}

fn out(phase: &str, message: &str) -> PhaseOutcome {
    PhaseOutcome {
        phase: phase.into(),
        message: message.into(),
    }
}

#[test]
fn phase_mapping_table() {
    let h = Some("Healthy");
    let d = Some("Degraded");
    let r = Some("Rebuilding");
    for (current, mode, known, want) in [
        // No entry yet: Init/Recreate kept ("" becomes Init).
        ("", None, false, out(phase::INIT, "")),
        ("Init", None, false, out(phase::INIT, "")),
        ("Recreate", None, false, out(phase::RECREATE, "")),
        // A replica the target had and lost.
        (
            "Healthy",
            None,
            true,
            out(phase::OFFLINE, "not connected to the target"),
        ),
        // The target's modes.
        ("Init", h, false, out(phase::HEALTHY, "")),
        ("Init", d, false, out(phase::DEGRADED, "")),
        ("Init", r, false, out(phase::REBUILDING, "")),
        ("Healthy", d, true, out(phase::DEGRADED, "")),
        ("Degraded", r, true, out(phase::REBUILDING, "")),
        ("Rebuilding", h, true, out(phase::HEALTHY, "")),
        // Made in Recreate and never Healthy.
        ("Recreate", d, false, out(phase::NEW_REPLICA_DEGRADED, "")),
        (
            "Recreate",
            r,
            false,
            out(phase::RECONSTRUCTING_NEW_REPLICA, ""),
        ),
        (
            "NewReplicaDegraded",
            r,
            false,
            out(phase::RECONSTRUCTING_NEW_REPLICA, ""),
        ),
        (
            "ReconstructingNewReplica",
            d,
            false,
            out(phase::NEW_REPLICA_DEGRADED, ""),
        ),
        (
            "ReconstructingNewReplica",
            h,
            false,
            out(phase::HEALTHY, ""),
        ),
        // ...but once the CV knows it (it was Healthy), it is an ordinary replica.
        ("Recreate", d, true, out(phase::DEGRADED, "")),
        ("NewReplicaDegraded", r, true, out(phase::REBUILDING, "")),
        // Healthy once: never "new" again.
        ("Healthy", d, false, out(phase::DEGRADED, "")),
        (
            "Offline",
            Some("Offline"),
            true,
            out(phase::OFFLINE, "the target reports the replica Offline"),
        ),
        (
            "Healthy",
            Some("Weird"),
            true,
            out(
                phase::ERROR,
                "the target reports the replica in mode \"Weird\"",
            ),
        ),
    ] {
        let i = PhaseInput {
            known,
            ..input(current, mode)
        };
        assert_eq!(
            decide::replica_phase(&i),
            want,
            "{current:?} {mode:?} known={known}"
        );
    }
}

#[test]
fn a_replica_awaiting_its_restore_reports_error_not_offline() {
    // The velero-plugin restores only once every replica is Healthy, Degraded or Error.
    for (current, mode) in [
        ("", None),
        ("Init", None),
        ("Error", None),
        ("Healthy", Some("Healthy")),
    ] {
        let i = PhaseInput {
            awaiting_restore: true,
            ..input(current, mode)
        };
        assert_eq!(
            decide::replica_phase(&i),
            out(
                phase::ERROR,
                "waiting for its restore: the target uses it once the restore is complete"
            )
        );
    }
    // The pool comes first: a lost pool is still Offline.
    let lost = PhaseInput {
        awaiting_restore: true,
        pool_state: PoolState::Absent,
        ..input("Error", None)
    };
    assert_eq!(decide::replica_phase(&lost).phase, phase::OFFLINE);
}

#[test]
fn phase_when_the_pool_or_store_is_not_there() {
    let absent = PhaseInput {
        pool_state: PoolState::Absent,
        store_present: false,
        created_before: false,
        ..input("", None)
    };
    assert_eq!(
        decide::replica_phase(&absent),
        out(phase::INIT, "waiting for pool cstor-abc to be imported")
    );
    let absent_made = PhaseInput {
        pool_state: PoolState::Absent,
        store_present: false,
        created_before: true,
        ..input("Healthy", Some("Healthy"))
    };
    assert_eq!(
        decide::replica_phase(&absent_made),
        out(phase::OFFLINE, "pool cstor-abc is not imported")
    );
    let faulted = PhaseInput {
        pool_state: PoolState::Unusable("FAULTED".into()),
        ..input("Healthy", Some("Healthy"))
    };
    assert_eq!(
        decide::replica_phase(&faulted),
        out(phase::OFFLINE, "pool cstor-abc is FAULTED")
    );
    let faulted_new = PhaseInput {
        pool_state: PoolState::Unusable("UNAVAIL".into()),
        store_present: false,
        created_before: false,
        ..input("Recreate", None)
    };
    assert_eq!(
        decide::replica_phase(&faulted_new),
        out(
            phase::RECREATE,
            "waiting for pool cstor-abc (it is UNAVAIL)"
        )
    );
    let lost = PhaseInput {
        store_present: false,
        ..input("Healthy", Some("Healthy"))
    };
    assert_eq!(
        decide::replica_phase(&lost),
        out(phase::OFFLINE, "replica store is missing")
    );
    let not_yet = PhaseInput {
        store_present: false,
        created_before: false,
        ..input("Init", None)
    };
    assert_eq!(
        decide::replica_phase(&not_yet),
        out(phase::INIT, "replica store not created yet")
    );
}

#[test]
fn cv_view_finds_our_entry_and_known_replicas() {
    let cv = CStorVolume {
        status: Some(CStorVolumeStatus {
            replica_statuses: vec![
                ReplicaStatus {
                    id: "1".into(),
                    mode: "Healthy".into(),
                    ..Default::default()
                },
                ReplicaStatus {
                    id: "2".into(),
                    mode: "Degraded".into(),
                    ..Default::default()
                },
            ],
            replica_details: Some(CStorVolumeReplicaDetails {
                known_replicas: BTreeMap::from([("1".to_string(), "1".to_string())]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(decide::cv_view(Some(&cv), "1"), (Some("Healthy"), true));
    assert_eq!(decide::cv_view(Some(&cv), "2"), (Some("Degraded"), false));
    assert_eq!(decide::cv_view(Some(&cv), "3"), (None, false));
    assert_eq!(decide::cv_view(None, "1"), (None, false));
}

#[test]
fn quota_leaves_room_for_metadata() {
    // 64 MiB: the measured first full write needed 67 297 280 bytes of `used`.
    assert_eq!(decide::quota_for(67_108_864), 69_206_016);
    assert!(decide::quota_for(67_108_864) > 67_297_280);
    assert_eq!(
        decide::quota_for(1 << 30),
        (1 << 30) + (1 << 24) + (1 << 20)
    );
    assert_eq!(decide::quota_for(u64::MAX), u64::MAX);
}

#[test]
fn dataset_resize_decisions() {
    let g = 1u64 << 30;
    let q = decide::quota_for;
    for (desired, lun, quota, refres, thick, want) in [
        (g, g, q(g), 0, false, Ok(vec![])),
        (g, g, q(g), g, true, Ok(vec![])),
        (
            2 * g,
            g,
            q(g),
            0,
            false,
            Ok(vec![
                ResizeStep::Quota(q(2 * g)),
                ResizeStep::GrowLun(2 * g),
            ]),
        ),
        (
            2 * g,
            g,
            q(g),
            g,
            true,
            Ok(vec![
                ResizeStep::Quota(q(2 * g)),
                ResizeStep::Refreservation(2 * g),
                ResizeStep::GrowLun(2 * g),
            ]),
        ),
        // Half done before (quota raised, lun not grown): finish it.
        (
            2 * g,
            g,
            q(2 * g),
            0,
            false,
            Ok(vec![ResizeStep::GrowLun(2 * g)]),
        ),
        // A store made with an older quota rule (quota == capacity) gets the room.
        (g, g, g, 0, false, Ok(vec![ResizeStep::Quota(q(g))])),
        // No quota at all (none → 0): left alone.
        (g, g, 0, 0, false, Ok(vec![])),
        // Never shrink.
        (
            g,
            2 * g,
            q(2 * g),
            0,
            false,
            Err(Shrink { from: 2 * g, to: g }),
        ),
    ] {
        assert_eq!(
            decide::dataset_resize(desired, lun, quota, refres, thick),
            want,
            "desired {desired} lun {lun} quota {quota} refres {refres} thick {thick}"
        );
    }
    assert_eq!(
        Shrink { from: 2, to: 1 }.to_string(),
        "shrinking the replica from 2 to 1 bytes is not supported"
    );
}

#[test]
fn zvol_resize_decisions() {
    assert_eq!(decide::zvol_resize(10, 10), Ok(vec![]));
    assert_eq!(decide::zvol_resize(20, 10), Ok(vec![ResizeStep::Quota(20)]));
    assert_eq!(decide::zvol_resize(5, 10), Err(Shrink { from: 10, to: 5 }));
}

fn t(s: &str) -> Time {
    Time(s.parse().expect("timestamp"))
}

#[test]
fn status_moves_the_transition_time_only_on_a_phase_change() {
    let t1 = t("2026-12-01T10:00:00Z");
    let t2 = t("2026-12-01T10:05:00Z");
    let cap = CVRCapacityInfo {
        total: "67297280".into(),
        used: "67297280".into(),
    };
    let first = decide::next_status(None, &out(phase::INIT, ""), None, &t1);
    assert_eq!(first.last_transition_time, Some(t1.clone()));
    assert_eq!(first.last_update_time, Some(t1.clone()));

    let same = decide::next_status(Some(&first), &out(phase::INIT, ""), Some(cap.clone()), &t2);
    assert_eq!(same.last_transition_time, Some(t1.clone()));
    assert_eq!(same.last_update_time, Some(t2.clone()));
    assert_eq!(same.capacity, Some(cap.clone()));

    let healthy = decide::next_status(Some(&same), &out(phase::HEALTHY, ""), None, &t2);
    assert_eq!(healthy.last_transition_time, Some(t2.clone()));
    assert_eq!(healthy.capacity, Some(cap), "capacity kept when not read");

    // Only lastUpdateTime differs: no write.
    let again = decide::next_status(
        Some(&healthy),
        &out(phase::HEALTHY, ""),
        None,
        &t("2026-12-01T11:00:00Z"),
    );
    assert!(!decide::status_differs(Some(&healthy), &again));
    let offline = decide::next_status(
        Some(&healthy),
        &out(phase::OFFLINE, "pool x is FAULTED"),
        None,
        &t2,
    );
    assert!(decide::status_differs(Some(&healthy), &offline));
    assert!(decide::status_differs(None, &offline));
}

#[test]
fn status_body_is_identity_plus_status() {
    let status = decide::next_status(
        None,
        &out(phase::OFFLINE, "pool cstor-abc is not imported"),
        Some(decide::capacity_info(67_297_280, 114_688)),
        &t("2026-12-01T10:00:00Z"),
    );
    assert_eq!(
        decide::status_apply_body("pvc-1-cspi-a", "openebs", &status),
        json!({
            "apiVersion": "cstor.openebs.io/v1",
            "kind": "CStorVolumeReplica",
            "metadata": {"name": "pvc-1-cspi-a", "namespace": "openebs"},
            "status": {
                "phase": "Offline",
                "capacity": {"total": "67297280", "used": "114688"},
                "lastTransitionTime": "2026-12-01T10:00:00Z",
                "lastUpdateTime": "2026-12-01T10:00:00Z",
                "message": "pool cstor-abc is not imported"
            }
        })
    );
}

#[test]
fn cspi_counts_replicas_with_a_dataset() {
    let listing = "cstor-abc\ncstor-abc/pvc-1\ncstor-abc/pvc-2\ncstor-other/pvc-3\n";
    let with = |pv: &str, p: &str| {
        cvr(
            &[
                ("cstorvolume.openebs.io/name", pv),
                ("cstorpoolinstance.openebs.io/uid", "u"),
            ],
            p,
        )
    };
    let cvrs = vec![
        with("pvc-1", "Healthy"),
        with("pvc-2", "Degraded"),
        with("pvc-3", "Healthy"), // another pool's dataset
        with("pvc-4", "Init"),    // not created yet
        cvr(&[], "Healthy"),      // no volume label
    ];
    assert_eq!(decide::replica_counts(&cvrs, listing, "cstor-abc"), (2, 1));
    assert_eq!(decide::replica_counts(&[], listing, "cstor-abc"), (0, 0));
}

#[test]
fn initial_phases_are_case_insensitive() {
    for p in ["", "Init", "init", "Recreate", "RECREATE"] {
        assert!(decide::is_initial(p), "{p}");
    }
    for p in ["Healthy", "Offline", "Error"] {
        assert!(!decide::is_initial(p), "{p}");
    }
    assert_eq!(decide::kept_phase(""), "Init");
    assert_eq!(decide::kept_phase("Recreate"), "Recreate");
}

#[test]
fn uzfs_stats_map_to_the_cvr_phase_as_the_go_pool_manager_does() {
    use crate::pool_manager::replica::decide::{parse_uzfs_stats, uzfs_phase};
    // The shape uZFS prints (and the Go pool-manager's tests mock), pretty-printed.
    let stats = |status: &str, quorum: i64| {
        format!(
            r#"{{
  "stats": [
    {{
      "name": "cstor-183f17c6-ed8b-11e8-87fd-42010a800087/pvc-9e91f938-ee23-11e8-87fd-42010a800087",
      "status": "{status}",
      "rebuildStatus": "INIT",
      "isIOAckSenderCreated": 0,
      "isIOReceiverCreated": 0,
      "runningIONum": 0,
      "checkpointedIONum": 0,
      "degradedCheckpointedIONum": 0,
      "quorum": {quorum},
      "checkpointedTime": 0,
      "rebuildBytes": 0,
      "rebuildCnt": 0,
      "rebuildDoneCnt": 0,
      "rebuildFailedCnt": 0
    }}
  ]
}}"#
        )
    };
    let table = [
        ("Healthy", 1, "Healthy"),
        ("Healthy", 0, "Healthy"),
        ("Offline", 1, "Offline"),
        ("Offline", 0, "Offline"),
        ("Degraded", 1, "Degraded"),
        ("Degraded", 0, "NewReplicaDegraded"),
        ("Rebuilding", 1, "Rebuilding"),
        ("Rebuilding", 0, "ReconstructingNewReplica"),
        ("Unknown", 1, "Error"),
    ];
    for (status, quorum, want) in table {
        let stat = parse_uzfs_stats(&stats(status, quorum)).expect("parse");
        assert_eq!(stat.status, status);
        assert_eq!(stat.rebuild_status, "INIT");
        assert_eq!(uzfs_phase(&stat), want, "{status} quorum={quorum}");
    }
    assert_eq!(
        parse_uzfs_stats(r#"{"stats":[]}"#).expect_err("empty"),
        "zfs stats listed no volume"
    );
    assert!(parse_uzfs_stats("cannot open 'x': dataset does not exist").is_err());
}
