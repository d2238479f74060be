//! The fan-out core (no kube, no FUSE): one volume's bytes kept on N replica files, every write
//! sent to each Healthy and Rebuilding replica and acknowledged at the consistency factor,
//! reads from a Healthy replica, and the rebuild that brings a replica back.
//!
//! Locking: the replica list is a `RwLock` (membership changes are rare); each replica's state
//! and file sit in a small `Mutex` (held only to copy an `Arc<File>`, never across I/O); and
//! the volume is split into 64 KiB lock units guarded by striped mutexes: a write holds the
//! units of its range, the rebuild holds the units of the chunk it copies. So a write either
//! lands before the copy of its chunk (and is copied) or after it (and goes to the rebuilding
//! replica itself): none is lost or overwritten by stale data. Overlapping writes are thereby
//! also ordered the same way on every replica, so replicas never diverge.
//!
//! Durability of the replica set: at a restart only the replicas the CV status last showed
//! Healthy are trusted. So once a Healthy replica stops being Healthy, no write or flush is
//! acknowledged until the status showing it has been written ([`Fanout::require_recording`]):
//! otherwise a crash in between would bring the stale replica back as Healthy.
//!
//! A crash can also leave writes that were never acknowledged on some replicas and not on
//! others. So a restart makes the trusted replicas equal again ([`Fanout::resync`], the
//! resync a RAID-1 does after an unclean stop): chunk by chunk under the chunk locks, every
//! replica takes the reference's bytes where they differ, and until that pass ends every read
//! is served by the reference, so no read sees two answers for one block.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use nix::fcntl::{FallocateFlags, fallocate};
use nix::unistd::{Whence, lseek};

use super::Error;
use super::quorum::{Answer, Refusal, Verdict, decide_write};
use super::worker::Workers;

/// Rebuild copy unit and write-lock granularity.
pub const CHUNK: u64 = 1 << 20;
/// Write-lock granularity.
const LOCK_UNIT: u64 = 64 << 10;
/// Lock stripes over the units (unit index modulo this).
const STRIPES: usize = 1024;
/// I/O threads per replica: as many calls in flight on one replica as the FUSE layer sends.
const IO_THREADS: usize = 4;
/// How long a replica may take to answer a write, read or flush before it is fenced off
/// (Degraded, no more I/O) so the volume goes on with the others.
pub const DEFAULT_IO_DEADLINE: Duration = Duration::from_secs(8);

/// What a replica is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaState {
    /// Has all acknowledged data; counts for quorum and serves reads.
    Healthy,
    /// Being copied from a Healthy replica: receives writes, does not count or serve reads.
    Rebuilding,
    /// Failed or not yet opened: no file, receives nothing.
    Degraded,
}

/// A replica handed to [`Fanout::new`].
#[derive(Debug)]
pub struct Replica {
    pub id: String,
    pub file: File,
    pub state: ReplicaState,
}

/// One replica as seen from outside (for the CV status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub id: String,
    pub state: ReplicaState,
    /// When the replica entered its current state.
    pub since: Instant,
    /// The replica has been Healthy at some point (istgt's quorum bit: its data counts).
    pub ever_healthy: bool,
    /// Writes this replica acknowledged.
    pub io_seq: u64,
    pub inflight_read: u64,
    pub inflight_write: u64,
    pub inflight_sync: u64,
    /// Why the replica is not Healthy (the last failure), empty when it is.
    pub reason: String,
}

/// What a finished resync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResyncStats {
    /// Chunks looked at.
    pub chunks: u64,
    /// Chunk copies written to replicas that differed from the reference.
    pub repaired: u64,
}

/// What a finished rebuild did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RebuildStats {
    /// Chunks looked at.
    pub chunks: u64,
    /// Chunks whose bytes were written to the replica.
    pub copied: u64,
    /// Chunks skipped because they were holes on both sides or already equal.
    pub skipped: u64,
}

#[derive(Debug)]
struct SlotInner {
    state: ReplicaState,
    file: Option<Arc<File>>,
    since: Instant,
    ever_healthy: bool,
    /// A rebuild owns this replica.
    rebuilding: bool,
    /// The last failure, kept until the replica is Healthy again.
    reason: String,
    /// Files taken from the replica (failed, fenced): calls on them may still be running on
    /// its I/O threads (a hung write returns when the replica does). A rebuild waits until
    /// they are done, so none lands after the copy.
    retired: Vec<std::sync::Weak<File>>,
}

impl SlotInner {
    /// Takes the file away from the replica (no more I/O on it), remembering it as retired.
    fn retire_file(&mut self) {
        if let Some(f) = self.file.take() {
            self.retired.retain(|w| w.strong_count() > 0);
            self.retired.push(Arc::downgrade(&f));
        }
    }
}

#[derive(Debug)]
struct Slot {
    id: String,
    inner: Mutex<SlotInner>,
    /// Where this replica's file calls run (see [`Workers`]).
    workers: Workers,
    io_seq: AtomicU64,
    inflight_read: AtomicU64,
    inflight_write: AtomicU64,
    inflight_sync: AtomicU64,
    /// When a read of this replica last came back (ms since `born`).
    last_read_ms: AtomicU64,
    /// When reads last started with none in flight (ms since `born`).
    reads_since_ms: AtomicU64,
    born: Instant,
}

