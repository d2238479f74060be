//! The pool-manager's decisions as pure functions of the CSPI, the BlockDevices and the parsed
//! `zpool status` / `zfs` output (docs/pools.md): what to replace, what to
//! add, whether a resilver is done, which disks are unavailable, read-only, status and
//! conditions. The async side only runs what these return.

use cstor_api::common::{ConditionStatus, PoolCondition};
use cstor_api::cstor_v1::cspc::RaidGroup;
use cstor_api::cstor_v1::cspi::ZFSCapacityAttributes;
use cstor_api::cstor_v1::cspi::{
    CStorPoolInstanceCapacity, CStorPoolInstanceSpec, CStorPoolInstanceStatus,
};
use std::collections::HashMap;

use cstor_api::keys::annotations;
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};
use cstor_runtime::reasons::cspi as cspi_reasons;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::pool_manager::zpool::{PoolStatus, Vdev};

pub use cstor_api::cstor_v1::cspc::DEFAULT_RO_THRESHOLD;

/// A BlockDevice's device paths: every devlink, in order, then `spec.path`.
/// Commands use element 0; topology matching accepts any.
pub fn bd_paths(bd: &BlockDevice) -> Vec<String> {
    bd.spec
        .devlinks
        .iter()
        .flat_map(|d| d.links.iter().cloned())
        .chain(std::iter::once(bd.spec.path.clone()))
        .filter(|p| !p.is_empty())
        .collect()
}

/// The paths of `bd` that may reach `zpool`, or why none may: the BlockDevice must be this
/// `node`'s, and every path absolute, plain (no `..`, no `.`, no empty part) and under one
/// of `dirs` (`/dev`, the sparse directory). BlockDevices are written by whoever may write
/// them; the privileged pool-manager does not hand `zpool` an option or another node's disk.
pub fn checked_paths(
    bd: &BlockDevice,
    node: &str,
    dirs: &[std::path::PathBuf],
) -> Result<Vec<String>, String> {
    use std::path::Path;
    let name = bd.metadata.name.as_deref().unwrap_or_default();
    // The node by name or by hostname label (they can differ in a cluster).
    let hostname = bd
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(cstor_api::keys::labels::HOSTNAME))
        .map(String::as_str)
        .unwrap_or_default();
    let node_name = bd.spec.node_attributes.node_name.as_str();
    if hostname != node && node_name != node {
        return Err(format!(
            "BlockDevice {name} is on node {:?}, not on this node {node}",
            if hostname.is_empty() {
                node_name
            } else {
                hostname
            }
        ));
    }
    let paths = bd_paths(bd);
    if paths.is_empty() {
        return Err(format!("BlockDevice {name} has no path"));
    }
    for p in &paths {
        let path = Path::new(p);
        // Segment by segment (Path::components would hide a `.`).
        let plain = p.starts_with('/')
            && !p.contains('\0')
            && p.split('/')
                .skip(1)
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if !plain {
            return Err(format!(
                "BlockDevice {name}: path {p:?} is not a plain absolute path"
            ));
        }
        if !dirs
            .iter()
            .any(|d| path.starts_with(d) && path != d.as_path())
        {
            return Err(format!(
                "BlockDevice {name}: path {p} is not under {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(paths)
}

/// The `-d` directory for a scan import: the parent of a sparse file; `None` for a `/dev`
/// path (zpool then scans `/dev` itself).
pub fn import_dir(first_path: &str) -> Option<String> {
    if first_path.starts_with("/dev") {
        return None;
    }
    let parent = std::path::Path::new(first_path).parent()?;
    let s = parent.to_str()?;
    (!s.is_empty()).then(|| s.to_string())
}

/// The Go operators' step 5: at least one data group, a data type, a write-cache type when there are
/// write-cache groups, and no empty group.
pub fn validate(spec: &CStorPoolInstanceSpec) -> Result<(), String> {
    if spec.data_raid_groups.is_empty() {
        return Err("no data raid group in the spec".into());
    }
    let config = spec.pool_config.as_ref();
    if config.is_none_or(|c| c.data_raid_group_type.is_empty()) {
        return Err("poolConfig.dataRaidGroupType is not set".into());
    }
    let caches = spec.write_cache_raid_groups.as_deref().unwrap_or_default();
    if !caches.is_empty() && config.is_none_or(|c| c.write_cache_group_type.is_empty()) {
        return Err("write-cache raid groups but poolConfig.writeCacheGroupType is not set".into());
    }
    for (i, g) in spec.data_raid_groups.iter().enumerate() {
        if g.block_devices.is_empty() {
            return Err(format!("data raid group {i} has no block device"));
        }
    }
    for (i, g) in caches.iter().enumerate() {
        if g.block_devices.is_empty() {
            return Err(format!("write-cache raid group {i} has no block device"));
        }
    }
    Ok(())
}

/// Data (`zpool add POOL …`) or write cache (`zpool add POOL log …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Data,
    Log,
}

impl Category {
    /// The word in the Go operators' messages.
    pub fn word(self) -> &'static str {
        match self {
            Category::Data => "data",
            Category::Log => "log",
        }
    }
}

/// The CSPI's raid groups with their category and type, data first, in spec order.
pub fn spec_groups(spec: &CStorPoolInstanceSpec) -> Vec<(Category, String, &RaidGroup)> {
    let config = spec.pool_config.as_ref();
    let data_type = config
        .map(|c| c.data_raid_group_type.clone())
        .unwrap_or_default();
    let log_type = config
        .map(|c| c.write_cache_group_type.clone())
        .unwrap_or_default();
    let data = spec
        .data_raid_groups
        .iter()
        .map(|g| (Category::Data, data_type.clone(), g));
    let logs = spec
        .write_cache_raid_groups
        .iter()
        .flatten()
        .map(|g| (Category::Log, log_type.clone(), g));
    data.chain(logs).collect()
}

/// Every disk (leaf vdev) of the pool, with its parent's name (`mirror-0`, `replacing-0`,
/// `logs`, or the pool itself for a stripe disk).
pub fn leaves(status: &PoolStatus) -> Vec<(&Vdev, &str)> {
    fn walk<'a>(v: &'a Vdev, parent: &'a str, out: &mut Vec<(&'a Vdev, &'a str)>) {
        if v.children.is_empty() {
            out.push((v, parent));
        } else {
            for c in &v.children {
                walk(c, &v.name, out);
            }
        }
    }
    let mut out = Vec::new();
    for c in &status.root.children {
        walk(c, &status.root.name, &mut out);
    }
    out
}

