//! Taking over a Go cstor-operators 3.6.0 installation (docs/upgrades.md, "Taking over"): the
//! objects and Deployments are written exactly as the Go operators write them (golden
//! manifests in `tests/fixtures/go-install/`), the local runner plays the Go pool and volume
//! managers' images, real pools serve a volume with known data; then our operators start and
//! adopt everything: no object recreated, no pool created or imported again, every pod rolled
//! once to our template, every object at our version, the data identical through iSCSI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::volumes::*;
use common::*;
use cstor_api::common::VersionDetails;
use cstor_api::cstor_v1::{
    CStorPoolCluster, CStorPoolInstance, CStorVolume, CStorVolumeConfig, CStorVolumeReplica,
};
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim, UpgradeTask};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};

const GO: &str = "3.6.0";
const OURS: &str = cstor_runtime::version::BUILT;
const CSPC: &str = "go-pools";
const PV: &str = "pvc-5f0e7a8c-3b1d-4c2e-9a6f-7d8e9f0a1b2c";

fn fixture(name: &str, vars: &BTreeMap<&str, String>) -> Value {
    let path = format!(
        "{}/tests/fixtures/go-install/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(&path).expect("fixture");
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(
        !text.contains("{{"),
        "{name}: a placeholder is left: {}",
        text.lines().find(|l| l.contains("{{")).unwrap_or_default()
    );
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Creates `body` (its status is dropped by the apiserver) and then writes its status, as the
/// Go operators' two calls do.
async fn create<K>(api: &Api<K>, body: Value) -> K
where
    K: Resource<DynamicType = ()>
        + Clone
        + for<'de> k8s_openapi::serde::Deserialize<'de>
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let status = body.get("status").cloned();
    let obj: K = serde_json::from_value(body).expect("object");
    let made = api
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", obj.name_any()));
    if let Some(st) = status {
        match api
            .patch_status(
                &made.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": st })),
            )
            .await
        {
            Ok(_) => {}
            // A kind without a status subresource kept the status the create carried.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => panic!("status of {}: {e}", made.name_any()),
        }
    }
    made
}

fn current(d: Option<&VersionDetails>) -> String {
    d.and_then(|d| d.status.as_ref())
        .map(|s| s.current.clone())
        .unwrap_or_default()
}

async fn scale(client: &Client, name: &str, replicas: i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .expect("scale");
}

/// The pool's own record of what was run on it.
fn history(n: usize, pool: &str) -> Vec<String> {
    cstor_local::testing::current().nodes[n - 1]
        .zpool(&["history", pool])
        .map(|t| t.lines().map(String::from).collect())
        .unwrap_or_default()
}

fn guid(n: usize, pool: &str) -> String {
    // zfs-fuse's `zpool get` has no -H: `NAME PROPERTY VALUE SOURCE`, then the pool's line.
    let out = cstor_local::testing::current().nodes[n - 1]
        .zpool(&["get", "guid", pool])
        .expect("zpool get guid");
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == pool && f[1] == "guid").then(|| f[2].to_string())
        })
        .next()
        .unwrap_or_else(|| panic!("no guid in {out}"))
}

