//! The HTTP side: routes, request decoding and the answers (docs/backup-restore.md, "The REST
//! API"). Errors are plain text with the Go server's codes; successes are JSON.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use cstor_api::backup_rest::{self, BackupRequest, RestoreRequest};
use cstor_api::cstor_v1::backup::{
    CStorBackup, CStorBackupSpec, CStorCompletedBackup, CStorCompletedBackupSpec, CStorRestore,
    CStorRestoreSpec, backup_status, restore_status,
};
use cstor_api::cstor_v1::cvr::{CStorVolumeReplica, phase as cvr_phase};
use cstor_api::keys::labels;
use cstor_api::snapshot::Op;
use cstor_policy::backup::{self as rules, Refusal, ReplicaRestore};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

use super::Apis;
use crate::snapshot;

/// The routes: the plugin's five calls, and 405 `Invalid http method` for other methods.
pub fn router(apis: Apis) -> Router {
    Router::new()
        .route("/latest/backups/", any(backups))
        .route("/latest/backups/{*snap}", any(backup_delete))
        .route("/latest/restore/", any(restores))
        .with_state(Arc::new(apis))
}

/// Serves the API on `addr` until `shutdown` resolves.
pub async fn serve(
    apis: Apis,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "backup/restore REST API listening");
    axum::serve(listener, router(apis))
        .with_graceful_shutdown(shutdown)
        .await
}

fn refused(r: Refusal) -> Response {
    let code = StatusCode::from_u16(r.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, r.message).into_response()
}

fn fail(code: u16, message: String) -> Response {
    refused(Refusal { code, message })
}

