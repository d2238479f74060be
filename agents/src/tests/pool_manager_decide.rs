//! The pool-manager's decisions (replacement, resilver, expansion, disk states, read-only,
//! conditions, status) on `zpool status` output captured from zfs-fuse 0.7.0 (see
//! tests/fixtures/README.md).

use crate::pool_manager::decide::{
    self, Addition, Category, GroupDisk, ReadOnlyChange, ReplaceStep, Wanted,
};
use crate::pool_manager::zpool::{PoolStatus, parse_status};
use cstor_api::common::{ConditionStatus, PoolCondition};
use cstor_api::cstor_v1::cspc::{CStorPoolInstanceBlockDevice, PoolConfig, RaidGroup};
use cstor_api::cstor_v1::cspi::{CStorPoolInstanceSpec, CStorPoolInstanceStatus};
use cstor_api::openebs_v1alpha1::BlockDevice;
use cstor_api::openebs_v1alpha1::blockdevice::DeviceDevLink;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pretty_assertions::assert_eq;

const D: &str = "/tmp/pm-capture";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn status(name: &str) -> PoolStatus {
    parse_status(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn disk(n: u32) -> Vec<String> {
    vec![format!("{D}/d{n}")]
}

fn gd(name: &str, n: u32) -> GroupDisk {
    GroupDisk {
        name: name.into(),
        paths: disk(n),
        replacing: false,
    }
}

fn time(s: &str) -> Time {
    Time(s.parse().expect("timestamp"))
}

#[test]
fn bd_paths_are_devlinks_then_path() {
    let mut bd = BlockDevice::default();
    bd.spec.path = "/dev/sdb".into();
    bd.spec.devlinks = vec![
        DeviceDevLink {
            kind: "by-id".into(),
            links: vec![
                "/dev/disk/by-id/ata-X".into(),
                "/dev/disk/by-id/wwn-Y".into(),
            ],
        },
        DeviceDevLink {
            kind: "by-path".into(),
            links: vec!["/dev/disk/by-path/pci-0".into()],
        },
    ];
    assert_eq!(
        decide::bd_paths(&bd),
        vec![
            "/dev/disk/by-id/ata-X",
            "/dev/disk/by-id/wwn-Y",
            "/dev/disk/by-path/pci-0",
            "/dev/sdb"
        ]
    );
    let mut sparse = BlockDevice::default();
    sparse.spec.path = "/run/nodes/n1/disks/disk-0".into();
    assert_eq!(
        decide::bd_paths(&sparse),
        vec!["/run/nodes/n1/disks/disk-0"]
    );
    assert!(decide::bd_paths(&BlockDevice::default()).is_empty());
}

#[test]
fn import_dir_only_for_files() {
    assert_eq!(
        decide::import_dir("/run/nodes/n1/disks/disk-0").as_deref(),
        Some("/run/nodes/n1/disks")
    );
    assert_eq!(decide::import_dir("/dev/disk/by-id/ata-X"), None);
    assert_eq!(decide::import_dir("/dev/sdb"), None);
    assert_eq!(decide::import_dir("disk-0"), None);
}

fn group(bds: &[&str]) -> RaidGroup {
    RaidGroup {
        block_devices: bds
            .iter()
            .map(|b| CStorPoolInstanceBlockDevice {
                block_device_name: b.to_string(),
                ..Default::default()
            })
            .collect(),
    }
}

fn spec(
    data_type: &str,
    data: Vec<RaidGroup>,
    log_type: &str,
    logs: Vec<RaidGroup>,
) -> CStorPoolInstanceSpec {
    CStorPoolInstanceSpec {
        pool_config: Some(PoolConfig {
            data_raid_group_type: data_type.into(),
            write_cache_group_type: log_type.into(),
            ..Default::default()
        }),
        data_raid_groups: data,
        write_cache_raid_groups: (!logs.is_empty()).then_some(logs),
        ..Default::default()
    }
}

#[test]
fn validation_rules() {
    let ok = spec(
        "mirror",
        vec![group(&["a", "b"])],
        "stripe",
        vec![group(&["c"])],
    );
    assert_eq!(decide::validate(&ok), Ok(()));
    let cases = [
        (spec("mirror", vec![], "", vec![]), "no data raid group"),
        (
            spec("", vec![group(&["a"])], "", vec![]),
            "dataRaidGroupType",
        ),
        (
            spec("stripe", vec![group(&["a"])], "", vec![group(&["c"])]),
            "writeCacheGroupType",
        ),
        (
            spec("stripe", vec![group(&["a"]), group(&[])], "", vec![]),
            "data raid group 1",
        ),
        (
            spec("stripe", vec![group(&["a"])], "stripe", vec![group(&[])]),
            "write-cache raid group 0",
        ),
    ];
    for (s, want) in cases {
        let err = decide::validate(&s).expect_err(want);
        assert!(err.contains(want), "{err:?} should mention {want:?}");
    }
    let mut no_config = ok.clone();
    no_config.pool_config = None;
    assert!(decide::validate(&no_config).is_err());
}

#[test]
fn spec_groups_data_first_in_order() {
    let s = spec(
        "mirror",
        vec![group(&["a", "b"]), group(&["c", "d"])],
        "stripe",
        vec![group(&["e"])],
    );
    let got: Vec<(Category, String, Vec<String>)> = decide::spec_groups(&s)
        .into_iter()
        .map(|(c, t, g)| {
            (
                c,
                t,
                g.block_devices
                    .iter()
                    .map(|b| b.block_device_name.clone())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Category::Data,
                "mirror".into(),
                vec!["a".into(), "b".into()]
            ),
            (
                Category::Data,
                "mirror".into(),
                vec!["c".into(), "d".into()]
            ),
            (Category::Log, "stripe".into(), vec!["e".into()]),
        ]
    );
}

#[test]
fn replacement_steps_through_a_real_resilver() {
    let old = disk(20);
    let new = disk(22);
    // Before `zpool replace`: the new disk (d22) is not in the pool, the old one (d4) is.
    let before = status("zpool-status-mirror-truncated.txt");
    assert_eq!(
        decide::replace_step(&before, &disk(4), &new),
        ReplaceStep::Replace {
            old: format!("{D}/d4"),
            new: format!("{D}/d22")
        }
    );
    // Old path matched case-insensitively, the pool's own spelling is used.
    assert_eq!(
        decide::replace_step(&before, &[format!("{D}/D4").to_uppercase()], &new),
        ReplaceStep::Replace {
            old: format!("{D}/d4"),
            new: format!("{D}/d22")
        }
    );
    let running = status("zpool-status-resilver-in-progress.txt");
    assert!(running.resilvering());
    assert_eq!(
        decide::replace_step(&running, &old, &new),
        ReplaceStep::Resilvering
    );
    // "resilver completed" is printed while the old disk is still attached under replacing-0.
    let completed = status("zpool-status-resilver-completed-replacing.txt");
    assert!(!completed.resilvering());
    assert!(!decide::resilver_done(&completed, &new));
    assert_eq!(
        decide::replace_step(&completed, &old, &new),
        ReplaceStep::Resilvering
    );
    let done = status("zpool-status-resilver-done.txt");
    assert!(decide::resilver_done(&done, &new));
    assert_eq!(decide::replace_step(&done, &old, &new), ReplaceStep::Done);
    // The predecessor BD may already be gone: the new disk alone decides.
    assert_eq!(decide::replace_step(&done, &[], &new), ReplaceStep::Done);
}

#[test]
fn replacement_errors() {
    let done = status("zpool-status-resilver-done.txt");
    assert_eq!(
        decide::replace_step(&done, &disk(20), &disk(30)),
        ReplaceStep::Error("Old device links are not in use by pool".into())
    );
    assert!(matches!(
        decide::replace_step(&done, &disk(21), &[]),
        ReplaceStep::Error(_)
    ));
}

#[test]
fn resilver_not_done_when_new_disk_is_not_online() {
    let degraded = status("zpool-status-mirror-truncated.txt");
    assert!(!decide::resilver_done(&degraded, &disk(5)), "d5 is UNAVAIL");
    assert!(decide::resilver_done(&degraded, &disk(4)));
    assert!(
        !decide::resilver_done(&degraded, &disk(99)),
        "not in the pool"
    );
}

#[test]
fn expansion_adds_a_whole_new_group() {
    let pool = status("zpool-status-resilver-done.txt");
    let groups = vec![
        (
            Category::Data,
            "mirror".to_string(),
            vec![gd("bd-22", 22), gd("bd-21", 21)],
        ),
        (
            Category::Data,
            "mirror".to_string(),
            vec![gd("bd-30", 30), gd("bd-31", 31)],
        ),
        (Category::Log, "stripe".to_string(), vec![gd("bd-32", 32)]),
    ];
    let adds = decide::expansions(&pool, &groups);
    assert_eq!(
        adds,
        vec![
            Addition {
                category: Category::Data,
                group_type: "mirror".into(),
                block_devices: vec!["bd-30".into(), "bd-31".into()],
                paths: vec![format!("{D}/d30"), format!("{D}/d31")],
                whole_group: true,
            },
            Addition {
                category: Category::Log,
                group_type: "stripe".into(),
                block_devices: vec!["bd-32".into()],
                paths: vec![format!("{D}/d32")],
                whole_group: true,
            },
        ]
    );
    assert_eq!(
        adds[0].argv("cstor-m2"),
        vec![
            "zpool",
            "add",
            "cstor-m2",
            "mirror",
            &format!("{D}/d30"),
            &format!("{D}/d31")
        ]
    );
    assert_eq!(
        adds[1].argv("cstor-m2"),
        vec!["zpool", "add", "cstor-m2", "log", &format!("{D}/d32")]
    );
    assert_eq!(
        adds[0].message(),
        "Pool Expanded Successfully By Adding RaidGroup With BlockDevices: [bd-30 bd-31] device type: data pool type: mirror"
    );
}

#[test]
fn expansion_of_a_stripe_adds_only_missing_disks() {
    // After `zpool add` of d11 the stripe holds d10 and d11.
    let pool = status("zpool-status-stripe-added.txt");
    let full = vec![(
        Category::Data,
        "stripe".to_string(),
        vec![gd("bd-10", 10), gd("bd-11", 11)],
    )];
    assert!(
        decide::expansions(&pool, &full).is_empty(),
        "nothing missing"
    );
    let more = vec![(
        Category::Data,
        "stripe".to_string(),
        vec![gd("bd-10", 10), gd("bd-11", 11), gd("bd-12", 12)],
    )];
    let adds = decide::expansions(&pool, &more);
    assert_eq!(adds.len(), 1);
    assert!(!adds[0].whole_group);
    assert_eq!(
        adds[0].argv("cstor-s1"),
        vec!["zpool", "add", "cstor-s1", &format!("{D}/d12")]
    );
    assert_eq!(
        adds[0].message(),
        "Pool Expanded Successfully By Adding BlockDevices: [bd-12] device type: data pool type: stripe"
    );
}

#[test]
fn expansion_leaves_partial_mirrors_and_replacements_alone() {
    let pool = status("zpool-status-mirror-log-disk.txt");
    // A mirror with one disk present and one not: not a stripe, so nothing is added.
    let partial = vec![(
        Category::Data,
        "mirror".to_string(),
        vec![gd("bd-12", 12), gd("bd-40", 40)],
    )];
    assert!(decide::expansions(&pool, &partial).is_empty());
    // The log disk d14 is found under `logs`.
    let logs = vec![(Category::Log, "stripe".to_string(), vec![gd("bd-14", 14)])];
    assert!(decide::expansions(&pool, &logs).is_empty());
    // A stripe disk that is a replacement is the replace path's, not an expansion.
    let mut new = gd("bd-41", 41);
    new.replacing = true;
    let replacing = vec![(
        Category::Data,
        "stripe".to_string(),
        vec![gd("bd-12", 12), new],
    )];
    assert!(decide::expansions(&pool, &replacing).is_empty());
    // A group with a disk that has no path yet is not added half.
    let mut pathless = gd("bd-42", 42);
    pathless.paths.clear();
    let no_path = vec![(
        Category::Data,
        "mirror".to_string(),
        vec![gd("bd-43", 43), pathless],
    )];
    assert!(decide::expansions(&pool, &no_path).is_empty());
}

#[test]
fn unavailable_disks_from_leaf_states() {
    let bds = |ns: &[(&str, u32)]| -> Vec<(String, Vec<String>)> {
        ns.iter().map(|(b, n)| (b.to_string(), disk(*n))).collect()
    };
    let truncated = status("zpool-status-mirror-truncated.txt");
    assert_eq!(truncated.state, "DEGRADED");
    assert_eq!(
        decide::unavailable_disks(&truncated, &bds(&[("bd-4", 4), ("bd-5", 5)])),
        vec![("bd-5".to_string(), "UNAVAIL".to_string())]
    );
    let offline = status("zpool-status-raidz2-offline.txt");
    assert_eq!(
        decide::unavailable_disks(&offline, &bds(&[("a", 6), ("b", 7), ("c", 8), ("d", 9)])),
        vec![("b".to_string(), "OFFLINE".to_string())]
    );
    let suspended = status("zpool-status-stripe-truncated.txt");
    assert_eq!(suspended.state, "UNAVAIL");
    assert_eq!(
        decide::unavailable_disks(&suspended, &bds(&[("u", 15)])),
        vec![("u".to_string(), "UNAVAIL".to_string())]
    );
    let healthy = status("zpool-status-mirror-log-disk.txt");
    assert!(
        decide::unavailable_disks(&healthy, &bds(&[("a", 12), ("b", 13), ("l", 14)])).is_empty()
    );

    let list = decide::unavailable_disks(&truncated, &bds(&[("bd-4", 4), ("bd-5", 5)]));
    assert_eq!(
        decide::disk_unavailable_condition(&list, false),
        Some(Wanted::new(
            "DiskUnavailable",
            ConditionStatus::True,
            "DisksAreUnavailable",
            "Following disks [bd-5] are unavailable/faulted"
        ))
    );
    assert_eq!(decide::disk_unavailable_condition(&[], false), None);
    assert_eq!(
        decide::disk_unavailable_condition(&[], true),
        Some(Wanted::new(
            "DiskUnavailable",
            ConditionStatus::False,
            "DisksAreAvailable",
            ""
        ))
    );
}

#[test]
fn read_only_threshold() {
    use ReadOnlyChange::{SetOff, SetOn};
    const KEEP: ReadOnlyChange = ReadOnlyChange::None;
    let cases = [
        // limit, data used, total, left to writers, currently, want
        (None, 85, 100, 15, false, SetOn),
        (None, 84, 100, 16, false, KEEP),
        (None, 84, 100, 16, true, SetOff),
        (None, 90, 100, 10, true, KEEP),
        (Some(100), 100, 100, 0, false, KEEP),
        (Some(100), 100, 100, 0, true, SetOff),
        (Some(50), 50, 100, 50, false, SetOn),
        // Zero total: 0 % used, never a division by zero.
        (None, 0, 0, 0, false, KEEP),
        (Some(0), 0, 0, 0, false, SetOn),
        // No overflow on huge pools.
        (None, u64::MAX / 2, u64::MAX, u64::MAX / 2, false, KEEP),
        // The captured mirror: 61489152 used of 228589568 (26 %).
        (None, 61_489_152, 228_589_568, 167_100_416, false, KEEP),
        (Some(25), 61_489_152, 228_589_568, 167_100_416, false, SetOn),
        // The headroom stops writers a little under the limit: < 1 % left counts as reached.
        (None, 8_380, 10_000, 99, false, SetOn),
        (None, 8_380, 10_000, 100, false, KEEP),
        (Some(100), 9_990, 10_000, 10, false, KEEP),
    ];
    for (limit, used, total, left, currently, want) in cases {
        assert_eq!(
            decide::read_only(limit, used, total, left, currently),
            want,
            "limit {limit:?} used {used} total {total} left {left} currently {currently}"
        );
    }
}

#[test]
fn the_headroom_keeps_the_threshold_free() {
    use decide::HeadroomStep::{Create, None as Keep, Set};
    const MIB: u64 = 1 << 20;
    assert_eq!(decide::headroom_bytes(None, 1000 * MIB), 150 * MIB);
    assert_eq!(decide::headroom_bytes(Some(100), 1000 * MIB), 0);
    assert_eq!(decide::headroom_bytes(Some(0), 1000 * MIB), 1000 * MIB);
    assert_eq!(decide::headroom_bytes(Some(150), 1000 * MIB), 0);
    assert_eq!(
        decide::headroom_bytes(None, u64::MAX),
        u64::MAX / 100 * 15 + 15 * (u64::MAX % 100) / 100
    );
    let total = 1000 * MIB;
    let cases = [
        // current, want, left → step
        (None, 150 * MIB, 900 * MIB, Create(150 * MIB)),
        (None, 0, 900 * MIB, Keep),
        // Already past the threshold: the reservation takes what is left.
        (None, 150 * MIB, 40 * MIB, Create(40 * MIB)),
        (Some(40 * MIB), 150 * MIB, 200 * MIB, Set(150 * MIB)),
        // Moves under 1 % of the pool are left alone.
        (Some(150 * MIB), 155 * MIB, 500 * MIB, Keep),
        (Some(150 * MIB), 165 * MIB, 500 * MIB, Set(165 * MIB)),
        // The pool grew: a larger headroom; the limit went to 100: none.
        (Some(150 * MIB), 300 * MIB, 900 * MIB, Set(300 * MIB)),
        (Some(150 * MIB), 0, 900 * MIB, Set(0)),
        (Some(0), 0, 900 * MIB, Keep),
    ];
    for (current, want, left, step) in cases {
        assert_eq!(
            decide::headroom_step(current, want, total, left),
            step,
            "current {current:?} want {want} left {left}"
        );
    }
}

#[test]
fn the_read_only_condition_says_why() {
    let t = time("2026-01-01T00:00:00Z");
    let on = decide::read_only_condition(true, 850, 1000, None, &[]);
    assert_eq!(
        on,
        Some(Wanted::new(
            "PoolReadOnly",
            ConditionStatus::True,
            "ReadOnlyThresholdReached",
            "85% of the pool is used, at its roThresholdLimit of 85%: writes are refused until space is freed or the pool is expanded",
        ))
    );
    // Never read-only: no condition at all.
    assert_eq!(
        decide::read_only_condition(false, 100, 1000, None, &[]),
        None
    );
    let mut conds = Vec::new();
    assert!(decide::set_condition(
        &mut conds,
        on.unwrap_or_else(|| panic!("on")),
        Some(1),
        &t
    ));
    assert_eq!(
        decide::read_only_condition(false, 400, 1000, Some(90), &conds),
        Some(Wanted::new(
            "PoolReadOnly",
            ConditionStatus::False,
            "BelowReadOnlyThreshold",
            "40% of the pool is used, under its roThresholdLimit of 90%",
        ))
    );
}

#[test]
fn capacity_is_exact_bytes() {
    let c = decide::capacity(61_489_152, 167_100_416);
    assert_eq!(c.used.0, "61489152");
    assert_eq!(c.free.0, "167100416");
    assert_eq!(c.total.0, "228589568");
    assert_eq!(c.zfs.logical_used.0, "61489152");
    assert_eq!(decide::capacity(u64::MAX, 1).total.0, u64::MAX.to_string());
}

#[test]
fn conditions_keep_transition_time_unless_the_status_flips() {
    let t0 = time("2026-01-01T00:00:00Z");
    let t1 = time("2026-01-01T00:01:00Z");
    let t2 = time("2026-01-01T00:02:00Z");
    let mut conds: Vec<PoolCondition> = Vec::new();
    let running = Wanted::new(
        "PoolExpansion",
        ConditionStatus::True,
        "PoolExpansionInProgress",
        "a",
    );
    assert!(decide::set_condition(
        &mut conds,
        running.clone(),
        Some(3),
        &t0
    ));
    assert_eq!(conds.len(), 1);
    assert_eq!(conds[0].last_transition_time, Some(t0.clone()));
    assert_eq!(conds[0].observed_generation, Some(3));
    // Same condition again: no change, times untouched.
    assert!(!decide::set_condition(&mut conds, running, Some(3), &t1));
    assert_eq!(conds[0].last_update_time, Some(t0.clone()));
    // Same status, new message: update time moves, transition time stays.
    let msg = Wanted::new(
        "PoolExpansion",
        ConditionStatus::True,
        "PoolExpansionInProgress",
        "b",
    );
    assert!(decide::set_condition(&mut conds, msg, Some(4), &t1));
    assert_eq!(conds[0].last_transition_time, Some(t0.clone()));
    assert_eq!(conds[0].last_update_time, Some(t1.clone()));
    assert_eq!(conds[0].observed_generation, Some(4));
    // A flip moves both.
    let done = Wanted::new(
        "PoolExpansion",
        ConditionStatus::False,
        "PoolExpansionSuccessful",
        "c",
    );
    assert!(decide::set_condition(&mut conds, done, Some(4), &t2));
    assert_eq!(conds[0].last_transition_time, Some(t2.clone()));
    assert_eq!(conds[0].status, ConditionStatus::False);
    // Another type is added beside it.
    let other = Wanted::new(
        "DiskUnavailable",
        ConditionStatus::False,
        "DisksAreAvailable",
        "",
    );
    assert!(decide::set_condition(&mut conds, other, Some(4), &t2));
    assert_eq!(conds.len(), 2);
    assert_eq!(
        decide::condition(&conds, "PoolExpansion").map(|c| c.reason.as_str()),
        Some("PoolExpansionSuccessful")
    );
}

#[test]
fn status_is_written_only_when_more_than_times_changed() {
    let pool = status("zpool-status-mirror-truncated.txt");
    let mut conds = Vec::new();
    let wanted = Wanted::new(
        "DiskUnavailable",
        ConditionStatus::True,
        "DisksAreUnavailable",
        "x",
    );
    decide::set_condition(&mut conds, wanted, Some(1), &time("2026-01-01T00:00:00Z"));
    let built = decide::build_status(
        &pool.state,
        Some(decide::capacity(61_489_152, 167_100_416)),
        None,
        false,
        2,
        conds.clone(),
    );
    assert_eq!(built.phase, "DEGRADED");
    assert_eq!(built.provisioned_replicas, 2);
    assert_eq!(built.healthy_replicas, 0);
    assert!(decide::status_differs(None, &built));
    let mut later = built.clone();
    for c in &mut later.conditions {
        c.last_update_time = Some(time("2026-02-01T00:00:00Z"));
        c.last_transition_time = Some(time("2026-02-01T00:00:00Z"));
    }
    assert!(!decide::status_differs(Some(&built), &later));
    let mut phase = built.clone();
    phase.phase = "ONLINE".into();
    assert!(decide::status_differs(Some(&built), &phase));
    // Capacity unreadable (suspended pool): the last known one is kept.
    let kept = decide::build_status("UNAVAIL", None, Some(&built), false, 2, conds);
    assert_eq!(kept.capacity, built.capacity);
    assert_eq!(kept.phase, "UNAVAIL");
    let none = decide::build_status(
        "ONLINE",
        None,
        Some(&CStorPoolInstanceStatus::default()),
        true,
        0,
        vec![],
    );
    assert_eq!(none.capacity, None);
    assert!(none.read_only);
}

#[test]
fn messages_are_trimmed() {
    assert_eq!(
        decide::trim_message("  cannot open 'x': no such pool\n"),
        "cannot open 'x': no such pool"
    );
    let long = "é".repeat(400);
    let t = decide::trim_message(&long);
    assert!(t.len() <= 512 + '…'.len_utf8());
    assert!(t.ends_with('…'));
}

#[test]
fn backoff_doubles_to_five_minutes() {
    use crate::pool_manager::backoff;
    use std::time::Duration;
    assert_eq!(backoff(1), Duration::from_secs(1));
    assert_eq!(backoff(2), Duration::from_secs(2));
    assert_eq!(backoff(5), Duration::from_secs(16));
    assert_eq!(backoff(10), Duration::from_secs(300));
    assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
}

fn claim(bd: &str, predecessor: Option<&str>) -> cstor_api::openebs_v1alpha1::BlockDeviceClaim {
    let mut c = cstor_api::openebs_v1alpha1::BlockDeviceClaim::default();
    c.metadata.name = Some(format!("bdc-{bd}"));
    c.spec.block_device_name = bd.into();
    if let Some(p) = predecessor {
        c.metadata.annotations = Some(
            [(
                cstor_api::keys::annotations::BD_PREDECESSOR.to_string(),
                p.to_string(),
            )]
            .into(),
        );
    }
    c
}

#[test]
fn replacements_are_the_claims_naming_a_predecessor() {
    let s = spec(
        "mirror",
        vec![group(&["bd-a", "bd-b"]), group(&["bd-c"])],
        "",
        vec![],
    );
    let claims = [claim("bd-a", None), claim("bd-b", Some("bd-old"))];
    let (wanted, errors) = decide::replacements(&s, &claims);
    assert_eq!(wanted, vec![("bd-b".to_string(), "bd-old".to_string())]);
    assert_eq!(
        errors,
        vec!["no BlockDeviceClaim for BlockDevice bd-c".to_string()]
    );

    let paths = [("bd-a".to_string(), disk(1)), ("bd-b".to_string(), disk(2))].into();
    let disks = decide::spec_disks(&s, &paths, &claims);
    assert_eq!(
        disks,
        vec![
            (
                Category::Data,
                "mirror".to_string(),
                vec![
                    gd("bd-a", 1),
                    GroupDisk {
                        replacing: true,
                        ..gd("bd-b", 2)
                    }
                ]
            ),
            (
                Category::Data,
                "mirror".to_string(),
                vec![GroupDisk {
                    name: "bd-c".into(),
                    paths: vec![],
                    replacing: false
                }]
            ),
        ]
    );
}

#[test]
fn replacement_condition_choices() {
    let cond = |status, reason: &str| PoolCondition {
        type_: "DiskReplacement".into(),
        status,
        reason: reason.into(),
        ..Default::default()
    };
    let running = Wanted::new(
        "DiskReplacement",
        ConditionStatus::True,
        "BlockDeviceReplacementInprogress",
        "Resilvering 1 no.of blockdevices... because of blockdevice replacement error: <nil>",
    );
    let done = Wanted::new(
        "DiskReplacement",
        ConditionStatus::False,
        "BlockDeviceReplacementSucceess",
        "Blockdevice replacement was successfully completed",
    );
    // (wanted, in progress, errors, current) → condition
    type Case = (
        usize,
        usize,
        Vec<String>,
        Vec<PoolCondition>,
        Option<Wanted>,
    );
    let cases: Vec<Case> = vec![
        (0, 0, vec![], vec![], None),
        (
            0,
            0,
            vec![],
            vec![cond(
                ConditionStatus::False,
                "BlockDeviceReplacementSucceess",
            )],
            None,
        ),
        // Cleaned up by a run that died before writing so: the stale True turns False.
        (
            0,
            0,
            vec![],
            vec![cond(
                ConditionStatus::True,
                "BlockDeviceReplacementInprogress",
            )],
            Some(done.clone()),
        ),
        (1, 1, vec![], vec![], Some(running)),
        (
            2,
            1,
            vec!["replace bd-o with bd-n: Old device links are not in use by pool".into()],
            vec![],
            Some(Wanted::new(
                "DiskReplacement",
                ConditionStatus::True,
                "BlockDeviceReplacementInprogress",
                "Resilvering 1 no.of blockdevices... because of blockdevice replacement error: replace bd-o with bd-n: Old device links are not in use by pool",
            )),
        ),
        (1, 0, vec![], vec![], Some(done)),
    ];
    for (wanted, in_progress, errors, current, want) in cases {
        assert_eq!(
            decide::replacement_condition(wanted, in_progress, &errors, &current),
            want,
            "wanted {wanted}, in progress {in_progress}, errors {errors:?}"
        );
    }
}

#[test]
fn expansion_condition_choices() {
    let cond = |reason: &str| PoolCondition {
        type_: "PoolExpansion".into(),
        status: ConditionStatus::True,
        reason: reason.into(),
        ..Default::default()
    };
    let done = Wanted::new(
        "PoolExpansion",
        ConditionStatus::False,
        "PoolExpansionSuccessful",
        "Pool expansion was successfull by adding blockdevices/raid groups",
    );
    assert_eq!(decide::expansion_condition(0, &[], &[]), None);
    assert_eq!(
        decide::expansion_condition(0, &[], &[cond("PoolExpansionSuccessful")]),
        None
    );
    assert_eq!(
        decide::expansion_condition(0, &[], &[cond("PoolExpansionInProgress")]),
        Some(done)
    );
    assert_eq!(
        decide::expansion_condition(1, &["cannot add: busy".into()], &[]),
        Some(Wanted::new(
            "PoolExpansion",
            ConditionStatus::True,
            "PoolExpansionInProgress",
            "Pool expansion is in progress because of blockdevice/raid group addition error: cannot add: busy",
        ))
    );
    assert_eq!(
        decide::expansion_condition(2, &[], &[]).map(|w| w.message),
        Some(
            "Pool expansion is in progress because of blockdevice/raid group addition error: <nil>"
                .to_string()
        )
    );
}

/// A deleted CSPI's pool is destroyed only when it holds no volume dataset (one with a replica
/// id) and no CVR names it; the headroom and an admin's own datasets do not count. Listing as
/// `zfs list -H -o name,<replica id property> -r POOL` prints it.
#[test]
fn a_pool_holding_volumes_is_not_destroyed() {
    let pool = "cstor-0d0a";
    let empty = "cstor-0d0a\t-\ncstor-0d0a/cstor-headroom\t-\ncstor-0d0a/data\t-\n";
    assert_eq!(decide::destroy_blocked(empty, pool, &[]), None);
    let with_volume = "cstor-0d0a\t-\ncstor-0d0a/cstor-headroom\t-\ncstor-0d0a/pvc-1\t8f3c1a\n";
    assert_eq!(
        decide::destroy_blocked(with_volume, pool, &["pvc-1-cstor-0d0a".into()]).as_deref(),
        Some(
            "pool cstor-0d0a is not destroyed: it still holds volume datasets cstor-0d0a/pvc-1 and volume replicas pvc-1-cstor-0d0a; delete those volumes (or scale their replicas off this pool) first"
        )
    );
    assert_eq!(
        decide::destroy_blocked(empty, pool, &["pvc-2-cstor-0d0a".into()]).as_deref(),
        Some(
            "pool cstor-0d0a is not destroyed: it still holds volume replicas pvc-2-cstor-0d0a; delete those volumes (or scale their replicas off this pool) first"
        )
    );
    // Another pool's datasets are not this pool's.
    assert_eq!(
        decide::destroy_blocked("cstor-0d0ab/pvc-9\t77\n", pool, &[]),
        None
    );
}
