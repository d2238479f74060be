//! Fixtures shared by the CSPC rule tests: three nodes with disks, pools and CSPCs as JSON.
#![allow(dead_code)]

use std::collections::BTreeMap;

use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};
use cstor_policy::{CspcFacts, NodeFact};
use serde_json::{Value, json};

pub fn bd(name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": node}},
        "spec": {"capacity": {"storage": 1073741824u64}, "nodeAttributes": {"nodeName": node},
                 "path": format!("/disks/{name}"), "partitioned": "No", "details": {}, "devlinks": []},
        "status": {"claimState": "Unclaimed", "state": "Active"},
    })
}

/// Three nodes; node-1 has disks a1..a8, node-2 b1..b8, node-3 c1..c2.
pub fn facts() -> CspcFacts {
    let mut f = CspcFacts::default();
    for (i, prefix, disks) in [(1, "a", 8), (2, "b", 8), (3, "c", 2)] {
        let node = format!("node-{i}");
        f.nodes.push(NodeFact {
            name: node.clone(),
            labels: BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), node.clone()),
                ("zone".to_string(), "z1".to_string()),
            ]),
        });
        for d in 1..=disks {
            let name = format!("{prefix}{d}");
            let typed: BlockDevice = serde_json::from_value(bd(&name, &node)).expect("bd");
            f.block_devices.insert(name, typed);
        }
    }
    f
}

pub fn pool(node: &str, kind: &str, groups: &[&[&str]]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| json!({"blockDevices": g.iter().map(|b| json!({"blockDeviceName": b})).collect::<Vec<_>>()}))
        .collect();
    json!({
        "nodeSelector": {"kubernetes.io/hostname": node},
        "dataRaidGroups": groups,
        "poolConfig": {"dataRaidGroupType": kind},
    })
}

pub fn cspc(pools: Vec<Value>) -> Value {
    json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
        "metadata": {"name": "pc", "namespace": "openebs"},
        "spec": {"pools": pools},
    })
}

/// A BDC `name` claiming `bd` for CSPC `owner`, with an optional predecessor annotation.
pub fn bdc(name: &str, bd: &str, owner: &str, predecessor: Option<&str>) -> BlockDeviceClaim {
    let mut annotations = serde_json::Map::new();
    if let Some(p) = predecessor {
        annotations.insert("openebs.io/bd-predecessor".into(), json!(p));
    }
    serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
        "metadata": {"name": name, "labels": {"openebs.io/cstor-pool-cluster": owner}, "annotations": annotations},
        "spec": {"blockDeviceName": bd, "deviceType": "", "hostName": "", "resources": {"requests": {}}},
        "status": {"phase": "Bound"},
    }))
    .expect("bdc")
}
