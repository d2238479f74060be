//! The CVC reconcile: reads the CVC, dispatches to provision, bound or deprovision, writes status;
//! the I/O half around the pure decisions of the sibling modules. Level-based and
//! idempotent: every step is get-or-create with deterministic names, status is written with
//! server-side apply on the status subresource, and each pass requeues (soon while waiting).

use cstor_runtime::errors::Step;
use std::sync::Arc;
use std::time::Duration;

use cstor_api::cstor_v1::{
    CStorPoolCluster, CStorPoolInstance, CStorVolume, CStorVolumeConfig, CStorVolumeConfigStatus,
    CStorVolumePolicy, CStorVolumePolicySpec, CStorVolumeReplica, cvc::phase,
};
use cstor_api::keys::{annotations, labels};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use super::bound::bound;
use super::deprovision::deprovision;
use super::provision::provision;
use super::status::{condition, set_condition};
use super::{CvcConfig, FIELD_MANAGER};
use crate::Error;
use crate::meta::is_deleting;

/// Requeue while waiting on the target or a replica.
pub const SHORT_REQUEUE: Duration = Duration::from_secs(5);
/// Requeue while waiting on things outside our control (pools, policies).
pub const MEDIUM_REQUEUE: Duration = Duration::from_secs(30);

/// Shared state of the CVC controller.
pub struct Context {
    pub client: Client,
    pub config: CvcConfig,
    pub recorder: Recorder,
    failures: cstor_runtime::Backoff,
}

impl Context {
    pub fn new(client: Client, config: CvcConfig, recorder: Recorder) -> Self {
        Context {
            client,
            config,
            recorder,
            failures: cstor_runtime::Backoff::default(),
        }
    }
}

/// The APIs one reconcile uses, all in the CVC's namespace.
pub(super) struct Apis {
    pub(super) cspcs: Api<CStorPoolCluster>,
    pub(super) cvcs: Api<CStorVolumeConfig>,
    pub(super) cvs: Api<CStorVolume>,
    pub(super) cvrs: Api<CStorVolumeReplica>,
    pub(super) cspis: Api<CStorPoolInstance>,
    pub(super) cvps: Api<CStorVolumePolicy>,
    pub(super) services: Api<Service>,
    pub(super) deployments: Api<Deployment>,
    pub(super) pdbs: Api<PodDisruptionBudget>,
}

impl Apis {
    fn new(client: &Client, ns: &str) -> Self {
        Apis {
            cspcs: Api::namespaced(client.clone(), ns),
            cvcs: Api::namespaced(client.clone(), ns),
            cvs: Api::namespaced(client.clone(), ns),
            cvrs: Api::namespaced(client.clone(), ns),
            cspis: Api::namespaced(client.clone(), ns),
            cvps: Api::namespaced(client.clone(), ns),
            services: Api::namespaced(client.clone(), ns),
            deployments: Api::namespaced(client.clone(), ns),
            pdbs: Api::namespaced(client.clone(), ns),
        }
    }
}

pub(super) fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Merge patches carry our manager name too, so managedFields say who wrote what.
pub(super) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// The CVRs of volume `pv`.
pub(super) fn of_volume(pv: &str) -> ListParams {
    ListParams::default().labels(&format!("{}={pv}", labels::PERSISTENT_VOLUME))
}

/// The pool names (`replicaPoolInfo`) of a policy.
pub fn pool_names(policy: &CStorVolumePolicySpec) -> Vec<String> {
    policy
        .replica_pool_info
        .iter()
        .map(|p| p.pool_name.clone())
        .collect()
}

/// The pool of a CVR (its `cstorpoolinstance.openebs.io/name` label).
pub(super) fn pool_of(cvr: &CStorVolumeReplica) -> Option<String> {
    cvr.labels().get(labels::CSPI_NAME).cloned()
}

