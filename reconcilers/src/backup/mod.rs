//! The velero-plugin's REST API in the cvc-operator (docs/backup-restore.md): plain HTTP on
//! port 5757, the Go server's paths, bodies, codes and messages, with every check made before
//! a snapshot is taken. Validation and status rules are pure (`cstor_policy::backup`); this
//! module reads and writes the cluster for them.

pub mod rest;

use std::time::Duration;

use cstor_api::cstor_v1::backup::{CStorBackup, CStorCompletedBackup, CStorRestore};
use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::cstor_v1::cvc::CStorVolumeConfig;
use cstor_api::cstor_v1::cvr::CStorVolumeReplica;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};

/// The port the plugin expects (`spec.ports[0]` of the Service it discovers).
pub const PORT: u16 = 5757;

/// What the REST server needs.
#[derive(Clone, Debug)]
pub struct RestConfig {
    /// The operator namespace: CStorVolumes, CVRs, CVCs, CSPIs and pool-manager Deployments.
    pub namespace: String,
    /// How long a POST waits for its snapshot (the plugin gives a request 60 s).
    pub snapshot_wait: Duration,
    /// A restore's CVC must be Bound: tries and the pause between them (Go: 5 × 2 s).
    pub bound_tries: u32,
    pub bound_pause: Duration,
}

impl RestConfig {
    pub fn new(namespace: &str) -> RestConfig {
        RestConfig {
            namespace: namespace.to_string(),
            snapshot_wait: Duration::from_secs(40),
            bound_tries: 5,
            bound_pause: Duration::from_secs(2),
        }
    }
}

/// The server's handles on the cluster.
#[derive(Clone)]
pub struct Apis {
    pub client: Client,
    pub config: RestConfig,
}

impl Apis {
    fn ops<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    fn cvs(&self) -> Api<CStorVolume> {
        self.ops()
    }

    fn cvrs(&self) -> Api<CStorVolumeReplica> {
        self.ops()
    }

    fn cvcs(&self) -> Api<CStorVolumeConfig> {
        self.ops()
    }

    fn deployments(&self) -> Api<Deployment> {
        self.ops()
    }

    fn backups(&self, ns: &str) -> Api<CStorBackup> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn records(&self, ns: &str) -> Api<CStorCompletedBackup> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn restores(&self, ns: &str) -> Api<CStorRestore> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Whether the pool-manager of CSPI `cspi` runs: its Deployment (named after the CSPI)
    /// has a ready replica. True in a cluster and in the local stack alike, where the runner
    /// that plays kubelet keeps Deployment status.
    async fn pool_manager_up(&self, cspi: &str) -> bool {
        if cspi.is_empty() {
            return false;
        }
        match self.deployments().get_opt(cspi).await {
            Ok(Some(d)) => {
                d.status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0)
                    >= 1
            }
            Ok(None) => false,
            // Unknown is not down: a status is only rewritten on evidence.
            Err(e) => {
                tracing::warn!(%cspi, error = %e, "pool-manager Deployment not read");
                true
            }
        }
    }
}
