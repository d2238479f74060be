//! The CSPC reconcile: I/O around the pure decisions of the sibling modules. Level-based and
//! idempotent: every pass reads CSPC, CSPIs, claims, devices, nodes and Deployments, takes the
//! steps that are due, writes status with server-side apply and requeues.

use cstor_runtime::errors::Step;
use cstor_runtime::reasons;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cstor_api::common::{ConditionStatus, VersionDetails, VersionStatus};
use cstor_api::cstor_v1::{
    CStorPoolCluster, CStorPoolClusterStatus, CStorPoolInstance, CStorPoolInstanceSpec,
    CStorVolumeReplica,
};
use cstor_api::keys::{annotations, finalizers, labels};
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use super::claim::{ClaimStatus, bdc_for_bd, claim_status, cspc_owner};
use super::deployment::pool_manager_deployment;
use super::naming::free_cspi_name;
use super::status::{
    Instance, Problems, StatusInput, changed_conditions, cspc_status, pending_item,
};
use super::topology::{desired_cspi_spec, orphans_to_delete, pair};
use super::{CspcConfig, FIELD_MANAGER};
use crate::Error;
use crate::meta::{
    add_finalizer, delete_ignore_missing, has_finalizer, is_deleting, remove_finalizer,
};

/// Requeue while claims bind or pools are destroyed.
pub const SHORT_REQUEUE: Duration = Duration::from_secs(5);
/// Requeue while waiting on things not watched (Nodes, volume replicas).
pub const MEDIUM_REQUEUE: Duration = Duration::from_secs(30);

/// Shared state of the CSPC controller.
pub struct Context {
    pub client: Client,
    pub namespace: String,
    pub config: CspcConfig,
    pub recorder: Recorder,
    failures: cstor_runtime::Backoff,
}

impl Context {
    pub fn new(client: Client, namespace: String, config: CspcConfig, recorder: Recorder) -> Self {
        Context {
            client,
            namespace,
            config,
            recorder,
            failures: cstor_runtime::Backoff::default(),
        }
    }
}

/// The versionDetails of a new CSPI.
pub fn fresh_version(version: &str) -> VersionDetails {
    VersionDetails {
        auto_upgrade: false,
        desired: version.into(),
        status: Some(VersionStatus {
            dependents_upgraded: true,
            current: version.into(),
            ..VersionStatus::default()
        }),
    }
}

/// The server-side apply body of CSPI `name` of `cspc` with `spec`. `live` is the current CSPI
/// (`None` when creating): what this manager set before is sent again so the apply never drops
/// it (the disable annotation, versionDetails), and the CSPC finalizer is always part of it.
pub fn cspi_apply(
    cspc: &CStorPoolCluster,
    name: &str,
    spec: &CStorPoolInstanceSpec,
    version: &str,
    live: Option<&CStorPoolInstance>,
) -> Result<Value, Error> {
    let owner = cspc_owner(cspc).ok_or_else(|| Error::MissingField {
        kind: "CStorPoolCluster",
        name: cspc.name_any(),
        field: "uid",
    })?;
    let disable = match live {
        None => (cspc
            .annotations()
            .get(annotations::RECONCILE_DISABLE_DEPENDANTS)
            .map(String::as_str)
            == Some("true"))
        .then(|| "true".to_string()),
        Some(l) => l.annotations().get(annotations::RECONCILE_DISABLE).cloned(),
    };
    let mut metadata = json!({
        "name": name,
        "namespace": cspc.namespace(),
        "labels": {
            labels::HOSTNAME: spec.host_name,
            labels::CSTOR_POOL_CLUSTER: cspc.name_any(),
            labels::VERSION: version,
            labels::CAS_TYPE: labels::CAS_TYPE_CSTOR,
        },
        "ownerReferences": [owner],
        "finalizers": [finalizers::CSPC],
    });
    if let Some(v) = disable {
        metadata["annotations"] = json!({ annotations::RECONCILE_DISABLE: v });
    }
    let version_details = live
        .and_then(|l| l.version_details.clone())
        .unwrap_or_else(|| fresh_version(version));
    Ok(json!({
        "apiVersion": CStorPoolInstance::api_version(&()),
        "kind": CStorPoolInstance::kind(&()),
        "metadata": metadata,
        "spec": spec,
        "versionDetails": version_details,
    }))
}

