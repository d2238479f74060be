//! The local stand-in for the kubelet and the deployment controller: every Deployment in the
//! operator namespace whose container runs our `cstor` binary is run as processes, with the
//! pod template's args and env, a token of the template's ServiceAccount, and (when the
//! template selects a node) inside that node's mount namespace. Exited processes are restarted
//! with back-off, and the Deployment's status says how many are ready, as in a cluster.

use cstor_api::keys::env;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};

use kube::{Api, Client};
use serde_json::json;

use crate::components::{self, Access};
use crate::node::LocalNode;

/// Field manager of the Deployment status we write.
const STATUS_MANAGER: &str = "cstor-local/kubelet";
/// The mount path of the pool-manager's cache directory (as the Go operators mount it).
const POOL_STORAGE_MOUNT: &str = "/var/openebs/cstor-pool";

/// What the runner needs to start processes.
#[derive(Clone, Debug)]
pub struct PodEnv {
    pub namespace: String,
    /// The `cstor` binary the containers' `cstor` command stands for.
    pub exe: PathBuf,
    pub nodes: Vec<LocalNode>,
    pub access: Access,
    /// ServiceAccount kubeconfigs and tokens.
    pub token_dir: PathBuf,
    /// `<pod>.log` per process (appended across restarts).
    pub logs: PathBuf,
    /// Process group to join, so our watchdog ends the processes with us.
    pub pgid: Option<i32>,
    /// Local-only environment given to every process (tgtd's control port, node roots).
    pub extra_env: BTreeMap<String, String>,
    /// Per-pod scratch directories (the volume-manager's FUSE mount point).
    pub scratch: PathBuf,
    /// Host ports given to the pods' named container ports.
    pub ports: PortTable,
}

/// The container port of the cvc-operator's backup REST API (deploy/cvc-operator); locally
/// each pod gets a free port on 127.0.0.1 instead, in `CSTOR_BACKUP_API_BIND`.
pub const BACKUP_API_PORT_NAME: &str = "backup-api";

/// Host ports of pods' named container ports (`<pod>/<port name>` → port), kept for the
/// pod's life so its plan does not change; what a Service would route to.
#[derive(Clone, Debug, Default)]
pub struct PortTable(Arc<Mutex<BTreeMap<String, u16>>>);

impl PortTable {
    fn get_or_give(&self, pod: &str, name: &str) -> Result<u16, String> {
        let key = format!("{pod}/{name}");
        let mut t = self.0.lock().map_err(|e| e.to_string())?;
        if let Some(p) = t.get(&key) {
            return Ok(*p);
        }
        let port = components::free_port().map_err(|e| e.to_string())?;
        t.insert(key, port);
        Ok(port)
    }

    /// The host ports of port `name` of Deployment `deployment`'s pods.
    pub fn of(&self, deployment: &str, name: &str) -> Vec<u16> {
        let prefix = format!("{deployment}-local-");
        let suffix = format!("/{name}");
        self.0
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && k.ends_with(&suffix))
                    .map(|(_, p)| *p)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The running processes, by pod name (`<deployment>-local-<i>`): pid and restart count.
#[derive(Clone, Debug, Default)]
pub struct PodTable(Arc<Mutex<BTreeMap<String, (u32, u32)>>>);

impl PodTable {
    /// Pod names and pids of the running processes.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.0
            .lock()
            .map(|t| t.iter().map(|(k, (pid, _))| (k.clone(), *pid)).collect())
            .unwrap_or_default()
    }

    /// Pids of the pods of Deployment `name`.
    pub fn pids_of(&self, deployment: &str) -> Vec<u32> {
        let prefix = format!("{deployment}-local-");
        self.pids()
            .into_iter()
            .filter(|(pod, _)| pod.starts_with(&prefix))
            .map(|(_, pid)| pid)
            .collect()
    }

    /// Total restarts so far of the pods of Deployment `name`.
    pub fn restarts_of(&self, deployment: &str) -> u32 {
        let prefix = format!("{deployment}-local-");
        self.0
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, (_, r))| *r)
                    .sum()
            })
            .unwrap_or(0)
    }

    fn set(&self, pod: &str, pid: u32, restarts: u32) {
        if let Ok(mut t) = self.0.lock() {
            t.insert(pod.to_string(), (pid, restarts));
        }
    }

    fn remove(&self, pod: &str) {
        if let Ok(mut t) = self.0.lock() {
            t.remove(pod);
        }
    }
}

