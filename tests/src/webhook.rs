//! The webhook as deployed, on the test control plane: deploy/'s RBAC and configurations
//! (pointed at loopback), the server run in-process with a token of its own ServiceAccount, so
//! a permission missing from deploy/ fails the tests. One server per call, on its own thread
//! and runtime, so it outlives the short runtimes of individual tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cstor_certs::inject::Targets;
use cstor_local::components::{self, OPERATOR_NAMESPACE, WEBHOOK_ACCOUNT};
use cstor_local::controlplane::ControlPlane;
use cstor_server::Limits;
use cstor_server::run::{Options, default_operator_accounts};

/// A running webhook server.
pub struct Webhook {
    pub port: u16,
    /// Incremented each time the server's runtime stops (it never should in a test).
    pub stopped: Arc<AtomicU64>,
}

/// Starts the webhook on `cp` with serving certificates of `cert_lifetime`, registers deploy/'s
/// configurations for it, and returns once the caBundles are published. Panics with the reason
/// on any failure: a test must never pass without the real thing.
pub fn start(cp: &'static ControlPlane, cert_lifetime: Duration, resync: Duration) -> Webhook {
    let (tx, rx) = std::sync::mpsc::channel::<Result<u16, String>>();
    let stopped = Arc::new(AtomicU64::new(0));
    let stopped_in = stopped.clone();
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
            let setup = async {
                let admin = cp.client().await.map_err(|e| e.to_string())?;
                components::ensure_namespace(&admin, OPERATOR_NAMESPACE)
                    .await
                    .map_err(|e| e.to_string())?;
                let rbac =
                    components::documents(components::WEBHOOK_RBAC).map_err(|e| e.to_string())?;
                components::apply(&admin, &rbac)
                    .await
                    .map_err(|e| e.to_string())?;
                let kubeconfig = components::service_account_kubeconfig(
                    cp,
                    &admin,
                    OPERATOR_NAMESPACE,
                    WEBHOOK_ACCOUNT,
                    &cp.dir().join("components"),
                )
                .await
                .map_err(|e| e.to_string())?;
                let port = components::free_port().map_err(|e| e.to_string())?;
                let configs =
                    components::local_webhook_configurations(&format!("https://127.0.0.1:{port}"))
                        .map_err(|e| e.to_string())?;
                components::apply(&admin, &configs)
                    .await
                    .map_err(|e| e.to_string())?;
                components::local_conversion(&admin, &format!("https://127.0.0.1:{port}"))
                    .await
                    .map_err(|e| e.to_string())?;
                let kc =
                    kube::config::Kubeconfig::read_from(&kubeconfig).map_err(|e| e.to_string())?;
                let config = kube::Config::from_custom_kubeconfig(
                    kc,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
                let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
                let (validating, mutating) =
                    components::webhook_configuration_names().map_err(|e| e.to_string())?;
                let opts = Options {
                    listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                    namespace: OPERATOR_NAMESPACE.into(),
                    service: "openebs-cstor-admission-server".into(),
                    secret: "openebs-cstor-admission-secret".into(),
                    lease: "cstor-webhook".into(),
                    identity: "e2e-webhook".into(),
                    ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
                    cert_lifetime,
                    targets: Targets {
                        validating,
                        mutating,
                        crds: components::CONVERSION_CRDS.map(String::from).to_vec(),
                    },
                    operator_accounts: cstor_policy::owned::OperatorAccounts(
                        default_operator_accounts(OPERATOR_NAMESPACE),
                    ),
                    limits: Limits::default(),
                    drain: Duration::from_secs(2),
                    resync,
                    lease_seconds: 15,
                };
                Ok::<_, String>((admin, client, opts, port))
            };
            let (admin, client, opts, port) = match setup.await {
                Ok(v) => v,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let server = tokio::spawn(cstor_server::run::run(client, opts, std::future::pending()));
            let ready = async {
                components::wait_for_ca_bundles(&admin, Duration::from_secs(60)).await?;
                components::wait_for_webhook_ready(port, Duration::from_secs(60)).await
            }
            .await;
            let _ = tx.send(ready.map(|()| port).map_err(|e| e.to_string()));
            let ended = server.await;
            stopped_in.fetch_add(1, Ordering::SeqCst);
            eprintln!("webhook server ended: {ended:?}");
        });
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(port)) => Webhook { port, stopped },
        Ok(Err(e)) => panic!("webhook server did not start: {e}"),
        Err(e) => panic!("webhook server did not start within 120s: {e}"),
    }
}
