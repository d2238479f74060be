//! CStorPoolCluster and CStorPoolInstance `v1alpha1` ⇄ `v1` (docs/admission.md A, B): pure
//! functions over typed values, and the `/convert` review.
//!
//! Lossless by construction: the plain mapping is applied, and when mapping back would not give
//! the source again, the source's body (everything but metadata) is kept in the annotation
//! `cstor.openebs.io/conversion-data` as `{"<version>": body}`. Converting back restores that
//! body exactly when the object still converts to what it was (nobody edited it at the other
//! version); after an edit the plain mapping wins, so edits are never undone by stale data.

use std::collections::BTreeMap;

use cstor_api::cstor_v1 as v1;
use cstor_api::cstor_v1alpha1 as alpha;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The annotation holding what the other version cannot express.
pub const CONVERSION_DATA: &str = "cstor.openebs.io/conversion-data";

const V1: &str = "cstor.openebs.io/v1";
const V1ALPHA1: &str = "cstor.openebs.io/v1alpha1";

/// Why an object could not be converted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("{kind} {name}: field {path}: {message}")]
    Malformed {
        kind: String,
        name: String,
        path: String,
        message: String,
    },
    #[error("{kind} {name}: cannot convert to {version}: {reason}")]
    Unsupported {
        kind: String,
        name: String,
        version: String,
        reason: String,
    },
}

// ----- plain mappings (no annotation handling) -----

/// A 1.x capacity string as bytes (0 when unreadable, as the 1.x operators wrote nothing).
fn capacity_bytes(s: &str) -> u64 {
    cstor_api::quantity::bytes(s).unwrap_or(0)
}

fn bd_to_v1(
    bd: &alpha::cspc::CStorPoolClusterBlockDevice,
) -> v1::cspc::CStorPoolInstanceBlockDevice {
    v1::cspc::CStorPoolInstanceBlockDevice {
        block_device_name: bd.block_device_name.clone(),
        capacity: capacity_bytes(&bd.capacity),
        dev_link: bd.dev_link.clone(),
    }
}

fn bd_to_alpha(
    bd: &v1::cspc::CStorPoolInstanceBlockDevice,
) -> alpha::cspc::CStorPoolClusterBlockDevice {
    alpha::cspc::CStorPoolClusterBlockDevice {
        block_device_name: bd.block_device_name.clone(),
        capacity: if bd.capacity == 0 {
            String::new()
        } else {
            bd.capacity.to_string()
        },
        dev_link: bd.dev_link.clone(),
    }
}

/// The v1 parts of a 1.x pool: data groups, write-cache groups and the pool config.
struct V1Pool {
    data: Vec<v1::cspc::RaidGroup>,
    write_cache: Option<Vec<v1::cspc::RaidGroup>>,
    config: v1::cspc::PoolConfig,
}

fn pool_to_v1(groups: &[alpha::cspc::RaidGroup], config: &alpha::cspc::PoolConfig) -> V1Pool {
    let group = |g: &alpha::cspc::RaidGroup| v1::cspc::RaidGroup {
        block_devices: g.block_devices.iter().map(bd_to_v1).collect(),
    };
    let data: Vec<&alpha::cspc::RaidGroup> = groups.iter().filter(|g| g.is_data()).collect();
    // Spare and read-cache groups have no v1 form (kept in the annotation, refused at admission).
    let cache: Vec<&alpha::cspc::RaidGroup> = groups
        .iter()
        .filter(|g| g.is_write_cache && !g.is_spare && !g.is_read_cache)
        .collect();
    let data_type = data
        .first()
        .map(|g| g.effective_type(config).to_string())
        .unwrap_or_else(|| config.default_raid_group_type.clone());
    let cache_type = cache
        .first()
        .map(|g| g.effective_type(config).to_string())
        .unwrap_or_default();
    V1Pool {
        data: data.into_iter().map(group).collect(),
        write_cache: if cache.is_empty() {
            None
        } else {
            Some(cache.into_iter().map(group).collect())
        },
        config: v1::cspc::PoolConfig {
            data_raid_group_type: data_type,
            write_cache_group_type: cache_type,
            thick_provision: !config.over_provisioning,
            compression: config.compression.clone(),
            resources: config.resources.clone(),
            aux_resources: config.aux_resources.clone(),
            tolerations: if config.tolerations.is_empty() {
                None
            } else {
                Some(config.tolerations.clone())
            },
            priority_class_name: if config.priority_class_name.is_empty() {
                None
            } else {
                Some(config.priority_class_name.clone())
            },
            ro_threshold_limit: None,
        },
    }
}

