//! What one write's per-replica results mean for the volume (pure): acknowledge it, or hand an
//! error back to the initiator; and which replicas stop counting. A replica is degraded only
//! when it failed where others succeeded; an out-of-space answer that enough replicas give
//! alike (pools of one size fill together) is the volume's answer, not a replica fault.

use nix::errno::Errno;

/// Why a replica refused a write, as far as the volume is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No room: ENOSPC (pool full), EDQUOT (dataset quota), EFBIG (file limit).
    NoSpace(i32),
    /// EROFS: the pool or dataset is read-only.
    ReadOnly,
    /// Anything else (EIO, a lost device, …): a fault of that replica.
    Fault,
}

impl Refusal {
    /// Classifies an I/O error from a replica file.
    pub fn of(e: &std::io::Error) -> Refusal {
        match e.raw_os_error() {
            Some(n)
                if [Errno::ENOSPC, Errno::EDQUOT, Errno::EFBIG].contains(&Errno::from_raw(n)) =>
            {
                Refusal::NoSpace(n)
            }
            Some(n) if Errno::from_raw(n) == Errno::EROFS => Refusal::ReadOnly,
            _ => Refusal::Fault,
        }
    }

    /// The errno handed to the initiator for a write refused alike.
    pub fn errno(self) -> i32 {
        match self {
            Refusal::NoSpace(n) => n,
            Refusal::ReadOnly => Errno::EROFS as i32,
            Refusal::Fault => Errno::EIO as i32,
        }
    }

    fn alike(self, other: Refusal) -> bool {
        matches!(
            (self, other),
            (Refusal::NoSpace(_), Refusal::NoSpace(_)) | (Refusal::ReadOnly, Refusal::ReadOnly)
        )
    }
}

/// One replica's answer to a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The replica counts for the consistency factor (Healthy, not Rebuilding).
    pub healthy: bool,
    pub result: Result<(), Refusal>,
}

/// What the write comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// `Ok`: acknowledge. `Err(errno)`: the write is refused alike by at least the consistency
    /// factor of Healthy replicas, and that errno goes back to the initiator.
    /// `None`: too few replicas took it for any other reason (a quorum loss: EIO).
    pub verdict: Verdict,
    /// Indexes (into the answers) of the replicas to degrade.
    pub degrade: Vec<usize>,
    /// The range may now differ between replicas that stay in the volume (some took all or
    /// part of a write the initiator was told failed): it must be made equal again.
    pub unsettled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Acknowledge,
    Refused { errno: i32 },
    QuorumLost { healthy: usize },
}

/// Decides a write from its answers with consistency factor `cf`.
pub fn decide_write(answers: &[Answer], cf: usize) -> WriteOutcome {
    let ok_healthy = answers
        .iter()
        .filter(|a| a.healthy && a.result.is_ok())
        .count();
    let failed: Vec<usize> = (0..answers.len())
        .filter(|i| answers[*i].result.is_err())
        .collect();
    if ok_healthy >= cf {
        return WriteOutcome {
            verdict: Verdict::Acknowledge,
            degrade: failed,
            unsettled: false,
        };
    }
    // The refusal most Healthy replicas share, if enough share it.
    let refusals: Vec<Refusal> = answers
        .iter()
        .filter(|a| a.healthy)
        .filter_map(|a| a.result.err())
        .filter(|r| *r != Refusal::Fault)
        .collect();
    // The first refusal of the largest alike group (the first, so the errno is stable).
    let mut shared: Option<(Refusal, usize)> = None;
    for r in &refusals {
        let n = refusals.iter().filter(|o| o.alike(*r)).count();
        if shared.is_none_or(|(_, best)| n > best) {
            shared = Some((*r, n));
        }
    }
    let shared = shared.filter(|(_, n)| *n >= cf.max(1));
    match shared {
        Some((refusal, _)) => WriteOutcome {
            verdict: Verdict::Refused {
                errno: refusal.errno(),
            },
            // Replicas that refused alike keep what they had; only faults are degraded.
            degrade: failed
                .into_iter()
                .filter(|i| answers[*i].result.err().is_some_and(|r| !r.alike(refusal)))
                .collect(),
            unsettled: true,
        },
        None => WriteOutcome {
            verdict: Verdict::QuorumLost {
                healthy: ok_healthy,
            },
            degrade: failed,
            unsettled: false,
        },
    }
}
