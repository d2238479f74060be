//! `cstor webhook`: flags and environment of the admission server, then `cstor_server::run`.

use cstor_api::keys::env;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use cstor_certs::inject::Targets;
use cstor_server::Limits;
use cstor_server::run::Options;

/// Names shared with deploy/ (and the Go original, so its objects are recognised).
pub mod names {
    pub const SERVICE: &str = "openebs-cstor-admission-server";
    pub const SECRET: &str = "openebs-cstor-admission-secret";
    pub const LEASE: &str = "cstor-webhook";
    pub const VALIDATING: &str = "openebs-cstor-validation-webhook";
    pub const MUTATING: &str = "openebs-cstor-mutation-webhook";
}

/// Flags of `cstor webhook`.
#[derive(Args, Debug, Clone)]
pub struct WebhookArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// The operator's namespace (Secret, Lease, Events, BlockDevices).
    #[arg(long, env = env::OPENEBS_NAMESPACE)]
    pub namespace: String,
    /// Service whose DNS names the serving certificate carries.
    #[arg(long, default_value = names::SERVICE)]
    pub service: String,
    /// Secret that keeps the CA and serving certificate.
    #[arg(long, default_value = names::SECRET)]
    pub secret: String,
    /// Lease that elects the one writer of the Secret and caBundles.
    #[arg(long, default_value = names::LEASE)]
    pub lease: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = env::POD_NAME)]
    pub identity: Option<String>,
    /// Extra IP SANs (the local mode calls https://127.0.0.1:PORT).
    #[arg(long = "ip")]
    pub ips: Vec<IpAddr>,
    /// Serving certificate lifetime, e.g. 90d, 12h, 2m; renewed with a third left.
    #[arg(long, default_value = "90d", value_parser = crate::common::parse_duration)]
    pub cert_lifetime: Duration,
    /// ValidatingWebhookConfigurations whose caBundle is kept current.
    #[arg(long = "validating-config", default_value = names::VALIDATING)]
    pub validating: Vec<String>,
    /// MutatingWebhookConfigurations whose caBundle is kept current.
    #[arg(long = "mutating-config", default_value = names::MUTATING)]
    pub mutating: Vec<String>,
    /// CRDs whose conversion webhook caBundle is kept current.
    #[arg(
        long = "conversion-crd",
        default_values = ["cstorpoolclusters.cstor.openebs.io", "cstorpoolinstances.cstor.openebs.io"]
    )]
    pub crds: Vec<String>,
    /// Users allowed to edit CSPI/CVR/CStorVolume specs (default: the operators' service
    /// accounts of deploy/ in --namespace).
    #[arg(long = "operator-account")]
    pub operator_accounts: Vec<String>,
    /// Re-check period of certificates, caBundles and facts.
    #[arg(long, default_value = "30s", value_parser = crate::common::parse_duration)]
    pub resync: Duration,
    /// kubeconfig to use instead of the in-cluster service account.
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

/// Runs the webhook server until SIGTERM or Ctrl-C.
pub async fn run(args: WebhookArgs) -> anyhow::Result<()> {
    let client = crate::common::client(args.kubeconfig.as_ref()).await?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "cstor".into());
        format!("{host}-{}", std::process::id())
    });
    let operator_accounts = if args.operator_accounts.is_empty() {
        cstor_server::run::default_operator_accounts(&args.namespace)
    } else {
        args.operator_accounts.clone()
    };
    let opts = Options {
        listen: args.listen,
        namespace: args.namespace.clone(),
        service: args.service.clone(),
        secret: args.secret.clone(),
        lease: args.lease.clone(),
        identity,
        ips: args.ips.clone(),
        cert_lifetime: args.cert_lifetime,
        targets: Targets {
            validating: args.validating.clone(),
            mutating: args.mutating.clone(),
            crds: args.crds.clone(),
        },
        operator_accounts: cstor_policy::owned::OperatorAccounts(operator_accounts),
        limits: Limits::default(),
        drain: Duration::from_secs(10),
        resync: args.resync,
        lease_seconds: 15,
    };
    let shutdown = async {
        crate::common::terminated().await;
        tracing::info!("shutting down: draining connections");
    };
    cstor_server::run::run(client, opts, shutdown).await?;
    Ok(())
}
