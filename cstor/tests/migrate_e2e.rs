//! SPC → CSPC migration on the local stack, with an SPC-era installation made for real: a
//! zfs-fuse pool `cstor-<CSP UID>` on each node's sparse disks holding a replica dataset of
//! known (seeded) data, and the SPC / CSP / BDC / old CVR objects and the old pool Deployment
//! and pod as the Go operators left them. The test plays the kubelet for the old pods: when a
//! migration scales an old pool Deployment to 0, its pod object goes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{NS, admin, bd, cspis_of, node, stack, wait_for, zpool_of};
use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_api::keys::{annotations, finalizers, labels};
use cstor_api::openebs_v1alpha1::{
    BlockDeviceClaim, CStorPool, LegacyCStorVolumeReplica, MigrationTask, StoragePoolClaim,
};
use cstor_local::components;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// A small seeded generator (xorshift64*): the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock(what: &str) -> Rng {
        let seed = std::env::var("CSTOR_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{what}: seed {seed} (replay with CSTOR_TEST_SEED={seed})");
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// The lun of an old volume replica: `size` bytes, MiB `i` filled with `pattern[i]` (seeded),
/// the rest zero.
struct OldLun {
    size: u64,
    pattern: Vec<u8>,
}

impl OldLun {
    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.size as usize];
        for (i, b) in self.pattern.iter().enumerate() {
            out[i << 20..(i + 1) << 20].fill(*b);
        }
        out
    }
}

/// One old pool: a CSP on `node` with `groups` of disk numbers.
struct OldCsp {
    name: String,
    uid: String,
    node: usize,
}

/// What an SPC-era installation left for one SPC.
struct OldInstall {
    spc: String,
    pv: String,
    csps: Vec<OldCsp>,
    /// sha256 of the replica's data on each node.
    sums: BTreeMap<usize, String>,
}

fn host(n: usize) -> String {
    format!("cstor-node-{n}")
}

