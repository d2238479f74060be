//! `cstor up`: the product on its embedded default, in the foreground until Ctrl-C.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use crate::Error;
use crate::binaries;
use crate::cluster;
use crate::components::Access;
use crate::controlplane::{ControlPlane, RunDir};
use crate::node::DiskLayout;
use crate::stack::{self, Stack, StackOptions};

/// Options of `cstor up`.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Where state lives; one `cstor up` per state directory.
    pub state_dir: PathBuf,
    /// Number of Node objects.
    pub nodes: usize,
    /// The `cstor` binary, run as `cstor webhook`, `operator`, `pool-manager`, … each under
    /// its own ServiceAccount.
    pub cstor_exe: PathBuf,
    /// Sparse-file disks per node.
    pub disks: DiskLayout,
}

/// The default state directory: `$XDG_STATE_HOME/cstor` or `~/.local/state/cstor`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("cstor");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".local/state/cstor")
}

/// Holds the state directory's lock; a second `cstor up` sees it and says so.
fn take_lock(state_dir: &Path) -> Result<Flock<File>, Error> {
    std::fs::create_dir_all(state_dir).map_err(|e| Error::io(state_dir, e))?;
    let path = state_dir.join("up.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, _)) => {
            let pid = std::fs::read_to_string(state_dir.join("up.pid"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            Err(Error::AlreadyRunning {
                pid,
                state_dir: state_dir.to_path_buf(),
                kubeconfig: state_dir.join("kubeconfig"),
            })
        }
    }
}

/// Runs `cstor up` until Ctrl-C or SIGTERM; everything started is stopped before returning.
pub async fn run(opts: UpOptions) -> Result<(), Error> {
    let _lock = take_lock(&opts.state_dir)?;
    let pid_file = opts.state_dir.join("up.pid");
    std::fs::write(&pid_file, std::process::id().to_string())
        .map_err(|e| Error::io(&pid_file, e))?;

    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    };
    say("cstor up: resolving the control-plane binaries");
    let bins = tokio::task::spawn_blocking(|| binaries::resolve(&mut |line| println!("  {line}")))
        .await
        .map_err(|e| Error::Build(e.to_string()))??;

    say("cstor up: starting etcd, kube-apiserver and kube-controller-manager");
    let mut cp = ControlPlane::start(bins, RunDir::At(opts.state_dir.join("run"))).await?;
    let client = cp.client().await?;
    let crds = cluster::product_crds()?;
    cluster::install_crds(&client, &crds).await?;
    say(&format!("cstor up: installed {} CRDs", crds.len()));
    say(&format!(
        "cstor up: starting {} nodes (zfs-fuse, {} disks of {} MiB each), the webhook, the operator",
        opts.nodes,
        opts.disks.per_node,
        opts.disks.bytes >> 20
    ));
    let stack_opts = StackOptions {
        nodes: opts.nodes,
        disks: opts.disks,
        exe: opts.cstor_exe.clone(),
        discovery_interval: Duration::from_secs(2),
        operator_replicas: None,
    };
    let mut stack = stack::start(&client, &Access::of(&cp), cp.dir(), &stack_opts).await?;
    let names: Vec<String> = stack.nodes.iter().map(|n| n.name.clone()).collect();
    say(&format!(
        "cstor up: nodes {} ready; admission webhooks serving",
        names.join(", ")
    ));

    let kubeconfig = opts.state_dir.join("kubeconfig");
    std::fs::copy(cp.kubeconfig(), &kubeconfig).map_err(|e| Error::io(&kubeconfig, e))?;
    let kubectl = cp.binaries().kubectl.clone();
    say(&format!(
        "\nThe local cluster is up at {server}.\n\
         \n  export KUBECONFIG={kc}\n  alias kubectl={kubectl}   # if you have no kubectl of your own\n\
         \nThen try:\n  kubectl -n openebs get bd              # each node's disks\n  kubectl -n openebs apply -f examples/local/cspc-mirror.yaml\n  kubectl -n openebs get cspc,cspi       # pools ONLINE in seconds\n  cstor status                           # pools as a table\n\
         \nLogs: {logs}\nPress Ctrl-C to stop everything.",
        server = cp.server(),
        kc = kubeconfig.display(),
        kubectl = kubectl.display(),
        logs = cp.dir().join("logs").display(),
    ));

    let outcome = wait_for_stop(&mut cp, &mut stack).await;
    say("cstor up: stopping");
    stack.stop().await;
    cp.stop();
    let _ = std::fs::remove_file(&kubeconfig);
    let _ = std::fs::remove_file(&pid_file);
    say("cstor up: stopped");
    outcome
}

async fn wait_for_stop(cp: &mut ControlPlane, stack: &mut Stack) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io(Path::new("SIGTERM"), e))?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = tick.tick() => {
                if let Some(err) = cp.exited() {
                    return Err(err);
                }
                if let Some((name, status)) = stack.exited() {
                    let log = stack.log_path(&name);
                    return Err(Error::Exited {
                        name,
                        status: status.to_string(),
                        log_tail: crate::controlplane::tail(&log, 30),
                        log,
                    });
                }
            }
        }
    }
}
