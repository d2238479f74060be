//! Golden tests of the cluster-mode objects against the Go operators' shapes: the pool-manager
//! Deployment, the target Deployment and the target Service. `golden/*.json` are the objects
//! the Go operators send for the same inputs, written by hand from their builders (the spec's
//! reconcilers §1.4, §4.2 step 2 and §4.3); each deliberate difference (docs/decisions/023) is listed here with its
//! reason and applied to the Go shape before comparing, so any other difference fails.
#![allow(clippy::unwrap_used)]

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::cspc::CspcConfig;
use crate::cspc::deployment::pool_manager_deployment;
use crate::cvc::CvcConfig;
use crate::cvc::objects::{target_deployment, target_service, with_defaults};
use crate::podspec::pull_secret_names;
use cstor_api::cstor_v1::{
    CStorPoolCluster, CStorPoolInstance, CStorVolume, CStorVolumeConfig, CStorVolumePolicySpec,
};
use cstor_api::keys::annotations;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

/// What the Go 3.6.0 operators send (chart 3.6.0 env: its images, `openebs-cstor-operator`).
const GO_POOL_DEPLOYMENT: &str = include_str!("golden/pool-manager-deployment.json");
const GO_TARGET_DEPLOYMENT: &str = include_str!("golden/target-deployment.json");
const GO_TARGET_SERVICE: &str = include_str!("golden/target-service.json");

/// One deliberate difference from Go: the field (a JSON pointer, `~1` for `/` in a key, a last
/// token `-` appends to an array), what we write there, and why.
struct Difference {
    at: String,
    ours: Value,
    why: &'static str,
}

fn diff(at: impl Into<String>, ours: Value, why: &'static str) -> Difference {
    Difference {
        at: at.into(),
        ours,
        why,
    }
}

const VERSION_WHY: &str = "the version of the operator that made it, as Go writes its own";
const NAMESPACE_WHY: &str = "Go names it only in the request path; a server-side apply body \
                             states it; the stored object is the same";

/// The pool-manager Deployment's differences (docs/decisions/023).
fn pool_differences() -> Vec<Difference> {
    let mgmt = "/spec/template/spec/containers/0";
    vec![
        diff(
            "/metadata/labels/openebs.io~1version",
            json!("4.0.0"),
            VERSION_WHY,
        ),
        diff(
            "/spec/template/metadata/labels/openebs.io~1version",
            json!("4.0.0"),
            VERSION_WHY,
        ),
        diff(
            "/spec/template/spec/serviceAccountName",
            json!("cstor-pool-manager-cspc-stripe-x7k2"),
            "one identity per pool-manager, so admission can tie its writes to its own CSPI \
             (decision 018); Go uses the operator's account",
        ),
        diff(
            format!("{mgmt}/image"),
            json!("openebs/cstor-rs:4.0.0"),
            "our pool-manager; the same env OPENEBS_IO_CSPI_MGMT_IMAGE, set to our image",
        ),
        diff(
            format!("{mgmt}/command"),
            json!(["cstor"]),
            "one binary for every role, so the role is named; the local runner runs the \
             container whose command is `cstor`",
        ),
        diff(
            format!("{mgmt}/args"),
            json!(["pool-manager"]),
            "the role of the `cstor` binary",
        ),
        diff(
            format!("{mgmt}/env/-"),
            json!({"name": "OPENEBS_IO_CSTOR_POOL_SPARSE_DIR", "value": "/var/openebs/sparse"}),
            "our pool-manager refuses disk paths outside /dev and the sparse directory",
        ),
        diff(
            format!("{mgmt}/env/-"),
            json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}),
            "its field manager `cstor-pool-manager/<node>` and its Events name the node",
        ),
    ]
}

