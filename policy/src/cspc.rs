//! CStorPoolCluster rules (docs/admission.md, with part A's changes: no panics,
//! data groups before write-cache groups, an empty nodeSelector denied).

use std::collections::{BTreeMap, BTreeSet};

use cstor_api::cstor_v1::{CStorPoolCluster, PoolSpec, RaidGroup, pool_type};
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::{claim_state, device_state};

use crate::facts::CspcFacts;
use crate::node::{NodeError, resolve_pool_node};
use crate::verdict::Verdict;

/// HTTP-style code of an invalid CSPC.
pub const CODE_INVALID: u16 = 422;

const COMPRESSIONS: [&str; 7] = ["", "on", "off", "lzjb", "gzip", "zle", "lz4"];
const POOL_TYPES: [&str; 4] = [
    pool_type::STRIPE,
    pool_type::MIRROR,
    pool_type::RAIDZ,
    pool_type::RAIDZ2,
];
const ZFS_MEMBER: &str = "zfs_member";

/// CREATE of a CSPC: `invalid cspc specification: <msg>` (422) at the first failing rule.
pub fn validate_create(cspc: &CStorPoolCluster, facts: &CspcFacts) -> Verdict {
    match cspc_validation(cspc, facts) {
        Ok(()) => Verdict::allow(),
        Err(msg) => Verdict::deny(CODE_INVALID, format!("invalid cspc specification: {msg}")),
    }
}

/// Go's `%v` of a `map[string]string`: `map[k1:v1 k2:v2]`, keys sorted.
pub fn go_map(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", inner.join(" "))
}

/// The apiserver's NotFound text for `<resource> "<name>"`.
fn not_found(resource: &str, name: &str) -> String {
    format!("{resource} \"{name}\" not found")
}

/// CC-1 … CC-B8 in the Go operator's order; `Err` is the `<msg>` of the denial.
pub fn cspc_validation(cspc: &CStorPoolCluster, facts: &CspcFacts) -> Result<(), String> {
    let name = cspc.metadata.name.as_deref().unwrap_or_default();
    if cspc.spec.pools.is_empty() {
        return Err("pools in cspc should have at least one item".into());
    }
    let mut seen = BTreeSet::new();
    let mut duplicates: Vec<&str> = Vec::new();
    for bd in cspc
        .spec
        .pools
        .iter()
        .flat_map(PoolSpec::block_device_names)
    {
        if !seen.insert(bd) && !duplicates.contains(&bd) {
            duplicates.push(bd);
        }
    }
    if !duplicates.is_empty() {
        return Err(format!(
            "invalid cspc: cspc {{{name}}} has duplicate blockdevices entries [{}]",
            duplicates.join(" ")
        ));
    }
    let mut hostnames = BTreeSet::new();
    for pool in &cspc.spec.pools {
        let hostname = resolve_hostname(pool, facts)?;
        if !hostnames.insert(hostname.clone()) {
            return Err(format!("invalid cspc: duplicate node {hostname} entry"));
        }
        pool_spec_validation(name, pool, &hostname, facts)
            .map_err(|msg| format!("invalid pool spec: {msg}"))?;
    }
    Ok(())
}

/// CC-3: the selector must match exactly one Node; its hostname label is the pool's host
/// (crate::node, the rule the cspc-operator applies too). Part A.5: an empty selector (which the
/// Go operator crashes on) is denied, and so is a node without a hostname label.
pub fn resolve_hostname(pool: &PoolSpec, facts: &CspcFacts) -> Result<String, String> {
    resolve_pool_node(&pool.node_selector, &facts.nodes).map_err(|e| match e {
        NodeError::EmptySelector => "pool nodeSelector must not be empty".into(),
        NodeError::NoMatch { .. } | NodeError::Multiple { .. } => {
            let count = match &e {
                NodeError::Multiple { nodes, .. } => nodes.len(),
                _ => 0,
            };
            format!(
                "failed to get node from pool nodeSelector: {{{}}} error: {{invalid no.of nodes {count} from the given node selectors}}",
                go_map(&pool.node_selector),
            )
        }
        NodeError::NoHostname { node, .. } => format!(
            "failed to get node from pool nodeSelector: {{{}}} error: {{node {node} has no {} label}}",
            go_map(&pool.node_selector),
            labels::HOSTNAME
        ),
    })
}

