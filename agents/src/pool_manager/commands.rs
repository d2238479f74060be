//! The zpool command lines of a CStorPoolInstance (docs/pools.md), built as pure
//! data: vdevs in spec order (A.5, the Go operator's order is random), the ZFS dialect of the
//! machine applied (zfs-fuse locally: no lz4), every refusal named.

use cstor_api::cstor_v1::cspc::{PoolConfig, RaidGroup};
use cstor_api::cstor_v1::cspi::CStorPoolInstanceSpec;

/// Where the pool's cache file lives on the node.
pub const CACHE_FILE: &str = "/var/openebs/cstor-pool/pool.cache";

/// Which ZFS the commands are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// cStor's uZFS in the pool container.
    Uzfs,
    /// Debian's zfs-fuse 0.7 (the local data plane): no lz4, older property set.
    ZfsFuse,
}

/// Why the commands cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("no data raid group in the pool spec")]
    NoDataGroup,
    #[error("{category} raid group {index} has no block device")]
    EmptyGroup {
        category: &'static str,
        index: usize,
    },
    #[error("{category} raid group type is empty")]
    NoType { category: &'static str },
    #[error("no device path for block device {0} (is its BlockDevice present?)")]
    NoPath(String),
    #[error("compression {value:?} is not available on this ZFS (supported: {supported})")]
    Compression { value: String, supported: String },
}

const FUSE_COMPRESSION: [&str; 13] = [
    "on", "off", "lzjb", "gzip", "gzip-1", "gzip-2", "gzip-3", "gzip-4", "gzip-5", "gzip-6",
    "gzip-7", "gzip-8", "gzip-9",
];

/// The compression property value for `dialect`: empty means the pool-manager default lz4;
/// zfs-fuse has no lz4, so lz4 becomes its default algorithm (`on`, lzjb).
pub fn compression(config: Option<&PoolConfig>, dialect: Dialect) -> Result<String, PlanError> {
    let wanted = config
        .map(|c| c.compression.as_str())
        .filter(|c| !c.is_empty())
        .unwrap_or("lz4");
    match dialect {
        Dialect::Uzfs => Ok(wanted.to_string()),
        Dialect::ZfsFuse if wanted == "lz4" => Ok("on".into()),
        Dialect::ZfsFuse if FUSE_COMPRESSION.contains(&wanted) || wanted == "zle" => {
            Ok(wanted.to_string())
        }
        Dialect::ZfsFuse => Err(PlanError::Compression {
            value: wanted.to_string(),
            supported: "lz4 (as on), on, off, lzjb, gzip, gzip-1..9, zle".into(),
        }),
    }
}

fn paths(
    group: &RaidGroup,
    category: &'static str,
    index: usize,
    path_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, PlanError> {
    if group.block_devices.is_empty() {
        return Err(PlanError::EmptyGroup { category, index });
    }
    group
        .block_devices
        .iter()
        .map(|bd| {
            path_of(&bd.block_device_name)
                .ok_or_else(|| PlanError::NoPath(bd.block_device_name.clone()))
        })
        .collect()
}

fn vdev(kind: &str, mut paths: Vec<String>) -> Vec<String> {
    // A stripe group is its disks with no type word.
    let mut out = Vec::new();
    if kind != "stripe" {
        out.push(kind.to_string());
    }
    out.append(&mut paths);
    out
}

/// `zpool list -H -o name <pool>`: exit 0 when the pool is imported (zfs-fuse has no
/// `zpool get -H`, so the Go operator's presence check is not used).
pub fn presence(pool: &str) -> Vec<String> {
    ["zpool", "list", "-H", "-o", "name", pool]
        .map(String::from)
        .to_vec()
}

/// `zpool create` from the first data group, then one `zpool add` per further data group and
/// per write-cache (`log`) group, in spec order. `path_of` gives a BlockDevice's device path.
pub fn create(
    spec: &CStorPoolInstanceSpec,
    pool: &str,
    dialect: Dialect,
    path_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Vec<String>>, PlanError> {
    let config = spec.pool_config.as_ref();
    let data_type = config
        .map(|c| c.data_raid_group_type.as_str())
        .unwrap_or_default();
    if data_type.is_empty() {
        return Err(PlanError::NoType { category: "data" });
    }
    let Some((first, rest)) = spec.data_raid_groups.split_first() else {
        return Err(PlanError::NoDataGroup);
    };
    let mut create: Vec<String> = [
        "zpool",
        "create",
        "-o",
        &format!("cachefile={CACHE_FILE}"),
        "-O",
        &format!("compression={}", compression(config, dialect)?),
        "-O",
        "canmount=off",
        pool,
    ]
    .map(String::from)
    .to_vec();
    create.extend(vdev(data_type, paths(first, "data", 0, path_of)?));
    let mut commands = vec![create];
    for (i, group) in rest.iter().enumerate() {
        let mut add: Vec<String> = ["zpool", "add", pool].map(String::from).to_vec();
        add.extend(vdev(data_type, paths(group, "data", i + 1, path_of)?));
        commands.push(add);
    }
    let caches = spec.write_cache_raid_groups.as_deref().unwrap_or_default();
    if !caches.is_empty() {
        let cache_type = config
            .map(|c| c.write_cache_group_type.as_str())
            .unwrap_or_default();
        if cache_type.is_empty() {
            return Err(PlanError::NoType {
                category: "write-cache",
            });
        }
        for (i, group) in caches.iter().enumerate() {
            let mut add: Vec<String> = ["zpool", "add", pool, "log"].map(String::from).to_vec();
            add.extend(vdev(cache_type, paths(group, "write-cache", i, path_of)?));
            commands.push(add);
        }
    }
    Ok(commands)
}
