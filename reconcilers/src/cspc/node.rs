//! Which node a pool spec lands on: the rule of `cstor_policy::node` (shared with the webhook),
//! over the Node objects the cspc-operator reads.

use std::collections::BTreeMap;

use cstor_policy::NodeFact;
pub use cstor_policy::node::NodeError;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

/// The hostname label value of the one node matching `selector`.
pub fn resolve_node(
    selector: &BTreeMap<String, String>,
    nodes: &[Node],
) -> Result<String, NodeError> {
    let facts: Vec<NodeFact> = nodes
        .iter()
        .map(|n| NodeFact {
            name: n.name_any(),
            labels: n.labels().clone(),
        })
        .collect();
    cstor_policy::node::resolve_pool_node(selector, &facts)
}
