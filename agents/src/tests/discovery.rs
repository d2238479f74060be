//! Disk discovery's decisions: BlockDevice names and fields for a node's disks, claim state
//! kept, vanished disks found.

use crate::discovery::{Disk, block_device, block_device_name, vanished};
use pretty_assertions::assert_eq;
use serde_json::json;

fn sparse(path: &str) -> Disk {
    Disk {
        path: path.into(),
        bytes: 1 << 30,
        device_type: "sparse".into(),
    }
}

#[test]
fn names_are_dns_labels_of_node_and_file() {
    assert_eq!(
        block_device_name("cstor-node-1", "/state/disks/cstor-node-1/disk1.img"),
        "bd-cstor-node-1-disk1.img"
    );
    // Names that had to change carry a hash of node and path, so they cannot collide.
    let changed = block_device_name("Node_A", "/dev/sdb");
    assert!(changed.starts_with("bd-node-a-sdb-"), "{changed}");
    assert_eq!(changed.len(), "bd-node-a-sdb-".len() + 8);
    assert_eq!(changed, block_device_name("Node_A", "/dev/sdb"), "stable");
    let (upper, plain) = (
        block_device_name("n", "/d/Disk_A"),
        block_device_name("n", "/d/disk-a"),
    );
    assert_eq!(plain, "bd-n-disk-a");
    assert_ne!(upper, plain);
    assert!(upper.starts_with("bd-n-disk-a-"), "{upper}");
    let weird = block_device_name("n", "/x/-weird_");
    assert!(weird.starts_with("bd-n--weird-"), "{weird}");
    let long = block_device_name("n", &format!("/d/{}", "x".repeat(300)));
    assert!(long.len() <= 253, "{}", long.len());
    assert_ne!(
        long,
        block_device_name("n", &format!("/d/{}y", "x".repeat(300)))
    );
    for name in [&changed, &upper, &weird, &long] {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
            "{name}"
        );
    }
}

#[test]
fn a_new_disk_is_an_active_unclaimed_block_device_on_its_node() {
    let bd = block_device(
        "cstor-node-1",
        "openebs",
        &sparse("/s/cstor-node-1/disk1"),
        None,
    );
    let v = serde_json::to_value(&bd).expect("json");
    assert_eq!(v["metadata"]["name"], "bd-cstor-node-1-disk1");
    assert_eq!(v["metadata"]["namespace"], "openebs");
    assert_eq!(
        v["metadata"]["labels"]["kubernetes.io/hostname"],
        "cstor-node-1"
    );
    assert_eq!(
        v["metadata"]["labels"]["ndm.io/blockdevice-type"],
        "blockdevice"
    );
    assert_eq!(v["spec"]["path"], "/s/cstor-node-1/disk1");
    assert_eq!(v["spec"]["capacity"]["storage"], 1u64 << 30);
    assert_eq!(v["spec"]["nodeAttributes"]["nodeName"], "cstor-node-1");
    assert_eq!(v["spec"]["details"]["deviceType"], "sparse");
    assert_eq!(
        v["status"],
        json!({"claimState": "Unclaimed", "state": "Active"})
    );
}

#[test]
fn claim_state_and_ref_belong_to_claim_binding_and_are_kept() {
    let mut existing = block_device("n1", "openebs", &sparse("/s/d1"), None);
    existing.status.claim_state = "Claimed".into();
    existing.status.state = "Inactive".into();
    existing.spec.claim_ref = Some(k8s_openapi::api::core::v1::ObjectReference {
        name: Some("bdc-cstor-1".into()),
        ..Default::default()
    });
    let again = block_device("n1", "openebs", &sparse("/s/d1"), Some(&existing));
    assert_eq!(again.status.claim_state, "Claimed");
    assert_eq!(again.status.state, "Active", "the disk is back");
    assert_eq!(
        again.spec.claim_ref.and_then(|r| r.name).as_deref(),
        Some("bdc-cstor-1")
    );
}

#[test]
fn vanished_disks_of_this_node_only() {
    let known = vec![
        block_device("n1", "openebs", &sparse("/s/d1"), None),
        block_device("n1", "openebs", &sparse("/s/d2"), None),
        block_device("n2", "openebs", &sparse("/s/d3"), None),
    ];
    let gone = vanished("n1", &[sparse("/s/d1")], &known);
    let names: Vec<&str> = gone
        .iter()
        .filter_map(|b| b.metadata.name.as_deref())
        .collect();
    assert_eq!(names, vec!["bd-n1-d2"]);
}
