//! The mutating webhook's defaults (spec/webhooks.md A.7): each pool's effective config made
//! explicit. A pool inherits the CSPC-wide resources, auxResources, tolerations and priority
//! class where its own are unset; roThresholdLimit defaults to 85 and compression to lz4 (the
//! pool-manager's meaning of ""). Nothing the user wrote is overridden.

use cstor_api::cstor_v1::CStorPoolCluster;

/// Percent used at which a pool turns read-only when unset.
pub const DEFAULT_RO_THRESHOLD: i32 = 85;
/// What the pool-manager uses for an empty compression.
pub const DEFAULT_COMPRESSION: &str = "lz4";

/// The CSPC with every pool's effective config filled in; equal to the input when nothing is
/// missing (the webhook then sends no patch). Pools without a `poolConfig` are left for
/// validation to reject.
pub fn with_pool_defaults(cspc: &CStorPoolCluster) -> CStorPoolCluster {
    let mut out = cspc.clone();
    let spec = &cspc.spec;
    for pool in &mut out.spec.pools {
        let Some(config) = pool.pool_config.as_mut() else {
            continue;
        };
        if config.resources.is_none() {
            config.resources = spec.resources.clone();
        }
        if config.aux_resources.is_none() {
            config.aux_resources = spec.aux_resources.clone();
        }
        if config.tolerations.as_ref().is_none_or(Vec::is_empty) && !spec.tolerations.is_empty() {
            config.tolerations = Some(spec.tolerations.clone());
        }
        if config.priority_class_name.is_none() && !spec.priority_class_name.is_empty() {
            config.priority_class_name = Some(spec.priority_class_name.clone());
        }
        if config.ro_threshold_limit.is_none() {
            config.ro_threshold_limit = Some(DEFAULT_RO_THRESHOLD);
        }
        if config.compression.is_empty() {
            config.compression = DEFAULT_COMPRESSION.into();
        }
    }
    out
}
