//! CSPC UPDATE and DELETE rules: one row per rule id (docs/admission.md), with the
//! exact message; the old state is the request's oldObject.

mod common;

use common::{bdc, cspc, facts, pool};
use cstor_api::cstor_v1::{CStorPoolCluster, CStorPoolInstance, CStorVolumeReplica};
use cstor_policy::CspcFacts;
use cstor_policy::cspc_update::{validate_delete, validate_update};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn typed(v: Value) -> CStorPoolCluster {
    serde_json::from_value(v).expect("typed CSPC")
}

fn verdict(old: Value, new: Value, f: &CspcFacts) -> Result<(), (u16, String)> {
    let v = validate_update(&typed(old), &typed(new), f);
    if v.allowed {
        Ok(())
    } else {
        Err((v.code, v.message))
    }
}

fn cspi(name: &str, host: &str) -> CStorPoolInstance {
    serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
        "metadata": {"name": name, "labels": {"openebs.io/cstor-pool-cluster": "pc", "kubernetes.io/hostname": host}},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": host}, "dataRaidGroups": []},
    }))
    .expect("cspi")
}

fn cvr(cspi: &str) -> CStorVolumeReplica {
    serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": format!("pvc-1-{cspi}"), "labels": {"cstorpoolinstance.openebs.io/name": cspi}},
        "spec": {},
    }))
    .expect("cvr")
}

fn mirror2() -> Value {
    cspc(vec![
        pool("node-1", "mirror", &[&["a1", "a2"]]),
        pool("node-2", "stripe", &[&["b1"]]),
    ])
}

const P: &str = "invalid cspc specification: ";

#[test]
fn allowed_day2_operations() {
    let f = facts();
    let old = mirror2();
    // Metadata-only change, stripe append, a new mirror group, a disk replacement in a mirror.
    let mut labelled = old.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    for new in [
        labelled,
        cspc(vec![
            pool("node-1", "mirror", &[&["a1", "a2"]]),
            pool("node-2", "stripe", &[&["b1", "b2"]]),
        ]),
        cspc(vec![
            pool("node-1", "mirror", &[&["a1", "a2"], &["a3", "a4"]]),
            pool("node-2", "stripe", &[&["b1"]]),
        ]),
        cspc(vec![
            pool("node-1", "mirror", &[&["a1", "a5"]]),
            pool("node-2", "stripe", &[&["b1"]]),
        ]),
    ] {
        assert_eq!(verdict(old.clone(), new, &f), Ok(()));
    }
}

