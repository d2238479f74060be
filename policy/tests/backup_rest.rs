//! The velero-plugin's REST bodies (as its own Go types encode them, docs/backup-restore.md)
//! decoded and validated, every message exact.

use cstor_api::backup_rest::{BackupRequest, RestoreRequest, decode, schedule_name};
use cstor_policy::backup::{self, Refusal};
use pretty_assertions::assert_eq;

const BACKUP: &str = r#"{"metadata":{"namespace":"app-ns","creationTimestamp":null},
 "spec":{"backupName":"sched","volumeName":"pvc-1234","snapName":"sched-20240101101010",
         "prevSnapName":"","backupDest":"10.0.0.5:9001","localSnap":false},
 "status":""}"#;
const REMOTE_RESTORE: &str = r#"{"metadata":{"namespace":"openebs","creationTimestamp":null},
 "spec":{"restoreName":"bk1","volumeName":"pvc-new","restoreSrc":"10.0.0.5:9000",
         "maxretrycount":0,"retrycount":0,"storageClass":"cstor-csi","size":"0"},
 "status":""}"#;
const LOCAL_RESTORE: &str = r#"{"metadata":{"namespace":"openebs","creationTimestamp":null},
 "spec":{"restoreName":"bk1","volumeName":"cstor-clone-7d1f","restoreSrc":"pvc-1234",
         "maxretrycount":0,"retrycount":0,"storageClass":"cstor-csi","size":"5G","localRestore":true},
 "status":""}"#;

fn backup(edit: impl FnOnce(&mut serde_json::Value)) -> BackupRequest {
    let mut v: serde_json::Value = serde_json::from_str(BACKUP).expect("json");
    edit(&mut v);
    decode(v.to_string().as_bytes(), Some("application/json")).expect("decode")
}

fn restore(base: &str, edit: impl FnOnce(&mut serde_json::Value)) -> RestoreRequest {
    let mut v: serde_json::Value = serde_json::from_str(base).expect("json");
    edit(&mut v);
    decode(v.to_string().as_bytes(), None).expect("decode")
}

fn err(code: u16, message: &str) -> Result<(), Refusal> {
    Err(Refusal {
        code,
        message: message.into(),
    })
}

#[test]
fn the_plugins_bodies_decode_and_pass() {
    let b = backup(|_| {});
    assert_eq!(b.metadata.namespace, "app-ns");
    assert_eq!(b.spec.snap_name, "sched-20240101101010");
    assert_eq!(backup::backup_create(&b), Ok(()));
    assert_eq!(backup::backup_get(&b), Ok(()));
    let r = restore(REMOTE_RESTORE, |_| {});
    assert_eq!(r.spec.size, "0");
    assert_eq!(backup::restore_create(&r), Ok(()));
    assert_eq!(backup::restore_get(&r), Ok(()));
    let l = restore(LOCAL_RESTORE, |_| {});
    assert!(l.spec.local_restore);
    assert_eq!(backup::restore_create(&l), Ok(()));
    // YAML when the content type says so.
    let y: BackupRequest = decode(
        b"metadata: {namespace: app-ns}\nspec: {backupName: b, volumeName: v, snapName: s, localSnap: true}\n",
        Some("application/yaml"),
    )
    .expect("yaml");
    assert_eq!(backup::backup_create(&y), Ok(()));
    // Not a body at all: the decoder's words (the server answers 500 with them).
    assert!(decode::<BackupRequest>(b"{not json", None).is_err());
}

