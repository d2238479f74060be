//! The fan-out core against temp files: replicas stay byte-identical, failures degrade a
//! replica while quorum holds, below quorum I/O fails, and a rebuild under concurrent writes
//! ends byte-identical.

// A test panics to report a failure.
#![allow(clippy::unwrap_used)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cstor_agents::volume_manager::Error;
use cstor_agents::volume_manager::fanout::{CHUNK, Fanout, Replica, ReplicaState};

const MIB: u64 = 1 << 20;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("vm-fanout-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn file(&self, name: &str, size: u64) -> PathBuf {
        let p = self.0.join(name);
        let f = File::create(&p).unwrap();
        f.set_len(size).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rw(p: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(p).unwrap()
}

fn ro(p: &Path) -> File {
    File::open(p).unwrap()
}

fn healthy(id: &str, file: File) -> Replica {
    Replica {
        id: id.into(),
        file,
        state: ReplicaState::Healthy,
    }
}

/// Small deterministic generator (no rand crate here).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_write(f: &Fanout, rng: &mut Rng, size: u64, max_len: u64) -> (u64, Vec<u8>) {
    let len = 1 + rng.below(max_len);
    let off = rng.below(size - len);
    let byte = (rng.next() & 0xff) as u8;
    let data = vec![byte; len as usize];
    f.write(off, &data).unwrap();
    (off, data)
}

/// A random write inside `[base, base + span)`.
fn random_write_at(f: &Fanout, rng: &mut Rng, base: u64, span: u64, max_len: u64) {
    let len = 1 + rng.below(max_len);
    let off = base + rng.below(span - len);
    let byte = (rng.next() & 0xff) as u8;
    f.write(off, &vec![byte; len as usize]).unwrap();
}

fn three(dir: &TempDir, size: u64) -> (Vec<PathBuf>, Fanout) {
    let paths: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| dir.file(n, size)).collect();
    let replicas = ["1", "2", "3"]
        .iter()
        .zip(&paths)
        .map(|(id, p)| healthy(id, rw(p)))
        .collect();
    (paths, Fanout::new(replicas, size, 2))
}

fn assert_identical(paths: &[PathBuf]) {
    let first = std::fs::read(&paths[0]).unwrap();
    for p in &paths[1..] {
        assert!(
            std::fs::read(p).unwrap() == first,
            "{} differs from {}",
            p.display(),
            paths[0].display()
        );
    }
}

#[test]
fn random_writes_leave_identical_replicas_and_read_back() {
    let dir = TempDir::new("random");
    let size = 8 * MIB;
    let (paths, f) = three(&dir, size);
    let mut model = vec![0u8; size as usize];
    let mut rng = Rng(0x5eed);
    for i in 0..300 {
        // Mix small writes and large (parallel path) ones.
        let max = if i % 10 == 0 { 2 * MIB } else { 64 << 10 };
        let (off, data) = random_write(&f, &mut rng, size, max);
        model[off as usize..off as usize + data.len()].copy_from_slice(&data);
    }
    f.fsync().unwrap();
    assert_identical(&paths);
    assert_eq!(std::fs::read(&paths[0]).unwrap(), model);
    // Reads rotate over replicas; each returns the model.
    for _ in 0..6 {
        let off = rng.below(size - 100_000);
        let got = f.read(off, 100_000).unwrap();
        assert_eq!(got, model[off as usize..off as usize + 100_000]);
    }
    // A read past the end is short, at the end empty.
    assert_eq!(f.read(size - 10, 100).unwrap().len(), 10);
    assert!(f.read(size, 100).unwrap().is_empty());
    assert!(
        f.replicas()
            .iter()
            .all(|r| r.state == ReplicaState::Healthy && r.io_seq == 300)
    );
}

#[test]
fn write_beyond_the_end_is_refused() {
    let dir = TempDir::new("range");
    let (_, f) = three(&dir, MIB);
    assert!(matches!(
        f.write(MIB - 1, &[1, 2]),
        Err(Error::OutOfRange { .. })
    ));
}

