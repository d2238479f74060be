//! A write's per-replica answers → acknowledge, refuse alike, or lose quorum; and who is
//! degraded.

use crate::volume_manager::quorum::{Answer, Refusal, Verdict, WriteOutcome, decide_write};
use pretty_assertions::assert_eq;

const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;
const EROFS: i32 = 30;

fn ok() -> Answer {
    Answer {
        healthy: true,
        result: Ok(()),
    }
}

fn no(r: Refusal) -> Answer {
    Answer {
        healthy: true,
        result: Err(r),
    }
}

fn rebuilding(a: Answer) -> Answer {
    Answer {
        healthy: false,
        ..a
    }
}

fn outcome(verdict: Verdict, degrade: &[usize], unsettled: bool) -> WriteOutcome {
    WriteOutcome {
        verdict,
        degrade: degrade.to_vec(),
        unsettled,
    }
}

#[test]
fn a_write_is_decided_by_its_answers() {
    use Refusal::*;
    use Verdict::*;
    let full = NoSpace(ENOSPC);
    let quota = NoSpace(EDQUOT);
    let cases: Vec<(&str, Vec<Answer>, usize, WriteOutcome)> = vec![
        (
            "all took it",
            vec![ok(), ok(), ok()],
            2,
            outcome(Acknowledge, &[], false),
        ),
        (
            "one fault among successes is degraded",
            vec![ok(), no(Fault), ok()],
            2,
            outcome(Acknowledge, &[1], false),
        ),
        (
            "one full pool among successes is degraded too: that replica is behind",
            vec![ok(), ok(), no(full)],
            2,
            outcome(Acknowledge, &[2], false),
        ),
        (
            "pools of one size fill together: the initiator gets ENOSPC, nobody is degraded",
            vec![no(full), no(full), no(full)],
            2,
            outcome(Refused { errno: ENOSPC }, &[], true),
        ),
        (
            "a full pool and a quota are alike (no room)",
            vec![no(full), no(quota), ok()],
            2,
            outcome(Refused { errno: ENOSPC }, &[], true),
        ),
        (
            "refused alike by cf replicas while another faults: only the fault is degraded",
            vec![no(quota), no(quota), no(Fault)],
            2,
            outcome(Refused { errno: EDQUOT }, &[2], true),
        ),
        (
            "read-only alike",
            vec![no(ReadOnly), no(ReadOnly)],
            2,
            outcome(Refused { errno: EROFS }, &[], true),
        ),
        (
            "one refusal is not enough with cf 2: quorum lost, failures degraded",
            vec![no(full), no(Fault), ok()],
            2,
            outcome(QuorumLost { healthy: 1 }, &[0, 1], false),
        ),
        (
            "faults alike are still faults",
            vec![no(Fault), no(Fault), no(Fault)],
            2,
            outcome(QuorumLost { healthy: 0 }, &[0, 1, 2], false),
        ),
        (
            "a rebuilding replica does not count for the refusal",
            vec![no(full), rebuilding(no(full)), ok()],
            2,
            outcome(QuorumLost { healthy: 1 }, &[0, 1], false),
        ),
        (
            "a rebuilding replica refusing alike is not degraded",
            vec![no(full), no(full), rebuilding(no(full))],
            2,
            outcome(Refused { errno: ENOSPC }, &[], true),
        ),
        (
            "a rebuilding replica that faults is degraded",
            vec![ok(), ok(), rebuilding(no(Fault))],
            2,
            outcome(Acknowledge, &[2], false),
        ),
    ];
    for (what, answers, cf, want) in cases {
        assert_eq!(decide_write(&answers, cf), want, "{what}");
    }
}

#[test]
fn refusals_are_classified_from_the_errno() {
    let e = |n| std::io::Error::from_raw_os_error(n);
    assert_eq!(Refusal::of(&e(ENOSPC)), Refusal::NoSpace(ENOSPC));
    assert_eq!(Refusal::of(&e(EDQUOT)), Refusal::NoSpace(EDQUOT));
    assert_eq!(Refusal::of(&e(27)), Refusal::NoSpace(27));
    assert_eq!(Refusal::of(&e(EROFS)), Refusal::ReadOnly);
    assert_eq!(Refusal::of(&e(5)), Refusal::Fault);
    assert_eq!(Refusal::of(&std::io::Error::other("x")), Refusal::Fault);
    assert_eq!(Refusal::ReadOnly.errno(), EROFS);
    assert_eq!(Refusal::Fault.errno(), 5);
}
