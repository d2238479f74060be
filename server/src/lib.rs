//! The webhook HTTPS server: axum on hyper with rustls (TLS 1.2/1.3, hot-swapped certificate),
//! `/validate`, `/mutate`, `/convert`, `/healthz`, `/readyz`, `/metrics`; a 3 MiB body limit,
//! a per-request deadline, bounded concurrency, a budget for request bodies taken before they
//! are read, a connection cap with handshake and header timeouts, and graceful shutdown.

pub mod metrics;
pub mod run;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cstor_webhooks::facts::Facts;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use kube::core::conversion::ConversionReview;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use metrics::{ErrorLabels, Metrics, RequestLabels};
use tls::CertStore;

/// The apiserver's own request limit.
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;

/// Limits of the server: what one client, or many slow or idle ones, can hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Time to answer one review (keep under the webhook timeout, 10 s).
    pub deadline: Duration,
    /// Time to receive a request body (a slow client is cut off with 408).
    pub body_timeout: Duration,
    /// Reviews evaluated at once.
    pub concurrency: usize,
    /// Bytes of request bodies over 64 KiB held at once (taken before a body is read, by its
    /// Content-Length, [`BODY_LIMIT`] when it has none): memory stays bounded under 3 MiB
    /// bodies at any connection count.
    pub body_budget: usize,
    /// Small bodies (at most 64 KiB) held at once: every ordinary review is one.
    pub small_bodies: usize,
    /// Open connections; more are closed at once.
    pub max_connections: usize,
    /// Time to complete the TLS handshake, then to send a request's headers (also bounds an
    /// idle connection).
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(8),
            body_timeout: Duration::from_secs(5),
            concurrency: 64,
            // 24 MiB of bodies: with their decoded copies well inside the Deployment's 128 Mi.
            body_budget: 24 << 20,
            small_bodies: 256,
            max_connections: 1024,
            header_timeout: Duration::from_secs(5),
        }
    }
}

/// The unit of the body budget.
const BUDGET_UNIT: usize = 64 * 1024;

/// Everything the handlers share.
pub struct AppState<F> {
    pub facts: F,
    pub config: cstor_webhooks::Config,
    pub metrics: Metrics,
    pub certs: Arc<CertStore>,
    /// Set once cluster facts are reachable; `/readyz` needs it and a certificate.
    pub facts_ready: AtomicBool,
    permits: Semaphore,
    /// The budget of bodies over [`BUDGET_UNIT`], in units.
    bodies: Semaphore,
    /// Bodies of at most one [`BUDGET_UNIT`] (every ordinary review): a pool of their own, so
    /// large slow bodies never queue ahead of them.
    small_bodies: Semaphore,
    limits: Limits,
}

impl<F> AppState<F> {
    pub fn new(
        facts: F,
        config: cstor_webhooks::Config,
        certs: Arc<CertStore>,
        limits: Limits,
    ) -> Self {
        AppState {
            facts,
            config,
            metrics: Metrics::default(),
            certs,
            facts_ready: AtomicBool::new(false),
            permits: Semaphore::new(limits.concurrency),
            bodies: Semaphore::new(
                (limits.body_budget / BUDGET_UNIT).max(BODY_LIMIT / BUDGET_UNIT),
            ),
            small_bodies: Semaphore::new(limits.small_bodies.max(1)),
            limits,
        }
    }
}

/// The routes.
pub fn router<F: Facts + 'static>(state: Arc<AppState<F>>) -> Router {
    Router::new()
        .route("/validate", post(validate::<F>))
        .route("/mutate", post(mutate::<F>))
        .route("/convert", post(convert::<F>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<F>))
        .route("/metrics", get(metrics_text::<F>))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": message.into()}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_ok(body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// An error answer of `webhook`, counted in `http_errors` by status.
fn refuse_counted<F>(
    state: &AppState<F>,
    webhook: &str,
    status: StatusCode,
    msg: String,
) -> Response {
    state
        .metrics
        .http_errors
        .get_or_create(&ErrorLabels {
            webhook: webhook.into(),
            status: status.as_u16().to_string(),
        })
        .inc();
    json_error(status, msg)
}

