//! The replica stores' command lines (exact) and their parsers on output captured from
//! zfs-fuse 0.7.0 (tests/fixtures/README.md lists the commands).

use std::path::Path;

use cstor_agents::pool_manager::replica::store::{
    self, DatasetStore, ReplicaSpec, ReplicaStore, Stats, StoreError,
};
use cstor_agents::runner::Runner;
use pretty_assertions::assert_eq;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn spec() -> ReplicaSpec {
    ReplicaSpec {
        dataset: "cstor-abc/pvc-1".into(),
        pv: "pvc-1".into(),
        cvr: "pvc-1-cspi-a".into(),
        replica_id: "14605127560351622684".into(),
        target_ip: Some("10.96.0.10".into()),
        capacity: 67_108_864,
        capacity_text: "64Mi".into(),
        thick: false,
        quorum: true,
        zvol_workers: String::new(),
        clone_from: None,
    }
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn dataset_create_thin() {
    assert_eq!(
        store::dataset_create_argv(&spec(), Path::new("/var/openebs/cstor-pool/replicas/pvc-1")),
        argv(&[
            "zfs",
            "create",
            "-o",
            "quota=69206016",
            "-o",
            "mountpoint=/var/openebs/cstor-pool/replicas/pvc-1",
            "-o",
            "io.openebs:zvol_replica_id=14605127560351622684",
            "-o",
            "io.openebs:volname=pvc-1-cspi-a",
            "-o",
            "io.openebs:targetip=10.96.0.10",
            "cstor-abc/pvc-1",
        ])
    );
}

#[test]
fn dataset_create_thick_restore() {
    let s = ReplicaSpec {
        thick: true,
        target_ip: None,
        ..spec()
    };
    assert_eq!(
        store::dataset_create_argv(&s, Path::new("/d/replicas/pvc-1")),
        argv(&[
            "zfs",
            "create",
            "-o",
            "quota=69206016",
            "-o",
            "refreservation=67108864",
            "-o",
            "mountpoint=/d/replicas/pvc-1",
            "-o",
            "io.openebs:zvol_replica_id=14605127560351622684",
            "-o",
            "io.openebs:volname=pvc-1-cspi-a",
            "cstor-abc/pvc-1",
        ])
    );
}

#[test]
fn zvol_create_as_b_3_4() {
    let s = ReplicaSpec {
        capacity_text: "5Gi".into(),
        ..spec()
    };
    assert_eq!(
        store::zvol_create_argv(&s),
        argv(&[
            "zfs",
            "create",
            "-b",
            "4K",
            "-s",
            "-o",
            "compression=on",
            "-o",
            "quorum=on",
            "-o",
            "io.openebs:zvol_replica_id=14605127560351622684",
            "-o",
            "io.openebs:volname=pvc-1-cspi-a",
            "-o",
            "io.openebs:targetip=10.96.0.10",
            "-V",
            "5G",
            "cstor-abc/pvc-1",
        ])
    );
    let recreate = ReplicaSpec {
        quorum: false,
        zvol_workers: "6".into(),
        target_ip: None,
        capacity_text: "1073741824".into(),
        ..spec()
    };
    assert_eq!(
        store::zvol_create_argv(&recreate),
        argv(&[
            "zfs",
            "create",
            "-b",
            "4K",
            "-s",
            "-o",
            "compression=on",
            "-o",
            "quorum=off",
            "-o",
            "io.openebs:zvol_replica_id=14605127560351622684",
            "-o",
            "io.openebs:volname=pvc-1-cspi-a",
            "-o",
            "io.openebs:zvol_workers=6",
            "-V",
            "1073741824",
            "cstor-abc/pvc-1",
        ])
    );
}

#[test]
fn zvol_clone_as_b_3_4() {
    let src = "cstor-abc/pvc-0@snap1";
    assert_eq!(
        store::zvol_clone_argv(&spec(), "10.96.0.10", src),
        argv(&[
            "zfs",
            "clone",
            "-o",
            "compression=on",
            "-o",
            "io.openebs:targetip=10.96.0.10",
            "-o",
            "quorum=on",
            "-o",
            "io.openebs:zvol_replica_id=14605127560351622684",
            "-o",
            "io.openebs:volname=pvc-1-cspi-a",
            src,
            "cstor-abc/pvc-1",
        ])
    );
    let workers = ReplicaSpec {
        zvol_workers: "4".into(),
        ..spec()
    };
    assert_eq!(
        store::zvol_clone_argv(&workers, "10.96.0.10", src),
        argv(&[
            "zfs",
            "clone",
            "-o",
            "compression=on",
            "-o",
            "io.openebs:targetip=10.96.0.10",
            "-o",
            "quorum=on",
            "-o",
            "io.openebs:zvol_workers=4",
            "-o",
            "io.openebs:volname=pvc-1-cspi-a",
            "-o",
            "io.openebs:zvol_replica_id=14605127560351622684",
            src,
            "cstor-abc/pvc-1",
        ])
    );
}

#[test]
fn small_command_lines() {
    let ds = "cstor-abc/pvc-1";
    assert_eq!(store::destroy_argv(ds), argv(&["zfs", "destroy", "-r", ds]));
    assert_eq!(
        store::exists_argv(ds),
        argv(&["zfs", "list", "-H", "-o", "name", ds])
    );
    assert_eq!(
        store::dataset_stats_argv(ds),
        argv(&[
            "zfs",
            "get",
            "-Hp",
            "-o",
            "value",
            "used,referenced,quota,refreservation,mounted",
            ds
        ])
    );
    assert_eq!(
        store::zvol_stats_argv(ds),
        argv(&[
            "zfs",
            "get",
            "-Hp",
            "-o",
            "value",
            "used,logicalreferenced,volsize,refreservation",
            ds
        ])
    );
    assert_eq!(
        store::set_argv("quota", "137363456", ds),
        argv(&["zfs", "set", "quota=137363456", ds])
    );
    assert_eq!(
        store::replica_id_argv(ds),
        argv(&[
            "zfs",
            "get",
            "-H",
            "-o",
            "value",
            "io.openebs:zvol_replica_id",
            ds
        ])
    );
    assert_eq!(store::mount_argv(ds), argv(&["zfs", "mount", ds]));
    // uZFS: the replica's state, and its target after a restore (B §3.2, §3.5).
    assert_eq!(store::uzfs_stats_argv(ds), argv(&["zfs", "stats", ds]));
    assert_eq!(
        store::get_argv(store::TARGET_IP_PROPERTY, ds),
        argv(&["zfs", "get", "-H", "-o", "value", "io.openebs:targetip", ds])
    );
    assert_eq!(
        store::set_argv(store::TARGET_IP_PROPERTY, "10.96.0.10", ds),
        argv(&["zfs", "set", "io.openebs:targetip=10.96.0.10", ds])
    );
}

#[test]
fn stats_of_a_thin_dataset_after_a_full_write() {
    assert_eq!(
        store::parse_dataset_stats(&fixture("replica-zfs-stats-thin.txt")).expect("parses"),
        Stats {
            used: 67_297_280,
            referenced: 67_297_280,
            size_limit: 69_206_016,
            refreservation: 0,
            mounted: true,
        }
    );
}

#[test]
fn stats_of_a_thick_dataset() {
    assert_eq!(
        store::parse_dataset_stats(&fixture("replica-zfs-stats-thick.txt")).expect("parses"),
        Stats {
            used: 134_217_728,
            referenced: 114_688,
            size_limit: 134_217_728,
            refreservation: 134_217_728,
            mounted: true,
        }
    );
}

#[test]
fn stats_of_an_unmounted_and_a_grown_dataset() {
    let unmounted =
        store::parse_dataset_stats(&fixture("replica-zfs-stats-unmounted.txt")).expect("parses");
    assert!(!unmounted.mounted);
    let grown =
        store::parse_dataset_stats(&fixture("replica-zfs-stats-grown.txt")).expect("parses");
    assert_eq!(grown.size_limit, 137_363_456);
    assert_eq!(grown.used, 67_297_280, "a sparse grow allocates nothing");
}

#[test]
fn stats_refuse_other_shapes() {
    for text in [
        "",
        "1\n2\n3\n4\n",
        "1.2G\n1\n2\n3\nyes\n",
        "1\n2\n3\n4\nmaybe\n",
        "1\n2\n-\n4\nyes\n",
        "1\n2\n3\n4\nyes\nextra\n",
    ] {
        assert!(
            matches!(store::parse_dataset_stats(text), Err(StoreError::Parse(_))),
            "{text:?}"
        );
    }
    assert_eq!(
        store::parse_zvol_stats("6144\n6144\n5368709120\n0\n").expect("parses"),
        Stats {
            used: 6144,
            referenced: 6144,
            size_limit: 5_368_709_120,
            refreservation: 0,
            mounted: true,
        }
    );
    assert!(store::parse_zvol_stats("1\n2\n3\n").is_err());
}

#[test]
fn missing_dataset_words() {
    for f in [
        "replica-zfs-destroy-missing.txt",
        "replica-zfs-list-missing.txt",
        "replica-zfs-stats-missing.txt",
    ] {
        assert!(store::is_missing(&fixture(f)), "{f}");
    }
    for f in [
        "replica-zfs-destroy-busy.txt",
        "replica-zfs-create-exists.txt",
        "replica-zfs-create-out-of-space.txt",
        "replica-zfs-set-quota-below-used.txt",
        "replica-zpool-list-health-missing.txt",
    ] {
        assert!(!store::is_missing(&fixture(f)), "{f}");
    }
}

#[test]
fn replica_id_property_reads_back() {
    assert_eq!(
        cstor_agents::pool_manager::zfs::parse_value(&fixture("replica-zfs-get-replica-id.txt")),
        Some("14605127560351622684".into())
    );
    let props: Vec<String> = fixture("replica-zfs-get-user-props.txt")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(props, vec!["123", "pv1-cspi-a", "10.0.0.5"]);
    assert_eq!(fixture("replica-zpool-list-health.txt").trim(), "ONLINE");
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("replica-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

#[test]
fn lun_is_sparse_exact_and_never_shrinks() {
    let dir = tmp("lun");
    let lun = dir.join("lun");
    assert_eq!(store::lun_len(&lun).expect("stat"), None);
    assert_eq!(
        store::grow_lun(&lun, 67_108_864).expect("create"),
        67_108_864
    );
    assert_eq!(store::lun_len(&lun).expect("stat"), Some(67_108_864));
    std::fs::write(dir.join("probe"), b"x").expect("write");
    // Growing keeps the data; asking for less keeps the length.
    assert_eq!(
        store::grow_lun(&lun, 134_217_728).expect("grow"),
        134_217_728
    );
    assert_eq!(store::grow_lun(&lun, 1024).expect("no shrink"), 134_217_728);
    assert_eq!(store::lun_len(&lun).expect("stat"), Some(134_217_728));
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(&lun).expect("stat").blocks();
        assert!(blocks < 1024, "sparse: {blocks} blocks");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dataset_store_paths() {
    let s = DatasetStore {
        runner: Runner::default(),
        replicas_dir: "/var/openebs/cstor-pool/replicas".into(),
    };
    assert_eq!(
        s.lun_path(&spec()),
        Some("/var/openebs/cstor-pool/replicas/pvc-1/lun".into())
    );
    assert_eq!(
        s.mountpoint("pvc-1"),
        std::path::PathBuf::from("/var/openebs/cstor-pool/replicas/pvc-1")
    );
}

#[test]
fn snapshot_commands_and_their_answers() {
    assert_eq!(
        store::snapshot_argv("cstor-abc/pvc-1", "b1-20240101101010"),
        argv(&["zfs", "snapshot", "cstor-abc/pvc-1@b1-20240101101010"])
    );
    assert_eq!(
        store::snapshot_destroy_argv("cstor-abc/pvc-1", "b1"),
        argv(&["zfs", "destroy", "cstor-abc/pvc-1@b1"])
    );
    assert!(store::snapshot_exists(&fixture(
        "replica-zfs-snapshot-exists.txt"
    )));
    assert!(!store::snapshot_exists(&fixture(
        "replica-zfs-snapshot-destroy-missing.txt"
    )));
    // A destroy of a snapshot that is gone already is done; one with a clone is not.
    assert!(store::is_missing(&fixture(
        "replica-zfs-snapshot-destroy-missing.txt"
    )));
    assert!(!store::is_missing(&fixture(
        "replica-zfs-snapshot-destroy-clone.txt"
    )));
}

#[test]
fn dataset_clone_is_create_with_the_source() {
    assert_eq!(
        store::dataset_clone_argv(
            &spec(),
            Path::new("/var/openebs/cstor-pool/replicas/pvc-1"),
            "cstor-abc/pvc-0@b1"
        ),
        argv(&[
            "zfs",
            "clone",
            "-o",
            "quota=69206016",
            "-o",
            "mountpoint=/var/openebs/cstor-pool/replicas/pvc-1",
            "-o",
            "io.openebs:zvol_replica_id=14605127560351622684",
            "-o",
            "io.openebs:volname=pvc-1-cspi-a",
            "-o",
            "io.openebs:targetip=10.96.0.10",
            "cstor-abc/pvc-0@b1",
            "cstor-abc/pvc-1",
        ])
    );
}
