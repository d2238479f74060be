//! Claim binding: the part of NDM cStor needs (docs/pools.md "Claim binding"). A claim naming a
//! BlockDevice is bound to it when the device is present, Active, free (or already ours) and big
//! enough; a deleted claim releases its device. BD and BDC have no status subresource, so the
//! BD's claim fields and the BDC's phase are written by server-side apply on the object.

use cstor_runtime::errors::Step;
use cstor_runtime::reasons;
use std::sync::Arc;
use std::time::Duration;

use cstor_api::openebs_v1alpha1::{
    BlockDevice, BlockDeviceClaim, RESOURCE_STORAGE, bdc_phase, claim_state, device_state,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::meta::{add_finalizer, has_finalizer, is_deleting, remove_field, remove_finalizer};

/// Field manager of claim binding's applies.
pub const FIELD_MANAGER: &str = "cstor-operator/claims";
/// NDM's finalizer on a bound claim.
pub const BDC_FINALIZER: &str = "blockdeviceclaim.finalizer";
/// How soon a claim waiting behind an older one for the same device looks again.
const RIVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What to do with a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Phase `Pending` with a Warning Event.
    Pending {
        reason: &'static str,
        message: String,
    },
    /// Phase `Invalid Capacity Request` with a Warning Event.
    InvalidCapacity {
        reason: &'static str,
        message: String,
    },
    /// Claim the device: claimRef + `Claimed`, finalizer, phase `Bound`, Normal Event.
    Bind,
    /// The device is already this claim's: make sure the finalizer and phase say so.
    AlreadyBound,
    /// The claim is being deleted: release the device (if it is ours), then drop the finalizer.
    Release { release_device: bool },
    /// The claim is being deleted but other finalizers still hold it (the pool using the disk
    /// is not done with it): the device stays claimed until only ours is left.
    Held { holders: Vec<String> },
    /// Being deleted without our finalizer: nothing to do.
    Nothing,
}

/// Whether `bd`'s claimRef points at `bdc` (by uid when both have one, else by name/namespace).
pub fn claimed_by(bd: &BlockDevice, bdc: &BlockDeviceClaim) -> bool {
    let Some(r) = &bd.spec.claim_ref else {
        return false;
    };
    match (&r.uid, bdc.uid()) {
        (Some(a), Some(b)) if !a.is_empty() => *a == b,
        _ => {
            r.name.as_deref() == Some(bdc.name_any().as_str())
                && r.namespace
                    .as_deref()
                    .is_none_or(|ns| Some(ns.to_string()) == bdc.namespace())
        }
    }
}

/// The claim that asked for the same BlockDevice before `bdc` and still waits for it (not
/// bound, not being deleted), if any: first come, first served, so two claims on one free
/// device bind in the order they were made (by name within the same second), whatever order
/// the controller sees them in.
pub fn older_rival<'a>(bdc: &BlockDeviceClaim, claims: &'a [BlockDeviceClaim]) -> Option<&'a str> {
    let key = |c: &BlockDeviceClaim| {
        (
            c.metadata.creation_timestamp.clone().map(|t| t.0),
            c.name_any(),
        )
    };
    let mine = key(bdc);
    claims
        .iter()
        .filter(|c| c.spec.block_device_name == bdc.spec.block_device_name)
        .filter(|c| c.name_any() != bdc.name_any())
        .filter(|c| !is_deleting(*c))
        .filter(|c| {
            c.status.phase != bdc_phase::BOUND
                && c.status.phase != bdc_phase::INVALID_CAPACITY_REQUEST
        })
        .filter(|c| key(c) < mine)
        .min_by_key(|c| key(c))
        .and_then(|c| c.metadata.name.as_deref())
}

