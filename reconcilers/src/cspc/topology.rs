//! What each CSPI should look like: the CSPC defaults applied to a pool's config, pool spec ↔
//! CSPI pairing, orphans, and the desired CSPI spec from (pool spec, current CSPI, claims):
//! groups are appended, and disks swapped in place, only once every claim they need is Bound.

use std::collections::{BTreeMap, BTreeSet};

use cstor_api::cstor_v1::{
    CStorPoolClusterSpec, CStorPoolInstance, CStorPoolInstanceBlockDevice, CStorPoolInstanceSpec,
    PoolSpec, RaidGroup, pool_type,
};
use kube::ResourceExt;

use super::claim::ClaimStatus;

/// Which CSPI each pool spec has, and the CSPIs no pool spec has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairing {
    /// Per pool spec (same index): the name of its CSPI, if one exists.
    pub pools: Vec<Option<String>>,
    /// CSPIs that no pool spec pairs with (sorted by name).
    pub orphans: Vec<String>,
}

/// Pairs pool specs (with their resolved hostnames; `None` = unresolved) with CSPIs: first by
/// hostname (`spec.hostName`), then by a shared data BlockDevice. Pools are
/// walked in spec order and CSPIs in name order, so the result is deterministic; each CSPI
/// pairs with at most one pool.
pub fn pair(
    pools: &[PoolSpec],
    hostnames: &[Option<String>],
    cspis: &[CStorPoolInstance],
) -> Pairing {
    let mut sorted: Vec<&CStorPoolInstance> = cspis.iter().collect();
    sorted.sort_by_key(|c| c.name_any());
    let mut taken = vec![false; sorted.len()];
    let mut out = vec![None; pools.len()];
    for (i, host) in hostnames.iter().enumerate().take(pools.len()) {
        let Some(host) = host else { continue };
        if let Some(j) = (0..sorted.len()).find(|&j| !taken[j] && &sorted[j].spec.host_name == host)
        {
            taken[j] = true;
            out[i] = Some(sorted[j].name_any());
        }
    }
    for (i, pool) in pools.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let mine: BTreeSet<&str> = pool
            .data_raid_groups
            .iter()
            .flat_map(RaidGroup::block_device_names)
            .collect();
        let shares = |c: &CStorPoolInstance| {
            c.spec
                .data_raid_groups
                .iter()
                .flat_map(RaidGroup::block_device_names)
                .any(|b| mine.contains(b))
        };
        if let Some(j) = (0..sorted.len()).find(|&j| !taken[j] && shares(sorted[j])) {
            taken[j] = true;
            out[i] = Some(sorted[j].name_any());
        }
    }
    let orphans = sorted
        .iter()
        .zip(&taken)
        .filter(|(_, t)| !**t)
        .map(|(c, _)| c.name_any())
        .collect();
    Pairing {
        pools: out,
        orphans,
    }
}

/// The orphans that may be de-provisioned now: none while any pool's node is unresolved
/// (its CSPI would look orphaned only because the node can't be found), and none with
/// volume replicas on them (`replicas`: CSPI name → CVR count). Returns (delete, blocked).
pub fn orphans_to_delete(
    pairing: &Pairing,
    hostnames: &[Option<String>],
    replicas: &BTreeMap<String, usize>,
) -> (Vec<String>, Vec<(String, usize)>) {
    if hostnames.iter().any(Option::is_none) {
        return (Vec::new(), Vec::new());
    }
    let mut delete = Vec::new();
    let mut blocked = Vec::new();
    for o in &pairing.orphans {
        match replicas.get(o).copied().unwrap_or(0) {
            0 => delete.push(o.clone()),
            n => blocked.push((o.clone(), n)),
        }
    }
    (delete, blocked)
}

/// A claim the controller must create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    pub block_device: String,
    /// The BD this one replaces (annotation `openebs.io/bd-predecessor`).
    pub predecessor: Option<String>,
}

