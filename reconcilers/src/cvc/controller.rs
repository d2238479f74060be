//! The CVC reconcile: I/O around the pure decisions of the sibling modules. Level-based and
//! idempotent: every step is get-or-create with deterministic names, status is written with
//! server-side apply on the status subresource, and each pass requeues (soon while waiting).

use cstor_runtime::reasons;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cstor_api::cstor_v1::{
    CStorPoolInstance, CStorVolume, CStorVolumeConfig, CStorVolumeConfigStatus, CStorVolumePolicy,
    CStorVolumePolicySpec, CStorVolumeReplica, ReplicaPoolInfo,
    cvc::{condition_type, phase},
    cvr,
};
use cstor_api::keys::{annotations, finalizers, labels};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use super::decide::{
    ResizeStep, ScaleDownStep, ScaleOp, provision_request, resize_step, scale_down_step, scale_op,
};
use super::objects::{
    ReplicaPool, clone_source, cv_apply, cvr_name, cvr_object, initial_cv_spec, pdb_covers,
    pdb_object, policy_hash, populated_version, replica_id, storage, target_deployment,
    target_name, target_service, with_defaults,
};
use super::placement::{Candidate, ExistingReplica, POOLS_SELECTED, PlacementInput, place};
use super::status::{self as st, condition, remove_condition, set_condition};
use super::{CvcConfig, FIELD_MANAGER};
use crate::Error;
use crate::meta::{delete_ignore_missing, has_finalizer, is_already_exists, is_deleting};

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
struct Apis {
    cvcs: Api<CStorVolumeConfig>,
    cvs: Api<CStorVolume>,
    cvrs: Api<CStorVolumeReplica>,
    cspis: Api<CStorPoolInstance>,
    cvps: Api<CStorVolumePolicy>,
    services: Api<Service>,
    deployments: Api<Deployment>,
    pdbs: Api<PodDisruptionBudget>,
}

impl Apis {
    fn new(client: &Client, ns: &str) -> Self {
        Apis {
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

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Merge patches carry our manager name too, so managedFields say who wrote what.
fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// The CVRs of volume `pv`.
fn of_volume(pv: &str) -> ListParams {
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
fn pool_of(cvr: &CStorVolumeReplica) -> Option<String> {
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
fn volume_id(cvc: &CStorVolumeConfig) -> String {
    cvc.annotations()
        .get(annotations::VOLUME_ID)
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| cvc.name_any())
}

/// One reconcile's working state: the status being built and the requeue wanted.
struct Pass<'a> {
    ctx: &'a Context,
    cvc: &'a CStorVolumeConfig,
    apis: Apis,
    now: Time,
    status: CStorVolumeConfigStatus,
    /// The status last applied in this pass (the live one before any write).
    written: Option<CStorVolumeConfigStatus>,
    requeue: Duration,
}

impl Pass<'_> {
    fn name(&self) -> String {
        self.cvc.name_any()
    }

    fn generation(&self) -> Option<i64> {
        self.cvc.metadata.generation
    }

    fn soon(&mut self, d: Duration) {
        self.requeue = self.requeue.min(d);
    }

    /// Sets a condition; `true` when it changed (callers publish an Event then).
    fn set(&mut self, type_: &str, reason: &str, message: impl Into<String>) -> bool {
        let c = condition(type_, reason, message, self.generation());
        set_condition(&mut self.status.conditions, c, &self.now)
    }

    fn has(&self, type_: &str, reason: &str) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.reason == reason)
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        publish(self.ctx, self.cvc, type_, reason, note).await;
    }

    /// Sets a condition and publishes an Event when it changed.
    async fn report(&mut self, type_: &str, reason: &str, message: String, ev: EventType) {
        if self.set(type_, reason, message.clone()) {
            self.event(ev, reason, message).await;
        }
    }

    /// Server-side applies the status (only when it differs from the live one).
    async fn write_status(&mut self) -> Result<(), Error> {
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
            .await?;
        self.written = Some(self.status.clone());
        Ok(())
    }

