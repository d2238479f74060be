//! The volume MigrationTask's decisions from snapshots of the old and new objects, one per
//! point of the path, with the refusals' exact words.

use cstor_api::cstor_v1::{CStorVolumeConfig, CStorVolumePolicy};
use cstor_api::openebs_v1alpha1::LegacyCStorVolumeReplica;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Value, json};

use crate::migrate::decide::{Action, Next, reason};
use crate::migrate::volume::{VolumeAction, VolumeView, decide_volume, step};

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("object")
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// `T::default()` with the fields of `over` set (the rest as the operators write them).
fn with<T: Default + serde::Serialize + serde::de::DeserializeOwned>(over: Value) -> T {
    let mut base = serde_json::to_value(T::default()).expect("default");
    merge(&mut base, over);
    from(base)
}

fn old_cvr(i: usize) -> LegacyCStorVolumeReplica {
    from(json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "CStorVolumeReplica",
        "metadata": {"name": format!("pv1-csp-{i}"), "namespace": "openebs",
                     "labels": {"openebs.io/persistent-volume": "pv1", "cstorpoolinstance.openebs.io/name": format!("pool-{i}")}},
    }))
}

fn sc(provisioner: &str, name: &str, owner: Option<&str>) -> StorageClass {
    let annotations = owner.map(|o| json!({"pv-name": o})).unwrap_or(json!({}));
    from(
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, "annotations": annotations}, "provisioner": provisioner}),
    )
}

fn pv(csi: bool, reclaim: &str) -> PersistentVolume {
    let mut spec = json!({"storageClassName": "old-sc", "persistentVolumeReclaimPolicy": reclaim,
                          "claimRef": {"namespace": "app", "name": "data"}});
    if csi {
        spec["csi"] = json!({"driver": "cstor.csi.openebs.io", "volumeHandle": "pv1"});
    } else {
        spec["iscsi"] = json!({"targetPortal": "10.0.0.1:3260", "iqn": "iqn", "lun": 0});
    }
    from(
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"}, "spec": spec}),
    )
}

fn pvc(csi: bool) -> PersistentVolumeClaim {
    let provisioner = if csi {
        "cstor.csi.openebs.io"
    } else {
        "openebs.io/provisioner-iscsi"
    };
    from(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "app",
                             "annotations": {"volume.beta.kubernetes.io/storage-provisioner": provisioner}},
                "spec": {"storageClassName": "old-sc", "volumeName": "pv1"}}))
}

/// Before anything: old PV, claim, SC, old volume of 3 replicas on migrated pools.
fn start() -> VolumeView {
    VolumeView {
        pv_name: "pv1".into(),
        namespace: "openebs".into(),
        pv: Some(pv(false, "Delete")),
        pvc: Some(pvc(false)),
        sc: Some(sc("openebs.io/provisioner-iscsi", "old-sc", None)),
        old_cvs: vec![from(json!({
            "apiVersion": "openebs.io/v1alpha1", "kind": "CStorVolume",
            "metadata": {"name": "pv1", "namespace": "openebs"},
            "spec": {"replicationFactor": 3, "capacity": "1Gi"},
        }))],
        old_cvrs: (1..=3).map(old_cvr).collect(),
        cspc_of_cspi: (1..=3)
            .map(|i| (format!("pool-{i}"), "cspc".to_string()))
            .collect(),
        old_target: true,
        ..VolumeView::default()
    }
}

fn policy() -> CStorVolumePolicy {
    from(
        json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumePolicy",
                "metadata": {"name": "pv1", "namespace": "openebs"}, "spec": {}}),
    )
}

fn volume(a: VolumeAction) -> Next {
    Next::Act(Action::Volume(a))
}