fn json_ok(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The answer of a successful POST: the JSON string `""`.
fn empty_ok() -> Response {
    json_ok("\"\"".into())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

fn invalid_method() -> Response {
    fail(405, "Invalid http method".into())
}

/// The body of a POST or a GET (the plugin sends one with both), or the refusal: 405 for
/// another method, 500 with the decoder's words.
fn post_or_get<T: serde::de::DeserializeOwned>(
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, Refusal> {
    if *method != Method::POST && *method != Method::GET {
        return Err(Refusal {
            code: 405,
            message: "Invalid http method".into(),
        });
    }
    backup_rest::decode(body, content_type(headers)).map_err(|e| Refusal {
        code: 500,
        message: e.to_string(),
    })
}

async fn backups(
    State(apis): State<Arc<Apis>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: BackupRequest = match post_or_get(&method, &headers, &body) {
        Ok(r) => r,
        Err(r) => return refused(r),
    };
    if method == Method::POST {
        backup_create(&apis, req).await
    } else {
        backup_get(&apis, req).await
    }
}

/// The first Healthy replica of `volume` (the one whose pool sends the stream).
async fn healthy_replica(apis: &Apis, volume: &str) -> Result<Option<CStorVolumeReplica>, String> {
    let lp = ListParams::default().labels(&format!("{}={volume}", labels::PERSISTENT_VOLUME));
    let list = apis.cvrs().list(&lp).await.map_err(|e| e.to_string())?;
    Ok(list.items.into_iter().find(|c| {
        c.status
            .as_ref()
            .is_some_and(|s| s.phase == cvr_phase::HEALTHY)
    }))
}

fn label(obj: &impl ResourceExt, key: &str) -> String {
    obj.labels().get(key).cloned().unwrap_or_default()
}

/// POST `/latest/backups/`: everything that could refuse the backup is checked first, then
/// the snapshot, then (remote) the CStorBackup the pool-manager sends.
async fn backup_create(apis: &Apis, req: BackupRequest) -> Response {
    if let Err(r) = rules::backup_create(&req) {
        return refused(r);
    }
    let ns = req.metadata.namespace.trim().to_string();
    let spec = &req.spec;
    let (volume, snap) = (spec.volume_name.trim(), spec.snap_name.trim());
    match apis.cvs().get_opt(volume).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return fail(
                400,
                format!(
                    "Failed to create snapshot 'failed to get CStor volumeIP: CStorVolume {volume} not found'"
                ),
            );
        }
        Err(e) => return fail(400, format!("Failed to create snapshot '{e}'")),
    }
    let mut prepared = None;
    if !spec.local_snap {
        match prepare_remote(apis, &req, &ns).await {
            Ok(p) => prepared = Some(p),
            Err(r) => return refused(r),
        }
    }
    if let Err(e) = snapshot::request(
        &apis.cvs(),
        volume,
        snap,
        Op::Create,
        apis.config.snapshot_wait,
    )
    .await
    {
        return fail(400, format!("Failed to create snapshot '{e}'"));
    }
    let Some(backup) = prepared else {
        return empty_ok();
    };
    let name = backup.name_any();
    match apis
        .backups(&ns)
        .create(&PostParams::default(), &backup)
        .await
    {
        Ok(_) => empty_ok(),
        Err(e) => {
            // Ours: the snapshot of a backup that was not recorded is not left behind.
            if let Err(d) = snapshot::request(
                &apis.cvs(),
                volume,
                snap,
                Op::Destroy,
                apis.config.snapshot_wait,
            )
            .await
            {
                tracing::warn!(%volume, %snap, error = %d, "snapshot of a failed backup not destroyed");
            }
            fail(500, format!("failed to create backup {name}: {e}"))
        }
    }
}

/// A remote backup's CStorBackup, with its previous snapshot from the schedule's record
/// (created when missing); refused with the Go messages.
async fn prepare_remote(
    apis: &Apis,
    req: &BackupRequest,
    ns: &str,
) -> Result<CStorBackup, Refusal> {
    let spec = &req.spec;
    let volume = spec.volume_name.trim();
    let bad = |code: u16, message: String| Refusal { code, message };
    let replica = healthy_replica(apis, volume)
        .await
        .map_err(|e| {
            bad(
                400,
                format!("Failed to find healthy replica for volume {volume}: {e}"),
            )
        })?
        .ok_or_else(|| {
            bad(
                400,
                format!("Failed to find healthy replica for volume {volume}"),
            )
        })?;
    let name = format!("{}-{volume}", spec.snap_name.trim());
    let mut backup_labels = BTreeMap::new();
    backup_labels.insert(
        labels::CSPI_UID.to_string(),
        label(&replica, labels::CSPI_UID),
    );
    backup_labels.insert(
        labels::CSPI_NAME.to_string(),
        label(&replica, labels::CSPI_NAME),
    );
    backup_labels.insert(labels::PERSISTENT_VOLUME.to_string(), volume.to_string());
    backup_labels.insert(
        labels::BACKUP.to_string(),
        spec.backup_name.trim().to_string(),
    );
    // Ours: a name Velero reuses is refused before a snapshot is taken.
    match apis.backups(ns).get_opt(&name).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return Err(bad(
                500,
                format!(
                    "failed to create backup {name}: cstorbackups.cstor.openebs.io \"{name}\" already exists"
                ),
            ));
        }
        Err(e) => return Err(bad(500, format!("failed to create backup {name}: {e}"))),
    }
    let record_name = format!("{}-{volume}", spec.backup_name.trim());
    let records = apis.records(ns);
    let prev = match records.get_opt(&record_name).await {
        Ok(Some(r)) => r.spec.last_snap_name,
        Ok(None) => {
            let record = CStorCompletedBackup {
                metadata: ObjectMeta {
                    name: Some(record_name.clone()),
                    namespace: Some(ns.to_string()),
                    labels: Some(backup_labels.clone()),
                    ..ObjectMeta::default()
                },
                spec: CStorCompletedBackupSpec {
                    backup_name: spec.backup_name.trim().to_string(),
                    volume_name: volume.to_string(),
                    ..CStorCompletedBackupSpec::default()
                },
            };
            records
                .create(&PostParams::default(), &record)
                .await
                .map_err(|e| {
                    bad(
                        400,
                        format!("Failed get or create lastCompleted backup error: {e}"),
                    )
                })?;
            String::new()
        }
        Err(e) => {
            return Err(bad(
                400,
                format!("Failed get or create lastCompleted backup error: {e}"),
            ));
        }
    };
    Ok(CStorBackup {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ns.to_string()),
            labels: Some(backup_labels),
            ..ObjectMeta::default()
        },
        spec: CStorBackupSpec {
            backup_name: spec.backup_name.trim().to_string(),
            volume_name: volume.to_string(),
            snap_name: spec.snap_name.trim().to_string(),
            prev_snap_name: prev,
            backup_dest: spec.backup_dest.trim().to_string(),
            local_snap: false,
        },
        status: backup_status::PENDING.to_string(),
    })
}

