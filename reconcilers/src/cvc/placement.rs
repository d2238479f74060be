//! Replica placement (docs/volumes.md "Placement", the Go operators' step 5 made deterministic): which
//! CStorPoolInstances get the missing replicas of a volume, and why every other pool was passed
//! over — the text of the CVC's `PoolPlacement` condition.

use std::collections::BTreeSet;

use cstor_api::cstor_v1::CStorPoolInstance;
use cstor_api::cstor_v1::cspi::phase;
use cstor_api::keys::labels;
use kube::ResourceExt;

use cstor_api::quantity::bytes;

pub use cstor_runtime::reasons::cvc::{
    INVALID_REPLICA_POOL_INFO, NOT_ENOUGH_POOLS, POOL_CLUSTER_DELETING, POOLS_SELECTED,
};

/// A pool as placement sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    /// The node: the CSPI's `kubernetes.io/hostname` label, else `spec.hostName`.
    pub node: String,
    pub phase: String,
    pub read_only: bool,
    /// `status.capacity.free` as written by the pool manager; `None` before the first status.
    pub free: Option<String>,
    /// The CSPI has a deletionTimestamp.
    pub deleting: bool,
}

impl Candidate {
    pub fn from_cspi(cspi: &CStorPoolInstance) -> Self {
        let status = cspi.status.clone().unwrap_or_default();
        Candidate {
            name: cspi.name_any(),
            node: cspi
                .labels()
                .get(labels::HOSTNAME)
                .cloned()
                .unwrap_or_else(|| cspi.spec.host_name.clone()),
            phase: status.phase,
            read_only: status.read_only,
            free: status.capacity.map(|c| c.free.0),
            deleting: cspi.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// A replica the volume already has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExistingReplica {
    pub cvr: String,
    pub pool: String,
    pub node: String,
}

/// Everything placement decides from.
#[derive(Clone, Debug, Default)]
pub struct PlacementInput<'a> {
    /// The PV (CVC) name; new replicas are named `<volume>-<pool>`.
    pub volume: &'a str,
    pub cspc: &'a str,
    /// The CSPC has a deletionTimestamp: nothing is placed on its pools.
    pub cspc_deleting: bool,
    /// `spec.provision.replicaCount`.
    pub replica_count: usize,
    /// Replicas still to place (`replicaCount − existing`).
    pub needed: usize,
    /// The volume capacity, a quantity string (`1Gi`).
    pub capacity: &'a str,
    /// `spec.policy.replicaPoolInfo` pool names, in order (empty: any pool of the CSPC).
    pub pinned: &'a [String],
    /// The CSPIs of the CSPC.
    pub candidates: &'a [Candidate],
    pub existing: &'a [ExistingReplica],
    /// For a clone: the source volume and the pools holding one of its replicas.
    pub source: Option<(&'a str, &'a BTreeSet<String>)>,
    /// `replicaAffinity` with the node the volume is published on: that node's pool goes first.
    pub affinity_node: Option<&'a str>,
}

/// What placement made of one pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Selected,
    /// Passes every check but is not needed (or there are not enough pools in all).
    Usable,
    Rejected(String),
}

/// The outcome: the pools to create replicas on (empty unless all `needed` were found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub selected: Vec<String>,
    /// Every pool considered, in the order considered, with its verdict.
    pub considered: Vec<(String, Verdict)>,
    pub reason: &'static str,
    pub message: String,
}

/// The checks that don't depend on other selections; `None` when the pool passes them.
fn reject(c: &Candidate, input: &PlacementInput<'_>, capacity: Option<u128>) -> Option<String> {
    if input.existing.iter().any(|e| e.pool == c.name) {
        return Some("already holds a replica of this volume".into());
    }
    if c.deleting {
        return Some("being deleted".into());
    }
    if c.phase != phase::ONLINE {
        return Some(if c.phase.is_empty() {
            "offline (no phase yet)".into()
        } else {
            format!("offline (phase {})", c.phase)
        });
    }
    if c.read_only {
        return Some("read-only".into());
    }
    if let Some((src, pools)) = input.source
        && !pools.contains(&c.name)
    {
        return Some(format!("holds no replica of the source volume {src}"));
    }
    let Some(free) = &c.free else {
        return Some("free space unknown (no capacity in its status yet)".into());
    };
    match (bytes(free).ok(), capacity) {
        (Some(f), Some(cap)) if u128::from(f) < cap => {
            Some(format!("too full (free {free} < {})", input.capacity))
        }
        (None, _) => Some(format!("free space {free:?} is not a quantity")),
        _ => None,
    }
}

