//! The retry schedule, as plain logic: no clock, no sleeping. The retry layer asks it for
//! the next delay, passing the time already spent and the failed attempt's retry class.

use std::time::Duration;

use otlp_core::RetryClass;

/// Exponential backoff with jitter, as the design document and the OTLP specification ask:
/// initial 100 ms, multiplier 2, at most 30 s between attempts, give up after 5 minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The first delay.
    pub initial_interval: Duration,
    /// Each delay is the previous one times this.
    pub multiplier: f64,
    /// No delay exceeds this (before jitter).
    pub max_interval: Duration,
    /// No retry starts after this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    /// Relative jitter: a delay `d` becomes uniformly random in `[d(1-j), d(1+j)]`.
    pub jitter: f64,
    /// A peer's throttling hint (RetryInfo, Retry-After) is honoured up to this long; an
    /// absurd hint is capped here.
    pub max_throttle: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_millis(100),
            multiplier: 2.0,
            max_interval: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(300),
            jitter: 0.5,
            max_throttle: Duration::from_secs(60),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// The error is permanent: give up now.
    GiveUpPermanent,
    /// The time budget is spent: give up now.
    GiveUpExhausted,
}

/// The state of one export's retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    next_interval: Duration,
}

impl Backoff {
    /// A fresh schedule.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            next_interval: config.initial_interval,
            config,
        }
    }

    /// The decision after a failure of class `class`, `elapsed` after the first attempt
    /// started; `random` is uniform in `[0, 1)` and drives the jitter.
    ///
    /// A throttling hint replaces the exponential delay (capped at `max_throttle`) and does
    /// not advance it. A retry whose delay would end past `max_elapsed` is not made.
    pub fn next(&mut self, elapsed: Duration, class: RetryClass, random: f64) -> Decision {
        let delay = match class {
            RetryClass::Permanent => return Decision::GiveUpPermanent,
            RetryClass::Throttled(hint) => hint.min(self.config.max_throttle),
            RetryClass::Retryable => {
                let base = self.next_interval;
                let grown = base.mul_f64(self.config.multiplier.max(1.0));
                self.next_interval = grown.min(self.config.max_interval);
                let jitter = self.config.jitter.clamp(0.0, 1.0);
                let factor = 1.0 - jitter + 2.0 * jitter * random.clamp(0.0, 1.0);
                base.mul_f64(factor)
            }
        };
        if elapsed.saturating_add(delay) > self.config.max_elapsed {
            return Decision::GiveUpExhausted;
        }
        Decision::RetryAfter(delay)
    }
}

/// A small, fast source of jitter (splitmix64); jitter needs spread, not cryptography.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
