//! The version of an object we own (`versionDetails`), decided purely: the Go operators'
//! populate → ReconcileInProgress → Reconciled steps, their validation of `current` and
//! `desired` against the operator's version, and the refusal to touch an object of a newer
//! version: the rule for every controller that owns a kind (CSPC, CSPI, CVC, CV, CVR), not
//! wired into them yet.

use std::cmp::Ordering;

use cstor_api::common::{VersionDetails, VersionStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The oldest version the Go operators upgrade from; older objects are refused.
pub const OLDEST_UPGRADABLE: &str = "1.10.0";
/// `versionDetails.status.state` values.
pub const RECONCILED: &str = "Reconciled";
pub const RECONCILE_IN_PROGRESS: &str = "ReconcileInProgress";

/// A version as the Go operators compare them: the part before `-` (a leading `v` dropped),
/// numbers compared one by one as integers; `master` and `develop` are newer than any number.
#[derive(Clone, Debug)]
pub struct Version {
    numbers: Vec<u64>,
    newest: bool,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let base = text.split('-').next().unwrap_or_default();
        if base == "master" || base == "develop" {
            return Some(Version {
                numbers: Vec::new(),
                newest: true,
            });
        }
        if base.is_empty() {
            return None;
        }
        let numbers = base
            .split('.')
            .map(|p| p.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()?;
        Some(Version {
            numbers,
            newest: false,
        })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.newest, other.newest) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {}
        }
        let n = self.numbers.len().max(other.numbers.len());
        for i in 0..n {
            let a = self.numbers.get(i).copied().unwrap_or(0);
            let b = other.numbers.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

// `4.0` is `4.0.0`: equal when neither is before the other.
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The part of a version before `-` (`3.6.0-RC1` → `3.6.0`).
pub fn base(text: &str) -> &str {
    text.split('-').next().unwrap_or_default()
}

/// The Go operators' check before an upgrade: `current` is at least
/// [`OLDEST_UPGRADABLE`] and not newer than the operator; `desired` is the operator's version
/// (the part before `-`).
pub fn validate(current: &str, desired: &str, operator: &str) -> Result<(), String> {
    let ours = Version::parse(operator)
        .ok_or_else(|| format!("the operator's version {operator:?} is not a version"))?;
    let oldest = Version::parse(OLDEST_UPGRADABLE);
    match Version::parse(current) {
        Some(c) if Some(&c) >= oldest.as_ref() && c <= ours => {}
        _ => {
            return Err(format!(
                "current version {current} is not between {OLDEST_UPGRADABLE} and {operator}"
            ));
        }
    }
    if base(desired) != base(operator) {
        return Err(format!(
            "desired version {desired} is not this operator's version {operator}"
        ));
    }
    Ok(())
}

/// What to do with an object's version before reconciling it.
#[derive(Clone, Debug, PartialEq)]
pub enum VersionStep {
    /// At our version: reconcile.
    Current,
    /// Write these details (populated, or an upgrade started), then reconcile again.
    Write(VersionDetails),
    /// The upgrade is done: write these details (`current = desired`, `Reconciled`).
    Finish(VersionDetails),
    /// The upgrade cannot be done: write these details (message and reason), publish a
    /// `FailedUpgrade` Warning with `event`, and do not reconcile.
    Failed {
        details: VersionDetails,
        event: String,
    },
    /// Not ours to touch: the object is newer than this operator ([`NEWER_VERSION`]), or at an
    /// older version nobody asked to upgrade ([`UPGRADE_REQUIRED`]); `why` says what to do.
    Refuse { reason: &'static str, why: String },
}

/// The condition every owner writes on a CSPC / CVC whose version it will not reconcile.
pub const CONDITION: &str = "VersionReconciled";
/// Reasons of [`CONDITION`].
pub const UPGRADE_REQUIRED: &str = "UpgradeRequired";
pub const NEWER_VERSION: &str = "NewerVersion";
pub const UPGRADE_FAILED: &str = "UpgradeFailed";

/// `(status, reason, message)` of [`CONDITION`] for `step`: True once the object is at our
/// version, False with what to do when refused or failed; `None` while it is moving.
pub fn condition(
    step: &VersionStep,
    kind: &str,
    name: &str,
    operator: &str,
) -> Option<(bool, &'static str, String)> {
    match step {
        VersionStep::Current => Some((
            true,
            RECONCILED,
            format!("{kind} {name} is at version {operator}"),
        )),
        VersionStep::Refuse { reason, why } => Some((false, reason, why.clone())),
        VersionStep::Failed { details, .. } => Some((
            false,
            UPGRADE_FAILED,
            details
                .status
                .as_ref()
                .map(|s| s.reason.clone())
                .unwrap_or_default(),
        )),
        VersionStep::Write(_) | VersionStep::Finish(_) => None,
    }
}

/// The version rule of an agent (the pool-manager for CSPIs and CVRs, the volume-manager for
/// CVs), whose pods are rolled one at a time: it finishes the upgrade of an object whose
/// `desired` is its own version, refuses an object newer than itself, and otherwise leaves
/// the record alone (an older object waits for its upgrade; an object whose upgrade to a
/// newer version has begun waits for the new agent).
pub fn decide_agent(
    kind: &str,
    name: &str,
    details: Option<&VersionDetails>,
    agent: &str,
    now: &Time,
) -> VersionStep {
    let Some(d) = details else {
        return VersionStep::Current;
    };
    let current = d.status.as_ref().map(|s| s.current.as_str()).unwrap_or("");
    if current.is_empty() {
        return VersionStep::Current;
    }
    if base(&d.desired) == base(agent) {
        return decide(kind, name, details, agent, agent, false, now);
    }
    match (Version::parse(current), Version::parse(agent)) {
        (Some(c), Some(a)) if c > a => newer(kind, name, current, agent),
        _ => VersionStep::Current,
    }
}

fn newer(kind: &str, name: &str, current: &str, operator: &str) -> VersionStep {
    VersionStep::Refuse {
        reason: NEWER_VERSION,
        why: format!(
            "{kind} {name} is at version {current}, newer than this operator's {operator}: run operators of version {current} or later"
        ),
    }
}

/// Decides the version step of `kind` `name` for an operator of version `operator`.
/// `populate` is the version an object without one is at (the operator's; for a CSPC with
/// pools, the `openebs.io/version` of its first CSPI). `adopt`: an object at an older,
/// upgradable version is moved to ours (`desired` set) rather than refused.
pub fn decide(
    kind: &str,
    name: &str,
    details: Option<&VersionDetails>,
    operator: &str,
    populate: &str,
    adopt: bool,
    now: &Time,
) -> VersionStep {
    let mut d = details.cloned().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    if status.current.is_empty() {
        d.desired = populate.to_string();
        d.status = Some(VersionStatus {
            dependents_upgraded: true,
            current: populate.to_string(),
            state: RECONCILED.into(),
            last_update_time: Some(now.clone()),
            ..VersionStatus::default()
        });
        return VersionStep::Write(d);
    }
    let current = status.current.clone();
    let (Some(cur), Some(ours)) = (Version::parse(&current), Version::parse(operator)) else {
        return failed(
            kind,
            name,
            d,
            format!("current version {current:?} is not a version"),
            now,
        );
    };
    if cur > ours {
        return newer(kind, name, &current, operator);
    }
    if current == d.desired {
        if base(&current) == base(operator) {
            return VersionStep::Current;
        }
        if !adopt {
            let too_old = Version::parse(OLDEST_UPGRADABLE).is_some_and(|oldest| cur < oldest);
            let why = if too_old {
                format!(
                    "{kind} {name} is at version {current}, older than {OLDEST_UPGRADABLE}, the oldest this operator upgrades from: upgrade it with the Go operators' tools to at least {OLDEST_UPGRADABLE} first (docs/upgrades.md)"
                )
            } else {
                format!(
                    "{kind} {name} is at version {current} and this operator is {operator}: upgrade it to {operator} with an UpgradeTask (cstor upgrade, docs/upgrades.md)"
                )
            };
            return VersionStep::Refuse {
                reason: UPGRADE_REQUIRED,
                why,
            };
        }
        d.desired = operator.to_string();
    }
    if let Err(why) = validate(&current, &d.desired, operator) {
        return failed(kind, name, d, why, now);
    }
    if status.state != RECONCILE_IN_PROGRESS {
        d.status = Some(VersionStatus {
            state: RECONCILE_IN_PROGRESS.into(),
            last_update_time: Some(now.clone()),
            ..status
        });
        return VersionStep::Write(d);
    }
    // No data or object changes between versions yet: the upgrade is only the record.
    d.status = Some(VersionStatus {
        current: d.desired.clone(),
        state: RECONCILED.into(),
        message: String::new(),
        reason: String::new(),
        last_update_time: Some(now.clone()),
        ..status
    });
    VersionStep::Finish(d)
}

fn failed(kind: &str, name: &str, mut d: VersionDetails, why: String, now: &Time) -> VersionStep {
    let event = format!(
        "Failed to upgrade {kind} {name} to {} version: {why}",
        d.desired
    );
    let status = d.status.clone().unwrap_or_default();
    d.status = Some(VersionStatus {
        message: format!("Failed to reconcile {kind} version"),
        reason: why,
        last_update_time: Some(now.clone()),
        ..status
    });
    VersionStep::Failed { details: d, event }
}
