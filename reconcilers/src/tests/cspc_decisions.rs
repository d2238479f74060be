//! Table tests of the CSPC controller's pure decisions: node resolution, naming, pairing,
#![allow(clippy::unwrap_used)]
//! orphans, claims, desired CSPI specs, status and the pool-manager Deployment.

use std::collections::BTreeMap;

use super::support::*;
use crate::cspc::CspcConfig;
use crate::cspc::claim::{ClaimError, ClaimStatus, bdc_for_bd, claim_status};
use crate::cspc::deployment::pool_manager_deployment;
use crate::cspc::naming::{cspi_name, fnv1a64, free_cspi_name};
use crate::cspc::node::{NodeError, pool_hosts, resolve_node};
use crate::cspc::reconcile::cspi_apply;
use crate::cspc::status::{Instance, Problems, StatusInput, cspc_status, pending_item};
use crate::cspc::topology::{
    ClaimRequest, PendingClaim, desired_cspi_spec, orphans_to_delete, pair,
};
use cstor_api::common::{ConditionStatus, PoolCondition};
use cstor_api::cstor_v1::{CStorPoolClusterStatus, CStorPoolInstanceSpec, PoolConfig};
use cstor_api::keys::{annotations, finalizers, labels};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pretty_assertions::assert_eq;

#[test]
fn node_resolution() {
    let n1 = node("n1", &[("kubernetes.io/hostname", "host-1"), ("zone", "a")]);
    let n2 = node("n2", &[("kubernetes.io/hostname", "host-2"), ("zone", "a")]);
    let bare = node("n3", &[("disk", "yes")]);
    let nodes = vec![n1, n2, bare];
    let sel = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        resolve_node(&sel(&[("kubernetes.io/hostname", "host-1")]), &nodes),
        Ok("host-1".into())
    );
    let none = resolve_node(&sel(&[("zone", "b")]), &nodes).unwrap_err();
    assert_eq!(none.to_string(), "no node matches nodeSelector zone=b");
    let two = resolve_node(&sel(&[("zone", "a")]), &nodes).unwrap_err();
    assert_eq!(
        two.to_string(),
        "nodeSelector zone=a matches 2 nodes (n1, n2); it must match exactly one"
    );
    let nohost = resolve_node(&sel(&[("disk", "yes")]), &nodes).unwrap_err();
    assert_eq!(
        nohost,
        NodeError::NoHostname {
            selector: "disk=yes".into(),
            node: "n3".into()
        }
    );
    assert_eq!(
        nohost.to_string(),
        "node n3 (nodeSelector disk=yes) has no kubernetes.io/hostname label"
    );
    assert_eq!(
        resolve_node(&BTreeMap::new(), &nodes),
        Err(NodeError::EmptySelector)
    );
}

#[test]
fn cspi_names_are_deterministic() {
    // FNV-1a 64 reference vectors.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    let a = cspi_name("cspc-a", "uid-1", "node-1");
    assert_eq!(a, cspi_name("cspc-a", "uid-1", "node-1"));
    assert_ne!(a, cspi_name("cspc-a", "uid-1", "node-2"));
    assert_ne!(a, cspi_name("cspc-a", "uid-2", "node-1"));
    let suffix = a.strip_prefix("cspc-a-").unwrap();
    assert_eq!(suffix.len(), 4);
    assert!(
        suffix
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
    );
    // Pinned: the name must never change between releases (a second CSPI would appear).
    let h = fnv1a64(b"uid-1/node-1");
    let mut x = h;
    let mut want = String::new();
    for _ in 0..4 {
        want.push(char::from(
            b"bcdfghjklmnpqrstvwxz2456789"[(x % 27) as usize],
        ));
        x /= 27;
    }
    assert_eq!(a, format!("cspc-a-{want}"));
    // Golden value (computed independently): never changes between releases.
    assert_eq!(a, "cspc-a-xcfr");
}

