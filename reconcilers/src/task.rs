//! The step list of a MigrationTask or UpgradeTask (`status.*DetailedStatuses[]`): one rule
//! for how a decision moves it, shared by both controllers.

use cstor_api::openebs_v1alpha1::{TaskStepStatus, step_phase, task_phase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// How the decided step ends this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepEnd<'a> {
    /// Still running (acting or waiting).
    Running,
    /// This step is done; the task goes on.
    Completed,
    /// Failed with this reason: the task ends in Error.
    Failed(&'a str),
    /// The task is done: Success.
    Done,
}

/// The parts of a task's status that [`advance`] moves.
pub struct Progress<'a> {
    pub steps: &'a mut Vec<TaskStepStatus>,
    pub phase: &'a mut String,
    pub start_time: &'a mut Option<Time>,
    pub completed_time: &'a mut Option<Time>,
}

/// The task's phase, times and steps after a decision at `step` saying `message`: earlier
/// steps still Waiting are Completed, the step's entry is written, and the task's phase
/// follows a failure or the end.
pub fn advance(task: Progress<'_>, step: &str, message: &str, end: StepEnd<'_>, at: &Time) {
    let Progress {
        steps,
        phase,
        start_time,
        completed_time,
    } = task;
    if start_time.is_none() {
        *start_time = Some(at.clone());
    }
    if phase.is_empty() {
        *phase = task_phase::STARTED.into();
    }
    let (entry_phase, reason) = match end {
        StepEnd::Running => (step_phase::WAITING, ""),
        StepEnd::Failed(reason) => (step_phase::ERRORED, reason),
        StepEnd::Completed | StepEnd::Done => (step_phase::COMPLETED, ""),
    };
    for entry in steps.iter_mut() {
        if entry.step != step && entry.phase == step_phase::WAITING {
            entry.phase = step_phase::COMPLETED.into();
            entry.last_updated_time = Some(at.clone());
            // A wait's words no longer hold once it is over.
            if entry.message.is_empty() || entry.message.starts_with("waiting") {
                entry.message = "done".into();
            }
        }
    }
    match steps.iter_mut().find(|e| e.step == step) {
        Some(entry) => {
            if entry.phase != entry_phase || entry.message != message || entry.reason != reason {
                entry.phase = entry_phase.into();
                entry.message = message.into();
                entry.reason = reason.into();
                entry.last_updated_time = Some(at.clone());
            }
        }
        None => steps.push(TaskStepStatus {
            step: step.into(),
            start_time: Some(at.clone()),
            last_updated_time: Some(at.clone()),
            phase: entry_phase.into(),
            message: message.into(),
            reason: reason.into(),
        }),
    }
    match end {
        StepEnd::Failed(_) => {
            *phase = task_phase::ERROR.into();
            *completed_time = Some(at.clone());
        }
        StepEnd::Done => {
            *phase = task_phase::SUCCESS.into();
            *completed_time = Some(at.clone());
        }
        _ => {}
    }
}
