//! `cstor webhook`: the server plus what keeps it serving. Every replica loads the serving
//! certificate from the Secret and probes cluster facts for readiness; the one holding the
//! Lease renews the Secret and keeps every caBundle current, both watch-driven with a resync.

use cstor_runtime::reasons;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use cstor_api::openebs_v1alpha1::BlockDevice;
use cstor_certs::inject::{self, Targets};
use cstor_certs::secret::{self, Material, Want};
use cstor_webhooks::facts::CachedFacts;
use futures::{StreamExt, stream};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Secret};
use kube::api::ListParams;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::tls::CertStore;
use crate::{AppState, Bound, Limits, ServeError, router};

/// Everything `cstor webhook` is configured with.
#[derive(Clone, Debug)]
pub struct Options {
    pub listen: SocketAddr,
    /// The operator's namespace: Secret, Lease, Events, BlockDevices.
    pub namespace: String,
    /// The Service in front of the replicas (its DNS names go into the certificate).
    pub service: String,
    pub secret: String,
    pub lease: String,
    /// This replica's name in the Lease (the pod name in a cluster).
    pub identity: String,
    /// Extra IP SANs: 127.0.0.1 when the apiserver calls us through `clientConfig.url`.
    pub ips: Vec<IpAddr>,
    pub cert_lifetime: Duration,
    pub targets: Targets,
    pub operator_accounts: cstor_policy::owned::OperatorAccounts,
    pub limits: Limits,
    /// How long open connections may finish after shutdown starts.
    pub drain: Duration,
    /// Passes happen on every watch event and at least this often.
    pub resync: Duration,
    /// Lease duration; a dead leader is replaced after at most this long.
    pub lease_seconds: u64,
}

/// The service accounts of deploy/ that edit operator-owned objects (docs/admission.md A.4).
pub fn default_operator_accounts(namespace: &str) -> Vec<String> {
    // The agents run as one account per object (`cstor-pool-manager-<cspi>`): a prefix.
    [
        "cstor-cspc-operator",
        "cstor-cvc-operator",
        "cstor-pool-manager-*",
        "cstor-volume-manager-*",
    ]
    .iter()
    .map(|sa| format!("system:serviceaccount:{namespace}:{sa}"))
    .collect()
}

/// Errors that stop `cstor webhook`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Lease(#[from] cstor_runtime::leader::LeaseError),
}

/// Runs until `shutdown` resolves, then drains connections and gives up the Lease.
pub async fn run(
    client: Client,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let certs = Arc::new(CertStore::default());
    let config = cstor_webhooks::Config {
        openebs_namespace: opts.namespace.clone(),
        operator_accounts: opts.operator_accounts.clone(),
    };
    let (facts, fill_caches) =
        CachedFacts::new(client.clone(), &opts.namespace, Duration::from_secs(3));
    let caches = tokio::spawn(fill_caches);
    let state = Arc::new(AppState::new(
        facts,
        config,
        certs.clone(),
        opts.limits.clone(),
    ));
    let bound = Bound::bind(opts.listen, certs.clone())
        .await?
        .with_limits(opts.limits.clone());
    if let Some(addr) = bound.local_addr() {
        tracing::info!(%addr, identity = %opts.identity, "webhook server listening");
    }

    let lease = cstor_runtime::leader::LeaseConfig {
        namespace: opts.namespace.clone(),
        name: opts.lease.clone(),
        identity: opts.identity.clone(),
        seconds: opts.lease_seconds,
    };
    let (leader, election) = cstor_runtime::leader::elect(client.clone(), &lease).await?;

    let keeper = tokio::spawn(keep_certificates(
        client.clone(),
        opts.clone(),
        certs.clone(),
        leader,
    ));
    let probe_state = state.clone();
    let probe = tokio::spawn(probe_facts(client, opts.namespace.clone(), opts.resync, {
        // Ready when the caches have listed everything and the apiserver answers now.
        move |ok| {
            let ready = ok && probe_state.facts.is_ready();
            probe_state.facts_ready.store(ready, Ordering::Relaxed)
        }
    }));

    bound.serve(router(state), shutdown, opts.drain).await;
    probe.abort();
    caches.abort();
    // Dropping the keeper drops the Lease receiver; the lease task then releases the Lease so
    // another replica takes over at once instead of after the lease duration.
    keeper.abort();
    let _ = keeper.await;
    election.release().await;
    Ok(())
}

/// Marks facts ready when Nodes and BlockDevices can be listed, re-checked every `every`.
async fn probe_facts(client: Client, namespace: String, every: Duration, set: impl Fn(bool)) {
    let nodes: Api<Node> = Api::all(client.clone());
    let bds: Api<BlockDevice> = Api::namespaced(client, &namespace);
    let one = ListParams::default().limit(1);
    loop {
        let read = async { tokio::try_join!(nodes.list_metadata(&one), bds.list_metadata(&one)) };
        let ok = match tokio::time::timeout(Duration::from_secs(3), read).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster facts not readable; not ready");
                false
            }
            Err(_) => {
                tracing::warn!("cluster facts read timed out; not ready");
                false
            }
        };
        set(ok);
        // Until the first success, retry quickly so readiness follows the apiserver closely.
        let wait = if ok {
            every
        } else {
            Duration::from_secs(1).min(every)
        };
        tokio::time::sleep(wait).await;
    }
}

