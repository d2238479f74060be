//! A deadline on every API call: a kube client built with [`DeadlineLayer`] gives up on a
//! request that has no answer within the deadline (an API server that hangs, as with SIGSTOP,
//! does not close connections), so no reconcile, status write or shutdown waits on it for
//! long. Watches are long requests by design and are left alone: their answer is a stream, and
//! kube's watcher restarts it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The deadline of one API call of the controllers and agents.
pub const API_DEADLINE: Duration = Duration::from_secs(20);

/// Adds [`Deadline`] to a client's service stack.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer(pub Duration);

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            deadline: self.0,
        }
    }
}

/// See the module doc.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    deadline: Duration,
}

/// Whether a request is a watch (`?watch=true` or `?watch=1`).
pub fn is_watch(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

impl<S, B> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let watch = is_watch(req.uri());
        let what = format!("{} {}", req.method(), req.uri().path());
        let deadline = self.deadline;
        let call = self.inner.call(req);
        Box::pin(async move {
            if watch {
                return call.await.map_err(Into::into);
            }
            match tokio::time::timeout(deadline, call).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(format!(
                    "{what}: no answer from the API server within {} s",
                    deadline.as_secs_f32()
                )
                .into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_told_apart() {
        let u = |s: &str| s.parse::<http::Uri>().expect("uri");
        assert!(is_watch(&u(
            "/api/v1/namespaces/x/pods?watch=true&resourceVersion=1"
        )));
        assert!(is_watch(&u(
            "/apis/cstor.openebs.io/v1/cstorvolumes?fieldSelector=a&watch=1"
        )));
        assert!(!is_watch(&u("/api/v1/namespaces/x/pods?limit=500")));
        assert!(!is_watch(&u("/api/v1/namespaces/x/pods/watch-me")));
        assert!(!is_watch(&u("/api/v1/pods?watchy=true")));
    }

    #[tokio::test]
    async fn a_call_without_an_answer_fails_at_the_deadline_and_a_watch_waits() {
        // A service that never answers.
        let hang = tower::service_fn(|_req: http::Request<()>| {
            std::future::pending::<Result<http::Response<()>, BoxError>>()
        });
        let mut svc = DeadlineLayer(Duration::from_millis(50)).layer(hang);
        let req = http::Request::get("/api/v1/pods").body(()).expect("req");
        let started = std::time::Instant::now();
        let err = svc.call(req).await.expect_err("deadline");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            err.to_string(),
            "GET /api/v1/pods: no answer from the API server within 0.05 s"
        );
        let watch = http::Request::get("/api/v1/pods?watch=true")
            .body(())
            .expect("req");
        let waited = tokio::time::timeout(Duration::from_millis(200), svc.call(watch)).await;
        assert!(waited.is_err(), "a watch is not cut by the deadline");
    }
}
