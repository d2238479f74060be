//! `cstor operator` (the cspc-operator): the CSPC controller, claim binding, the
//! MigrationTask controller and the UpgradeTask controller of pools, run only while this process holds
//! the Lease, so two replicas never act at once. Losing the Lease ends `run` with an error (the
//! process restarts and competes again); shutdown stops the controllers and releases the Lease.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::channel::oneshot;
use kube::Client;

use crate::Error;
use crate::cspc::CspcConfig;
use crate::elected::{Controllers, Election, run_elected};

/// Everything `cstor operator` is configured with.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// The operator namespace: CSPCs, CSPIs, claims, devices, Deployments, the Lease.
    pub namespace: String,
    /// This replica's name in the Lease and in Events (the pod name in a cluster).
    pub identity: String,
    pub leader_election: bool,
    /// "cspc-controller-leader".
    pub lease_name: String,
    /// Lease duration; a dead leader is replaced after at most this long.
    pub lease_seconds: u64,
    /// Run claim binding (off when a real NDM binds claims).
    pub claim_binding: bool,
    /// Create the UpgradeTasks that bring older CSPCs and volumes to this version
    /// (docs/upgrades.md, "Taking over").
    pub auto_upgrade: bool,
    pub cspc: CspcConfig,
}

fn start(client: Client, config: &OperatorConfig) -> Controllers {
    let recorder = cstor_runtime::events::recorder(
        client.clone(),
        "cstor-cspc-operator",
        Some(config.identity.clone()),
    );
    let mut stop = Vec::new();
    let mut tasks: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
    let (tx, rx) = oneshot::channel::<()>();
    stop.push(tx);
    let ctx = Arc::new(crate::cspc::reconcile::Context::new(
        client.clone(),
        config.namespace.clone(),
        config.cspc.clone(),
        recorder.clone(),
    ));
    tasks.push(crate::cspc::reconcile::run(ctx, rx.map(|_| ())).boxed());
    let (tx, rx) = oneshot::channel::<()>();
    stop.push(tx);
    let ctx = Arc::new(crate::migrate::Context::new(
        client.clone(),
        config.namespace.clone(),
        recorder.clone(),
    ));
    tasks.push(crate::migrate::run(ctx, rx.map(|_| ())).boxed());
    let (tx, rx) = oneshot::channel::<()>();
    stop.push(tx);
    let ctx = Arc::new(crate::upgrade::Context::new(
        client.clone(),
        config.namespace.clone(),
        recorder.clone(),
        crate::upgrade::Role::Pools(config.cspc.clone()),
    ));
    tasks.push(crate::upgrade::run(ctx, rx.map(|_| ())).boxed());
    if config.auto_upgrade {
        let (tx, rx) = oneshot::channel::<()>();
        stop.push(tx);
        tasks.push(
            crate::upgrade::auto::run(
                client.clone(),
                config.namespace.clone(),
                config.cspc.operator_version.clone(),
                rx.map(|_| ()),
            )
            .boxed(),
        );
    }
    if config.claim_binding {
        let (tx, rx) = oneshot::channel::<()>();
        stop.push(tx);
        let ctx = Arc::new(crate::claim_binding::Context::new(
            client,
            config.namespace.clone(),
            recorder,
            config.cspc.resync,
        ));
        tasks.push(crate::claim_binding::run(ctx, rx.map(|_| ())).boxed());
    }
    Controllers {
        stop,
        done: futures::future::join_all(tasks).map(|_| ()).boxed(),
    }
}

/// Runs the operator until `shutdown` resolves (Ok) or the Lease is lost (Err).
pub async fn run(
    client: Client,
    config: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let election = Election {
        namespace: config.namespace.clone(),
        identity: config.identity.clone(),
        enabled: config.leader_election,
        lease_name: config.lease_name.clone(),
        lease_seconds: config.lease_seconds,
        what: "cspc",
    };
    run_elected(client, election, move |c| start(c, &config), shutdown).await
}
