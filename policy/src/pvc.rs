//! PersistentVolumeClaim DELETE (docs/admission.md): a claim whose volume has clones
//! (CStorVolumes or CVCs labelled `openebs.io/source-volume=<volume>`) cannot be deleted.

use crate::verdict::Verdict;

/// Namespaces the Go operator never guards.
const SKIPPED_NAMESPACES: [&str; 2] = ["kube-system", "kube-public"];

/// DELETE of PVC `namespace/name`; `clone_volumes` and `clone_claims` count the CStorVolumes
/// and CVCs labelled with its volume as source.
pub fn validate_delete(
    namespace: &str,
    name: &str,
    clone_volumes: usize,
    clone_claims: usize,
) -> Verdict {
    if name.is_empty() || SKIPPED_NAMESPACES.contains(&namespace) {
        return Verdict::allow();
    }
    // PVC-7 counts CStorVolumes first; PVC-9 CVCs only when there are none.
    let clones = if clone_volumes > 0 {
        clone_volumes
    } else {
        clone_claims
    };
    if clones == 0 {
        return Verdict::allow();
    }
    Verdict::deny(
        403,
        format!("pvc \"{name}\" has '{clones}' cloned volume(s)"),
    )
    .with_reason("PVC with cloned volumes can't be deleted")
}
