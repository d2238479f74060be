//! Keeps `caBundle` current in the webhook configurations and CRD conversion stanzas we name.
//! Only the caBundle is touched; everything else in those objects is the deployer's. A
//! configuration that does not exist is skipped (it may not be applied yet).

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// The objects whose caBundle we own.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub validating: Vec<String>,
    pub mutating: Vec<String>,
    /// CRDs with `conversion.strategy: Webhook`.
    pub crds: Vec<String>,
}

/// One object we changed, as `kind/name`.
pub type Changed = String;

/// The JSON patch that sets `bundle` at each of `paths`, guarded by the resourceVersion as
/// read and, for webhooks, by each webhook's name at its index: only `caBundle` is written,
/// so fields our compiled types do not know are never dropped by a full replace.
pub fn bundle_patch(
    resource_version: &str,
    guards: &[(String, String)],
    paths: &[String],
    bundle: &[u8],
) -> Result<json_patch::Patch, serde_json::Error> {
    // ByteString serializes as the API's base64.
    let encoded = serde_json::to_value(k8s_openapi::ByteString(bundle.to_vec()))?;
    let mut ops = vec![
        serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}),
    ];
    for (path, value) in guards {
        ops.push(serde_json::json!({"op": "test", "path": path, "value": value}));
    }
    for path in paths {
        ops.push(serde_json::json!({"op": "add", "path": path, "value": encoded}));
    }
    serde_json::from_value(serde_json::Value::Array(ops))
}

fn differs(config: &WebhookClientConfig, bundle: &[u8]) -> bool {
    config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(bundle)
}

/// The caBundle paths of the webhooks that need `bundle`, with each webhook's name as a guard.
fn webhook_paths<'a>(
    webhooks: impl Iterator<Item = (&'a str, &'a WebhookClientConfig)>,
    bundle: &[u8],
) -> (Vec<(String, String)>, Vec<String>) {
    let mut guards = Vec::new();
    let mut paths = Vec::new();
    for (i, (name, config)) in webhooks.enumerate() {
        if differs(config, bundle) {
            guards.push((format!("/webhooks/{i}/name"), name.to_string()));
            paths.push(format!("/webhooks/{i}/clientConfig/caBundle"));
        }
    }
    (guards, paths)
}

/// The guarded caBundle patch as kube sends it.
fn patch_of(
    resource_version: Option<&str>,
    guards: &[(String, String)],
    paths: &[String],
    bundle: &[u8],
) -> Result<Patch<()>, kube::Error> {
    bundle_patch(resource_version.unwrap_or_default(), guards, paths, bundle)
        .map(Patch::Json::<()>)
        .map_err(kube::Error::SerdeError)
}

/// Patches the caBundle of every webhook of configuration `name` (read with `hooks`) that
/// lacks `bundle`; true when it changed. A configuration that does not exist is skipped.
async fn patch_webhooks<K>(
    api: &Api<K>,
    name: &str,
    bundle: &[u8],
    hooks: impl Fn(&K) -> Vec<(String, WebhookClientConfig)>,
) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let hooks = hooks(&obj);
    let (guards, paths) = webhook_paths(hooks.iter().map(|(n, c)| (n.as_str(), c)), bundle);
    if paths.is_empty() {
        return Ok(false);
    }
    let rv = obj.meta().resource_version.as_deref();
    api.patch(
        name,
        &PatchParams::default(),
        &patch_of(rv, &guards, &paths, bundle)?,
    )
    .await?;
    Ok(true)
}

/// Makes every target carry `bundle`; returns what changed. Only `caBundle` is patched; a
/// concurrent edit fails the patch's test (an error), and the caller's next pass fixes it.
pub async fn reconcile(
    client: &Client,
    targets: &Targets,
    bundle: &[u8],
) -> Result<Vec<Changed>, kube::Error> {
    let mut changed = Vec::new();
    let pp = PatchParams::default();
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    for name in &targets.validating {
        if patch_webhooks(&vwcs, name, bundle, |o| {
            o.webhooks
                .iter()
                .flatten()
                .map(|w| (w.name.clone(), w.client_config.clone()))
                .collect()
        })
        .await?
        {
            changed.push(format!("ValidatingWebhookConfiguration/{name}"));
        }
    }
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    for name in &targets.mutating {
        if patch_webhooks(&mwcs, name, bundle, |o| {
            o.webhooks
                .iter()
                .flatten()
                .map(|w| (w.name.clone(), w.client_config.clone()))
                .collect()
        })
        .await?
        {
            changed.push(format!("MutatingWebhookConfiguration/{name}"));
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in &targets.crds {
        let Some(obj) = crds.get_opt(name).await? else {
            continue;
        };
        let config = obj
            .spec
            .conversion
            .as_ref()
            .and_then(|c| c.webhook.as_ref())
            .and_then(|w| w.client_config.as_ref());
        let Some(config) = config else { continue };
        let current = config.ca_bundle.as_ref().map(|b| b.0.as_slice());
        if current != Some(bundle) {
            let paths = vec!["/spec/conversion/webhook/clientConfig/caBundle".to_string()];
            crds.patch(
                name,
                &pp,
                &patch_of(
                    obj.metadata.resource_version.as_deref(),
                    &[],
                    &paths,
                    bundle,
                )?,
            )
            .await?;
            changed.push(format!("CustomResourceDefinition/{name}"));
        }
    }
    Ok(changed)
}