/// The claim decision for `bdc` given its BlockDevice (`None`: not found).
pub fn decide(bdc: &BlockDeviceClaim, bd: Option<&BlockDevice>) -> Binding {
    let bd_name = &bdc.spec.block_device_name;
    if is_deleting(bdc) {
        if !has_finalizer(bdc, BDC_FINALIZER) {
            return Binding::Nothing;
        }
        let holders: Vec<String> = bdc
            .finalizers()
            .iter()
            .filter(|f| f.as_str() != BDC_FINALIZER)
            .cloned()
            .collect();
        if !holders.is_empty() {
            return Binding::Held { holders };
        }
        return Binding::Release {
            release_device: bd.is_some_and(|bd| claimed_by(bd, bdc)),
        };
    }
    if bd_name.is_empty() {
        return Binding::Pending {
            reason: "BlockDeviceNotFound",
            message: "BlockDeviceClaim names no BlockDevice (spec.blockDeviceName is empty)".into(),
        };
    }
    let Some(bd) = bd else {
        return Binding::Pending {
            reason: "BlockDeviceNotFound",
            message: format!("BlockDevice {bd_name} not found"),
        };
    };
    if claimed_by(bd, bdc) {
        return Binding::AlreadyBound;
    }
    if bd.status.state == device_state::INACTIVE {
        return Binding::Pending {
            reason: "BlockDeviceInactive",
            message: format!("BlockDevice {bd_name} is Inactive"),
        };
    }
    if let Some(r) = &bd.spec.claim_ref {
        return Binding::Pending {
            reason: "BlockDeviceClaimed",
            message: format!(
                "BlockDevice {bd_name} is claimed by BDC {}/{}",
                r.namespace.as_deref().unwrap_or_default(),
                r.name.as_deref().unwrap_or_default()
            ),
        };
    }
    if bd.status.claim_state == claim_state::CLAIMED {
        return Binding::Pending {
            reason: "BlockDeviceClaimed",
            message: format!("BlockDevice {bd_name} is Claimed (no claimRef)"),
        };
    }
    let requested = bdc
        .spec
        .resources
        .requests
        .get(RESOURCE_STORAGE)
        .and_then(|q| cstor_api::quantity::bytes(&q.0).ok());
    match requested {
        None | Some(0) => Binding::InvalidCapacity {
            reason: "InvalidCapacityRequest",
            message: format!(
                "BlockDeviceClaim requests no valid storage (spec.resources.requests.{RESOURCE_STORAGE})"
            ),
        },
        Some(req) if bd.spec.capacity.storage < req => Binding::InvalidCapacity {
            reason: "InsufficientCapacity",
            message: format!(
                "BlockDevice {bd_name} has {} bytes, less than the requested {req}",
                bd.spec.capacity.storage
            ),
        },
        Some(_) => Binding::Bind,
    }
}

/// The claimRef a bound BlockDevice carries.
pub fn claim_ref(bdc: &BlockDeviceClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some(BlockDeviceClaim::api_version(&()).into_owned()),
        kind: Some(BlockDeviceClaim::kind(&()).into_owned()),
        name: Some(bdc.name_any()),
        namespace: bdc.namespace(),
        uid: bdc.uid(),
        ..ObjectReference::default()
    }
}

/// The apply body binding `bd_name` to `bdc` (claimRef + `Claimed`).
pub fn bind_apply(bd_name: &str, bdc: &BlockDeviceClaim) -> serde_json::Value {
    json!({
        "apiVersion": BlockDevice::api_version(&()),
        "kind": BlockDevice::kind(&()),
        "metadata": {"name": bd_name},
        "spec": {"claimRef": claim_ref(bdc)},
        "status": {"claimState": claim_state::CLAIMED},
    })
}

/// The apply body releasing `bd_name`: no claimRef (so SSA drops the one this manager set)
/// and `Unclaimed`.
pub fn release_apply(bd_name: &str) -> serde_json::Value {
    json!({
        "apiVersion": BlockDevice::api_version(&()),
        "kind": BlockDevice::kind(&()),
        "metadata": {"name": bd_name},
        "status": {"claimState": claim_state::UNCLAIMED},
    })
}

