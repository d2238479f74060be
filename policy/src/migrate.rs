//! SPC + CSPs → CSPC (docs/migration.md "The checks before anything changes"): the CSPC a migration would
//! create and every problem that would stop it, from a snapshot of the old objects. Shared by
//! `cstor migrate spc --dry-run` and the MigrationTask controller. Pure: no names allocated,
//! nothing read or written.

use std::collections::BTreeMap;

use cstor_api::cstor_v1::cspc::{
    CStorPoolClusterSpec, CStorPoolInstanceBlockDevice, PoolConfig, PoolSpec, RaidGroup,
};
use cstor_api::cstor_v1::{CStorPoolCluster, cspc::pool_type};
use cstor_api::keys::{annotations, labels};
use cstor_api::openebs_v1alpha1::{
    BlockDevice, BlockDeviceClaim, CStorPool, MigrationTask, StoragePoolClaim, task_phase,
};

use crate::Verdict;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use cstor_api::cstor_v1::cspc::DEFAULT_RO_THRESHOLD;

/// Everything the mapping reads, as found in the cluster.
#[derive(Clone, Debug, Default)]
pub struct SpcFacts {
    pub spc: StoragePoolClaim,
    /// CSPs labelled `openebs.io/storage-pool-claim=<spc>`, in list order.
    pub csps: Vec<CStorPool>,
    /// Deployments labelled `openebs.io/cstor-pool=<csp>`, by CSP name.
    pub deployments: BTreeMap<String, Vec<Deployment>>,
    /// BlockDevices of the operator namespace, by name.
    pub block_devices: BTreeMap<String, BlockDevice>,
    /// BlockDeviceClaims of the operator namespace, by the BlockDevice they name.
    pub claims: BTreeMap<String, BlockDeviceClaim>,
    /// The CSPC of the target name, if one exists already.
    pub existing_cspc: Option<CStorPoolCluster>,
}

/// What a migration would do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub cspc: CStorPoolCluster,
    /// What stops the migration (docs/migration.md lists them).
    pub problems: Vec<String>,
    /// What changes on the way that a user should know about.
    pub notes: Vec<String>,
}

/// `striped → stripe`, …; unknown types give `None`.
pub fn raid_type(old: &str) -> Option<&'static str> {
    match old {
        "striped" => Some(pool_type::STRIPE),
        "mirrored" => Some(pool_type::MIRROR),
        "raidz" => Some(pool_type::RAIDZ),
        "raidz2" => Some(pool_type::RAIDZ2),
        _ => None,
    }
}

