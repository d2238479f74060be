//! The one leader-election runner: a Lease held through kube-lease-manager, used by the
//! cspc-operator and the cvc-operator (controllers run only while leading) and by the webhook
//! server (only the leader writes certificates). Dropping every receiver of the leadership
//! signal gives the Lease up, so another replica takes over at once instead of after the
//! Lease duration. A leader that sees no renewal of its Lease for the renew deadline (two
//! thirds of the Lease) says it no longer leads, before the Lease can expire for the others.

use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which Lease, held by whom, for how long.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's name in the Lease.
    pub identity: String,
    /// Lease duration: renewed halfway, given up by the holder at two thirds (the renew
    /// deadline) when no renewal was seen, so it stops acting before anyone else may start.
    pub seconds: u64,
}

impl LeaseConfig {
    /// How long a leader may go without a renewal it has seen before it steps down: two
    /// thirds of the Lease, as client-go's renew deadline (10 s of 15).
    pub fn renew_deadline(&self) -> Duration {
        Duration::from_millis(self.seconds.max(3) * 2000 / 3)
    }
}

/// Why the Lease could not be taken part in.
#[derive(Debug, thiserror::Error)]
#[error("lease {lease}: {source}")]
pub struct LeaseError {
    pub lease: String,
    #[source]
    pub source: LeaseManagerError,
}

/// A running election; [`Election::release`] gives the Lease up.
#[derive(Debug)]
pub struct Election {
    name: String,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    guard: JoinHandle<()>,
}

/// Whether a leader that last saw its renewal `since_renewal` ago must step down.
pub fn must_step_down(since_renewal: Duration, renew_deadline: Duration) -> bool {
    since_renewal >= renew_deadline
}

/// Joins the election for `config`: the receiver says whether this process leads now. Once
/// it has said `false` after leading (renewals failed for the renew deadline, or the Lease
/// went to another), it stays `false`: the process must start again as a fresh candidate.
pub async fn elect(
    client: kube::Client,
    config: &LeaseConfig,
) -> Result<(watch::Receiver<bool>, Election), LeaseError> {
    let manager = LeaseManagerBuilder::new(client.clone(), &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.seconds)
        .with_grace(config.seconds.div_ceil(2).max(1))
        .build()
        .await
        .map_err(|source| LeaseError {
            lease: config.name.clone(),
            source,
        })?;
    let (inner, task) = manager.watch().await;
    let (tx, rx) = watch::channel(false);
    let guard = tokio::spawn(guard_leadership(client, config.clone(), inner, tx));
    Ok((
        rx,
        Election {
            name: config.name.clone(),
            task,
            guard,
        },
    ))
}

/// Forwards the lease manager's view, but while leading checks twice a second that the Lease
/// still names us and that its `renewTime` (written by us, so by our clock) is recent: the
/// manager keeps saying "leader" while its renewals fail. Dropping the manager's receiver
/// (when ours are all gone) makes it give the Lease up.
async fn guard_leadership(
    client: kube::Client,
    config: LeaseConfig,
    mut inner: watch::Receiver<bool>,
    tx: watch::Sender<bool>,
) {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, &config.namespace);
    let deadline = config.renew_deadline();
    // The last renewal seen, as the time it was written; until one is seen, when we began.
    let mut renewed = std::time::SystemTime::now();
    loop {
        let leading = *inner.borrow_and_update();
        if !leading && *tx.borrow() {
            // The manager itself saw the Lease go.
            let _ = tx.send(false);
            return;
        }
        if leading && !*tx.borrow() {
            renewed = std::time::SystemTime::now();
            let _ = tx.send(true);
        }
        tokio::select! {
            _ = tx.closed() => return,
            changed = inner.changed() => {
                if changed.is_err() {
                    let _ = tx.send(false);
                    return;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(500)), if leading => {
                let seen = tokio::time::timeout(Duration::from_secs(1), leases.get_opt(&config.name)).await;
                if let Ok(Ok(Some(lease))) = seen {
                    let spec = lease.spec.unwrap_or_default();
                    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
                        tracing::error!(lease = %config.name, identity = %config.identity, "the Lease names another holder; stepping down");
                        let _ = tx.send(false);
                        return;
                    }
                    if let Some(t) = spec.renew_time {
                        let at: std::time::SystemTime = t.0.into();
                        renewed = renewed.max(at);
                    }
                }
                let since = std::time::SystemTime::now()
                    .duration_since(renewed)
                    .unwrap_or_default();
                if must_step_down(since, deadline) {
                    tracing::error!(lease = %config.name, identity = %config.identity, seconds = since.as_secs(), "no renewal of the Lease within the renew deadline; stepping down");
                    let _ = tx.send(false);
                    return;
                }
            }
        }
    }
}

impl Election {
    /// Gives up at once, without waiting for the Lease to be released: after losing it, when
    /// a release could not be written anyway and every second counts.
    pub fn abandon(self) {
        self.guard.abort();
        self.task.abort();
    }

    /// Waits (at most 5 s) for the Lease to be given up; call it after dropping every
    /// receiver of the leadership signal.
    pub async fn release(self) {
        self.guard.abort();
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(lease = %self.name, error = %e, "lease not released"),
            Ok(Err(e)) => tracing::warn!(lease = %self.name, error = %e, "lease task failed"),
            Err(_) => tracing::warn!(lease = %self.name, "lease not released within 5s"),
        }
    }
}
