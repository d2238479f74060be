//! SPC + CSPs → CSPC mapping (docs/migration.md), one case per shape and per problem.

use std::collections::BTreeMap;

use cstor_policy::migrate::{SpcFacts, plan};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn spc(name: &str, list: &[&str], max_pools: Option<i64>, pool_type: &str) -> Value {
    let mut spec = json!({"name": name, "type": "disk", "poolSpec": {"poolType": pool_type, "cacheFile": "", "roThresholdLimit": 85}});
    if !list.is_empty() {
        spec["blockDevices"] = json!({"blockDeviceList": list});
    }
    if let Some(m) = max_pools {
        spec["maxPools"] = json!(m);
    }
    json!({"apiVersion": "openebs.io/v1alpha1", "kind": "StoragePoolClaim", "metadata": {"name": name}, "spec": spec})
}

fn csp(name: &str, spc: &str, host: &str, pool_type: &str, groups: &[&[&str]], ro: i64) -> Value {
    json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "CStorPool",
        "metadata": {"name": name, "labels": {"openebs.io/storage-pool-claim": spc, "kubernetes.io/hostname": host}},
        "spec": {"group": groups.iter().map(|g| json!({"blockDevice": g.iter().map(|b| json!({"name": b, "deviceID": format!("/dev/{b}"), "inUseByPool": true})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                 "poolSpec": {"poolType": pool_type, "cacheFile": "", "overProvisioning": false, "thickProvisioning": false, "roThresholdLimit": ro}},
    })
}

fn deployment(csp: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": csp, "labels": {"openebs.io/cstor-pool": csp}},
        "spec": {"selector": {"matchLabels": {"app": csp}},
                 "template": {"metadata": {"labels": {"app": csp}},
                              "spec": {"priorityClassName": "storage-critical",
                                       "tolerations": [{"key": "storage", "operator": "Exists"}],
                                       "containers": [
                                           {"name": "cstor-pool", "resources": {"limits": {"memory": "2Gi"}}},
                                           {"name": "cstor-pool-mgmt", "resources": {"limits": {"memory": "500Mi"}}},
                                       ]}}},
    })
}

/// Facts: every CSP has its Deployment, every BD exists Active on the CSP's node with a claim
/// for the SPC.
fn facts(spc_v: Value, csps: Vec<Value>) -> SpcFacts {
    let spc_name = spc_v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut f = SpcFacts {
        spc: serde_json::from_value(spc_v).expect("spc"),
        ..SpcFacts::default()
    };
    for c in csps {
        let name = c["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let host = c["metadata"]["labels"]["kubernetes.io/hostname"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for g in c["spec"]["group"].as_array().into_iter().flatten() {
            for b in g["blockDevice"].as_array().into_iter().flatten() {
                let bd = b["name"].as_str().unwrap_or_default().to_string();
                f.block_devices.insert(
                    bd.clone(),
                    serde_json::from_value(json!({
                        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
                        "metadata": {"name": bd, "labels": {"kubernetes.io/hostname": host}},
                        "spec": {"capacity": {"storage": 1u64 << 30}},
                        "status": {"claimState": "Claimed", "state": "Active"},
                    }))
                    .expect("bd"),
                );
                f.claims.insert(bd.clone(), serde_json::from_value(json!({
                    "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
                    "metadata": {"name": format!("bdc-{bd}"), "labels": {"openebs.io/storage-pool-claim": spc_name}},
                    "spec": {"blockDeviceName": bd},
                })).expect("bdc"));
            }
        }
        f.deployments.insert(
            name.clone(),
            vec![serde_json::from_value(deployment(&name)).expect("deployment")],
        );
        f.csps.push(serde_json::from_value(c).expect("csp"));
    }
    f
}