fn pool_to_alpha(
    data: &[v1::cspc::RaidGroup],
    write_cache: Option<&Vec<v1::cspc::RaidGroup>>,
    config: Option<&v1::cspc::PoolConfig>,
) -> (Vec<alpha::cspc::RaidGroup>, alpha::cspc::PoolConfig) {
    let default = v1::cspc::PoolConfig::default();
    let c = config.unwrap_or(&default);
    // 1.x manifests name each group's type and the default; write both.
    let mut groups: Vec<alpha::cspc::RaidGroup> = data
        .iter()
        .map(|g| alpha::cspc::RaidGroup {
            type_: c.data_raid_group_type.clone(),
            block_devices: g.block_devices.iter().map(bd_to_alpha).collect(),
            ..alpha::cspc::RaidGroup::default()
        })
        .collect();
    groups.extend(
        write_cache
            .into_iter()
            .flatten()
            .map(|g| alpha::cspc::RaidGroup {
                type_: c.write_cache_group_type.clone(),
                is_write_cache: true,
                block_devices: g.block_devices.iter().map(bd_to_alpha).collect(),
                ..alpha::cspc::RaidGroup::default()
            }),
    );
    let config = alpha::cspc::PoolConfig {
        cache_file: String::new(),
        default_raid_group_type: c.data_raid_group_type.clone(),
        over_provisioning: !c.thick_provision,
        compression: c.compression.clone(),
        resources: c.resources.clone(),
        aux_resources: c.aux_resources.clone(),
        tolerations: c.tolerations.clone().unwrap_or_default(),
        priority_class_name: c.priority_class_name.clone().unwrap_or_default(),
    };
    (groups, config)
}

/// The 1.x phase derived from v1's instance counts.
pub fn cspc_phase(status: Option<&v1::cspc::CStorPoolClusterStatus>) -> &'static str {
    let count = |v: Option<i32>| v.unwrap_or(0);
    let (healthy, desired) = status
        .map(|s| (count(s.healthy_instances), count(s.desired_instances)))
        .unwrap_or((0, 0));
    use alpha::cspc::cspc_phase as p;
    if desired > 0 && healthy == desired {
        p::HEALTHY
    } else if desired > 0 && healthy > 0 && healthy < desired {
        p::DEGRADED
    } else if desired > 0 && healthy == 0 {
        p::OFFLINE
    } else {
        p::PENDING
    }
}

fn cspc_plain_to_v1(a: &alpha::CStorPoolCluster) -> v1::CStorPoolCluster {
    v1::CStorPoolCluster {
        metadata: a.metadata.clone(),
        spec: v1::cspc::CStorPoolClusterSpec {
            pools: a
                .spec
                .pools
                .iter()
                .map(|p| {
                    let pool = pool_to_v1(&p.raid_groups, &p.pool_config);
                    v1::cspc::PoolSpec {
                        node_selector: p.node_selector.clone(),
                        data_raid_groups: pool.data,
                        write_cache_raid_groups: pool.write_cache,
                        pool_config: Some(pool.config),
                    }
                })
                .collect(),
            resources: a.spec.resources.clone(),
            aux_resources: a.spec.aux_resources.clone(),
            tolerations: a.spec.tolerations.clone(),
            priority_class_name: a.spec.priority_class_name.clone(),
        },
        status: None,
        version_details: None,
    }
}

