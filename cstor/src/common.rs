//! What every `cstor` subcommand shares: API clients, the stop signal, flag parsers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

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
    // Every API call gets a deadline (watches excepted): an API server that hangs must not
    // hang a reconcile, a status write or a shutdown with it.
    let builder =
        kube::client::ClientBuilder::try_from(config).context("building the kube client")?;
    Ok(builder
        .with_layer(&cstor_runtime::deadline::DeadlineLayer(
            cstor_runtime::deadline::API_DEADLINE,
        ))
        .build())
}

/// A client for the user's commands: `--kubeconfig`/`$KUBECONFIG`, else the kubeconfig a
/// running `cstor up` wrote.
pub async fn user_client(kubeconfig: Option<PathBuf>) -> anyhow::Result<kube::Client> {
    let kubeconfig = kubeconfig.or_else(|| {
        let p = cstor_local::up::default_state_dir().join("kubeconfig");
        p.exists().then_some(p)
    });
    client(kubeconfig.as_ref()).await
}

/// How long a component may take to finish after SIGTERM before it exits anyway: within the
/// kubelet's default 30 s grace, so a stop is honoured even while the API server hangs (a
/// graceful shutdown waits for reconciles in flight, each API call of which may take its
/// full deadline).
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// Resolves when SIGTERM or Ctrl-C arrives (how a kubelet stops a container), and from then
/// gives the process [`STOP_GRACE`] to finish on its own.
pub async fn terminated() {
    wait_for_signal().await;
    tracing::info!(grace_s = STOP_GRACE.as_secs(), "stop requested");
    // A plain thread, not a task: it must fire even if the runtime is wedged.
    std::thread::spawn(|| {
        std::thread::sleep(STOP_GRACE);
        tracing::warn!(
            grace_s = STOP_GRACE.as_secs(),
            "not stopped within the grace after the stop signal: exiting now"
        );
        std::process::exit(143);
    });
}

async fn wait_for_signal() {
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

/// A disk size as a Kubernetes quantity (`1Gi`, `512Mi`; `1G` is 10^9 bytes, as in Kubernetes).
pub fn disk_size_bytes(s: &str) -> Result<u64, String> {
    cstor_api::quantity::bytes(s).map_err(|e| e.to_string())
}

/// Creates the task `fresh` of `kind` (MigrationTask, UpgradeTask) in `api`, or follows the
/// one of its name that runs. One that ended (`ended` says how, e.g. "in Error") is deleted
/// first: its successor resumes from what it finds. Prints what it did, `created` after a
/// creation.
pub async fn start_task<K>(
    api: &kube::Api<K>,
    fresh: &K,
    kind: &str,
    ended: impl Fn(&K) -> Option<String>,
    created: &str,
) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    use kube::ResourceExt;
    use kube::api::{DeleteParams, PostParams};
    let name = fresh.name_any();
    let create = || async {
        api.create(&PostParams::default(), fresh)
            .await
            .with_context(|| format!("creating the {kind}"))
    };
    match api
        .get_opt(&name)
        .await
        .with_context(|| format!("reading the {kind}"))?
    {
        Some(old) => match ended(&old) {
            Some(how) => {
                println!("{kind} {name} ended {how} before; deleting it and starting again");
                api.delete(&name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("deleting the ended {kind}"))?;
                // Deletion is immediate for these (no finalizers); the bound covers a slow API.
                for _ in 0..50 {
                    if api.get_opt(&name).await?.is_none() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                create().await?;
            }
            None => println!("{kind} {name} exists; following it"),
        },
        None => {
            create().await?;
            println!("{created}");
        }
    }
    Ok(())
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