fn sha256(n: usize, path: &str) -> String {
    let out = node(n)
        .command("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(
        out.status.success(),
        "sha256sum {path} on node {n}: {out:?}"
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn mountpoint(n: usize, spc: &str, pv: &str) -> String {
    node(n)
        .dir
        .join("old-replicas")
        .join(spc)
        .join(pv)
        .to_string_lossy()
        .into_owned()
}

/// Makes SPC `spc` of `kind` (`striped` / `mirrored`) as maya did: per `(node, groups)` one CSP
/// and its zpool `cstor-<CSP UID>` (with a replica dataset of seeded data), its claims bound,
/// its pool Deployment and pod, and an old volume replica. `manual` lists the BDs in the SPC;
/// otherwise it is an auto SPC with maxPools. `old_lun`: the replica's data (else 3 MiB seeded).
#[allow(clippy::too_many_arguments)] // each is one fact of the old installation
async fn make_old_install(
    client: &Client,
    rng: &mut Rng,
    spc: &str,
    kind: &str,
    layout: &[(usize, Vec<Vec<usize>>)],
    manual: bool,
    ro_threshold: i64,
    old_lun: Option<&OldLun>,
) -> OldInstall {
    let pv = format!("pvc-{spc}");
    let bd_names: Vec<String> = layout
        .iter()
        .flat_map(|(n, groups)| groups.iter().flatten().map(move |d| bd(*n, *d)))
        .collect();
    let bds: Api<cstor_api::openebs_v1alpha1::BlockDevice> = Api::namespaced(client.clone(), NS);
    let mut bd_uids = BTreeMap::new();
    for name in &bd_names {
        let found = wait_for(
            &format!("BlockDevice {name}"),
            Duration::from_secs(60),
            || async {
                bds.get_opt(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "not yet".to_string())
            },
        )
        .await;
        bd_uids.insert(name.clone(), found.uid().unwrap_or_default());
    }
    let spcs: Api<StoragePoolClaim> = Api::all(client.clone());
    let spc_obj: StoragePoolClaim = serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "StoragePoolClaim",
        "metadata": {"name": spc, "finalizers": [finalizers::SPC],
                     "annotations": {"cas.openebs.io/config": ""}},
        "spec": {"name": spc, "type": "disk",
                 "maxPools": if manual { Value::Null } else { json!(layout.len()) },
                 "blockDevices": {"blockDeviceList": if manual { json!(bd_names) } else { Value::Null }},
                 "poolSpec": {"poolType": kind, "cacheFile": "", "overProvisioning": false,
                              "thickProvisioning": false, "roThresholdLimit": ro_threshold}},
    }))
    .expect("spc");
    let spc_obj = spcs
        .create(&PostParams::default(), &spc_obj)
        .await
        .expect("create SPC");
    let spc_uid = spc_obj.uid().unwrap_or_default();
    let spc_owner = json!({"apiVersion": "openebs.io/v1alpha1", "kind": "StoragePoolClaim",
                           "name": spc, "uid": spc_uid, "controller": true, "blockOwnerDeletion": true});

    let csps_api: Api<CStorPool> = Api::all(client.clone());
    let mut csps = Vec::new();
    let mut sums = BTreeMap::new();
    for (i, (n, groups)) in layout.iter().enumerate() {
        let csp_name = format!("{spc}-{}", ["x7kq", "m2bz", "p9dw"][i % 3]);
        let csp: CStorPool = serde_json::from_value(json!({
            "apiVersion": "openebs.io/v1alpha1", "kind": "CStorPool",
            "metadata": {"name": csp_name,
                         "labels": {labels::STORAGE_POOL_CLAIM: spc, labels::HOSTNAME: host(*n),
                                    "openebs.io/cas-type": "cstor", "openebs.io/version": "2.12.0"},
                         "ownerReferences": [spc_owner],
                         "finalizers": ["openebs.io/storagepoolclaim-protection"]},
            "spec": {"group": groups.iter().map(|g| json!({"blockDevice": g.iter().map(|d| json!({
                        "name": bd(*n, *d), "deviceID": node(*n).disk(*d).to_string_lossy(), "inUseByPool": true
                     })).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                     "poolSpec": {"poolType": kind, "cacheFile": "", "overProvisioning": false,
                                  "thickProvisioning": false, "roThresholdLimit": ro_threshold}},
            "status": {"phase": "Healthy"},
        }))
        .expect("csp");
        let csp = csps_api
            .create(&PostParams::default(), &csp)
            .await
            .expect("create CSP");
        let uid = csp.uid().unwrap_or_default();
        let csp_owner = json!({"apiVersion": "openebs.io/v1alpha1", "kind": "CStorPool",
                               "name": csp_name, "uid": uid, "controller": true, "blockOwnerDeletion": true});
        let mut objects = Vec::new();
        for d in groups.iter().flatten() {
            let name = bd(*n, *d);
            objects.push(json!({
                "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
                "metadata": {"name": format!("bdc-{}", bd_uids[&name]), "namespace": NS,
                             "labels": {labels::STORAGE_POOL_CLAIM: spc},
                             "ownerReferences": [spc_owner], "finalizers": [finalizers::SPC]},
                "spec": {"blockDeviceName": name, "hostName": host(*n),
                         "resources": {"requests": {"storage": "256Mi"}}},
            }));
        }
        objects.push(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": csp_name, "namespace": NS,
                         "labels": {labels::CSTOR_POOL: csp_name, "app": "cstor-pool"},
                         "ownerReferences": [csp_owner]},
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                     "selector": {"matchLabels": {"app": "cstor-pool", labels::CSTOR_POOL: csp_name}},
                     "template": {"metadata": {"labels": {"app": "cstor-pool", labels::CSTOR_POOL: csp_name}},
                                  "spec": {"nodeSelector": {labels::HOSTNAME: host(*n)},
                                           "containers": [
                                             {"name": "cstor-pool", "image": "openebs/cstor-pool:2.12.0",
                                              "resources": {"limits": {"memory": "2Gi"}}},
                                             {"name": "cstor-pool-mgmt", "image": "openebs/cstor-pool-mgmt:2.12.0"}]}}},
        }));
        objects.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{csp_name}-6d9f8-abcde"), "namespace": NS,
                         "labels": {"app": "cstor-pool", labels::CSTOR_POOL: csp_name}},
            "spec": {"nodeName": host(*n), "automountServiceAccountToken": false,
                     "containers": [{"name": "cstor-pool", "image": "openebs/cstor-pool:2.12.0"}]},
        }));
        objects.push(json!({
            "apiVersion": "openebs.io/v1alpha1", "kind": "CStorVolumeReplica",
            "metadata": {"name": format!("{pv}-{csp_name}"), "namespace": NS,
                         "labels": {labels::CSP_NAME: csp_name, labels::CSP_UID: uid,
                                    labels::PERSISTENT_VOLUME: pv, "cstorvolume.openebs.io/name": pv},
                         "annotations": {annotations::CSP_HOSTNAME: host(*n)},
                         "finalizers": [finalizers::CVR]},
            "spec": {"targetIP": "10.0.0.1", "capacity": "64Mi", "replicaid": format!("R{i}")},
        }));
        components::apply(client, &objects)
            .await
            .expect("SPC-era objects");

        // The pool as the old pool pod made it, with one replica dataset of known data.
        let pool = format!("cstor-{uid}");
        let mut argv = vec!["create".to_string(), "-f".into(), pool.clone()];
        for g in groups {
            if kind == "mirrored" {
                argv.push("mirror".into());
            }
            argv.extend(
                g.iter()
                    .map(|d| node(*n).disk(*d).to_string_lossy().into_owned()),
            );
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        node(*n).zpool(&argv).expect("zpool create of the old pool");
        // Mounted where the old pool pod had it, not where our pool-manager keeps replicas: a
        // migrated volume's replica is adopted where it is.
        let mp = mountpoint(*n, spc, &pv);
        node(*n)
            .zfs(&[
                "create",
                "-o",
                &format!("mountpoint={mp}"),
                &format!("{pool}/{pv}"),
            ])
            .expect("old replica dataset");
        let data = match old_lun {
            Some(l) => l.bytes(),
            None => rng.bytes(3 << 20),
        };
        let lun = format!("{mp}/lun");
        let mut child = node(*n)
            .command("sh")
            .args(["-c", &format!("cat > {lun} && sync")])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("write lun");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(&data).expect("write data");
        }
        assert!(child.wait().expect("wait").success(), "writing {lun}");
        sums.insert(*n, sha256(*n, &lun));
        csps.push(OldCsp {
            name: csp_name,
            uid,
            node: *n,
        });
    }
    // Claim binding (ours, as NDM's) binds the old claims.
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);
    wait_for("old claims Bound", Duration::from_secs(60), || async {
        let list = bdcs
            .list(&ListParams::default().labels(&format!("{}={spc}", labels::STORAGE_POOL_CLAIM)))
            .await
            .map_err(|e| e.to_string())?
            .items;
        let bound = list.iter().filter(|c| c.status.phase == "Bound").count();
        if bound == bd_names.len() {
            Ok(())
        } else {
            Err(format!("{bound} of {} Bound", bd_names.len()))
        }
    })
    .await;
    OldInstall {
        spc: spc.into(),
        pv,
        csps,
        sums,
    }
}