fn serves(pv: &str) -> bool {
    Command::new("qemu-io")
        .args(["-f", "raw", "-c", "read 0 4k", &url(pv)])
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            o.status.success() && text.contains("read 4096/4096")
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_installation_is_taken_over_without_recreating_anything() {
    volume_stack();
    let client = admin().await;
    let mut rng = Rng::seeded("CSTOR_TAKEOVER_SEED", "CSPI name suffixes");

    // The Go operators are what ran so far: ours are not running yet.
    scale(&client, "cstor-cspc-operator", 0).await;
    scale(&client, "cstor-cvc-operator", 0).await;
    wait_for("our operators stopped", Duration::from_secs(60), || async {
        let pods = &cstor_local::testing::current().pods;
        let n =
            pods.pids_of("cstor-cspc-operator").len() + pods.pids_of("cstor-cvc-operator").len();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} running"))
        }
    })
    .await;

    // The Go installation predates our admission webhook (which lets only our operators make
    // CSPIs, CVRs and CVs): it is put back before our operators start.
    let hooks: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let hook = hooks
        .get("openebs-cstor-validation-webhook")
        .await
        .expect("our webhook configuration");
    hooks
        .delete(&hook.name_any(), &Default::default())
        .await
        .expect("webhook configuration removed");
    // The apiserver drops it from its cache within moments: until a dry-run CSPI is admitted.
    let probe_api: Api<CStorPoolInstance> = Api::namespaced(client.clone(), NS);
    let probe: CStorPoolInstance = serde_json::from_value(json!({
        "metadata": {"name": "webhook-probe", "namespace": NS},
        "spec": {"hostName": "cstor-node-1", "nodeSelector": {}, "dataRaidGroups": []},
    }))
    .unwrap();
    wait_for(
        "our webhook out of the way",
        Duration::from_secs(60),
        || async {
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            match probe_api.create(&dry, &probe).await {
                Err(kube::Error::Api(e)) if e.message.contains("admission webhook") => {
                    Err(e.message)
                }
                _ => Ok(()),
            }
        },
    )
    .await;

    // The Go chart's operator account, which its pool and target pods run as.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "openebs-cstor-operator", "namespace": NS}}),
        )
        .unwrap(),
    )
    .await
    .expect("service account");
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    crbs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "openebs-cstor-operator"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "openebs-cstor-operator", "namespace": NS}],
        }))
        .unwrap(),
    )
    .await
    .expect("binding");

    // Pools: one disk on each of nodes 1–3, claimed as NDM would have.
    let bds: Api<BlockDevice> = Api::namespaced(client.clone(), NS);
    let mut vars: BTreeMap<&str, String> = BTreeMap::new();
    vars.insert("NAMESPACE", NS.into());
    vars.insert("CSPC", CSPC.into());
    let mut disks = Vec::new();
    for n in 1..=3 {
        let name = bd(n, 1);
        let dev = wait_for(
            &format!("BlockDevice {name}"),
            Duration::from_secs(120),
            || async {
                bds.get_opt(&name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("not yet".to_string())
            },
        )
        .await;
        disks.push(dev);
    }
    for (i, key) in ["HOST1", "HOST2", "HOST3"].iter().enumerate() {
        vars.insert(key, format!("cstor-node-{}", i + 1));
    }
    for (i, key) in ["BD1", "BD2", "BD3"].iter().enumerate() {
        vars.insert(key, disks[i].name_any());
    }
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    let cspc: CStorPoolCluster = create(&cspcs, fixture("cspc.json", &vars)).await;
    vars.insert("CSPC_UID", cspc.uid().unwrap());
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);
    let cspis: Api<CStorPoolInstance> = Api::namespaced(client.clone(), NS);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let mut cspi_names = Vec::new();
    let mut go_cspi_status = Vec::new();
    for (i, dev) in disks.iter().enumerate() {
        let mut v = vars.clone();
        let bytes = dev.spec.capacity.storage;
        v.insert("HOST", format!("cstor-node-{}", i + 1));
        v.insert("BD", dev.name_any());
        v.insert("BD_UID", dev.uid().unwrap());
        v.insert("BD_STORAGE", format!("{}G", bytes >> 30));
        v.insert("BD_DEVLINK", dev.spec.path.clone());
        let bdc: BlockDeviceClaim = create(&bdcs, fixture("bdc.json", &v)).await;
        // BlockDevices keep their status in the object (no status subresource).
        bds.patch(
            &dev.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": {"claimRef": {
                    "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
                    "name": bdc.name_any(), "namespace": NS, "uid": bdc.uid()}},
                "status": {"claimState": "Claimed"},
            })),
        )
        .await
        .expect("BD claimed");
        // `<cspc>-<4 of bcdfghjklmnpqrstvwxz2456789>`, as Go names them.
        let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
        let suffix: String = (0..4)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize] as char)
            .collect();
        let name = format!("{CSPC}-{suffix}");
        v.insert("CSPI", name.clone());
        // Its Go status (ONLINE) once its pool exists: a pool-manager finding a pool recorded
        // ONLINE but missing reports it lost rather than make an empty one.
        let mut body = fixture("cspi.json", &v);
        go_cspi_status.push((name.clone(), body["status"].take()));
        let cspi: CStorPoolInstance = create(&cspis, body).await;
        v.insert("CSPI_UID", cspi.uid().unwrap());
        let _: Deployment = create(&deployments, fixture("pool-deployment.json", &v)).await;
        cspi_names.push(name);
    }
    let zpool = format!("cstor-{}", cspc.uid().unwrap());
    for n in 1..=3 {
        wait_for(
            &format!("the Go pool on node {n}"),
            Duration::from_secs(180),
            || async {
                if has_zpool(n, &zpool) {
                    Ok(())
                } else {
                    Err("no pool yet".into())
                }
            },
        )
        .await;
    }

    for (name, status) in &go_cspi_status {
        cspis
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .expect("Go CSPI status");
    }

    // The volume: claim, Service, volume, replicas, target.
    let mut sorted = cspi_names.clone();
    sorted.sort();
    vars.insert("PV", PV.into());
    vars.insert("PVC", "data-go".into());
    vars.insert("SIZE", "1Gi".into());
    vars.insert("NODE_ID", "cstor-node-1".into());
    vars.insert("PDB", format!("{CSPC}x7k2q"));
    vars.insert("TEMPLATE_HASH", "2316426148".into());
    vars.insert("CV_UID", String::new());
    vars.insert("CV_RESOURCE_VERSION", "1".into());
    for (i, key) in ["CSPI1", "CSPI2", "CSPI3"].iter().enumerate() {
        vars.insert(key, sorted[i].clone());
    }
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), NS);
    let cvc: CStorVolumeConfig = create(&cvcs, fixture("cvc.json", &vars)).await;
    vars.insert("CVC_UID", cvc.uid().unwrap());
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let svc: Service = create(&services, fixture("target-service.json", &vars)).await;
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .expect("cluster IP");
    vars.insert("TARGET_IP", ip);
    let ids: Vec<String> = (0..3)
        .map(|i| format!("{}", 7_301_448_120_553_128_001u64 + i))
        .collect();
    let guids: Vec<String> = (0..3)
        .map(|i| format!("{}", 1_180_224_915_305_776_101u64 + i))
        .collect();
    for i in 0..3 {
        vars.insert(
            ["REPLICA_ID1", "REPLICA_ID2", "REPLICA_ID3"][i],
            ids[i].clone(),
        );
        vars.insert(
            ["ZVOL_GUID1", "ZVOL_GUID2", "ZVOL_GUID3"][i],
            guids[i].clone(),
        );
    }
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    let cv: CStorVolume = create(&cvs, fixture("cv.json", &vars)).await;
    vars.insert("CV_UID", cv.uid().unwrap());
    cvcs.patch(
        PV,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"cstorVolumeRef": {"uid": cv.uid()}}})),
    )
    .await
    .expect("cvc ref");
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(client.clone(), NS);
    for (i, name) in cspi_names.iter().enumerate() {
        let cspi = cspis.get(name).await.unwrap();
        let mut v = vars.clone();
        v.insert("CSPI", name.clone());
        v.insert("CSPI_UID", cspi.uid().unwrap());
        v.insert("HOST", format!("cstor-node-{}", i + 1));
        v.insert("REPLICA_ID", ids[i].clone());
        let _: CStorVolumeReplica = create(&cvrs, fixture("cvr.json", &v)).await;
    }
    let _: Deployment = create(&deployments, fixture("target-deployment.json", &vars)).await;
    wait_for(
        "the Go volume serving",
        Duration::from_secs(180),
        || async {
            if serves(PV) {
                Ok(())
            } else {
                Err("not serving".into())
            }
        },
    )
    .await;
    qemu_io(PV, &["write -P 0x5a 0 8M", "write -P 0xa5 512M 4M"]);

    let mut back = hook.clone();
    back.metadata = kube::core::ObjectMeta {
        name: hook.metadata.name.clone(),
        labels: hook.metadata.labels.clone(),
        annotations: hook.metadata.annotations.clone(),
        ..Default::default()
    };
    hooks
        .create(&PostParams::default(), &back)
        .await
        .expect("webhook configuration back");

    // What must not change.
    let mut uids: BTreeMap<String, Option<String>> = BTreeMap::new();
    uids.insert(format!("cspc/{CSPC}"), cspcs.get(CSPC).await.unwrap().uid());
    for c in cspis.list(&ListParams::default()).await.unwrap().items {
        uids.insert(format!("cspi/{}", c.name_any()), c.uid());
    }
    for c in bdcs.list(&ListParams::default()).await.unwrap().items {
        uids.insert(format!("bdc/{}", c.name_any()), c.uid());
    }
    for c in cvrs.list(&ListParams::default()).await.unwrap().items {
        uids.insert(format!("cvr/{}", c.name_any()), c.uid());
    }
    for d in deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        if !d.name_any().starts_with("cstor-") {
            uids.insert(format!("deployment/{}", d.name_any()), d.uid());
        }
    }
    uids.insert(format!("cvc/{PV}"), cvcs.get(PV).await.unwrap().uid());
    uids.insert(format!("cv/{PV}"), cvs.get(PV).await.unwrap().uid());
    uids.insert(
        format!("service/{PV}"),
        services.get(PV).await.unwrap().uid(),
    );
    for c in cspis.list(&ListParams::default()).await.unwrap().items {
        assert_eq!(current(c.version_details.as_ref()), GO, "{}", c.name_any());
    }
    let guids_before: Vec<String> = (1..=3).map(|n| guid(n, &zpool)).collect();
    let history_before: Vec<usize> = (1..=3)
        .map(|n| {
            let h = history(n, &zpool);
            // The record works: it holds the Go installation's own create.
            assert!(
                h.iter().any(|l| l.contains("zpool create")),
                "node {n}: zpool history {h:?}"
            );
            h.len()
        })
        .collect();

    // Our operators start: they adopt the installation by themselves.
    let started = std::time::Instant::now();
    scale(&client, "cstor-cspc-operator", 1).await;
    scale(&client, "cstor-cvc-operator", 1).await;
    let tasks: Api<UpgradeTask> = Api::namespaced(client.clone(), NS);
    for name in [
        format!("auto-upgrade-cspc-{CSPC}-{OURS}"),
        format!("auto-upgrade-volume-{PV}-{OURS}"),
    ] {
        let t = wait_for(
            &format!("{name} to end"),
            Duration::from_secs(900),
            || async {
                let t = tasks
                    .get_opt(&name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("not made yet")?;
                let said: Vec<String> = t
                    .status
                    .upgrade_detailed_statuses
                    .iter()
                    .map(|s| format!("{} {} [{}] {}", s.step, s.phase, s.reason, s.message))
                    .collect();
                match t.status.phase.as_str() {
                    "Success" | "Error" => Ok((t.status.phase.clone(), said)),
                    _ => Err(said.join("; ")),
                }
            },
        )
        .await;
        assert_eq!(t.0, "Success", "{name}: {:#?}", t.1);
    }
    eprintln!(
        "TAKEOVER FIGURES: a 3-pool CSPC and a 3-replica volume adopted in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Nothing recreated.
    for (key, uid) in &uids {
        let (kind, name) = key.split_once('/').unwrap();
        let now = match kind {
            "cspc" => cspcs.get(name).await.unwrap().uid(),
            "cspi" => cspis.get(name).await.unwrap().uid(),
            "bdc" => bdcs.get(name).await.unwrap().uid(),
            "cvr" => cvrs.get(name).await.unwrap().uid(),
            "deployment" => deployments.get(name).await.unwrap().uid(),
            "cvc" => cvcs.get(name).await.unwrap().uid(),
            "cv" => cvs.get(name).await.unwrap().uid(),
            _ => services.get(name).await.unwrap().uid(),
        };
        assert_eq!(&now, uid, "{key} was recreated");
    }
    assert_eq!(
        cspis
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(
        cvrs.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
    // No pool created or imported again: the same pools, their own history says so.
    for n in 1..=3 {
        assert_eq!(guid(n, &zpool), guids_before[n - 1], "pool on node {n}");
        let after = history(n, &zpool);
        let new: Vec<&String> = after.iter().skip(history_before[n - 1]).collect();
        eprintln!("zpool history on node {n} since the take-over: {new:?}");
        assert!(
            !new.iter()
                .any(|l| l.contains("zpool create") || l.contains("zpool import")),
            "node {n}: {new:?}"
        );
    }
    // Every object at our version, every pod ours.
    wait_for(
        "every object at our version",
        Duration::from_secs(120),
        || async {
            let mut behind = Vec::new();
            let c = cspcs.get(CSPC).await.map_err(|e| e.to_string())?;
            if current(c.version_details.as_ref()) != OURS {
                behind.push(format!("cspc {}", current(c.version_details.as_ref())));
            }
            for c in cspis
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
            {
                let phase = c
                    .status
                    .as_ref()
                    .map(|s| s.phase.clone())
                    .unwrap_or_default();
                if current(c.version_details.as_ref()) != OURS || phase != "ONLINE" {
                    behind.push(format!("cspi {} {phase}", c.name_any()));
                }
            }
            for c in cvrs
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
            {
                if current(c.version_details.as_ref()) != OURS {
                    behind.push(format!("cvr {}", c.name_any()));
                }
            }
            let cv = cvs.get(PV).await.map_err(|e| e.to_string())?;
            let phase = cv
                .status
                .as_ref()
                .map(|s| s.phase.clone())
                .unwrap_or_default();
            if current(cv.version_details.as_ref()) != OURS || phase != "Healthy" {
                behind.push(format!("cv {phase}"));
            }
            let cvc = cvcs.get(PV).await.map_err(|e| e.to_string())?;
            if current(cvc.version_details.as_ref()) != OURS {
                behind.push("cvc".into());
            }
            if behind.is_empty() {
                Ok(())
            } else {
                Err(behind.join(", "))
            }
        },
    )
    .await;
    for name in cspi_names.iter().chain([format!("{PV}-target")].iter()) {
        let d = deployments.get(name).await.unwrap();
        let spec = d.spec.template.spec.clone().unwrap();
        let ours = spec
            .containers
            .iter()
            .any(|c| c.command.as_deref() == Some(&["cstor".to_string()][..]));
        assert!(ours, "{name} still runs the Go manager");
        assert_eq!(d.metadata.generation, Some(2), "{name} rolled once");
    }
    // The data is what it was.
    qemu_io(PV, &["read -P 0x5a 0 8M", "read -P 0xa5 512M 4M"]);
}
