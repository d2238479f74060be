//! CStorPoolCluster UPDATE and DELETE rules (docs/admission.md, CU-*, CD-*), with
//! part A's changes: old state from `oldObject`, pools paired by resolved hostname on both
//! sides, data groups before write-cache groups, no panic on a pool without a CSPI, and no
//! claim created during admission (the cspc-operator does that).

use std::collections::BTreeSet;

use cstor_api::cstor_v1::{CStorPoolCluster, PoolSpec, RaidGroup, pool_type};
use cstor_api::keys::{annotations, labels};

use crate::cspc::{CODE_INVALID, cspc_validation, go_map, resolve_hostname};
use crate::facts::CspcFacts;
use crate::verdict::Verdict;

/// HTTP-style code of an internal failure (pairing).
pub const CODE_INTERNAL: u16 = 500;
const PREFIX: &str = "invalid cspc specification: ";

fn label<'a>(labels: Option<&'a std::collections::BTreeMap<String, String>>, key: &str) -> &'a str {
    labels
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .unwrap_or_default()
}

fn bd_names(groups: &[RaidGroup]) -> Vec<&str> {
    groups
        .iter()
        .flat_map(RaidGroup::block_device_names)
        .collect()
}

fn pool_bds(pool: &PoolSpec) -> Vec<&str> {
    pool.block_device_names().collect()
}

fn invalid(msg: impl std::fmt::Display) -> Verdict {
    Verdict::deny(CODE_INVALID, format!("{PREFIX}{msg}"))
}

/// UPDATE of a CSPC from `old` to `new`.
pub fn validate_update(
    old: &CStorPoolCluster,
    new: &CStorPoolCluster,
    facts: &CspcFacts,
) -> Verdict {
    if old.spec == new.spec {
        return Verdict::allow();
    }
    if let Err(msg) = cspc_validation(new, facts) {
        return invalid(msg);
    }
    if let Err(msg) = validate_scale_down(old, new, facts) {
        return invalid(msg);
    }
    let pairs = match common_pool_specs(old, new, facts) {
        Ok(p) => p,
        Err(e) => {
            return Verdict::deny(
                CODE_INTERNAL,
                format!("could not find common pool specs for validation: {e}"),
            );
        }
    };
    for (old_pool, new_pool) in pairs {
        if old_pool == new_pool {
            continue;
        }
        if let Err(verdict) = pool_changes(old, new, old_pool, new_pool, facts) {
            return verdict;
        }
    }
    Verdict::allow()
}

/// DELETE of a CSPC: denied while any of its CSPIs holds a replica (CD-3).
pub fn validate_delete(cspc: &CStorPoolCluster, facts: &CspcFacts) -> Verdict {
    let name = cspc.metadata.name.as_deref().unwrap_or_default();
    let mut cspis: Vec<&str> = facts
        .cspis
        .iter()
        .filter(|c| label(c.metadata.labels.as_ref(), labels::CSTOR_POOL_CLUSTER) == name)
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    cspis.sort();
    for cspi in cspis {
        if replicas_on(cspi, facts) {
            return Verdict::deny(
                CODE_INVALID,
                format!("invalid cspc {name} deletion: volume still exists on pool {cspi}"),
            );
        }
    }
    Verdict::allow()
}

fn replicas_on(cspi: &str, facts: &CspcFacts) -> bool {
    facts
        .cvrs
        .iter()
        .any(|r| label(r.metadata.labels.as_ref(), labels::CSPI_NAME) == cspi)
}

