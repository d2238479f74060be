//! BlockDevice (bd) and BlockDeviceClaim (bdc): NDM's disks and the claims cStor puts on them.
//! NDM owns both kinds and writes their status with plain Updates (no status subresource).

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::null_as_default;

/// A BlockDevice: one disk (or partition, sparse file, …) found by NDM on a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct BlockDevice {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DeviceSpec,
    #[serde(default)]
    pub status: DeviceStatus,
}

crate::cstor_resource!(BlockDevice {
    group: "openebs.io",
    version: "v1alpha1",
    kind: "BlockDevice",
    plural: "blockdevices",
    namespaced: true,
    short_names: ["bd"],
    status_subresource: false,
    printer_columns: [
        (
            "NodeName",
            "string",
            ".spec.nodeAttributes.nodeName",
            "node the device is attached to",
            0
        ),
        ("Path", "string", ".spec.path", "device path", 1),
        (
            "Size",
            "integer",
            ".spec.capacity.storage",
            "capacity in bytes",
            0
        ),
        (
            "ClaimState",
            "string",
            ".status.claimState",
            "whether a claim binds the device",
            0
        ),
        (
            "Status",
            "string",
            ".status.state",
            "whether the device is attached",
            0
        ),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    categories: ["openebs"],
});

/// `spec` of a BlockDevice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceSpec {
    /// The node the device is attached to.
    #[serde(default)]
    pub node_attributes: NodeAttribute,
    /// Device path, e.g. `/dev/sdb`.
    #[serde(default)]
    pub path: String,
    /// Size and sector sizes.
    #[serde(default)]
    pub capacity: DeviceCapacity,
    /// Static hardware attributes.
    #[serde(default)]
    pub details: DeviceDetails,
    /// The BlockDeviceClaim that claims the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_ref: Option<ObjectReference>,
    /// Soft links of the device (`/dev/disk/by-id/…`, `/dev/disk/by-path/…`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub devlinks: Vec<DeviceDevLink>,
    /// File system on the device, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FileSystemInfo>,
    /// `YES` / `NO`: whether the device has partitions (NDM always writes `NO`).
    #[serde(default)]
    pub partitioned: String,
    /// Unimplemented by NDM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_device: String,
    /// Unimplemented by NDM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub aggregate_device: String,
}

/// `spec.nodeAttributes` of a BlockDevice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeAttribute {
    /// Name of the Kubernetes Node (may differ from its `kubernetes.io/hostname` label).
    #[serde(default)]
    pub node_name: String,
}

/// `spec.capacity` of a BlockDevice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCapacity {
    /// Capacity in bytes.
    #[serde(default)]
    pub storage: u64,
    /// Physical sector size in bytes.
    #[serde(default)]
    pub physical_sector_size: u32,
    /// Logical sector size in bytes.
    #[serde(default)]
    pub logical_sector_size: u32,
}

/// `spec.details` of a BlockDevice: static hardware attributes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDetails {
    /// `sparse`, `disk`, `partition`, `lvm`, `raid`, … (see [`device_type`]).
    #[serde(default)]
    pub device_type: String,
    /// `HDD` / `SSD`.
    #[serde(default)]
    pub drive_type: String,
    /// Logical block size in bytes.
    #[serde(default)]
    pub logical_block_size: u32,
    /// Physical block size in bytes.
    #[serde(default)]
    pub physical_block_size: u32,
    /// Hardware sector size in bytes.
    #[serde(default)]
    pub hardware_sector_size: u32,
    #[serde(default)]
    pub model: String,
    /// Standard implemented by the firmware (SPC-1, SPC-2, …).
    #[serde(default)]
    pub compliance: String,
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub firmware_revision: String,
}

/// `spec.filesystem` of a BlockDevice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSystemInfo {
    /// File system type (`ext4`, `xfs`, `zfs_member`, …).
    #[serde(rename = "fsType", default, skip_serializing_if = "String::is_empty")]
    pub fs_type: String,
    /// Where the device is mounted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_point: String,
}

/// One kind of soft link of a BlockDevice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDevLink {
    /// `by-id` / `by-path`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The links of that kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

/// `status` of a BlockDevice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStatus {
    /// `Unclaimed` | `Released` | `Claimed` (see [`claim_state`]).
    #[serde(default)]
    pub claim_state: String,
    /// `Active` | `Inactive` | `Unknown` (see [`device_state`]).
    #[serde(default)]
    pub state: String,
}

