//! Cluster facts a rule may read, as a snapshot gathered by the webhooks crate before the rule
//! runs. A missing entry means the object does not exist.

use std::collections::BTreeMap;

use cstor_api::cstor_v1::{CStorPoolInstance, CStorVolumeReplica};
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};

/// A Node as the rules see it: name and labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFact {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// What CSPC rules read: Nodes, and the BlockDevices and BlockDeviceClaims of the operator's
/// namespace (the Go operator reads them there, not in the CSPC's namespace).
#[derive(Clone, Debug, Default)]
pub struct CspcFacts {
    pub nodes: Vec<NodeFact>,
    /// By name.
    pub block_devices: BTreeMap<String, BlockDevice>,
    /// By name.
    pub block_device_claims: BTreeMap<String, BlockDeviceClaim>,
    /// CSPIs of the CSPC's namespace (update: pools being removed).
    pub cspis: Vec<CStorPoolInstance>,
    /// CVRs (update and delete: replicas on a pool).
    pub cvrs: Vec<CStorVolumeReplica>,
}

impl CspcFacts {
    /// The BDCs that claim `bd` (by `spec.blockDeviceName`).
    pub fn claims_of(&self, bd: &str) -> Vec<&BlockDeviceClaim> {
        self.block_device_claims
            .values()
            .filter(|c| c.spec.block_device_name == bd)
            .collect()
    }

    /// Nodes whose labels contain every pair of `selector`.
    pub fn nodes_matching<'a>(&'a self, selector: &BTreeMap<String, String>) -> Vec<&'a NodeFact> {
        self.nodes
            .iter()
            .filter(|n| selector.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
            .collect()
    }
}
