//! Deterministic CSPI names (docs/pools.md "Names"): `<cspc>-<4 chars>`, the chars from the
//! Go operator's alphabet, derived from FNV-1a 64 of `<CSPC UID>/<hostname>`, so a crash between
//! steps never makes a second CSPI for the same node; a name another node's CSPI holds is
//! never reused (`free_cspi_name`).

/// The Go operator's alphabet of random name suffixes (no vowels, no look-alikes).
pub const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

pub use cstor_api::keys::fnv1a64;

/// The 4-char suffix: the hash's four least significant base-27 digits, least first.
pub fn suffix(cspc_uid: &str, hostname: &str) -> String {
    suffix_of(&format!("{cspc_uid}/{hostname}"))
}

fn suffix_of(key: &str) -> String {
    let mut h = fnv1a64(key.as_bytes());
    let mut out = String::with_capacity(4);
    for _ in 0..4 {
        let digit = (h % 27) as usize;
        out.push(char::from(ALPHABET[digit]));
        h /= 27;
    }
    out
}

/// The CSPI name of CSPC `cspc_name` (uid `cspc_uid`) on node `hostname`.
pub fn cspi_name(cspc_name: &str, cspc_uid: &str, hostname: &str) -> String {
    format!("{cspc_name}-{}", suffix(cspc_uid, hostname))
}

/// The CSPI name for a new pool on `hostname`: [`cspi_name`], unless `other_host(name)` says
/// a CSPI of another node already has it (the 4 characters carry about 19 bits, so two hosts
/// of one CSPC can hash alike); then the first free of `<uid>/<hostname>/1`, `/2`, …. Still a
/// function of what exists, so a crash between steps finds the same name again.
pub fn free_cspi_name(
    cspc_name: &str,
    cspc_uid: &str,
    hostname: &str,
    other_host: impl Fn(&str) -> bool,
) -> String {
    let first = cspi_name(cspc_name, cspc_uid, hostname);
    if !other_host(&first) {
        return first;
    }
    (1u32..)
        .map(|n| {
            format!(
                "{cspc_name}-{}",
                suffix_of(&format!("{cspc_uid}/{hostname}/{n}"))
            )
        })
        .find(|name| !other_host(name))
        .unwrap_or(first)
}
