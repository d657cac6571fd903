//! The floor under the quiet relay: a bare hyper HTTP/2 server, run as a process of its
//! own (`otlp-bench --serve-bare-h2`), that reads each request's body whole and answers
//! gRPC OK with no message, doing no OTLP work at all (no validation, no queue, no export).
//! What it costs at the quiet load is what the HTTP/2 stack and the kernel's loopback cost
//! before the relay does anything; the relay suite measures it beside the relay.

use std::convert::Infallible;
use std::process::ExitCode;

use http_body_util::BodyExt;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The flag that runs this server instead of a suite (workers: `TOKIO_WORKER_THREADS`).
pub(crate) const SERVE_FLAG: &str = "--serve-bare-h2";

/// What the server prints on standard error before its address.
pub(crate) const BANNER: &str = "bare HTTP/2 on ";

/// Serves on a loopback port of the system's choosing until killed.
pub(crate) fn serve() -> ExitCode {
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(accept_forever()));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otlp-bench {SERVE_FLAG}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn accept_forever() -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("{BANNER}{address}");
    loop {
        let (io, _) = listener.accept().await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(answer_ok);
            let _ = http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(io), service)
                .await;
        });
    }
}

/// Reads the body whole (as any receiver must), then answers gRPC OK, trailers only.
async fn answer_ok(
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<http_body_util::Empty<bytes::Bytes>>, Infallible> {
    let read = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes());
    let mut response = http::Response::new(http_body_util::Empty::new());
    let status = if read.is_ok() { "0" } else { "13" };
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", http::HeaderValue::from_static(status));
    Ok(response)
}
