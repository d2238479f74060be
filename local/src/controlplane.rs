//! The local control plane: etcd, kube-apiserver (RBAC on) and kube-controller-manager on
//! loopback, with per-run certificates and an admin kubeconfig.

use crate::components::free_port;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{Api, Client, Config, config::KubeConfigOptions, config::Kubeconfig};

use crate::Error;
use crate::binaries::Binaries;
use crate::pki::{self, ClientCert, Pki};
use crate::process::Supervisor;

/// How long the control plane may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Controllers of kube-controller-manager we need: garbage collection, service-account tokens,
/// namespace deletion, and the PV binder and the PV/PVC protection controllers (a volume
/// migration deletes and recreates claims and PVs; without them a deleted claim never goes).
/// No kubelet runs here, so no workload or node controllers.
const CONTROLLERS: &str = "garbage-collector-controller,serviceaccount-token-controller,\
serviceaccount-controller,namespace-controller,clusterrole-aggregation-controller,\
root-ca-certificate-publisher-controller,persistentvolume-binder-controller,\
persistentvolume-protection-controller,persistentvolumeclaim-protection-controller";

/// A running control plane. Dropping it stops every process and removes its directory.
pub struct ControlPlane {
    // Declared first so it drops (stopping processes) before the directory goes.
    supervisor: Supervisor,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    kubeconfig: PathBuf,
    server: String,
    pki: Pki,
    binaries: Binaries,
}

/// Where the control plane keeps its files.
pub enum RunDir {
    /// A fresh temporary directory (tests).
    Temp,
    /// This directory, created fresh and removed on stop (`cstor up`).
    At(PathBuf),
}

