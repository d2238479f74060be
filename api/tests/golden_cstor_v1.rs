//! Golden tests of the `cstor.openebs.io/v1` kinds other than CSPC: every fixture under
//! tests/golden/cstor_v1 deserializes into its Rust type with no unknown field and serializes
//! back to exactly the same JSON.

use std::path::Path;

use cstor_api::cstor_v1::{
    CStorBackup, CStorCompletedBackup, CStorPoolInstance, CStorRestore, CStorVolume,
    CStorVolumeAttachment, CStorVolumeConfig, CStorVolumePolicy, CStorVolumeReplica, cspi, cv, cva,
    cvc, cvr,
};
use cstor_api::resource::{CrdKind, StrictParse};
use pretty_assertions::assert_eq;
use serde::Serialize;

fn fixture(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/cstor_v1")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read fixture");
    serde_yaml_ng::from_str::<serde_json::Value>(&text).expect("valid YAML")
}

/// Parses strictly (no unknown field), serializes back and compares; returns the typed value.
fn round_trip<T: StrictParse + Serialize>(file: &str) -> T {
    let doc = fixture(file);
    let (typed, unknown) = cstor_api::parse_strict::<T>(doc.clone()).expect("typed parse");
    assert_eq!(unknown, Vec::<String>::new(), "unknown fields in {file}");
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(back, doc, "{file}");
    typed
}

#[test]
fn cspi_online_round_trips() {
    let cspi: CStorPoolInstance = round_trip("cspi-online.yaml");
    let status = cspi.status.expect("status");
    assert_eq!(status.phase, cspi::phase::ONLINE);
    assert!(!status.read_only);
    assert_eq!(status.provisioned_replicas, 1);
    let capacity = status.capacity.expect("capacity");
    assert_eq!(capacity.free.0, "9630Mi");
    assert_eq!(capacity.zfs.logical_used.0, "56Ki");
    let config = cspi.spec.pool_config.expect("poolConfig");
    assert_eq!(config.priority_class_name.as_deref(), Some(""));
    assert_eq!(config.ro_threshold_limit, Some(85));
    assert_eq!(
        cspi.spec.data_raid_groups[0].block_devices[0].capacity,
        10737418240
    );
}

#[test]
fn cspi_degraded_round_trips() {
    let cspi: CStorPoolInstance = round_trip("cspi-degraded.yaml");
    let status = cspi.status.expect("status");
    assert_eq!(status.phase, cspi::phase::DEGRADED);
    assert_eq!(
        status.conditions[0].type_,
        cspi::condition_type::DISK_UNAVAILABLE
    );
    assert_eq!(status.conditions[0].observed_generation, Some(3));
    assert_eq!(cspi.spec.write_cache_raid_groups.map(|g| g.len()), Some(1));
}

#[test]
fn cvc_bound_round_trips() {
    let cvc: CStorVolumeConfig = round_trip("cvc-bound.yaml");
    assert_eq!(cvc.publish.expect("publish").node_id, "e2e1-node1");
    let status = cvc.status.expect("status");
    assert_eq!(status.phase, cvc::phase::BOUND);
    assert_eq!(status.pool_info.len(), 2);
    assert_eq!(cvc.spec.provision.replica_count, 2);
    assert_eq!(cvc.spec.policy.replica_pool_info.len(), 2);
    assert_eq!(
        cvc.spec.cstor_volume_ref.and_then(|r| r.kind).as_deref(),
        Some("CStorVolume")
    );
}

#[test]
fn cvc_resizing_round_trips_with_its_singular_condition_list() {
    let doc = fixture("cvc-resizing.yaml");
    assert!(doc["status"].get("conditions").is_none());
    let cvc: CStorVolumeConfig = round_trip("cvc-resizing.yaml");
    let status = cvc.status.expect("status");
    assert_eq!(status.conditions.len(), 1);
    assert_eq!(status.conditions[0].type_, cvc::condition_type::RESIZING);
    // reason is not omitempty: an empty one is written back.
    assert_eq!(status.conditions[0].reason, "");
    let policy = cvc.spec.policy;
    assert_eq!(policy.provision.and_then(|p| p.block_size), Some(8192));
    assert_eq!(policy.target.and_then(|t| t.lu_workers), Some(6));
}