impl Slot {
    fn new(id: String, state: ReplicaState, file: Option<File>) -> Arc<Slot> {
        let state = if file.is_none() {
            ReplicaState::Degraded
        } else {
            state
        };
        Arc::new(Slot {
            workers: Workers::new(&id, IO_THREADS),
            id,
            inner: Mutex::new(SlotInner {
                state,
                file: file.map(Arc::new),
                since: Instant::now(),
                ever_healthy: state == ReplicaState::Healthy,
                rebuilding: false,
                reason: if state == ReplicaState::Healthy {
                    String::new()
                } else {
                    "not opened yet".into()
                },
                retired: Vec::new(),
            }),
            io_seq: AtomicU64::new(0),
            inflight_read: AtomicU64::new(0),
            inflight_write: AtomicU64::new(0),
            inflight_sync: AtomicU64::new(0),
            last_read_ms: AtomicU64::new(0),
            reads_since_ms: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn read_starts(&self) {
        if self.inflight_read.load(Ordering::Relaxed) == 0 {
            self.reads_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn read_done(&self) {
        self.last_read_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Reads are in flight and none came back for `deadline` since they started: the
    /// replica hangs.
    fn reads_stuck(&self, deadline: Duration) -> bool {
        let limit = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        let last = self
            .last_read_ms
            .load(Ordering::Relaxed)
            .max(self.reads_since_ms.load(Ordering::Relaxed));
        self.inflight_read.load(Ordering::Relaxed) > 0 && self.now_ms().saturating_sub(last) > limit
    }

    /// Whether `file` is still the replica's file (not failed or fenced since).
    fn is_current(&self, file: &Arc<File>) -> bool {
        self.lock()
            .file
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, file))
    }

    /// Waits until no call on a retired file is running any more; false if some still is
    /// after `within`.
    fn wait_retired(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            {
                let mut inner = self.lock();
                inner.retired.retain(|w| w.strong_count() > 0);
                if inner.retired.is_empty() {
                    return true;
                }
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotInner> {
        // A panic elsewhere must not make the volume unusable; the data is plain state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A target of one I/O: the replica, its file at the time, and whether it counted.
struct Target {
    slot: Arc<Slot>,
    file: Arc<File>,
    healthy: bool,
}

/// A counter held up while an I/O is in flight.
struct Inflight<'a>(&'a AtomicU64);

impl<'a> Inflight<'a> {
    fn new(c: &'a AtomicU64) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Inflight(c)
    }
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Losses of Healthy replicas and how far the CV status has recorded them.
#[derive(Debug, Default)]
struct Losses {
    /// Bumped each time a Healthy replica stops being Healthy.
    count: AtomicU64,
    /// The highest `count` a written status covers.
    recorded: AtomicU64,
    /// How long an acknowledgement waits for the record; None: not required.
    wait: Mutex<Option<Duration>>,
    lock: Mutex<()>,
    changed: Condvar,
    /// Wakes the status writer when a loss needs recording.
    wake: Arc<tokio::sync::Notify>,
}

/// The replicated volume.
#[derive(Debug)]
pub struct Fanout {
    slots: RwLock<Vec<Arc<Slot>>>,
    size: AtomicU64,
    losses: Losses,
    cf: AtomicUsize,
    next_read: AtomicUsize,
    /// While a resync runs: the replica every read is served by.
    reads_from: Mutex<Option<String>>,
    stripes: Vec<Mutex<()>>,
    /// Serialises resize against a rebuild's setup (both set file lengths).
    resize_lock: Mutex<()>,
    /// Byte ranges `[start, end)` of writes refused alike that some replicas took in part:
    /// until [`Fanout::settle`] makes them equal, reads of them come from one replica.
    unsettled: Mutex<Vec<(u64, u64)>>,
    /// Writes refused alike so far (the daemon turns new ones into an Event).
    refused: AtomicU64,
    /// [`DEFAULT_IO_DEADLINE`] unless set.
    io_deadline_ms: AtomicU64,
    /// Flushes asked so far (fsync, and every write of an O_SYNC/O_DSYNC open).
    flushes: AtomicU64,
}

fn io(context: impl Into<String>, source: std::io::Error) -> Error {
    Error::Io {
        context: context.into(),
        source,
    }
}

/// Reads `buf.len()` bytes at `offset`; past the end of the file the rest is zeros (a replica
/// file shorter than the volume reads as sparse).
fn read_full(file: &File, mut offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset) {
            Ok(0) => {
                buf[done..].fill(0);
                return Ok(());
            }
            Ok(n) => {
                done += n;
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// True when `[start, end)` of `file` is known to be a hole (SEEK_DATA says the next data is
/// at or past `end`). Unknown (no SEEK_DATA support) is false.
fn is_hole(file: &File, start: u64, end: u64) -> bool {
    let Ok(start_off) = i64::try_from(start) else {
        return false;
    };
    match lseek(file, start_off, Whence::SeekData) {
        Ok(next) => u64::try_from(next).is_ok_and(|n| n >= end),
        // ENXIO: no data at or after `start`.
        Err(nix::errno::Errno::ENXIO) => true,
        Err(_) => false,
    }
}

/// Makes `[start, start+len)` of `file` read as zeros: punch a hole, or write zeros where the
/// file system cannot punch.
fn zero_range(file: &File, start: u64, len: u64) -> std::io::Result<()> {
    let (Ok(s), Ok(l)) = (i64::try_from(start), i64::try_from(len)) else {
        return Err(std::io::Error::from_raw_os_error(libc_einval()));
    };
    let punch = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    if fallocate(file, punch, s, l).is_ok() {
        return Ok(());
    }
    let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
    file.write_all_at(&zeros, start)
}

fn libc_einval() -> i32 {
    nix::errno::Errno::EINVAL as i32
}

impl Fanout {
    /// A fan-out of `size` bytes over `replicas`, acknowledging writes at `cf` Healthy
    /// replicas.
    pub fn new(replicas: Vec<Replica>, size: u64, cf: usize) -> Fanout {
        let slots = replicas
            .into_iter()
            .map(|r| Slot::new(r.id, r.state, Some(r.file)))
            .collect();
        Fanout {
            slots: RwLock::new(slots),
            size: AtomicU64::new(size),
            losses: Losses::default(),
            cf: AtomicUsize::new(cf.max(1)),
            next_read: AtomicUsize::new(0),
            reads_from: Mutex::new(None),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            resize_lock: Mutex::new(()),
            unsettled: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
            io_deadline_ms: AtomicU64::new(
                u64::try_from(DEFAULT_IO_DEADLINE.as_millis()).unwrap_or(u64::MAX),
            ),
            flushes: AtomicU64::new(0),
        }
    }

    /// From now on a write or flush that completes while a lost Healthy replica is not yet
    /// recorded ([`Self::mark_recorded`]) waits for the record, failing after `wait`.
    pub fn require_recording(&self, wait: Duration) {
        *self.losses.wait.lock().unwrap_or_else(|e| e.into_inner()) = Some(wait);
    }

    /// The number of Healthy replicas lost so far (take it before snapshotting
    /// [`Self::replicas`] for a status, then pass it to [`Self::mark_recorded`]).
    pub fn losses(&self) -> u64 {
        self.losses.count.load(Ordering::SeqCst)
    }

    /// Whether a loss is not recorded yet.
    pub fn unrecorded(&self) -> bool {
        self.losses.recorded.load(Ordering::SeqCst) < self.losses()
    }

    /// A status covering the first `losses` losses has been written.
    pub fn mark_recorded(&self, losses: u64) {
        let _g = self.losses.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.losses.recorded.fetch_max(losses, Ordering::SeqCst);
        self.losses.changed.notify_all();
    }

    /// Notified when a loss needs recording.
    pub fn loss_notify(&self) -> Arc<tokio::sync::Notify> {
        self.losses.wake.clone()
    }

    fn lost_one(&self) {
        self.losses.count.fetch_add(1, Ordering::SeqCst);
        self.losses.wake.notify_one();
    }

    /// Before acknowledging: every loss so far is recorded (when required).
    fn await_recorded(&self) -> Result<(), Error> {
        let want = self.losses();
        if self.losses.recorded.load(Ordering::SeqCst) >= want {
            return Ok(());
        }
        let Some(wait) = *self.losses.wait.lock().unwrap_or_else(|e| e.into_inner()) else {
            return Ok(());
        };
        self.losses.wake.notify_one();
        let deadline = Instant::now() + wait;
        let mut g = self.losses.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.losses.recorded.load(Ordering::SeqCst) < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Unrecorded {
                    seconds: wait.as_secs(),
                });
            }
            g = self
                .losses
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// The exposed size in bytes.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn consistency_factor(&self) -> usize {
        self.cf.load(Ordering::Acquire)
    }

    /// Changes the number of Healthy replicas a write needs (at least 1).
    pub fn set_consistency_factor(&self, cf: usize) {
        self.cf.store(cf.max(1), Ordering::Release);
    }

    fn slots(&self) -> RwLockReadGuard<'_, Vec<Arc<Slot>>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn slots_mut(&self) -> RwLockWriteGuard<'_, Vec<Arc<Slot>>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        self.slots().iter().find(|s| s.id == id).cloned()
    }

    /// Replica ids in order.
    pub fn ids(&self) -> Vec<String> {
        self.slots().iter().map(|s| s.id.clone()).collect()
    }

    /// A snapshot of every replica.
    pub fn replicas(&self) -> Vec<ReplicaInfo> {
        self.slots()
            .iter()
            .map(|s| {
                let inner = s.lock();
                ReplicaInfo {
                    id: s.id.clone(),
                    state: inner.state,
                    since: inner.since,
                    ever_healthy: inner.ever_healthy,
                    io_seq: s.io_seq.load(Ordering::Relaxed),
                    inflight_read: s.inflight_read.load(Ordering::Relaxed),
                    inflight_write: s.inflight_write.load(Ordering::Relaxed),
                    inflight_sync: s.inflight_sync.load(Ordering::Relaxed),
                    reason: inner.reason.clone(),
                }
            })
            .collect()
    }

    pub fn state(&self, id: &str) -> Option<ReplicaState> {
        self.slot(id).map(|s| s.lock().state)
    }

    pub fn healthy_count(&self) -> usize {
        self.slots()
            .iter()
            .filter(|s| s.lock().state == ReplicaState::Healthy)
            .count()
    }

    /// Adds a replica with no file yet (Degraded) unless it exists; true when added.
    pub fn add_replica(&self, id: &str) -> bool {
        let mut slots = self.slots_mut();
        if slots.iter().any(|s| s.id == id) {
            return false;
        }
        slots.push(Slot::new(id.to_string(), ReplicaState::Degraded, None));
        true
    }

    /// Adds a replica that is Healthy right away (a fresh volume: all replicas are empty and
    /// equal). Replaces nothing: false when the id exists.
    pub fn add_healthy(&self, id: &str, file: File) -> bool {
        let mut slots = self.slots_mut();
        if slots.iter().any(|s| s.id == id) {
            return false;
        }
        slots.push(Slot::new(id.to_string(), ReplicaState::Healthy, Some(file)));
        true
    }

    /// Drops a replica (scale down); a running rebuild of it stops. True when it existed.
    pub fn remove_replica(&self, id: &str) -> bool {
        let mut slots = self.slots_mut();
        let before = slots.len();
        slots.retain(|s| {
            if s.id == id {
                let mut inner = s.lock();
                // A Healthy replica leaving for any reason is a loss to record before the
                // next acknowledgement, like a failure: a restart must not trust it.
                if inner.state == ReplicaState::Healthy {
                    self.lost_one();
                }
                inner.state = ReplicaState::Degraded;
                inner.retire_file();
                false
            } else {
                true
            }
        });
        slots.len() != before
    }

    /// Marks a replica Degraded and closes its file (e.g. its pool went offline).
    pub fn degrade(&self, id: &str, why: &str) -> bool {
        let Some(slot) = self.slot(id) else {
            return false;
        };
        let mut inner = slot.lock();
        if inner.state == ReplicaState::Degraded && inner.file.is_none() {
            return false;
        }
        tracing::warn!(replica = %id, why, "replica degraded");
        if inner.state == ReplicaState::Healthy {
            self.lost_one();
        }
        inner.state = ReplicaState::Degraded;
        inner.retire_file();
        inner.since = Instant::now();
        inner.reason = why.to_string();
        true
    }

    /// Records why replica `id` is still not Healthy (e.g. it could not be re-opened).
    pub fn note_failure(&self, id: &str, why: &str) {
        if let Some(slot) = self.slot(id) {
            let mut inner = slot.lock();
            if inner.state != ReplicaState::Healthy {
                inner.reason = why.to_string();
            }
        }
    }

    /// An I/O on `file` of `slot` failed: the replica stops counting, unless it has been
    /// re-opened meanwhile (then the failure concerns a file it no longer uses).
    fn fail(&self, slot: &Slot, file: &Arc<File>, what: &str, err: &std::io::Error) {
        let mut inner = slot.lock();
        if inner.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, file)) {
            tracing::warn!(replica = %slot.id, what, error = %err, "replica I/O failed; degraded");
            if inner.state == ReplicaState::Healthy {
                self.lost_one();
            }
            inner.state = ReplicaState::Degraded;
            inner.retire_file();
            inner.since = Instant::now();
            inner.reason = format!("{what} failed: {err}");
        }
    }

    /// The replicas an I/O goes to: Healthy ones, plus Rebuilding ones when `rebuilding`.
    fn targets(&self, rebuilding: bool) -> Vec<Target> {
        self.slots()
            .iter()
            .filter_map(|s| {
                let inner = s.lock();
                let healthy = inner.state == ReplicaState::Healthy;
                let wanted = healthy || (rebuilding && inner.state == ReplicaState::Rebuilding);
                let file = inner.file.clone()?;
                wanted.then(|| Target {
                    slot: s.clone(),
                    file,
                    healthy,
                })
            })
            .collect()
    }

    fn quorum(&self, healthy: usize) -> Result<(), Error> {
        let needed = self.consistency_factor();
        if healthy < needed {
            return Err(Error::Quorum { healthy, needed });
        }
        Ok(())
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<(), Error> {
        let size = self.size();
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|e| e > size) {
            return Err(Error::OutOfRange { offset, len, size });
        }
        Ok(())
    }

    /// Stripe indexes covering `[offset, offset+len)`, sorted and distinct (a fixed order, so
    /// writers never deadlock).
    fn stripes_of(offset: u64, len: usize) -> Vec<usize> {
        if len == 0 {
            return Vec::new();
        }
        let first = offset / LOCK_UNIT;
        let last = (offset + len as u64 - 1) / LOCK_UNIT;
        if last - first + 1 >= STRIPES as u64 {
            return (0..STRIPES).collect();
        }
        let mut v: Vec<usize> = (first..=last)
            .map(|c| (c % STRIPES as u64) as usize)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Locks the units of `[offset, offset+len)`, in stripe order.
    fn lock_range(&self, offset: u64, len: usize) -> Vec<MutexGuard<'_, ()>> {
        Self::stripes_of(offset, len)
            .into_iter()
            .map(|i| self.stripes[i].lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    /// Writes `data` at `offset` to every Healthy and Rebuilding replica; Ok once at least CF
    /// Healthy replicas have it.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<usize, Error> {
        self.check_range(offset, data.len())?;
        let _guards = self.lock_range(offset, data.len());
        // Taken under the chunk locks: a rebuild that has not copied these chunks yet waits
        // for us and then copies our data.
        let targets = self.targets(true);
        self.quorum(targets.iter().filter(|t| t.healthy).count())?;
        let data: Arc<[u8]> = Arc::from(data);
        let deadline = Instant::now() + self.io_deadline();
        let pending: Vec<_> = targets
            .iter()
            .map(|t| {
                let (slot, file, data) = (t.slot.clone(), t.file.clone(), data.clone());
                t.slot.workers.run(move || {
                    let _f = Inflight::new(&slot.inflight_write);
                    // Queued behind a hung call and fenced meanwhile: write nothing.
                    if !slot.is_current(&file) {
                        return Err(std::io::Error::other("the replica was fenced"));
                    }
                    file.write_all_at(&data, offset)
                })
            })
            .collect();
        let results: Vec<std::io::Result<()>> = pending
            .iter()
            .map(|p| {
                p.wait_until(deadline)
                    .unwrap_or_else(|| Err(self.timed_out()))
            })
            .collect();
        let answers: Vec<Answer> = targets
            .iter()
            .zip(&results)
            .map(|(t, r)| Answer {
                healthy: t.healthy,
                result: r.as_ref().map(|_| ()).map_err(Refusal::of),
            })
            .collect();
        let outcome = decide_write(&answers, self.consistency_factor());
        for (t, r) in targets.iter().zip(&results) {
            if r.is_ok() {
                t.slot.io_seq.fetch_add(1, Ordering::Relaxed);
            }
        }
        for i in &outcome.degrade {
            if let (Some(t), Some(Err(e))) = (targets.get(*i), results.get(*i)) {
                self.fail(&t.slot, &t.file, "write", e);
            }
        }
        if outcome.unsettled {
            self.mark_unsettled(offset, offset + data.len() as u64);
        }
        match outcome.verdict {
            Verdict::Acknowledge => {
                self.await_recorded()?;
                Ok(data.len())
            }
            Verdict::Refused { errno } => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Error::Refused {
                    errno,
                    offset,
                    len: data.len(),
                })
            }
            Verdict::QuorumLost { healthy } => Err(Error::Quorum {
                healthy,
                needed: self.consistency_factor(),
            }),
        }
    }

    /// Reads up to `len` bytes at `offset` (short at the end of the volume) from a Healthy
    /// replica, round-robin; a replica that fails is degraded and the next one tried.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let size = self.size();
        if offset >= size {
            return Ok(Vec::new());
        }
        let len = len.min(usize::try_from(size - offset).unwrap_or(usize::MAX));
        loop {
            let targets = self.targets(false);
            self.quorum(targets.len())?;
            let reference = self
                .reads_from
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let pinned = reference
                .and_then(|id| targets.iter().position(|t| t.slot.id == id))
                // An unsettled range reads from one replica (the first), so it has one answer.
                .or_else(|| self.is_unsettled(offset, offset + len as u64).then_some(0));
            let start = pinned
                .unwrap_or_else(|| self.next_read.fetch_add(1, Ordering::Relaxed) % targets.len());
            let t = &targets[start];
            // Reads run on the calling thread (a hop to the replica's threads costs ~10 % of
            // read throughput). A replica whose reads stopped coming back for the deadline is
            // fenced here, so later reads go elsewhere; the read stuck in it waits for it.
            if t.slot.reads_stuck(self.io_deadline()) {
                self.fail(&t.slot, &t.file, "read", &self.timed_out());
                continue;
            }
            let r = {
                t.slot.read_starts();
                let _f = Inflight::new(&t.slot.inflight_read);
                let mut buf = vec![0u8; len];
                let r = read_full(&t.file, offset, &mut buf).map(|()| buf);
                t.slot.read_done();
                r
            };
            match r {
                Ok(buf) => return Ok(buf),
                // Degraded now, so the next round has one target fewer: the loop ends.
                Err(e) => self.fail(&t.slot, &t.file, "read", &e),
            }
        }
    }

    /// Flushes every Healthy and Rebuilding replica; Ok when CF Healthy ones succeeded.
    pub fn fsync(&self) -> Result<(), Error> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let targets = self.targets(true);
        self.quorum(targets.iter().filter(|t| t.healthy).count())?;
        let deadline = Instant::now() + self.io_deadline();
        let pending: Vec<_> = targets
            .iter()
            .map(|t| {
                let (slot, file) = (t.slot.clone(), t.file.clone());
                t.slot.workers.run(move || {
                    let _f = Inflight::new(&slot.inflight_sync);
                    file.sync_data()
                })
            })
            .collect();
        let mut ok = 0;
        for (t, p) in targets.iter().zip(&pending) {
            match p
                .wait_until(deadline)
                .unwrap_or_else(|| Err(self.timed_out()))
            {
                Ok(()) => ok += usize::from(t.healthy),
                Err(e) => self.fail(&t.slot, &t.file, "fsync", &e),
            }
        }
        self.quorum(ok)?;
        self.await_recorded()
    }

    /// The replicas (Healthy or Rebuilding) whose file is still shorter than `size`: their
    /// pool-manager has not raised the quota and grown the file yet (a replica that does not
    /// answer within the deadline counts as short).
    pub fn replicas_short_of(&self, size: u64) -> Vec<String> {
        let deadline = Instant::now() + self.io_deadline();
        let asked: Vec<_> = self
            .targets(true)
            .into_iter()
            .map(|t| {
                let file = t.file.clone();
                let len = t.slot.workers.run(move || file.metadata().map(|m| m.len()));
                (t.slot.id.clone(), len)
            })
            .collect();
        asked
            .into_iter()
            .filter(|(_, len)| !matches!(len.wait_until(deadline), Some(Ok(l)) if l >= size))
            .map(|(id, _)| id)
            .collect()
    }

    /// Grows the volume to `new_size`: every replica's file first, then the exposed size.
    /// Shrinking is refused; the same size is a no-op.
    pub fn resize(&self, new_size: u64) -> Result<(), Error> {
        let _r = self.resize_lock.lock().unwrap_or_else(|e| e.into_inner());
        let from = self.size();
        if new_size < from {
            return Err(Error::Shrink { from, to: new_size });
        }
        let targets = self.targets(true);
        let mut ok = 0;
        for t in &targets {
            let grown = match t.file.metadata() {
                Ok(m) if m.len() >= new_size => Ok(()),
                Ok(_) => t.file.set_len(new_size),
                Err(e) => Err(e),
            };
            match grown {
                Ok(()) => ok += usize::from(t.healthy),
                Err(e) => self.fail(&t.slot, &t.file, "resize", &e),
            }
        }
        self.quorum(ok)?;
        self.size.store(new_size, Ordering::Release);
        Ok(())
    }

    /// Makes every Healthy replica equal to one of them (see the module doc): reads are served
    /// by the reference until it ends. If the reference fails, the next Healthy replica takes
    /// over from the current chunk (the chunks before are equal on all). Blocking.
    pub fn resync(&self) -> Result<ResyncStats, Error> {
        let mut stats = ResyncStats::default();
        let pick = || self.targets(false).into_iter().next();
        let Some(first) = pick() else {
            return Err(Error::Quorum {
                healthy: 0,
                needed: 1,
            });
        };
        self.set_reads_from(Some(first.slot.id.clone()));
        tracing::info!(reference = %first.slot.id, size = self.size(), "resync started");
        let mut chunk = 0u64;
        let result = loop {
            if chunk * CHUNK >= self.size() {
                break Ok(stats);
            }
            let start = chunk * CHUNK;
            let end = (start + CHUNK).min(self.size());
            let n = usize::try_from(end - start).unwrap_or(0);
            let _g = self.lock_range(start, n);
            let targets = self.targets(false);
            let reference = self
                .reads_from
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let Some(src) = targets
                .iter()
                .find(|t| Some(&t.slot.id) == reference.as_ref())
                .or_else(|| targets.first())
            else {
                break Err(Error::Quorum {
                    healthy: 0,
                    needed: 1,
                });
            };
            if Some(&src.slot.id) != reference.as_ref() {
                tracing::warn!(reference = %src.slot.id, "resync reference failed; continuing from another");
                self.set_reads_from(Some(src.slot.id.clone()));
            }
            // The reference's bytes (None: a hole), on its threads with the deadline.
            let data = self.read_chunk(&src.slot, &src.file, start, end, n);
            let data = match data {
                Ok(d) => Arc::new(d),
                Err(e) => {
                    self.fail(&src.slot, &src.file, "resync read", &e);
                    continue; // the same chunk again, from the next reference
                }
            };
            for t in targets.iter().filter(|t| t.slot.id != src.slot.id) {
                let (file, data) = (t.file.clone(), data.clone());
                let repaired = self.on_replica(&t.slot, move || match data.as_ref() {
                    None if is_hole(&file, start, end) => Ok(false),
                    None => {
                        let mut have = vec![0u8; n];
                        read_full(&file, start, &mut have)?;
                        if have.iter().all(|b| *b == 0) {
                            Ok(false)
                        } else {
                            zero_range(&file, start, end - start).map(|()| true)
                        }
                    }
                    Some(want) => {
                        let mut have = vec![0u8; n];
                        read_full(&file, start, &mut have)?;
                        if have == *want {
                            Ok(false)
                        } else {
                            file.write_all_at(want, start).map(|()| true)
                        }
                    }
                });
                match repaired {
                    Ok(true) => stats.repaired += 1,
                    Ok(false) => {}
                    Err(e) => self.fail(&t.slot, &t.file, "resync", &e),
                }
            }
            stats.chunks += 1;
            chunk += 1;
        };
        self.set_reads_from(None);
        match &result {
            Ok(s) => tracing::info!(?s, "resync done"),
            Err(e) => tracing::warn!(error = %e, "resync stopped"),
        }
        result
    }

    /// Flushes asked so far.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Runs a file call of `slot`'s replica on its threads, given the deadline: a hang is an
    /// error (TimedOut) instead of a stuck copy holding chunk locks.
    fn on_replica<T: Send + 'static>(
        &self,
        slot: &Slot,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        slot.workers
            .run(f)
            .wait_until(Instant::now() + self.io_deadline())
            .unwrap_or_else(|| Err(self.timed_out()))
    }

    /// How long a replica may take to answer one call.
    /// `n` bytes at `start` (up to `end`) of a replica, on its threads with the deadline;
    /// None for a hole (a copy then writes zeros where needed).
    fn read_chunk(
        &self,
        slot: &Arc<Slot>,
        file: &Arc<File>,
        start: u64,
        end: u64,
        n: usize,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let file = file.clone();
        self.on_replica(slot, move || {
            if is_hole(&file, start, end) {
                return Ok(None);
            }
            let mut buf = vec![0u8; n];
            read_full(&file, start, &mut buf).map(|()| Some(buf))
        })
    }

    pub fn io_deadline(&self) -> Duration {
        Duration::from_millis(self.io_deadline_ms.load(Ordering::Relaxed))
    }

    pub fn set_io_deadline(&self, d: Duration) {
        self.io_deadline_ms.store(
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1),
            Ordering::Relaxed,
        );
    }