/// GET `/latest/backups/`: the CStorBackup; while it is not finished and its pool-manager is
/// down, its status from the schedule's record. Ours: a backup that does not exist is answered
/// as Failed (the Go server dropped the connection and the plugin polled forever).
async fn backup_get(apis: &Apis, req: BackupRequest) -> Response {
    if let Err(r) = rules::backup_get(&req) {
        return refused(r);
    }
    let ns = req.metadata.namespace.trim();
    let spec = &req.spec;
    let volume = spec.volume_name.trim();
    let name = format!("{}-{volume}", spec.snap_name.trim());
    let backups = apis.backups(ns);
    let mut backup = match backups.get_opt(&name).await {
        Ok(Some(b)) => b,
        Ok(None) => CStorBackup {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_string()),
                ..ObjectMeta::default()
            },
            spec: CStorBackupSpec {
                backup_name: spec.backup_name.clone(),
                volume_name: spec.volume_name.clone(),
                snap_name: spec.snap_name.clone(),
                prev_snap_name: spec.prev_snap_name.clone(),
                backup_dest: spec.backup_dest.clone(),
                local_snap: spec.local_snap,
            },
            status: backup_status::FAILED.to_string(),
        },
        Err(e) => return fail(400, format!("failed to get backup interface error: {e}")),
    };
    let finished = backup.status == backup_status::DONE || backup.status == backup_status::FAILED;
    if !finished
        && backup.metadata.uid.is_some()
        && !apis
            .pool_manager_up(&label(&backup, labels::CSPI_NAME))
            .await
    {
        let record = format!("{}-{volume}", backup.spec.backup_name);
        let last = match apis.records(ns).get_opt(&record).await {
            Ok(r) => r.map(|r| (r.spec.last_snap_name, r.spec.second_last_snap_name)),
            Err(e) => {
                tracing::warn!(%record, error = %e, "last-backup record not read");
                None
            }
        };
        let status = rules::backup_status_from_record(
            &backup.spec.snap_name,
            last.as_ref().map(|(l, s)| (l.as_str(), s.as_str())),
        );
        backup.status = status.to_string();
        if let Err(e) = backups
            .replace(&name, &PostParams::default(), &backup)
            .await
        {
            tracing::warn!(%name, error = %e, "backup status from the record not written");
        }
    }
    match serde_json::to_string(&backup) {
        Ok(body) => json_ok(body),
        Err(e) => fail(500, e.to_string()),
    }
}

/// DELETE `/latest/backups/<snap>?volume=&namespace=&schedule=`.
async fn backup_delete(
    State(apis): State<Arc<Apis>>,
    method: Method,
    Path(snap): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if method != Method::DELETE {
        return invalid_method();
    }
    let get = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let (volume, ns, schedule) = (get("volume"), get("namespace"), get("schedule"));
    let snap = snap.trim().to_string();
    if let Err(r) = rules::backup_delete(&snap, &volume, &ns, &schedule) {
        return refused(r);
    }
    let name = format!("{snap}-{volume}");
    let err = |e: String| {
        fail(
            500,
            format!(
                "Error deleting backup={snap} for volume={volume} with namesace={ns} and schedule={schedule}..  error={e}"
            ),
        )
    };
    let backups = apis.backups(&ns);
    match backups.get_opt(&name).await {
        Ok(Some(_)) => {}
        Ok(None) => return empty_ok(),
        Err(e) => return err(e.to_string()),
    }
    let records = apis.records(&ns);
    let record = format!("{schedule}-{volume}");
    match records.get_opt(&record).await {
        Ok(Some(r)) if rules::delete_record_with(&snap, &r.spec.last_snap_name) => {
            if let Err(e) = records.delete(&record, &DeleteParams::default()).await {
                return err(e.to_string());
            }
        }
        Ok(_) => {}
        Err(e) => return err(e.to_string()),
    }
    match snapshot::request(
        &apis.cvs(),
        &volume,
        &snap,
        Op::Destroy,
        apis.config.snapshot_wait,
    )
    .await
    {
        // A volume deleted since has no snapshot left to destroy.
        Ok(_) | Err(snapshot::SnapshotError::NoVolume(_)) => {}
        Err(e) => return err(e.to_string()),
    }
    match backups.delete(&name, &DeleteParams::default()).await {
        Ok(_) => empty_ok(),
        Err(kube::Error::Api(ae)) if ae.code == 404 => empty_ok(),
        Err(e) => err(e.to_string()),
    }
}

