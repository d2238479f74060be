//! `/mutate`: CSPC pool defaults (docs/admission.md A.7) as a JSONPatch; no patch when nothing
//! changes.

use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_policy::Verdict;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};

use crate::validate::respond;

/// Answers one mutating review.
pub fn review(review: AdmissionReview<DynamicObject>) -> AdmissionReview<DynamicObject> {
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return AdmissionResponse::invalid(e.to_string()).into_review(),
    };
    match patch_for(&req) {
        Ok(Some(patch)) => match AdmissionResponse::from(&req).with_patch(patch) {
            Ok(r) => r.into_review(),
            Err(e) => respond(&req, Verdict::deny(500, e.to_string())).into_review(),
        },
        Ok(None) => AdmissionResponse::from(&req).into_review(),
        Err(v) => respond(&req, v).into_review(),
    }
}

/// The patch that makes the pool defaults explicit, if any is needed.
pub fn patch_for(
    req: &AdmissionRequest<DynamicObject>,
) -> Result<Option<json_patch::Patch>, Verdict> {
    if req.kind.kind != "CStorPoolCluster" || req.kind.group != "cstor.openebs.io" {
        return Ok(None);
    }
    let Some(obj) = req.object.as_ref() else {
        return Ok(None);
    };
    let original = serde_json::to_value(obj).map_err(|e| Verdict::deny(400, e.to_string()))?;
    let typed: CStorPoolCluster = serde_json::from_value(original.clone())
        .map_err(|e| Verdict::deny(400, format!("could not decode CStorPoolCluster: {e}")))?;
    let defaulted = cstor_policy::defaults::with_pool_defaults(&typed);
    if defaulted == typed {
        return Ok(None);
    }
    // Diff only the pools: the rest of the object (unknown fields, metadata) is left alone.
    let before = original.pointer("/spec/pools").cloned().unwrap_or_default();
    let after = serde_json::to_value(&defaulted.spec.pools)
        .map_err(|e| Verdict::deny(500, e.to_string()))?;
    let mut patch = json_patch::diff(&before, &after);
    for op in &mut patch.0 {
        prefix_path(op);
    }
    Ok((!patch.0.is_empty()).then_some(patch))
}

fn prefix_path(op: &mut json_patch::PatchOperation) {
    use json_patch::PatchOperation as P;
    let path = match op {
        P::Add(o) => &mut o.path,
        P::Remove(o) => &mut o.path,
        P::Replace(o) => &mut o.path,
        P::Move(o) => &mut o.path,
        P::Copy(o) => &mut o.path,
        P::Test(o) => &mut o.path,
    };
    let mut full = json_patch::jsonptr::PointerBuf::from_tokens(["spec", "pools"]);
    full.append(path.as_ptr());
    *path = full;
}