/// Two hosts of one CSPC whose 4-character suffixes collide (found by search: about 19 bits)
/// get different CSPIs: the second host's name skips the one the first holds, the same way
/// every time; with no collision the name is the plain derived one.
#[test]
fn colliding_cspi_names_are_never_shared() {
    let mut seen = BTreeMap::new();
    let (first, second) = (0..100_000)
        .map(|i| format!("node-{i}"))
        .find_map(|host| {
            let name = cspi_name("pc", "uid-1", &host);
            seen.insert(name, host.clone())
                .map(|earlier| (earlier, host))
        })
        .expect("a collision among 100000 hosts");
    let taken = cspi_name("pc", "uid-1", &first);
    assert_eq!(taken, cspi_name("pc", "uid-1", &second));
    let held_by_first = |n: &str| n == taken;
    let own = free_cspi_name("pc", "uid-1", &second, held_by_first);
    assert_ne!(own, taken, "{first} and {second} collide");
    assert_eq!(own, free_cspi_name("pc", "uid-1", &second, held_by_first));
    assert!(
        own.starts_with("pc-") && own.len() == "pc-".len() + 4,
        "{own}"
    );
    assert_eq!(
        free_cspi_name("pc", "uid-1", &first, |_| false),
        taken,
        "no collision: the plain name"
    );
}

#[test]
fn pairing_by_hostname_then_shared_bd() {
    let pools = vec![
        pool("h1", "stripe", &[&["bd-1"]]),
        pool("h2", "stripe", &[&["bd-2"]]),
        pool("h3", "stripe", &[&["bd-3"]]),
    ];
    let cspis = vec![
        cspi("c-h1", "h1", &[&["bd-1"]]),
        // Node relabelled: its hostname is gone, but the data BD still pairs it.
        cspi("c-old", "h-old", &[&["bd-2"]]),
        cspi("c-orphan", "h9", &[&["bd-9"]]),
    ];
    let hosts = vec![Some("h1".into()), Some("h2".into()), Some("h3".into())];
    let p = pair(&pools, &hosts, &cspis);
    assert_eq!(
        p.pools,
        vec![Some("c-h1".into()), Some("c-old".into()), None]
    );
    assert_eq!(p.orphans, vec!["c-orphan".to_string()]);
}

#[test]
fn orphan_detection() {
    let pools = vec![pool("h1", "stripe", &[&["bd-1"]])];
    let cspis = vec![
        cspi("c-h1", "h1", &[&["bd-1"]]),
        cspi("c-h2", "h2", &[&["bd-2"]]),
        cspi("c-h3", "h3", &[&["bd-3"]]),
    ];
    let hosts = vec![Some("h1".to_string())];
    let p = pair(&pools, &hosts, &cspis);
    assert_eq!(p.orphans, vec!["c-h2".to_string(), "c-h3".to_string()]);
    let replicas = BTreeMap::from([("c-h3".to_string(), 2usize)]);
    let (delete, blocked) = orphans_to_delete(&p, &hosts, &replicas);
    assert_eq!(delete, vec!["c-h2".to_string()]);
    assert_eq!(blocked, vec![("c-h3".to_string(), 2)]);
    // An unresolved pool node: nothing is deleted (its CSPI only looks orphaned).
    let (delete, blocked) = orphans_to_delete(&p, &[None], &replicas);
    assert!(delete.is_empty() && blocked.is_empty());
}

#[test]
fn claim_for_a_block_device() {
    let c = cspc(vec![]);
    let b = bd("bd-1", "bd-uid-1", "host-1", 10 * 1024 * 1024 * 1024 + 7);
    let claim = bdc_for_bd(&c, &b, None).unwrap();
    assert_eq!(claim.metadata.name.as_deref(), Some("bdc-cstor-bd-uid-1"));
    assert_eq!(claim.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(
        claim
            .metadata
            .labels
            .unwrap()
            .get(labels::CSTOR_POOL_CLUSTER)
            .map(String::as_str),
        Some("cspc-a")
    );
    assert_eq!(
        claim.metadata.finalizers,
        Some(vec![finalizers::CSPC.to_string()])
    );
    let owner = &claim.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        (
            "CStorPoolCluster",
            "cspc-a",
            "cspc-uid-1",
            Some(true),
            Some(true)
        )
    );
    assert_eq!(claim.spec.block_device_name, "bd-1");
    assert_eq!(
        claim.spec.block_device_node_attributes.unwrap().host_name,
        "host-1"
    );
    // Exact bytes, not the Go operator's lossy "10G".
    assert_eq!(claim.spec.resources.requests["storage"].0, "10737418247");
    assert_eq!(claim.spec.selector, None);
    assert!(claim.metadata.annotations.is_none());

    let replacement = bdc_for_bd(&c, &b, Some("bd-old")).unwrap();
    assert_eq!(
        replacement
            .metadata
            .annotations
            .unwrap()
            .get(annotations::BD_PREDECESSOR)
            .map(String::as_str),
        Some("bd-old")
    );
}

