//! Cluster facts a rule may read, as a snapshot gathered by the webhooks crate before the rule
//! runs. A missing entry means the object does not exist.

use std::collections::BTreeMap;

use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};

/// A Node as the rules see it: name and labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFact {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// What CSPC rules read: Nodes, and the BlockDevices and BlockDeviceClaims of the operator's
/// namespace (the anchor reads them there, not in the CSPC's namespace).
#[derive(Clone, Debug, Default)]
pub struct CspcFacts {
    pub nodes: Vec<NodeFact>,
    /// By name.
    pub block_devices: BTreeMap<String, BlockDevice>,
    /// By name.
    pub block_device_claims: BTreeMap<String, BlockDeviceClaim>,
}

impl CspcFacts {
    /// Nodes whose labels contain every pair of `selector`.
    pub fn nodes_matching<'a>(&'a self, selector: &BTreeMap<String, String>) -> Vec<&'a NodeFact> {
        self.nodes
            .iter()
            .filter(|n| selector.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
            .collect()
    }
}
