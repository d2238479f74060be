//! The FUSE face of the fan-out: a root directory holding one regular file `lun` whose size is
//! the volume's and whose reads, writes and fsyncs go to [`Fanout`]. tgt serves that file.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, SessionACL, TimeOrNow, WriteFlags,
};

use super::Error;
use super::fanout::Fanout;
use super::gate::IoGate;

/// Name of the one file.
pub const LUN_FILE: &str = "lun";
const LUN_INO: INodeNo = INodeNo(2);
/// Attributes are not cached: the size changes on resize and tgt must see it at once.
const TTL: Duration = Duration::ZERO;
/// FUSE worker threads (each runs fan-out writes, which block on the replicas).
const THREADS: usize = 4;

/// The filesystem handed to fuser.
pub struct LunFs {
    fanout: Arc<Fanout>,
    gate: Arc<IoGate>,
    uid: u32,
    gid: u32,
    started: SystemTime,
}

impl LunFs {
    pub fn new(fanout: Arc<Fanout>, gate: Arc<IoGate>) -> LunFs {
        LunFs {
            fanout,
            gate,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            started: SystemTime::now(),
        }
    }

    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, size, nlink) = match ino {
            INodeNo::ROOT => (FileType::Directory, 0o755, 0, 2),
            LUN_INO => (FileType::RegularFile, 0o600, self.fanout.size(), 1),
            _ => return None,
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Runs `op` once the held gate opens, on a thread of its own: the FUSE threads stay
    /// free for the open and stat calls tgt makes while the gate is held.
    fn park(&self, op: impl FnOnce(&Fanout) + Send + 'static) {
        let (fanout, gate) = (self.fanout.clone(), self.gate.clone());
        let spawned = std::thread::Builder::new()
            .name("lun-held-io".into())
            .spawn(move || {
                let _pass = gate.enter();
                op(&fanout);
            });
        if let Err(e) = spawned {
            // The reply dropped with the closure answers EIO.
            tracing::error!(error = %e, "no thread to hold an I/O during a resize; it fails");
        }
    }
}

fn read_to(fanout: &Fanout, offset: u64, size: u32, reply: ReplyData) {
    match fanout.read(offset, size as usize) {
        Ok(data) => reply.data(&data),
        Err(e) => {
            tracing::warn!(error = %e, offset, size, "read failed");
            reply.error(errno(&e));
        }
    }
}

fn write_from(fanout: &Fanout, offset: u64, data: &[u8], sync: bool, reply: ReplyWrite) {
    match fanout.write(offset, data).and_then(|n| {
        if sync {
            fanout.fsync().map(|()| n)
        } else {
            Ok(n)
        }
    }) {
        Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
        Err(e) => {
            tracing::warn!(error = %e, offset, len = data.len(), "write failed");
            reply.error(errno(&e));
        }
    }
}

fn fsync_for(fanout: &Fanout, reply: ReplyEmpty) {
    match fanout.fsync() {
        Ok(()) => reply.ok(),
        Err(e) => {
            tracing::warn!(error = %e, "fsync failed");
            reply.error(errno(&e));
        }
    }
}

/// The errno a fan-out error means to the kernel (and so to tgt and the initiator).
pub fn errno(e: &Error) -> Errno {
    match e {
        Error::OutOfRange { .. } => Errno::EFBIG,
        Error::Refused { errno, .. } => Errno::from_i32(*errno),
        Error::Shrink { .. } => Errno::EINVAL,
        Error::Io { source, .. } => match source.raw_os_error() {
            Some(n) if n > 0 => Errno::from_i32(n),
            _ => Errno::EIO,
        },
        _ => Errno::EIO,
    }
}

