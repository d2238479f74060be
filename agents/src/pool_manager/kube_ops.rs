//! The pool-manager's API writes: metadata edits (the shared kit's patches guarded by a `test`
//! of `resourceVersion`: the operator edits the same finalizer and annotation lists), status by
//! server-side apply to the status subresource.

use cstor_runtime::errors::Step;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Error;

pub use cstor_runtime::finalizers::pointer_segment;

/// Applies `ops(object)` to the live object until it sticks (the shared kit's guarded patch):
/// on a lost race the object is read again and the ops rebuilt. `ops` returning `None` means
/// nothing to do.
pub async fn patch_metadata<K>(
    _client: &Client,
    api: &Api<K>,
    name: &str,
    ops: impl Fn(&K) -> Option<Value>,
) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
    K::DynamicType: Default,
{
    cstor_runtime::finalizers::patch_metadata(api, name, ops).await?;
    Ok(())
}

/// Adds `finalizer` to the named object (no-op when present).
pub async fn add_finalizer<K>(
    _client: &Client,
    api: &Api<K>,
    name: &str,
    finalizer: &str,
) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
    K::DynamicType: Default,
{
    cstor_runtime::finalizers::add_finalizer(api, name, finalizer).await?;
    Ok(())
}

/// Removes `finalizer` from the named object (no-op when absent or gone).
pub async fn remove_finalizer<K>(
    _client: &Client,
    api: &Api<K>,
    name: &str,
    finalizer: &str,
) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
    K::DynamicType: Default,
{
    cstor_runtime::finalizers::remove_finalizer(api, name, finalizer).await?;
    Ok(())
}

/// Removes annotation `key` from the named object (no-op when absent or gone).
pub async fn remove_annotation<K>(
    _client: &Client,
    api: &Api<K>,
    name: &str,
    key: &str,
) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + std::fmt::Debug,
    K::DynamicType: Default,
{
    cstor_runtime::finalizers::remove_annotation(api, name, key).await?;
    Ok(())
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
    .step("apply status", name)?;
    Ok(())
}
