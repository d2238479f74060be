//! Opening a replica file: only a regular file, reached through real directories, no symlink
//! anywhere in `<pool>/replicas/<volume>/lun`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::volume_manager::reconcile::open_replica;

fn layout(root: &Path) -> PathBuf {
    let dir = root.join("pool-a/replicas/pvc-1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir.join("lun")
}

fn refused(path: &Path) -> String {
    match open_replica(path) {
        Ok(_) => panic!("{} was opened", path.display()),
        Err(e) => format!("{e} ({:?})", std::error::Error::source(&e)),
    }
}

#[test]
fn only_a_regular_file_through_real_directories_is_opened() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let lun = layout(root);
    std::fs::write(&lun, b"data").expect("write");
    assert!(open_replica(&lun).is_ok());

    // The lun is a symlink to another file: refused (O_NOFOLLOW: ELOOP).
    let secret = root.join("secret");
    std::fs::write(&secret, b"not yours").expect("write");
    std::fs::remove_file(&lun).expect("rm");
    symlink(&secret, &lun).expect("symlink");
    let e = refused(&lun);
    assert!(e.contains("open replica file"), "{e}");
    assert_eq!(std::fs::read(&secret).expect("read"), b"not yours");

    // A directory or a FIFO where the file should be: refused.
    std::fs::remove_file(&lun).expect("rm");
    std::fs::create_dir(&lun).expect("mkdir");
    assert!(open_replica(&lun).is_err());
    std::fs::remove_dir(&lun).expect("rmdir");
    nix::unistd::mkfifo(&lun, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let e = refused(&lun);
    assert!(
        e.contains("not a regular file") || e.contains("open replica file"),
        "{e}"
    );
    std::fs::remove_file(&lun).expect("rm");

    // A symlinked directory on the way (`replicas` → elsewhere): refused.
    let elsewhere = root.join("elsewhere/pvc-1");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::fs::write(elsewhere.join("lun"), b"data").expect("write");
    std::fs::remove_dir_all(root.join("pool-a/replicas")).expect("rm");
    symlink(root.join("elsewhere"), root.join("pool-a/replicas")).expect("symlink");
    let e = refused(&lun);
    assert!(e.contains("is not a directory (a symlink?)"), "{e}");
}
