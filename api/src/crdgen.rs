//! CRD generation from the Rust types: one `CustomResourceDefinition` per kind, multi-version
//! kinds merged, written as YAML to deploy/crds by `cargo xtask crds`.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceConversion, CustomResourceDefinition,
    CustomResourceDefinitionNames, CustomResourceDefinitionSpec, CustomResourceDefinitionVersion,
    CustomResourceSubresourceStatus, CustomResourceSubresources, CustomResourceValidation,
    JSONSchemaProps, ServiceReference, WebhookClientConfig, WebhookConversion,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::generate::SchemaSettings;

use crate::resource::CrdKind;

/// Errors while building CRDs.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("schema of {kind} is not a valid JSONSchemaProps: {source}")]
    Schema {
        kind: String,
        source: serde_json::Error,
    },
    #[error("cannot merge versions of {kind}: {source}")]
    Merge {
        kind: String,
        source: kube_core::crd::MergeError,
    },
    #[error("cannot render {name} as YAML: {source}")]
    Yaml {
        name: String,
        source: serde_yaml_ng::Error,
    },
}

/// The structural OpenAPI v3 schema of a root type, as the apiserver wants it: inlined, with
/// `nullable`, and the kube rewrites for optional enums and int-or-string.
pub fn schema_for<K: CrdKind>() -> Result<JSONSchemaProps, CrdError> {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube_core::schema::StructuralSchemaRewriter)
        .with_transform(kube_core::schema::OptionalEnum)
        .with_transform(kube_core::schema::OptionalIntOrString)
        .into_generator();
    let schema = generator.into_root_schema_for::<K>();
    let mut value = serde_json::to_value(schema).map_err(|source| CrdError::Schema {
        kind: K::kind(&()).into_owned(),
        source,
    })?;
    if let Some(obj) = value.as_object_mut() {
        // The root's title/description is the Rust doc; the apiserver ignores it at the root.
        obj.remove("title");
    }
    strip_defaults(&mut value);
    serde_json::from_value(value).map_err(|source| CrdError::Schema {
        kind: K::kind(&()).into_owned(),
        source,
    })
}

/// Removes schemars' `default`s (from `#[serde(default)]`): the apiserver would otherwise fill
/// them into stored objects, which the Go CRDs never did. Only schema keywords are touched, never
/// a property that happens to be named `default`.
fn strip_defaults(schema: &mut serde_json::Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    obj.remove("default");
    if let Some(props) = obj.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for sub in props.values_mut() {
            strip_defaults(sub);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = obj.get_mut(key) {
            strip_defaults(sub);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = obj.get_mut(key).and_then(|l| l.as_array_mut()) {
            for sub in list {
                strip_defaults(sub);
            }
        }
    }
}

/// Whether a version is served and stored.
#[derive(Clone, Copy, Debug)]
pub struct Serving {
    pub served: bool,
    pub storage: bool,
}

/// Served and stored: the only version of a kind, or the storage version of several.
pub const STORED: Serving = Serving {
    served: true,
    storage: true,
};

/// A single-version CRD for `K`.
pub fn crd_for<K: CrdKind>(serving: Serving) -> Result<CustomResourceDefinition, CrdError> {
    let schema = schema_for::<K>()?;
    let plural = K::plural(&()).into_owned();
    let group = K::group(&()).into_owned();
    let kind = K::kind(&()).into_owned();
    let columns: Vec<CustomResourceColumnDefinition> = K::PRINTER_COLUMNS
        .iter()
        .map(|c| CustomResourceColumnDefinition {
            name: c.name.into(),
            type_: c.type_.into(),
            json_path: c.json_path.into(),
            description: (!c.description.is_empty()).then(|| c.description.into()),
            priority: (c.priority != 0).then_some(c.priority),
            format: None,
        })
        .collect();
    let nonempty = |v: &[&str]| -> Option<Vec<String>> {
        (!v.is_empty()).then(|| v.iter().map(|s| s.to_string()).collect())
    };
    Ok(CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{plural}.{group}")),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_string(),
                "cstor".to_string(),
            )])),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group,
            names: CustomResourceDefinitionNames {
                kind: kind.clone(),
                list_kind: Some(format!("{kind}List")),
                plural,
                singular: Some(kind.to_ascii_lowercase()),
                short_names: nonempty(K::SHORT_NAMES),
                categories: nonempty(K::CATEGORIES),
            },
            scope: if K::NAMESPACED {
                "Namespaced"
            } else {
                "Cluster"
            }
            .into(),
            versions: vec![CustomResourceDefinitionVersion {
                name: K::version(&()).into_owned(),
                served: serving.served,
                storage: serving.storage,
                deprecated: K::DEPRECATION.map(|_| true),
                deprecation_warning: K::DEPRECATION.map(Into::into),
                additional_printer_columns: (!columns.is_empty()).then_some(columns),
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(schema),
                }),
                subresources: K::STATUS_SUBRESOURCE.then(|| CustomResourceSubresources {
                    status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))),
                    scale: None,
                }),
                selectable_fields: None,
            }],
            conversion: None,
            preserve_unknown_fields: None,
        },
        status: None,
    })
}

/// The webhook server's Service and path for CRD conversion (deploy/webhook/server.yaml).
pub const CONVERSION_SERVICE: (&str, &str, &str) =
    ("openebs", "openebs-cstor-admission-server", "/convert");

/// Converts between served versions with our `/convert` (docs/admission.md A); the caBundle is
/// filled in and kept current by the webhook server.
pub fn with_conversion_webhook(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let (namespace, name, path) = CONVERSION_SERVICE;
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: namespace.into(),
                    name: name.into(),
                    path: Some(path.into()),
                    port: Some(443),
                }),
                ..WebhookClientConfig::default()
            }),
            conversion_review_versions: vec!["v1".into()],
        }),
    });
    crd
}

/// Merges single-version CRDs of one kind; `stored` is the storage version.
pub fn merge(
    crds: Vec<CustomResourceDefinition>,
    stored: &str,
) -> Result<CustomResourceDefinition, CrdError> {
    let kind = crds
        .first()
        .map(|c| c.spec.names.kind.clone())
        .unwrap_or_default();
    let mut merged = kube_core::crd::merge_crds(crds, stored)
        .map_err(|source| CrdError::Merge { kind, source })?;
    // Deterministic order for the YAML: storage version first.
    merged
        .spec
        .versions
        .sort_by_key(|v| (!v.storage, v.name.clone()));
    Ok(merged)
}

/// Renders a CRD as YAML with a header naming its generator.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let body = serde_yaml_ng::to_string(crd).map_err(|source| CrdError::Yaml { name, source })?;
    Ok(format!(
        "# Generated by `cargo xtask crds` from api/; do not edit.\n{body}"
    ))
}

/// Every product CRD as `(file name, YAML)`, the content of deploy/crds.
pub fn render_all() -> Result<Vec<(String, String)>, CrdError> {
    crate::all_crds()?
        .iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            Ok((format!("{name}.yaml"), to_yaml(crd)?))
        })
        .collect()
}

/// Differences between `files` and the YAML in `dir`: changed, missing and extra file names.
pub fn drift(dir: &std::path::Path, files: &[(String, String)]) -> std::io::Result<Vec<String>> {
    let mut drift = Vec::new();
    for (name, yaml) in files {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(on_disk) if on_disk == *yaml => {}
            Ok(_) => drift.push(format!("{name} differs")),
            Err(_) => drift.push(format!("{name} missing")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") && !files.iter().any(|(n, _)| *n == name) {
                drift.push(format!("{name} is not generated by any type"));
            }
        }
    }
    drift.sort();
    Ok(drift)
}
