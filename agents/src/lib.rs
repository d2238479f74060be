//! Node agents: pool-manager (CSPI and CVR through the ZFS CLI), volume-manager (iSCSI target)
//! and disk discovery.

pub mod discovery;
pub mod discovery_agent;
pub mod pool_manager;
pub mod runner;
pub mod version;
pub mod volume_manager;

#[cfg(test)]
mod tests;
