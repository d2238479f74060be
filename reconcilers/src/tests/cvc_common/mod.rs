//! Object builders shared by the CVC table tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use crate::cvc::placement::Candidate;
use cstor_api::cstor_v1::{
    CStorPoolInstance, CStorPoolInstanceCapacity, CStorPoolInstanceStatus, CStorVolume,
    CStorVolumeConfig, CStorVolumeConfigStatus, CStorVolumeReplicaDetails, ReplicaPoolInfo,
};
use cstor_api::keys::{annotations, finalizers, labels};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub const NS: &str = "openebs";

pub fn q(s: &str) -> Quantity {
    Quantity(s.into())
}

pub fn cand(name: &str, node: &str, phase: &str, read_only: bool, free: Option<&str>) -> Candidate {
    Candidate {
        name: name.into(),
        node: node.into(),
        phase: phase.into(),
        read_only,
        free: free.map(String::from),
        deleting: false,
    }
}

pub fn online(name: &str, node: &str, free: &str) -> Candidate {
    cand(name, node, "ONLINE", false, Some(free))
}

/// CVC `pvc-1` (uid `cvc-uid`) on CSPC `cspc-a`, 1Gi, `replicas` replicas.
pub fn cvc(replicas: i64) -> CStorVolumeConfig {
    let mut c = CStorVolumeConfig {
        metadata: ObjectMeta {
            name: Some("pvc-1".into()),
            namespace: Some(NS.into()),
            uid: Some("cvc-uid".into()),
            generation: Some(3),
            labels: Some(BTreeMap::from([(
                labels::CSTOR_POOL_CLUSTER.to_string(),
                "cspc-a".to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (annotations::VOLUME_ID.to_string(), "pvc-1".to_string()),
                (
                    annotations::PERSISTENT_VOLUME_CLAIM.to_string(),
                    "claim-1".to_string(),
                ),
            ])),
            finalizers: Some(vec![finalizers::CVC.to_string()]),
            ..ObjectMeta::default()
        },
        ..CStorVolumeConfig::default()
    };
    c.spec.capacity = BTreeMap::from([("storage".to_string(), q("1Gi"))]);
    c.spec.provision.capacity = BTreeMap::from([("storage".to_string(), q("1Gi"))]);
    c.spec.provision.replica_count = replicas;
    c.status = Some(CStorVolumeConfigStatus {
        phase: "Pending".into(),
        ..CStorVolumeConfigStatus::default()
    });
    c
}

pub fn pinned(names: &[&str]) -> Vec<ReplicaPoolInfo> {
    names
        .iter()
        .map(|n| ReplicaPoolInfo {
            pool_name: n.to_string(),
        })
        .collect()
}

/// CV `pvc-1` (uid `cv-uid`) with a target IP and the given replication figures.
pub fn cv(drf: i64) -> CStorVolume {
    let mut v = CStorVolume {
        metadata: ObjectMeta {
            name: Some("pvc-1".into()),
            namespace: Some(NS.into()),
            uid: Some("cv-uid".into()),
            labels: Some(BTreeMap::from([(
                labels::PERSISTENT_VOLUME_CLAIM.to_string(),
                "claim-1".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        ..CStorVolume::default()
    };
    v.spec.target_ip = "10.0.0.7".into();
    v.spec.desired_replication_factor = Some(drf);
    v.spec.replication_factor = Some(drf);
    v
}

pub fn known(ids: &[&str]) -> Option<CStorVolumeReplicaDetails> {
    Some(CStorVolumeReplicaDetails {
        known_replicas: ids.iter().map(|i| (i.to_string(), i.to_string())).collect(),
    })
}

pub fn with_status_known(mut v: CStorVolume, ids: &[&str]) -> CStorVolume {
    let mut s = v.status.clone().unwrap_or_default();
    s.replica_details = known(ids);
    v.status = Some(s);
    v
}

/// The CV status's replica modes: `(id, mode)`.
pub fn with_modes(mut v: CStorVolume, modes: &[(&str, &str)]) -> CStorVolume {
    let mut s = v.status.clone().unwrap_or_default();
    s.replica_statuses = modes
        .iter()
        .map(|(id, mode)| cstor_api::cstor_v1::cv::ReplicaStatus {
            id: id.to_string(),
            mode: mode.to_string(),
            ..Default::default()
        })
        .collect();
    v.status = Some(s);
    v
}

pub fn with_capacities(mut v: CStorVolume, spec: &str, status: Option<&str>) -> CStorVolume {
    v.spec.capacity = Some(q(spec));
    let mut s = v.status.clone().unwrap_or_default();
    s.capacity = status.map(q);
    v.status = Some(s);
    v
}

pub fn cspi(name: &str, cspc: &str, host: &str, phase: &str, free: &str) -> CStorPoolInstance {
    let mut c = CStorPoolInstance {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(format!("{name}-uid")),
            labels: Some(BTreeMap::from([
                (labels::CSTOR_POOL_CLUSTER.to_string(), cspc.to_string()),
                (labels::HOSTNAME.to_string(), host.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        ..CStorPoolInstance::default()
    };
    c.spec.host_name = format!("{host}-spec");
    c.status = Some(CStorPoolInstanceStatus {
        phase: phase.into(),
        capacity: Some(CStorPoolInstanceCapacity {
            free: q(free),
            ..CStorPoolInstanceCapacity::default()
        }),
        ..CStorPoolInstanceStatus::default()
    });
    c
}
