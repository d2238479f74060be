//! Object builders shared by the table tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use cstor_api::cstor_v1::{
    CStorPoolCluster, CStorPoolInstance, CStorPoolInstanceBlockDevice, PoolConfig, PoolSpec,
    RaidGroup,
};
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::{
    BlockDevice, BlockDeviceClaim, DeviceCapacity, DeviceClaimResources, DeviceClaimSpec,
    DeviceSpec, DeviceStatus, RESOURCE_STORAGE,
};
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub const NS: &str = "openebs";

pub fn meta(name: &str, uid: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        uid: Some(uid.into()),
        ..ObjectMeta::default()
    }
}

pub fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

pub fn selector(host: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::HOSTNAME.to_string(), host.to_string())])
}

pub fn group(bds: &[&str]) -> RaidGroup {
    RaidGroup {
        block_devices: bds
            .iter()
            .map(|b| CStorPoolInstanceBlockDevice {
                block_device_name: b.to_string(),
                ..Default::default()
            })
            .collect(),
    }
}

pub fn pool(host: &str, raid: &str, groups: &[&[&str]]) -> PoolSpec {
    PoolSpec {
        node_selector: selector(host),
        data_raid_groups: groups.iter().map(|g| group(g)).collect(),
        write_cache_raid_groups: None,
        pool_config: Some(PoolConfig {
            data_raid_group_type: raid.into(),
            ..PoolConfig::default()
        }),
    }
}

pub fn cspc(pools: Vec<PoolSpec>) -> CStorPoolCluster {
    let mut c = CStorPoolCluster {
        metadata: meta("cspc-a", "cspc-uid-1"),
        ..CStorPoolCluster::default()
    };
    c.spec.pools = pools;
    c
}

pub fn cspi(name: &str, host: &str, groups: &[&[&str]]) -> CStorPoolInstance {
    let mut c = CStorPoolInstance {
        metadata: meta(name, &format!("{name}-uid")),
        ..CStorPoolInstance::default()
    };
    c.spec.host_name = host.into();
    c.spec.node_selector = selector(host);
    c.spec.data_raid_groups = groups.iter().map(|g| group(g)).collect();
    c
}

pub fn bd(name: &str, uid: &str, host: &str, bytes: u64) -> BlockDevice {
    let mut m = meta(name, uid);
    m.labels = Some(BTreeMap::from([(
        labels::HOSTNAME.to_string(),
        host.to_string(),
    )]));
    BlockDevice {
        metadata: m,
        spec: DeviceSpec {
            capacity: DeviceCapacity {
                storage: bytes,
                ..DeviceCapacity::default()
            },
            ..DeviceSpec::default()
        },
        status: DeviceStatus {
            claim_state: "Unclaimed".into(),
            state: "Active".into(),
        },
    }
}

pub fn claimed(mut bd: BlockDevice, bdc_name: &str, bdc_uid: &str) -> BlockDevice {
    bd.spec.claim_ref = Some(ObjectReference {
        name: Some(bdc_name.into()),
        namespace: Some(NS.into()),
        uid: Some(bdc_uid.into()),
        ..ObjectReference::default()
    });
    bd.status.claim_state = "Claimed".into();
    bd
}

pub fn bdc(
    name: &str,
    uid: &str,
    bd: &str,
    cspc: Option<&str>,
    phase: &str,
    request: &str,
) -> BlockDeviceClaim {
    let mut m = meta(name, uid);
    if let Some(c) = cspc {
        m.labels = Some(BTreeMap::from([(
            labels::CSTOR_POOL_CLUSTER.to_string(),
            c.to_string(),
        )]));
    }
    let mut c = BlockDeviceClaim {
        metadata: m,
        spec: DeviceClaimSpec {
            block_device_name: bd.into(),
            resources: DeviceClaimResources {
                requests: BTreeMap::from([(
                    RESOURCE_STORAGE.to_string(),
                    Quantity(request.into()),
                )]),
            },
            ..DeviceClaimSpec::default()
        },
        ..BlockDeviceClaim::default()
    };
    c.status.phase = phase.into();
    c
}
