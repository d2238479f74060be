//! A local node's data plane: its disks (sparse files) and its own zfs-fuse daemon in a private
//! mount namespace. zfs-fuse listens on a fixed socket and every CSPI of a CSPC uses the same
//! zpool name, so one daemon per node is what makes three nodes' pools of one name possible
//! on one machine (docs/decisions/010). The namespace is held by a process of its own, so the
//! daemon can die and come back (a pool container's crash and restart) without the node's
//! root path changing under the volume-managers that reach replica files through it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
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

/// One local node: where its files are, the process holding its mount namespace and the
/// pid of its (current) zfs-fuse daemon.
#[derive(Clone, Debug)]
pub struct LocalNode {
    pub name: String,
    pub dir: PathBuf,
    /// Holds the mount namespace; `/proc/<ns_pid>/root` is the node's root.
    pub ns_pid: u32,
    zfs_pid: Arc<AtomicU32>,
    /// The supervisor's process group, joined by a restarted daemon.
    pgid: Option<i32>,
    log: PathBuf,
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

    /// The node's root as seen from the host (what `CSTOR_NODE_ROOTS` names).
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.ns_pid))
    }

    /// The pid of the running zfs-fuse daemon.
    pub fn zfs_pid(&self) -> u32 {
        self.zfs_pid.load(Ordering::SeqCst)
    }

    /// `program` run inside the node's mount namespace, so `zpool`/`zfs` reach its daemon.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount=/proc/{}/ns/mnt", self.ns_pid))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Kills the zfs-fuse daemon (SIGKILL, as a crash would) and waits until it is gone; its
    /// pools go with it and open files on its datasets fail with ENOTCONN.
    pub fn kill_zfs(&self) -> Result<(), Error> {
        let pid = self.zfs_pid();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) {
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "zfs-fuse {pid} of node {} did not die",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts zfs-fuse again after [`Self::kill_zfs`]: the dead daemon's mounts are detached
    /// first (a FUSE mount outlives its daemon), then the new one answers `zpool list`.
    /// Pools in zfs-fuse's default cache file come back imported, their datasets unmounted.
    pub fn restart_zfs(&self) -> Result<(), Error> {
        if alive(self.zfs_pid()) {
            return Ok(());
        }
        self.detach_dead_mounts()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io(&self.log, e))?;
        let log2 = log.try_clone().map_err(|e| Error::io(&self.log, e))?;
        let mut cmd = zfs_command(self.ns_pid, &self.dir.join("zfs"));
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(self.pgid.unwrap_or(0));
        }
        let mut child = cmd.spawn().map_err(|e| Error::Spawn {
            what: format!("{cmd:?}"),
            source: e,
        })?;
        self.zfs_pid.store(child.id(), Ordering::SeqCst);
        // Reaped here, so its death is seen by `alive` (no zombie left behind).
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        self.wait_answering()
    }

    /// `umount -l` of every zfs-fuse mount in the namespace, deepest first.
    fn detach_dead_mounts(&self) -> Result<(), Error> {
        let info_path = PathBuf::from(format!("/proc/{}/mountinfo", self.ns_pid));
        let info = std::fs::read_to_string(&info_path).map_err(|e| Error::io(&info_path, e))?;
        let mut points = zfs_mount_points(&info);
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            if let Err(e) = run_text(self.command("umount").args(["-l", &point])) {
                tracing::warn!(node = %self.name, %point, error = %e, "dead zfs-fuse mount not detached");
            }
        }
        Ok(())
    }

    fn wait_answering(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.zpool(&["list", "-H", "-o", "name"]) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(Error::Timeout(format!(
                        "zfs-fuse of node {} did not answer within 30s: {e}; log {}",
                        self.name,
                        self.log.display()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
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

/// Makes the node's private zfs directories and then only holds the namespace.
const NS_SCRIPT: &str = r#"set -e
mkdir -p /var/run/zfs /etc/zfs /var/lock/zfs /var/lib/zfs
mount --bind "$NODE_ZFS/run" /var/run/zfs
mount --bind "$NODE_ZFS/lib" /var/lib/zfs
mount --bind "$NODE_ZFS/etc" /etc/zfs
mount --bind "$NODE_ZFS/lock" /var/lock/zfs
touch "$NODE_ZFS/ns-ready"
exec sleep infinity"#;

/// zfs-fuse in the namespace of `ns_pid` (nsenter execs it: the pid is the daemon's).
fn zfs_command(ns_pid: u32, zfs_dir: &Path) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--mount=/proc/{ns_pid}/ns/mnt"))
        .args(["--", "zfs-fuse", "--no-daemon", "--pidfile"])
        .arg(zfs_dir.join("zfs-fuse.pid"));
    cmd
}

/// Mount points of zfs-fuse's filesystems (datasets and its kstat mount) in a mountinfo text.
pub fn zfs_mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            let fstype = right.split_whitespace().next()?;
            (fstype == "fuse.zfs" || point == "/zfs-kstat").then(|| point.to_string())
        })
        .collect()
}

/// Whether `pid` runs (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Starts node `name`'s namespace holder and zfs-fuse daemon (under `sup`) with its files in
/// `dir`, and returns once `zpool list` answers inside its namespace.
pub fn start(sup: &mut Supervisor, name: &str, dir: &Path) -> Result<LocalNode, Error> {
    let zfs = dir.join("zfs");
    for sub in ["run", "etc", "lock", "lib"] {
        let d = zfs.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let _ = std::fs::remove_file(zfs.join("run/zfs_socket"));
    let ready = zfs.join("ns-ready");
    let _ = std::fs::remove_file(&ready);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", NS_SCRIPT])
        .env("NODE_ZFS", &zfs);
    let ns_pid = sup.spawn(&format!("node-ns-{name}"), cmd)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        if Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "the mount namespace of node {name} was not ready within 10s; log {}",
                sup.log_path(&format!("node-ns-{name}")).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log_name = format!("zfs-fuse-{name}");
    let zfs_pid = sup.spawn(&log_name, zfs_command(ns_pid, &zfs))?;
    let node = LocalNode {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        ns_pid,
        zfs_pid: Arc::new(AtomicU32::new(zfs_pid)),
        pgid: sup.pgid(),
        log: sup.log_path(&log_name),
    };
    node.wait_answering()?;
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/<pid>/mountinfo of a node namespace after its zfs-fuse was killed (captured).
    const MOUNTINFO: &str = "\
66 46 254:0 /tmp/exp/z/run /run/zfs rw,relatime - ext4 /dev/vda rw,discard
70 46 0:40 / /zfs-kstat rw,nosuid,nodev,relatime - fuse kstat rw,user_id=0,group_id=0,allow_other
71 46 0:41 / /tmp/exp/mnt rw,relatime - fuse.zfs tp rw,user_id=0,group_id=0,allow_other
72 71 0:42 / /tmp/exp/mnt/r rw,relatime - fuse.zfs tp/r rw,user_id=0,group_id=0,allow_other
80 46 0:50 / /work/other rw,relatime - fuse.sshfs host:/ rw,user_id=0
";

    #[test]
    fn only_zfs_fuse_mounts_are_detached() {
        assert_eq!(
            zfs_mount_points(MOUNTINFO),
            vec!["/zfs-kstat", "/tmp/exp/mnt", "/tmp/exp/mnt/r"]
        );
    }
}
