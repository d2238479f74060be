//! Prometheus metrics of the webhook server: requests by webhook/kind/operation/allowed, a
//! latency histogram, and seconds to certificate expiry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of one request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub webhook: String,
    pub kind: String,
    pub operation: String,
    pub allowed: String,
}

/// Labels of a rejected HTTP request (bad content type, body…).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub webhook: String,
    pub status: String,
}

/// Every metric, registered once.
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub http_errors: Family<ErrorLabels, Counter>,
    pub duration: Family<RequestLabels, Histogram>,
    pub cert_expiry_seconds: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cstor_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        let http_errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let cert_expiry_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "requests",
            "Admission and conversion requests answered",
            requests.clone(),
        );
        registry.register(
            "http_errors",
            "Requests refused before review (content type, body)",
            http_errors.clone(),
        );
        registry.register(
            "duration_seconds",
            "Time to answer a review",
            duration.clone(),
        );
        registry.register(
            "cert_expiry_seconds",
            "Seconds until the serving certificate expires",
            cert_expiry_seconds.clone(),
        );
        Metrics {
            registry,
            requests,
            http_errors,
            duration,
            cert_expiry_seconds,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
