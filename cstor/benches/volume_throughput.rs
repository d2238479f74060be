//! Volume load run, in one run on one tgtd: (1) time from `cstor volume create` to the volume
//! Healthy (CVC Bound, CV and 3 CVRs Healthy); (2) `qemu-img bench` sequential 1 MiB writes and
//! reads (queue depth 4) over iSCSI through our 3-replica fan-out, beside tgt serving a plain
//! file, and the ratio. `BENCH_ROUNDS` (default 5) rounds; the median is reported.
//!
//! cargo bench -p cstor --bench volume_throughput

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

use common::volumes::*;
use common::*;
use cstor_local::testing;

const CSPC: &str = "bench-vols";
const SIZE_MIB: u64 = 512;
/// A tid far from the volume-managers' (derived from names).
const PLAIN_TID: &str = "29999";
const PLAIN_IQN: &str = "iqn.2016-09.bench:plain";

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

/// A second target on the same tgtd: LUN 1 a plain file of the volume's size.
fn plain_target() -> String {
    let file = testing::control_plane().dir().join("bench-plain.img");
    let f = std::fs::File::create(&file).expect("plain file");
    f.set_len(SIZE_MIB << 20).expect("size plain file");
    let path = file.display().to_string();
    tgtadm(&[
        "--op", "new", "--mode", "target", "--tid", PLAIN_TID, "-T", PLAIN_IQN,
    ]);
    tgtadm(&[
        "--op",
        "new",
        "--mode",
        "logicalunit",
        "--tid",
        PLAIN_TID,
        "--lun",
        "1",
        "--bstype",
        "rdwr",
        "--backing-store",
        &path,
    ]);
    tgtadm(&[
        "--op", "bind", "--mode", "target", "--tid", PLAIN_TID, "-I", "ALL",
    ]);
    format!(
        "iscsi://127.0.0.1:{}/{PLAIN_IQN}/1",
        volume_stack().iscsi_port
    )
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
    let mut create_s = Vec::new();
    for round in 0..rounds {
        let name = format!("bench-h-{round}");
        let took = rt.block_on(async {
            let started = Instant::now();
            cstor(&[
                "volume",
                "create",
                &name,
                "--size",
                &size,
                "--replicas",
                "3",
                "--pool-cluster",
                CSPC,
            ]);
            wait_healthy(&client, &name, 3).await;
            let took = started.elapsed();
            delete_volume(&client, &name).await;
            took
        });
        println!("round {round}: create → Healthy {:.2}s", took.as_secs_f64());
        create_s.push(took.as_secs_f64());
    }

    rt.block_on(async {
        cstor(&[
            "volume",
            "create",
            "bench-t",
            "--size",
            &size,
            "--replicas",
            "3",
            "--pool-cluster",
            CSPC,
        ]);
        wait_healthy(&client, "bench-t", 3).await;
    });
    let ours = url("bench-t");
    let plain = plain_target();
    let count = SIZE_MIB / 2;
    let mib = count as f64;
    let (mut pw, mut fw, mut pr, mut fr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let p_w = qemu_bench(&plain, true, count);
        let f_w = qemu_bench(&ours, true, count);
        let p_r = qemu_bench(&plain, false, count);
        let f_r = qemu_bench(&ours, false, count);
        println!(
            "round {round}: writes plain {p_w:.3}s fan-out {f_w:.3}s ({:.0} %), reads plain {p_r:.3}s fan-out {f_r:.3}s ({:.0} %)",
            100.0 * p_w / f_w,
            100.0 * p_r / f_r
        );
        pw.push(p_w);
        fw.push(f_w);
        pr.push(p_r);
        fr.push(f_r);
    }
    // The volume stayed consistent under the load.
    rt.block_on(async {
        wait_healthy(&client, "bench-t", 3).await;
        delete_volume(&client, "bench-t").await;
    });
    tgtadm(&[
        "--op", "delete", "--mode", "target", "--tid", PLAIN_TID, "--force",
    ]);

    let (pw, fw, pr, fr) = (
        median(&mut pw),
        median(&mut fw),
        median(&mut pr),
        median(&mut fr),
    );
    println!("\n| rounds | create → Healthy (median) |");
    println!("|---|---|");
    println!("| {rounds} | {:.2} s |", median(&mut create_s));
    println!(
        "\n| {count} × 1 MiB, queue depth 4 (median of {rounds}) | tgt, plain file | 3-replica fan-out | ratio |"
    );
    println!("|---|---|---|---|");
    println!(
        "| sequential writes | {:.0} MiB/s | {:.0} MiB/s | {:.0} % |",
        mib / pw,
        mib / fw,
        100.0 * pw / fw
    );
    println!(
        "| sequential reads | {:.0} MiB/s | {:.0} MiB/s | {:.0} % |",
        mib / pr,
        mib / fr,
        100.0 * pr / fr
    );
}
