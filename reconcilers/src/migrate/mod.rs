//! The MigrationTask controller (docs/migration.md): moves an SPC pool to a CSPC, one small
//! idempotent step per reconcile, each step recorded in `status.migrationDetailedStatuses[]`
//! and announced by an Event. The next step is decided by [`decide::decide_pool`] from a fresh
//! read of the old and new objects, so a crash at any point resumes where it stopped.

pub mod decide;
pub mod volume;
mod volume_io;

pub use volume_io::view as volume_view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cstor_api::cstor_v1::cspi::CStorPoolInstance;
use cstor_api::cstor_v1::{CStorPoolCluster, CStorVolume};
use cstor_api::keys::{annotations, finalizers, labels};
use cstor_api::openebs_v1alpha1::{
    BlockDevice, BlockDeviceClaim, CStorPool, LegacyCStorVolumeReplica, MigrationTask,
    MigrationTaskStatus, StoragePoolClaim, task_phase,
};
use cstor_policy::migrate::SpcFacts;
use cstor_runtime::errors::{ApiError, Step, is_webhook_denial};
use cstor_runtime::finalizers::patch_metadata;
use cstor_runtime::{events, now};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::Error;
use crate::cspc::claim::controller_ref;
use crate::meta::{delete_ignore_missing, is_already_exists};
use decide::{Action, Decision, Next, PoolView, decide_pool, reason};

/// Field manager of the task status.
pub const FIELD_MANAGER: &str = "cstor-operator/migration";
/// How often a waiting step looks again (the objects it waits on belong to other controllers).
const POLL: Duration = Duration::from_secs(2);
/// Failed attempts (API errors) before the task ends in Error.
pub const MAX_RETRIES: i64 = 10;

/// What the controller needs.
pub struct Context {
    pub client: Client,
    pub namespace: String,
    pub recorder: Recorder,
    failures: cstor_runtime::Backoff,
}

impl Context {
    pub fn new(client: Client, namespace: String, recorder: Recorder) -> Self {
        Context {
            client,
            namespace,
            recorder,
            failures: cstor_runtime::Backoff::default(),
        }
    }

    fn tasks(&self) -> Api<MigrationTask> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn ns<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// The CSPC name a pool task creates: `spec.cstorPool.rename`, else the SPC's name.
pub fn cspc_name(task: &MigrationTask) -> Option<(String, String)> {
    let pool = task.spec.cstor_pool.as_ref()?;
    let cspc = if pool.rename.is_empty() {
        pool.spc_name.clone()
    } else {
        pool.rename.clone()
    };
    Some((pool.spc_name.clone(), cspc))
}

/// Runs the controller until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::new(ctx.tasks(), watcher::Config::default());
    // What a waiting step waits for wakes its task: the CSPIs of its CSPC, the old pool
    // Deployments and pods, the new volume's CStorVolume. (The poll stays as a safety net.)
    let tasks = controller.store();
    let of_cspc = {
        let tasks = tasks.clone();
        move |cspi: CStorPoolInstance| {
            let cspc = cspi.labels().get(labels::CSTOR_POOL_CLUSTER).cloned();
            running(&tasks, |t| cspc_name(t).map(|(_, c)| c) == cspc)
        }
    };
    let any_pool_task = {
        let tasks = tasks.clone();
        move || running(&tasks, |t| t.spec.cstor_pool.is_some())
    };
    let any_pool_task2 = any_pool_task.clone();
    let of_volume = {
        let tasks = tasks.clone();
        move |cv: CStorVolume| {
            let pv = cv.name_any();
            running(&tasks, |t| {
                t.spec.cstor_volume.as_ref().map(|v| v.pv_name.as_str()) == Some(pv.as_str())
            })
        }
    };
    let by_label = |key: &str| watcher::Config::default().labels(key);
    controller
        .watches(
            ctx.ns::<CStorPoolInstance>(),
            by_label(labels::CSTOR_POOL_CLUSTER),
            of_cspc,
        )
        .watches(
            ctx.ns::<Deployment>(),
            by_label(labels::CSTOR_POOL),
            move |_: Deployment| any_pool_task(),
        )
        .watches(
            ctx.ns::<Pod>(),
            by_label(labels::CSTOR_POOL),
            move |_: Pod| any_pool_task2(),
        )
        .watches(
            ctx.ns::<CStorVolume>(),
            watcher::Config::default(),
            of_volume,
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "MigrationTask controller event");
            }
        })
        .await;
}

