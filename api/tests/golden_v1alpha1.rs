//! Golden tests of the `cstor.openebs.io/v1alpha1` (1.x CSPC/CSPI) and `openebs.io/v1alpha1`
//! kinds: every fixture under tests/golden/v1alpha1 deserializes into its Rust type with no
//! unknown field and serializes back to exactly the same JSON; plus the Go wire quirks (nulls,
//! missing fields, always-written fields) and the kinds' CRD facts.

use std::path::Path;

use cstor_api::cstor_v1alpha1 as a;
use cstor_api::openebs_v1alpha1::{
    self as o, BlockDevice, BlockDeviceClaim, CStorPool, LegacyCStorVolume,
    LegacyCStorVolumeReplica, MigrationTask, StoragePoolClaim, TaskStepStatus, UpgradeTask,
};
use cstor_api::resource::CrdKind;
use pretty_assertions::assert_eq;
use proptest::prelude::*;
use serde_json::json;

fn fixture(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/v1alpha1")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read fixture");
    serde_yaml_ng::from_str::<serde_json::Value>(&text).expect("valid YAML")
}

/// The JSON paths `$ty` does not know in `$doc`. (`cstor_api::parse_strict` goes through the
/// root's buffering `Deserialize`, which hides nested unknown fields from serde_ignored; so this
/// calls the `remote = "Self"` body deserializer directly.)
macro_rules! unknown_fields {
    ($ty:ty, $doc:expr) => {{
        let mut doc: serde_json::Value = $doc;
        if let Some(obj) = doc.as_object_mut() {
            obj.remove("apiVersion");
            obj.remove("kind");
        }
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path| unknown.push(path.to_string());
        <$ty>::deserialize(serde_ignored::Deserializer::new(doc, &mut record))
            .expect("typed parse");
        unknown
    }};
}

/// Parses strictly (no unknown field) and returns the typed value and its serialization.
macro_rules! parse {
    ($ty:ty, $doc:expr, $what:expr) => {{
        let doc: serde_json::Value = $doc;
        let what = $what;
        assert_eq!(
            unknown_fields!($ty, doc.clone()),
            Vec::<String>::new(),
            "unknown fields in {what}"
        );
        let (typed, unknown) = cstor_api::parse_strict::<$ty>(doc).expect("typed parse");
        assert_eq!(unknown, Vec::<String>::new(), "unknown fields in {what}");
        let back = serde_json::to_value(&typed).expect("serialize");
        (typed, back)
    }};
}

/// Parses strictly, serializes back and compares with the fixture; returns the typed value.
macro_rules! round_trip {
    ($ty:ty, $file:expr) => {{
        let file = $file;
        let doc = fixture(file);
        let (typed, back) = parse!($ty, doc.clone(), file);
        assert_eq!(back, doc, "{file}");
        typed
    }};
}

#[test]
fn unknown_fields_are_found() {
    let mut doc = fixture("bd-unclaimed.yaml");
    doc["spec"]["details"]["colour"] = json!("blue");
    doc["status"]["extra"] = json!(1);
    let mut unknown = unknown_fields!(BlockDevice, doc);
    unknown.sort();
    assert_eq!(unknown, ["spec.details.colour", "status.extra"]);
}

// ---------------------------------------------------------------------------------------------
// BlockDevice / BlockDeviceClaim

#[test]
fn bd_unclaimed_round_trips() {
    let bd = round_trip!(BlockDevice, "bd-unclaimed.yaml");
    assert_eq!(bd.spec.capacity.storage, 10737418240);
    assert_eq!(bd.spec.node_attributes.node_name, "e2e1-node1");
    assert_eq!(bd.spec.devlinks.len(), 2);
    assert_eq!(bd.spec.devlinks[0].kind, "by-id");
    assert_eq!(bd.spec.details.device_type, o::device_type::DISK);
    assert!(bd.spec.claim_ref.is_none());
    assert_eq!(bd.spec.filesystem, Some(o::FileSystemInfo::default()));
    assert_eq!(bd.status.claim_state, o::claim_state::UNCLAIMED);
    assert_eq!(bd.status.state, o::device_state::ACTIVE);
}