async fn event(
    ctx: &Context,
    cspc: &CStorPoolCluster,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = cspc.object_ref(&());
    cstor_runtime::events::publish(
        &ctx.recorder,
        &reference,
        type_,
        reason,
        note,
        reasons::action::RECONCILE,
    )
    .await;
}

/// One reconcile of a CSPC.
pub async fn reconcile(cspc: Arc<CStorPoolCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = crate::meta::key(cspc.as_ref());
    ctx.failures
        .reconcile("cspc", &key, reconcile_inner(&cspc, &ctx))
        .await
}

/// The APIs one reconcile uses, all in the CSPC's namespace (Nodes are cluster-wide).
struct Apis {
    cspcs: Api<CStorPoolCluster>,
    cspis: Api<CStorPoolInstance>,
    bdcs: Api<BlockDeviceClaim>,
    bds: Api<BlockDevice>,
    deployments: Api<Deployment>,
    cvrs: Api<CStorVolumeReplica>,
    nodes: Api<Node>,
}

impl Apis {
    fn new(client: &Client, ns: &str) -> Self {
        Apis {
            cspcs: Api::namespaced(client.clone(), ns),
            cspis: Api::namespaced(client.clone(), ns),
            bdcs: Api::namespaced(client.clone(), ns),
            bds: Api::namespaced(client.clone(), ns),
            deployments: Api::namespaced(client.clone(), ns),
            cvrs: Api::namespaced(client.clone(), ns),
            nodes: Api::all(client.clone()),
        }
    }
}

fn of_cspc(name: &str) -> ListParams {
    ListParams::default().labels(&format!("{}={name}", labels::CSTOR_POOL_CLUSTER))
}

