//! Facts read from the cluster: [`KubeFacts`] reads live with a short timeout; [`CachedFacts`]
//! serves CSPC rules from watch caches and reads live until they have listed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cstor_api::cstor_v1::{
    CStorPoolCluster, CStorPoolInstance, CStorVolume, CStorVolumeConfig, CStorVolumeReplica,
};
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim, MigrationTask};
use cstor_policy::{CspcFacts, NodeFact};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::{Facts, FactsError, OwnerKind};

/// Live reads through a kube client.
#[derive(Clone)]
pub struct KubeFacts {
    client: Client,
    timeout: Duration,
}

impl KubeFacts {
    /// `timeout` bounds each read; keep it well under the webhook timeout (10 s).
    pub fn new(client: Client, timeout: Duration) -> Self {
        KubeFacts { client, timeout }
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, FactsError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(FactsError::Api {
                what: what.into(),
                source,
            }),
            Err(_) => Err(FactsError::Timeout {
                what: what.into(),
                seconds: self.timeout.as_secs(),
            }),
        }
    }
}

impl Facts for KubeFacts {
    async fn cspc_facts(
        &self,
        cspc_namespace: &str,
        bd_namespace: &str,
        _named_bds: &[&str],
    ) -> Result<Arc<CspcFacts>, FactsError> {
        let lp = ListParams::default();
        let nodes: Api<Node> = Api::all(self.client.clone());
        let bds: Api<BlockDevice> = Api::namespaced(self.client.clone(), bd_namespace);
        let bdcs: Api<BlockDeviceClaim> = Api::namespaced(self.client.clone(), bd_namespace);
        let cspis: Api<CStorPoolInstance> = Api::namespaced(self.client.clone(), cspc_namespace);
        let cvrs: Api<CStorVolumeReplica> = Api::all(self.client.clone());
        let on_pool = ListParams::default().labels(labels::CSPI_NAME);
        let (nodes, bds, bdcs, cspis, cvrs) = tokio::try_join!(
            self.bounded("Nodes", nodes.list(&lp)),
            self.bounded("BlockDevices", bds.list(&lp)),
            self.bounded("BlockDeviceClaims", bdcs.list(&lp)),
            self.bounded("CStorPoolInstances", cspis.list(&lp)),
            self.bounded("CStorVolumeReplicas", cvrs.list(&on_pool)),
        )?;
        let named = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.name.clone().unwrap_or_default()
        };
        Ok(Arc::new(CspcFacts {
            nodes: nodes
                .items
                .into_iter()
                .map(|n| NodeFact {
                    name: named(&n.metadata),
                    labels: n.metadata.labels.unwrap_or_default(),
                })
                .collect(),
            block_devices: bds
                .items
                .into_iter()
                .map(|b| (named(&b.metadata), b))
                .collect(),
            block_device_claims: bdcs
                .items
                .into_iter()
                .map(|c| (named(&c.metadata), c))
                .collect(),
            cspis: cspis.items,
            cvrs: cvrs.items,
        }))
    }

    async fn clone_counts(&self, volume: &str) -> Result<(usize, usize), FactsError> {
        let lp = ListParams::default().labels(&format!("{}={volume}", labels::SOURCE_VOLUME));
        let cvs: Api<CStorVolume> = Api::all(self.client.clone());
        let cvcs: Api<CStorVolumeConfig> = Api::all(self.client.clone());
        let (cvs, cvcs) = tokio::try_join!(
            self.bounded("CStorVolumes", cvs.list(&lp)),
            self.bounded("CStorVolumeConfigs", cvcs.list(&lp)),
        )?;
        Ok((cvs.items.len(), cvcs.items.len()))
    }

    async fn owner_deleting(
        &self,
        owner_kind: OwnerKind,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<bool, FactsError> {
        let meta = match owner_kind {
            OwnerKind::Cspc => {
                let api: Api<CStorPoolCluster> = Api::namespaced(self.client.clone(), namespace);
                self.bounded("CStorPoolCluster", api.get_metadata_opt(name))
                    .await?
                    .map(|o| o.metadata)
            }
            OwnerKind::Cvc => {
                let api: Api<CStorVolumeConfig> = Api::namespaced(self.client.clone(), namespace);
                self.bounded("CStorVolumeConfig", api.get_metadata_opt(name))
                    .await?
                    .map(|o| o.metadata)
            }
            OwnerKind::Cv => {
                let api: Api<CStorVolume> = Api::namespaced(self.client.clone(), namespace);
                self.bounded("CStorVolume", api.get_metadata_opt(name))
                    .await?
                    .map(|o| o.metadata)
            }
        };
        Ok(meta.is_none_or(|m| {
            m.deletion_timestamp.is_some() || m.uid.as_deref().is_some_and(|u| u != uid)
        }))
    }

    async fn migration_tasks(&self, namespace: &str) -> Result<Vec<MigrationTask>, FactsError> {
        let api: Api<MigrationTask> = Api::namespaced(self.client.clone(), namespace);
        Ok(self
            .bounded("MigrationTasks", api.list(&ListParams::default()))
            .await?
            .items)
    }

    async fn namespace_holdings(&self, namespace: &str) -> Result<(usize, usize), FactsError> {
        let lp = ListParams::default();
        let cspcs: Api<CStorPoolCluster> = Api::namespaced(self.client.clone(), namespace);
        let cvcs: Api<CStorVolumeConfig> = Api::namespaced(self.client.clone(), namespace);
        let (cspcs, cvcs) = tokio::try_join!(
            self.bounded("CStorPoolClusters", cspcs.list_metadata(&lp)),
            self.bounded("CStorVolumeConfigs", cvcs.list_metadata(&lp)),
        )?;
        Ok((cspcs.items.len(), cvcs.items.len()))
    }
}

