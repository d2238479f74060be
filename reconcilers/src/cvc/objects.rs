//! The objects the cvc-operator makes for a volume (as the Go operators make them; docs/volumes.md): the
//! target Service, the CStorVolume (as a server-side apply body), the CVRs, the target
//! Deployment and the PodDisruptionBudget, plus the deterministic names and hashes they use.

use cstor_api::keys::env;
use std::collections::BTreeMap;

use cstor_api::common::VersionDetails;
use cstor_api::cstor_v1::{
    CStorVolume, CStorVolumeConfig, CStorVolumePolicySpec, CStorVolumeReplica,
    CStorVolumeReplicaSpec, CStorVolumeSpec, TargetSpec,
};
use cstor_api::keys::{annotations, finalizers, labels};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, Container, PodSpec, PodTemplateSpec, ResourceRequirements, Service, ServicePort,
    ServiceSpec, Toleration,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::CvcConfig;
use crate::Error;
use crate::cspc::claim::controller_ref;
use crate::cspc::naming::fnv1a64;
use crate::podspec::{
    empty_dir, env, field_env, host_path, mount, privileged, pull_secrets, tcp_port,
};

/// `app` label of the target Deployment, pod and Service selector.
pub const TARGET_APP: (&str, &str) = ("app", "cstor-volume-manager");
/// `openebs.io/target` label of the target.
pub const TARGET_LABEL: (&str, &str) = ("openebs.io/target", "cstor-target");
/// Labels of the target Service that mark it as one.
pub const TARGET_SERVICE_LABEL: (&str, &str) = ("openebs.io/target-service", "cstor-target-svc");
pub const STORAGE_ENGINE_LABEL: (&str, &str) = ("openebs.io/storage-engine-type", "cstor");
/// The volume-manager container (runs `cstor volume-manager`).
pub const MGMT_CONTAINER: &str = "cstor-volume-mgmt";
/// The istgt container, kept for clusters running cStor's istgt.
pub const ISTGT_CONTAINER: &str = "cstor-istgt";
/// The metrics container (cStor's m-exporter, `-e=cstor`).
pub const EXPORTER_CONTAINER: &str = "maya-volume-exporter";
/// iSCSI port of the target.
pub const ISCSI_PORT: i32 = 3260;
/// `app` label of the pool-manager pods the PDB covers.
pub const POOL_APP: (&str, &str) = ("app", "cstor-pool");

/// The target Deployment's name.
pub fn target_name(pv: &str) -> String {
    format!("{pv}-target")
}

