//! Label, annotation and finalizer keys shared by every component (docs/pools.md).
//! They are on-API compatibility with clusters run by the Go operators: never rename one.

/// Label keys.
pub mod labels {
    /// CSPC name; on CSPI, pool Deployment and pod, BDC, PDB, and the CVC (chosen CSPC).
    pub const CSTOR_POOL_CLUSTER: &str = "openebs.io/cstor-pool-cluster";
    /// CSPI name; on the pool Deployment and pod, and in the PDB selector.
    pub const CSTOR_POOL_INSTANCE: &str = "openebs.io/cstor-pool-instance";
    /// The node's hostname label; on CSPI and BlockDevice.
    pub const HOSTNAME: &str = "kubernetes.io/hostname";
    /// Operator version.
    pub const VERSION: &str = "openebs.io/version";
    /// `cstor`, on CSPI, Service, target Deployment.
    pub const CAS_TYPE: &str = "openebs.io/cas-type";
    /// The value of [`CAS_TYPE`] for cStor.
    pub const CAS_TYPE_CSTOR: &str = "cstor";
    /// CSPI name, on CVR, CStorBackup, CStorRestore.
    pub const CSPI_NAME: &str = "cstorpoolinstance.openebs.io/name";
    /// CSPI UID, on CVR, CStorBackup, CStorRestore.
    pub const CSPI_UID: &str = "cstorpoolinstance.openebs.io/uid";
    /// Volume (PV) name, on CVR, CV, Service, target, backups, restores.
    pub const CSTOR_VOLUME_NAME: &str = "cstorvolume.openebs.io/name";
    /// Volume (PV) name.
    pub const PERSISTENT_VOLUME: &str = "openebs.io/persistent-volume";
    /// PVC name, on CV and the target Deployment.
    pub const PERSISTENT_VOLUME_CLAIM: &str = "openebs.io/persistent-volume-claim";
    /// PDB name, on the CVC.
    pub const POD_DISRUPTION_BUDGET: &str = "openebs.io/pod-disruption-budget";
    /// Hash of `cvc.spec.policy`, on the CVC.
    pub const TEMPLATE_HASH: &str = "cstor.openebs.io/template-hash";
    /// `"true"` on a CVR of a clone.
    pub const CLONED: &str = "openebs.io/cloned";
    /// Source volume name, on a clone's CV and on a CVC built for a local restore.
    pub const SOURCE_VOLUME: &str = "openebs.io/source-volume";
    /// Backup name, on CStorBackup.
    pub const BACKUP: &str = "openebs.io/backup";
    /// Restore name, on CStorRestore.
    pub const RESTORE: &str = "openebs.io/restore";
    /// Old SPC name, on CSP and old BDCs.
    pub const STORAGE_POOL_CLAIM: &str = "openebs.io/storage-pool-claim";
    /// Old CSP name, on the old pool Deployment.
    pub const CSTOR_POOL: &str = "openebs.io/cstor-pool";
    /// Old CSP name / uid, on old CVRs.
    pub const CSP_NAME: &str = "cstorpool.openebs.io/name";
    pub const CSP_UID: &str = "cstorpool.openebs.io/uid";
    /// NDM device type of a BlockDevice.
    pub const NDM_BLOCKDEVICE_TYPE: &str = "ndm.io/blockdevice-type";
    /// BlockDevice tag, matched against the CSPC's allowed tags.
    pub const BLOCK_DEVICE_TAG: &str = "openebs.io/block-device-tag";
    /// `openebs.io/<cspiName>` = `"true"` on PDBs, one per pool covered.
    pub fn pdb_pool(cspi_name: &str) -> String {
        format!("openebs.io/{cspi_name}")
    }
}

