//! The pool-manager Deployment of a CSPI (docs/pools.md): `cstor-pool-mgmt` runs
//! `cstor pool-manager`, `cstor-pool` runs uZFS, `maya-exporter` serves the pool's metrics; one
//! replica, Recreate, pinned to the node. The Go operators' shape, except where
//! docs/decisions/023 says otherwise (golden test: `tests/go_shapes.rs`).

use cstor_api::keys::env;
use std::collections::BTreeMap;

use cstor_api::cstor_v1::{CStorPoolCluster, CStorPoolInstance};
use cstor_api::keys::labels;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ExecAction, Lifecycle, LifecycleHandler, PodSpec, PodTemplateSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;

use super::CspcConfig;
use super::claim::controller_ref;
use crate::Error;
use crate::podspec::{
    empty_dir, env, field_env, host_path, mount, privileged, pull_secrets, tcp_port,
};

/// Label on every pool-manager Deployment and pod (and their shared selector).
pub const APP_LABEL: (&str, &str) = ("app", "cstor-pool");
/// Name of the pool-manager container.
pub const MGMT_CONTAINER: &str = "cstor-pool-mgmt";
/// Name of the uZFS container.
pub const POOL_CONTAINER: &str = "cstor-pool";
/// Name of the metrics container (cStor's m-exporter, `-e=pool`).
pub const EXPORTER_CONTAINER: &str = "maya-exporter";
/// Where the pool's host directory is mounted (the cache file lives there).
pub const POOL_MOUNT: &str = "/var/openebs/cstor-pool";

fn exec(cmd: &str) -> ExecAction {
    ExecAction {
        command: Some(vec!["/bin/sh".into(), "-c".into(), cmd.into()]),
    }
}

/// Labels of the Deployment and its pod template.
pub fn pool_labels(cspc: &str, cspi: &str, version: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::CSTOR_POOL_CLUSTER.to_string(), cspc.to_string()),
        (APP_LABEL.0.to_string(), APP_LABEL.1.to_string()),
        (labels::CSTOR_POOL_INSTANCE.to_string(), cspi.to_string()),
        (labels::VERSION.to_string(), version.to_string()),
    ])
}