/// The leaf matching any of `paths` (case-insensitive, as the Go operator compares), and its parent.
pub fn find_leaf<'a>(status: &'a PoolStatus, paths: &[String]) -> Option<(&'a Vdev, &'a str)> {
    leaves(status)
        .into_iter()
        .find(|(v, _)| paths.iter().any(|p| p.eq_ignore_ascii_case(&v.name)))
}

/// Whether the disk with one of `new_paths` is fully resilvered: no resilver is running, the
/// disk is ONLINE and it is no longer paired with the old disk under `replacing-N` (zfs-fuse
/// prints "resilver completed" a moment before it detaches the old disk).
pub fn resilver_done(status: &PoolStatus, new_paths: &[String]) -> bool {
    if status.resilvering() {
        return false;
    }
    match find_leaf(status, new_paths) {
        Some((disk, parent)) => disk.state == "ONLINE" && !parent.starts_with("replacing"),
        None => false,
    }
}

/// What to do about one replacement BD (its BDC names a predecessor), the Go operators' replacePoolVdev.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplaceStep {
    /// Run `zpool replace POOL old new`.
    Replace { old: String, new: String },
    /// The new disk is in the pool; the resilver is still running.
    Resilvering,
    /// The new disk is in the pool and resilvered: clean up the claims.
    Done,
    /// Neither disk is usable.
    Error(String),
}

/// The Go operators' replacePoolVdev against the parsed topology.
pub fn replace_step(
    status: &PoolStatus,
    old_paths: &[String],
    new_paths: &[String],
) -> ReplaceStep {
    let Some(new) = new_paths.first() else {
        return ReplaceStep::Error("the new block device has no device path".into());
    };
    if find_leaf(status, new_paths).is_some() {
        return if resilver_done(status, new_paths) {
            ReplaceStep::Done
        } else {
            ReplaceStep::Resilvering
        };
    }
    match find_leaf(status, old_paths) {
        // Use the name the pool knows the old disk by.
        Some((old, _)) => ReplaceStep::Replace {
            old: old.name.clone(),
            new: new.clone(),
        },
        None => ReplaceStep::Error("Old device links are not in use by pool".into()),
    }
}

