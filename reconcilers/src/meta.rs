//! Metadata writes shared by the controllers: finalizer edits as JSON patches guarded by a
//! `test` on `/metadata/resourceVersion` (other writers edit the same lists, so a list is never
//! overwritten blindly), and small object-metadata predicates.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Error;

/// How often a metadata patch is retried after losing a race.
const ATTEMPTS: u32 = 6;

/// Whether the object carries `finalizer`.
pub fn has_finalizer<K: Resource>(obj: &K, finalizer: &str) -> bool {
    obj.meta()
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == finalizer))
}

/// Whether the object has a deletionTimestamp.
pub fn is_deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

/// The JSON patch adding `finalizer` to `obj`, or `None` when it is already there.
pub fn add_finalizer_patch<K: Resource>(obj: &K, finalizer: &str) -> Option<Value> {
    if has_finalizer(obj, finalizer) {
        return None;
    }
    let rv = obj.meta().resource_version.clone().unwrap_or_default();
    let add = match &obj.meta().finalizers {
        Some(_) => json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}),
        None => json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}),
    };
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        add,
    ]))
}

/// The JSON patch removing `finalizer` from `obj` (by index, after testing both the
/// resourceVersion and the entry), or `None` when it is not there.
pub fn remove_finalizer_patch<K: Resource>(obj: &K, finalizer: &str) -> Option<Value> {
    let list = obj.meta().finalizers.as_ref()?;
    let i = list.iter().position(|f| f == finalizer)?;
    let rv = obj.meta().resource_version.clone().unwrap_or_default();
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": finalizer},
        {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
    ]))
}

/// Whether an API error means "someone else wrote first": a failed `test` (422) or a
/// resourceVersion conflict (409).
fn lost_race(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 422)
}

/// Whether an API error is NotFound.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether an API error is AlreadyExists.
pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// Applies `build(live)` as a JSON patch, re-reading the object after each lost race.
/// Returns `false` when the object is gone or `build` has nothing to do.
async fn patch_meta<K>(
    api: &Api<K>,
    name: &str,
    build: impl Fn(&K) -> Option<Value>,
) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    for _ in 0..ATTEMPTS {
        let Some(live) = api.get_opt(name).await? else {
            return Ok(false);
        };
        let Some(ops) = build(&live) else {
            return Ok(false);
        };
        let patch = Patch::Json::<()>(serde_json::from_value(ops)?);
        match api.patch(name, &PatchParams::default(), &patch).await {
            Ok(_) => return Ok(true),
            Err(e) if lost_race(&e) => continue,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict {
        kind: K::kind(&K::DynamicType::default()).into_owned(),
        name: name.to_string(),
        attempts: ATTEMPTS,
    })
}

/// Adds `finalizer` to the named object unless present. `Ok(true)` when a write happened.
pub async fn add_finalizer<K>(api: &Api<K>, name: &str, finalizer: &str) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    patch_meta(api, name, |o| add_finalizer_patch(o, finalizer)).await
}

/// Removes `finalizer` from the named object if present. `Ok(true)` when a write happened.
pub async fn remove_finalizer<K>(api: &Api<K>, name: &str, finalizer: &str) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    patch_meta(api, name, |o| remove_finalizer_patch(o, finalizer)).await
}

/// Removes a JSON field by path, guarded by the resourceVersion (used when server-side apply
/// cannot drop a field another manager also owns).
pub async fn remove_field<K>(api: &Api<K>, name: &str, pointer: &str) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug + serde::Serialize,
    K::DynamicType: Default,
{
    patch_meta(api, name, |o| {
        let value = serde_json::to_value(o).ok()?;
        value.pointer(pointer)?;
        let rv = o.meta().resource_version.clone().unwrap_or_default();
        Some(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "remove", "path": pointer},
        ]))
    })
    .await
}

/// Deletes the named object; NotFound counts as done.
pub async fn delete_ignore_missing<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `namespace/name` of an object, for messages and keys.
pub fn key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Per-object exponential backoff on reconcile errors (kube-runtime has none built in):
/// 1 s, 2 s, 4 s, … up to 5 minutes; a success resets the object's count.
#[derive(Debug, Default)]
pub struct Backoff(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl Backoff {
    /// The delay after `failures` earlier failures.
    pub fn delay(failures: u32) -> std::time::Duration {
        std::time::Duration::from_secs(1u64 << failures.min(8))
            .min(std::time::Duration::from_secs(300))
    }

    /// `key` reconciled fine: start again from 1 s.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.0.lock() {
            f.remove(key);
        }
    }

    /// `key` failed once more: its failure count and how long to wait.
    pub fn failed(&self, key: &str) -> (u32, std::time::Duration) {
        let n = match self.0.lock() {
            Ok(mut f) => {
                let n = f.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        (n, Self::delay(n - 1))
    }
}
