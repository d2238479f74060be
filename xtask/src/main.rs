//! `cargo xtask …`: developer tasks built on api/ and local/.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Write deploy/crds/*.yaml from the Rust types (`--check`: fail if they differ).
    Crds {
        #[arg(long)]
        check: bool,
    },
    /// Resolve (or build once with Go) the local control-plane binaries and print their paths.
    Controlplane,
    /// Run the cargo-fuzz target over decode + policy for a bounded time (installs
    /// cargo-fuzz if missing; nightly if installed, else stable with RUSTC_BOOTSTRAP=1).
    Fuzz {
        /// Seconds to fuzz.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Everything CI runs: format and lint checks, the control plane, every test, 60 s of fuzzing.
    Test {
        /// Arguments passed to `cargo nextest run` after `--workspace --no-fail-fast`.
        #[arg(trailing_var_arg = true)]
        cargo_args: Vec<String>,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().task {
        Task::Crds { check } => crds(check),
        Task::Controlplane => controlplane().map(|_| ()),
        Task::Fuzz { seconds } => fuzz(seconds),
        Task::Test { cargo_args } => test(&cargo_args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn crds(check: bool) -> anyhow::Result<()> {
    let dir = root().join("deploy/crds");
    let files = cstor_api::crdgen::render_all()?;
    if check {
        let drift = cstor_api::crdgen::drift(&dir, &files)?;
        if !drift.is_empty() {
            bail!(
                "deploy/crds is out of date ({}); run `cargo xtask crds`",
                drift.join(", ")
            );
        }
        println!("deploy/crds matches the types ({} CRDs)", files.len());
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::remove_file(&path)?;
        }
    }
    for (name, yaml) in &files {
        std::fs::write(dir.join(name), yaml)?;
    }
    println!("wrote {} CRDs to {}", files.len(), dir.display());
    Ok(())
}

fn controlplane() -> anyhow::Result<cstor_local::binaries::Binaries> {
    let started = Instant::now();
    let bins = cstor_local::binaries::resolve(&mut |line| println!("{line}"))?;
    println!(
        "control plane binaries ready in {:.1}s:\n  {}\n  {}\n  {}\n  {}",
        started.elapsed().as_secs_f64(),
        bins.kube_apiserver.display(),
        bins.etcd.display(),
        bins.kube_controller_manager.display(),
        bins.kubectl.display()
    );
    Ok(bins)
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    cargo_with(args, &[])
}

fn cargo_with(args: &[&str], envs: &[(&str, String)]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The environment that makes one build both lint and compile the workspace: clippy-driver as
/// the rustc of workspace members, with `-D warnings` (the way `cargo clippy` drives it). The
/// test build then is the clippy run, instead of a second, check-only build of every crate
/// (docs/decisions/015).
fn clippy_build_env() -> anyhow::Result<Vec<(&'static str, String)>> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let driver = Path::new(&sysroot).join("bin/clippy-driver");
    if !driver.exists() {
        bail!(
            "clippy is not installed ({} is missing): rustup component add clippy",
            driver.display()
        );
    }
    Ok(vec![
        ("RUSTC_WORKSPACE_WRAPPER", driver.display().to_string()),
        (
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__".into(),
        ),
    ])
}

/// cargo-nextest runs the tests: a process per test, so end-to-end binaries overlap
/// (.config/nextest.toml). Pinned so CI on a fresh machine installs what was tested here.
const NEXTEST_VERSION: &str = "0.9.151";

fn test(extra: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    disk_report("before the build");
    let result = test_steps(extra, started);
    if result.is_err() {
        // A full disk shows up as an I/O error deep in rustc or a test; say it plainly.
        disk_report("after the failure");
    }
    result
}

/// Prints the free space where the build and the tests write (target/ and the temp dir).
fn disk_report(when: &str) {
    let target = root().join("target");
    let _ = std::fs::create_dir_all(&target);
    let out = Command::new("df")
        .args(["-h", "--output=avail,size,target"])
        .arg(&target)
        .arg(std::env::temp_dir())
        .output();
    match out {
        Ok(o) => print!(
            "[xtask] free disk {when}:\n{}",
            String::from_utf8_lossy(&o.stdout)
        ),
        Err(e) => println!("[xtask] free disk {when}: df failed: {e}"),
    }
}

fn test_steps(extra: &[String], started: Instant) -> anyhow::Result<()> {
    // Go builds the control plane (minutes on a fresh machine) while Rust compiles: the two
    // overlap instead of adding up. Tests need it only once they run.
    let control_plane = std::thread::spawn(|| controlplane().map(|_| ()));
    let lint = clippy_build_env()?;
    let built = (|| {
        cargo(&["fmt", "--all", "--check"])?;
        crds(true)?;
        // Without self-update: a third less to compile, and CI never updates tools.
        ensure_tool(
            "nextest",
            "cargo-nextest",
            NEXTEST_VERSION,
            &["--no-default-features", "--features", "default-no-update"],
        )?;
        // Every target (lib, bins, tests, benches) built once, linted as it compiles. The
        // same `cargo test --no-run` nextest runs, so its build below finds everything fresh;
        // benches are built here only (nextest would run a bench binary to list its tests).
        cargo_with(
            &[
                "test",
                "--workspace",
                "--lib",
                "--bins",
                "--tests",
                "--benches",
                "--no-run",
            ],
            &lint,
        )
    })();
    let control_plane = control_plane
        .join()
        .map_err(|_| anyhow::anyhow!("the control-plane build panicked"))?;
    built?;
    control_plane?;
    println!("[xtask] built in {:.0}s", started.elapsed().as_secs_f64());
    let mut args = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
    args.extend(extra.iter().map(String::as_str));
    let tests = cargo_with(&args, &lint);
    println!(
        "[xtask] tests ended at {:.0}s",
        started.elapsed().as_secs_f64()
    );
    tests?;
    fuzz(60)?;
    println!(
        "[xtask] all done in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Installs the cargo subcommand `cargo <sub>` from crates.io (package `package` at `version`)
/// unless some version of it answers already.
fn ensure_tool(sub: &str, package: &str, version: &str, features: &[&str]) -> anyhow::Result<()> {
    let present = Command::new("cargo")
        .args([sub, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let pinned = format!("={version}");
    // A debug build: these tools spend their time waiting on tests and rustc, and an
    // unoptimised build costs a fresh machine a third of the compile time.
    let mut args = vec![
        "install",
        package,
        "--locked",
        "--debug",
        "--version",
        &pinned,
    ];
    args.extend_from_slice(features);
    cargo(&args)
}

/// Pinned like nextest: a fresh machine installs the version tested here.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

fn fuzz(seconds: u64) -> anyhow::Result<()> {
    // The rustup proxy, not $CARGO: the toolchain is chosen below.
    ensure_tool("fuzz", "cargo-fuzz", CARGO_FUZZ_VERSION, &[])?;
    let nightly = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nightly"));
    let dir = root().join("fuzz");
    std::fs::create_dir_all(dir.join("corpus/admission"))?;
    let mut cmd = Command::new("cargo");
    if nightly {
        cmd.arg("+nightly");
    } else {
        // libFuzzer's sanitizer flags are nightly-only; stable accepts them with this switch.
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    let time = format!("-max_total_time={seconds}");
    cmd.args([
        "fuzz",
        "run",
        // A dev build with no sanitizer: overflow checks on (they find what a release build
        // hides, like an exponent overflowing), no ASAN (our crates forbid unsafe), and it
        // builds in about a minute instead of three and a half.
        "--dev",
        "--sanitizer",
        "none",
        "admission",
        "corpus/admission",
        "seeds/admission",
        "--",
        &time,
    ])
    .current_dir(&dir);
    println!(
        "$ {}cargo fuzz run --dev --sanitizer none admission -- {time}",
        if nightly { "" } else { "RUSTC_BOOTSTRAP=1 " }
    );
    let status = cmd.status().context("running cargo fuzz")?;
    if !status.success() {
        bail!("the fuzz target failed ({status}); the crashing input is under fuzz/artifacts/");
    }
    Ok(())
}
