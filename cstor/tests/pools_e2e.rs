//! Pools end to end on the real apiserver and zfs-fuse: CSPCs of every raid type become
//! ONLINE pools with exactly the spec's layout; expansion, disk replacement with data intact,
//! a failing disk, removing a pool spec and deleting the CSPC. The operator, pool-managers,
//! disk discovery and webhook run as processes under their own ServiceAccounts (deploy/).
//! Tests share the nodes' disks, so they run one at a time.

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use common::*;
use cstor_api::cstor_v1::cspi::CStorPoolInstance;
use cstor_api::keys::annotations;
use cstor_api::openebs_v1alpha1::{BlockDevice, BlockDeviceClaim};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;

static SERIAL: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

fn disks(n: usize, ds: &[usize]) -> Vec<(usize, usize)> {
    ds.iter().map(|d| (n, *d)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_raid_type_becomes_online_pools_with_the_spec_layout() {
    let _one = SERIAL.lock().await;
    stack();
    let client = admin().await;
    let cases: [(&str, &[usize], usize); 4] = [
        ("stripe", &[1], 3),
        ("mirror", &[1, 2], 3),
        ("raidz", &[1, 2, 3], 2),
        ("raidz2", &[1, 2, 3, 4, 5, 6], 1),
    ];
    for (kind, group, nodes) in cases {
        let name = format!("layout-{kind}");
        let all: Vec<(usize, usize)> = (1..=nodes).flat_map(|n| disks(n, group)).collect();
        wait_disks_free(&client, &all).await;
        let pools = (1..=nodes).map(|n| pool(n, kind, &[group])).collect();
        kubectl_apply(&cspc(&name, pools));
        let cspis = wait_online(&client, &name, nodes).await;
        let zpool = zpool_of(&client, &name).await;
        for n in 1..=nodes {
            let want_kind = if kind == "stripe" {
                "disk".to_string()
            } else if kind == "raidz" {
                "raidz1".to_string()
            } else {
                kind.to_string()
            };
            let want: Vec<(String, Vec<usize>)> = if kind == "stripe" {
                group
                    .iter()
                    .map(|d| (want_kind.clone(), vec![*d]))
                    .collect()
            } else {
                vec![(want_kind.clone(), group.to_vec())]
            };
            assert_eq!(zpool_groups(n, &zpool), want, "{kind} on node {n}");
        }
        // Capacity is reported and claims are Bound with the CSPC's label.
        for c in &cspis {
            let cap = c
                .status
                .as_ref()
                .and_then(|s| s.capacity.clone())
                .expect("capacity");
            assert!(bytes(&cap.total) > 0, "{kind}: total {:?}", cap.total);
            assert!(bytes(&cap.free) <= bytes(&cap.total));
        }
        delete_and_verify_clean(&client, &name, &all).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_append_and_a_new_mirror_group_grow_the_pool() {
    let _one = SERIAL.lock().await;
    stack();
    let client = admin().await;

    // Stripe: one disk, then two.
    wait_disks_free(&client, &disks(1, &[1, 2])).await;
    kubectl_apply(&cspc("grow-stripe", vec![pool(1, "stripe", &[&[1]])]));
    let before = wait_online(&client, "grow-stripe", 1).await;
    let total_before = total(&before[0]);
    kubectl_apply(&cspc("grow-stripe", vec![pool(1, "stripe", &[&[1, 2]])]));
    let zpool = zpool_of(&client, "grow-stripe").await;
    let grown = wait_for(
        "stripe capacity to grow",
        Duration::from_secs(90),
        || async {
            let c = cspi_on(&client, "grow-stripe", 1).await;
            let t = total(&c);
            if t > total_before + (100 << 20) {
                Ok(c)
            } else {
                Err(format!("total {t} (was {total_before})"))
            }
        },
    )
    .await;
    assert_eq!(
        zpool_groups(1, &zpool),
        vec![("disk".into(), vec![1]), ("disk".into(), vec![2])]
    );
    assert_eq!(grown.spec.data_raid_groups[0].block_devices.len(), 2);
    let expansion = condition(&grown, "PoolExpansion").expect("PoolExpansion condition");
    assert!(
        expansion.reason.starts_with("PoolExpansion"),
        "{expansion:?}"
    );
    delete_and_verify_clean(&client, "grow-stripe", &disks(1, &[1, 2])).await;

    // Mirror: one group, then two.
    wait_disks_free(&client, &disks(2, &[1, 2, 3, 4])).await;
    kubectl_apply(&cspc("grow-mirror", vec![pool(2, "mirror", &[&[1, 2]])]));
    let before = wait_online(&client, "grow-mirror", 1).await;
    let total_before = total(&before[0]);
    kubectl_apply(&cspc(
        "grow-mirror",
        vec![pool(2, "mirror", &[&[1, 2], &[3, 4]])],
    ));
    let zpool = zpool_of(&client, "grow-mirror").await;
    wait_for(
        "mirror capacity to grow",
        Duration::from_secs(90),
        || async {
            let t = total(&cspi_on(&client, "grow-mirror", 2).await);
            if t > total_before + (100 << 20) {
                Ok(())
            } else {
                Err(format!("total {t} (was {total_before})"))
            }
        },
    )
    .await;
    assert_eq!(
        zpool_groups(2, &zpool),
        vec![("mirror".into(), vec![1, 2]), ("mirror".into(), vec![3, 4])]
    );
    delete_and_verify_clean(&client, "grow-mirror", &disks(2, &[1, 2, 3, 4])).await;
}

fn total(c: &CStorPoolInstance) -> u64 {
    c.status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .map(|cap| bytes(&cap.total))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_mirror_disk_keeps_the_data_and_releases_the_old_disk() {
    let _one = SERIAL.lock().await;
    stack();
    let client = admin().await;
    let n = 3;
    wait_disks_free(&client, &disks(n, &[1, 2, 3])).await;
    kubectl_apply(&cspc("replace", vec![pool(n, "mirror", &[&[1, 2]])]));
    wait_online(&client, "replace", 1).await;
    let zpool = zpool_of(&client, "replace").await;

    // A file of known content in a dataset of the pool, written on the node.
    let mnt = node(n).dir.join("mnt-replace");
    std::fs::create_dir_all(&mnt).expect("mountpoint");
    node(n)
        .zfs(&[
            "create",
            "-o",
            &format!("mountpoint={}", mnt.display()),
            &format!("{zpool}/data"),
        ])
        .expect("zfs create");
    let file = mnt.join("payload");
    let sh = |script: &str| {
        let out = node(n)
            .command("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh");
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    sh(&format!(
        "dd if=/dev/urandom of={} bs=1M count=40 2>/dev/null && sync",
        file.display()
    ));
    let sum = |sh: &dyn Fn(&str) -> String| {
        sh(&format!("sha256sum {}", file.display()))
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let before = sum(&sh);
    assert_eq!(before.len(), 64);

    // Replace disk 1 with disk 3 through the CSPC.
    kubectl_apply(&cspc("replace", vec![pool(n, "mirror", &[&[3, 2]])]));
    let done = wait_for(
        "DiskReplacement to finish",
        Duration::from_secs(120),
        || async {
            let c = cspi_on(&client, "replace", n).await;
            match condition(&c, "DiskReplacement") {
                Some(cond) if cond.reason == "BlockDeviceReplacementSucceess" => Ok(c),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        done.spec.data_raid_groups[0]
            .block_devices
            .iter()
            .map(|b| b.block_device_name.clone())
            .collect::<Vec<_>>(),
        vec![bd(n, 3), bd(n, 2)]
    );
    assert_eq!(zpool_groups(n, &zpool), vec![("mirror".into(), vec![3, 2])]);
    assert_eq!(sum(&sh), before, "data changed across the replacement");

    // The old disk is released and the predecessor mark is gone.
    let bds: Api<BlockDevice> = Api::namespaced(client.clone(), NS);
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);
    wait_for("old disk released", Duration::from_secs(60), || async {
        let old = bds.get(&bd(n, 1)).await.map_err(|e| e.to_string())?;
        let claims = bdcs
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        let old_claim = claims.iter().any(|c| c.spec.block_device_name == bd(n, 1));
        let marked = claims.iter().any(|c| {
            c.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(annotations::BD_PREDECESSOR))
        });
        if old.status.claim_state == "Unclaimed" && !old_claim && !marked {
            Ok(())
        } else {
            Err(format!(
                "old bd {}, old claim left {old_claim}, predecessor annotation left {marked}",
                old.status.claim_state
            ))
        }
    })
    .await;
    delete_and_verify_clean(&client, "replace", &disks(n, &[1, 2, 3])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_turns_the_pool_degraded_with_a_reason_and_an_event() {
    let _one = SERIAL.lock().await;
    stack();
    let client = admin().await;
    let n = 2;
    wait_disks_free(&client, &disks(n, &[5, 6])).await;
    kubectl_apply(&cspc("failing", vec![pool(n, "mirror", &[&[5, 6]])]));
    let cspi = wait_online(&client, "failing", 1).await.remove(0);
    let zpool = zpool_of(&client, "failing").await;
    let disk = node(n).disk(6);
    node(n)
        .zpool(&["offline", &zpool, &disk.to_string_lossy()])
        .expect("zpool offline");
    let degraded = wait_for("CSPI DEGRADED", Duration::from_secs(60), || async {
        let c = cspi_on(&client, "failing", n).await;
        let phase = c.status.clone().unwrap_or_default().phase;
        match condition(&c, "DiskUnavailable") {
            Some(cond) if phase == "DEGRADED" && cond.reason == "DisksAreUnavailable" => Ok(c),
            other => Err(format!("phase {phase}, DiskUnavailable {other:?}")),
        }
    })
    .await;
    let cond = condition(&degraded, "DiskUnavailable").expect("condition");
    assert!(cond.message.contains(&bd(n, 6)), "{cond:?}");
    let name = cspi.metadata.name.clone().expect("name");
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    wait_for(
        "a Warning event on the CSPI",
        Duration::from_secs(30),
        || async {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items;
            let ours: Vec<String> = list
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&name))
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .map(|e| format!("{:?}: {:?}", e.reason, e.note))
                .collect();
            if ours.iter().any(|e| e.contains(&bd(n, 6))) {
                Ok(())
            } else {
                Err(format!("{ours:?}"))
            }
        },
    )
    .await;
    node(n)
        .zpool(&["online", &zpool, &disk.to_string_lossy()])
        .expect("zpool online");
    wait_online(&client, "failing", 1).await;
    delete_and_verify_clean(&client, "failing", &disks(n, &[5, 6])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_pool_spec_destroys_that_pool_and_releases_its_disks() {
    let _one = SERIAL.lock().await;
    stack();
    let client = admin().await;
    let all: Vec<(usize, usize)> = (1..=3).map(|n| (n, 7)).collect();
    wait_disks_free(&client, &all).await;
    let pools = |k: usize| (1..=k).map(|n| pool(n, "stripe", &[&[7]])).collect();
    kubectl_apply(&cspc("shrink", pools(3)));
    wait_online(&client, "shrink", 3).await;
    let zpool = zpool_of(&client, "shrink").await;
    kubectl_apply(&cspc("shrink", pools(2)));
    wait_for("pool on node 3 gone", Duration::from_secs(90), || async {
        let cspis = cspis_of(&client, "shrink").await;
        let bds: Api<BlockDevice> = Api::namespaced(client.clone(), NS);
        let freed = bds.get(&bd(3, 7)).await.map_err(|e| e.to_string())?;
        if cspis.len() == 2 && !has_zpool(3, &zpool) && freed.status.claim_state == "Unclaimed" {
            Ok(())
        } else {
            Err(format!(
                "{} CSPIs, zpool on node 3 {}, disk {}",
                cspis.len(),
                has_zpool(3, &zpool),
                freed.status.claim_state
            ))
        }
    })
    .await;
    assert!(has_zpool(1, &zpool) && has_zpool(2, &zpool));
    wait_online(&client, "shrink", 2).await;
    delete_and_verify_clean(&client, "shrink", &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cstor_status_prints_the_pools() {
    let _one = SERIAL.lock().await;
    stack();
    let client = admin().await;
    wait_disks_free(&client, &disks(1, &[8])).await;
    kubectl_apply(&cspc("status-table", vec![pool(1, "stripe", &[&[8]])]));
    wait_online(&client, "status-table", 1).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cstor"))
        .arg("status")
        .env(
            "KUBECONFIG",
            cstor_local::testing::control_plane().kubeconfig(),
        )
        .output()
        .expect("cstor status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let row = text
        .lines()
        .find(|l| l.starts_with("status-table"))
        .unwrap_or_else(|| panic!("no row for the pool in:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "cstor-node-1", "{row}");
    assert_eq!(cells[3], "ONLINE", "{row}");
    assert_eq!(cells[4], "stripe(1)", "{row}");
    assert!(row.contains("MiB"), "{row}");
    delete_and_verify_clean(&client, "status-table", &disks(1, &[8])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_registers_and_retires_disks_and_claims_are_refused_with_reasons() {
    let _one = SERIAL.lock().await;
    stack();
    let client = admin().await;
    let bds: Api<BlockDevice> = Api::namespaced(client.clone(), NS);
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);

    // A new disk file appears as an Active, Unclaimed BlockDevice; removed, it turns Inactive.
    let extra = node(1).disks_dir().join("disk-extra");
    let f = std::fs::File::create(&extra).expect("disk file");
    f.set_len(64 << 20).expect("size");
    let name = "bd-cstor-node-1-disk-extra";
    let found = wait_for("new disk registered", Duration::from_secs(30), || async {
        match bds.get_opt(name).await.map_err(|e| e.to_string())? {
            Some(b) if b.status.state == "Active" => Ok(b),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(found.status.claim_state, "Unclaimed");
    assert_eq!(found.spec.capacity.storage, 64 << 20);
    assert_eq!(found.spec.path, extra.to_string_lossy());

    // Claims: one that fits binds; a second on the same disk and one asking too much are refused.
    let claim = |claim: &str, bd: &str, storage: &str| {
        serde_json::json!({
            "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
            "metadata": {"name": claim, "namespace": NS},
            "spec": {"blockDeviceName": bd, "resources": {"requests": {"storage": storage}}},
        })
    };
    kubectl_apply(&claim("claim-a", name, "32Mi"));
    kubectl_apply(&claim("claim-b", name, "32Mi"));
    kubectl_apply(&claim("claim-big", &bd(1, 8), "1Ti"));
    let phase = |c: &str| {
        let bdcs = bdcs.clone();
        let c = c.to_string();
        async move {
            bdcs.get(&c)
                .await
                .map(|b| b.status.phase)
                .map_err(|e| e.to_string())
        }
    };
    wait_for("claim-a Bound", Duration::from_secs(30), || async {
        match phase("claim-a").await? {
            p if p == "Bound" => Ok(()),
            p => Err(p),
        }
    })
    .await;
    wait_for("claim-big refused", Duration::from_secs(30), || async {
        match phase("claim-big").await? {
            p if p == "Invalid Capacity Request" => Ok(()),
            p => Err(p),
        }
    })
    .await;
    assert_eq!(phase("claim-b").await.expect("claim-b"), "Pending");
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    wait_for(
        "the refusal's reason as an Event",
        Duration::from_secs(30),
        || async {
            let notes: Vec<String> = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("claim-b"))
                .map(|e| format!("{:?} {:?}", e.reason, e.note))
                .collect();
            if notes
                .iter()
                // Either reason is true: kube's Recorder folds a repeat of a reason into the
                // first Event's series, so which note shows depends on who was seen first.
                .any(|n| {
                    (n.contains("claimed by") || n.contains("came first")) && n.contains("claim-a")
                })
            {
                Ok(())
            } else {
                Err(format!("{notes:?}"))
            }
        },
    )
    .await;
    let bound = bds.get(name).await.expect("bd");
    assert_eq!(bound.status.claim_state, "Claimed");
    assert_eq!(
        bound.spec.claim_ref.and_then(|r| r.name).as_deref(),
        Some("claim-a")
    );

    // Deleting the bound claim releases the disk; the waiting claim then binds.
    let (ok, out) = kubectl(&["delete", "bdc", "claim-a"], None);
    assert!(ok, "{out}");
    wait_for(
        "claim-b Bound after the release",
        Duration::from_secs(30),
        || async {
            match phase("claim-b").await? {
                p if p == "Bound" => Ok(()),
                p => Err(p),
            }
        },
    )
    .await;
    for c in ["claim-b", "claim-big"] {
        let (ok, out) = kubectl(&["delete", "bdc", c], None);
        assert!(ok, "{out}");
    }
    wait_for("disk released", Duration::from_secs(30), || async {
        let b = bds.get(name).await.map_err(|e| e.to_string())?;
        if b.status.claim_state == "Unclaimed" && b.spec.claim_ref.is_none() {
            Ok(())
        } else {
            Err(format!("{:?}", b.status))
        }
    })
    .await;

    std::fs::remove_file(&extra).expect("remove disk file");
    wait_for(
        "vanished disk Inactive",
        Duration::from_secs(30),
        || async {
            let b = bds.get(name).await.map_err(|e| e.to_string())?;
            if b.status.state == "Inactive" {
                Ok(())
            } else {
                Err(b.status.state)
            }
        },
    )
    .await;
}
