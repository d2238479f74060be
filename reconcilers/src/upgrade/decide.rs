//! The next step of an UpgradeTask, decided from a snapshot of the task and the objects it
//! upgrades (docs/upgrades.md, "What an UpgradeTask does"). Pure: every step is derived from
//! what is observed and from the steps the status records as done, so a crash at any point
//! resumes at the first step not yet done.

use std::collections::BTreeMap;
use std::time::Duration;

use cstor_api::common::VersionDetails;
use cstor_api::cstor_v1::cspi::{CStorPoolInstance, phase as cspi_phase};
use cstor_api::cstor_v1::cv::phase as cv_phase;
use cstor_api::cstor_v1::cvr::phase as cvr_phase;
use cstor_api::cstor_v1::{CStorPoolCluster, CStorVolume, CStorVolumeConfig, CStorVolumeReplica};
use cstor_api::keys::labels;
use cstor_api::openebs_v1alpha1::{UpgradeTask, step_phase, task_phase, upgrade_step};
use cstor_policy::version::{OLDEST_UPGRADABLE, Version, base};
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

/// How long a step may wait when `spec.options.timeout` does not say.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// Machine-readable reasons of an Errored step.
pub mod reason {
    pub const INVALID_VERSION: &str = "InvalidVersion";
    pub const NOT_SUPPORTED: &str = "NotSupported";
    pub const NOT_FOUND: &str = "NotFound";
    pub const DUPLICATE_TASK: &str = "DuplicateTask";
    pub const PREFLIGHT_FAILED: &str = "PreflightFailed";
    /// A volume's pools are not at the version yet (upgrade them first).
    pub const POOLS_FIRST: &str = "PoolsNotUpgraded";
    /// The object would not be admitted by this version (a rule it breaks).
    pub const NOT_ADOPTABLE: &str = "NotAdoptable";
    pub const TIMED_OUT: &str = "TimedOut";
    pub const UPGRADE_FAILED: &str = "UpgradeFailed";
    pub const RETRIES_EXHAUSTED: &str = "RetriesExhausted";
}

/// The object a task upgrades.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    Cspc(String),
    Cspi(String),
    Volume(String),
    /// A member we do not upgrade, with why.
    Unsupported(String),
    /// No member set.
    Missing,
}

/// Which operator handles a task: the cspc-operator takes pools and the refusals, the
/// cvc-operator takes volumes.
pub fn subject(task: &UpgradeTask) -> Subject {
    let s = &task.spec;
    if let Some(c) = &s.cstor_pool_cluster {
        return Subject::Cspc(c.cspc_name.clone());
    }
    if let Some(c) = &s.cstor_pool_instance {
        return Subject::Cspi(c.cspi_name.clone());
    }
    if let Some(v) = &s.cstor_volume {
        return Subject::Volume(v.pv_name.clone());
    }
    if s.jiva_volume.is_some() {
        return Subject::Unsupported(
            "jivaVolume: Jiva volumes are not cStor's; upgrade them with Jiva's operator".into(),
        );
    }
    if s.cstor_pool.is_some() || s.storage_pool_claim.is_some() {
        return Subject::Unsupported(
            "cstorPool / storagePoolClaim: SPC pools are not upgraded, they are migrated to a CSPC first (cstor migrate spc, docs/migration.md)".into(),
        );
    }
    Subject::Missing
}

/// The steps after which a failure is ignored (`options.ignoreStepsOnError` of the member).
fn ignored(task: &UpgradeTask) -> Vec<String> {
    let s = &task.spec;
    let opts = s
        .cstor_pool_cluster
        .as_ref()
        .and_then(|c| c.options.as_ref())
        .or_else(|| {
            s.cstor_pool_instance
                .as_ref()
                .and_then(|c| c.options.as_ref())
        })
        .or_else(|| s.cstor_volume.as_ref().and_then(|c| c.options.as_ref()));
    opts.map(|o| o.ignore_steps_on_error.clone())
        .unwrap_or_default()
}

/// The name of the task of one CSPI that a CSPC task creates (Go's name).
pub fn cspi_task_name(cspi: &str) -> String {
    format!("upgrade-cstor-cspi-{cspi}")
}

/// What an unfinished other task upgrades, for the one-task-per-object rule.
#[derive(Clone, Debug)]
pub struct OtherTask {
    pub name: String,
    pub subject: Subject,
    /// Created before this task (or at the same second with a smaller name).
    pub earlier: bool,
    /// This task created it (a CSPC task's child).
    pub child: bool,
}

