//! CStorVolumeAttachment (cva): the CSI node plugin's record of a volume attached to a node.
//! Written by the CSI driver with plain updates; `status` is a plain string at the root.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A CStorVolumeAttachment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct CStorVolumeAttachment {
    #[schemars(skip)]
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CStorVolumeAttachmentSpec,
    /// Mount state on the node: `Mounted`, `MountUnderProgress`, `Raw`, … (`cva::status`); `""`
    /// before any operation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
}

crate::cstor_resource!(CStorVolumeAttachment {
    group: "cstor.openebs.io",
    version: "v1",
    kind: "CStorVolumeAttachment",
    plural: "cstorvolumeattachments",
    namespaced: true,
    short_names: ["cva"],
    status_subresource: false,
    printer_columns: [],
    categories: ["cstor", "openebs"],
});

/// `spec` of a CStorVolumeAttachment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CStorVolumeAttachmentSpec {
    /// The volume and how it is used on the node.
    pub volume: VolumeInfo,
    /// The iSCSI session.
    pub iscsi: ISCSIInfo,
}

/// `spec.volume` of a CVA.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeInfo {
    /// CSI volume name (the PV).
    pub name: String,
    /// Volume size.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capacity: String,
    /// Node that owns the volume.
    #[serde(rename = "ownerNodeID")]
    pub owner_node_id: String,
    /// Filesystem: ext4 (default) or xfs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fs_type: String,
    /// Access modes of the volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    /// `block` or `mount`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_type: String,
    /// Where the volume is mounted on the node (CSI staging path).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub staging_target_path: String,
    /// Where the volume is bind-mounted for the pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_path: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Mount options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_options: Vec<String>,
    /// Block device after the iSCSI login.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_path: String,
}

/// `spec.iscsi` of a CVA.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ISCSIInfo {
    /// Target IQN.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iqn: String,
    /// `IP:port` of the target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_portal: String,
    /// iSCSI interface (iface) used for the session.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iscsi_interface: String,
    /// LUN number; `""` means 0.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lun: String,
}

/// Values of the root `status`.
pub mod status {
    /// Nothing done on this node yet.
    pub const UNINITIALIZED: &str = "";
    /// iSCSI login and mount under way.
    pub const MOUNT_UNDER_PROGRESS: &str = "MountUnderProgress";
    pub const MOUNTED: &str = "Mounted";
    pub const UNMOUNTED: &str = "Unmounted";
    /// Used as a raw block device: logged in, no filesystem or mount.
    pub const RAW: &str = "Raw";
    pub const RESIZE_IN_PROGRESS: &str = "ResizeInProgress";
    /// Login or mount failed; kubelet retries NodePublish.
    pub const MOUNT_FAILED: &str = "MountFailed";
    pub const UNMOUNT_UNDER_PROGRESS: &str = "UnmountUnderProgress";
    /// The volume's resources are still being created.
    pub const WAITING_FOR_CVC_BOUND: &str = "WaitingForCVCBound";
    /// Replicas have not yet connected to the target.
    pub const WAITING_FOR_VOLUME_TO_BE_READY: &str = "WaitingForVolumeToBeReady";
    pub const REMOUNT_UNDER_PROGRESS: &str = "RemountUnderProgress";
}
