//! CSPC CREATE rules: one row per rule id (docs/admission.md), with the exact message.

use std::collections::BTreeMap;

mod common;
use common::{cspc, facts, pool};

use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_api::openebs_v1alpha1::BlockDeviceClaim;
use cstor_policy::CspcFacts;
use cstor_policy::cspc::{go_map, raid_group_count_validation, validate_create};
use pretty_assertions::assert_eq;
use proptest::prelude::*;
use serde_json::{Value, json};

const PREFIX: &str = "invalid cspc specification: ";

fn check(doc: Value, f: &CspcFacts) -> Result<(), String> {
    let typed: CStorPoolCluster = serde_json::from_value(doc).expect("typed CSPC");
    let v = validate_create(&typed, f);
    if v.allowed {
        Ok(())
    } else {
        assert_eq!(v.code, 422);
        Err(v.message.strip_prefix(PREFIX).expect("prefix").to_string())
    }
}

#[test]
fn valid_pools_of_every_type_are_admitted() {
    let f = facts();
    for doc in [
        cspc(vec![
            pool("node-1", "stripe", &[&["a1", "a2"]]),
            pool("node-3", "stripe", &[&["c1"]]),
        ]),
        cspc(vec![pool(
            "node-1",
            "mirror",
            &[&["a1", "a2"], &["a3", "a4"]],
        )]),
        cspc(vec![
            pool("node-1", "raidz", &[&["a1", "a2", "a3"]]),
            pool("node-2", "raidz", &[&["b1", "b2", "b3", "b4", "b5"]]),
        ]),
        cspc(vec![pool(
            "node-1",
            "raidz2",
            &[&["a1", "a2", "a3", "a4", "a5", "a6"]],
        )]),
    ] {
        assert_eq!(check(doc, &f), Ok(()));
    }
}

