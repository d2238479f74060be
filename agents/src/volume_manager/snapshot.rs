//! The volume-manager's part of a snapshot (docs/backup-restore.md, "Snapshots"), its pure
//! decisions: whether a request on the CStorVolume is to be taken now, later or refused, and
//! the outcome from the pool-managers' answers.

use std::collections::BTreeMap;

use cstor_api::snapshot::{self, Answer, Barrier, OUTCOME, Op, Outcome, REQUEST, Request};

/// What to do about the CStorVolume's snapshot annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// No request, or it has its outcome.
    Nothing,
    /// Not now (why); the request stays and is taken at a later pass.
    Later(String),
    /// Never: the outcome says why.
    Refuse(Request, String),
    Take(Request),
}

/// `busy`: why the replicas' contents may still change without a write (a resync, the settling
/// of refused writes), which a snapshot must not catch half-way.
pub fn next(annotations: &BTreeMap<String, String>, busy: Option<&str>) -> Next {
    let Some(request) = snapshot::parse::<Request>(annotations.get(REQUEST)) else {
        return Next::Nothing;
    };
    if request.id.is_empty() {
        return Next::Nothing;
    }
    if snapshot::parse::<Outcome>(annotations.get(OUTCOME)).is_some_and(|o| o.id == request.id) {
        return Next::Nothing;
    }
    if let Err(e) = snapshot::valid_name(&request.snapshot) {
        return Next::Refuse(request, e);
    }
    if request.op == Op::Create
        && let Some(why) = busy
    {
        return Next::Later(why.to_string());
    }
    Next::Take(request)
}

/// The outcome once every replica of `barrier` answered or the wait ended: an answer with no
/// error is done, one with an error or none at all failed.
pub fn outcome(barrier: &Barrier, answers: &BTreeMap<String, Answer>, held_ms: u64) -> Outcome {
    let mut done = Vec::new();
    let mut failed = BTreeMap::new();
    for id in &barrier.replicas {
        match answers.get(id).filter(|a| a.id == barrier.id) {
            Some(a) if a.error.is_empty() => done.push(id.clone()),
            Some(a) => {
                failed.insert(id.clone(), a.error.clone());
            }
            None => {
                failed.insert(id.clone(), "no answer from its pool-manager in time".into());
            }
        }
    }
    Outcome {
        id: barrier.id.clone(),
        snapshot: barrier.snapshot.clone(),
        op: barrier.op,
        done,
        failed,
        held_ms,
        refused: String::new(),
    }
}

/// Every replica of the barrier answered it.
pub fn all_answered(barrier: &Barrier, answers: &BTreeMap<String, Answer>) -> bool {
    barrier
        .replicas
        .iter()
        .all(|id| answers.get(id).is_some_and(|a| a.id == barrier.id))
}

/// The outcome of a request not attempted.
pub fn refused(request: &Request, why: &str) -> Outcome {
    Outcome {
        id: request.id.clone(),
        snapshot: request.snapshot.clone(),
        op: request.op,
        refused: why.to_string(),
        ..Outcome::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).expect("json")
    }

    fn request(id: &str, snap: &str, op: Op) -> Request {
        Request {
            id: id.into(),
            snapshot: snap.into(),
            op,
        }
    }

    #[test]
    fn a_request_is_taken_once_deferred_while_busy_and_refused_when_bad() {
        let r = request("r1", "b1-20240101101010", Op::Create);
        assert_eq!(next(&BTreeMap::new(), None), Next::Nothing);
        assert_eq!(
            next(&annotations(&[(REQUEST, json(&r))]), None),
            Next::Take(r.clone())
        );
        assert_eq!(
            next(&annotations(&[(REQUEST, json(&r))]), Some("a resync runs")),
            Next::Later("a resync runs".into())
        );
        // A destroy does not change data: never deferred.
        let d = request("r2", "b1", Op::Destroy);
        assert_eq!(
            next(&annotations(&[(REQUEST, json(&d))]), Some("a resync runs")),
            Next::Take(d)
        );
        let done = Outcome {
            id: "r1".into(),
            ..Outcome::default()
        };
        assert_eq!(
            next(
                &annotations(&[(REQUEST, json(&r)), (OUTCOME, json(&done))]),
                None
            ),
            Next::Nothing
        );
        let bad = request("r3", "a/b", Op::Create);
        assert_eq!(
            next(&annotations(&[(REQUEST, json(&bad))]), None),
            Next::Refuse(
                bad,
                "snapshot name \"a/b\" has '/'; only letters, digits, '_', '.', ':' and '-' are allowed"
                    .into()
            )
        );
        assert_eq!(
            next(&annotations(&[(REQUEST, "not json".into())]), None),
            Next::Nothing
        );
    }

    #[test]
    fn the_outcome_names_who_took_it_who_failed_and_who_never_answered() {
        let barrier = Barrier {
            id: "r1".into(),
            snapshot: "s".into(),
            op: Op::Create,
            replicas: vec!["1".into(), "2".into(), "3".into()],
        };
        let mut answers = BTreeMap::new();
        answers.insert(
            "1".to_string(),
            Answer {
                id: "r1".into(),
                error: String::new(),
            },
        );
        answers.insert(
            "2".to_string(),
            Answer {
                id: "r1".into(),
                error: "out of space".into(),
            },
        );
        // An answer to an older barrier is no answer.
        answers.insert(
            "3".to_string(),
            Answer {
                id: "r0".into(),
                error: String::new(),
            },
        );
        assert!(!all_answered(&barrier, &answers));
        let o = outcome(&barrier, &answers, 40);
        assert_eq!(o.done, vec!["1".to_string()]);
        assert_eq!(o.failed.get("2").map(String::as_str), Some("out of space"));
        assert_eq!(
            o.failed.get("3").map(String::as_str),
            Some("no answer from its pool-manager in time")
        );
        assert_eq!(o.held_ms, 40);
    }
}
