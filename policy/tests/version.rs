//! versionDetails decisions as the Go operators make them (and where we refuse instead):
//! version order, the validation messages, and each step with the details it writes.

use cstor_api::common::{VersionDetails, VersionStatus};
use cstor_policy::version::{
    NEWER_VERSION, RECONCILED, UPGRADE_FAILED, UPGRADE_REQUIRED, Version, VersionStep, condition,
    decide, decide_agent, validate,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pretty_assertions::assert_eq;

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).expect("time"))
}

fn details(current: &str, desired: &str, state: &str) -> VersionDetails {
    VersionDetails {
        auto_upgrade: false,
        desired: desired.into(),
        status: Some(VersionStatus {
            dependents_upgraded: true,
            current: current.into(),
            state: state.into(),
            ..VersionStatus::default()
        }),
    }
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|| panic!("{s} parses"))
}

#[test]
fn versions_compare_number_by_number_and_master_is_newest() {
    assert!(v("1.10.0") > v("1.9.0"));
    assert!(v("3.6.0") > v("3.5.9"));
    assert_eq!(v("v3.6.0"), v("3.6.0"));
    assert_eq!(v("3.6.0-RC1"), v("3.6.0"));
    assert_eq!(v("4.0"), v("4.0.0"));
    assert!(v("master") > v("99.0.0"));
    assert!(v("develop-dev") > v("4.0.0"));
    assert_eq!(Version::parse(""), None);
    assert_eq!(Version::parse("abc"), None);
    assert_eq!(Version::parse("3.x.0"), None);
}

#[test]
fn validation_says_what_is_wrong() {
    assert_eq!(validate("3.6.0", "4.0.0", "4.0.0"), Ok(()));
    assert_eq!(validate("1.10.0", "4.0.0-RC2", "4.0.0"), Ok(()));
    assert_eq!(
        validate("1.9.0", "4.0.0", "4.0.0"),
        Err("current version 1.9.0 is not between 1.10.0 and 4.0.0".into())
    );
    assert_eq!(
        validate("4.1.0", "4.0.0", "4.0.0"),
        Err("current version 4.1.0 is not between 1.10.0 and 4.0.0".into())
    );
    assert_eq!(
        validate("3.6.0", "3.7.0", "4.0.0"),
        Err("desired version 3.7.0 is not this operator's version 4.0.0".into())
    );
}

#[test]
fn each_version_step_and_what_it_writes() {
    let t = now();
    // No version yet: populated at the given version, Reconciled.
    let VersionStep::Write(d) = decide("CSPC", "c1", None, "4.0.0", "3.6.0", false, &t) else {
        panic!("populate")
    };
    assert_eq!(d.desired, "3.6.0");
    let st = d.status.expect("status");
    assert_eq!(
        (st.current.as_str(), st.state.as_str()),
        ("3.6.0", "Reconciled")
    );
    assert!(st.dependents_upgraded);

    // At our version: reconcile.
    let ours = details("4.0.0", "4.0.0", "Reconciled");
    assert_eq!(
        decide("CSPI", "p1", Some(&ours), "4.0.0", "4.0.0", false, &t),
        VersionStep::Current
    );

    // Newer than us: never touched.
    let newer = details("4.2.0", "4.2.0", "Reconciled");
    assert_eq!(
        decide("CVR", "r1", Some(&newer), "4.0.0", "4.0.0", true, &t),
        VersionStep::Refuse {
            reason: NEWER_VERSION,
            why: "CVR r1 is at version 4.2.0, newer than this operator's 4.0.0: run operators of version 4.2.0 or later"
                .into()
        }
    );

    // Older, nobody asked: refused; adopted: the upgrade starts (ReconcileInProgress).
    let older = details("3.6.0", "3.6.0", "Reconciled");
    assert_eq!(
        decide("CV", "v1", Some(&older), "4.0.0", "4.0.0", false, &t),
        VersionStep::Refuse {
            reason: UPGRADE_REQUIRED,
            why: "CV v1 is at version 3.6.0 and this operator is 4.0.0: upgrade it to 4.0.0 with an UpgradeTask (cstor upgrade, docs/upgrades.md)".into()
        }
    );
    let VersionStep::Write(d) = decide("CV", "v1", Some(&older), "4.0.0", "4.0.0", true, &t) else {
        panic!("start")
    };
    assert_eq!(d.desired, "4.0.0");
    let st = d.status.clone().expect("status");
    assert_eq!(
        (st.current.as_str(), st.state.as_str()),
        ("3.6.0", "ReconcileInProgress")
    );

    // In progress: finished, current = desired, message and reason cleared.
    let mut going = details("3.6.0", "4.0.0", "ReconcileInProgress");
    if let Some(s) = going.status.as_mut() {
        s.message = "Failed to reconcile CV version".into();
        s.reason = "earlier".into();
    }
    let VersionStep::Finish(d) = decide("CV", "v1", Some(&going), "4.0.0", "4.0.0", false, &t)
    else {
        panic!("finish")
    };
    let st = d.status.expect("status");
    assert_eq!(
        (st.current.as_str(), st.state.as_str()),
        ("4.0.0", "Reconciled")
    );
    assert_eq!((st.message.as_str(), st.reason.as_str()), ("", ""));

    // Too old to upgrade: FailedUpgrade with the reason, in the event and the status.
    let ancient = details("1.9.0", "4.0.0", "");
    let VersionStep::Failed {
        details: written,
        event,
    } = decide("CVC", "pvc-1", Some(&ancient), "4.0.0", "4.0.0", false, &t)
    else {
        panic!("failed")
    };
    assert_eq!(
        event,
        "Failed to upgrade CVC pvc-1 to 4.0.0 version: current version 1.9.0 is not between 1.10.0 and 4.0.0"
    );
    let st = written.status.expect("status");
    assert_eq!(st.message, "Failed to reconcile CVC version");
    assert_eq!(
        st.reason,
        "current version 1.9.0 is not between 1.10.0 and 4.0.0"
    );

    // A desired version that is not ours.
    let elsewhere = details("3.6.0", "3.7.0", "");
    let VersionStep::Failed { event, .. } =
        decide("CSPC", "c1", Some(&elsewhere), "4.0.0", "4.0.0", false, &t)
    else {
        panic!("failed")
    };
    assert!(event.ends_with("desired version 3.7.0 is not this operator's version 4.0.0"));

    // Not a version at all.
    let garbage = details("three", "4.0.0", "");
    assert!(matches!(
        decide("CSPC", "c1", Some(&garbage), "4.0.0", "4.0.0", false, &t),
        VersionStep::Failed { .. }
    ));

    // A development build is newer than every release.
    let VersionStep::Write(d) = decide("CSPC", "c1", Some(&older), "master", "master", true, &t)
    else {
        panic!("adopted by master")
    };
    assert_eq!(d.desired, "master");
}