/// What one replica runs: fully resolved, so a change of template restarts it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PodPlan {
    node: Option<String>,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    /// `(variable, Secret, key)`: filled in at each start, as the kubelet does.
    secret_env: Vec<(String, String, String)>,
    account: String,
}

struct Pod {
    plan: PodPlan,
    child: Option<tokio::process::Child>,
    restarts: u32,
    not_before: Instant,
    started: Instant,
}

/// The container of a template that runs our binary, if any, with the `cstor` arguments it
/// stands for: ours (`command: [cstor]`), or the Go operators' pool-manager and
/// volume-manager images, which the local stack plays with our code (docs/upgrades.md).
fn our_container(spec: &PodSpec) -> Option<(&Container, Vec<String>)> {
    spec.containers.iter().find_map(|c| {
        if let Some(command) = &c.command {
            if command.first().is_some_and(|c| c == "cstor") {
                let mut args: Vec<String> = command.iter().skip(1).cloned().collect();
                args.extend(c.args.iter().flatten().cloned());
                return Some((c, args));
            }
            return None;
        }
        let role = go_image_role(c.image.as_deref()?)?;
        Some((c, vec![role.to_string()]))
    })
}

/// `pool-manager` / `volume-manager` for the Go operators' images of those
/// (`[registry/]openebs/cstor-pool-manager[-amd64]:<tag>`), else `None`.
fn go_image_role(image: &str) -> Option<&'static str> {
    let repo = image.rsplit('/').next()?.split([':', '@']).next()?;
    let repo = repo
        .strip_suffix("-amd64")
        .or_else(|| repo.strip_suffix("-arm64"))
        .unwrap_or(repo);
    match repo {
        "cstor-pool-manager" => Some("pool-manager"),
        "cstor-volume-manager" => Some("volume-manager"),
        _ => None,
    }
}

/// The version an image tag names (`openebs/cstor-rs:4.1.0` → `4.1.0`), which the played
/// process runs as; `None` for a digest, no tag, or a tag that is not a version.
pub fn image_version(image: &str) -> Option<String> {
    let last = image.rsplit('/').next()?;
    if last.contains('@') {
        return None;
    }
    let tag = last.split_once(':')?.1;
    let bare = tag.strip_prefix('v').unwrap_or(tag);
    bare.split('-')
        .next()
        .is_some_and(|b| !b.is_empty() && b.split('.').all(|p| p.parse::<u64>().is_ok()))
        .then(|| bare.to_string())
}

/// The node a template selects by hostname label, if it selects one.
fn selected_node(spec: &PodSpec) -> Option<String> {
    spec.node_selector
        .as_ref()
        .and_then(|s| s.get("kubernetes.io/hostname"))
        .cloned()
}

