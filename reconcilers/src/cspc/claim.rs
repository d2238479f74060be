//! The BlockDeviceClaims the CSPC controller makes (as the Go operators do, with an exact byte quantity) and
//! what state each BlockDevice of a pool is in from this CSPC's point of view.

use std::collections::BTreeMap;

use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_api::keys::{annotations, bdc_name, finalizers, labels};
use cstor_api::openebs_v1alpha1::{
    BlockDevice, BlockDeviceClaim, BlockDeviceNodeAttributes, DeviceClaimResources,
    DeviceClaimSpec, RESOURCE_STORAGE, bdc_phase, claim_state, device_state,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use cstor_api::quantity::plain_bytes;

/// Why no claim can be made for a BlockDevice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("BlockDevice {bd} has no uid")]
    NoUid { bd: String },
    #[error("CStorPoolCluster {cspc} has no uid")]
    NoCspcUid { cspc: String },
    #[error("BlockDevice {bd} has a blank openebs.io/block-device-tag label")]
    BlankTag { bd: String },
    #[error(
        "BlockDevice {bd} has block-device-tag {tag:?}, which is not in the CSPC's openebs.io/allowed-bd-tags [{}]",
        .allowed.join(",")
    )]
    TagNotAllowed {
        bd: String,
        tag: String,
        allowed: Vec<String>,
    },
}

/// The ownerReference every object owned by `cspc` carries.
pub fn cspc_owner(cspc: &CStorPoolCluster) -> Option<OwnerReference> {
    controller_ref(cspc)
}

/// A controller ownerReference (`controller` and `blockOwnerDeletion` true) to `owner`.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    Some(OwnerReference {
        controller: Some(true),
        block_owner_deletion: Some(true),
        ..owner.owner_ref(&()).filter(|o| !o.uid.is_empty())?
    })
}

/// The values of the CSPC annotation `openebs.io/allowed-bd-tags`, trimmed, blanks dropped.
pub fn allowed_tags(cspc: &CStorPoolCluster) -> Vec<String> {
    cspc.annotations()
        .get(annotations::ALLOWED_BD_TAGS)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The claim `bdc-cstor-<BD UID>` of `bd` for `cspc`; `predecessor` is the BD it replaces.
pub fn bdc_for_bd(
    cspc: &CStorPoolCluster,
    bd: &BlockDevice,
    predecessor: Option<&str>,
) -> Result<BlockDeviceClaim, ClaimError> {
    let bd_name = bd.name_any();
    let uid = bd
        .uid()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ClaimError::NoUid {
            bd: bd_name.clone(),
        })?;
    let owner = cspc_owner(cspc).ok_or_else(|| ClaimError::NoCspcUid {
        cspc: cspc.name_any(),
    })?;
    let selector = match bd.labels().get(labels::BLOCK_DEVICE_TAG) {
        None => None,
        Some(raw) => {
            let tag = raw.trim();
            if tag.is_empty() {
                return Err(ClaimError::BlankTag { bd: bd_name });
            }
            let allowed = allowed_tags(cspc);
            if !allowed.iter().any(|a| a == tag) {
                return Err(ClaimError::TagNotAllowed {
                    bd: bd_name,
                    tag: tag.to_string(),
                    allowed,
                });
            }
            Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    labels::BLOCK_DEVICE_TAG.to_string(),
                    tag.to_string(),
                )])),
                ..LabelSelector::default()
            })
        }
    };
    let annotations = predecessor
        .map(|p| BTreeMap::from([(annotations::BD_PREDECESSOR.to_string(), p.to_string())]));
    Ok(BlockDeviceClaim {
        metadata: ObjectMeta {
            name: Some(bdc_name(&uid)),
            namespace: cspc.namespace(),
            labels: Some(BTreeMap::from([(
                labels::CSTOR_POOL_CLUSTER.to_string(),
                cspc.name_any(),
            )])),
            annotations,
            owner_references: Some(vec![owner]),
            finalizers: Some(vec![finalizers::CSPC.to_string()]),
            ..ObjectMeta::default()
        },
        spec: DeviceClaimSpec {
            selector,
            resources: DeviceClaimResources {
                requests: BTreeMap::from([(
                    RESOURCE_STORAGE.to_string(),
                    plain_bytes(bd.spec.capacity.storage),
                )]),
            },
            block_device_name: bd_name,
            block_device_node_attributes: Some(BlockDeviceNodeAttributes {
                host_name: bd
                    .labels()
                    .get(labels::HOSTNAME)
                    .cloned()
                    .unwrap_or_default(),
                ..BlockDeviceNodeAttributes::default()
            }),
            ..DeviceClaimSpec::default()
        },
        status: Default::default(),
    })
}

