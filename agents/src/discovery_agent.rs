//! The disk-discovery agent of one node: scans the node's disks (locally, sparse files in a
//! directory), server-side applies a BlockDevice per disk and marks vanished ones Inactive.
//! What it decides lives in [`crate::discovery`]; this module only reads the node and writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::BlockDevice;
use cstor_api::openebs_v1alpha1::blockdevice::{device_state, device_type};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::discovery::{Disk, block_device, vanished};

/// Why a discovery pass failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("reading disks in {dir}: {source}")]
    Scan {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("BlockDevice {name}: {source}")]
    Apply { name: String, source: kube::Error },
    #[error("listing BlockDevices: {0}")]
    List(kube::Error),
    #[error("encoding BlockDevice: {0}")]
    Encode(serde_json::Error),
}

/// What the agent watches and where it writes.
#[derive(Clone, Debug)]
pub struct DiscoveryConfig {
    pub namespace: String,
    pub node: String,
    /// Regular files here are the node's disks (sparse files locally).
    pub sparse_dir: PathBuf,
    /// How often the node is scanned.
    pub interval: Duration,
}

/// Field manager of a node's discovery agent.
pub fn field_manager(node: &str) -> String {
    format!("cstor-disk-discovery/{node}")
}

/// The disks in `dir`: every regular file, sorted by name, with its apparent size.
pub fn scan(dir: &Path) -> Result<Vec<Disk>, DiscoveryError> {
    let err = |source| DiscoveryError::Scan {
        dir: dir.to_path_buf(),
        source,
    };
    let mut disks = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let meta = entry.metadata().map_err(err)?;
        if !meta.is_file() {
            continue;
        }
        let path = std::path::absolute(entry.path()).map_err(err)?;
        disks.push(Disk {
            path: path.to_string_lossy().into_owned(),
            bytes: meta.len(),
            device_type: device_type::SPARSE.into(),
        });
    }
    disks.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(disks)
}

/// The apply body for `disk`: discovery's own fields only. Claim fields belong to claim
/// binding; `claimState: Unclaimed` is sent only when the BlockDevice is new, so a later
/// release by claim binding is never undone here.
pub fn apply_body(
    node: &str,
    namespace: &str,
    disk: &Disk,
    existing: Option<&BlockDevice>,
) -> Result<serde_json::Value, DiscoveryError> {
    let mut value = serde_json::to_value(block_device(node, namespace, disk, None))
        .map_err(DiscoveryError::Encode)?;
    if let Some(spec) = value.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.remove("claimRef");
    }
    if existing.is_some_and(|b| !b.status.claim_state.is_empty())
        && let Some(status) = value.get_mut("status").and_then(|s| s.as_object_mut())
    {
        status.remove("claimState");
    }
    Ok(value)
}

/// One pass: apply every disk, mark the vanished Inactive. Returns the number of disks.
pub async fn pass(client: &Client, config: &DiscoveryConfig) -> Result<usize, DiscoveryError> {
    let api: Api<BlockDevice> = Api::namespaced(client.clone(), &config.namespace);
    let disks = scan(&config.sparse_dir)?;
    let known = api
        .list(&ListParams::default().labels(&format!("{}={}", labels::HOSTNAME, config.node)))
        .await
        .map_err(DiscoveryError::List)?
        .items;
    let pp = PatchParams::apply(&field_manager(&config.node)).force();
    for disk in &disks {
        let name = crate::discovery::block_device_name(&config.node, &disk.path);
        let existing = known
            .iter()
            .find(|b| b.metadata.name.as_deref() == Some(name.as_str()));
        let body = apply_body(&config.node, &config.namespace, disk, existing)?;
        let changed = existing.is_none_or(|b| {
            b.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::HOSTNAME))
                != Some(&config.node)
                || b.spec.path != disk.path
                || b.spec.capacity.storage != disk.bytes
                || b.status.state != device_state::ACTIVE
        });
        if !changed {
            continue;
        }
        // Never take over another node's BlockDevice (a forced apply would).
        if existing.is_none()
            && let Some(other) = api
                .get_opt(&name)
                .await
                .map_err(DiscoveryError::List)?
                .and_then(|b| {
                    b.metadata
                        .labels
                        .and_then(|l| l.get(labels::HOSTNAME).cloned())
                })
                .filter(|host| host != &config.node)
        {
            tracing::warn!(bd = %name, path = %disk.path, node = %other, "a BlockDevice of another node has this disk's name; not registered");
            continue;
        }
        tracing::info!(bd = %name, path = %disk.path, bytes = disk.bytes, "registering disk");
        api.patch(&name, &pp, &Patch::Apply(&body))
            .await
            .map_err(|source| DiscoveryError::Apply {
                name: name.clone(),
                source,
            })?;
    }
    for gone in vanished(&config.node, &disks, &known) {
        let name = gone.metadata.name.clone().unwrap_or_default();
        tracing::warn!(bd = %name, path = %gone.spec.path, "disk vanished; BlockDevice Inactive");
        // The whole body again: fields this manager stops sending would be removed.
        let disk = Disk {
            path: gone.spec.path.clone(),
            bytes: gone.spec.capacity.storage,
            device_type: gone.spec.details.device_type.clone(),
        };
        let mut body = apply_body(&config.node, &config.namespace, &disk, Some(gone))?;
        if let Some(status) = body.get_mut("status").and_then(|s| s.as_object_mut()) {
            status.insert("state".into(), json!(device_state::INACTIVE));
        }
        api.patch(&name, &pp, &Patch::Apply(&body))
            .await
            .map_err(|source| DiscoveryError::Apply {
                name: name.clone(),
                source,
            })?;
    }
    Ok(disks.len())
}

/// Scans every `interval` until `shutdown`; a failed pass is logged and retried next tick.
pub async fn run(
    client: Client,
    config: DiscoveryConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {
                match pass(&client, &config).await {
                    Ok(n) => tracing::debug!(disks = n, node = %config.node, "discovery pass"),
                    Err(e) => tracing::warn!(error = %e, node = %config.node, "discovery pass failed"),
                }
            }
        }
    }
}
