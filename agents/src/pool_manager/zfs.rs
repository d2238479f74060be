//! Parsers of the `zfs` and `zpool import` outputs the pool-manager reads, in the forms both
//! zfs-fuse 0.7 and uZFS print (tested on captured zfs-fuse output).

/// A `zfs` output that is not what the command prints.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZfsParseError {
    #[error("zfs get used,available: {0}")]
    UsedAvailable(String),
}

/// `zfs get -Hp -o value used,available POOL` → (used, available) in bytes.
pub fn parse_used_available(text: &str) -> Result<(u64, u64), ZfsParseError> {
    let values: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let [used, available] = values.as_slice() else {
        return Err(ZfsParseError::UsedAvailable(format!(
            "expected 2 lines, got {}",
            values.len()
        )));
    };
    let bytes = |what: &str, v: &str| {
        v.parse::<u64>()
            .map_err(|_| ZfsParseError::UsedAvailable(format!("{what} {v:?} is not a byte count")))
    };
    Ok((bytes("used", used)?, bytes("available", available)?))
}

/// `zfs list -H -o name` → the number of volume datasets of `pool`: names under `pool/`,
/// without rebuild clones. Other pools' datasets are not counted: locally one zfs-fuse
/// daemon serves every pool of a node.
pub fn count_replicas(text: &str, pool: &str) -> i32 {
    let prefix = format!("{pool}/");
    let n = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&prefix) && !l.contains("_rebuild_clone"))
        .filter(|l| l[prefix.len()..] != *crate::pool_manager::decide::HEADROOM_DATASET)
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `zfs get -H -o value PROP DATASET` → the value; `-` (unset user property) is `None`.
pub fn parse_value(text: &str) -> Option<String> {
    let v = text.lines().next().unwrap_or_default().trim();
    (!v.is_empty() && v != "-").then(|| v.to_string())
}

/// Whether a `zpool import [-d DIR]` listing offers `pool` (a `pool: NAME` line).
pub fn listing_has_pool(text: &str, pool: &str) -> bool {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("pool:"))
        .any(|name| name.trim() == pool)
}
