//! `cstor up`: the product on its embedded default, in the foreground until Ctrl-C.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use crate::Error;
use crate::binaries;
use crate::cluster;
use crate::controlplane::{ControlPlane, RunDir};

/// Options of `cstor up`.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Where state lives; one `cstor up` per state directory.
    pub state_dir: PathBuf,
    /// Number of Node objects.
    pub nodes: usize,
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
    let nodes = cluster::create_nodes(&client, opts.nodes).await?;
    say(&format!("cstor up: created nodes {}", nodes.join(", ")));

    let kubeconfig = opts.state_dir.join("kubeconfig");
    std::fs::copy(cp.kubeconfig(), &kubeconfig).map_err(|e| Error::io(&kubeconfig, e))?;
    let kubectl = cp.binaries().kubectl.clone();
    say(&format!(
        "\nThe local cluster is up at {server}.\n\
         \n  export KUBECONFIG={kc}\n  alias kubectl={kubectl}   # if you have no kubectl of your own\n\
         \nThen try:\n  kubectl get nodes\n  kubectl get crds | grep openebs\n  kubectl apply -f examples/blockdevices.yaml -f examples/cspc-stripe.yaml\n  kubectl get cspc,bd\n\
         \nLogs: {logs}\nPress Ctrl-C to stop everything.",
        server = cp.server(),
        kc = kubeconfig.display(),
        kubectl = kubectl.display(),
        logs = cp.dir().join("logs").display(),
    ));

    let outcome = wait_for_stop(&mut cp).await;
    say("cstor up: stopping");
    cp.stop();
    let _ = std::fs::remove_file(&kubeconfig);
    let _ = std::fs::remove_file(&pid_file);
    say("cstor up: stopped");
    outcome
}

async fn wait_for_stop(cp: &mut ControlPlane) -> Result<(), Error> {
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
            }
        }
    }
}