/// The pool side of the snapshot.
#[derive(Clone, Debug, Default)]
pub struct PoolView {
    pub cspi: Option<CStorPoolInstance>,
    pub deployment: Option<Deployment>,
    /// The volume replicas on the pool.
    pub cvrs: Vec<CStorVolumeReplica>,
    /// Every replica of the volumes that have one on the pool.
    pub volume_cvrs: Vec<CStorVolumeReplica>,
    /// Those volumes.
    pub volumes: Vec<CStorVolume>,
}

/// The CSPC side of the snapshot.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub cspc: Option<CStorPoolCluster>,
    pub cspis: Vec<CStorPoolInstance>,
    /// The tasks this task created, by CSPI name.
    pub children: BTreeMap<String, UpgradeTask>,
    /// What the CSPC admission rules read (nodes, devices, claims, pools, replicas): a CSPC
    /// this version would not admit is not adopted.
    pub facts: cstor_policy::facts::CspcFacts,
}

/// The volume side of the snapshot.
#[derive(Clone, Debug, Default)]
pub struct VolumeView {
    pub cvc: Option<CStorVolumeConfig>,
    pub cv: Option<CStorVolume>,
    pub cvrs: Vec<CStorVolumeReplica>,
    /// The pools of those replicas, by name.
    pub cspis: BTreeMap<String, CStorPoolInstance>,
    pub deployment: Option<Deployment>,
}

/// Everything one decision reads.
#[derive(Clone, Debug)]
pub struct View {
    /// The operator's version.
    pub ours: String,
    pub task: UpgradeTask,
    pub others: Vec<OtherTask>,
    pub pool: PoolView,
    pub cluster: ClusterView,
    pub volume: VolumeView,
    /// How long ago each step started (for its timeout).
    pub step_age: BTreeMap<String, Duration>,
    /// Unfinished MigrationTasks: `(name, CSPC it makes or "", PV it moves or "")`.
    pub migrations: Vec<(String, String, String)>,
}

/// The MigrationTask moving CSPC `cspc` or volume `pv`, if one runs.
fn migrating(view: &View, cspc: &str, pv: &str) -> Option<String> {
    view.migrations
        .iter()
        .find(|(_, c, v)| (!cspc.is_empty() && c == cspc) || (!pv.is_empty() && v == pv))
        .map(|(n, _, _)| n.clone())
}

/// The kinds whose `versionDetails.desired` a task sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Cspc,
    Cspi,
    Cvr,
    Cv,
    Cvc,
}

/// One change the task makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Act {
    /// Set `versionDetails.desired` of `name` to the task's `toVersion`.
    Desire { kind: Kind, name: String },
    /// Apply the pool-manager Deployment of CSPI `name` from this operator's template.
    RollPool { cspi: String },
    /// Apply the target Deployment of volume `name` from this operator's template.
    RollTarget { pv: String },
    /// Create the task of one CSPI of the CSPC.
    CreateChild { cspi: String },
}

/// What to do after the decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Act(Act),
    Wait,
    /// Errored with this reason; the task ends in Error.
    Fail {
        reason: &'static str,
    },
    /// This step is done (or failed, and the task ignores its failures): Completed with the
    /// message; decide again.
    Complete,
    /// The task is done (Success).
    Done,
}

/// The step the task is at, what it says, and what comes next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub step: String,
    pub message: String,
    pub next: Next,
}

fn decision(step: &str, message: impl Into<String>, next: Next) -> Decision {
    Decision {
        step: step.into(),
        message: message.into(),
        next,
    }
}

/// A failure no `ignoreStepsOnError` skips (the task ends before anything is touched).
fn refused(step: &str, message: impl Into<String>, reason: &'static str) -> Decision {
    decision(step, message, Next::Fail { reason })
}

fn fail(view: &View, step: &str, message: String, reason: &'static str) -> Decision {
    if ignored(&view.task).iter().any(|s| s == step) {
        return decision(
            step,
            format!("failed ({reason}), ignored by ignoreStepsOnError: {message}"),
            Next::Complete,
        );
    }
    decision(step, message, Next::Fail { reason })
}

fn timeout(task: &UpgradeTask) -> Duration {
    match task.spec.options.as_ref().map(|o| o.timeout) {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        _ => DEFAULT_STEP_TIMEOUT,
    }
}

