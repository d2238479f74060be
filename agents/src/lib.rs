//! Node agents: pool-manager (CSPI and CVR through the ZFS CLI), volume-manager (iSCSI target)
//! and disk discovery. Filled by the pools and volumes issues.
