//! Metadata edits as JSON patches guarded by a `test` on `/metadata/resourceVersion`: other
//! writers edit the same lists (finalizers, annotations), so a list is never overwritten
//! blindly. A lost race re-reads the object and rebuilds the patch, a bounded number of times.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::errors::{is_lost_race, is_not_found};

/// How often a metadata patch is tried before giving up on a busy object.
pub const ATTEMPTS: u32 = 6;

/// Why a metadata patch did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("patching {kind} {name}: {source}")]
    Kube {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {name}: metadata patch still conflicting after {attempts} attempts")]
    Conflict {
        kind: String,
        name: String,
        attempts: u32,
    },
}

/// A JSON Pointer segment (`/` and `~` escaped, RFC 6901).
pub fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn resource_version<K: Resource>(obj: &K) -> String {
    obj.meta().resource_version.clone().unwrap_or_default()
}

/// Whether the object carries `finalizer`.
pub fn has_finalizer<K: Resource>(obj: &K, finalizer: &str) -> bool {
    obj.finalizers().iter().any(|x| x == finalizer)
}

/// The patch adding `finalizer` to `obj`, or `None` when it is already there.
pub fn add_finalizer_ops<K: Resource>(obj: &K, finalizer: &str) -> Option<Value> {
    if has_finalizer(obj, finalizer) {
        return None;
    }
    let add = match &obj.meta().finalizers {
        Some(list) if !list.is_empty() => {
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer})
        }
        _ => json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}),
    };
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version(obj)},
        add,
    ]))
}

/// The patch removing `finalizer` from `obj` (by index, after testing both the
/// resourceVersion and the entry), or `None` when it is not there.
pub fn remove_finalizer_ops<K: Resource>(obj: &K, finalizer: &str) -> Option<Value> {
    let i = obj.finalizers().iter().position(|f| f == finalizer)?;
    let path = format!("/metadata/finalizers/{i}");
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version(obj)},
        {"op": "test", "path": path, "value": finalizer},
        {"op": "remove", "path": path},
    ]))
}

/// The patch removing annotation `key`, or `None` when it is absent.
pub fn remove_annotation_ops<K: Resource>(obj: &K, key: &str) -> Option<Value> {
    obj.annotations().get(key)?;
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version(obj)},
        {"op": "remove", "path": format!("/metadata/annotations/{}", pointer_segment(key))},
    ]))
}

/// The patch removing the field at JSON `pointer`, or `None` when it is absent.
pub fn remove_field_ops<K: Resource + serde::Serialize>(obj: &K, pointer: &str) -> Option<Value> {
    serde_json::to_value(obj).ok()?.pointer(pointer)?;
    Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version(obj)},
        {"op": "remove", "path": pointer},
    ]))
}

/// Applies `build(live)` as a JSON patch, re-reading the object after each lost race.
/// `Ok(false)` when the object is gone or `build` has nothing to do.
pub async fn patch_metadata<K>(
    api: &Api<K>,
    name: &str,
    build: impl Fn(&K) -> Option<Value>,
) -> Result<bool, PatchError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let kind = || K::kind(&K::DynamicType::default()).into_owned();
    let failed = |source| PatchError::Kube {
        kind: kind(),
        name: name.to_string(),
        source,
    };
    for _ in 0..ATTEMPTS {
        let Some(live) = api.get_opt(name).await.map_err(failed)? else {
            return Ok(false);
        };
        let Some(ops) = build(&live) else {
            return Ok(false);
        };
        let patch = serde_json::from_value(ops).map_err(|e| failed(kube::Error::SerdeError(e)))?;
        match api
            .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if is_lost_race(&e) => {
                tracing::debug!(name, error = %e, "metadata patch lost a race; re-reading");
            }
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(failed(e)),
        }
    }
    Err(PatchError::Conflict {
        kind: kind(),
        name: name.to_string(),
        attempts: ATTEMPTS,
    })
}

/// Adds `finalizer` to the named object unless present. `Ok(true)` when a write happened.
pub async fn add_finalizer<K>(api: &Api<K>, name: &str, finalizer: &str) -> Result<bool, PatchError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    patch_metadata(api, name, |o| add_finalizer_ops(o, finalizer)).await
}

/// Removes `finalizer` from the named object if present. `Ok(true)` when a write happened.
pub async fn remove_finalizer<K>(
    api: &Api<K>,
    name: &str,
    finalizer: &str,
) -> Result<bool, PatchError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    patch_metadata(api, name, |o| remove_finalizer_ops(o, finalizer)).await
}

/// Removes annotation `key` from the named object if present.
pub async fn remove_annotation<K>(api: &Api<K>, name: &str, key: &str) -> Result<bool, PatchError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    patch_metadata(api, name, |o| remove_annotation_ops(o, key)).await
}

/// Removes a field by JSON pointer (where server-side apply cannot drop a field another
/// manager also owns).
pub async fn remove_field<K>(api: &Api<K>, name: &str, pointer: &str) -> Result<bool, PatchError>
where
    K: Resource + Clone + DeserializeOwned + Debug + serde::Serialize,
    K::DynamicType: Default,
{
    patch_metadata(api, name, |o| remove_field_ops(o, pointer)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use pretty_assertions::assert_eq;

    fn cm(rv: &str, finalizers: Option<Vec<&str>>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                resource_version: Some(rv.into()),
                finalizers: finalizers.map(|f| f.into_iter().map(String::from).collect()),
                annotations: Some([("a/b".to_string(), "x".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn every_edit_is_guarded_by_the_resource_version() {
        assert_eq!(
            add_finalizer_ops(&cm("7", None), "f"),
            Some(json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
            ]))
        );
        assert_eq!(
            add_finalizer_ops(&cm("8", Some(vec!["g"])), "f"),
            Some(json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "8"},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "f"},
            ]))
        );
        assert_eq!(add_finalizer_ops(&cm("8", Some(vec!["f"])), "f"), None);
        assert_eq!(
            remove_finalizer_ops(&cm("9", Some(vec!["g", "f"])), "f"),
            Some(json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "9"},
                {"op": "test", "path": "/metadata/finalizers/1", "value": "f"},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ]))
        );
        assert_eq!(remove_finalizer_ops(&cm("9", Some(vec!["g"])), "f"), None);
        assert_eq!(
            remove_annotation_ops(&cm("3", None), "a/b"),
            Some(json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "3"},
                {"op": "remove", "path": "/metadata/annotations/a~1b"},
            ]))
        );
        assert_eq!(remove_annotation_ops(&cm("3", None), "zz"), None);
    }
}
