//! tgtadm argv builders (exact), the `--op show --mode target` parser on captured output, and
//! the tid choice.

// A test panics to report a failure.
#![allow(clippy::unwrap_used)]

use cstor_agents::volume_manager::tgt::{ShownTarget, Tgtadm, choose_tid, parse_show, shown_mb};

const IQN: &str = "iqn.2016-09.com.openebs.cstor:pvc-1";

fn argv(v: Vec<String>) -> String {
    v.join(" ")
}

#[test]
fn builders_have_the_exact_argv() {
    let d = Tgtadm::default();
    assert_eq!(
        argv(d.new_target(7, IQN)),
        format!("--lld iscsi --mode target --op new --tid 7 --targetname {IQN}")
    );
    assert_eq!(
        argv(d.new_lun(7, "/run/cstor/pvc-1/lun")),
        "--lld iscsi --mode logicalunit --op new --tid 7 --lun 1 --backing-store /run/cstor/pvc-1/lun --bstype rdwr"
    );
    assert_eq!(
        argv(d.update_lun(7, "path=/run/cstor/pvc-1/lun")),
        "--lld iscsi --mode logicalunit --op update --tid 7 --lun 1 --params path=/run/cstor/pvc-1/lun"
    );
    assert_eq!(
        argv(d.bind_all(7)),
        "--lld iscsi --mode target --op bind --tid 7 --initiator-address ALL"
    );
    assert_eq!(
        argv(d.delete_target(7)),
        "--lld iscsi --mode target --op delete --force --tid 7"
    );
    assert_eq!(argv(d.show()), "--lld iscsi --mode target --op show");
    assert_eq!(
        argv(d.unbind(7, "ALL")),
        "--lld iscsi --mode target --op unbind --tid 7 --initiator-address ALL"
    );
    assert_eq!(
        argv(d.unbind(7, "iqn.2008-11.org.linux-kvm")),
        "--lld iscsi --mode target --op unbind --tid 7 --initiator-name iqn.2008-11.org.linux-kvm"
    );
    assert_eq!(
        argv(d.close_connection(7, 6, 0)),
        "--lld iscsi --mode conn --op delete --tid 7 --sid 6 --cid 0"
    );
    assert_eq!(argv(d.stop_daemon()), "--mode system --op delete");
    assert_eq!(
        argv(d.bind_initiator(7, "iqn.2024-01.io.test:a")),
        "--lld iscsi --mode target --op bind --tid 7 --initiator-name iqn.2024-01.io.test:a"
    );
    assert_eq!(
        argv(d.bind_initiator(7, "10.0.0.0/24")),
        "--lld iscsi --mode target --op bind --tid 7 --initiator-address 10.0.0.0/24"
    );
    assert_eq!(
        argv(d.new_account("alice", "pw")),
        "--lld iscsi --mode account --op new --user alice --password pw"
    );
    assert_eq!(
        argv(d.bind_account(7, "alice")),
        "--lld iscsi --mode account --op bind --tid 7 --user alice"
    );
    let c = Tgtadm {
        control_port: Some(77),
    };
    assert_eq!(argv(c.show()), "-C 77 --lld iscsi --mode target --op show");
    assert_eq!(argv(c.stop_daemon()), "-C 77 --mode system --op delete");
}

#[test]
fn parses_captured_show_output() {
    let out = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/volume_tgtadm_show_target.txt"
    ))
    .unwrap();
    let t = parse_show(&out).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].tid, 5);
    assert_eq!(t[0].iqn, "iqn.2016-09.com.openebs.cstor:probe");
    assert_eq!(t[0].sessions, 0);
    assert_eq!(t[0].acl, vec!["ALL"]);
    assert_eq!(t[0].luns.len(), 2);
    assert_eq!(t[0].luns[1].lun, 1);
    assert_eq!(t[0].luns[1].size_mb, 67);
    assert_eq!(t[0].luns[1].backing_path, "/tmp/vmx/plain.img");
    assert_eq!(t[0].luns[0].backing_path, "None");
    assert_eq!(shown_mb(64 << 20), 67);
    assert_eq!(shown_mb(1 << 30), 1074);
}

#[test]
fn parses_sessions_and_several_targets() {
    let out = "Target 1: iqn.a\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n        I_T nexus: 6\n            Initiator: iqn.2008-11.org.linux-kvm alias: none\n            Connection: 0\n                IP Address: 127.0.0.1\n    LUN information:\n        LUN: 0\n            Type: controller\n            Size: 0 MB, Block size: 1\n    Account information:\n    ACL information:\n        ALL\nTarget 12: iqn.b\n    System information:\n    LUN information:\n    Account information:\n    ACL information:\n";
    let t = parse_show(out).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].sessions, 1);
    assert_eq!(t[0].connections, vec![(6, 0)]);
    assert_eq!(t[1].tid, 12);
    assert!(t[1].acl.is_empty());
    assert!(parse_show("").unwrap().is_empty());
    assert!(parse_show("garbage\n").is_err());
    assert!(parse_show("Target x: iqn\n").is_err());
}

#[test]
fn tid_is_reused_for_the_same_iqn_and_free_otherwise() {
    let first = choose_tid(&[], IQN).unwrap();
    assert!((1..=30_000).contains(&first));
    // Deterministic.
    assert_eq!(choose_tid(&[], IQN).unwrap(), first);
    let taken = vec![ShownTarget {
        tid: first,
        iqn: "iqn.other".into(),
        ..Default::default()
    }];
    let second = choose_tid(&taken, IQN).unwrap();
    assert_ne!(second, first);
    let ours = vec![ShownTarget {
        tid: 42,
        iqn: IQN.into(),
        ..Default::default()
    }];
    assert_eq!(choose_tid(&ours, IQN).unwrap(), 42);
}

#[test]
fn access_from_the_targets_environment() {
    use cstor_agents::volume_manager::tgt::Access;
    let open = Access::from_parts("", None, None);
    assert_eq!(open, Access::default());
    let a = Access::from_parts(
        " iqn.a:1 , 10.0.0.0/24,,",
        Some("alice".into()),
        Some("pw".into()),
    );
    assert_eq!(a.initiators, vec!["iqn.a:1", "10.0.0.0/24"]);
    let chap = a.chap.expect("chap");
    assert_eq!(chap.user, "alice");
    // The password never shows in debug output.
    assert!(!format!("{chap:?}").contains("pw"));
    // CHAP needs both halves.
    assert_eq!(
        Access::from_parts("", Some("alice".into()), None).chap,
        None
    );
}
