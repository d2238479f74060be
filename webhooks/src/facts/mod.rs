//! Cluster facts for the rules: the [`Facts`] trait and [`MemoryFacts`], a fixed snapshot; with
//! the `cluster` feature (the default) also [`KubeFacts`], live reads with a short timeout, and
//! [`CachedFacts`], CSPC facts from watch caches (the benchmark asked for them:
//! docs/decisions/008). The fuzz target builds without `cluster`, so without the kube client.

#[cfg(feature = "cluster")]
mod live;

use std::future::Future;
use std::sync::Arc;

use cstor_api::openebs_v1alpha1::MigrationTask;
use cstor_policy::CspcFacts;

#[cfg(feature = "cluster")]
pub use live::{CachedFacts, KubeFacts};

/// Why facts could not be read; the request is then denied with this text (code 500).
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[cfg(feature = "cluster")]
    #[error("reading {what}: {source}")]
    Api { what: String, source: kube::Error },
    #[error("reading {what}: no answer within {seconds}s")]
    Timeout { what: String, seconds: u64 },
}

/// Where rules get cluster state from.
pub trait Facts: Send + Sync {
    /// Nodes, BlockDevices and BDCs of `bd_namespace`, CSPIs of `cspc_namespace` and every CVR
    /// on a pool. `named_bds` are the BlockDevices the request refers to: a cache that does not
    /// know one of them must not answer "not found" without asking the apiserver.
    fn cspc_facts(
        &self,
        cspc_namespace: &str,
        bd_namespace: &str,
        named_bds: &[&str],
    ) -> impl Future<Output = Result<Arc<CspcFacts>, FactsError>> + Send;
    /// CStorVolumes and CVCs (all namespaces) labelled `openebs.io/source-volume=<volume>`.
    fn clone_counts(
        &self,
        volume: &str,
    ) -> impl Future<Output = Result<(usize, usize), FactsError>> + Send;
    /// Whether the owner `namespace/name` with `uid` is being deleted or is gone (another
    /// object of that name is not it).
    fn owner_deleting(
        &self,
        owner_kind: OwnerKind,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> impl Future<Output = Result<bool, FactsError>> + Send;
    /// How many CSPCs and CVCs live in `namespace`.
    fn namespace_holdings(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<(usize, usize), FactsError>> + Send;
    /// The MigrationTasks of `namespace`.
    fn migration_tasks(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<Vec<MigrationTask>, FactsError>> + Send;
}

/// Owners of operator-owned objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    Cspc,
    Cvc,
    Cv,
}

impl OwnerKind {
    /// The owner kind an ownerReference's `kind` names, if it is one of ours.
    pub fn of(kind: &str) -> Option<OwnerKind> {
        match kind {
            "CStorPoolCluster" => Some(OwnerKind::Cspc),
            "CStorVolumeConfig" => Some(OwnerKind::Cvc),
            "CStorVolume" => Some(OwnerKind::Cv),
            _ => None,
        }
    }
}

/// Facts held in memory: for the benchmark's decision path, the fuzz target and tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryFacts {
    pub cspc: Arc<CspcFacts>,
    /// (CStorVolumes, CVCs) cloned from any volume.
    pub clones: (usize, usize),
    pub owner_deleting: bool,
    /// (CSPCs, CVCs) in any namespace.
    pub holdings: (usize, usize),
    /// MigrationTasks of any namespace.
    pub migration_tasks: Vec<MigrationTask>,
}

impl Facts for MemoryFacts {
    async fn cspc_facts(&self, _: &str, _: &str, _: &[&str]) -> Result<Arc<CspcFacts>, FactsError> {
        Ok(self.cspc.clone())
    }
    async fn clone_counts(&self, _: &str) -> Result<(usize, usize), FactsError> {
        Ok(self.clones)
    }
    async fn owner_deleting(
        &self,
        _: OwnerKind,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<bool, FactsError> {
        Ok(self.owner_deleting)
    }
    async fn namespace_holdings(&self, _: &str) -> Result<(usize, usize), FactsError> {
        Ok(self.holdings)
    }
    async fn migration_tasks(&self, _: &str) -> Result<Vec<MigrationTask>, FactsError> {
        Ok(self.migration_tasks.clone())
    }
}
