//! Our components on the local cluster as they run in a real one: deploy/'s manifests applied
//! (the same files, compiled in), each component with a token of its own ServiceAccount, and
//! the webhook configurations pointed at `https://127.0.0.1:PORT` instead of the Service.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};

use crate::Error;
use crate::controlplane::ControlPlane;

/// The namespace our components run in (deploy/ uses it too).
pub const OPERATOR_NAMESPACE: &str = "openebs";
/// The webhook server's ServiceAccount in deploy/webhook/rbac.yaml.
pub const WEBHOOK_ACCOUNT: &str = "cstor-webhook";

/// deploy/webhook/rbac.yaml, as shipped.
pub const WEBHOOK_RBAC: &str = include_str!("../../deploy/webhook/rbac.yaml");
/// deploy/webhook/configurations.yaml, as shipped.
pub const WEBHOOK_CONFIGURATIONS: &str = include_str!("../../deploy/webhook/configurations.yaml");

const FIELD_MANAGER: &str = "cstor-local";

fn kube_err(e: kube::Error) -> Error {
    Error::Kube(e.to_string())
}

/// The YAML documents of `text` as JSON values (empty documents skipped).
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>, Error> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| Error::Kube(format!("manifest: {e}")))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// Server-side applies each document, as `kubectl apply --server-side` would.
pub async fn apply(client: &Client, docs: &[serde_json::Value]) -> Result<(), Error> {
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for doc in docs {
        let obj: DynamicObject = serde_json::from_value(doc.clone())
            .map_err(|e| Error::Kube(format!("manifest object: {e}")))?;
        let types = obj
            .types
            .as_ref()
            .ok_or_else(|| Error::Kube("manifest object without apiVersion/kind".into()))?;
        let gvk = GroupVersionKind::try_from(types).map_err(|e| Error::Kube(e.to_string()))?;
        let (resource, caps) = pinned_kind(client, &gvk).await.map_err(kube_err)?;
        let name = obj.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Cluster => Api::all_with(client.clone(), &resource),
            Scope::Namespaced => {
                let ns = obj.metadata.namespace.as_deref().unwrap_or("default");
                Api::namespaced_with(client.clone(), ns, &resource)
            }
        };
        api.patch(&name, &pp, &Patch::Apply(&obj))
            .await
            .map_err(|e| Error::Kube(format!("{} {name}: {e}", gvk.kind)))?;
    }
    Ok(())
}

/// Creates namespace `name` if it is missing.
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .map_err(|e| Error::Kube(e.to_string()))?;
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&ns),
    )
    .await
    .map_err(kube_err)?;
    Ok(())
}

/// How components reach the apiserver: its URL and the CA that signed its certificate.
#[derive(Clone, Debug)]
pub struct Access {
    pub server: String,
    pub ca: PathBuf,
}

impl Access {
    pub fn of(cp: &ControlPlane) -> Self {
        Access {
            server: cp.server().to_string(),
            ca: cp.ca_cert_path().to_path_buf(),
        }
    }
}

/// A kubeconfig for ServiceAccount `namespace/account`, backed by a token file that
/// [`refresh_token`] rewrites (kube clients re-read it), written under `dir`.
pub async fn service_account_kubeconfig(
    cp: &ControlPlane,
    client: &Client,
    namespace: &str,
    account: &str,
    dir: &Path,
) -> Result<PathBuf, Error> {
    account_kubeconfig(&Access::of(cp), client, namespace, account, dir).await
}

/// [`service_account_kubeconfig`] for an apiserver known by its [`Access`].
pub async fn account_kubeconfig(
    access: &Access,
    client: &Client,
    namespace: &str,
    account: &str,
    dir: &Path,
) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let token_path = token_path(dir, account);
    refresh_token(client, namespace, account, &token_path).await?;
    let path = dir.join(format!("{account}.kubeconfig"));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: cstor-local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {account}\n  user:\n    tokenFile: {token}\ncontexts:\n- name: cstor-local\n  context:\n    cluster: cstor-local\n    user: {account}\n    namespace: {namespace}\ncurrent-context: cstor-local\n",
        server = access.server,
        ca = access.ca.display(),
        token = token_path.display(),
    );
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Where the token of `account` is kept under `dir`.
pub fn token_path(dir: &Path, account: &str) -> PathBuf {
    dir.join(format!("{account}.token"))
}

/// Lifetime of the tokens we request; [`refresh_token`] is called well before it ends.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Requests a fresh token for `namespace/account` (TokenRequest) into `path`.
pub async fn refresh_token(
    client: &Client,
    namespace: &str,
    account: &str,
    path: &Path,
) -> Result<(), Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: i64::try_from(TOKEN_LIFETIME.as_secs()).ok(),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let answer = api
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .map_err(|e| Error::Kube(format!("token for {namespace}/{account}: {e}")))?;
    let token = answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Kube(format!("token for {namespace}/{account}: empty answer")))?;
    // Owner-only, written then renamed, so a reader never sees half a token.
    crate::write_private(path, token.as_bytes())
}

/// deploy/webhook/configurations.yaml with every `clientConfig.service` replaced by
/// `url: <base><path>`: the local apiserver calls us on loopback.
pub fn local_webhook_configurations(base: &str) -> Result<Vec<serde_json::Value>, Error> {
    let mut docs = documents(WEBHOOK_CONFIGURATIONS)?;
    for doc in &mut docs {
        let Some(hooks) = doc.get_mut("webhooks").and_then(|w| w.as_array_mut()) else {
            continue;
        };
        for hook in hooks {
            let Some(config) = hook.get_mut("clientConfig").and_then(|c| c.as_object_mut()) else {
                continue;
            };
            let path = config
                .get("service")
                .and_then(|s| s.get("path"))
                .and_then(|p| p.as_str())
                .unwrap_or("/")
                .to_string();
            config.remove("service");
            config.insert("url".into(), serde_json::json!(format!("{base}{path}")));
        }
    }
    Ok(docs)
}