/// CU-2: a pool spec removed from the CSPC must hold no volume replica.
fn validate_scale_down(
    old: &CStorPoolCluster,
    new: &CStorPoolCluster,
    facts: &CspcFacts,
) -> Result<(), String> {
    let cspc = new.metadata.name.as_deref().unwrap_or_default();
    let new_bds: BTreeSet<&str> = new.spec.pools.iter().flat_map(pool_bds).collect();
    for pool in &old.spec.pools {
        let kept = new
            .spec
            .pools
            .iter()
            .any(|p| p.node_selector == pool.node_selector);
        let removed = !kept && pool_bds(pool).iter().all(|bd| !new_bds.contains(bd));
        if !removed {
            continue;
        }
        let node = match pool.node_selector.get(labels::HOSTNAME) {
            Some(h) => h.clone(),
            None => match facts.nodes_matching(&pool.node_selector).as_slice() {
                [one] => one
                    .labels
                    .get(labels::HOSTNAME)
                    .cloned()
                    .unwrap_or_default(),
                _ => {
                    return Err(format!(
                        "Could not list node for node selectors {{{}}}",
                        go_map(&pool.node_selector)
                    ));
                }
            },
        };
        let mut cspis: Vec<&str> = facts
            .cspis
            .iter()
            .filter(|c| {
                let l = c.metadata.labels.as_ref();
                label(l, labels::CSTOR_POOL_CLUSTER) == cspc && label(l, labels::HOSTNAME) == node
            })
            .filter_map(|c| c.metadata.name.as_deref())
            .collect();
        cspis.sort();
        // Part A.5: a pool that never got a CSPI holds nothing (the Go operator panics here).
        if let Some(cspi) = cspis.first()
            && replicas_on(cspi, facts)
        {
            return Err(format!("volume still exists on pool {cspi}"));
        }
    }
    Ok(())
}

/// CU-3 with part A.6: pair each old pool with the new pool on the same hostname (resolved the
/// same way on both sides); an old pool whose node is gone pairs by a shared data disk.
fn common_pool_specs<'a>(
    old: &'a CStorPoolCluster,
    new: &'a CStorPoolCluster,
    facts: &CspcFacts,
) -> Result<Vec<(&'a PoolSpec, &'a PoolSpec)>, String> {
    let mut pairs = Vec::new();
    for old_pool in &old.spec.pools {
        let nodes = facts.nodes_matching(&old_pool.node_selector);
        let partner = match nodes.as_slice() {
            [] => {
                let old_data: BTreeSet<&str> =
                    bd_names(&old_pool.data_raid_groups).into_iter().collect();
                new.spec.pools.iter().find(|p| {
                    bd_names(&p.data_raid_groups)
                        .iter()
                        .any(|bd| old_data.contains(bd))
                })
            }
            [node] => {
                let host = node
                    .labels
                    .get(labels::HOSTNAME)
                    .cloned()
                    .unwrap_or_default();
                let mut found = None;
                for p in &new.spec.pools {
                    if resolve_hostname(p, facts)? == host {
                        found = Some(p);
                        break;
                    }
                }
                found
            }
            many => {
                return Err(format!(
                    "invalid no.of nodes {} from the given node selectors: {}",
                    many.len(),
                    go_map(&old_pool.node_selector)
                ));
            }
        };
        if let Some(p) = partner {
            pairs.push((old_pool, p));
        }
    }
    Ok(pairs)
}

/// One category of raid groups of a pool: its type and groups.
struct Category<'a> {
    raid_type: &'a str,
    old: &'a [RaidGroup],
    new: &'a [RaidGroup],
}