/// Makes `d` an empty run directory carrying [`crate::RUN_DIR_MARKER`]. An existing `d` is
/// removed first only when it is one of ours: it carries the marker, or (made before the
/// marker existed) holds our control plane's `ca.crt`, `admin.kubeconfig` and `etcd/`.
pub fn prepare_run_dir(d: &Path) -> Result<(), Error> {
    if d.exists() {
        let ours = d.join(crate::RUN_DIR_MARKER).exists()
            || (d.join("ca.crt").is_file()
                && d.join("admin.kubeconfig").is_file()
                && d.join("etcd").is_dir());
        if !ours {
            return Err(Error::Tool(format!(
                "{} exists and was not made by cstor (no {} in it); refusing to remove it: choose another --state-dir",
                d.display(),
                crate::RUN_DIR_MARKER
            )));
        }
        std::fs::remove_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    let marker = d.join(crate::RUN_DIR_MARKER);
    std::fs::write(&marker, "made by cstor up; removed with this directory\n")
        .map_err(|e| Error::io(&marker, e))
}

fn write(path: &Path, content: &str) -> Result<(), Error> {
    std::fs::write(path, content).map_err(|e| Error::io(path, e))
}

/// A kubeconfig using certificate files (no base64 needed), written next to them.
fn write_kubeconfig(
    dir: &Path,
    name: &str,
    server: &str,
    ca: &Path,
    client: &ClientCert,
) -> Result<PathBuf, Error> {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    write(&crt, &client.cert_pem)?;
    write(&key, &client.key_pem)?;
    let path = dir.join(format!("{name}.kubeconfig"));
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: cstor-local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {name}\n  user:\n    client-certificate: {crt}\n    client-key: {key}\ncontexts:\n- name: cstor-local\n  context:\n    cluster: cstor-local\n    user: {name}\ncurrent-context: cstor-local\n",
        ca = ca.display(),
        crt = crt.display(),
        key = key.display(),
    );
    write(&path, &yaml)?;
    Ok(path)
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until the apiserver
    /// is ready and the controller-manager has created the default service account. A port
    /// taken by someone else between our check and the child's bind (tests run side by side)
    /// is not a failure: the whole start is tried again on fresh ports, three times at most.
    pub async fn start(binaries: Binaries, run_dir: RunDir) -> Result<Self, Error> {
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::start_once(binaries.clone(), &run_dir).await {
                Err(Error::Exited { name, log_tail, .. })
                    if tries < 3 && log_tail.contains("address already in use") =>
                {
                    tracing::warn!(%name, tries, "a port was taken before {name} bound it; starting again on fresh ports");
                }
                other => return other,
            }
        }
    }

    async fn start_once(binaries: Binaries, run_dir: &RunDir) -> Result<Self, Error> {
        let (dir, tmp) = match run_dir {
            RunDir::Temp => {
                let t = tempfile::Builder::new()
                    .prefix("cstor-cp-")
                    .tempdir()
                    .map_err(|e| Error::io(Path::new("/tmp"), e))?;
                // CSTOR_KEEP_RUN_DIR=1 keeps the logs of every process for a post-mortem.
                if std::env::var_os("CSTOR_KEEP_RUN_DIR").is_some() {
                    let kept = t.keep();
                    tracing::warn!(dir = %kept.display(), "keeping the run directory");
                    eprintln!("run directory kept: {}", kept.display());
                    (kept, None)
                } else {
                    (t.path().to_path_buf(), Some(t))
                }
            }
            RunDir::At(d) => {
                prepare_run_dir(d)?;
                (d.clone(), None)
            }
        };
        let pki = pki::generate(&dir)?;
        let mut supervisor = Supervisor::new(dir.join("logs"), Some(dir.clone()))?;

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let api_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let server = format!("https://127.0.0.1:{api_port}");

        let mut etcd = Command::new(&binaries.etcd);
        etcd.arg("--name=local")
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=local={peer_url}"))
            .arg("--unsafe-no-fsync=true")
            .arg("--log-level=warn");
        supervisor.spawn("etcd", etcd)?;

        let mut api = Command::new(&binaries.kube_apiserver);
        api.arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={api_port}"))
            .arg(format!(
                "--cert-dir={}",
                dir.join("apiserver-certs").display()
            ))
            .arg(format!("--tls-cert-file={}", pki.serving_cert.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.serving_key.display()
            ))
            .arg(format!("--client-ca-file={}", pki.ca_cert.display()))
            .arg(format!(
                "--service-account-key-file={}",
                pki.sa_pub.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki.sa_key.display()
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg("--authorization-mode=Node,RBAC")
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--allow-privileged=true")
            // No kubelet or kube-proxy here: the kubernetes Service needs no loopback endpoints.
            .arg("--endpoint-reconciler-type=none")
            .arg("--profiling=false")
            .arg("--v=1");
        supervisor.spawn("kube-apiserver", api)?;

        let admin_kubeconfig = write_kubeconfig(&dir, "admin", &server, &pki.ca_cert, &pki.admin)?;
        let kcm_kubeconfig = write_kubeconfig(
            &dir,
            "kube-controller-manager",
            &server,
            &pki.ca_cert,
            &pki.controller_manager,
        )?;

        let mut cp = Self {
            dir,
            _tmp: tmp,
            supervisor,
            kubeconfig: admin_kubeconfig,
            server,
            pki,
            binaries,
        };
        cp.wait_ready().await?;

        let mut kcm = Command::new(&cp.binaries.kube_controller_manager);
        kcm.arg(format!("--kubeconfig={}", kcm_kubeconfig.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                kcm_kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                kcm_kubeconfig.display()
            ))
            .arg("--leader-elect=false")
            // Each controller acts as its own ServiceAccount (as in kubeadm clusters): the
            // garbage collector may then delete anything, and our webhook recognises it.
            .arg("--use-service-account-credentials=true")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={}", free_port()?))
            .arg(format!("--cert-dir={}", cp.dir.join("kcm-certs").display()))
            .arg(format!(
                "--service-account-private-key-file={}",
                cp.pki.sa_key.display()
            ))
            .arg(format!("--root-ca-file={}", cp.pki.ca_cert.display()))
            .arg(format!("--controllers={CONTROLLERS}"))
            .arg("--v=1");
        cp.supervisor.spawn("kube-controller-manager", kcm)?;
        cp.wait_controller_manager().await?;
        Ok(cp)
    }

    /// A process of the control plane that has exited, as an error naming it and its log.
    pub fn exited(&mut self) -> Option<Error> {
        let (name, status) = self.supervisor.exited()?;
        let log = self.supervisor.log_path(&name);
        Some(Error::Exited {
            name,
            status: status.to_string(),
            log_tail: tail(&log, 30),
            log,
        })
    }

    fn check_alive(&mut self) -> Result<(), Error> {
        match self.exited() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        let mut last_err = String::from("not tried");
        let addr = self.server.trim_start_matches("https://").to_string();
        while started.elapsed() < READY_TIMEOUT {
            self.check_alive()?;
            // Port first: the kube client logs every refused connection as an error.
            if tokio::net::TcpStream::connect(&addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            match self.client().await {
                Ok(client) => {
                    let req = http::Request::get("/readyz")
                        .body(Vec::new())
                        .map_err(|e| Error::Kube(e.to_string()))?;
                    match client.request_text(req).await {
                        Ok(body) if body.trim() == "ok" => return Ok(()),
                        Ok(body) => last_err = body,
                        Err(e) => last_err = e.to_string(),
                    }
                }
                Err(e) => last_err = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(Error::Timeout(format!(
            "kube-apiserver not ready after {}s: {last_err} (log: {})",
            READY_TIMEOUT.as_secs(),
            self.supervisor.log_path("kube-apiserver").display()
        )))
    }

    async fn wait_controller_manager(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        let sas: Api<ServiceAccount> = Api::namespaced(self.client().await?, "default");
        while started.elapsed() < READY_TIMEOUT {
            self.check_alive()?;
            if let Ok(Some(_)) = sas.get_opt("default").await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(Error::Timeout(format!(
            "kube-controller-manager created no default service account in {}s (log: {})",
            READY_TIMEOUT.as_secs(),
            self.supervisor
                .log_path("kube-controller-manager")
                .display()
        )))
    }

    /// An admin client (system:masters).
    pub async fn client(&self) -> Result<Client, Error> {
        let text = std::fs::read_to_string(&self.kubeconfig)
            .map_err(|e| Error::io(&self.kubeconfig, e))?;
        let kc = Kubeconfig::from_yaml(&text).map_err(|e| Error::Kube(e.to_string()))?;
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kube(e.to_string()))?;
        Client::try_from(config).map_err(|e| Error::Kube(e.to_string()))
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver URL, `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// File of the CA that signed the apiserver's certificate.
    pub fn ca_cert_path(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// PEM of the CA that signed the apiserver's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// Names and process ids of etcd, kube-apiserver and kube-controller-manager.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.supervisor.pids()
    }

    /// The run directory (certificates, logs, etcd data).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The resolved binaries (tests run `kubectl` from here).
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// A `kubectl` command bound to the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.binaries.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Stops every process (SIGTERM, then SIGKILL) and removes the run directory.
    pub fn stop(mut self) {
        self.supervisor.stop(Duration::from_secs(10));
        if self._tmp.is_none()
            && std::env::var_os("CSTOR_KEEP_RUN_DIR").is_none()
            && self.dir.join(crate::RUN_DIR_MARKER).exists()
        {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