fn cspc_plain_to_alpha(o: &v1::CStorPoolCluster) -> alpha::CStorPoolCluster {
    alpha::CStorPoolCluster {
        metadata: o.metadata.clone(),
        spec: alpha::cspc::CStorPoolClusterSpec {
            pools: o
                .spec
                .pools
                .iter()
                .map(|p| {
                    let (raid_groups, pool_config) = pool_to_alpha(
                        &p.data_raid_groups,
                        p.write_cache_raid_groups.as_ref(),
                        p.pool_config.as_ref(),
                    );
                    alpha::cspc::PoolSpec {
                        node_selector: p.node_selector.clone(),
                        raid_groups,
                        pool_config,
                    }
                })
                .collect(),
            resources: o.spec.resources.clone(),
            aux_resources: o.spec.aux_resources.clone(),
            tolerations: o.spec.tolerations.clone(),
            priority_class_name: o.spec.priority_class_name.clone(),
        },
        // No status yet stays no status; otherwise the 1.x phase from the counts.
        status: alpha::cspc::CStorPoolClusterStatus {
            phase: o
                .status
                .as_ref()
                .map(|s| cspc_phase(Some(s)).to_string())
                .unwrap_or_default(),
            capacity: alpha::cspc::CStorPoolCapacityAttr::default(),
        },
        version_details: Default::default(),
    }
}

fn cspi_plain_to_v1(a: &alpha::CStorPoolInstance) -> v1::CStorPoolInstance {
    let pool = pool_to_v1(&a.spec.raid_groups, &a.spec.pool_config);
    let status = &a.status;
    let has_status = *status != alpha::cspi::CStorPoolInstanceStatus::default();
    v1::CStorPoolInstance {
        metadata: a.metadata.clone(),
        spec: v1::cspi::CStorPoolInstanceSpec {
            host_name: a.spec.host_name.clone(),
            node_selector: a.spec.node_selector.clone(),
            pool_config: Some(pool.config),
            data_raid_groups: pool.data,
            write_cache_raid_groups: pool.write_cache,
        },
        status: has_status.then(|| v1::cspi::CStorPoolInstanceStatus {
            phase: status.phase.clone(),
            read_only: status.read_only,
            ..v1::cspi::CStorPoolInstanceStatus::default()
        }),
        version_details: None,
    }
}

fn cspi_plain_to_alpha(o: &v1::CStorPoolInstance) -> alpha::CStorPoolInstance {
    let (raid_groups, pool_config) = pool_to_alpha(
        &o.spec.data_raid_groups,
        o.spec.write_cache_raid_groups.as_ref(),
        o.spec.pool_config.as_ref(),
    );
    let status = o.status.as_ref();
    let capacity = status
        .and_then(|s| s.capacity.as_ref())
        .map(|c| alpha::cspc::CStorPoolCapacityAttr {
            total: c.total.0.clone(),
            free: c.free.0.clone(),
            used: c.used.0.clone(),
        })
        .unwrap_or_default();
    alpha::CStorPoolInstance {
        metadata: o.metadata.clone(),
        spec: alpha::cspi::CStorPoolInstanceSpec {
            host_name: o.spec.host_name.clone(),
            node_selector: o.spec.node_selector.clone(),
            pool_config,
            raid_groups,
        },
        status: alpha::cspi::CStorPoolInstanceStatus {
            phase: status.map(|s| s.phase.clone()).unwrap_or_default(),
            capacity,
            read_only: status.is_some_and(|s| s.read_only),
            ..alpha::cspi::CStorPoolInstanceStatus::default()
        },
        version_details: Default::default(),
    }
}

// ----- the lossless wrapper -----