async fn restores(
    State(apis): State<Arc<Apis>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: RestoreRequest = match post_or_get(&method, &headers, &body) {
        Ok(r) => r,
        Err(r) => return refused(r),
    };
    if method == Method::POST {
        restore_create(&apis, req).await
    } else {
        restore_get(&apis, req).await
    }
}

/// A name part no other restore of this process shares (the Go server used a UUID).
fn unique_suffix(seed: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let h = xxhash_rust::xxh64::xxh64(format!("{seed}/{nanos}/{n}").as_bytes(), 0);
    format!("{h:016x}")
}

/// POST `/latest/restore/`: the restored volume's CVC must be Bound; then one CStorRestore per
/// replica (older ones of the same restore and volume removed first, so a retried restore is
/// not judged by an old attempt's states); the answer is the volume's iSCSI source.
async fn restore_create(apis: &Apis, req: RestoreRequest) -> Response {
    if let Err(r) = rules::restore_create(&req) {
        return refused(r);
    }
    let spec = &req.spec;
    let volume = spec.volume_name.trim();
    if spec.local_restore
        && let Err(e) = clone_volume(apis, &req).await
    {
        return fail(
            400,
            format!("Failed to create resources for volume: {{{e}}}"),
        );
    }
    let ns = req.metadata.namespace.trim();
    let mut bound = false;
    for attempt in 0..apis.config.bound_tries.max(1) {
        if attempt > 0 {
            tokio::time::sleep(apis.config.bound_pause).await;
        }
        if let Ok(Some(cvc)) = apis.cvcs().get_opt(volume).await
            && cvc.status.as_ref().is_some_and(|s| s.phase == "Bound")
        {
            bound = true;
            break;
        }
    }
    if !bound {
        // Ours: a clone that did not bind is not left behind for a plugin that gave up.
        if spec.local_restore {
            let _ = apis.cvcs().delete(volume, &DeleteParams::default()).await;
        }
        return fail(
            400,
            format!(
                "Failed to create resources for volume: {{CVC {volume} in namespace {} is not in Bound status}}",
                apis.config.namespace
            ),
        );
    }
    if spec.local_restore {
        return iscsi_source(apis, volume).await;
    }
    let lp = ListParams::default().labels(&format!("{}={volume}", labels::PERSISTENT_VOLUME));
    let cvrs = match apis.cvrs().list(&lp).await {
        Ok(l) => l.items,
        Err(e) => return fail(500, e.to_string()),
    };
    if cvrs.is_empty() {
        return fail(500, format!("CVRs doesn't exist for volume {volume}"));
    }
    let restores = apis.restores(ns);
    let same = ListParams::default().labels(&format!(
        "{}={},{}={volume}",
        labels::RESTORE,
        spec.restore_name.trim(),
        labels::PERSISTENT_VOLUME
    ));
    if let Err(e) = restores
        .delete_collection(&DeleteParams::default(), &same)
        .await
    {
        return fail(
            500,
            format!("failed to create restore for {volume} error: {e}"),
        );
    }
    for cvr in &cvrs {
        let mut l = BTreeMap::new();
        l.insert(labels::CSPI_NAME.to_string(), label(cvr, labels::CSPI_NAME));
        l.insert(labels::CSPI_UID.to_string(), label(cvr, labels::CSPI_UID));
        l.insert(labels::PERSISTENT_VOLUME.to_string(), volume.to_string());
        l.insert(
            labels::RESTORE.to_string(),
            spec.restore_name.trim().to_string(),
        );
        let restore = CStorRestore {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}-{}",
                    spec.restore_name.trim(),
                    unique_suffix(&cvr.name_any())
                )),
                namespace: Some(ns.to_string()),
                labels: Some(l),
                ..ObjectMeta::default()
            },
            spec: CStorRestoreSpec {
                restore_name: spec.restore_name.trim().to_string(),
                volume_name: volume.to_string(),
                restore_src: spec.restore_src.trim().to_string(),
                ..CStorRestoreSpec::default()
            },
            status: restore_status::PENDING.to_string(),
        };
        if let Err(e) = restores.create(&PostParams::default(), &restore).await {
            return fail(
                500,
                format!("failed to create restore for {volume} error: {e}"),
            );
        }
    }
    iscsi_source(apis, volume).await
}

