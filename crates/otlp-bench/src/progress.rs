//! Progress bars on standard error while the benchmarks run (the results go to standard
//! output and files; this is only for the person waiting).

use std::io::Write;

const WIDTH: usize = 24;

fn bar(done: usize, total: usize) -> String {
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(WIDTH - filled))
}

/// Suite `index` (0-based) of `total` is starting.
pub(crate) fn suite(index: usize, total: usize, name: &str) {
    eprintln!("{} suite {}/{total}: {name}", bar(index, total), index + 1);
}

/// Step `index` (0-based) of `total` within `suite` is starting.
pub(crate) fn step(suite: &str, index: usize, total: usize, label: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r  {} {suite} {}/{total}: {label:<40}",
        bar(index, total),
        index + 1
    );
    let _ = err.flush();
}

/// All `total` steps of `suite` are done.
pub(crate) fn done(suite: &str, total: usize) {
    eprintln!(
        "\r  {} {suite} {total}/{total}: done{:<40}",
        bar(total, total),
        ""
    );
}
