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

/// The node (hostname) of every pool, `None` where it can't be resolved or is already taken
/// by an earlier pool, with the reason of each such pool (the `PoolsProvisioned` items).
pub fn pool_hosts(
    pools: &[cstor_api::cstor_v1::PoolSpec],
    nodes: &[k8s_openapi::api::core::v1::Node],
) -> (Vec<Option<String>>, Vec<String>) {
    let mut hostnames: Vec<Option<String>> = Vec::with_capacity(pools.len());
    let mut problems = Vec::new();
    for (i, pool) in pools.iter().enumerate() {
        let host = match resolve_node(&pool.node_selector, nodes) {
            Ok(h) => match hostnames.iter().position(|o| o.as_ref() == Some(&h)) {
                Some(j) => {
                    problems.push(format!(
                        "pool {}: node {h} is already used by pool {}",
                        i + 1,
                        j + 1
                    ));
                    None
                }
                None => Some(h),
            },
            Err(e) => {
                problems.push(format!("pool {}: {e}", i + 1));
                None
            }
        };
        hostnames.push(host);
    }
    (hostnames, problems)
}