/// (rule id, manifest edit, expected message after the prefix).
fn rows() -> Vec<(&'static str, Value, CspcFacts, &'static str)> {
    let f = facts();
    let mut rows = Vec::new();
    rows.push((
        "CC-1",
        cspc(vec![]),
        f.clone(),
        "pools in cspc should have at least one item",
    ));
    rows.push((
        "CC-2",
        cspc(vec![
            pool("node-1", "mirror", &[&["a1", "a2"], &["a2", "a1"]]),
            pool("node-2", "stripe", &[&["a1"]]),
        ]),
        f.clone(),
        "invalid cspc: cspc {pc} has duplicate blockdevices entries [a2 a1]",
    ));
    let mut zone = cspc(vec![pool("node-1", "stripe", &[&["a1"]])]);
    zone["spec"]["pools"][0]["nodeSelector"] = json!({"zone": "z1"});
    rows.push((
        "CC-3",
        zone,
        f.clone(),
        "failed to get node from pool nodeSelector: {map[zone:z1]} error: {invalid no.of nodes 3 from the given node selectors}",
    ));
    rows.push((
        "CC-3 (no node)",
        cspc(vec![pool("node-9", "stripe", &[&["a1"]])]),
        f.clone(),
        "failed to get node from pool nodeSelector: {map[kubernetes.io/hostname:node-9]} error: {invalid no.of nodes 0 from the given node selectors}",
    ));
    // A node matched by the selector but without a hostname label can't hold a pool (the
    // cspc-operator refuses it too: one rule, policy::node).
    let mut no_host = f.clone();
    no_host.nodes[0].labels.remove("kubernetes.io/hostname");
    let mut by_zone = cspc(vec![pool("node-1", "stripe", &[&["a1"]])]);
    by_zone["spec"]["pools"][0]["nodeSelector"] = json!({"zone": "z1", "rack": "r1"});
    no_host.nodes[0]
        .labels
        .insert("rack".to_string(), "r1".to_string());
    rows.push((
        "A.5 node without hostname label",
        by_zone,
        no_host,
        "failed to get node from pool nodeSelector: {map[rack:r1 zone:z1]} error: {node node-1 has no kubernetes.io/hostname label}",
    ));
    let mut empty = cspc(vec![pool("node-1", "stripe", &[&["a1"]])]);
    empty["spec"]["pools"][0]["nodeSelector"] = json!({});
    rows.push((
        "A.5 empty nodeSelector",
        empty,
        f.clone(),
        "pool nodeSelector must not be empty",
    ));
    rows.push((
        "CC-4",
        cspc(vec![
            pool("node-1", "stripe", &[&["a1"]]),
            pool("node-1", "stripe", &[&["a2"]]),
        ]),
        f.clone(),
        "invalid cspc: duplicate node node-1 entry",
    ));
    rows.push((
        "CC-P1",
        cspc(vec![pool("node-1", "", &[&["a1"]])]),
        f.clone(),
        "invalid pool spec: missing dataRaidGroupType",
    ));
    rows.push((
        "CC-P2",
        cspc(vec![pool("node-1", "Mirror", &[&["a1", "a2"]])]),
        f.clone(),
        "invalid pool spec: unsupported dataRaidGroupType 'Mirror' specified",
    ));
    let mut comp = cspc(vec![pool("node-1", "stripe", &[&["a1"]])]);
    comp["spec"]["pools"][0]["poolConfig"]["compression"] = json!("zstd");
    rows.push((
        "CC-P3",
        comp,
        f.clone(),
        "invalid pool spec: unsupported compression 'zstd' specified",
    ));
    let mut wc = cspc(vec![pool("node-1", "mirror", &[&["a1", "a2"]])]);
    wc["spec"]["pools"][0]["writeCacheRaidGroups"] =
        json!([{"blockDevices": [{"blockDeviceName": "a3"}]}]);
    rows.push((
        "CC-P4",
        wc.clone(),
        f.clone(),
        "invalid pool spec: missing writeCacheGroupType",
    ));
    let mut wc5 = wc.clone();
    wc5["spec"]["pools"][0]["poolConfig"]["writeCacheGroupType"] = json!("raid5");
    rows.push((
        "CC-P5",
        wc5,
        f.clone(),
        "invalid pool spec: unsupported writeCacheGroupType 'raid5' specified",
    ));
    rows.push((
        "CC-P6",
        cspc(vec![pool("node-1", "mirror", &[])]),
        f.clone(),
        "invalid pool spec: at least one raid group should be present on dataRaidGroups",
    ));
    rows.push((
        "CC-P7",
        cspc(vec![pool("node-1", "stripe", &[&["a1"], &["a2"]])]),
        f.clone(),
        "invalid pool spec: stripe dataRaidGroups should have exactly one raidGroup",
    ));
    let mut wc9 = wc.clone();
    wc9["spec"]["pools"][0]["poolConfig"]["writeCacheGroupType"] = json!("stripe");
    wc9["spec"]["pools"][0]["writeCacheRaidGroups"] = json!([{"blockDevices": [{"blockDeviceName": "a3"}]}, {"blockDevices": [{"blockDeviceName": "a4"}]}]);
    rows.push((
        "CC-P9",
        wc9,
        f.clone(),
        "invalid pool spec: stripe writeCacheRaidGroups should have exactly one raidGroup",
    ));
    let mut wc10 = wc.clone();
    wc10["spec"]["pools"][0]["poolConfig"]["writeCacheGroupType"] = json!("mirror");
    rows.push((
        "CC-P10",
        wc10,
        f.clone(),
        "invalid pool spec: mirror raid group should have disks in multiple of 2",
    ));
    rows.push((
        "CC-R1",
        cspc(vec![pool("node-1", "mirror", &[&[]])]),
        f.clone(),
        "invalid pool spec: empty raid group: number of block devices honouring raid type should be specified",
    ));
    rows.push((
        "CC-R3",
        cspc(vec![pool("node-1", "mirror", &[&["a1", "a2", "a3"]])]),
        f.clone(),
        "invalid pool spec: mirror raid group should have disks in multiple of 2",
    ));
    rows.push((
        "CC-R4",
        cspc(vec![pool("node-1", "raidz", &[&["a1", "a2", "a3", "a4"]])]),
        f.clone(),
        "invalid pool spec: raidz raid group should have disks of the order 2^n+1, where n>0",
    ));
    rows.push((
        "CC-R5",
        cspc(vec![pool("node-1", "raidz2", &[&["a1", "a2", "a3", "a4"]])]),
        f.clone(),
        "invalid pool spec: raidz raid group should have disks of the order 2^n+2, where n>1",
    ));
    rows.push((
        "CC-B1",
        cspc(vec![pool("node-1", "stripe", &[&[""]])]),
        f.clone(),
        "invalid pool spec: block device name cannot be empty",
    ));
    rows.push((
        "CC-B2",
        cspc(vec![pool("node-1", "stripe", &[&["zz"]])]),
        f.clone(),
        "invalid pool spec: failed to get block device: {zz} details error: blockdevices.openebs.io \"zz\" not found",
    ));
    let mut inactive = f.clone();
    if let Some(b) = inactive.block_devices.get_mut("a1") {
        b.status.state = "Inactive".into();
    }
    rows.push((
        "CC-B3",
        cspc(vec![pool("node-1", "stripe", &[&["a1"]])]),
        inactive,
        "invalid pool spec: block device \"a1\" is in not in active state",
    ));
    let mut fs = f.clone();
    if let Some(b) = fs.block_devices.get_mut("a1") {
        b.spec.filesystem = Some(serde_json::from_value(json!({"fsType": "ext4"})).expect("fs"));
    }
    rows.push((
        "CC-B4",
        cspc(vec![pool("node-1", "stripe", &[&["a1"]])]),
        fs,
        "invalid pool spec: block device has file system {ext4}",
    ));
    rows.push((
        "CC-B5",
        cspc(vec![pool("node-1", "stripe", &[&["b1"]])]),
        f.clone(),
        "invalid pool spec: block device b1 doesn't belongs to node node-2",
    ));
    let mut tagged = f.clone();
    if let Some(b) = tagged.block_devices.get_mut("a1") {
        b.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("openebs.io/block-device-tag".into(), " ".into());
    }
    rows.push((
        "CC-B6",
        cspc(vec![pool("node-1", "stripe", &[&["a1"]])]),
        tagged,
        "invalid pool spec: block device a1 is tagged with a value   and cannot be used",
    ));
    let mut claimed = f.clone();
    if let Some(b) = claimed.block_devices.get_mut("a1") {
        b.status.claim_state = "Claimed".into();
        b.spec.claim_ref = Some(serde_json::from_value(json!({"name": "bdc-x"})).expect("ref"));
    }
    rows.push((
        "CC-B7",
        cspc(vec![pool("node-1", "stripe", &[&["a1"]])]),
        claimed.clone(),
        "invalid pool spec: error: could not get block device claim for block device {a1}: blockdeviceclaims.openebs.io \"bdc-x\" not found",
    ));
    let bdc: BlockDeviceClaim = serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
        "metadata": {"name": "bdc-x", "labels": {"openebs.io/cstor-pool-cluster": "other"}},
        "spec": {"blockDeviceName": "a1", "deviceType": "", "hostName": "node-1", "resources": {"requests": {}}},
        "status": {"phase": "Bound"},
    }))
    .expect("bdc");
    claimed.block_device_claims.insert("bdc-x".into(), bdc);
    rows.push((
        "CC-B8",
        cspc(vec![pool("node-1", "stripe", &[&["a1"]])]),
        claimed,
        "invalid pool spec: error: can't use claimed blockdevice a1",
    ));
    rows
}