#[test]
fn bd_claimed_round_trips() {
    let bd = round_trip!(BlockDevice, "bd-claimed.yaml");
    let claim = bd.spec.claim_ref.expect("claimRef");
    assert_eq!(claim.kind.as_deref(), Some("BlockDeviceClaim"));
    assert_eq!(
        claim.name.as_deref(),
        Some("bdc-cstor-0b7c8d9e-1f2a-4b3c-9d4e-5f6a7b8c9d0e")
    );
    assert_eq!(
        bd.spec.filesystem.map(|f| f.fs_type).as_deref(),
        Some("zfs_member")
    );
    assert_eq!(bd.spec.capacity.physical_sector_size, 4096);
    assert_eq!(bd.status.claim_state, o::claim_state::CLAIMED);
}

#[test]
fn bd_without_filesystem_round_trips() {
    // NDM writes `filesystem: {}`; hand-written manifests (examples/) leave it out: both stay.
    let mut doc = fixture("bd-unclaimed.yaml");
    let spec = doc["spec"].as_object_mut().expect("spec");
    assert_eq!(spec.remove("filesystem"), Some(json!({})));
    let (bd, back) = parse!(BlockDevice, doc.clone(), "bd without filesystem");
    assert!(bd.spec.filesystem.is_none());
    assert_eq!(back, doc);
}

#[test]
fn bdc_as_cstor_creates_it_round_trips() {
    let bdc = round_trip!(BlockDeviceClaim, "bdc-cstor.yaml");
    let uid = "0b7c8d9e-1f2a-4b3c-9d4e-5f6a7b8c9d0e";
    assert_eq!(
        bdc.metadata.name.as_deref(),
        Some(format!("bdc-cstor-{uid}").as_str())
    );
    let labels = bdc.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(cstor_api::keys::labels::CSTOR_POOL_CLUSTER),
        Some(&"cspc-stripe".to_string())
    );
    assert!(
        bdc.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "cstorpoolcluster.openebs.io/finalizer")
    );
    assert_eq!(
        bdc.spec.block_device_name,
        "blockdevice-5c9d1e7f2a3b4c5d6e7f8a9b0c1d2e3f"
    );
    assert_eq!(
        bdc.spec
            .block_device_node_attributes
            .as_ref()
            .map(|a| a.host_name.as_str()),
        Some("e2e1-node2")
    );
    assert_eq!(
        bdc.spec
            .device_claim_details
            .as_ref()
            .map(|d| d.block_volume_mode.as_str()),
        Some(o::volume_mode::BLOCK)
    );
    assert_eq!(
        bdc.spec
            .resources
            .requests
            .get(o::RESOURCE_STORAGE)
            .map(|q| q.0.as_str()),
        Some("20Gi")
    );
    assert_eq!(bdc.status.phase, o::bdc_phase::BOUND);
}

#[test]
fn bdc_phases_are_strings_that_round_trip() {
    for phase in [
        o::bdc_phase::EMPTY,
        o::bdc_phase::PENDING,
        o::bdc_phase::INVALID_CAPACITY_REQUEST,
        o::bdc_phase::BOUND,
        "SomethingNewer",
    ] {
        let doc = json!({
            "apiVersion": "openebs.io/v1alpha1",
            "kind": "BlockDeviceClaim",
            "metadata": {"name": "x", "namespace": "openebs"},
            "spec": {
                "blockDeviceNodeAttributes": {},
                "deviceClaimDetails": {},
                "deviceType": "",
                "hostName": "",
                "resources": {"requests": {}},
            },
            "status": {"phase": phase},
        });
        let (_, back) = parse!(BlockDeviceClaim, doc.clone(), phase);
        assert_eq!(back, doc);
    }
}