/// One BD of a spec group, as expansion sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDisk {
    pub name: String,
    pub paths: Vec<String>,
    /// Its claim names a predecessor: the replacement path owns it, expansion must not add it.
    pub replacing: bool,
}

/// A `zpool add` expansion wants (the Go operators' updateNewVdevFromCSPI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addition {
    pub category: Category,
    pub group_type: String,
    /// The BDs added.
    pub block_devices: Vec<String>,
    /// Their path[0], in spec order.
    pub paths: Vec<String>,
    /// A whole new raid group (else: disks added to a stripe group).
    pub whole_group: bool,
}

impl Addition {
    /// `zpool add POOL [log] [type unless stripe] paths…`; a partial stripe add has no type.
    pub fn argv(&self, pool: &str) -> Vec<String> {
        let mut argv: Vec<String> = vec!["zpool".into(), "add".into(), pool.into()];
        if self.category == Category::Log {
            argv.push("log".into());
        }
        if self.whole_group && self.group_type != "stripe" {
            argv.push(self.group_type.clone());
        }
        argv.extend(self.paths.iter().cloned());
        argv
    }

    /// The Normal `Pool Expansion` event message.
    pub fn message(&self) -> String {
        let what = if self.whole_group {
            "RaidGroup With BlockDevices"
        } else {
            "BlockDevices"
        };
        format!(
            "Pool Expanded Successfully By Adding {what}: [{}] device type: {} pool type: {}",
            self.block_devices.join(" "),
            self.category.word(),
            self.group_type
        )
    }
}

/// The additions a spec wants against the topology: a group with no disk in the pool is added
/// whole; a stripe group partly present gets its missing disks. Groups holding a disk under
/// replacement are left to the replacement path.
pub fn expansions(
    status: &PoolStatus,
    groups: &[(Category, String, Vec<GroupDisk>)],
) -> Vec<Addition> {
    let mut out = Vec::new();
    for (category, group_type, disks) in groups {
        if disks.iter().any(|d| d.replacing) {
            continue;
        }
        let missing: Vec<&GroupDisk> = disks
            .iter()
            .filter(|d| find_leaf(status, &d.paths).is_none())
            .collect();
        if missing.is_empty() {
            continue;
        }
        let whole_group = missing.len() == disks.len();
        if !whole_group && group_type != "stripe" {
            continue;
        }
        let mut paths = Vec::new();
        for d in &missing {
            match d.paths.first() {
                Some(p) => paths.push(p.clone()),
                // No path: nothing sensible to add for this group now.
                None => break,
            }
        }
        if paths.len() != missing.len() {
            continue;
        }
        out.push(Addition {
            category: *category,
            group_type: group_type.clone(),
            block_devices: missing.iter().map(|d| d.name.clone()).collect(),
            paths,
            whole_group,
        });
    }
    out
}

/// BDs whose disk is in the pool but not ONLINE, with the state zpool prints (the Go operators'
/// DiskUnavailable, from `zpool status` leaf states since zfs-fuse has no `zpool dump`).
pub fn unavailable_disks(
    status: &PoolStatus,
    bds: &[(String, Vec<String>)],
) -> Vec<(String, String)> {
    bds.iter()
        .filter_map(|(name, paths)| {
            let (disk, _) = find_leaf(status, paths)?;
            (disk.state != "ONLINE").then(|| (name.clone(), disk.state.clone()))
        })
        .collect()
}

/// What to do with the pool's read-only flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOnlyChange {
    None,
    SetOn,
    SetOff,
}

/// The Go operators' updateROMode: used% ≥ limit (limit ≠ 100) → read-only; otherwise not. A zero total
/// counts as 0 % used.
pub fn read_only(
    limit: Option<i32>,
    data_used: u64,
    total: u64,
    writers_left: u64,
    currently: bool,
) -> ReadOnlyChange {
    let limit = limit.unwrap_or(DEFAULT_RO_THRESHOLD);
    let pct = if total == 0 {
        0
    } else {
        u128::from(data_used) * 100 / u128::from(total)
    };
    // With the headroom in place ZFS refuses writers a little before `limit` % exactly (it
    // keeps room for metadata): under 1 % of the pool left to writers counts as reached.
    let starved = total > 0 && u128::from(writers_left) * 100 < u128::from(total);
    let over = limit != 100 && (pct >= u128::try_from(limit.max(0)).unwrap_or(0) || starved);
    match (over, currently) {
        (true, false) => ReadOnlyChange::SetOn,
        (false, true) => ReadOnlyChange::SetOff,
        _ => ReadOnlyChange::None,
    }
}

