//! The one error type of this crate.

/// Everything a reconcile or the operator entry point can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed; it names its step and object (no bare `kube::Error` converts).
    #[error(transparent)]
    Api(#[from] cstor_runtime::errors::ApiError),
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
    /// No CSPI name is free for a node: every derived candidate is another node's.
    #[error(
        "no free CSPI name for CSPC {cspc} on node {host}: {tried} candidates are other nodes' CSPIs"
    )]
    NoFreeName {
        cspc: String,
        host: String,
        tried: usize,
    },
    /// A controller stream ended although no shutdown was asked for.
    #[error("controller {0} stopped unexpectedly")]
    ControllerStopped(&'static str),
}

impl Error {
    /// A bounded label for logs and metrics (never the message, whose cardinality is not).
    pub fn category(&self) -> &'static str {
        match self {
            Error::Api(e) => e.category(),
            Error::Json(_) => "serialization",
            Error::MissingField { .. } => "invalid_object",
            Error::NoFreeName { .. } => "name_collision",
            Error::Patch(_) => "metadata_patch",
            Error::Lease(_) | Error::LeaseLost(_) => "lease",
            Error::ControllerStopped(_) => "controller_stopped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;
    use kube::core::Status;

    #[test]
    fn categories_are_bounded_and_a_denial_is_not_a_conflict() {
        let api = |code, reason: &str, message: &str| {
            Error::Api(cstor_runtime::errors::ApiError {
                step: "patch CVR",
                object: "pvc-1-cstor-a".into(),
                source: kube::Error::Api(Status::failure(message, reason).with_code(code).boxed()),
            })
        };
        assert_eq!(
            api(409, "Conflict", "the object has been modified").category(),
            "conflict"
        );
        assert_eq!(
            api(
                422,
                "Invalid",
                "admission webhook \"validate.cstor.openebs.io\" denied the request: x"
            )
            .category(),
            "denied"
        );
        assert_eq!(api(404, "NotFound", "gone").category(), "not_found");
        assert_eq!(api(500, "InternalError", "boom").category(), "api");
        assert_eq!(
            Error::ControllerStopped("cvc").category(),
            "controller_stopped"
        );
    }
}
