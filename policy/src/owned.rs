//! Objects the operators own — CSPI, CStorVolumeReplica, CStorVolume — are made, changed and
//! deleted by the operators only (docs/admission.md, "Objects the operators own"): a create, a
//! spec change, a change of the labels, annotations or ownerReferences the operators rely on,
//! or a delete is denied unless it comes from an operator's service account or from
//! Kubernetes' own cleanup, or (a delete) the owner named by the object's ownerReference is
//! being deleted. Status, finalizers and the users' own labels and annotations stay free.

use std::collections::BTreeMap;

use cstor_api::cstor_v1::{CStorPoolInstance, CStorVolume, CStorVolumeReplica};
use cstor_api::keys::{annotations, labels};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::verdict::Verdict;

/// HTTP-style code of a forbidden direct edit.
pub const CODE_FORBIDDEN: u16 = 403;
/// The garbage collector's identity: cascading deletes (and orphaning, which removes
/// ownerReferences) must go through.
pub const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";
/// The namespace controller's identity: namespace deletion must go through.
pub const NAMESPACE_CONTROLLER: &str = "system:serviceaccount:kube-system:namespace-controller";

/// Keys in the operators' domains that users set on purpose: pausing reconciliation, naming
/// the replica a supervised recovery promotes, the conversion's own record, asking a volume
/// for a snapshot, and the velero-plugin's mark on a restored replica.
pub const USER_KEYS: [&str; 5] = [
    annotations::RECONCILE_DISABLE,
    annotations::RECOVER_FROM,
    annotations::CONVERSION_DATA,
    cstor_api::snapshot::REQUEST,
    annotations::RESTORE_COMPLETED,
];

/// Whether the operators rely on a label or annotation `key`: every key of the `openebs.io`
/// domains and the node's hostname label, except [`USER_KEYS`].
pub fn operator_key(key: &str) -> bool {
    if USER_KEYS.contains(&key) {
        return false;
    }
    if key == labels::HOSTNAME {
        return true;
    }
    key.split_once('/')
        .is_some_and(|(domain, _)| domain == "openebs.io" || domain.ends_with(".openebs.io"))
}

/// The request as these rules see it.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// `request.userInfo.username`.
    pub username: &'a str,
    pub operation: Operation,
    /// For a delete: whether the owner the object's controller ownerReference names (by UID)
    /// is being deleted or is gone. Objects without such a reference have no deleting owner.
    pub owner_deleting: bool,
}

/// The operations these rules see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// Who may edit owned objects: the operators' service accounts
/// (`system:serviceaccount:<ns>:<name>`), configured by the webhook server; an entry ending in
/// `*` is a prefix (the node agents' per-object accounts, `…:cstor-pool-manager-*`).
#[derive(Clone, Debug, Default)]
pub struct OperatorAccounts(pub Vec<String>);

impl OperatorAccounts {
    /// Whether `user` is one of the operator accounts.
    pub fn contains(&self, user: &str) -> bool {
        self.0.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => user.starts_with(prefix) && user.len() > prefix.len(),
            None => a == user,
        })
    }
}

/// The owned kinds, with what a user should do instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Cspi,
    Cvr,
    Cv,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Cspi => "CStorPoolInstance",
            Kind::Cvr => "CStorVolumeReplica",
            Kind::Cv => "CStorVolume",
        }
    }

    /// The kind of the object a user edits instead.
    fn owner_kind(self) -> &'static str {
        match self {
            Kind::Cspi => "CStorPoolCluster",
            Kind::Cvr | Kind::Cv => "CStorVolumeConfig",
        }
    }

    fn instead_of_create(self) -> &'static str {
        match self {
            Kind::Cspi => "create or edit a CStorPoolCluster instead",
            Kind::Cvr | Kind::Cv => {
                "create a CStorVolumeConfig (or a PersistentVolumeClaim of the cStor CSI driver) instead"
            }
        }
    }

    fn instead_of_delete(self, owner: &str) -> String {
        match self {
            Kind::Cspi => format!(
                "remove its pool from CStorPoolCluster {owner} or delete that CStorPoolCluster instead"
            ),
            Kind::Cvr => format!(
                "scale the volume down in CStorVolumeConfig {owner} (spec.policy.replicaPoolInfo) instead"
            ),
            Kind::Cv => format!(
                "delete the volume's PersistentVolumeClaim (or CStorVolumeConfig {owner}) instead"
            ),
        }
    }
}

/// The controller ownerReference of `meta`.
fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The first operator key whose value differs between `old` and `new`.
fn changed_key(
    old: &Option<BTreeMap<String, String>>,
    new: &Option<BTreeMap<String, String>>,
) -> Option<String> {
    let empty = BTreeMap::new();
    let (old, new) = (
        old.as_ref().unwrap_or(&empty),
        new.as_ref().unwrap_or(&empty),
    );
    old.keys()
        .chain(new.keys())
        .filter(|k| operator_key(k))
        .find(|k| old.get(*k) != new.get(*k))
        .cloned()
}