#[test]
fn each_point_of_the_volume_path_has_one_next_step() {
    let mut cases: Vec<(&str, VolumeView, &str, Next)> = Vec::new();
    let pools: Vec<String> = (1..=3).map(|i| format!("pool-{i}")).collect();
    cases.push((
        "fresh",
        start(),
        step::POLICY,
        volume(VolumeAction::CreatePolicy { pools }),
    ));
    let mut v = start();
    v.policy = Some(policy());
    cases.push((
        "pinned",
        v.clone(),
        step::RETAIN,
        volume(VolumeAction::RetainPv),
    ));
    v.pv = Some(pv(false, "Retain"));
    cases.push((
        "retained",
        v.clone(),
        step::STORAGE_CLASS,
        volume(VolumeAction::CopyStorageClass),
    ));
    v.tmp_sc = Some(sc(
        "openebs.io/provisioner-iscsi",
        "tmp-migrate-old-sc",
        Some("pv1"),
    ));
    cases.push((
        "copied",
        v.clone(),
        step::STORAGE_CLASS,
        volume(VolumeAction::DeleteStorageClass),
    ));
    let mut other = v.clone();
    other.tmp_sc = Some(sc(
        "openebs.io/provisioner-iscsi",
        "tmp-migrate-old-sc",
        Some("pv2"),
    ));
    cases.push((
        "another task rewrites the SC",
        other,
        step::STORAGE_CLASS,
        Next::Wait,
    ));
    v.sc = None;
    cases.push((
        "SC deleted",
        v.clone(),
        step::STORAGE_CLASS,
        volume(VolumeAction::CreateStorageClass {
            cspc: "cspc".into(),
            replicas: 3,
        }),
    ));
    v.sc = Some(sc("cstor.csi.openebs.io", "old-sc", None));
    cases.push((
        "SC made anew",
        v.clone(),
        step::STORAGE_CLASS,
        volume(VolumeAction::DeleteTmpStorageClass),
    ));
    v.tmp_sc = None;
    cases.push((
        "SC done",
        v.clone(),
        step::PVC,
        volume(VolumeAction::DeletePvc),
    ));
    v.pvc = None;
    cases.push((
        "claim gone",
        v.clone(),
        step::PVC,
        volume(VolumeAction::CreatePvc),
    ));
    v.pvc = Some(pvc(true));
    cases.push((
        "claim made",
        v.clone(),
        step::PV,
        volume(VolumeAction::DeletePv),
    ));
    v.pv = None;
    cases.push((
        "PV gone",
        v.clone(),
        step::PV,
        volume(VolumeAction::CreatePv),
    ));
    v.pv = Some(pv(true, "Delete"));
    cases.push((
        "PV made",
        v.clone(),
        step::OLD_TARGET,
        volume(VolumeAction::DeleteOldTarget),
    ));
    v.old_target = false;
    cases.push((
        "old target gone",
        v.clone(),
        step::CVC,
        volume(VolumeAction::CreateCvc {
            cspc: "cspc".into(),
            replicas: 3,
        }),
    ));
    v.cvc = Some(with::<CStorVolumeConfig>(
        json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeConfig",
        "metadata": {"name": "pv1", "namespace": "openebs", "annotations": {"openebs.io/volume-policy": "pv1"}},
        "spec": {"capacity": {"storage": "1Gi"}}, "status": {"phase": "Bound"}}),
    ));
    cases.push(("CVC made", v.clone(), step::HEALTHY, Next::Wait));
    v.cv = Some(with::<cstor_api::cstor_v1::CStorVolume>(
        json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
        "metadata": {"name": "pv1", "namespace": "openebs"}, "spec": {}, "status": {"phase": "Healthy"}}),
    ));
    cases.push((
        "healthy",
        v.clone(),
        step::CLEAN_UP,
        volume(VolumeAction::DeleteOldReplica {
            name: "pv1-csp-1".into(),
        }),
    ));
    v.old_cvrs.clear();
    cases.push((
        "old replicas gone",
        v.clone(),
        step::CLEAN_UP,
        volume(VolumeAction::UnpinCvc),
    ));
    let cvc: CStorVolumeConfig = with(
        json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeConfig",
        "metadata": {"name": "pv1", "namespace": "openebs"}, "spec": {"capacity": {"storage": "1Gi"}}, "status": {"phase": "Bound"}}),
    );
    v.cvc = Some(cvc);
    cases.push((
        "unpinned",
        v.clone(),
        step::CLEAN_UP,
        volume(VolumeAction::DeleteOldVolume {
            namespace: "openebs".into(),
        }),
    ));
    v.old_cvs.clear();
    cases.push((
        "old volume gone",
        v.clone(),
        step::CLEAN_UP,
        volume(VolumeAction::DeletePolicy),
    ));
    v.policy = None;
    cases.push(("done", v, step::CLEAN_UP, Next::Done));
    for (what, view, want_step, want) in cases {
        let d = decide_volume(&view);
        assert_eq!(
            (d.step.as_str(), &d.next),
            (want_step, &want),
            "{what}: {}",
            d.message
        );
    }
}

#[test]
fn refusals_before_anything_changes_say_why() {
    let mut cases: Vec<(VolumeView, &str, String)> = Vec::new();
    let mut v = start();
    v.users = vec!["app-1 (owned by ReplicaSet app)".into()];
    cases.push((v, reason::VOLUME_IN_USE, "the volume pv1 is mounted by pod(s) in namespace app: app-1 (owned by ReplicaSet app); scale them down (kubectl scale --replicas=0 on their owners) before migrating".into()));
    let mut v = start();
    v.old_snapshots = vec!["app/nightly".into()];
    cases.push((v, reason::NOT_SUPPORTED, "the volume pv1 has snapshot(s) of the old snapshot provisioner (app/nightly); carrying them over is not supported: delete them, or keep the volume on the old operators".into()));
    let mut v = start();
    v.old_cvrs.pop();
    cases.push((
        v,
        reason::VALIDATION_FAILED,
        "failed to get cvrs for volume pv1, expected 3 got 2".into(),
    ));
    let mut v = start();
    v.old_cvrs[1] = from(
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "CStorVolumeReplica",
        "metadata": {"name": "pv1-csp-2", "namespace": "openebs", "labels": {"cstorpool.openebs.io/name": "csp-2"}}}),
    );
    cases.push((
        v,
        reason::VALIDATION_FAILED,
        "no cspi label found on cvr pv1-csp-2: migrate the pool (spc) it is on first".into(),
    ));
    let mut v = start();
    v.old_cvs.clear();
    cases.push((
        v,
        reason::VALIDATION_FAILED,
        "no cStor volume (openebs.io/v1alpha1 CStorVolume) found for pv pv1".into(),
    ));
    let mut v = start();
    v.pv = None;
    v.pvc = None;
    cases.push((
        v,
        reason::VALIDATION_FAILED,
        "PersistentVolume pv1 not found, and no claim names it".into(),
    ));
    for (view, want_reason, want_message) in cases {
        let d = decide_volume(&view);
        assert_eq!(
            d.next,
            Next::Fail {
                reason: want_reason
            },
            "{}",
            d.message
        );
        assert_eq!(d.step, step::PRE_MIGRATION);
        assert_eq!(d.message, want_message);
    }
    // Once the claim is the CSI driver's, the checks of the start no longer apply.
    let mut v = start();
    v.policy = Some(policy());
    v.pv = Some(pv(false, "Retain"));
    v.sc = Some(sc("cstor.csi.openebs.io", "old-sc", None));
    v.pvc = Some(pvc(true));
    v.users = vec!["new-app".into()];
    assert_eq!(decide_volume(&v).next, volume(VolumeAction::DeletePv));
}