fn container_resources(
    deployment: &Deployment,
    container: &str,
) -> Option<k8s_openapi::api::core::v1::ResourceRequirements> {
    deployment
        .spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?
        .resources
        .clone()
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// The CSPC `cspc_name` in `namespace` that SPC `facts.spc` becomes, and what stands in the way.
pub fn plan(facts: &SpcFacts, cspc_name: &str, namespace: &str) -> Plan {
    let spc = &facts.spc;
    let spc_name = spc.metadata.name.as_deref().unwrap_or_default();
    let mut problems = Vec::new();
    let mut notes = Vec::new();

    // P2: an existing CSPC must be this SPC's, and the SPC must not be promised to another name.
    let promised = spc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::MIGRATED_TO_CSPC));
    let rename_error = |promised: &str| {
        format!(
            "failed to validate migration: the spc {spc_name} is set to be renamed as {promised}, but got cspc-name {cspc_name} instead"
        )
    };
    if let Some(p) = promised
        && p != cspc_name
    {
        problems.push(rename_error(p));
    }
    if let Some(existing) = &facts.existing_cspc {
        let from = existing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::MIGRATED_FROM));
        if promised.map(String::as_str) != Some(cspc_name)
            || from.map(String::as_str) != Some(spc_name)
        {
            problems.push(format!(
                "CStorPoolCluster {namespace}/{cspc_name} already exists and was not made from spc {spc_name}"
            ));
        }
    }

    // M2: auto SPCs must have made maxPools CSPs; manual ones must use every listed BD once.
    let listed = &spc.spec.block_devices.block_device_list;
    if listed.is_empty() {
        match spc.spec.max_pools {
            None => problems.push(format!(
                "invalid spc {spc_name} neither has bdc list nor maxpools"
            )),
            Some(max) if usize::try_from(max).ok() != Some(facts.csps.len()) => {
                problems.push(format!(
                    "maxpool count does not match csp count expected: {max} got: {}",
                    facts.csps.len()
                ))
            }
            Some(_) => {}
        }
    } else {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for bd in listed {
            *count.entry(bd.as_str()).or_default() += 1;
        }
        for csp in &facts.csps {
            for g in &csp.spec.group {
                for bd in &g.block_device {
                    *count.entry(bd.name.as_str()).or_default() += 1;
                }
            }
        }
        for (bd, n) in count {
            if n != 2 {
                problems.push(format!("bd {bd} is not configured properly"));
            }
        }
    }
    if facts.csps.is_empty() {
        problems.push(format!(
            "spc {spc_name} has no CStorPool objects to migrate"
        ));
    }

    let mut pools = Vec::new();
    for csp in &facts.csps {
        let csp_name = csp.metadata.name.as_deref().unwrap_or_default();
        let host = label(&csp.metadata, labels::HOSTNAME).unwrap_or_default();
        if host.is_empty() {
            problems.push(format!("csp {csp_name} has no {} label", labels::HOSTNAME));
        }
        let attr = &csp.spec.pool_spec;
        let kind = raid_type(&attr.pool_type);
        if kind.is_none() {
            problems.push(format!(
                "csp {csp_name} has pool type {:?}, which maps to no dataRaidGroupType",
                attr.pool_type
            ));
        }
        let bd = |name: &str| CStorPoolInstanceBlockDevice {
            block_device_name: name.to_string(),
            ..CStorPoolInstanceBlockDevice::default()
        };
        let data: Vec<RaidGroup> = if kind == Some(pool_type::STRIPE) {
            // Striped pools are flattened into the one stripe group v1 allows.
            vec![RaidGroup {
                block_devices: csp
                    .spec
                    .group
                    .iter()
                    .flat_map(|g| g.block_device.iter().map(|b| bd(&b.name)))
                    .collect(),
            }]
        } else {
            csp.spec
                .group
                .iter()
                .map(|g| RaidGroup {
                    block_devices: g.block_device.iter().map(|b| bd(&b.name)).collect(),
                })
                .collect()
        };
        for name in data
            .iter()
            .flat_map(|g| &g.block_devices)
            .map(|b| &b.block_device_name)
        {
            match facts.block_devices.get(name) {
                None => problems.push(format!("blockdevice {name} of csp {csp_name} not found")),
                Some(found) => {
                    let state = found.status.state.as_str();
                    if state != "Active" {
                        problems.push(format!(
                            "blockdevice {name} of csp {csp_name} is not Active (state {state:?})"
                        ));
                    }
                    let on = label(&found.metadata, labels::HOSTNAME).unwrap_or_default();
                    if on != host {
                        problems.push(format!(
                            "blockdevice {name} of csp {csp_name} is on node {on:?}, not {host:?}"
                        ));
                    }
                }
            }
            match facts.claims.get(name) {
                None => problems.push(format!(
                    "blockdevice {name} of csp {csp_name} has no BlockDeviceClaim (the old pool must hold a claim on it)"
                )),
                Some(claim) => {
                    let owner = label(&claim.metadata, labels::STORAGE_POOL_CLAIM).unwrap_or_default();
                    // A claim this migration already re-labelled (it resumes) is as good.
                    let relabelled = label(&claim.metadata, labels::CSTOR_POOL_CLUSTER)
                        == Some(cspc_name);
                    if owner != spc_name && !relabelled {
                        problems.push(format!(
                            "blockdevice {name} of csp {csp_name} is claimed for spc {owner:?}, not {spc_name}"
                        ));
                    }
                }
            }
        }
        let deployments = facts
            .deployments
            .get(csp_name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if deployments.len() != 1 {
            problems.push(format!(
                "invalid number of deployments found for csp {csp_name}: {}",
                deployments.len()
            ));
        }
        let deployment = deployments.first();
        let pod = deployment.and_then(|d| d.spec.template.spec.as_ref());
        let ro = if attr.ro_threshold_limit == 0 {
            notes.push(format!(
                "csp {csp_name}: roThresholdLimit 0 (off for the old pool manager) becomes {DEFAULT_RO_THRESHOLD}"
            ));
            DEFAULT_RO_THRESHOLD
        } else {
            i32::try_from(attr.ro_threshold_limit).unwrap_or(DEFAULT_RO_THRESHOLD)
        };
        pools.push(PoolSpec {
            node_selector: BTreeMap::from([(labels::HOSTNAME.to_string(), host.to_string())]),
            data_raid_groups: data,
            write_cache_raid_groups: None,
            pool_config: Some(PoolConfig {
                data_raid_group_type: kind.unwrap_or_default().to_string(),
                thick_provision: attr.thick_provisioning,
                resources: deployment.and_then(|d| container_resources(d, "cstor-pool")),
                aux_resources: deployment.and_then(|d| container_resources(d, "cstor-pool-mgmt")),
                tolerations: pod.and_then(|p| p.tolerations.clone()),
                priority_class_name: deployment.map(|_| {
                    pod.and_then(|p| p.priority_class_name.clone())
                        .unwrap_or_default()
                }),
                ro_threshold_limit: Some(ro),
                ..PoolConfig::default()
            }),
        });
    }
    if !spc.spec.pool_spec.cache_file.is_empty() {
        notes.push(format!(
            "spc {spc_name}: cacheFile {} is dropped; cStor v1 pools use their own cache file",
            spc.spec.pool_spec.cache_file
        ));
    }

    let mut notes_map =
        BTreeMap::from([(annotations::MIGRATED_FROM.to_string(), spc_name.to_string())]);
    if let Some(tags) = spc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::ALLOWED_BD_TAGS))
    {
        notes_map.insert(annotations::ALLOWED_BD_TAGS.to_string(), tags.clone());
    }
    let cspc = CStorPoolCluster {
        metadata: ObjectMeta {
            name: Some(cspc_name.to_string()),
            namespace: Some(namespace.to_string()),
            annotations: Some(notes_map),
            ..ObjectMeta::default()
        },
        spec: CStorPoolClusterSpec {
            pools,
            ..CStorPoolClusterSpec::default()
        },
        status: None,
        version_details: None,
    };
    Plan {
        cspc,
        problems,
        notes,
    }
}