/// The target Deployment's differences (docs/decisions/023). Not in this golden case: the
/// volume-manager's access env, present only when the CVC asks for it
/// (`conditional_target_env_is_ours`).
fn target_differences() -> Vec<Difference> {
    let containers = "/spec/template/spec/containers";
    let protocol_why = "server-side apply keys container ports by port and protocol; the API \
                        server defaults Go's to TCP, so the stored object is the same";
    vec![
        diff("/metadata/namespace", json!("openebs"), NAMESPACE_WHY),
        diff(
            "/metadata/labels/openebs.io~1version",
            json!("4.0.0"),
            VERSION_WHY,
        ),
        diff(
            "/spec/template/metadata/labels/openebs.io~1version",
            json!("4.0.0"),
            VERSION_WHY,
        ),
        diff(
            "/spec/template/spec/serviceAccountName",
            json!("cstor-volume-manager-pvc-0a1b2c3d"),
            "one identity per target, so admission can tie its writes to its own CStorVolume \
             (decision 018); Go uses the operator's account",
        ),
        diff(
            format!("{containers}/0/ports/0/protocol"),
            json!("TCP"),
            protocol_why,
        ),
        diff(
            format!("{containers}/1/ports/0/protocol"),
            json!("TCP"),
            protocol_why,
        ),
        diff(
            format!("{containers}/2/ports/0/protocol"),
            json!("TCP"),
            protocol_why,
        ),
        diff(
            format!("{containers}/2/image"),
            json!("openebs/cstor-rs:4.0.0"),
            "our volume-manager; the same env OPENEBS_IO_CSTOR_VOLUME_MGMT_IMAGE, set to our \
             image",
        ),
        diff(
            format!("{containers}/2/command"),
            json!(["cstor"]),
            "one binary for every role, so the role is named; the local runner runs the \
             container whose command is `cstor`",
        ),
        diff(
            format!("{containers}/2/args"),
            json!(["volume-manager"]),
            "the role of the `cstor` binary",
        ),
    ]
}

/// The target Service's differences.
fn service_differences() -> Vec<Difference> {
    vec![
        diff("/metadata/namespace", json!("openebs"), NAMESPACE_WHY),
        diff(
            "/metadata/labels/openebs.io~1version",
            json!("4.0.0"),
            VERSION_WHY,
        ),
        diff(
            "/spec/type",
            json!("ClusterIP"),
            "the API server's default, stated in our apply body; the stored object is the same",
        ),
    ]
}

/// `go` with `d` applied as a JSON-patch `add`: the field set (added or replaced), or the value
/// appended (`-`).
fn apply(go: &mut Value, d: &Difference) {
    let op: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": d.at, "value": d.ours}])).unwrap();
    json_patch::patch(go, &op).unwrap_or_else(|e| panic!("{}: {e} in the Go shape", d.at));
}

/// The Go shape with every listed difference applied.
fn expected(golden: &str, differences: &[Difference]) -> Value {
    let mut want: Value = serde_json::from_str(golden).unwrap();
    for d in differences {
        apply(&mut want, d);
    }
    want
}

/// Every listed difference changes the Go shape (none is stale) and says why.
fn assert_all_real(golden: &str, differences: &[Difference]) {
    let go: Value = serde_json::from_str(golden).unwrap();
    for d in differences {
        assert!(!d.why.is_empty(), "{}: no reason given", d.at);
        if d.at.ends_with("/-") {
            continue;
        }
        assert_ne!(
            go.pointer(&d.at),
            Some(&d.ours),
            "{} is listed as a difference but Go has the same",
            d.at
        );
    }
}

fn cspc() -> CStorPoolCluster {
    serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
        "metadata": {"name": "cspc-stripe", "namespace": "openebs", "uid": "cspc-uid-1234"},
        "spec": {"pools": []},
    }))
    .unwrap()
}

/// A CSPI whose poolConfig sets everything the Deployment takes from it.
fn cspi() -> CStorPoolInstance {
    serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolInstance",
        "metadata": {
            "name": "cspc-stripe-x7k2", "namespace": "openebs", "uid": "cspi-uid-5678",
            "labels": {"openebs.io/cstor-pool-cluster": "cspc-stripe"},
        },
        "spec": {
            "hostName": "worker-1",
            "nodeSelector": {"kubernetes.io/hostname": "worker-1"},
            "poolConfig": {
                "dataRaidGroupType": "stripe",
                "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
                "auxResources": {"requests": {"cpu": "100m", "memory": "500Mi"}, "limits": {"memory": "1Gi"}},
                "tolerations": [{"key": "storage", "operator": "Equal", "value": "cstor", "effect": "NoSchedule"}],
                "priorityClassName": "openebs-pool-critical",
            },
            "dataRaidGroups": [{"blockDevices": [{"blockDeviceName": "bd-worker-1-sdb"}]}],
        },
    }))
    .unwrap()
}

