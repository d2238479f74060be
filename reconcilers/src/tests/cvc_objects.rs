//! Table tests of the objects the cvc-operator makes: target Service, CStorVolume, CVRs, the
//! target Deployment and the PDB (names, labels, owners, env, selector, ports), the replica id
//! hash and the other deterministic names.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use super::cvc_common::*;
use crate::cvc::CvcConfig;
use crate::cvc::objects::{
    ReplicaPool, cv_apply, cvr_name, cvr_object, default_tolerations, initial_cv_spec, iqn,
    pdb_covers, pdb_name, pdb_object, policy_hash, replica_id, target_deployment, target_name,
    target_service, with_defaults,
};
use crate::cvc::reconcile::{pending_cvcs_of, union_pools, volume_of};
use cstor_api::cstor_v1::{CStorVolumePolicySpec, TargetSpec};
use cstor_api::keys::{annotations, finalizers, labels};
use k8s_openapi::api::core::v1::{EnvVar, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use pretty_assertions::assert_eq;
use serde_json::json;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn replica_id_is_xxh64_of_the_json_string() {
    // Computed independently (a Python XXH64, seed 0, over the 9 bytes `"pv-pool"`).
    assert_eq!(replica_id("pv", "pool"), "4745702462678428479");
    assert_eq!(replica_id("pvc-1", "cspc-a-bbbb"), "5675740373479880181");
}

#[test]
fn names() {
    assert_eq!(target_name("pvc-1"), "pvc-1-target");
    assert_eq!(cvr_name("pvc-1", "cspc-a-xyz1"), "pvc-1-cspc-a-xyz1");
    assert_eq!(iqn("pvc-1"), "iqn.2016-09.com.openebs.cstor:pvc-1");
    let a = pdb_name("cspc-a", &["p3".into(), "p1".into(), "p2".into()]);
    let b = pdb_name("cspc-a", &["p1".into(), "p2".into(), "p3".into()]);
    assert_eq!(a, b, "the PDB name does not depend on pool order");
    assert!(
        a.starts_with("cspc-a-") && a.len() == "cspc-a-".len() + 16,
        "{a}"
    );
    assert_ne!(
        a,
        pdb_name("cspc-a", &["p1".into(), "p2".into(), "p4".into()])
    );
}

#[test]
fn service() {
    let svc = target_service(&cvc(3), "4.0.0").unwrap();
    assert_eq!(svc.name_any(), "pvc-1");
    assert_eq!(svc.namespace().as_deref(), Some(NS));
    assert_eq!(
        svc.labels(),
        &map(&[
            ("openebs.io/target-service", "cstor-target-svc"),
            ("openebs.io/storage-engine-type", "cstor"),
            ("openebs.io/cas-type", "cstor"),
            ("openebs.io/persistent-volume", "pvc-1"),
            ("openebs.io/version", "4.0.0"),
        ])
    );
    let owner = &svc.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("CStorVolumeConfig", "pvc-1", "cvc-uid")
    );
    assert_eq!(owner.controller, Some(true));
    let spec = svc.spec.unwrap();
    assert_eq!(
        spec.selector.unwrap(),
        map(&[
            ("app", "cstor-volume-manager"),
            ("openebs.io/target", "cstor-target"),
            ("openebs.io/persistent-volume", "pvc-1"),
        ])
    );
    let ports: Vec<(String, i32, Option<IntOrString>, String)> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port, p.target_port, p.protocol.unwrap()))
        .collect();
    let tcp = |n: &str, p: i32| {
        (
            n.to_string(),
            p,
            Some(IntOrString::Int(p)),
            "TCP".to_string(),
        )
    };
    assert_eq!(
        ports,
        vec![
            tcp("cstor-iscsi", 3260),
            tcp("cstor-grpc", 7777),
            tcp("mgmt", 6060),
            tcp("exporter", 9500)
        ]
    );
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
}