/// The unfinished tasks of `store` that `wanted` picks.
fn running(
    store: &kube::runtime::reflector::Store<MigrationTask>,
    wanted: impl Fn(&MigrationTask) -> bool,
) -> Vec<kube::runtime::reflector::ObjectRef<MigrationTask>> {
    store
        .state()
        .iter()
        .filter(|t| {
            !matches!(
                t.status.phase.as_str(),
                task_phase::SUCCESS | task_phase::ERROR
            ) && wanted(t)
        })
        .map(|t| kube::runtime::reflector::ObjectRef::from_obj(t.as_ref()))
        .collect()
}

async fn reconcile(task: Arc<MigrationTask>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let key = crate::meta::key(task.as_ref());
    ctx.failures
        .reconcile("migrationtask", &key, reconcile_inner(&task, &ctx))
        .await
}

fn error_policy(task: Arc<MigrationTask>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = crate::meta::key(task.as_ref());
    let (n, wait) = ctx.failures.failed(&key);
    tracing::warn!(task = %key, %error, category = error.category(), failures = n, "MigrationTask reconcile failed");
    Requeue::requeue(wait)
}

async fn reconcile_inner(task: &MigrationTask, ctx: &Context) -> Result<Requeue, Error> {
    let name = task.name_any();
    // A fresh read: the watch's copy may predate our own last status write.
    let Some(task) = ctx
        .tasks()
        .get_opt(&name)
        .await
        .step("get MigrationTask", &name)?
    else {
        return Ok(Requeue::await_change());
    };
    let done = matches!(
        task.status.phase.as_str(),
        task_phase::SUCCESS | task_phase::ERROR
    );
    if done || task.meta().deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let decision = match cspc_name(&task) {
        Some((spc, cspc)) => {
            let view = pool_view(&task, ctx, spc, cspc).await?;
            decide_pool(&view)
        }
        None if let Some(volume) = task.spec.cstor_volume.as_ref() => {
            let mut view = volume_io::view(ctx, &volume.pv_name).await?;
            view.step_age = step_ages(&task);
            volume::decide_volume(&view)
        }
        None => Decision {
            step: decide::step::PRE_MIGRATION.into(),
            message: "spec names neither cstorPool nor cstorVolume".into(),
            next: Next::Fail {
                reason: reason::VALIDATION_FAILED,
            },
        },
    };
    record(&task, ctx, &decision).await?;
    let Next::Act(action) = decision.next else {
        return Ok(match decision.next {
            Next::Wait => Requeue::requeue(POLL),
            _ => Requeue::await_change(),
        });
    };
    match apply(&task, ctx, &action).await {
        Ok(None) => Ok(Requeue::requeue(Duration::from_millis(50))),
        Ok(Some(refusal)) => {
            let failed = Decision {
                step: decision.step,
                message: refusal,
                next: Next::Fail {
                    reason: reason::VALIDATION_FAILED,
                },
            };
            record(&task, ctx, &failed).await?;
            Ok(Requeue::await_change())
        }
        Err(e) => {
            // Counted in memory: a status write per failure would wake the task at once
            // and spend its retries in a burst instead of over the back-off.
            let failures = i64::from(ctx.failures.failures(&crate::meta::key(&task))) + 1;
            if failures >= MAX_RETRIES {
                give_up(&task, ctx, &decision.step, failures, &e).await?;
                return Ok(Requeue::await_change());
            }
            Err(e)
        }
    }
}