/// Admission of a MigrationTask (CREATE and UPDATE; docs/migration.md "Tasks"): it names
/// exactly one of `spec.cstorPool` / `spec.cstorVolume` with its name, its spec does not change
/// once made, and no other unfinished task of `others` (the namespace's tasks) moves the same
/// SPC or PV.
pub fn validate_task(
    task: &MigrationTask,
    old: Option<&MigrationTask>,
    others: &[MigrationTask],
) -> Verdict {
    if let Some(old) = old {
        if old.spec != task.spec {
            return Verdict::deny(
                422,
                "the spec of a MigrationTask cannot change; delete the task and create a new one",
            );
        }
        return Verdict::allow();
    }
    let target = match (&task.spec.cstor_pool, &task.spec.cstor_volume) {
        (Some(pool), None) => {
            if pool.spc_name.is_empty() {
                return Verdict::deny(422, "spec.cstorPool.spcName is required");
            }
            Target::Spc(&pool.spc_name)
        }
        (None, Some(volume)) => {
            if volume.pv_name.is_empty() {
                return Verdict::deny(422, "spec.cstorVolume.pvName is required");
            }
            Target::Pv(&volume.pv_name)
        }
        _ => {
            return Verdict::deny(
                422,
                "a MigrationTask names exactly one of spec.cstorPool and spec.cstorVolume",
            );
        }
    };
    let name = task.metadata.name.as_deref().unwrap_or_default();
    for other in others {
        let other_name = other.metadata.name.as_deref().unwrap_or_default();
        let finished = matches!(
            other.status.phase.as_str(),
            task_phase::SUCCESS | task_phase::ERROR
        );
        if other_name == name || finished {
            continue;
        }
        let same = match target {
            Target::Spc(spc) => other
                .spec
                .cstor_pool
                .as_ref()
                .is_some_and(|p| p.spc_name == spc),
            Target::Pv(pv) => other
                .spec
                .cstor_volume
                .as_ref()
                .is_some_and(|v| v.pv_name == pv),
        };
        if same {
            let what = match target {
                Target::Spc(spc) => format!("spc {spc}"),
                Target::Pv(pv) => format!("pv {pv}"),
            };
            return Verdict::deny(
                409,
                format!(
                    "MigrationTask {other_name} is already migrating {what}; wait for it to end or delete it"
                ),
            );
        }
    }
    Verdict::allow()
}

#[derive(Clone, Copy)]
enum Target<'a> {
    Spc(&'a str),
    Pv(&'a str),
}