impl PodEnv {
    fn node(&self, name: &str) -> Option<&LocalNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The process plan of replica `pod` of `deploy`, or why it cannot run here.
    fn plan(&self, deploy: &Deployment, pod: &str) -> Result<Option<PodPlan>, String> {
        let Some(spec) = deploy.spec.template.spec.as_ref() else {
            return Ok(None);
        };
        let Some((container, args)) = our_container(spec) else {
            return Ok(None);
        };
        let node = selected_node(spec);
        let local = match &node {
            Some(n) => Some(
                self.node(n)
                    .ok_or_else(|| format!("node {n} is not a local node"))?,
            ),
            None => None,
        };
        let mut env = BTreeMap::new();
        if let Some(v) = container.image.as_deref().and_then(image_version) {
            env.insert(env::CSTOR_VERSION.into(), v);
        }
        let mut secret_env = Vec::new();
        for var in container.env.iter().flatten() {
            if let Some(v) = &var.value {
                env.insert(var.name.clone(), v.clone());
                continue;
            }
            if let Some(r) = var
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
            {
                secret_env.push((var.name.clone(), r.name.clone(), r.key.clone()));
                continue;
            }
            let field = var
                .value_from
                .as_ref()
                .and_then(|f| f.field_ref.as_ref())
                .map(|f| f.field_path.as_str());
            let value = match field {
                Some("metadata.name") => pod.to_string(),
                Some("metadata.namespace") => self.namespace.clone(),
                Some("spec.nodeName") => node.clone().unwrap_or_else(|| "localhost".into()),
                Some("status.podIP") | Some("status.hostIP") => "127.0.0.1".into(),
                Some("spec.serviceAccountName") => spec
                    .service_account_name
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                _ => continue,
            };
            env.insert(var.name.clone(), value);
        }
        // hostPath volumes live under the node's directory.
        if let Some(local) = local {
            for mount in container.volume_mounts.iter().flatten() {
                if mount.mount_path != POOL_STORAGE_MOUNT {
                    continue;
                }
                let host = spec
                    .volumes
                    .iter()
                    .flatten()
                    .find(|v| v.name == mount.name)
                    .and_then(|v| v.host_path.as_ref())
                    .map(|h| local.host_path(&h.path));
                if let Some(host) = host {
                    env.insert(
                        env::CSTOR_POOL_CACHE_FILE.into(),
                        host.join("pool.cache").to_string_lossy().into_owned(),
                    );
                }
            }
            env.insert(env::CSTOR_ZFS_DIALECT.into(), "zfs-fuse".into());
        }
        for (k, v) in &self.extra_env {
            env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        // The Go pool-manager's pod has no NODE_NAME (ours has): a played one gets its node's.
        if let Some(n) = &node {
            env.entry(env::NODE_NAME.into())
                .or_insert_with(|| n.clone());
        }
        let api_port = container
            .ports
            .iter()
            .flatten()
            .any(|p| p.name.as_deref() == Some(BACKUP_API_PORT_NAME));
        if api_port {
            let port = self.ports.get_or_give(pod, BACKUP_API_PORT_NAME)?;
            env.insert(
                env::CSTOR_BACKUP_API_BIND.into(),
                format!("127.0.0.1:{port}"),
            );
        }
        // The local data plane: tgt over the FUSE fan-out (a cluster's target is istgt).
        env.insert(env::CSTOR_TARGET.into(), "tgt".into());
        // A target's FUSE fan-out is mounted in a directory of its own.
        env.insert(
            env::CSTOR_FANOUT_DIR.into(),
            self.scratch
                .join(pod)
                .join("fanout")
                .to_string_lossy()
                .into_owned(),
        );
        Ok(Some(PodPlan {
            node,
            args,
            env,
            secret_env,
            account: spec
                .service_account_name
                .clone()
                .unwrap_or_else(|| "default".into()),
        }))
    }
}

/// Runs our Deployments until `shutdown`; then stops every process (SIGTERM, 10 s, SIGKILL).
pub async fn run(
    admin: Client,
    env: PodEnv,
    table: PodTable,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let api: Api<Deployment> = Api::namespaced(admin.clone(), &env.namespace);
    let mut events = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relisting: Option<HashMap<String, Deployment>> = None;
    let mut deployments: HashMap<String, Deployment> = HashMap::new();
    let mut pods: HashMap<String, Pod> = HashMap::new();
    let mut kubeconfigs: HashMap<String, PathBuf> = HashMap::new();
    let mut last_status: HashMap<String, (Option<i64>, i32, i32)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut renew = tokio::time::interval(components::TOKEN_LIFETIME / 3);
    renew.tick().await;
    let _ = std::fs::create_dir_all(&env.logs);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Apply(d))) => {
                    let name = d.metadata.name.clone().unwrap_or_default();
                    deployments.insert(name, d);
                }
                Some(Ok(watcher::Event::Delete(d))) => {
                    deployments.remove(&d.metadata.name.clone().unwrap_or_default());
                }
                Some(Ok(watcher::Event::Init)) => relisting = Some(HashMap::new()),
                Some(Ok(watcher::Event::InitApply(d))) => {
                    let name = d.metadata.name.clone().unwrap_or_default();
                    relisting.get_or_insert_with(HashMap::new).insert(name, d);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    if let Some(listed) = relisting.take() {
                        deployments = listed;
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "watching Deployments"),
                None => break,
            },
            _ = renew.tick() => {
                for account in kubeconfigs.keys() {
                    let path = components::token_path(&env.token_dir, account);
                    if let Err(e) = components::refresh_token(&admin, &env.namespace, account, &path).await {
                        tracing::warn!(error = %e, account, "token not renewed");
                    }
                }
            }
            _ = tick.tick() => {
                reconcile(&admin, &env, &table, &deployments, &mut pods, &mut kubeconfigs, &mut last_status).await;
            }
        }
    }
    for (name, mut pod) in pods.drain() {
        if let Some(child) = pod.child.as_mut() {
            stop_child(child).await;
        }
        table.remove(&name);
    }
}