/// The cspc-operator's config as deploy/operator/operator.yaml sets it (and a pull secret).
fn cspc_config() -> CspcConfig {
    CspcConfig {
        operator_version: "4.0.0".into(),
        pool_manager_image: "openebs/cstor-rs:4.0.0".into(),
        pool_image: "openebs/cstor-pool:3.6.0".into(),
        exporter_image: "openebs/m-exporter:3.6.0".into(),
        pool_manager_account: "cstor-pool-manager".into(),
        image_pull_secrets: pull_secret_names("regcred,"),
        ..CspcConfig::default()
    }
}

fn cvc(annotations: Value) -> CStorVolumeConfig {
    serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeConfig",
        "metadata": {
            "name": "pvc-0a1b2c3d", "namespace": "openebs", "uid": "cvc-uid-1111",
            "annotations": annotations,
        },
        "spec": {
            "capacity": {"storage": "5Gi"},
            "provision": {"capacity": {"storage": "5Gi"}, "replicaCount": 3},
            "policy": {},
        },
    }))
    .unwrap()
}

fn cv() -> CStorVolume {
    serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
        "metadata": {
            "name": "pvc-0a1b2c3d", "namespace": "openebs", "uid": "cv-uid-2222",
            "labels": {"openebs.io/persistent-volume-claim": "data-mysql-0"},
        },
        "spec": {"targetIP": "10.96.0.17", "capacity": "5Gi"},
    }))
    .unwrap()
}

/// A policy with resources and pod affinity set; queue depth, LU workers and tolerations left
/// to the defaults (32, 6, the four NoExecute tolerations).
fn policy() -> CStorVolumePolicySpec {
    with_defaults(
        serde_json::from_value(json!({
            "target": {
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
                "auxResources": {"requests": {"cpu": "50m", "memory": "100Mi"}},
                "affinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "mysql"}},
                    "topologyKey": "kubernetes.io/hostname",
                }]},
            },
        }))
        .unwrap(),
    )
}

/// The cvc-operator's config as deploy/cvc-operator/operator.yaml sets it (and a pull secret).
fn cvc_config() -> CvcConfig {
    CvcConfig {
        operator_version: "4.0.0".into(),
        volume_manager_image: "openebs/cstor-rs:4.0.0".into(),
        istgt_image: "openebs/cstor-istgt:3.6.0".into(),
        exporter_image: "openebs/m-exporter:3.6.0".into(),
        volume_manager_account: "cstor-volume-manager".into(),
        image_pull_secrets: pull_secret_names(" regcred "),
        ..CvcConfig::default()
    }
}

#[test]
fn pool_manager_deployment_is_the_go_shape_but_for_the_listed_differences() {
    let ours = pool_manager_deployment(&cspc(), &cspi(), &cspc_config()).unwrap();
    assert_eq!(
        serde_json::to_value(&ours).unwrap(),
        expected(GO_POOL_DEPLOYMENT, &pool_differences())
    );
}

#[test]
fn target_deployment_is_the_go_shape_but_for_the_listed_differences() {
    let ours = target_deployment(&cvc(json!({})), &cv(), &policy(), &cvc_config()).unwrap();
    assert_eq!(
        serde_json::to_value(&ours).unwrap(),
        expected(GO_TARGET_DEPLOYMENT, &target_differences())
    );
}

#[test]
fn target_service_is_the_go_shape_but_for_the_listed_differences() {
    let ours = target_service(&cvc(json!({})), "4.0.0").unwrap();
    assert_eq!(
        serde_json::to_value(&ours).unwrap(),
        expected(GO_TARGET_SERVICE, &service_differences())
    );
}