/// The pool-manager Deployment of `cspi` (owned by it).
pub fn pool_manager_deployment(
    cspc: &CStorPoolCluster,
    cspi: &CStorPoolInstance,
    config: &CspcConfig,
) -> Result<Deployment, Error> {
    let cspi_name = cspi.name_any();
    let missing = |kind, name: &str, field| Error::MissingField {
        kind,
        name: name.to_string(),
        field,
    };
    let cspi_uid = cspi
        .uid()
        .ok_or_else(|| missing("CStorPoolInstance", &cspi_name, "uid"))?;
    let cspc_uid = cspc
        .uid()
        .ok_or_else(|| missing("CStorPoolCluster", &cspc.name_any(), "uid"))?;
    let owner =
        controller_ref(cspi).ok_or_else(|| missing("CStorPoolInstance", &cspi_name, "uid"))?;
    let cspc_name = cspc.name_any();
    let pool_config = cspi.spec.pool_config.clone().unwrap_or_default();
    let labels = pool_labels(&cspc_name, &cspi_name, &config.operator_version);
    let monitoring = (
        "openebs.io/monitoring".to_string(),
        "pool_exporter_prometheus".to_string(),
    );
    let pod_annotations = BTreeMap::from([
        monitoring.clone(),
        ("prometheus.io/path".into(), "/metrics".into()),
        ("prometheus.io/port".into(), "9500".into()),
        ("prometheus.io/scrape".into(), "true".into()),
        (
            "cluster-autoscaler.kubernetes.io/safe-to-evict".into(),
            "false".into(),
        ),
    ]);
    let pool_dir = format!(
        "{}/cstor-pool/{cspc_name}",
        config.base_dir.trim_end_matches('/')
    );
    let mounts = vec![
        mount("device", "/dev"),
        mount("tmp", "/tmp"),
        mount("udev", "/run/udev"),
        mount("storagepath", POOL_MOUNT),
        mount("sockfile", "/var/tmp/sock"),
        mount("sparse", &config.sparse_dir),
    ];
    let mgmt = Container {
        name: MGMT_CONTAINER.into(),
        image: Some(config.pool_manager_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["cstor".into()]),
        args: Some(vec!["pool-manager".into()]),
        resources: pool_config.aux_resources.clone(),
        // Go's five in Go's order, then ours.
        env: Some(vec![
            env(env::OPENEBS_IO_CSPI_ID, &cspi_uid),
            env(env::RESYNC_INTERVAL, "30"),
            field_env(env::POD_NAME, "metadata.name"),
            field_env(env::NAMESPACE, "metadata.namespace"),
            env(env::OPENEBS_IO_POOL_NAME, &cspc_uid),
            // The only directory besides /dev that disk paths may be under.
            env(env::OPENEBS_IO_CSTOR_POOL_SPARSE_DIR, &config.sparse_dir),
            // Its node: the field manager `cstor-pool-manager/<node>` and the Events name it.
            field_env(env::NODE_NAME, "spec.nodeName"),
        ]),
        security_context: privileged(),
        volume_mounts: Some(mounts.clone()),
        ..Container::default()
    };
    let pool = Container {
        name: POOL_CONTAINER.into(),
        image: Some(config.pool_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        resources: pool_config.resources.clone(),
        ports: Some(vec![tcp_port(12000), tcp_port(3232), tcp_port(3233)]),
        env: Some(vec![
            env(env::OPENEBS_IO_CSTOR_ID, &cspi_uid),
            env(env::OPENEBS_IO_POOL_NAME, &cspc_uid),
        ]),
        liveness_probe: Some(Probe {
            exec: Some(exec(
                "timeout 120 zfs set io.openebs:livenesstimestamp=\"$(date +%s)\" cstor-$OPENEBS_IO_POOL_NAME",
            )),
            initial_delay_seconds: Some(300),
            period_seconds: Some(60),
            timeout_seconds: Some(150),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        lifecycle: Some(Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(exec("sleep 2")),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: privileged(),
        volume_mounts: Some(mounts.clone()),
        ..Container::default()
    };
    // Not run locally (the local runner runs only the container whose command is `cstor`);
    // kept so a cluster's pool metrics and its Prometheus scrape annotations keep working.
    let exporter = Container {
        name: EXPORTER_CONTAINER.into(),
        image: Some(config.exporter_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["maya-exporter".into()]),
        args: Some(vec!["-e=pool".into()]),
        ports: Some(vec![tcp_port(9500)]),
        security_context: privileged(),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let tolerations = pool_config.tolerations.clone().filter(|t| !t.is_empty());
    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(cspi_name.clone()),
            namespace: cspi.namespace(),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([monitoring])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(1),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    APP_LABEL.0.to_string(),
                    APP_LABEL.1.to_string(),
                )])),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    node_selector: Some(cspi.spec.node_selector.clone()),
                    priority_class_name: pool_config
                        .priority_class_name
                        .clone()
                        .filter(|p| !p.is_empty()),
                    tolerations,
                    // Its own identity, so it can write only its own CSPI and replicas.
                    service_account_name: Some(crate::agent_identity::account_name(
                        &config.pool_manager_account,
                        &cspi_name,
                    )),
                    image_pull_secrets: pull_secrets(&config.image_pull_secrets),
                    containers: vec![mgmt, pool, exporter],
                    volumes: Some(vec![
                        host_path("device", "/dev", "Directory"),
                        host_path("udev", "/run/udev", "Directory"),
                        host_path("tmp", &pool_dir, "DirectoryOrCreate"),
                        host_path("sparse", &config.sparse_dir, "DirectoryOrCreate"),
                        host_path("storagepath", &pool_dir, "DirectoryOrCreate"),
                        empty_dir("sockfile"),
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}