/// The volume-manager's environment; who may log in comes from the CVC's annotations
/// (`cstor.openebs.io/target-initiators`, `cstor.openebs.io/target-chap-secret`).
fn target_env(cvc: &CStorVolumeConfig, cv_uid: &str) -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    let mut vars = vec![
        env(env::OPENEBS_IO_CSTOR_VOLUME_ID, cv_uid),
        env(env::RESYNC_INTERVAL, "30"),
        field_env(env::NODE_NAME, "spec.nodeName"),
        field_env(env::POD_NAME, "metadata.name"),
        field_env(env::OPENEBS_NAMESPACE, "metadata.namespace"),
    ];
    let note = |key: &str| {
        cvc.annotations()
            .get(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(who) = note(annotations::TARGET_INITIATORS) {
        vars.push(env(env::CSTOR_TARGET_INITIATORS, &who));
    }
    if let Some(secret) = note(annotations::TARGET_CHAP_SECRET) {
        vars.push(crate::podspec::secret_env(
            env::CSTOR_TARGET_CHAP_USER,
            &secret,
            "username",
        ));
        vars.push(crate::podspec::secret_env(
            env::CSTOR_TARGET_CHAP_PASSWORD,
            &secret,
            "password",
        ));
    }
    vars
}

/// A CVR's name: `<pv>-<cspi>`.
pub fn cvr_name(pv: &str, cspi: &str) -> String {
    format!("{pv}-{cspi}")
}

/// The target IQN of a volume.
pub fn iqn(pv: &str) -> String {
    format!("iqn.2016-09.com.openebs.cstor:{pv}")
}

/// The replica id of a scaled-up replica: XXH64 (seed 0) of the JSON encoding of
/// `"<pv>-<pool>"` (quotes included), in decimal.
pub fn replica_id(pv: &str, pool: &str) -> String {
    let json = Value::String(format!("{pv}-{pool}")).to_string();
    xxhash_rust::xxh64::xxh64(json.as_bytes(), 0).to_string()
}

/// The `cstor.openebs.io/template-hash` label value of a policy: FNV-1a 64 of its JSON, in
/// decimal. Not B's go-spew FNV-1 32 (server-side apply makes drift detection unnecessary;
/// the label only tells humans the policy changed).
pub fn policy_hash(policy: &CStorVolumePolicySpec) -> String {
    let json = serde_json::to_string(policy).unwrap_or_default();
    fnv1a64(json.as_bytes()).to_string()
}

/// A PDB's name: `<cspc>-<16 hex digits of FNV-1a 64 of the sorted pool names>`, so every
/// volume on the same pool set shares one PDB and a retried create never makes a second.
pub fn pdb_name(cspc: &str, pools: &[String]) -> String {
    let mut sorted = pools.to_vec();
    sorted.sort();
    sorted.dedup();
    format!("{cspc}-{:016x}", fnv1a64(sorted.join(",").as_bytes()))
}

/// The versionDetails of an object made at operator version `version`.
pub fn fresh_version(version: &str) -> VersionDetails {
    crate::cspc::reconcile::fresh_version(version)
}

fn missing(kind: &'static str, name: &str, field: &'static str) -> Error {
    Error::MissingField {
        kind,
        name: name.to_string(),
        field,
    }
}

fn zero_resources() -> ResourceRequirements {
    let zero = BTreeMap::from([
        ("cpu".to_string(), Quantity("0".into())),
        ("memory".to_string(), Quantity("0".into())),
    ]);
    ResourceRequirements {
        limits: Some(zero.clone()),
        requests: Some(zero),
        ..ResourceRequirements::default()
    }
}

/// The Go operators' step 1: the target defaults of a policy (resources and auxResources 0/0, luWorkers 6,
/// queueDepth "32") filled in where unset.
pub fn with_defaults(mut policy: CStorVolumePolicySpec) -> CStorVolumePolicySpec {
    let mut target = policy.target.take().unwrap_or_default();
    if target.resources.is_none() {
        target.resources = Some(zero_resources());
    }
    if target.aux_resources.is_none() {
        target.aux_resources = Some(zero_resources());
    }
    if target.lu_workers.is_none_or(|w| w == 0) {
        target.lu_workers = Some(6);
    }
    if target.queue_depth.is_empty() {
        target.queue_depth = "32".into();
    }
    policy.target = Some(target);
    policy
}

/// The storage quantity of a capacity map.
pub fn storage(map: &BTreeMap<String, Quantity>) -> Option<&Quantity> {
    map.get("storage")
}

/// The target Service `<pv>` (owner: the CVC).
pub fn target_service(cvc: &CStorVolumeConfig, version: &str) -> Result<Service, Error> {
    let pv = cvc.name_any();
    let owner = controller_ref(cvc).ok_or_else(|| missing("CStorVolumeConfig", &pv, "uid"))?;
    let port = |name: &str, p: i32| ServicePort {
        name: Some(name.into()),
        port: p,
        protocol: Some("TCP".into()),
        target_port: Some(IntOrString::Int(p)),
        ..ServicePort::default()
    };
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(pv.clone()),
            namespace: cvc.namespace(),
            labels: Some(BTreeMap::from([
                (TARGET_SERVICE_LABEL.0.into(), TARGET_SERVICE_LABEL.1.into()),
                (STORAGE_ENGINE_LABEL.0.into(), STORAGE_ENGINE_LABEL.1.into()),
                (labels::CAS_TYPE.into(), labels::CAS_TYPE_CSTOR.into()),
                (labels::PERSISTENT_VOLUME.into(), pv.clone()),
                (labels::VERSION.into(), version.into()),
            ])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(target_selector(&pv)),
            ports: Some(vec![
                port("cstor-iscsi", ISCSI_PORT),
                port("cstor-grpc", 7777),
                port("mgmt", 6060),
                port("exporter", 9500),
            ]),
            type_: Some("ClusterIP".into()),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// The selector shared by the target Service and Deployment.
pub fn target_selector(pv: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TARGET_APP.0.into(), TARGET_APP.1.into()),
        (TARGET_LABEL.0.into(), TARGET_LABEL.1.into()),
        (labels::PERSISTENT_VOLUME.into(), pv.into()),
    ])
}

