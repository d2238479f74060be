//! Cluster-scope controllers on kube::runtime: the CSPC controller (CSPC → CSPIs, claims and
//! pool-manager Deployments), claim binding (the part of NDM cStor needs) and the leader-elected
//! operator entry point, the CVC controller (volumes), the backup/restore API and the
//! MigrationTask controller (SPC pools to CSPC), the UpgradeTask controller and the version
//! step of the kinds the operators own.

pub mod agent_identity;
pub mod backup;
pub mod claim_binding;
pub mod cspc;
pub mod cspc_operator;
pub mod cvc;
pub mod cvc_operator;
mod elected;
pub mod error;
pub mod meta;
pub mod migrate;
pub mod podspec;
pub mod snapshot;
pub mod task;
pub mod upgrade;
pub mod version;

pub use error::Error;

#[cfg(test)]
mod tests;