/// The object without metadata, apiVersion and kind: what the annotation keeps.
fn body<T: Serialize>(obj: &T) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// Removes our annotation from `meta`, returning its parsed value.
fn take_data(meta: &mut ObjectMeta) -> Option<Value> {
    let notes = meta.annotations.as_mut()?;
    let raw = notes.remove(CONVERSION_DATA);
    if notes.is_empty() {
        meta.annotations = None;
    }
    serde_json::from_str(&raw?).ok()
}

fn put_data(meta: &mut ObjectMeta, version: &str, body: Value) {
    let text = json!({ version: body }).to_string();
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONVERSION_DATA.into(), text);
}

fn restore<T: DeserializeOwned>(
    api_version: &str,
    kind: &str,
    meta: &ObjectMeta,
    body: &Value,
) -> Option<T> {
    let mut v = body.clone();
    let m = v.as_object_mut()?;
    m.insert("apiVersion".into(), json!(api_version));
    m.insert("kind".into(), json!(kind));
    m.insert("metadata".into(), serde_json::to_value(meta).ok()?);
    serde_json::from_value(v).ok()
}

/// Objects with metadata (the four roots converted here).
trait Meta {
    fn meta(&self) -> &ObjectMeta;
    fn set_meta(&mut self, meta: ObjectMeta);
}

macro_rules! meta_of {
    ($($t:ty),*) => {$(
        impl Meta for $t {
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn set_meta(&mut self, meta: ObjectMeta) {
                self.metadata = meta;
            }
        }
    )*};
}
meta_of!(
    v1::CStorPoolCluster,
    alpha::CStorPoolCluster,
    v1::CStorPoolInstance,
    alpha::CStorPoolInstance
);

/// Converts `src` (version `from`) to `T` (version `to`) with `there` and `back` the plain
/// mappings; see the module doc for the annotation.
fn lossless<S, T>(
    src: &S,
    there: impl Fn(&S) -> T,
    back: impl Fn(&T) -> S,
    merge: impl Fn(&mut T, &T),
    (from, to, kind): (&str, &str, &str),
) -> T
where
    S: Serialize + Clone + PartialEq + Meta,
    T: Serialize + DeserializeOwned + PartialEq + Meta,
{
    let mut meta = src.meta().clone();
    let data = take_data(&mut meta);
    let mut plain_src = src.clone();
    plain_src.set_meta(meta.clone());
    // Restore the target kept when it was converted to `src`, if `src` is still what it gave.
    let kept = data
        .as_ref()
        .and_then(|d| d.get(to))
        .and_then(|k| restore::<T>(to, kind, &meta, k));
    if let Some(target) = &kept
        && back(target) == plain_src
    {
        return kept.unwrap_or_else(|| there(&plain_src));
    }
    let mut out = there(&plain_src);
    out.set_meta(meta.clone());
    // Edited at the other version (a mutating webhook's defaults, say): keep what only this
    // version can say for the pools whose disks are unchanged.
    if let Some(target) = &kept {
        merge(&mut out, target);
    }
    if back(&out) != plain_src {
        let mut annotated = meta;
        put_data(&mut annotated, from, body(&plain_src));
        out.set_meta(annotated);
    }
    out
}

type Selector = BTreeMap<String, String>;

fn v1_disks(groups: &[v1::cspc::RaidGroup]) -> Vec<&str> {
    groups
        .iter()
        .flat_map(v1::cspc::RaidGroup::block_device_names)
        .collect()
}

/// Data disks, then write-cache disks: what a v1 pool says about the layout.
fn alpha_disks(groups: &[alpha::cspc::RaidGroup]) -> Vec<&str> {
    fn names(g: &alpha::cspc::RaidGroup) -> impl Iterator<Item = &str> {
        g.block_devices.iter().map(|b| b.block_device_name.as_str())
    }
    let cache = |g: &&alpha::cspc::RaidGroup| g.is_write_cache && !g.is_spare && !g.is_read_cache;
    let mut out: Vec<&str> = groups
        .iter()
        .filter(|g| g.is_data())
        .flat_map(names)
        .collect();
    out.extend(groups.iter().filter(cache).flat_map(names));
    out
}