#[test]
fn claim_tag_rules() {
    let mut c = cspc(vec![]);
    let mut b = bd("bd-1", "bd-uid-1", "host-1", 1 << 30);
    b.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(labels::BLOCK_DEVICE_TAG.into(), " fast ".into());
    assert_eq!(
        bdc_for_bd(&c, &b, None).unwrap_err(),
        ClaimError::TagNotAllowed {
            bd: "bd-1".into(),
            tag: "fast".into(),
            allowed: vec![]
        }
    );
    c.metadata.annotations = Some(BTreeMap::from([(
        annotations::ALLOWED_BD_TAGS.into(),
        "slow, ,fast".into(),
    )]));
    let claim = bdc_for_bd(&c, &b, None).unwrap();
    assert_eq!(
        claim.spec.selector.unwrap().match_labels,
        Some(BTreeMap::from([(
            labels::BLOCK_DEVICE_TAG.to_string(),
            "fast".to_string()
        )]))
    );
    b.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(labels::BLOCK_DEVICE_TAG.into(), "  ".into());
    let blank = bdc_for_bd(&c, &b, None).unwrap_err();
    assert_eq!(
        blank.to_string(),
        "BlockDevice bd-1 has a blank openebs.io/block-device-tag label"
    );
}

#[test]
fn claim_status_of_devices() {
    let free = bd("bd-1", "u1", "h1", 100);
    assert_eq!(
        claim_status("bd-1", Some(&free), &[], "cspc-a"),
        ClaimStatus::Missing {
            claim: "bdc-cstor-u1".into()
        }
    );
    let mine_pending = bdc(
        "bdc-cstor-u1",
        "c1",
        "bd-1",
        Some("cspc-a"),
        "Pending",
        "100",
    );
    assert_eq!(
        claim_status(
            "bd-1",
            Some(&free),
            std::slice::from_ref(&mine_pending),
            "cspc-a"
        ),
        ClaimStatus::Pending {
            claim: Some("bdc-cstor-u1".into()),
            reason: "claim is Pending".into()
        }
    );
    let mine_bound = bdc("bdc-cstor-u1", "c1", "bd-1", Some("cspc-a"), "Bound", "100");
    let taken = claimed(free.clone(), "bdc-cstor-u1", "c1");
    assert_eq!(
        claim_status("bd-1", Some(&taken), &[mine_bound], "cspc-a"),
        ClaimStatus::Bound {
            claim: "bdc-cstor-u1".into()
        }
    );
    let foreign = bdc("other", "c9", "bd-1", None, "Bound", "100");
    let taken = claimed(free, "other", "c9");
    assert_eq!(
        claim_status("bd-1", Some(&taken), &[foreign], "cspc-a"),
        ClaimStatus::Pending {
            claim: Some("bdc-cstor-u1".into()),
            reason: "BlockDevice is claimed by BDC openebs/other".into()
        }
    );
    assert_eq!(
        claim_status("bd-x", None, &[], "cspc-a"),
        ClaimStatus::Pending {
            claim: None,
            reason: "BlockDevice not found".into()
        }
    );
}

fn bound(bds: &[&str]) -> BTreeMap<String, ClaimStatus> {
    bds.iter()
        .map(|b| {
            (
                b.to_string(),
                ClaimStatus::Bound {
                    claim: format!("bdc-{b}"),
                },
            )
        })
        .collect()
}

fn with(
    mut m: BTreeMap<String, ClaimStatus>,
    bd: &str,
    s: ClaimStatus,
) -> BTreeMap<String, ClaimStatus> {
    m.insert(bd.into(), s);
    m
}

fn groups(spec: &CStorPoolInstanceSpec) -> Vec<Vec<String>> {
    spec.data_raid_groups
        .iter()
        .map(|g| {
            g.block_devices
                .iter()
                .map(|b| b.block_device_name.clone())
                .collect()
        })
        .collect()
}