#[test]
fn cv_round_trips() {
    let cv: CStorVolume = round_trip("cv-healthy.yaml");
    let status = cv.status.expect("status");
    assert_eq!(status.phase, cv::phase::HEALTHY);
    assert_eq!(status.replica_statuses.len(), 2);
    assert_eq!(status.replica_statuses[0].up_time, 55131);
    assert_eq!(cv.spec.consistency_factor, Some(2));
    assert_eq!(
        cv.spec.replica_details.map(|d| d.known_replicas.len()),
        Some(2)
    );

    let cv: CStorVolume = round_trip("cv-resizing.yaml");
    let status = cv.status.expect("status");
    assert_eq!(status.conditions[0].type_, cv::condition_type::RESIZING);
    assert_eq!(
        status.conditions[0].status,
        cv::condition_status::IN_PROGRESS
    );
    assert_eq!(status.replica_statuses[1].quorum, "0");
}

#[test]
fn cvr_round_trips() {
    let cvr: CStorVolumeReplica = round_trip("cvr-healthy.yaml");
    assert_eq!(cvr.spec.replica_id, "5D7E3AB21F0C4E98");
    assert_eq!(cvr.spec.block_size, Some(4096));
    let status = cvr.status.expect("status");
    assert_eq!(status.phase, cvr::phase::HEALTHY);
    assert_eq!(
        status.snapshots["backup-nightly-20240514230000"].logical_referenced,
        1578106880
    );

    let cvr: CStorVolumeReplica = round_trip("cvr-reconstructing.yaml");
    let status = cvr.status.expect("status");
    assert_eq!(status.phase, cvr::phase::RECONSTRUCTING_NEW_REPLICA);
    assert!(status.snapshots.is_empty());
    assert_eq!(status.pending_snapshots.len(), 1);
}

#[test]
fn cvp_round_trips() {
    let cvp: CStorVolumePolicy = round_trip("cvp.yaml");
    let target = cvp.spec.target.expect("target");
    assert!(target.monitor);
    assert!(target.affinity.is_some());
    assert_eq!(target.tolerations.len(), 1);
    assert_eq!(cvp.spec.replica_pool_info.len(), 3);
}

#[test]
fn cva_round_trips() {
    let cva: CStorVolumeAttachment = round_trip("cva.yaml");
    assert_eq!(cva.status, cva::status::MOUNTED);
    assert_eq!(cva.spec.volume.owner_node_id, "e2e1-node1");
    assert_eq!(cva.spec.iscsi.lun, "0");
    assert!(cva.spec.volume.read_only);
}

#[test]
fn backup_family_round_trips() {
    let backup: CStorBackup = round_trip("cstorbackup.yaml");
    assert_eq!(
        backup.status,
        cstor_api::cstor_v1::backup_status::IN_PROGRESS
    );
    assert_eq!(backup.spec.prev_snap_name, "backup-nightly-20240514230000");

    let backup: CStorBackup = round_trip("cstorbackup-local.yaml");
    assert_eq!(backup.status, cstor_api::cstor_v1::backup_status::EMPTY);
    assert!(backup.spec.local_snap);

    let completed: CStorCompletedBackup = round_trip("cstorcompletedbackup.yaml");
    assert_eq!(
        completed.spec.last_snap_name,
        "backup-nightly-20240515230000"
    );

    let restore: CStorRestore = round_trip("cstorrestore.yaml");
    assert_eq!(restore.status, cstor_api::cstor_v1::restore_status::DONE);
    assert_eq!(restore.spec.max_retry_count, Some(5));
    assert_eq!(restore.spec.retry_count, Some(1));

    let restore: CStorRestore = round_trip("cstorrestore-local.yaml");
    assert!(restore.spec.local);
    assert_eq!(restore.spec.size.map(|q| q.0).as_deref(), Some("5Gi"));
}

