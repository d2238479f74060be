//! Every Event reason and condition reason, named once. Reasons users and tools match on are
//! on the wire: where the Go operators published the same reason, its spelling is kept (marked
//! "Go spelling") even where ours would read better; the rest are ours.

// ----- Event reasons -----

/// Go spelling, on the wire.
pub const ALREADY_PRESENT: &str = "AlreadyPresent";
/// Go spelling, on the wire.
pub const BOUND: &str = "Bound";
pub const CA_BUNDLE_UPDATED: &str = "CaBundleUpdated";
pub const CERTIFICATE_EXPIRING: &str = "CertificateExpiring";
pub const CERTIFICATE_ISSUED: &str = "CertificateIssued";
pub const CLAIM_CREATED: &str = "ClaimCreated";
/// Go spelling, on the wire.
pub const CREATE: &str = "Create";
/// Go spelling, on the wire.
pub const CREATED: &str = "Created";
/// Go spelling, on the wire.
pub const DE_PROVISIONING: &str = "DeProvisioning";
/// A delete waits: what it would destroy is still in use (volume replicas on a pool).
pub const DELETION_BLOCKED: &str = "DeletionBlocked";
pub const DESTROYED: &str = "Destroyed";
/// Go spelling, on the wire.
pub const DEVICE_STATE: &str = "DeviceState";
/// Go spelling, on the wire.
pub const DOWN_SCALE: &str = "DownScale";
/// Go spelling, on the wire.
pub const FAIL_CREATE: &str = "FailCreate";
/// Go spelling, on the wire.
pub const FAIL_DESTROY: &str = "FailDestroy";
/// Go spelling, on the wire.
pub const FAIL_REMOVE_FINALIZER: &str = "FailRemoveFinalizer";
pub const FAIL_RESIZE: &str = "FailResize";
/// Go spelling, on the wire.
pub const FAIL_STATUS_SYNC: &str = "FailStatusSync";
/// Go spelling, on the wire.
pub const FAIL_UPDATE: &str = "FailUpdate";
/// Go spelling, on the wire.
pub const FAIL_VALIDATE: &str = "FailValidate";
/// Go spelling, on the wire.
pub const FAILED_SYNC: &str = "FailedSync";
/// Go spelling, on the wire.
pub const MIGRATION: &str = "Migration";
/// Go spelling, on the wire.
pub const OFFLINE: &str = "Offline";
pub const PDB_CREATED: &str = "PDBCreated";
pub const PDB_DELETED: &str = "PDBDeleted";
/// Go spelling, on the wire.
pub const POLICY_SYNC: &str = "PolicySync";
/// Go spelling, on the wire.
pub const POOL_DEPLOYMENT_CREATE: &str = "PoolDeploymentCreate";
pub const POOL_DEPROVISIONED: &str = "PoolDeprovisioned";
/// Go spelling, on the wire.
pub const POOL_READ_ONLY_THRESHOLD: &str = "PoolReadOnlyThreshold";
pub const POOL_STATE: &str = "PoolState";
pub const POOL_UPDATED: &str = "PoolUpdated";
/// Go spelling, on the wire.
pub const PROVISIONING: &str = "Provisioning";
pub const RELEASED: &str = "Released";
/// A supervised recovery promoted a replica of a volume none of whose replicas was Healthy.
pub const RECOVERED: &str = "Recovered";
pub const REPLICA_CREATED: &str = "ReplicaCreated";
/// A Bound volume's CVR is gone and is made again.
pub const REPLICA_MISSING: &str = "ReplicaMissing";
pub const RESIZED: &str = "Resized";
/// Go spelling, on the wire.
pub const RESIZING: &str = "Resizing";
/// Go spelling, on the wire.
pub const SCALE_DOWN: &str = "ScaleDown";
/// Go spelling, on the wire.
pub const SCALING_VOLUME_REPLICAS: &str = "ScalingVolumeReplicas";
pub const SERVICE_CREATED: &str = "ServiceCreated";
/// Go spelling, on the wire.
/// Ours: a snapshot of a volume was taken or destroyed on its replicas, or failed.
pub const SNAPSHOT_TAKEN: &str = "SnapshotTaken";
pub const SNAPSHOT_DESTROYED: &str = "SnapshotDestroyed";
pub const SNAPSHOT_FAILED: &str = "SnapshotFailed";
pub const SYNCED: &str = "Synced";
pub const TARGET_CREATED: &str = "TargetCreated";
/// Go spelling, on the wire.
pub const UPDATED: &str = "Updated";
/// Go spelling, on the wire: a version upgrade of an object failed.
pub const FAILED_UPGRADE: &str = "FailedUpgrade";
/// Ours: an object's versionDetails reached this version.
pub const UPGRADED: &str = "Upgraded";
/// Ours: an UpgradeTask step started, completed or failed (docs/upgrades.md).
pub const UPGRADE_STEP: &str = "UpgradeStep";
pub const VOLUME_CREATED: &str = "VolumeCreated";
/// Writes refused alike by the replicas (no space, read-only): the volume stays Healthy.
pub const WRITE_REFUSED: &str = "WriteRefused";
/// Go spelling, on the wire.
pub const VOLUME_RESIZE_SUCCESSFUL: &str = "VolumeResizeSuccessful";