/// Facts for CSPC rules from watch caches (docs/admission.md A.2): Nodes, BlockDevices and
/// claims of the operator namespace, CSPIs, and CVRs on pools. The snapshot handed to policy
/// is rebuilt lazily, only after a watch event, so a request costs an `Arc` clone. The rarer
/// reads (clones on PVC delete, owners on cascading deletes, namespace holdings) stay live.
#[derive(Clone)]
pub struct CachedFacts {
    inner: Arc<Cached>,
}

struct Cached {
    nodes: Store<Node>,
    bds: Store<BlockDevice>,
    bdcs: Store<BlockDeviceClaim>,
    cspis: Store<CStorPoolInstance>,
    cvrs: Store<CStorVolumeReplica>,
    dirty: AtomicBool,
    ready: AtomicBool,
    snapshot: RwLock<Arc<CspcFacts>>,
    rebuild: Mutex<()>,
    live: KubeFacts,
}

impl CachedFacts {
    /// The caches and the future that fills them (run it for as long as the facts are used).
    /// BlockDevices and claims are watched in `bd_namespace`.
    pub fn new(
        client: Client,
        bd_namespace: &str,
        timeout: Duration,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (nodes, nodes_w) = reflector::store();
        let (bds, bds_w) = reflector::store();
        let (bdcs, bdcs_w) = reflector::store();
        let (cspis, cspis_w) = reflector::store();
        let (cvrs, cvrs_w) = reflector::store();
        let inner = Arc::new(Cached {
            nodes,
            bds,
            bdcs,
            cspis,
            cvrs,
            dirty: AtomicBool::new(true),
            ready: AtomicBool::new(false),
            snapshot: RwLock::new(Arc::default()),
            rebuild: Mutex::new(()),
            live: KubeFacts::new(client.clone(), timeout),
        });
        let cfg = watcher::Config::default;
        let on_pool = watcher::Config::default().labels(labels::CSPI_NAME);
        // Each stream is reduced to "something changed"; the stores hold the objects.
        let streams = vec![
            reflector(nodes_w, watcher(Api::<Node>::all(client.clone()), cfg()))
                .default_backoff()
                .map(|e| e.is_ok())
                .boxed(),
            reflector(
                bds_w,
                watcher(
                    Api::<BlockDevice>::namespaced(client.clone(), bd_namespace),
                    cfg(),
                ),
            )
            .default_backoff()
            .map(|e| e.is_ok())
            .boxed(),
            reflector(
                bdcs_w,
                watcher(
                    Api::<BlockDeviceClaim>::namespaced(client.clone(), bd_namespace),
                    cfg(),
                ),
            )
            .default_backoff()
            .map(|e| e.is_ok())
            .boxed(),
            reflector(
                cspis_w,
                watcher(Api::<CStorPoolInstance>::all(client.clone()), cfg()),
            )
            .default_backoff()
            .map(|e| e.is_ok())
            .boxed(),
            reflector(
                cvrs_w,
                watcher(Api::<CStorVolumeReplica>::all(client), on_pool),
            )
            .default_backoff()
            .map(|e| e.is_ok())
            .boxed(),
        ];
        let driven = inner.clone();
        let drive = async move {
            let waiter = driven.clone();
            let mut events = futures::stream::select_all(streams);
            let ready = async move {
                let all = tokio::try_join!(
                    waiter.nodes.wait_until_ready(),
                    waiter.bds.wait_until_ready(),
                    waiter.bdcs.wait_until_ready(),
                    waiter.cspis.wait_until_ready(),
                    waiter.cvrs.wait_until_ready(),
                );
                if all.is_ok() {
                    waiter.dirty.store(true, Ordering::SeqCst);
                    waiter.ready.store(true, Ordering::SeqCst);
                }
            };
            tokio::pin!(ready);
            let mut ready_done = false;
            loop {
                tokio::select! {
                    ev = events.next() => match ev {
                        Some(ok) => {
                            if !ok {
                                tracing::debug!("watch error; the watcher retries with backoff");
                            }
                            driven.dirty.store(true, Ordering::SeqCst);
                        }
                        None => return,
                    },
                    () = &mut ready, if !ready_done => ready_done = true,
                }
            }
        };
        (CachedFacts { inner }, drive)
    }

