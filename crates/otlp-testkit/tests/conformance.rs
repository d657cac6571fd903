//! The conformance suite judges: the worked example transport passes it, and each
//! deliberately broken variant of it fails exactly the checks its mistake breaks.

use otlp_testkit::conformance::in_process::{Breakage, InProcess};
use otlp_testkit::conformance::run;

#[tokio::test]
async fn the_in_process_example_transport_passes() {
    run(&InProcess::default()).await.assert_passed();
}

#[tokio::test]
async fn an_exporter_that_makes_every_error_permanent_fails() {
    let report = run(&InProcess::broken(Breakage::PermanentErrors)).await;
    let failed: Vec<&str> = report.failures().iter().map(|(name, _)| *name).collect();
    assert_eq!(
        failed,
        [
            "a throttled refusal keeps its class and its hint",
            "a transient failure stays retryable",
            "a receiver that is gone is a retryable failure",
            // A too-large refusal turned into a malformed one: nothing would split it.
            "a request over the receiver's limit is refused as too large",
            "a request refused as too large arrives exactly once as the parts a split makes",
            // An unauthenticated refusal turned into a malformed one: its kind is lost.
            "a receiver that requires a token refuses an exporter without it"
        ],
        "{report:?}"
    );
}

#[tokio::test]
async fn an_exporter_that_drops_partial_success_fails() {
    let report = run(&InProcess::broken(Breakage::DropsPartialSuccess)).await;
    let failed: Vec<&str> = report.failures().iter().map(|(name, _)| *name).collect();
    assert_eq!(failed, ["partial success reaches the client"], "{report:?}");
}