#[test]
fn every_rule_denies_with_its_exact_message() {
    let f = facts();
    let old = mirror2();
    let mut with_replica = f.clone();
    with_replica.cspis.push(cspi("pc-b", "node-2"));
    with_replica.cvrs.push(cvr("pc-b"));
    // a3 is mid-replacement of a6 in the second group: a6 may not come back into the first.
    let two_groups = cspc(vec![pool(
        "node-1",
        "mirror",
        &[&["a1", "a2"], &["a3", "a4"]],
    )]);
    let mut replacing = f.clone();
    replacing
        .block_device_claims
        .insert("bdc-a3".into(), bdc("bdc-a3", "a3", "pc", Some("a6")));
    let mut in_progress = f.clone();
    in_progress
        .block_device_claims
        .insert("bdc-a2".into(), bdc("bdc-a2", "a2", "pc", Some("a9")));
    let mut elsewhere = f.clone();
    elsewhere
        .block_device_claims
        .insert("bdc-a5".into(), bdc("bdc-a5", "a5", "other", None));
    let mut small = f.clone();
    if let Some(b) = small.block_devices.get_mut("a5") {
        b.spec.capacity.storage = 1024;
    }
    let mut tagged = f.clone();
    if let Some(b) = tagged.block_devices.get_mut("a5") {
        b.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("openebs.io/block-device-tag".into(), "ssd".into());
    }
    let one_pool = cspc(vec![pool("node-1", "mirror", &[&["a1", "a2"]])]);
    let rows: Vec<(&str, Value, Value, CspcFacts, u16, String)> = vec![
        (
            "CU-1",
            old.clone(),
            cspc(vec![
                pool("node-1", "mirror", &[&["a1", "a2", "a3"]]),
                pool("node-2", "stripe", &[&["b1"]]),
            ]),
            f.clone(),
            422,
            format!("{P}invalid pool spec: mirror raid group should have disks in multiple of 2"),
        ),
        (
            "CU-2e",
            old.clone(),
            one_pool.clone(),
            with_replica,
            422,
            format!("{P}volume still exists on pool pc-b"),
        ),
        (
            "CU-4a",
            old.clone(),
            cspc(vec![
                pool("node-1", "stripe", &[&["a1", "a2"]]),
                pool("node-2", "stripe", &[&["b1"]]),
            ]),
            f.clone(),
            422,
            format!("{P}raidgroup can't be modified"),
        ),
        (
            "CU-4b",
            old.clone(),
            cspc(vec![
                pool("node-1", "mirror", &[&["a3", "a4"]]),
                pool("node-2", "stripe", &[&["b1"]]),
            ]),
            f.clone(),
            422,
            format!(
                "{P}raid group validation failed: removing raid group from pool spec is invalid operation"
            ),
        ),
        (
            "CU-4c",
            cspc(vec![pool("node-2", "stripe", &[&["b1", "b2"]])]),
            cspc(vec![pool("node-2", "stripe", &[&["b1"]])]),
            f.clone(),
            422,
            format!(
                "{P}raid group validation failed: removing block device from stripe raid group is not valid operation"
            ),
        ),
        (
            "CU-4d",
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a2"]])]),
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a2", "a3", "a4"]])]),
            f.clone(),
            422,
            format!(
                "{P}raid group validation failed: adding block devices to existing mirror raid group is not valid operation"
            ),
        ),
        (
            "CU-5a",
            cspc(vec![pool("node-2", "stripe", &[&["b1", "b2"]])]),
            cspc(vec![pool("node-2", "stripe", &[&["b1", "b3"]])]),
            f.clone(),
            422,
            format!("{P}cannot replace  blockdevice in stripe raid group"),
        ),
        (
            "CU-5b",
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a2", "a3", "a4"]])]),
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a2", "a5", "a6"]])]),
            f.clone(),
            422,
            format!("{P}cannot replace more than one blockdevice in a raid group"),
        ),
        (
            "CU-5c",
            cspc(vec![pool(
                "node-1",
                "mirror",
                &[&["a1", "a2"], &["a3", "a4"]],
            )]),
            cspc(vec![pool(
                "node-1",
                "mirror",
                &[&["a1", "a3"], &["a5", "a4"]],
            )]),
            f.clone(),
            422,
            format!(
                "{P}the new blockdevice intended to use for replacement is already a part of the current cspc"
            ),
        ),
        (
            "CU-5d",
            one_pool.clone(),
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a5"]])]),
            in_progress,
            422,
            format!(
                "{P}cannot replace blockdevice as a background replacement may be in progress in the raid group: replacement is still in progress for bd a2"
            ),
        ),
        (
            "CU-5e",
            one_pool.clone(),
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a5"]])]),
            elsewhere,
            422,
            format!("{P}the new blockdevice intended to use for replacement in invalid"),
        ),
        (
            "CU-5e (predecessor)",
            two_groups.clone(),
            cspc(vec![pool(
                "node-1",
                "mirror",
                &[&["a1", "a6"], &["a3", "a4"]],
            )]),
            replacing,
            422,
            format!("{P}the new blockdevice intended to use for replacement in invalid"),
        ),
        (
            "CU-5g",
            one_pool.clone(),
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a5"]])]),
            small,
            422,
            format!(
                "{P}error: capacity of replacing block device {{a5:1024}} should be greater than or equal to existing block device {{a2:1073741824}}"
            ),
        ),
        (
            "tag",
            one_pool.clone(),
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a5"]])]),
            tagged,
            422,
            "cannot use bd {a5} as it has tag ssd but cspc has allowed bd tags as ".to_string(),
        ),
    ];
    for (id, old, new, f, code, want) in rows {
        assert_eq!(verdict(old, new, &f), Err((code, want)), "rule {id}");
    }
}

#[test]
fn a_removed_pool_without_a_cspi_is_allowed_not_a_panic() {
    assert_eq!(
        verdict(
            mirror2(),
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a2"]])]),
            &facts()
        ),
        Ok(())
    );
}

#[test]
fn expansion_with_a_disk_claimed_by_another_cspc_is_denied() {
    let mut f = facts();
    f.block_device_claims
        .insert("bdc-a3".into(), bdc("bdc-a3", "a3", "pc", None));
    // a3 is claimed by this CSPC's BDC; a4 by another one: CC-B checks do not see it (not
    // Claimed in BD status), CU-6 does.
    f.block_device_claims
        .insert("bdc-a4".into(), bdc("bdc-a4", "a4", "other", None));
    let new = cspc(vec![pool(
        "node-1",
        "mirror",
        &[&["a1", "a2"], &["a3", "a4"]],
    )]);
    assert_eq!(
        verdict(
            cspc(vec![pool("node-1", "mirror", &[&["a1", "a2"]])]),
            new,
            &f
        ),
        Err((
            422,
            format!(
                "{P}pool expansion validation failed: can not use blockdevice a4 validation failed"
            )
        ))
    );
}

#[test]
fn delete_is_denied_while_replicas_remain() {
    let mut f = facts();
    f.cspis.push(cspi("pc-a", "node-1"));
    let c = typed(mirror2());
    assert!(validate_delete(&c, &f).allowed);
    f.cvrs.push(cvr("pc-a"));
    let v = validate_delete(&c, &f);
    assert_eq!(
        (v.allowed, v.code, v.message.as_str()),
        (
            false,
            422,
            "invalid cspc pc deletion: volume still exists on pool pc-a"
        )
    );
}
