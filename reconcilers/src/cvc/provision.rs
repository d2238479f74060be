//! A Pending volume: policy, target Service, CStorVolume, target Deployment, replicas on placed
//! pools, PDB, then Bound.

use cstor_runtime::errors::{ApiError, Step};
use cstor_runtime::reasons;
use std::collections::BTreeSet;

use cstor_api::cstor_v1::{CStorVolume, CStorVolumePolicySpec, ReplicaPoolInfo, cvc::phase};
use cstor_api::keys::{annotations, labels};
use kube::api::{ListParams, Patch, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::cvc::decide::provision_request;
use crate::cvc::objects::{
    ReplicaPool, clone_source, cv_apply, cvr_name, cvr_object, initial_cv_spec, policy_hash,
    target_deployment, target_name, target_service, with_defaults,
};
use crate::cvc::placement::{Candidate, ExistingReplica, POOLS_SELECTED, PlacementInput, place};
use crate::cvc::status::{self as st, remove_condition};
use crate::meta::is_already_exists;

use super::pdb::ensure_pdb;
use super::reconcile::{
    MEDIUM_REQUEUE, Pass, SHORT_REQUEUE, apply_params, of_volume, pool_names, pool_of, union_pools,
};

/// Records why a Pending CVC can't proceed: condition `Provisioning`, Warning Event, requeue.
pub(super) async fn pending_problem(pass: &mut Pass<'_>, reason: &str, message: String) {
    pass.report(st::PROVISIONING, reason, message, EventType::Warning)
        .await;
    if pass.status.phase.is_empty() {
        pass.status.phase = phase::PENDING.into();
    }
    pass.soon(MEDIUM_REQUEUE);
}

/// As in the Go operators: Service, CV, target Deployment, CVRs on placed pools, PDB, then Bound.
/// Each step is get-or-create; a step that must wait records why and ends the pass.
pub(super) async fn provision(pass: &mut Pass<'_>) -> Result<(), Error> {
    let cvc = pass.cvc;
    let version = pass.ctx.config.operator_version.clone();
    if pass.status.phase.is_empty() {
        pass.status.phase = phase::PENDING.into();
    }
    let Some(mut policy) = resolve_policy(pass).await? else {
        return Ok(());
    };
    // Input checks: each problem is a condition, never a panic.
    let request = match provision_request(cvc) {
        Ok(r) => r,
        Err(p) => {
            pending_problem(pass, p.reason, p.message).await;
            return Ok(());
        }
    };
    let Some(cluster_ip) = ensure_service(pass, &version).await? else {
        return Ok(());
    };
    remove_condition(&mut pass.status.conditions, st::PROVISIONING);
    let cv = ensure_cv(pass, &cluster_ip, &version).await?;
    apply_target(pass, &cv, &policy).await?;

    let pinned = pool_names(&policy);
    let placed = place_replicas(
        pass,
        &cv,
        &policy,
        &pinned,
        &request.cspc,
        &request.capacity,
        request.replica_count,
        &version,
    )
    .await?;
    let Some(with_replicas) = placed else {
        return Ok(());
    };
    let pools = union_pools(&pinned, &with_replicas);
    policy.replica_pool_info = pools
        .iter()
        .map(|p| ReplicaPoolInfo {
            pool_name: p.clone(),
        })
        .collect();
    bind(pass, &cv, &request.cspc, policy, pools).await
}

/// The policy of the volume: the named CStorVolumePolicy, else the CVC's own, with target
/// defaults filled in; pools pinned on the claim win over the policy's. `None`: the named
/// policy is missing (recorded; the CVC stays Pending).
async fn resolve_policy(pass: &mut Pass<'_>) -> Result<Option<CStorVolumePolicySpec>, Error> {
    let cvc = pass.cvc;
    let Some(name) = cvc
        .annotations()
        .get(annotations::VOLUME_POLICY)
        .filter(|p| !p.is_empty())
    else {
        return Ok(Some(with_defaults(cvc.spec.policy.clone())));
    };
    let Some(cvp) = pass
        .apis
        .cvps
        .get_opt(name)
        .await
        .step("get CStorVolumePolicy", name)?
    else {
        let ns = cvc
            .namespace()
            .unwrap_or_else(|| pass.ctx.config.namespace.clone());
        let msg = format!(
            "CStorVolumePolicy {name} (annotation {}) not found in namespace {ns}",
            annotations::VOLUME_POLICY
        );
        pending_problem(pass, st::POLICY_NOT_FOUND, msg).await;
        return Ok(None);
    };
    let mut policy = with_defaults(cvp.spec);
    if !cvc.spec.policy.replica_pool_info.is_empty() {
        policy.replica_pool_info = cvc.spec.policy.replica_pool_info.clone();
    }
    Ok(Some(policy))
}

/// Get-or-create the target Service; its clusterIP, or `None` while it has none (recorded).
async fn ensure_service(pass: &mut Pass<'_>, version: &str) -> Result<Option<String>, Error> {
    let name = pass.name();
    let service = match pass
        .apis
        .services
        .get_opt(&name)
        .await
        .step("get target Service", &name)?
    {
        Some(s) => s,
        None => {
            let svc = target_service(pass.cvc, version)?;
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
                Err(e) if is_already_exists(&e) => pass
                    .apis
                    .services
                    .get(&name)
                    .await
                    .step("get target Service", &name)?,
                Err(e) => {
                    return Err(ApiError::new("create target Service", &name, e).into());
                }
            }
        }
    };
    let cluster_ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .filter(|ip| !ip.is_empty() && ip != "None");
    if cluster_ip.is_none() {
        let msg = format!("target Service {name} has no clusterIP yet");
        pending_problem(pass, st::WAITING_FOR_CLUSTER_IP, msg).await;
        pass.soon(SHORT_REQUEUE);
    }
    Ok(cluster_ip)
}