fn split_v1_pool(
    p: &mut v1::cspc::PoolSpec,
) -> (
    &Selector,
    &Vec<v1::cspc::RaidGroup>,
    &mut Option<v1::cspc::PoolConfig>,
) {
    (&p.node_selector, &p.data_raid_groups, &mut p.pool_config)
}

fn view_v1_pool(
    p: &v1::cspc::PoolSpec,
) -> (
    &Selector,
    &Vec<v1::cspc::RaidGroup>,
    &Option<v1::cspc::PoolConfig>,
) {
    (&p.node_selector, &p.data_raid_groups, &p.pool_config)
}

/// v1-only settings (the read-only threshold) of kept pools with the same node and disks.
fn merge_v1_pools<'a, 'b>(
    out: impl Iterator<
        Item = (
            &'a Selector,
            &'a Vec<v1::cspc::RaidGroup>,
            &'a mut Option<v1::cspc::PoolConfig>,
        ),
    >,
    kept: impl Iterator<
        Item = (
            &'b Selector,
            &'b Vec<v1::cspc::RaidGroup>,
            &'b Option<v1::cspc::PoolConfig>,
        ),
    >,
) {
    for ((sel, data, config), (k_sel, k_data, k_config)) in out.zip(kept) {
        if sel != k_sel || v1_disks(data) != v1_disks(k_data) {
            continue;
        }
        if let (Some(c), Some(k)) = (config.as_mut(), k_config.as_ref())
            && c.ro_threshold_limit.is_none()
        {
            c.ro_threshold_limit = k.ro_threshold_limit;
        }
    }
}

/// 1.x-only layout (spare and read-cache groups, per-group types, capacity strings, cache
/// file) of kept pools with the same node and the same data and write-cache disks.
fn merge_alpha_pools<'a, 'b>(
    out: impl Iterator<
        Item = (
            &'a Selector,
            &'a mut Vec<alpha::cspc::RaidGroup>,
            &'a mut alpha::cspc::PoolConfig,
        ),
    >,
    kept: impl Iterator<
        Item = (
            &'b Selector,
            &'b Vec<alpha::cspc::RaidGroup>,
            &'b alpha::cspc::PoolConfig,
        ),
    >,
) {
    for ((sel, groups, config), (k_sel, k_groups, k_config)) in out.zip(kept) {
        if sel != k_sel || alpha_disks(groups) != alpha_disks(k_groups) {
            continue;
        }
        *groups = k_groups.clone();
        config.cache_file = k_config.cache_file.clone();
    }
}

/// CSPC v1alpha1 → v1.
pub fn cspc_to_v1(a: &alpha::CStorPoolCluster) -> v1::CStorPoolCluster {
    lossless(
        a,
        cspc_plain_to_v1,
        cspc_plain_to_alpha,
        |out, kept| {
            merge_v1_pools(
                out.spec.pools.iter_mut().map(split_v1_pool),
                kept.spec.pools.iter().map(view_v1_pool),
            )
        },
        (V1ALPHA1, V1, "CStorPoolCluster"),
    )
}

/// CSPC v1 → v1alpha1.
pub fn cspc_to_alpha(o: &v1::CStorPoolCluster) -> alpha::CStorPoolCluster {
    lossless(
        o,
        cspc_plain_to_alpha,
        cspc_plain_to_v1,
        |out, kept| {
            merge_alpha_pools(
                out.spec
                    .pools
                    .iter_mut()
                    .map(|p| (&p.node_selector, &mut p.raid_groups, &mut p.pool_config)),
                kept.spec
                    .pools
                    .iter()
                    .map(|p| (&p.node_selector, &p.raid_groups, &p.pool_config)),
            )
        },
        (V1, V1ALPHA1, "CStorPoolCluster"),
    )
}

