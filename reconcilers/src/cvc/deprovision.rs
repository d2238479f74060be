//! A deleted volume: its PDB if unused, then our finalizer; owners take the rest.

use cstor_runtime::reasons;

use cstor_api::cstor_v1::CStorVolumeConfig;
use cstor_api::keys::{finalizers, labels};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use crate::Error;
use crate::meta::has_finalizer;

use super::pdb::delete_pdb_if_unused;
use super::reconcile::{Apis, Context, publish};

/// As in the Go operators: drop the PDB if only this volume used it, then our finalizer (only ours); the
/// garbage collector removes Service, CV, target and CVRs through their owners.
pub(super) async fn deprovision(
    cvc: &CStorVolumeConfig,
    ctx: &Context,
    apis: &Apis,
) -> Result<Action, Error> {
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