/// The clone source of a CVC: `spec.cstorVolumeSource = <srcVolume>@<snapshot>`.
pub fn clone_source(cvc: &CStorVolumeConfig) -> Option<(String, String)> {
    let (vol, snap) = cvc.spec.cstor_volume_source.split_once('@')?;
    (!vol.is_empty() && !snap.is_empty()).then(|| (vol.to_string(), snap.to_string()))
}

/// The CStorVolume spec made at provisioning.
pub fn initial_cv_spec(cvc: &CStorVolumeConfig, cluster_ip: &str) -> CStorVolumeSpec {
    let pv = cvc.name_any();
    let rf = cvc.spec.provision.replica_count;
    CStorVolumeSpec {
        capacity: storage(&cvc.spec.capacity).cloned(),
        target_ip: cluster_ip.into(),
        target_port: ISCSI_PORT.to_string(),
        iqn: iqn(&pv),
        target_portal: format!("{cluster_ip}:{ISCSI_PORT}"),
        replication_factor: Some(rf),
        consistency_factor: Some(rf / 2 + 1),
        desired_replication_factor: Some(rf),
        replica_details: None,
    }
}

/// The server-side apply body of CStorVolume `<pv>` (owner: the CVC) with `spec`;
/// `version_details` is the live one when updating, so the apply never drops it.
pub fn cv_apply(
    cvc: &CStorVolumeConfig,
    spec: &CStorVolumeSpec,
    version: &str,
    version_details: Option<&VersionDetails>,
) -> Result<Value, Error> {
    let pv = cvc.name_any();
    let owner = controller_ref(cvc).ok_or_else(|| missing("CStorVolumeConfig", &pv, "uid"))?;
    let mut labels = BTreeMap::from([
        (labels::PERSISTENT_VOLUME.to_string(), pv.clone()),
        (labels::VERSION.to_string(), version.to_string()),
    ]);
    if let Some(pvc) = cvc.annotations().get(annotations::PERSISTENT_VOLUME_CLAIM) {
        labels.insert(labels::PERSISTENT_VOLUME_CLAIM.into(), pvc.clone());
    }
    if let Some((src, _)) = clone_source(cvc) {
        labels.insert(labels::SOURCE_VOLUME.into(), src);
    }
    let vd = version_details
        .cloned()
        .unwrap_or_else(|| fresh_version(version));
    Ok(json!({
        "apiVersion": CStorVolume::api_version(&()),
        "kind": CStorVolume::kind(&()),
        "metadata": {
            "name": pv,
            "namespace": cvc.namespace(),
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": spec,
        "versionDetails": vd,
    }))
}

/// Where a new CVR goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaPool {
    pub name: String,
    pub uid: String,
    /// The CSPI's `kubernetes.io/hostname` label.
    pub hostname: String,
}