/// CU-4 for one changed pool pair.
fn pool_changes(
    old_cspc: &CStorPoolCluster,
    new_cspc: &CStorPoolCluster,
    old: &PoolSpec,
    new: &PoolSpec,
    facts: &CspcFacts,
) -> Result<(), Verdict> {
    let old_config = old.pool_config.clone().unwrap_or_default();
    let new_config = new.pool_config.clone().unwrap_or_default();
    if old_config.data_raid_group_type != new_config.data_raid_group_type
        || (!old_config.write_cache_group_type.is_empty()
            && old_config.write_cache_group_type != new_config.write_cache_group_type)
    {
        return Err(invalid("raidgroup can't be modified"));
    }
    // Data first, then write cache (part A.6: the Go operator's order is random).
    let categories = [
        Category {
            raid_type: &old_config.data_raid_group_type,
            old: &old.data_raid_groups,
            new: &new.data_raid_groups,
        },
        Category {
            raid_type: &old_config.write_cache_group_type,
            old: old.write_cache_raid_groups.as_deref().unwrap_or_default(),
            new: new.write_cache_raid_groups.as_deref().unwrap_or_default(),
        },
    ];
    let mut replacements: Vec<(&str, &str)> = Vec::new();
    for cat in &categories {
        for old_rg in cat.old {
            let old_bds = bd_names(std::slice::from_ref(old_rg));
            let Some(new_rg) = cat.new.iter().find(|rg| {
                bd_names(std::slice::from_ref(rg))
                    .iter()
                    .any(|b| old_bds.contains(b))
            }) else {
                return Err(invalid(
                    "raid group validation failed: removing raid group from pool spec is invalid operation",
                ));
            };
            let new_bds = bd_names(std::slice::from_ref(new_rg));
            if new_bds.len() < old_bds.len() {
                return Err(invalid(format!(
                    "raid group validation failed: removing block device from {} raid group is not valid operation",
                    cat.raid_type
                )));
            }
            if cat.raid_type != pool_type::STRIPE && new_bds.len() > old_bds.len() {
                return Err(invalid(format!(
                    "raid group validation failed: adding block devices to existing {} raid group is not valid operation",
                    cat.raid_type
                )));
            }
            if old_bds.iter().any(|b| !new_bds.contains(b)) {
                let pair = replacement(old_cspc, cat.raid_type, &old_bds, &new_bds, facts)
                    .map_err(invalid)?;
                replacements.push(pair);
            }
        }
    }
    expansion(old_cspc, &categories, facts)
        .map_err(|e| invalid(format!("pool expansion validation failed: {e}")))?;
    for (new_bd, _) in replacements {
        replacement_claim_allowed(new_cspc, new_bd, facts)
            .map_err(|e| Verdict::deny(CODE_INVALID, e))?;
    }
    Ok(())
}

/// The BDC of `bd`, if any; more than one is an error (CU-5d', CU-6a).
fn single_claim<'a>(
    bd: &str,
    facts: &'a CspcFacts,
) -> Result<Option<&'a cstor_api::openebs_v1alpha1::BlockDeviceClaim>, String> {
    match facts.claims_of(bd).as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(format!("did not get exact one bdc for the bd {bd}")),
    }
}