/// `spec` pools first (in order), then the other pools holding a replica: the Go operators' step 8's union.
pub fn union_pools(spec: &[String], with_replicas: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in spec.iter().chain(with_replicas) {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// The name used in replica ids: annotation `openebs.io/volumeID`, else the CVC name.
pub(super) fn volume_id(cvc: &CStorVolumeConfig) -> String {
    cvc.annotations()
        .get(annotations::VOLUME_ID)
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| cvc.name_any())
}

/// One reconcile's working state: the status being built and the requeue wanted.
pub(super) struct Pass<'a> {
    pub(super) ctx: &'a Context,
    pub(super) cvc: &'a CStorVolumeConfig,
    pub(super) apis: Apis,
    pub(super) now: Time,
    pub(super) status: CStorVolumeConfigStatus,
    /// The status last applied in this pass (the live one before any write).
    pub(super) written: Option<CStorVolumeConfigStatus>,
    pub(super) requeue: Duration,
}

impl Pass<'_> {
    pub(super) fn name(&self) -> String {
        self.cvc.name_any()
    }

    pub(super) fn generation(&self) -> Option<i64> {
        self.cvc.metadata.generation
    }

    pub(super) fn soon(&mut self, d: Duration) {
        self.requeue = self.requeue.min(d);
    }

    /// Sets a condition; `true` when it changed (callers publish an Event then).
    pub(super) fn set(&mut self, type_: &str, reason: &str, message: impl Into<String>) -> bool {
        let c = condition(type_, reason, message, self.generation());
        set_condition(&mut self.status.conditions, c, &self.now)
    }

    pub(super) fn has(&self, type_: &str, reason: &str) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.reason == reason)
    }

    pub(super) async fn event(&self, type_: EventType, reason: &str, note: String) {
        publish(self.ctx, self.cvc, type_, reason, note).await;
    }

    /// Sets a condition and publishes an Event when it changed.
    pub(super) async fn report(
        &mut self,
        type_: &str,
        reason: &str,
        message: String,
        ev: EventType,
    ) {
        if self.set(type_, reason, message.clone()) {
            self.event(ev, reason, message).await;
        }
    }

    /// Server-side applies the status (only when it differs from the live one).
    pub(super) async fn write_status(&mut self) -> Result<(), Error> {
        if self.written.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let body = json!({
            "apiVersion": CStorVolumeConfig::api_version(&()),
            "kind": CStorVolumeConfig::kind(&()),
            "metadata": {"name": self.name()},
            "status": self.status,
        });
        self.apis
            .cvcs
            .patch_status(&self.name(), &apply_params(), &Patch::Apply(body))
            .await
            .step("apply status of CVC", self.name())?;
        self.written = Some(self.status.clone());
        Ok(())
    }

    /// Merge-patches the CVC object (labels, spec): no server-side apply here, because later
    /// applies that omit a field would delete what an earlier apply set.
    pub(super) async fn patch_cvc(&self, patch: Value) -> Result<(), Error> {
        self.apis
            .cvcs
            .patch(&self.name(), &patch_params(), &Patch::Merge(patch))
            .await
            .step("patch CVC", self.name())?;
        Ok(())
    }

    /// Merge-patches the CV's spec: after creation the volume-manager co-owns it (RF, CF,
    /// knownReplicas), so only the fields changed are sent.
    pub(super) async fn patch_cv_spec(&self, spec: Value) -> Result<(), Error> {
        self.apis
            .cvs
            .patch(
                &self.name(),
                &patch_params(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .step("patch CStorVolume spec", self.name())?;
        Ok(())
    }
}

pub(super) async fn publish(
    ctx: &Context,
    cvc: &CStorVolumeConfig,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = cvc.object_ref(&());
    cstor_runtime::events::publish(
        &ctx.recorder,
        &reference,
        type_,
        reason,
        note,
        cstor_runtime::reasons::action::RECONCILE,
    )
    .await;
}

/// One reconcile of a CVC.
pub async fn reconcile(cvc: Arc<CStorVolumeConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = crate::meta::key(cvc.as_ref());
    ctx.failures
        .reconcile("cvc", &key, reconcile_inner(&cvc, &ctx))
        .await
}

async fn reconcile_inner(cvc: &CStorVolumeConfig, ctx: &Context) -> Result<Action, Error> {
    let ns = cvc
        .namespace()
        .unwrap_or_else(|| ctx.config.namespace.clone());
    let apis = Apis::new(&ctx.client, &ns);
    if is_deleting(cvc) {
        return deprovision(cvc, ctx, &apis).await;
    }
    // As in the Go operators: populate versionDetails once; an older CVC waits for its
    // upgrade and a newer one is not touched (docs/upgrades.md).
    let version = &ctx.config.operator_version;
    if !crate::version::step(
        &apis.cvcs,
        &ctx.recorder,
        FIELD_MANAGER,
        cvc,
        version,
        version,
    )
    .await?
    {
        return Ok(Action::requeue(ctx.config.resync));
    }
    let mut pass = Pass {
        ctx,
        cvc,
        apis,
        now: cstor_runtime::now(),
        status: cvc.status.clone().unwrap_or_default(),
        written: cvc.status.clone(),
        requeue: ctx.config.resync,
    };
    if pass.status.phase == phase::BOUND {
        bound(&mut pass).await?;
    } else {
        provision(&mut pass).await?;
    }
    pass.write_status().await?;
    Ok(Action::requeue(pass.requeue))
}

fn error_policy(cvc: Arc<CStorVolumeConfig>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = crate::meta::key(cvc.as_ref());
    let (n, wait) = ctx.failures.failed(&key);
    tracing::warn!(cvc = %key, %error, category = error.category(), failures = n, "CVC reconcile failed");
    Action::requeue(wait)
}

/// The CVC of an object labelled `openebs.io/persistent-volume` (CVRs, the target).
pub fn volume_of<K: Resource>(obj: &K) -> Option<ObjectRef<CStorVolumeConfig>> {
    let name = obj.meta().labels.as_ref()?.get(labels::PERSISTENT_VOLUME)?;
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    Some(ObjectRef::new(name).within(&ns))
}

/// The Pending (or not yet phased) CVCs placed on `cspi`'s CSPC: a pool change may let them bind.
pub fn pending_cvcs_of(
    cspi: &CStorPoolInstance,
    cvcs: &[Arc<CStorVolumeConfig>],
) -> Vec<ObjectRef<CStorVolumeConfig>> {
    let Some(cspc) = cspi.labels().get(labels::CSTOR_POOL_CLUSTER) else {
        return Vec::new();
    };
    cvcs.iter()
        .filter(|c| c.labels().get(labels::CSTOR_POOL_CLUSTER) == Some(cspc))
        .filter(|c| c.status.as_ref().is_none_or(|s| s.phase != phase::BOUND))
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Runs the CVC controller in `ctx.config.namespace` until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = ctx.config.namespace.clone();
    let controller = Controller::new(
        Api::<CStorVolumeConfig>::namespaced(client.clone(), &ns),
        watcher::Config::default(),
    );
    let store: Store<CStorVolumeConfig> = controller.store();
    let target = format!(
        "{}={}",
        super::objects::TARGET_LABEL.0,
        super::objects::TARGET_LABEL.1
    );
    controller
        .owns(
            Api::<CStorVolume>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
        )
        .watches(
            Api::<CStorVolumeReplica>::namespaced(client.clone(), &ns),
            watcher::Config::default().labels(labels::PERSISTENT_VOLUME),
            |r| volume_of(&r),
        )
        .watches(
            Api::<Deployment>::namespaced(client.clone(), &ns),
            watcher::Config::default().labels(&target),
            |d| volume_of(&d),
        )
        .watches(
            Api::<CStorPoolInstance>::namespaced(client, &ns),
            watcher::Config::default().labels(labels::CSTOR_POOL_CLUSTER),
            move |cspi| pending_cvcs_of(&cspi, &store.state()),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "CVC controller event");
            }
        })
        .await;
}
