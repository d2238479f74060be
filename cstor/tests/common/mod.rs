//! Shared support of the pool end-to-end tests: the whole stack on the test control plane,
//! CSPCs applied through kubectl like a user, and waits that end with what was last seen.

#![allow(dead_code)]

pub mod migration;
pub mod volumes;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use cstor_api::cstor_v1::cspc::CStorPoolCluster;
use cstor_api::cstor_v1::cspi::CStorPoolInstance;
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};
use cstor_local::node::{DiskLayout, LocalNode};
use cstor_local::stack::StackOptions;
use cstor_local::testing::{self, TestStack};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::{Value, json};

pub const NS: &str = "openebs";
pub const NODES: usize = 3;
pub const DISKS: usize = 8;

/// The shared stack: 3 nodes × 8 disks of 256 MiB.
pub fn stack() -> &'static TestStack {
    testing::stack(StackOptions {
        nodes: NODES,
        disks: DiskLayout {
            per_node: DISKS,
            bytes: 256 << 20,
        },
        exe: env!("CARGO_BIN_EXE_cstor").into(),
        discovery_interval: Duration::from_millis(500),
        operator_replicas: Some(2),
    })
}

/// The stack of the volume tests: 4 nodes (scaling 3 → 4 needs a fourth node) × 2 disks of
/// 3 GiB (sparse), so 1 → 2 GiB volumes fit.
pub fn volume_stack() -> &'static TestStack {
    testing::stack(StackOptions {
        nodes: 4,
        disks: DiskLayout {
            per_node: 2,
            bytes: 3 << 30,
        },
        exe: env!("CARGO_BIN_EXE_cstor").into(),
        discovery_interval: Duration::from_millis(500),
        operator_replicas: Some(1),
    })
}

/// The stack of the fault tests: 3 nodes × 2 disks of 320 MiB (sparse), small enough that
/// a pool fills in seconds.
pub fn fault_stack() -> &'static TestStack {
    testing::stack(StackOptions {
        nodes: 3,
        disks: DiskLayout {
            per_node: 2,
            bytes: 320 << 20,
        },
        exe: env!("CARGO_BIN_EXE_cstor").into(),
        discovery_interval: Duration::from_millis(500),
        operator_replicas: Some(1),
    })
}

pub async fn admin() -> Client {
    testing::control_plane()
        .client()
        .await
        .expect("admin client")
}

/// A small seeded generator (xorshift64*): the seed is printed so a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_env_or_clock(what: &str) -> Rng {
        Rng::seeded("CSTOR_TEST_SEED", what)
    }

    /// Seeded from env `var` when set, else from the clock; the seed is printed with how to
    /// replay it.
    pub fn seeded(var: &str, what: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{what}: seed {seed} (replay with {var}={seed})");
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// Node `i` (1-based) of the stack.
pub fn node(i: usize) -> &'static LocalNode {
    &stack().nodes[i - 1]
}

/// The BlockDevice name of disk `d` on node `n` (as disk discovery names it).
pub fn bd(n: usize, d: usize) -> String {
    format!("bd-cstor-node-{n}-disk-{d}")
}