/// Reads everything [`decide_pool`] looks at.
async fn pool_view(
    task: &MigrationTask,
    ctx: &Context,
    spc_name: String,
    cspc_name: String,
) -> Result<PoolView, Error> {
    let spcs: Api<StoragePoolClaim> = Api::all(ctx.client.clone());
    let spc = spcs
        .get_opt(&spc_name)
        .await
        .step("get StoragePoolClaim", &spc_name)?;
    let existing_cspc = ctx
        .ns::<CStorPoolCluster>()
        .get_opt(&cspc_name)
        .await
        .step("get CStorPoolCluster", &cspc_name)?;
    let by_label = |key: &str, value: &str| ListParams::default().labels(&format!("{key}={value}"));
    let mut facts = SpcFacts {
        existing_cspc,
        ..SpcFacts::default()
    };
    let mut old_pods = BTreeMap::new();
    let mut old_cvrs = Vec::new();
    if let Some(spc) = &spc {
        facts.spc = spc.clone();
        let csps: Api<CStorPool> = Api::all(ctx.client.clone());
        facts.csps = csps
            .list(&by_label(labels::STORAGE_POOL_CLAIM, &spc_name))
            .await
            .step("list CStorPools of", &spc_name)?
            .items;
        let deployments = ctx
            .ns::<Deployment>()
            .list(&ListParams::default().labels(labels::CSTOR_POOL))
            .await
            .step("list old pool Deployments", &ctx.namespace)?
            .items;
        let pods = ctx
            .ns::<Pod>()
            .list(&ListParams::default().labels(labels::CSTOR_POOL))
            .await
            .step("list old pool pods", &ctx.namespace)?
            .items;
        let cvrs = ctx
            .ns::<LegacyCStorVolumeReplica>()
            .list(&ListParams::default().labels(labels::CSP_NAME))
            .await
            .step("list old volume replicas", &ctx.namespace)?
            .items;
        for csp in &facts.csps {
            let csp_name = csp.name_any();
            let of_csp = |m: &kube::core::ObjectMeta| {
                m.labels.as_ref().and_then(|l| l.get(labels::CSTOR_POOL)) == Some(&csp_name)
            };
            facts.deployments.insert(
                csp_name.clone(),
                deployments
                    .iter()
                    .filter(|d| of_csp(&d.metadata))
                    .cloned()
                    .collect(),
            );
            old_pods.insert(
                csp_name.clone(),
                pods.iter().filter(|p| of_csp(&p.metadata)).count(),
            );
            old_cvrs.extend(
                cvrs.iter()
                    .filter(|c| c.labels().get(labels::CSP_NAME) == Some(&csp_name))
                    .cloned(),
            );
        }
        facts.block_devices = ctx
            .ns::<BlockDevice>()
            .list(&ListParams::default())
            .await
            .step("list BlockDevices", &ctx.namespace)?
            .items
            .into_iter()
            .map(|b| (b.name_any(), b))
            .collect();
        facts.claims = ctx
            .ns::<BlockDeviceClaim>()
            .list(&ListParams::default())
            .await
            .step("list BlockDeviceClaims", &ctx.namespace)?
            .items
            .into_iter()
            .filter(|c| {
                let l = c.labels();
                l.get(labels::STORAGE_POOL_CLAIM) == Some(&spc_name)
                    || l.get(labels::CSTOR_POOL_CLUSTER) == Some(&cspc_name)
            })
            .map(|c| (c.spec.block_device_name.clone(), c))
            .collect();
    }
    let cspis = ctx
        .ns::<CStorPoolInstance>()
        .list(&by_label(labels::CSTOR_POOL_CLUSTER, &cspc_name))
        .await
        .step("list CSPIs of", &cspc_name)?
        .items;
    let step_age = step_ages(task);
    let csp_uids: Vec<String> = facts.csps.iter().filter_map(|c| c.uid()).collect();
    let mut old_backups = Vec::new();
    for plural in OLD_BACKUP_KINDS {
        for o in list_old(ctx, plural).await? {
            let uid = o.labels().get(labels::CSP_UID).cloned().unwrap_or_default();
            if csp_uids.contains(&uid) {
                old_backups.push(decide::OldBackup {
                    plural: plural.to_string(),
                    namespace: o.namespace().unwrap_or_default(),
                    name: o.name_any(),
                    csp_uid: uid,
                });
            }
        }
    }
    Ok(PoolView {
        old_backups,
        spc_name,
        cspc_name,
        namespace: ctx.namespace.clone(),
        spc,
        facts,
        cspis,
        old_pods,
        old_cvrs,
        step_age,
    })
}

/// The old operators' backup kinds (`openebs.io/v1alpha1`) a pool migration carries over.
const OLD_BACKUP_KINDS: [&str; 3] = ["cstorbackups", "cstorrestores", "cstorcompletedbackups"];

