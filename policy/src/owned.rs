//! Objects the operators own — CSPI, CStorVolumeReplica, CStorVolume — are not edited directly
//! (docs/admission.md A.4): a spec change or a delete is denied unless it comes from an operator
//! service account or from Kubernetes' own cleanup. Status, labels, annotations and finalizers
//! stay free.

use cstor_api::cstor_v1::{CStorPoolInstance, CStorVolume, CStorVolumeReplica};
use cstor_api::keys::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::verdict::Verdict;

/// HTTP-style code of a forbidden direct edit.
pub const CODE_FORBIDDEN: u16 = 403;
/// The garbage collector's identity: cascading deletes must go through.
pub const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";
/// The namespace controller's identity: namespace deletion must go through.
pub const NAMESPACE_CONTROLLER: &str = "system:serviceaccount:kube-system:namespace-controller";

/// The request as these rules see it.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// `request.userInfo.username`.
    pub username: &'a str,
    pub operation: Operation,
    /// Whether the owning CSPC / CVC has a deletionTimestamp (or is gone).
    pub owner_deleting: bool,
}

/// The operations these rules see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Update,
    Delete,
}

/// Who may edit owned objects: the operators' service accounts
/// (`system:serviceaccount:<ns>:<name>`), configured by the webhook server.
#[derive(Clone, Debug, Default)]
pub struct OperatorAccounts(pub Vec<String>);

impl OperatorAccounts {
    /// Whether `user` is one of the operator accounts.
    pub fn contains(&self, user: &str) -> bool {
        self.0.iter().any(|a| a == user)
    }
}

fn decide(
    req: &Request<'_>,
    operators: &OperatorAccounts,
    spec_changed: bool,
    kind: &str,
    name: &str,
    owner_kind: &str,
    owner: &str,
) -> Verdict {
    let guarded = match req.operation {
        Operation::Update => spec_changed,
        Operation::Delete => {
            !(req.owner_deleting
                || req.username == GARBAGE_COLLECTOR
                || req.username == NAMESPACE_CONTROLLER)
        }
    };
    if !guarded || operators.contains(req.username) {
        return Verdict::allow();
    }
    Verdict::deny(
        CODE_FORBIDDEN,
        format!(
            "direct {kind} {name} spec changes are not allowed; edit {owner_kind} {owner} instead"
        ),
    )
    .with_reason("Forbidden")
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> &'a str {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .unwrap_or_default()
}

/// A CSPI update (`new` is `Some`) or delete (`None`); `old` is the stored object.
pub fn cspi(
    old: &CStorPoolInstance,
    new: Option<&CStorPoolInstance>,
    req: &Request<'_>,
    operators: &OperatorAccounts,
) -> Verdict {
    let spec_changed = new.is_some_and(|n| n.spec != old.spec);
    let name = old.metadata.name.as_deref().unwrap_or_default();
    let owner = label(&old.metadata, labels::CSTOR_POOL_CLUSTER);
    decide(
        req,
        operators,
        spec_changed,
        "CStorPoolInstance",
        name,
        "CStorPoolCluster",
        owner,
    )
}

/// A CVR update or delete; the owning CVC is named after the volume.
pub fn cvr(
    old: &CStorVolumeReplica,
    new: Option<&CStorVolumeReplica>,
    req: &Request<'_>,
    operators: &OperatorAccounts,
) -> Verdict {
    let spec_changed = new.is_some_and(|n| n.spec != old.spec);
    let name = old.metadata.name.as_deref().unwrap_or_default();
    let owner = label(&old.metadata, labels::PERSISTENT_VOLUME);
    decide(
        req,
        operators,
        spec_changed,
        "CStorVolumeReplica",
        name,
        "CStorVolumeConfig",
        owner,
    )
}

/// A CStorVolume update or delete; the CVC has the volume's name.
pub fn cstor_volume(
    old: &CStorVolume,
    new: Option<&CStorVolume>,
    req: &Request<'_>,
    operators: &OperatorAccounts,
) -> Verdict {
    let spec_changed = new.is_some_and(|n| n.spec != old.spec);
    let name = old.metadata.name.as_deref().unwrap_or_default();
    decide(
        req,
        operators,
        spec_changed,
        "CStorVolume",
        name,
        "CStorVolumeConfig",
        name,
    )
}