/// CSPI v1alpha1 → v1.
pub fn cspi_to_v1(a: &alpha::CStorPoolInstance) -> v1::CStorPoolInstance {
    lossless(
        a,
        cspi_plain_to_v1,
        cspi_plain_to_alpha,
        |out, kept| {
            let s = &mut out.spec;
            let k = &kept.spec;
            merge_v1_pools(
                std::iter::once((&s.node_selector, &s.data_raid_groups, &mut s.pool_config)),
                std::iter::once((&k.node_selector, &k.data_raid_groups, &k.pool_config)),
            )
        },
        (V1ALPHA1, V1, "CStorPoolInstance"),
    )
}

/// CSPI v1 → v1alpha1.
pub fn cspi_to_alpha(o: &v1::CStorPoolInstance) -> alpha::CStorPoolInstance {
    lossless(
        o,
        cspi_plain_to_alpha,
        cspi_plain_to_v1,
        |out, kept| {
            let s = &mut out.spec;
            let k = &kept.spec;
            merge_alpha_pools(
                std::iter::once((&s.node_selector, &mut s.raid_groups, &mut s.pool_config)),
                std::iter::once((&k.node_selector, &k.raid_groups, &k.pool_config)),
            )
        },
        (V1, V1ALPHA1, "CStorPoolInstance"),
    )
}

/// What a CSPC or CSPI kept from its 1.x form that v1 pools cannot run (spare or read-cache
/// groups, mixed raid types in a category), as the admission denial text; `None` when fine.
pub fn v1alpha1_unsupported(meta: &ObjectMeta) -> Option<String> {
    let raw = meta.annotations.as_ref()?.get(CONVERSION_DATA)?;
    let data: Value = serde_json::from_str(raw).ok()?;
    let spec = data.get(V1ALPHA1)?.get("spec")?;
    let pools: Vec<(String, Vec<alpha::cspc::RaidGroup>, alpha::cspc::PoolConfig)> =
        if let Some(pools) = spec.get("pools") {
            serde_json::from_value::<Vec<alpha::cspc::PoolSpec>>(pools.clone())
                .ok()?
                .into_iter()
                .map(|p| {
                    let host = p
                        .node_selector
                        .get("kubernetes.io/hostname")
                        .cloned()
                        .unwrap_or_else(|| format!("{:?}", p.node_selector));
                    (host, p.raid_groups, p.pool_config)
                })
                .collect()
        } else {
            let s: alpha::cspi::CStorPoolInstanceSpec =
                serde_json::from_value(spec.clone()).ok()?;
            vec![(s.host_name, s.raid_groups, s.pool_config)]
        };
    for (host, groups, config) in pools {
        let mut what = Vec::new();
        if groups.iter().any(|g| g.is_spare) {
            what.push("spare raid groups".to_string());
        }
        if groups.iter().any(|g| g.is_read_cache) {
            what.push("read-cache raid groups".to_string());
        }
        for (category, pick) in [
            (
                "data",
                &(|g: &&alpha::cspc::RaidGroup| g.is_data())
                    as &dyn Fn(&&alpha::cspc::RaidGroup) -> bool,
            ),
            ("write-cache", &|g: &&alpha::cspc::RaidGroup| {
                g.is_write_cache && !g.is_spare && !g.is_read_cache
            }),
        ] {
            let mut types: Vec<&str> = groups
                .iter()
                .filter(pick)
                .map(|g| g.effective_type(&config))
                .collect();
            types.dedup();
            let mut distinct = types.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() > 1 {
                what.push(format!(
                    "mixed {category} raid types ({})",
                    distinct.join(", ")
                ));
            }
        }
        if !what.is_empty() {
            return Some(format!(
                "pool on node {host} uses {}, which cStor v1 pools do not support",
                what.join(" and ")
            ));
        }
    }
    None
}

// ----- the review -----