/// A wait that turns into a failure once its step is older than the task's timeout.
fn wait(view: &View, step: &str, message: String) -> Decision {
    let limit = timeout(&view.task);
    let age = view.step_age.get(step).copied().unwrap_or_default();
    if age > limit {
        return fail(
            view,
            step,
            format!("{message} (gave up after {} s)", limit.as_secs()),
            reason::TIMED_OUT,
        );
    }
    decision(step, message, Next::Wait)
}

fn completed(task: &UpgradeTask, step: &str) -> bool {
    task.status
        .upgrade_detailed_statuses
        .iter()
        .any(|e| e.step == step && e.phase == step_phase::COMPLETED)
}

fn current(d: Option<&VersionDetails>) -> &str {
    d.and_then(|d| d.status.as_ref())
        .map(|s| s.current.as_str())
        .unwrap_or("")
}

fn desired(d: Option<&VersionDetails>) -> &str {
    d.map(|d| d.desired.as_str()).unwrap_or("")
}

/// The record's failure, if the owner of the object wrote one (`Failed to reconcile …`).
fn record_failure(d: Option<&VersionDetails>) -> Option<String> {
    let s = d.and_then(|d| d.status.as_ref())?;
    (!s.message.is_empty()).then(|| format!("{}: {}", s.message, s.reason))
}

/// A step's first change to an object: ask `name` (a `label`) for the task's version, unless
/// its record is there already or was asked.
fn ask(
    view: &View,
    step: &str,
    kind: Kind,
    label: &str,
    name: &str,
    d: Option<&VersionDetails>,
) -> Option<Decision> {
    let to = &view.task.spec.to_version;
    (desired(d) != to && !at(d, to)).then(|| {
        decision(
            step,
            format!("asking {label} {name} for version {to}"),
            Next::Act(Act::Desire {
                kind,
                name: name.into(),
            }),
        )
    })
}

/// The owner's answer to [`ask`]: a failure it recorded ends the step; until the record is at
/// the task's version and `ready`, the step waits, saying `waiting`.
fn answered(
    view: &View,
    step: &str,
    d: Option<&VersionDetails>,
    ready: bool,
    waiting: String,
) -> Option<Decision> {
    if let Some(why) = record_failure(d) {
        return Some(fail(view, step, why, reason::UPGRADE_FAILED));
    }
    (!at(d, &view.task.spec.to_version) || !ready).then(|| wait(view, step, waiting))
}

fn at(d: Option<&VersionDetails>, version: &str) -> bool {
    let c = current(d);
    !c.is_empty() && base(c) == base(version)
}

fn deployment_version(d: Option<&Deployment>) -> Option<&str> {
    d?.labels().get(labels::VERSION).map(String::as_str)
}

/// The checks before anything is touched: the versions, one task per object.
fn validate(view: &View) -> Result<(), (String, &'static str)> {
    let spec = &view.task.spec;
    let (from, to) = (spec.from_version.as_str(), spec.to_version.as_str());
    if from.is_empty() || to.is_empty() {
        return Err((
            "Cannot execute upgrade job: fromVersion and toVersion are required".into(),
            reason::INVALID_VERSION,
        ));
    }
    let invalid = |why: String| {
        Err((
            format!("Invalid from version {from} or to version {to}: {why}"),
            reason::INVALID_VERSION,
        ))
    };
    if base(to) != base(&view.ours) {
        return invalid(format!(
            "toVersion must be this operator's version {}",
            view.ours
        ));
    }
    match (
        Version::parse(from),
        Version::parse(OLDEST_UPGRADABLE),
        Version::parse(to),
    ) {
        (Some(f), Some(oldest), Some(t)) if f >= oldest && f < t => {}
        _ => {
            return invalid(format!(
                "fromVersion must be at least {OLDEST_UPGRADABLE} and older than {to}"
            ));
        }
    }
    let me = subject(&view.task);
    if let Some(other) = view
        .others
        .iter()
        .find(|o| o.subject == me && o.earlier && !o.child)
    {
        return Err((
            format!(
                "UpgradeTask {} is already upgrading this object; one task at a time",
                other.name
            ),
            reason::DUPLICATE_TASK,
        ));
    }
    Ok(())
}