#[test]
fn unknown_phases_round_trip() {
    let mut doc = fixture("cvr-healthy.yaml");
    doc["status"]["phase"] = "SomethingNew".into();
    let cvr: CStorVolumeReplica = serde_json::from_value(doc.clone()).expect("parse");
    assert_eq!(serde_json::to_value(&cvr).expect("serialize"), doc);
}

#[test]
fn unknown_fields_are_dropped_and_reported_by_parse_strict() {
    let mut doc = fixture("cspi-online.yaml");
    doc["status"]["capacity"]["zfs"]["compressRatio"] = "1.50x".into();
    doc["spec"]["dataRaidGroups"][0]["blockDevices"][0]["inUseByPool"] = true.into();
    let (typed, unknown) =
        cstor_api::parse_strict::<CStorPoolInstance>(doc).expect("lenient parse");
    assert_eq!(
        unknown,
        vec![
            "spec.dataRaidGroups.0.blockDevices.0.inUseByPool".to_string(),
            "status.capacity.zfs.compressRatio".to_string(),
        ]
    );
    let back = serde_json::to_value(&typed).expect("serialize");
    assert!(
        back["status"]["capacity"]["zfs"]
            .get("compressRatio")
            .is_none()
    );

    let mut doc = fixture("cva.yaml");
    doc["spec"]["volume"]["mountPath"] = "/mnt".into();
    let (_, unknown) =
        cstor_api::parse_strict::<CStorVolumeAttachment>(doc).expect("lenient parse");
    assert_eq!(unknown, vec!["spec.volume.mountPath".to_string()]);
}

/// Parses a document as some other kind.
type ParseAs = fn(serde_json::Value) -> Result<(), serde_json::Error>;

#[test]
fn a_manifest_of_another_kind_is_refused() {
    let cases: [(&str, ParseAs, &str); 9] = [
        (
            "cspi-online.yaml",
            |v| serde_json::from_value::<CStorVolume>(v).map(drop),
            "CStorVolume",
        ),
        (
            "cvc-bound.yaml",
            |v| serde_json::from_value::<CStorVolume>(v).map(drop),
            "CStorVolume",
        ),
        (
            "cv-healthy.yaml",
            |v| serde_json::from_value::<CStorVolumeConfig>(v).map(drop),
            "CStorVolumeConfig",
        ),
        (
            "cvr-healthy.yaml",
            |v| serde_json::from_value::<CStorVolume>(v).map(drop),
            "CStorVolume",
        ),
        (
            "cvp.yaml",
            |v| serde_json::from_value::<CStorVolumeAttachment>(v).map(drop),
            "CStorVolumeAttachment",
        ),
        (
            "cva.yaml",
            |v| serde_json::from_value::<CStorVolumePolicy>(v).map(drop),
            "CStorVolumePolicy",
        ),
        (
            "cstorbackup.yaml",
            |v| serde_json::from_value::<CStorRestore>(v).map(drop),
            "CStorRestore",
        ),
        (
            "cstorcompletedbackup.yaml",
            |v| serde_json::from_value::<CStorBackup>(v).map(drop),
            "CStorBackup",
        ),
        (
            "cstorrestore.yaml",
            |v| serde_json::from_value::<CStorCompletedBackup>(v).map(drop),
            "CStorCompletedBackup",
        ),
    ];
    for (file, parse, want) in cases {
        let doc = fixture(file);
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let err = parse(doc).expect_err(file);
        assert_eq!(
            err.to_string(),
            format!("kind {kind:?} is not {want:?}"),
            "{file}"
        );
    }
}

#[test]
fn a_wrong_api_version_is_refused() {
    let mut doc = fixture("cvr-healthy.yaml");
    doc["apiVersion"] = "openebs.io/v1alpha1".into();
    let err = serde_json::from_value::<CStorVolumeReplica>(doc).expect_err("old group");
    assert_eq!(
        err.to_string(),
        r#"apiVersion "openebs.io/v1alpha1" is not "cstor.openebs.io/v1""#
    );
}

