//! CSPC and CSPI conversion: round trips are identity (proptest, 10 000 cases each way, through
//! JSON as on the wire), golden fixtures of real manifests in both versions, malformed objects
//! get a Failure naming the field, and the admission text for what v1 pools cannot run.

use cstor_api::cstor_v1 as v1;
use cstor_api::cstor_v1alpha1 as alpha;
use cstor_webhooks::convert::{self, CONVERSION_DATA};
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use pretty_assertions::assert_eq;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn wire<T: serde::Serialize + serde::de::DeserializeOwned>(t: &T) -> T {
    let text = serde_json::to_string(t).expect("encode");
    serde_json::from_str(&text).expect("decode")
}

fn meta() -> impl Strategy<Value = ObjectMeta> {
    (
        "[a-z]{1,8}",
        prop::option::of(prop::collection::btree_map(
            "[a-z]{1,5}",
            "[a-z0-9]{0,5}",
            1..3,
        )),
    )
        .prop_map(|(name, annotations)| ObjectMeta {
            name: Some(name),
            namespace: Some("openebs".into()),
            annotations,
            ..ObjectMeta::default()
        })
}

fn selector() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop_oneof![Just("kubernetes.io/hostname".to_string()), "[a-z]{1,4}"],
        "[a-z0-9-]{1,8}",
        0..3,
    )
}

fn raid_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("stripe".into()),
        Just("mirror".into()),
        Just("raidz".into()),
        Just("raidz2".into()),
        "[a-z]{1,6}",
    ]
}

fn resources() -> impl Strategy<Value = Option<ResourceRequirements>> {
    prop::option::of(Just(ResourceRequirements {
        limits: Some([("memory".to_string(), Quantity("1Gi".into()))].into()),
        ..ResourceRequirements::default()
    }))
}

fn tolerations() -> impl Strategy<Value = Vec<Toleration>> {
    prop::collection::vec(
        "[a-z]{1,5}".prop_map(|k| Toleration {
            key: Some(k),
            operator: Some("Exists".into()),
            ..Toleration::default()
        }),
        0..2,
    )
}

fn v1_group() -> impl Strategy<Value = v1::cspc::RaidGroup> {
    prop::collection::vec(
        (
            "bd-[a-z0-9]{1,4}",
            prop_oneof![Just(0u64), Just(1u64 << 30), any::<u64>()],
            "[a-z/]{0,6}",
        )
            .prop_map(|(block_device_name, capacity, dev_link)| {
                v1::cspc::CStorPoolInstanceBlockDevice {
                    block_device_name,
                    capacity,
                    dev_link,
                }
            }),
        0..4,
    )
    .prop_map(|block_devices| v1::cspc::RaidGroup { block_devices })
}

fn v1_config() -> impl Strategy<Value = Option<v1::cspc::PoolConfig>> {
    prop::option::of(
        (
            raid_type(),
            raid_type(),
            any::<bool>(),
            prop_oneof![Just(String::new()), Just("lz4".into()), Just("off".into())],
            resources(),
            prop::option::of(tolerations()),
            prop::option::of(prop_oneof![Just(String::new()), "[a-z]{1,6}"]),
            prop::option::of(0..100i32),
        )
            .prop_map(
                |(d, w, thick, compression, resources, tolerations, pc, ro)| v1::cspc::PoolConfig {
                    data_raid_group_type: d,
                    write_cache_group_type: w,
                    thick_provision: thick,
                    compression,
                    resources: resources.clone(),
                    aux_resources: resources,
                    tolerations,
                    priority_class_name: pc,
                    ro_threshold_limit: ro,
                },
            ),
    )
}

fn v1_cspc() -> impl Strategy<Value = v1::CStorPoolCluster> {
    let pool = (
        selector(),
        prop::collection::vec(v1_group(), 0..3),
        prop::option::of(prop::collection::vec(v1_group(), 0..2)),
        v1_config(),
    )
        .prop_map(
            |(node_selector, data_raid_groups, write_cache_raid_groups, pool_config)| {
                v1::cspc::PoolSpec {
                    node_selector,
                    data_raid_groups,
                    write_cache_raid_groups,
                    pool_config,
                }
            },
        );
    let status = prop::option::of(
        (
            prop::option::of(0..4i32),
            prop::option::of(0..4i32),
            prop::option::of(0..4i32),
        )
            .prop_map(|(p, d, h)| v1::cspc::CStorPoolClusterStatus {
                provisioned_instances: p,
                desired_instances: d,
                healthy_instances: h,
                conditions: Vec::new(),
            }),
    );
    (
        meta(),
        prop::collection::vec(pool, 0..4),
        resources(),
        tolerations(),
        prop_oneof![Just(String::new()), "[a-z]{1,6}"],
        status,
    )
        .prop_map(
            |(metadata, pools, resources, tolerations, priority_class_name, status)| {
                v1::CStorPoolCluster {
                    metadata,
                    spec: v1::cspc::CStorPoolClusterSpec {
                        pools,
                        resources: resources.clone(),
                        aux_resources: resources,
                        tolerations,
                        priority_class_name,
                    },
                    status,
                    version_details: None,
                }
            },
        )
}

