//! `/validate` and `/mutate` handlers: decode the AdmissionReview, read the typed objects (old
//! state from `oldObject`), gather cluster facts through [`facts::Facts`], call policy, and
//! answer with the uid echoed, `code` and `message` (and a JSONPatch for `/mutate`). Every
//! input gets an answer; nothing here panics or writes to the cluster.

pub mod convert;
pub mod facts;
pub mod mutate;
pub mod validate;

/// What the handlers need to know about their deployment.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The operator's namespace (`OPENEBS_NAMESPACE`): BlockDevices and claims live there.
    pub openebs_namespace: String,
    /// Service accounts allowed to edit CSPI/CVR/CStorVolume specs (docs/admission.md A.4).
    pub operator_accounts: cstor_policy::owned::OperatorAccounts,
}
