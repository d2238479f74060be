//! The pool-manager's zfs output parsers on output captured from zfs-fuse 0.7.0 (see
//! tests/fixtures/README.md for the commands).

use crate::pool_manager::zfs::{
    ZfsParseError, count_replicas, listing_has_pool, parse_used_available, parse_value,
};
use pretty_assertions::assert_eq;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn used_available_exact_bytes() {
    assert_eq!(
        parse_used_available(&fixture("zfs-get-used-available.txt")),
        Ok((61_489_152, 167_100_416))
    );
}

#[test]
fn used_available_refuses_human_or_short_output() {
    for (text, why) in [
        ("1.23G\n4.5G\n", "human sizes are not bytes"),
        ("61489152\n", "one line"),
        ("", "empty"),
        ("1\n2\n3\n", "three lines"),
        ("-\n12\n", "dash"),
    ] {
        assert!(
            matches!(
                parse_used_available(text),
                Err(ZfsParseError::UsedAvailable(_))
            ),
            "{why}: {text:?}"
        );
    }
}

#[test]
fn replicas_are_datasets_of_this_pool_without_rebuild_clones() {
    let text = fixture("zfs-list-names.txt");
    // cstor-m1, cstor-m1/vol1, cstor-m1/vol2_rebuild_clone, cstor-m1/vol3
    assert_eq!(count_replicas(&text, "cstor-m1"), 2);
    assert_eq!(count_replicas(&text, "cstor-other"), 0);
    // Another pool of the same node (one zfs-fuse daemon serves them all) is not counted,
    // nor a pool whose name merely starts with ours.
    let mixed = format!("{text}cstor-m10\ncstor-m10/vol9\ncstor-x/vol1\n");
    assert_eq!(count_replicas(&mixed, "cstor-m1"), 2);
    assert_eq!(count_replicas(&mixed, "cstor-m10"), 1);
    // The headroom dataset is not a replica.
    let headroom = format!("{text}cstor-m1/cstor-headroom\n");
    assert_eq!(count_replicas(&headroom, "cstor-m1"), 2);
}

#[test]
fn property_values() {
    assert_eq!(
        parse_value(&fixture("zfs-get-canmount.txt")).as_deref(),
        Some("off")
    );
    assert_eq!(
        parse_value(&fixture("zfs-get-compression.txt")).as_deref(),
        Some("on")
    );
    // An unset user property prints `-`.
    assert_eq!(parse_value(&fixture("zfs-get-unset-user-prop.txt")), None);
    assert_eq!(parse_value(""), None);
}

#[test]
fn import_listing_names_exported_pools() {
    let listing = fixture("zpool-import-listing-with-log.txt");
    assert!(listing_has_pool(&listing, "cstor-l1"));
    assert!(!listing_has_pool(&listing, "cstor-l"));
    assert!(!listing_has_pool(&listing, "cstor-l10"));
    let older = fixture("zpool-import-listing.txt");
    assert!(!listing_has_pool(&older, "cstor-l1"));
    assert!(!listing_has_pool(
        "no pools available to import\n",
        "cstor-l1"
    ));
}