fn old_backup_api(client: &Client, plural: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let kind = match plural {
        "cstorbackups" => "CStorBackup",
        "cstorrestores" => "CStorRestore",
        _ => "CStorCompletedBackup",
    };
    let gvk = GroupVersionKind::gvk("openebs.io", "v1alpha1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Old backup records labelled with a CSP; none when the old CRD is not installed.
async fn list_old(ctx: &Context, plural: &str) -> Result<Vec<DynamicObject>, Error> {
    let api = old_backup_api(&ctx.client, plural, None);
    match api
        .list(&ListParams::default().labels(labels::CSP_UID))
        .await
    {
        Ok(l) => Ok(l.items),
        Err(e) if crate::meta::is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(ApiError::new("list old", plural.to_string(), e).into()),
    }
}

/// The v1 object of an old backup record (docs/migration.md): same name, namespace, spec and
/// status (a completed-backup record's snapshot names are swapped into the v1 fields), labelled
/// for the CSPI instead of the CSP.
pub fn carried_backup(old: &DynamicObject, plural: &str, cspi: &str, cspi_uid: &str) -> Value {
    let mut labels_map = old.labels().clone();
    labels_map.remove(labels::CSP_UID);
    labels_map.insert(labels::CSPI_NAME.into(), cspi.into());
    labels_map.insert(labels::CSPI_UID.into(), cspi_uid.into());
    let kind = match plural {
        "cstorbackups" => "CStorBackup",
        "cstorrestores" => "CStorRestore",
        _ => "CStorCompletedBackup",
    };
    let mut spec = old.data.get("spec").cloned().unwrap_or_else(|| json!({}));
    if plural == "cstorcompletedbackups"
        && let Some(m) = spec.as_object_mut()
    {
        let prev = m.remove("prevSnapName").unwrap_or(Value::Null);
        let snap = m.remove("snapName").unwrap_or(Value::Null);
        m.insert("lastSnapName".into(), prev);
        m.insert("secondLastSnapName".into(), snap);
    }
    let mut body = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": kind,
        "metadata": {"name": old.name_any(), "namespace": old.namespace(),
                     "labels": labels_map,
                     "annotations": old.annotations()},
        "spec": spec,
    });
    if let Some(status) = old.data.get("status")
        && plural != "cstorcompletedbackups"
    {
        body["status"] = status.clone();
    }
    body
}

/// How long ago each recorded step started (for the waits' limits).
fn step_ages(task: &MigrationTask) -> BTreeMap<String, Duration> {
    let at = now();
    task.status
        .migration_detailed_statuses
        .iter()
        .filter_map(|s| {
            let started = s.start_time.as_ref()?;
            let age = at.0.duration_since(started.0);
            Some((s.step.clone(), Duration::try_from(age).unwrap_or_default()))
        })
        .collect()
}

/// The status after `decision`: earlier steps still Waiting are Completed, the current step's
/// entry is written, and the task's phase follows a failure or the end.
pub fn next_status(
    status: &MigrationTaskStatus,
    decision: &Decision,
    at: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> MigrationTaskStatus {
    let mut s = status.clone();
    let end = match &decision.next {
        Next::Act(_) | Next::Wait => crate::task::StepEnd::Running,
        Next::Fail { reason } => crate::task::StepEnd::Failed(reason),
        Next::Done => crate::task::StepEnd::Done,
    };
    crate::task::advance(
        crate::task::Progress {
            steps: &mut s.migration_detailed_statuses,
            phase: &mut s.phase,
            start_time: &mut s.start_time,
            completed_time: &mut s.completed_time,
        },
        &decision.step,
        &decision.message,
        end,
        at,
    );
    s
}

async fn write_status(
    ctx: &Context,
    task: &MigrationTask,
    status: &MigrationTaskStatus,
) -> Result<(), Error> {
    let name = task.name_any();
    let body = json!({
        "apiVersion": "openebs.io/v1alpha1",
        "kind": "MigrationTask",
        "metadata": {"name": name, "namespace": ctx.namespace},
        "status": status,
    });
    ctx.tasks()
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .step("apply status of MigrationTask", &name)?;
    Ok(())
}

/// Writes the status `decision` leads to (when it changes) and announces new steps, failures
/// and the end as Events.
async fn record(task: &MigrationTask, ctx: &Context, decision: &Decision) -> Result<(), Error> {
    let status = next_status(&task.status, decision, &now());
    if status == task.status {
        return Ok(());
    }
    write_status(ctx, task, &status).await?;
    let new_step = !task
        .status
        .migration_detailed_statuses
        .iter()
        .any(|e| e.step == decision.step);
    let reference = task.object_ref(&());
    let (type_, reason, note) = match &decision.next {
        Next::Fail { reason } => (
            EventType::Warning,
            "MigrationFailed",
            format!("{} failed ({reason}): {}", decision.step, decision.message),
        ),
        Next::Done => (
            EventType::Normal,
            "MigrationSucceeded",
            decision.message.clone(),
        ),
        _ if new_step => (
            EventType::Normal,
            "MigrationStep",
            format!("{}: {}", decision.step, decision.message),
        ),
        _ => return Ok(()),
    };
    events::publish(&ctx.recorder, &reference, type_, reason, note, "Migrate").await;
    Ok(())
}

/// Ends the task in Error after `failures` failed attempts at `step`.
async fn give_up(
    task: &MigrationTask,
    ctx: &Context,
    step: &str,
    failures: i64,
    e: &Error,
) -> Result<(), Error> {
    let failed = Decision {
        step: step.into(),
        message: format!("gave up after {failures} failed attempts; last: {e}"),
        next: Next::Fail {
            reason: reason::RETRIES_EXHAUSTED,
        },
    };
    let mut ended = task.clone();
    ended.status.retries = failures;
    record(&ended, ctx, &failed).await?;
    ctx.failures.succeeded(&crate::meta::key(task));
    Ok(())
}

/// JSON-patch ops that replace whole metadata maps/lists of `live`, guarded by its
/// resourceVersion (a concurrent writer makes the patch fail and it is rebuilt).
fn replace_meta<K: Resource>(live: &K, fields: &[(&str, Value)]) -> Option<Value> {
    let rv = live.meta().resource_version.clone()?;
    let mut ops = vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})];
    for (field, value) in fields {
        ops.push(json!({"op": "add", "path": format!("/metadata/{field}"), "value": value}));
    }
    Some(Value::Array(ops))
}