#[test]
fn cstor_volume() {
    let c = cvc(3);
    let spec = initial_cv_spec(&c, "10.0.0.7");
    assert_eq!(spec.target_ip, "10.0.0.7");
    assert_eq!(spec.target_portal, "10.0.0.7:3260");
    assert_eq!(spec.target_port, "3260");
    assert_eq!(spec.iqn, "iqn.2016-09.com.openebs.cstor:pvc-1");
    assert_eq!(spec.capacity, Some(q("1Gi")));
    assert_eq!(spec.replication_factor, Some(3));
    assert_eq!(spec.desired_replication_factor, Some(3));
    assert_eq!(spec.consistency_factor, Some(2));
    assert_eq!(initial_cv_spec(&cvc(1), "x").consistency_factor, Some(1));
    assert_eq!(initial_cv_spec(&cvc(4), "x").consistency_factor, Some(3));
    let body = cv_apply(&c, &spec, "4.0.0", None).unwrap();
    assert_eq!(body["apiVersion"], "cstor.openebs.io/v1");
    assert_eq!(body["kind"], "CStorVolume");
    assert_eq!(body["metadata"]["name"], "pvc-1");
    assert_eq!(
        body["metadata"]["labels"],
        json!({
            "openebs.io/persistent-volume": "pvc-1",
            "openebs.io/version": "4.0.0",
            "openebs.io/persistent-volume-claim": "claim-1",
        })
    );
    assert_eq!(
        body["metadata"]["ownerReferences"][0]["kind"],
        "CStorVolumeConfig"
    );
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "cvc-uid");
    assert_eq!(body["spec"]["targetIP"], "10.0.0.7");
    assert_eq!(body["spec"]["capacity"], "1Gi");
    assert_eq!(
        body["versionDetails"],
        json!({"desired": "4.0.0", "status": {"dependentsUpgraded": true, "current": "4.0.0"}})
    );
    assert!(
        body.get("status").is_none(),
        "CV status belongs to the volume-manager"
    );
    let mut clone = cvc(1);
    clone.spec.cstor_volume_source = "pvc-src@snap-1".into();
    let body = cv_apply(&clone, &spec, "4.0.0", None).unwrap();
    assert_eq!(
        body["metadata"]["labels"]["openebs.io/source-volume"],
        "pvc-src"
    );
}

fn pool() -> ReplicaPool {
    ReplicaPool {
        name: "cspc-a-bbbb".into(),
        uid: "cspi-uid-b".into(),
        hostname: "host-2".into(),
    }
}

#[test]
fn replica_at_provisioning_and_at_scale_up() {
    let mut c = cvc(3);
    c.spec.policy.replica = Some(cstor_api::cstor_v1::ReplicaSpec {
        zvol_workers: "4".into(),
        ..Default::default()
    });
    let r = cvr_object(&c, &cv(3), &pool(), "1Gi", "", "4.0.0").unwrap();
    assert_eq!(r.name_any(), "pvc-1-cspc-a-bbbb");
    assert_eq!(r.namespace().as_deref(), Some(NS));
    assert_eq!(
        r.labels(),
        &map(&[
            (labels::CSPI_NAME, "cspc-a-bbbb"),
            (labels::CSPI_UID, "cspi-uid-b"),
            (labels::CSTOR_VOLUME_NAME, "pvc-1"),
            (labels::PERSISTENT_VOLUME, "pvc-1"),
            (labels::VERSION, "4.0.0"),
        ])
    );
    assert_eq!(
        r.annotations(),
        &map(&[(annotations::CSPI_HOSTNAME, "host-2")])
    );
    assert_eq!(r.finalizers(), &[finalizers::CVR.to_string()]);
    let owner = &r.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("CStorVolume", "pvc-1", "cv-uid")
    );
    assert_eq!(r.spec.target_ip, "10.0.0.7");
    assert_eq!(r.spec.capacity, "1Gi");
    assert_eq!(r.spec.replica_id, "");
    assert_eq!(r.spec.zvol_workers, "4");
    assert_eq!(r.status, None, "phase \"\" at provisioning");
    let vs = r.version_details.unwrap().status.unwrap();
    assert_eq!(
        (vs.current.as_str(), vs.dependents_upgraded),
        ("4.0.0", true)
    );

    let id = replica_id("pvc-1", "cspc-a-bbbb");
    let up = cvr_object(&c, &cv(3), &pool(), "2Gi", &id, "4.0.0").unwrap();
    assert_eq!(up.spec.replica_id, "5675740373479880181");
    assert_eq!(up.spec.capacity, "2Gi");
}

#[test]
fn replica_of_a_clone_and_of_a_restore() {
    let mut c = cvc(1);
    c.spec.cstor_volume_source = "pvc-src@snap-1".into();
    c.annotations_mut()
        .insert(annotations::CREATED_THROUGH.into(), "restore".into());
    let r = cvr_object(&c, &cv(1), &pool(), "1Gi", "", "4.0.0").unwrap();
    assert_eq!(
        r.labels().get(labels::CLONED).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        r.annotations(),
        &map(&[
            (annotations::CSPI_HOSTNAME, "host-2"),
            (annotations::SOURCE_VOLUME, "pvc-src"),
            (annotations::SNAPSHOT, "snap-1"),
            (annotations::IS_RESTORE_VOL, "true"),
        ])
    );
}

fn config() -> CvcConfig {
    CvcConfig {
        volume_manager_image: "openebs/cstor-rs:test".into(),
        istgt_image: "openebs/cstor-istgt:test".into(),
        base_dir: "/var/openebs/".into(),
        ..CvcConfig::default()
    }
}