fn layout(p: &cstor_policy::migrate::Plan) -> Vec<(String, String, Vec<Vec<String>>)> {
    p.cspc
        .spec
        .pools
        .iter()
        .map(|pool| {
            (
                pool.node_selector
                    .get("kubernetes.io/hostname")
                    .cloned()
                    .unwrap_or_default(),
                pool.pool_config
                    .as_ref()
                    .map(|c| c.data_raid_group_type.clone())
                    .unwrap_or_default(),
                pool.data_raid_groups
                    .iter()
                    .map(|g| {
                        g.block_devices
                            .iter()
                            .map(|b| b.block_device_name.clone())
                            .collect()
                    })
                    .collect(),
            )
        })
        .collect()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn striped_auto_spc_is_flattened_into_one_group_per_pool() {
    let f = facts(
        spc("sparse-pool", &[], Some(2), "striped"),
        vec![
            csp(
                "csp-a",
                "sparse-pool",
                "node-1",
                "striped",
                &[&["bd-1"], &["bd-2"]],
                85,
            ),
            csp(
                "csp-b",
                "sparse-pool",
                "node-2",
                "striped",
                &[&["bd-3"]],
                85,
            ),
        ],
    );
    let p = plan(&f, "sparse-pool", "openebs");
    assert_eq!(p.problems, Vec::<String>::new());
    assert_eq!(
        layout(&p),
        vec![
            ("node-1".into(), "stripe".into(), vec![s(&["bd-1", "bd-2"])]),
            ("node-2".into(), "stripe".into(), vec![s(&["bd-3"])]),
        ]
    );
    let annotations = p.cspc.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("openebs.io/migrated-from")
            .map(String::as_str),
        Some("sparse-pool")
    );
    assert_eq!(p.cspc.metadata.namespace.as_deref(), Some("openebs"));
}

#[test]
fn mirrored_raidz_and_raidz2_keep_their_groups_one_to_one() {
    for (old, new, groups) in [
        (
            "mirrored",
            "mirror",
            vec![vec!["m1", "m2"], vec!["m3", "m4"]],
        ),
        ("raidz", "raidz", vec![vec!["z1", "z2", "z3"]]),
        (
            "raidz2",
            "raidz2",
            vec![vec!["y1", "y2", "y3", "y4", "y5", "y6"]],
        ),
    ] {
        let listed: Vec<&str> = groups.iter().flatten().copied().collect();
        let group_refs: Vec<&[&str]> = groups.iter().map(|g| g.as_slice()).collect();
        let f = facts(
            spc("pool", &listed, None, old),
            vec![csp("csp-a", "pool", "node-1", old, &group_refs, 85)],
        );
        let p = plan(&f, "renamed", "openebs");
        assert_eq!(p.problems, Vec::<String>::new(), "{old}");
        let want: Vec<Vec<String>> = groups.iter().map(|g| s(g)).collect();
        assert_eq!(
            layout(&p),
            vec![("node-1".to_string(), new.to_string(), want)],
            "{old}"
        );
        assert_eq!(p.cspc.metadata.name.as_deref(), Some("renamed"));
    }
}

#[test]
fn pool_config_comes_from_the_csp_and_its_deployment() {
    let f = facts(
        spc("pool", &[], Some(1), "mirrored"),
        vec![csp(
            "csp-a",
            "pool",
            "node-1",
            "mirrored",
            &[&["m1", "m2"]],
            90,
        )],
    );
    let p = plan(&f, "pool", "openebs");
    let c = p.cspc.spec.pools[0].pool_config.clone().expect("config");
    assert_eq!(c.ro_threshold_limit, Some(90));
    assert!(!c.thick_provision);
    assert_eq!(c.compression, "");
    assert_eq!(c.priority_class_name.as_deref(), Some("storage-critical"));
    assert_eq!(c.tolerations.map(|t| t.len()), Some(1));
    let mem = |r: Option<k8s_openapi::api::core::v1::ResourceRequirements>| {
        r.and_then(|r| r.limits)
            .and_then(|l| l.get("memory").map(|q| q.0.clone()))
    };
    assert_eq!(mem(c.resources), Some("2Gi".into()));
    assert_eq!(mem(c.aux_resources), Some("500Mi".into()));
    assert_eq!(p.notes, Vec::<String>::new());
}