#[test]
fn desired_spec_fresh() {
    let c = cspc(vec![]);
    let p = pool("h1", "mirror", &[&["bd-1", "bd-2"]]);
    // Not all bound: no spec, one claim to make, both listed as pending.
    let claims = with(
        bound(&["bd-1"]),
        "bd-2",
        ClaimStatus::Missing {
            claim: "bdc-cstor-u2".into(),
        },
    );
    let d = desired_cspi_spec(&c.spec, &p, "h1", None, &claims);
    assert_eq!(d.spec, None);
    assert_eq!(
        d.claims,
        vec![ClaimRequest {
            block_device: "bd-2".into(),
            predecessor: None
        }]
    );
    assert_eq!(
        d.pending,
        vec![PendingClaim {
            block_device: "bd-2".into(),
            claim: Some("bdc-cstor-u2".into()),
            reason: "claim created, waiting for it to be bound".into()
        }]
    );
    // All bound: the spec with the defaults.
    let d = desired_cspi_spec(&c.spec, &p, "h1", None, &bound(&["bd-1", "bd-2"]));
    let spec = d.spec.unwrap();
    assert_eq!(spec.host_name, "h1");
    assert_eq!(spec.node_selector, selector("h1"));
    assert_eq!(
        groups(&spec),
        vec![vec!["bd-1".to_string(), "bd-2".to_string()]]
    );
    let cfg = spec.pool_config.unwrap();
    assert_eq!(cfg.ro_threshold_limit, Some(85));
    // No CSPC-wide priority class: the pool gets none (was Some("") before the operator and the
    // webhook shared one rule; the pod template is the same either way).
    assert_eq!(cfg.priority_class_name, None);
    assert_eq!(cfg.data_raid_group_type, "mirror");
    assert!(d.pending.is_empty() && d.claims.is_empty());
}

#[test]
fn desired_spec_stripe_append() {
    let c = cspc(vec![]);
    let p = pool("h1", "stripe", &[&["bd-1", "bd-2", "bd-3"]]);
    let cur = cspi("c1", "h1", &[&["bd-1"]]).spec;
    let pending = with(
        bound(&["bd-1", "bd-2"]),
        "bd-3",
        ClaimStatus::Pending {
            claim: Some("bdc-cstor-u3".into()),
            reason: "claim is Pending".into(),
        },
    );
    let d = desired_cspi_spec(&c.spec, &p, "h1", Some(&cur), &pending);
    // All-or-nothing: bd-2 is bound but bd-3 is not, so nothing is appended yet.
    assert_eq!(
        groups(d.spec.as_ref().unwrap()),
        vec![vec!["bd-1".to_string()]]
    );
    assert_eq!(d.pending.len(), 1);
    let d = desired_cspi_spec(
        &c.spec,
        &p,
        "h1",
        Some(&cur),
        &bound(&["bd-1", "bd-2", "bd-3"]),
    );
    assert_eq!(
        groups(&d.spec.unwrap()),
        vec![vec!["bd-1".to_string(), "bd-2".into(), "bd-3".into()]]
    );
}

#[test]
fn desired_spec_new_mirror_group() {
    let c = cspc(vec![]);
    let p = pool("h1", "mirror", &[&["bd-1", "bd-2"], &["bd-3", "bd-4"]]);
    let mut cur = cspi("c1", "h1", &[&["bd-1", "bd-2"]]).spec;
    cur.data_raid_groups[0].block_devices[0].capacity = 1234; // filled by the system: kept
    let claims = with(
        bound(&["bd-1", "bd-2", "bd-3"]),
        "bd-4",
        ClaimStatus::Missing {
            claim: "bdc-cstor-u4".into(),
        },
    );
    let d = desired_cspi_spec(&c.spec, &p, "h1", Some(&cur), &claims);
    assert_eq!(
        groups(d.spec.as_ref().unwrap()),
        vec![vec!["bd-1".to_string(), "bd-2".into()]]
    );
    assert_eq!(
        d.claims,
        vec![ClaimRequest {
            block_device: "bd-4".into(),
            predecessor: None
        }]
    );
    let d = desired_cspi_spec(
        &c.spec,
        &p,
        "h1",
        Some(&cur),
        &bound(&["bd-1", "bd-2", "bd-3", "bd-4"]),
    );
    let spec = d.spec.unwrap();
    assert_eq!(
        groups(&spec),
        vec![
            vec!["bd-1".to_string(), "bd-2".into()],
            vec!["bd-3".into(), "bd-4".into()]
        ]
    );
    assert_eq!(spec.data_raid_groups[0].block_devices[0].capacity, 1234);
}

