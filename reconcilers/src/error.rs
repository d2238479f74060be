//! The one error type of this crate.

/// Everything a reconcile or the operator entry point can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),
    /// An object lacks a field the apiserver always sets (uid, namespace, …).
    #[error("{kind} {name} has no {field}")]
    MissingField {
        kind: &'static str,
        name: String,
        field: &'static str,
    },
    /// A finalizer or field edit failed, or kept losing races with other writers.
    #[error(transparent)]
    Patch(#[from] cstor_runtime::finalizers::PatchError),
    #[error(transparent)]
    Lease(#[from] cstor_runtime::leader::LeaseError),
    /// The Lease was lost while the controllers ran: the process must restart.
    #[error("lost the lease {0}; stopping so a fresh process can compete again")]
    LeaseLost(String),
    /// A controller stream ended although no shutdown was asked for.
    #[error("controller {0} stopped unexpectedly")]
    ControllerStopped(&'static str),
}
