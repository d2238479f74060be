//! The SPC-era installation the migration tests and benchmark build for real: zfs-fuse pools
//! named `cstor-<CSP UID>` holding replica datasets of known data, and the old operators'
//! objects (SPC, CSPs, claims, pool Deployments and pods, old volume replicas, the old
//! provisioner's volume objects), plus the task helpers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{NS, Rng, bd, node, wait_for, zpool_of};
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
use serde_json::{Value, json};

/// The lun of an old volume replica: `size` bytes, MiB `i` filled with `pattern[i]` (seeded),
/// the rest zero.
pub struct OldLun {
    pub size: u64,
    pub pattern: Vec<u8>,
}

impl OldLun {
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.size as usize];
        for (i, b) in self.pattern.iter().enumerate() {
            out[i << 20..(i + 1) << 20].fill(*b);
        }
        out
    }
}

/// One old pool: a CSP on `node` with `groups` of disk numbers.
pub struct OldCsp {
    pub name: String,
    pub uid: String,
    pub node: usize,
}

/// What an SPC-era installation left for one SPC.
pub struct OldInstall {
    pub spc: String,
    pub pv: String,
    pub csps: Vec<OldCsp>,
    /// sha256 of the replica's data on each node.
    pub sums: BTreeMap<usize, String>,
}

pub fn host(n: usize) -> String {
    format!("cstor-node-{n}")
}

pub fn sha256(n: usize, path: &str) -> String {
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

pub fn mountpoint(n: usize, spc: &str, pv: &str) -> String {
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
pub async fn make_old_install(
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
pub fn old_kubelet(client: Client) -> tokio::task::JoinHandle<()> {
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

pub fn task_name(spc: &str) -> String {
    format!("migrate-cstor-pool-{spc}")
}

pub async fn start_task(client: &Client, spc: &str, rename: Option<&str>) {
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

pub fn steps_of(task: &MigrationTask) -> String {
    task.status
        .migration_detailed_statuses
        .iter()
        .map(|s| format!("[{} {} {} {}]", s.step, s.phase, s.reason, s.message))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until the task of SPC `spc` ends; returns it (phase Success or Error).
pub async fn wait_ended(client: &Client, spc: &str, within: Duration) -> MigrationTask {
    wait_task(client, &task_name(spc), within).await
}

/// Everything a finished pool migration must show.
pub async fn verify_migrated(
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
    let cspis = super::wait_online(client, cspc_name, old.csps.len()).await;
    for csp in &old.csps {
        let n = csp.node;
        assert!(super::has_zpool(n, &pool), "node {n} has {pool}");
        assert!(
            !super::has_zpool(n, &format!("cstor-{}", csp.uid)),
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

pub async fn claim_uids(client: &Client, spc: &str) -> BTreeMap<String, String> {
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);
    bdcs.list(&ListParams::default().labels(&format!("{}={spc}", labels::STORAGE_POOL_CLAIM)))
        .await
        .expect("claims")
        .items
        .into_iter()
        .map(|c| (c.name_any(), c.uid().unwrap_or_default()))
        .collect()
}

/// What the old external provisioner left for volume `pv` (its replicas are the old install's):
/// StorageClass `openebs-cstor-old`, the iSCSI PV, claim `app/data`, the old CStorVolume and
/// target Deployment, and with `app` an application pod still using the claim.
pub fn old_volume_objects(pv: &str, app: bool) -> Vec<Value> {
    let mut objects = vec![
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
    ];
    if app {
        objects.push(
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "app-7f9c-xk2lp", "namespace": "app",
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "app-7f9c", "uid": "3f0c1ab2-0000-4000-8000-000000000001"}]},
               "spec": {"nodeName": host(1), "automountServiceAccountToken": false,
                        "containers": [{"name": "app", "image": "busybox"}],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
        );
    }
    objects
}

pub async fn wait_task(client: &Client, name: &str, within: Duration) -> MigrationTask {
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

pub async fn start_volume_task(client: &Client, pv: &str) -> String {
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