#[test]
fn a_failing_replica_is_degraded_and_writes_go_on_at_quorum() {
    let dir = TempDir::new("ro");
    let size = 2 * MIB;
    let a = dir.file("a", size);
    let b = dir.file("b", size);
    let c = dir.file("c", size);
    // Replica 3's fd is read-only: its pwrite fails with EBADF.
    let f = Fanout::new(
        vec![
            healthy("1", rw(&a)),
            healthy("2", rw(&b)),
            healthy("3", ro(&c)),
        ],
        size,
        2,
    );
    assert_eq!(f.write(4096, &[7u8; 4096]).unwrap(), 4096);
    assert_eq!(f.state("3"), Some(ReplicaState::Degraded));
    assert_eq!(f.healthy_count(), 2);
    // Later writes skip it and still succeed.
    f.write(0, &[9u8; 512]).unwrap();
    f.fsync().unwrap();
    assert_identical(&[a.clone(), b.clone()]);
    assert_eq!(std::fs::read(&c).unwrap(), vec![0u8; size as usize]);
    assert_eq!(f.read(4096, 4096).unwrap(), vec![7u8; 4096]);
}

#[test]
fn below_quorum_io_fails_with_quorum_error() {
    let dir = TempDir::new("quorum");
    let size = MIB;
    let a = dir.file("a", size);
    let b = dir.file("b", size);
    let c = dir.file("c", size);
    let f = Fanout::new(
        vec![
            healthy("1", rw(&a)),
            healthy("2", ro(&b)),
            healthy("3", ro(&c)),
        ],
        size,
        2,
    );
    // The first write reaches only one healthy replica: not acknowledged.
    assert!(matches!(
        f.write(0, &[1u8; 512]),
        Err(Error::Quorum {
            healthy: 1,
            needed: 2
        })
    ));
    // From now on nothing is even attempted.
    assert!(matches!(
        f.write(0, &[1u8; 512]),
        Err(Error::Quorum {
            healthy: 1,
            needed: 2
        })
    ));
    assert!(matches!(f.read(0, 512), Err(Error::Quorum { .. })));
    assert!(matches!(f.fsync(), Err(Error::Quorum { .. })));
    // Lowering CF (e.g. a scale-down) makes it writable again.
    f.set_consistency_factor(1);
    f.write(0, &[2u8; 512]).unwrap();
    assert_eq!(f.read(0, 512).unwrap(), vec![2u8; 512]);
}

#[test]
fn read_falls_over_to_the_next_healthy_replica() {
    let dir = TempDir::new("readfail");
    let size = MIB;
    let a = dir.file("a", size);
    let b = dir.file("b", size);
    std::fs::write(&b, vec![5u8; size as usize]).unwrap();
    // A write-only fd cannot be read: replica 1 fails its first read.
    let wo = OpenOptions::new().write(true).open(&a).unwrap();
    let f = Fanout::new(vec![healthy("1", wo), healthy("2", rw(&b))], size, 1);
    for _ in 0..3 {
        assert_eq!(f.read(0, 16).unwrap(), vec![5u8; 16]);
    }
    assert_eq!(f.state("1"), Some(ReplicaState::Degraded));
    assert_eq!(f.state("2"), Some(ReplicaState::Healthy));
}

#[test]
fn rebuild_of_a_new_replica_copies_data_and_skips_holes() {
    let dir = TempDir::new("rebuild");
    let size = 16 * MIB;
    let (mut paths, f) = three(&dir, size);
    f.write(3 * MIB + 17, &[0xab; 10_000]).unwrap();
    f.write(9 * MIB, &[0xcd; 300_000]).unwrap();
    // A brand-new sparse replica.
    let d = dir.file("d", size);
    let stats = f.rebuild("4", rw(&d)).unwrap();
    assert_eq!(f.state("4"), Some(ReplicaState::Healthy));
    assert_eq!(stats.chunks, size / CHUNK);
    assert_eq!(stats.copied, 2, "{stats:?}");
    paths.push(d);
    assert_identical(&paths);
    assert!(
        f.replicas()
            .iter()
            .find(|r| r.id == "4")
            .unwrap()
            .ever_healthy
    );
}

#[test]
fn rebuild_of_a_stale_replica_overwrites_stale_data() {
    let dir = TempDir::new("stale");
    let size = 4 * MIB;
    let a = dir.file("a", size);
    let b = dir.file("b", size);
    let c = dir.file("c", size);
    let f = Fanout::new(
        vec![
            healthy("1", rw(&a)),
            healthy("2", rw(&b)),
            healthy("3", ro(&c)),
        ],
        size,
        2,
    );
    f.write(0, &[1u8; 8192]).unwrap();
    assert_eq!(f.state("3"), Some(ReplicaState::Degraded));
    // Stale bytes where the volume has a hole and where it has data.
    std::fs::write(&c, vec![0xeeu8; size as usize]).unwrap();
    f.rebuild("3", rw(&c)).unwrap();
    assert_identical(&[a, b, c]);
}

