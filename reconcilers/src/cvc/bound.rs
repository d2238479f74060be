//! A Bound volume: resize, replica scale up/down, policy edits reaching the target.

use cstor_runtime::errors::Step;
use cstor_runtime::reasons;
use std::collections::{BTreeMap, BTreeSet};

use cstor_api::cstor_v1::{CStorVolume, ReplicaPoolInfo, cvc::condition_type, cvr};
use cstor_api::keys::labels;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Patch, PostParams};
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use crate::Error;
use crate::cvc::decide::{
    ResizeStep, ScaleDownStep, ScaleOp, resize_step, scale_down_step, scale_op, scale_up_progress,
};
use crate::cvc::objects::{
    ReplicaPool, cvr_name, cvr_object, policy_hash, replica_id, storage, target_deployment,
    target_name, with_defaults,
};
use crate::cvc::placement::Candidate;
use crate::cvc::status::{self as st, remove_condition};
use crate::meta::{delete_ignore_missing, is_already_exists};

use super::pdb::sync_pdb;
use super::reconcile::{
    MEDIUM_REQUEUE, Pass, SHORT_REQUEUE, apply_params, of_volume, patch_params, pool_names,
    pool_of, union_pools, volume_id,
};

/// A Bound volume: resize, scale replicas, follow policy edits.
pub(super) async fn bound(pass: &mut Pass<'_>) -> Result<(), Error> {
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
    let Some(cv) = pass
        .apis
        .cvs
        .get_opt(&name)
        .await
        .step("get CStorVolume", &name)?
    else {
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
    // Only between scales: a scale-down deletes a CVR on purpose.
    if super::decide::scale_op(&spec_pools, &pass.status.pool_info) == ScaleOp::None {
        recreate_missing(pass, &cv).await?;
    }
    sync_policy(pass, &cv).await
}

/// As in the Go operators: grow the CV and the CVRs; done when the target reports the size; never shrink.
pub(super) async fn resize(pass: &mut Pass<'_>, cv: &CStorVolume) -> Result<(), Error> {
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
pub(super) async fn grow_replicas(pass: &Pass<'_>, to: &Quantity) -> Result<(), Error> {
    for r in pass
        .apis
        .cvrs
        .list(&of_volume(&pass.name()))
        .await
        .step("list CVRs of volume", pass.name())?
        .items
    {
        if r.spec.capacity != to.0 {
            pass.apis
                .cvrs
                .patch(
                    &r.name_any(),
                    &patch_params(),
                    &Patch::Merge(json!({"spec": {"capacity": to.0}})),
                )
                .await
                .step("grow CVR", r.name_any())?;
        }
    }
    Ok(())
}

/// Follows `replicaPoolInfo` against `status.poolInfo`: one replica step per pass.
pub(super) async fn scale(
    pass: &mut Pass<'_>,
    cv: &CStorVolume,
    spec_pools: &[String],
) -> Result<(), Error> {
    let from = pass.status.pool_info.len();
    let to = spec_pools.len();
    match scale_op(spec_pools, &pass.status.pool_info) {
        ScaleOp::None => Ok(()),
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
            Ok(())
        }
        ScaleOp::Up { add } => scale_up(pass, cv, &add, from, to).await,
        ScaleOp::Down { remove } => scale_down(pass, cv, &remove, from, to).await,
    }
}

/// Raises the target's replication factor, creates the CVRs on the added pools (marked for a
/// rebuild), and once all exist records the new pool set.
async fn scale_up(
    pass: &mut Pass<'_>,
    cv: &CStorVolume,
    add: &[String],
    from: usize,
    to: usize,
) -> Result<(), Error> {
    let name = pass.name();
    if let Some(drf) = super::decide::scale_up_drf(cv, to) {
        pass.patch_cv_spec(json!({"desiredReplicationFactor": drf}))
            .await?;
    }
    let capacity = storage(&pass.status.capacity)
        .or_else(|| storage(&pass.cvc.spec.capacity))
        .map(|q| q.0.clone())
        .unwrap_or_default();
    let mut errors = Vec::new();
    for pool in add {
        if let Err(e) = create_replica(pass, cv, pool, &capacity).await? {
            errors.push(e);
        }
    }
    let have: BTreeSet<String> = pass
        .apis
        .cvrs
        .list(&of_volume(&name))
        .await
        .step("list CVRs of volume", &name)?
        .items
        .iter()
        .filter_map(pool_of)
        .collect();
    if errors.is_empty() && add.iter().all(|p| have.contains(p)) {
        let pools = union_pools(&pass.status.pool_info, add);
        sync_pdb(pass, &pools).await?;
        pass.status.pool_info = pools;
        finish_scale(pass, to).await;
    } else {
        let (reason, msg) = scale_up_progress(from, to, &errors);
        if pass.set(st::REPLICA_SCALING, reason, msg.clone()) {
            pass.event(EventType::Warning, reasons::SCALING_VOLUME_REPLICAS, msg)
                .await;
        }
        pass.soon(SHORT_REQUEUE);
    }
    Ok(())
}

/// Creates the CVR of this volume on `pool`, to be rebuilt before it counts (phase
/// `Recreate`); `Ok(Err(why))` when the pool is not there.
async fn create_replica(
    pass: &Pass<'_>,
    cv: &CStorVolume,
    pool: &str,
    capacity: &str,
) -> Result<Result<(), String>, Error> {
    let name = pass.name();
    let version = pass.ctx.config.operator_version.clone();
    let Some(cspi) = pass.apis.cspis.get_opt(pool).await.step("get CSPI", pool)? else {
        return Ok(Err(format!("CStorPoolInstance {pool} not found")));
    };
    let target = ReplicaPool {
        name: pool.to_string(),
        uid: cspi.uid().unwrap_or_default(),
        hostname: Candidate::from_cspi(&cspi).node,
    };
    let id = replica_id(&volume_id(pass.cvc), pool);
    let obj = cvr_object(pass.cvc, cv, &target, capacity, &id, &version)?;
    let cvr = cvr_name(&name, pool);
    let created = match pass.apis.cvrs.create(&PostParams::default(), &obj).await {
        Ok(c) => {
            pass.event(
                EventType::Normal,
                reasons::REPLICA_CREATED,
                format!("Created CStorVolumeReplica {cvr} on pool {pool} (replica id {id})"),
            )
            .await;
            Some(c)
        }
        Err(e) if is_already_exists(&e) => {
            pass.apis.cvrs.get_opt(&cvr).await.step("get CVR", &cvr)?
        }
        Err(e) => {
            return Err(cstor_runtime::errors::ApiError::new("create CVR", &cvr, e).into());
        }
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
            .await
            .step("mark CVR for recreation", &cvr)?;
    }
    Ok(Ok(()))
}

/// A Bound volume keeps a replica on every pool of `status.poolInfo`: a CVR deleted by hand
/// (or lost) is made again, and rebuilt from the others before it counts.
async fn recreate_missing(pass: &mut Pass<'_>, cv: &CStorVolume) -> Result<(), Error> {
    let name = pass.name();
    let cvrs = pass
        .apis
        .cvrs
        .list(&of_volume(&name))
        .await
        .step("list CVRs of volume", &name)?
        .items;
    let have: BTreeSet<String> = cvrs.iter().filter_map(pool_of).collect();
    let missing = super::decide::missing_replicas(&pass.status.pool_info, &have);
    if missing.is_empty() {
        return Ok(());
    }
    // The lost replica's id stays in the target's knownReplicas and would keep the new one
    // (another id) out: drop ids no CVR holds any more.
    let ids: BTreeSet<String> = cvrs
        .iter()
        .map(|c| c.spec.replica_id.clone())
        .filter(|i| !i.is_empty())
        .collect();
    let spec_known = cv
        .spec
        .replica_details
        .as_ref()
        .map(|d| d.known_replicas.clone())
        .unwrap_or_default();
    let stale = super::decide::stale_known(&spec_known, &ids);
    if !stale.is_empty() {
        let known: serde_json::Map<String, Value> =
            stale.iter().map(|i| (i.clone(), Value::Null)).collect();
        pass.patch_cv_spec(json!({"replicaDetails": {"knownReplicas": known}}))
            .await?;
    }
    let capacity = storage(&pass.status.capacity)
        .or_else(|| storage(&pass.cvc.spec.capacity))
        .map(|q| q.0.clone())
        .unwrap_or_default();
    for pool in &missing {
        pass.event(
            EventType::Warning,
            reasons::REPLICA_MISSING,
            format!("The replica of {name} on pool {pool} is gone; making it again (it is rebuilt from the others)"),
        )
        .await;
        if let Err(why) = create_replica(pass, cv, pool, &capacity).await? {
            tracing::warn!(volume = %name, %pool, "{why}");
        }
    }
    pass.soon(SHORT_REQUEUE);
    Ok(())
}

/// One step of a scale-down ([`scale_down_step`] decides): lower the target's replication
/// factor and drop the replica from its known set, wait for the target, then delete the CVR.
async fn scale_down(
    pass: &mut Pass<'_>,
    cv: &CStorVolume,
    remove: &str,
    from: usize,
    to: usize,
) -> Result<(), Error> {
    let name = pass.name();
    let cvr = cvr_name(&name, remove);
    let live = pass.apis.cvrs.get_opt(&cvr).await.step("get CVR", &cvr)?;
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
        ScaleDownStep::WaitForHealthy { message } => {
            if pass.set(
                st::REPLICA_SCALING,
                st::WAITING_FOR_HEALTHY_REPLICAS,
                message.clone(),
            ) {
                pass.event(
                    EventType::Warning,
                    reasons::SCALING_VOLUME_REPLICAS,
                    message,
                )
                .await;
            }
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
    Ok(())
}

pub(super) async fn finish_scale(pass: &mut Pass<'_>, to: usize) {
    let msg = format!("successfully scaled volume replicas to {to}");
    pass.set(st::REPLICA_SCALING, st::REPLICAS_SCALED, msg.clone());
    pass.event(EventType::Normal, reasons::SCALING_VOLUME_REPLICAS, msg)
        .await;
}

/// As in the Go operators, without the hash test: re-apply the target Deployment from `spec.policy` (a no-op
/// for the apiserver when nothing changed) and keep the template-hash label current.
pub(super) async fn sync_policy(pass: &mut Pass<'_>, cv: &CStorVolume) -> Result<(), Error> {
    let cvc = pass.cvc;
    let name = pass.name();
    let policy = with_defaults(cvc.spec.policy.clone());
    super::provision::target_identity(pass, cv).await?;
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
        return Err(cstor_runtime::errors::ApiError::new(
            "apply target Deployment",
            target_name(&name),
            e,
        )
        .into());
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