impl Filesystem for LunFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match (parent, self.attr(LUN_INO)) {
            (INodeNo::ROOT, Some(attr)) if name == LUN_FILE => {
                reply.entry(&TTL, &attr, Generation(0));
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if ino != LUN_INO {
            return match self.attr(ino) {
                Some(attr) => reply.attr(&TTL, &attr),
                None => reply.error(Errno::ENOENT),
            };
        }
        // A size change is a resize (grow only); mode/owner/times are fixed and ignored.
        if let Some(size) = size
            && size != self.fanout.size()
            && let Err(e) = self.fanout.resize(size)
        {
            tracing::warn!(error = %e, size, "setattr size refused");
            return reply.error(errno(&e));
        }
        match self.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if ino != LUN_INO {
            return reply.error(Errno::EISDIR);
        }
        if flags.0 & nix::libc::O_TRUNC != 0 {
            return reply.error(Errno::EPERM);
        }
        // Direct I/O: every read and write reaches the fan-out (no page cache in front of
        // it), so a lost quorum shows up as EIO on that very I/O. Parallel direct writes: the
        // kernel otherwise holds the inode lock across each write, so tgt's concurrent
        // commands would reach us one at a time (the fan-out's own range locks order
        // overlapping writes).
        reply.opened(
            FileHandle(0),
            FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES,
        );
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino != LUN_INO {
            return reply.error(Errno::EISDIR);
        }
        match self.gate.try_enter() {
            Some(_pass) => read_to(&self.fanout, offset, size, reply),
            None => self.park(move |fanout| read_to(fanout, offset, size, reply)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if ino != LUN_INO {
            return reply.error(Errno::EISDIR);
        }
        // Opened O_SYNC or O_DSYNC (O_SYNC includes O_DSYNC's bit): a write is done only once
        // it is flushed on the replicas.
        let sync = flags.0 & nix::libc::O_DSYNC != 0;
        match self.gate.try_enter() {
            Some(_pass) => write_from(&self.fanout, offset, data, sync, reply),
            None => {
                let data = data.to_vec();
                self.park(move |fanout| write_from(fanout, offset, &data, sync, reply));
            }
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes are synchronous to the replicas' page cache; durability is fsync's job.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.gate.try_enter() {
            Some(_pass) => fsync_for(&self.fanout, reply),
            None => self.park(move |fanout| fsync_for(fanout, reply)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
            (LUN_INO, FileType::RegularFile, LUN_FILE),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            // The offset handed back is the index of the next entry.
            if reply.add(*ino, (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// A mounted fan-out; dropping it unmounts too, [`Mounted::unmount`] reports errors.
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    dir: PathBuf,
    gate: Arc<IoGate>,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("dir", &self.dir).finish()
    }
}

impl Mounted {
    /// The mount point.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The gate every read, write and fsync of the file passes.
    pub fn gate(&self) -> &Arc<IoGate> {
        &self.gate
    }

    /// The served file: `<dir>/lun`.
    pub fn lun_path(&self) -> PathBuf {
        self.dir.join(LUN_FILE)
    }

    /// Unmounts and waits for the FUSE thread.
    pub fn unmount(mut self) -> Result<(), Error> {
        match self.session.take() {
            Some(s) => s.umount_and_join().map_err(|e| Error::Io {
                context: format!("unmount {}", self.dir.display()),
                source: e,
            }),
            None => Ok(()),
        }
    }
}

/// Mount options. Not `auto_unmount`: tested here as root, fuser then leaves the unmount to
/// fusermount3's watcher, the mount stayed after the session ended and the unmount-and-join
/// hung. A mount left by a crashed process is cleared by [`mount`] instead. Access stays
/// with the owner (root, like tgtd), so no `allow_other` is needed.
pub fn mount_config() -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("cstor-fanout".into()),
        MountOption::Subtype("cstor".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoExec,
        MountOption::NoAtime,
    ];
    config.acl = SessionACL::Owner;
    config.n_threads = Some(THREADS);
    config
}

/// Mounts `fanout` at `dir` (created if missing). A stale mount left by a dead process (the
/// directory answers ENOTCONN) is lazily unmounted first.
pub fn mount(fanout: Arc<Fanout>, dir: &Path) -> Result<Mounted, Error> {
    if let Err(e) = std::fs::metadata(dir)
        && e.raw_os_error() == Some(nix::libc::ENOTCONN)
    {
        tracing::warn!(dir = %dir.display(), "stale FUSE mount; unmounting it");
        fusermount_unmount(dir);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        context: format!("create mount dir {}", dir.display()),
        source: e,
    })?;
    let gate = Arc::new(IoGate::new());
    let fs = LunFs::new(fanout, gate.clone());
    let session = fuser::spawn_mount(fs, dir, &mount_config()).map_err(|e| Error::Io {
        context: format!("FUSE mount at {}", dir.display()),
        source: e,
    })?;
    Ok(Mounted {
        session: Some(session),
        dir: dir.to_path_buf(),
        gate,
    })
}

/// `fusermount3 -u -z DIR`, given at most 10 s (a hung helper must not hold the start).
fn fusermount_unmount(dir: &Path) {
    let child = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(dir)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "fusermount3 not run");
            return;
        }
    };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                tracing::warn!(dir = %dir.display(), "fusermount3 did not finish in 10 s; killed");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
        }
    }
}
