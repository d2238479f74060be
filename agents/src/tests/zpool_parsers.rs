//! The zpool parsers on output captured from real zfs-fuse 0.7.0 (Debian 12) pools:
//! `tests/fixtures/*.txt` (see the README there for the commands).

use crate::pool_manager::zpool::{ListRow, ParseError, human_bytes, parse_list, parse_status};
use pretty_assertions::assert_eq;
use proptest::prelude::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn mirror_stripe_and_raidz_layouts() {
    let m = parse_status(&fixture("zpool-status-mirror.txt")).expect("mirror");
    assert_eq!(
        (m.name.as_str(), m.state.as_str()),
        ("cstor-test", "ONLINE")
    );
    assert_eq!(
        m.groups(),
        vec![("mirror-0".to_string(), s(&["/tmp/zf/d1", "/tmp/zf/d2"]))]
    );
    assert_eq!(m.root.children[0].children[1].note, "12K resilvered");
    assert!(m.scrub.starts_with("resilver completed"));
    assert!(!m.resilvering());
    assert_eq!(m.errors, "No known data errors");

    let st = parse_status(&fixture("zpool-status-stripe.txt")).expect("stripe");
    assert_eq!(st.groups(), vec![("disk".to_string(), s(&["/tmp/zf/d9"]))]);

    let rz = parse_status(&fixture("zpool-status-raidz-two-groups.txt")).expect("raidz");
    assert_eq!(
        rz.groups(),
        vec![
            (
                "raidz1-0".to_string(),
                s(&["/tmp/zf/d3", "/tmp/zf/d4", "/tmp/zf/d5"])
            ),
            (
                "raidz1-1".to_string(),
                s(&["/tmp/zf/d6", "/tmp/zf/d7", "/tmp/zf/d8"])
            ),
        ]
    );
}

#[test]
fn degraded_pool_names_the_offline_disk_and_the_reason() {
    let d = parse_status(&fixture("zpool-status-mirror-degraded.txt")).expect("degraded");
    assert_eq!(d.state, "DEGRADED");
    assert_eq!(
        d.status,
        "One or more devices has been taken offline by the administrator. Sufficient replicas exist for the pool to continue functioning in a degraded state."
    );
    let disks: Vec<(&str, &str)> = d.root.children[0]
        .children
        .iter()
        .map(|v| (v.name.as_str(), v.state.as_str()))
        .collect();
    assert_eq!(
        disks,
        vec![("/tmp/zf/d1", "ONLINE"), ("/tmp/zf/d2", "OFFLINE")]
    );
}

#[test]
fn replaced_disk_shows_in_its_group() {
    let r = parse_status(&fixture("zpool-status-mirror-replaced.txt")).expect("replaced");
    assert_eq!(
        r.groups(),
        vec![("mirror-0".to_string(), s(&["/tmp/zf/d10", "/tmp/zf/d2"]))]
    );
    assert_eq!(r.root.children[0].children[0].note, "400K resilvered");
}

#[test]
fn missing_pool_and_garbage_are_errors() {
    assert_eq!(
        parse_status(&fixture("zpool-status-missing.txt")),
        Err(ParseError::Status("no `pool:` line".into()))
    );
    assert!(parse_status("").is_err());
}

#[test]
fn list_rows_in_bytes() {
    assert_eq!(
        parse_list(&fixture("zpool-list.txt")).expect("list"),
        vec![
            ListRow {
                name: "cstor-rz".into(),
                size: 1_578_400_481,
                allocated: 1_457_521,
                free: 1_578_400_481,
                health: "ONLINE".into(),
            },
            ListRow {
                name: "cstor-test".into(),
                size: 250 << 20,
                allocated: 748 << 10,
                free: 249 << 20,
                health: "ONLINE".into(),
            },
        ]
    );
    assert_eq!(
        parse_list("a\t1G\n"),
        Err(ParseError::List {
            line: 1,
            reason: "expected 5 tab-separated fields, got 2".into()
        })
    );
    assert_eq!(human_bytes("0"), Some(0));
    assert_eq!(human_bytes("12x"), None);
    assert_eq!(human_bytes("-1K"), None);
}

proptest! {
    #[test]
    fn parsers_never_panic(text in "(?s).{0,400}") {
        let _ = parse_status(&text);
        let _ = parse_list(&text);
    }

    #[test]
    fn status_parser_survives_mangled_real_output(cut in 0usize..400, junk in "[ \t\nA-Za-z0-9:-]{0,40}") {
        let real = fixture("zpool-status-raidz-two-groups.txt");
        let cut = cut.min(real.len());
        let mangled = format!("{}{junk}{}", &real[..cut], &real[cut..]);
        let _ = parse_status(&mangled);
    }
}

#[test]
fn log_section_sits_under_the_root() {
    let l = parse_status(&fixture("zpool-status-mirror-with-log.txt")).expect("with log");
    assert_eq!(
        l.groups(),
        vec![
            ("mirror-0".to_string(), s(&["/tmp/zf/e1", "/tmp/zf/e2"])),
            ("mirror-1".to_string(), s(&["/tmp/zf/e3", "/tmp/zf/e4"])),
        ]
    );
    assert_eq!(
        l.section("logs"),
        vec![("disk".to_string(), s(&["/tmp/zf/f2"]))]
    );
    assert_eq!(l.section("cache"), Vec::<(String, Vec<String>)>::new());
}
