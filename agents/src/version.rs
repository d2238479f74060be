//! The version step of the objects the agents reconcile (CSPI and CVR in the pool-manager, CV
//! in the volume-manager; docs/upgrades.md): `cstor_policy::version::decide_agent` says what
//! to write; this writes it and hands back the Event to publish and whether to go on.

use cstor_api::common::VersionDetails;
use cstor_policy::version::{VersionStep, decide_agent};
use cstor_runtime::errors::{ApiError, Step};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

/// What the agent does after the version step.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Reconcile the object now.
    pub proceed: bool,
    /// `(type, reason, note)` to publish on the object.
    pub event: Option<(EventType, &'static str, String)>,
}

/// Takes the version step of `obj` (a `kind` whose record is `details`) for an agent of
/// version `ours`, writing the record under `manager` when it moves.
pub async fn step<K>(
    api: &Api<K>,
    manager: &str,
    obj: &K,
    kind: &str,
    details: Option<&VersionDetails>,
    ours: &str,
) -> Result<Outcome, ApiError>
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
    Ok(match decide_agent(kind, &name, details, ours, &now) {
        VersionStep::Current => Outcome {
            proceed: true,
            event: None,
        },
        // Moving the record never holds the object's work (a target keeps serving through it).
        VersionStep::Write(d) => {
            write(d).await?;
            Outcome {
                proceed: true,
                event: None,
            }
        }
        VersionStep::Finish(d) => {
            let to = d.desired.clone();
            write(d).await?;
            Outcome {
                proceed: true,
                event: Some((
                    EventType::Normal,
                    cstor_runtime::reasons::UPGRADED,
                    format!("{kind} {name} upgraded to version {to}"),
                )),
            }
        }
        VersionStep::Failed { details, event } => {
            write(details).await?;
            Outcome {
                proceed: false,
                event: Some((
                    EventType::Warning,
                    cstor_runtime::reasons::FAILED_UPGRADE,
                    event,
                )),
            }
        }
        VersionStep::Refuse { why, .. } => Outcome {
            proceed: false,
            event: Some((
                EventType::Warning,
                cstor_runtime::reasons::FAILED_UPGRADE,
                why,
            )),
        },
    })
}