/// Carries out one action; `Ok(Some(why))` when the API refused it for good (a webhook
/// denial), which ends the task in Error.
async fn apply(
    task: &MigrationTask,
    ctx: &Context,
    action: &Action,
) -> Result<Option<String>, Error> {
    if let Action::Volume(v) = action {
        let pv = task
            .spec
            .cstor_volume
            .as_ref()
            .map(|c| c.pv_name.clone())
            .unwrap_or_default();
        return volume_io::apply(ctx, &pv, v).await;
    }
    let Some((spc_name, cspc_name)) = cspc_name(task) else {
        return Ok(None);
    };
    let spcs: Api<StoragePoolClaim> = Api::all(ctx.client.clone());
    let merge = |v: Value| Patch::Merge(v);
    let pp = PatchParams::default();
    match action {
        Action::PromiseSpc => {
            let body =
                json!({"metadata": {"annotations": {annotations::MIGRATED_TO_CSPC: cspc_name}}});
            spcs.patch(&spc_name, &pp, &merge(body))
                .await
                .step("annotate StoragePoolClaim", &spc_name)?;
        }
        Action::SkipValidations => {
            let body =
                json!({"metadata": {"annotations": {annotations::SKIP_VALIDATIONS: "true"}}});
            spcs.patch(&spc_name, &pp, &merge(body))
                .await
                .step("annotate StoragePoolClaim", &spc_name)?;
        }
        Action::RelabelClaim { name } => {
            patch_metadata(&ctx.ns::<BlockDeviceClaim>(), name, |live| {
                let mut l = live.labels().clone();
                l.remove(labels::STORAGE_POOL_CLAIM);
                l.insert(labels::CSTOR_POOL_CLUSTER.into(), cspc_name.clone());
                let mut f: Vec<String> = live
                    .finalizers()
                    .iter()
                    .map(|x| {
                        if x == finalizers::SPC {
                            finalizers::CSPC.to_string()
                        } else {
                            x.clone()
                        }
                    })
                    .collect();
                f.dedup();
                replace_meta(live, &[("labels", json!(l)), ("finalizers", json!(f))])
            })
            .await?;
        }
        Action::CreateCspc(cspc) => {
            match ctx
                .ns::<CStorPoolCluster>()
                .create(&PostParams::default(), cspc)
                .await
            {
                Ok(_) => {}
                Err(e) if is_already_exists(&e) => {}
                Err(e) if is_webhook_denial(&e) => {
                    return Ok(Some(format!("the CStorPoolCluster was refused: {e}")));
                }
                Err(e) => {
                    return Err(ApiError::new(
                        "create",
                        format!("CStorPoolCluster {cspc_name}"),
                        e,
                    )
                    .into());
                }
            }
        }
        Action::OwnClaim { name } => {
            let cspc = ctx
                .ns::<CStorPoolCluster>()
                .get(&cspc_name)
                .await
                .step("get CStorPoolCluster", &cspc_name)?;
            let Some(owner) = controller_ref(&cspc) else {
                return Err(Error::MissingField {
                    kind: "CStorPoolCluster",
                    name: cspc_name,
                    field: "uid",
                });
            };
            patch_metadata(&ctx.ns::<BlockDeviceClaim>(), name, |live| {
                replace_meta(live, &[("ownerReferences", json!([owner]))])
            })
            .await?;
        }
        Action::EnableDependants => {
            cstor_runtime::finalizers::remove_annotation(
                &ctx.ns::<CStorPoolCluster>(),
                &cspc_name,
                annotations::RECONCILE_DISABLE_DEPENDANTS,
            )
            .await?;
        }
        Action::ScaleDown { deployment } => {
            ctx.ns::<Deployment>()
                .patch(deployment, &pp, &merge(json!({"spec": {"replicas": 0}})))
                .await
                .step("scale down old pool Deployment", deployment)?;
        }
        Action::Import { cspi, old_pool } => {
            patch_metadata(&ctx.ns::<CStorPoolInstance>(), cspi, |live| {
                let mut a = live.annotations().clone();
                a.remove(annotations::RECONCILE_DISABLE);
                a.insert(annotations::EXISTING_POOL_NAME.into(), old_pool.clone());
                replace_meta(live, &[("annotations", json!(a))])
            })
            .await?;
        }
        Action::RelabelReplica {
            name,
            cspi,
            cspi_uid,
            host,
        } => {
            patch_metadata(&ctx.ns::<LegacyCStorVolumeReplica>(), name, |live| {
                let mut l = live.labels().clone();
                l.remove(labels::CSP_NAME);
                l.remove(labels::CSP_UID);
                l.insert(labels::CSPI_NAME.into(), cspi.clone());
                l.insert(labels::CSPI_UID.into(), cspi_uid.clone());
                let mut a = live.annotations().clone();
                a.remove(annotations::CSP_HOSTNAME);
                a.insert(annotations::CSPI_HOSTNAME.into(), host.clone());
                replace_meta(live, &[("labels", json!(l)), ("annotations", json!(a))])
            })
            .await?;
        }
        Action::ReleaseCsp { csp } => {
            let csps: Api<CStorPool> = Api::all(ctx.client.clone());
            patch_metadata(&csps, csp, |live| {
                (!live.finalizers().is_empty())
                    .then(|| replace_meta(live, &[("finalizers", json!([]))]))
                    .flatten()
            })
            .await?;
        }
        Action::DeleteDeployment { name } => {
            delete_ignore_missing(&ctx.ns::<Deployment>(), name).await?;
        }
        Action::DeleteCsp { name } => {
            let csps: Api<CStorPool> = Api::all(ctx.client.clone());
            delete_ignore_missing(&csps, name).await?;
        }
        Action::Volume(_) => {}
        Action::CarryBackup {
            record,
            cspi,
            cspi_uid,
        } => {
            let old_api = old_backup_api(&ctx.client, &record.plural, Some(&record.namespace));
            let Some(old) = old_api
                .get_opt(&record.name)
                .await
                .step("get old backup record", &record.name)?
            else {
                return Ok(None);
            };
            let body = carried_backup(&old, &record.plural, cspi, cspi_uid);
            let kind = body["kind"].as_str().unwrap_or_default().to_string();
            let gvk = GroupVersionKind::gvk("cstor.openebs.io", "v1", &kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, &record.plural);
            let new_api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), &record.namespace, &resource);
            let obj: DynamicObject = serde_json::from_value(body)?;
            match new_api.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(e) if is_already_exists(&e) => {}
                Err(e) => {
                    return Err(
                        ApiError::new("create", format!("{kind} {}", record.name), e).into(),
                    );
                }
            }
            match old_api.delete(&record.name, &Default::default()).await {
                Ok(_) => {}
                Err(e) if crate::meta::is_not_found(&e) => {}
                Err(e) => {
                    return Err(ApiError::new("delete old", record.name.clone(), e).into());
                }
            }
        }
        Action::DeleteSpc => {
            cstor_runtime::finalizers::remove_finalizer(&spcs, &spc_name, finalizers::SPC).await?;
            delete_ignore_missing(&spcs, &spc_name).await?;
        }
    }
    Ok(None)
}