async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn reconcile(
    admin: &Client,
    env: &PodEnv,
    table: &PodTable,
    deployments: &HashMap<String, Deployment>,
    pods: &mut HashMap<String, Pod>,
    kubeconfigs: &mut HashMap<String, PathBuf>,
    last_status: &mut HashMap<String, (Option<i64>, i32, i32)>,
) {
    let api: Api<Deployment> = Api::namespaced(admin.clone(), &env.namespace);
    // Desired pods.
    let mut desired: HashMap<String, (String, PodPlan)> = HashMap::new();
    for (name, d) in deployments.iter() {
        let replicas = d.spec.replicas.unwrap_or(1);
        for i in 0..replicas.max(0) {
            let pod = format!("{name}-local-{i}");
            match env.plan(d, &pod) {
                Ok(Some(plan)) => {
                    desired.insert(pod, (name.clone(), plan));
                }
                Ok(None) => {}
                Err(why) => tracing::warn!(deployment = %name, %why, "cannot run here"),
            }
        }
    }
    // Stop pods no longer wanted or whose plan changed.
    let running: Vec<String> = pods.keys().cloned().collect();
    for name in running {
        let keep = desired
            .get(&name)
            .is_some_and(|(_, plan)| pods.get(&name).is_some_and(|p| &p.plan == plan));
        if !keep && let Some(mut pod) = pods.remove(&name) {
            tracing::info!(pod = %name, "stopping");
            if let Some(child) = pod.child.as_mut() {
                stop_child(child).await;
            }
            table.remove(&name);
        }
    }
    // Start or restart.
    for (name, (_, plan)) in &desired {
        let pod = pods.entry(name.clone()).or_insert_with(|| Pod {
            plan: plan.clone(),
            child: None,
            restarts: 0,
            not_before: Instant::now(),
            started: Instant::now(),
        });
        if let Some(child) = pod.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            tracing::warn!(pod = %name, %status, "exited; restarting with back-off");
            pod.child = None;
            pod.restarts += 1;
            // Back-off like the kubelet, reset after a long healthy run.
            let secs = if pod.started.elapsed() > Duration::from_secs(60) {
                1
            } else {
                (1u64 << pod.restarts.min(5)).min(30)
            };
            pod.not_before = Instant::now() + Duration::from_secs(secs);
            table.remove(name);
        }
        if pod.child.is_none() && Instant::now() >= pod.not_before {
            match spawn(admin, env, kubeconfigs, name, plan).await {
                Ok(child) => {
                    table.set(name, child.id().unwrap_or(0), pod.restarts);
                    pod.child = Some(child);
                    pod.started = Instant::now();
                }
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "cannot start");
                    pod.restarts += 1;
                    pod.not_before = Instant::now() + Duration::from_secs(5);
                }
            }
        }
    }
    // Deployment status, as kubelet + deployment controller would report it.
    for (name, d) in deployments.iter() {
        let prefix = format!("{name}-local-");
        let wanted = d.spec.replicas.unwrap_or(1);
        let running = pods
            .iter()
            .filter(|(k, p)| k.starts_with(&prefix) && p.child.is_some())
            .count() as i32;
        let ours = d
            .spec
            .template
            .spec
            .as_ref()
            .is_some_and(|s| our_container(s).is_some());
        // A new generation (a rolled template) is reported even when the counts stay.
        let seen = (d.metadata.generation, wanted, running);
        if !ours || last_status.get(name) == Some(&seen) {
            continue;
        }
        let body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": env.namespace},
            "status": {
                "observedGeneration": d.metadata.generation,
                "replicas": wanted, "updatedReplicas": wanted,
                "readyReplicas": running, "availableReplicas": running,
                "unavailableReplicas": (wanted - running).max(0),
            },
        });
        let pp = PatchParams::apply(STATUS_MANAGER).force();
        match api.patch_status(name, &pp, &Patch::Apply(&body)).await {
            Ok(_) => {
                last_status.insert(name.clone(), seen);
            }
            Err(e) => tracing::debug!(deployment = %name, error = %e, "status not written"),
        }
    }
    last_status.retain(|k, _| deployments.contains_key(k));
}

