//! A gate in front of the LUN file's I/O: while tgt re-opens its backing file (a resize),
//! reads, writes and fsyncs wait at the gate instead of racing tgt's swap of the file
//! descriptor, and go on once it is done (docs/volumes.md, "Resize").

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a held gate must see no new I/O before tgt re-opens the LUN file: a command tgt
/// handed a worker thread just before reaches the gate well within it (decision 020).
pub const REOPEN_QUIET: Duration = Duration::from_millis(250);

/// Shared by the FUSE handlers (who pass through it) and the daemon (who holds it).
#[derive(Debug, Default)]
pub struct IoGate {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    held: bool,
    /// I/O that passed the gate and has not finished.
    in_flight: usize,
    /// The last I/O that reached the gate while it was held (or when the hold began).
    last_arrival: Option<Instant>,
}

/// One I/O inside the gate; leaving is dropping it.
#[derive(Debug)]
pub struct Pass<'a> {
    gate: &'a IoGate,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
        drop(st);
        self.gate.changed.notify_all();
    }
}

/// The gate held: no I/O passes until this is dropped.
#[derive(Debug)]
pub struct Hold {
    gate: Arc<IoGate>,
    since: Instant,
}

impl Hold {
    /// How long I/O has been held so far.
    pub fn held_for(&self) -> Duration {
        self.since.elapsed()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.gate.lock().held = false;
        self.gate.changed.notify_all();
    }
}

/// Why a hold was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HoldError {
    #[error("another hold of the LUN's I/O is in progress")]
    Busy,
    #[error("the LUN's I/O did not go quiet within {0:?} ({1} still in flight)")]
    NotQuiet(Duration, usize),
}

impl IoGate {
    pub fn new() -> IoGate {
        IoGate::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Passes at once, or None while the gate is held (the caller then waits with
    /// [`IoGate::enter`] on a thread of its own, so FUSE threads stay free for the open and
    /// stat calls of the swap itself).
    pub fn try_enter(&self) -> Option<Pass<'_>> {
        let mut st = self.lock();
        if st.held {
            st.last_arrival = Some(Instant::now());
            return None;
        }
        st.in_flight += 1;
        Some(Pass { gate: self })
    }

    /// Passes once the gate is not held.
    pub fn enter(&self) -> Pass<'_> {
        let mut st = self.lock();
        if st.held {
            st.last_arrival = Some(Instant::now());
            self.changed.notify_all();
        }
        while st.held {
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.in_flight += 1;
        Pass { gate: self }
    }

    /// Closes the gate and waits until nothing is in flight and no new I/O has arrived for
    /// `quiet` (a command tgt handed a worker thread just before has reached the gate by
    /// then); gives up after `deadline`, opening the gate again. Blocks: call it off the
    /// async runtime.
    pub fn hold(self: &Arc<Self>, quiet: Duration, deadline: Duration) -> Result<Hold, HoldError> {
        let started = Instant::now();
        let mut st = self.lock();
        if st.held {
            return Err(HoldError::Busy);
        }
        st.held = true;
        st.last_arrival = Some(started);
        loop {
            let now = Instant::now();
            let calm_since = st.last_arrival.unwrap_or(started);
            if st.in_flight == 0 && now.duration_since(calm_since) >= quiet {
                return Ok(Hold {
                    gate: self.clone(),
                    since: started,
                });
            }
            if now.duration_since(started) >= deadline {
                let in_flight = st.in_flight;
                st.held = false;
                drop(st);
                self.changed.notify_all();
                return Err(HoldError::NotQuiet(deadline, in_flight));
            }
            let calm_at = calm_since + quiet;
            let give_up_at = started + deadline;
            let wake = calm_at.min(give_up_at).saturating_duration_since(now);
            st = self
                .changed
                .wait_timeout(st, wake.max(Duration::from_millis(1)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn io_waits_while_held_and_goes_on_after() {
        let gate = Arc::new(IoGate::new());
        let hold = gate
            .hold(Duration::ZERO, Duration::from_secs(1))
            .expect("hold");
        assert!(gate.try_enter().is_none());
        let done = Arc::new(AtomicBool::new(false));
        let t = {
            let (gate, done) = (gate.clone(), done.clone());
            std::thread::spawn(move || {
                let _pass = gate.enter();
                done.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!done.load(Ordering::SeqCst), "I/O passed a held gate");
        drop(hold);
        t.join().expect("thread");
        assert!(done.load(Ordering::SeqCst));
        assert!(gate.try_enter().is_some());
    }

    #[test]
    fn a_hold_waits_for_io_in_flight_and_for_quiet() {
        let gate = Arc::new(IoGate::new());
        let pass_out = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let _pass = gate.enter();
                std::thread::sleep(Duration::from_millis(100));
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        let hold = gate
            .hold(Duration::from_millis(30), Duration::from_secs(5))
            .expect("hold");
        // The I/O in flight finished before the hold was granted.
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert_eq!(gate.lock().in_flight, 0);
        pass_out.join().expect("thread");
        drop(hold);
    }

    #[test]
    fn a_hold_gives_up_when_io_does_not_finish_and_reopens() {
        let gate = Arc::new(IoGate::new());
        let pass = gate.try_enter().expect("open gate");
        let err = gate
            .hold(Duration::ZERO, Duration::from_millis(50))
            .expect_err("stuck I/O");
        assert_eq!(err, HoldError::NotQuiet(Duration::from_millis(50), 1));
        drop(pass);
        assert!(gate.try_enter().is_some(), "the gate stayed closed");
    }

    #[test]
    fn one_hold_at_a_time() {
        let gate = Arc::new(IoGate::new());
        let _hold = gate
            .hold(Duration::ZERO, Duration::from_secs(1))
            .expect("hold");
        assert_eq!(
            gate.hold(Duration::ZERO, Duration::from_secs(1))
                .expect_err("second"),
            HoldError::Busy
        );
    }
}
