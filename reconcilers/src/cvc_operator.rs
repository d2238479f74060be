//! `cstor cvc-operator`: the CVC controller and the UpgradeTask controller of volumes, run
//! only while this process holds its Lease.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::channel::oneshot;
use kube::Client;

use crate::Error;
use crate::cvc::{CvcConfig, reconcile};
use crate::elected::{Controllers, Election, run_elected};

fn start(client: Client, config: &CvcConfig) -> Controllers {
    let recorder = cstor_runtime::events::recorder(
        client.clone(),
        "cstor-cvc-operator",
        Some(config.identity.clone()),
    );
    let (tx, rx) = oneshot::channel::<()>();
    let ctx = Arc::new(reconcile::Context::new(
        client.clone(),
        config.clone(),
        recorder.clone(),
    ));
    let (tx2, rx2) = oneshot::channel::<()>();
    let upgrades = Arc::new(crate::upgrade::Context::new(
        client,
        config.namespace.clone(),
        recorder,
        crate::upgrade::Role::Volumes(config.clone()),
    ));
    let done = futures::future::join(
        reconcile::run(ctx, rx.map(|_| ())),
        crate::upgrade::run(upgrades, rx2.map(|_| ())),
    )
    .map(|_| ());
    Controllers::new(vec![tx, tx2], done.boxed())
}

/// Runs the CVC controller until `shutdown` resolves (Ok) or the Lease is lost (Err); with
/// `leader_election` it runs only while this process holds Lease `lease_name`.
pub async fn run(
    client: Client,
    config: CvcConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let election = Election {
        namespace: config.namespace.clone(),
        identity: config.identity.clone(),
        enabled: config.leader_election,
        lease_name: config.lease_name.clone(),
        lease_seconds: config.lease_seconds,
        what: "cvc",
    };
    run_elected(client, election, move |c| start(c, &config), shutdown).await
}