fn describe(considered: &[(String, Verdict)]) -> String {
    considered
        .iter()
        .map(|(name, v)| match v {
            Verdict::Selected => format!("{name}: selected"),
            Verdict::Usable => format!("{name}: usable"),
            Verdict::Rejected(why) => format!("{name}: {why}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Places `input.needed` replicas: honour `replicaPoolInfo` (its order), else rank by free
/// space (most first) then name; reject pools already holding a replica, not ONLINE,
/// read-only, too full, or on a node that already holds (or gets) a replica of the volume.
pub fn place(input: &PlacementInput<'_>) -> Placement {
    if input.cspc_deleting {
        return Placement {
            selected: Vec::new(),
            considered: Vec::new(),
            reason: POOL_CLUSTER_DELETING,
            message: format!(
                "CStorPoolCluster {} is being deleted: no replica is placed on its pools",
                input.cspc
            ),
        };
    }
    if !input.pinned.is_empty() && input.pinned.len() != input.replica_count {
        return Placement {
            selected: Vec::new(),
            considered: Vec::new(),
            reason: INVALID_REPLICA_POOL_INFO,
            message: format!(
                "spec.policy.replicaPoolInfo names {} pool(s) but spec.provision.replicaCount is {}",
                input.pinned.len(),
                input.replica_count
            ),
        };
    }
    let capacity = bytes(input.capacity).ok().map(u128::from);
    let mut considered: Vec<(String, Verdict)> = Vec::new();
    // Pools that pass the per-pool checks, in preference order.
    let mut usable: Vec<&Candidate> = Vec::new();
    if input.pinned.is_empty() {
        let mut ranked: Vec<&Candidate> = input.candidates.iter().collect();
        let free = |c: &Candidate| c.free.as_deref().and_then(|f| bytes(f).ok()).unwrap_or(0);
        ranked.sort_by(|a, b| free(b).cmp(&free(a)).then_with(|| a.name.cmp(&b.name)));
        for c in ranked {
            match reject(c, input, capacity) {
                Some(why) => considered.push((c.name.clone(), Verdict::Rejected(why))),
                None => {
                    considered.push((c.name.clone(), Verdict::Usable));
                    usable.push(c);
                }
            }
        }
    } else {
        for name in input.pinned {
            match input.candidates.iter().find(|c| &c.name == name) {
                None => considered.push((
                    name.clone(),
                    Verdict::Rejected(format!(
                        "not found among the pools of CStorPoolCluster {}",
                        input.cspc
                    )),
                )),
                Some(c) => match reject(c, input, capacity) {
                    Some(why) => considered.push((c.name.clone(), Verdict::Rejected(why))),
                    None => {
                        considered.push((c.name.clone(), Verdict::Usable));
                        usable.push(c);
                    }
                },
            }
        }
        let mut others: Vec<&Candidate> = input
            .candidates
            .iter()
            .filter(|c| !input.pinned.contains(&c.name))
            .collect();
        others.sort_by(|a, b| a.name.cmp(&b.name));
        for c in others {
            considered.push((
                c.name.clone(),
                Verdict::Rejected("not in replicaPoolInfo".into()),
            ));
        }
    }
    if let Some(node) = input.affinity_node
        && input.pinned.is_empty()
        && let Some(i) = usable.iter().position(|c| c.node == node)
    {
        // replicaAffinity: the published node's pool first (B swaps it to position 0).
        let c = usable.remove(i);
        usable.insert(0, c);
    }
    // Node spreading: one replica of the volume per node.
    let mut taken: Vec<(String, String)> = input
        .existing
        .iter()
        .map(|e| (e.node.clone(), e.cvr.clone()))
        .collect();
    let mut selected = Vec::new();
    let mut verdicts: Vec<(String, Verdict)> = Vec::new();
    for c in usable {
        if let Some((_, cvr)) = taken.iter().find(|(n, _)| !n.is_empty() && *n == c.node) {
            verdicts.push((
                c.name.clone(),
                Verdict::Rejected(format!("same node as replica {cvr} ({})", c.node)),
            ));
            continue;
        }
        taken.push((c.node.clone(), format!("{}-{}", input.volume, c.name)));
        if selected.len() < input.needed {
            selected.push(c.name.clone());
            verdicts.push((c.name.clone(), Verdict::Selected));
        }
    }
    let enough = selected.len() >= input.needed;
    for (name, v) in considered.iter_mut() {
        if let Some((_, nv)) = verdicts.iter().find(|(n, _)| n == name) {
            *v = nv.clone();
        }
        if !enough && *v == Verdict::Selected {
            *v = Verdict::Usable;
        }
    }
    let items = if considered.is_empty() {
        format!(
            "none (CStorPoolCluster {} has no CStorPoolInstance)",
            input.cspc
        )
    } else {
        describe(&considered)
    };
    if enough {
        Placement {
            message: format!(
                "placing {} replica(s) on {}; considered: {items}",
                selected.len(),
                selected.join(", ")
            ),
            selected,
            considered,
            reason: POOLS_SELECTED,
        }
    } else {
        Placement {
            message: format!(
                "need {} pool(s) for the missing replicas, {} usable; considered: {items}",
                input.needed,
                selected.len()
            ),
            selected: Vec::new(),
            considered,
            reason: NOT_ENOUGH_POOLS,
        }
    }
}