#[test]
fn desired_spec_replacement() {
    let c = cspc(vec![]);
    let p = pool("h1", "mirror", &[&["bd-1", "bd-new"]]);
    let cur = cspi("c1", "h1", &[&["bd-1", "bd-2"]]).spec;
    // Pending: the replacement claim is requested with its predecessor; the CSPI is unchanged.
    let claims = with(
        bound(&["bd-1"]),
        "bd-new",
        ClaimStatus::Missing {
            claim: "bdc-cstor-un".into(),
        },
    );
    let d = desired_cspi_spec(&c.spec, &p, "h1", Some(&cur), &claims);
    assert_eq!(
        d.claims,
        vec![ClaimRequest {
            block_device: "bd-new".into(),
            predecessor: Some("bd-2".into())
        }]
    );
    assert_eq!(
        groups(d.spec.as_ref().unwrap()),
        vec![vec!["bd-1".to_string(), "bd-2".into()]]
    );
    // Bound: swapped in place.
    let d = desired_cspi_spec(&c.spec, &p, "h1", Some(&cur), &bound(&["bd-1", "bd-new"]));
    assert_eq!(
        groups(&d.spec.unwrap()),
        vec![vec!["bd-1".to_string(), "bd-new".into()]]
    );
    assert!(d.claims.is_empty());
    // A single-disk group replaced (no shared BD) is a replacement too, not a new group.
    let p1 = pool("h1", "stripe", &[&["bd-b"]]);
    let cur1 = cspi("c1", "h1", &[&["bd-a"]]).spec;
    let claims = BTreeMap::from([(
        "bd-b".to_string(),
        ClaimStatus::Missing { claim: "x".into() },
    )]);
    let d = desired_cspi_spec(&c.spec, &p1, "h1", Some(&cur1), &claims);
    assert_eq!(
        d.claims,
        vec![ClaimRequest {
            block_device: "bd-b".into(),
            predecessor: Some("bd-a".into())
        }]
    );
    let d = desired_cspi_spec(&c.spec, &p1, "h1", Some(&cur1), &bound(&["bd-b"]));
    assert_eq!(groups(&d.spec.unwrap()), vec![vec!["bd-b".to_string()]]);
}

#[test]
fn desired_spec_write_cache_group() {
    let c = cspc(vec![]);
    let mut p = pool("h1", "mirror", &[&["bd-1", "bd-2"]]);
    p.write_cache_raid_groups = Some(vec![group(&["wc-1", "wc-2"])]);
    let cur = cspi("c1", "h1", &[&["bd-1", "bd-2"]]).spec;
    let claims = with(
        bound(&["bd-1", "bd-2", "wc-1"]),
        "wc-2",
        ClaimStatus::Missing { claim: "y".into() },
    );
    let d = desired_cspi_spec(&c.spec, &p, "h1", Some(&cur), &claims);
    assert_eq!(
        d.spec.as_ref().unwrap().write_cache_raid_groups,
        Some(vec![])
    );
    assert_eq!(
        d.claims,
        vec![ClaimRequest {
            block_device: "wc-2".into(),
            predecessor: None
        }]
    );
    let d = desired_cspi_spec(
        &c.spec,
        &p,
        "h1",
        Some(&cur),
        &bound(&["bd-1", "bd-2", "wc-1", "wc-2"]),
    );
    assert_eq!(
        d.spec.unwrap().write_cache_raid_groups,
        Some(vec![group(&["wc-1", "wc-2"])])
    );
}

#[test]
fn pool_config_defaults() {
    let mut c = cspc(vec![]);
    c.spec.priority_class_name = "high".into();
    c.spec.tolerations = vec![k8s_openapi::api::core::v1::Toleration {
        key: Some("k".into()),
        ..Default::default()
    }];
    let mut p = pool("h1", "stripe", &[&["bd-1"]]);
    p.pool_config = Some(PoolConfig {
        data_raid_group_type: "stripe".into(),
        tolerations: Some(vec![]),
        ro_threshold_limit: Some(90),
        ..PoolConfig::default()
    });
    let cfg = c.spec.effective_pool_config(&p);
    assert_eq!(cfg.priority_class_name.as_deref(), Some("high"));
    assert_eq!(cfg.tolerations, Some(c.spec.tolerations.clone()));
    assert_eq!(cfg.ro_threshold_limit, Some(90));
    assert_eq!(cfg.compression, "lz4");
}

