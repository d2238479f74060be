//! `cstor webhook`: flags and environment of the admission server, then `cstor_server::run`.

use cstor_api::keys::env;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
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
    #[arg(long, default_value = "90d", value_parser = parse_duration)]
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
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub resync: Duration,
    /// kubeconfig to use instead of the in-cluster service account.
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

/// `90d`, `12h`, `2m`, `30s`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90d, 12h, 2m or 30s"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}`: unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("a duration must be more than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

/// A client from `kubeconfig`, else the in-cluster service account.
pub async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::incluster().context(
            "not in a cluster and no --kubeconfig/KUBECONFIG given; cannot reach the apiserver",
        )?,
    };
    kube::Client::try_from(config).context("building the kube client")
}

/// Runs the webhook server until SIGTERM or Ctrl-C.
pub async fn run(args: WebhookArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_ref()).await?;
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
    cstor_server::run::run(client, opts, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM (the kubelet's stop) or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down: draining connections");
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(
            parse_duration("5w"),
            Err("`5w`: unit must be s, m, h or d".to_string())
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("x").is_err());
    }
}