/// CVR `<pv>-<cspi>`, owned by `cv`. `capacity` is a quantity string; `replica_id`
/// is "" at provisioning (the pool manager derives one) and [`replica_id`] at scale-up.
pub fn cvr_object(
    cvc: &CStorVolumeConfig,
    cv: &CStorVolume,
    pool: &ReplicaPool,
    capacity: &str,
    replica_id: &str,
    version: &str,
) -> Result<CStorVolumeReplica, Error> {
    let pv = cvc.name_any();
    let owner = controller_ref(cv).ok_or_else(|| missing("CStorVolume", &pv, "uid"))?;
    let mut labels = BTreeMap::from([
        (labels::CSPI_NAME.to_string(), pool.name.clone()),
        (labels::CSPI_UID.to_string(), pool.uid.clone()),
        (labels::CSTOR_VOLUME_NAME.to_string(), pv.clone()),
        (labels::PERSISTENT_VOLUME.to_string(), pv.clone()),
        (labels::VERSION.to_string(), version.to_string()),
    ]);
    let mut annots = BTreeMap::from([(
        annotations::CSPI_HOSTNAME.to_string(),
        pool.hostname.clone(),
    )]);
    if let Some((src, snap)) = clone_source(cvc) {
        labels.insert(labels::CLONED.into(), "true".into());
        annots.insert(annotations::SOURCE_VOLUME.into(), src);
        annots.insert(annotations::SNAPSHOT.into(), snap);
    }
    if cvc
        .annotations()
        .get(annotations::CREATED_THROUGH)
        .map(String::as_str)
        == Some("restore")
    {
        annots.insert(annotations::IS_RESTORE_VOL.into(), "true".into());
    }
    let zvol_workers = cvc
        .spec
        .policy
        .replica
        .as_ref()
        .map(|r| r.zvol_workers.clone())
        .unwrap_or_default();
    Ok(CStorVolumeReplica {
        metadata: ObjectMeta {
            name: Some(cvr_name(&pv, &pool.name)),
            namespace: cvc.namespace(),
            labels: Some(labels),
            annotations: Some(annots),
            owner_references: Some(vec![owner]),
            finalizers: Some(vec![finalizers::CVR.to_string()]),
            ..ObjectMeta::default()
        },
        spec: CStorVolumeReplicaSpec {
            target_ip: cv.spec.target_ip.clone(),
            capacity: capacity.into(),
            zvol_workers,
            replica_id: replica_id.into(),
            ..CStorVolumeReplicaSpec::default()
        },
        status: None,
        version_details: Some(fresh_version(version)),
    })
}

