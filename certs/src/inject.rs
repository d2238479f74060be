//! Keeps `caBundle` current in the webhook configurations and CRD conversion stanzas we name.
//! Only the caBundle is touched; everything else in those objects is the deployer's. A
//! configuration that does not exist is skipped (it may not be applied yet).

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::{Api, Client};

/// The objects whose caBundle we own.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub validating: Vec<String>,
    pub mutating: Vec<String>,
    /// CRDs with `conversion.strategy: Webhook`.
    pub crds: Vec<String>,
}

/// Sets `bundle` in `config`; true when it changed.
fn set(config: &mut WebhookClientConfig, bundle: &[u8]) -> bool {
    if config.ca_bundle.as_ref().map(|b| b.0.as_slice()) == Some(bundle) {
        return false;
    }
    config.ca_bundle = Some(ByteString(bundle.to_vec()));
    true
}

/// One object we changed, as `kind/name`.
pub type Changed = String;

/// Makes every target carry `bundle`; returns what changed. A conflict (someone edited the
/// object between our read and write) is an error; the caller's next pass fixes it.
pub async fn reconcile(
    client: &Client,
    targets: &Targets,
    bundle: &[u8],
) -> Result<Vec<Changed>, kube::Error> {
    let mut changed = Vec::new();
    let pp = PostParams::default();
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    for name in &targets.validating {
        let Some(mut obj) = vwcs.get_opt(name).await? else {
            continue;
        };
        let mut any = false;
        for w in obj.webhooks.iter_mut().flatten() {
            any |= set(&mut w.client_config, bundle);
        }
        if any {
            vwcs.replace(name, &pp, &obj).await?;
            changed.push(format!("ValidatingWebhookConfiguration/{name}"));
        }
    }
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    for name in &targets.mutating {
        let Some(mut obj) = mwcs.get_opt(name).await? else {
            continue;
        };
        let mut any = false;
        for w in obj.webhooks.iter_mut().flatten() {
            any |= set(&mut w.client_config, bundle);
        }
        if any {
            mwcs.replace(name, &pp, &obj).await?;
            changed.push(format!("MutatingWebhookConfiguration/{name}"));
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in &targets.crds {
        let Some(mut obj) = crds.get_opt(name).await? else {
            continue;
        };
        let config = obj
            .spec
            .conversion
            .as_mut()
            .and_then(|c| c.webhook.as_mut())
            .and_then(|w| w.client_config.as_mut());
        let Some(config) = config else { continue };
        let current = config.ca_bundle.as_ref().map(|b| b.0.as_slice());
        if current != Some(bundle) {
            config.ca_bundle = Some(ByteString(bundle.to_vec()));
            crds.replace(name, &pp, &obj).await?;
            changed.push(format!("CustomResourceDefinition/{name}"));
        }
    }
    Ok(changed)
}