#[test]
fn backup_create_messages_in_order() {
    use serde_json::json;
    type Edit = fn(&mut serde_json::Value);
    let rows: [(Edit, Result<(), Refusal>); 8] = [
        (
            |v| v["spec"]["backupName"] = json!("  "),
            err(400, "Failed to create backup: missing backup name "),
        ),
        (
            |v| v["metadata"]["namespace"] = json!(""),
            err(400, "Failed to create backup 'sched': missing namespace"),
        ),
        (
            |v| v["spec"]["volumeName"] = json!(""),
            err(400, "Failed to create backup 'sched': missing volume name"),
        ),
        (
            |v| v["spec"]["backupDest"] = json!(""),
            err(400, "Failed to create backup 'sched': missing backupIP"),
        ),
        (
            |v| v["spec"]["snapName"] = json!(""),
            err(400, "Failed to create backup 'sched': missing snapName"),
        ),
        (
            |v| v["spec"]["backupDest"] = json!("10.0.0.5"),
            err(
                400,
                "Failed to create backup 'sched': backupIP '10.0.0.5' is not <ip>:<port>",
            ),
        ),
        (
            |v| v["spec"]["backupDest"] = json!("plugin.example:9001"),
            err(
                400,
                "Failed to create backup 'sched': backupIP 'plugin.example:9001' is not <ip>:<port>",
            ),
        ),
        // A local snapshot needs no destination.
        (
            |v| {
                v["spec"]["backupDest"] = json!("");
                v["spec"]["localSnap"] = json!(true);
            },
            Ok(()),
        ),
    ];
    for (edit, want) in rows {
        let b = backup(edit);
        assert_eq!(backup::backup_create(&b), want, "{b:?}");
    }
    // A missing field reads as empty, as Go's decoder has it.
    let b = backup(|v| {
        v["spec"].as_object_mut().map(|s| s.remove("volumeName"));
    });
    assert_eq!(
        backup::backup_create(&b),
        err(400, "Failed to create backup 'sched': missing volume name")
    );
}

#[test]
fn backup_get_and_delete_messages() {
    use serde_json::json;
    assert_eq!(
        backup::backup_get(&backup(|v| v["spec"]["backupName"] = json!(""))),
        err(400, "Failed to get backup: missing backup name ")
    );
    assert_eq!(
        backup::backup_get(&backup(|v| v["metadata"]["namespace"] = json!(""))),
        err(400, "Failed to get backup 'sched': missing namespace")
    );
    assert_eq!(
        backup::backup_get(&backup(|v| v["spec"]["volumeName"] = json!(""))),
        err(400, "Failed to get backup 'sched': missing volume name")
    );
    // snapName is not checked on a GET.
    assert_eq!(
        backup::backup_get(&backup(|v| v["spec"]["snapName"] = json!(""))),
        Ok(())
    );
    let insufficient = err(
        405,
        "failed to delete backup: Insufficient info -- required values volume_name, backup_name, namespace, schedule_name",
    );
    assert_eq!(backup::backup_delete("s", "v", "ns", "sched"), Ok(()));
    assert_eq!(backup::backup_delete("", "v", "ns", "sched"), insufficient);
    assert_eq!(backup::backup_delete("s", "v", "ns", ""), insufficient);
}

#[test]
fn restore_messages_in_order() {
    use serde_json::json;
    let wrap = |m: &str| {
        err(
            400,
            &format!("restore create validation failed error: {{{m}}}"),
        )
    };
    assert_eq!(
        backup::restore_create(&restore(REMOTE_RESTORE, |v| v["metadata"]["namespace"] = json!(""))),
        wrap("failed to create restore '': missing namespace")
    );
    // A local restore needs no namespace in the body.
    assert_eq!(
        backup::restore_create(&restore(LOCAL_RESTORE, |v| v["metadata"]["namespace"] = json!(""))),
        Ok(())
    );
    assert_eq!(
        backup::restore_create(&restore(REMOTE_RESTORE, |v| v["spec"]["restoreName"] = json!(""))),
        wrap("failed to create restore: missing restore name")
    );
    assert_eq!(
        backup::restore_create(&restore(REMOTE_RESTORE, |v| v["spec"]["volumeName"] = json!(""))),
        wrap("failed to create restore '': missing volume name")
    );
    assert_eq!(
        backup::restore_create(&restore(REMOTE_RESTORE, |v| v["spec"]["restoreSrc"] = json!(""))),
        wrap("failed to create restore '': missing restoreSrc")
    );
    assert_eq!(
        backup::restore_create(&restore(REMOTE_RESTORE, |v| v["spec"]["restoreSrc"] =
            json!("10.0.0.5"))),
        wrap("failed to create restore '': restoreSrc '10.0.0.5' is not <ip>:<port>")
    );
    assert_eq!(
        backup::restore_create(&restore(LOCAL_RESTORE, |v| v["spec"]["storageClass"] = json!(""))),
        wrap("failed to create restore '': missing storageClass")
    );
    for size in ["0", "", "lots"] {
        assert_eq!(
            backup::restore_create(&restore(LOCAL_RESTORE, |v| v["spec"]["size"] = json!(size))),
            wrap("failed to create restore '': missing size"),
            "{size}"
        );
    }
    assert_eq!(
        backup::restore_get(&restore(REMOTE_RESTORE, |v| v["spec"]["restoreName"] = json!(""))),
        err(400, "Failed to get restore: missing restore name ")
    );
    assert_eq!(
        backup::restore_get(&restore(REMOTE_RESTORE, |v| v["metadata"]["namespace"] = json!(""))),
        err(400, "Failed to get restore 'bk1': missing namespace")
    );
    assert_eq!(
        backup::restore_get(&restore(REMOTE_RESTORE, |v| v["spec"]["volumeName"] = json!(""))),
        err(400, "Failed to get restore 'bk1': missing volume name")
    );
}