/// The mutating webhook's defaults and the CSPI spec the cspc-operator writes agree, whether
/// or not the CSPC went through the webhook (one rule: `effective_pool_config`).
#[test]
fn webhook_defaults_and_the_cspi_agree() {
    let mut c = cspc(vec![]);
    c.spec.priority_class_name = "high".into();
    c.spec.tolerations = vec![k8s_openapi::api::core::v1::Toleration {
        key: Some("k".into()),
        ..Default::default()
    }];
    c.spec.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("2Gi".into()),
        )])),
        ..Default::default()
    });
    let bare = pool("h1", "stripe", &[&["bd-1"]]);
    let mut set = pool("h2", "mirror", &[&["bd-2", "bd-3"]]);
    set.pool_config = Some(PoolConfig {
        data_raid_group_type: "mirror".into(),
        compression: "off".into(),
        priority_class_name: Some(String::new()),
        tolerations: Some(vec![]),
        ro_threshold_limit: Some(70),
        ..PoolConfig::default()
    });
    c.spec.pools = vec![bare, set];
    let mut unset = cspc(vec![]);
    unset.spec.pools = vec![pool("h3", "stripe", &[&["bd-4"]])];
    for c in [c, unset] {
        let mutated = cstor_policy::defaults::with_pool_defaults(&c);
        for (i, (host, pool)) in ["h1", "h2", "h3"].iter().zip(&c.spec.pools).enumerate() {
            let claims = bound(&pool.block_device_names().collect::<Vec<_>>());
            let webhook = mutated.spec.pools[i].pool_config.clone();
            let direct = desired_cspi_spec(&c.spec, pool, host, None, &claims)
                .spec
                .unwrap()
                .pool_config;
            let after_webhook =
                desired_cspi_spec(&mutated.spec, &mutated.spec.pools[i], host, None, &claims)
                    .spec
                    .unwrap()
                    .pool_config;
            assert_eq!(direct, webhook, "pool {i}: operator without the webhook");
            assert_eq!(
                after_webhook, webhook,
                "pool {i}: operator after the webhook"
            );
        }
        // Defaulting is idempotent: a second pass through the webhook sends no patch.
        assert_eq!(
            cstor_policy::defaults::with_pool_defaults(&mutated),
            mutated
        );
    }
}

fn t(s: &str) -> Time {
    Time(s.parse().unwrap())
}

#[test]
fn status_counts_and_conditions() {
    let input = StatusInput {
        desired: 3,
        instances: vec![
            Instance {
                name: "c1".into(),
                manager_ready: true,
                phase: "ONLINE".into(),
                deleting: false,
            },
            Instance {
                name: "c2".into(),
                manager_ready: true,
                phase: "DEGRADED".into(),
                deleting: false,
            },
            Instance {
                name: "c3".into(),
                manager_ready: false,
                phase: "".into(),
                deleting: false,
            },
            Instance {
                name: "c4".into(),
                manager_ready: false,
                phase: "ONLINE".into(),
                deleting: true,
            },
        ],
        problems: Problems {
            claims_pending: vec![pending_item(
                Some("bdc-cstor-u1"),
                "bd-1",
                "cstor-node-1",
                "BlockDevice is claimed by BDC openebs/x",
            )],
            ..Problems::default()
        },
        generation: Some(4),
    };
    let t1 = t("2024-01-01T00:00:00Z");
    let s = cspc_status(&input, None, &t1);
    assert_eq!(
        (
            s.desired_instances,
            s.provisioned_instances,
            s.healthy_instances
        ),
        (Some(3), Some(3), Some(1))
    );
    let pm = &s.conditions[0];
    assert_eq!(pm.type_, "PoolManagerAvailable");
    assert_eq!(pm.status, ConditionStatus::False);
    assert_eq!(pm.reason, "MinimumPoolManagersUnAvailable");
    assert_eq!(
        pm.message,
        "Pool manager(s): c3 :does not have minimum available pod"
    );
    let pp = &s.conditions[1];
    assert_eq!(
        (pp.type_.as_str(), pp.status, pp.reason.as_str()),
        ("PoolsProvisioned", ConditionStatus::False, "ClaimsPending")
    );
    assert_eq!(
        pp.message,
        "bdc-cstor-u1 for bd-1 on cstor-node-1: BlockDevice is claimed by BDC openebs/x"
    );
    assert_eq!(pp.observed_generation, Some(4));
    assert_eq!(pp.last_transition_time, Some(t1.clone()));

    // Unchanged input later: the conditions are kept exactly (no new times, no write).
    let t2 = t("2024-01-01T00:05:00Z");
    let again = cspc_status(&input, Some(&s), &t2);
    assert_eq!(again, s);

    // Same status, new message: lastTransitionTime kept, lastUpdateTime moves.
    let mut more = input.clone();
    more.problems.claims_pending.push("b".into());
    let s3 = cspc_status(&more, Some(&s), &t2);
    assert_eq!(s3.conditions[1].last_transition_time, Some(t1.clone()));
    assert_eq!(s3.conditions[1].last_update_time, Some(t2.clone()));

    // A flip: both times move.
    let ok = StatusInput {
        desired: 1,
        instances: vec![Instance {
            name: "c1".into(),
            manager_ready: true,
            phase: "ONLINE".into(),
            deleting: false,
        }],
        problems: Problems::default(),
        generation: Some(4),
    };
    let s4 = cspc_status(&ok, Some(&s), &t2);
    let pm = &s4.conditions[0];
    assert_eq!(
        (pm.status, pm.reason.as_str(), pm.message.as_str()),
        (
            ConditionStatus::True,
            "MinimumPoolManagersAvailable",
            "Pool manager(s) have minimum available pod"
        )
    );
    assert_eq!(pm.last_transition_time, Some(t2.clone()));
    let pp = &s4.conditions[1];
    assert_eq!(
        (pp.status, pp.reason.as_str(), pp.message.as_str()),
        (
            ConditionStatus::True,
            "AllPoolsProvisioned",
            "All 1 pools are provisioned"
        )
    );
}

