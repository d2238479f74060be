//! The velero-plugin's REST requests, validated before anything is done (no snapshot is taken
//! for a request that would then be refused), with the Go operators' messages and codes where
//! the plugin can see them (docs/backup-restore.md). Ours, and marked so: `backupDest` and a
//! remote `restoreSrc` must be `<ip>:<port>`, and a local restore needs a size above zero.

use cstor_api::backup_rest::{BackupRequest, RestoreRequest};

/// An HTTP answer that is not 200: the code and the body text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub message: String,
}

fn refuse(code: u16, message: String) -> Refusal {
    Refusal { code, message }
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// Whether `s` is `<IPv4 or [IPv6]>:<port 1-65535>`: where a pool-manager will connect.
pub fn is_ip_port(s: &str) -> bool {
    s.parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.port() != 0)
}

/// POST `/latest/backups/`.
pub fn backup_create(req: &BackupRequest) -> Result<(), Refusal> {
    let spec = &req.spec;
    if blank(&spec.backup_name) {
        return Err(refuse(
            400,
            "Failed to create backup: missing backup name ".into(),
        ));
    }
    let bn = &spec.backup_name;
    let missing = |what: &str| {
        refuse(
            400,
            format!("Failed to create backup '{bn}': missing {what}"),
        )
    };
    if blank(&req.metadata.namespace) {
        return Err(missing("namespace"));
    }
    if blank(&spec.volume_name) {
        return Err(missing("volume name"));
    }
    if !spec.local_snap && blank(&spec.backup_dest) {
        return Err(missing("backupIP"));
    }
    if blank(&spec.snap_name) {
        return Err(missing("snapName"));
    }
    // Ours: a destination the pool-manager could never reach is refused before a snapshot.
    if !spec.local_snap && !is_ip_port(spec.backup_dest.trim()) {
        return Err(refuse(
            400,
            format!(
                "Failed to create backup '{bn}': backupIP '{}' is not <ip>:<port>",
                spec.backup_dest
            ),
        ));
    }
    Ok(())
}

/// GET `/latest/backups/` (the POST body again; snapName is not checked).
pub fn backup_get(req: &BackupRequest) -> Result<(), Refusal> {
    let spec = &req.spec;
    if blank(&spec.backup_name) {
        return Err(refuse(
            400,
            "Failed to get backup: missing backup name ".into(),
        ));
    }
    let bn = &spec.backup_name;
    if blank(&req.metadata.namespace) {
        return Err(refuse(
            400,
            format!("Failed to get backup '{bn}': missing namespace"),
        ));
    }
    if blank(&spec.volume_name) {
        return Err(refuse(
            400,
            format!("Failed to get backup '{bn}': missing volume name"),
        ));
    }
    Ok(())
}

/// DELETE `/latest/backups/<snap>?volume=&namespace=&schedule=`: all four are needed (405).
pub fn backup_delete(
    snap: &str,
    volume: &str,
    namespace: &str,
    schedule: &str,
) -> Result<(), Refusal> {
    if [snap, volume, namespace, schedule].iter().any(|v| blank(v)) {
        return Err(refuse(
            405,
            "failed to delete backup: Insufficient info -- required values volume_name, backup_name, namespace, schedule_name".into(),
        ));
    }
    Ok(())
}

/// POST `/latest/restore/`.
pub fn restore_create(req: &RestoreRequest) -> Result<(), Refusal> {
    let spec = &req.spec;
    let name = &req.metadata.name;
    let why = |msg: String| {
        refuse(
            400,
            format!("restore create validation failed error: {{{msg}}}"),
        )
    };
    let missing = |what: &str| why(format!("failed to create restore '{name}': missing {what}"));
    if !spec.local_restore && blank(&req.metadata.namespace) {
        return Err(missing("namespace"));
    }
    if blank(&spec.restore_name) {
        return Err(why("failed to create restore: missing restore name".into()));
    }
    if blank(&spec.volume_name) {
        return Err(missing("volume name"));
    }
    if blank(&spec.restore_src) {
        return Err(missing("restoreSrc"));
    }
    if spec.local_restore {
        if blank(&spec.storage_class) {
            return Err(missing("storageClass"));
        }
        // Ours: Go's check never fires (a zero quantity prints "0"); a clone of zero bytes
        // is refused here instead of failing later.
        let zero = cstor_api::quantity::bytes(spec.size.trim()).map_or(true, |b| b == 0);
        if zero {
            return Err(missing("size"));
        }
    } else if !is_ip_port(spec.restore_src.trim()) {
        // Ours: the pool-managers connect there.
        return Err(why(format!(
            "failed to create restore '{name}': restoreSrc '{}' is not <ip>:<port>",
            spec.restore_src
        )));
    }
    Ok(())
}

