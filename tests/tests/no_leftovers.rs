//! The control plane never outlives the test binary: a test process that aborts mid-test (no
//! unwinding, no destructors) leaves no etcd/apiserver/controller-manager and no run directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "CSTOR_TEST_ABORT_CHILD";

#[tokio::test]
async fn aborting_test_process_leaves_no_processes_or_directories() {
    if let Ok(report) = std::env::var(CHILD_ENV) {
        // The child: start the shared control plane, say what runs, then die hard.
        let env = cstor_local::testing::env("abort").await;
        let cp = env.control_plane;
        let mut lines: Vec<String> = cp.pids().iter().map(|(_, pid)| pid.to_string()).collect();
        lines.push(cp.dir().display().to_string());
        std::fs::write(&report, lines.join("\n")).expect("write report");
        std::process::abort();
    }
    let report = tempfile_path();
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "aborting_test_process_leaves_no_processes_or_directories",
            "--nocapture",
        ])
        .env(CHILD_ENV, &report)
        .status()
        .expect("run child test process");
    assert!(!status.success(), "the child should have aborted");
    let text = std::fs::read_to_string(&report).expect("child report");
    let mut lines: Vec<&str> = text.lines().collect();
    let dir = PathBuf::from(lines.pop().expect("run dir line"));
    let pids: Vec<i32> = lines.iter().map(|l| l.parse().expect("pid")).collect();
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver, kube-controller-manager: {text}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alive: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| PathBuf::from(format!("/proc/{p}")).exists() && !is_zombie(*p))
            .collect();
        if alive.is_empty() && !dir.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "30s after the abort: alive {alive:?}, run dir exists: {}",
            dir.exists()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_file(&report);
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.split(") ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with('Z'))
        })
        .unwrap_or(true)
}

fn tempfile_path() -> PathBuf {
    std::env::temp_dir().join(format!("cstor-abort-report-{}", std::process::id()))
}