/// The four NoExecute tolerations a target gets when the policy names none.
pub fn default_tolerations() -> Vec<Toleration> {
    [
        "node.alpha.kubernetes.io/notReady",
        "node.alpha.kubernetes.io/unreachable",
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .iter()
    .map(|k| Toleration {
        key: Some((*k).into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(30),
        value: None,
    })
    .collect()
}

/// The target Deployment `<pv>-target` (as the Go operators make it, with our volume-manager container; owner: `cv`),
/// built from `policy` (the CVC's resolved `spec.policy`). Where it differs from Go's:
/// docs/decisions/023 (golden test: `tests/go_shapes.rs`).
pub fn target_deployment(
    cvc: &CStorVolumeConfig,
    cv: &CStorVolume,
    policy: &CStorVolumePolicySpec,
    config: &CvcConfig,
) -> Result<Deployment, Error> {
    let pv = cvc.name_any();
    let cv_uid = cv.uid().ok_or_else(|| missing("CStorVolume", &pv, "uid"))?;
    let owner = controller_ref(cv).ok_or_else(|| missing("CStorVolume", &pv, "uid"))?;
    let target: TargetSpec = policy.target.clone().unwrap_or_default();
    let pvc = cv
        .labels()
        .get(labels::PERSISTENT_VOLUME_CLAIM)
        .cloned()
        .unwrap_or_default();
    let version = &config.operator_version;
    let mut dep_labels = target_selector(&pv);
    dep_labels.insert(STORAGE_ENGINE_LABEL.0.into(), STORAGE_ENGINE_LABEL.1.into());
    dep_labels.insert(labels::CAS_TYPE.into(), labels::CAS_TYPE_CSTOR.into());
    dep_labels.insert(labels::PERSISTENT_VOLUME_CLAIM.into(), pvc.clone());
    dep_labels.insert(labels::VERSION.into(), version.clone());
    let mut pod_labels = target_selector(&pv);
    pod_labels.insert("monitoring".into(), "volume_exporter_prometheus".into());
    pod_labels.insert(labels::PERSISTENT_VOLUME_CLAIM.into(), pvc);
    pod_labels.insert(labels::VERSION.into(), version.clone());
    let mounts = vec![
        mount("sockfile", "/var/run"),
        mount("conf", "/usr/local/etc/istgt"),
        mount("storagepath", "/var/openebs/cstor-target"),
    ];
    let istgt = Container {
        name: ISTGT_CONTAINER.into(),
        image: Some(config.istgt_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: Some(vec![tcp_port(ISCSI_PORT)]),
        security_context: privileged(),
        env: Some(vec![
            env("QueueDepth", &target.queue_depth),
            env(
                "Luworkers",
                &target.lu_workers.unwrap_or_default().to_string(),
            ),
        ]),
        resources: target.resources.clone(),
        volume_mounts: Some(mounts.clone()),
        ..Container::default()
    };
    // Not run locally (only the container whose command is `cstor` is); kept so a cluster's
    // volume metrics and the pod's Prometheus scrape annotations keep working. Unprivileged and
    // no pull policy, as in Go.
    let exporter = Container {
        name: EXPORTER_CONTAINER.into(),
        image: Some(config.exporter_image.clone()),
        command: Some(vec!["maya-exporter".into()]),
        args: Some(vec!["-e=cstor".into()]),
        ports: Some(vec![tcp_port(9500)]),
        resources: target.aux_resources.clone(),
        volume_mounts: Some(mounts.clone()),
        ..Container::default()
    };
    let mgmt = Container {
        name: MGMT_CONTAINER.into(),
        image: Some(config.volume_manager_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["cstor".into()]),
        args: Some(vec!["volume-manager".into()]),
        ports: Some(vec![tcp_port(80)]),
        security_context: privileged(),
        resources: target.aux_resources.clone(),
        env: Some(target_env(cvc, &cv_uid)),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let tolerations = if target.tolerations.is_empty() {
        default_tolerations()
    } else {
        target.tolerations.clone()
    };
    let storage_dir = format!(
        "{}/cstor-target/{pv}",
        config.base_dir.trim_end_matches('/')
    );
    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(target_name(&pv)),
            namespace: cvc.namespace(),
            labels: Some(dep_labels),
            annotations: Some(BTreeMap::from([
                ("openebs.io/volume-monitor".into(), "true".into()),
                ("openebs.io/volume-type".into(), "cstor".into()),
            ])),
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
                match_labels: Some(target_selector(&pv)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([
                        ("prometheus.io/path".into(), "/metrics".into()),
                        ("prometheus.io/port".into(), "9500".into()),
                        ("prometheus.io/scrape".into(), "true".into()),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    // Its own identity, so it can write only its own CStorVolume.
                    service_account_name: Some(crate::agent_identity::account_name(
                        &config.volume_manager_account,
                        &pv,
                    )),
                    affinity: Some(Affinity {
                        pod_affinity: target.affinity.clone(),
                        ..Affinity::default()
                    }),
                    priority_class_name: (!target.priority_class_name.is_empty())
                        .then(|| target.priority_class_name.clone()),
                    node_selector: (!target.node_selector.is_empty())
                        .then(|| target.node_selector.clone()),
                    tolerations: Some(tolerations),
                    image_pull_secrets: pull_secrets(&config.image_pull_secrets),
                    containers: vec![istgt, exporter, mgmt],
                    volumes: Some(vec![
                        empty_dir("sockfile"),
                        empty_dir("conf"),
                        host_path("storagepath", &storage_dir, "DirectoryOrCreate"),
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

/// The PDB over the pool-manager pods of `pools` (as the Go operators make it, with [`pdb_name`]).
pub fn pdb_object(namespace: &str, cspc: &str, pools: &[String]) -> PodDisruptionBudget {
    let mut sorted = pools.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut pdb_labels: BTreeMap<String, String> = sorted
        .iter()
        .map(|p| (labels::pdb_pool(p), "true".to_string()))
        .collect();
    pdb_labels.insert(labels::CSTOR_POOL_CLUSTER.into(), cspc.into());
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(pdb_name(cspc, &sorted)),
            namespace: Some(namespace.into()),
            labels: Some(pdb_labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    POOL_APP.0.to_string(),
                    POOL_APP.1.to_string(),
                )])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: labels::CSTOR_POOL_INSTANCE.into(),
                    operator: "In".into(),
                    values: Some(sorted),
                }]),
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// Whether `pdb` covers exactly `pools` (the Go operators' reuse test on `matchExpressions[0]`).
pub fn pdb_covers(pdb: &PodDisruptionBudget, pools: &[String]) -> bool {
    let mut want = pools.to_vec();
    want.sort();
    want.dedup();
    let mut have = pdb
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| s.match_expressions.as_ref())
        .and_then(|m| m.first())
        .and_then(|r| r.values.clone())
        .unwrap_or_default();
    have.sort();
    have.dedup();
    have == want
}
