//! The I/O half of the volume path: reads what [`super::volume::decide_volume`] looks at and
//! carries out its one write.

use std::collections::BTreeMap;

use cstor_api::cstor_v1::cspi::CStorPoolInstance;
use cstor_api::cstor_v1::{CStorVolume, CStorVolumeConfig, CStorVolumePolicy, CStorVolumeReplica};
use cstor_api::keys::{annotations, finalizers, labels};
use cstor_api::openebs_v1alpha1::{LegacyCStorVolume, LegacyCStorVolumeReplica};
use cstor_runtime::errors::{ApiError, Step, is_not_found};
use cstor_runtime::finalizers::patch_metadata;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::Context;
use super::volume::{
    CSI_DRIVER, PVC_PROVISIONER, RECLAIM_BEFORE, TMP_SC_OWNER, VolumeAction, VolumeView, sc_name,
};
use crate::Error;
use crate::meta::{delete_ignore_missing, is_already_exists};

/// The fsType of the old PV, kept on the new claim until the new PV is made.
const FS_TYPE_BEFORE: &str = "cstor.openebs.io/fs-type-before-migration";

fn tmp_sc(sc: &str) -> String {
    format!("tmp-migrate-{sc}")
}

fn target_name(pv: &str) -> String {
    format!("{pv}-target")
}

/// Reads the volume path's view of PV `pv`.
pub async fn view(ctx: &Context, pv_name: &str) -> Result<VolumeView, Error> {
    let client = ctx.client.clone();
    let by_pv = ListParams::default().labels(&format!("{}={pv_name}", labels::PERSISTENT_VOLUME));
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs
        .get_opt(pv_name)
        .await
        .step("get PersistentVolume", pv_name)?;
    let claim_ref = pv
        .as_ref()
        .and_then(|p| p.spec.as_ref()?.claim_ref.clone())
        .and_then(|r| Some((r.namespace?, r.name?)));
    let pvc = match claim_ref {
        Some((ns, name)) => {
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
            pvcs.get_opt(&name)
                .await
                .step("get PersistentVolumeClaim", &name)?
        }
        None => {
            let pvcs: Api<PersistentVolumeClaim> = Api::all(client.clone());
            pvcs.list(&ListParams::default())
                .await
                .step("list PersistentVolumeClaims of", pv_name)?
                .items
                .into_iter()
                .find(|c| c.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(pv_name))
        }
    };
    let mut v = VolumeView {
        pv_name: pv_name.into(),
        namespace: ctx.namespace.clone(),
        pv,
        pvc,
        ..VolumeView::default()
    };
    if let Some(sc) = sc_name(&v) {
        let scs: Api<StorageClass> = Api::all(client.clone());
        v.sc = scs.get_opt(&sc).await.step("get StorageClass", &sc)?;
        v.tmp_sc = scs
            .get_opt(&tmp_sc(&sc))
            .await
            .step("get StorageClass", tmp_sc(&sc))?;
    }
    let old_cvs: Api<LegacyCStorVolume> = Api::all(client.clone());
    v.old_cvs = old_cvs
        .list(&by_pv)
        .await
        .step("list old CStorVolumes of", pv_name)?
        .items;
    let old_cvrs: Api<LegacyCStorVolumeReplica> = Api::all(client.clone());
    v.old_cvrs = old_cvrs
        .list(&by_pv)
        .await
        .step("list old replicas of", pv_name)?
        .items;
    let cspis = ctx.ns::<CStorPoolInstance>();
    for name in v
        .old_cvrs
        .iter()
        .filter_map(|c| c.labels().get(labels::CSPI_NAME).cloned())
        .collect::<Vec<_>>()
    {
        if let Some(cspi) = cspis.get_opt(&name).await.step("get CSPI", &name)?
            && let Some(cspc) = cspi.labels().get(labels::CSTOR_POOL_CLUSTER)
        {
            v.cspc_of_cspi.insert(name, cspc.clone());
        }
    }
    if let Some(cv) = v.old_cvs.first() {
        let ns = cv.namespace().unwrap_or_else(|| ctx.namespace.clone());
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        v.old_target = deployments
            .get_opt(&target_name(pv_name))
            .await
            .step("get old target Deployment", target_name(pv_name))?
            .is_some();
    }
    if let Some(c) = &v.pvc {
        let ns = c.namespace().unwrap_or_default();
        let claim = c.name_any();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        v.users = pods
            .list(&ListParams::default())
            .await
            .step("list pods of", &ns)?
            .items
            .into_iter()
            .filter(|p| {
                p.spec
                    .iter()
                    .flat_map(|s| s.volumes.iter().flatten())
                    .any(|vol| {
                        vol.persistent_volume_claim
                            .as_ref()
                            .is_some_and(|c| c.claim_name == claim)
                    })
            })
            .map(|p| {
                let owner = p
                    .owner_references()
                    .first()
                    .map(|o| format!(" (owned by {} {})", o.kind, o.name))
                    .unwrap_or_default();
                format!("{}{owner}", p.name_any())
            })
            .collect();
    }
    v.old_snapshots = old_snapshots(ctx, pv_name).await?;
    v.policy = ctx
        .ns::<CStorVolumePolicy>()
        .get_opt(pv_name)
        .await
        .step("get CStorVolumePolicy", pv_name)?;
    v.cvc = ctx
        .ns::<CStorVolumeConfig>()
        .get_opt(pv_name)
        .await
        .step("get CStorVolumeConfig", pv_name)?;
    v.cv = ctx
        .ns::<CStorVolume>()
        .get_opt(pv_name)
        .await
        .step("get CStorVolume", pv_name)?;
    v.cvrs = ctx
        .ns::<CStorVolumeReplica>()
        .list(&ListParams::default().labels(&format!("{}={pv_name}", labels::CSTOR_VOLUME_NAME)))
        .await
        .step("list replicas of", pv_name)?
        .items;
    Ok(v)
}