fn value_env(name: &str, value: &str) -> (String, Option<String>, Option<String>) {
    (name.into(), Some(value.into()), None)
}

fn field_env(name: &str, path: &str) -> (String, Option<String>, Option<String>) {
    (name.into(), None, Some(path.into()))
}

fn envs(env: &[EnvVar]) -> Vec<(String, Option<String>, Option<String>)> {
    env.iter()
        .map(|e| {
            (
                e.name.clone(),
                e.value.clone(),
                e.value_from
                    .as_ref()
                    .and_then(|f| f.field_ref.as_ref())
                    .map(|f| f.field_path.clone()),
            )
        })
        .collect()
}

#[test]
fn target_deployment_with_default_policy() {
    let c = cvc(3);
    let policy = with_defaults(CStorVolumePolicySpec::default());
    let d = target_deployment(&c, &cv(3), &policy, &config()).unwrap();
    assert_eq!(d.name_any(), "pvc-1-target");
    assert_eq!(
        d.labels(),
        &map(&[
            ("app", "cstor-volume-manager"),
            ("openebs.io/target", "cstor-target"),
            ("openebs.io/storage-engine-type", "cstor"),
            ("openebs.io/cas-type", "cstor"),
            ("openebs.io/persistent-volume", "pvc-1"),
            ("openebs.io/persistent-volume-claim", "claim-1"),
            ("openebs.io/version", "4.0.0"),
        ])
    );
    assert_eq!(
        d.annotations(),
        &map(&[
            ("openebs.io/volume-monitor", "true"),
            ("openebs.io/volume-type", "cstor")
        ])
    );
    let owner = &d.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("CStorVolume", "pvc-1", "cv-uid")
    );
    let spec = d.spec;
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let selector = map(&[
        ("app", "cstor-volume-manager"),
        ("openebs.io/target", "cstor-target"),
        ("openebs.io/persistent-volume", "pvc-1"),
    ]);
    assert_eq!(spec.selector.match_labels.as_ref(), Some(&selector));
    let tmeta = spec.template.metadata.unwrap();
    let pod_labels = tmeta.labels.unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    assert_eq!(
        pod_labels.get("monitoring").map(String::as_str),
        Some("volume_exporter_prometheus")
    );
    assert_eq!(
        tmeta.annotations.unwrap(),
        map(&[
            ("prometheus.io/path", "/metrics"),
            ("prometheus.io/port", "9500"),
            ("prometheus.io/scrape", "true"),
        ])
    );
    let pod = spec.template.spec.unwrap();
    // Its own account: the admission policy ties its writes to this CStorVolume.
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("cstor-volume-manager-pvc-1")
    );
    assert_eq!(
        pod.tolerations.as_deref(),
        Some(default_tolerations().as_slice())
    );
    assert_eq!(pod.tolerations.as_ref().unwrap().len(), 4);
    assert_eq!(pod.node_selector, None);
    assert_eq!(pod.priority_class_name, None);
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["cstor-istgt", "maya-volume-exporter", "cstor-volume-mgmt"]
    );
    let istgt = &pod.containers[0];
    assert_eq!(istgt.image.as_deref(), Some("openebs/cstor-istgt:test"));
    assert_eq!(
        envs(istgt.env.as_ref().unwrap()),
        vec![value_env("QueueDepth", "32"), value_env("Luworkers", "6")]
    );
    assert_eq!(istgt.ports.as_ref().unwrap()[0].container_port, 3260);
    let mgmt = &pod.containers[2];
    assert_eq!(mgmt.image.as_deref(), Some("openebs/cstor-rs:test"));
    assert_eq!(mgmt.command, Some(vec!["cstor".to_string()]));
    assert_eq!(mgmt.args, Some(vec!["volume-manager".to_string()]));
    assert_eq!(
        envs(mgmt.env.as_ref().unwrap()),
        vec![
            value_env("OPENEBS_IO_CSTOR_VOLUME_ID", "cv-uid"),
            value_env("RESYNC_INTERVAL", "30"),
            field_env("NODE_NAME", "spec.nodeName"),
            field_env("POD_NAME", "metadata.name"),
            field_env("OPENEBS_NAMESPACE", "metadata.namespace"),
        ]
    );
    for c in &pod.containers {
        // As in Go, the exporter is the one unprivileged container.
        let privileged = c.security_context.as_ref().and_then(|s| s.privileged);
        let want = (c.name != "maya-volume-exporter").then_some(true);
        assert_eq!(privileged, want, "{}", c.name);
        let mounts: Vec<(&str, &str)> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(
            mounts,
            vec![
                ("sockfile", "/var/run"),
                ("conf", "/usr/local/etc/istgt"),
                ("storagepath", "/var/openebs/cstor-target")
            ]
        );
    }
    let zero = with_defaults(CStorVolumePolicySpec::default())
        .target
        .unwrap()
        .resources
        .unwrap();
    assert_eq!(zero.limits.unwrap().get("cpu"), Some(&q("0")));
    let volumes = pod.volumes.unwrap();
    assert_eq!(volumes[0].name, "sockfile");
    assert!(volumes[0].empty_dir.is_some());
    assert_eq!(volumes[1].name, "conf");
    assert!(volumes[1].empty_dir.is_some());
    let hp = volumes[2].host_path.as_ref().unwrap();
    assert_eq!(
        (
            volumes[2].name.as_str(),
            hp.path.as_str(),
            hp.type_.as_deref()
        ),
        (
            "storagepath",
            "/var/openebs/cstor-target/pvc-1",
            Some("DirectoryOrCreate")
        )
    );
}

