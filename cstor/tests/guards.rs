//! Nothing destroyed by mistake, on the real apiserver, operators and zfs-fuse: destructive
//! steps re-check, live, right before they act (docs/pools.md "Deleting a pool cluster").

mod common;

use std::time::Duration;

use common::*;
use cstor_api::cstor_v1::{CStorPoolCluster, CStorPoolInstance, CStorVolumeConfig};
use kube::Api;
use serde_json::json;

const OPERATOR: &str = "--as=system:serviceaccount:openebs:cstor-cvc-operator";
const CSPC_OPERATOR: &str = "--as=system:serviceaccount:openebs:cstor-cspc-operator";
const MASTERS: &str = "--as-group=system:masters";

/// A replica placed on a pool just after admission let its CSPC's delete through (its cache
/// was behind) is simulated by an operator-made CVR while the deletion is paused. The
/// cspc-operator re-counts replicas live and waits with a reason instead of deleting the
/// CSPI; a CSPI deleted anyway is not destroyed by its pool-manager while the CVR names it;
/// a volume asked for meanwhile is not placed on the dying pools. Once the replica is gone
/// the deletion completes and the disks are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_placed_during_a_pool_cluster_delete_is_never_destroyed_with_it() {
    fault_stack();
    let client = admin().await;
    kubectl_apply(&cspc("gone", vec![pool(1, "stripe", &[&[1]])]));
    let cspi = wait_online(&client, "gone", 1).await.remove(0);
    let cspi_name = cspi.metadata.name.clone().expect("name");
    let zpool = zpool_of(&client, "gone").await;

    // Pause the operator, delete the CSPC (admission sees no replica), then a replica lands.
    let (ok, out) = kubectl(
        &[
            "annotate",
            "cspc",
            "gone",
            "reconcile.openebs.io/disable=true",
        ],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&["delete", "cspc", "gone", "--wait=false"], None);
    assert!(ok, "{out}");
    let cvr = json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeReplica",
        "metadata": {"name": format!("vol-late-{cspi_name}"), "namespace": "openebs",
                     "labels": {"cstorpoolinstance.openebs.io/name": cspi_name,
                                "cstorpoolinstance.openebs.io/uid": cspi.metadata.uid.clone().expect("uid"),
                                "openebs.io/persistent-volume": "vol-late"}},
        "spec": {"capacity": "16Mi"},
    });
    let (ok, out) = kubectl(
        &[OPERATOR, MASTERS, "apply", "-f", "-"],
        Some(cvr.to_string()),
    );
    assert!(ok, "{out}");

    // A volume asked for now is not placed on a pool cluster being deleted.
    common::volumes::cstor(&[
        "volume",
        "create",
        "vol-new",
        "--size",
        "16Mi",
        "--replicas",
        "1",
        "--pool-cluster",
        "gone",
    ]);
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), "openebs");
    wait_for(
        "vol-new refused placement on the dying pool cluster",
        Duration::from_secs(60),
        || async {
            let cvc = cvcs.get("vol-new").await.map_err(|e| e.to_string())?;
            let conds = cvc.status.clone().unwrap_or_default().conditions;
            match conds.iter().find(|c| c.type_ == "PoolPlacement") {
                Some(c) if c.reason == "PoolClusterDeleting" => {
                    assert_eq!(
                        c.message,
                        "CStorPoolCluster gone is being deleted: no replica is placed on its pools"
                    );
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // Resume: the operator counts the replica live and waits, saying why.
    let (ok, out) = kubectl(
        &["annotate", "cspc", "gone", "reconcile.openebs.io/disable-"],
        None,
    );
    assert!(ok, "{out}");
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), "openebs");
    wait_for(
        "the deletion waits for the replica",
        Duration::from_secs(60),
        || async {
            let c = cspcs.get("gone").await.map_err(|e| e.to_string())?;
            let conds = c.status.clone().unwrap_or_default().conditions;
            match conds.iter().find(|c| c.type_ == "PoolsProvisioned") {
                Some(c) if c.reason == "ReplicasOnPool" => {
                    assert!(
                        c.message.contains(&format!(
                            "{cspi_name}: 1 volume replica(s) still live on it (vol-late-{cspi_name})"
                        )),
                        "{}",
                        c.message
                    );
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let cspis: Api<CStorPoolInstance> = Api::namespaced(client.clone(), "openebs");
    let kept = cspis.get(&cspi_name).await.expect("the CSPI is kept");
    assert!(kept.metadata.deletion_timestamp.is_none(), "CSPI deleted");
    assert!(has_zpool(1, &zpool), "pool destroyed");

    // Deleted anyway (by the operator's account): its pool-manager re-checks and refuses.
    let (ok, out) = kubectl(
        &[
            CSPC_OPERATOR,
            MASTERS,
            "delete",
            "cspi",
            &cspi_name,
            "--wait=false",
        ],
        None,
    );
    assert!(ok, "{out}");
    wait_for(
        "the pool-manager refuses to destroy a pool a replica names",
        Duration::from_secs(60),
        || async {
            let c = cspis.get(&cspi_name).await.map_err(|e| e.to_string())?;
            let phase = c.status.clone().unwrap_or_default().phase;
            if phase == "DeletionFailed" {
                Ok(())
            } else {
                Err(phase)
            }
        },
    )
    .await;
    assert!(has_zpool(1, &zpool), "pool destroyed");

    // The replica goes: everything completes by itself.
    let (ok, out) = kubectl(
        &[
            OPERATOR,
            MASTERS,
            "delete",
            "cvr",
            &format!("vol-late-{cspi_name}"),
            "--wait=false",
        ],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&["delete", "cvc", "vol-new", "--wait=false"], None);
    assert!(ok, "{out}");
    wait_for(
        "the CSPC and its pool gone",
        Duration::from_secs(120),
        || async {
            let left = cspcs.get_opt("gone").await.map_err(|e| e.to_string())?;
            if left.is_none() && !has_zpool(1, &zpool) {
                Ok(())
            } else {
                Err(format!(
                    "cspc {:?}, pool there {}",
                    left.map(|c| c.status),
                    has_zpool(1, &zpool)
                ))
            }
        },
    )
    .await;
    wait_disks_free(&client, &[(1, 1)]).await;
}

/// A claim deleted while its disk is in a live pool: the BlockDevice stays Claimed (the pool's
/// finalizer still holds the claim) and the pool stays ONLINE; deleting the pool cluster
/// releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disk_in_a_live_pool_stays_claimed_when_its_claim_is_deleted() {
    fault_stack();
    let client = admin().await;
    kubectl_apply(&cspc("held", vec![pool(2, "stripe", &[&[1]])]));
    let cspi = wait_online(&client, "held", 1).await.remove(0);
    let bds: Api<cstor_api::openebs_v1alpha1::BlockDevice> = Api::namespaced(client.clone(), NS);
    let disk = bds.get(&bd(2, 1)).await.expect("bd");
    let claim = disk
        .spec
        .claim_ref
        .as_ref()
        .and_then(|r| r.name.clone())
        .expect("claimed");
    let (ok, out) = kubectl(&["delete", "bdc", &claim, "--wait=false"], None);
    assert!(ok, "{out}");
    // Give claim binding every chance to (wrongly) release it.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let disk = bds.get(&bd(2, 1)).await.expect("bd");
    assert_eq!(disk.status.claim_state, "Claimed");
    assert_eq!(
        disk.spec.claim_ref.and_then(|r| r.name).as_deref(),
        Some(claim.as_str())
    );
    let cspis: Api<CStorPoolInstance> = Api::namespaced(client.clone(), NS);
    let now = cspis
        .get(cspi.metadata.name.as_deref().expect("name"))
        .await
        .expect("cspi");
    assert_eq!(now.status.unwrap_or_default().phase, "ONLINE");
    delete_and_verify_clean(&client, "held", &[(2, 1)]).await;
}
