//! Which node a pool lands on: the one Node matching its nodeSelector, named by that Node's
//! `kubernetes.io/hostname` label. One rule for the webhook (which denies a pool it can't place)
//! and the cspc-operator (which reports it in the CSPC's condition).

use std::collections::BTreeMap;

use cstor_api::keys::labels;

use crate::facts::NodeFact;

/// Why a pool's node could not be resolved. The Display text is the cspc-operator's condition
/// message; the webhook words its denials the Go operators' way (policy::cspc).
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

/// Whether a node with `node_labels` carries every label of `selector`.
pub fn matches(
    selector: &BTreeMap<String, String>,
    node_labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| node_labels.get(k) == Some(v))
}

/// The hostname label value of the one node matching `selector`. A node without the label (or
/// with an empty one) can't hold a pool: its CSPI would name no host.
pub fn resolve_pool_node<'a>(
    selector: &BTreeMap<String, String>,
    nodes: impl IntoIterator<Item = &'a NodeFact>,
) -> Result<String, NodeError> {
    if selector.is_empty() {
        return Err(NodeError::EmptySelector);
    }
    let sel = selector_string(selector);
    let mut matching: Vec<&NodeFact> = nodes
        .into_iter()
        .filter(|n| matches(selector, &n.labels))
        .collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    match matching.as_slice() {
        [] => Err(NodeError::NoMatch { selector: sel }),
        [node] => node
            .labels
            .get(labels::HOSTNAME)
            .filter(|h| !h.is_empty())
            .cloned()
            .ok_or_else(|| NodeError::NoHostname {
                selector: sel,
                node: node.name.clone(),
            }),
        many => Err(NodeError::Multiple {
            selector: sel,
            nodes: many.iter().map(|n| n.name.clone()).collect(),
        }),
    }
}
