//! The one Event publisher: logs the Event at its level, publishes it, and only logs a failure
//! (an Event is a report, never state, so it must not fail a reconcile).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// A recorder that reports as `controller` (the component) from `instance` (the pod).
pub fn recorder(client: kube::Client, controller: &str, instance: Option<String>) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: controller.into(),
            instance,
        },
    )
}

/// Publishes an Event about `reference` with `reason` (a [`crate::reasons`] constant) and
/// `action` (what the component was doing).
pub async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: impl Into<String>,
    action: &str,
) {
    let note = note.into();
    let object = reference.name.as_deref().unwrap_or_default();
    match type_ {
        EventType::Warning => tracing::warn!(reason, object, %note, "event"),
        EventType::Normal => tracing::info!(reason, object, %note, "event"),
    }
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, reference).await {
        tracing::warn!(error = %e, reason, object, "event not published");
    }
}