/// The dataset whose reservation keeps a pool's headroom: writers get ENOSPC at the
/// roThresholdLimit, as fast as ZFS itself, however fast they write.
pub const HEADROOM_DATASET: &str = "cstor-headroom";

/// The headroom (bytes) for `total` usable bytes: `(100 - limit)` % of it; none at 100.
pub fn headroom_bytes(limit: Option<i32>, total: u64) -> u64 {
    let limit = u128::try_from(limit.unwrap_or(DEFAULT_RO_THRESHOLD).clamp(0, 100)).unwrap_or(100);
    u64::try_from(u128::from(total) * (100 - limit) / 100).unwrap_or(u64::MAX)
}

/// What to do about the headroom dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadroomStep {
    None,
    /// Create it with this reservation.
    Create(u64),
    /// Set its reservation to this.
    Set(u64),
}

/// The step that brings the headroom reservation (`current`, `None`: no dataset) to `want`,
/// given the pool's `total` usable bytes and what writers have `left`. A change smaller than
/// 1 % of the pool is not made (usage moves the total a little all the time); a raise is
/// capped at what is left (the data may already be past the threshold).
pub fn headroom_step(current: Option<u64>, want: u64, total: u64, left: u64) -> HeadroomStep {
    let have = current.unwrap_or(0);
    let cap = |w: u64| w.min(have.saturating_add(left));
    if current.is_none() {
        return if want == 0 {
            HeadroomStep::None
        } else {
            HeadroomStep::Create(cap(want))
        };
    }
    let tolerance = total / 100;
    let target = cap(want);
    if target.abs_diff(have) > tolerance || (want == 0 && have != 0) {
        HeadroomStep::Set(target)
    } else {
        HeadroomStep::None
    }
}

/// The PoolReadOnly condition for the read-only flag; `None` when the pool never was
/// read-only (no condition to clear).
pub fn read_only_condition(
    read_only: bool,
    data_used: u64,
    total: u64,
    limit: Option<i32>,
    current: &[PoolCondition],
) -> Option<Wanted> {
    use cstor_api::cstor_v1::cspi::condition_type::POOL_READ_ONLY;
    let limit = limit.unwrap_or(DEFAULT_RO_THRESHOLD);
    let pct = if total == 0 {
        0
    } else {
        u128::from(data_used) * 100 / u128::from(total)
    };
    if read_only {
        return Some(Wanted::new(
            POOL_READ_ONLY,
            ConditionStatus::True,
            cspi_reasons::THRESHOLD_REACHED,
            format!(
                "{pct}% of the pool is used, at its roThresholdLimit of {limit}%: writes are refused until space is freed or the pool is expanded"
            ),
        ));
    }
    condition(current, POOL_READ_ONLY).map(|_| {
        Wanted::new(
            POOL_READ_ONLY,
            ConditionStatus::False,
            cspi_reasons::BELOW_THRESHOLD,
            format!("{pct}% of the pool is used, under its roThresholdLimit of {limit}%"),
        )
    })
}

/// `status.capacity` from `zfs get -Hp used,available`: exact integer bytes; zfs-fuse has no
/// logicalused, so logicalUsed = used.
pub fn capacity(used: u64, available: u64) -> CStorPoolInstanceCapacity {
    let q = |n: u64| Quantity(n.to_string());
    CStorPoolInstanceCapacity {
        used: q(used),
        free: q(available),
        total: q(used.saturating_add(available)),
        zfs: ZFSCapacityAttributes {
            logical_used: q(used),
        },
    }
}

/// A condition to set: everything but the times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub type_: &'static str,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

