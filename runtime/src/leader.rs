//! The one leader-election runner: a Lease held through kube-lease-manager, used by the
//! cspc-operator and the cvc-operator (controllers run only while leading) and by the webhook
//! server (only the leader writes certificates). Dropping every receiver of the leadership
//! signal gives the Lease up, so another replica takes over at once instead of after the
//! Lease duration.

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
    /// Lease duration; it is renewed a third of the way before it runs out.
    pub seconds: u64,
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
}

/// Joins the election for `config`: the receiver says whether this process leads now.
pub async fn elect(
    client: kube::Client,
    config: &LeaseConfig,
) -> Result<(watch::Receiver<bool>, Election), LeaseError> {
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.seconds)
        .with_grace(config.seconds.div_ceil(3).max(1))
        .build()
        .await
        .map_err(|source| LeaseError {
            lease: config.name.clone(),
            source,
        })?;
    let (leader, task) = manager.watch().await;
    Ok((
        leader,
        Election {
            name: config.name.clone(),
            task,
        },
    ))
}

impl Election {
    /// Waits (at most 5 s) for the Lease to be given up; call it after dropping every
    /// receiver of the leadership signal.
    pub async fn release(self) {
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(lease = %self.name, error = %e, "lease not released"),
            Ok(Err(e)) => tracing::warn!(lease = %self.name, error = %e, "lease task failed"),
            Err(_) => tracing::warn!(lease = %self.name, "lease not released within 5s"),
        }
    }
}