/// Content type and body checks shared by the review endpoints; Err is the HTTP answer.
#[allow(clippy::result_large_err)] // the Err is the response itself, built once per bad request
fn check_request<F>(
    state: &AppState<F>,
    webhook: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(), Response> {
    let refuse = |status: StatusCode, msg: String| refuse_counted(state, webhook, status, msg);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type must be application/json, got {content_type:?}"),
        ));
    }
    if body.is_empty() {
        return Err(refuse(StatusCode::BAD_REQUEST, "empty body".into()));
    }
    Ok(())
}

fn record<F>(
    state: &AppState<F>,
    webhook: &str,
    review: &AdmissionReview<DynamicObject>,
    kind: &str,
    op: &str,
    started: Instant,
) {
    let allowed = review.response.as_ref().is_some_and(|r| r.allowed);
    count(state, webhook, kind, op, allowed, started);
}

/// One answered review in the request counter and latency histogram.
fn count<F>(
    state: &AppState<F>,
    webhook: &str,
    kind: &str,
    op: &str,
    allowed: bool,
    started: Instant,
) {
    let labels = RequestLabels {
        webhook: webhook.into(),
        kind: kind.into(),
        operation: op.into(),
        allowed: allowed.to_string(),
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
}

fn parse_review(body: &Bytes) -> Result<(AdmissionReview<DynamicObject>, String, String), String> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let (kind, op) = review
        .request
        .as_ref()
        .map(|r| {
            (
                r.kind.kind.clone(),
                format!("{:?}", r.operation).to_uppercase(),
            )
        })
        .unwrap_or_default();
    Ok((review, kind, op))
}

/// Takes the body's share of the budget (by Content-Length; a body without one is charged the
/// limit), waiting at most the review deadline; Err is the HTTP answer (503 busy, 413 too
/// large). Held until the answer is sent, so decoding counts too.
async fn budget_for<'a, F>(
    state: &'a AppState<F>,
    webhook: &str,
    headers: &HeaderMap,
) -> Result<tokio::sync::SemaphorePermit<'a>, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let refuse = |status: StatusCode, msg: String| refuse_counted(state, webhook, status, msg);
    let bytes = match declared {
        Some(n) if n > BODY_LIMIT => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {BODY_LIMIT} bytes"),
            ));
        }
        Some(n) => n,
        None => BODY_LIMIT,
    };
    let acquire = if bytes <= BUDGET_UNIT {
        state.small_bodies.acquire_many(1)
    } else {
        let units = u32::try_from(bytes.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX);
        state.bodies.acquire_many(units)
    };
    match tokio::time::timeout(state.limits.deadline, acquire).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down")),
        Err(_) => Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many request bodies in flight".into(),
        )),
    }
}

/// Reads the whole body within the body timeout and the size limit; Err is the HTTP answer
/// (408 too slow, 413 too large).
async fn read_body<F>(state: &AppState<F>, webhook: &str, body: Body) -> Result<Bytes, Response> {
    let refuse = |status: StatusCode, msg: String| refuse_counted(state, webhook, status, msg);
    match tokio::time::timeout(
        state.limits.body_timeout,
        axum::body::to_bytes(body, BODY_LIMIT),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                Err(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body larger than {BODY_LIMIT} bytes"),
                ))
            } else {
                Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("reading the body: {e}"),
                ))
            }
        }
        Err(_) => Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "body not received within {}s",
                state.limits.body_timeout.as_secs()
            ),
        )),
    }
}

