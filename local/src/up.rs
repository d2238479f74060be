//! `cstor up`: the product on its embedded default, in the foreground until Ctrl-C.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use crate::Error;
use crate::binaries;
use crate::cluster;
use crate::components::{self, OPERATOR_NAMESPACE, WEBHOOK_ACCOUNT};
use crate::controlplane::{ControlPlane, RunDir};
use crate::process::Supervisor;

/// Options of `cstor up`.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Where state lives; one `cstor up` per state directory.
    pub state_dir: PathBuf,
    /// Number of Node objects.
    pub nodes: usize,
    /// The `cstor` binary, run as `cstor webhook` under its own ServiceAccount.
    pub cstor_exe: PathBuf,
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

    say("cstor up: starting the webhook server under ServiceAccount openebs/cstor-webhook");
    let mut ours = Supervisor::new(cp.dir().join("logs"), None)?;
    let token_dir = cp.dir().join("components");
    start_webhook(&cp, &client, &opts.cstor_exe, &mut ours, &token_dir).await?;
    say("cstor up: admission webhooks registered and serving");

    let kubeconfig = opts.state_dir.join("kubeconfig");
    std::fs::copy(cp.kubeconfig(), &kubeconfig).map_err(|e| Error::io(&kubeconfig, e))?;
    let kubectl = cp.binaries().kubectl.clone();
    say(&format!(
        "\nThe local cluster is up at {server}.\n\
         \n  export KUBECONFIG={kc}\n  alias kubectl={kubectl}   # if you have no kubectl of your own\n\
         \nThen try:\n  kubectl get nodes\n  kubectl get crds | grep openebs\n  kubectl -n openebs apply -f examples/blockdevices.yaml -f examples/cspc-stripe.yaml\n  kubectl -n openebs get cspc,bd\n\
         \nLogs: {logs}\nPress Ctrl-C to stop everything.",
        server = cp.server(),
        kc = kubeconfig.display(),
        kubectl = kubectl.display(),
        logs = cp.dir().join("logs").display(),
    ));

    let outcome = wait_for_stop(&mut cp, &mut ours, &client, &token_dir).await;
    say("cstor up: stopping");
    ours.stop(Duration::from_secs(10));
    cp.stop();
    let _ = std::fs::remove_file(&kubeconfig);
    let _ = std::fs::remove_file(&pid_file);
    say("cstor up: stopped");
    outcome
}

/// Applies deploy/'s webhook RBAC and configurations (pointed at loopback) and runs
/// `cstor webhook` with a token of its own ServiceAccount; returns once it serves.
async fn start_webhook(
    cp: &ControlPlane,
    client: &kube::Client,
    exe: &Path,
    ours: &mut Supervisor,
    token_dir: &Path,
) -> Result<(), Error> {
    components::ensure_namespace(client, OPERATOR_NAMESPACE).await?;
    components::apply(client, &components::documents(components::WEBHOOK_RBAC)?).await?;
    let kubeconfig = components::service_account_kubeconfig(
        cp,
        client,
        OPERATOR_NAMESPACE,
        WEBHOOK_ACCOUNT,
        token_dir,
    )
    .await?;
    let port = components::free_port()?;
    let base = format!("https://127.0.0.1:{port}");
    components::apply(client, &components::local_webhook_configurations(&base)?).await?;
    components::local_conversion(client, &base).await?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("webhook")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--namespace")
        .arg(OPERATOR_NAMESPACE)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--ip")
        .arg("127.0.0.1")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
    ours.spawn("webhook", cmd)?;
    components::wait_for_ca_bundles(client, Duration::from_secs(60)).await
}

async fn wait_for_stop(
    cp: &mut ControlPlane,
    ours: &mut Supervisor,
    client: &kube::Client,
    token_dir: &Path,
) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io(Path::new("SIGTERM"), e))?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Tokens last an hour; renew at a third of that so a slow apiserver never lets one lapse.
    let mut renew = tokio::time::interval(components::TOKEN_LIFETIME / 3);
    renew.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = renew.tick() => {
                let path = token_dir.join(format!("{WEBHOOK_ACCOUNT}.token"));
                if let Err(e) = components::refresh_token(client, OPERATOR_NAMESPACE, WEBHOOK_ACCOUNT, &path).await {
                    tracing::warn!(error = %e, "service-account token not renewed; retrying");
                }
            }
            _ = tick.tick() => {
                if let Some(err) = cp.exited() {
                    return Err(err);
                }
                if let Some((name, status)) = ours.exited() {
                    let log = ours.log_path(&name);
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
