//! Deterministic CSPI names (docs/pools.md "Names"): `<cspc>-<4 chars>`, the chars from the
//! Go operator's alphabet, derived from FNV-1a 64 of `<CSPC UID>/<hostname>`, so a crash between
//! steps never makes a second CSPI for the same node.

/// The Go operator's alphabet of random name suffixes (no vowels, no look-alikes).
pub const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 64 bit.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The 4-char suffix: the hash's four least significant base-27 digits, least first.
pub fn suffix(cspc_uid: &str, hostname: &str) -> String {
    let mut h = fnv1a64(format!("{cspc_uid}/{hostname}").as_bytes());
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