/// CC-P1 … CC-P10.
fn pool_spec_validation(
    cspc: &str,
    pool: &PoolSpec,
    hostname: &str,
    facts: &CspcFacts,
) -> Result<(), String> {
    let config = pool.pool_config.clone().unwrap_or_default();
    let data_type = config.data_raid_group_type.as_str();
    if data_type.is_empty() {
        return Err("missing dataRaidGroupType".into());
    }
    if !POOL_TYPES.contains(&data_type) {
        return Err(format!(
            "unsupported dataRaidGroupType '{data_type}' specified"
        ));
    }
    if !COMPRESSIONS.contains(&config.compression.as_str()) {
        return Err(format!(
            "unsupported compression '{}' specified",
            config.compression
        ));
    }
    let write_cache = pool
        .write_cache_raid_groups
        .as_deref()
        .filter(|groups| !groups.is_empty());
    let wc_type = config.write_cache_group_type.as_str();
    if write_cache.is_some() {
        if wc_type.is_empty() {
            return Err("missing writeCacheGroupType".into());
        }
        if !POOL_TYPES.contains(&wc_type) {
            return Err(format!(
                "unsupported writeCacheGroupType '{wc_type}' specified"
            ));
        }
    }
    if pool.data_raid_groups.is_empty() {
        return Err("at least one raid group should be present on dataRaidGroups".into());
    }
    if data_type == pool_type::STRIPE && pool.data_raid_groups.len() != 1 {
        return Err("stripe dataRaidGroups should have exactly one raidGroup".into());
    }
    for rg in &pool.data_raid_groups {
        raid_group_validation(cspc, rg, data_type, hostname, facts)?;
    }
    if let Some(groups) = write_cache {
        if wc_type == pool_type::STRIPE && groups.len() != 1 {
            return Err("stripe writeCacheRaidGroups should have exactly one raidGroup".into());
        }
        for rg in groups {
            raid_group_validation(cspc, rg, wc_type, hostname, facts)?;
        }
    }
    Ok(())
}

/// Whether `count` is 2^n + `offset` with n ≥ `min_n`.
fn power_of_two_plus(count: usize, offset: usize, min_n: u32) -> bool {
    count
        .checked_sub(offset)
        .is_some_and(|rest| rest.is_power_of_two() && rest.trailing_zeros() >= min_n)
}

/// Disk counts per raid type (CC-R1 … CC-R5), then each disk (CC-R6).
pub fn raid_group_count_validation(count: usize, raid_type: &str) -> Result<(), String> {
    if count == 0 {
        return Err(
            "empty raid group: number of block devices honouring raid type should be specified"
                .into(),
        );
    }
    match raid_type {
        pool_type::MIRROR if !count.is_multiple_of(2) => {
            Err("mirror raid group should have disks in multiple of 2".into())
        }
        pool_type::RAIDZ if !power_of_two_plus(count, 1, 1) => {
            Err("raidz raid group should have disks of the order 2^n+1, where n>0".into())
        }
        // The Go operator's message says "raidz" for raidz2 too; kept byte for byte.
        pool_type::RAIDZ2 if !power_of_two_plus(count, 2, 2) => {
            Err("raidz raid group should have disks of the order 2^n+2, where n>1".into())
        }
        _ => Ok(()),
    }
}

fn raid_group_validation(
    cspc: &str,
    rg: &RaidGroup,
    raid_type: &str,
    hostname: &str,
    facts: &CspcFacts,
) -> Result<(), String> {
    raid_group_count_validation(rg.block_devices.len(), raid_type)?;
    for bd in &rg.block_devices {
        block_device_validation(cspc, &bd.block_device_name, hostname, facts)?;
    }
    Ok(())
}

/// CC-B1 … CC-B8.
fn block_device_validation(
    cspc: &str,
    bd_name: &str,
    hostname: &str,
    facts: &CspcFacts,
) -> Result<(), String> {
    if bd_name.is_empty() {
        return Err("block device name cannot be empty".into());
    }
    let Some(bd) = facts.block_devices.get(bd_name) else {
        return Err(format!(
            "failed to get block device: {{{bd_name}}} details error: {}",
            not_found("blockdevices.openebs.io", bd_name)
        ));
    };
    if bd.status.state != device_state::ACTIVE {
        return Err(format!(
            "block device \"{bd_name}\" is in not in active state"
        ));
    }
    if let Some(fs) = &bd.spec.filesystem
        && !fs.fs_type.is_empty()
        && fs.fs_type != ZFS_MEMBER
    {
        return Err(format!("block device has file system {{{}}}", fs.fs_type));
    }
    let bd_labels = bd.metadata.labels.clone().unwrap_or_default();
    let bd_host = bd_labels.get(labels::HOSTNAME).cloned().unwrap_or_default();
    if bd_host != hostname {
        return Err(format!(
            "block device {bd_name} doesn't belongs to node {bd_host}"
        ));
    }
    if let Some(tag) = bd_labels.get(labels::BLOCK_DEVICE_TAG)
        && tag.trim().is_empty()
    {
        return Err(format!(
            "block device {bd_name} is tagged with a value {tag} and cannot be used"
        ));
    }
    if bd.status.claim_state == claim_state::CLAIMED
        && let Some(claim_ref) = &bd.spec.claim_ref
    {
        let bdc_name = claim_ref.name.clone().unwrap_or_default();
        let Some(bdc) = facts.block_device_claims.get(&bdc_name) else {
            return Err(format!(
                "error: could not get block device claim for block device {{{bd_name}}}: {}",
                not_found("blockdeviceclaims.openebs.io", &bdc_name)
            ));
        };
        let owner = bdc
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::CSTOR_POOL_CLUSTER))
            .map(String::as_str)
            .unwrap_or_default();
        if owner != cspc {
            return Err(format!("error: can't use claimed blockdevice {bd_name}"));
        }
    }
    Ok(())
}