    /// Merge-patches the CVC object (labels, spec): no server-side apply here, because later
    /// applies that omit a field would delete what an earlier apply set.
    async fn patch_cvc(&self, patch: Value) -> Result<(), Error> {
        self.apis
            .cvcs
            .patch(&self.name(), &patch_params(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// Merge-patches the CV's spec: after creation the volume-manager co-owns it (RF, CF,
    /// knownReplicas), so only the fields changed are sent.
    async fn patch_cv_spec(&self, spec: Value) -> Result<(), Error> {
        self.apis
            .cvs
            .patch(
                &self.name(),
                &patch_params(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await?;
        Ok(())
    }
}

async fn publish(
    ctx: &Context,
    cvc: &CStorVolumeConfig,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = cvc.object_ref(&());
    cstor_runtime::events::publish(&ctx.recorder, &reference, type_, reason, note, "Reconcile")
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
    let version = &ctx.config.operator_version;
    // As in the Go operators: populate versionDetails once; refuse CVCs of another operator version.
    if let Some(vd) = populated_version(cvc, version) {
        apis.cvcs
            .patch(
                &cvc.name_any(),
                &patch_params(),
                &Patch::Merge(json!({"versionDetails": vd})),
            )
            .await?;
    } else {
        let current = cvc
            .version_details
            .as_ref()
            .and_then(|v| v.status.as_ref())
            .map(|s| s.current.clone())
            .unwrap_or_default();
        if current != *version {
            publish(
                ctx,
                cvc,
                EventType::Warning,
                "CVC Reconcile",
                format!(
                    "can not reconcile CVC {} as cvc operator version is {version} but cvc version is {current}",
                    cvc.name_any()
                ),
            )
            .await;
            return Ok(Action::requeue(ctx.config.resync));
        }
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

/// Records why a Pending CVC can't proceed: condition `Provisioning`, Warning Event, requeue.
async fn pending_problem(pass: &mut Pass<'_>, reason: &str, message: String) {
    pass.report(st::PROVISIONING, reason, message, EventType::Warning)
        .await;
    if pass.status.phase.is_empty() {
        pass.status.phase = phase::PENDING.into();
    }
    pass.soon(MEDIUM_REQUEUE);
}

/// As in the Go operators: Service, CV, target Deployment, CVRs on placed pools, PDB, then Bound.
async fn provision(pass: &mut Pass<'_>) -> Result<(), Error> {
    let cvc = pass.cvc;
    let name = pass.name();
    let ns = cvc
        .namespace()
        .unwrap_or_else(|| pass.ctx.config.namespace.clone());
    let version = pass.ctx.config.operator_version.clone();
    if pass.status.phase.is_empty() {
        pass.status.phase = phase::PENDING.into();
    }

    // 1. Policy: the named CStorVolumePolicy, else the CVC's own; target defaults filled in.
    let policy_name = cvc
        .annotations()
        .get(annotations::VOLUME_POLICY)
        .filter(|p| !p.is_empty())
        .cloned();
    let mut policy = match &policy_name {
        Some(p) => match pass.apis.cvps.get_opt(p).await? {
            Some(cvp) => with_defaults(cvp.spec),
            None => {
                let msg = format!(
                    "CStorVolumePolicy {p} (annotation {}) not found in namespace {ns}",
                    annotations::VOLUME_POLICY
                );
                pending_problem(pass, st::POLICY_NOT_FOUND, msg).await;
                return Ok(());
            }
        },
        None => with_defaults(cvc.spec.policy.clone()),
    };
    if policy_name.is_some() && !cvc.spec.policy.replica_pool_info.is_empty() {
        // Pools pinned on the claim itself win over the policy's.
        policy.replica_pool_info = cvc.spec.policy.replica_pool_info.clone();
    }

    // Input checks: each problem is a condition, never a panic.
    let request = match provision_request(cvc) {
        Ok(r) => r,
        Err(p) => {
            pending_problem(pass, p.reason, p.message).await;
            return Ok(());
        }
    };
    let (cspc, provision_cap, replica_count) =
        (request.cspc, request.capacity, request.replica_count);

    // 2. Target Service.
    let service = match pass.apis.services.get_opt(&name).await? {
        Some(s) => s,
        None => {
            let svc = target_service(cvc, &version)?;
            match pass
                .apis
                .services
                .create(&PostParams::default(), &svc)
                .await
            {
                Ok(s) => {
                    pass.event(
                        EventType::Normal,
                        reasons::SERVICE_CREATED,
                        format!("Created target Service {name}"),
                    )
                    .await;
                    s
                }
                Err(e) if is_already_exists(&e) => pass.apis.services.get(&name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let cluster_ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .filter(|ip| !ip.is_empty() && ip != "None");
    let Some(cluster_ip) = cluster_ip else {
        let msg = format!("target Service {name} has no clusterIP yet");
        pending_problem(pass, st::WAITING_FOR_CLUSTER_IP, msg).await;
        pass.soon(SHORT_REQUEUE);
        return Ok(());
    };
    remove_condition(&mut pass.status.conditions, st::PROVISIONING);

    // 3. CStorVolume (spec/labels/owner by server-side apply, only when missing: afterwards the
    //    volume-manager co-owns its spec).
    let cv = match pass.apis.cvs.get_opt(&name).await? {
        Some(cv) => cv,
        None => {
            let body = cv_apply(cvc, &initial_cv_spec(cvc, &cluster_ip), &version, None)?;
            let cv = pass
                .apis
                .cvs
                .patch(&name, &apply_params(), &Patch::Apply(body))
                .await?;
            pass.event(
                EventType::Normal,
                reasons::VOLUME_CREATED,
                format!("Created CStorVolume {name} with target {cluster_ip}:3260"),
            )
            .await;
            cv
        }
    };

    // 4. Target Deployment.
    let deployment = target_deployment(cvc, &cv, &policy, &pass.ctx.config)?;
    let had_target = pass
        .apis
        .deployments
        .get_metadata_opt(&target_name(&name))
        .await?
        .is_some();
    pass.apis
        .deployments
        .patch(
            &target_name(&name),
            &apply_params(),
            &Patch::Apply(&deployment),
        )
        .await?;
    if !had_target {
        pass.event(
            EventType::Normal,
            reasons::TARGET_CREATED,
            format!("Created target Deployment {}", target_name(&name)),
        )
        .await;
    }

    // 5. Replicas: place the missing ones.
    let pinned = pool_names(&policy);
    let placed = place_replicas(
        pass,
        &cv,
        &policy,
        &pinned,
        &cspc,
        &provision_cap,
        replica_count,
        &version,
    )
    .await?;
    let Some(with_replicas) = placed else {
        return Ok(());
    };

    // 6–8. Pools, PDB, Bound.
    let pools = union_pools(&pinned, &with_replicas);
    let pdb = if pools.len() >= 3 {
        Some(ensure_pdb(pass, &ns, &cspc, &pools).await?)
    } else {
        None
    };
    pass.status.phase = phase::BOUND.into();
    pass.status.capacity = cvc.spec.capacity.clone();
    pass.status.pool_info = pools.clone();
    // Status first: the webhook only lets replicaPoolInfo grow past status.poolInfo once Bound.
    pass.write_status().await?;
    policy.replica_pool_info = pools
        .iter()
        .map(|p| ReplicaPoolInfo {
            pool_name: p.clone(),
        })
        .collect();
    let mut labels_patch = json!({ labels::TEMPLATE_HASH: policy_hash(&policy) });
    if let Some(p) = &pdb {
        labels_patch[labels::POD_DISRUPTION_BUDGET] = json!(p);
    }
    pass.patch_cvc(json!({
        "metadata": {"labels": labels_patch},
        "spec": {"cstorVolumeRef": cv.object_ref(&()), "policy": policy},
    }))
    .await?;
    pass.event(
        EventType::Normal,
        reasons::SYNCED,
        "cstorvolumeconfig created successfully".into(),
    )
    .await;
    Ok(())
}

/// Places the replicas a Pending volume still misses (`place` decides, recording why it
/// rejected each pool in `PoolPlacement`) and creates their CVRs. `Ok(None)`: not enough pools,
/// the CVC stays Pending; else the pools that hold a replica now.
#[allow(clippy::too_many_arguments)]
async fn place_replicas(
    pass: &mut Pass<'_>,
    cv: &CStorVolume,
    policy: &CStorVolumePolicySpec,
    pinned: &[String],
    cspc: &str,
    provision_cap: &str,
    replica_count: usize,
    version: &str,
) -> Result<Option<Vec<String>>, Error> {
    let cvc = pass.cvc;
    let name = pass.name();
    let cvrs = pass.apis.cvrs.list(&of_volume(&name)).await?.items;
    let mut with_replicas: Vec<String> = cvrs.iter().filter_map(pool_of).collect();
    let needed = replica_count.saturating_sub(cvrs.len());
    if needed > 0 {
        let cspis = pass
            .apis
            .cspis
            .list(&ListParams::default().labels(&format!("{}={cspc}", labels::CSTOR_POOL_CLUSTER)))
            .await?
            .items;
        let candidates: Vec<Candidate> = cspis.iter().map(Candidate::from_cspi).collect();
        let existing: Vec<ExistingReplica> = cvrs
            .iter()
            .map(|r| ExistingReplica {
                cvr: r.name_any(),
                pool: pool_of(r).unwrap_or_default(),
                node: r
                    .annotations()
                    .get(annotations::CSPI_HOSTNAME)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        let source = clone_source(cvc);
        let mut source_pools = BTreeSet::new();
        if let Some((src, _)) = &source {
            for r in pass.apis.cvrs.list(&of_volume(src)).await?.items {
                if let Some(p) = pool_of(&r) {
                    source_pools.insert(p);
                }
            }
        }
        let affinity = policy
            .provision
            .as_ref()
            .is_some_and(|p| p.replica_affinity);
        let node_id = cvc
            .publish
            .as_ref()
            .map(|p| p.node_id.clone())
            .filter(|n| !n.is_empty());
        if affinity && let Some(n) = &node_id {
            pass.event(
                EventType::Normal,
                reasons::PROVISIONING,
                format!("replica affinity is enabled, nodeID is {n}"),
            )
            .await;
        }
        let input = PlacementInput {
            volume: &name,
            cspc,
            replica_count,
            needed,
            capacity: provision_cap,
            pinned,
            candidates: &candidates,
            existing: &existing,
            source: source.as_ref().map(|(s, _)| (s.as_str(), &source_pools)),
            affinity_node: if affinity { node_id.as_deref() } else { None },
        };
        let placement = place(&input);
        let ok = placement.reason == POOLS_SELECTED;
        let ev = if ok {
            EventType::Normal
        } else {
            EventType::Warning
        };
        pass.report(
            st::POOL_PLACEMENT,
            placement.reason,
            placement.message.clone(),
            ev,
        )
        .await;
        if !ok {
            // Stay Pending; a CSPI change (a pool coming ONLINE) re-triggers us sooner.
            pass.soon(MEDIUM_REQUEUE);
            return Ok(None);
        }
        for pool in &placement.selected {
            let Some(cspi) = cspis.iter().find(|c| &c.name_any() == pool) else {
                continue;
            };
            let target = ReplicaPool {
                name: pool.clone(),
                uid: cspi.uid().unwrap_or_default(),
                hostname: Candidate::from_cspi(cspi).node,
            };
            let obj = cvr_object(cvc, cv, &target, provision_cap, "", version)?;
            match pass.apis.cvrs.create(&PostParams::default(), &obj).await {
                Ok(_) => {
                    pass.event(
                        EventType::Normal,
                        reasons::REPLICA_CREATED,
                        format!(
                            "Created CStorVolumeReplica {} on pool {pool}",
                            cvr_name(&name, pool)
                        ),
                    )
                    .await;
                }
                Err(e) if is_already_exists(&e) => {}
                Err(e) => return Err(e.into()),
            }
            with_replicas.push(pool.clone());
        }
    } else if !pass.has(st::POOL_PLACEMENT, POOLS_SELECTED) {
        let msg = format!(
            "all {replica_count} replica(s) placed: {}",
            with_replicas.join(", ")
        );
        pass.set(st::POOL_PLACEMENT, POOLS_SELECTED, msg);
    }
    Ok(Some(with_replicas))
}

/// Get-or-create the PDB over `pools`: reuse one covering exactly these pools (also a PDB made
/// by the Go operator), else create the deterministic one. Returns its name.
async fn ensure_pdb(
    pass: &Pass<'_>,
    ns: &str,
    cspc: &str,
    pools: &[String],
) -> Result<String, Error> {
    let selector = pools
        .iter()
        .map(|p| format!("{}=true", labels::pdb_pool(p)))
        .collect::<Vec<_>>()
        .join(",");
    let found = pass
        .apis
        .pdbs
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    if let Some(p) = found.iter().find(|p| pdb_covers(p, pools)) {
        return Ok(p.name_any());
    }
    let pdb = pdb_object(ns, cspc, pools);
    let name = pdb.name_any();
    match pass.apis.pdbs.create(&PostParams::default(), &pdb).await {
        Ok(_) => {
            pass.event(
                EventType::Normal,
                reasons::PDB_CREATED,
                format!(
                    "Created PodDisruptionBudget {name} over pools {}",
                    pools.join(", ")
                ),
            )
            .await;
        }
        Err(e) if is_already_exists(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(name)
}

/// Deletes PDB `pdb` unless a CVC other than `cvc` still names it.
async fn delete_pdb_if_unused(
    ctx: &Context,
    apis: &Apis,
    cvc: &CStorVolumeConfig,
    pdb: &str,
) -> Result<(), Error> {
    let lp = ListParams::default().labels(&format!("{}={pdb}", labels::POD_DISRUPTION_BUDGET));
    let users = apis.cvcs.list_metadata(&lp).await?.items;
    if users.iter().any(|u| u.name_any() != cvc.name_any()) {
        return Ok(());
    }
    delete_ignore_missing(&apis.pdbs, pdb).await?;
    publish(
        ctx,
        cvc,
        EventType::Normal,
        reasons::PDB_DELETED,
        format!("Deleted PodDisruptionBudget {pdb}"),
    )
    .await;
    Ok(())
}

/// The Go operators' step 4: the PDB follows the replica pools after a scale.
async fn sync_pdb(pass: &Pass<'_>, pools: &[String]) -> Result<(), Error> {
    let ns = pass
        .cvc
        .namespace()
        .unwrap_or_else(|| pass.ctx.config.namespace.clone());
    let cspc = pass
        .cvc
        .labels()
        .get(labels::CSTOR_POOL_CLUSTER)
        .cloned()
        .unwrap_or_default();
    let old = pass
        .cvc
        .labels()
        .get(labels::POD_DISRUPTION_BUDGET)
        .cloned();
    let want = if pools.len() >= 3 && !cspc.is_empty() {
        Some(ensure_pdb(pass, &ns, &cspc, pools).await?)
    } else {
        None
    };
    if old == want {
        return Ok(());
    }
    if let Some(o) = &old {
        delete_pdb_if_unused(pass.ctx, &pass.apis, pass.cvc, o).await?;
    }
    pass.patch_cvc(json!({"metadata": {"labels": {labels::POD_DISRUPTION_BUDGET: want}}}))
        .await
}

/// A Bound volume: resize, scale replicas, follow policy edits.
async fn bound(pass: &mut Pass<'_>) -> Result<(), Error> {
    let cvc = pass.cvc;
    let name = pass.name();
    let spec_pools = pool_names(&cvc.spec.policy);
    if spec_pools.is_empty() && !pass.status.pool_info.is_empty() {
        // Bound was written but the spec patch after it was not: finish binding, don't scale.
        let mut policy = cvc.spec.policy.clone();
        policy.replica_pool_info = pass
            .status
            .pool_info
            .iter()
            .map(|p| ReplicaPoolInfo {
                pool_name: p.clone(),
            })
            .collect();
        pass.patch_cvc(json!({
            "metadata": {"labels": {labels::TEMPLATE_HASH: policy_hash(&policy)}},
            "spec": {"policy": {"replicaPoolInfo": policy.replica_pool_info}},
        }))
        .await?;
        pass.soon(SHORT_REQUEUE);
        return Ok(());
    }
    let Some(cv) = pass.apis.cvs.get_opt(&name).await? else {
        let msg = format!("CStorVolume {name} of this Bound claim is missing");
        pass.report(st::PROVISIONING, "VolumeMissing", msg, EventType::Warning)
            .await;
        pass.soon(MEDIUM_REQUEUE);
        return Ok(());
    };
    if pass.has(st::PROVISIONING, "VolumeMissing") {
        remove_condition(&mut pass.status.conditions, st::PROVISIONING);
    }
    resize(pass, &cv).await?;
    scale(pass, &cv, &spec_pools).await?;
    sync_policy(pass, &cv).await
}

/// As in the Go operators: grow the CV and the CVRs; done when the target reports the size; never shrink.
async fn resize(pass: &mut Pass<'_>, cv: &CStorVolume) -> Result<(), Error> {
    let cvc = pass.cvc;
    let name = pass.name();
    let step = resize_step(
        storage(&cvc.spec.capacity),
        storage(&pass.status.capacity),
        cv,
    );
    let failed = condition_type::VOLUME_RESIZE_FAILED;
    match step {
        ResizeStep::Nothing => {
            remove_condition(&mut pass.status.conditions, failed);
        }
        ResizeStep::Invalid { message } => {
            pass.report(failed, st::INVALID_CAPACITY, message, EventType::Warning)
                .await;
        }
        ResizeStep::Shrink { from, to } => {
            let msg = format!(
                "shrinking volume {name} from {from} to {to} is not supported; nothing was changed"
            );
            pass.report(failed, st::SHRINK_NOT_SUPPORTED, msg, EventType::Warning)
                .await;
        }
        ResizeStep::Grow { to } | ResizeStep::InProgress { to } => {
            remove_condition(&mut pass.status.conditions, failed);
            let asked = cv.spec.capacity.as_ref() == Some(&to);
            if !asked {
                pass.patch_cv_spec(json!({"capacity": to})).await?;
            }
            grow_replicas(pass, &to).await?;
            let from = storage(&pass.status.capacity)
                .map(|q| q.0.clone())
                .unwrap_or_default();
            let msg = format!(
                "resizing volume from {from} to {}; waiting for the target to report the new size",
                to.0
            );
            if pass.set(condition_type::RESIZING, st::RESIZE_IN_PROGRESS, msg) || !asked {
                pass.event(
                    EventType::Normal,
                    reasons::RESIZING,
                    format!("CVCController is resizing volume {name}"),
                )
                .await;
            }
            pass.soon(MEDIUM_REQUEUE);
        }
        ResizeStep::Done { to } => {
            pass.status.capacity.insert("storage".into(), to.clone());
            remove_condition(&mut pass.status.conditions, condition_type::RESIZING);
            remove_condition(
                &mut pass.status.conditions,
                condition_type::VOLUME_RESIZE_PENDING,
            );
            remove_condition(&mut pass.status.conditions, failed);
            pass.set(
                condition_type::VOLUME_RESIZE_SUCCESSFUL,
                st::RESIZE_SUCCEEDED,
                format!("volume resized to {}", to.0),
            );
            pass.event(
                EventType::Normal,
                reasons::VOLUME_RESIZE_SUCCESSFUL,
                "Resize volume succeeded".into(),
            )
            .await;
        }
    }
    Ok(())
}

/// Brings every CVR of the volume to `spec.capacity = to`.
async fn grow_replicas(pass: &Pass<'_>, to: &Quantity) -> Result<(), Error> {
    for r in pass.apis.cvrs.list(&of_volume(&pass.name())).await?.items {
        if r.spec.capacity != to.0 {
            pass.apis
                .cvrs
                .patch(
                    &r.name_any(),
                    &patch_params(),
                    &Patch::Merge(json!({"spec": {"capacity": to.0}})),
                )
                .await?;
        }
    }
    Ok(())
}

/// As in the Go operators: scale up (several at once) or down (one at a time, after the target let go).
async fn scale(pass: &mut Pass<'_>, cv: &CStorVolume, spec_pools: &[String]) -> Result<(), Error> {
    let name = pass.name();
    let from = pass.status.pool_info.len();
    let to = spec_pools.len();
    match scale_op(spec_pools, &pass.status.pool_info) {
        ScaleOp::None => {}
        ScaleOp::Migration => {
            let msg = "Migration of volume replicas is not yet supported".to_string();
            if pass.set(
                st::REPLICA_SCALING,
                st::MIGRATION_NOT_SUPPORTED,
                msg.clone(),
            ) {
                pass.event(EventType::Warning, reasons::MIGRATION, msg)
                    .await;
            }
        }
        ScaleOp::Up { add } => {
            if let Some(drf) = super::decide::scale_up_drf(cv, to) {
                pass.patch_cv_spec(json!({"desiredReplicationFactor": drf}))
                    .await?;
            }
            let capacity = storage(&pass.status.capacity)
                .or_else(|| storage(&pass.cvc.spec.capacity))
                .map(|q| q.0.clone())
                .unwrap_or_default();
            let mut errors = Vec::new();
            let version = pass.ctx.config.operator_version.clone();
            for pool in &add {
                let Some(cspi) = pass.apis.cspis.get_opt(pool).await? else {
                    errors.push(format!("CStorPoolInstance {pool} not found"));
                    continue;
                };
                let target = ReplicaPool {
                    name: pool.clone(),
                    uid: cspi.uid().unwrap_or_default(),
                    hostname: Candidate::from_cspi(&cspi).node,
                };
                let id = replica_id(&volume_id(pass.cvc), pool);
                let obj = cvr_object(pass.cvc, cv, &target, &capacity, &id, &version)?;
                let cvr = cvr_name(&name, pool);
                let created = match pass.apis.cvrs.create(&PostParams::default(), &obj).await {
                    Ok(c) => {
                        pass.event(
                            EventType::Normal,
                            reasons::REPLICA_CREATED,
                            format!(
                                "Created CStorVolumeReplica {cvr} on pool {pool} (replica id {id})"
                            ),
                        )
                        .await;
                        Some(c)
                    }
                    Err(e) if is_already_exists(&e) => pass.apis.cvrs.get_opt(&cvr).await?,
                    Err(e) => return Err(e.into()),
                };
                // The status subresource ignores status on create: mark it for rebuild now.
                if let Some(c) = created
                    && c.status.as_ref().is_none_or(|s| s.phase.is_empty())
                {
                    pass.apis
                        .cvrs
                        .patch_status(
                            &cvr,
                            &patch_params(),
                            &Patch::Merge(json!({"status": {"phase": cvr::phase::RECREATE}})),
                        )
                        .await?;
                }
            }
            let have: BTreeSet<String> = pass
                .apis
                .cvrs
                .list(&of_volume(&name))
                .await?
                .items
                .iter()
                .filter_map(pool_of)
                .collect();
            if errors.is_empty() && add.iter().all(|p| have.contains(p)) {
                let pools = union_pools(&pass.status.pool_info, &add);
                sync_pdb(pass, &pools).await?;
                pass.status.pool_info = pools;
                finish_scale(pass, to).await;
            } else {
                let msg = if errors.is_empty() {
                    format!("scaling replicas from {from} to {to} in progress")
                } else {
                    format!(
                        "scaling replicas from {from} to {to}: {}",
                        errors.join("; ")
                    )
                };
                let reason = if errors.is_empty() {
                    st::SCALING_UP
                } else {
                    st::SCALING_FAILED
                };
                if pass.set(st::REPLICA_SCALING, reason, msg.clone()) {
                    pass.event(EventType::Warning, reasons::SCALING_VOLUME_REPLICAS, msg)
                        .await;
                }
                pass.soon(SHORT_REQUEUE);
            }
        }
        ScaleOp::Down { remove } => {
            let cvr = cvr_name(&name, &remove);
            let live = pass.apis.cvrs.get_opt(&cvr).await?;
            let id = live
                .as_ref()
                .map(|r| r.spec.replica_id.clone())
                .filter(|i| !i.is_empty());
            match scale_down_step(cv, &cvr, id.as_deref(), from, to) {
                ScaleDownStep::UpdateVolume { drf, known } => {
                    let old: BTreeMap<String, String> = cv
                        .spec
                        .replica_details
                        .as_ref()
                        .map(|d| d.known_replicas.clone())
                        .unwrap_or_default();
                    // A merge patch deletes a map key only through null.
                    let mut known_patch = serde_json::Map::new();
                    for k in old.keys().filter(|k| !known.contains_key(*k)) {
                        known_patch.insert(k.clone(), Value::Null);
                    }
                    pass.patch_cv_spec(json!({
                        "desiredReplicationFactor": drf,
                        "replicaDetails": {"knownReplicas": known_patch},
                    }))
                    .await?;
                    let msg = format!(
                        "scaling down volume replicas from {from} to {to}: asked the target to drop {cvr}"
                    );
                    if pass.set(st::REPLICA_SCALING, st::WAITING_FOR_TARGET, msg.clone()) {
                        pass.event(EventType::Normal, reasons::SCALING_VOLUME_REPLICAS, msg)
                            .await;
                    }
                    pass.soon(SHORT_REQUEUE);
                }
                ScaleDownStep::WaitForTarget { message } => {
                    pass.set(st::REPLICA_SCALING, st::WAITING_FOR_TARGET, message);
                    pass.soon(SHORT_REQUEUE);
                }
                ScaleDownStep::DeleteReplica => {
                    if live.is_some() {
                        delete_ignore_missing(&pass.apis.cvrs, &cvr).await?;
                    }
                    let pools: Vec<String> = pass
                        .status
                        .pool_info
                        .iter()
                        .filter(|p| **p != remove)
                        .cloned()
                        .collect();
                    sync_pdb(pass, &pools).await?;
                    pass.status.pool_info = pools;
                    finish_scale(pass, to).await;
                }
            }
        }
    }
    Ok(())
}

async fn finish_scale(pass: &mut Pass<'_>, to: usize) {
    let msg = format!("successfully scaled volume replicas to {to}");
    pass.set(st::REPLICA_SCALING, st::REPLICAS_SCALED, msg.clone());
    pass.event(EventType::Normal, reasons::SCALING_VOLUME_REPLICAS, msg)
        .await;
}

/// As in the Go operators, without the hash test: re-apply the target Deployment from `spec.policy` (a no-op
/// for the apiserver when nothing changed) and keep the template-hash label current.
async fn sync_policy(pass: &mut Pass<'_>, cv: &CStorVolume) -> Result<(), Error> {
    let cvc = pass.cvc;
    let name = pass.name();
    let policy = with_defaults(cvc.spec.policy.clone());
    let deployment = target_deployment(cvc, cv, &policy, &pass.ctx.config)?;
    if let Err(e) = pass
        .apis
        .deployments
        .patch(
            &target_name(&name),
            &apply_params(),
            &Patch::Apply(&deployment),
        )
        .await
    {
        pass.event(
            EventType::Warning,
            reasons::POLICY_SYNC,
            format!(
                "failed to patch target deployment {}: {e}",
                target_name(&name)
            ),
        )
        .await;
        return Err(e.into());
    }
    let hash = policy_hash(&cvc.spec.policy);
    let old = cvc.labels().get(labels::TEMPLATE_HASH).cloned();
    if old.as_deref() != Some(hash.as_str()) {
        pass.patch_cvc(json!({"metadata": {"labels": {labels::TEMPLATE_HASH: hash}}}))
            .await?;
        if old.is_some() {
            pass.event(
                EventType::Normal,
                reasons::POLICY_SYNC,
                format!("successfully sync policy for cvc {name}"),
            )
            .await;
        }
    }
    Ok(())
}

/// As in the Go operators: drop the PDB if only this volume used it, then our finalizer (only ours); the
/// garbage collector removes Service, CV, target and CVRs through their owners.
async fn deprovision(cvc: &CStorVolumeConfig, ctx: &Context, apis: &Apis) -> Result<Action, Error> {
    if !has_finalizer(cvc, finalizers::CVC) {
        return Ok(Action::await_change());
    }
    if let Some(pdb) = cvc.labels().get(labels::POD_DISRUPTION_BUDGET) {
        delete_pdb_if_unused(ctx, apis, cvc, pdb).await?;
    }
    if crate::meta::remove_finalizer(&apis.cvcs, &cvc.name_any(), finalizers::CVC).await? {
        publish(
            ctx,
            cvc,
            EventType::Normal,
            reasons::DE_PROVISIONING,
            format!(
                "volume {} de-provisioned; its target and replicas are removed with it",
                cvc.name_any()
            ),
        )
        .await;
    }
    Ok(Action::await_change())
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
