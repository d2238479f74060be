//! The UpgradeTask controller (docs/upgrades.md): upgrades one CSPC, CSPI or volume to this
//! operator's version with I/O running, one Deployment at a time. Each reconcile reads a
//! snapshot, [`decide::decide`] picks the step, the status records it (and an Event announces
//! it) before the step's one change is made, so a crash at any point resumes where it stopped.
//! The cspc-operator runs it for pools (and answers the kinds nobody upgrades); the
//! cvc-operator runs it for volumes.

pub mod auto;
pub mod decide;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cstor_api::cstor_v1::cspi::CStorPoolInstance;
use cstor_api::cstor_v1::{CStorPoolCluster, CStorVolume, CStorVolumeConfig, CStorVolumeReplica};
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::{
    UpgradeCStorPoolInstance, UpgradeTask, UpgradeTaskSpec, UpgradeTaskStatus, task_phase,
};
use cstor_runtime::errors::Step;
use cstor_runtime::{events, now, reasons};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::task::StepEnd;
use decide::{Act, Decision, Kind, Next, OtherTask, Subject, View};

/// Field manager of the task status and of the records a task sets.
pub const FIELD_MANAGER: &str = "cstor-operator/upgrade";
/// How often a waiting step looks again (the objects it waits on belong to other controllers).
const POLL: Duration = Duration::from_secs(2);
/// Failed attempts (API errors) before the task ends in Error.
pub const MAX_RETRIES: i64 = 10;

/// Which tasks this controller takes.
#[derive(Clone, Debug)]
pub enum Role {
    /// The cspc-operator: CSPC and CSPI tasks, and the refusals of what nobody upgrades.
    Pools(crate::cspc::CspcConfig),
    /// The cvc-operator: volume tasks.
    Volumes(crate::cvc::CvcConfig),
}

impl Role {
    fn takes(&self, s: &Subject) -> bool {
        match self {
            Role::Pools(_) => !matches!(s, Subject::Volume(_)),
            Role::Volumes(_) => matches!(s, Subject::Volume(_)),
        }
    }
    fn version(&self) -> &str {
        match self {
            Role::Pools(c) => &c.operator_version,
            Role::Volumes(c) => &c.operator_version,
        }
    }
}

/// What the controller needs.
pub struct Context {
    pub client: Client,
    pub namespace: String,
    pub recorder: Recorder,
    pub role: Role,
    failures: cstor_runtime::Backoff,
}

impl Context {
    pub fn new(client: Client, namespace: String, recorder: Recorder, role: Role) -> Self {
        Context {
            client,
            namespace,
            recorder,
            role,
            failures: cstor_runtime::Backoff::default(),
        }
    }

    fn ns<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// Runs the controller until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::new(ctx.ns::<UpgradeTask>(), watcher::Config::default());
    let tasks = controller.store();
    let wake_all = move || {
        tasks
            .state()
            .iter()
            .filter(|t| !finished(t))
            .map(|t| kube::runtime::reflector::ObjectRef::from_obj(t.as_ref()))
            .collect::<Vec<_>>()
    };
    let (w1, w2, w3) = (wake_all.clone(), wake_all.clone(), wake_all.clone());
    controller
        .watches(
            ctx.ns::<CStorPoolInstance>(),
            watcher::Config::default(),
            move |_| w1(),
        )
        .watches(
            ctx.ns::<CStorVolume>(),
            watcher::Config::default(),
            move |_| w2(),
        )
        .watches(
            ctx.ns::<CStorVolumeReplica>(),
            watcher::Config::default(),
            move |_| w3(),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "UpgradeTask controller event");
            }
        })
        .await;
}

fn finished(t: &UpgradeTask) -> bool {
    matches!(
        t.status.phase.as_str(),
        task_phase::SUCCESS | task_phase::ERROR
    )
}

async fn reconcile(task: Arc<UpgradeTask>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let key = crate::meta::key(task.as_ref());
    ctx.failures
        .reconcile("upgradetask", &key, reconcile_inner(&task, &ctx))
        .await
}

fn error_policy(task: Arc<UpgradeTask>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = crate::meta::key(task.as_ref());
    let (n, wait) = ctx.failures.failed(&key);
    tracing::warn!(task = %key, %error, category = error.category(), failures = n, "UpgradeTask reconcile failed");
    Requeue::requeue(wait)
}

