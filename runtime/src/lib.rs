//! The shared kit of everything that talks to the API (the cspc- and cvc-operators, claim
//! binding, the pool-manager, the volume-manager, the webhook server): one back-off, one event
//! publisher with every reason named once, one finalizer edit, one condition setter, one clock,
//! one set of error classifiers and one leader election. No controller writes its own copy of these.

pub mod backoff;
pub mod conditions;
pub mod deadline;
pub mod errors;
pub mod events;
pub mod finalizers;
pub mod leader;
pub mod reasons;
pub mod version;

pub use backoff::Backoff;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The one clock of status writes (conditions, transition and update times).
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Runs one reconcile of `object` by `controller` inside a `reconcile` span carrying both, and
/// records how long it took and whether it failed (debug level: one line per reconcile).
pub async fn traced<T, E: std::fmt::Display>(
    controller: &'static str,
    object: &str,
    reconcile: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use tracing::Instrument;
    let span = tracing::info_span!("reconcile", controller, object);
    let started = std::time::Instant::now();
    let result = reconcile.instrument(span.clone()).await;
    let ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| match &result {
        Ok(_) => tracing::debug!(ms, "reconciled"),
        Err(e) => tracing::debug!(ms, error = %e, "reconcile failed"),
    });
    result
}
