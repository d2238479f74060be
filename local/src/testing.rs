//! Test support: one control plane per test binary, started lazily on first use and shared;
//! each test gets a fresh namespace and its own `kube::Client`. The processes end with the test
//! binary (see `process`), even when a test panics.

use std::path::PathBuf;
use std::sync::OnceLock;

use kube::Client;

use crate::binaries;
use crate::cluster;
use crate::controlplane::{ControlPlane, RunDir};

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The shared control plane, starting it (and building binaries if needed) on first call.
/// Panics with the reason if it cannot start: a test must never pass without the real thing.
pub fn control_plane() -> &'static ControlPlane {
    let started = SHARED.get_or_init(|| {
        // A thread with its own runtime: tests run on many short-lived runtimes, and the
        // processes must not belong to any of them.
        std::thread::spawn(|| -> Result<ControlPlane, String> {
            let bins = binaries::resolve(&mut |line| eprintln!("[cstor-local] {line}"))
                .map_err(|e| e.to_string())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let cp = ControlPlane::start(bins, RunDir::Temp)
                    .await
                    .map_err(|e| e.to_string())?;
                let client = cp.client().await.map_err(|e| e.to_string())?;
                let crds = cluster::product_crds().map_err(|e| e.to_string())?;
                cluster::install_crds(&client, &crds)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(cp)
            })
        })
        .join()
        .unwrap_or_else(|_| Err("control plane start panicked".into()))
    });
    match started {
        Ok(cp) => cp,
        Err(e) => panic!("the local control plane did not start: {e}"),
    }
}

/// What a test works with.
pub struct TestEnv {
    /// Admin client on the test's runtime.
    pub client: Client,
    /// A namespace made for this test only.
    pub namespace: String,
    /// The admin kubeconfig (for `kubectl`).
    pub kubeconfig: PathBuf,
    pub control_plane: &'static ControlPlane,
}

impl TestEnv {
    /// A `kubectl` command bound to the admin kubeconfig and the test's namespace.
    pub fn kubectl(&self) -> std::process::Command {
        let mut cmd = self.control_plane.kubectl();
        cmd.arg("--namespace").arg(&self.namespace);
        cmd
    }
}

/// A fresh namespace (named after `prefix`) and client on the shared control plane.
pub async fn env(prefix: &str) -> TestEnv {
    let cp = control_plane();
    let client = match cp.client().await {
        Ok(c) => c,
        Err(e) => panic!("admin client: {e}"),
    };
    let namespace = match cluster::create_namespace(&client, prefix).await {
        Ok(n) => n,
        Err(e) => panic!("test namespace: {e}"),
    };
    TestEnv {
        client,
        namespace,
        kubeconfig: cp.kubeconfig().to_path_buf(),
        control_plane: cp,
    }
}

/// What tests see of the shared [`crate::stack::Stack`] (it runs on its own thread).
#[derive(Clone, Debug)]
pub struct TestStack {
    pub nodes: Vec<crate::node::LocalNode>,
    pub pods: crate::pods::PodTable,
    /// Host ports of the pods' named ports (the cvc-operators' backup REST API).
    pub ports: crate::pods::PortTable,
    pub webhook_port: u16,
    pub iscsi_port: u16,
    pub tgt_control_port: u16,
}

static STACK: OnceLock<Result<TestStack, String>> = OnceLock::new();

/// The whole product on the shared control plane (webhook, per-node zfs-fuse, disks and
/// discovery, the operator Deployment, pool-managers), started on first call with `opts`
/// and kept for the test binary; `exe` is the `cstor` binary. Panics with the reason if it
/// cannot start.
pub fn stack(opts: crate::stack::StackOptions) -> &'static TestStack {
    let started = STACK.get_or_init(|| {
        let cp = control_plane();
        let (tx, rx) = std::sync::mpsc::channel::<Result<TestStack, String>>();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let started = async {
                    let admin = cp.client().await.map_err(|e| e.to_string())?;
                    crate::stack::start(&admin, &crate::components::Access::of(cp), cp.dir(), &opts)
                        .await
                        .map_err(|e| e.to_string())
                }
                .await;
                match started {
                    Ok(stack) => {
                        let _ = tx.send(Ok(TestStack {
                            nodes: stack.nodes.clone(),
                            pods: stack.pods.clone(),
                            ports: stack.ports.clone(),
                            webhook_port: stack.webhook_port,
                            iscsi_port: stack.iscsi_port,
                            tgt_control_port: stack.tgt_control_port,
                        }));
                        // Keep the stack (and this runtime) for the life of the test binary.
                        std::future::pending::<()>().await;
                        drop(stack);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        rx.recv_timeout(std::time::Duration::from_secs(300))
            .unwrap_or_else(|e| Err(format!("stack did not start within 300s: {e}")))
    });
    match started {
        Ok(s) => s,
        Err(e) => panic!("the local stack did not start: {e}"),
    }
}

/// The stack this test binary started with [`stack`] (whatever its options); panics if none
/// was started yet. Helpers shared by test binaries with different stacks use this.
pub fn current() -> &'static TestStack {
    match STACK.get() {
        Some(Ok(s)) => s,
        Some(Err(e)) => panic!("the local stack did not start: {e}"),
        None => panic!("no local stack started in this test binary yet"),
    }
}
