//! Table tests of claim binding decisions and the apply bodies they write.
#![allow(clippy::unwrap_used)]

use super::support::*;
use crate::claim_binding::{BDC_FINALIZER, Binding, bind_apply, decide, release_apply};
use pretty_assertions::assert_eq;

#[test]
fn binding_decisions() {
    let claim = bdc("bdc-cstor-u1", "c1", "bd-1", Some("cspc-a"), "", "1000");
    let free = bd("bd-1", "u1", "h1", 1000);
    assert_eq!(decide(&claim, Some(&free)), Binding::Bind);

    assert_eq!(
        decide(&claim, None),
        Binding::Pending {
            reason: "BlockDeviceNotFound",
            message: "BlockDevice bd-1 not found".into()
        }
    );

    let mut inactive = free.clone();
    inactive.status.state = "Inactive".into();
    assert_eq!(
        decide(&claim, Some(&inactive)),
        Binding::Pending {
            reason: "BlockDeviceInactive",
            message: "BlockDevice bd-1 is Inactive".into()
        }
    );

    let same = claimed(free.clone(), "bdc-cstor-u1", "c1");
    assert_eq!(decide(&claim, Some(&same)), Binding::AlreadyBound);

    let elsewhere = claimed(free.clone(), "other", "c9");
    assert_eq!(
        decide(&claim, Some(&elsewhere)),
        Binding::Pending {
            reason: "BlockDeviceClaimed",
            message: "BlockDevice bd-1 is claimed by BDC openebs/other".into()
        }
    );

    let big = bdc("bdc-cstor-u1", "c1", "bd-1", Some("cspc-a"), "", "1Ki");
    assert_eq!(
        decide(&big, Some(&free)),
        Binding::InvalidCapacity {
            reason: "InsufficientCapacity",
            message: "BlockDevice bd-1 has 1000 bytes, less than the requested 1024".into()
        }
    );
}

#[test]
fn release_decisions() {
    let mut claim = bdc(
        "bdc-cstor-u1",
        "c1",
        "bd-1",
        Some("cspc-a"),
        "Bound",
        "1000",
    );
    claim.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2024-01-01T00:00:00Z".parse().unwrap(),
    ));
    let ours = claimed(bd("bd-1", "u1", "h1", 1000), "bdc-cstor-u1", "c1");
    // Without our finalizer there is nothing left to do.
    assert_eq!(decide(&claim, Some(&ours)), Binding::Nothing);
    claim.metadata.finalizers = Some(vec![BDC_FINALIZER.into()]);
    assert_eq!(
        decide(&claim, Some(&ours)),
        Binding::Release {
            release_device: true
        }
    );
    // Another finalizer (the pool using the disk) still holds the claim: the device stays
    // claimed; the claim is not truly gone yet.
    claim.metadata.finalizers = Some(vec![
        "cstorpoolcluster.openebs.io/finalizer".into(),
        BDC_FINALIZER.into(),
    ]);
    assert_eq!(
        decide(&claim, Some(&ours)),
        Binding::Held {
            holders: vec!["cstorpoolcluster.openebs.io/finalizer".into()]
        }
    );
    claim.metadata.finalizers = Some(vec![BDC_FINALIZER.into()]);
    // The device is someone else's now (or gone): only the finalizer goes.
    let other = claimed(bd("bd-1", "u1", "h1", 1000), "other", "c9");
    assert_eq!(
        decide(&claim, Some(&other)),
        Binding::Release {
            release_device: false
        }
    );
    assert_eq!(
        decide(&claim, None),
        Binding::Release {
            release_device: false
        }
    );
}

#[test]
fn apply_bodies() {
    let claim = bdc("bdc-cstor-u1", "c1", "bd-1", Some("cspc-a"), "", "1000");
    let b = bind_apply("bd-1", &claim);
    assert_eq!(b["apiVersion"], "openebs.io/v1alpha1");
    assert_eq!(b["kind"], "BlockDevice");
    assert_eq!(
        b["spec"]["claimRef"],
        serde_json::json!({
            "apiVersion": "openebs.io/v1alpha1",
            "kind": "BlockDeviceClaim",
            "name": "bdc-cstor-u1",
            "namespace": "openebs",
            "uid": "c1"
        })
    );
    assert_eq!(b["status"]["claimState"], "Claimed");
    // The release body carries no spec at all, so SSA drops the claimRef this manager owns.
    let r = release_apply("bd-1");
    assert!(r.get("spec").is_none());
    assert_eq!(r["status"]["claimState"], "Unclaimed");
}

/// Two claims on one free device bind first come, first served (by creation time, then
/// name within the same second), whatever order the controller sees them in.
#[test]
fn the_older_claim_on_a_device_goes_first() {
    use crate::claim_binding::older_rival;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let claim = |name: &str, bd: &str, at: &str, phase: &str| {
        let mut c = cstor_api::openebs_v1alpha1::BlockDeviceClaim::default();
        c.metadata.name = Some(name.into());
        c.metadata.creation_timestamp = Some(Time(at.parse().expect("time")));
        c.spec.block_device_name = bd.into();
        c.status.phase = phase.into();
        c
    };
    let a = claim("claim-a", "bd-1", "2026-12-05T10:00:00Z", "");
    let b = claim("claim-b", "bd-1", "2026-12-05T10:00:00Z", "Pending");
    let early = claim("claim-z", "bd-1", "2026-12-05T09:59:59Z", "Pending");
    let other = claim("claim-0", "bd-2", "2026-12-05T09:00:00Z", "");
    let bound = claim("claim-1", "bd-1", "2026-12-05T09:00:00Z", "Bound");
    let invalid = claim(
        "claim-2",
        "bd-1",
        "2026-12-05T09:00:00Z",
        "Invalid Capacity Request",
    );
    let all = vec![a.clone(), b.clone(), other, bound, invalid];
    // Same second: by name.
    assert_eq!(older_rival(&a, &all), None);
    assert_eq!(older_rival(&b, &all), Some("claim-a"));
    // An earlier claim wins over both.
    let mut with_early = all.clone();
    with_early.push(early);
    assert_eq!(older_rival(&a, &with_early), Some("claim-z"));
    // A bound, an invalid or a deleting claim, or one on another device, holds nothing up.
    let mut deleting = claim("claim-3", "bd-1", "2026-12-05T09:00:00Z", "");
    deleting.metadata.deletion_timestamp =
        Some(Time("2026-12-05T10:00:01Z".parse().expect("time")));
    assert_eq!(older_rival(&a, &[deleting]), None);
}
