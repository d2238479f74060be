//! Volume load run, in one run on one tgtd: (1) time from `cstor volume create` to the volume
//! Healthy (CVC Bound, CV and 3 CVRs Healthy); (2) `qemu-img bench` sequential 1 MiB writes and
//! reads (queue depth 4) over iSCSI through our 3-replica fan-out, beside tgt serving a plain
//! file, and the ratio; and, to show what the replicas' filesystem costs by itself, tgt serving
//! one file on a node's zfs-fuse (one replica's storage, no fan-out); and libiscsi's
//! `iscsi-perf` (sequential 1 MiB reads, 4 in flight, 5 s) against the same three.
//! `BENCH_ROUNDS` (default 5) rounds; the median is reported.
//!
//! cargo bench -p cstor --bench volume_throughput

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::volumes::*;
use common::*;
use cstor_local::testing;

const CSPC: &str = "bench-vols";
const SIZE_MIB: u64 = 512;
/// Tids far from the volume-managers' (derived from names).
const PLAIN_TID: &str = "29999";
const PLAIN_IQN: &str = "iqn.2016-09.bench:plain";
const ZFS_TID: &str = "29998";
const ZFS_IQN: &str = "iqn.2016-09.bench:one-zfs-file";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn tgtadm(args: &[&str]) {
    let port = volume_stack().tgt_control_port.to_string();
    let out = Command::new("tgtadm")
        .args(["-C", &port, "--lld", "iscsi"])
        .args(args)
        .output()
        .expect("tgtadm (Debian tgt) is required");
    assert!(out.status.success(), "tgtadm {args:?}: {out:?}");
}

/// Another target on the same tgtd: LUN 1 the file `path` (made sparse, of the volume's size).
fn file_target(tid: &str, iqn: &str, path: &Path) -> String {
    let f = std::fs::File::create(path).expect("target file");
    f.set_len(SIZE_MIB << 20).expect("size target file");
    let path = path.display().to_string();
    let lun = [
        "--op",
        "new",
        "--mode",
        "logicalunit",
        "--tid",
        tid,
        "--lun",
        "1",
        "--bstype",
        "rdwr",
        "--backing-store",
        &path,
    ];
    tgtadm(&["--op", "new", "--mode", "target", "--tid", tid, "-T", iqn]);
    tgtadm(&lun);
    tgtadm(&[
        "--op", "bind", "--mode", "target", "--tid", tid, "-I", "ALL",
    ]);
    format!("iscsi://127.0.0.1:{}/{iqn}/1", volume_stack().iscsi_port)
}

/// A dataset on node 1's pool (mounted in its namespace); the host path of a file in it.
fn zfs_file() -> PathBuf {
    let node = &volume_stack().nodes[0];
    let pools = node
        .zpool(&["list", "-H", "-o", "name"])
        .expect("zpool list");
    let pool = pools.lines().next().expect("a pool on node 1");
    let mountpoint = node.dir.join("bench-one-zfs-file");
    node.zfs(&[
        "create",
        "-o",
        &format!("mountpoint={}", mountpoint.display()),
        &format!("{pool}/bench-one"),
    ])
    .expect("zfs create");
    let inside = mountpoint.strip_prefix("/").unwrap_or(&mountpoint);
    node.root().join(inside).join("lun")
}

