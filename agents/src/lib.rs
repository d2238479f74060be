//! Node agents: pool-manager (CSPI and CVR through the ZFS CLI), volume-manager (iSCSI target)
//! and disk discovery. So far: the command runner and the zpool output parsers.

pub mod discovery;
pub mod pool_commands;
pub mod runner;
pub mod zpool;
