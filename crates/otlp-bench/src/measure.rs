//! Timing and reporting helpers shared by the suites.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `f` repeatedly for at least `budget` (and at least `min_runs` times) and returns
/// the median duration of one run. What `f` returns is dropped after the clock stops, so
/// freeing a decoded message is not counted as decoding it.
pub(crate) fn median_time<T>(
    budget: Duration,
    min_runs: usize,
    mut f: impl FnMut() -> T,
) -> Duration {
    // One warm-up run: page faults and caches are not what we measure.
    drop(f());
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < min_runs || started.elapsed() < budget {
        let t = Instant::now();
        let output = f();
        samples.push(t.elapsed());
        drop(black_box(output));
        if samples.len() >= 10_000 {
            break;
        }
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// Times `ours` and `theirs` alternately (A, B, A, B, ...) for at least `budget`, so that
/// drift in the machine's speed affects both alike, and returns the median time of each and
/// the median of the per-pair ratios `theirs / ours` (a speed-up above 1 means ours is
/// faster). Outputs are dropped after the clock stops.
pub(crate) fn paired<A, B>(
    budget: Duration,
    min_runs: usize,
    mut ours: impl FnMut() -> A,
    mut theirs: impl FnMut() -> B,
) -> (Duration, Duration, f64) {
    drop(ours());
    drop(theirs());
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    while a.len() < min_runs || started.elapsed() < budget {
        let t = Instant::now();
        let out = ours();
        let ours_time = t.elapsed();
        drop(black_box(out));
        let t = Instant::now();
        let out = theirs();
        let theirs_time = t.elapsed();
        drop(black_box(out));
        a.push(ours_time);
        b.push(theirs_time);
        ratios.push(theirs_time.as_secs_f64() / ours_time.as_secs_f64());
        if a.len() >= 10_000 {
            break;
        }
    }
    a.sort();
    b.sort();
    ratios.sort_by(f64::total_cmp);
    (a[a.len() / 2], b[b.len() / 2], ratios[ratios.len() / 2])
}

/// Keeps a value alive and opaque to the optimiser.
pub(crate) fn keep<T>(value: T) -> T {
    black_box(value)
}

/// Megabytes (10^6 bytes) per second.
pub(crate) fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

/// A finished suite: its Markdown and JSON forms.
pub(crate) struct Report {
    pub(crate) name: &'static str,
    pub(crate) markdown: String,
    pub(crate) json: serde_json::Value,
}

impl Report {
    /// Prints the Markdown and writes `<dir>/<name>.md` and `<dir>/<name>.json`.
    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<()> {
        println!("{}", self.markdown);
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{}.md", self.name)), &self.markdown)?;
        let json = serde_json::to_string_pretty(&self.json).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(format!("{}.json", self.name)), json)?;
        println!(
            "(written to {})",
            dir.join(format!("{}.{{md,json}}", self.name)).display()
        );
        Ok(())
    }
}

/// The runtime every suite runs on: two workers, as many as this class of machine has
/// cores, with I/O and timers.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// User + system CPU time of this process so far, from /proc (clock ticks of 10 ms).
pub(crate) fn cpu_time() -> Duration {
    cpu_time_of("self")
}

/// User + system CPU time of process `pid` (or `self`) so far, every thread included.
pub(crate) fn cpu_time_of(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may contain spaces) start at ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The batch sizes the transport suites measure: the document's 512 alone in a quick run
/// (which must finish in under two minutes), with 64 and 1024 beside it otherwise.
pub(crate) fn batch_sizes(quick: bool) -> &'static [usize] {
    if quick { &[512] } else { &[64, 512, 1024] }
}