/// A BlockDevice the pool waits for, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingClaim {
    pub block_device: String,
    /// This CSPC's claim on it (existing or about to be made), when known.
    pub claim: Option<String>,
    pub reason: String,
}

/// The desired CSPI spec and what it waits for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredCspi {
    /// The spec to apply; `None` for a new pool whose claims are not all Bound yet.
    pub spec: Option<CStorPoolInstanceSpec>,
    /// Claims to create now.
    pub claims: Vec<ClaimRequest>,
    /// BlockDevices not usable yet (in spec order).
    pub pending: Vec<PendingClaim>,
}

impl DesiredCspi {
    /// Records what `bd` needs; `true` when it is usable now.
    fn need(
        &mut self,
        bd: &str,
        predecessor: Option<&str>,
        claims: &BTreeMap<String, ClaimStatus>,
    ) -> bool {
        let status = claims.get(bd).cloned().unwrap_or(ClaimStatus::Pending {
            claim: None,
            reason: "BlockDevice not found".into(),
        });
        match status {
            ClaimStatus::Bound { .. } => true,
            ClaimStatus::Missing { claim } => {
                self.claims.push(ClaimRequest {
                    block_device: bd.to_string(),
                    predecessor: predecessor.map(String::from),
                });
                self.pending.push(PendingClaim {
                    block_device: bd.to_string(),
                    claim: Some(claim),
                    reason: "claim created, waiting for it to be bound".into(),
                });
                false
            }
            ClaimStatus::Pending { claim, reason } => {
                self.pending.push(PendingClaim {
                    block_device: bd.to_string(),
                    claim,
                    reason,
                });
                false
            }
        }
    }

    /// `need` for every BD of `group` (all are recorded); `true` when all are usable.
    fn need_all<'a>(
        &mut self,
        bds: impl IntoIterator<Item = &'a str>,
        claims: &BTreeMap<String, ClaimStatus>,
    ) -> bool {
        let mut all = true;
        for bd in bds {
            all &= self.need(bd, None, claims);
        }
        all
    }
}

fn names(g: &RaidGroup) -> Vec<&str> {
    g.block_device_names().collect()
}

fn fresh(g: &RaidGroup) -> RaidGroup {
    RaidGroup {
        block_devices: g
            .block_devices
            .iter()
            .map(|b| CStorPoolInstanceBlockDevice {
                block_device_name: b.block_device_name.clone(),
                ..Default::default()
            })
            .collect(),
    }
}