fn alpha_group() -> impl Strategy<Value = alpha::cspc::RaidGroup> {
    (
        raid_type(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(
            (
                "bd-[a-z0-9]{1,4}",
                prop_oneof![
                    Just(String::new()),
                    Just("1073741824".into()),
                    Just("10Gi".into()),
                    "[a-z0-9.]{1,5}"
                ],
                "[a-z/]{0,6}",
            )
                .prop_map(|(block_device_name, capacity, dev_link)| {
                    alpha::cspc::CStorPoolClusterBlockDevice {
                        block_device_name,
                        capacity,
                        dev_link,
                    }
                }),
            0..4,
        ),
    )
        .prop_map(
            |(type_, is_write_cache, is_spare, is_read_cache, block_devices)| {
                alpha::cspc::RaidGroup {
                    type_,
                    is_write_cache,
                    is_spare,
                    is_read_cache,
                    block_devices,
                }
            },
        )
}

fn alpha_config() -> impl Strategy<Value = alpha::cspc::PoolConfig> {
    (
        prop_oneof![Just(String::new()), "/[a-z]{1,6}"],
        raid_type(),
        any::<bool>(),
        prop_oneof![Just(String::new()), Just("lz4".into()), Just("on".into())],
        resources(),
        tolerations(),
        prop_oneof![Just(String::new()), "[a-z]{1,6}"],
    )
        .prop_map(
            |(cache_file, d, over, compression, resources, tolerations, pc)| {
                alpha::cspc::PoolConfig {
                    cache_file,
                    default_raid_group_type: d,
                    over_provisioning: over,
                    compression,
                    resources: resources.clone(),
                    aux_resources: resources,
                    tolerations,
                    priority_class_name: pc,
                }
            },
        )
}

fn alpha_cspc() -> impl Strategy<Value = alpha::CStorPoolCluster> {
    let pool = (
        selector(),
        prop::collection::vec(alpha_group(), 0..4),
        alpha_config(),
    )
        .prop_map(
            |(node_selector, raid_groups, pool_config)| alpha::cspc::PoolSpec {
                node_selector,
                raid_groups,
                pool_config,
            },
        );
    (
        meta(),
        prop::collection::vec(pool, 0..4),
        tolerations(),
        prop_oneof![Just(String::new()), Just("Healthy".into()), "[A-Za-z]{1,6}"],
        prop_oneof![Just(String::new()), Just("10Gi".into())],
    )
        .prop_map(
            |(metadata, pools, tolerations, phase, total)| alpha::CStorPoolCluster {
                metadata,
                spec: alpha::cspc::CStorPoolClusterSpec {
                    pools,
                    tolerations,
                    ..Default::default()
                },
                status: alpha::cspc::CStorPoolClusterStatus {
                    phase,
                    capacity: alpha::cspc::CStorPoolCapacityAttr {
                        total,
                        ..Default::default()
                    },
                },
                version_details: Default::default(),
            },
        )
}

fn v1_cspi() -> impl Strategy<Value = v1::CStorPoolInstance> {
    (
        meta(),
        "[a-z0-9-]{0,8}",
        selector(),
        v1_config(),
        prop::collection::vec(v1_group(), 0..3),
        prop::option::of(prop::collection::vec(v1_group(), 0..2)),
        prop::option::of((
            prop_oneof![Just(String::new()), Just("ONLINE".into())],
            any::<bool>(),
            0..5i32,
            prop::option::of(Just(v1::cspi::CStorPoolInstanceCapacity {
                used: Quantity("1Gi".into()),
                free: Quantity("9Gi".into()),
                total: Quantity("10Gi".into()),
                zfs: Default::default(),
            })),
        )),
    )
        .prop_map(
            |(metadata, host_name, node_selector, pool_config, data, wc, status)| {
                v1::CStorPoolInstance {
                    metadata,
                    spec: v1::cspi::CStorPoolInstanceSpec {
                        host_name,
                        node_selector,
                        pool_config,
                        data_raid_groups: data,
                        write_cache_raid_groups: wc,
                    },
                    status: status.map(|(phase, read_only, replicas, capacity)| {
                        v1::cspi::CStorPoolInstanceStatus {
                            phase,
                            read_only,
                            provisioned_replicas: replicas,
                            healthy_replicas: replicas,
                            capacity,
                            conditions: Vec::new(),
                        }
                    }),
                    version_details: None,
                }
            },
        )
}

fn alpha_cspi() -> impl Strategy<Value = alpha::CStorPoolInstance> {
    (
        meta(),
        "[a-z0-9-]{0,8}",
        selector(),
        alpha_config(),
        prop::collection::vec(alpha_group(), 0..4),
        prop_oneof![Just(String::new()), Just("ONLINE".into())],
        any::<bool>(),
    )
        .prop_map(
            |(metadata, host_name, node_selector, pool_config, raid_groups, phase, read_only)| {
                alpha::CStorPoolInstance {
                    metadata,
                    spec: alpha::cspi::CStorPoolInstanceSpec {
                        host_name,
                        node_selector,
                        pool_config,
                        raid_groups,
                    },
                    status: alpha::cspi::CStorPoolInstanceStatus {
                        phase,
                        read_only,
                        ..Default::default()
                    },
                    version_details: Default::default(),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn cspc_v1_alpha_v1_is_identity(o in v1_cspc()) {
        let there = wire(&convert::cspc_to_alpha(&o));
        let back = wire(&convert::cspc_to_v1(&there));
        prop_assert_eq!(back, o);
    }

    #[test]
    fn cspc_alpha_v1_alpha_is_identity(a in alpha_cspc()) {
        let there = wire(&convert::cspc_to_v1(&a));
        let back = wire(&convert::cspc_to_alpha(&there));
        prop_assert_eq!(back, a);
    }

    #[test]
    fn cspi_v1_alpha_v1_is_identity(o in v1_cspi()) {
        let there = wire(&convert::cspi_to_alpha(&o));
        let back = wire(&convert::cspi_to_v1(&there));
        prop_assert_eq!(back, o);
    }

    #[test]
    fn cspi_alpha_v1_alpha_is_identity(a in alpha_cspi()) {
        let there = wire(&convert::cspi_to_v1(&a));
        let back = wire(&convert::cspi_to_alpha(&there));
        prop_assert_eq!(back, a);
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A 1.x manifest of the OpenEBS docs converts to the v1 a user would write, with no
/// conversion data (nothing lost); the v1 one converts back to the 1.x manifest exactly.
#[test]
fn golden_mirror_cspc_both_ways() {
    let old = fixture("cspc-mirror-v1alpha1.yaml");
    let new = fixture("cspc-mirror-v1.yaml");
    let got = convert::convert_object(&old, "cstor.openebs.io/v1").expect("to v1");
    let got: v1::CStorPoolCluster = serde_json::from_value(got).expect("typed v1");
    let want: v1::CStorPoolCluster = serde_json::from_value(new.clone()).expect("fixture v1");
    assert_eq!(got, want);
    let back = convert::convert_object(&new, "cstor.openebs.io/v1alpha1").expect("to v1alpha1");
    let back: alpha::CStorPoolCluster = serde_json::from_value(back).expect("typed v1alpha1");
    let want: alpha::CStorPoolCluster = serde_json::from_value(old).expect("fixture v1alpha1");
    assert_eq!(back, want);
}

/// A 1.x pool with a spare group and a cache file keeps both in the annotation, and the
/// admission text names what v1 cannot run.
#[test]
fn golden_spare_group_is_kept_and_named() {
    let old = fixture("cspc-raidz-spare-v1alpha1.yaml");
    let v1_obj = convert::convert_object(&old, "cstor.openebs.io/v1").expect("to v1");
    let typed: v1::CStorPoolCluster = serde_json::from_value(v1_obj.clone()).expect("typed");
    assert_eq!(typed.spec.pools[0].data_raid_groups.len(), 1);
    assert!(
        typed
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(CONVERSION_DATA)),
        "conversion data kept"
    );
    assert_eq!(
        convert::v1alpha1_unsupported(&typed.metadata).as_deref(),
        Some("pool on node worker-1 uses spare raid groups, which cStor v1 pools do not support")
    );
    let back = convert::convert_object(&v1_obj, "cstor.openebs.io/v1alpha1").expect("back");
    let back: alpha::CStorPoolCluster = serde_json::from_value(back).expect("typed");
    let want: alpha::CStorPoolCluster = serde_json::from_value(old).expect("fixture");
    assert_eq!(back, want);
}

#[test]
fn mixed_raid_types_are_named() {
    let a: alpha::CStorPoolCluster = serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1alpha1", "kind": "CStorPoolCluster",
        "metadata": {"name": "mixed"},
        "spec": {"pools": [{"nodeSelector": {"kubernetes.io/hostname": "n1"},
            "raidGroups": [{"type": "mirror", "blockDevices": [{"blockDeviceName": "a"}, {"blockDeviceName": "b"}]},
                           {"type": "raidz", "blockDevices": [{"blockDeviceName": "c"}, {"blockDeviceName": "d"}, {"blockDeviceName": "e"}]}],
            "poolConfig": {"defaultRaidGroupType": "mirror"}}]},
    }))
    .expect("alpha");
    let o = convert::cspc_to_v1(&a);
    assert_eq!(
        convert::v1alpha1_unsupported(&o.metadata).as_deref(),
        Some(
            "pool on node n1 uses mixed data raid types (mirror, raidz), which cStor v1 pools do not support"
        )
    );
}

#[test]
fn malformed_objects_name_the_field() {
    let bad = json!({
        "apiVersion": "cstor.openebs.io/v1alpha1", "kind": "CStorPoolCluster",
        "metadata": {"name": "bad"},
        "spec": {"pools": [{"raidGroups": [{"isSpare": "yes"}]}]},
    });
    assert_eq!(
        convert::convert_object(&bad, "cstor.openebs.io/v1").map(|_| ()).map_err(|e| e.to_string()),
        Err("CStorPoolCluster bad: field spec.pools[0].raidGroups[0].isSpare: invalid type: string \"yes\", expected a boolean".to_string())
    );
    let other = json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume", "metadata": {"name": "v"}});
    assert_eq!(
        convert::convert_object(&other, "cstor.openebs.io/v1alpha1").map_err(|e| e.to_string()),
        Err("CStorVolume v: cannot convert to cstor.openebs.io/v1alpha1: no conversion from cstor.openebs.io/v1 CStorVolume (served: cstor.openebs.io/v1, cstor.openebs.io/v1alpha1 of CStorPoolCluster and CStorPoolInstance)".to_string())
    );
}

#[test]
fn review_echoes_uid_and_fails_whole_request_on_a_bad_object() {
    let good = fixture("cspc-mirror-v1alpha1.yaml");
    let review = |objects: Vec<Value>| -> kube::core::conversion::ConversionReview {
        serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": "u-42", "desiredAPIVersion": "cstor.openebs.io/v1", "objects": objects},
        }))
        .expect("review")
    };
    let ok = serde_json::to_value(convert::review(review(vec![good.clone()]))).expect("json");
    assert_eq!(ok["response"]["uid"], "u-42");
    assert_eq!(ok["response"]["result"]["status"], "Success");
    assert_eq!(
        ok["response"]["convertedObjects"][0]["apiVersion"],
        "cstor.openebs.io/v1"
    );
    let bad = json!({"apiVersion": "cstor.openebs.io/v1alpha1", "kind": "CStorPoolCluster",
                     "metadata": {"name": "bad"}, "spec": {"pools": "nope"}});
    let failed = serde_json::to_value(convert::review(review(vec![good, bad]))).expect("json");
    assert_eq!(failed["response"]["uid"], "u-42");
    assert_eq!(failed["response"]["result"]["status"], "Failure");
    assert!(
        failed["response"]["result"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("CStorPoolCluster bad: field spec.pools:")),
        "{failed}"
    );
}

