//! `cstor webhook` as a process, as the kubelet runs it: under its ServiceAccount's token it
//! takes the Lease, issues its certificate and publishes the caBundles; SIGTERM drains, gives
//! the Lease back and exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cstor_local::components::{self, OPERATOR_NAMESPACE, WEBHOOK_ACCOUNT};
use cstor_local::testing;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_process_serves_then_stops_on_sigterm_and_releases_its_lease() {
    let cp = testing::control_plane();
    let admin = cp.client().await.expect("admin client");
    components::ensure_namespace(&admin, OPERATOR_NAMESPACE)
        .await
        .expect("namespace");
    components::apply(
        &admin,
        &components::documents(components::WEBHOOK_RBAC).expect("rbac"),
    )
    .await
    .expect("apply rbac");
    let dir = tempfile::tempdir().expect("dir");
    let kubeconfig = components::service_account_kubeconfig(
        cp,
        &admin,
        OPERATOR_NAMESPACE,
        WEBHOOK_ACCOUNT,
        dir.path(),
    )
    .await
    .expect("token kubeconfig");
    let port = components::free_port().expect("port");
    components::apply(
        &admin,
        &components::local_webhook_configurations(&format!("https://127.0.0.1:{port}"))
            .expect("configurations"),
    )
    .await
    .expect("apply configurations");
    let log = dir.path().join("webhook.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cstor"))
        .args([
            "webhook",
            "--namespace",
            OPERATOR_NAMESPACE,
            "--ip",
            "127.0.0.1",
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--identity")
        .arg("webhook-under-test")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn cstor webhook");

    let ready = components::wait_for_ca_bundles(&admin, Duration::from_secs(60)).await;
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ready.is_ok(), "{ready:?}\n{}", text());
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), OPERATOR_NAMESPACE);
    let secret = secrets
        .get("openebs-cstor-admission-secret")
        .await
        .expect("certificate Secret");
    let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, ["app.crt", "app.pem", "ca.crt", "ca.key"]);
    let leases: Api<Lease> = Api::namespaced(admin.clone(), OPERATOR_NAMESPACE);
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    assert_eq!(
        holder(leases.get("cstor-webhook").await.expect("lease")),
        "webhook-under-test"
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 20s after SIGTERM:\n{}",
            text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit {status}:\n{}", text());
    assert!(
        text().contains("shutting down: draining connections"),
        "{}",
        text()
    );
    assert_eq!(
        holder(leases.get("cstor-webhook").await.expect("lease")),
        "",
        "the Lease is given back on shutdown"
    );
}