#[test]
fn rebuild_under_concurrent_writes_ends_byte_identical() {
    for seed in [1u64, 2, 3] {
        let dir = TempDir::new("concurrent");
        let size = 24 * MIB;
        let (mut paths, f) = three(&dir, size);
        let f = Arc::new(f);
        let mut rng = Rng(seed * 7919);
        for _ in 0..50 {
            random_write(&f, &mut rng, size, 256 << 10);
        }
        let d = dir.file("d", size);
        // Stale garbage in the new replica, to catch chunks the copy would miss.
        std::fs::write(&d, vec![0x5au8; size as usize]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let f = f.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(seed * 1000 + w);
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) || n < 200 {
                        random_write(&f, &mut rng, size, 300 << 10);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let file = rw(&d);
        let stats = f.rebuild("4", file).unwrap();
        stop.store(true, Ordering::Relaxed);
        let total: u32 = writers.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(total >= 600);
        assert_eq!(stats.chunks, size / CHUNK);
        paths.push(d);
        assert_identical(&paths);
        assert!(
            f.replicas()
                .iter()
                .all(|r| r.state == ReplicaState::Healthy)
        );
    }
}

#[test]
fn a_second_rebuild_of_the_same_replica_is_busy_and_a_removed_one_aborts() {
    let dir = TempDir::new("busy");
    let size = 64 * MIB;
    let (_, f) = three(&dir, size);
    let f = Arc::new(f);
    f.write(0, &vec![1u8; MIB as usize]).unwrap();
    let d = dir.file("d", size);
    std::fs::write(&d, vec![0x11u8; size as usize]).unwrap();
    let f2 = f.clone();
    let d2 = d.clone();
    let h = std::thread::spawn(move || f2.rebuild("4", rw(&d2)));
    // Wait until it runs, then remove the replica (scale down) while it copies.
    while f.state("4") != Some(ReplicaState::Rebuilding) {
        if h.is_finished() {
            break;
        }
        std::thread::yield_now();
    }
    if f.state("4") == Some(ReplicaState::Rebuilding) {
        assert!(matches!(f.rebuild("4", rw(&d)), Err(Error::Busy(_))));
        assert!(f.remove_replica("4"));
        assert!(matches!(
            h.join().unwrap(),
            Err(Error::RebuildAborted { .. })
        ));
    } else {
        // The copy was faster than this thread; nothing to assert about aborting.
        h.join().unwrap().unwrap();
    }
}

#[test]
fn resize_grows_every_replica_and_refuses_shrink() {
    let dir = TempDir::new("resize");
    let (paths, f) = three(&dir, MIB);
    f.resize(3 * MIB).unwrap();
    assert_eq!(f.size(), 3 * MIB);
    for p in &paths {
        assert_eq!(std::fs::metadata(p).unwrap().len(), 3 * MIB);
    }
    f.write(2 * MIB, &[3u8; 4096]).unwrap();
    assert!(matches!(f.resize(MIB), Err(Error::Shrink { .. })));
    f.resize(3 * MIB).unwrap();
}

#[test]
fn add_remove_and_degrade() {
    let dir = TempDir::new("members");
    let (_, f) = three(&dir, MIB);
    assert!(f.add_replica("9"));
    assert!(!f.add_replica("9"));
    assert_eq!(f.state("9"), Some(ReplicaState::Degraded));
    assert!(f.remove_replica("9"));
    assert!(!f.remove_replica("9"));
    assert!(f.degrade("1", "test"));
    assert_eq!(f.healthy_count(), 2);
    assert_eq!(f.ids(), vec!["1", "2", "3"]);
}

/// With recording required, the write that loses a Healthy replica is acknowledged only after
/// the status showing the loss is marked written; later writes pass at once; a record that
/// never comes fails the write instead of acknowledging it.
#[test]
fn a_lost_replica_is_recorded_before_the_write_is_acknowledged() {
    let dir = TempDir::new("record");
    let size = 2 * MIB;
    let a = dir.file("a", size);
    let b = dir.file("b", size);
    let c = dir.file("c", size);
    let f = Arc::new(Fanout::new(
        vec![
            healthy("1", rw(&a)),
            healthy("2", rw(&b)),
            healthy("3", ro(&c)),
        ],
        size,
        2,
    ));
    f.require_recording(std::time::Duration::from_secs(20));
    assert_eq!(f.losses(), 0);
    assert!(!f.unrecorded());
    let acked = Arc::new(AtomicBool::new(false));
    let writer = {
        let (f, acked) = (f.clone(), acked.clone());
        std::thread::spawn(move || {
            let r = f.write(0, &[5u8; 4096]);
            acked.store(true, Ordering::SeqCst);
            r
        })
    };
    // The writer is held until the loss is recorded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while f.losses() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the loss was never counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(f.unrecorded());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !acked.load(Ordering::SeqCst),
        "acknowledged before the loss was recorded"
    );
    let losses = f.losses();
    assert_eq!(losses, 1);
    f.mark_recorded(losses);
    assert_eq!(writer.join().unwrap().unwrap(), 4096);
    assert!(!f.unrecorded());
    // Nothing new lost: the next write and flush are not held.
    f.write(8192, &[6u8; 4096]).unwrap();
    f.fsync().unwrap();
    assert_identical(&[a.clone(), b.clone()]);

    // Another loss that is never recorded: the write fails rather than being acknowledged.
    let d = dir.file("d", size);
    let g = Fanout::new(
        vec![
            healthy("1", rw(&a)),
            healthy("2", rw(&b)),
            healthy("4", ro(&d)),
        ],
        size,
        2,
    );
    g.require_recording(std::time::Duration::from_millis(300));
    assert!(matches!(
        g.write(0, &[1u8; 512]),
        Err(Error::Unrecorded { .. })
    ));
    assert_eq!(g.state("4"), Some(ReplicaState::Degraded));
}

