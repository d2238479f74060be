//! Per-object exponential back-off for reconcile errors (kube-runtime has none built in): 1 s
//! after the first failure, doubling to a 5-minute cap (reached at the tenth) that holds, each delay stretched by up
//! to 10 % of jitter so objects that failed together do not retry together; a success resets it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The first delay.
pub const FIRST: Duration = Duration::from_secs(1);
/// The cap, reached after ten failures in a row and held from then on.
pub const CAP: Duration = Duration::from_secs(300);

/// `first` after the first failure, doubling with each further one, never above `cap`.
pub fn exponential(first: Duration, cap: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    first.saturating_mul(1u32 << doublings).min(cap)
}

/// The reconcile delay after `failures` consecutive failures (the first failure is 1), before
/// jitter.
pub fn base_delay(failures: u32) -> Duration {
    exponential(FIRST, CAP, failures)
}

/// `base` stretched by `jitter_permille` thousandths (0..=100 → up to +10 %).
pub fn with_jitter(base: Duration, jitter_permille: u32) -> Duration {
    base + base.saturating_mul(jitter_permille.min(100)) / 1000
}

fn jitter_permille() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 101)
        .unwrap_or(0)
}

/// Failure counts by object key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Backoff(Mutex<HashMap<String, u32>>);

impl Backoff {
    /// `key` reconciled fine: the next failure starts again from [`FIRST`].
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.0.lock() {
            f.remove(key);
        }
    }

    /// Runs one reconcile of `key` by `controller` (traced: span and duration) and resets the
    /// object's failure count when it succeeds; the error policy counts the failures.
    pub async fn reconcile<T, E: std::fmt::Display>(
        &self,
        controller: &'static str,
        key: &str,
        reconcile: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let result = crate::traced(controller, key, reconcile).await;
        if result.is_ok() {
            self.succeeded(key);
        }
        result
    }

    /// How many times in a row `key` has failed.
    pub fn failures(&self, key: &str) -> u32 {
        self.0
            .lock()
            .map(|f| f.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// `key` failed once more: its failure count and how long to wait before retrying.
    pub fn failed(&self, key: &str) -> (u32, Duration) {
        let n = match self.0.lock() {
            Ok(mut f) => {
                let n = f.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        (n, with_jitter(base_delay(n), jitter_permille()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_five_seconds_to_a_five_minute_cap_that_holds() {
        let secs: Vec<u64> = (1..=10).map(|n| base_delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(base_delay(11), CAP);
        assert_eq!(base_delay(0), FIRST);
        assert_eq!(base_delay(u32::MAX), CAP);
    }

    #[test]
    fn other_policies_use_the_same_formula() {
        let rebuild = |n| exponential(Duration::from_secs(2), Duration::from_secs(60), n);
        let secs: Vec<u64> = (1..=7).map(|n| rebuild(n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn jitter_stretches_by_at_most_ten_percent() {
        assert_eq!(with_jitter(CAP, 0), CAP);
        assert_eq!(with_jitter(CAP, 100), Duration::from_secs(330));
        assert_eq!(with_jitter(CAP, 5000), Duration::from_secs(330));
        for _ in 0..100 {
            let j = jitter_permille();
            assert!(j <= 100, "{j}");
        }
    }

    #[test]
    fn success_resets_the_count() {
        let b = Backoff::default();
        assert_eq!(b.failed("ns/a").0, 1);
        let (n, d) = b.failed("ns/a");
        assert_eq!(n, 2);
        assert!(
            d >= Duration::from_secs(2) && d <= Duration::from_millis(2200),
            "{d:?}"
        );
        assert_eq!(b.failed("ns/b").0, 1, "counts are per object");
        b.succeeded("ns/a");
        let (n, d) = b.failed("ns/a");
        assert_eq!(n, 1);
        assert!(d >= FIRST && d <= Duration::from_millis(1100), "{d:?}");
    }
}