async fn spawn(
    admin: &Client,
    env: &PodEnv,
    kubeconfigs: &mut HashMap<String, PathBuf>,
    pod: &str,
    plan: &PodPlan,
) -> Result<tokio::process::Child, String> {
    let kubeconfig = match kubeconfigs.get(&plan.account) {
        Some(k) => k.clone(),
        None => {
            let k = components::account_kubeconfig(
                &env.access,
                admin,
                &env.namespace,
                &plan.account,
                &env.token_dir,
            )
            .await
            .map_err(|e| e.to_string())?;
            kubeconfigs.insert(plan.account.clone(), k.clone());
            k
        }
    };
    if let Some(cache) = plan.env.get(env::CSTOR_POOL_CACHE_FILE)
        && let Some(dir) = std::path::Path::new(cache).parent()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if let Some(dir) = plan.env.get(env::CSTOR_FANOUT_DIR) {
        // A volume-manager killed while serving leaves its FUSE mount behind (ENOTCONN); the
        // next one detaches it, so it is no reason not to start.
        let stale = std::fs::metadata(dir)
            .err()
            .is_some_and(|e| e.raw_os_error() == Some(nix::libc::ENOTCONN));
        if !stale {
            std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
        }
    }
    let mut cmd = match plan.node.as_deref().and_then(|n| env.node(n)) {
        Some(node) => {
            let std_cmd = node.command(&env.exe);
            tokio::process::Command::from(std_cmd)
        }
        None => tokio::process::Command::new(&env.exe),
    };
    let log_path = env.logs.join(format!("{pod}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    // Secret-backed variables: a missing Secret or key keeps the pod from starting (retried),
    // as a kubelet's CreateContainerConfigError does.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(admin.clone(), &env.namespace);
    for (var, secret, key) in &plan.secret_env {
        let value = secrets
            .get_opt(secret)
            .await
            .map_err(|e| format!("Secret {secret}: {e}"))?
            .and_then(|s| s.data)
            .and_then(|d| d.get(key).cloned())
            .ok_or_else(|| format!("Secret {secret} has no key {key}"))?;
        cmd.env(var, String::from_utf8_lossy(&value.0).into_owned());
    }
    cmd.args(&plan.args)
        .envs(&plan.env)
        .env(env::KUBECONFIG, &kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .kill_on_drop(true);
    if let Some(pgid) = env.pgid {
        cmd.process_group(pgid);
    }
    tracing::info!(pod, node = ?plan.node, args = ?plan.args, "starting");
    cmd.spawn()
        .map_err(|e| format!("{}: {e}", env.exe.display()))
}

#[cfg(test)]
mod tests {
    use super::{go_image_role, image_version};

    #[test]
    fn an_image_tag_names_the_version_a_played_pod_runs() {
        let cases: &[(&str, Option<&str>)] = &[
            ("openebs/cstor-rs:4.1.0", Some("4.1.0")),
            ("registry:5000/openebs/cstor-rs:v4.0.0", Some("4.0.0")),
            ("openebs/cstor-pool-manager:3.6.0-RC1", Some("3.6.0-RC1")),
            ("openebs/cstor-rs:latest", None),
            ("openebs/cstor-rs", None),
            ("openebs/cstor-rs@sha256:abc", None),
        ];
        for (image, want) in cases {
            assert_eq!(image_version(image).as_deref(), *want, "{image}");
        }
    }

    #[test]
    fn the_go_managers_images_are_played_by_our_binary() {
        let cases: &[(&str, Option<&str>)] = &[
            ("openebs/cstor-pool-manager:3.6.0", Some("pool-manager")),
            (
                "quay.io/openebs/cstor-pool-manager-amd64:ci",
                Some("pool-manager"),
            ),
            ("openebs/cstor-volume-manager:3.6.0", Some("volume-manager")),
            ("openebs/cstor-istgt:3.6.0", None),
            ("openebs/cstor-pool:3.6.0", None),
            ("openebs/m-exporter:3.6.0", None),
        ];
        for (image, want) in cases {
            assert_eq!(go_image_role(image), *want, "{image}");
        }
    }
}