/// A local restore: the CVC of a volume cloned from `<restoreSrc>@<restoreName>`, on the
/// source's pools (the cvc-operator places clones there), as the StorageClass says.
async fn clone_volume(apis: &Apis, req: &RestoreRequest) -> Result<(), String> {
    use cstor_api::cstor_v1::cvc::CStorVolumeConfig;
    use cstor_api::keys::{annotations, finalizers};
    use k8s_openapi::api::storage::v1::StorageClass;
    let spec = &req.spec;
    let sc_name = spec.storage_class.trim();
    let scs: kube::Api<StorageClass> = kube::Api::all(apis.client.clone());
    let sc = scs.get(sc_name).await.map_err(|e| e.to_string())?;
    let params = sc.parameters.unwrap_or_default();
    let cspc = params
        .get("cstorPoolCluster")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("storageclass {sc_name} doesn't have cstorPoolCluster details"))?;
    let count = params
        .get("replicaCount")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("storageclass {sc_name} doesn't have replica count"))?;
    let replicas: i64 = count
        .parse()
        .map_err(|e| format!("failed to convert replica count {count} into integer: {e}"))?;
    let volume = spec.volume_name.trim();
    let size = spec.size.trim();
    let cvc: CStorVolumeConfig = serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1",
        "kind": "CStorVolumeConfig",
        "metadata": {
            "name": volume,
            "namespace": apis.config.namespace,
            "labels": {labels::CSTOR_POOL_CLUSTER: cspc, labels::SOURCE_VOLUME: spec.restore_src.trim()},
            "annotations": {
                annotations::VOLUME_ID: volume,
                annotations::VOLUME_POLICY: params.get("cstorVolumePolicy").cloned().unwrap_or_default(),
            },
            "finalizers": [finalizers::CVC],
        },
        "spec": {
            "capacity": {"storage": size},
            "provision": {"capacity": {"storage": size}, "replicaCount": replicas},
            "cstorVolumeSource": format!("{}@{}", spec.restore_src.trim(), spec.restore_name.trim()),
            "policy": {},
        },
    }))
    .map_err(|e| e.to_string())?;
    match apis.cvcs().create(&PostParams::default(), &cvc).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(ae)) if ae.code == 409 => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The answer of a restore POST: the volume's iSCSI source.
async fn iscsi_source(apis: &Apis, volume: &str) -> Response {
    match apis.cvs().get_opt(volume).await {
        Ok(Some(cv)) => json_ok(
            json!({
                "targetPortal": cv.spec.target_portal,
                "iqn": cv.spec.iqn,
                "lun": 0,
                "readOnly": false
            })
            .to_string(),
        ),
        Ok(None) => fail(500, format!("CStorVolume {volume} not found")),
        Err(e) => fail(500, e.to_string()),
    }
}

/// GET `/latest/restore/`: the JSON string of the replicas' restores taken together
/// (`cstor_policy::backup::restore_status`); a restore waiting on a pool-manager that is down
/// is marked Failed.
async fn restore_get(apis: &Apis, req: RestoreRequest) -> Response {
    if let Err(r) = rules::restore_get(&req) {
        return refused(r);
    }
    let ns = req.metadata.namespace.trim();
    let spec = &req.spec;
    let lp = ListParams::default().labels(&format!(
        "{}={},{}={}",
        labels::RESTORE,
        spec.restore_name.trim(),
        labels::PERSISTENT_VOLUME,
        spec.volume_name.trim()
    ));
    let restores = apis.restores(ns);
    let items = match restores.list(&lp).await {
        Ok(l) => l.items,
        Err(e) => {
            return fail(
                400,
                format!("Failed to fetch status 'Failed to fetch restore error:{e}'"),
            );
        }
    };
    let mut up = Vec::with_capacity(items.len());
    for r in &items {
        let terminal = r.status == restore_status::DONE || r.status == restore_status::FAILED;
        let alive = terminal || apis.pool_manager_up(&label(r, labels::CSPI_NAME)).await;
        if !alive {
            let mut failed = r.clone();
            failed.status = restore_status::FAILED.to_string();
            if let Err(e) = restores
                .replace(&r.name_any(), &PostParams::default(), &failed)
                .await
            {
                tracing::warn!(restore = %r.name_any(), error = %e, "restore not marked Failed");
            }
        }
        up.push(alive);
    }
    let replicas: Vec<ReplicaRestore<'_>> = items
        .iter()
        .zip(&up)
        .map(|(r, alive)| ReplicaRestore {
            status: &r.status,
            pool_manager_up: *alive,
        })
        .collect();
    json_ok(serde_json::to_string(rules::restore_status(&replicas)).unwrap_or_default())
}
