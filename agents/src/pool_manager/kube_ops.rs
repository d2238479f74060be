//! The pool-manager's API writes: metadata edits as JSON patches guarded by a `test` of
//! `resourceVersion` (the operator edits the same finalizer and annotation lists), status by
//! server-side apply to the status subresource, and Events.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Error;

/// How often a conflicting metadata patch is re-read and retried.
const PATCH_TRIES: usize = 5;

/// A JSON Pointer segment (`/` and `~` escaped, RFC 6901).
pub fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Ops adding `finalizer` at `rv`; `None` when it is already there.
pub fn add_finalizer_ops(finalizers: &[String], rv: &str, finalizer: &str) -> Option<Value> {
    if finalizers.iter().any(|f| f == finalizer) {
        return None;
    }
    let add = if finalizers.is_empty() {
        json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]})
    } else {
        json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer})
    };
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        add
    ]))
}

/// Ops removing `finalizer` (by index, tested) at `rv`; `None` when it is absent.
pub fn remove_finalizer_ops(finalizers: &[String], rv: &str, finalizer: &str) -> Option<Value> {
    let i = finalizers.iter().position(|f| f == finalizer)?;
    let path = format!("/metadata/finalizers/{i}");
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "test", "path": path, "value": finalizer},
        {"op": "remove", "path": path}
    ]))
}

/// Ops removing annotation `key` at `rv`; `None` when it is absent.
pub fn remove_annotation_ops(
    annotations: &std::collections::BTreeMap<String, String>,
    rv: &str,
    key: &str,
) -> Option<Value> {
    annotations.get(key)?;
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "remove", "path": format!("/metadata/annotations/{}", pointer_segment(key))}
    ]))
}

/// Sends a JSON patch (RFC 6902); `ops` is its JSON array.
async fn json_patch<K>(
    _client: &Client,
    api: &Api<K>,
    name: &str,
    ops: &Value,
) -> Result<K, kube::Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
{
    let patch = serde_json::from_value(ops.clone()).map_err(kube::Error::SerdeError)?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
}

/// A failed `test` op (422) or a stale resourceVersion (409): re-read and retry.
fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 422)
}

/// Applies `ops(object)` to the live object until it sticks: on a conflict the object is read
/// again and the ops rebuilt. `ops` returning `None` means nothing to do.
pub async fn patch_metadata<K>(
    client: &Client,
    api: &Api<K>,
    name: &str,
    ops: impl Fn(&K) -> Option<Value>,
) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
{
    let mut last = None;
    for _ in 0..PATCH_TRIES {
        let Some(live) = api.get_opt(name).await.map_err(Error::Kube)? else {
            return Ok(());
        };
        let Some(patch) = ops(&live) else {
            return Ok(());
        };
        match json_patch(client, api, name, &patch).await {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) => {
                tracing::debug!(name, error = %e, "metadata patch conflicted; re-reading");
                last = Some(e);
            }
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    Err(Error::Conflict {
        name: name.to_string(),
        last: last.map(|e| e.to_string()).unwrap_or_default(),
    })
}

/// Adds `finalizer` to the named object (no-op when present).
pub async fn add_finalizer<K>(
    client: &Client,
    api: &Api<K>,
    name: &str,
    finalizer: &str,
) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
{
    patch_metadata(client, api, name, |o| {
        add_finalizer_ops(
            o.finalizers(),
            o.resource_version().as_deref().unwrap_or_default(),
            finalizer,
        )
    })
    .await
}

/// Removes `finalizer` from the named object (no-op when absent or gone).
pub async fn remove_finalizer<K>(
    client: &Client,
    api: &Api<K>,
    name: &str,
    finalizer: &str,
) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
{
    patch_metadata(client, api, name, |o| {
        remove_finalizer_ops(
            o.finalizers(),
            o.resource_version().as_deref().unwrap_or_default(),
            finalizer,
        )
    })
    .await
}

/// Removes annotation `key` from the named object (no-op when absent or gone).
pub async fn remove_annotation<K>(
    client: &Client,
    api: &Api<K>,
    name: &str,
    key: &str,
) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
{
    patch_metadata(client, api, name, |o| {
        remove_annotation_ops(
            o.annotations(),
            o.resource_version().as_deref().unwrap_or_default(),
            key,
        )
    })
    .await
}

/// The server-side-apply body for a CSPI status: identity plus `status` only.
pub fn status_apply_body(name: &str, namespace: &str, status: &impl serde::Serialize) -> Value {
    json!({
        "apiVersion": "cstor.openebs.io/v1",
        "kind": "CStorPoolInstance",
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    })
}

/// Applies `body` to the status subresource as `manager`, forcing ownership.
pub async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    manager: &str,
    body: &Value,
) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(body),
    )
    .await
    .map(|_| ())
    .map_err(Error::Kube)
}

/// Publishes an Event about `reference`; a failure is only logged (an Event is a report, not
/// state).
pub async fn event(
    recorder: &Recorder,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: impl Into<String>,
    action: &str,
) {
    let note = note.into();
    match type_ {
        EventType::Warning => tracing::warn!(reason, %note, "event"),
        EventType::Normal => tracing::info!(reason, %note, "event"),
    }
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, reference).await {
        tracing::warn!(error = %e, reason, "event not published");
    }
}
