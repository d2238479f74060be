//! A replica's I/O threads. Every write, read and flush of a replica file runs on the
//! replica's own threads, so the fan-out can stop waiting at a deadline when a replica hangs
//! (its pool suspended, its ZFS daemon stopped) instead of freezing the volume with it. A
//! thread stuck in such a call stays stuck until the call returns; its answer is dropped.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

type Job = Box<dyn FnOnce() + Send>;

/// A few threads taking one replica's jobs in order of arrival.
#[derive(Debug)]
pub struct Workers {
    tx: Mutex<Sender<Job>>,
}

impl Workers {
    /// `n` threads named after the replica; they end when this is dropped.
    pub fn new(replica: &str, n: usize) -> Workers {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("replica-{replica}-{i}"))
                .spawn(move || {
                    loop {
                        // Hold the lock only to take a job, never while running it.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(e) => e.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(replica, error = %e, "replica I/O thread not started");
            }
        }
        Workers { tx: Mutex::new(tx) }
    }

    /// Runs `f` on one of the threads; its answer comes through the returned [`Pending`].
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Pending<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .is_ok();
        Pending { rx, sent }
    }
}

/// The answer of a job, awaited up to a deadline.
pub struct Pending<T> {
    rx: Receiver<T>,
    sent: bool,
}

impl<T> Pending<T> {
    /// The answer, or `None` if none came by `deadline` (or the threads are gone).
    pub fn wait_until(&self, deadline: Instant) -> Option<T> {
        if !self.sent {
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.rx.recv_timeout(left).ok()
    }
}
