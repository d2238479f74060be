//! SPC → CSPC migration on the local stack, with an SPC-era installation made for real: a
//! zfs-fuse pool `cstor-<CSP UID>` on each node's sparse disks holding a replica dataset of
//! known (seeded) data, and the SPC / CSP / BDC / old CVR objects and the old pool Deployment
//! and pod as the Go operators left them. The test plays the kubelet for the old pods: when a
//! migration scales an old pool Deployment to 0, its pod object goes.

mod common;

use common::migration::*;

use std::time::Duration;

use common::{NS, Rng, admin, bd, cspis_of, node, stack, wait_for, zpool_of};
use cstor_api::cstor_v1::CStorPoolCluster;
use cstor_api::keys::{annotations, labels};
use cstor_api::openebs_v1alpha1::{
    BlockDeviceClaim, CStorPool, LegacyCStorVolumeReplica, MigrationTask,
};
use cstor_local::components;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_striped_and_a_mirrored_spc_migrate_with_their_data() {
    stack();
    let client = admin().await;
    let mut rng = Rng::from_env_or_clock("replica data");
    let kubelet = old_kubelet(client.clone());
    // Striped, auto (maxPools), an old-style CSP with one group per disk, roThresholdLimit 0.
    let striped = make_old_install(
        &client,
        &mut rng,
        "sparse-claim-auto",
        "striped",
        &[(1, vec![vec![1], vec![2]]), (2, vec![vec![1], vec![2]])],
        false,
        0,
        None,
    )
    .await;
    // Mirrored, manual (a BD list), renamed.
    let mirrored = make_old_install(
        &client,
        &mut rng,
        "mirror-claim",
        "mirrored",
        &[
            (1, vec![vec![3, 4]]),
            (2, vec![vec![3, 4]]),
            (3, vec![vec![3, 4]]),
        ],
        true,
        80,
        None,
    )
    .await;
    // The old operators' backup records of a striped pool (their CRDs as maya installed them).
    let old_crd = |plural: &str, kind: &str| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.openebs.io")},
            "spec": {"group": "openebs.io", "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                     "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
        })
    };
    components::apply(
        &client,
        &[
            old_crd("cstorbackups", "CStorBackup"),
            old_crd("cstorrestores", "CStorRestore"),
            old_crd("cstorcompletedbackups", "CStorCompletedBackup"),
        ],
    )
    .await
    .expect("old backup CRDs");
    let csp_uid = striped.csps[0].uid.clone();
    let on_csp = json!({labels::CSP_UID: csp_uid, "openebs.io/persistent-volume": "pvc-b"});
    let records = vec![
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "CStorBackup",
               "metadata": {"name": "nightly-pvc-b", "namespace": NS, "labels": on_csp},
               "spec": {"backupName": "nightly", "volumeName": "pvc-b", "snapName": "s2", "prevSnapName": "s1",
                        "backupDest": "10.0.0.9:9000", "localSnap": false},
               "status": "Done"}),
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "CStorRestore",
               "metadata": {"name": "nightly-pvc-b-restore", "namespace": NS, "labels": on_csp},
               "spec": {"restoreName": "nightly", "volumeName": "pvc-b", "restoreSrc": "10.0.0.9:9000",
                        "maxretrycount": 3, "retrycount": 1, "localRestore": false},
               "status": "Done"}),
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "CStorCompletedBackup",
               "metadata": {"name": "nightly-pvc-b", "namespace": NS, "labels": on_csp},
               "spec": {"backupName": "nightly", "volumeName": "pvc-b", "prevSnapName": "s2", "snapName": "s1"}}),
    ];
    wait_for(
        "old backup records made",
        Duration::from_secs(30),
        || async {
            components::apply(&client, &records)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let striped_claims = claim_uids(&client, &striped.spc).await;
    let mirrored_claims = claim_uids(&client, &mirrored.spc).await;
    let started = std::time::Instant::now();
    start_task(&client, &striped.spc, None).await;
    // A second task for an SPC that is being migrated is refused by the webhook.
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    let mut again: MigrationTask = serde_json::from_value(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "MigrationTask",
        "metadata": {"name": "again", "namespace": NS},
        "spec": {"cstorPool": {"spcName": striped.spc}},
    }))
    .expect("task");
    let refused = tasks
        .create(&PostParams::default(), &again)
        .await
        .expect_err("a second running task is refused");
    assert!(
        refused.to_string().contains(&format!(
            "MigrationTask {} is already migrating spc {}; wait for it to end or delete it",
            task_name(&striped.spc),
            striped.spc
        )),
        "{refused}"
    );
    // The mirrored one through the CLI, as a user would, printing each step.
    let cli = std::thread::spawn(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cstor"))
            .args([
                "migrate",
                "spc",
                "mirror-claim",
                "--cspc-name",
                "mirror-pool",
            ])
            .env(
                "KUBECONFIG",
                cstor_local::testing::control_plane().kubeconfig(),
            )
            .output()
            .expect("cstor migrate spc")
    });
    let a = wait_ended(&client, &striped.spc, Duration::from_secs(300)).await;
    let out = cli.join().expect("cli thread");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("cstor migrate spc mirror-claim:\n{printed}");
    assert!(out.status.success(), "{out:?}");
    assert!(
        printed.contains("[Completed] Create CStorPoolCluster"),
        "{printed}"
    );
    assert!(
        printed.ends_with("spc mirror-claim migrated\n"),
        "{printed}"
    );
    // Once a task has ended, another for the same SPC may be made (it finds the work done).
    again.metadata.name = Some("again-later".into());
    tasks
        .create(&PostParams::default(), &again)
        .await
        .expect("a task after the first ended");
    wait_for(
        "the later task finds the work done",
        Duration::from_secs(60),
        || async {
            let t = tasks.get("again-later").await.map_err(|e| e.to_string())?;
            if t.status.phase == "Success" {
                Ok(())
            } else {
                Err(steps_of(&t))
            }
        },
    )
    .await;
    let b = wait_ended(&client, &mirrored.spc, Duration::from_secs(300)).await;
    eprintln!(
        "both migrations ended after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(a.status.phase, "Success", "striped: {}", steps_of(&a));
    assert_eq!(b.status.phase, "Success", "mirrored: {}", steps_of(&b));
    for t in [&a, &b] {
        assert!(
            t.status
                .migration_detailed_statuses
                .iter()
                .all(|s| s.phase == "Completed" && s.is_valid()),
            "every step Completed: {}",
            steps_of(t)
        );
        assert!(t.status.completed_time.is_some());
    }
    // roThresholdLimit 0 (off for the old pool manager) became 85, and the step says so.
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    let cspc = cspcs.get(&striped.spc).await.expect("striped CSPC");
    assert_eq!(cspc.spec.pools.len(), 2);
    for p in &cspc.spec.pools {
        assert_eq!(p.data_raid_groups.len(), 1, "a stripe is one group");
        assert_eq!(p.data_raid_groups[0].block_devices.len(), 2);
        let config = p.pool_config.as_ref().expect("poolConfig");
        assert_eq!(config.data_raid_group_type, "stripe");
        assert_eq!(config.ro_threshold_limit, Some(85));
    }
    assert!(
        steps_of(&a).contains("roThresholdLimit 0"),
        "the change is noted: {}",
        steps_of(&a)
    );
    let cspc = cspcs.get("mirror-pool").await.expect("mirrored CSPC");
    assert_eq!(cspc.spec.pools.len(), 3);
    assert!(cspc.spec.pools.iter().all(|p| {
        p.pool_config
            .as_ref()
            .is_some_and(|c| c.data_raid_group_type == "mirror" && c.ro_threshold_limit == Some(80))
    }));
    verify_migrated(&client, &striped, &striped.spc, &striped_claims).await;
    // The backup records moved to the new pool instance on that node, as v1 objects.
    let node_of = striped.csps[0].node;
    let cspi = cspis_of(&client, &striped.spc)
        .await
        .into_iter()
        .find(|c| c.spec.host_name == host(node_of))
        .expect("cspi");
    let backups: Api<cstor_api::cstor_v1::CStorBackup> = Api::namespaced(client.clone(), NS);
    let b = backups.get("nightly-pvc-b").await.expect("v1 backup");
    assert_eq!(b.labels().get(labels::CSPI_NAME), Some(&cspi.name_any()));
    assert_eq!(b.labels().get(labels::CSPI_UID), cspi.uid().as_ref());
    assert!(!b.labels().contains_key(labels::CSP_UID));
    assert_eq!(
        (
            b.spec.snap_name.as_str(),
            b.spec.prev_snap_name.as_str(),
            b.status.as_str()
        ),
        ("s2", "s1", "Done")
    );
    let restores: Api<cstor_api::cstor_v1::CStorRestore> = Api::namespaced(client.clone(), NS);
    let r = restores
        .get("nightly-pvc-b-restore")
        .await
        .expect("v1 restore");
    assert_eq!(
        (
            r.spec.max_retry_count,
            r.spec.retry_count,
            r.status.as_str()
        ),
        (Some(3), Some(1), "Done")
    );
    let completed: Api<cstor_api::cstor_v1::CStorCompletedBackup> =
        Api::namespaced(client.clone(), NS);
    let c = completed
        .get("nightly-pvc-b")
        .await
        .expect("v1 completed backup");
    assert_eq!(
        (
            c.spec.last_snap_name.as_str(),
            c.spec.second_last_snap_name.as_str()
        ),
        ("s2", "s1")
    );
    for plural in ["cstorbackups", "cstorrestores", "cstorcompletedbackups"] {
        let (ok, out) = common::kubectl(
            &[
                "get",
                &format!("{plural}.v1alpha1.openebs.io"),
                "-o",
                "name",
            ],
            None,
        );
        assert!(ok && out.trim().is_empty(), "old {plural} left: {out}");
    }
    verify_migrated(&client, &mirrored, "mirror-pool", &mirrored_claims).await;

    // A finished task changes nothing when looked at again.
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    let before = tasks.get(&task_name(&striped.spc)).await.expect("task");
    let cspis_before: Vec<(String, Option<String>)> = cspis_of(&client, &striped.spc)
        .await
        .iter()
        .map(|c| (c.name_any(), c.resource_version()))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = tasks.get(&task_name(&striped.spc)).await.expect("task");
    assert_eq!(before.status, after.status, "a finished task is left alone");
    assert_eq!(
        cspis_before.len(),
        cspis_of(&client, &striped.spc).await.len()
    );
    kubelet.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_end_in_errored_with_the_reason_and_leave_the_old_pool_importable() {
    stack();
    let client = admin().await;
    let mut rng = Rng::from_env_or_clock("replica data");
    let kubelet = old_kubelet(client.clone());

    // A BD the CSP names is on another node: refused before anything changes.
    let wrong = make_old_install(
        &client,
        &mut rng,
        "wrong-node",
        "striped",
        &[(1, vec![vec![5]])],
        false,
        85,
        None,
    )
    .await;
    let csps: Api<CStorPool> = Api::all(client.clone());
    let csp = &wrong.csps[0].name;
    let mut obj = csps.get(csp).await.expect("csp");
    obj.spec.group[0].block_device[0].name = bd(2, 5);
    csps.replace(csp, &PostParams::default(), &obj)
        .await
        .expect("edit CSP");
    start_task(&client, &wrong.spc, None).await;
    let t = wait_ended(&client, &wrong.spc, Duration::from_secs(60)).await;
    assert_eq!(t.status.phase, "Error", "{}", steps_of(&t));
    let last = t.status.migration_detailed_statuses.last().expect("a step");
    assert_eq!(
        (
            last.step.as_str(),
            last.phase.as_str(),
            last.reason.as_str()
        ),
        ("Pre-migration", "Errored", "ValidationFailed")
    );
    assert!(
        last.message.contains(&format!(
            "blockdevice {} of csp {csp} is on node \"cstor-node-2\", not \"cstor-node-1\"",
            bd(2, 5)
        )),
        "{}",
        last.message
    );
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(client.clone(), NS);
    assert!(
        cspcs.get_opt(&wrong.spc).await.expect("get").is_none(),
        "no CSPC made"
    );
    assert!(
        common::has_zpool(1, &format!("cstor-{}", wrong.csps[0].uid)),
        "old pool untouched"
    );

    // The old pool is not on the node's disks: the import fails and nothing is created.
    let missing = make_old_install(
        &client,
        &mut rng,
        "lost-pool",
        "striped",
        &[(3, vec![vec![6]])],
        false,
        85,
        None,
    )
    .await;
    let old_pool = format!("cstor-{}", missing.csps[0].uid);
    // The disk is wiped: the pool is exported and the disk file emptied (labels gone).
    wait_for("the old pool exported", Duration::from_secs(30), || async {
        node(3).zpool(&["export", "-f", &old_pool]).map(|_| ())
    })
    .await;
    let disk = node(3).disk(6);
    let len = std::fs::metadata(&disk).expect("disk").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .expect("open disk");
    f.set_len(0).expect("wipe");
    f.set_len(len).expect("resize");
    drop(f);
    start_task(&client, &missing.spc, None).await;
    let t = wait_ended(&client, &missing.spc, Duration::from_secs(120)).await;
    assert_eq!(t.status.phase, "Error", "{}", steps_of(&t));
    let last = t.status.migration_detailed_statuses.last().expect("a step");
    assert_eq!(last.reason, "ImportFailed", "{}", steps_of(&t));
    assert!(last.message.contains(&old_pool), "{}", last.message);
    let new_pool = zpool_of(&client, &missing.spc).await;
    assert!(
        !common::has_zpool(3, &new_pool),
        "no empty pool was created over the disks"
    );
    let events = common::kubectl(
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={}", task_name(&missing.spc)),
        ],
        None,
    )
    .1;
    assert!(
        events.contains("MigrationFailed"),
        "an Event says so: {events}"
    );
    kubelet.abort();
}

