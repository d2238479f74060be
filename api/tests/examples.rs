//! Golden tests of examples/: every manifest deserializes into its Rust type with no unknown
//! field and serializes back to the same JSON.

use std::path::Path;

use cstor_api::cstor_v1::{CStorPoolCluster, CStorVolumeConfig};
use cstor_api::openebs_v1alpha1::BlockDevice;
use pretty_assertions::assert_eq;
use serde::Serialize;

fn documents(file: &str) -> Vec<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read example");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

fn round_trip<T: cstor_api::resource::StrictParse + Serialize>(doc: serde_json::Value) {
    let (typed, unknown) = cstor_api::parse_strict::<T>(doc.clone()).expect("typed parse");
    assert_eq!(unknown, Vec::<String>::new(), "unknown fields in {doc}");
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(back, doc);
}

#[test]
fn cspc_examples_round_trip() {
    for file in ["cspc-stripe.yaml", "cspc-mirror.yaml", "cspc-raidz2.yaml"] {
        let docs = documents(file);
        assert_eq!(docs.len(), 1, "{file}");
        for doc in docs {
            round_trip::<CStorPoolCluster>(doc);
        }
    }
}

#[test]
fn cvc_example_round_trips() {
    for doc in documents("cvc.yaml") {
        round_trip::<CStorVolumeConfig>(doc);
    }
}

#[test]
fn blockdevice_examples_round_trip() {
    let docs = documents("blockdevices.yaml");
    assert_eq!(docs.len(), 13);
    for doc in docs {
        round_trip::<BlockDevice>(doc);
    }
}

#[test]
fn a_manifest_of_another_kind_is_refused() {
    let mut doc = documents("cspc-stripe.yaml").remove(0);
    doc["kind"] = "CStorPoolInstance".into();
    let err = serde_json::from_value::<CStorPoolCluster>(doc).expect_err("wrong kind");
    assert_eq!(
        err.to_string(),
        r#"kind "CStorPoolInstance" is not "CStorPoolCluster""#
    );
}

#[test]
fn unknown_fields_are_dropped_and_reported_by_parse_strict() {
    let mut doc = documents("cspc-stripe.yaml").remove(0);
    doc["spec"]["pools"][0]["poolConfig"]["cacheFile"] = "/tmp/pool.cache".into();
    let (typed, unknown) = cstor_api::parse_strict::<CStorPoolCluster>(doc).expect("lenient parse");
    assert_eq!(
        unknown,
        vec!["spec.pools.0.poolConfig.cacheFile".to_string()]
    );
    let back = serde_json::to_value(&typed).expect("serialize");
    assert!(
        back["spec"]["pools"][0]["poolConfig"]
            .get("cacheFile")
            .is_none()
    );
}