async fn reconcile_inner(task: &UpgradeTask, ctx: &Context) -> Result<Requeue, Error> {
    let name = task.name_any();
    if !ctx.role.takes(&decide::subject(task)) {
        return Ok(Requeue::await_change());
    }
    // A fresh read: the watch's copy may predate our own last status write.
    let Some(task) = ctx
        .ns::<UpgradeTask>()
        .get_opt(&name)
        .await
        .step("get UpgradeTask", &name)?
    else {
        return Ok(Requeue::await_change());
    };
    if finished(&task) || task.meta().deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    // Decide and record until a step acts or waits: completed steps are recorded one by one.
    let mut task = task;
    for _ in 0..8 {
        let view = view(&task, ctx).await?;
        let decision = decide::decide(&view);
        task = record(&task, ctx, &decision).await?;
        match decision.next {
            Next::Complete => continue,
            Next::Wait => return Ok(Requeue::requeue(POLL)),
            Next::Fail { .. } | Next::Done => return Ok(Requeue::await_change()),
            Next::Act(act) => {
                if let Err(e) = apply(&task, ctx, &act).await {
                    let failures = i64::from(ctx.failures.failures(&crate::meta::key(&task))) + 1;
                    if failures >= MAX_RETRIES {
                        let failed = Decision {
                            step: decision.step,
                            message: format!("gave up after {failures} failed attempts; last: {e}"),
                            next: Next::Fail {
                                reason: decide::reason::RETRIES_EXHAUSTED,
                            },
                        };
                        let mut ended = task.clone();
                        ended.status.retries = failures;
                        record(&ended, ctx, &failed).await?;
                        ctx.failures.succeeded(&crate::meta::key(&task));
                        return Ok(Requeue::await_change());
                    }
                    return Err(e);
                }
                return Ok(Requeue::requeue(Duration::from_millis(200)));
            }
        }
    }
    Ok(Requeue::requeue(POLL))
}

/// What the first step of `task` would decide now for operators of version `ours`, changing
/// nothing (`cstor upgrade check`).
pub async fn preview(
    client: Client,
    namespace: &str,
    ours: &str,
    task: &UpgradeTask,
) -> Result<Decision, Error> {
    let role = Role::Pools(crate::cspc::CspcConfig {
        operator_version: ours.to_string(),
        ..Default::default()
    });
    let ctx = Context::new(
        client.clone(),
        namespace.to_string(),
        cstor_runtime::events::recorder(client, "cstor-upgrade-check", None),
        role,
    );
    let mut view = view(task, &ctx).await?;
    view.ours = ours.to_string();
    Ok(decide::decide(&view))
}

fn step_ages(task: &UpgradeTask) -> BTreeMap<String, Duration> {
    let at = now();
    task.status
        .upgrade_detailed_statuses
        .iter()
        .filter_map(|s| {
            let started = s.start_time.as_ref()?;
            let age = at.0.duration_since(started.0);
            Some((s.step.clone(), Duration::try_from(age).unwrap_or_default()))
        })
        .collect()
}

fn by_label(key: &str, value: &str) -> ListParams {
    ListParams::default().labels(&format!("{key}={value}"))
}

