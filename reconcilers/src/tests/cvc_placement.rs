//! Table tests of replica placement (docs/volumes.md "Placement"): ranking, replicaPoolInfo and
//! its order, every rejection with its exact text, node spreading, affinity, clones, and the
//! `PoolPlacement` reason and message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use super::cvc_common::*;
use crate::cvc::placement::{
    Candidate, ExistingReplica, INVALID_REPLICA_POOL_INFO, NOT_ENOUGH_POOLS, POOL_CLUSTER_DELETING,
    POOLS_SELECTED, PlacementInput, Verdict, place,
};
use pretty_assertions::assert_eq;

fn input<'a>(
    candidates: &'a [Candidate],
    needed: usize,
    pinned: &'a [String],
    existing: &'a [ExistingReplica],
) -> PlacementInput<'a> {
    PlacementInput {
        volume: "pvc-1",
        cspc: "cspc-a",
        cspc_deleting: false,
        replica_count: 3,
        needed,
        capacity: "1Gi",
        pinned,
        candidates,
        existing,
        source: None,
        affinity_node: None,
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn ranks_by_free_space_then_name() {
    let pools = vec![
        online("cspc-a-dddd", "n4", "2Gi"),
        online("cspc-a-cccc", "n3", "10Gi"),
        online("cspc-a-bbbb", "n2", "10Gi"),
        online("cspc-a-aaaa", "n1", "5Gi"),
    ];
    let p = place(&input(&pools, 3, &[], &[]));
    assert_eq!(p.reason, POOLS_SELECTED);
    assert_eq!(
        p.selected,
        names(&["cspc-a-bbbb", "cspc-a-cccc", "cspc-a-aaaa"])
    );
    assert_eq!(
        p.message,
        "placing 3 replica(s) on cspc-a-bbbb, cspc-a-cccc, cspc-a-aaaa; considered: \
         cspc-a-bbbb: selected; cspc-a-cccc: selected; cspc-a-aaaa: selected; cspc-a-dddd: usable"
    );
    // Deterministic: the same input in another order gives the same answer.
    let mut reversed = pools.clone();
    reversed.reverse();
    assert_eq!(place(&input(&reversed, 3, &[], &[])), p);
}

#[test]
fn every_rejection_has_its_reason() {
    let pools = vec![
        cand("p-degraded", "n1", "DEGRADED", false, Some("10Gi")),
        cand("p-new", "n2", "", false, None),
        cand("p-ro", "n3", "ONLINE", true, Some("10Gi")),
        online("p-full", "n4", "100Mi"),
        cand("p-unknown", "n5", "ONLINE", false, None),
        online("p-has", "n6", "10Gi"),
        online("p-samenode", "n6", "9Gi"),
        online("p-ok", "n7", "8Gi"),
    ];
    let existing = vec![ExistingReplica {
        cvr: "pvc-1-p-has".into(),
        pool: "p-has".into(),
        node: "n6".into(),
    }];
    let p = place(&input(&pools, 2, &[], &existing));
    assert_eq!(p.reason, NOT_ENOUGH_POOLS);
    assert!(p.selected.is_empty());
    let expected: Vec<(String, Verdict)> = vec![
        (
            "p-degraded",
            Verdict::Rejected("offline (phase DEGRADED)".into()),
        ),
        (
            "p-has",
            Verdict::Rejected("already holds a replica of this volume".into()),
        ),
        ("p-ro", Verdict::Rejected("read-only".into())),
        (
            "p-samenode",
            Verdict::Rejected("same node as replica pvc-1-p-has (n6)".into()),
        ),
        ("p-ok", Verdict::Usable),
        (
            "p-full",
            Verdict::Rejected("too full (free 100Mi < 1Gi)".into()),
        ),
        ("p-new", Verdict::Rejected("offline (no phase yet)".into())),
        (
            "p-unknown",
            Verdict::Rejected("free space unknown (no capacity in its status yet)".into()),
        ),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    assert_eq!(p.considered, expected);
    assert_eq!(
        p.message,
        "need 2 pool(s) for the missing replicas, 1 usable; considered: \
         p-degraded: offline (phase DEGRADED); p-has: already holds a replica of this volume; \
         p-ro: read-only; p-samenode: same node as replica pvc-1-p-has (n6); p-ok: usable; \
         p-full: too full (free 100Mi < 1Gi); p-new: offline (no phase yet); \
         p-unknown: free space unknown (no capacity in its status yet)"
    );
}

#[test]
fn one_replica_per_node_within_a_placement() {
    let pools = vec![
        online("p1", "n1", "10Gi"),
        online("p2", "n1", "9Gi"),
        online("p3", "n2", "8Gi"),
    ];
    let p = place(&input(&pools, 2, &[], &[]));
    assert_eq!(p.selected, names(&["p1", "p3"]));
    assert_eq!(
        p.considered[1],
        (
            "p2".to_string(),
            Verdict::Rejected("same node as replica pvc-1-p1 (n1)".into())
        )
    );
}

#[test]
fn replica_pool_info_is_honoured_in_its_order() {
    let pools = vec![
        online("cspc-a-aaaa", "n1", "10Gi"),
        online("cspc-a-bbbb", "n2", "1Gi"),
        online("cspc-a-cccc", "n3", "5Gi"),
        online("cspc-a-dddd", "n4", "50Gi"),
    ];
    let pin = names(&["cspc-a-cccc", "cspc-a-bbbb", "cspc-a-aaaa"]);
    let p = place(&input(&pools, 3, &pin, &[]));
    assert_eq!(p.reason, POOLS_SELECTED);
    // Policy order, not free-space order; exactly 1Gi free is enough for 1Gi.
    assert_eq!(p.selected, pin);
    assert_eq!(
        p.message,
        "placing 3 replica(s) on cspc-a-cccc, cspc-a-bbbb, cspc-a-aaaa; considered: \
         cspc-a-cccc: selected; cspc-a-bbbb: selected; cspc-a-aaaa: selected; \
         cspc-a-dddd: not in replicaPoolInfo"
    );
}

#[test]
fn replica_pool_info_naming_a_missing_or_bad_pool() {
    let pools = vec![
        online("cspc-a-aaaa", "n1", "10Gi"),
        cand("cspc-a-bbbb", "n2", "OFFLINE", false, Some("10Gi")),
    ];
    let pin = names(&["cspc-a-aaaa", "cspc-a-bbbb", "cspc-a-zzzz"]);
    let p = place(&input(&pools, 3, &pin, &[]));
    assert_eq!(p.reason, NOT_ENOUGH_POOLS);
    assert_eq!(
        p.message,
        "need 3 pool(s) for the missing replicas, 1 usable; considered: \
         cspc-a-aaaa: usable; cspc-a-bbbb: offline (phase OFFLINE); \
         cspc-a-zzzz: not found among the pools of CStorPoolCluster cspc-a"
    );
}

#[test]
fn replica_pool_info_of_the_wrong_length() {
    let pools = vec![online("p1", "n1", "10Gi")];
    let pin = names(&["p1"]);
    let p = place(&input(&pools, 3, &pin, &[]));
    assert_eq!(p.reason, INVALID_REPLICA_POOL_INFO);
    assert_eq!(
        p.message,
        "spec.policy.replicaPoolInfo names 1 pool(s) but spec.provision.replicaCount is 3"
    );
    assert!(p.selected.is_empty());
}

#[test]
fn not_enough_pools_and_no_pools() {
    let pools = vec![online("p1", "n1", "10Gi"), online("p2", "n2", "10Gi")];
    let p = place(&input(&pools, 3, &[], &[]));
    assert_eq!(p.reason, NOT_ENOUGH_POOLS);
    assert!(p.selected.is_empty(), "no replica is placed unless all fit");
    assert_eq!(
        p.message,
        "need 3 pool(s) for the missing replicas, 2 usable; considered: p1: usable; p2: usable"
    );
    let none = place(&input(&[], 1, &[], &[]));
    assert_eq!(none.reason, NOT_ENOUGH_POOLS);
    assert_eq!(
        none.message,
        "need 1 pool(s) for the missing replicas, 0 usable; considered: \
         none (CStorPoolCluster cspc-a has no CStorPoolInstance)"
    );
}

#[test]
fn only_the_missing_replicas_are_placed() {
    let pools = vec![
        online("p1", "n1", "10Gi"),
        online("p2", "n2", "9Gi"),
        online("p3", "n3", "8Gi"),
    ];
    let existing = vec![ExistingReplica {
        cvr: "pvc-1-p1".into(),
        pool: "p1".into(),
        node: "n1".into(),
    }];
    let p = place(&input(&pools, 2, &[], &existing));
    assert_eq!(p.selected, names(&["p2", "p3"]));
}

#[test]
fn affinity_puts_the_published_node_first() {
    let pools = vec![online("p1", "n1", "10Gi"), online("p2", "n2", "1Gi")];
    let mut i = input(&pools, 1, &[], &[]);
    i.affinity_node = Some("n2");
    assert_eq!(place(&i).selected, names(&["p2"]));
    i.affinity_node = None;
    assert_eq!(place(&i).selected, names(&["p1"]));
}

#[test]
fn clones_go_to_pools_of_the_source() {
    let pools = vec![online("p1", "n1", "10Gi"), online("p2", "n2", "1Gi")];
    let src: BTreeSet<String> = BTreeSet::from(["p2".to_string()]);
    let mut i = input(&pools, 1, &[], &[]);
    i.source = Some(("pvc-src", &src));
    let p = place(&i);
    assert_eq!(p.selected, names(&["p2"]));
    assert_eq!(
        p.considered[0],
        (
            "p1".to_string(),
            Verdict::Rejected("holds no replica of the source volume pvc-src".into())
        )
    );
}

#[test]
fn candidate_from_cspi_prefers_the_hostname_label() {
    let c = Candidate::from_cspi(&cspi("p1", "cspc-a", "host-1", "ONLINE", "3Gi"));
    assert_eq!(c, online("p1", "host-1", "3Gi"));
    let mut bare = cspi("p2", "cspc-a", "host-2", "ONLINE", "3Gi");
    bare.metadata.labels = None;
    bare.status = None;
    let c = Candidate::from_cspi(&bare);
    assert_eq!(c, cand("p2", "host-2-spec", "", false, None));
}

/// Nothing is placed on a pool being deleted, nor on any pool of a CSPC being deleted (read
/// live by the operator right before placing).
#[test]
fn pools_and_pool_clusters_being_deleted_get_no_replica() {
    let mut going = online("cspc-a-aaaa", "n1", "10Gi");
    going.deleting = true;
    let pools = vec![
        going,
        online("cspc-a-bbbb", "n2", "5Gi"),
        online("cspc-a-cccc", "n3", "5Gi"),
    ];
    let p = place(&input(&pools, 3, &[], &[]));
    assert_eq!(p.reason, NOT_ENOUGH_POOLS);
    assert!(
        p.message.contains("cspc-a-aaaa: being deleted"),
        "{}",
        p.message
    );
    let mut whole = input(&pools[1..], 1, &[], &[]);
    whole.cspc_deleting = true;
    let p = place(&whole);
    assert_eq!(
        (p.reason, p.message.as_str(), p.selected.len()),
        (
            POOL_CLUSTER_DELETING,
            "CStorPoolCluster cspc-a is being deleted: no replica is placed on its pools",
            0
        )
    );
}