/// After a crash, trusted replicas may differ where writes were in flight: the resync makes
/// them equal to the reference (data, and zeros where the reference has a hole), under
/// concurrent writes, and leaves every replica byte-identical.
#[test]
fn resync_makes_diverged_replicas_equal_under_concurrent_writes() {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new("resync");
    let size = 8 * MIB;
    let paths: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| dir.file(n, size)).collect();
    // Common data, then a divergence on b (an unacknowledged write) and on c (stray bytes
    // where the others have a hole), both in the first half; the concurrent writes go to the
    // second half, so the repairs are certain.
    for p in &paths {
        rw(p).write_all_at(&[0x11u8; 4096], 0).unwrap();
        rw(p).write_all_at(&[0x22u8; 65536], 3 * MIB).unwrap();
    }
    rw(&paths[1])
        .write_all_at(&[0x99u8; 8192], 3 * MIB + 4096)
        .unwrap();
    rw(&paths[2])
        .write_all_at(&[0x77u8; 512], 2 * MIB + 100)
        .unwrap();
    let f = Arc::new(Fanout::new(
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| healthy(&(i + 1).to_string(), rw(p)))
            .collect(),
        size,
        2,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (f, stop) = (f.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(7);
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) || n < 50 {
                random_write_at(&f, &mut rng, size / 2, size / 2, 256 << 10);
                n += 1;
            }
        })
    };
    let stats = f.resync().unwrap();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert_eq!(stats.chunks, size / CHUNK);
    assert!(stats.repaired >= 2, "{stats:?}");
    f.fsync().unwrap();
    assert_identical(&paths);
    assert_eq!(f.healthy_count(), 3);
}

/// A Healthy replica that leaves the fan-out for a reason other than an I/O failure (its CVR
/// deleted, its annotation edited) is a loss like any other: the next write waits for the
/// status that records it. A replica that was not Healthy leaves without one.
#[test]
fn a_healthy_replica_removed_is_recorded_as_a_loss() {
    let dir = TempDir::new("removed");
    let size = 2 * MIB;
    let (a, b, c) = (
        dir.file("a", size),
        dir.file("b", size),
        dir.file("c", size),
    );
    let f = Fanout::new(
        vec![
            healthy("1", rw(&a)),
            healthy("2", rw(&b)),
            healthy("3", rw(&c)),
        ],
        size,
        2,
    );
    f.require_recording(std::time::Duration::from_millis(300));
    assert!(f.degrade("3", "test"));
    f.mark_recorded(f.losses());
    // Not Healthy: no new loss.
    assert!(f.remove_replica("3"));
    assert!(!f.unrecorded());
    // Healthy: a loss, and an unrecorded one holds the write (here: fails it).
    assert!(f.remove_replica("2"));
    assert!(f.unrecorded());
    f.set_consistency_factor(1);
    assert!(matches!(
        f.write(0, &[1u8; 512]),
        Err(Error::Unrecorded { .. })
    ));
    f.mark_recorded(f.losses());
    assert_eq!(f.write(0, &[1u8; 512]).unwrap(), 512);
}