#[test]
fn every_rule_denies_with_its_exact_message() {
    for (id, doc, f, want) in rows() {
        assert_eq!(check(doc, &f), Err(want.to_string()), "rule {id}");
    }
}

#[test]
fn a_bd_claimed_by_this_cspc_is_accepted() {
    let mut f = facts();
    if let Some(b) = f.block_devices.get_mut("a1") {
        b.status.claim_state = "Claimed".into();
        b.spec.claim_ref = Some(serde_json::from_value(json!({"name": "bdc-a1"})).expect("ref"));
    }
    let bdc: BlockDeviceClaim = serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
        "metadata": {"name": "bdc-a1", "labels": {"openebs.io/cstor-pool-cluster": "pc"}},
        "spec": {"blockDeviceName": "a1", "deviceType": "", "hostName": "node-1", "resources": {"requests": {}}},
        "status": {"phase": "Bound"},
    }))
    .expect("bdc");
    f.block_device_claims.insert("bdc-a1".into(), bdc);
    assert_eq!(
        check(cspc(vec![pool("node-1", "stripe", &[&["a1"]])]), &f),
        Ok(())
    );
}

#[test]
fn raid_counts_follow_the_go_operator() {
    let ok = |n, t| raid_group_count_validation(n, t).is_ok();
    let raidz: Vec<usize> = (1..40).filter(|n| ok(*n, "raidz")).collect();
    let raidz2: Vec<usize> = (1..40).filter(|n| ok(*n, "raidz2")).collect();
    let mirror: Vec<usize> = (1..9).filter(|n| ok(*n, "mirror")).collect();
    assert_eq!(raidz, [3, 5, 9, 17, 33]);
    assert_eq!(raidz2, [6, 10, 18, 34]);
    assert_eq!(mirror, [2, 4, 6, 8]);
    assert!((1..9).all(|n| ok(n, "stripe")));
}

#[test]
fn go_map_formatting_sorts_keys() {
    let m = BTreeMap::from([
        ("b".to_string(), "2".to_string()),
        ("a".to_string(), "1".to_string()),
    ]);
    assert_eq!(go_map(&m), "map[a:1 b:2]");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// No input panics: arbitrary selectors, types, compressions and disk lists get a verdict.
    #[test]
    fn validation_is_total(
        host in "(node-[0-4]|)",
        kind in "(stripe|mirror|raidz|raidz2|x|)",
        compression in "(lz4|off|zstd|)",
        groups in proptest::collection::vec(proptest::collection::vec("(a[0-9]|b[0-9]|c[0-3]|)", 0..7), 0..4),
        wc in proptest::option::of(proptest::collection::vec(proptest::collection::vec("a[0-9]", 0..3), 0..3)),
        wc_kind in "(stripe|mirror|y|)",
    ) {
        let f = facts();
        let refs: Vec<Vec<&str>> = groups.iter().map(|g| g.iter().map(String::as_str).collect()).collect();
        let slices: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        let mut p = pool(&host, &kind, &slices);
        p["poolConfig"]["compression"] = json!(compression);
        p["poolConfig"]["writeCacheGroupType"] = json!(wc_kind);
        if let Some(wc) = wc {
            p["writeCacheRaidGroups"] = json!(wc.iter().map(|g| json!({"blockDevices": g.iter().map(|b| json!({"blockDeviceName": b})).collect::<Vec<_>>()})).collect::<Vec<_>>());
        }
        let typed: CStorPoolCluster = serde_json::from_value(cspc(vec![p])).expect("typed");
        let v = validate_create(&typed, &f);
        prop_assert!(v.allowed || (v.code == 422 && v.message.starts_with(PREFIX)));
    }
}