/// Where in `value[part]` decoding as `P` fails, as `part.path`.
fn locate<P: DeserializeOwned>(value: &Value, part: &str) -> Option<(String, String)> {
    let inner = value.get(part)?;
    match serde_path_to_error::deserialize::<_, P>(inner) {
        Ok(_) => None,
        Err(e) => Some((format!("{part}.{}", e.path()), e.inner().to_string())),
    }
}

/// Typed decode naming the failing field. The roots check apiVersion/kind themselves (which
/// hides the path), so a failure is located again in `spec` and `status` with their own types.
fn typed<T: DeserializeOwned, Spec: DeserializeOwned, Status: DeserializeOwned>(
    value: &Value,
    kind: &str,
) -> Result<T, ConvertError> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string();
    serde_json::from_value::<T>(value.clone()).map_err(|e| {
        let (path, message) = locate::<Spec>(value, "spec")
            .or_else(|| locate::<Status>(value, "status"))
            .unwrap_or_else(|| (".".into(), e.to_string()));
        ConvertError::Malformed {
            kind: kind.into(),
            name,
            path,
            message,
        }
    })
}

/// Converts one object to `desired` (`cstor.openebs.io/v1` or `/v1alpha1`).
pub fn convert_object(object: &Value, desired: &str) -> Result<Value, ConvertError> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = || {
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string()
    };
    if api_version == desired {
        return Ok(object.clone());
    }
    let unsupported = |reason: String| ConvertError::Unsupported {
        kind: kind.to_string(),
        name: name(),
        version: desired.to_string(),
        reason,
    };
    let to_value = |r: Result<Value, serde_json::Error>| r.map_err(|e| unsupported(e.to_string()));
    match (kind, api_version, desired) {
        ("CStorPoolCluster", V1ALPHA1, V1) => to_value(serde_json::to_value(cspc_to_v1(&typed::<
            _,
            alpha::cspc::CStorPoolClusterSpec,
            alpha::cspc::CStorPoolClusterStatus,
        >(
            object, kind,
        )?))),
        ("CStorPoolCluster", V1, V1ALPHA1) => {
            to_value(serde_json::to_value(cspc_to_alpha(&typed::<
                _,
                v1::cspc::CStorPoolClusterSpec,
                v1::cspc::CStorPoolClusterStatus,
            >(
                object, kind
            )?)))
        }
        ("CStorPoolInstance", V1ALPHA1, V1) => {
            to_value(serde_json::to_value(cspi_to_v1(&typed::<
                _,
                alpha::cspi::CStorPoolInstanceSpec,
                alpha::cspi::CStorPoolInstanceStatus,
            >(
                object, kind
            )?)))
        }
        ("CStorPoolInstance", V1, V1ALPHA1) => {
            to_value(serde_json::to_value(cspi_to_alpha(&typed::<
                _,
                v1::cspi::CStorPoolInstanceSpec,
                v1::cspi::CStorPoolInstanceStatus,
            >(
                object, kind
            )?)))
        }
        _ => Err(unsupported(format!(
            "no conversion from {api_version} {kind} (served: {V1}, {V1ALPHA1} of CStorPoolCluster and CStorPoolInstance)"
        ))),
    }
}

/// Answers a ConversionReview: every object converted, or a Failure naming the first bad one;
/// the uid is always echoed.
pub fn review(review: ConversionReview) -> ConversionReview {
    let request = match ConversionRequest::from_review(review) {
        Ok(r) => r,
        Err(e) => {
            return ConversionResponse::invalid(kube::core::response::Status::failure(
                &e.to_string(),
                "BadRequest",
            ))
            .into_review();
        }
    };
    let response = ConversionResponse::for_request(request.clone());
    let mut converted = Vec::with_capacity(request.objects.len());
    for object in &request.objects {
        match convert_object(object, &request.desired_api_version) {
            Ok(v) => converted.push(v),
            Err(e) => {
                return response
                    .failure(kube::core::response::Status::failure(
                        &e.to_string(),
                        "Invalid",
                    ))
                    .into_review();
            }
        }
    }
    response.success(converted).into_review()
}
