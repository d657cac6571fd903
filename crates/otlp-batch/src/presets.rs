//! The design document's scenario presets, as values: batch caps, linger, export timeout,
//! retry schedule, and the protocol and compression the scenario calls for (names a
//! transport or the relay's configuration resolves).

use std::time::Duration;

use otlp_reliability::backoff::BackoffConfig;

use crate::BatchConfig;

/// One scenario's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// The scenario's name, as configuration spells it.
    pub name: &'static str,
    /// Batch caps and linger.
    pub batch: BatchConfig,
    /// Deadline of one export attempt.
    pub export_timeout: Duration,
    /// Retry schedule.
    pub backoff: BackoffConfig,
    /// Transport: `grpc`, `http` or `websocket`.
    pub protocol: &'static str,
    /// Compression by its canonical name, or `none`.
    pub compression: &'static str,
}

const fn batch(max_items: usize, linger: Duration) -> BatchConfig {
    BatchConfig {
        max_items,
        max_bytes: 4 * 1024 * 1024,
        linger,
    }
}

const DEFAULT_BACKOFF: BackoffConfig = BackoffConfig {
    initial_interval: Duration::from_millis(100),
    multiplier: 2.0,
    max_interval: Duration::from_secs(30),
    max_elapsed: Duration::from_secs(300),
    jitter: 0.5,
    max_throttle: Duration::from_secs(60),
};

/// High throughput: gRPC, batches of 1024, 30 s timeout, gzip.
pub const HIGH_THROUGHPUT: Preset = Preset {
    name: "high-throughput",
    batch: batch(1024, Duration::from_secs(5)),
    export_timeout: Duration::from_secs(30),
    backoff: DEFAULT_BACKOFF,
    protocol: "grpc",
    compression: "gzip",
};

/// Low latency: gRPC, batches of 64 sent after at most 100 ms, 100 ms timeout, no
/// compression.
pub const LOW_LATENCY: Preset = Preset {
    name: "low-latency",
    batch: batch(64, Duration::from_millis(100)),
    export_timeout: Duration::from_millis(100),
    backoff: BackoffConfig {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_secs(1),
        max_elapsed: Duration::from_secs(10),
        ..DEFAULT_BACKOFF
    },
    protocol: "grpc",
    compression: "none",
};

/// High reliability: gRPC, batches of 512, 60 s timeout, gzip, retries for 15 minutes.
pub const HIGH_RELIABILITY: Preset = Preset {
    name: "high-reliability",
    batch: batch(512, Duration::from_secs(5)),
    export_timeout: Duration::from_secs(60),
    backoff: BackoffConfig {
        max_elapsed: Duration::from_secs(900),
        ..DEFAULT_BACKOFF
    },
    protocol: "grpc",
    compression: "gzip",
};

/// Browser: HTTP, batches of 256, 5 s timeout, gzip.
pub const BROWSER: Preset = Preset {
    name: "browser",
    batch: batch(256, Duration::from_secs(1)),
    export_timeout: Duration::from_secs(5),
    backoff: BackoffConfig {
        max_elapsed: Duration::from_secs(60),
        ..DEFAULT_BACKOFF
    },
    protocol: "http",
    compression: "gzip",
};

/// Real-time monitoring: WebSocket, batches of 128, 1 s timeout, no compression.
pub const REAL_TIME: Preset = Preset {
    name: "real-time",
    batch: batch(128, Duration::from_millis(200)),
    export_timeout: Duration::from_secs(1),
    backoff: BackoffConfig {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_secs(2),
        max_elapsed: Duration::from_secs(30),
        ..DEFAULT_BACKOFF
    },
    protocol: "websocket",
    compression: "none",
};

/// The document's worked case of high concurrency: batches of 1024 with a 2 s linger,
/// retries from 50 ms to 10 s for at most 2 minutes, 10 s export timeout.
pub const HIGH_CONCURRENCY: Preset = Preset {
    name: "high-concurrency",
    batch: batch(1024, Duration::from_secs(2)),
    export_timeout: Duration::from_secs(10),
    backoff: BackoffConfig {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_secs(10),
        max_elapsed: Duration::from_secs(120),
        ..DEFAULT_BACKOFF
    },
    protocol: "grpc",
    compression: "gzip",
};

/// Every preset.
pub const ALL: [Preset; 6] = [
    HIGH_THROUGHPUT,
    LOW_LATENCY,
    HIGH_RELIABILITY,
    BROWSER,
    REAL_TIME,
    HIGH_CONCURRENCY,
];

/// The preset with this name.
///
/// ```
/// let preset = otlp_batch::presets::by_name("low-latency").unwrap();
/// assert_eq!(preset.batch.max_items, 64);
/// assert_eq!(preset.batch.linger, std::time::Duration::from_millis(100));
/// ```
pub fn by_name(name: &str) -> Option<Preset> {
    ALL.into_iter().find(|p| p.name == name)
}