#[test]
fn status_reason_priority() {
    let input = StatusInput {
        desired: 2,
        instances: vec![],
        problems: Problems {
            node_not_found: vec!["pool 2: no node matches nodeSelector k=v".into()],
            replicas_on_pool: vec!["c9: ...".into()],
            ..Problems::default()
        },
        generation: None,
    };
    let s = cspc_status(
        &input,
        Some(&CStorPoolClusterStatus::default()),
        &t("2024-01-01T00:00:00Z"),
    );
    let pp: &PoolCondition = &s.conditions[1];
    assert_eq!(pp.reason, "NodeNotFound");
    assert_eq!(
        pp.message,
        "pool 2: no node matches nodeSelector k=v; c9: ..."
    );
}

#[test]
fn pool_manager_deployment_object() {
    let c = cspc(vec![]);
    let mut i = cspi("cspc-a-bcdf", "h1", &[&["bd-1"]]);
    i.spec.pool_config = Some(PoolConfig {
        priority_class_name: Some("prio".into()),
        ..Default::default()
    });
    let cfg = CspcConfig::default();
    let d = pool_manager_deployment(&c, &i, &cfg).unwrap();
    let want_labels = BTreeMap::from([
        (
            "openebs.io/cstor-pool-cluster".to_string(),
            "cspc-a".to_string(),
        ),
        ("app".into(), "cstor-pool".into()),
        (
            "openebs.io/cstor-pool-instance".into(),
            "cspc-a-bcdf".into(),
        ),
        ("openebs.io/version".into(), "4.0.0".into()),
    ]);
    assert_eq!(d.metadata.name.as_deref(), Some("cspc-a-bcdf"));
    assert_eq!(d.metadata.labels.as_ref(), Some(&want_labels));
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("CStorPoolInstance", "cspc-a-bcdf-uid", Some(true))
    );
    let spec = &d.spec;
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate")
    );
    assert_eq!(
        spec.selector.match_labels,
        Some(BTreeMap::from([(
            "app".to_string(),
            "cstor-pool".to_string()
        )]))
    );
    assert_eq!(
        spec.template.metadata.as_ref().unwrap().labels.as_ref(),
        Some(&want_labels)
    );
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.node_selector, Some(selector("h1")));
    // Its own account: the admission policy ties its writes to this CSPI.
    assert_eq!(
        pod.service_account_name,
        Some(format!(
            "cstor-pool-manager-{}",
            d.metadata.name.as_deref().unwrap()
        ))
    );
    assert_eq!(pod.priority_class_name.as_deref(), Some("prio"));
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["cstor-pool-mgmt", "cstor-pool", "maya-exporter"]
    );
    let mgmt = &pod.containers[0];
    assert_eq!(mgmt.image.as_deref(), Some("openebs/cstor-rs:4.0.0"));
    assert_eq!(mgmt.command, Some(vec!["cstor".to_string()]));
    assert_eq!(mgmt.args, Some(vec!["pool-manager".to_string()]));
    let env: Vec<(String, String)> = mgmt
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| {
            let v = e.value.clone().unwrap_or_else(|| {
                format!(
                    "fieldRef:{}",
                    e.value_from
                        .as_ref()
                        .unwrap()
                        .field_ref
                        .as_ref()
                        .unwrap()
                        .field_path
                )
            });
            (e.name.clone(), v)
        })
        .collect();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        env,
        vec![
            s("OPENEBS_IO_CSPI_ID", "cspc-a-bcdf-uid"),
            s("RESYNC_INTERVAL", "30"),
            s("POD_NAME", "fieldRef:metadata.name"),
            s("NAMESPACE", "fieldRef:metadata.namespace"),
            s("OPENEBS_IO_POOL_NAME", "cspc-uid-1"),
            s("OPENEBS_IO_CSTOR_POOL_SPARSE_DIR", "/var/openebs/sparse"),
            s("NODE_NAME", "fieldRef:spec.nodeName"),
        ]
    );
    let mounts: Vec<(&str, &str)> = mgmt
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        vec![
            ("device", "/dev"),
            ("tmp", "/tmp"),
            ("udev", "/run/udev"),
            ("storagepath", "/var/openebs/cstor-pool"),
            ("sockfile", "/var/tmp/sock"),
            ("sparse", "/var/openebs/sparse")
        ]
    );
    assert_eq!(pod.containers[1].volume_mounts, mgmt.volume_mounts);
    assert_eq!(pod.containers[2].volume_mounts, mgmt.volume_mounts);
    let vols: Vec<(String, Option<String>)> = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .map(|v| (v.name.clone(), v.host_path.as_ref().map(|h| h.path.clone())))
        .collect();
    assert_eq!(
        vols,
        vec![
            ("device".to_string(), Some("/dev".to_string())),
            ("udev".into(), Some("/run/udev".into())),
            ("tmp".into(), Some("/var/openebs/cstor-pool/cspc-a".into())),
            ("sparse".into(), Some("/var/openebs/sparse".into())),
            (
                "storagepath".into(),
                Some("/var/openebs/cstor-pool/cspc-a".into())
            ),
            ("sockfile".into(), None),
        ]
    );
}