/// CRDs converted by our `/convert` (their `conversion` stanza is generated in api/).
pub const CONVERSION_CRDS: [&str; 2] = [
    "cstorpoolclusters.cstor.openebs.io",
    "cstorpoolinstances.cstor.openebs.io",
];

/// Points the CRDs' conversion webhook at `<base>/convert` (the local apiserver has no Service
/// routing); the server fills in the caBundle.
pub async fn local_conversion(client: &Client, base: &str) -> Result<(), Error> {
    let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let patch = serde_json::json!({"spec": {"conversion": {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"],
        "clientConfig": {"service": null, "url": format!("{base}/convert")},
    }}}});
    for name in CONVERSION_CRDS {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::Kube(format!("CRD {name}: {e}")))?;
    }
    Ok(())
}

/// The names of the webhook configurations in deploy/ (validating, mutating).
pub fn webhook_configuration_names() -> Result<(Vec<String>, Vec<String>), Error> {
    let mut validating = Vec::new();
    let mut mutating = Vec::new();
    for doc in documents(WEBHOOK_CONFIGURATIONS)? {
        let name = doc
            .pointer("/metadata/name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        match doc.get("kind").and_then(|k| k.as_str()) {
            Some("ValidatingWebhookConfiguration") => validating.push(name),
            Some("MutatingWebhookConfiguration") => mutating.push(name),
            _ => {}
        }
    }
    Ok((validating, mutating))
}

/// A free loopback port for a process we are about to start.
///
/// Not `bind(:0)`: the kernel hands those out from the ephemeral range, where any outgoing
/// connection on the machine (tests run side by side, each with its own stack) may take the
/// port between our check and the child's bind. So: a random port below the ephemeral range
/// (which the kernel never hands out by itself), never the same twice in this process, and
/// checked free on loopback and on all addresses.
pub fn free_port() -> Result<u16, Error> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    const LOW: u16 = 10_000;
    let high = ephemeral_low().max(LOW + 1_000);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = None;
    for _ in 0..200 {
        let port = fastrand::u16(LOW..high);
        if given.contains(&port) {
            continue;
        }
        let free = ["127.0.0.1", "0.0.0.0"]
            .iter()
            .all(|a| std::net::TcpListener::bind((*a, port)).is_ok());
        if free {
            given.push(port);
            return Ok(port);
        }
        last = Some(port);
    }
    Err(Error::io(
        Path::new("127.0.0.1"),
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free port in {LOW}..{high} after 200 tries (last {last:?})"),
        ),
    ))
}

/// The first port of the kernel's ephemeral range (`ip_local_port_range`), 32768 if unknown.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Whether every client config carries a non-empty caBundle.
fn has_bundles<'a>(
    mut configs: impl Iterator<
        Item = &'a k8s_openapi::api::admissionregistration::v1::WebhookClientConfig,
    >,
) -> bool {
    configs.all(|c| c.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty()))
}

/// Waits until every webhook of our configurations carries a caBundle (the server's leader
/// wrote it), so admission works from here on.
pub async fn wait_for_ca_bundles(client: &Client, within: Duration) -> Result<(), Error> {
    let (validating, mutating) = webhook_configuration_names()?;
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let deadline = Instant::now() + within;
    loop {
        let mut missing = Vec::new();
        for name in &validating {
            let ok = vwcs
                .get_opt(name)
                .await
                .map_err(kube_err)?
                .is_some_and(|c| {
                    has_bundles(c.webhooks.iter().flatten().map(|w| &w.client_config))
                });
            if !ok {
                missing.push(name.clone());
            }
        }
        for name in &mutating {
            let ok = mwcs
                .get_opt(name)
                .await
                .map_err(kube_err)?
                .is_some_and(|c| {
                    has_bundles(c.webhooks.iter().flatten().map(|w| &w.client_config))
                });
            if !ok {
                missing.push(name.clone());
            }
        }
        let crds: Api<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        > = Api::all(client.clone());
        for name in CONVERSION_CRDS {
            let ok = crds
                .get_opt(name)
                .await
                .map_err(kube_err)?
                .is_some_and(|c| {
                    c.spec
                        .conversion
                        .and_then(|c| c.webhook)
                        .and_then(|w| w.client_config)
                        .and_then(|c| c.ca_bundle)
                        .is_some_and(|b| !b.0.is_empty())
                });
            if !ok {
                missing.push(name.to_string());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "the webhook server did not publish its CA into {} within {}s",
                missing.join(", "),
                within.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the webhook server on `127.0.0.1:port` answers `/readyz` with 200: its
/// certificate is loaded, its watch caches have listed and the apiserver answers. `cstor up` and
/// the tests report ready only after this, so nothing is applied against a half-started server.
pub async fn wait_for_webhook_ready(port: u16, within: Duration) -> Result<(), Error> {
    let url: http::Uri = format!("https://127.0.0.1:{port}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| Error::Kube(e.to_string()))?;
    let mut config = kube::Config::new(url);
    // A readiness probe on loopback: the certificate is checked by the apiserver's calls.
    config.accept_invalid_certs = true;
    config.read_timeout = Some(Duration::from_secs(3));
    let client = Client::try_from(config).map_err(kube_err)?;
    let deadline = Instant::now() + within;
    loop {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| Error::Kube(e.to_string()))?;
        let last =
            match tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer within 5s".to_string(),
            };
        if Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "the webhook server on port {port} was not ready within {}s: {last}",
                within.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