/// What an update changes that only the operators may change.
fn guarded_change(old: &ObjectMeta, new: &ObjectMeta, spec_changed: bool) -> Option<String> {
    if spec_changed {
        return Some("spec".into());
    }
    if let Some(k) = changed_key(&old.labels, &new.labels) {
        return Some(format!("label {k}"));
    }
    if let Some(k) = changed_key(&old.annotations, &new.annotations) {
        return Some(format!("annotation {k}"));
    }
    let refs = |m: &ObjectMeta| m.owner_references.clone().unwrap_or_default();
    (refs(old) != refs(new)).then(|| "ownerReferences".into())
}

fn deny(message: String) -> Verdict {
    Verdict::deny(CODE_FORBIDDEN, message).with_reason("Forbidden")
}

fn decide(
    kind: Kind,
    old: Option<&ObjectMeta>,
    new: Option<&ObjectMeta>,
    spec_changed: bool,
    owner_label: &str,
    req: &Request<'_>,
    operators: &OperatorAccounts,
) -> Verdict {
    let user = req.username;
    if operators.contains(user) || user == GARBAGE_COLLECTOR || user == NAMESPACE_CONTROLLER {
        return Verdict::allow();
    }
    let meta = old.or(new);
    let name = meta.and_then(|m| m.name.as_deref()).unwrap_or_default();
    // The owner as the stored object names it: its controller ownerReference (which users
    // cannot change), else the label the Go operators set.
    let owner = meta
        .and_then(|m| {
            controller(m)
                .map(|r| r.name.clone())
                .or_else(|| m.labels.as_ref().and_then(|l| l.get(owner_label)).cloned())
        })
        .unwrap_or_default();
    // A CStorVolume is named like its CVC.
    let owner = if owner.is_empty() && kind == Kind::Cv {
        name.to_string()
    } else {
        owner
    };
    let (kind_name, owner_kind) = (kind.name(), kind.owner_kind());
    match req.operation {
        Operation::Create => deny(format!(
            "{kind_name} objects are made by the operators; {}",
            kind.instead_of_create()
        )),
        Operation::Update => match (old, new) {
            (Some(old), Some(new)) => match guarded_change(old, new, spec_changed) {
                None => Verdict::allow(),
                Some(what) if what == "spec" => deny(format!(
                    "direct {kind_name} {name} spec changes are not allowed; edit {owner_kind} {owner} instead"
                )),
                Some(what) => deny(format!(
                    "{kind_name} {name}: {what} is set by the operators and cannot be changed directly"
                )),
            },
            _ => Verdict::allow(),
        },
        Operation::Delete if req.owner_deleting => Verdict::allow(),
        Operation::Delete => deny(format!(
            "direct deletion of {kind_name} {name} is not allowed; {}",
            kind.instead_of_delete(&owner)
        )),
    }
}

/// A CSPI create (`old` None), update (both) or delete (`new` None).
pub fn cspi(
    old: Option<&CStorPoolInstance>,
    new: Option<&CStorPoolInstance>,
    req: &Request<'_>,
    operators: &OperatorAccounts,
) -> Verdict {
    let spec_changed = matches!((old, new), (Some(o), Some(n)) if o.spec != n.spec);
    decide(
        Kind::Cspi,
        old.map(|o| &o.metadata),
        new.map(|n| &n.metadata),
        spec_changed,
        labels::CSTOR_POOL_CLUSTER,
        req,
        operators,
    )
}

/// A CVR create, update or delete; the owner is the volume (named like its CVC).
pub fn cvr(
    old: Option<&CStorVolumeReplica>,
    new: Option<&CStorVolumeReplica>,
    req: &Request<'_>,
    operators: &OperatorAccounts,
) -> Verdict {
    let spec_changed = matches!((old, new), (Some(o), Some(n)) if o.spec != n.spec);
    decide(
        Kind::Cvr,
        old.map(|o| &o.metadata),
        new.map(|n| &n.metadata),
        spec_changed,
        labels::PERSISTENT_VOLUME,
        req,
        operators,
    )
}

/// A CStorVolume create, update or delete; its CVC has the volume's name.
pub fn cstor_volume(
    old: Option<&CStorVolume>,
    new: Option<&CStorVolume>,
    req: &Request<'_>,
    operators: &OperatorAccounts,
) -> Verdict {
    let spec_changed = matches!((old, new), (Some(o), Some(n)) if o.spec != n.spec);
    decide(
        Kind::Cv,
        old.map(|o| &o.metadata),
        new.map(|n| &n.metadata),
        spec_changed,
        labels::PERSISTENT_VOLUME,
        req,
        operators,
    )
}
