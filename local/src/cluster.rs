//! What `cstor up` and the tests put into a fresh cluster: our CRDs and Node objects that look
//! like real nodes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::Error;

/// Field manager of everything the local mode writes.
pub const FIELD_MANAGER: &str = "cstor-local";

fn kube_err(e: kube::Error) -> Error {
    Error::Kube(e.to_string())
}

/// Applies the CRDs (server-side) and waits until each one is Established.
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &pp, &Patch::Apply(crd))
            .await
            .map_err(kube_err)?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let got = api.get(&name).await.map_err(kube_err)?;
            let established = got
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!("CRD {name} not Established in 60s")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Every CRD of the product, generated from the types.
pub fn product_crds() -> Result<Vec<CustomResourceDefinition>, Error> {
    cstor_api::all_crds().map_err(|e| Error::Crd(e.to_string()))
}

/// Node names used locally: `cstor-node-1` … `cstor-node-N`.
pub fn node_name(i: usize) -> String {
    format!("cstor-node-{i}")
}

/// Creates (or updates) `count` Node objects labelled and reported like real, Ready nodes.
pub async fn create_nodes(client: &Client, count: usize) -> Result<Vec<String>, Error> {
    let api: Api<Node> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for i in 1..=count {
        let name = node_name(i);
        let labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            (
                "kubernetes.io/arch".to_string(),
                std::env::consts::ARCH.replace("x86_64", "amd64"),
            ),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            (
                "node.cstor.openebs.io/local".to_string(),
                "true".to_string(),
            ),
        ]);
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": { "name": name, "labels": labels },
            "spec": {},
        });
        api.patch(&name, &pp, &Patch::Apply(&node))
            .await
            .map_err(kube_err)?;
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": { "name": name },
            "status": {
                "capacity": { "cpu": "2", "memory": "8Gi", "pods": "110" },
                "allocatable": { "cpu": "2", "memory": "8Gi", "pods": "110" },
                "addresses": [
                    { "type": "InternalIP", "address": "127.0.0.1" },
                    { "type": "Hostname", "address": name },
                ],
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "CstorLocalNode",
                    "message": "node simulated by cstor up",
                    "lastHeartbeatTime": now, "lastTransitionTime": now,
                }],
                "nodeInfo": {
                    "architecture": std::env::consts::ARCH, "operatingSystem": "linux",
                    "kubeletVersion": crate::binaries::KUBERNETES_VERSION,
                    "kubeProxyVersion": "", "osImage": "cstor local", "kernelVersion": "",
                    "containerRuntimeVersion": "cstor-local://1", "machineID": "", "systemUUID": "",
                    "bootID": "",
                },
            },
        });
        api.patch_status(&name, &pp, &Patch::Apply(&status))
            .await
            .map_err(kube_err)?;
        names.push(name);
    }
    Ok(names)
}

/// Creates a namespace with a unique name starting with `prefix`.
pub async fn create_namespace(client: &Client, prefix: &str) -> Result<String, Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.generate_name = Some(format!("{prefix}-"));
    let created = api
        .create(&PostParams::default(), &ns)
        .await
        .map_err(kube_err)?;
    created
        .metadata
        .name
        .ok_or_else(|| Error::Kube("created namespace has no name".into()))
}