impl Wanted {
    pub fn new(
        type_: &'static str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Wanted {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Sets a condition (replacing one of its type) with the shared kit's rule:
/// `lastTransitionTime` moves only when the status flips, `lastUpdateTime` when anything but
/// the times changed. Returns whether the condition changed.
pub fn set_condition(
    conditions: &mut Vec<PoolCondition>,
    wanted: Wanted,
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let new = PoolCondition {
        type_: wanted.type_.to_string(),
        status: wanted.status,
        last_update_time: None,
        last_transition_time: None,
        reason: wanted.reason,
        message: wanted.message,
        observed_generation: generation,
    };
    cstor_runtime::conditions::set_condition(conditions, new, now)
}

/// The condition of `type_`, if any.
pub fn condition<'a>(conditions: &'a [PoolCondition], type_: &str) -> Option<&'a PoolCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether two statuses differ in anything but condition times (then it must be written).
pub fn status_differs(
    live: Option<&CStorPoolInstanceStatus>,
    new: &CStorPoolInstanceStatus,
) -> bool {
    fn strip(s: &CStorPoolInstanceStatus) -> CStorPoolInstanceStatus {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_update_time = None;
            c.last_transition_time = None;
        }
        s
    }
    match live {
        None => true,
        Some(live) => strip(live) != strip(new),
    }
}

/// The status the pool-manager writes after an update pass: zpool health as phase, capacity
/// (kept from `previous` when `zfs get` failed, e.g. on a suspended pool), the read-only flag,
/// replica counts and the merged conditions.
///
/// `healthyReplicas` is 0: replicas (CVRs) are not served by this pool-manager yet, so none is
/// known healthy; the replica controller will fill it.
pub fn build_status(
    health: &str,
    capacity: Option<CStorPoolInstanceCapacity>,
    previous: Option<&CStorPoolInstanceStatus>,
    read_only: bool,
    provisioned_replicas: i32,
    conditions: Vec<PoolCondition>,
) -> CStorPoolInstanceStatus {
    CStorPoolInstanceStatus {
        conditions,
        phase: health.to_string(),
        capacity: capacity.or_else(|| previous.and_then(|p| p.capacity.clone())),
        read_only,
        provisioned_replicas,
        healthy_replicas: 0,
    }
}

/// The DiskUnavailable condition for the unavailable list; `None` when all disks are
/// available and the condition never existed.
pub fn disk_unavailable_condition(
    unavailable: &[(String, String)],
    existing: bool,
) -> Option<Wanted> {
    use cstor_api::cstor_v1::cspi::condition_type::DISK_UNAVAILABLE;
    if unavailable.is_empty() {
        return existing.then(|| {
            Wanted::new(
                DISK_UNAVAILABLE,
                ConditionStatus::False,
                cspi_reasons::DISKS_AVAILABLE,
                "",
            )
        });
    }
    let names: Vec<&str> = unavailable.iter().map(|(n, _)| n.as_str()).collect();
    Some(Wanted::new(
        DISK_UNAVAILABLE,
        ConditionStatus::True,
        cspi_reasons::DISKS_UNAVAILABLE,
        format!(
            "Following disks [{}] are unavailable/faulted",
            names.join(" ")
        ),
    ))
}

/// The replacements the spec asks for: each BD whose claim names a predecessor, as
/// `(new, old)`; BDs without a claim are reported as errors (the claim binding is behind).
pub fn replacements(
    spec: &CStorPoolInstanceSpec,
    claims: &[BlockDeviceClaim],
) -> (Vec<(String, String)>, Vec<String>) {
    let mut wanted = Vec::new();
    let mut errors = Vec::new();
    for bd in spec.block_device_names() {
        match claims.iter().find(|c| c.spec.block_device_name == bd) {
            None => errors.push(format!("no BlockDeviceClaim for BlockDevice {bd}")),
            Some(claim) => {
                if let Some(old) = claim.annotations().get(annotations::BD_PREDECESSOR) {
                    wanted.push((bd.to_string(), old.clone()));
                }
            }
        }
    }
    (wanted, errors)
}

/// The spec's groups as expansion sees them: each disk with its paths and whether a
/// replacement owns it.
pub fn spec_disks(
    spec: &CStorPoolInstanceSpec,
    paths: &HashMap<String, Vec<String>>,
    claims: &[BlockDeviceClaim],
) -> Vec<(Category, String, Vec<GroupDisk>)> {
    spec_groups(spec)
        .into_iter()
        .map(|(category, group_type, group)| {
            let disks = group
                .block_devices
                .iter()
                .map(|b| GroupDisk {
                    name: b.block_device_name.clone(),
                    paths: paths.get(&b.block_device_name).cloned().unwrap_or_default(),
                    replacing: claims
                        .iter()
                        .find(|c| c.spec.block_device_name == b.block_device_name)
                        .is_some_and(|c| c.annotations().contains_key(annotations::BD_PREDECESSOR)),
                })
                .collect();
            (category, group_type, disks)
        })
        .collect()
}

