//! Object-metadata helpers of the controllers. Finalizer and field edits (JSON patches guarded
//! by the resourceVersion) and the error classifiers are the shared kit's (cstor_runtime); they
//! are re-exported here so the controllers read them from one place.

use cstor_runtime::errors::ApiError;
use std::fmt::Debug;

use kube::api::Api;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

pub use cstor_runtime::errors::{is_already_exists, is_not_found};
pub use cstor_runtime::finalizers::{add_finalizer, has_finalizer, remove_field, remove_finalizer};

use crate::Error;

/// Whether the object has a deletionTimestamp.
pub fn is_deleting<K: Resource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

/// Deletes the named object; NotFound counts as done.
pub async fn delete_ignore_missing<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => {
            let dt = K::DynamicType::default();
            let kind = K::kind(&dt);
            Err(ApiError::new("delete", format!("{kind} {name}"), e).into())
        }
    }
}

/// `namespace/name` of an object, for messages and keys.
pub fn key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}