/// A BlockDevice of a pool, as far as this CSPC is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimStatus {
    /// Claimed by a Bound claim of this CSPC: usable.
    Bound { claim: String },
    /// No claim of this CSPC yet and the BD is free: make `claim`.
    Missing { claim: String },
    /// Not usable yet; `claim` is this CSPC's claim (existing or would-be) when known.
    Pending {
        claim: Option<String>,
        reason: String,
    },
}

fn ours(bdc: &BlockDeviceClaim, cspc_name: &str) -> bool {
    bdc.labels()
        .get(labels::CSTOR_POOL_CLUSTER)
        .map(String::as_str)
        == Some(cspc_name)
}

/// The state of BlockDevice `bd_name` (`bd` as listed, `None` if missing) given all claims of
/// the namespace, for CSPC `cspc_name`.
pub fn claim_status(
    bd_name: &str,
    bd: Option<&BlockDevice>,
    bdcs: &[BlockDeviceClaim],
    cspc_name: &str,
) -> ClaimStatus {
    let Some(bd) = bd else {
        return ClaimStatus::Pending {
            claim: None,
            reason: "BlockDevice not found".into(),
        };
    };
    let would_be = bd.uid().map(|u| bdc_name(&u));
    let claim_ref = bd.spec.claim_ref.as_ref();
    if bd.status.claim_state == claim_state::CLAIMED || claim_ref.is_some() {
        let Some(r) = claim_ref else {
            return ClaimStatus::Pending {
                claim: would_be,
                reason: "BlockDevice is Claimed but has no claimRef".into(),
            };
        };
        let ref_name = r.name.clone().unwrap_or_default();
        let ref_ns = r.namespace.clone().unwrap_or_default();
        let holder = bdcs.iter().find(|c| {
            c.name_any() == ref_name && r.uid.as_ref().is_none_or(|u| c.uid().as_ref() == Some(u))
        });
        return match holder {
            Some(c) if ours(c, cspc_name) => {
                if c.status.phase == bdc_phase::BOUND {
                    ClaimStatus::Bound { claim: ref_name }
                } else {
                    ClaimStatus::Pending {
                        claim: Some(ref_name),
                        reason: "claim is being bound".into(),
                    }
                }
            }
            _ => ClaimStatus::Pending {
                claim: would_be,
                reason: format!("BlockDevice is claimed by BDC {ref_ns}/{ref_name}"),
            },
        };
    }
    // Not claimed: do we already have a claim on it?
    let mine = bdcs
        .iter()
        .filter(|c| c.spec.block_device_name == bd_name && ours(c, cspc_name))
        .find(|c| c.metadata.deletion_timestamp.is_none());
    match mine {
        Some(c) => {
            let reason = if bd.status.state == device_state::INACTIVE {
                "BlockDevice is Inactive".to_string()
            } else if c.status.phase.is_empty() {
                "waiting for the claim to be bound".to_string()
            } else {
                format!("claim is {}", c.status.phase)
            };
            ClaimStatus::Pending {
                claim: Some(c.name_any()),
                reason,
            }
        }
        None => match would_be {
            Some(claim) => ClaimStatus::Missing { claim },
            None => ClaimStatus::Pending {
                claim: None,
                reason: "BlockDevice has no uid".into(),
            },
        },
    }
}