#[test]
fn schedule_names_as_the_plugin_computes_them() {
    for (backup, schedule) in [
        ("sched-20240101101010", "sched"),
        ("my-daily-20241231235959", "my-daily"),
        ("bk1", "bk1"),
        ("bk-1", "bk-1"),
        ("sched-20240230101010", "sched-20240230101010"),
        ("sched-20240229101010", "sched"),
        ("sched-20230229101010", "sched-20230229101010"),
        ("sched-2024010110101", "sched-2024010110101"),
        ("-20240101101010", "-20240101101010"),
    ] {
        assert_eq!(schedule_name(backup), schedule, "{backup}");
    }
}

#[test]
fn a_restore_is_done_only_when_every_replica_is() {
    use cstor_policy::backup::{ReplicaRestore, restore_status};
    let r = |status: &'static str, up: bool| ReplicaRestore {
        status,
        pool_manager_up: up,
    };
    let rows: Vec<(Vec<ReplicaRestore<'static>>, &str)> = vec![
        (vec![], ""),
        (
            vec![r("Done", true), r("Done", true), r("Done", true)],
            "Done",
        ),
        // The Go server read the last CR: this was "Done" with two replicas not started.
        (
            vec![r("Init", true), r("Init", true), r("Done", true)],
            "InProgress",
        ),
        (vec![r("Pending", true), r("Pending", true)], "Pending"),
        (vec![r("Pending", true), r("Init", true)], "Init"),
        (vec![r("InProgress", true), r("Init", true)], "InProgress"),
        (
            vec![r("Done", true), r("Failed", true), r("InProgress", true)],
            "Failed",
        ),
        (vec![r("Done", true), r("Invalid", true)], "Failed"),
        // A replica waiting on a pool-manager that is down will never finish.
        (vec![r("Done", true), r("InProgress", false)], "Failed"),
        // A finished one does not need its pool-manager any more.
        (vec![r("Done", false), r("Done", true)], "Done"),
    ];
    for (replicas, want) in rows {
        assert_eq!(restore_status(&replicas), want, "{replicas:?}");
    }
}

#[test]
fn backup_status_and_record_rules() {
    use cstor_policy::backup::{backup_status_from_record, delete_record_with};
    assert_eq!(backup_status_from_record("s3", Some(("s3", "s2"))), "Done");
    assert_eq!(backup_status_from_record("s2", Some(("s3", "s2"))), "Done");
    assert_eq!(
        backup_status_from_record("s4", Some(("s3", "s2"))),
        "Failed"
    );
    assert_eq!(backup_status_from_record("s1", None), "Failed");
    assert_eq!(backup_status_from_record("", Some(("", ""))), "Failed");
    assert!(delete_record_with("s3", "s3"));
    assert!(delete_record_with("s3", ""));
    assert!(!delete_record_with("s2", "s3"));
}