#[test]
fn every_listed_difference_is_one_and_says_why() {
    assert_all_real(GO_POOL_DEPLOYMENT, &pool_differences());
    assert_all_real(GO_TARGET_DEPLOYMENT, &target_differences());
    assert_all_real(GO_TARGET_SERVICE, &service_differences());
    // The list, as a reader of the docs sees it (docs/decisions/023).
    let fields: Vec<String> = pool_differences().into_iter().map(|d| d.at).collect();
    assert_eq!(
        fields,
        vec![
            "/metadata/labels/openebs.io~1version",
            "/spec/template/metadata/labels/openebs.io~1version",
            "/spec/template/spec/serviceAccountName",
            "/spec/template/spec/containers/0/image",
            "/spec/template/spec/containers/0/command",
            "/spec/template/spec/containers/0/args",
            "/spec/template/spec/containers/0/env/-",
            "/spec/template/spec/containers/0/env/-",
        ]
    );
    let fields: Vec<String> = target_differences().into_iter().map(|d| d.at).collect();
    assert_eq!(
        fields,
        vec![
            "/metadata/namespace",
            "/metadata/labels/openebs.io~1version",
            "/spec/template/metadata/labels/openebs.io~1version",
            "/spec/template/spec/serviceAccountName",
            "/spec/template/spec/containers/0/ports/0/protocol",
            "/spec/template/spec/containers/1/ports/0/protocol",
            "/spec/template/spec/containers/2/ports/0/protocol",
            "/spec/template/spec/containers/2/image",
            "/spec/template/spec/containers/2/command",
            "/spec/template/spec/containers/2/args",
        ]
    );
}

/// The volume-manager's access env (who may log in, CHAP from the volume's Secret) is ours and
/// appears only when the CVC asks for it; the rest of the Deployment does not change.
#[test]
fn conditional_target_env_is_ours() {
    let asked = cvc(json!({
        annotations::TARGET_INITIATORS: "iqn.2005-03.org.open-iscsi:app-1",
        annotations::TARGET_CHAP_SECRET: "pvc-0a1b2c3d-chap",
    }));
    let ours = target_deployment(&asked, &cv(), &policy(), &cvc_config()).unwrap();
    let mut want = expected(GO_TARGET_DEPLOYMENT, &target_differences());
    let env = "/spec/template/spec/containers/2/env/-";
    for extra in [
        json!({"name": "CSTOR_TARGET_INITIATORS", "value": "iqn.2005-03.org.open-iscsi:app-1"}),
        json!({"name": "CSTOR_TARGET_CHAP_USER", "valueFrom": {"secretKeyRef": {"name": "pvc-0a1b2c3d-chap", "key": "username"}}}),
        json!({"name": "CSTOR_TARGET_CHAP_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pvc-0a1b2c3d-chap", "key": "password"}}}),
    ] {
        apply(&mut want, &diff(env, extra, "access control of our target"));
    }
    assert_eq!(serde_json::to_value(&ours).unwrap(), want);
}

/// The local runner runs the one container whose command is `cstor` (local/src/pods.rs): each
/// Deployment has exactly one, the manager, and the other containers are Go's.
#[test]
fn one_container_runs_our_binary() {
    let pool = pool_manager_deployment(&cspc(), &cspi(), &cspc_config()).unwrap();
    let target = target_deployment(&cvc(json!({})), &cv(), &policy(), &cvc_config()).unwrap();
    let ours = |d: &Deployment| -> Vec<(String, Vec<String>)> {
        d.spec
            .template
            .spec
            .as_ref()
            .map(|p| p.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|c| c.command.as_deref() == Some(&["cstor".to_string()]))
            .map(|c| (c.name.clone(), c.args.clone().unwrap_or_default()))
            .collect()
    };
    assert_eq!(
        ours(&pool),
        vec![(
            "cstor-pool-mgmt".to_string(),
            vec!["pool-manager".to_string()]
        )]
    );
    assert_eq!(
        ours(&target),
        vec![(
            "cstor-volume-mgmt".to_string(),
            vec!["volume-manager".to_string()]
        )]
    );
    assert_eq!(pool.name_any(), "cspc-stripe-x7k2");
    assert_eq!(target.name_any(), "pvc-0a1b2c3d-target");
}

/// `OPENEBS_IO_IMAGE_PULL_SECRETS` as the Go chart writes it (a trailing comma) and with blanks.
#[test]
fn image_pull_secret_names() {
    assert_eq!(pull_secret_names(""), Vec::<String>::new());
    assert_eq!(pull_secret_names("a,b,"), vec!["a", "b"]);
    assert_eq!(pull_secret_names(" a , ,b "), vec!["a", "b"]);
    let mut config = cspc_config();
    config.image_pull_secrets.clear();
    let d = pool_manager_deployment(&cspc(), &cspi(), &config).unwrap();
    assert_eq!(
        d.spec.template.spec.unwrap().image_pull_secrets,
        None,
        "none set: omitted, as Go's empty list is"
    );
}