/// The leading cspc-operator replica's pid (the Lease names its pod).
async fn leader_pid(client: &Client) -> Option<(String, u32)> {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let lease = leases.get_opt("cspc-controller-leader").await.ok()??;
    let holder = lease.spec?.holder_identity?;
    stack()
        .pods
        .pids()
        .into_iter()
        .find(|(pod, _)| *pod == holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_operator_at_each_step_resumes_and_succeeds_with_the_data() {
    stack();
    let client = admin().await;
    let mut rng = Rng::from_env_or_clock("replica data and kill delays");
    let kubelet = old_kubelet(client.clone());
    let old = make_old_install(
        &client,
        &mut rng,
        "killed-claim",
        "mirrored",
        &[(1, vec![vec![7, 8]]), (2, vec![vec![7, 8]])],
        false,
        85,
        None,
    )
    .await;
    let claims = claim_uids(&client, &old.spc).await;
    start_task(&client, &old.spc, None).await;
    let tasks: Api<MigrationTask> = Api::namespaced(client.clone(), NS);
    let name = task_name(&old.spc);
    let mut seen = Vec::<String>::new();
    let mut kills = Vec::<String>::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let t = tasks.get(&name).await.expect("task");
        if matches!(t.status.phase.as_str(), "Success" | "Error") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out; kills {kills:?}; steps {}",
            steps_of(&t)
        );
        let current = t
            .status
            .migration_detailed_statuses
            .last()
            .map(|s| s.step.clone());
        if let Some(step) = current
            && !seen.contains(&step)
        {
            seen.push(step.clone());
            // Somewhere inside the step, not always at its first write.
            tokio::time::sleep(Duration::from_millis(rng.next() % 400)).await;
            if let Some((pod, pid)) = leader_pid(&client).await
                && kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
            {
                kills.push(format!("{step}: killed {pod} (pid {pid})"));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("kills: {kills:#?}");
    let t = tasks.get(&name).await.expect("task");
    assert_eq!(
        t.status.phase,
        "Success",
        "kills {kills:?}; steps {}",
        steps_of(&t)
    );
    assert!(
        kills.len() >= 5,
        "the operator was killed in most steps: {kills:?}"
    );
    verify_migrated(&client, &old, &old.spc, &claims).await;
    // No orphan: one CSPI and one pool-manager Deployment per node, no stray claims.
    let cspis = cspis_of(&client, &old.spc).await;
    assert_eq!(cspis.len(), 2);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let ours = deployments
        .list(&ListParams::default().labels(&format!("{}={}", labels::CSTOR_POOL_CLUSTER, old.spc)))
        .await
        .expect("deployments")
        .items;
    assert_eq!(ours.len(), 2, "one pool-manager per CSPI");
    let bdcs: Api<BlockDeviceClaim> = Api::namespaced(client.clone(), NS);
    let all = bdcs
        .list(&ListParams::default().labels(&format!("{}={}", labels::CSTOR_POOL_CLUSTER, old.spc)))
        .await
        .expect("claims")
        .items;
    assert_eq!(
        all.len(),
        claims.len(),
        "no claim made besides the migrated ones"
    );
    kubelet.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_provisioner_volume_migrates_keeping_its_names_replicas_and_data() {
    use cstor_api::cstor_v1::{CStorVolumeConfig, CStorVolumePolicy};
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use k8s_openapi::api::storage::v1::StorageClass;
    stack();
    let client = admin().await;
    let mut rng = Rng::from_env_or_clock("volume data pattern");
    let kubelet = old_kubelet(client.clone());
    let lun = OldLun {
        size: 64 << 20,
        pattern: (0..4).map(|_| (rng.next() % 255) as u8 + 1).collect(),
    };
    eprintln!("pattern of the first 4 MiB: {:?}", lun.pattern);
    // Three pools, one replica of the volume on each, written before the migration.
    let old = make_old_install(
        &client,
        &mut rng,
        "vol-claim",
        "striped",
        &[(1, vec![vec![1]]), (2, vec![vec![1]]), (3, vec![vec![1]])],
        false,
        85,
        Some(&lun),
    )
    .await;
    start_task(&client, &old.spc, None).await;
    let t = wait_ended(&client, &old.spc, Duration::from_secs(300)).await;
    assert_eq!(t.status.phase, "Success", "pool first: {}", steps_of(&t));
    let pv = old.pv.clone();

    // What the old external provisioner left: StorageClass, PV (iSCSI), claim, old volume,
    // old target, and an application pod still using the claim.
    common::kubectl(&["create", "namespace", "app"], None);
    let objects = old_volume_objects(&pv, true);
    components::apply(&client, &objects)
        .await
        .expect("old volume objects");
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "app");
    wait_for("the old claim Bound", Duration::from_secs(60), || async {
        let c = pvcs.get("data").await.map_err(|e| e.to_string())?;
        let phase = c.status.and_then(|s| s.phase).unwrap_or_default();
        if phase == "Bound" { Ok(()) } else { Err(phase) }
    })
    .await;

    // Refused while the application uses it, naming what to scale down; nothing changed.
    // The dry run says so first.
    let dry = std::process::Command::new(env!("CARGO_BIN_EXE_cstor"))
        .args(["migrate", "volume", &pv, "--dry-run"])
        .env(
            "KUBECONFIG",
            cstor_local::testing::control_plane().kubeconfig(),
        )
        .output()
        .expect("cstor migrate volume --dry-run");
    assert_eq!(dry.status.code(), Some(2), "{dry:?}");
    assert!(
        String::from_utf8_lossy(&dry.stderr).contains("problem (VolumeInUse): the volume"),
        "{dry:?}"
    );
    let name = start_volume_task(&client, &pv).await;
    let t = wait_task(&client, &name, Duration::from_secs(60)).await;
    assert_eq!(t.status.phase, "Error", "{}", steps_of(&t));
    let last = t.status.migration_detailed_statuses.last().expect("a step");
    assert_eq!(
        (last.step.as_str(), last.reason.as_str()),
        ("Pre-migration", "VolumeInUse")
    );
    assert_eq!(
        last.message,
        format!(
            "the volume {pv} is mounted by pod(s) in namespace app: app-7f9c-xk2lp (owned by ReplicaSet app-7f9c); scale them down (kubectl scale --replicas=0 on their owners) before migrating"
        )
    );
    let policies: Api<CStorVolumePolicy> = Api::namespaced(client.clone(), NS);
    assert!(
        policies.get_opt(&pv).await.expect("get").is_none(),
        "nothing made"
    );

    // Scaled down, but the old snapshot provisioner holds a snapshot of it: refused (the CLI
    // replaces the failed task and follows the new one).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "app");
    pods.delete("app-7f9c-xk2lp", &DeleteParams::default().grace_period(0))
        .await
        .expect("scale the app down");
    let snapshot_crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "volumesnapshots.volumesnapshot.external-storage.k8s.io",
                     // a *.k8s.io group needs it on apiextensions v1
                     "annotations": {"api-approved.kubernetes.io": "unapproved, the external-storage snapshot provisioner"}},
        "spec": {"group": "volumesnapshot.external-storage.k8s.io", "scope": "Namespaced",
                 "names": {"plural": "volumesnapshots", "singular": "volumesnapshot", "kind": "VolumeSnapshot"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    });
    components::apply(&client, &[snapshot_crd])
        .await
        .expect("old snapshot CRD");
    let snapshot = json!({
        "apiVersion": "volumesnapshot.external-storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "nightly", "namespace": "app", "labels": {"SnapshotMetadata-PVName": pv}},
        "spec": {"persistentVolumeClaimName": "data"},
    });
    wait_for("the old snapshot made", Duration::from_secs(30), || async {
        components::apply(&client, std::slice::from_ref(&snapshot))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let migrate = |pv: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cstor"))
            .args(["migrate", "volume", pv])
            .env(
                "KUBECONFIG",
                cstor_local::testing::control_plane().kubeconfig(),
            )
            .output()
            .expect("cstor migrate volume")
    };
    let pv2 = pv.clone();
    let out = tokio::task::spawn_blocking(move || migrate(&pv2))
        .await
        .expect("cli");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        printed.contains("ended in Error before; deleting it and starting again"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("[Errored] Pre-migration (NotSupported): the volume {pv} has snapshot(s) of the old snapshot provisioner (app/nightly); carrying them over is not supported: delete them, or keep the volume on the old operators")),
        "{printed}"
    );
    assert!(
        policies.get_opt(&pv).await.expect("get").is_none(),
        "nothing made"
    );

    // Snapshot deleted: the migration runs, through the CLI.
    common::kubectl(
        &[
            "delete",
            "volumesnapshots.volumesnapshot.external-storage.k8s.io",
            "nightly",
            "-n",
            "app",
        ],
        None,
    );
    let pv_uid = pvs.get(&pv).await.expect("pv").uid();
    let started = std::time::Instant::now();
    let pv2 = pv.clone();
    let out = tokio::task::spawn_blocking(move || migrate(&pv2))
        .await
        .expect("cli");
    eprintln!(
        "volume migration took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("cstor migrate volume {pv}:\n{printed}");
    assert!(out.status.success(), "{out:?}");
    assert!(
        printed.ends_with(&format!("pv {pv} migrated\n")),
        "{printed}"
    );
    let t = wait_task(&client, &name, Duration::from_secs(10)).await;
    assert_eq!(t.status.phase, "Success", "{}", steps_of(&t));
    assert!(
        t.status
            .migration_detailed_statuses
            .iter()
            .all(|s| s.phase == "Completed" && s.is_valid()),
        "{}",
        steps_of(&t)
    );

    // Same names, now the CSI driver's; the claim is Bound to the same PV name.
    let new_pv = pvs.get(&pv).await.expect("pv kept its name");
    assert_ne!(new_pv.uid(), pv_uid, "the PV was made anew");
    let spec = new_pv.spec.clone().expect("spec");
    let csi = spec.csi.expect("a CSI PV");
    assert_eq!(
        (csi.driver.as_str(), csi.volume_handle.as_str()),
        ("cstor.csi.openebs.io", pv.as_str())
    );
    assert_eq!(csi.fs_type.as_deref(), Some("ext4"));
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete"),
        "the reclaim policy it had"
    );
    wait_for("the new claim Bound", Duration::from_secs(60), || async {
        let c = pvcs.get("data").await.map_err(|e| e.to_string())?;
        let phase = c.status.clone().and_then(|s| s.phase).unwrap_or_default();
        let provisioner = c
            .annotations()
            .get("volume.beta.kubernetes.io/storage-provisioner")
            .cloned();
        if phase == "Bound" && provisioner.as_deref() == Some("cstor.csi.openebs.io") {
            Ok(())
        } else {
            Err(format!("{phase} {provisioner:?}"))
        }
    })
    .await;
    let scs: Api<StorageClass> = Api::all(client.clone());
    let sc = scs
        .get("openebs-cstor-old")
        .await
        .expect("the StorageClass kept its name");
    assert_eq!(sc.provisioner, "cstor.csi.openebs.io");
    let params = sc.parameters.clone().unwrap_or_default();
    assert_eq!(
        params.get("cstorPoolCluster").map(String::as_str),
        Some(old.spc.as_str())
    );
    assert_eq!(params.get("replicaCount").map(String::as_str), Some("3"));
    assert!(
        scs.get_opt("tmp-migrate-openebs-cstor-old")
            .await
            .expect("get")
            .is_none()
    );

    // The CVC Bound, the volume Healthy on the same three pools, the old objects gone.
    common::volumes::wait_healthy(&client, &pv, 3).await;
    let cspis = cspis_of(&client, &old.spc).await;
    let mut on: Vec<String> = common::volumes::cvrs_of(&client, &pv)
        .await
        .iter()
        .filter_map(|c| c.labels().get(labels::CSPI_NAME).cloned())
        .collect();
    on.sort();
    let mut want: Vec<String> = cspis.iter().map(|c| c.name_any()).collect();
    want.sort();
    assert_eq!(on, want, "replicas on the pools that held the data");
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), NS);
    let cvc = cvcs.get(&pv).await.expect("cvc");
    assert!(
        !cvc.annotations().contains_key(annotations::VOLUME_POLICY),
        "unpinned"
    );
    assert!(
        policies.get_opt(&pv).await.expect("get").is_none(),
        "temporary policy gone"
    );
    let old_cvrs: Api<LegacyCStorVolumeReplica> = Api::namespaced(client.clone(), NS);
    assert!(
        old_cvrs
            .list(&ListParams::default().labels(&format!("{}={pv}", labels::PERSISTENT_VOLUME)))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let old_cvs: Api<cstor_api::openebs_v1alpha1::LegacyCStorVolume> =
        Api::namespaced(client.clone(), NS);
    assert!(
        old_cvs.get_opt(&pv).await.expect("get").is_none(),
        "old CStorVolume gone"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let target = deployments
        .get(&format!("{pv}-target"))
        .await
        .expect("the new target");
    assert!(
        target
            .spec
            .template
            .spec
            .as_ref()
            .is_some_and(|p| p.containers.iter().any(|c| c
                .command
                .as_ref()
                .is_some_and(|c| c.first().map(String::as_str) == Some("cstor")))),
        "our target, not the old one"
    );

    // The data written before the migration, read through iSCSI.
    let mut cmds: Vec<String> = lun
        .pattern
        .iter()
        .enumerate()
        .map(|(i, b)| format!("read -P {b} {} 1M", i << 20))
        .collect();
    cmds.push(format!(
        "read -P 0 {} {}",
        lun.pattern.len() << 20,
        (64 << 20) - (lun.pattern.len() << 20)
    ));
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    common::volumes::qemu_io(&pv, &cmds);
    kubelet.abort();
}