/// Plays the kubelet for the old pool pods: a pod whose Deployment is scaled to 0 goes.
fn old_kubelet(client: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client, NS);
        loop {
            if let Ok(list) = deployments
                .list(&ListParams::default().labels(labels::CSTOR_POOL))
                .await
            {
                for d in list.items {
                    if d.spec.replicas != Some(0) {
                        continue;
                    }
                    let csp = d
                        .labels()
                        .get(labels::CSTOR_POOL)
                        .cloned()
                        .unwrap_or_default();
                    let sel = format!("{}={csp}", labels::CSTOR_POOL);
                    let _ = pods
                        .delete_collection(
                            &DeleteParams::default().grace_period(0),
                            &ListParams::default().labels(&sel),
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

fn task_name(spc: &str) -> String {
    format!("migrate-cstor-pool-{spc}")
}

async fn start_task(client: &Client, spc: &str, rename: Option<&str>) {
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    let mut pool = json!({"spcName": spc});
    if let Some(r) = rename {
        pool["rename"] = json!(r);
    }
    let task: MigrationTask = serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "MigrationTask",
        "metadata": {"name": task_name(spc), "namespace": NS},
        "spec": {"cstorPool": pool},
    }))
    .expect("task");
    tasks
        .create(&PostParams::default(), &task)
        .await
        .expect("create MigrationTask");
}

fn steps_of(task: &MigrationTask) -> String {
    task.status
        .migration_detailed_statuses
        .iter()
        .map(|s| format!("[{} {} {} {}]", s.step, s.phase, s.reason, s.message))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until the task ends; returns it (phase Success or Error).
async fn wait_ended(client: &Client, spc: &str, within: Duration) -> MigrationTask {
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    let name = task_name(spc);
    wait_for(&format!("MigrationTask {name} to end"), within, || async {
        let t = tasks.get(&name).await.map_err(|e| e.to_string())?;
        match t.status.phase.as_str() {
            "Success" | "Error" => Ok(t),
            _ => Err(format!(
                "phase {:?}; steps {}",
                t.status.phase,
                steps_of(&t)
            )),
        }
    })
    .await
}

/// Everything a finished pool migration must show.
async fn verify_migrated(
    client: &Client,
    old: &OldInstall,
    cspc_name: &str,
    bdc_uids: &BTreeMap<String, String>,
) {
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    let cspc = cspcs.get(cspc_name).await.expect("the CSPC");
    assert_eq!(
        cspc.annotations().get(annotations::MIGRATED_FROM),
        Some(&old.spc),
        "migrated-from annotation"
    );
    assert!(
        !cspc
            .annotations()
            .contains_key(annotations::RECONCILE_DISABLE_DEPENDANTS),
        "disable-dependants is removed"
    );
    let pool = zpool_of(client, cspc_name).await;
    let cspis = common::wait_online(client, cspc_name, old.csps.len()).await;
    for csp in &old.csps {
        let n = csp.node;
        assert!(common::has_zpool(n, &pool), "node {n} has {pool}");
        assert!(
            !common::has_zpool(n, &format!("cstor-{}", csp.uid)),
            "the old name is gone on node {n}"
        );
        let mp = node(n)
            .zfs(&[
                "get",
                "-H",
                "-o",
                "value",
                "mountpoint",
                &format!("{pool}/{}", old.pv),
            ])
            .expect("the replica dataset followed the rename");
        let lun = format!("{}/lun", mp.trim());
        assert_eq!(sha256(n, &lun), old.sums[&n], "data of node {n} unchanged");
        let cspi = cspis
            .iter()
            .find(|c| c.spec.host_name == host(n))
            .expect("a CSPI on the node");
        let cvrs: Api<LegacyCStorVolumeReplica> = Api::namespaced(client.clone(), NS);
        let cvr = cvrs
            .get(&format!("{}-{}", old.pv, csp.name))
            .await
            .expect("old CVR kept");
        assert_eq!(cvr.labels().get(labels::CSPI_NAME), Some(&cspi.name_any()));
        assert_eq!(cvr.labels().get(labels::CSPI_UID), cspi.uid().as_ref());
        assert!(!cvr.labels().contains_key(labels::CSP_NAME));
        assert_eq!(
            cvr.annotations().get(annotations::CSPI_HOSTNAME),
            Some(&host(n))
        );
    }
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);
    for (name, uid) in bdc_uids {
        let c = bdcs.get(name).await.expect("claim kept");
        assert_eq!(
            c.uid().as_ref(),
            Some(uid),
            "claim {name} is the same object"
        );
        assert_eq!(
            c.labels()
                .get(labels::CSTOR_POOL_CLUSTER)
                .map(String::as_str),
            Some(cspc_name)
        );
        assert!(!c.labels().contains_key(labels::STORAGE_POOL_CLAIM));
        assert!(
            c.finalizers().iter().any(|f| f == finalizers::CSPC),
            "{:?}",
            c.finalizers()
        );
        assert!(
            !c.finalizers().iter().any(|f| f == finalizers::SPC),
            "{:?}",
            c.finalizers()
        );
        let owner = c.owner_references().first().expect("an owner");
        assert_eq!(
            (owner.kind.as_str(), Some(&owner.uid)),
            ("CStorPoolCluster", cspc.uid().as_ref())
        );
        assert_eq!(c.status.phase, "Bound");
    }
    let spcs: Api<StoragePoolClaim> = Api::all(client.clone());
    assert!(
        spcs.get_opt(&old.spc).await.expect("get spc").is_none(),
        "SPC gone"
    );
    let csps: Api<CStorPool> = Api::all(client.clone());
    for csp in &old.csps {
        assert!(
            csps.get_opt(&csp.name).await.expect("get csp").is_none(),
            "CSP {} gone",
            csp.name
        );
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
        assert!(
            deployments
                .get_opt(&csp.name)
                .await
                .expect("get deployment")
                .is_none(),
            "old pool Deployment {} gone",
            csp.name
        );
    }
}

async fn claim_uids(client: &Client, spc: &str) -> BTreeMap<String, String> {
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);
    bdcs.list(&ListParams::default().labels(&format!("{}={spc}", labels::STORAGE_POOL_CLAIM)))
        .await
        .expect("claims")
        .items
        .into_iter()
        .map(|c| (c.name_any(), c.uid().unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_striped_and_a_mirrored_spc_migrate_with_their_data() {
    stack();
    let client = admin().await;
    let mut rng = Rng::from_env_or_clock("replica data");
    let kubelet = old_kubelet(client.clone());
    // Striped, auto (maxPools), an old-style CSP with one group per disk, roThresholdLimit 0.
    let striped = make_old_install(
        &client,
        &mut rng,
        "sparse-claim-auto",
        "striped",
        &[(1, vec![vec![1], vec![2]]), (2, vec![vec![1], vec![2]])],
        false,
        0,
        None,
    )
    .await;
    // Mirrored, manual (a BD list), renamed.
    let mirrored = make_old_install(
        &client,
        &mut rng,
        "mirror-claim",
        "mirrored",
        &[
            (1, vec![vec![3, 4]]),
            (2, vec![vec![3, 4]]),
            (3, vec![vec![3, 4]]),
        ],
        true,
        80,
        None,
    )
    .await;
    // The old operators' backup records of a striped pool (their CRDs as maya installed them).
    let old_crd = |plural: &str, kind: &str| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.openebs.io")},
            "spec": {"group": "openebs.io", "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                     "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
        })
    };
    components::apply(
        &client,
        &[
            old_crd("cstorbackups", "CStorBackup"),
            old_crd("cstorrestores", "CStorRestore"),
            old_crd("cstorcompletedbackups", "CStorCompletedBackup"),
        ],
    )
    .await
    .expect("old backup CRDs");
    let csp_uid = striped.csps[0].uid.clone();
    let on_csp = json!({labels::CSP_UID: csp_uid, "openebs.io/persistent-volume": "pvc-b"});
    let records = vec![
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "CStorBackup",
               "metadata": {"name": "nightly-pvc-b", "namespace": NS, "labels": on_csp},
               "spec": {"backupName": "nightly", "volumeName": "pvc-b", "snapName": "s2", "prevSnapName": "s1",
                        "backupDest": "10.0.0.9:9000", "localSnap": false},
               "status": "Done"}),
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "CStorRestore",
               "metadata": {"name": "nightly-pvc-b-restore", "namespace": NS, "labels": on_csp},
               "spec": {"restoreName": "nightly", "volumeName": "pvc-b", "restoreSrc": "10.0.0.9:9000",
                        "maxretrycount": 3, "retrycount": 1, "localRestore": false},
               "status": "Done"}),
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "CStorCompletedBackup",
               "metadata": {"name": "nightly-pvc-b", "namespace": NS, "labels": on_csp},
               "spec": {"backupName": "nightly", "volumeName": "pvc-b", "prevSnapName": "s2", "snapName": "s1"}}),
    ];
    wait_for(
        "old backup records made",
        Duration::from_secs(30),
        || async {
            components::apply(&client, &records)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let striped_claims = claim_uids(&client, &striped.spc).await;
    let mirrored_claims = claim_uids(&client, &mirrored.spc).await;
    let started = std::time::Instant::now();
    start_task(&client, &striped.spc, None).await;
    // A second task for an SPC that is being migrated is refused by the webhook.
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    let mut again: MigrationTask = serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "MigrationTask",
        "metadata": {"name": "again", "namespace": NS},
        "spec": {"cstorPool": {"spcName": striped.spc}},
    }))
    .expect("task");
    let refused = tasks
        .create(&PostParams::default(), &again)
        .await
        .expect_err("a second running task is refused");
    assert!(
        refused.to_string().contains(&format!(
            "MigrationTask {} is already migrating spc {}; wait for it to end or delete it",
            task_name(&striped.spc),
            striped.spc
        )),
        "{refused}"
    );
    // The mirrored one through the CLI, as a user would, printing each step.
    let cli = std::thread::spawn(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cstor"))
            .args([
                "migrate",
                "spc",
                "mirror-claim",
                "--cspc-name",
                "mirror-pool",
            ])
            .env(
                "KUBECONFIG",
                cstor_local::testing::control_plane().kubeconfig(),
            )
            .output()
            .expect("cstor migrate spc")
    });
    let a = wait_ended(&client, &striped.spc, Duration::from_secs(300)).await;
    let out = cli.join().expect("cli thread");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("cstor migrate spc mirror-claim:\n{printed}");
    assert!(out.status.success(), "{out:?}");
    assert!(
        printed.contains("[Completed] Create CStorPoolCluster"),
        "{printed}"
    );
    assert!(
        printed.ends_with("spc mirror-claim migrated\n"),
        "{printed}"
    );
    // Once a task has ended, another for the same SPC may be made (it finds the work done).
    again.metadata.name = Some("again-later".into());
    tasks
        .create(&PostParams::default(), &again)
        .await
        .expect("a task after the first ended");
    wait_for(
        "the later task finds the work done",
        Duration::from_secs(60),
        || async {
            let t = tasks.get("again-later").await.map_err(|e| e.to_string())?;
            if t.status.phase == "Success" {
                Ok(())
            } else {
                Err(steps_of(&t))
            }
        },
    )
    .await;
    let b = wait_ended(&client, &mirrored.spc, Duration::from_secs(300)).await;
    eprintln!(
        "both migrations ended after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(a.status.phase, "Success", "striped: {}", steps_of(&a));
    assert_eq!(b.status.phase, "Success", "mirrored: {}", steps_of(&b));
    for t in [&a, &b] {
        assert!(
            t.status
                .migration_detailed_statuses
                .iter()
                .all(|s| s.phase == "Completed" && s.is_valid()),
            "every step Completed: {}",
            steps_of(t)
        );
        assert!(t.status.completed_time.is_some());
    }
    // roThresholdLimit 0 (off for the old pool manager) became 85, and the step says so.
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    let cspc = cspcs.get(&striped.spc).await.expect("striped CSPC");
    assert_eq!(cspc.spec.pools.len(), 2);
    for p in &cspc.spec.pools {
        assert_eq!(p.data_raid_groups.len(), 1, "a stripe is one group");
        assert_eq!(p.data_raid_groups[0].block_devices.len(), 2);
        let config = p.pool_config.as_ref().expect("poolConfig");
        assert_eq!(config.data_raid_group_type, "stripe");
        assert_eq!(config.ro_threshold_limit, Some(85));
    }
    assert!(
        steps_of(&a).contains("roThresholdLimit 0"),
        "the change is noted: {}",
        steps_of(&a)
    );
    let cspc = cspcs.get("mirror-pool").await.expect("mirrored CSPC");
    assert_eq!(cspc.spec.pools.len(), 3);
    assert!(cspc.spec.pools.iter().all(|p| {
        p.pool_config
            .as_ref()
            .is_some_and(|c| c.data_raid_group_type == "mirror" && c.ro_threshold_limit == Some(80))
    }));
    verify_migrated(&client, &striped, &striped.spc, &striped_claims).await;
    // The backup records moved to the new pool instance on that node, as v1 objects.
    let node_of = striped.csps[0].node;
    let cspi = cspis_of(&client, &striped.spc)
        .await
        .into_iter()
        .find(|c| c.spec.host_name == host(node_of))
        .expect("cspi");
    let backups: Api<cstor_api::cstor_v1::CStorBackup> = Api::namespaced(client.clone(), NS);
    let b = backups.get("nightly-pvc-b").await.expect("v1 backup");
    assert_eq!(b.labels().get(labels::CSPI_NAME), Some(&cspi.name_any()));
    assert_eq!(b.labels().get(labels::CSPI_UID), cspi.uid().as_ref());
    assert!(!b.labels().contains_key(labels::CSP_UID));
    assert_eq!(
        (
            b.spec.snap_name.as_str(),
            b.spec.prev_snap_name.as_str(),
            b.status.as_str()
        ),
        ("s2", "s1", "Done")
    );
    let restores: Api<cstor_api::cstor_v1::CStorRestore> = Api::namespaced(client.clone(), NS);
    let r = restores
        .get("nightly-pvc-b-restore")
        .await
        .expect("v1 restore");
    assert_eq!(
        (
            r.spec.max_retry_count,
            r.spec.retry_count,
            r.status.as_str()
        ),
        (Some(3), Some(1), "Done")
    );
    let completed: Api<cstor_api::cstor_v1::CStorCompletedBackup> =
        Api::namespaced(client.clone(), NS);
    let c = completed
        .get("nightly-pvc-b")
        .await
        .expect("v1 completed backup");
    assert_eq!(
        (
            c.spec.last_snap_name.as_str(),
            c.spec.second_last_snap_name.as_str()
        ),
        ("s2", "s1")
    );
    for plural in ["cstorbackups", "cstorrestores", "cstorcompletedbackups"] {
        let (ok, out) = common::kubectl(
            &[
                "get",
                &format!("{plural}.v1alpha1.openebs.io"),
                "-o",
                "name",
            ],
            None,
        );
        assert!(ok && out.trim().is_empty(), "old {plural} left: {out}");
    }
    verify_migrated(&client, &mirrored, "mirror-pool", &mirrored_claims).await;

    // A finished task changes nothing when looked at again.
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    let before = tasks.get(&task_name(&striped.spc)).await.expect("task");
    let cspis_before: Vec<(String, Option<String>)> = cspis_of(&client, &striped.spc)
        .await
        .iter()
        .map(|c| (c.name_any(), c.resource_version()))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = tasks.get(&task_name(&striped.spc)).await.expect("task");
    assert_eq!(before.status, after.status, "a finished task is left alone");
    assert_eq!(
        cspis_before.len(),
        cspis_of(&client, &striped.spc).await.len()
    );
    kubelet.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_end_in_errored_with_the_reason_and_leave_the_old_pool_importable() {
    stack();
    let client = admin().await;
    let mut rng = Rng::from_env_or_clock("replica data");
    let kubelet = old_kubelet(client.clone());

    // A BD the CSP names is on another node: refused before anything changes.
    let wrong = make_old_install(
        &client,
        &mut rng,
        "wrong-node",
        "striped",
        &[(1, vec![vec![5]])],
        false,
        85,
        None,
    )
    .await;
    let csps: Api<CStorPool> = Api::all(client.clone());
    let csp = &wrong.csps[0].name;
    let mut obj = csps.get(csp).await.expect("csp");
    obj.spec.group[0].block_device[0].name = bd(2, 5);
    csps.replace(csp, &PostParams::default(), &obj)
        .await
        .expect("edit CSP");
    start_task(&client, &wrong.spc, None).await;
    let t = wait_ended(&client, &wrong.spc, Duration::from_secs(60)).await;
    assert_eq!(t.status.phase, "Error", "{}", steps_of(&t));
    let last = t.status.migration_detailed_statuses.last().expect("a step");
    assert_eq!(
        (
            last.step.as_str(),
            last.phase.as_str(),
            last.reason.as_str()
        ),
        ("Pre-migration", "Errored", "ValidationFailed")
    );
    assert!(
        last.message.contains(&format!(
            "blockdevice {} of csp {csp} is on node \"cstor-node-2\", not \"cstor-node-1\"",
            bd(2, 5)
        )),
        "{}",
        last.message
    );
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    assert!(
        cspcs.get_opt(&wrong.spc).await.expect("get").is_none(),
        "no CSPC made"
    );
    assert!(
        common::has_zpool(1, &format!("cstor-{}", wrong.csps[0].uid)),
        "old pool untouched"
    );

    // The old pool is not on the node's disks: the import fails and nothing is created.
    let missing = make_old_install(
        &client,
        &mut rng,
        "lost-pool",
        "striped",
        &[(3, vec![vec![6]])],
        false,
        85,
        None,
    )
    .await;
    let old_pool = format!("cstor-{}", missing.csps[0].uid);
    // The disk is wiped: the pool is exported and the disk file emptied (labels gone).
    wait_for("the old pool exported", Duration::from_secs(30), || async {
        node(3).zpool(&["export", "-f", &old_pool]).map(|_| ())
    })
    .await;
    let disk = node(3).disk(6);
    let len = std::fs::metadata(&disk).expect("disk").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .expect("open disk");
    f.set_len(0).expect("wipe");
    f.set_len(len).expect("resize");
    drop(f);
    start_task(&client, &missing.spc, None).await;
    let t = wait_ended(&client, &missing.spc, Duration::from_secs(120)).await;
    assert_eq!(t.status.phase, "Error", "{}", steps_of(&t));
    let last = t.status.migration_detailed_statuses.last().expect("a step");
    assert_eq!(last.reason, "ImportFailed", "{}", steps_of(&t));
    assert!(last.message.contains(&old_pool), "{}", last.message);
    let new_pool = zpool_of(&client, &missing.spc).await;
    assert!(
        !common::has_zpool(3, &new_pool),
        "no empty pool was created over the disks"
    );
    let events = common::kubectl(
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={}", task_name(&missing.spc)),
        ],
        None,
    )
    .1;
    assert!(
        events.contains("MigrationFailed"),
        "an Event says so: {events}"
    );
    kubelet.abort();
}