async fn reconcile_inner(cspc: &CStorPoolCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cspc.namespace().unwrap_or_else(|| ctx.namespace.clone());
    let name = cspc.name_any();
    let apis = Apis::new(&ctx.client, &ns);
    if cspc
        .annotations()
        .get(annotations::RECONCILE_DISABLE)
        .map(String::as_str)
        == Some("true")
    {
        let reason = if is_deleting(cspc) {
            "Delete"
        } else {
            "Update"
        };
        event(
            ctx,
            cspc,
            EventType::Warning,
            reason,
            "reconcile is disabled via \"reconcile.openebs.io/disable\" annotation".into(),
        )
        .await;
        return Ok(Action::requeue(ctx.config.resync));
    }
    let cspis = apis
        .cspis
        .list(&of_cspc(&name))
        .await
        .step("list CSPIs of CSPC", &name)?
        .items;
    if is_deleting(cspc) {
        return delete_cspc(cspc, ctx, &apis, &cspis).await;
    }
    // As in the Go operators: a CSPC without a version is at its first CSPI's; an older
    // CSPC waits for its upgrade and a newer one is not touched (docs/upgrades.md).
    let ours = &ctx.config.operator_version;
    let populate = cspis
        .first()
        .and_then(|c| c.labels().get(labels::VERSION).cloned())
        .unwrap_or_else(|| ours.clone());
    if !crate::version::step(
        &apis.cspcs,
        &ctx.recorder,
        FIELD_MANAGER,
        cspc,
        ours,
        &populate,
    )
    .await?
    {
        return Ok(Action::requeue(ctx.config.resync));
    }
    if add_finalizer(&apis.cspcs, &name, finalizers::CSPC).await? {
        tracing::info!(cspc = %name, "finalizer added");
    }

    let mut problems = Problems::default();
    let mut soon = false;
    let mut medium = false;
    let our_bdcs = apis
        .bdcs
        .list(&of_cspc(&name))
        .await
        .step("list BlockDeviceClaims of CSPC", &name)?
        .items;
    soon |= finish_deleted_cspis(cspc, ctx, &apis, &cspis, &our_bdcs, &mut problems).await?;

    let pools = &cspc.spec.pools;
    let nodes = apis
        .nodes
        .list(&ListParams::default())
        .await
        .step("list Nodes", "(all)")?
        .items;
    let (hostnames, unplaced) = super::node::pool_hosts(pools, &nodes);
    problems.node_not_found.extend(unplaced);
    if !problems.node_not_found.is_empty() {
        medium = true;
    }
    let pairing = pair(pools, &hostnames, &cspis);
    let bds = apis
        .bds
        .list(&ListParams::default())
        .await
        .step("list BlockDevices", "(all)")?
        .items;
    let all_bdcs = apis
        .bdcs
        .list(&ListParams::default())
        .await
        .step("list BlockDeviceClaims", "(all)")?
        .items;
    let bd_by_name: BTreeMap<String, &BlockDevice> =
        bds.iter().map(|b| (b.name_any(), b)).collect();
    let cspi_by_name: BTreeMap<String, &CStorPoolInstance> =
        cspis.iter().map(|c| (c.name_any(), c)).collect();
    let cspc_uid = cspc.uid().ok_or_else(|| Error::MissingField {
        kind: "CStorPoolCluster",
        name: name.clone(),
        field: "uid",
    })?;
    let version = ctx.config.operator_version.clone();

    let pass = PoolPass {
        cspc,
        ctx,
        apis: &apis,
        cspc_uid: &cspc_uid,
        version: &version,
        bd_by_name: &bd_by_name,
        all_bdcs: &all_bdcs,
        count: pools.len(),
    };
    for (i, pool) in pools.iter().enumerate() {
        let Some(host) = &hostnames[i] else { continue };
        let current = pairing.pools[i]
            .as_ref()
            .and_then(|n| cspi_by_name.get(n).copied());
        let outcome = sync_pool(&pass, i, pool, host, current).await?;
        problems.claims_pending.extend(outcome.claims_pending);
        problems.deprovisioning.extend(outcome.deprovisioning);
        soon |= outcome.soon;
    }

    let (removing, blocked) = remove_orphans(
        cspc,
        ctx,
        &apis,
        &pairing,
        &hostnames,
        &cspi_by_name,
        &mut problems,
    )
    .await?;
    soon |= removing;
    medium |= blocked;

    report_status(cspc, ctx, &apis, problems).await?;
    Ok(Action::requeue(if soon {
        SHORT_REQUEUE
    } else if medium {
        MEDIUM_REQUEUE
    } else {
        ctx.config.resync
    }))
}

/// Scale-down, first half: CSPIs being deleted get their claims released once the pool-manager
/// has destroyed the pool. Returns whether any is still in progress.
async fn finish_deleted_cspis(
    cspc: &CStorPoolCluster,
    ctx: &Context,
    apis: &Apis,
    cspis: &[CStorPoolInstance],
    our_bdcs: &[BlockDeviceClaim],
    problems: &mut Problems,
) -> Result<bool, Error> {
    let mut any = false;
    for cspi in cspis.iter().filter(|c| is_deleting(*c)) {
        any = true;
        if !has_finalizer(cspi, finalizers::CSPC) {
            continue;
        }
        if has_finalizer(cspi, finalizers::POOL_PROTECTION) {
            problems.deprovisioning.push(format!(
                "{}: waiting for the pool manager to destroy the pool",
                cspi.name_any()
            ));
        } else {
            cleanup_cspi(cspc, ctx, apis, cspi, our_bdcs).await?;
        }
    }
    Ok(any)
}

