//! The version step of the objects the agents reconcile (CSPI and CVR in the pool-manager, CV
//! in the volume-manager; docs/upgrades.md): `cstor_policy::version::decide_agent` says what
//! to write; this writes it, publishes the Event and says whether to go on.

use cstor_api::common::VersionDetails;
use cstor_policy::version::{VersionStep, decide_agent};
use cstor_runtime::errors::{ApiError, Step};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;

/// Takes the version step of `obj` (a `kind` whose record is `details`) for this agent's
/// version, writing the record under `manager` when it moves and publishing its Event with
/// `recorder`. `true`: reconcile the object now (moving the record never holds the object's
/// work: a target keeps serving through it); `false`: refused or failed.
pub async fn step<K>(
    api: &Api<K>,
    recorder: &Recorder,
    manager: &str,
    obj: &K,
    kind: &str,
    details: Option<&VersionDetails>,
) -> Result<bool, ApiError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj.name_any();
    let write = |d: VersionDetails| {
        let name = name.clone();
        async move {
            let params = PatchParams {
                field_manager: Some(manager.into()),
                ..PatchParams::default()
            };
            api.patch(
                &name,
                &params,
                &Patch::Merge(json!({ "versionDetails": d })),
            )
            .await
            .step("write versionDetails", &name)
            .map(|_| ())
        }
    };
    let now = cstor_runtime::now();
    let ours = cstor_runtime::version::ours();
    let (proceed, event) = match decide_agent(kind, &name, details, &ours, &now) {
        VersionStep::Current => (true, None),
        VersionStep::Write(d) => {
            write(d).await?;
            (true, None)
        }
        VersionStep::Finish(d) => {
            let to = d.desired.clone();
            write(d).await?;
            let note = format!("{kind} {name} upgraded to version {to}");
            (
                true,
                Some((EventType::Normal, cstor_runtime::reasons::UPGRADED, note)),
            )
        }
        VersionStep::Failed { details, event } => {
            write(details).await?;
            (
                false,
                Some((
                    EventType::Warning,
                    cstor_runtime::reasons::FAILED_UPGRADE,
                    event,
                )),
            )
        }
        VersionStep::Refuse { why, .. } => (
            false,
            Some((
                EventType::Warning,
                cstor_runtime::reasons::FAILED_UPGRADE,
                why,
            )),
        ),
    };
    if let Some((type_, reason, note)) = event {
        cstor_runtime::events::publish(
            recorder,
            &obj.object_ref(&()),
            type_,
            reason,
            note,
            cstor_runtime::reasons::action::RECONCILE,
        )
        .await;
    }
    Ok(proceed)
}
