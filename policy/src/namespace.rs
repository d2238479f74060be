//! Namespace DELETE of the operator's namespace (docs/admission.md, changed by A.3):
//! the Go operator deletes its own webhook configuration there (a side effect, even on dry-run).
//! Here deleting the namespace that runs the operators is refused while it still holds pools
//! or volumes, whose cascading deletion would destroy data; otherwise it is allowed.

use crate::verdict::Verdict;

/// DELETE of Namespace `name`; `cspcs` and `cvcs` count the CStorPoolClusters and
/// CStorVolumeConfigs in it. Other namespaces are never guarded (NS-2).
pub fn validate_delete(name: &str, openebs_namespace: &str, cspcs: usize, cvcs: usize) -> Verdict {
    if name.is_empty() || name != openebs_namespace || (cspcs == 0 && cvcs == 0) {
        return Verdict::allow();
    }
    Verdict::deny(
        403,
        format!(
            "namespace {name} runs the cStor operators and still holds {cspcs} CStorPoolCluster(s) \
             and {cvcs} CStorVolumeConfig(s); delete them first, since deleting the namespace \
             would destroy their pools and volumes"
        ),
    )
    .with_reason("Forbidden")
}