/// Whether some BDC of a disk of the current CSPC names `bd` as its predecessor.
fn is_predecessor(
    old_cspc: &CStorPoolCluster,
    bd: &str,
    facts: &CspcFacts,
) -> Result<bool, String> {
    for existing in old_cspc.spec.pools.iter().flat_map(pool_bds) {
        if let Some(claim) = single_claim(existing, facts)? {
            let pred = claim
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(annotations::BD_PREDECESSOR));
            if pred.is_some_and(|p| p == bd) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn claimed_elsewhere(cspc: &str, bd: &str, facts: &CspcFacts) -> Result<bool, String> {
    Ok(single_claim(bd, facts)?
        .is_some_and(|c| label(c.metadata.labels.as_ref(), labels::CSTOR_POOL_CLUSTER) != cspc))
}

/// CU-5a … CU-5g; returns the (new, old) disk pair.
fn replacement<'a>(
    old_cspc: &CStorPoolCluster,
    raid_type: &str,
    old_bds: &[&'a str],
    new_bds: &[&'a str],
    facts: &CspcFacts,
) -> Result<(&'a str, &'a str), String> {
    if raid_type == pool_type::STRIPE {
        return Err("cannot replace  blockdevice in stripe raid group".into());
    }
    let added: Vec<&str> = new_bds
        .iter()
        .copied()
        .filter(|b| !old_bds.contains(b))
        .collect();
    if added.len() > 1 {
        return Err("cannot replace more than one blockdevice in a raid group".into());
    }
    let (Some(new_bd), Some(old_bd)) = (
        added.first().copied(),
        old_bds.iter().copied().find(|b| !new_bds.contains(b)),
    ) else {
        return Err("cannot replace more than one blockdevice in a raid group".into());
    };
    if old_cspc
        .spec
        .pools
        .iter()
        .flat_map(pool_bds)
        .any(|b| b == new_bd)
    {
        return Err(
            "the new blockdevice intended to use for replacement is already a part of the current cspc"
                .into(),
        );
    }
    const IN_PROGRESS: &str = "cannot replace blockdevice as a background replacement may be in progress in the raid group";
    for bd in old_bds {
        let claim = single_claim(bd, facts).map_err(|e| {
            format!("{IN_PROGRESS}: failed to query for any existing replacement in the raid group : {e}")
        })?;
        let has_predecessor = claim.is_some_and(|c| {
            c.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(annotations::BD_PREDECESSOR))
        });
        if has_predecessor {
            return Err(format!(
                "{IN_PROGRESS}: replacement is still in progress for bd {bd}"
            ));
        }
    }
    let cspc = old_cspc.metadata.name.as_deref().unwrap_or_default();
    let unusable = claimed_elsewhere(cspc, new_bd, facts).unwrap_or(true)
        || is_predecessor(old_cspc, new_bd, facts).unwrap_or(true);
    if unusable {
        return Err("the new blockdevice intended to use for replacement in invalid".into());
    }
    let capacity = |bd: &str| facts.block_devices.get(bd).map(|d| d.spec.capacity.storage);
    let not_found = |bd: &str| format!("blockdevices.openebs.io \"{bd}\" not found");
    let new_cap = capacity(new_bd).ok_or_else(|| {
        format!(
            "error: failed to get capacity of replaced block device: {new_bd}: {}",
            not_found(new_bd)
        )
    })?;
    let old_cap = capacity(old_bd).ok_or_else(|| {
        format!(
            "error: failed to get capacity of existing block device: {old_bd}: {}",
            not_found(old_bd)
        )
    })?;
    if new_cap < old_cap {
        return Err(format!(
            "error: capacity of replacing block device {{{new_bd}:{new_cap}}} should be greater than or equal to existing block device {{{old_bd}:{old_cap}}}"
        ));
    }
    Ok((new_bd, old_bd))
}

/// CU-6 over every expansion candidate of both categories (part A.6: the Go operator keeps only one
/// category's candidates, at random).
fn expansion(
    old_cspc: &CStorPoolCluster,
    categories: &[Category<'_>],
    facts: &CspcFacts,
) -> Result<(), String> {
    let cspc = old_cspc.metadata.name.as_deref().unwrap_or_default();
    let mut candidates: Vec<&str> = Vec::new();
    for cat in categories {
        if cat.raid_type == pool_type::STRIPE
            && let (Some(old_rg), Some(new_rg)) = (cat.old.first(), cat.new.first())
        {
            let old_bds = bd_names(std::slice::from_ref(old_rg));
            candidates.extend(
                bd_names(std::slice::from_ref(new_rg))
                    .into_iter()
                    .filter(|b| !old_bds.contains(b)),
            );
        } else {
            let old_bds: BTreeSet<&str> = bd_names(cat.old).into_iter().collect();
            for rg in cat.new {
                let bds = bd_names(std::slice::from_ref(rg));
                if bds.iter().all(|b| !old_bds.contains(b)) {
                    candidates.extend(bds);
                }
            }
        }
    }
    for bd in candidates {
        let elsewhere = claimed_elsewhere(cspc, bd, facts)
            .map_err(|e| format!("failed to get claim of block device {bd}: {e}"))?;
        let predecessor = is_predecessor(old_cspc, bd, facts)
            .map_err(|e| format!("failed to get claim of block device {bd}: {e}"))?;
        if elsewhere || predecessor {
            return Err(format!("can not use blockdevice {bd} validation failed"));
        }
    }
    Ok(())
}

/// The tag rules of the replacement claim, checked here so the user hears of
/// them at once; the claim itself is created by the cspc-operator (part A.3).
fn replacement_claim_allowed(
    cspc: &CStorPoolCluster,
    bd: &str,
    facts: &CspcFacts,
) -> Result<(), String> {
    let Some(device) = facts.block_devices.get(bd) else {
        return Err(format!("blockdevices.openebs.io \"{bd}\" not found"));
    };
    let Some(tag) = device
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::BLOCK_DEVICE_TAG))
    else {
        return Ok(());
    };
    let tag = tag.trim();
    if tag.is_empty() {
        return Err(format!(
            "failed to create block device claim for bd {{{bd}}} as it has empty value for bd tag"
        ));
    }
    let allowed = cspc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::ALLOWED_BD_TAGS))
        .map(String::as_str)
        .unwrap_or_default();
    if !allowed
        .split(',')
        .filter(|t| !t.is_empty())
        .any(|t| t == tag)
    {
        return Err(format!(
            "cannot use bd {{{bd}}} as it has tag {tag} but cspc has allowed bd tags as {allowed}"
        ));
    }
    Ok(())
}