/// The apply body setting a claim's phase.
pub fn phase_apply(bdc_name: &str, phase: &str) -> serde_json::Value {
    json!({
        "apiVersion": BlockDeviceClaim::api_version(&()),
        "kind": BlockDeviceClaim::kind(&()),
        "metadata": {"name": bdc_name},
        "status": {"phase": phase},
    })
}

/// Shared state of the claim binding controller.
pub struct Context {
    pub client: Client,
    pub namespace: String,
    pub recorder: Recorder,
    pub resync: Duration,
    failures: cstor_runtime::Backoff,
}

impl Context {
    pub fn new(client: Client, namespace: String, recorder: Recorder, resync: Duration) -> Self {
        Context {
            client,
            namespace,
            recorder,
            resync,
            failures: cstor_runtime::Backoff::default(),
        }
    }
}

async fn event(
    ctx: &Context,
    bdc: &BlockDeviceClaim,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = bdc.object_ref(&());
    cstor_runtime::events::publish(&ctx.recorder, &reference, type_, reason, note, "Bind").await;
}

async fn set_phase(
    api: &Api<BlockDeviceClaim>,
    bdc: &BlockDeviceClaim,
    phase: &str,
) -> Result<(), Error> {
    if bdc.status.phase == phase {
        return Ok(());
    }
    let name = bdc.name_any();
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &pp, &Patch::Apply(phase_apply(&name, phase)))
        .await
        .step("apply phase of BlockDeviceClaim", &name)?;
    Ok(())
}

/// One reconcile of a claim.
pub async fn reconcile(bdc: Arc<BlockDeviceClaim>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = crate::meta::key(bdc.as_ref());
    ctx.failures
        .reconcile("claim-binding", &key, reconcile_inner(&bdc, &ctx))
        .await
}