/// Merges the pool's groups into the CSPI's current groups (spec order kept):
/// - a pool group that shares a BD with a current group: equal → kept; exactly one BD
///   different → replacement; (stripe only) a superset → its new BDs appended, all at once;
/// - a pool group sharing nothing: a replacement of a same-size unmatched current group that
///   differs in exactly one BD (single-disk groups), else a new group, appended when all its
///   claims are Bound.
fn merge_groups(
    pool_groups: &[RaidGroup],
    current: &[RaidGroup],
    stripe: bool,
    claims: &BTreeMap<String, ClaimStatus>,
    out: &mut DesiredCspi,
) -> Vec<RaidGroup> {
    let mut result: Vec<RaidGroup> = current.to_vec();
    let mut matched = vec![false; current.len()];
    let mut pairs: Vec<(usize, Option<usize>)> = Vec::new();
    for (gi, g) in pool_groups.iter().enumerate() {
        let gn: BTreeSet<&str> = names(g).into_iter().collect();
        let h = (0..current.len())
            .find(|&h| !matched[h] && names(&current[h]).iter().any(|b| gn.contains(b)));
        if let Some(h) = h {
            matched[h] = true;
        }
        pairs.push((gi, h));
    }
    // Single-disk (or otherwise fully swapped-by-one) groups: pair by "differs in one BD".
    for pair in pairs.iter_mut().filter(|p| p.1.is_none()) {
        let g = &pool_groups[pair.0];
        let h = (0..current.len()).find(|&h| {
            !matched[h] && {
                let (extra, missing) = diff(g, &current[h]);
                extra.len() == 1 && missing.len() == 1
            }
        });
        if let Some(h) = h {
            matched[h] = true;
            pair.1 = Some(h);
        }
    }
    for (gi, h) in pairs {
        let g = &pool_groups[gi];
        match h {
            Some(h) => {
                let (extra, missing) = diff(g, &current[h]);
                if extra.is_empty() {
                    continue;
                }
                if extra.len() == 1 && missing.len() == 1 {
                    let (new, old) = (extra[0], missing[0]);
                    if out.need(new, Some(old), claims) {
                        for b in &mut result[h].block_devices {
                            if b.block_device_name == old {
                                *b = CStorPoolInstanceBlockDevice {
                                    block_device_name: new.to_string(),
                                    ..Default::default()
                                };
                            }
                        }
                    }
                } else if stripe
                    && missing.is_empty()
                    && out.need_all(extra.iter().copied(), claims)
                {
                    result[h].block_devices.extend(extra.iter().map(|b| {
                        CStorPoolInstanceBlockDevice {
                            block_device_name: b.to_string(),
                            ..Default::default()
                        }
                    }));
                }
                // Any other difference (disks removed, several swapped) is not a supported
                // edit (the webhook denies it): the CSPI keeps its group.
            }
            None => {
                if out.need_all(names(g), claims) {
                    result.push(fresh(g));
                }
            }
        }
    }
    result
}

/// (BDs of `g` not in `h`, BDs of `h` not in `g`), each in its group's order.
fn diff<'a>(g: &'a RaidGroup, h: &'a RaidGroup) -> (Vec<&'a str>, Vec<&'a str>) {
    let gn = names(g);
    let hn = names(h);
    let extra = gn.iter().filter(|b| !hn.contains(b)).copied().collect();
    let missing = hn.iter().filter(|b| !gn.contains(b)).copied().collect();
    (extra, missing)
}

/// The desired CSPI spec for `pool` on `hostname`, from the CSPI's `current` spec (`None`:
/// not created yet) and the state of every BD's claim.
pub fn desired_cspi_spec(
    cspc: &CStorPoolClusterSpec,
    pool: &PoolSpec,
    hostname: &str,
    current: Option<&CStorPoolInstanceSpec>,
    claims: &BTreeMap<String, ClaimStatus>,
) -> DesiredCspi {
    let config = cspc.effective_pool_config(pool);
    let mut out = DesiredCspi::default();
    let Some(current) = current else {
        if out.need_all(pool.block_device_names(), claims) {
            out.spec = Some(CStorPoolInstanceSpec {
                host_name: hostname.to_string(),
                node_selector: pool.node_selector.clone(),
                pool_config: Some(config),
                data_raid_groups: pool.data_raid_groups.iter().map(fresh).collect(),
                write_cache_raid_groups: pool
                    .write_cache_raid_groups
                    .as_ref()
                    .map(|gs| gs.iter().map(fresh).collect()),
            });
        }
        return out;
    };
    let data = merge_groups(
        &pool.data_raid_groups,
        &current.data_raid_groups,
        config.data_raid_group_type == pool_type::STRIPE,
        claims,
        &mut out,
    );
    let write_cache = match (
        &pool.write_cache_raid_groups,
        &current.write_cache_raid_groups,
    ) {
        (None, None) => None,
        (p, c) => Some(merge_groups(
            p.as_deref().unwrap_or_default(),
            c.as_deref().unwrap_or_default(),
            config.write_cache_group_type == pool_type::STRIPE,
            claims,
            &mut out,
        )),
    };
    out.spec = Some(CStorPoolInstanceSpec {
        host_name: hostname.to_string(),
        node_selector: pool.node_selector.clone(),
        pool_config: Some(config),
        data_raid_groups: data,
        write_cache_raid_groups: write_cache,
    });
    out
}