/// Values of a BlockDevice's `status.claimState`.
pub mod claim_state {
    /// Bound to no claim, cleaned up, free to claim.
    pub const UNCLAIMED: &str = "Unclaimed";
    /// Released by its claim; cleanup pending.
    pub const RELEASED: &str = "Released";
    /// Bound to a BlockDeviceClaim.
    pub const CLAIMED: &str = "Claimed";
}

/// Values of a BlockDevice's `status.state`.
pub mod device_state {
    /// Attached to its node.
    pub const ACTIVE: &str = "Active";
    /// Detached from its node.
    pub const INACTIVE: &str = "Inactive";
    /// Attachment cannot be determined.
    pub const UNKNOWN: &str = "Unknown";
}

/// Values of a BlockDevice's `spec.details.deviceType`.
pub mod device_type {
    pub const SPARSE: &str = "sparse";
    pub const DISK: &str = "disk";
    pub const PARTITION: &str = "partition";
    pub const LVM: &str = "lvm";
    pub const RAID: &str = "raid";
}

/// A BlockDeviceClaim: a claim on one BlockDevice. cStor names its claims `bdc-cstor-<BD UID>`,
/// labels them with `openebs.io/cstor-pool-cluster` and adds the
/// `cstorpoolcluster.openebs.io/finalizer` finalizer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct BlockDeviceClaim {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DeviceClaimSpec,
    #[serde(default)]
    pub status: DeviceClaimStatus,
}

crate::cstor_resource!(BlockDeviceClaim {
    group: "openebs.io",
    version: "v1alpha1",
    kind: "BlockDeviceClaim",
    plural: "blockdeviceclaims",
    namespaced: true,
    short_names: ["bdc"],
    status_subresource: false,
    printer_columns: [
        (
            "BlockDeviceName",
            "string",
            ".spec.blockDeviceName",
            "the claimed BlockDevice",
            0
        ),
        ("Phase", "string", ".status.phase", "claim phase", 0),
        ("Age", "date", ".metadata.creationTimestamp", "", 0),
    ],
    categories: ["openebs"],
});

/// `spec` of a BlockDeviceClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceClaimSpec {
    /// Candidate BlockDevices (for example by block-device tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Requested resources (`storage`: minimum capacity).
    #[serde(default)]
    pub resources: DeviceClaimResources,
    /// `SSD`, `HDD`, ….
    #[serde(default)]
    pub device_type: String,
    /// Node to claim from (legacy; see `blockDeviceNodeAttributes`).
    #[serde(default)]
    pub host_name: String,
    /// What kind of device to claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_claim_details: Option<DeviceClaimDetails>,
    /// The BlockDevice to claim, or the one bound.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub block_device_name: String,
    /// Node attributes a candidate BlockDevice must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_device_node_attributes: Option<BlockDeviceNodeAttributes>,
}

/// `spec.resources` of a BlockDeviceClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceClaimResources {
    /// Minimum resources; key `storage` (see [`RESOURCE_STORAGE`]).
    #[serde(default, deserialize_with = "null_as_default")]
    pub requests: BTreeMap<String, Quantity>,
}

/// The `spec.resources.requests` key for capacity.
pub const RESOURCE_STORAGE: &str = "storage";

/// `spec.deviceClaimDetails` of a BlockDeviceClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceClaimDetails {
    /// `Block` | `FileSystem` (see [`volume_mode`]); empty means either.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub block_volume_mode: String,
    /// Required file system, e.g. `ext4`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub format_type: String,
    /// Whether a partition may be claimed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_partition: bool,
}

/// Values of `spec.deviceClaimDetails.blockVolumeMode`.
pub mod volume_mode {
    /// Raw block: the device must have no file system or mount point.
    pub const BLOCK: &str = "Block";
    /// The device must have a file system and be mounted.
    pub const FILE_SYSTEM: &str = "FileSystem";
}

/// `spec.blockDeviceNodeAttributes` of a BlockDeviceClaim; every given attribute must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockDeviceNodeAttributes {
    /// Name of the Kubernetes Node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    /// The Node's hostname label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_name: String,
}

/// `status` of a BlockDeviceClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceClaimStatus {
    /// `""` | `Pending` | `Invalid Capacity Request` | `Bound` (see [`bdc_phase`]).
    #[serde(default)]
    pub phase: String,
}

/// Values of a BlockDeviceClaim's `status.phase`.
pub mod bdc_phase {
    /// Just created.
    pub const EMPTY: &str = "";
    /// Searching for a matching BlockDevice.
    pub const PENDING: &str = "Pending";
    /// The requested capacity is 0 or negative.
    pub const INVALID_CAPACITY_REQUEST: &str = "Invalid Capacity Request";
    /// A BlockDevice is bound.
    pub const BOUND: &str = "Bound";
}