async fn reconcile_inner(bdc: &BlockDeviceClaim, ctx: &Context) -> Result<Action, Error> {
    let ns = bdc.namespace().unwrap_or_else(|| ctx.namespace.clone());
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let bds: Api<BlockDevice> = Api::namespaced(ctx.client.clone(), &ns);
    let name = bdc.name_any();
    let bd_name = bdc.spec.block_device_name.clone();
    let bd = if bd_name.is_empty() {
        None
    } else {
        bds.get_opt(&bd_name)
            .await
            .step("get BlockDevice", &bd_name)?
    };
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    match decide(bdc, bd.as_ref()) {
        Binding::Nothing => {}
        // Woken again when a holder's finalizer goes (the claim changes).
        Binding::Held { holders } => {
            tracing::info!(claim = %name, bd = %bd_name, ?holders, "claim being deleted; the device stays claimed until its holders let go");
        }
        Binding::Release { release_device } => {
            if release_device {
                let after = bds
                    .patch(&bd_name, &apply, &Patch::Apply(release_apply(&bd_name)))
                    .await
                    .step("release BlockDevice", &bd_name)?;
                // A claimRef someone else also owns survives the apply: remove it outright.
                if after.spec.claim_ref.is_some() {
                    remove_field(&bds, &bd_name, "/spec/claimRef").await?;
                }
                event(
                    ctx,
                    bdc,
                    EventType::Normal,
                    reasons::RELEASED,
                    format!("BlockDevice {bd_name} released"),
                )
                .await;
            }
            remove_finalizer(&bdcs, &name, BDC_FINALIZER).await?;
        }
        Binding::Pending { reason, message } => {
            set_phase(&bdcs, bdc, bdc_phase::PENDING).await?;
            event(ctx, bdc, EventType::Warning, reason, message).await;
        }
        Binding::InvalidCapacity { reason, message } => {
            set_phase(&bdcs, bdc, bdc_phase::INVALID_CAPACITY_REQUEST).await?;
            event(ctx, bdc, EventType::Warning, reason, message).await;
        }
        Binding::Bind => {
            let claims = bdcs
                .list(&ListParams::default())
                .await
                .step("list BlockDeviceClaims", &ns)?
                .items;
            if let Some(first) = older_rival(bdc, &claims) {
                set_phase(&bdcs, bdc, bdc_phase::PENDING).await?;
                event(
                    ctx,
                    bdc,
                    EventType::Warning,
                    "BlockDeviceClaimed",
                    format!("BlockDevice {bd_name} is asked for by BDC {first}, which came first"),
                )
                .await;
                // Soon: the first one may turn out invalid and leave the device free.
                return Ok(Action::requeue(RIVAL_WAIT));
            }
            // Finalizer first: a delete from here on still releases the device.
            add_finalizer(&bdcs, &name, BDC_FINALIZER).await?;
            // Guarded by the device's resourceVersion as read: a claim bound concurrently
            // makes this a conflict (retried, then Pending), never a second owner.
            let mut body = bind_apply(&bd_name, bdc);
            if let Some(rv) = bd
                .as_ref()
                .and_then(|b| b.metadata.resource_version.clone())
            {
                body["metadata"]["resourceVersion"] = json!(rv);
            }
            bds.patch(&bd_name, &apply, &Patch::Apply(body))
                .await
                .step("bind BlockDevice", &bd_name)?;
            set_phase(&bdcs, bdc, bdc_phase::BOUND).await?;
            event(
                ctx,
                bdc,
                EventType::Normal,
                reasons::BOUND,
                format!("BlockDeviceClaim bound to BlockDevice {bd_name}"),
            )
            .await;
        }
        Binding::AlreadyBound => {
            add_finalizer(&bdcs, &name, BDC_FINALIZER).await?;
            if bd
                .as_ref()
                .is_some_and(|b| b.status.claim_state != claim_state::CLAIMED)
            {
                bds.patch(&bd_name, &apply, &Patch::Apply(bind_apply(&bd_name, bdc)))
                    .await
                    .step("bind BlockDevice", &bd_name)?;
            }
            if bdc.status.phase != bdc_phase::BOUND {
                set_phase(&bdcs, bdc, bdc_phase::BOUND).await?;
                event(
                    ctx,
                    bdc,
                    EventType::Normal,
                    reasons::BOUND,
                    format!("BlockDeviceClaim bound to BlockDevice {bd_name}"),
                )
                .await;
            }
        }
    }
    Ok(Action::requeue(ctx.resync))
}

fn error_policy(bdc: Arc<BlockDeviceClaim>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = crate::meta::key(bdc.as_ref());
    let (n, wait) = ctx.failures.failed(&key);
    tracing::warn!(claim = %key, %error, category = error.category(), failures = n, "claim binding failed");
    Action::requeue(wait)
}

/// The claims to reconcile when BlockDevice `bd` changes: the one its claimRef names and every
/// claim in `store` that names it.
pub fn claims_of_device(
    bd: &BlockDevice,
    store: &Store<BlockDeviceClaim>,
) -> Vec<ObjectRef<BlockDeviceClaim>> {
    let ns = bd.namespace().unwrap_or_default();
    let mut out: Vec<ObjectRef<BlockDeviceClaim>> = Vec::new();
    if let Some(name) = bd.spec.claim_ref.as_ref().and_then(|r| r.name.clone()) {
        out.push(ObjectRef::new(&name).within(&ns));
    }
    let bd_name = bd.name_any();
    for c in store.state() {
        if c.spec.block_device_name == bd_name {
            let r = ObjectRef::from_obj(c.as_ref());
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// Runs claim binding in `ctx.namespace` until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let bds: Api<BlockDevice> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let controller = Controller::new(bdcs, watcher::Config::default());
    let store = controller.store();
    controller
        .watches(bds, watcher::Config::default(), move |bd| {
            claims_of_device(&bd, &store)
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "claim binding controller event");
            }
        })
        .await;
}
