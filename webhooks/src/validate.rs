//! `/validate`: dispatch by kind and operation to the policy rules (docs/admission.md A.1 scope).

use cstor_api::cstor_v1::{
    CStorPoolCluster, CStorPoolInstance, CStorVolume, CStorVolumeConfig, CStorVolumeReplica,
};
use cstor_api::openebs_v1alpha1::MigrationTask;
use cstor_policy::Verdict;
use cstor_policy::owned::{self, Request as OwnedRequest};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::StatusSummary;
use serde::de::DeserializeOwned;

use crate::Config;
use crate::facts::{Facts, OwnerKind};

/// Answers one review; total: every input gets a response with the request's uid (or an
/// `invalid` response when the envelope itself cannot be read).
pub async fn review<F: Facts>(
    review: AdmissionReview<DynamicObject>,
    facts: &F,
    config: &Config,
) -> AdmissionReview<DynamicObject> {
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return AdmissionResponse::invalid(e.to_string()).into_review(),
    };
    let verdict = decide(&req, facts, config).await;
    respond(&req, verdict).into_review()
}

/// The response for `req` carrying `verdict`.
pub fn respond(req: &AdmissionRequest<DynamicObject>, verdict: Verdict) -> AdmissionResponse {
    let response = AdmissionResponse::from(req);
    if verdict.allowed {
        return response;
    }
    let mut response = response.deny(verdict.message);
    response.result.code = verdict.code;
    response.result.status = Some(StatusSummary::Failure);
    response.result.reason = verdict.reason.unwrap_or_else(|| "BadRequest".into());
    response
}

/// A typed view of an admission object; a malformed one is a 400 naming the kind.
fn typed<T: DeserializeOwned>(obj: &DynamicObject, kind: &str) -> Result<T, Verdict> {
    serde_json::to_value(obj)
        .and_then(serde_json::from_value)
        .map_err(|e| Verdict::deny(400, format!("could not decode {kind}: {e}")))
}

fn object<'a>(
    obj: &'a Option<DynamicObject>,
    which: &str,
    kind: &str,
) -> Result<&'a DynamicObject, Verdict> {
    obj.as_ref()
        .ok_or_else(|| Verdict::deny(400, format!("{kind} admission request has no {which}")))
}

/// Every BlockDevice the CSPC names, in data and write-cache groups.
fn named_bds(cspc: &CStorPoolCluster) -> Vec<&str> {
    cspc.spec
        .pools
        .iter()
        .flat_map(|p| p.block_device_names())
        .collect()
}

fn facts_error(e: impl std::fmt::Display) -> Verdict {
    Verdict::deny(500, e.to_string())
}

async fn decide<F: Facts>(
    req: &AdmissionRequest<DynamicObject>,
    facts: &F,
    config: &Config,
) -> Verdict {
    match run(req, facts, config).await {
        Ok(v) | Err(v) => v,
    }
}