/// Scale-down, second half: CSPIs whose pool left the spec are deleted unless volume replicas
/// live on them (`orphans_to_delete` decides). Returns (deleting any, blocked any).
async fn remove_orphans(
    cspc: &CStorPoolCluster,
    ctx: &Context,
    apis: &Apis,
    pairing: &super::topology::Pairing,
    hostnames: &[Option<String>],
    cspi_by_name: &BTreeMap<String, &CStorPoolInstance>,
    problems: &mut Problems,
) -> Result<(bool, bool), Error> {
    let mut removing = false;
    let mut blocked = false;
    let live_orphans: Vec<String> = pairing
        .orphans
        .iter()
        .filter(|o| cspi_by_name.get(*o).is_some_and(|c| !is_deleting(*c)))
        .cloned()
        .collect();
    let mut replicas = BTreeMap::new();
    for o in &live_orphans {
        let lp = ListParams::default().labels(&format!("{}={o}", labels::CSPI_NAME));
        replicas.insert(
            o.clone(),
            apis.cvrs
                .list_metadata(&lp)
                .await
                .step("list CVRs on pool", o)?
                .items
                .len(),
        );
    }
    let live_pairing = super::topology::Pairing {
        pools: pairing.pools.clone(),
        orphans: live_orphans,
    };
    let (delete, kept) = orphans_to_delete(&live_pairing, hostnames, &replicas);
    for o in &delete {
        event(
            ctx,
            cspc,
            EventType::Normal,
            reasons::SCALE_DOWN,
            format!("De-provisioning pool {o}"),
        )
        .await;
        if let Err(e) = delete_ignore_missing(&apis.cspis, o).await {
            event(
                ctx,
                cspc,
                EventType::Warning,
                reasons::DOWN_SCALE,
                format!("De-provisioning pool {o}failed"),
            )
            .await;
            return Err(e);
        }
        removing = true;
    }
    for (o, n) in &kept {
        problems.replicas_on_pool.push(format!(
            "{o}: its pool was removed from the CSPC but {n} volume replica(s) still live on it; not de-provisioned"
        ));
        blocked = true;
    }

    Ok((removing, blocked))
}

/// Writes the CSPC status from the pool-managers' readiness and the CSPIs as they are now.
async fn report_status(
    cspc: &CStorPoolCluster,
    ctx: &Context,
    apis: &Apis,
    problems: Problems,
) -> Result<(), Error> {
    let name = cspc.name_any();
    let deployments = apis
        .deployments
        .list(&of_cspc(&name))
        .await
        .step("list pool-manager Deployments of CSPC", &name)?
        .items;
    let ready: BTreeMap<String, bool> = deployments
        .iter()
        .map(|d| {
            let r = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= 1;
            (d.name_any(), r)
        })
        .collect();
    let cspis_now = apis
        .cspis
        .list(&of_cspc(&name))
        .await
        .step("list CSPIs of CSPC", &name)?
        .items;
    let input = StatusInput {
        desired: cspc.spec.pools.len(),
        instances: instances(&cspis_now, &ready),
        problems,
        generation: cspc.metadata.generation,
    };
    write_status(cspc, ctx, apis, &input).await
}

/// What every pool of one CSPC reconcile shares.
struct PoolPass<'a> {
    cspc: &'a CStorPoolCluster,
    ctx: &'a Context,
    apis: &'a Apis,
    cspc_uid: &'a str,
    version: &'a str,
    bd_by_name: &'a BTreeMap<String, &'a BlockDevice>,
    all_bdcs: &'a [BlockDeviceClaim],
    /// How many pools the CSPC has (for Event texts).
    count: usize,
}

/// What one pool's step reports back into the CSPC status.
#[derive(Default)]
struct PoolOutcome {
    claims_pending: Vec<String>,
    deprovisioning: Vec<String>,
    /// Something is in flight: look again soon.
    soon: bool,
}

