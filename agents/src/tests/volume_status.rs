//! Pure volume-manager decisions: quantities, node roots, replica paths and admission, the CV
//! phase and replicaStatuses, and knownReplicas/RF/CF plans.

// A test panics to report a failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::volume_manager::fanout::{ReplicaInfo, ReplicaState};
use crate::volume_manager::reconcile::validate;
use crate::volume_manager::status::*;
use cstor_api::cstor_v1::cv::{
    CStorVolume, CStorVolumeReplicaDetails, CStorVolumeStatus, ReplicaStatus,
};
use cstor_api::cstor_v1::cvr::{CStorVolumeReplica, CStorVolumeReplicaStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn cv(rf: i64, cf: i64, drf: i64, spec_known: &[&str], status_known: &[&str]) -> CStorVolume {
    let map = |ids: &[&str]| {
        ids.iter()
            .map(|i| (i.to_string(), i.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    let mut cv = CStorVolume::default();
    cv.metadata.name = Some("pvc-1".into());
    cv.spec.iqn = "iqn.2016-09.com.openebs.cstor:pvc-1".into();
    cv.spec.capacity = Some(Quantity("1Gi".into()));
    cv.spec.replication_factor = Some(rf);
    cv.spec.consistency_factor = Some(cf);
    cv.spec.desired_replication_factor = Some(drf);
    cv.spec.replica_details = Some(CStorVolumeReplicaDetails {
        known_replicas: map(spec_known),
    });
    cv.status = Some(CStorVolumeStatus {
        replica_details: Some(CStorVolumeReplicaDetails {
            known_replicas: map(status_known),
        }),
        ..Default::default()
    });
    cv
}

fn info(id: &str, state: ReplicaState) -> ReplicaInfo {
    ReplicaInfo {
        id: id.into(),
        state,
        since: Instant::now(),
        ever_healthy: state == ReplicaState::Healthy,
        io_seq: 5,
        inflight_read: 0,
        inflight_write: 1,
        inflight_sync: 0,
        reason: String::new(),
    }
}

fn cvr(id: &str, node: &str, lun: Option<&str>) -> CStorVolumeReplica {
    let mut c = CStorVolumeReplica::default();
    c.metadata.name = Some(format!("pvc-1-{id}"));
    c.spec.replica_id = id.into();
    let mut a = BTreeMap::new();
    a.insert(
        "cstorpoolinstance.openebs.io/hostname".to_string(),
        node.to_string(),
    );
    if let Some(l) = lun {
        a.insert(REPLICA_LUN_ANNOTATION.to_string(), l.to_string());
    }
    c.metadata.annotations = Some(a);
    c
}

#[test]
fn node_roots_and_paths() {
    let roots = parse_node_roots("n1=/proc/10/root, n2=/proc/20/root,bad,=x");
    assert_eq!(roots.len(), 2);
    assert_eq!(roots["n2"], PathBuf::from("/proc/20/root"));
    let replica_roots = parse_node_roots("n1=/nodes/n1/root/var/openebs/cstor-pool");
    let path = |node: &str, lun: Option<&str>| {
        replica_path(&cvr("7", node, lun), "pvc-1", &roots, &replica_roots)
    };
    // Under the node's replica root, reached through the node's root.
    assert_eq!(
        path(
            "n1",
            Some("/nodes/n1/root/var/openebs/cstor-pool/cspc-a/replicas/pvc-1/lun")
        ),
        Ok(Some(PathBuf::from(
            "/proc/10/root/nodes/n1/root/var/openebs/cstor-pool/cspc-a/replicas/pvc-1/lun"
        )))
    );
    // A node without entries: the default root, the path as it is.
    assert_eq!(
        path(
            "other",
            Some("/var/openebs/cstor-pool/cspc-a/replicas/pvc-1/lun")
        ),
        Ok(Some(PathBuf::from(
            "/var/openebs/cstor-pool/cspc-a/replicas/pvc-1/lun"
        )))
    );
    assert_eq!(path("n1", None), Ok(None));
    assert_eq!(replica_id(&cvr("", "n1", None)), None);
}

/// An edited lun annotation cannot point the volume-manager at another file: only
/// `<root>/<pool>/replicas/<this volume>/lun`, plain names only.
#[test]
fn replica_paths_outside_the_shape_are_refused() {
    let none = BTreeMap::new();
    let refused =
        |lun: &str| replica_path(&cvr("7", "n", Some(lun)), "pvc-1", &none, &none).expect_err(lun);
    for (lun, why) in [
        (
            "/etc/shadow",
            "not under the replica root /var/openebs/cstor-pool",
        ),
        (
            "/var/openebs/cstor-pool/a/replicas/pvc-2/lun",
            "not <replica root>/<pool>/replicas/pvc-1/lun",
        ),
        (
            "/var/openebs/cstor-pool/a/replicas/pvc-1/other",
            "not <replica root>/<pool>/replicas/pvc-1/lun",
        ),
        (
            "/var/openebs/cstor-pool/a/b/replicas/pvc-1/lun",
            "not <replica root>/<pool>/replicas/pvc-1/lun",
        ),
        (
            "/var/openebs/cstor-pool/../../etc/replicas/pvc-1/lun",
            "only plain names may follow the replica root",
        ),
        (
            "/var/openebs/cstor-pool/a/replicas/pvc-1/./lun",
            "not a normalized path",
        ),
        (
            "/var/openebs/cstor-pool/a//replicas/pvc-1/lun",
            "not a normalized path",
        ),
        (
            "var/openebs/cstor-pool/a/replicas/pvc-1/lun",
            "not under the replica root /var/openebs/cstor-pool",
        ),
    ] {
        let e = refused(lun);
        assert!(e.ends_with(why), "{lun}: {e}");
        assert!(
            e.starts_with(&format!("replica file {lun:?} refused: ")),
            "{e}"
        );
    }
    // No hostname annotation: refused, saying so.
    let mut c = cvr(
        "7",
        "n",
        Some("/var/openebs/cstor-pool/a/replicas/pvc-1/lun"),
    );
    c.metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove("cstorpoolinstance.openebs.io/hostname");
    assert_eq!(
        replica_path(&c, "pvc-1", &none, &none),
        Err("annotation cstorpoolinstance.openebs.io/hostname is not set".to_string())
    );
}

#[test]
fn admission_keeps_a_scaled_down_replica_out() {
    let roots = BTreeMap::new();
    let lun = |pool: &str| format!("/var/openebs/cstor-pool/{pool}/replicas/pvc-1/lun");
    let cvrs = vec![
        cvr("1", "a", Some(&lun("a"))),
        cvr("2", "b", Some(&lun("b"))),
        cvr("3", "c", Some(&lun("c"))),
    ];
    // Fresh: nothing known, DRF 3: all in.
    let w = wanted_replicas(&cv(3, 2, 3, &[], &[]), &cvrs, &roots, &roots);
    assert_eq!(w.keys().collect::<Vec<_>>(), vec!["1", "2", "3"]);
    // Scaling down to 2, replica 3 dropped from spec.known but still in status.known (the
    // scale-down waits for 1 and 2 to be Healthy): 3 stays and keeps counting.
    let w = wanted_replicas(
        &cv(3, 2, 2, &["1", "2"], &["1", "2", "3"]),
        &cvrs,
        &roots,
        &roots,
    );
    assert_eq!(w.keys().collect::<Vec<_>>(), vec!["1", "2", "3"]);
    // Scaled down (status.known follows spec.known): 3 is out, though its CVR still exists.
    let w = wanted_replicas(
        &cv(2, 2, 2, &["1", "2"], &["1", "2"]),
        &cvrs,
        &roots,
        &roots,
    );
    assert_eq!(w.keys().collect::<Vec<_>>(), vec!["1", "2"]);
    // A Recreate CVR is flagged for rebuild.
    let mut c4 = cvr("4", "d", Some(&lun("d")));
    c4.status = Some(CStorVolumeReplicaStatus {
        phase: "Recreate".into(),
        ..Default::default()
    });
    let w = wanted_replicas(
        &cv(3, 2, 4, &["1", "2", "3"], &["1", "2", "3"]),
        &[c4],
        &roots,
        &roots,
    );
    assert!(w["4"].1);
}

#[test]
fn phases_and_statuses() {
    use ReplicaState::*;
    let all = [info("1", Healthy), info("2", Healthy), info("3", Healthy)];
    assert_eq!(volume_phase(&all, 3, 2, false), "Init");
    assert_eq!(volume_phase(&[], 3, 2, true), "Init");
    assert_eq!(volume_phase(&all, 3, 2, true), "Healthy");
    let one_down = [
        info("1", Healthy),
        info("2", Healthy),
        info("3", Rebuilding),
    ];
    assert_eq!(volume_phase(&one_down, 3, 2, true), "Degraded");
    let two_down = [info("1", Healthy), info("2", Degraded), info("3", Degraded)];
    assert_eq!(volume_phase(&two_down, 3, 2, true), "Offline");
    assert_eq!(volume_phase(&all[..2], 3, 2, true), "Degraded");
    let st = replica_statuses(&one_down, Instant::now() + Duration::from_secs(3));
    assert_eq!(
        st[2],
        ReplicaStatus {
            id: "3".into(),
            mode: "Rebuilding".into(),
            checkpointed_io_seq: "5".into(),
            inflight_read: "0".into(),
            inflight_write: "1".into(),
            inflight_sync: "0".into(),
            up_time: 3,
            quorum: "0".into(),
        }
    );
    assert_eq!(st[0].quorum, "1");
    assert_eq!(
        volume_message(&one_down, 3, 2),
        "2 of 3 replicas healthy (writes need 2); 3 Rebuilding"
    );
    let mut lost = info("2", Degraded);
    lost.reason = "write failed: Transport endpoint is not connected (os error 107)".into();
    assert_eq!(
        volume_message(&[info("1", Healthy), lost, info("3", Healthy)], 3, 2),
        "2 of 3 replicas healthy (writes need 2); 2 Degraded (write failed: Transport endpoint is not connected (os error 107))"
    );
}

#[test]
fn first_provisioning_registers_healthy_replicas() {
    use ReplicaState::*;
    let c = cv(3, 2, 3, &[], &[]);
    let p = plan_known(
        &c,
        &[
            info("1", Healthy),
            info("2", Healthy),
            info("3", Rebuilding),
        ],
    );
    let known = p.spec_known.unwrap();
    assert_eq!(known.keys().collect::<Vec<_>>(), vec!["1", "2"]);
    assert_eq!(known["1"], "1");
    assert_eq!(p.rf_cf, None, "RF stays 3, CF 2");
    assert_eq!(p.status_known, known);
}

#[test]
fn scale_up_raises_rf_and_cf_once_the_new_replica_is_healthy() {
    use ReplicaState::*;
    let c = cv(3, 2, 4, &["1", "2", "3"], &["1", "2", "3"]);
    let rebuilding = [
        info("1", Healthy),
        info("2", Healthy),
        info("3", Healthy),
        info("4", Rebuilding),
    ];
    let p = plan_known(&c, &rebuilding);
    assert_eq!((p.spec_known, p.rf_cf), (None, None));
    let done = [
        info("1", Healthy),
        info("2", Healthy),
        info("3", Healthy),
        info("4", Healthy),
    ];
    let p = plan_known(&c, &done);
    assert_eq!(p.rf_cf, Some((4, 3)));
    assert_eq!(p.spec_known.unwrap().len(), 4);
    // No room beyond DRF.
    let c = cv(3, 2, 3, &["1", "2", "3"], &["1", "2", "3"]);
    let p = plan_known(&c, &done);
    assert_eq!((p.spec_known, p.rf_cf), (None, None));
}

#[test]
fn scale_down_waits_for_healthy_then_lowers_rf_cf() {
    use ReplicaState::*;
    let c = cv(3, 2, 2, &["1", "2"], &["1", "2", "3"]);
    let p = plan_known(
        &c,
        &[info("1", Healthy), info("2", Degraded), info("3", Healthy)],
    );
    assert!(p.waiting.is_some());
    assert_eq!(p.status_known.len(), 3);
    assert!(p.removed.is_empty());
    let p = plan_known(
        &c,
        &[info("1", Healthy), info("2", Healthy), info("3", Healthy)],
    );
    assert_eq!(p.removed, vec!["3"]);
    assert_eq!(p.rf_cf, Some((2, 2)));
    assert_eq!(p.status_known.keys().collect::<Vec<_>>(), vec!["1", "2"]);
}

#[test]
fn freshness_validation_and_restart_health() {
    let mut c = cv(3, 2, 3, &[], &[]);
    assert!(is_fresh(&c));
    assert_eq!(validate(&c), Ok(1 << 30));
    c.status.as_mut().unwrap().replica_statuses = vec![ReplicaStatus {
        id: "1".into(),
        mode: "Healthy".into(),
        ..Default::default()
    }];
    assert!(!is_fresh(&c));
    assert!(was_healthy(&c, "1"));
    assert!(!was_healthy(&c, "2"));
    c.spec.iqn.clear();
    c.spec.consistency_factor = Some(4);
    let e = validate(&c).unwrap_err();
    assert!(
        e.contains("spec.iqn is empty") && e.contains("consistencyFactor 4 > replicationFactor 3"),
        "{e}"
    );
    assert_eq!(drf(&cv(3, 2, 0, &[], &[])), 3);
}

/// A volume istgt served (the Go operators'): its status names replicas by zvol GUID, which
/// knownReplicas maps each replica id to; a restart by our target still finds them.
#[test]
fn a_status_written_by_istgt_is_read_through_the_known_guids() {
    let mut c = cv(3, 2, 3, &[], &[]);
    c.spec.replica_details = Some(CStorVolumeReplicaDetails {
        known_replicas: BTreeMap::from([
            ("11".to_string(), "6048237401337520941".to_string()),
            ("12".to_string(), "9412830412281923114".to_string()),
        ]),
    });
    c.status.as_mut().unwrap().replica_statuses = vec![
        ReplicaStatus {
            id: "6048237401337520941".into(),
            mode: "Healthy".into(),
            checkpointed_io_seq: "40".into(),
            ..Default::default()
        },
        ReplicaStatus {
            id: "9412830412281923114".into(),
            mode: "Degraded".into(),
            checkpointed_io_seq: "90".into(),
            ..Default::default()
        },
    ];
    assert!(was_healthy(&c, "11"));
    assert!(!was_healthy(&c, "12"));
    assert!(!was_healthy(&c, "13"));
    let mut ids = vec!["11".to_string(), "12".to_string()];
    order_by_write_sequence(&c, &mut ids, |s| s.as_str());
    assert_eq!(ids, vec!["12", "11"]);
}

/// The whole CV status from what the daemon observes: phase and message from the replicas,
/// capacity only once the LUN has the spec's size, `Resizing` while it has not, transition
/// time kept while the phase holds.
#[test]
fn the_status_is_derived_from_what_the_daemon_observes() {
    let t =
        |s: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(s.parse().expect("time"));
    let (t1, t2) = (t("2026-01-01T00:00:00Z"), t("2026-01-01T00:05:00Z"));
    let infos = [
        info("r1", ReplicaState::Healthy),
        info("r2", ReplicaState::Healthy),
        info("r3", ReplicaState::Degraded),
    ];
    let mut volume = cv(3, 2, 3, &["r1", "r2", "r3"], &["r1", "r2", "r3"]);
    let seen = Observed {
        infos: &infos,
        serving: true,
        lun_size: 1 << 30,
        resize_error: None,
        resyncing: false,
    };
    let st = derive_status(&volume, &seen, &t1, Instant::now());
    assert_eq!(st.phase, "Degraded");
    assert_eq!(st.capacity, Some(Quantity("1Gi".into())));
    assert!(st.conditions.is_empty());
    assert_eq!(st.last_transition_time, Some(t1.clone()));
    assert_eq!(st.replica_statuses.len(), 3);
    assert!(
        st.message.starts_with("2 of 3 replicas healthy"),
        "{}",
        st.message
    );

    // Same phase later: the transition time holds; a resync is said in the message.
    volume.status = Some(st.clone());
    let st2 = derive_status(
        &volume,
        &Observed {
            resyncing: true,
            ..seen.clone()
        },
        &t2,
        Instant::now(),
    );
    assert_eq!(st2.last_transition_time, Some(t1.clone()));
    assert_eq!(st2.last_update_time, Some(t2.clone()));
    assert!(
        st2.message
            .ends_with("; resyncing the replicas after a restart")
    );

    // The spec grew to 2Gi, the LUN has not yet: capacity stays, Resizing is reported.
    volume.spec.capacity = Some(Quantity("2Gi".into()));
    let st3 = derive_status(&volume, &seen, &t2, Instant::now());
    assert_eq!(st3.capacity, Some(Quantity("1Gi".into())));
    assert_eq!(st3.conditions.len(), 1);
    assert_eq!(st3.conditions[0].type_, "Resizing");
    assert_eq!(
        st3.conditions[0].message,
        "Triggered resize by changing capacity in spec"
    );
    let failed = derive_status(
        &volume,
        &Observed {
            resize_error: Some("truncate failed"),
            ..seen.clone()
        },
        &t2,
        Instant::now(),
    );
    assert_eq!(failed.conditions[0].message, "truncate failed");
}

/// While waiting for replicas at a start, the status keeps the trust record (replica modes,
/// status.knownReplicas, capacity): the next start still knows which replicas hold every
/// acknowledged write, and the volume is not "fresh" (all trusted without a resync).
#[test]
fn the_waiting_status_keeps_the_record_of_trusted_replicas() {
    let t =
        |s: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(s.parse().expect("time"));
    let (t1, t2) = (t("2026-01-01T00:00:00Z"), t("2026-01-01T00:05:00Z"));
    let mut volume = cv(3, 2, 3, &["r1", "r2", "r3"], &["r1", "r2", "r3"]);
    let mut last = volume.status.clone().unwrap();
    last.phase = "Degraded".into();
    last.capacity = Some(Quantity("1Gi".into()));
    last.last_transition_time = Some(t1.clone());
    last.replica_statuses = [("r1", "Degraded"), ("r2", "Healthy"), ("r3", "Healthy")]
        .iter()
        .map(|(id, mode)| ReplicaStatus {
            id: id.to_string(),
            mode: mode.to_string(),
            ..Default::default()
        })
        .collect();
    volume.status = Some(last.clone());
    let message = "waiting for replicas: 1 of 2 needed can be opened (3 CVRs ready)";
    let st = waiting_status(&volume, "Init", message, &t2);
    assert_eq!(st.phase, "Init");
    assert_eq!(st.message, message);
    assert_eq!(st.replica_statuses, last.replica_statuses);
    assert_eq!(st.replica_details, last.replica_details);
    assert_eq!(st.capacity, last.capacity);
    assert_eq!(st.last_transition_time, Some(t2.clone()));
    assert_eq!(st.last_update_time, Some(t2.clone()));
    volume.status = Some(st);
    assert!(!is_fresh(&volume));
    assert!(was_healthy(&volume, "r2") && was_healthy(&volume, "r3"));
    assert!(!was_healthy(&volume, "r1"));
    // Waiting on: the transition time holds.
    let again = waiting_status(&volume, "Init", message, &t("2026-01-01T00:06:00Z"));
    assert_eq!(again.last_transition_time, Some(t2));
}

/// The resync reference after a restart is the replica with the most writes the last status
/// recorded, never the first CVR listed.
#[test]
fn replicas_are_ordered_by_their_recorded_write_sequence() {
    let mut volume = cv(3, 2, 3, &["a", "b", "c"], &["a", "b", "c"]);
    volume.status.as_mut().unwrap().replica_statuses = [("a", "10"), ("b", "12"), ("c", "oops")]
        .iter()
        .map(|(id, seq)| ReplicaStatus {
            id: id.to_string(),
            mode: "Healthy".into(),
            checkpointed_io_seq: seq.to_string(),
            ..Default::default()
        })
        .collect();
    let mut ids = vec!["a", "c", "b", "d"];
    order_by_write_sequence(&volume, &mut ids, |s| s);
    assert_eq!(ids, vec!["b", "a", "c", "d"]);
}

/// A start serves the spec's size unless an opened replica file is shorter (a resize in
/// flight at the stop): then the shortest, and the main loop grows the volume later.
#[test]
fn a_start_serves_what_every_opened_replica_holds() {
    let mib = 1 << 20;
    for (spec, lens, want) in [
        (64 * mib, vec![], 64 * mib),
        (64 * mib, vec![64 * mib, 64 * mib], 64 * mib),
        (64 * mib, vec![64 * mib, 32 * mib, 64 * mib], 32 * mib),
        (64 * mib, vec![128 * mib], 64 * mib),
    ] {
        assert_eq!(start_size(spec, &lens), want, "{spec} {lens:?}");
    }
}

/// `cstor volume recover`: refused while a replica is recorded Healthy; otherwise the named
/// replica, or the one with the highest recorded write sequence; and a start trusts it only
/// while no replica is Healthy.
#[test]
fn a_supervised_recovery_promotes_the_most_recent_replica() {
    let mut volume = cv(3, 2, 3, &["a", "b", "c"], &["a", "b", "c"]);
    let record = |modes: &[(&str, &str, &str)]| {
        modes
            .iter()
            .map(|(id, mode, seq)| ReplicaStatus {
                id: id.to_string(),
                mode: mode.to_string(),
                checkpointed_io_seq: seq.to_string(),
                ..Default::default()
            })
            .collect::<Vec<_>>()
    };
    let cvrs = vec![
        cvr("a", "n1", None),
        cvr("b", "n2", None),
        cvr("c", "n3", None),
    ];
    volume.status.as_mut().unwrap().replica_statuses = record(&[
        ("a", "Degraded", "40"),
        ("b", "Degraded", "57"),
        ("c", "Healthy", "60"),
    ]);
    assert_eq!(
        recovery_plan(&volume, &cvrs, None),
        Err(
            "refused: replica c (pvc-1-c) is Healthy; the volume recovers from it by itself".into()
        )
    );
    volume.status.as_mut().unwrap().replica_statuses = record(&[
        ("a", "Degraded", "40"),
        ("b", "Degraded", "57"),
        ("c", "Degraded", "60"),
    ]);
    let (chosen, rows) = recovery_plan(&volume, &cvrs, None).unwrap();
    assert_eq!(chosen, "c");
    assert_eq!(
        rows.iter().map(|r| r.io_seq).collect::<Vec<_>>(),
        vec![60, 57, 40]
    );
    assert_eq!(
        recovery_plan(&volume, &cvrs, Some("pvc-1-a")).unwrap().0,
        "a"
    );
    assert_eq!(recovery_plan(&volume, &cvrs, Some("b")).unwrap().0, "b");
    assert_eq!(
        recovery_plan(&volume, &cvrs, Some("zz")),
        Err("no replica zz in this volume".into())
    );
    // A start trusts the promoted replica only while none is recorded Healthy.
    assert_eq!(promoted(&volume), None);
    volume.metadata.annotations =
        Some([(RECOVER_FROM_ANNOTATION.to_string(), "b".to_string())].into());
    assert_eq!(promoted(&volume), Some("b".to_string()));
    volume.status.as_mut().unwrap().replica_statuses = record(&[
        ("a", "Healthy", "1"),
        ("b", "Degraded", "0"),
        ("c", "Degraded", "0"),
    ]);
    assert_eq!(promoted(&volume), None);
}
