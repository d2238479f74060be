//! Automatic upgrades (docs/upgrades.md, "Taking over"): with `--auto-upgrade` (the default)
//! the cspc-operator itself creates the UpgradeTasks that bring older CSPCs and volumes to its
//! version — pools first, then volumes, one task at a time in the whole namespace — so
//! installing our operators over the Go ones (or over an older release of ours) ends with
//! every object at our version without anyone writing a task. A task that failed is left for
//! the administrator (its status says why); deleting it lets the next pass try again.

use std::time::Duration;

use cstor_api::common::VersionDetails;
use cstor_api::cstor_v1::{CStorPoolCluster, CStorVolume};
use cstor_api::openebs_v1alpha1::{UpgradeTask, task_phase};
use cstor_policy::version::{OLDEST_UPGRADABLE, Version, base};
use cstor_runtime::errors::Step;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::Error;

/// How often the namespace is looked at.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// An object and the version its record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub name: String,
    pub current: String,
}

/// A task to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    pub name: String,
    pub from: String,
    /// `cstorPoolCluster` / `cstorVolume` and its value.
    pub member: (&'static str, serde_json::Value),
}

/// The name of the automatic task of CSPC `cspc` to `version`.
pub fn cspc_task(cspc: &str, version: &str) -> String {
    format!("auto-upgrade-cspc-{cspc}-{version}")
}

/// The name of the automatic task of volume `pv` to `version`.
pub fn volume_task(pv: &str, version: &str) -> String {
    format!("auto-upgrade-volume-{pv}-{version}")
}

/// Older than `ours` and not older than the oldest version anyone upgrades from.
fn upgradable(current: &str, ours: &str) -> bool {
    if current.is_empty() || base(current) == base(ours) {
        return false;
    }
    match (
        Version::parse(current),
        Version::parse(ours),
        Version::parse(OLDEST_UPGRADABLE),
    ) {
        (Some(c), Some(o), Some(oldest)) => c < o && c >= oldest,
        _ => false,
    }
}

/// The next task to create, if any: none while any task runs; then the first CSPC (by name)
/// older than us without a task of its own; then, once no CSPC is waiting, the first such
/// volume. `tasks` are `(name, phase)` of every UpgradeTask.
pub fn next(
    ours: &str,
    cspcs: &[Versioned],
    volumes: &[Versioned],
    tasks: &[(String, String)],
) -> Option<NewTask> {
    let running = tasks
        .iter()
        .any(|(_, p)| !matches!(p.as_str(), task_phase::SUCCESS | task_phase::ERROR));
    if running {
        return None;
    }
    let exists = |name: &str| tasks.iter().any(|(n, _)| n == name);
    let mut cspcs: Vec<&Versioned> = cspcs
        .iter()
        .filter(|c| upgradable(&c.current, ours))
        .collect();
    cspcs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pools_waiting = false;
    for c in cspcs {
        let name = cspc_task(&c.name, ours);
        if exists(&name) {
            // Failed (or done while the record lags): the administrator's, not ours.
            pools_waiting = true;
            continue;
        }
        return Some(NewTask {
            name,
            from: c.current.clone(),
            member: ("cstorPoolCluster", json!({"cspcName": c.name})),
        });
    }
    if pools_waiting {
        return None;
    }
    let mut volumes: Vec<&Versioned> = volumes
        .iter()
        .filter(|v| upgradable(&v.current, ours))
        .collect();
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    volumes.into_iter().find_map(|v| {
        let name = volume_task(&v.name, ours);
        (!exists(&name)).then(|| NewTask {
            name,
            from: v.current.clone(),
            member: ("cstorVolume", json!({"pvName": v.name})),
        })
    })
}

fn current(d: Option<&VersionDetails>) -> String {
    d.and_then(|d| d.status.as_ref())
        .map(|s| s.current.clone())
        .unwrap_or_default()
}

/// One pass: reads the namespace and creates the next task, if any.
pub async fn pass(client: &Client, namespace: &str, ours: &str) -> Result<Option<String>, Error> {
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), namespace);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), namespace);
    let tasks: Api<UpgradeTask> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default();
    let cspcs: Vec<Versioned> = cspcs
        .list(&lp)
        .await
        .step("list CSPCs", namespace)?
        .items
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .map(|c| Versioned {
            name: c.name_any(),
            current: current(c.version_details.as_ref()),
        })
        .collect();
    let volumes: Vec<Versioned> = cvs
        .list(&lp)
        .await
        .step("list CStorVolumes", namespace)?
        .items
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .map(|c| Versioned {
            name: c.name_any(),
            current: current(c.version_details.as_ref()),
        })
        .collect();
    let existing: Vec<(String, String)> = tasks
        .list(&lp)
        .await
        .step("list UpgradeTasks", namespace)?
        .items
        .iter()
        .map(|t| (t.name_any(), t.status.phase.clone()))
        .collect();
    let Some(new) = next(ours, &cspcs, &volumes, &existing) else {
        return Ok(None);
    };
    let mut spec = json!({"fromVersion": new.from, "toVersion": ours});
    spec[new.member.0] = new.member.1.clone();
    let task: UpgradeTask = serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "UpgradeTask",
        "metadata": {"name": new.name, "namespace": namespace,
            "labels": {"openebs.io/upgrade": "auto"}},
        "spec": spec,
    }))?;
    match tasks.create(&PostParams::default(), &task).await {
        Ok(_) => {}
        Err(e) if crate::meta::is_already_exists(&e) => return Ok(None),
        Err(e) => {
            return Err(
                cstor_runtime::errors::ApiError::new("create UpgradeTask", &new.name, e).into(),
            );
        }
    }
    tracing::info!(task = %new.name, from = %new.from, to = %ours, "automatic upgrade started");
    Ok(Some(new.name))
}

/// Runs passes every [`INTERVAL`] until `shutdown`.
pub async fn run(
    client: Client,
    namespace: String,
    ours: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        if let Err(e) = pass(&client, &namespace, &ours).await {
            tracing::warn!(error = %e, "automatic upgrade pass failed");
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