/// One pool's step (pool number `i`, 0-based, on `host`): its claims, then, once every claim
/// is Bound, its CSPI (the spec `desired_cspi_spec` decides) and its pool-manager Deployment.
async fn sync_pool(
    pass: &PoolPass<'_>,
    i: usize,
    pool: &cstor_api::cstor_v1::PoolSpec,
    host: &str,
    current: Option<&CStorPoolInstance>,
) -> Result<PoolOutcome, Error> {
    let mut outcome = PoolOutcome::default();
    let name = pass.cspc.name_any();
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    if let Some(c) = current
        && is_deleting(c)
    {
        outcome.deprovisioning.push(format!(
            "pool {}: waiting for CStorPoolInstance {} to finish deleting",
            i + 1,
            c.name_any()
        ));
        return Ok(outcome);
    }
    let mut bd_names: Vec<String> = pool.block_device_names().map(String::from).collect();
    bd_names.sort();
    bd_names.dedup();
    let claims: BTreeMap<String, ClaimStatus> = bd_names
        .iter()
        .map(|bd| {
            let status = claim_status(bd, pass.bd_by_name.get(bd).copied(), pass.all_bdcs, &name);
            (bd.clone(), status)
        })
        .collect();
    let desired = desired_cspi_spec(
        &pass.cspc.spec,
        pool,
        host,
        current.map(|c| &c.spec),
        &claims,
    );
    // Claims that can't be made (tag rules) replace the "waiting" reason.
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    for req in &desired.claims {
        let Some(bd) = pass.bd_by_name.get(&req.block_device) else {
            continue;
        };
        match bdc_for_bd(pass.cspc, bd, req.predecessor.as_deref()) {
            Ok(bdc) => match pass.apis.bdcs.create(&PostParams::default(), &bdc).await {
                Ok(_) => {
                    let what = match &req.predecessor {
                        Some(old) => format!(
                            "Claim {} created for BlockDevice {} (replacing {old})",
                            bdc.name_any(),
                            req.block_device
                        ),
                        None => format!(
                            "Claim {} created for BlockDevice {}",
                            bdc.name_any(),
                            req.block_device
                        ),
                    };
                    event(
                        pass.ctx,
                        pass.cspc,
                        EventType::Normal,
                        reasons::CLAIM_CREATED,
                        what,
                    )
                    .await;
                }
                Err(e) if crate::meta::is_already_exists(&e) => {}
                Err(e) => {
                    return Err(cstor_runtime::errors::ApiError::new(
                        "create BlockDeviceClaim",
                        bdc.name_any(),
                        e,
                    )
                    .into());
                }
            },
            Err(e) => {
                refused.insert(req.block_device.clone(), e.to_string());
            }
        }
    }
    for p in &desired.pending {
        let reason = refused.get(&p.block_device).unwrap_or(&p.reason);
        outcome.claims_pending.push(pending_item(
            p.claim.as_deref(),
            &p.block_device,
            host,
            reason,
        ));
    }
    outcome.soon = !desired.pending.is_empty();
    let Some(spec) = desired.spec else {
        return Ok(outcome);
    };
    let cspi_name = match current {
        Some(c) => c.name_any(),
        None => new_cspi_name(pass, &name, host).await?,
    };
    let body = cspi_apply(pass.cspc, &cspi_name, &spec, pass.version, current)?;
    let applied = match pass
        .apis
        .cspis
        .patch(&cspi_name, &apply, &Patch::Apply(body))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            if current.is_none() {
                event(
                    pass.ctx,
                    pass.cspc,
                    EventType::Warning,
                    reasons::CREATE,
                    format!("Pool provisioning failed for {}/{} ", i + 1, pass.count),
                )
                .await;
            }
            return Err(cstor_runtime::errors::ApiError::new("apply CSPI", &cspi_name, e).into());
        }
    };
    match current {
        None => {
            event(
                pass.ctx,
                pass.cspc,
                EventType::Normal,
                reasons::CREATE,
                format!("Pool Provisioned {}/{} ", i + 1, pass.count),
            )
            .await
        }
        Some(c) if c.spec != applied.spec => {
            event(
                pass.ctx,
                pass.cspc,
                EventType::Normal,
                reasons::POOL_UPDATED,
                format!("CStorPoolInstance {cspi_name} updated from pool {}", i + 1),
            )
            .await
        }
        Some(_) => {}
    }
    // The pool-manager's own ServiceAccount first: the Deployment's pods run as it.
    let owner =
        crate::cspc::claim::controller_ref(&applied).ok_or_else(|| Error::MissingField {
            kind: "CStorPoolInstance",
            name: cspi_name.clone(),
            field: "uid",
        })?;
    crate::agent_identity::ensure(
        &pass.ctx.client,
        &applied
            .namespace()
            .unwrap_or_else(|| pass.ctx.namespace.clone()),
        &pass.ctx.config.pool_manager_account,
        &cspi_name,
        &owner,
        FIELD_MANAGER,
    )
    .await?;
    let deployment = pool_manager_deployment(pass.cspc, &applied, &pass.ctx.config)?;
    if let Err(e) = pass
        .apis
        .deployments
        .patch(&cspi_name, &apply, &Patch::Apply(&deployment))
        .await
    {
        event(
            pass.ctx,
            pass.cspc,
            EventType::Warning,
            reasons::POOL_DEPLOYMENT_CREATE,
            format!("Failed to create pool deployment for CSP {cspi_name}: {e}"),
        )
        .await;
        return Err(cstor_runtime::errors::ApiError::new(
            "apply pool-manager Deployment",
            &cspi_name,
            e,
        )
        .into());
    }
    Ok(outcome)
}