/// Polls `probe` every 300 ms until it returns Some, or panics after `within` with `what`
/// and the last value described by `probe`'s error.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match probe().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() > deadline {
            panic!(
                "timed out after {}s waiting for {what}; last seen: {last}",
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A pool spec on node `n` with `groups` (lists of disk numbers) of `kind`.
pub fn pool(n: usize, kind: &str, groups: &[&[usize]]) -> Value {
    json!({
        "nodeSelector": {"kubernetes.io/hostname": format!("cstor-node-{n}")},
        "dataRaidGroups": groups.iter().map(|g| json!({
            "blockDevices": g.iter().map(|d| json!({"blockDeviceName": bd(n, *d)})).collect::<Vec<_>>()
        })).collect::<Vec<_>>(),
        "poolConfig": {"dataRaidGroupType": kind},
    })
}

/// A CSPC manifest.
pub fn cspc(name: &str, pools: Vec<Value>) -> Value {
    json!({
        "apiVersion": "cstor.openebs.io/v1",
        "kind": "CStorPoolCluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"pools": pools},
    })
}

/// `kubectl apply -f -` of `manifest` as the admin user; panics with kubectl's words.
pub fn kubectl_apply(manifest: &Value) {
    let out = kubectl(&["apply", "-f", "-"], Some(manifest.to_string()));
    assert!(out.0, "kubectl apply failed: {}", out.1);
}

/// Runs kubectl (namespace `openebs`), feeding `stdin`; (success, stdout + stderr).
pub fn kubectl(args: &[&str], stdin: Option<String>) -> (bool, String) {
    use std::io::Write;
    let mut cmd = testing::control_plane().kubectl();
    cmd.arg("--namespace").arg(NS).args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl");
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin.unwrap_or_default().as_bytes());
    }
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub async fn cspis_of(client: &Client, cspc: &str) -> Vec<CStorPoolInstance> {
    let api: Api<CStorPoolInstance> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default().labels(&format!("{}={cspc}", labels::CSTOR_POOL_CLUSTER)))
        .await
        .expect("list CSPIs")
        .items
}

/// Waits until the CSPC has `n` CSPIs, all ONLINE, and its status counts say so.
pub async fn wait_online(client: &Client, name: &str, n: usize) -> Vec<CStorPoolInstance> {
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    wait_for(
        &format!("{n} CSPIs of {name} ONLINE"),
        Duration::from_secs(120),
        || async {
            let cspis = cspis_of(client, name).await;
            let phases: Vec<String> = cspis
                .iter()
                .map(|c| c.status.clone().unwrap_or_default().phase)
                .collect();
            let status = cspcs
                .get(name)
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            let want = Some(n as i32);
            if cspis.len() == n
                && phases.iter().all(|p| p == "ONLINE")
                && status.healthy_instances == want
                && status.provisioned_instances == want
            {
                Ok(cspis)
            } else {
                Err(format!(
                    "phases {phases:?}, cspc status {}",
                    serde_json::to_string(&status).unwrap_or_default()
                ))
            }
        },
    )
    .await
}

/// The CSPI of `cspc` on node `n`.
pub async fn cspi_on(client: &Client, cspc: &str, n: usize) -> CStorPoolInstance {
    let host = format!("cstor-node-{n}");
    cspis_of(client, cspc)
        .await
        .into_iter()
        .find(|c| c.spec.host_name == host)
        .unwrap_or_else(|| panic!("no CSPI of {cspc} on {host}"))
}

/// The zpool name of a CSPC.
pub async fn zpool_of(client: &Client, cspc: &str) -> String {
    let api: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    let uid = api
        .get(cspc)
        .await
        .expect("get cspc")
        .metadata
        .uid
        .expect("uid");
    cstor_api::keys::zpool_name(&uid)
}

/// The data groups `zpool status` shows on node `n`, as disk numbers per group with the
/// group kind (`disk` for a stripe member); a vdev that is not a disk (a `replacing-0` group
/// while a replacement runs) shows as 0.
pub fn zpool_groups(n: usize, pool: &str) -> Vec<(String, Vec<usize>)> {
    let text = node(n)
        .zpool(&["status", pool])
        .unwrap_or_else(|e| panic!("zpool status on node {n}: {e}"));
    let status =
        cstor_agents::pool_manager::zpool::parse_status(&text).expect("parse zpool status");
    status
        .groups()
        .into_iter()
        .map(|(kind, disks)| {
            let kind = kind.split('-').next().unwrap_or_default().to_string();
            let numbers = disks
                .iter()
                .map(|d| {
                    d.rsplit_once("disk-")
                        .and_then(|(_, x)| x.parse().ok())
                        .unwrap_or(0)
                })
                .collect();
            (kind, numbers)
        })
        .collect()
}

