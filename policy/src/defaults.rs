//! The mutating webhook's defaults: each pool's effective config made explicit, by the same
//! rule the cspc-operator applies when it writes the CSPI
//! ([`CStorPoolClusterSpec::effective_pool_config`](cstor_api::cstor_v1::CStorPoolClusterSpec::effective_pool_config)).
//! Nothing the user wrote is overridden.

use cstor_api::cstor_v1::CStorPoolCluster;
pub use cstor_api::cstor_v1::cspc::{DEFAULT_COMPRESSION, DEFAULT_RO_THRESHOLD};

/// The CSPC with every pool's effective config filled in; equal to the input when nothing is
/// missing (the webhook then sends no patch). Pools without a `poolConfig` are left for
/// validation to reject.
pub fn with_pool_defaults(cspc: &CStorPoolCluster) -> CStorPoolCluster {
    let mut out = cspc.clone();
    for pool in &mut out.spec.pools {
        if pool.pool_config.is_some() {
            pool.pool_config = Some(cspc.spec.effective_pool_config(pool));
        }
    }
    out
}