/// Seconds `qemu-img bench` takes for `count` 1 MiB requests at queue depth 4.
fn qemu_bench(url: &str, write: bool, count: u64) -> f64 {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["bench", "-f", "raw"]);
    if write {
        cmd.arg("-w");
    }
    cmd.args(["-s", "1M", "-c", &count.to_string(), "-d", "4", url]);
    let out = cmd
        .output()
        .expect("qemu-img (Debian qemu-utils) is required");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "qemu-img bench {url}: {out:?}");
    // "Run completed in 0.713 seconds."
    text.lines()
        .find_map(|l| l.strip_prefix("Run completed in "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no time in qemu-img output: {text}"))
}

/// MB/s `iscsi-perf` averages over 5 s of sequential 1 MiB reads, 4 in flight.
fn iscsi_perf(url: &str) -> f64 {
    let out = Command::new("timeout")
        .args(["-s", "INT", "5", "iscsi-perf", "-m", "4", "-b", "2048", url])
        .output()
        .expect("iscsi-perf (Debian libiscsi-bin) is required");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "... iops average 362 (362 MB/s), in_flight 4, busy 0"
    text.rsplit("iops average ")
        .next()
        .filter(|_| text.contains("iops average "))
        .and_then(|t| t.split_once('(').map(|(_, r)| r))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no average in iscsi-perf output: {text} {out:?}"))
}

/// Medians of write and read seconds.
#[derive(Default)]
struct Runs {
    writes: Vec<f64>,
    reads: Vec<f64>,
    /// iscsi-perf MB/s.
    perf: Vec<f64>,
}

impl Runs {
    fn medians(&mut self) -> (f64, f64, f64) {
        (
            median(&mut self.writes),
            median(&mut self.reads),
            median(&mut self.perf),
        )
    }
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    volume_stack();
    let client = rt.block_on(admin());
    rt.block_on(async {
        let pools = (1..=3).map(|n| pool(n, "stripe", &[&[1]])).collect();
        kubectl_apply(&cspc(CSPC, pools));
        wait_online(&client, CSPC, 3).await;
    });

    let size = format!("{SIZE_MIB}Mi");
    let create = |name: &str| {
        cstor(&[
            "volume",
            "create",
            name,
            "--size",
            &size,
            "--replicas",
            "3",
            "--pool-cluster",
            CSPC,
        ])
    };
    let mut create_s = Vec::new();
    for round in 0..rounds {
        let name = format!("bench-h-{round}");
        let took = rt.block_on(async {
            let started = Instant::now();
            create(&name);
            wait_healthy(&client, &name, 3).await;
            let took = started.elapsed();
            delete_volume(&client, &name).await;
            took
        });
        println!("round {round}: create → Healthy {:.2}s", took.as_secs_f64());
        create_s.push(took.as_secs_f64());
    }

    create("bench-t");
    rt.block_on(wait_healthy(&client, "bench-t", 3));
    let plain_file = testing::control_plane().dir().join("bench-plain.img");
    let targets = [
        ("plain", file_target(PLAIN_TID, PLAIN_IQN, &plain_file)),
        ("fan-out", url("bench-t")),
        ("one-zfs-file", file_target(ZFS_TID, ZFS_IQN, &zfs_file())),
    ];
    let count = SIZE_MIB / 2;
    let mib = count as f64;
    let mut runs: [Runs; 3] = Default::default();
    // One unmeasured write pass each: the first writes into fresh sparse files allocate.
    for (_, u) in &targets {
        qemu_bench(u, true, count);
    }
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for write in [true, false] {
            for (i, (name, u)) in targets.iter().enumerate() {
                let s = qemu_bench(u, write, count);
                let kind = if write { "write" } else { "read" };
                line.push_str(&format!(" {kind} {name} {s:.3}s"));
                if write {
                    runs[i].writes.push(s);
                } else {
                    runs[i].reads.push(s);
                }
            }
        }
        for (i, (name, u)) in targets.iter().enumerate() {
            let mbs = iscsi_perf(u);
            line.push_str(&format!(" iscsi-perf {name} {mbs:.0} MB/s"));
            runs[i].perf.push(mbs);
        }
        println!("{line}");
    }
    // The volume stayed consistent under the load.
    rt.block_on(async {
        wait_healthy(&client, "bench-t", 3).await;
        delete_volume(&client, "bench-t").await;
    });
    for tid in [PLAIN_TID, ZFS_TID] {
        tgtadm(&[
            "--op", "delete", "--mode", "target", "--tid", tid, "--force",
        ]);
    }

    let (pw, pr, pp) = runs[0].medians();
    let (fw, fr, fp) = runs[1].medians();
    let (zw, zr, zp) = runs[2].medians();
    println!("\n| rounds | create → Healthy (median) |");
    println!("|---|---|");
    println!("| {rounds} | {:.2} s |", median(&mut create_s));
    println!(
        "\n| {count} × 1 MiB, queue depth 4 (median of {rounds}) | tgt, plain file | 3-replica fan-out | ratio | tgt, one file on zfs-fuse (ratio) |"
    );
    println!("|---|---|---|---|---|");
    for (what, p, f, z) in [("writes", pw, fw, zw), ("reads", pr, fr, zr)] {
        println!(
            "| sequential {what} | {:.0} MiB/s | {:.0} MiB/s | {:.0} % | {:.0} MiB/s ({:.0} %) |",
            mib / p,
            mib / f,
            100.0 * p / f,
            mib / z,
            100.0 * p / z
        );
    }
    println!(
        "| iscsi-perf, sequential 1 MiB reads, 4 in flight | {pp:.0} MB/s | {fp:.0} MB/s | {:.0} % | {zp:.0} MB/s ({:.0} %) |",
        100.0 * fp / pp,
        100.0 * zp / pp
    );
}