/// GET `/latest/restore/`.
pub fn restore_get(req: &RestoreRequest) -> Result<(), Refusal> {
    let spec = &req.spec;
    if blank(&spec.restore_name) {
        return Err(refuse(
            400,
            "Failed to get restore: missing restore name ".into(),
        ));
    }
    let rn = &spec.restore_name;
    if blank(&req.metadata.namespace) {
        return Err(refuse(
            400,
            format!("Failed to get restore '{rn}': missing namespace"),
        ));
    }
    if blank(&spec.volume_name) {
        return Err(refuse(
            400,
            format!("Failed to get restore '{rn}': missing volume name"),
        ));
    }
    Ok(())
}

/// One replica's restore as the GET aggregates it: its CR's status, and whether its
/// pool-manager is up (a restore whose pool-manager is down will never finish).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaRestore<'a> {
    pub status: &'a str,
    pub pool_manager_up: bool,
}

/// What GET `/latest/restore/` answers for a volume's replica restores. Ours (the Go server
/// reported the last CR walked, so `[Init, Init, Done]` read `Done` and the plugin stopped
/// serving two replicas still waiting): `Done` only when every replica's restore is Done;
/// `Failed` as soon as one failed, was invalid, or waits on a pool-manager that is down;
/// `InProgress` while any runs; else the least advanced state (`Init`, then `Pending`); `""`
/// when there is none (the plugin keeps polling).
pub fn restore_status<'a>(replicas: &[ReplicaRestore<'a>]) -> &'static str {
    use cstor_api::cstor_v1::backup::restore_status as st;
    if replicas.is_empty() {
        return st::EMPTY;
    }
    let effective = |r: &ReplicaRestore<'a>| -> &'a str {
        let terminal = r.status == st::DONE || r.status == st::FAILED;
        if !terminal && !r.pool_manager_up {
            st::FAILED
        } else {
            r.status
        }
    };
    let all: Vec<&str> = replicas.iter().map(effective).collect();
    if all.iter().any(|s| *s == st::FAILED || *s == st::INVALID) {
        st::FAILED
    } else if all.iter().all(|s| *s == st::DONE) {
        st::DONE
    } else if all.iter().any(|s| *s == st::IN_PROGRESS || *s == st::DONE) {
        st::IN_PROGRESS
    } else if all.contains(&st::INIT) {
        st::INIT
    } else {
        st::PENDING
    }
}

/// A backup's status as GET `/latest/backups/` reports it when its pool-manager is down and
/// the CR is not terminal: judged from the schedule's last-backup record (as the Go server
/// does): `Done` when the record names this snapshot as its last or second last, else
/// `Failed` (also with no record).
pub fn backup_status_from_record(snap: &str, last: Option<(&str, &str)>) -> &'static str {
    use cstor_api::cstor_v1::backup::backup_status as st;
    match last {
        Some((last, second_last)) if !snap.is_empty() && (snap == last || snap == second_last) => {
            st::DONE
        }
        _ => st::FAILED,
    }
}

/// Whether deleting backup `snap` also deletes its schedule's last-backup record, so that the
/// next scheduled backup is a full one: when the record's last snapshot is this one or none.
pub fn delete_record_with(snap: &str, record_last: &str) -> bool {
    record_last.is_empty() || record_last == snap
}