/// The next step of the task.
pub fn decide(view: &View) -> Decision {
    let pre = upgrade_step::PRE_UPGRADE;
    match subject(&view.task) {
        Subject::Unsupported(why) => {
            return refused(
                pre,
                format!("Cannot execute upgrade job: {why}"),
                reason::NOT_SUPPORTED,
            );
        }
        Subject::Missing => {
            return refused(
                pre,
                "Cannot execute upgrade job: resource details are missing (one of cstorPoolCluster, cstorPoolInstance, cstorVolume)",
                reason::NOT_SUPPORTED,
            );
        }
        _ => {}
    }
    // A newer operator is on its way (its Deployment rolling): the task is its to take.
    let to = &view.task.spec.to_version;
    if !completed(&view.task, pre)
        && let (Some(t), Some(o)) = (Version::parse(to), Version::parse(&view.ours))
        && t > o
    {
        return wait(
            view,
            pre,
            format!(
                "waiting for operators of version {to} (this one is {})",
                view.ours
            ),
        );
    }
    if !completed(&view.task, pre)
        && let Err((message, why)) = validate(view)
    {
        // Versions and duplicates are never ignored: nothing may be touched.
        return decision(pre, message, Next::Fail { reason: why });
    }
    match subject(&view.task) {
        Subject::Cspi(name) => decide_cspi(view, &name),
        Subject::Cspc(name) => decide_cspc(view, &name),
        Subject::Volume(pv) => decide_volume(view, &pv),
        Subject::Unsupported(_) | Subject::Missing => unreachable_missing(),
    }
}

fn unreachable_missing() -> Decision {
    refused(
        upgrade_step::PRE_UPGRADE,
        "Cannot execute upgrade job: resource details are missing",
        reason::NOT_SUPPORTED,
    )
}

/// The object's record is at `from` (or already at `to`, a resumed task).
fn check_from(
    view: &View,
    kind: &str,
    name: &str,
    d: Option<&VersionDetails>,
) -> Result<(), String> {
    let (from, to) = (&view.task.spec.from_version, &view.task.spec.to_version);
    let c = current(d);
    if base(c) == base(from) || base(c) == base(to) {
        return Ok(());
    }
    Err(format!(
        "{kind} {name} is at version {c:?}, not the task's fromVersion {from}"
    ))
}

fn healthy(cvr: &CStorVolumeReplica) -> bool {
    cvr.status
        .as_ref()
        .is_some_and(|s| s.phase == cvr_phase::HEALTHY)
}

fn phase_of_cvr(cvr: &CStorVolumeReplica) -> String {
    cvr.status
        .as_ref()
        .map(|s| s.phase.clone())
        .unwrap_or_default()
}

fn volume_of(cvr: &CStorVolumeReplica) -> String {
    cvr.labels()
        .get(labels::CSTOR_VOLUME_NAME)
        .cloned()
        .unwrap_or_default()
}

/// The spec asks for more than the target serves (sizes compared as bytes).
fn resizing(cv: &CStorVolume) -> bool {
    let bytes = |q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
        q.and_then(|q| cstor_api::quantity::bytes(&q.0).ok())
    };
    let want = bytes(cv.spec.capacity.as_ref());
    let have = bytes(cv.status.as_ref().and_then(|s| s.capacity.as_ref()));
    matches!((want, have), (Some(w), Some(h)) if w > h)
}

/// The pool's preflight: ONLINE, every replica on it Healthy, every volume with a replica on
/// it keeps its quorum while this one restarts, no volume resizing.
fn cspi_preflight(p: &PoolView, cspi: &CStorPoolInstance) -> Result<(), String> {
    let name = cspi.name_any();
    let ph = cspi
        .status
        .as_ref()
        .map(|s| s.phase.clone())
        .unwrap_or_default();
    if ph != cspi_phase::ONLINE {
        return Err(format!("pool {name} is {ph:?}, not ONLINE"));
    }
    if let Some(bad) = p.cvrs.iter().find(|c| !healthy(c)) {
        return Err(format!(
            "replica {} on pool {name} is {:?}, not Healthy",
            bad.name_any(),
            phase_of_cvr(bad)
        ));
    }
    for cv in &p.volumes {
        let v = cv.name_any();
        // The target sees a replica fail before its pool-manager reports it.
        let ph = cv
            .status
            .as_ref()
            .map(|s| s.phase.clone())
            .unwrap_or_default();
        if ph != cv_phase::HEALTHY {
            return Err(format!("volume {v} is {ph:?}, not Healthy"));
        }
        if resizing(cv) {
            return Err(format!(
                "volume {v} is being resized; upgrade once it is done"
            ));
        }
        let cf = cv.spec.consistency_factor.unwrap_or(1).max(1) as usize;
        let healthy_elsewhere = p
            .volume_cvrs
            .iter()
            .filter(|c| volume_of(c) == v && healthy(c))
            .filter(|c| c.labels().get(labels::CSPI_NAME) != Some(&name))
            .count();
        if healthy_elsewhere < cf {
            return Err(format!(
                "volume {v} would lose its quorum while pool {name} restarts: {healthy_elsewhere} Healthy replica(s) elsewhere, {cf} needed"
            ));
        }
    }
    Ok(())
}