#[test]
fn an_agent_finishes_only_upgrades_to_its_own_version_and_refuses_newer_objects() {
    let t = now();
    let state = |step: VersionStep| match step {
        VersionStep::Current => "current".to_string(),
        VersionStep::Write(d) => format!("write {}", d.status.map(|s| s.state).unwrap_or_default()),
        VersionStep::Finish(d) => {
            format!("finish {}", d.status.map(|s| s.current).unwrap_or_default())
        }
        VersionStep::Failed { event, .. } => format!("failed: {event}"),
        VersionStep::Refuse { reason, .. } => format!("refuse {reason}"),
    };
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // (current, desired, state, agent, outcome)
        ("4.0.0", "4.0.0", "Reconciled", "4.0.0", "current"),
        // An older object nobody asked to upgrade: left alone (its upgrade rolls this pod).
        ("3.5.0", "3.5.0", "Reconciled", "4.0.0", "current"),
        // The upgrade has begun but this pod is the old one: waits for the new one.
        ("4.0.0", "4.1.0", "", "4.0.0", "current"),
        // This pod is the new one: ReconcileInProgress, then Reconciled at its version.
        ("4.0.0", "4.1.0", "", "4.1.0", "write ReconcileInProgress"),
        (
            "4.0.0",
            "4.1.0",
            "ReconcileInProgress",
            "4.1.0",
            "finish 4.1.0",
        ),
        (
            "3.5.0",
            "4.0.0",
            "ReconcileInProgress",
            "4.0.0",
            "finish 4.0.0",
        ),
        // Newer than this pod (a downgraded agent): never touched.
        (
            "4.1.0",
            "4.1.0",
            "Reconciled",
            "4.0.0",
            "refuse NewerVersion",
        ),
        // Below the allow-list: failed with the reason.
        (
            "1.9.0",
            "4.0.0",
            "",
            "4.0.0",
            "failed: Failed to upgrade CSPI p1 to 4.0.0 version: current version 1.9.0 is not between 1.10.0 and 4.0.0",
        ),
    ];
    for (current, desired, st, agent, want) in cases {
        let d = details(current, desired, st);
        assert_eq!(
            state(decide_agent("CSPI", "p1", Some(&d), agent, &t)),
            *want,
            "{current} → {desired} ({st}) by {agent}"
        );
    }
    // No record at all (an object older than versionDetails): left alone.
    assert_eq!(
        decide_agent("CVR", "r1", None, "4.0.0", &t),
        VersionStep::Current
    );
}

#[test]
fn the_version_condition_says_what_to_do() {
    let t = now();
    let older = details("3.5.0", "3.5.0", "Reconciled");
    let step = decide("CSPC", "c1", Some(&older), "4.0.0", "4.0.0", false, &t);
    let (ok, reason, message) = condition(&step, "CSPC", "c1", "4.0.0").expect("refused");
    assert!(!ok);
    assert_eq!(reason, UPGRADE_REQUIRED);
    assert!(message.contains("with an UpgradeTask"), "{message}");
    assert_eq!(
        condition(&VersionStep::Current, "CSPC", "c1", "4.0.0"),
        Some((true, RECONCILED, "CSPC c1 is at version 4.0.0".into()))
    );
    let ancient = details("1.9.0", "4.0.0", "");
    let step = decide("CVC", "v", Some(&ancient), "4.0.0", "4.0.0", false, &t);
    assert_eq!(
        condition(&step, "CVC", "v", "4.0.0"),
        Some((
            false,
            UPGRADE_FAILED,
            "current version 1.9.0 is not between 1.10.0 and 4.0.0".into()
        ))
    );
    let below = details("1.9.0", "1.9.0", "");
    let step = decide("CSPC", "c1", Some(&below), "4.0.0", "4.0.0", false, &t);
    assert_eq!(
        condition(&step, "CSPC", "c1", "4.0.0"),
        Some((
            false,
            UPGRADE_REQUIRED,
            "CSPC c1 is at version 1.9.0, older than 1.10.0, the oldest this operator upgrades from: upgrade it with the Go operators' tools to at least 1.10.0 first (docs/upgrades.md)".into()
        ))
    );
    let newer = details("4.1.0", "4.1.0", "Reconciled");
    let step = decide("CVC", "v", Some(&newer), "4.0.0", "4.0.0", false, &t);
    assert_eq!(
        condition(&step, "CVC", "v", "4.0.0").map(|c| c.1),
        Some(NEWER_VERSION)
    );
}
