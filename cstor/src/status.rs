//! `cstor status`: the pools of the cluster as a table (CSPC, node, phase, layout, capacity,
//! free, read-only, replicas).

use cstor_api::keys::env;
use std::path::PathBuf;

use clap::Args;
use cstor_api::cstor_v1::cspc::RaidGroup;
use cstor_api::cstor_v1::cspi::CStorPoolInstance;
use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::cstor_v1::cvc::CStorVolumeConfig;
use cstor_api::cstor_v1::cvr::CStorVolumeReplica;
use cstor_api::keys::labels;
use kube::Api;
use kube::api::ListParams;

/// Flags of `cstor status`.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// Namespace of the pools.
    #[arg(long, env = env::OPENEBS_NAMESPACE, default_value = "openebs")]
    pub namespace: String,
    /// kubeconfig (default: `$KUBECONFIG`, else the one `cstor up` wrote).
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let client = crate::common::user_client(args.kubeconfig.clone()).await?;
    let api: Api<CStorPoolInstance> = Api::namespaced(client, &args.namespace);
    let mut cspis = api.list(&ListParams::default()).await?.items;
    cspis.sort_by(|a, b| {
        (pool_cluster(a), &a.spec.host_name).cmp(&(pool_cluster(b), &b.spec.host_name))
    });
    print!("{}", pool_table(&cspis));
    let client = api.into_client();
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), &args.namespace);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), &args.namespace);
    let cvrs: Api<CStorVolumeReplica> = Api::namespaced(client, &args.namespace);
    let mut cvcs = cvcs.list(&ListParams::default()).await?.items;
    cvcs.sort_by_key(|c| c.metadata.name.clone());
    let cvs = cvs.list(&ListParams::default()).await?.items;
    let mut cvrs = cvrs.list(&ListParams::default()).await?.items;
    cvrs.sort_by_key(|c| c.metadata.name.clone());
    if !cvcs.is_empty() {
        println!();
        print!("{}", volume_table(&cvcs, &cvs, &cvrs));
    }
    Ok(())
}

