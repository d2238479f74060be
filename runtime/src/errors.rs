//! What an API error means, in one place: a lost write race, NotFound, AlreadyExists. An
//! admission webhook's denial is none of these: it is the answer, not a race to retry. And
//! [`ApiError`]: a failed call that names its step and its object, so no controller reports a
//! bare "kubernetes API: …" that says neither what it was doing nor to what.

use std::fmt::Display;

/// A resourceVersion conflict (409 Conflict): someone else wrote first; re-read and retry.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict")
}

/// A guarded JSON patch lost its race: a resourceVersion conflict, or a failed `test`
/// operation (the apiserver answers 422 with "the server rejected our request due to an error
/// in our request" and no admission text). A webhook denial (also 4xx) is not one.
pub fn is_lost_race(e: &kube::Error) -> bool {
    is_conflict(e) || matches!(e, kube::Error::Api(s) if s.code == 422 && !is_webhook_denial(e))
}

/// Whether the apiserver refused because an admission webhook denied the request.
pub fn is_webhook_denial(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.message.starts_with("admission webhook "))
}

/// NotFound (404).
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// AlreadyExists (409 with that reason).
pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// A Kubernetes API call that failed, with the step it was (a fixed label such as
/// `"create CVR"`) and the object it was made on (`"pvc-1-cstor-a"`, or `"ns/name"`).
#[derive(Debug, thiserror::Error)]
#[error("{step} {object}: {source}")]
pub struct ApiError {
    pub step: &'static str,
    pub object: String,
    #[source]
    pub source: kube::Error,
}

impl ApiError {
    pub fn new(step: &'static str, object: impl Display, source: kube::Error) -> Self {
        ApiError {
            step,
            object: object.to_string(),
            source,
        }
    }

    /// A bounded label for logs and metrics: what kind of failure, never the message.
    pub fn category(&self) -> &'static str {
        let e = &self.source;
        if is_webhook_denial(e) {
            "denied"
        } else if is_conflict(e) {
            "conflict"
        } else if is_not_found(e) {
            "not_found"
        } else if is_already_exists(e) {
            "already_exists"
        } else {
            "api"
        }
    }
}

/// Names the step and the object of an API call's result: `api.create(..).await.step("create
/// CVR", &name)?`. Crates take no `From<kube::Error>`, so a call cannot skip this.
pub trait Step<T> {
    fn step(self, step: &'static str, object: impl Display) -> Result<T, ApiError>;
}

impl<T> Step<T> for Result<T, kube::Error> {
    fn step(self, step: &'static str, object: impl Display) -> Result<T, ApiError> {
        self.map_err(|source| ApiError {
            step,
            object: object.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn classifies_what_the_apiserver_answers() {
        let conflict = api(
            409,
            "Conflict",
            "Operation cannot be fulfilled on cstorpoolinstances.cstor.openebs.io \"p\": the object has been modified; please apply your changes to the latest version and try again",
        );
        let exists = api(
            409,
            "AlreadyExists",
            "cstorvolumereplicas.cstor.openebs.io \"r\" already exists",
        );
        let failed_test = api(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        );
        let denied = api(
            422,
            "Invalid",
            "admission webhook \"validate.cstor.openebs.io\" denied the request: invalid cspc specification: pools in cspc should have at least one item",
        );
        let denied_403 = api(
            403,
            "Forbidden",
            "admission webhook \"validate.cstor.openebs.io\" denied the request: spec changes are not allowed",
        );
        let missing = api(
            404,
            "NotFound",
            "cstorpoolclusters.cstor.openebs.io \"c\" not found",
        );

        assert!(is_conflict(&conflict) && is_lost_race(&conflict));
        assert!(!is_conflict(&exists) && is_already_exists(&exists) && !is_lost_race(&exists));
        assert!(is_lost_race(&failed_test) && !is_conflict(&failed_test));
        for d in [&denied, &denied_403] {
            assert!(is_webhook_denial(d));
            assert!(
                !is_conflict(d) && !is_lost_race(d),
                "a denial is not a race: {d}"
            );
        }
        assert!(is_not_found(&missing) && !is_lost_race(&missing));
    }

    #[test]
    fn an_api_error_names_its_step_and_object() {
        let e: Result<(), _> = Err(api(
            422,
            "Invalid",
            "admission webhook \"validate.cstor.openebs.io\" denied the request: no",
        ));
        let Err(e) = e.step("create CVR", "pvc-1-cstor-a") else {
            panic!("an error stays an error")
        };
        assert!(
            e.to_string().starts_with(
                "create CVR pvc-1-cstor-a: ApiError: admission webhook \"validate.cstor.openebs.io\" denied the request: no"
            ),
            "{e}"
        );
        assert_eq!(e.category(), "denied");
        let gone: Result<(), _> = Err(api(404, "NotFound", "gone"));
        assert_eq!(
            gone.step("get CStorVolume", "v")
                .expect_err("stays an error")
                .category(),
            "not_found"
        );
    }
}