/// The leading cspc-operator replica's pid (the Lease names its pod).
async fn leader_pid(client: &Client) -> Option<(String, u32)> {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let lease = leases.get_opt("cspc-controller-leader").await.ok()??;
    let holder = lease.spec?.holder_identity?;
    stack()
        .pods
        .pids()
        .into_iter()
        .find(|(pod, _)| *pod == holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_operator_at_each_step_resumes_and_succeeds_with_the_data() {
    stack();
    let client = admin().await;
    let mut rng = Rng::from_env_or_clock("replica data and kill delays");
    let kubelet = old_kubelet(client.clone());
    let old = make_old_install(
        &client,
        &mut rng,
        "killed-claim",
        "mirrored",
        &[(1, vec![vec![7, 8]]), (2, vec![vec![7, 8]])],
        false,
        85,
        None,
    )
    .await;
    let claims = claim_uids(&client, &old.spc).await;
    start_task(&client, &old.spc, None).await;
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    let name = task_name(&old.spc);
    let mut seen = Vec::<String>::new();
    let mut kills = Vec::<String>::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let t = tasks.get(&name).await.expect("task");
        if matches!(t.status.phase.as_str(), "Success" | "Error") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out; kills {kills:?}; steps {}",
            steps_of(&t)
        );
        let current = t
            .status
            .migration_detailed_statuses
            .last()
            .map(|s| s.step.clone());
        if let Some(step) = current
            && !seen.contains(&step)
        {
            seen.push(step.clone());
            // Somewhere inside the step, not always at its first write.
            tokio::time::sleep(Duration::from_millis(rng.next() % 400)).await;
            if let Some((pod, pid)) = leader_pid(&client).await
                && kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
            {
                kills.push(format!("{step}: killed {pod} (pid {pid})"));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("kills: {kills:#?}");
    let t = tasks.get(&name).await.expect("task");
    assert_eq!(
        t.status.phase,
        "Success",
        "kills {kills:?}; steps {}",
        steps_of(&t)
    );
    assert!(
        kills.len() >= 5,
        "the operator was killed in most steps: {kills:?}"
    );
    verify_migrated(&client, &old, &old.spc, &claims).await;
    // No orphan: one CSPI and one pool-manager Deployment per node, no stray claims.
    let cspis = cspis_of(&client, &old.spc).await;
    assert_eq!(cspis.len(), 2);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let ours = deployments
        .list(&ListParams::default().labels(&format!("{}={}", labels::CSTOR_POOL_CLUSTER, old.spc)))
        .await
        .expect("deployments")
        .items;
    assert_eq!(ours.len(), 2, "one pool-manager per CSPI");
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);
    let all = bdcs
        .list(&ListParams::default().labels(&format!("{}={}", labels::CSTOR_POOL_CLUSTER, old.spc)))
        .await
        .expect("claims")
        .items;
    assert_eq!(
        all.len(),
        claims.len(),
        "no claim made besides the migrated ones"
    );
    kubelet.abort();
}

async fn wait_task(client: &Client, name: &str, within: Duration) -> MigrationTask {
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    wait_for(&format!("MigrationTask {name} to end"), within, || async {
        let t = tasks.get(name).await.map_err(|e| e.to_string())?;
        match t.status.phase.as_str() {
            "Success" | "Error" => Ok(t),
            _ => Err(format!(
                "phase {:?}; steps {}",
                t.status.phase,
                steps_of(&t)
            )),
        }
    })
    .await
}

async fn start_volume_task(client: &Client, pv: &str) -> String {
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    let name = format!("migrate-cstor-volume-{pv}");
    let task: MigrationTask = serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "MigrationTask",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"cstorVolume": {"pvName": pv}},
    }))
    .expect("task");
    tasks
        .create(&PostParams::default(), &task)
        .await
        .expect("create MigrationTask");
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_provisioner_volume_migrates_keeping_its_names_replicas_and_data() {
    use cstor_api::cstor_v1::{CStorVolumeConfig, CStorVolumePolicy};
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use k8s_openapi::api::storage::v1::StorageClass;
    stack();
    let client = admin().await;
    let mut rng = Rng::from_env_or_clock("volume data pattern");
    let kubelet = old_kubelet(client.clone());
    let lun = OldLun {
        size: 64 << 20,
        pattern: (0..4).map(|_| (rng.next() % 255) as u8 + 1).collect(),
    };
    eprintln!("pattern of the first 4 MiB: {:?}", lun.pattern);
    // Three pools, one replica of the volume on each, written before the migration.
    let old = make_old_install(
        &client,
        &mut rng,
        "vol-claim",
        "striped",
        &[(1, vec![vec![1]]), (2, vec![vec![1]]), (3, vec![vec![1]])],
        false,
        85,
        Some(&lun),
    )
    .await;
    start_task(&client, &old.spc, None).await;
    let t = wait_ended(&client, &old.spc, Duration::from_secs(300)).await;
    assert_eq!(t.status.phase, "Success", "pool first: {}", steps_of(&t));
    let pv = old.pv.clone();

    // What the old external provisioner left: StorageClass, PV (iSCSI), claim, old volume,
    // old target, and an application pod still using the claim.
    common::kubectl(&["create", "namespace", "app"], None);
    let objects = vec![
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": "openebs-cstor-old",
                            "annotations": {"cas.openebs.io/config": "- name: StoragePoolClaim\n  value: vol-claim\n- name: ReplicaCount\n  value: \"3\"\n",
                                            "openebs.io/cas-type": "cstor"}},
               "provisioner": "openebs.io/provisioner-iscsi", "reclaimPolicy": "Delete",
               "volumeBindingMode": "Immediate"}),
        json!({"apiVersion": "v1", "kind": "PersistentVolume",
               "metadata": {"name": pv, "annotations": {"pv.kubernetes.io/provisioned-by": "openebs.io/provisioner-iscsi"},
                            "labels": {"openebs.io/cas-type": "cstor", "openebs.io/storageclass": "openebs-cstor-old"}},
               "spec": {"capacity": {"storage": "64Mi"}, "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "openebs-cstor-old",
                        "volumeMode": "Filesystem",
                        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "app", "name": "data"},
                        "iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": format!("iqn.2016-09.com.openebs.cstor:{pv}"),
                                  "lun": 0, "fsType": "ext4", "iscsiInterface": "default"}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "data", "namespace": "app",
                            "annotations": {"volume.beta.kubernetes.io/storage-provisioner": "openebs.io/provisioner-iscsi"}},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}},
                        "storageClassName": "openebs-cstor-old", "volumeName": pv}}),
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "CStorVolume",
               "metadata": {"name": pv, "namespace": NS, "labels": {labels::PERSISTENT_VOLUME: pv},
                            "annotations": {"openebs.io/fs-type": "ext4"}},
               "spec": {"capacity": "64Mi", "targetIP": "10.0.0.1", "targetPort": "3260",
                        "iqn": format!("iqn.2016-09.com.openebs.cstor:{pv}"), "targetPortal": "10.0.0.1:3260",
                        "replicationFactor": 3, "consistencyFactor": 2, "desiredReplicationFactor": 3},
               "status": {"phase": "Healthy"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": format!("{pv}-target"), "namespace": NS,
                            "labels": {"openebs.io/target": "cstor-target", labels::PERSISTENT_VOLUME: pv}},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "cstor-volume-manager", labels::PERSISTENT_VOLUME: pv}},
                        "template": {"metadata": {"labels": {"app": "cstor-volume-manager", labels::PERSISTENT_VOLUME: pv}},
                                     "spec": {"containers": [{"name": "cstor-istgt", "image": "openebs/cstor-istgt:2.12.0",
                                                              "env": [{"name": "QueueDepth", "value": "32"}, {"name": "Luworkers", "value": "6"}]}]}}}}),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "app-7f9c-xk2lp", "namespace": "app",
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "app-7f9c", "uid": "3f0c1ab2-0000-4000-8000-000000000001"}]},
               "spec": {"nodeName": host(1), "automountServiceAccountToken": false,
                        "containers": [{"name": "app", "image": "busybox"}],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}),
    ];
    components::apply(&client, &objects)
        .await
        .expect("old volume objects");
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "app");
    wait_for("the old claim Bound", Duration::from_secs(60), || async {
        let c = pvcs.get("data").await.map_err(|e| e.to_string())?;
        let phase = c.status.and_then(|s| s.phase).unwrap_or_default();
        if phase == "Bound" { Ok(()) } else { Err(phase) }
    })
    .await;

    // Refused while the application uses it, naming what to scale down; nothing changed.
    // The dry run says so first.
    let dry = std::process::Command::new(env!("CARGO_BIN_EXE_cstor"))
        .args(["migrate", "volume", &pv, "--dry-run"])
        .env(
            "KUBECONFIG",
            cstor_local::testing::control_plane().kubeconfig(),
        )
        .output()
        .expect("cstor migrate volume --dry-run");
    assert_eq!(dry.status.code(), Some(2), "{dry:?}");
    assert!(
        String::from_utf8_lossy(&dry.stderr).contains("problem (VolumeInUse): the volume"),
        "{dry:?}"
    );
    let name = start_volume_task(&client, &pv).await;
    let t = wait_task(&client, &name, Duration::from_secs(60)).await;
    assert_eq!(t.status.phase, "Error", "{}", steps_of(&t));
    let last = t.status.migration_detailed_statuses.last().expect("a step");
    assert_eq!(
        (last.step.as_str(), last.reason.as_str()),
        ("Pre-migration", "VolumeInUse")
    );
    assert_eq!(
        last.message,
        format!(
            "the volume {pv} is mounted by pod(s) in namespace app: app-7f9c-xk2lp (owned by ReplicaSet app-7f9c); scale them down (kubectl scale --replicas=0 on their owners) before migrating"
        )
    );
    let policies: Api<CStorVolumePolicy> = Api::namespaced(client.clone(), NS);
    assert!(
        policies.get_opt(&pv).await.expect("get").is_none(),
        "nothing made"
    );

    // Scaled down, but the old snapshot provisioner holds a snapshot of it: refused (the CLI
    // replaces the failed task and follows the new one).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "app");
    pods.delete("app-7f9c-xk2lp", &DeleteParams::default().grace_period(0))
        .await
        .expect("scale the app down");
    let snapshot_crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "volumesnapshots.volumesnapshot.external-storage.k8s.io",
                     // a *.k8s.io group needs it on apiextensions v1
                     "annotations": {"api-approved.kubernetes.io": "unapproved, the external-storage snapshot provisioner"}},
        "spec": {"group": "volumesnapshot.external-storage.k8s.io", "scope": "Namespaced",
                 "names": {"plural": "volumesnapshots", "singular": "volumesnapshot", "kind": "VolumeSnapshot"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    });
    components::apply(&client, &[snapshot_crd])
        .await
        .expect("old snapshot CRD");
    let snapshot = json!({
        "apiVersion": "volumesnapshot.external-storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "nightly", "namespace": "app", "labels": {"SnapshotMetadata-PVName": pv}},
        "spec": {"persistentVolumeClaimName": "data"},
    });
    wait_for("the old snapshot made", Duration::from_secs(30), || async {
        components::apply(&client, std::slice::from_ref(&snapshot))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let migrate = |pv: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cstor"))
            .args(["migrate", "volume", pv])
            .env(
                "KUBECONFIG",
                cstor_local::testing::control_plane().kubeconfig(),
            )
            .output()
            .expect("cstor migrate volume")
    };
    let pv2 = pv.clone();
    let out = tokio::task::spawn_blocking(move || migrate(&pv2))
        .await
        .expect("cli");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        printed.contains("ended in Error before; deleting it and starting again"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("[Errored] Pre-migration (NotSupported): the volume {pv} has snapshot(s) of the old snapshot provisioner (app/nightly); carrying them over is not supported: delete them, or keep the volume on the old operators")),
        "{printed}"
    );
    assert!(
        policies.get_opt(&pv).await.expect("get").is_none(),
        "nothing made"
    );

    // Snapshot deleted: the migration runs, through the CLI.
    common::kubectl(
        &[
            "delete",
            "volumesnapshots.volumesnapshot.external-storage.k8s.io",
            "nightly",
            "-n",
            "app",
        ],
        None,
    );
    let pv_uid = pvs.get(&pv).await.expect("pv").uid();
    let started = std::time::Instant::now();
    let pv2 = pv.clone();
    let out = tokio::task::spawn_blocking(move || migrate(&pv2))
        .await
        .expect("cli");
    eprintln!(
        "volume migration took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("cstor migrate volume {pv}:\n{printed}");
    assert!(out.status.success(), "{out:?}");
    assert!(
        printed.ends_with(&format!("pv {pv} migrated\n")),
        "{printed}"
    );
    let t = wait_task(&client, &name, Duration::from_secs(10)).await;
    assert_eq!(t.status.phase, "Success", "{}", steps_of(&t));
    assert!(
        t.status
            .migration_detailed_statuses
            .iter()
            .all(|s| s.phase == "Completed" && s.is_valid()),
        "{}",
        steps_of(&t)
    );

    // Same names, now the CSI driver's; the claim is Bound to the same PV name.
    let new_pv = pvs.get(&pv).await.expect("pv kept its name");
    assert_ne!(new_pv.uid(), pv_uid, "the PV was made anew");
    let spec = new_pv.spec.clone().expect("spec");
    let csi = spec.csi.expect("a CSI PV");
    assert_eq!(
        (csi.driver.as_str(), csi.volume_handle.as_str()),
        ("cstor.csi.openebs.io", pv.as_str())
    );
    assert_eq!(csi.fs_type.as_deref(), Some("ext4"));
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete"),
        "the reclaim policy it had"
    );
    wait_for("the new claim Bound", Duration::from_secs(60), || async {
        let c = pvcs.get("data").await.map_err(|e| e.to_string())?;
        let phase = c.status.clone().and_then(|s| s.phase).unwrap_or_default();
        let provisioner = c
            .annotations()
            .get("volume.beta.kubernetes.io/storage-provisioner")
            .cloned();
        if phase == "Bound" && provisioner.as_deref() == Some("cstor.csi.openebs.io") {
            Ok(())
        } else {
            Err(format!("{phase} {provisioner:?}"))
        }
    })
    .await;
    let scs: Api<StorageClass> = Api::all(client.clone());
    let sc = scs
        .get("openebs-cstor-old")
        .await
        .expect("the StorageClass kept its name");
    assert_eq!(sc.provisioner, "cstor.csi.openebs.io");
    let params = sc.parameters.clone().unwrap_or_default();
    assert_eq!(
        params.get("cstorPoolCluster").map(String::as_str),
        Some(old.spc.as_str())
    );
    assert_eq!(params.get("replicaCount").map(String::as_str), Some("3"));
    assert!(
        scs.get_opt("tmp-migrate-openebs-cstor-old")
            .await
            .expect("get")
            .is_none()
    );

    // The CVC Bound, the volume Healthy on the same three pools, the old objects gone.
    common::volumes::wait_healthy(&client, &pv, 3).await;
    let cspis = cspis_of(&client, &old.spc).await;
    let mut on: Vec<String> = common::volumes::cvrs_of(&client, &pv)
        .await
        .iter()
        .filter_map(|c| c.labels().get(labels::CSPI_NAME).cloned())
        .collect();
    on.sort();
    let mut want: Vec<String> = cspis.iter().map(|c| c.name_any()).collect();
    want.sort();
    assert_eq!(on, want, "replicas on the pools that held the data");
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), NS);
    let cvc = cvcs.get(&pv).await.expect("cvc");
    assert!(
        !cvc.annotations().contains_key(annotations::VOLUME_POLICY),
        "unpinned"
    );
    assert!(
        policies.get_opt(&pv).await.expect("get").is_none(),
        "temporary policy gone"
    );
    let old_cvrs: Api<LegacyCStorVolumeReplica> = Api::namespaced(client.clone(), NS);
    assert!(
        old_cvrs
            .list(&ListParams::default().labels(&format!("{}={pv}", labels::PERSISTENT_VOLUME)))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let old_cvs: Api<cstor_api::openebs_v1alpha1::LegacyCStorVolume> =
        Api::namespaced(client.clone(), NS);
    assert!(
        old_cvs.get_opt(&pv).await.expect("get").is_none(),
        "old CStorVolume gone"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let target = deployments
        .get(&format!("{pv}-target"))
        .await
        .expect("the new target");
    assert!(
        target
            .spec
            .template
            .spec
            .as_ref()
            .is_some_and(|p| p.containers.iter().any(|c| c
                .command
                .as_ref()
                .is_some_and(|c| c.first().map(String::as_str) == Some("cstor")))),
        "our target, not the old one"
    );

    // The data written before the migration, read through iSCSI.
    let mut cmds: Vec<String> = lun
        .pattern
        .iter()
        .enumerate()
        .map(|(i, b)| format!("read -P {b} {} 1M", i << 20))
        .collect();
    cmds.push(format!(
        "read -P 0 {} {}",
        lun.pattern.len() << 20,
        (64 << 20) - (lun.pattern.len() << 20)
    ));
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    common::volumes::qemu_io(&pv, &cmds);
    kubelet.abort();
}
