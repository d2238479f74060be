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

/// Makes every target carry `bundle`; returns what changed. Only `caBundle` is patched; a
/// concurrent edit fails the patch's test (an error), and the caller's next pass fixes it.
pub async fn reconcile(
    client: &Client,
    targets: &Targets,
    bundle: &[u8],
) -> Result<Vec<Changed>, kube::Error> {
    let mut changed = Vec::new();
    let pp = PatchParams::default();
    let patch_of = |rv: Option<String>, guards: &[(String, String)], paths: &[String]| {
        bundle_patch(&rv.unwrap_or_default(), guards, paths, bundle)
            .map(Patch::Json::<()>)
            .map_err(kube::Error::SerdeError)
    };
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    for name in &targets.validating {
        let Some(obj) = vwcs.get_opt(name).await? else {
            continue;
        };
        let hooks = obj
            .webhooks
            .iter()
            .flatten()
            .map(|w| (w.name.as_str(), &w.client_config));
        let (guards, paths) = webhook_paths(hooks, bundle);
        if !paths.is_empty() {
            vwcs.patch(
                name,
                &pp,
                &patch_of(obj.metadata.resource_version.clone(), &guards, &paths)?,
            )
            .await?;
            changed.push(format!("ValidatingWebhookConfiguration/{name}"));
        }
    }
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    for name in &targets.mutating {
        let Some(obj) = mwcs.get_opt(name).await? else {
            continue;
        };
        let hooks = obj
            .webhooks
            .iter()
            .flatten()
            .map(|w| (w.name.as_str(), &w.client_config));
        let (guards, paths) = webhook_paths(hooks, bundle);
        if !paths.is_empty() {
            mwcs.patch(
                name,
                &pp,
                &patch_of(obj.metadata.resource_version.clone(), &guards, &paths)?,
            )
            .await?;
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
                &patch_of(obj.metadata.resource_version.clone(), &[], &paths)?,
            )
            .await?;
            changed.push(format!("CustomResourceDefinition/{name}"));
        }
    }
    Ok(changed)
}