fn decide_cspi(view: &View, name: &str) -> Decision {
    let to = view.task.spec.to_version.clone();
    let pre = upgrade_step::PRE_UPGRADE;
    let pool = upgrade_step::POOL_INSTANCE_UPGRADE;
    let Some(cspi) = view.pool.cspi.as_ref() else {
        return refused(
            pre,
            format!("CStorPoolInstance {name} not found"),
            reason::NOT_FOUND,
        );
    };
    let d = cspi.version_details.as_ref();
    if !completed(&view.task, pre) {
        if let Err(why) = check_from(view, "CStorPoolInstance", name, d) {
            return refused(pre, why, reason::INVALID_VERSION);
        }
        let cspc = cspi
            .labels()
            .get(labels::CSTOR_POOL_CLUSTER)
            .cloned()
            .unwrap_or_default();
        if let Some(m) = migrating(view, &cspc, "") {
            return fail(
                view,
                pre,
                format!(
                    "Pre-upgrade checks failed: MigrationTask {m} is moving this pool; upgrade once it is done"
                ),
                reason::PREFLIGHT_FAILED,
            );
        }
        // Already upgraded (a resumed task): nothing to check.
        if !at(d, &to)
            && let Err(why) = cspi_preflight(&view.pool, cspi)
        {
            return fail(
                view,
                pre,
                format!("Pre-upgrade checks failed: {why}"),
                reason::PREFLIGHT_FAILED,
            );
        }
        return decision(pre, "Pre-upgrade checks passed", Next::Complete);
    }
    if !completed(&view.task, pool) {
        if let Some(asking) = ask(view, pool, Kind::Cspi, "CStorPoolInstance", name, d) {
            return asking;
        }
        if deployment_version(view.pool.deployment.as_ref()) != Some(to.as_str()) {
            return decision(
                pool,
                format!("rolling the pool-manager of {name} to version {to}"),
                Next::Act(Act::RollPool { cspi: name.into() }),
            );
        }
        let waiting =
            format!("waiting for the pool-manager of {name} at version {to} to take over");
        if let Some(waits) = answered(view, pool, d, true, waiting) {
            return waits;
        }
        if let Err(why) = cspi_preflight(&view.pool, cspi) {
            return wait(
                view,
                pool,
                format!("waiting for the pool to serve again: {why}"),
            );
        }
        return decision(pool, "Pool instance upgrade was successful", Next::Complete);
    }
    decision(
        upgrade_step::VERIFY,
        format!("CStorPoolInstance {name} is ONLINE at version {to}"),
        Next::Done,
    )
}

