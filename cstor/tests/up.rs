//! `cstor up` as a user runs it: the real binary, a real control plane, kubectl against it,
//! a second `up` refused, and a clean stop on Ctrl-C (SIGINT).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn up_serves_nodes_refuses_a_second_up_and_stops_cleanly() {
    let bins = cstor_local::binaries::resolve(&mut |l| eprintln!("{l}")).expect("binaries");
    let state = tempfile::tempdir().expect("state dir");
    let mut up = Command::new(env!("CARGO_BIN_EXE_cstor"))
        .args(["up", "--nodes", "3"])
        .env("CSTOR_STATE_DIR", state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn cstor up");
    let stdout = up.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(line) => {
                let done = line.contains("Press Ctrl-C");
                printed.push(line);
                if done {
                    break;
                }
            }
            Err(e) => {
                let _ = up.kill();
                panic!(
                    "cstor up did not get ready ({e}); it printed:\n{}",
                    printed.join("\n")
                );
            }
        }
    }
    let text = printed.join("\n");
    let kubeconfig = state.path().join("kubeconfig");
    assert!(
        text.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{text}"
    );

    let nodes = Command::new(&bins.kubectl)
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "get",
            "nodes",
            "--no-headers",
            "-o",
            "custom-columns=NAME:.metadata.name,READY:.status.conditions[0].status",
        ])
        .output()
        .expect("kubectl get nodes");
    let listed = String::from_utf8_lossy(&nodes.stdout);
    assert!(
        nodes.status.success(),
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["cstor-node-1", "True"],
            vec!["cstor-node-2", "True"],
            vec!["cstor-node-3", "True"]
        ]
    );
    let crds = Command::new(&bins.kubectl)
        .env("KUBECONFIG", &kubeconfig)
        .args(["get", "crd", "-o", "name"])
        .output()
        .expect("kubectl get crd");
    let crd_list = String::from_utf8_lossy(&crds.stdout);
    assert!(
        crd_list.contains("cstorpoolclusters.cstor.openebs.io"),
        "{crd_list}"
    );
    assert!(crd_list.contains("blockdevices.openebs.io"), "{crd_list}");

    // The README's first steps work through the webhook that `up` runs under its own account.
    let kubectl = |args: &[&str]| {
        let out = Command::new(&bins.kubectl)
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .output()
            .expect("kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    // Disk discovery registers every node's sparse disks; then the README's local CSPC
    // becomes an ONLINE pool.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, _, _) = kubectl(&["-n", "openebs", "get", "bd", "bd-cstor-node-1-disk-3"]);
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "disk discovery registered no BlockDevice in 60s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let (ok, out, err) = kubectl(&[
        "-n",
        "openebs",
        "apply",
        "-f",
        &format!("{examples}/local/cspc-stripe.yaml"),
    ]);
    assert!(ok, "{out}\n{err}");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (_, phase, _) = kubectl(&[
            "-n",
            "openebs",
            "get",
            "cspi",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        if phase == "ONLINE" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stripe pool is not ONLINE after 90s: {phase:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, ro, _) = kubectl(&[
        "-n",
        "openebs",
        "get",
        "cspc",
        "cstor-stripe",
        "-o",
        "jsonpath={.spec.pools[*].poolConfig.roThresholdLimit}",
    ]);
    assert_eq!(ro, "85", "mutating webhook defaults stored");
    let (ok, _, err) = kubectl(&["delete", "namespace", "openebs", "--dry-run=server"]);
    assert!(!ok);
    assert!(
        err.contains(
            "admission webhook \"validate-namespace.cstor.openebs.io\" denied the request: \
             namespace openebs runs the cStor operators and still holds 1 CStorPoolCluster(s)"
        ),
        "{err}"
    );
    let (_, holder, _) = kubectl(&[
        "-n",
        "openebs",
        "get",
        "lease",
        "cstor-webhook",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty(), "the webhook holds its Lease");

    let second = Command::new(env!("CARGO_BIN_EXE_cstor"))
        .args(["up"])
        .env("CSTOR_STATE_DIR", state.path())
        .output()
        .expect("second cstor up");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("cstor up is already running (pid {})", up.id())),
        "{err}"
    );

    kill(Pid::from_raw(up.id() as i32), Signal::SIGINT).expect("SIGINT");
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let status = up.wait();
        let _ = done_tx.send(status);
    });
    let status = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("cstor up stops within 60s of Ctrl-C")
        .expect("wait");
    assert!(status.success(), "cstor up exited with {status}");
    assert!(
        !state.path().join("run").exists(),
        "run directory left behind"
    );
    assert!(!kubeconfig.exists(), "stale kubeconfig left behind");
}