// The Go pool-manager's event reasons, spaces and all (on the wire; users grep for them).
/// Go spelling, on the wire.
pub const SKIPPING_RECONCILE: &str = "Skipping reconcile";
/// Go spelling, on the wire.
pub const VALIDATION_FAILED: &str = "Validation failed";
/// Go spelling, on the wire.
pub const POOL_CREATED_SUCCESSFULLY: &str = "Pool created successfully";
/// Go spelling, on the wire.
pub const POOL_IMPORTED: &str = "Pool Imported";
/// Go spelling, on the wire.
pub const POOL_PROPERTIES_FAILED: &str = "Pool FailedToSetPoolProperties";
/// Go spelling, on the wire.
pub const BLOCK_DEVICE_REPLACEMENT: &str = "BlockDevice Replacement";
/// Go spelling, on the wire.
pub const POOL_EXPANSION: &str = "Pool Expansion";

/// Condition types and reasons of the CStorPoolCluster (`status.conditions`).
pub mod cspc {
    pub const POOL_MANAGER_AVAILABLE: &str = "PoolManagerAvailable";
    /// Go spelling, on the wire.
    pub const MIN_AVAILABLE: &str = "MinimumPoolManagersAvailable";
    /// Go spelling, on the wire.
    pub const MIN_UNAVAILABLE: &str = "MinimumPoolManagersUnAvailable";
    pub const POOLS_PROVISIONED: &str = "PoolsProvisioned";
    pub const ALL_PROVISIONED: &str = "AllPoolsProvisioned";
    pub const CLAIMS_PENDING: &str = "ClaimsPending";
    pub const NODE_NOT_FOUND: &str = "NodeNotFound";
    pub const POOL_DEPROVISIONING: &str = "PoolDeprovisioning";
    pub const REPLICAS_ON_POOL: &str = "ReplicasOnPool";
}