/// Reads everything [`decide::decide`] looks at.
async fn view(task: &UpgradeTask, ctx: &Context) -> Result<View, Error> {
    let me = task.name_any();
    let created = task.metadata.creation_timestamp.clone();
    let all = ctx
        .ns::<UpgradeTask>()
        .list(&ListParams::default())
        .await
        .step("list UpgradeTasks", &ctx.namespace)?
        .items;
    let my_uid = task.uid();
    let others = all
        .iter()
        .filter(|t| t.name_any() != me && !finished(t))
        .map(|t| {
            // The one already under way wins; else the older (creation times have seconds
            // only: the name breaks a tie, the same way for both).
            let theirs = t.metadata.creation_timestamp.clone();
            let (they_started, i_started) =
                (!t.status.phase.is_empty(), !task.status.phase.is_empty());
            let earlier = match (&theirs, &created) {
                _ if they_started != i_started => they_started,
                (Some(a), Some(b)) if a.0 != b.0 => a.0 < b.0,
                _ => t.name_any() < me,
            };
            let child = t
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == my_uid.as_ref());
            OtherTask {
                name: t.name_any(),
                subject: decide::subject(t),
                earlier,
                child,
            }
        })
        .collect();
    let mut view = View {
        ours: ctx.role.version().to_string(),
        task: task.clone(),
        others,
        pool: Default::default(),
        cluster: Default::default(),
        volume: Default::default(),
        step_age: step_ages(task),
        migrations: Vec::new(),
    };
    // Moves in flight: a pool or volume being migrated is not upgraded meanwhile.
    let migrations: Api<cstor_api::openebs_v1alpha1::MigrationTask> = ctx.ns();
    view.migrations = migrations
        .list(&ListParams::default())
        .await
        .step("list MigrationTasks", &ctx.namespace)?
        .items
        .iter()
        .filter(|m| {
            !matches!(
                m.status.phase.as_str(),
                task_phase::SUCCESS | task_phase::ERROR
            )
        })
        .map(|m| {
            let cspc = crate::migrate::cspc_name(m)
                .map(|(_, c)| c)
                .unwrap_or_default();
            let pv = m
                .spec
                .cstor_volume
                .as_ref()
                .map(|v| v.pv_name.clone())
                .unwrap_or_default();
            (m.name_any(), cspc, pv)
        })
        .collect();
    match decide::subject(task) {
        Subject::Cspi(name) => {
            let cspi = ctx
                .ns::<CStorPoolInstance>()
                .get_opt(&name)
                .await
                .step("get CSPI", &name)?;
            view.pool.deployment = ctx
                .ns::<Deployment>()
                .get_opt(&name)
                .await
                .step("get pool-manager Deployment", &name)?;
            let cvrs: Api<CStorVolumeReplica> = ctx.ns();
            view.pool.cvrs = cvrs
                .list(&by_label(labels::CSPI_NAME, &name))
                .await
                .step("list CVRs on pool", &name)?
                .items;
            let volumes: std::collections::BTreeSet<String> = view
                .pool
                .cvrs
                .iter()
                .filter_map(|c| c.labels().get(labels::CSTOR_VOLUME_NAME).cloned())
                .collect();
            for v in volumes {
                view.pool.volume_cvrs.extend(
                    cvrs.list(&by_label(labels::CSTOR_VOLUME_NAME, &v))
                        .await
                        .step("list CVRs of volume", &v)?
                        .items,
                );
                if let Some(cv) = ctx
                    .ns::<CStorVolume>()
                    .get_opt(&v)
                    .await
                    .step("get CStorVolume", &v)?
                {
                    view.pool.volumes.push(cv);
                }
            }
            view.pool.cspi = cspi;
        }
        Subject::Cspc(name) => {
            view.cluster.cspc = ctx
                .ns::<CStorPoolCluster>()
                .get_opt(&name)
                .await
                .step("get CSPC", &name)?;
            view.cluster.cspis = ctx
                .ns::<CStorPoolInstance>()
                .list(&by_label(labels::CSTOR_POOL_CLUSTER, &name))
                .await
                .step("list CSPIs of CSPC", &name)?
                .items
                .into_iter()
                .filter(|c| c.meta().deletion_timestamp.is_none())
                .collect();
            view.cluster.facts = cspc_facts(ctx).await?;
            view.cluster.children = all
                .iter()
                .filter(|t| {
                    t.owner_references()
                        .iter()
                        .any(|o| Some(&o.uid) == my_uid.as_ref())
                })
                .filter_map(|t| match decide::subject(t) {
                    Subject::Cspi(c) => Some((c, t.clone())),
                    _ => None,
                })
                .collect();
        }
        Subject::Volume(pv) => {
            view.volume.cv = ctx
                .ns::<CStorVolume>()
                .get_opt(&pv)
                .await
                .step("get CStorVolume", &pv)?;
            view.volume.cvc = ctx
                .ns::<CStorVolumeConfig>()
                .get_opt(&pv)
                .await
                .step("get CStorVolumeConfig", &pv)?;
            view.volume.cvrs = ctx
                .ns::<CStorVolumeReplica>()
                .list(&by_label(labels::CSTOR_VOLUME_NAME, &pv))
                .await
                .step("list CVRs of volume", &pv)?
                .items;
            for c in &view.volume.cvrs {
                if let Some(pool) = c.labels().get(labels::CSPI_NAME)
                    && !view.volume.cspis.contains_key(pool)
                    && let Some(p) = ctx
                        .ns::<CStorPoolInstance>()
                        .get_opt(pool)
                        .await
                        .step("get CSPI", pool)?
                {
                    view.volume.cspis.insert(pool.clone(), p);
                }
            }
            view.volume.deployment = ctx
                .ns::<Deployment>()
                .get_opt(&crate::cvc::objects::target_name(&pv))
                .await
                .step("get target Deployment", &pv)?;
        }
        Subject::Unsupported(_) | Subject::Missing => {}
    }
    Ok(view)
}

