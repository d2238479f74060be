//! The one condition setter. A condition keeps its `lastTransitionTime` unless its state
//! flips; any other change (reason, message, observed generation) moves only its update (or
//! probe) time; an identical condition is left untouched, so an unchanged status is not
//! rewritten.

use cstor_api::common::{ConditionStatus, PoolCondition};
use cstor_api::cstor_v1::CStorVolumeConfigCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What the setter needs to know of a condition type.
pub trait Condition {
    fn type_(&self) -> &str;
    /// What a flip is: the status, or for kinds whose conditions have none (the CVC's), the
    /// reason.
    fn state(&self) -> String;
    /// Equal but for the times.
    fn same_as(&self, other: &Self) -> bool;
    fn transition(&self) -> Option<&Time>;
    /// Sets the transition time and the update (or probe) time.
    fn stamp(&mut self, transition: Time, updated: Time);
}

/// Sets `new` into `conditions` (replacing the one of its type); `true` when something
/// changed.
pub fn set_condition<C: Condition>(conditions: &mut Vec<C>, mut new: C, now: &Time) -> bool {
    match conditions.iter_mut().find(|c| c.type_() == new.type_()) {
        Some(old) => {
            if old.same_as(&new) {
                return false;
            }
            let transition = match old.transition() {
                Some(t) if old.state() == new.state() => t.clone(),
                _ => now.clone(),
            };
            new.stamp(transition, now.clone());
            *old = new;
            true
        }
        None => {
            new.stamp(now.clone(), now.clone());
            conditions.push(new);
            true
        }
    }
}

/// Drops the conditions of `type_`; `true` when one was there.
pub fn remove_condition<C: Condition>(conditions: &mut Vec<C>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_() != type_);
    conditions.len() != before
}

impl Condition for PoolCondition {
    fn type_(&self) -> &str {
        &self.type_
    }
    fn state(&self) -> String {
        match self.status {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
        .into()
    }
    fn same_as(&self, other: &Self) -> bool {
        self.status == other.status
            && self.reason == other.reason
            && self.message == other.message
            && self.observed_generation == other.observed_generation
    }
    fn transition(&self) -> Option<&Time> {
        self.last_transition_time.as_ref()
    }
    fn stamp(&mut self, transition: Time, updated: Time) {
        self.last_transition_time = Some(transition);
        self.last_update_time = Some(updated);
    }
}

impl Condition for CStorVolumeConfigCondition {
    fn type_(&self) -> &str {
        &self.type_
    }
    fn state(&self) -> String {
        self.reason.clone()
    }
    fn same_as(&self, other: &Self) -> bool {
        self.reason == other.reason
            && self.message == other.message
            && self.observed_generation == other.observed_generation
    }
    fn transition(&self) -> Option<&Time> {
        self.last_transition_time.as_ref()
    }
    fn stamp(&mut self, transition: Time, updated: Time) {
        self.last_transition_time = Some(transition);
        self.last_probe_time = Some(updated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    fn pool(status: ConditionStatus, reason: &str, message: &str) -> PoolCondition {
        PoolCondition {
            type_: "PoolExpansion".into(),
            status,
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        }
    }

    #[test]
    fn transition_time_moves_only_on_a_flip() {
        let (t1, t2, t3, t4) = (
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:02:00Z"),
            t("2026-01-01T00:03:00Z"),
        );
        let mut c = Vec::new();
        assert!(set_condition(
            &mut c,
            pool(ConditionStatus::True, "A", "m"),
            &t1
        ));
        assert_eq!(c[0].last_transition_time, Some(t1.clone()));
        // Identical: untouched.
        assert!(!set_condition(
            &mut c,
            pool(ConditionStatus::True, "A", "m"),
            &t2
        ));
        assert_eq!(c[0].last_update_time, Some(t1.clone()));
        // New message, same status: transition kept, update moves.
        assert!(set_condition(
            &mut c,
            pool(ConditionStatus::True, "A", "m2"),
            &t3
        ));
        assert_eq!(c[0].last_transition_time, Some(t1.clone()));
        assert_eq!(c[0].last_update_time, Some(t3.clone()));
        assert_eq!(c[0].message, "m2");
        // A flip: both move.
        assert!(set_condition(
            &mut c,
            pool(ConditionStatus::False, "B", "m2"),
            &t4
        ));
        assert_eq!(c[0].last_transition_time, Some(t4.clone()));
        assert_eq!(c.len(), 1);
        assert!(remove_condition(&mut c, "PoolExpansion"));
        assert!(c.is_empty());
    }

    #[test]
    fn a_cvc_condition_flips_on_its_reason() {
        let cond = |reason: &str, message: &str| CStorVolumeConfigCondition {
            type_: "Resizing".into(),
            reason: reason.into(),
            message: message.into(),
            last_probe_time: None,
            last_transition_time: None,
            observed_generation: None,
        };
        let (t1, t2, t3) = (
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:02:00Z"),
        );
        let mut c = Vec::new();
        set_condition(&mut c, cond("Resizing", "a"), &t1);
        set_condition(&mut c, cond("Resizing", "b"), &t2);
        assert_eq!(c[0].last_transition_time, Some(t1));
        assert_eq!(c[0].last_probe_time, Some(t2));
        set_condition(&mut c, cond("ResizeFailed", "b"), &t3);
        assert_eq!(c[0].last_transition_time, Some(t3));
    }
}