/// Condition types and reasons of the CStorVolumeConfig (`status.conditions`).
pub mod cvc {
    /// Condition types (ours next to the Go operators' `Resizing`, `VolumeResizeSuccessful`).
    pub const POOL_PLACEMENT: &str = "PoolPlacement";
    pub const REPLICA_SCALING: &str = "ReplicaScaling";
    pub const PROVISIONING: &str = "Provisioning";
    /// `PoolPlacement`: enough pools were found.
    pub const POOLS_SELECTED: &str = "PoolsSelected";
    /// `PoolPlacement`: fewer usable pools than missing replicas; the CVC stays Pending.
    pub const NOT_ENOUGH_POOLS: &str = "NotEnoughPools";
    /// Ours: the volume's CStorPoolCluster is being deleted, so nothing is placed on it.
    pub const POOL_CLUSTER_DELETING: &str = "PoolClusterDeleting";
    /// `PoolPlacement`: `replicaPoolInfo` does not name `replicaCount` pools.
    pub const INVALID_REPLICA_POOL_INFO: &str = "InvalidReplicaPoolInfo";
    /// `ReplicaScaling` reasons.
    pub const SCALING_UP: &str = "ScalingUp";
    pub const WAITING_FOR_TARGET: &str = "WaitingForTarget";
    /// A scale-down waits: the replicas that stay are not all Healthy yet.
    pub const WAITING_FOR_HEALTHY_REPLICAS: &str = "WaitingForHealthyReplicas";
    pub const REPLICAS_SCALED: &str = "ReplicasScaled";
    pub const MIGRATION_NOT_SUPPORTED: &str = "MigrationNotSupported";
    pub const SCALING_FAILED: &str = "ScalingFailed";
    /// Resize reasons.
    pub const SHRINK_NOT_SUPPORTED: &str = "ShrinkNotSupported";
    pub const RESIZE_IN_PROGRESS: &str = "ResizeInProgress";
    pub const RESIZE_SUCCEEDED: &str = "ResizeSucceeded";
    pub const INVALID_CAPACITY: &str = "InvalidCapacity";
    pub const INVALID_REPLICA_COUNT: &str = "InvalidReplicaCount";
    /// `Provisioning` reasons (the CVC stays Pending).
    pub const POLICY_NOT_FOUND: &str = "PolicyNotFound";
    pub const NO_POOL_CLUSTER: &str = "NoPoolCluster";
    pub const WAITING_FOR_CLUSTER_IP: &str = "WaitingForClusterIP";
}

/// Condition reasons of the CStorPoolInstance (`status.conditions`), all Go spellings on the
/// wire, typos included ("Succeess").
pub mod cspi {
    pub const POOL_LOST: &str = "PoolLost";
    /// A migrated pool to import under our name is on none of the node's disks.
    pub const POOL_NOT_FOUND: &str = "PoolNotFound";
    pub const POOL_CREATION_FAILED: &str = "PoolCreationFailed";
    pub const POOL_CREATED: &str = "PoolCreated";
    pub const POOL_IMPORTED: &str = "PoolImported";
    pub const REPLACEMENT_IN_PROGRESS: &str = "BlockDeviceReplacementInprogress";
    pub const REPLACEMENT_SUCCEEDED: &str = "BlockDeviceReplacementSucceess";
    pub const EXPANSION_IN_PROGRESS: &str = "PoolExpansionInProgress";
    pub const EXPANSION_SUCCEEDED: &str = "PoolExpansionSuccessful";
    pub const DISKS_AVAILABLE: &str = "DisksAreAvailable";
    pub const DISKS_UNAVAILABLE: &str = "DisksAreUnavailable";
    /// Ours (`PoolReadOnly`): used space reached roThresholdLimit.
    pub const THRESHOLD_REACHED: &str = "ReadOnlyThresholdReached";
    /// Ours (`PoolReadOnly`): back under roThresholdLimit.
    pub const BELOW_THRESHOLD: &str = "BelowReadOnlyThreshold";
}

/// The `action` of the Events the agents publish (events.k8s.io: what was being done).
pub mod action {
    pub const CREATE: &str = "Create";
    pub const DESTROY: &str = "Destroy";
    pub const EXPAND: &str = "Expand";
    pub const IMPORT: &str = "Import";
    pub const PROPERTIES: &str = "Properties";
    pub const READ_ONLY: &str = "ReadOnly";
    pub const RECONCILE: &str = "Reconcile";
    pub const REPLACE: &str = "Replace";
    pub const RESIZE: &str = "Resize";
    pub const STATUS: &str = "Status";
    pub const SYNC: &str = "Sync";
    pub const UPDATE: &str = "Update";
    pub const VALIDATE: &str = "Validate";
}
