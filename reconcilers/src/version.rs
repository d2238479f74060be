//! The version step the operators take before reconciling a CSPC or a CVC (docs/upgrades.md):
//! `cstor_policy::version::decide` says what to write; this writes it, publishes the Events
//! and keeps the `VersionReconciled` condition, and tells the caller whether to go on.

use cstor_api::common::{ConditionStatus, PoolCondition, VersionDetails};
use cstor_api::cstor_v1::{CStorPoolCluster, CStorVolumeConfig, CStorVolumeConfigCondition};
use cstor_policy::version::{self as policy, VersionStep};
use cstor_runtime::conditions::{remove_condition, set_condition};
use cstor_runtime::errors::Step;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::Error;

/// A kind whose version an operator reconciles.
pub trait Versioned:
    Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug
{
    /// The kind as the Go operators name it in Events (`CSPC`, `CVC`).
    const SHORT: &'static str;
    fn version_details(&self) -> Option<&VersionDetails>;
    /// The status patch that sets (`Some`) or removes (`None`) the version condition, or
    /// `None` when nothing changes.
    fn condition_patch(&self, condition: Option<(bool, &str, String)>) -> Option<Value>;
}

impl Versioned for CStorPoolCluster {
    const SHORT: &'static str = "CSPC";
    fn version_details(&self) -> Option<&VersionDetails> {
        self.version_details.as_ref()
    }
    fn condition_patch(&self, condition: Option<(bool, &str, String)>) -> Option<Value> {
        let mut conditions = self
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let changed = match condition {
            Some((ok, reason, message)) => set_condition(
                &mut conditions,
                PoolCondition {
                    type_: policy::CONDITION.into(),
                    status: if ok {
                        ConditionStatus::True
                    } else {
                        ConditionStatus::False
                    },
                    reason: reason.into(),
                    message,
                    observed_generation: self.metadata.generation,
                    last_update_time: None,
                    last_transition_time: None,
                },
                &cstor_runtime::now(),
            ),
            None => remove_condition(&mut conditions, policy::CONDITION),
        };
        changed.then(|| json!({"status": {"conditions": conditions}}))
    }
}

impl Versioned for CStorVolumeConfig {
    const SHORT: &'static str = "CVC";
    fn version_details(&self) -> Option<&VersionDetails> {
        self.version_details.as_ref()
    }
    fn condition_patch(&self, condition: Option<(bool, &str, String)>) -> Option<Value> {
        let mut conditions = self
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        // A CVC condition has no status: it is there while something needs attention.
        let changed = match condition {
            Some((false, reason, message)) => set_condition(
                &mut conditions,
                CStorVolumeConfigCondition {
                    type_: policy::CONDITION.into(),
                    reason: reason.into(),
                    message,
                    observed_generation: self.metadata.generation,
                    ..CStorVolumeConfigCondition::default()
                },
                &cstor_runtime::now(),
            ),
            _ => remove_condition(&mut conditions, policy::CONDITION),
        };
        changed.then(|| json!({"status": {"condition": conditions}}))
    }
}

/// Takes the version step of `obj` for an operator of version `ours`; `populate` is the
/// version an object without a record is at. `Ok(true)`: reconcile it now; `Ok(false)`: not
/// (written and requeued by the watch, refused, or failed).
pub async fn step<K: Versioned>(
    api: &Api<K>,
    recorder: &Recorder,
    manager: &str,
    obj: &K,
    ours: &str,
    populate: &str,
) -> Result<bool, Error> {
    let name = obj.name_any();
    let now = cstor_runtime::now();
    let step = policy::decide(
        K::SHORT,
        &name,
        obj.version_details(),
        ours,
        populate,
        false,
        &now,
    );
    let condition = match &step {
        VersionStep::Current => None,
        other => policy::condition(other, K::SHORT, &name, ours),
    };
    if !matches!(step, VersionStep::Write(_) | VersionStep::Finish(_))
        && let Some(body) = obj.condition_patch(condition)
    {
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(body))
            .await
            .step("write version condition", &name)?;
    }
    let reference = obj.object_ref(&());
    let publish = |type_, reason: &'static str, note: String| {
        cstor_runtime::events::publish(
            recorder,
            &reference,
            type_,
            reason,
            note,
            cstor_runtime::reasons::action::RECONCILE,
        )
    };
    let write = |details: VersionDetails| async move {
        api.patch(
            &name,
            &PatchParams {
                field_manager: Some(manager.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({ "versionDetails": details })),
        )
        .await
        .step("write versionDetails", obj.name_any())
        .map(|_| ())
    };
    match step {
        VersionStep::Current => Ok(true),
        VersionStep::Write(d) => {
            write(d).await?;
            Ok(false)
        }
        VersionStep::Finish(d) => {
            let to = d.desired.clone();
            write(d).await?;
            publish(
                EventType::Normal,
                cstor_runtime::reasons::UPGRADED,
                format!("{} {} upgraded to version {to}", K::SHORT, obj.name_any()),
            )
            .await;
            Ok(false)
        }
        VersionStep::Failed { details, event } => {
            write(details).await?;
            publish(
                EventType::Warning,
                cstor_runtime::reasons::FAILED_UPGRADE,
                event,
            )
            .await;
            Ok(false)
        }
        VersionStep::Refuse { why, .. } => {
            let current = obj
                .version_details()
                .and_then(|v| v.status.as_ref())
                .map(|s| s.current.clone())
                .unwrap_or_default();
            // Go's words, then ours: what to do.
            let (reason, can) = match K::SHORT {
                "CSPC" => ("CSPC Reconcile", "Can not reconcile CSPC"),
                _ => ("CVC Reconcile", "can not reconcile CVC"),
            };
            let short = K::SHORT.to_lowercase();
            publish(
                EventType::Warning,
                reason,
                format!(
                    "{can} {} as {short} operator version is {ours} but {short} version is {current}: {why}",
                    obj.name_any()
                ),
            )
            .await;
            Ok(false)
        }
    }
}
