//! A local node's data plane: its disks (sparse files) and its own zfs-fuse daemon in a private
//! mount namespace. zfs-fuse listens on a fixed socket and every CSPI of a CSPC uses the same
//! zpool name, so one daemon per node is what makes three nodes' pools of one name possible
//! on one machine (docs/decisions/010).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::Supervisor;

/// Disks per node and their size, as `cstor up` makes them.
#[derive(Clone, Copy, Debug)]
pub struct DiskLayout {
    pub per_node: usize,
    pub bytes: u64,
}

impl Default for DiskLayout {
    fn default() -> Self {
        DiskLayout {
            per_node: 4,
            bytes: 1 << 30,
        }
    }
}

/// One local node: where its files are and the pid of its zfs-fuse daemon.
#[derive(Clone, Debug)]
pub struct LocalNode {
    pub name: String,
    pub dir: PathBuf,
    pub zfs_pid: u32,
}

impl LocalNode {
    /// The directory of the node's disks (watched by its disk discovery).
    pub fn disks_dir(&self) -> PathBuf {
        self.dir.join("disks")
    }

    /// The path of disk `i` (1-based).
    pub fn disk(&self, i: usize) -> PathBuf {
        self.disks_dir().join(format!("disk-{i}"))
    }

    /// The node's view of a host path (hostPath volumes live under the node directory).
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.dir.join("root").join(path.trim_start_matches('/'))
    }

    /// `program` run inside the node's mount namespace, so `zpool`/`zfs` reach its daemon.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount=/proc/{}/ns/mnt", self.zfs_pid))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Runs `zpool args…` on this node; stdout on success, the command's words on failure.
    pub fn zpool(&self, args: &[&str]) -> Result<String, String> {
        run_text(self.command("zpool").args(args))
    }

    /// Runs `zfs args…` on this node.
    pub fn zfs(&self, args: &[&str]) -> Result<String, String> {
        run_text(self.command("zfs").args(args))
    }
}

fn run_text(cmd: &mut Command) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// Fails with the package to install when a data-plane tool is missing.
pub fn check_tools() -> Result<(), Error> {
    for (tool, package) in [
        ("zfs-fuse", "zfs-fuse"),
        ("zpool", "zfs-fuse"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
            || Path::new("/usr/sbin").join(tool).is_file();
        if !found {
            return Err(Error::Tool(format!(
                "`{tool}` is not installed: the local pools need it (apt-get install {package})"
            )));
        }
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(Error::Tool(
            "/dev/fuse is missing: zfs-fuse needs the FUSE device".into(),
        ));
    }
    Ok(())
}

/// Creates the sparse disks `disk-1..N` of a node (existing ones are kept as they are).
pub fn make_disks(dir: &Path, layout: DiskLayout) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for i in 1..=layout.per_node {
        let path = dir.join(format!("disk-{i}"));
        if !path.exists() {
            let f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            f.set_len(layout.bytes).map_err(|e| Error::io(&path, e))?;
        }
        out.push(path);
    }
    Ok(out)
}

const ZFS_SCRIPT: &str = r#"set -e
mkdir -p /var/run/zfs /etc/zfs /var/lock/zfs /var/lib/zfs
mount --bind "$NODE_ZFS/run" /var/run/zfs
mount --bind "$NODE_ZFS/lib" /var/lib/zfs
mount --bind "$NODE_ZFS/etc" /etc/zfs
mount --bind "$NODE_ZFS/lock" /var/lock/zfs
exec zfs-fuse --no-daemon --pidfile "$NODE_ZFS/zfs-fuse.pid""#;

/// Starts node `name`'s zfs-fuse daemon (under `sup`) with its files in `dir`, and returns
/// once `zpool list` answers inside its namespace.
pub fn start(sup: &mut Supervisor, name: &str, dir: &Path) -> Result<LocalNode, Error> {
    let zfs = dir.join("zfs");
    for sub in ["run", "etc", "lock", "lib"] {
        let d = zfs.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let _ = std::fs::remove_file(zfs.join("run/zfs_socket"));
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        ZFS_SCRIPT,
    ])
    .env("NODE_ZFS", &zfs);
    let pid = sup.spawn(&format!("zfs-fuse-{name}"), cmd)?;
    let node = LocalNode {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        zfs_pid: pid,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match node.zpool(&["list", "-H", "-o", "name"]) {
            Ok(_) => return Ok(node),
            Err(e) if Instant::now() > deadline => {
                return Err(Error::Timeout(format!(
                    "zfs-fuse of node {name} did not answer within 30s: {e}; log {}",
                    sup.log_path(&format!("zfs-fuse-{name}")).display()
                )));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