fn label(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> String {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .cloned()
        .unwrap_or_default()
}

/// The volumes and their replicas, as `cstor status` prints them below the pools.
pub fn volume_table(
    cvcs: &[CStorVolumeConfig],
    cvs: &[CStorVolume],
    cvrs: &[CStorVolumeReplica],
) -> String {
    let mut rows = vec![
        [
            "VOLUME", "CSPC", "CLAIM", "STATUS", "SIZE", "REPLICAS", "IQN",
        ]
        .map(String::from),
    ];
    for cvc in cvcs {
        let name = cvc.metadata.name.clone().unwrap_or_default();
        let cv = cvs.iter().find(|v| v.metadata.name.as_ref() == Some(&name));
        let status = cv.and_then(|v| v.status.as_ref());
        let healthy = status
            .map(|s| {
                s.replica_statuses
                    .iter()
                    .filter(|r| r.mode == "Healthy")
                    .count()
            })
            .unwrap_or(0);
        let desired = cv
            .and_then(|v| {
                v.spec
                    .desired_replication_factor
                    .or(v.spec.replication_factor)
            })
            .unwrap_or(cvc.spec.provision.replica_count);
        let size = cvc
            .spec
            .capacity
            .get("storage")
            .map(|q| q.0.clone())
            .unwrap_or_else(|| "-".into());
        rows.push([
            name,
            label(&cvc.metadata, labels::CSTOR_POOL_CLUSTER),
            cvc.status
                .as_ref()
                .map(|s| s.phase.clone())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "Pending".into()),
            status
                .map(|s| s.phase.clone())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "-".into()),
            size,
            format!("{healthy}/{desired}"),
            cv.map(|v| v.spec.iqn.clone()).unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = render(&rows);
    if !cvrs.is_empty() {
        let mut replicas = vec![["REPLICA", "VOLUME", "POOL", "NODE", "PHASE"].map(String::from)];
        for cvr in cvrs {
            replicas.push([
                cvr.metadata.name.clone().unwrap_or_default(),
                label(&cvr.metadata, labels::PERSISTENT_VOLUME),
                label(&cvr.metadata, labels::CSPI_NAME),
                cvr.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(cstor_api::keys::annotations::CSPI_HOSTNAME))
                    .cloned()
                    .unwrap_or_default(),
                cvr.status
                    .as_ref()
                    .map(|s| s.phase.clone())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push('\n');
        out.push_str(&render(&replicas));
    }
    out
}

fn render<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn pool_cluster(cspi: &CStorPoolInstance) -> String {
    cspi.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::CSTOR_POOL_CLUSTER))
        .cloned()
        .unwrap_or_default()
}

/// `mirror(2)+mirror(2) log:stripe(1)`: the raid groups of a CSPI in spec order.
pub fn layout(cspi: &CStorPoolInstance) -> String {
    let config = cspi.spec.pool_config.as_ref();
    let kind = |t: Option<&str>| t.filter(|t| !t.is_empty()).unwrap_or("?").to_string();
    let groups = |gs: &[RaidGroup], t: &str| {
        gs.iter()
            .map(|g| format!("{t}({})", g.block_devices.len()))
            .collect::<Vec<_>>()
            .join("+")
    };
    let data = groups(
        &cspi.spec.data_raid_groups,
        &kind(config.map(|c| c.data_raid_group_type.as_str())),
    );
    match cspi.spec.write_cache_raid_groups.as_deref() {
        Some(logs) if !logs.is_empty() => format!(
            "{data} log:{}",
            groups(
                logs,
                &kind(config.map(|c| c.write_cache_group_type.as_str()))
            )
        ),
        _ => data,
    }
}

/// Bytes as `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The table `cstor status` prints.
pub fn pool_table(cspis: &[CStorPoolInstance]) -> String {
    let mut rows = vec![[
        "CSPC".to_string(),
        "NODE".into(),
        "CSPI".into(),
        "PHASE".into(),
        "LAYOUT".into(),
        "CAPACITY".into(),
        "FREE".into(),
        "READ-ONLY".into(),
        "REPLICAS".into(),
    ]];
    for cspi in cspis {
        let status = cspi.status.clone().unwrap_or_default();
        let size = |q: Option<&str>| {
            q.and_then(|q| cstor_api::quantity::bytes(q).ok())
                .map(human)
                .unwrap_or_else(|| "-".into())
        };
        let capacity = status.capacity.as_ref();
        let phase = if status.phase.is_empty() {
            "Pending".to_string()
        } else {
            status.phase.clone()
        };
        rows.push([
            pool_cluster(cspi),
            cspi.spec.host_name.clone(),
            cspi.metadata.name.clone().unwrap_or_default(),
            phase,
            layout(cspi),
            size(capacity.map(|c| c.total.0.as_str())),
            size(capacity.map(|c| c.free.0.as_str())),
            if status.read_only { "yes" } else { "no" }.into(),
            format!(
                "{}/{}",
                status.healthy_replicas, status.provisioned_replicas
            ),
        ]);
    }
    if cspis.is_empty() {
        return "No pools. Create a CStorPoolCluster: kubectl -n openebs apply -f examples/local/cspc-mirror.yaml\n".into();
    }
    render(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cstor_api::cstor_v1::cspc::{CStorPoolInstanceBlockDevice, PoolConfig};
    use cstor_api::cstor_v1::cspi::{CStorPoolInstanceCapacity, CStorPoolInstanceStatus};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn group(n: usize) -> RaidGroup {
        RaidGroup {
            block_devices: (0..n)
                .map(|i| CStorPoolInstanceBlockDevice {
                    block_device_name: format!("bd-{i}"),
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn cspi() -> CStorPoolInstance {
        let mut c = CStorPoolInstance::default();
        c.metadata.name = Some("cspc-a-bcdf".into());
        c.metadata.labels =
            Some([(labels::CSTOR_POOL_CLUSTER.to_string(), "cspc-a".to_string())].into());
        c.spec.host_name = "cstor-node-1".into();
        c.spec.pool_config = Some(PoolConfig {
            data_raid_group_type: "mirror".into(),
            write_cache_group_type: "stripe".into(),
            ..Default::default()
        });
        c.spec.data_raid_groups = vec![group(2), group(2)];
        c.spec.write_cache_raid_groups = Some(vec![group(1)]);
        c.status = Some(CStorPoolInstanceStatus {
            phase: "ONLINE".into(),
            capacity: Some(CStorPoolInstanceCapacity {
                total: Quantity("1610612736".into()),
                free: Quantity("512Mi".into()),
                ..Default::default()
            }),
            provisioned_replicas: 3,
            healthy_replicas: 2,
            ..Default::default()
        });
        c
    }

    #[test]
    fn layout_lists_groups_in_spec_order() {
        assert_eq!(layout(&cspi()), "mirror(2)+mirror(2) log:stripe(1)");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(1610612736), "1.5 GiB");
        assert_eq!(human(100), "100 B");
    }

    #[test]
    fn table_has_one_row_per_pool() {
        let table = pool_table(&[cspi()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("CSPC"), "{table}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "cspc-a",
                "cstor-node-1",
                "cspc-a-bcdf",
                "ONLINE",
                "mirror(2)+mirror(2)",
                "log:stripe(1)",
                "1.5",
                "GiB",
                "512.0",
                "MiB",
                "no",
                "2/3"
            ]
        );
        assert!(pool_table(&[]).starts_with("No pools."));
    }
}
