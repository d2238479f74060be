//! The zpool command lines of a CSPI, exact, in spec order, per dialect.

use crate::pool_manager::commands::{Dialect, PlanError, compression, create, presence};
use cstor_api::cstor_v1::cspi::CStorPoolInstanceSpec;
use pretty_assertions::assert_eq;
use serde_json::json;

fn spec(v: serde_json::Value) -> CStorPoolInstanceSpec {
    serde_json::from_value(v).expect("spec")
}

fn path(bd: &str) -> Option<String> {
    (bd != "missing").then(|| format!("/var/openebs/sparse/{bd}"))
}

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn mirror_with_two_groups_and_a_log_in_spec_order() {
    let s = spec(json!({
        "hostName": "n1", "nodeSelector": {"kubernetes.io/hostname": "n1"},
        "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "a"}, {"blockDeviceName": "b"}]},
                           {"blockDevices": [{"blockDeviceName": "c"}, {"blockDeviceName": "d"}]}],
        "writeCacheRaidGroups": [{"blockDevices": [{"blockDeviceName": "w"}]}],
        "poolConfig": {"dataRaidGroupType": "mirror", "writeCacheGroupType": "stripe", "compression": "lz4"},
    }));
    let cmds = create(&s, "cstor-uid", Dialect::Uzfs, &path).expect("plan");
    assert_eq!(
        cmds,
        vec![
            words(&[
                "zpool",
                "create",
                "-o",
                "cachefile=/var/openebs/cstor-pool/pool.cache",
                "-O",
                "compression=lz4",
                "-O",
                "canmount=off",
                "cstor-uid",
                "mirror",
                "/var/openebs/sparse/a",
                "/var/openebs/sparse/b"
            ]),
            words(&[
                "zpool",
                "add",
                "cstor-uid",
                "mirror",
                "/var/openebs/sparse/c",
                "/var/openebs/sparse/d"
            ]),
            words(&["zpool", "add", "cstor-uid", "log", "/var/openebs/sparse/w"]),
        ]
    );
    // zfs-fuse has no lz4 (tests/fixtures/zpool-create-lz4-refused.txt): it becomes `on`.
    let fuse = create(&s, "cstor-uid", Dialect::ZfsFuse, &path).expect("plan");
    assert_eq!(fuse[0][5], "compression=on");
}

#[test]
fn stripe_has_no_type_word_and_raidz2_has_one() {
    let stripe = spec(
        json!({"nodeSelector": {}, "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "a"}, {"blockDeviceName": "b"}]}],
                             "poolConfig": {"dataRaidGroupType": "stripe"}}),
    );
    let cmds = create(&stripe, "p", Dialect::Uzfs, &path).expect("stripe");
    assert_eq!(
        &cmds[0][8..],
        &words(&["p", "/var/openebs/sparse/a", "/var/openebs/sparse/b"])[..]
    );
    let bds: Vec<_> = (1..=6)
        .map(|i| json!({"blockDeviceName": format!("z{i}")}))
        .collect();
    let raidz2 = spec(
        json!({"nodeSelector": {}, "dataRaidGroups": [{"blockDevices": bds}],
                             "poolConfig": {"dataRaidGroupType": "raidz2", "compression": "off"}}),
    );
    let cmds = create(&raidz2, "p", Dialect::ZfsFuse, &path).expect("raidz2");
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0][5], "compression=off");
    assert_eq!(cmds[0][9], "raidz2");
    assert_eq!(cmds[0].len(), 16);
}

#[test]
fn refusals_are_named() {
    let base = |groups: serde_json::Value, config: serde_json::Value| {
        spec(json!({"nodeSelector": {}, "dataRaidGroups": groups, "poolConfig": config}))
    };
    let one = json!([{"blockDevices": [{"blockDeviceName": "a"}]}]);
    assert_eq!(
        create(
            &base(json!([]), json!({"dataRaidGroupType": "stripe"})),
            "p",
            Dialect::Uzfs,
            &path
        ),
        Err(PlanError::NoDataGroup)
    );
    assert_eq!(
        create(
            &base(one.clone(), json!({"dataRaidGroupType": ""})),
            "p",
            Dialect::Uzfs,
            &path
        ),
        Err(PlanError::NoType { category: "data" })
    );
    assert_eq!(
        create(
            &base(
                json!([{"blockDevices": [{"blockDeviceName": "missing"}]}]),
                json!({"dataRaidGroupType": "stripe"})
            ),
            "p",
            Dialect::Uzfs,
            &path
        )
        .map_err(|e| e.to_string()),
        Err("no device path for block device missing (is its BlockDevice present?)".to_string())
    );
    assert_eq!(
        create(
            &base(
                json!([{"blockDevices": []}]),
                json!({"dataRaidGroupType": "stripe"})
            ),
            "p",
            Dialect::Uzfs,
            &path
        ),
        Err(PlanError::EmptyGroup {
            category: "data",
            index: 0
        })
    );
    let zstd = base(
        one,
        json!({"dataRaidGroupType": "stripe", "compression": "zstd"}),
    );
    assert_eq!(
        create(&zstd, "p", Dialect::ZfsFuse, &path).map_err(|e| e.to_string()),
        Err("compression \"zstd\" is not available on this ZFS (supported: lz4 (as on), on, off, lzjb, gzip, gzip-1..9, zle)".to_string())
    );
    assert_eq!(compression(None, Dialect::Uzfs), Ok("lz4".to_string()));
    assert_eq!(
        presence("cstor-x"),
        words(&["zpool", "list", "-H", "-o", "name", "cstor-x"])
    );
}