fn decide_cspc(view: &View, name: &str) -> Decision {
    let to = view.task.spec.to_version.clone();
    let pre = upgrade_step::PRE_UPGRADE;
    let pool = upgrade_step::POOL_INSTANCE_UPGRADE;
    let Some(cspc) = view.cluster.cspc.as_ref() else {
        return refused(
            pre,
            format!("CStorPoolCluster {name} not found"),
            reason::NOT_FOUND,
        );
    };
    let d = cspc.version_details.as_ref();
    if !completed(&view.task, pre) {
        if let Err(why) = check_from(view, "CStorPoolCluster", name, d) {
            return refused(pre, why, reason::INVALID_VERSION);
        }
        if let Some(other) = view.others.iter().find(|o| {
            !o.child
                && matches!(&o.subject, Subject::Cspi(c) if view.cluster.cspis.iter().any(|x| &x.name_any() == c))
        }) {
            return refused(pre, format!("UpgradeTask {} is already upgrading a pool of this CSPC", other.name), reason::DUPLICATE_TASK);
        }
        if let Some(m) = migrating(view, name, "") {
            return fail(
                view,
                pre,
                format!(
                    "Pre-upgrade checks failed: MigrationTask {m} is moving this pool cluster; upgrade once it is done"
                ),
                reason::PREFLIGHT_FAILED,
            );
        }
        if let Err(why) = cstor_policy::cspc::cspc_validation(cspc, &view.cluster.facts) {
            return fail(
                view,
                pre,
                format!(
                    "CStorPoolCluster {name} breaks a rule of version {to}, so it is not adopted; fix the CSPC first: {why}"
                ),
                reason::NOT_ADOPTABLE,
            );
        }
        return decision(
            pre,
            format!(
                "{} pool instance(s) to upgrade, one at a time",
                view.cluster.cspis.len()
            ),
            Next::Complete,
        );
    }
    if !completed(&view.task, pool) {
        let mut cspis: Vec<&CStorPoolInstance> = view.cluster.cspis.iter().collect();
        cspis.sort_by_key(|c| c.name_any());
        let total = cspis.len();
        let done = cspis
            .iter()
            .filter(|c| at(c.version_details.as_ref(), &to))
            .count();
        for c in cspis {
            let cspi = c.name_any();
            let child = view.cluster.children.get(&cspi);
            let finished = at(c.version_details.as_ref(), &to)
                && child.is_none_or(|t| t.status.phase == task_phase::SUCCESS);
            if finished {
                continue;
            }
            let Some(child) = child else {
                return decision(
                    pool,
                    format!("{done} of {total} pool instances upgraded; upgrading {cspi}"),
                    Next::Act(Act::CreateChild { cspi }),
                );
            };
            if child.status.phase == task_phase::ERROR {
                let why = child
                    .status
                    .upgrade_detailed_statuses
                    .iter()
                    .rev()
                    .find(|e| e.phase == step_phase::ERRORED)
                    .map(|e| format!("{}: {}", e.step, e.message))
                    .unwrap_or_default();
                return fail(
                    view,
                    pool,
                    format!("UpgradeTask {} failed: {why}", child.name_any()),
                    reason::UPGRADE_FAILED,
                );
            }
            let at_step = child
                .status
                .upgrade_detailed_statuses
                .last()
                .map(|e| format!(" ({}: {})", e.step, e.message))
                .unwrap_or_default();
            // Each pool has its own task and timeout; this one waits for them.
            return decision(
                pool,
                format!(
                    "{done} of {total} pool instances upgraded; upgrading {cspi} with UpgradeTask {}{at_step}",
                    child.name_any()
                ),
                Next::Wait,
            );
        }
        return decision(
            pool,
            format!("All {total} pool instances upgraded"),
            Next::Complete,
        );
    }
    let verify = upgrade_step::VERIFY;
    if let Some(asking) = ask(view, verify, Kind::Cspc, "CStorPoolCluster", name, d) {
        return asking;
    }
    let waiting = format!("waiting for CStorPoolCluster {name} to reach version {to}");
    if let Some(waits) = answered(view, verify, d, true, waiting) {
        return waits;
    }
    decision(
        verify,
        format!("CStorPoolCluster {name} and its pool instances are at version {to}"),
        Next::Done,
    )
}