/// Get-or-create the CStorVolume (spec, labels and owner by server-side apply, only when
/// missing: afterwards the volume-manager co-owns its spec).
async fn ensure_cv(pass: &Pass<'_>, cluster_ip: &str, version: &str) -> Result<CStorVolume, Error> {
    let name = pass.name();
    if let Some(cv) = pass
        .apis
        .cvs
        .get_opt(&name)
        .await
        .step("get CStorVolume", &name)?
    {
        return Ok(cv);
    }
    let body = cv_apply(
        pass.cvc,
        &initial_cv_spec(pass.cvc, cluster_ip),
        version,
        None,
    )?;
    let cv = pass
        .apis
        .cvs
        .patch(&name, &apply_params(), &Patch::Apply(body))
        .await
        .step("create CStorVolume", &name)?;
    pass.event(
        EventType::Normal,
        reasons::VOLUME_CREATED,
        format!("Created CStorVolume {name} with target {cluster_ip}:3260"),
    )
    .await;
    Ok(cv)
}

/// The volume target's own ServiceAccount and RoleBinding (owned by the CStorVolume), made
/// before the Deployment whose pods run as it.
pub(super) async fn target_identity(pass: &Pass<'_>, cv: &CStorVolume) -> Result<(), Error> {
    let name = pass.name();
    let owner = crate::cspc::claim::controller_ref(cv).ok_or_else(|| Error::MissingField {
        kind: "CStorVolume",
        name: name.clone(),
        field: "uid",
    })?;
    crate::agent_identity::ensure(
        &pass.ctx.client,
        &cv.namespace()
            .unwrap_or_else(|| pass.ctx.config.namespace.clone()),
        &pass.ctx.config.volume_manager_account,
        &name,
        &owner,
        super::FIELD_MANAGER,
    )
    .await?;
    Ok(())
}

/// Server-side applies the target Deployment (an Event when it was new).
async fn apply_target(
    pass: &Pass<'_>,
    cv: &CStorVolume,
    policy: &CStorVolumePolicySpec,
) -> Result<(), Error> {
    let target = target_name(&pass.name());
    target_identity(pass, cv).await?;
    let deployment = target_deployment(pass.cvc, cv, policy, &pass.ctx.config)?;
    let had_target = pass
        .apis
        .deployments
        .get_metadata_opt(&target)
        .await
        .step("get target Deployment", &target)?
        .is_some();
    pass.apis
        .deployments
        .patch(&target, &apply_params(), &Patch::Apply(&deployment))
        .await
        .step("apply target Deployment", &target)?;
    if !had_target {
        pass.event(
            EventType::Normal,
            reasons::TARGET_CREATED,
            format!("Created target Deployment {target}"),
        )
        .await;
    }
    Ok(())
}

/// The last steps: PDB over 3+ pools, status Bound, then the CVC's spec records the pools and
/// the volume (status first: the webhook only lets replicaPoolInfo grow past status.poolInfo
/// once Bound).
async fn bind(
    pass: &mut Pass<'_>,
    cv: &CStorVolume,
    cspc: &str,
    policy: CStorVolumePolicySpec,
    pools: Vec<String>,
) -> Result<(), Error> {
    let ns = pass
        .cvc
        .namespace()
        .unwrap_or_else(|| pass.ctx.config.namespace.clone());
    let pdb = if pools.len() >= 3 {
        Some(ensure_pdb(pass, &ns, cspc, &pools).await?)
    } else {
        None
    };
    pass.status.phase = phase::BOUND.into();
    pass.status.capacity = pass.cvc.spec.capacity.clone();
    pass.status.pool_info = pools;
    pass.write_status().await?;
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
pub(super) async fn place_replicas(
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
    let cvrs = pass
        .apis
        .cvrs
        .list(&of_volume(&name))
        .await
        .step("list CVRs of volume", &name)?
        .items;
    let mut with_replicas: Vec<String> = cvrs.iter().filter_map(pool_of).collect();
    let needed = replica_count.saturating_sub(cvrs.len());
    if needed > 0 {
        let cspis = pass
            .apis
            .cspis
            .list(&ListParams::default().labels(&format!("{}={cspc}", labels::CSTOR_POOL_CLUSTER)))
            .await
            .step("list CSPIs of CSPC", cspc)?
            .items;
        let candidates: Vec<Candidate> = cspis.iter().map(Candidate::from_cspi).collect();
        // Read now, not from a cache: a pool cluster being deleted must not get a replica.
        let cspc_deleting = pass
            .apis
            .cspcs
            .get_opt(cspc)
            .await
            .step("get CStorPoolCluster", cspc)?
            .is_some_and(|c| c.metadata.deletion_timestamp.is_some());
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
            for r in pass
                .apis
                .cvrs
                .list(&of_volume(src))
                .await
                .step("list CVRs of clone source", src)?
                .items
            {
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
            cspc_deleting,
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
                Err(e) => {
                    return Err(cstor_runtime::errors::ApiError::new(
                        "create CVR",
                        cvr_name(&name, pool),
                        e,
                    )
                    .into());
                }
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