#[test]
fn target_deployment_follows_the_policy() {
    let policy = with_defaults(CStorVolumePolicySpec {
        target: Some(TargetSpec {
            queue_depth: "64".into(),
            lu_workers: Some(2),
            priority_class_name: "high".into(),
            node_selector: map(&[("zone", "a")]),
            tolerations: vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            }],
            ..TargetSpec::default()
        }),
        ..CStorVolumePolicySpec::default()
    });
    let d = target_deployment(&cvc(1), &cv(1), &policy, &config()).unwrap();
    let pod = d.spec.template.spec.unwrap();
    assert_eq!(pod.priority_class_name.as_deref(), Some("high"));
    assert_eq!(pod.node_selector, Some(map(&[("zone", "a")])));
    assert_eq!(
        pod.tolerations.unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    assert_eq!(
        envs(pod.containers[0].env.as_ref().unwrap()),
        vec![value_env("QueueDepth", "64"), value_env("Luworkers", "2")]
    );
    assert_ne!(
        policy_hash(&policy),
        policy_hash(&with_defaults(CStorVolumePolicySpec::default())),
        "a policy edit changes the template-hash label"
    );
    assert_eq!(policy_hash(&policy), policy_hash(&policy.clone()));
}

#[test]
fn pod_disruption_budget() {
    let pools: Vec<String> = vec!["p3".into(), "p1".into(), "p2".into()];
    let pdb = pdb_object(NS, "cspc-a", &pools);
    assert_eq!(pdb.name_any(), pdb_name("cspc-a", &pools));
    assert_eq!(pdb.namespace().as_deref(), Some(NS));
    assert_eq!(
        pdb.labels(),
        &map(&[
            ("openebs.io/p1", "true"),
            ("openebs.io/p2", "true"),
            ("openebs.io/p3", "true"),
            ("openebs.io/cstor-pool-cluster", "cspc-a"),
        ])
    );
    let spec = pdb.spec.clone().unwrap();
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    let sel = spec.selector.unwrap();
    assert_eq!(sel.match_labels, Some(map(&[("app", "cstor-pool")])));
    let expr = &sel.match_expressions.unwrap()[0];
    assert_eq!(expr.key, "openebs.io/cstor-pool-instance");
    assert_eq!(expr.operator, "In");
    assert_eq!(
        expr.values,
        Some(vec!["p1".to_string(), "p2".to_string(), "p3".to_string()])
    );
    assert!(pdb_covers(&pdb, &["p2".into(), "p1".into(), "p3".into()]));
    assert!(!pdb_covers(&pdb, &["p1".into(), "p2".into()]));
}

#[test]
fn pools_bookkeeping() {
    assert_eq!(
        union_pools(&["b".into(), "a".into()], &["a".into(), "c".into()]),
        vec!["b".to_string(), "a".to_string(), "c".to_string()]
    );
}

#[test]
fn watch_mappings() {
    let r = cvr_object(&cvc(1), &cv(1), &pool(), "1Gi", "", "4.0.0").unwrap();
    let target = volume_of(&r).unwrap();
    assert_eq!(
        (target.name.as_str(), target.namespace.as_deref()),
        ("pvc-1", Some(NS))
    );

    let pending = Arc::new(cvc(1));
    let mut bound = cvc(1);
    bound.metadata.name = Some("pvc-2".into());
    bound.status.as_mut().unwrap().phase = "Bound".into();
    let mut other = cvc(1);
    other.metadata.name = Some("pvc-3".into());
    other
        .labels_mut()
        .insert(labels::CSTOR_POOL_CLUSTER.into(), "cspc-b".into());
    let all = vec![pending, Arc::new(bound), Arc::new(other)];
    let refs = pending_cvcs_of(&cspi("cspc-a-aaaa", "cspc-a", "n1", "ONLINE", "1Gi"), &all);
    let names: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["pvc-1"], "only Pending CVCs of the pool's CSPC");
}