async fn run<F: Facts>(
    req: &AdmissionRequest<DynamicObject>,
    facts: &F,
    config: &Config,
) -> Result<Verdict, Verdict> {
    let group = req.kind.group.as_str();
    let kind = req.kind.kind.as_str();
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let op = &req.operation;
    match (group, kind) {
        ("cstor.openebs.io", "CStorPoolCluster") => match op {
            Operation::Create => {
                let cspc: CStorPoolCluster = typed(object(&req.object, "object", kind)?, kind)?;
                if let Some(what) = crate::convert::v1alpha1_unsupported(&cspc.metadata) {
                    return Ok(Verdict::deny(422, what));
                }
                let f = facts
                    .cspc_facts(namespace, &config.openebs_namespace, &named_bds(&cspc))
                    .await
                    .map_err(facts_error)?;
                Ok(cstor_policy::cspc::validate_create(&cspc, &f))
            }
            Operation::Update => {
                let new: CStorPoolCluster = typed(object(&req.object, "object", kind)?, kind)?;
                let old: CStorPoolCluster =
                    typed(object(&req.old_object, "oldObject", kind)?, kind)?;
                if old.spec == new.spec {
                    return Ok(Verdict::allow());
                }
                if let Some(what) = crate::convert::v1alpha1_unsupported(&new.metadata) {
                    return Ok(Verdict::deny(422, what));
                }
                let f = facts
                    .cspc_facts(namespace, &config.openebs_namespace, &named_bds(&new))
                    .await
                    .map_err(facts_error)?;
                Ok(cstor_policy::cspc_update::validate_update(&old, &new, &f))
            }
            Operation::Delete => {
                let old: CStorPoolCluster =
                    typed(object(&req.old_object, "oldObject", kind)?, kind)?;
                let f = facts
                    .cspc_facts(namespace, &config.openebs_namespace, &[])
                    .await
                    .map_err(facts_error)?;
                Ok(cstor_policy::cspc_update::validate_delete(&old, &f))
            }
            Operation::Connect => Ok(Verdict::allow()),
        },
        ("cstor.openebs.io", "CStorVolumeConfig") if *op == Operation::Update => {
            let new: CStorVolumeConfig = typed(object(&req.object, "object", kind)?, kind)?;
            let old: CStorVolumeConfig = typed(object(&req.old_object, "oldObject", kind)?, kind)?;
            Ok(cstor_policy::cvc::validate_update_by(
                &old,
                &new,
                req.user_info.username.as_deref().unwrap_or_default(),
                &config.operator_accounts,
            ))
        }
        ("cstor.openebs.io", "CStorPoolInstance" | "CStorVolumeReplica" | "CStorVolume") => {
            let operation = match op {
                Operation::Create => owned::Operation::Create,
                Operation::Update => owned::Operation::Update,
                Operation::Delete => owned::Operation::Delete,
                Operation::Connect => return Ok(Verdict::allow()),
            };
            let old_obj = match operation {
                owned::Operation::Create => None,
                _ => Some(object(&req.old_object, "oldObject", kind)?),
            };
            // The owner is the stored object's controller ownerReference, by UID: labels are
            // free to edit, a reference is not (the rule guards it).
            let owner_deleting = match (operation, &old_obj) {
                (owned::Operation::Delete, Some(old)) => {
                    match old
                        .metadata
                        .owner_references
                        .as_ref()
                        .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)))
                    {
                        Some(r) => match OwnerKind::of(&r.kind) {
                            Some(owner_kind) => facts
                                .owner_deleting(owner_kind, namespace, &r.name, &r.uid)
                                .await
                                .map_err(facts_error)?,
                            None => false,
                        },
                        None => false,
                    }
                }
                _ => false,
            };
            let who = OwnedRequest {
                username: req.user_info.username.as_deref().unwrap_or_default(),
                operation,
                owner_deleting,
            };
            let ops = &config.operator_accounts;
            let new_obj = match operation {
                owned::Operation::Delete => None,
                _ => Some(object(&req.object, "object", kind)?),
            };
            Ok(match kind {
                "CStorPoolInstance" => {
                    let old = old_obj
                        .map(|o| typed::<CStorPoolInstance>(o, kind))
                        .transpose()?;
                    let new = new_obj
                        .map(|o| typed::<CStorPoolInstance>(o, kind))
                        .transpose()?;
                    owned::cspi(old.as_ref(), new.as_ref(), &who, ops)
                }
                "CStorVolumeReplica" => {
                    let old = old_obj
                        .map(|o| typed::<CStorVolumeReplica>(o, kind))
                        .transpose()?;
                    let new = new_obj
                        .map(|o| typed::<CStorVolumeReplica>(o, kind))
                        .transpose()?;
                    owned::cvr(old.as_ref(), new.as_ref(), &who, ops)
                }
                _ => {
                    let old = old_obj.map(|o| typed::<CStorVolume>(o, kind)).transpose()?;
                    let new = new_obj.map(|o| typed::<CStorVolume>(o, kind)).transpose()?;
                    owned::cstor_volume(old.as_ref(), new.as_ref(), &who, ops)
                }
            })
        }
        ("openebs.io", "MigrationTask") if matches!(op, Operation::Create | Operation::Update) => {
            let task: MigrationTask = typed(object(&req.object, "object", kind)?, kind)?;
            let old = match op {
                Operation::Update => Some(typed::<MigrationTask>(
                    object(&req.old_object, "oldObject", kind)?,
                    kind,
                )?),
                _ => None,
            };
            let others = match op {
                Operation::Create => facts
                    .migration_tasks(namespace)
                    .await
                    .map_err(facts_error)?,
                _ => Vec::new(),
            };
            Ok(cstor_policy::migrate::validate_task(
                &task,
                old.as_ref(),
                &others,
            ))
        }
        ("", "PersistentVolumeClaim") if *op == Operation::Delete => {
            let volume = req
                .old_object
                .as_ref()
                .and_then(|o| o.data.pointer("/spec/volumeName"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            if req.name.is_empty() {
                return Ok(Verdict::allow());
            }
            let (cvs, cvcs) = facts.clone_counts(&volume).await.map_err(facts_error)?;
            Ok(cstor_policy::pvc::validate_delete(
                namespace, &req.name, cvs, cvcs,
            ))
        }
        ("", "Namespace") if *op == Operation::Delete => {
            if req.name != config.openebs_namespace {
                return Ok(Verdict::allow());
            }
            let (cspcs, cvcs) = facts
                .namespace_holdings(&req.name)
                .await
                .map_err(facts_error)?;
            Ok(cstor_policy::namespace::validate_delete(
                &req.name,
                &config.openebs_namespace,
                cspcs,
                cvcs,
            ))
        }
        _ => Ok(Verdict::allow()),
    }
}