/// The Go operators' "no error" spelling in condition messages.
fn errors_or_nil(errors: &[String]) -> String {
    if errors.is_empty() {
        "<nil>".to_string()
    } else {
        errors.join("; ")
    }
}

/// The DiskReplacement condition after a pass over `wanted` replacements of which
/// `in_progress` are not finished; `None` to leave it as it is. With nothing to replace, a
/// condition still True (the cleanup ran but its status write did not) turns False.
pub fn replacement_condition(
    wanted: usize,
    in_progress: usize,
    errors: &[String],
    current: &[PoolCondition],
) -> Option<Wanted> {
    use cstor_api::cstor_v1::cspi::condition_type::DISK_REPLACEMENT;
    let succeeded = || {
        Wanted::new(
            DISK_REPLACEMENT,
            ConditionStatus::False,
            cspi_reasons::REPLACEMENT_SUCCEEDED,
            "Blockdevice replacement was successfully completed",
        )
    };
    if wanted == 0 {
        let stale =
            condition(current, DISK_REPLACEMENT).is_some_and(|c| c.status == ConditionStatus::True);
        return stale.then(succeeded);
    }
    if in_progress == 0 {
        return Some(succeeded());
    }
    Some(Wanted::new(
        DISK_REPLACEMENT,
        ConditionStatus::True,
        cspi_reasons::REPLACEMENT_IN_PROGRESS,
        format!(
            "Resilvering {in_progress} no.of blockdevices... because of blockdevice replacement error: {}",
            errors_or_nil(errors)
        ),
    ))
}

/// The PoolExpansion condition after `attempted` `zpool add`s failed with `errors`; `None`
/// to leave it as it is.
pub fn expansion_condition(
    attempted: usize,
    errors: &[String],
    current: &[PoolCondition],
) -> Option<Wanted> {
    use cstor_api::cstor_v1::cspi::condition_type::POOL_EXPANSION;
    if attempted > 0 {
        return Some(Wanted::new(
            POOL_EXPANSION,
            ConditionStatus::True,
            cspi_reasons::EXPANSION_IN_PROGRESS,
            format!(
                "Pool expansion is in progress because of blockdevice/raid group addition error: {}",
                errors_or_nil(errors)
            ),
        ));
    }
    condition(current, POOL_EXPANSION)
        .is_some_and(|c| c.reason != cspi_reasons::EXPANSION_SUCCEEDED)
        .then(|| {
            Wanted::new(
                POOL_EXPANSION,
                ConditionStatus::False,
                cspi_reasons::EXPANSION_SUCCEEDED,
                "Pool expansion was successfull by adding blockdevices/raid groups",
            )
        })
}

/// First lines of a command's stderr, for a condition message (A.7: trimmed).
pub fn trim_message(s: &str) -> String {
    const MAX: usize = 512;
    let s = s.trim();
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Why a pool must not be destroyed now, if it must not: it still holds volume datasets (a
/// replica id property set; `listing` is `zfs list -H -o name,<replica id property> -r POOL`
/// output) or CVRs (`cvrs`, read live) still name it. A deleted CSPI waits with this as its
/// reason instead of taking replicas with it. Other datasets (the headroom, an admin's) do not
/// hold it.
pub fn destroy_blocked(listing: &str, pool: &str, cvrs: &[String]) -> Option<String> {
    let prefix = format!("{pool}/");
    let datasets: Vec<&str> = listing
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next()?.trim();
            let id = cols.next().unwrap_or("-").trim();
            (name.starts_with(&prefix) && !id.is_empty() && id != "-").then_some(name)
        })
        .collect();
    let mut why = Vec::new();
    if !datasets.is_empty() {
        why.push(format!("volume datasets {}", datasets.join(", ")));
    }
    if !cvrs.is_empty() {
        why.push(format!("volume replicas {}", cvrs.join(", ")));
    }
    (!why.is_empty()).then(|| {
        format!(
            "pool {pool} is not destroyed: it still holds {}; delete those volumes (or scale their replicas off this pool) first",
            why.join(" and ")
        )
    })
}