#[test]
fn null_times_from_go_clients_are_accepted_and_dropped() {
    // Go writes a zero metav1.Time as null; the CRD marks these nullable, so they can be stored.
    let mut doc = fixture("cv-healthy.yaml");
    doc["status"]["lastTransitionTime"] = serde_json::Value::Null;
    doc["versionDetails"]["status"]["lastUpdateTime"] = serde_json::Value::Null;
    let cv: CStorVolume = serde_json::from_value(doc).expect("parse");
    let status = cv.status.as_ref().expect("status");
    assert!(status.last_transition_time.is_none());
    let back = serde_json::to_value(&cv).expect("serialize");
    assert!(back["status"].get("lastTransitionTime").is_none());
}

#[test]
fn required_fields_are_required() {
    let mut doc = fixture("cstorrestore.yaml");
    doc["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("restoreSrc");
    let err = serde_json::from_value::<CStorRestore>(doc).expect_err("no restoreSrc");
    assert!(err.to_string().contains("restoreSrc"), "{err}");

    let mut doc = fixture("cspi-online.yaml");
    doc["status"]
        .as_object_mut()
        .expect("status")
        .remove("readOnly");
    let err = serde_json::from_value::<CStorPoolInstance>(doc).expect_err("no readOnly");
    assert!(err.to_string().contains("readOnly"), "{err}");
}

#[test]
fn crd_facts() {
    fn facts<K: CrdKind>() -> (bool, Vec<&'static str>, Vec<&'static str>) {
        (
            K::STATUS_SUBRESOURCE,
            K::SHORT_NAMES.to_vec(),
            K::PRINTER_COLUMNS.iter().map(|c| c.name).collect(),
        )
    }
    assert_eq!(
        facts::<CStorPoolInstance>(),
        (
            true,
            vec!["cspi"],
            vec![
                "HostName",
                "Allocated",
                "Free",
                "Capacity",
                "ReadOnly",
                "ProvisionedReplicas",
                "HealthyReplicas",
                "Type",
                "Status",
                "Age"
            ]
        )
    );
    assert_eq!(
        facts::<CStorVolumeConfig>(),
        (true, vec!["cvc"], vec!["Capacity", "Status", "Age"])
    );
    assert_eq!(
        facts::<CStorVolume>(),
        (true, vec!["cv"], vec!["Capacity", "Status", "Age"])
    );
    assert_eq!(
        facts::<CStorVolumeReplica>(),
        (
            true,
            vec!["cvr"],
            vec!["Allocated", "Used", "Status", "Age"]
        )
    );
    assert_eq!(facts::<CStorVolumePolicy>(), (false, vec!["cvp"], vec![]));
    assert_eq!(
        facts::<CStorVolumeAttachment>(),
        (false, vec!["cva"], vec![])
    );
    assert_eq!(
        facts::<CStorBackup>(),
        (
            false,
            vec!["cbackup"],
            vec!["Volume", "Backup/Schedule", "Status"]
        )
    );
    assert_eq!(
        facts::<CStorCompletedBackup>(),
        (
            false,
            vec!["ccompletedbackup"],
            vec!["Volume", "Backup/Schedule", "LastSnap"]
        )
    );
    assert_eq!(
        facts::<CStorRestore>(),
        (false, vec!["crestore"], vec!["Backup", "Volume", "Status"])
    );
    // Quantities are shown as strings, never numbers with a unit guessed.
    for col in CStorPoolInstance::PRINTER_COLUMNS
        .iter()
        .chain(CStorVolumeReplica::PRINTER_COLUMNS)
        .chain(CStorVolumeConfig::PRINTER_COLUMNS)
        .chain(CStorVolume::PRINTER_COLUMNS)
    {
        if col.json_path.contains("capacity") {
            assert_eq!(col.type_, "string", "{}", col.name);
        }
    }
    assert_eq!(CStorPoolInstance::CATEGORIES, ["cstor", "openebs"]);
    assert_eq!(CStorRestore::CATEGORIES, ["cstor", "openebs"]);
}