    /// Whether every cache has completed its first list (part of readiness).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    fn snapshot(&self) -> Arc<CspcFacts> {
        let c = &self.inner;
        if c.dirty.load(Ordering::SeqCst) {
            let _one = c.rebuild.lock().unwrap_or_else(|p| p.into_inner());
            // Cleared before reading the stores: an event during the rebuild marks it again.
            if c.dirty.swap(false, Ordering::SeqCst) {
                let named = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
                    m.name.clone().unwrap_or_default()
                };
                let facts = CspcFacts {
                    nodes: c
                        .nodes
                        .state()
                        .iter()
                        .map(|n| NodeFact {
                            name: named(&n.metadata),
                            labels: n.metadata.labels.clone().unwrap_or_default(),
                        })
                        .collect(),
                    block_devices: c
                        .bds
                        .state()
                        .iter()
                        .map(|b| (named(&b.metadata), (**b).clone()))
                        .collect(),
                    block_device_claims: c
                        .bdcs
                        .state()
                        .iter()
                        .map(|b| (named(&b.metadata), (**b).clone()))
                        .collect(),
                    cspis: c.cspis.state().iter().map(|o| (**o).clone()).collect(),
                    cvrs: c.cvrs.state().iter().map(|o| (**o).clone()).collect(),
                };
                *c.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(facts);
            }
        }
        c.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Facts for CachedFacts {
    async fn cspc_facts(
        &self,
        cspc_namespace: &str,
        bd_namespace: &str,
        named_bds: &[&str],
    ) -> Result<Arc<CspcFacts>, FactsError> {
        // Until every cache has listed once, a request is answered from live reads: a CSPC
        // applied right after the server starts must get the same answer as one applied later.
        if !self.is_ready() {
            tracing::debug!("watch caches still listing; reading live");
            return self
                .inner
                .live
                .cspc_facts(cspc_namespace, bd_namespace, named_bds)
                .await;
        }
        let all = self.snapshot();
        // A BlockDevice created just before this request may not have reached the watch yet;
        // a live read settles it (a name that is really missing costs one list, once).
        if let Some(missing) = named_bds
            .iter()
            .find(|n| !all.block_devices.contains_key(**n))
        {
            tracing::debug!(blockdevice = %missing, "not in the watch cache; reading live");
            return self
                .inner
                .live
                .cspc_facts(cspc_namespace, bd_namespace, named_bds)
                .await;
        }
        // CSPIs of other namespaces are not this CSPC's; copy only when there are any.
        let foreign =
            |i: &CStorPoolInstance| i.metadata.namespace.as_deref() != Some(cspc_namespace);
        if all.cspis.iter().any(foreign) {
            let mut own = (*all).clone();
            own.cspis.retain(|i| !foreign(i));
            return Ok(Arc::new(own));
        }
        Ok(all)
    }

    async fn clone_counts(&self, volume: &str) -> Result<(usize, usize), FactsError> {
        self.inner.live.clone_counts(volume).await
    }

    async fn owner_deleting(
        &self,
        owner_kind: OwnerKind,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<bool, FactsError> {
        self.inner
            .live
            .owner_deleting(owner_kind, namespace, name, uid)
            .await
    }

    async fn namespace_holdings(&self, namespace: &str) -> Result<(usize, usize), FactsError> {
        self.inner.live.namespace_holdings(namespace).await
    }

    async fn migration_tasks(&self, namespace: &str) -> Result<Vec<MigrationTask>, FactsError> {
        self.inner.live.migration_tasks(namespace).await
    }
}
