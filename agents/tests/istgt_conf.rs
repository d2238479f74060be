//! istgt.conf rendered from CStorVolumes equals the golden files derived from the Go sidecar's
//! template, and volumes istgt would refuse are refused before a conf is written.

use std::path::Path;

use cstor_agents::volume_manager::istgt::conf::{InvalidVolume, render};
use cstor_api::cstor_v1::CStorVolume;
use serde_json::{Value, json};

fn cv(v: Value) -> CStorVolume {
    serde_json::from_value(v).expect("cv")
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/istgt/{name}")),
    )
    .expect("golden")
}

#[test]
fn rendered_confs_equal_the_templates_rendering() {
    let cases = [
        (
            "fresh.conf",
            json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
                   "metadata": {"name": "pvc-0a1b2c3d", "namespace": "openebs", "uid": "5f2d7c1e-9a3b-4c5d-8e7f-0a1b2c3d4e5f"},
                   "spec": {"capacity": "5Gi", "targetIP": "10.96.12.34", "replicationFactor": 3,
                            "consistencyFactor": 2, "desiredReplicationFactor": 3}}),
        ),
        (
            "known-replicas.conf",
            json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
                   "metadata": {"name": "pvc-77", "namespace": "openebs", "uid": "0c9d8e7f-6a5b-4c3d-2e1f-001122334455"},
                   "spec": {"capacity": "1536Mi", "targetIP": "10.96.0.77", "replicationFactor": 3,
                            "consistencyFactor": 2, "desiredReplicationFactor": 3,
                            "replicaDetails": {"knownReplicas": {
                                "C0FFEE00112233445566778899AABBCC": "6163",
                                "8D1E9A0C3B2F4E5D6A7B8C9D0E1F2A3B": "6161",
                                "1F2E3D4C5B6A79880716253443526170": "6162"}}}}),
        ),
        (
            "pre-1.3.conf",
            json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
                   "metadata": {"name": "pvc-old", "namespace": "openebs", "uid": "11111111-2222-3333-4444-555555555555"},
                   "spec": {"capacity": "10G", "targetIP": "10.0.0.9", "replicationFactor": 1,
                            "consistencyFactor": 1,
                            "replicaDetails": {"knownReplicas": {"8D1E9A0C3B2F4E5D6A7B8C9D0E1F2A3B": "6161"}}}}),
        ),
    ];
    for (file, v) in cases {
        let conf = render(&cv(v)).unwrap_or_else(|e| panic!("{file}: {e}"));
        pretty_assertions::assert_eq!(conf, golden(file), "{file}");
    }
}

#[test]
fn volumes_istgt_would_refuse_are_refused_with_the_reason() {
    let base = json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
        "metadata": {"name": "pv", "namespace": "openebs", "uid": "u"},
        "spec": {"capacity": "1Gi", "targetIP": "10.0.0.1", "replicationFactor": 3,
                 "consistencyFactor": 2, "desiredReplicationFactor": 3}});
    let with = |pointer: &str, value: Value| {
        let mut v = base.clone();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        v.pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .expect("parent")
            .insert(key.to_string(), value);
        cv(v)
    };
    let cases = [
        (
            with("/metadata/uid", json!("")),
            "CStorVolume pv has no uid",
        ),
        (
            with("/spec/targetIP", json!("")),
            "CStorVolume pv has no spec.targetIP",
        ),
        (
            with("/spec/capacity", json!("0")),
            "CStorVolume pv has no spec.capacity",
        ),
        (
            with("/spec/consistencyFactor", json!(4)),
            "CStorVolume pv: replication factors rf=3 cf=4 drf=3 are invalid (need 0 < cf <= rf <= drf <= 5)",
        ),
        (
            with("/spec/desiredReplicationFactor", json!(6)),
            "CStorVolume pv: replication factors rf=3 cf=2 drf=6 are invalid (need 0 < cf <= rf <= drf <= 5)",
        ),
        (
            with(
                "/spec/replicaDetails",
                json!({"knownReplicas": {"A": "1", "B": "2", "C": "3", "D": "4"}}),
            ),
            "CStorVolume pv knows 4 replicas but its desired replication factor is 3",
        ),
    ];
    for (v, want) in cases {
        let e: InvalidVolume = render(&v).expect_err(want);
        assert_eq!(e.to_string(), want);
    }
}