/// Annotation keys.
pub mod annotations {
    /// `"true"`: CSPC events are dropped; the pool manager skips a CSPI.
    pub const RECONCILE_DISABLE: &str = "reconcile.openebs.io/disable";
    /// `"true"` on a CSPC: new CSPIs are created with [`RECONCILE_DISABLE`].
    pub const RECONCILE_DISABLE_DEPENDANTS: &str = "reconcile.openebs.io/disable-dependants";
    /// Comma list of allowed values of the BlockDevice label `openebs.io/block-device-tag`.
    pub const ALLOWED_BD_TAGS: &str = "openebs.io/allowed-bd-tags";
    /// CSPI: import an existing zpool under this old name and rename it.
    pub const EXISTING_POOL_NAME: &str = "import.cspi.cstor.openebs.io/existing-pool-name";
    /// BDC of a replacement BlockDevice: the name of the BlockDevice it replaces.
    pub const BD_PREDECESSOR: &str = "openebs.io/bd-predecessor";
    /// CVC keys set by cstor-csi or the restore endpoint.
    pub const VOLUME_ID: &str = "openebs.io/volumeID";
    pub const VOLUME_POLICY: &str = "openebs.io/volume-policy";
    pub const PERSISTENT_VOLUME_CLAIM: &str = "openebs.io/persistent-volume-claim";
    pub const CREATED_THROUGH: &str = "openebs.io/created-through";
    /// CVR: the CSPI's hostname label.
    pub const CSPI_HOSTNAME: &str = "cstorpoolinstance.openebs.io/hostname";
    /// Old CVR: the CSP's hostname.
    pub const CSP_HOSTNAME: &str = "cstorpool.openebs.io/hostname";
    /// Clone source volume / snapshot.
    pub const SOURCE_VOLUME: &str = "openebs.io/source-volume";
    pub const SNAPSHOT: &str = "openebs.io/snapshot";
    /// CVR: create the replica without a target IP (restore in progress).
    pub const IS_RESTORE_VOL: &str = "isRestoreVol";
    /// CVR: set by the velero plugin when a restore completed.
    pub const RESTORE_COMPLETED: &str = "openebs.io/restore-completed";
    /// Old CV: filesystem type.
    pub const FS_TYPE: &str = "openebs.io/fs-type";
    /// SPC: skip the old operator's validations.
    pub const SKIP_VALIDATIONS: &str = "openebs.io/skip-validations";
    /// SPC: the CSPC it was migrated to.
    pub const MIGRATED_TO_CSPC: &str = "openebs.io/cstor-pool-cluster";
    /// On a CSPC made from an SPC: the SPC's name (idempotency of migration).
    pub const MIGRATED_FROM: &str = "openebs.io/migrated-from";
    /// Legacy BlockDevice annotation that blocks claiming.
    pub const UUID_SCHEME: &str = "internal.openebs.io/uuid-scheme";
    /// Ours: what one CSPC/CSPI version can't express, kept for a lossless round trip
    /// (docs/admission.md A).
    pub const CONVERSION_DATA: &str = "cstor.openebs.io/conversion-data";
    /// Ours: on a CStorVolume, the replica `cstor volume recover` promotes (docs/volumes.md).
    pub const RECOVER_FROM: &str = "cstor.openebs.io/recover-from";
    /// Ours: on a CVC, the initiators allowed to log in to its target (comma-separated IQNs,
    /// addresses or subnets; absent: all).
    pub const TARGET_INITIATORS: &str = "cstor.openebs.io/target-initiators";
    /// Ours: on a CVC, the Secret (keys `username`, `password`) whose CHAP credentials
    /// initiators must present.
    pub const TARGET_CHAP_SECRET: &str = "cstor.openebs.io/target-chap-secret";
}

/// Finalizers.
pub mod finalizers {
    /// On CSPC, CSPI and BDC; added and removed by the cspc-operator.
    pub const CSPC: &str = "cstorpoolcluster.openebs.io/finalizer";
    /// On a CSPI until its zpool is destroyed; pool-manager.
    pub const POOL_PROTECTION: &str = "openebs.io/pool-protection";
    /// On a CVC; removed by the cvc-operator.
    pub const CVC: &str = "cvc.openebs.io/finalizer";
    /// On a CVR; removed by the pool-manager.
    pub const CVR: &str = "cstorvolumereplica.openebs.io/finalizer";
    /// On an SPC and its BDCs (legacy).
    pub const SPC: &str = "storagepoolclaim.openebs.io/finalizer";
}

