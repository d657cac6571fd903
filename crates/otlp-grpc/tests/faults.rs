//! A receiver killed and restarted in the middle of a bidirectional stream: every span
//! arrives at least once, and the duplicates (batches processed before the crash whose
//! acknowledgements were lost) are counted and reported.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, Traces};
use otlp_grpc::{
    ExporterConfig, GrpcExporter, GrpcReceiver, RunningReceiver, StreamExporter,
    StreamExporterConfig,
};
use otlp_testkit::realistic;

type Seen = Arc<Mutex<HashMap<Vec<u8>, u32>>>;

async fn start(address: SocketAddr, seen: Seen) -> RunningReceiver {
    let service = tower::service_fn(move |request: AnyExportRequest| {
        let seen = seen.clone();
        async move {
            let AnyExportRequest::Traces(request) = request else {
                return Err(ExportError::invalid_argument("traces only"));
            };
            let items = request.item_count();
            let message = request.into_message()?;
            let mut seen = seen.lock().expect("lock");
            for span in message
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
            {
                *seen.entry(span.span_id.to_vec()).or_default() += 1;
            }
            Ok::<_, ExportError>(ExportOutcome::success(items))
        }
    });
    // The port was just freed by the crashed receiver; binding may need a moment.
    for _ in 0..50 {
        if let Ok(running) = GrpcReceiver::new(service.clone()).bind(address).await {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot bind {address} again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_crash_mid_stream_loses_nothing() {
    const BATCHES: u64 = 1000;
    const SPANS_PER_BATCH: usize = 100;
    let seen: Seen = Arc::default();
    let first = start("127.0.0.1:0".parse().expect("address"), seen.clone()).await;
    let address = first.local_addr();
    let exporter =
        GrpcExporter::new(ExporterConfig::new(&format!("http://{address}")).expect("config"))
            .expect("exporter");
    let config = StreamExporterConfig {
        reconnect_initial: Duration::from_millis(20),
        ..Default::default()
    };
    let stream = StreamExporter::new(exporter, config);

    let senders: Vec<_> = (0..8u64)
        .map(|lane| {
            let stream = stream.clone();
            tokio::spawn(async move {
                let mut accepted = 0;
                for batch in (lane..BATCHES).step_by(8) {
                    let request =
                        ExportRequest::<Traces>::new(realistic::traces(SPANS_PER_BATCH, batch));
                    let outcome = stream.export(request.into()).await?;
                    accepted += outcome.accepted();
                }
                Ok::<_, ExportError>(accepted)
            })
        })
        .collect();

    // Crash once about a third has arrived, restart on the same port.
    loop {
        let delivered = seen.lock().expect("lock").len();
        if delivered >= 30_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.abort().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = start(address, seen.clone()).await;

    let mut accepted = 0;
    for sender in senders {
        accepted += sender
            .await
            .expect("task")
            .expect("every batch acknowledged");
    }
    assert_eq!(accepted, BATCHES as usize * SPANS_PER_BATCH);

    {
        let seen = seen.lock().expect("lock");
        let expected: usize = BATCHES as usize * SPANS_PER_BATCH;
        assert_eq!(seen.len(), expected, "every span arrived at least once");
        let duplicates: u64 = seen.values().map(|&n| u64::from(n - 1)).sum();
        let stats = stream.stats();
        println!(
            "crash mid-stream: {expected} spans delivered, {duplicates} duplicate spans, \
             {} batches resent, {} reconnects",
            stats.batches_resent.load(Ordering::Relaxed),
            stats.reconnects.load(Ordering::Relaxed),
        );
        assert!(stats.reconnects.load(Ordering::Relaxed) >= 1);
    }
    second.shutdown().await;
}