#[test]
fn cspi_apply_body() {
    let mut c = cspc(vec![]);
    c.metadata.annotations = Some(BTreeMap::from([(
        annotations::RECONCILE_DISABLE_DEPENDANTS.into(),
        "true".into(),
    )]));
    let spec = cspi("x", "h1", &[&["bd-1"]]).spec;
    let body = cspi_apply(&c, "cspc-a-bcdf", &spec, "4.0.0", None).unwrap();
    assert_eq!(body["kind"], "CStorPoolInstance");
    assert_eq!(body["metadata"]["labels"]["kubernetes.io/hostname"], "h1");
    assert_eq!(
        body["metadata"]["labels"]["openebs.io/cstor-pool-cluster"],
        "cspc-a"
    );
    assert_eq!(body["metadata"]["labels"]["openebs.io/cas-type"], "cstor");
    assert_eq!(body["metadata"]["finalizers"][0], finalizers::CSPC);
    assert_eq!(
        body["metadata"]["annotations"]["reconcile.openebs.io/disable"],
        "true"
    );
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "cspc-uid-1");
    assert_eq!(body["versionDetails"]["desired"], "4.0.0");
    assert_eq!(body["versionDetails"]["status"]["current"], "4.0.0");
    assert_eq!(
        body["spec"]["dataRaidGroups"][0]["blockDevices"][0]["blockDeviceName"],
        "bd-1"
    );
    // An existing CSPI whose annotation was removed does not get it back.
    let live = cspi("cspc-a-bcdf", "h1", &[&["bd-1"]]);
    let body = cspi_apply(&c, "cspc-a-bcdf", &spec, "4.0.0", Some(&live)).unwrap();
    assert!(body["metadata"].get("annotations").is_none());
}

/// Every pool's host in one pass: unresolvable pools and a second pool on a taken node are
/// left out with the reason the CSPC status shows.
#[test]
fn pool_hosts_resolve_each_pool_once() {
    let nodes = vec![
        node("n1", &[("kubernetes.io/hostname", "h1")]),
        node("n2", &[("kubernetes.io/hostname", "h2")]),
    ];
    let pools = vec![
        pool("h1", "stripe", &[&["bd-1"]]),
        pool("h9", "stripe", &[&["bd-2"]]),
        pool("h1", "stripe", &[&["bd-3"]]),
        pool("h2", "stripe", &[&["bd-4"]]),
    ];
    let (hosts, problems) = pool_hosts(&pools, &nodes);
    assert_eq!(
        hosts,
        vec![Some("h1".to_string()), None, None, Some("h2".to_string())]
    );
    assert_eq!(
        problems,
        vec![
            "pool 2: no node matches nodeSelector kubernetes.io/hostname=h9".to_string(),
            "pool 3: node h1 is already used by pool 1".to_string(),
        ]
    );
}
