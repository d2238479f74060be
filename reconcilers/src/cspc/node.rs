//! Which node a pool spec lands on: the one Node matching its nodeSelector, named by that
//! Node's `kubernetes.io/hostname` label (B §1.3 SelectNode, without the anchor's panic).

use std::collections::BTreeMap;

use cstor_api::keys::labels;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

/// Why a pool's node could not be resolved. The Display text goes into the CSPC condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("pool nodeSelector is empty")]
    EmptySelector,
    #[error("no node matches nodeSelector {selector}")]
    NoMatch { selector: String },
    #[error("nodeSelector {selector} matches {} nodes ({}); it must match exactly one", .nodes.len(), .nodes.join(", "))]
    Multiple {
        selector: String,
        nodes: Vec<String>,
    },
    #[error("node {node} (nodeSelector {selector}) has no kubernetes.io/hostname label")]
    NoHostname { selector: String, node: String },
}

/// `k1=v1,k2=v2` in key order, as a label selector string.
pub fn selector_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `node` carries every label of `selector`.
pub fn matches(selector: &BTreeMap<String, String>, node: &Node) -> bool {
    let have = node.labels();
    selector.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// The hostname label value of the one node matching `selector`.
pub fn resolve_node(
    selector: &BTreeMap<String, String>,
    nodes: &[Node],
) -> Result<String, NodeError> {
    if selector.is_empty() {
        return Err(NodeError::EmptySelector);
    }
    let sel = selector_string(selector);
    let mut matching: Vec<&Node> = nodes.iter().filter(|n| matches(selector, n)).collect();
    matching.sort_by_key(|n| n.name_any());
    match matching.as_slice() {
        [] => Err(NodeError::NoMatch { selector: sel }),
        [node] => node
            .labels()
            .get(labels::HOSTNAME)
            .filter(|h| !h.is_empty())
            .cloned()
            .ok_or_else(|| NodeError::NoHostname {
                selector: sel,
                node: node.name_any(),
            }),
        many => Err(NodeError::Multiple {
            selector: sel,
            nodes: many.iter().map(|n| n.name_any()).collect(),
        }),
    }
}
