//! The PodDisruptionBudget of a volume with 3+ replicas: found or made over its pools, moved
//! after a scale, deleted with the last volume that names it.

use cstor_runtime::errors::Step;
use cstor_runtime::reasons;

use cstor_api::cstor_v1::CStorVolumeConfig;
use cstor_api::keys::labels;
use kube::ResourceExt;
use kube::api::{ListParams, PostParams};
use kube::runtime::events::EventType;
use serde_json::json;

use crate::Error;
use crate::cvc::objects::{pdb_covers, pdb_object};
use crate::meta::{delete_ignore_missing, is_already_exists};

use super::reconcile::{Apis, Context, Pass, publish};

/// Get-or-create the PDB over `pools`: reuse one covering exactly these pools (also a PDB made
/// by the Go operator), else create the deterministic one. Returns its name.
pub(super) async fn ensure_pdb(
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
        .await
        .step("list PodDisruptionBudgets over pools", &selector)?
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
        Err(e) => {
            return Err(cstor_runtime::errors::ApiError::new(
                "create PodDisruptionBudget",
                &name,
                e,
            )
            .into());
        }
    }
    Ok(name)
}

/// Deletes PDB `pdb` unless a CVC other than `cvc` still names it.
pub(super) async fn delete_pdb_if_unused(
    ctx: &Context,
    apis: &Apis,
    cvc: &CStorVolumeConfig,
    pdb: &str,
) -> Result<(), Error> {
    let lp = ListParams::default().labels(&format!("{}={pdb}", labels::POD_DISRUPTION_BUDGET));
    let users = apis
        .cvcs
        .list_metadata(&lp)
        .await
        .step("list CVCs using PodDisruptionBudget", pdb)?
        .items;
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
pub(super) async fn sync_pdb(pass: &Pass<'_>, pools: &[String]) -> Result<(), Error> {
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