fn instances(cspis: &[CStorPoolInstance], ready: &BTreeMap<String, bool>) -> Vec<Instance> {
    let mut out: Vec<Instance> = cspis
        .iter()
        .map(|c| Instance {
            name: c.name_any(),
            manager_ready: ready.get(&c.name_any()).copied().unwrap_or(false),
            phase: c
                .status
                .as_ref()
                .map(|s| s.phase.clone())
                .unwrap_or_default(),
            deleting: is_deleting(c),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Writes the status (only when it changed) and an Event per changed condition.
async fn write_status(
    cspc: &CStorPoolCluster,
    ctx: &Context,
    apis: &Apis,
    input: &StatusInput,
) -> Result<(), Error> {
    let now = cstor_runtime::now();
    let previous = cspc.status.as_ref();
    let status = cspc_status(input, previous, &now);
    if previous == Some(&status) {
        return Ok(());
    }
    let empty = CStorPoolClusterStatus::default();
    let old = previous.unwrap_or(&empty);
    for c in changed_conditions(&old.conditions, &status.conditions) {
        let type_ = if c.status == ConditionStatus::True {
            EventType::Normal
        } else {
            EventType::Warning
        };
        event(ctx, cspc, type_, &c.reason, c.message.clone()).await;
    }
    let body = json!({
        "apiVersion": CStorPoolCluster::api_version(&()),
        "kind": CStorPoolCluster::kind(&()),
        "metadata": {"name": cspc.name_any()},
        "status": status,
    });
    apis.cspcs
        .patch_status(
            &cspc.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .step("apply status of CSPC", cspc.name_any())?;
    Ok(())
}

/// Releases the claims of a deleted CSPI's devices (data and write cache) and lets it go.
async fn cleanup_cspi(
    cspc: &CStorPoolCluster,
    ctx: &Context,
    apis: &Apis,
    cspi: &CStorPoolInstance,
    our_bdcs: &[BlockDeviceClaim],
) -> Result<(), Error> {
    let bds: Vec<String> = cspi.spec.block_device_names().map(String::from).collect();
    for bdc in our_bdcs
        .iter()
        .filter(|c| bds.contains(&c.spec.block_device_name))
    {
        release_claim(apis, bdc).await?;
    }
    remove_finalizer(&apis.cspis, &cspi.name_any(), finalizers::CSPC).await?;
    event(
        ctx,
        cspc,
        EventType::Normal,
        reasons::POOL_DEPROVISIONED,
        format!(
            "Pool {} de-provisioned; its claims released",
            cspi.name_any()
        ),
    )
    .await;
    Ok(())
}

/// The name of a new CSPI on `host`: never one a CSPI of another node holds (read live;
/// applying to it would take that node's pool over).
async fn new_cspi_name(pass: &PoolPass<'_>, cspc: &str, host: &str) -> Result<String, Error> {
    let mut taken = BTreeMap::new();
    // The first candidate and, only on a collision, the next few: read each live.
    for attempt in 0..8 {
        let candidate = free_cspi_name(cspc, pass.cspc_uid, host, |n| {
            taken.get(n).copied().unwrap_or(false)
        });
        if taken.contains_key(&candidate) {
            break;
        }
        let holder = pass
            .apis
            .cspis
            .get_opt(&candidate)
            .await
            .step("get CSPI", &candidate)?;
        let other = holder.is_some_and(|c| {
            let its = c
                .labels()
                .get(labels::HOSTNAME)
                .cloned()
                .unwrap_or_else(|| c.spec.host_name.clone());
            its != host
        });
        if !other {
            if attempt > 0 {
                tracing::warn!(cspc, host, name = %candidate, "CSPI name collision avoided");
            }
            return Ok(candidate);
        }
        taken.insert(candidate, true);
    }
    Err(Error::NoFreeName {
        cspc: cspc.to_string(),
        host: host.to_string(),
        tried: taken.len(),
    })
}

/// The CVRs on pool `cspi`, read live (names, sorted).
async fn replicas_on(apis: &Apis, cspi: &str) -> Result<Vec<String>, Error> {
    let lp = ListParams::default().labels(&format!("{}={cspi}", labels::CSPI_NAME));
    let mut names: Vec<String> = apis
        .cvrs
        .list_metadata(&lp)
        .await
        .step("list CVRs on pool", cspi)?
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    names.sort();
    Ok(names)
}

async fn release_claim(apis: &Apis, bdc: &BlockDeviceClaim) -> Result<(), Error> {
    remove_finalizer(&apis.bdcs, &bdc.name_any(), finalizers::CSPC).await?;
    if !is_deleting(bdc) {
        delete_ignore_missing(&apis.bdcs, &bdc.name_any()).await?;
    }
    Ok(())
}

/// As in the Go operators, with "wait" instead of a silent nil: delete the CSPIs, clean each up once its pool
/// is destroyed, and only when none is left release the remaining claims and the CSPC.
async fn delete_cspc(
    cspc: &CStorPoolCluster,
    ctx: &Context,
    apis: &Apis,
    cspis: &[CStorPoolInstance],
) -> Result<Action, Error> {
    let name = cspc.name_any();
    if !has_finalizer(cspc, finalizers::CSPC) {
        return Ok(Action::await_change());
    }
    let our_bdcs = apis
        .bdcs
        .list(&of_cspc(&name))
        .await
        .step("list BlockDeviceClaims of CSPC", &name)?
        .items;
    let mut waiting = Vec::new();
    let mut held = Vec::new();
    for cspi in cspis {
        if !is_deleting(cspi) {
            // Admission refused this delete if it saw replicas, but its cache may have been
            // behind a replica placed just before: count again, live, right before acting.
            let replicas = replicas_on(apis, &cspi.name_any()).await?;
            if !replicas.is_empty() {
                held.push(format!(
                    "{}: {} volume replica(s) still live on it ({}); delete those volumes or scale their replicas off this pool",
                    cspi.name_any(),
                    replicas.len(),
                    replicas.join(", ")
                ));
                continue;
            }
            event(
                ctx,
                cspc,
                EventType::Normal,
                reasons::SCALE_DOWN,
                format!("De-provisioning pool {}", cspi.name_any()),
            )
            .await;
            delete_ignore_missing(&apis.cspis, &cspi.name_any()).await?;
            waiting.push(cspi.name_any());
        } else if has_finalizer(cspi, finalizers::CSPC)
            && !has_finalizer(cspi, finalizers::POOL_PROTECTION)
        {
            cleanup_cspi(cspc, ctx, apis, cspi, &our_bdcs).await?;
        } else {
            waiting.push(cspi.name_any());
        }
    }
    if !held.is_empty() {
        let message = format!(
            "CSPC is being deleted, but pools hold volume replicas: {}",
            held.join("; ")
        );
        event(
            ctx,
            cspc,
            EventType::Warning,
            reasons::DELETION_BLOCKED,
            message,
        )
        .await;
        let input = StatusInput {
            desired: cspc.spec.pools.len(),
            instances: Vec::new(),
            problems: Problems {
                replicas_on_pool: held,
                deprovisioning: waiting
                    .iter()
                    .map(|w| format!("CSPC is being deleted; waiting for pool {w} to be destroyed"))
                    .collect(),
                ..Problems::default()
            },
            generation: cspc.metadata.generation,
        };
        write_status(cspc, ctx, apis, &input).await?;
        return Ok(Action::requeue(MEDIUM_REQUEUE));
    }
    let remaining = apis
        .cspis
        .list(&of_cspc(&name))
        .await
        .step("list CSPIs of CSPC", &name)?
        .items;
    if !remaining.is_empty() {
        let mut names: Vec<String> = remaining.iter().map(|c| c.name_any()).collect();
        names.sort();
        let input = StatusInput {
            desired: cspc.spec.pools.len(),
            instances: Vec::new(),
            problems: Problems {
                deprovisioning: vec![format!(
                    "CSPC is being deleted; waiting for pool(s) {} to be destroyed",
                    names.join(", ")
                )],
                ..Problems::default()
            },
            generation: cspc.metadata.generation,
        };
        write_status(cspc, ctx, apis, &input).await?;
        return Ok(Action::requeue(SHORT_REQUEUE));
    }
    for bdc in apis
        .bdcs
        .list(&of_cspc(&name))
        .await
        .step("list BlockDeviceClaims of CSPC", &name)?
        .items
    {
        release_claim(apis, &bdc).await?;
    }
    remove_finalizer(&apis.cspcs, &name, finalizers::CSPC).await?;
    Ok(Action::await_change())
}

fn error_policy(cspc: Arc<CStorPoolCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = crate::meta::key(cspc.as_ref());
    let (n, wait) = ctx.failures.failed(&key);
    tracing::warn!(cspc = %key, %error, category = error.category(), failures = n, "CSPC reconcile failed");
    Action::requeue(wait)
}

/// The CSPC named by an object's `openebs.io/cstor-pool-cluster` label.
pub fn cspc_of<K: Resource>(obj: &K) -> Option<ObjectRef<CStorPoolCluster>> {
    let name = obj
        .meta()
        .labels
        .as_ref()?
        .get(labels::CSTOR_POOL_CLUSTER)?;
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    Some(ObjectRef::new(name).within(&ns))
}

/// Runs the CSPC controller in `ctx.namespace` until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = ctx.namespace.clone();
    let labelled = watcher::Config::default().labels(labels::CSTOR_POOL_CLUSTER);
    Controller::new(
        Api::<CStorPoolCluster>::namespaced(client.clone(), &ns),
        watcher::Config::default(),
    )
    .owns(
        Api::<CStorPoolInstance>::namespaced(client.clone(), &ns),
        watcher::Config::default(),
    )
    .watches(
        Api::<BlockDeviceClaim>::namespaced(client.clone(), &ns),
        labelled.clone(),
        |bdc| cspc_of(&bdc),
    )
    .watches(Api::<Deployment>::namespaced(client, &ns), labelled, |d| {
        cspc_of(&d)
    })
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "CSPC controller event");
        }
    })
    .await;
}