/// VolumeSnapshots of the old snapshot provisioner for `pv`; none when its CRD is absent.
async fn old_snapshots(ctx: &Context, pv: &str) -> Result<Vec<String>, Error> {
    let gvk = GroupVersionKind::gvk(
        "volumesnapshot.external-storage.k8s.io",
        "v1",
        "VolumeSnapshot",
    );
    let resource = ApiResource::from_gvk_with_plural(&gvk, "volumesnapshots");
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
    let lp = ListParams::default().labels(&format!("SnapshotMetadata-PVName={pv}"));
    match api.list(&lp).await {
        Ok(list) => Ok(list
            .items
            .iter()
            .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()))
            .collect()),
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(ApiError::new("list old VolumeSnapshots of", pv, e).into()),
    }
}

/// An object as a fresh body: no server-set metadata.
fn fresh_meta(meta: &kube::core::ObjectMeta, name: &str) -> Value {
    json!({
        "name": name,
        "labels": meta.labels.clone().unwrap_or_default(),
        "annotations": meta.annotations.clone().unwrap_or_default(),
    })
}

/// Carries out one write of the volume path.
pub(super) async fn apply(
    ctx: &Context,
    pv_name: &str,
    action: &VolumeAction,
) -> Result<Option<String>, Error> {
    let client = ctx.client.clone();
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let scs: Api<StorageClass> = Api::all(client.clone());
    let pp = PatchParams::default();
    let view = view(ctx, pv_name).await?;
    let sc = sc_name(&view).unwrap_or_default();
    match action {
        VolumeAction::CreatePolicy { pools } => {
            let mut target = json!({});
            if let Some(cv) = view.old_cvs.first() {
                let ns = cv.namespace().unwrap_or_else(|| ctx.namespace.clone());
                let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
                if let Some(d) = deployments
                    .get_opt(&target_name(pv_name))
                    .await
                    .step("get old target Deployment", target_name(pv_name))?
                    && let Some(pod) = d.spec.template.spec.as_ref()
                {
                    if let Some(t) = &pod.tolerations {
                        target["tolerations"] = json!(t);
                    }
                    if let Some(n) = &pod.node_selector {
                        target["nodeSelector"] = json!(n);
                    }
                    if let Some(p) = &pod.priority_class_name {
                        target["priorityClassName"] = json!(p);
                    }
                    let env: BTreeMap<String, String> = pod
                        .containers
                        .iter()
                        .filter(|c| c.name == "cstor-istgt")
                        .flat_map(|c| c.env.iter().flatten())
                        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                        .collect();
                    if let Some(q) = env.get("QueueDepth") {
                        target["queueDepth"] = json!(q);
                    }
                    if let Some(l) = env.get("Luworkers").and_then(|l| l.parse::<i64>().ok()) {
                        target["luWorkers"] = json!(l);
                    }
                }
            }
            let mut spec = json!({
                "replicaPoolInfo": pools.iter().map(|p| json!({"poolName": p})).collect::<Vec<_>>(),
                "target": target,
            });
            if let Some(w) = view.old_cvrs.first().map(|c| c.spec.zvol_workers.clone())
                && !w.is_empty()
            {
                spec["replica"] = json!({"zvolWorkers": w});
            }
            let policy: CStorVolumePolicy = serde_json::from_value(json!({
                "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumePolicy",
                "metadata": {"name": pv_name, "namespace": ctx.namespace,
                             "labels": {labels::PERSISTENT_VOLUME: pv_name}},
                "spec": spec,
            }))?;
            create_ignore_existing(&ctx.ns::<CStorVolumePolicy>(), &policy, pv_name).await?;
        }
        VolumeAction::RetainPv => {
            let before = view
                .pv
                .as_ref()
                .and_then(|p| p.spec.as_ref()?.persistent_volume_reclaim_policy.clone())
                .unwrap_or_else(|| "Delete".into());
            let body = json!({
                "metadata": {"annotations": {RECLAIM_BEFORE: before}},
                "spec": {"persistentVolumeReclaimPolicy": "Retain"},
            });
            pvs.patch(pv_name, &pp, &Patch::Merge(body))
                .await
                .step("retain PersistentVolume", pv_name)?;
        }
        VolumeAction::CopyStorageClass => {
            let Some(old) = &view.sc else { return Ok(None) };
            let mut meta = fresh_meta(&old.metadata, &tmp_sc(&sc));
            meta["annotations"][TMP_SC_OWNER] = json!(pv_name);
            let mut body = serde_json::to_value(old)?;
            body["metadata"] = meta;
            let copy: StorageClass = serde_json::from_value(body)?;
            create_ignore_existing(&scs, &copy, &tmp_sc(&sc)).await?;
        }
        VolumeAction::DeleteStorageClass => {
            delete_ignore_missing(&scs, &sc).await?;
        }
        VolumeAction::CreateStorageClass { cspc, replicas } => {
            let Some(tmp) = &view.tmp_sc else {
                return Ok(None);
            };
            let mut meta = fresh_meta(&tmp.metadata, &sc);
            if let Some(a) = meta["annotations"].as_object_mut() {
                a.remove(TMP_SC_OWNER);
            }
            let body = json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": meta,
                "provisioner": CSI_DRIVER,
                "allowVolumeExpansion": true,
                "parameters": {"cas-type": "cstor", "replicaCount": replicas.to_string(),
                               "cstorPoolCluster": cspc},
                "reclaimPolicy": tmp.reclaim_policy,
                "volumeBindingMode": tmp.volume_binding_mode,
                "mountOptions": tmp.mount_options,
            });
            let new: StorageClass = serde_json::from_value(body)?;
            create_ignore_existing(&scs, &new, &sc).await?;
        }
        VolumeAction::DeleteTmpStorageClass => {
            delete_ignore_missing(&scs, &tmp_sc(&sc)).await?;
        }
        VolumeAction::DeletePvc => {
            let Some(c) = &view.pvc else { return Ok(None) };
            let ns = c.namespace().unwrap_or_default();
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
            let body =
                json!({"metadata": {"annotations": {annotations::SKIP_VALIDATIONS: "true"}}});
            pvcs.patch(&c.name_any(), &pp, &Patch::Merge(body))
                .await
                .step("annotate PersistentVolumeClaim", c.name_any())?;
            delete_ignore_missing(&pvcs, &c.name_any()).await?;
        }
        VolumeAction::CreatePvc => {
            let Some(pv) = &view.pv else { return Ok(None) };
            let Some(spec) = &pv.spec else {
                return Ok(None);
            };
            let Some(r) = &spec.claim_ref else {
                return Ok(Some(format!(
                    "PersistentVolume {pv_name} names no claim; cannot recreate it"
                )));
            };
            let (ns, name) = (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            );
            let fs_type = spec
                .iscsi
                .as_ref()
                .and_then(|i| i.fs_type.clone())
                .unwrap_or_default();
            let reclaim = pv
                .annotations()
                .get(RECLAIM_BEFORE)
                .cloned()
                .unwrap_or_else(|| "Delete".into());
            let body = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": ns,
                             "annotations": {PVC_PROVISIONER: CSI_DRIVER,
                                             FS_TYPE_BEFORE: fs_type, RECLAIM_BEFORE: reclaim}},
                "spec": {"accessModes": spec.access_modes,
                         "resources": {"requests": {"storage": spec.capacity.as_ref().and_then(|c| c.get("storage"))}},
                         "storageClassName": spec.storage_class_name,
                         "volumeMode": spec.volume_mode,
                         "volumeName": pv_name},
            });
            let pvc: PersistentVolumeClaim = serde_json::from_value(body)?;
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
            create_ignore_existing(&pvcs, &pvc, &name).await?;
        }
        VolumeAction::DeletePv => {
            delete_ignore_missing(&pvs, pv_name).await?;
        }
        VolumeAction::CreatePv => {
            let Some(c) = &view.pvc else {
                return Ok(Some(format!(
                    "no claim names PersistentVolume {pv_name}; cannot recreate it"
                )));
            };
            let spec = c.spec.clone().unwrap_or_default();
            let a = c.annotations();
            let fs_type = a.get(FS_TYPE_BEFORE).cloned().unwrap_or_default();
            let reclaim = a
                .get(RECLAIM_BEFORE)
                .cloned()
                .unwrap_or_else(|| "Delete".into());
            let capacity = spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref()?.get("storage").cloned());
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            let mut csi = json!({
                "driver": CSI_DRIVER, "volumeHandle": pv_name,
                "volumeAttributes": {"openebs.io/cas-type": "cstor",
                                     "storage.kubernetes.io/csiProvisionerIdentity": format!("{stamp}-{}-{CSI_DRIVER}", stamp % 10_000)},
            });
            if !fs_type.is_empty() {
                csi["fsType"] = json!(fs_type);
            }
            let body = json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": CSI_DRIVER}},
                "spec": {"accessModes": spec.access_modes, "capacity": {"storage": capacity},
                         "storageClassName": spec.storage_class_name, "volumeMode": spec.volume_mode,
                         "persistentVolumeReclaimPolicy": reclaim,
                         "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      "name": c.name_any(), "namespace": c.namespace()},
                         "csi": csi},
            });
            let pv: PersistentVolume = serde_json::from_value(body)?;
            create_ignore_existing(&pvs, &pv, pv_name).await?;
        }
        VolumeAction::DeleteOldTarget => {
            if let Some(cv) = view.old_cvs.first() {
                let ns = cv.namespace().unwrap_or_else(|| ctx.namespace.clone());
                let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
                delete_ignore_missing(&deployments, &target_name(pv_name)).await?;
            }
        }
        VolumeAction::CreateCvc { cspc, replicas } => {
            let Some(cv) = view.old_cvs.first() else {
                return Ok(None);
            };
            let claim = view.pvc.as_ref().map(|c| c.name_any()).unwrap_or_default();
            let mut labels_map =
                BTreeMap::from([(labels::CSTOR_POOL_CLUSTER.to_string(), cspc.clone())]);
            if let Some(src) = cv.labels().get(labels::SOURCE_VOLUME) {
                labels_map.insert(labels::SOURCE_VOLUME.into(), src.clone());
            }
            let body = json!({
                "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeConfig",
                "metadata": {"name": pv_name, "namespace": ctx.namespace, "labels": labels_map,
                             "annotations": {annotations::VOLUME_ID: pv_name,
                                             annotations::VOLUME_POLICY: pv_name,
                                             annotations::PERSISTENT_VOLUME_CLAIM: claim},
                             "finalizers": [finalizers::CVC]},
                "spec": {"capacity": {"storage": cv.spec.capacity},
                         "provision": {"capacity": {"storage": cv.spec.capacity}, "replicaCount": replicas},
                         "policy": {}},
            });
            let cvc: CStorVolumeConfig = serde_json::from_value(body)?;
            create_ignore_existing(&ctx.ns::<CStorVolumeConfig>(), &cvc, pv_name).await?;
        }
        VolumeAction::DeleteOldReplica { name } => {
            let Some(old) = view.old_cvrs.iter().find(|c| c.name_any() == *name) else {
                return Ok(None);
            };
            let ns = old.namespace().unwrap_or_else(|| ctx.namespace.clone());
            let api: Api<LegacyCStorVolumeReplica> = Api::namespaced(client.clone(), &ns);
            clear_finalizers(&api, name).await?;
            delete_ignore_missing(&api, name).await?;
        }
        VolumeAction::UnpinCvc => {
            cstor_runtime::finalizers::remove_annotation(
                &ctx.ns::<CStorVolumeConfig>(),
                pv_name,
                annotations::VOLUME_POLICY,
            )
            .await?;
        }
        VolumeAction::DeleteOldVolume { namespace } => {
            let api: Api<LegacyCStorVolume> = Api::namespaced(client.clone(), namespace);
            clear_finalizers(&api, pv_name).await?;
            delete_ignore_missing(&api, pv_name).await?;
        }
        VolumeAction::DeletePolicy => {
            delete_ignore_missing(&ctx.ns::<CStorVolumePolicy>(), pv_name).await?;
        }
    }
    Ok(None)
}

async fn clear_finalizers<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    patch_metadata(api, name, |live| {
        let rv = live.meta().resource_version.clone()?;
        (!live.finalizers().is_empty()).then(|| {
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "add", "path": "/metadata/finalizers", "value": []},
            ])
        })
    })
    .await?;
    Ok(())
}

async fn create_ignore_existing<K>(api: &Api<K>, obj: &K, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(e) if is_already_exists(&e) => Ok(()),
        Err(e) => {
            let kind = K::kind(&K::DynamicType::default()).into_owned();
            Err(ApiError::new("create", format!("{kind} {name}"), e).into())
        }
    }
}
