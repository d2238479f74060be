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
