//! Disk discovery, the part that decides: which BlockDevice objects a node's disks should be
//! (locally, sparse files standing in for disks), and what to change on the existing ones.
//! The agent applies the result with server-side apply; nothing here touches the cluster.

use std::collections::BTreeMap;

use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::BlockDevice;
use cstor_api::openebs_v1alpha1::blockdevice::{
    DeviceCapacity, DeviceDetails, DeviceSpec, DeviceStatus, NodeAttribute, claim_state,
    device_state,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A disk as seen on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Absolute path (a sparse file locally, a `/dev/…` node in a cluster).
    pub path: String,
    pub bytes: u64,
    /// `sparse` for files, `disk` for block devices.
    pub device_type: String,
}

/// A DNS-1123 name for `node`'s disk at `path`: `bd-<node>-<file name>` when that is already
/// a valid name; otherwise (upper case, other characters, too long) the name made valid
/// (lower-cased, other characters as `-`) with `-<8 hex digits>` of a hash of `node` and
/// `path` appended, so two disks whose names would read alike after the change (`Disk_A`,
/// `disk-a`) never share a BlockDevice.
pub fn block_device_name(node: &str, path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let raw = format!("bd-{node}-{file}");
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum_ends = raw.ends_with(|c: char| c.is_ascii_alphanumeric());
    if raw.len() <= 253 && alnum_ends && raw.chars().all(valid) {
        return raw;
    }
    let hash = cstor_api::keys::fnv1a64(format!("{node}\0{path}").as_bytes()) as u32;
    let mut name: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if valid(c) { c } else { '-' })
        .collect();
    name.truncate(253 - 9);
    let name = name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{name}-{hash:08x}")
}

/// The BlockDevice for `disk` on `node`: Active, and Unclaimed unless `existing` says more.
/// What discovery does not own (claim state and claimRef, set by claim binding) is kept.
pub fn block_device(
    node: &str,
    namespace: &str,
    disk: &Disk,
    existing: Option<&BlockDevice>,
) -> BlockDevice {
    let name = block_device_name(node, &disk.path);
    let mut meta_labels = BTreeMap::from([
        (labels::HOSTNAME.to_string(), node.to_string()),
        (
            labels::NDM_BLOCKDEVICE_TYPE.to_string(),
            "blockdevice".to_string(),
        ),
    ]);
    if let Some(old) = existing.and_then(|b| b.metadata.labels.as_ref()) {
        for (k, v) in old {
            meta_labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let claim = existing
        .map(|b| b.status.claim_state.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| claim_state::UNCLAIMED.to_string());
    BlockDevice {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: Some(meta_labels),
            ..ObjectMeta::default()
        },
        spec: DeviceSpec {
            node_attributes: NodeAttribute {
                node_name: node.to_string(),
            },
            path: disk.path.clone(),
            capacity: DeviceCapacity {
                storage: disk.bytes,
                physical_sector_size: 512,
                logical_sector_size: 512,
            },
            details: DeviceDetails {
                device_type: disk.device_type.clone(),
                logical_block_size: 512,
                physical_block_size: 512,
                hardware_sector_size: 512,
                ..DeviceDetails::default()
            },
            claim_ref: existing.and_then(|b| b.spec.claim_ref.clone()),
            partitioned: "No".into(),
            ..DeviceSpec::default()
        },
        status: DeviceStatus {
            claim_state: claim,
            state: device_state::ACTIVE.into(),
        },
    }
}

/// BlockDevices of `node` whose disk is gone: they become Inactive (never deleted, so a claim
/// on them, and the data they held, stay visible to the administrator).
pub fn vanished<'a>(node: &str, disks: &[Disk], known: &'a [BlockDevice]) -> Vec<&'a BlockDevice> {
    known
        .iter()
        .filter(|b| b.spec.node_attributes.node_name == node)
        .filter(|b| b.status.state != device_state::INACTIVE)
        .filter(|b| !disks.iter().any(|d| d.path == b.spec.path))
        .collect()
}
