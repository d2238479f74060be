//! CStorVolumeConfig UPDATE rules (docs/admission.md, CVC-1 … CVC-8). The current state
//! comes from the request's `oldObject` (part A.2), never a live read.

use cstor_api::cstor_v1::{CStorVolumeConfig, cvc::phase};

use crate::verdict::Verdict;
use cstor_api::quantity::Quantity;

/// The Go operator answers every CVC denial with 400.
pub const CODE: u16 = 400;

/// Names that occur more than once, each listed once in order of first repeat.
fn duplicates<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::BTreeSet::new();
    let mut dups = Vec::new();
    for n in names {
        if !seen.insert(n) && !dups.contains(&n) {
            dups.push(n);
        }
    }
    dups
}

fn storage(cvc: &CStorVolumeConfig) -> Option<&str> {
    cvc.spec
        .provision
        .capacity
        .get("storage")
        .map(|q| q.0.as_str())
}

fn same_quantity(a: Option<&str>, b: Option<&str>) -> bool {
    let value = |q: Option<&str>| match q {
        Some(q) => Quantity::parse(q).ok(),
        None => Quantity::parse("0").ok(),
    };
    match (value(a), value(b)) {
        (Some(x), Some(y)) => x == y,
        // Unreadable on either side: only identical text is unchanged.
        _ => a == b,
    }
}

/// UPDATE of a CVC from `old` to `new`.
pub fn validate_update(old: &CStorVolumeConfig, new: &CStorVolumeConfig) -> Verdict {
    match check(old, new, false) {
        Ok(()) => Verdict::allow(),
        Err(msg) => Verdict::deny(CODE, msg),
    }
}

/// UPDATE of a CVC by `user`. The cvc-operator records the pools it placed replicas on in
/// `spec.policy.replicaPoolInfo` after writing `status.poolInfo` (two requests, since status is
/// a subresource here), which the scaling rules would read as a user's scale; so for the
/// operator accounts only the immutability rules apply (docs/decisions/014).
pub fn validate_update_by(
    old: &CStorVolumeConfig,
    new: &CStorVolumeConfig,
    user: &str,
    operators: &crate::owned::OperatorAccounts,
) -> Verdict {
    match check(old, new, operators.contains(user)) {
        Ok(()) => Verdict::allow(),
        Err(msg) => Verdict::deny(CODE, msg),
    }
}

fn check(old: &CStorVolumeConfig, new: &CStorVolumeConfig, operator: bool) -> Result<(), String> {
    let name = new.metadata.name.as_deref().unwrap_or_default();
    let (old_count, new_count) = (
        old.spec.provision.replica_count,
        new.spec.provision.replica_count,
    );
    if old_count != new_count {
        return Err(format!(
            "cvc {name} replicaCount got modified from {old_count} to {new_count}"
        ));
    }
    if !same_quantity(storage(old), storage(new)) {
        return Err(
            "cvc initial provisioned capacity `Spec.Provision.Capacity` is immutable, can't be modified "
                .into(),
        );
    }
    if operator {
        return Ok(());
    }
    let old_status: Vec<&str> = old
        .status
        .iter()
        .flat_map(|s| s.pool_info.iter().map(String::as_str))
        .collect();
    let new_desired: Vec<&str> = new
        .spec
        .policy
        .replica_pool_info
        .iter()
        .map(|p| p.pool_name.as_str())
        .collect();
    let old_phase = old.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("");
    let new_phase = new.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("");
    if old_phase != phase::BOUND
        && new_phase != phase::BOUND
        && old_status.len() != new_desired.len()
    {
        return Err(
            "Can't perform scaling of volume replicas when CVC is not in Bound state".into(),
        );
    }
    let modified: Vec<&str> = old_status
        .iter()
        .copied()
        .filter(|p| !new_desired.contains(p))
        .collect();
    if new_desired.len() >= old_status.len() && !modified.is_empty() {
        return Err(format!(
            "volume replica migration directly by modifying pool names [{}] is not yet supported",
            modified.join(" ")
        ));
    }
    if new_desired.len() < old_status.len() && modified.len() > 1 {
        return Err(format!(
            "Can't perform more than one replica scale down requested scale down count {}",
            modified.len()
        ));
    }
    let old_desired_len = old.spec.policy.replica_pool_info.len();
    if old_desired_len != old_status.len() && new_desired.len() != old_desired_len {
        return Err(format!("scaling of CVC {name} is already in progress"));
    }
    let dup_spec = duplicates(new_desired.iter().copied());
    if !dup_spec.is_empty() {
        return Err(format!(
            "duplicate pool names [{}] found under spec of cvc {name}",
            dup_spec.join(" ")
        ));
    }
    let dup_status = duplicates(
        new.status
            .iter()
            .flat_map(|s| s.pool_info.iter().map(String::as_str)),
    );
    if !dup_status.is_empty() {
        return Err(format!(
            "duplicate pool names [{}] found under status of cvc {name}",
            dup_status.join(" ")
        ));
    }
    Ok(())
}
