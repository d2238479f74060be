//! The `cstor_resource!` macro: `kube::Resource`, wire (de)serialization and CRD facts for a
//! hand-written root type.
//!
//! kube's `CustomResource` derive only knows `spec` and `status` at the root, but cStor kinds
//! carry more top-level fields (`versionDetails`, CVC `publish`, string `status`es). So each root
//! type is a plain struct tagged `#[serde(remote = "Self")]` and this macro supplies the rest:
//! `apiVersion`/`kind` are written on serialize and checked on deserialize (a wrong kind is an
//! error, never a silent mis-parse).

use std::borrow::Cow;

/// One `additionalPrinterColumns` entry.
#[derive(Clone, Copy, Debug)]
pub struct PrinterColumn {
    pub name: &'static str,
    pub type_: &'static str,
    pub json_path: &'static str,
    pub description: &'static str,
    pub priority: i32,
}

/// What the CRD of a kind needs beyond the schema.
pub trait CrdKind: kube_core::Resource<DynamicType = ()> + schemars::JsonSchema {
    const SHORT_NAMES: &'static [&'static str];
    const PRINTER_COLUMNS: &'static [PrinterColumn];
    /// Whether status is a status subresource (docs/architecture.md).
    const STATUS_SUBRESOURCE: bool;
    const NAMESPACED: bool;
    /// `deprecationWarning` when the version is deprecated.
    const DEPRECATION: Option<&'static str> = None;
    /// Categories for `kubectl get <category>`.
    const CATEGORIES: &'static [&'static str] = &[];
}

/// A root type that can report the fields it ignores (see [`crate::parse_strict`]).
pub trait StrictParse: Sized {
    fn parse_strict(value: serde_json::Value) -> Result<(Self, Vec<String>), serde_json::Error>;
}

/// A serde_ignored path as a plain dotted JSON path (`spec.pools.0.poolConfig.cacheFile`),
/// without the `?` segments serde_ignored writes for `Option`s.
pub fn json_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    fn walk(path: &Path<'_>, out: &mut Vec<String>) {
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(index.to_string());
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                out.push(key.clone());
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut segments = Vec::new();
    walk(path, &mut segments);
    segments.join(".")
}

/// Checks the `apiVersion` and `kind` of an incoming object against the Rust type.
pub fn check_type_meta<E: serde::de::Error>(
    api_version: Option<&str>,
    kind: Option<&str>,
    want_api_version: &str,
    want_kind: &str,
) -> Result<(), E> {
    if let Some(v) = api_version
        && v != want_api_version
    {
        return Err(E::custom(format!(
            "apiVersion {v:?} is not {want_api_version:?}"
        )));
    }
    if let Some(k) = kind
        && k != want_kind
    {
        return Err(E::custom(format!("kind {k:?} is not {want_kind:?}")));
    }
    Ok(())
}

#[doc(hidden)]
pub fn cow(s: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(s)
}

