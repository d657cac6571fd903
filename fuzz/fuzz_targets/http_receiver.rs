//! The HTTP receiver's request handling, bytes in and response out, with no socket: the
//! input is written to an in-memory pipe as a client's whole half of a connection (HTTP/1.1
//! requests, or anything at all), the receiver answers into the pipe, and the response is
//! read to the end. Nothing may panic or hang; whatever arrives is answered or refused.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use otlp_core::{AnyExportRequest, ExportError, ExportOutcome};
use otlp_http::{HttpReceiver, HttpReceiverConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    // A small HTTP/1.1 prefix keeps most inputs past the request line.
    let mut input = b"POST /v1/traces HTTP/1.1\r\nhost: x\r\n".to_vec();
    input.extend_from_slice(data);
    runtime().block_on(async move {
        let service = tower::service_fn(|request: AnyExportRequest| async move {
            Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
        });
        let config = HttpReceiverConfig {
            intake: otlp_http::IntakeConfig::default().with_max_request_bytes(1 << 16),
            ..HttpReceiverConfig::default()
        };
        let (client, server) = tokio::io::duplex(1 << 16);
        let serving = tokio::spawn(HttpReceiver::new(service).with_config(config).serve_io(server));
        let (mut reader, mut writer) = tokio::io::split(client);
        let exchange = async move {
            let _ = writer.write_all(&input).await;
            let _ = writer.shutdown().await;
            let mut response = Vec::new();
            let _ = reader.read_to_end(&mut response).await;
            response
        };
        // Bounded: a request the receiver waits on (a body never finished) ends with the
        // pipe's close; anything longer is a hang.
        let answered = tokio::time::timeout(Duration::from_secs(5), exchange).await;
        assert!(answered.is_ok(), "the receiver hung");
        serving.abort();
    });
});
