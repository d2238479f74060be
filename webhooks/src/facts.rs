//! Cluster facts for the rules, read live from the API with a short timeout (always current;
//! a cache comes only if a benchmark asks for it).

use std::future::Future;
use std::time::Duration;

use cstor_api::cstor_v1::{
    CStorPoolCluster, CStorPoolInstance, CStorVolume, CStorVolumeConfig, CStorVolumeReplica,
};
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};
use cstor_policy::{CspcFacts, NodeFact};
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, Client};

/// Why facts could not be read; the request is then denied with this text (code 500).
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("reading {what}: {source}")]
    Api { what: String, source: kube::Error },
    #[error("reading {what}: no answer within {seconds}s")]
    Timeout { what: String, seconds: u64 },
}

/// Where rules get cluster state from.
pub trait Facts: Send + Sync {
    /// Nodes, BlockDevices and BDCs of `bd_namespace`, CSPIs of `cspc_namespace` and every CVR
    /// on a pool.
    fn cspc_facts(
        &self,
        cspc_namespace: &str,
        bd_namespace: &str,
    ) -> impl Future<Output = Result<CspcFacts, FactsError>> + Send;
    /// CStorVolumes and CVCs (all namespaces) labelled `openebs.io/source-volume=<volume>`.
    fn clone_counts(
        &self,
        volume: &str,
    ) -> impl Future<Output = Result<(usize, usize), FactsError>> + Send;
    /// Whether the CSPC or CVC `namespace/name` is being deleted (or is gone).
    fn owner_deleting(
        &self,
        owner_kind: OwnerKind,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<bool, FactsError>> + Send;
    /// How many CSPCs and CVCs live in `namespace`.
    fn namespace_holdings(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<(usize, usize), FactsError>> + Send;
}

/// Owners of operator-owned objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    Cspc,
    Cvc,
}

/// Live reads through a kube client.
#[derive(Clone)]
pub struct KubeFacts {
    client: Client,
    timeout: Duration,
}

impl KubeFacts {
    /// `timeout` bounds each read; keep it well under the webhook timeout (10 s).
    pub fn new(client: Client, timeout: Duration) -> Self {
        KubeFacts { client, timeout }
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, FactsError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(FactsError::Api {
                what: what.into(),
                source,
            }),
            Err(_) => Err(FactsError::Timeout {
                what: what.into(),
                seconds: self.timeout.as_secs(),
            }),
        }
    }
}

impl Facts for KubeFacts {
    async fn cspc_facts(
        &self,
        cspc_namespace: &str,
        bd_namespace: &str,
    ) -> Result<CspcFacts, FactsError> {
        let lp = ListParams::default();
        let nodes: Api<Node> = Api::all(self.client.clone());
        let bds: Api<BlockDevice> = Api::namespaced(self.client.clone(), bd_namespace);
        let bdcs: Api<BlockDeviceClaim> = Api::namespaced(self.client.clone(), bd_namespace);
        let cspis: Api<CStorPoolInstance> = Api::namespaced(self.client.clone(), cspc_namespace);
        let cvrs: Api<CStorVolumeReplica> = Api::all(self.client.clone());
        let on_pool = ListParams::default().labels(labels::CSPI_NAME);
        let (nodes, bds, bdcs, cspis, cvrs) = tokio::try_join!(
            self.bounded("Nodes", nodes.list(&lp)),
            self.bounded("BlockDevices", bds.list(&lp)),
            self.bounded("BlockDeviceClaims", bdcs.list(&lp)),
            self.bounded("CStorPoolInstances", cspis.list(&lp)),
            self.bounded("CStorVolumeReplicas", cvrs.list(&on_pool)),
        )?;
        let named = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.name.clone().unwrap_or_default()
        };
        Ok(CspcFacts {
            nodes: nodes
                .items
                .into_iter()
                .map(|n| NodeFact {
                    name: named(&n.metadata),
                    labels: n.metadata.labels.unwrap_or_default(),
                })
                .collect(),
            block_devices: bds
                .items
                .into_iter()
                .map(|b| (named(&b.metadata), b))
                .collect(),
            block_device_claims: bdcs
                .items
                .into_iter()
                .map(|c| (named(&c.metadata), c))
                .collect(),
            cspis: cspis.items,
            cvrs: cvrs.items,
        })
    }

    async fn clone_counts(&self, volume: &str) -> Result<(usize, usize), FactsError> {
        let lp = ListParams::default().labels(&format!("{}={volume}", labels::SOURCE_VOLUME));
        let cvs: Api<CStorVolume> = Api::all(self.client.clone());
        let cvcs: Api<CStorVolumeConfig> = Api::all(self.client.clone());
        let (cvs, cvcs) = tokio::try_join!(
            self.bounded("CStorVolumes", cvs.list(&lp)),
            self.bounded("CStorVolumeConfigs", cvcs.list(&lp)),
        )?;
        Ok((cvs.items.len(), cvcs.items.len()))
    }

    async fn owner_deleting(
        &self,
        owner_kind: OwnerKind,
        namespace: &str,
        name: &str,
    ) -> Result<bool, FactsError> {
        let meta = match owner_kind {
            OwnerKind::Cspc => {
                let api: Api<CStorPoolCluster> = Api::namespaced(self.client.clone(), namespace);
                self.bounded("CStorPoolCluster", api.get_opt(name))
                    .await?
                    .map(|o| o.metadata)
            }
            OwnerKind::Cvc => {
                let api: Api<CStorVolumeConfig> = Api::namespaced(self.client.clone(), namespace);
                self.bounded("CStorVolumeConfig", api.get_opt(name))
                    .await?
                    .map(|o| o.metadata)
            }
        };
        Ok(meta.is_none_or(|m| m.deletion_timestamp.is_some()))
    }

    async fn namespace_holdings(&self, namespace: &str) -> Result<(usize, usize), FactsError> {
        let lp = ListParams::default();
        let cspcs: Api<CStorPoolCluster> = Api::namespaced(self.client.clone(), namespace);
        let cvcs: Api<CStorVolumeConfig> = Api::namespaced(self.client.clone(), namespace);
        let (cspcs, cvcs) = tokio::try_join!(
            self.bounded("CStorPoolClusters", cspcs.list_metadata(&lp)),
            self.bounded("CStorVolumeConfigs", cvcs.list_metadata(&lp)),
        )?;
        Ok((cspcs.items.len(), cvcs.items.len()))
    }
}

/// Facts held in memory: for the benchmark's decision path, the fuzz target and tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryFacts {
    pub cspc: CspcFacts,
    /// (CStorVolumes, CVCs) cloned from any volume.
    pub clones: (usize, usize),
    pub owner_deleting: bool,
    /// (CSPCs, CVCs) in any namespace.
    pub holdings: (usize, usize),
}

impl Facts for MemoryFacts {
    async fn cspc_facts(&self, _: &str, _: &str) -> Result<CspcFacts, FactsError> {
        Ok(self.cspc.clone())
    }
    async fn clone_counts(&self, _: &str) -> Result<(usize, usize), FactsError> {
        Ok(self.clones)
    }
    async fn owner_deleting(&self, _: OwnerKind, _: &str, _: &str) -> Result<bool, FactsError> {
        Ok(self.owner_deleting)
    }
    async fn namespace_holdings(&self, _: &str) -> Result<(usize, usize), FactsError> {
        Ok(self.holdings)
    }
}