#[test]
fn go_zero_values_are_always_written() {
    // What a hand-written BDC becomes: every non-omitempty Go field appears; the nested
    // omitempty structs stay absent.
    let doc = json!({
        "apiVersion": "openebs.io/v1alpha1",
        "kind": "BlockDeviceClaim",
        "metadata": {"name": "x"},
        "spec": {"blockDeviceName": "bd-1"},
    });
    let (_, back) = parse!(BlockDeviceClaim, doc, "minimal bdc");
    assert_eq!(
        back,
        json!({
            "apiVersion": "openebs.io/v1alpha1",
            "kind": "BlockDeviceClaim",
            "metadata": {"name": "x"},
            "spec": {
                "blockDeviceName": "bd-1",
                "deviceType": "",
                "hostName": "",
                "resources": {"requests": {}},
            },
            "status": {"phase": ""},
        })
    );
}

#[test]
fn go_nil_slices_and_maps_parse_as_empty() {
    let doc = json!({
        "apiVersion": "openebs.io/v1alpha1",
        "kind": "BlockDevice",
        "metadata": {"name": "sparse-1"},
        "spec": {"devlinks": null, "path": "/var/openebs/sparse/0-ndm-sparse.img"},
    });
    let (bd, _) = parse!(BlockDevice, doc, "null devlinks");
    assert!(bd.spec.devlinks.is_empty());

    let doc = json!({
        "apiVersion": "openebs.io/v1alpha1",
        "kind": "BlockDeviceClaim",
        "metadata": {"name": "x"},
        "spec": {"resources": {"requests": null}},
    });
    let (bdc, _) = parse!(BlockDeviceClaim, doc, "null requests");
    assert!(bdc.spec.resources.requests.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Legacy: SPC, CSP, old CV and CVR

#[test]
fn spc_manual_round_trips() {
    let spc = round_trip!(StoragePoolClaim, "spc-manual.yaml");
    assert_eq!(spc.spec.type_, o::spc_type::DISK);
    assert_eq!(spc.spec.max_pools, None);
    assert_eq!(spc.spec.block_devices.block_device_list.len(), 4);
    assert_eq!(spc.spec.pool_spec.pool_type, o::legacy_pool_type::MIRRORED);
    assert_eq!(
        o::legacy_pool_type::default_disk_count(&spc.spec.pool_spec.pool_type),
        Some(2)
    );
    assert_eq!(spc.spec.pool_spec.ro_threshold_limit, 85);
    assert_eq!(spc.version_details.status.current, "2.12.0");
    assert!(spc.version_details.status.last_update_time.is_none());
}

#[test]
fn spc_auto_round_trips_except_the_nil_list() {
    let mut doc = fixture("spc-auto.yaml");
    let (spc, back) = parse!(StoragePoolClaim, doc.clone(), "spc-auto.yaml");
    assert_eq!(spc.spec.max_pools, Some(3));
    assert!(spc.spec.block_devices.block_device_list.is_empty());
    assert!(spc.spec.pool_spec.thick_provisioning);
    assert!(spc.version_details.status.last_update_time.is_some());
    // Go's nil list is written as null; ours is an empty list, written as [].
    let list = doc
        .pointer_mut("/spec/blockDevices/blockDeviceList")
        .expect("blockDeviceList");
    assert_eq!(*list, serde_json::Value::Null);
    *list = json!([]);
    assert_eq!(back, doc);
}

#[test]
fn spc_max_pools_null_and_zero_differ() {
    for max_pools in [json!(null), json!(0), json!(2)] {
        let doc = json!({
            "apiVersion": "openebs.io/v1alpha1",
            "kind": "StoragePoolClaim",
            "metadata": {"name": "p"},
            "spec": {"maxPools": max_pools},
        });
        let (spc, back) = parse!(StoragePoolClaim, doc, "maxPools");
        assert_eq!(spc.spec.max_pools, max_pools.as_i64());
        assert_eq!(back["spec"]["maxPools"], max_pools);
    }
}

#[test]
fn csp_round_trips() {
    let csp = round_trip!(CStorPool, "csp.yaml");
    assert_eq!(csp.spec.group.len(), 2);
    assert_eq!(csp.spec.group[1].block_device.len(), 2);
    let disk = &csp.spec.group[0].block_device[0];
    assert_eq!(disk.device_id, "/dev/disk/by-id/ata-QEMU_HARDDISK_QM00003");
    assert!(disk.in_use_by_pool);
    assert_eq!(csp.status.phase, o::csp_phase::HEALTHY);
    assert_eq!(csp.status.capacity.total, "19.9G");
    assert!(!csp.status.read_only);
    assert!(csp.status.last_transition_time.is_some());
}

#[test]
fn legacy_cv_round_trips() {
    let cv = round_trip!(LegacyCStorVolume, "cv-legacy.yaml");
    assert_eq!(cv.spec.capacity.0, "5G");
    assert_eq!(cv.spec.target_ip, "10.96.183.11");
    assert_eq!(cv.spec.replication_factor, 3);
    assert_eq!(cv.spec.consistency_factor, 2);
    assert_eq!(cv.spec.replica_details, Some(Default::default()));
    assert_eq!(cv.status.phase, o::legacy_cv_phase::HEALTHY);
    assert_eq!(
        cv.status.replica_details.map(|d| d.known_replicas.len()),
        Some(3)
    );
    assert_eq!(cv.status.replica_statuses[0].id, "1204784536291958389");
    assert_eq!(cv.status.replica_statuses[0].up_time, 1523);
}

#[test]
fn legacy_cv_resizing_round_trips() {
    let cv = round_trip!(LegacyCStorVolume, "cv-legacy-resizing.yaml");
    let cond = &cv.status.conditions[0];
    assert_eq!(cond.type_, "Resizing");
    assert_eq!(cond.status, "InProgress");
    assert_eq!(
        cv.status.capacity.as_ref().map(|q| q.0.as_str()),
        Some("5G")
    );
}

#[test]
fn legacy_cvr_round_trips() {
    let cvr = round_trip!(LegacyCStorVolumeReplica, "cvr-legacy.yaml");
    assert_eq!(cvr.spec.replica_id, "1204784536291958389");
    assert_eq!(cvr.spec.capacity, "5G");
    assert_eq!(cvr.status.phase, o::legacy_cvr_phase::HEALTHY);
    assert_eq!(cvr.status.capacity.total_allocated, "6.10M");
    assert_eq!(
        cvr.status.snapshots["daily-20231102"].logical_referenced,
        6553600
    );
    let labels = cvr.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get(cstor_api::keys::labels::CSP_NAME),
        Some(&"cstor-disk-pool-x7kq".to_string())
    );
}

#[test]
fn legacy_kinds_are_not_the_v1_kinds() {
    let mut doc = fixture("cv-legacy.yaml");
    doc["apiVersion"] = json!("cstor.openebs.io/v1");
    let err = serde_json::from_value::<LegacyCStorVolume>(doc).expect_err("wrong apiVersion");
    assert!(err.to_string().contains("apiVersion"), "{err}");

    let doc = fixture("cvr-legacy.yaml");
    let err = serde_json::from_value::<LegacyCStorVolume>(doc).expect_err("wrong kind");
    assert!(err.to_string().contains("kind"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// MigrationTask / UpgradeTask

#[test]
fn mtask_pool_success_round_trips() {
    let task = round_trip!(MigrationTask, "mtask-pool-success.yaml");
    let pool = task.spec.cstor_pool.as_ref().expect("cstorPool");
    assert_eq!(pool.spc_name, "cstor-disk-pool");
    assert_eq!(pool.rename, "cstor-disk-cspc");
    assert!(task.spec.cstor_volume.is_none());
    assert_eq!(task.status.phase, o::task_phase::SUCCESS);
    let steps = &task.status.migration_detailed_statuses;
    assert_eq!(steps[0].step, o::migration_step::PRE_MIGRATION);
    assert_eq!(steps[1].step, o::migration_step::MIGRATE);
    assert!(steps.iter().all(TaskStepStatus::is_valid));
    assert!(task.status.completed_time.is_some());
}

#[test]
fn mtask_volume_errored_round_trips() {
    let task = round_trip!(MigrationTask, "mtask-volume-errored.yaml");
    assert_eq!(
        task.spec.cstor_volume.as_ref().map(|v| v.pv_name.as_str()),
        Some("pvc-8b9c0d1e-2f3a-4b4c-8d5e-6f7a8b9c0d1e")
    );
    assert_eq!(task.status.phase, o::task_phase::STARTED);
    assert_eq!(task.status.retries, 2);
    let last = task
        .status
        .migration_detailed_statuses
        .last()
        .expect("steps");
    assert_eq!(last.phase, o::step_phase::ERRORED);
    assert_eq!(last.reason, "CVCNotBound");
    assert!(last.is_valid());
    assert!(task.status.completed_time.is_none());
}

#[test]
fn utask_cspi_round_trips() {
    let task = round_trip!(UpgradeTask, "utask-cspi.yaml");
    assert_eq!(task.spec.from_version, "3.4.0");
    assert_eq!(task.spec.to_version, "3.5.0");
    assert_eq!(task.spec.options.as_ref().map(|o| o.timeout), Some(600));
    let cspi = task.spec.cstor_pool_instance.as_ref().expect("cspi");
    assert_eq!(cspi.cspi_name, "cspc-stripe-b9f6");
    assert_eq!(
        cspi.options
            .as_ref()
            .map(|o| o.ignore_steps_on_error.clone()),
        Some(vec![o::upgrade_step::PRE_UPGRADE.to_string()])
    );
    let steps = &task.status.upgrade_detailed_statuses;
    assert_eq!(steps[1].step, o::upgrade_step::POOL_INSTANCE_UPGRADE);
    assert!(steps.iter().all(TaskStepStatus::is_valid));
}

#[test]
fn utask_volume_round_trips() {
    let task = round_trip!(UpgradeTask, "utask-volume.yaml");
    assert!(task.spec.cstor_volume.is_some());
    assert!(task.spec.jiva_volume.is_none());
    assert_eq!(task.spec.image_tag, "3.5.0-custom");
    assert_eq!(task.status, o::UpgradeTaskStatus::default());
}

#[test]
fn step_status_validity_rule() {
    let step = |phase: &str, message: &str, reason: &str| TaskStepStatus {
        step: o::migration_step::MIGRATE.into(),
        phase: phase.into(),
        message: message.into(),
        reason: reason.into(),
        ..Default::default()
    };
    assert!(step(o::step_phase::WAITING, "", "").is_valid());
    assert!(!step(o::step_phase::COMPLETED, "", "").is_valid());
    assert!(step(o::step_phase::COMPLETED, "done", "").is_valid());
    assert!(!step(o::step_phase::ERRORED, "failed", "").is_valid());
    assert!(step(o::step_phase::ERRORED, "failed", "Timeout").is_valid());
    assert!(!step("", "m", "r").is_valid());
    assert!(
        !TaskStepStatus {
            step: String::new(),
            ..step(o::step_phase::WAITING, "", "")
        }
        .is_valid()
    );
}

// ---------------------------------------------------------------------------------------------
// cstor.openebs.io/v1alpha1 (1.x CSPC / CSPI)

#[test]
fn cspc_v1alpha1_round_trips() {
    let cspc = round_trip!(a::CStorPoolCluster, "cspc-v1alpha1.yaml");
    assert_eq!(cspc.spec.pools.len(), 2);
    let pool = &cspc.spec.pools[0];
    let groups = &pool.raid_groups;
    assert_eq!(groups.len(), 3);
    assert!(groups[0].is_data());
    assert_eq!(
        groups[0].effective_type(&pool.pool_config),
        a::pool_type::MIRROR
    );
    assert_eq!(groups[0].block_devices[0].capacity, "10737418240");
    assert!(groups[1].is_write_cache && !groups[1].is_data());
    assert_eq!(
        groups[1].effective_type(&pool.pool_config),
        a::pool_type::STRIPE
    );
    assert!(groups[2].is_spare);
    assert_eq!(
        pool.pool_config.cache_file,
        "/var/openebs/cstor-pool/pool.cache"
    );
    assert!(pool.pool_config.resources.is_some());
    assert!(pool.pool_config.aux_resources.is_none());

    let pool = &cspc.spec.pools[1];
    assert_eq!(
        pool.raid_groups[0].effective_type(&pool.pool_config),
        a::pool_type::RAIDZ
    );
    assert!(pool.pool_config.over_provisioning);
    assert_eq!(
        pool.pool_config.priority_class_name,
        "openebs-pool-critical"
    );

    assert!(cspc.spec.aux_resources.is_none());
    assert_eq!(cspc.spec.tolerations.len(), 1);
    assert_eq!(cspc.status.phase, a::cspc_phase::DEGRADED);
    assert_eq!(cspc.version_details.desired, "1.12.0");
}

#[test]
fn cspi_v1alpha1_round_trips() {
    let cspi = round_trip!(a::CStorPoolInstance, "cspi-v1alpha1.yaml");
    assert_eq!(cspi.spec.host_name, "e2e1-node1");
    assert_eq!(cspi.spec.raid_groups.len(), 2);
    assert!(cspi.spec.raid_groups[1].is_write_cache);
    assert!(cspi.spec.pool_config.aux_resources.is_some());
    assert_eq!(cspi.status.phase, "ONLINE");
    assert_eq!(cspi.status.capacity.free, "9.3G");
    assert!(!cspi.status.read_only);
}

#[test]
fn cspc_v1alpha1_writes_nil_pointers_as_null_and_reads_null_lists() {
    let doc = json!({
        "apiVersion": "cstor.openebs.io/v1alpha1",
        "kind": "CStorPoolCluster",
        "metadata": {"name": "c", "namespace": "openebs"},
        "spec": {
            "pools": [{
                "nodeSelector": {"kubernetes.io/hostname": "n1"},
                "raidGroups": [{"blockDevices": [{"blockDeviceName": "bd-1"}]}],
                "poolConfig": {"defaultRaidGroupType": "stripe", "tolerations": null},
            }],
            "tolerations": null,
        },
    });
    let (cspc, back) = parse!(a::CStorPoolCluster, doc, "minimal 1.x cspc");
    assert!(cspc.spec.tolerations.is_empty());
    assert_eq!(
        back,
        json!({
            "apiVersion": "cstor.openebs.io/v1alpha1",
            "kind": "CStorPoolCluster",
            "metadata": {"name": "c", "namespace": "openebs"},
            "spec": {
                "auxResources": null,
                "pools": [{
                    "nodeSelector": {"kubernetes.io/hostname": "n1"},
                    "poolConfig": {
                        "auxResources": null,
                        "cacheFile": "",
                        "compression": "",
                        "defaultRaidGroupType": "stripe",
                        "overProvisioning": false,
                        "priorityClassName": "",
                        "resources": null,
                        "tolerations": [],
                    },
                    "raidGroups": [{
                        "blockDevices": [{"blockDeviceName": "bd-1", "capacity": "", "devLink": ""}],
                        "isReadCache": false,
                        "isSpare": false,
                        "isWriteCache": false,
                        "type": "",
                    }],
                }],
                "priorityClassName": "",
                "resources": null,
                "tolerations": [],
            },
            "status": {"capacity": {"free": "", "total": "", "used": ""}, "phase": ""},
            "versionDetails": {
                "autoUpgrade": false,
                "desired": "",
                "status": {
                    "current": "",
                    "dependentsUpgraded": false,
                    "lastUpdateTime": null,
                    "state": "",
                },
            },
        })
    );
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z0-9-]{0,12}"
}

fn arb_raid_group() -> impl Strategy<Value = a::RaidGroup> {
    (
        prop_oneof![
            Just(""),
            Just("stripe"),
            Just("mirror"),
            Just("raidz"),
            Just("raidz2")
        ],
        any::<(bool, bool, bool)>(),
        prop::collection::vec((arb_name(), "[0-9]{0,11}|[0-9]{1,4}Gi", arb_name()), 0..4),
    )
        .prop_map(|(t, (w, s, r), disks)| a::RaidGroup {
            type_: t.to_string(),
            is_write_cache: w,
            is_spare: s,
            is_read_cache: r,
            block_devices: disks
                .into_iter()
                .map(|(n, c, l)| a::CStorPoolClusterBlockDevice {
                    block_device_name: n,
                    capacity: c,
                    dev_link: l,
                })
                .collect(),
        })
}

fn arb_pool() -> impl Strategy<Value = a::PoolSpec> {
    (
        prop::collection::btree_map(arb_name(), arb_name(), 0..3),
        prop::collection::vec(arb_raid_group(), 0..4),
        (
            arb_name(),
            arb_name(),
            any::<bool>(),
            arb_name(),
            arb_name(),
        ),
    )
        .prop_map(
            |(node_selector, raid_groups, (cache, ty, over, comp, prio))| a::PoolSpec {
                node_selector,
                raid_groups,
                pool_config: a::PoolConfig {
                    cache_file: cache,
                    default_raid_group_type: ty,
                    over_provisioning: over,
                    compression: comp,
                    priority_class_name: prio,
                    ..Default::default()
                },
            },
        )
}

proptest! {
    #[test]
    fn cspc_v1alpha1_json_round_trip(
        pools in prop::collection::vec(arb_pool(), 0..3),
        phase in arb_name(),
        prio in arb_name(),
    ) {
        let cspc = a::CStorPoolCluster {
            metadata: Default::default(),
            spec: a::CStorPoolClusterSpec {
                pools,
                priority_class_name: prio,
                ..Default::default()
            },
            status: a::CStorPoolClusterStatus { phase, ..Default::default() },
            version_details: Default::default(),
        };
        let value = serde_json::to_value(&cspc).expect("serialize");
        let (back, unknown) =
            cstor_api::parse_strict::<a::CStorPoolCluster>(value).expect("parse");
        prop_assert!(unknown.is_empty());
        prop_assert_eq!(back, cspc);
    }
}

// ---------------------------------------------------------------------------------------------
// Resource and CRD facts

fn facts<K: CrdKind>() -> (String, String, String, bool, bool, Vec<&'static str>) {
    (
        K::api_version(&()).into_owned(),
        K::kind(&()).into_owned(),
        K::plural(&()).into_owned(),
        K::NAMESPACED,
        K::STATUS_SUBRESOURCE,
        K::SHORT_NAMES.to_vec(),
    )
}

#[test]
fn resource_facts() {
    let s = |v: &str| v.to_string();
    assert_eq!(
        facts::<a::CStorPoolCluster>(),
        (
            s("cstor.openebs.io/v1alpha1"),
            s("CStorPoolCluster"),
            s("cstorpoolclusters"),
            true,
            true,
            vec!["cspc"]
        )
    );
    assert_eq!(
        facts::<a::CStorPoolInstance>(),
        (
            s("cstor.openebs.io/v1alpha1"),
            s("CStorPoolInstance"),
            s("cstorpoolinstances"),
            true,
            true,
            vec!["cspi"]
        )
    );
    assert_eq!(
        facts::<BlockDevice>(),
        (
            s("openebs.io/v1alpha1"),
            s("BlockDevice"),
            s("blockdevices"),
            true,
            false,
            vec!["bd"]
        )
    );
    assert_eq!(
        facts::<BlockDeviceClaim>(),
        (
            s("openebs.io/v1alpha1"),
            s("BlockDeviceClaim"),
            s("blockdeviceclaims"),
            true,
            false,
            vec!["bdc"]
        )
    );
    assert_eq!(
        facts::<MigrationTask>(),
        (
            s("openebs.io/v1alpha1"),
            s("MigrationTask"),
            s("migrationtasks"),
            true,
            true,
            vec!["mtask"]
        )
    );
    assert_eq!(
        facts::<UpgradeTask>(),
        (
            s("openebs.io/v1alpha1"),
            s("UpgradeTask"),
            s("upgradetasks"),
            true,
            true,
            vec![]
        )
    );
    assert_eq!(
        facts::<StoragePoolClaim>(),
        (
            s("openebs.io/v1alpha1"),
            s("StoragePoolClaim"),
            s("storagepoolclaims"),
            false,
            false,
            vec!["spc"]
        )
    );
    assert_eq!(
        facts::<CStorPool>(),
        (
            s("openebs.io/v1alpha1"),
            s("CStorPool"),
            s("cstorpools"),
            false,
            false,
            vec!["csp"]
        )
    );
    assert_eq!(
        facts::<LegacyCStorVolume>(),
        (
            s("openebs.io/v1alpha1"),
            s("CStorVolume"),
            s("cstorvolumes"),
            true,
            false,
            vec![]
        )
    );
    assert_eq!(
        facts::<LegacyCStorVolumeReplica>(),
        (
            s("openebs.io/v1alpha1"),
            s("CStorVolumeReplica"),
            s("cstorvolumereplicas"),
            true,
            false,
            vec![]
        )
    );
    assert!(a::CStorPoolCluster::DEPRECATION.is_some());
    assert!(a::CStorPoolInstance::DEPRECATION.is_some());
    assert!(BlockDevice::DEPRECATION.is_none());
    assert!(StoragePoolClaim::DEPRECATION.is_some());
}

#[test]
fn crds_serve_v1alpha1_beside_v1_and_carry_no_defaults() {
    let crds = cstor_api::all_crds().expect("CRDs");
    let by_name = |name: &str| {
        crds.iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    for name in [
        "cstorpoolclusters.cstor.openebs.io",
        "cstorpoolinstances.cstor.openebs.io",
    ] {
        let crd = by_name(name);
        let versions: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(versions, ["v1", "v1alpha1"], "{name}");
        let old = &crd.spec.versions[1];
        assert_eq!(old.deprecated, Some(true), "{name}");
        assert!(
            old.subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            "{name}"
        );
    }

    let bd = by_name("blockdevices.openebs.io");
    let columns: Vec<_> = bd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str(), c.priority))
        .collect();
    assert_eq!(
        columns,
        [
            ("NodeName", ".spec.nodeAttributes.nodeName", None),
            ("Path", ".spec.path", Some(1)),
            ("Size", ".spec.capacity.storage", None),
            ("ClaimState", ".status.claimState", None),
            ("Status", ".status.state", None),
            ("Age", ".metadata.creationTimestamp", None),
        ]
    );
    assert_eq!(bd.spec.names.categories, Some(vec!["openebs".to_string()]));
    assert!(bd.spec.versions[0].subresources.is_none());

    // Like the Go CRDs, ours make the apiserver default nothing.
    for name in [
        "blockdevices.openebs.io",
        "blockdeviceclaims.openebs.io",
        "migrationtasks.openebs.io",
        "upgradetasks.openebs.io",
    ] {
        let yaml = serde_yaml_ng::to_string(&by_name(name)).expect("yaml");
        assert!(!yaml.contains("default:"), "{name} has schema defaults");
    }
}
