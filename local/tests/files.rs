//! What the local mode writes and removes: private keys and tokens are the owner's only, and
//! a run directory is removed only when it is one `cstor up` made (never `/run` because of a
//! mistaken `--state-dir /`).

use std::os::unix::fs::PermissionsExt;

use cstor_local::controlplane::prepare_run_dir;
use cstor_local::{RUN_DIR_MARKER, write_private};

#[test]
fn private_files_are_0600_and_replaced_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("sa.key");
    write_private(&key, b"first").expect("write");
    write_private(&key, b"second").expect("rewrite");
    assert_eq!(std::fs::read(&key).expect("read"), b"second");
    let mode = std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}

#[test]
fn only_our_run_directories_are_removed() {
    let root = tempfile::tempdir().expect("tmp");
    // Someone else's directory (as /run would be): refused, left as it was.
    let foreign = root.path().join("run");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("utmp"), b"x").expect("file");
    let err = prepare_run_dir(&foreign).expect_err("refused");
    assert!(err.to_string().contains("was not made by cstor"), "{err}");
    assert!(foreign.join("utmp").exists());
    // A fresh one gets the marker; ours is emptied and made again.
    let ours = root.path().join("ours");
    prepare_run_dir(&ours).expect("fresh");
    assert!(ours.join(RUN_DIR_MARKER).exists());
    std::fs::write(ours.join("leftover"), b"x").expect("file");
    prepare_run_dir(&ours).expect("again");
    assert!(!ours.join("leftover").exists());
    assert!(ours.join(RUN_DIR_MARKER).exists());
}