    /// The error a replica that missed the deadline is fenced with.
    fn timed_out(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer within {} s (the replica hangs); fenced",
                self.io_deadline().as_secs_f32()
            ),
        )
    }

    fn unsettled(&self) -> MutexGuard<'_, Vec<(u64, u64)>> {
        self.unsettled.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark_unsettled(&self, start: u64, end: u64) {
        let mut u = self.unsettled();
        if !u.iter().any(|(s, e)| *s <= start && end <= *e) {
            u.push((start, end));
        }
    }

    fn is_unsettled(&self, start: u64, end: u64) -> bool {
        self.unsettled().iter().any(|(s, e)| *s < end && start < *e)
    }

    /// Writes refused alike by the replicas since the start.
    pub fn refused_writes(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Ranges of refused writes not yet made equal on every replica.
    pub fn unsettled_ranges(&self) -> usize {
        self.unsettled().len()
    }

    /// Makes every unsettled range equal on all replicas, copying it from the replica reads
    /// of it come from (the first Healthy one). A range whose copy is refused for lack of
    /// space stays unsettled (tried again later); a replica that faults is degraded. Returns
    /// the ranges still unsettled.
    pub fn settle(&self) -> usize {
        let ranges: Vec<(u64, u64)> = self.unsettled().clone();
        for range in ranges {
            let (start, end) = (range.0, range.1.min(self.size()));
            let n = usize::try_from(end.saturating_sub(start)).unwrap_or(0);
            let settled = n == 0 || {
                let _g = self.lock_range(start, n);
                self.settle_range(start, n)
            };
            if settled {
                self.unsettled().retain(|r| *r != range);
                tracing::info!(start, end, "refused write's range settled on every replica");
            }
        }
        self.unsettled_ranges()
    }

    /// Copies `[start, start+n)` from the first Healthy replica to the others (caller holds the
    /// range's locks); whether every replica now has it.
    fn settle_range(&self, start: u64, n: usize) -> bool {
        let targets = self.targets(true);
        let Some(src) = targets.iter().find(|t| t.healthy) else {
            return false;
        };
        let file = src.file.clone();
        let want = match self.on_replica(&src.slot, move || {
            let mut buf = vec![0u8; n];
            read_full(&file, start, &mut buf).map(|()| buf)
        }) {
            Ok(w) => Arc::new(w),
            Err(e) => {
                self.fail(&src.slot, &src.file, "settle read", &e);
                return false;
            }
        };
        let mut all = true;
        for t in targets.iter().filter(|t| t.slot.id != src.slot.id) {
            let (file, want) = (t.file.clone(), want.clone());
            let r = self.on_replica(&t.slot, move || {
                let mut have = vec![0u8; n];
                read_full(&file, start, &mut have)?;
                if have == *want {
                    Ok(())
                } else {
                    file.write_all_at(&want, start)
                }
            });
            if let Err(e) = r {
                all = false;
                if Refusal::of(&e) == Refusal::Fault {
                    self.fail(&t.slot, &t.file, "settle", &e);
                }
            }
        }
        all
    }

    fn set_reads_from(&self, id: Option<String>) {
        *self.reads_from.lock().unwrap_or_else(|e| e.into_inner()) = id;
    }

    /// Brings replica `id` back (added when unknown): `file` becomes its file, it receives
    /// writes at once (Rebuilding), the whole volume is copied into it from Healthy replicas
    /// chunk by chunk, and then it is Healthy. Blocking; run it on its own thread.
    pub fn rebuild(&self, id: &str, file: File) -> Result<RebuildStats, Error> {
        let file = Arc::new(file);
        let slot = {
            let mut slots = self.slots_mut();
            match slots.iter().find(|s| s.id == id) {
                Some(s) => s.clone(),
                None => {
                    let s = Slot::new(id.to_string(), ReplicaState::Degraded, None);
                    slots.push(s.clone());
                    s
                }
            }
        };
        {
            let _r = self.resize_lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut inner = slot.lock();
            if inner.rebuilding {
                return Err(Error::Busy(id.to_string()));
            }
            if inner.state == ReplicaState::Healthy {
                return Ok(RebuildStats::default());
            }
            let size = self.size();
            let len = file
                .metadata()
                .map_err(|e| io(format!("replica {id}: stat"), e))?
                .len();
            if len < size {
                file.set_len(size)
                    .map_err(|e| io(format!("replica {id}: grow to {size}"), e))?;
            }
            inner.rebuilding = true;
            inner.state = ReplicaState::Rebuilding;
            inner.file = Some(file.clone());
            inner.since = Instant::now();
            inner.reason.clear();
        }
        // A write from before the replica was fenced may still be running (it hung with the
        // replica); it must land before the copy, not after it.
        if !slot.wait_retired(Duration::from_secs(60)) {
            let mut inner = slot.lock();
            inner.rebuilding = false;
            inner.state = ReplicaState::Degraded;
            inner.retire_file();
            return Err(Error::RebuildAborted {
                id: id.to_string(),
                reason: "calls on the replica from before it was fenced have not returned".into(),
            });
        }
        tracing::info!(replica = %id, size = self.size(), "rebuild started");
        let result = self.copy_all(&slot, &file);
        let mut inner = slot.lock();
        inner.rebuilding = false;
        let ours = inner.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, &file));
        match result {
            Ok(stats) if ours && inner.state == ReplicaState::Rebuilding => {
                inner.state = ReplicaState::Healthy;
                inner.ever_healthy = true;
                inner.since = Instant::now();
                inner.reason.clear();
                tracing::info!(replica = %id, ?stats, "rebuild done; replica healthy");
                Ok(stats)
            }
            Ok(_) => Err(Error::RebuildAborted {
                id: id.to_string(),
                reason: "the replica failed or was removed during the copy".into(),
            }),
            Err(e) => {
                if ours {
                    inner.state = ReplicaState::Degraded;
                    inner.retire_file();
                    inner.since = Instant::now();
                }
                Err(e)
            }
        }
    }

    fn copy_all(&self, slot: &Arc<Slot>, dst: &Arc<File>) -> Result<RebuildStats, Error> {
        let mut stats = RebuildStats::default();
        let mut chunk = 0u64;
        // The size is read every round: a resize during the rebuild extends the copy.
        while chunk * CHUNK < self.size() {
            {
                let inner = slot.lock();
                let ours = inner.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, dst));
                if !ours || inner.state != ReplicaState::Rebuilding {
                    return Err(Error::RebuildAborted {
                        id: slot.id.clone(),
                        reason: "the replica failed or was removed during the copy".into(),
                    });
                }
            }
            let start = chunk * CHUNK;
            let end = (start + CHUNK).min(self.size());
            let n = usize::try_from(end - start).unwrap_or(0);
            let _g = self.lock_range(start, n);
            let copied = self.copy_chunk(slot, dst, start, end)?;
            stats.chunks += 1;
            if copied {
                stats.copied += 1;
            } else {
                stats.skipped += 1;
            }
            chunk += 1;
        }
        let file = dst.clone();
        self.on_replica(slot, move || file.sync_data())
            .map_err(|e| io(format!("replica {}: fsync after rebuild", slot.id), e))?;
        Ok(stats)
    }

    /// Copies `[start, end)` from a Healthy replica into `dst`; false when nothing had to be
    /// written. Called with the chunk's lock units held.
    fn copy_chunk(
        &self,
        slot: &Arc<Slot>,
        dst: &Arc<File>,
        start: u64,
        end: u64,
    ) -> Result<bool, Error> {
        let n = usize::try_from(end - start).unwrap_or(0);
        loop {
            let sources = self.targets(false);
            let Some(src) = sources.first() else {
                return Err(Error::Quorum {
                    healthy: 0,
                    needed: 1,
                });
            };
            // The source's bytes (None: a hole), on the source's threads.
            let data = self.read_chunk(&src.slot, &src.file, start, end, n);
            let data = match data {
                Ok(d) => d,
                Err(e) => {
                    // The source failed (or hangs), not the rebuild: fence it, try another.
                    self.fail(&src.slot, &src.file, "rebuild read", &e);
                    continue;
                }
            };
            // Writing only what differs keeps a re-opened replica's unchanged data in place
            // and costs a brand-new sparse file only cheap hole reads.
            let file = dst.clone();
            let copied = self.on_replica(slot, move || match data {
                None if is_hole(&file, start, end) => Ok(false),
                None => zero_range(&file, start, end - start).map(|()| true),
                Some(want) => {
                    let mut have = vec![0u8; want.len()];
                    read_full(&file, start, &mut have)?;
                    if have == want {
                        Ok(false)
                    } else {
                        file.write_all_at(&want, start).map(|()| true)
                    }
                }
            });
            return copied.map_err(|e| {
                self.fail(slot, dst, "rebuild copy", &e);
                io(format!("replica {}: rebuild copy at {start}", slot.id), e)
            });
        }
    }
}