fn secret_ref(opts: &Options) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Secret".into()),
        name: Some(opts.secret.clone()),
        namespace: Some(opts.namespace.clone()),
        ..ObjectReference::default()
    }
}

/// Publishes an Event on the certificate Secret (the shared kit's publisher).
async fn event(recorder: &Recorder, opts: &Options, type_: EventType, reason: &str, note: String) {
    let reference = secret_ref(opts);
    cstor_runtime::events::publish(recorder, &reference, type_, reason, note, "Certificate").await;
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// The certificate loop: load what the Secret holds; as leader also renew it and publish the
/// CA into every target. Runs a pass on every relevant watch event, at the renewal time, and
/// at least every `resync`.
async fn keep_certificates(
    client: Client,
    opts: Options,
    certs: Arc<CertStore>,
    mut leader: watch::Receiver<bool>,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &opts.namespace);
    let recorder = cstor_runtime::events::recorder(
        client.clone(),
        "cstor-webhook",
        Some(opts.identity.clone()),
    );
    let want = Want {
        namespace: opts.namespace.clone(),
        name: opts.secret.clone(),
        dns_names: cstor_certs::service_dns_names(&opts.service, &opts.namespace),
        ips: opts.ips.clone(),
        lifetime: opts.cert_lifetime,
    };
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", opts.secret));
    let secret_events = watcher(secrets.clone(), by_name)
        .default_backoff()
        .map(|_| ())
        .boxed();
    let vwc_events = watcher(
        Api::<ValidatingWebhookConfiguration>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|_| ())
    .boxed();
    let mwc_events = watcher(
        Api::<MutatingWebhookConfiguration>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|_| ())
    .boxed();
    let mut kicks = stream::select_all([secret_events, vwc_events, mwc_events]);
    let mut loaded: Option<Material> = None;
    let mut published_ca: Option<String> = None;

    loop {
        let is_leader = *leader.borrow_and_update();
        let now = SystemTime::now();
        let material = if is_leader {
            match secret::ensure(&secrets, &want, now).await {
                Ok((m, reason)) => {
                    if let Some(reason) = reason {
                        let note = format!(
                            "serving certificate issued ({}), valid until {}",
                            reason.as_str(),
                            rfc3339(m.not_after)
                        );
                        tracing::info!(%note);
                        event(
                            &recorder,
                            &opts,
                            EventType::Normal,
                            reasons::CERTIFICATE_ISSUED,
                            note,
                        )
                        .await;
                    }
                    Some(m)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "certificate Secret not kept");
                    if let Some(m) = &loaded
                        && cstor_certs::needs_renewal(m.not_before, m.not_after, now)
                    {
                        let note = format!(
                            "serving certificate expires at {} and renewal failed: {e}",
                            rfc3339(m.not_after)
                        );
                        event(
                            &recorder,
                            &opts,
                            EventType::Warning,
                            reasons::CERTIFICATE_EXPIRING,
                            note,
                        )
                        .await;
                    }
                    None
                }
            }
        } else {
            match secrets.get_opt(&opts.secret).await {
                Ok(s) => s
                    .as_ref()
                    .and_then(secret::material_of)
                    .filter(|m| m.not_after > now),
                Err(e) => {
                    tracing::warn!(error = %e, "certificate Secret not readable");
                    None
                }
            }
        };
        if let Some(m) = material
            && loaded.as_ref() != Some(&m)
        {
            match certs.load(&m.cert_pem, &m.key_pem, m.not_after) {
                Ok(()) => {
                    tracing::info!(not_after = %rfc3339(m.not_after), "serving certificate loaded");
                    loaded = Some(m);
                }
                Err(e) => tracing::warn!(error = %e, "serving certificate not loadable"),
            }
        }
        if is_leader && let Some(m) = &loaded {
            match inject::reconcile(&client, &opts.targets, m.ca_pem.as_bytes()).await {
                Ok(changed) => {
                    for what in &changed {
                        tracing::info!(%what, "caBundle updated");
                    }
                    if !changed.is_empty() || published_ca.as_deref() != Some(&m.ca_pem) {
                        if !changed.is_empty() {
                            event(
                                &recorder,
                                &opts,
                                EventType::Normal,
                                reasons::CA_BUNDLE_UPDATED,
                                format!("caBundle updated in {}", changed.join(", ")),
                            )
                            .await;
                        }
                        published_ca = Some(m.ca_pem.clone());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "caBundle not reconciled; retrying"),
            }
        }

        let mut wait = opts.resync;
        if let Some(m) = &loaded {
            let due = cstor_certs::renew_at(m.not_before, m.not_after);
            if let Ok(until) = due.duration_since(SystemTime::now()) {
                wait = wait.min(until + Duration::from_millis(200));
            }
        }
        tokio::select! {
            changed = leader.changed() => {
                if changed.is_err() { return; }
            }
            kick = kicks.next() => {
                if kick.is_none() { return; }
                // Coalesce a burst of events (our own writes echo back) into one pass.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
