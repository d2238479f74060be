//! cStor CRD types, identical on the wire to OpenEBS `cstor.openebs.io/v1` and
//! `openebs.io/v1alpha1` (docs/architecture.md), plus the keys every component shares and CRD generation.
//!
//! Unknown fields: every type ignores fields it does not know when deserializing (as Go's
//! `encoding/json` does, and as the apiserver prunes them from our structural schemas anyway);
//! [`parse_strict`] reports them for callers that must not lose data silently.

pub mod backup_rest;
pub mod common;
pub mod crdgen;
pub mod cstor_v1;
pub mod cstor_v1alpha1;
pub mod keys;
pub mod openebs_v1alpha1;
pub mod quantity;
pub mod resource;
pub mod snapshot;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;

use crdgen::{CrdError, STORED, Serving, crd_for, merge, with_conversion_webhook};

/// A typed parse of a root object that also returns the JSON paths of every field the type
/// does not know (they are dropped, as Go's `encoding/json` drops them).
pub fn parse_strict<T: resource::StrictParse>(
    value: serde_json::Value,
) -> Result<(T, Vec<String>), serde_json::Error> {
    T::parse_strict(value)
}

/// [`parse_strict`] for types that are not roots (specs, nested structs).
pub fn parse_strict_nested<T: DeserializeOwned>(
    value: serde_json::Value,
) -> Result<(T, Vec<String>), serde_json::Error> {
    let mut unknown = Vec::new();
    let parsed =
        serde_ignored::deserialize(value, |path| unknown.push(resource::json_path(&path)))?;
    Ok((parsed, unknown))
}

/// Every CRD we install, in a stable order (file names in deploy/crds follow `metadata.name`).
pub fn all_crds() -> Result<Vec<CustomResourceDefinition>, CrdError> {
    use cstor_v1 as v1;
    use openebs_v1alpha1 as o;
    // v1alpha1 is served (deprecated) through the conversion webhook; v1 is stored.
    let old = Serving {
        served: true,
        storage: false,
    };
    Ok(vec![
        merge(
            vec![
                crd_for::<v1::CStorPoolCluster>(STORED)?,
                crd_for::<cstor_v1alpha1::CStorPoolCluster>(old)?,
            ],
            "v1",
        )
        .map(with_conversion_webhook)?,
        merge(
            vec![
                crd_for::<v1::CStorPoolInstance>(STORED)?,
                crd_for::<cstor_v1alpha1::CStorPoolInstance>(old)?,
            ],
            "v1",
        )
        .map(with_conversion_webhook)?,
        crd_for::<v1::CStorVolumeConfig>(STORED)?,
        crd_for::<v1::CStorVolume>(STORED)?,
        crd_for::<v1::CStorVolumeReplica>(STORED)?,
        crd_for::<v1::CStorVolumePolicy>(STORED)?,
        crd_for::<v1::CStorVolumeAttachment>(STORED)?,
        crd_for::<v1::CStorBackup>(STORED)?,
        crd_for::<v1::CStorCompletedBackup>(STORED)?,
        crd_for::<v1::CStorRestore>(STORED)?,
        crd_for::<o::BlockDevice>(STORED)?,
        crd_for::<o::BlockDeviceClaim>(STORED)?,
        crd_for::<o::MigrationTask>(STORED)?,
        crd_for::<o::UpgradeTask>(STORED)?,
        crd_for::<o::StoragePoolClaim>(STORED)?,
        crd_for::<o::CStorPool>(STORED)?,
        crd_for::<o::LegacyCStorVolume>(STORED)?,
        crd_for::<o::LegacyCStorVolumeReplica>(STORED)?,
    ])
}