fn decide_volume(view: &View, pv: &str) -> Decision {
    let to = view.task.spec.to_version.clone();
    let v = &view.volume;
    let pre = upgrade_step::PRE_UPGRADE;
    let (Some(cv), Some(cvc)) = (v.cv.as_ref(), v.cvc.as_ref()) else {
        return refused(
            pre,
            format!("volume {pv} not found (its CStorVolume and CStorVolumeConfig)"),
            reason::NOT_FOUND,
        );
    };
    let cv_d = cv.version_details.as_ref();
    if !completed(&view.task, pre) {
        if let Err(why) = check_from(view, "CStorVolume", pv, cv_d) {
            return refused(pre, why, reason::INVALID_VERSION);
        }
        if let Some(m) = migrating(view, "", pv) {
            return fail(
                view,
                pre,
                format!(
                    "Pre-upgrade checks failed: MigrationTask {m} is moving this volume; upgrade once it is done"
                ),
                reason::PREFLIGHT_FAILED,
            );
        }
        if let Err((why, reason)) = volume_preflight(v, cv, &to) {
            return fail(
                view,
                pre,
                format!("Pre-upgrade checks failed: {why}"),
                reason,
            );
        }
        return decision(pre, "Pre-upgrade checks passed", Next::Complete);
    }
    let replica = upgrade_step::REPLICA_UPGRADE;
    if !completed(&view.task, replica) {
        let mut cvrs: Vec<&CStorVolumeReplica> = v.cvrs.iter().collect();
        cvrs.sort_by_key(|c| c.name_any());
        if let Some(asking) = cvrs.iter().find_map(|c| {
            let name = c.name_any();
            ask(
                view,
                replica,
                Kind::Cvr,
                "replica",
                &name,
                c.version_details.as_ref(),
            )
        }) {
            return asking;
        }
        if let Some((c, why)) = cvrs
            .iter()
            .find_map(|c| record_failure(c.version_details.as_ref()).map(|w| (c, w)))
        {
            return fail(
                view,
                replica,
                format!("replica {}: {why}", c.name_any()),
                reason::UPGRADE_FAILED,
            );
        }
        let behind: Vec<String> = cvrs
            .iter()
            .filter(|c| !at(c.version_details.as_ref(), &to))
            .map(|c| c.name_any())
            .collect();
        if !behind.is_empty() {
            return wait(
                view,
                replica,
                format!(
                    "waiting for the pool-managers to upgrade replica(s) {}",
                    behind.join(", ")
                ),
            );
        }
        return decision(replica, "Replica upgrade was successful", Next::Complete);
    }
    let target = upgrade_step::TARGET_UPGRADE;
    if !completed(&view.task, target) {
        if let Some(asking) = ask(view, target, Kind::Cv, "CStorVolume", pv, cv_d) {
            return asking;
        }
        if deployment_version(v.deployment.as_ref()) != Some(to.as_str()) {
            return decision(
                target,
                format!("rolling the target of {pv} to version {to}"),
                Next::Act(Act::RollTarget { pv: pv.into() }),
            );
        }
        let ph = cv
            .status
            .as_ref()
            .map(|s| s.phase.clone())
            .unwrap_or_default();
        let waiting =
            format!("waiting for the target of {pv} at version {to} to serve (phase {ph:?})");
        if let Some(waits) = answered(view, target, cv_d, ph == cv_phase::HEALTHY, waiting) {
            return waits;
        }
        return decision(target, "Target upgrade was successful", Next::Complete);
    }
    let verify = upgrade_step::VERIFY;
    let cvc_d = cvc.version_details.as_ref();
    if let Some(asking) = ask(view, verify, Kind::Cvc, "CStorVolumeConfig", pv, cvc_d) {
        return asking;
    }
    let waiting = format!("waiting for CStorVolumeConfig {pv} to reach version {to}");
    if let Some(waits) = answered(view, verify, cvc_d, true, waiting) {
        return waits;
    }
    decision(
        verify,
        format!("volume {pv} is Healthy at version {to}"),
        Next::Done,
    )
}

/// The volume's preflight: Healthy, every replica Healthy, every replica's pool already at
/// `to` (pools first), no resize in flight.
fn volume_preflight(
    v: &VolumeView,
    cv: &CStorVolume,
    to: &str,
) -> Result<(), (String, &'static str)> {
    let bad = |why: String| Err((why, reason::PREFLIGHT_FAILED));
    let pv = cv.name_any();
    let ph = cv
        .status
        .as_ref()
        .map(|s| s.phase.clone())
        .unwrap_or_default();
    if ph != cv_phase::HEALTHY {
        return bad(format!("volume {pv} is {ph:?}, not Healthy"));
    }
    if resizing(cv) {
        return bad(format!(
            "volume {pv} is being resized; upgrade once it is done"
        ));
    }
    if v.cvrs.is_empty() {
        return bad(format!("volume {pv} has no replicas"));
    }
    for c in &v.cvrs {
        if !healthy(c) {
            return bad(format!(
                "replica {} is {:?}, not Healthy",
                c.name_any(),
                phase_of_cvr(c)
            ));
        }
        let pool = c
            .labels()
            .get(labels::CSPI_NAME)
            .cloned()
            .unwrap_or_default();
        let pool_at = v
            .cspis
            .get(&pool)
            .is_some_and(|p| at(p.version_details.as_ref(), to));
        if !pool_at {
            return Err((
                format!(
                    "the pool {pool} of replica {} is not at version {to} yet: upgrade the pools first",
                    c.name_any()
                ),
                reason::POOLS_FIRST,
            ));
        }
    }
    Ok(())
}