/// Whether node `n` has zpool `pool` imported.
pub fn has_zpool(n: usize, pool: &str) -> bool {
    node(n)
        .zpool(&["list", "-H", "-o", "name"])
        .map(|out| out.lines().any(|l| l.trim() == pool))
        .unwrap_or(false)
}

/// Deletes the CSPC and waits until nothing of it is left: CSPIs, pool-manager Deployments,
/// BDCs, the CSPC itself, and the zpool on every node; its disks Unclaimed again.
pub async fn delete_and_verify_clean(client: &Client, name: &str, disks: &[(usize, usize)]) {
    let pool = zpool_of(client, name).await;
    let (ok, out) = kubectl(&["delete", "cspc", name, "--wait=false"], None);
    assert!(ok, "kubectl delete cspc: {out}");
    let sel = format!("{}={name}", labels::CSTOR_POOL_CLUSTER);
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);
    let bds: Api<BlockDevice> = Api::namespaced(client.clone(), NS);
    wait_for(
        &format!("CSPC {name} and everything of it gone"),
        Duration::from_secs(120),
        || async {
            let lp = ListParams::default().labels(&sel);
            let left_cspis = cspis_of(client, name).await.len();
            let left_deploys = deploys.list(&lp).await.map_err(|e| e.to_string())?.items.len();
            let left_bdcs = bdcs.list(&lp).await.map_err(|e| e.to_string())?.items.len();
            let cspc_left = cspcs.get_opt(name).await.map_err(|e| e.to_string())?.is_some();
            let zpools: Vec<usize> = (1..=stack().nodes.len())
                .filter(|n| has_zpool(*n, &pool))
                .collect();
            let mut claimed = Vec::new();
            for (n, d) in disks {
                let b = bds.get(&bd(*n, *d)).await.map_err(|e| e.to_string())?;
                if b.status.claim_state != "Unclaimed" || b.spec.claim_ref.is_some() {
                    claimed.push(bd(*n, *d));
                }
            }
            if left_cspis + left_deploys + left_bdcs == 0
                && !cspc_left
                && zpools.is_empty()
                && claimed.is_empty()
            {
                Ok(())
            } else {
                Err(format!(
                    "cspis {left_cspis}, deployments {left_deploys}, bdcs {left_bdcs}, cspc left {cspc_left}, zpool on nodes {zpools:?}, still claimed {claimed:?}"
                ))
            }
        },
    )
    .await
}

/// Waits until every listed disk's BlockDevice is registered, Active and Unclaimed.
pub async fn wait_disks_free(client: &Client, disks: &[(usize, usize)]) {
    let bds: Api<BlockDevice> = Api::namespaced(client.clone(), NS);
    wait_for(
        "disks registered and free",
        Duration::from_secs(60),
        || async {
            let mut bad = BTreeMap::new();
            for (n, d) in disks {
                match bds.get_opt(&bd(*n, *d)).await.map_err(|e| e.to_string())? {
                    Some(b)
                        if b.status.state == "Active" && b.status.claim_state == "Unclaimed" => {}
                    Some(b) => {
                        bad.insert(
                            bd(*n, *d),
                            format!("{}/{}", b.status.state, b.status.claim_state),
                        );
                    }
                    None => {
                        bad.insert(bd(*n, *d), "missing".into());
                    }
                }
            }
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!("{bad:?}"))
            }
        },
    )
    .await
}

/// The condition `type_` of a CSPI, if set.
pub fn condition<'a>(
    cspi: &'a CStorPoolInstance,
    type_: &str,
) -> Option<&'a cstor_api::common::PoolCondition> {
    cspi.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

/// Bytes of a quantity written by the pool-manager.
pub fn bytes(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> u64 {
    let s = q.0.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: u64 = num.parse().unwrap_or_else(|_| panic!("quantity {s}"));
    let shift = match suffix {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        "Ti" => 40,
        other => panic!("unexpected quantity suffix {other:?} in {s}"),
    };
    n << shift
}