/// Implements `kube::Resource`, `Serialize`, `Deserialize` and [`CrdKind`] for a root type
/// declared with `#[serde(rename_all = "camelCase", remote = "Self")]` and a
/// `#[schemars(skip)] pub metadata: ObjectMeta` field.
#[macro_export]
macro_rules! cstor_resource {
    (
        $name:ident {
            group: $group:literal,
            version: $version:literal,
            kind: $kind:literal,
            plural: $plural:literal,
            namespaced: $namespaced:tt,
            short_names: [$($short:literal),* $(,)?],
            status_subresource: $status:literal,
            printer_columns: [$(($pc_name:literal, $pc_type:literal, $pc_path:literal, $pc_desc:literal, $pc_prio:literal)),* $(,)?]
            $(, deprecation: $depr:literal)?
            $(, categories: [$($cat:literal),* $(,)?])?
            $(,)?
        }
    ) => {
        impl ::kube_core::Resource for $name {
            type DynamicType = ();
            type Scope = $crate::cstor_resource!(@scope $namespaced);
            fn group(_: &()) -> ::std::borrow::Cow<'_, str> { $crate::resource::cow($group) }
            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> { $crate::resource::cow($kind) }
            fn version(_: &()) -> ::std::borrow::Cow<'_, str> { $crate::resource::cow($version) }
            fn api_version(_: &()) -> ::std::borrow::Cow<'_, str> {
                $crate::resource::cow(concat!($group, "/", $version))
            }
            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> { $crate::resource::cow($plural) }
            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl $crate::resource::CrdKind for $name {
            const SHORT_NAMES: &'static [&'static str] = &[$($short),*];
            const PRINTER_COLUMNS: &'static [$crate::resource::PrinterColumn] = &[$(
                $crate::resource::PrinterColumn {
                    name: $pc_name, type_: $pc_type, json_path: $pc_path,
                    description: $pc_desc, priority: $pc_prio,
                }
            ),*];
            const STATUS_SUBRESOURCE: bool = $status;
            const NAMESPACED: bool = $namespaced;
            $(const DEPRECATION: Option<&'static str> = Some($depr);)?
            $(const CATEGORIES: &'static [&'static str] = &[$($cat),*];)?
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, ser: S) -> ::std::result::Result<S::Ok, S::Error> {
                struct Body<'a>(&'a $name);
                impl ::serde::Serialize for Body<'_> {
                    fn serialize<S: ::serde::Serializer>(&self, ser: S) -> ::std::result::Result<S::Ok, S::Error> {
                        $name::serialize(self.0, ser)
                    }
                }
                #[derive(::serde::Serialize)]
                struct Repr<'a> {
                    #[serde(rename = "apiVersion")]
                    api_version: &'static str,
                    kind: &'static str,
                    #[serde(flatten)]
                    body: Body<'a>,
                }
                ::serde::Serialize::serialize(
                    &Repr { api_version: concat!($group, "/", $version), kind: $kind, body: Body(self) },
                    ser,
                )
            }
        }

        $crate::cstor_resource!(@strict $name $group $version $kind);

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(de: D) -> ::std::result::Result<Self, D::Error> {
                // Buffer once so apiVersion/kind can be checked before the typed parse.
                let mut value = <::serde_json::Value as ::serde::Deserialize>::deserialize(de)?;
                if let Some(obj) = value.as_object_mut() {
                    let api_version = obj.remove("apiVersion");
                    let kind = obj.remove("kind");
                    $crate::resource::check_type_meta::<D::Error>(
                        api_version.as_ref().and_then(|v| v.as_str()),
                        kind.as_ref().and_then(|v| v.as_str()),
                        concat!($group, "/", $version),
                        $kind,
                    )?;
                }
                $name::deserialize(value).map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
    (@strict $name:ident $group:literal $version:literal $kind:literal) => {
        impl $crate::resource::StrictParse for $name {
            fn parse_strict(
                mut value: ::serde_json::Value,
            ) -> ::std::result::Result<(Self, Vec<String>), ::serde_json::Error> {
                if let Some(obj) = value.as_object_mut() {
                    let api_version = obj.remove("apiVersion");
                    let kind = obj.remove("kind");
                    $crate::resource::check_type_meta::<::serde_json::Error>(
                        api_version.as_ref().and_then(|v| v.as_str()),
                        kind.as_ref().and_then(|v| v.as_str()),
                        concat!($group, "/", $version),
                        $kind,
                    )?;
                }
                let mut unknown = Vec::new();
                let mut track = |path: ::serde_ignored::Path<'_>| {
                    unknown.push($crate::resource::json_path(&path))
                };
                let parsed = $name::deserialize(::serde_ignored::Deserializer::new(value, &mut track))?;
                Ok((parsed, unknown))
            }
        }
    };
    (@scope true) => { ::kube_core::NamespaceResourceScope };
    (@scope false) => { ::kube_core::ClusterResourceScope };
}