/// What the CSPC admission rules read, as the webhook reads it (docs/admission.md).
async fn cspc_facts(ctx: &Context) -> Result<cstor_policy::facts::CspcFacts, Error> {
    use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};
    let lp = ListParams::default();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(ctx.client.clone());
    let nodes = nodes
        .list(&lp)
        .await
        .step("list Nodes", "(all)")?
        .items
        .iter()
        .map(|n| cstor_policy::facts::NodeFact {
            name: n.name_any(),
            labels: n.labels().clone(),
        })
        .collect();
    let block_devices = ctx
        .ns::<BlockDevice>()
        .list(&lp)
        .await
        .step("list BlockDevices", &ctx.namespace)?
        .items
        .into_iter()
        .map(|b| (b.name_any(), b))
        .collect();
    let block_device_claims = ctx
        .ns::<BlockDeviceClaim>()
        .list(&lp)
        .await
        .step("list BlockDeviceClaims", &ctx.namespace)?
        .items
        .into_iter()
        .map(|b| (b.name_any(), b))
        .collect();
    Ok(cstor_policy::facts::CspcFacts {
        nodes,
        block_devices,
        block_device_claims,
        ..Default::default()
    })
}

/// The status after `decision`.
pub fn next_status(
    status: &UpgradeTaskStatus,
    decision: &Decision,
    at: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> UpgradeTaskStatus {
    let mut s = status.clone();
    let end = match &decision.next {
        Next::Act(_) | Next::Wait => StepEnd::Running,
        Next::Complete => StepEnd::Completed,
        Next::Fail { reason } => StepEnd::Failed(reason),
        Next::Done => StepEnd::Done,
    };
    crate::task::advance(
        crate::task::Progress {
            steps: &mut s.upgrade_detailed_statuses,
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

/// Writes the status `decision` leads to (when it changes) and announces new steps, failures
/// and the end as Events; returns the task as written.
async fn record(
    task: &UpgradeTask,
    ctx: &Context,
    decision: &Decision,
) -> Result<UpgradeTask, Error> {
    let status = next_status(&task.status, decision, &now());
    if status == task.status {
        return Ok(task.clone());
    }
    let name = task.name_any();
    let body = json!({
        "apiVersion": "openebs.io/v1alpha1",
        "kind": "UpgradeTask",
        "metadata": {"name": name, "namespace": ctx.namespace},
        "status": status,
    });
    let written = ctx
        .ns::<UpgradeTask>()
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .step("apply status of UpgradeTask", &name)?;
    let new_step = !task
        .status
        .upgrade_detailed_statuses
        .iter()
        .any(|e| e.step == decision.step);
    let reference = task.object_ref(&());
    let (type_, reason, note) = match &decision.next {
        Next::Fail { reason } => (
            EventType::Warning,
            "UpgradeFailed",
            format!("{} failed ({reason}): {}", decision.step, decision.message),
        ),
        Next::Done => (
            EventType::Normal,
            "UpgradeSucceeded",
            decision.message.clone(),
        ),
        Next::Complete => (
            EventType::Normal,
            reasons::UPGRADE_STEP,
            format!("{} completed: {}", decision.step, decision.message),
        ),
        _ if new_step => (
            EventType::Normal,
            reasons::UPGRADE_STEP,
            format!("{}: {}", decision.step, decision.message),
        ),
        _ => return Ok(written),
    };
    events::publish(&ctx.recorder, &reference, type_, reason, note, "Upgrade").await;
    Ok(written)
}

/// Rolls Deployment `name` to `ours`: its pod template is replaced whole (a template another
/// release wrote, the Go operators' included, keeps nothing of its own), then the whole
/// object is applied by its owner's field manager `manager`, which keeps it from then on.
/// Both are no-ops when repeated, so a task resumed after a crash rolls the pods once.
async fn roll(ctx: &Context, name: &str, ours: &Deployment, manager: &str) -> Result<(), Error> {
    let api = ctx.ns::<Deployment>();
    let template = serde_json::to_value(&ours.spec.template)?;
    let replace = json!([{"op": "replace", "path": "/spec/template", "value": template}]);
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        },
        &Patch::Json::<()>(serde_json::from_value(replace)?),
    )
    .await
    .step("replace the pod template of Deployment", name)?;
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(ours),
    )
    .await
    .step("apply Deployment", name)?;
    Ok(())
}

/// Carries out one change of the task.
async fn apply(task: &UpgradeTask, ctx: &Context, act: &Act) -> Result<(), Error> {
    let to = task.spec.to_version.clone();
    let desire = json!({"versionDetails": {"desired": to}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match act {
        Act::Desire { kind, name } => {
            let patch = Patch::Merge(&desire);
            match kind {
                Kind::Cspc => ctx
                    .ns::<CStorPoolCluster>()
                    .patch(name, &params, &patch)
                    .await
                    .map(|_| ()),
                Kind::Cspi => ctx
                    .ns::<CStorPoolInstance>()
                    .patch(name, &params, &patch)
                    .await
                    .map(|_| ()),
                Kind::Cvr => ctx
                    .ns::<CStorVolumeReplica>()
                    .patch(name, &params, &patch)
                    .await
                    .map(|_| ()),
                Kind::Cv => ctx
                    .ns::<CStorVolume>()
                    .patch(name, &params, &patch)
                    .await
                    .map(|_| ()),
                Kind::Cvc => ctx
                    .ns::<CStorVolumeConfig>()
                    .patch(name, &params, &patch)
                    .await
                    .map(|_| ()),
            }
            .step("set versionDetails.desired of", name)?;
        }
        Act::RollPool { cspi } => {
            let Role::Pools(config) = &ctx.role else {
                return Ok(());
            };
            let cspi_obj = ctx
                .ns::<CStorPoolInstance>()
                .get(cspi)
                .await
                .step("get CSPI", cspi)?;
            let cspc_name = cspi_obj
                .labels()
                .get(labels::CSTOR_POOL_CLUSTER)
                .cloned()
                .unwrap_or_default();
            let cspc = ctx
                .ns::<CStorPoolCluster>()
                .get(&cspc_name)
                .await
                .step("get CSPC", &cspc_name)?;
            // Our pool-manager runs as its own account (a Go one ran as the operator's).
            let owner = crate::cspc::claim::controller_ref(&cspi_obj).ok_or_else(|| {
                Error::MissingField {
                    kind: "CStorPoolInstance",
                    name: cspi.clone(),
                    field: "uid",
                }
            })?;
            crate::agent_identity::ensure(
                &ctx.client,
                &ctx.namespace,
                &config.pool_manager_account,
                cspi,
                &owner,
                crate::cspc::FIELD_MANAGER,
            )
            .await?;
            let deployment =
                crate::cspc::deployment::pool_manager_deployment(&cspc, &cspi_obj, config)?;
            roll(ctx, cspi, &deployment, crate::cspc::FIELD_MANAGER).await?;
        }
        Act::RollTarget { pv } => {
            let Role::Volumes(config) = &ctx.role else {
                return Ok(());
            };
            let cvc = ctx
                .ns::<CStorVolumeConfig>()
                .get(pv)
                .await
                .step("get CStorVolumeConfig", pv)?;
            let cv = ctx
                .ns::<CStorVolume>()
                .get(pv)
                .await
                .step("get CStorVolume", pv)?;
            let owner =
                crate::cspc::claim::controller_ref(&cv).ok_or_else(|| Error::MissingField {
                    kind: "CStorVolume",
                    name: pv.clone(),
                    field: "uid",
                })?;
            crate::agent_identity::ensure(
                &ctx.client,
                &ctx.namespace,
                &config.volume_manager_account,
                pv,
                &owner,
                crate::cvc::FIELD_MANAGER,
            )
            .await?;
            let policy = crate::cvc::objects::with_defaults(cvc.spec.policy.clone());
            let deployment = crate::cvc::objects::target_deployment(&cvc, &cv, &policy, config)?;
            roll(
                ctx,
                &crate::cvc::objects::target_name(pv),
                &deployment,
                crate::cvc::FIELD_MANAGER,
            )
            .await?;
        }
        Act::CreateChild { cspi } => {
            let owner = task.controller_owner_ref(&()).map(|mut o| {
                o.controller = Some(false);
                o
            });
            let child = UpgradeTask {
                metadata: kube::core::ObjectMeta {
                    name: Some(decide::cspi_task_name(cspi)),
                    namespace: Some(ctx.namespace.clone()),
                    owner_references: owner.map(|o| vec![o]),
                    ..Default::default()
                },
                spec: UpgradeTaskSpec {
                    from_version: task.spec.from_version.clone(),
                    to_version: to,
                    options: task.spec.options.clone(),
                    cstor_pool_instance: Some(UpgradeCStorPoolInstance {
                        cspi_name: cspi.clone(),
                        options: task
                            .spec
                            .cstor_pool_cluster
                            .as_ref()
                            .and_then(|c| c.options.clone()),
                    }),
                    ..Default::default()
                },
                status: Default::default(),
            };
            match ctx
                .ns::<UpgradeTask>()
                .create(&PostParams::default(), &child)
                .await
            {
                Ok(_) => {}
                Err(e) if crate::meta::is_already_exists(&e) => {}
                Err(e) => {
                    return Err(cstor_runtime::errors::ApiError::new(
                        "create UpgradeTask of",
                        cspi,
                        e,
                    )
                    .into());
                }
            }
        }
    }
    Ok(())
}