/// Checks and decodes an AdmissionReview request; Err is the HTTP answer.
#[allow(clippy::result_large_err)] // the Err is the response itself
async fn admission_input<F>(
    state: &AppState<F>,
    webhook: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(AdmissionReview<DynamicObject>, String, String), Response> {
    let body = read_body(state, webhook, body).await?;
    check_request(state, webhook, headers, &body)?;
    parse_review(&body).map_err(|e| {
        json_error(
            StatusCode::BAD_REQUEST,
            format!("not an AdmissionReview: {e}"),
        )
    })
}

async fn validate<F: Facts + 'static>(
    State(state): State<Arc<AppState<F>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let _budget = match budget_for(&state, "validate", &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (review, kind, op) = match admission_input(&state, "validate", &headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let uid = review
        .request
        .as_ref()
        .map(|r| r.uid.clone())
        .unwrap_or_default();
    let Ok(_permit) = state.permits.acquire().await else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let answer = match tokio::time::timeout(
        state.limits.deadline,
        cstor_webhooks::validate::review(review, &state.facts, &state.config),
    )
    .await
    {
        Ok(answer) => answer,
        Err(_) => {
            let mut response = kube::core::admission::AdmissionResponse::invalid(format!(
                "no decision within {}s",
                state.limits.deadline.as_secs()
            ));
            response.uid = uid;
            response.result.code = 504;
            response.into_review()
        }
    };
    record(&state, "validate", &answer, &kind, &op, started);
    json_ok(&answer)
}

async fn mutate<F: Facts + 'static>(
    State(state): State<Arc<AppState<F>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let _budget = match budget_for(&state, "mutate", &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (review, kind, op) = match admission_input(&state, "mutate", &headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let answer = cstor_webhooks::mutate::review(review);
    record(&state, "mutate", &answer, &kind, &op, started);
    json_ok(&answer)
}

async fn convert<F: Facts + 'static>(
    State(state): State<Arc<AppState<F>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _budget = match budget_for(&state, "convert", &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let body = match read_body(&state, "convert", body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = check_request(&state, "convert", &headers, &body) {
        return r;
    }
    let review: ConversionReview = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("not a ConversionReview: {e}"),
            );
        }
    };
    let started = Instant::now();
    let answer = cstor_webhooks::convert::review(review);
    let allowed = answer
        .response
        .as_ref()
        .is_some_and(|r| r.result.status == Some(kube::core::response::StatusSummary::Success));
    count(
        &state,
        "convert",
        "ConversionReview",
        "CONVERT",
        allowed,
        started,
    );
    json_ok(&answer)
}

async fn readyz<F>(State(state): State<Arc<AppState<F>>>) -> Response {
    let cert = state.certs.is_loaded();
    let facts = state.facts_ready.load(Ordering::Relaxed);
    if cert && facts {
        (StatusCode::OK, "ok").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("certificate loaded: {cert}, cluster facts reachable: {facts}"),
        )
            .into_response()
    }
}

async fn metrics_text<F>(State(state): State<Arc<AppState<F>>>) -> Response {
    if let Some(s) = state.certs.seconds_to_expiry(SystemTime::now()) {
        state.metrics.cert_expiry_seconds.set(s);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.encode(),
    )
        .into_response()
}

/// Errors of the server loop.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A bound server, before it runs.
pub struct Bound {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: Limits,
}

impl Bound {
    /// Binds `addr` (port 0 picks a free one) with certificates from `certs`.
    pub async fn bind(addr: SocketAddr, certs: Arc<CertStore>) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(certs)?));
        Ok(Bound {
            listener,
            acceptor,
            limits: Limits::default(),
        })
    }

    /// The connection limits (default [`Limits::default`]'s).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `app` until `shutdown` resolves, then drains open connections for up to `drain`.
    pub async fn serve(
        self,
        app: Router,
        shutdown: impl std::future::Future<Output = ()>,
        drain: Duration,
    ) {
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let connections = Arc::new(Semaphore::new(self.limits.max_connections));
        let handshake = self.limits.header_timeout;
        let mut accept_backoff = Duration::from_millis(5);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => { accept_backoff = Duration::from_millis(5); a }
                        Err(e) => {
                            // Out of file descriptors and the like: back off, never spin.
                            tracing::warn!(error = %e, wait_ms = accept_backoff.as_millis() as u64, "accept failed");
                            tokio::time::sleep(accept_backoff).await;
                            accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                            continue;
                        }
                    };
                    let Ok(slot) = connections.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, "connection limit reached; closing");
                        drop(tcp);
                        continue;
                    };
                    let acceptor = self.acceptor.clone();
                    let service = hyper_util::service::TowerToHyperService::new(app.clone());
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let tls = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => { tracing::debug!(%peer, error = %e, "TLS handshake failed"); return; }
                            Err(_) => { tracing::debug!(%peer, "TLS handshake timed out"); return; }
                        };
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
                _ = &mut shutdown => break,
            }
        }
        drop(self.listener);
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "connections still open after {}s of draining",
                drain.as_secs()
            );
        }
    }
}
