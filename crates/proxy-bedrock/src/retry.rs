//! Retries of Bedrock calls before their answer starts: which failures qualify, the full-jitter
//! exponential backoff within a time budget, and the hook that counts them (docs/RELIABILITY.md,
//! "Retries and failover").

use std::sync::Arc;
use std::time::Duration;

/// Why a failed call may be tried again. Everything else (validation, access, not found, a model
/// timeout, a body that broke after the answer started) is answered at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retryable {
    /// 429 `ThrottlingException`, `ServiceQuotaExceededException`, `ModelNotReadyException`.
    Throttled,
    /// 500 `InternalServerException`, 503 `ServiceUnavailableException`, 529 and other 5xx.
    Unavailable,
    /// The connection failed before the response head (refused, reset, closed).
    Connection,
    /// 403 `ExpiredTokenException`: the credentials are read again from the chain, then retried.
    ExpiredCredentials,
}

impl Retryable {
    /// The `reason` label of `gateway_upstream_retries_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Retryable::Throttled => "throttled",
            Retryable::Unavailable => "unavailable",
            Retryable::Connection => "connection",
            Retryable::ExpiredCredentials => "expired_credentials",
        }
    }

    /// The class of an AWS error code (`ThrottlingException`, ...), if retryable.
    pub(crate) fn of_code(code: &str) -> Option<Retryable> {
        match code {
            "ThrottlingException" | "ServiceQuotaExceededException" | "ModelNotReadyException" => {
                Some(Retryable::Throttled)
            }
            "InternalServerException" | "ServiceUnavailableException" => {
                Some(Retryable::Unavailable)
            }
            "ExpiredTokenException" => Some(Retryable::ExpiredCredentials),
            _ => None,
        }
    }

    /// The class of an HTTP status without a known error code.
    pub(crate) fn of_status(status: u16) -> Option<Retryable> {
        match status {
            429 => Some(Retryable::Throttled),
            500 | 502 | 503 | 529 => Some(Retryable::Unavailable),
            _ => None,
        }
    }
}

/// How calls are retried: at most `max_retries` more attempts per target, each after a full-jitter
/// exponential backoff (a random wait in `[0, min(cap, base * 2^n))`), and no wait that would end
/// past `budget` from the first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries per target after its first attempt (`BEDROCK_MAX_RETRIES`, default 2).
    pub max_retries: u32,
    /// Bound on the time spent on one request's attempts and waits (`BEDROCK_RETRY_BUDGET_MS`,
    /// default 10 s).
    pub budget: Duration,
    /// The first backoff's upper bound (default 200 ms).
    pub base: Duration,
    /// The largest backoff (default 5 s).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            budget: Duration::from_secs(10),
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `n` (0 for the first retry): full jitter.
    pub fn backoff(&self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX))
            .min(self.cap);
        let nanos = ceiling.as_nanos() as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random_u64() % nanos)
    }
}

/// A random number from the standard library's per-process random hash keys (no extra crate for
/// jitter).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// What [`RetryHook`] hears.
#[derive(Debug, Clone, Copy)]
pub enum RetryEvent<'a> {
    /// A call is tried again, for this reason.
    Retry(Retryable),
    /// The next target of a model's `fallbacks` chain is tried: from one client model name to the
    /// next (the configured names, so the set is bounded by the config).
    Fallback {
        /// The model name whose target failed.
        from: &'a str,
        /// The model name tried next.
        to: &'a str,
    },
}

/// Hears of retries and fallbacks (the HTTP layer counts them in its metrics).
#[derive(Clone)]
pub struct RetryHook(pub Arc<dyn Fn(RetryEvent<'_>) + Send + Sync>);

impl std::fmt::Debug for RetryHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryHook(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_growing_capped_ceiling() {
        let p = RetryPolicy {
            max_retries: 5,
            budget: Duration::from_secs(10),
            base: Duration::from_millis(100),
            cap: Duration::from_millis(350),
        };
        for n in 0..8 {
            let ceiling = Duration::from_millis((100u64 << n).min(350));
            let waits: Vec<Duration> = (0..200).map(|_| p.backoff(n)).collect();
            assert!(waits.iter().all(|w| *w < ceiling), "{n}: {waits:?}");
            // Jittered: not all the same, and some well under the ceiling.
            assert!(waits.iter().any(|w| *w < ceiling / 2));
            assert!(waits.iter().any(|w| *w != waits[0]));
        }
        assert_eq!(
            RetryPolicy {
                base: Duration::ZERO,
                ..p
            }
            .backoff(3),
            Duration::ZERO
        );
    }

    #[test]
    fn classes() {
        assert_eq!(
            Retryable::of_code("ThrottlingException"),
            Some(Retryable::Throttled)
        );
        assert_eq!(
            Retryable::of_code("ServiceQuotaExceededException"),
            Some(Retryable::Throttled)
        );
        assert_eq!(
            Retryable::of_code("InternalServerException"),
            Some(Retryable::Unavailable)
        );
        assert_eq!(Retryable::of_code("ValidationException"), None);
        assert_eq!(Retryable::of_code("AccessDeniedException"), None);
        assert_eq!(Retryable::of_status(503), Some(Retryable::Unavailable));
        assert_eq!(Retryable::of_status(400), None);
        assert_eq!(Retryable::of_status(404), None);
        assert_eq!(Retryable::of_status(408), None);
    }
}
