//! Runs a set of controllers only while this process holds a Lease (or always, with election
//! off): the shape every leader-elected operator (cspc, cvc) starts in.

use std::future::Future;
use std::time::Duration;

use futures::channel::oneshot;
use kube::Client;

use crate::Error;

/// Stops started controllers: dropping the senders resolves their shutdown futures.
pub(crate) struct Controllers {
    pub(crate) stop: Vec<oneshot::Sender<()>>,
    pub(crate) done: futures::future::BoxFuture<'static, ()>,
}

/// The Lease settings [`run_elected`] needs (shared by every leader-elected operator).
#[derive(Clone, Debug)]
pub(crate) struct Election {
    pub(crate) namespace: String,
    pub(crate) identity: String,
    pub(crate) enabled: bool,
    pub(crate) lease_name: String,
    pub(crate) lease_seconds: u64,
    /// Name used in `Error::ControllerStopped`.
    pub(crate) what: &'static str,
}

impl Controllers {
    /// Controllers from their stop senders and their joint completion future.
    pub(crate) fn new(
        stop: Vec<oneshot::Sender<()>>,
        done: futures::future::BoxFuture<'static, ()>,
    ) -> Self {
        Controllers { stop, done }
    }

    /// Asks every controller to finish its running reconciles, waiting at most `grace`.
    async fn stop(self, grace: Duration) {
        for tx in self.stop {
            let _ = tx.send(());
        }
        if tokio::time::timeout(grace, self.done).await.is_err() {
            tracing::warn!("controllers did not stop within {grace:?}");
        }
    }
}

/// Runs the controllers made by `start` while this process holds the Lease (or always, when
/// election is off) until `shutdown` resolves (Ok) or the Lease is lost (Err).
pub(crate) async fn run_elected(
    client: Client,
    config: Election,
    start: impl FnOnce(Client) -> Controllers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mut shutdown = Box::pin(shutdown);
    if !config.enabled {
        let mut controllers = start(client);
        tokio::select! {
            _ = &mut shutdown => {}
            _ = &mut controllers.done => return Err(Error::ControllerStopped(config.what)),
        }
        controllers.stop(Duration::from_secs(10)).await;
        return Ok(());
    }

    let lease = cstor_runtime::leader::LeaseConfig {
        namespace: config.namespace.clone(),
        name: config.lease_name.clone(),
        identity: config.identity.clone(),
        seconds: config.lease_seconds,
    };
    let (mut leader, election) = cstor_runtime::leader::elect(client.clone(), &lease).await?;
    // Dropping the receiver makes the lease task release the Lease and exit.
    let release = |leader: tokio::sync::watch::Receiver<bool>,
                   election: cstor_runtime::leader::Election| async move {
        drop(leader);
        election.release().await;
    };

    // Follower: wait for the Lease (or shutdown).
    tracing::info!(lease = %config.lease_name, identity = %config.identity, "waiting for leadership");
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leader.changed() => {
                if changed.is_err() {
                    return Err(Error::LeaseLost(config.lease_name.clone()));
                }
            }
            _ = &mut shutdown => {
                release(leader, election).await;
                return Ok(());
            }
        }
    }

    tracing::info!(lease = %config.lease_name, identity = %config.identity, "leading; starting controllers");
    let mut controllers = start(client);
    let outcome = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            changed = leader.changed() => {
                if changed.is_err() || !*leader.borrow_and_update() {
                    break Err(Error::LeaseLost(config.lease_name.clone()));
                }
            }
            _ = &mut controllers.done => break Err(Error::ControllerStopped(config.what)),
        }
    };
    match &outcome {
        // Another replica may already act: stop at once, don't wait for reconciles.
        Err(Error::LeaseLost(_)) => {
            tracing::error!(lease = %config.lease_name, "lost leadership; stopping");
            controllers.stop(Duration::from_millis(500)).await;
        }
        // Already finished: its future must not be polled again.
        Err(_) => {}
        Ok(()) => controllers.stop(Duration::from_secs(10)).await,
    }
    if matches!(outcome, Err(Error::LeaseLost(_))) {
        // Renewals failed: a release would fail too; exit now, before the Lease expires.
        drop(leader);
        election.abandon();
    } else {
        release(leader, election).await;
    }
    outcome
}