/// The admission flow: a 1.x object is converted to v1, the mutating webhook adds
/// `roThresholdLimit`, the apiserver converts back to v1alpha1 and again to v1 for validation
/// and storage. The spare group survives (so validation can refuse it), and so does the default.
#[test]
fn an_edit_at_v1_keeps_the_1x_layout_and_the_edit() {
    let old = fixture("cspc-raidz-spare-v1alpha1.yaml");
    let a: alpha::CStorPoolCluster = serde_json::from_value(old).expect("alpha");
    let mut o = convert::cspc_to_v1(&a);
    if let Some(c) = o.spec.pools[0].pool_config.as_mut() {
        c.ro_threshold_limit = Some(85);
    }
    let back = convert::cspc_to_alpha(&o);
    assert_eq!(back.spec.pools[0].raid_groups, a.spec.pools[0].raid_groups);
    assert_eq!(
        back.spec.pools[0].pool_config.cache_file,
        "/tmp/pool1.cache"
    );
    let again = convert::cspc_to_v1(&back);
    assert_eq!(
        again.spec.pools[0]
            .pool_config
            .as_ref()
            .and_then(|c| c.ro_threshold_limit),
        Some(85)
    );
    assert_eq!(
        convert::v1alpha1_unsupported(&again.metadata).as_deref(),
        Some("pool on node worker-1 uses spare raid groups, which cStor v1 pools do not support")
    );
}