#[test]
fn ro_threshold_limit_zero_becomes_85_with_a_note() {
    let f = facts(
        spc("pool", &[], Some(1), "striped"),
        vec![csp("csp-a", "pool", "node-1", "striped", &[&["bd-1"]], 0)],
    );
    let p = plan(&f, "pool", "openebs");
    assert_eq!(
        p.cspc.spec.pools[0]
            .pool_config
            .as_ref()
            .and_then(|c| c.ro_threshold_limit),
        Some(85)
    );
    assert_eq!(
        p.notes,
        vec!["csp csp-a: roThresholdLimit 0 (off for the old pool manager) becomes 85".to_string()]
    );
    assert_eq!(p.problems, Vec::<String>::new());
}

#[test]
fn problems_are_named() {
    // maxPools mismatch.
    let f = facts(
        spc("pool", &[], Some(3), "striped"),
        vec![csp("csp-a", "pool", "node-1", "striped", &[&["bd-1"]], 85)],
    );
    assert_eq!(
        plan(&f, "pool", "openebs").problems,
        vec!["maxpool count does not match csp count expected: 3 got: 1".to_string()]
    );
    // Auto SPC without maxPools.
    let f = facts(
        spc("pool", &[], None, "striped"),
        vec![csp("csp-a", "pool", "node-1", "striped", &[&["bd-1"]], 85)],
    );
    assert_eq!(
        plan(&f, "pool", "openebs").problems,
        vec!["invalid spc pool neither has bdc list nor maxpools".to_string()]
    );
    // A BD listed in the manual SPC but used by no CSP.
    let f = facts(
        spc("pool", &["bd-1", "bd-unused"], None, "striped"),
        vec![csp("csp-a", "pool", "node-1", "striped", &[&["bd-1"]], 85)],
    );
    assert_eq!(
        plan(&f, "pool", "openebs").problems,
        vec!["bd bd-unused is not configured properly".to_string()]
    );
    // A missing pool Deployment.
    let mut f = facts(
        spc("pool", &[], Some(1), "striped"),
        vec![csp("csp-a", "pool", "node-1", "striped", &[&["bd-1"]], 85)],
    );
    f.deployments.clear();
    assert_eq!(
        plan(&f, "pool", "openebs").problems,
        vec!["invalid number of deployments found for csp csp-a: 0".to_string()]
    );
    // A BD gone, and one on another node.
    let mut f = facts(
        spc("pool", &[], Some(1), "mirrored"),
        vec![csp(
            "csp-a",
            "pool",
            "node-1",
            "mirrored",
            &[&["m1", "m2"]],
            85,
        )],
    );
    f.block_devices.remove("m1");
    if let Some(bd) = f.block_devices.get_mut("m2") {
        bd.metadata.labels = Some(BTreeMap::from([(
            "kubernetes.io/hostname".to_string(),
            "node-9".to_string(),
        )]));
    }
    assert_eq!(
        plan(&f, "pool", "openebs").problems,
        vec![
            "blockdevice m1 of csp csp-a not found".to_string(),
            "blockdevice m2 of csp csp-a is on node \"node-9\", not \"node-1\"".to_string(),
        ]
    );
    // Promised to another name.
    let mut spc_v = spc("pool", &[], Some(1), "striped");
    spc_v["metadata"]["annotations"] = json!({"openebs.io/cstor-pool-cluster": "other"});
    let f = facts(
        spc_v,
        vec![csp("csp-a", "pool", "node-1", "striped", &[&["bd-1"]], 85)],
    );
    assert_eq!(
        plan(&f, "pool", "openebs").problems,
        vec!["failed to validate migration: the spc pool is set to be renamed as other, but got cspc-name pool instead".to_string()]
    );
    // Unknown pool type.
    let f = facts(
        spc("pool", &[], Some(1), "raid5"),
        vec![csp("csp-a", "pool", "node-1", "raid5", &[&["bd-1"]], 85)],
    );
    assert_eq!(
        plan(&f, "pool", "openebs").problems,
        vec!["csp csp-a has pool type \"raid5\", which maps to no dataRaidGroupType".to_string()]
    );
}