/// Environment variables of the contract between the pod templates the operators write, the
/// `cstor` binary that runs in those pods (its flags read them), and the local runner that
/// plays kubelet for them. The OpenEBS names are the Go operators' and stay as they are.
pub mod env {
    pub const KUBECONFIG: &str = "KUBECONFIG";
    /// The operators' namespace (BlockDevices, pools, volumes).
    pub const OPENEBS_NAMESPACE: &str = "OPENEBS_NAMESPACE";
    pub const POD_NAME: &str = "POD_NAME";
    /// Pool-manager: its pod's namespace.
    pub const NAMESPACE: &str = "NAMESPACE";
    pub const NODE_NAME: &str = "NODE_NAME";
    /// Seconds between the agents' periodic resyncs.
    pub const RESYNC_INTERVAL: &str = "RESYNC_INTERVAL";
    pub const OPENEBS_SERVICEACCOUNT_NAME: &str = "OPENEBS_SERVICEACCOUNT_NAME";
    pub const OPENEBS_IO_BASE_DIR: &str = "OPENEBS_IO_BASE_DIR";
    /// Pool-manager: the UID of its CSPI (the cstor-pool container reads `OPENEBS_IO_CSTOR_ID`).
    pub const OPENEBS_IO_CSPI_ID: &str = "OPENEBS_IO_CSPI_ID";
    pub const OPENEBS_IO_CSTOR_ID: &str = "OPENEBS_IO_CSTOR_ID";
    /// Pool-manager: the UID of the CSPC (the zpool is `cstor-<it>`).
    pub const OPENEBS_IO_POOL_NAME: &str = "OPENEBS_IO_POOL_NAME";
    pub const OPENEBS_IO_CSPI_MGMT_IMAGE: &str = "OPENEBS_IO_CSPI_MGMT_IMAGE";
    pub const OPENEBS_IO_CSTOR_POOL_IMAGE: &str = "OPENEBS_IO_CSTOR_POOL_IMAGE";
    /// Image of the pool pods' `maya-exporter` container (Prometheus metrics of the pool).
    pub const OPENEBS_IO_CSTOR_POOL_EXPORTER_IMAGE: &str = "OPENEBS_IO_CSTOR_POOL_EXPORTER_IMAGE";
    pub const OPENEBS_IO_CSTOR_POOL_SPARSE_DIR: &str = "OPENEBS_IO_CSTOR_POOL_SPARSE_DIR";
    /// Volume-manager: the UID of its CStorVolume.
    pub const OPENEBS_IO_CSTOR_VOLUME_ID: &str = "OPENEBS_IO_CSTOR_VOLUME_ID";
    pub const OPENEBS_IO_CSTOR_VOLUME_MGMT_IMAGE: &str = "OPENEBS_IO_CSTOR_VOLUME_MGMT_IMAGE";
    pub const OPENEBS_IO_CSTOR_TARGET_IMAGE: &str = "OPENEBS_IO_CSTOR_TARGET_IMAGE";
    /// Image of the targets' `maya-volume-exporter` container (Prometheus metrics of the volume).
    pub const OPENEBS_IO_VOLUME_MONITOR_IMAGE: &str = "OPENEBS_IO_VOLUME_MONITOR_IMAGE";
    /// Both operators: imagePullSecrets of the pool and target pods (comma-separated names).
    pub const OPENEBS_IO_IMAGE_PULL_SECRETS: &str = "OPENEBS_IO_IMAGE_PULL_SECRETS";
    /// Set by the local runner only: the zpool cache file of a local node.
    pub const CSTOR_POOL_CACHE_FILE: &str = "CSTOR_POOL_CACHE_FILE";
    /// Set by the local runner only: `zfs-fuse` (the local ZFS) or `uzfs` (cStor's, default).
    pub const CSTOR_ZFS_DIALECT: &str = "CSTOR_ZFS_DIALECT";
    /// The volume-manager's target: `istgt` (cluster, the default) or `tgt` (local stack).
    pub const CSTOR_TARGET: &str = "CSTOR_TARGET";
    /// Every `cstor` process: the version it runs as (default: the build's); the local runner
    /// sets it from the image tag of the pod it plays (docs/upgrades.md).
    pub const CSTOR_VERSION: &str = "CSTOR_VERSION";
    /// cspc-operator: `false` leaves older CSPCs and volumes for `cstor upgrade` (default
    /// `true`: their UpgradeTasks are made automatically).
    pub const CSTOR_AUTO_UPGRADE: &str = "CSTOR_AUTO_UPGRADE";
    /// Set by the local runner only: where the volume-manager mounts its FUSE fan-out.
    pub const CSTOR_FANOUT_DIR: &str = "CSTOR_FANOUT_DIR";
    /// cvc-operator: where the backup REST API listens (`host:port`; empty: not served).
    pub const CSTOR_BACKUP_API_BIND: &str = "CSTOR_BACKUP_API_BIND";
    /// Set by the local runner only: the management port of the machine's tgtd.
    pub const CSTOR_TGT_CONTROL_PORT: &str = "CSTOR_TGT_CONTROL_PORT";
    /// Set by the local runner only: `node=root,…`, each local node's root directory.
    pub const CSTOR_NODE_ROOTS: &str = "CSTOR_NODE_ROOTS";
    /// Set by the local runner only: `node=dir,…`, where replica files live on each node.
    pub const CSTOR_REPLICA_ROOTS: &str = "CSTOR_REPLICA_ROOTS";
    /// The volume target: initiators allowed to log in (comma-separated IQNs or addresses).
    pub const CSTOR_TARGET_INITIATORS: &str = "CSTOR_TARGET_INITIATORS";
    /// The volume target: CHAP user and password (from the volume's Secret).
    pub const CSTOR_TARGET_CHAP_USER: &str = "CSTOR_TARGET_CHAP_USER";
    pub const CSTOR_TARGET_CHAP_PASSWORD: &str = "CSTOR_TARGET_CHAP_PASSWORD";
    /// Set by the local runner only: `node=dir,…`, where each node's disks (sparse files) are;
    /// a BlockDevice path elsewhere than there, `/dev` or the sparse directory is refused.
    pub const CSTOR_DISK_DIRS: &str = "CSTOR_DISK_DIRS";
}

/// Where a node keeps its pools' storage directories (`<base dir>/cstor-pool`, one directory
/// per CSPC holding the pool cache and, on zfs-fuse, `replicas/<volume>/lun`).
pub const DEFAULT_REPLICA_ROOT: &str = "/var/openebs/cstor-pool";

/// FNV-1a, 64 bit: the stable hash derived names are made with (CSPI suffixes, BlockDevice
/// names that could not keep their disk's name as it is).
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// zpool name of a CSPC's pools: `cstor-<CSPC UID>`.
pub fn zpool_name(cspc_uid: &str) -> String {
    format!("cstor-{cspc_uid}")
}

/// BlockDeviceClaim name used by cStor for a BlockDevice: `bdc-cstor-<BD UID>`.
pub fn bdc_name(bd_uid: &str) -> String {
    format!("bdc-cstor-{bd_uid}")
}
