//! Shared by the loopback tests: a receiver whose service records what arrives.
#![allow(dead_code, unreachable_pub)]

use otlp_grpc::{GrpcReceiver, ReceiverConfig, RunningReceiver};

pub use otlp_testkit::recording::{Record, accept_all, recording};

pub async fn start_recording_receiver(config: ReceiverConfig) -> (Record, RunningReceiver) {
    let (record, service) = recording(accept_all);
    let running = GrpcReceiver::new(service)
        .with_config(config)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    (record, running)
}

pub fn endpoint(running: &RunningReceiver) -> String {
    format!("http://{}", running.local_addr())
}

/// A bare HTTP/2 client for sending what no well-behaved exporter would.
pub struct RawClient {
    sender: hyper::client::conn::http2::SendRequest<otlp_grpc::body::GrpcBody>,
    authority: String,
}

/// What a raw call got back: HTTP status, gRPC status (from headers or trailers), and the
/// response's data.
#[derive(Debug)]
pub struct RawAnswer {
    pub http_status: u16,
    pub grpc_status: Option<i32>,
    pub grpc_message: String,
    pub data: bytes::Bytes,
}

impl RawClient {
    pub async fn connect(address: std::net::SocketAddr) -> Self {
        Self::connect_with_window(address, None).await
    }

    /// A client whose streams' receive window is `stream_window` bytes (hyper's default
    /// when `None`): with a small one, a response that is not read stalls its sender soon.
    pub async fn connect_with_window(
        address: std::net::SocketAddr,
        stream_window: Option<u32>,
    ) -> Self {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let mut builder =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        if let Some(window) = stream_window {
            builder.initial_stream_window_size(window);
        }
        let (sender, connection) = builder
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        Self {
            sender,
            authority: address.to_string(),
        }
    }

    /// Opens a streaming call: its request body is written through the returned sender,
    /// and the response comes back with its body unread.
    pub async fn open_stream(
        &mut self,
        path: &str,
    ) -> (
        otlp_grpc::body::BodySender,
        http::Response<hyper::body::Incoming>,
    ) {
        let (body, request_body) = otlp_grpc::body::GrpcBody::channel(16);
        let request = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(request_body)
            .expect("request");
        self.sender.ready().await.expect("ready");
        let response = self.sender.send_request(request).await.expect("response");
        (body, response)
    }

    pub async fn call(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: bytes::Bytes,
    ) -> RawAnswer {
        use http_body_util::BodyExt;
        let request = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        let mut request = request
            .body(otlp_grpc::body::GrpcBody::once(Some(body), None))
            .expect("request");
        for (name, value) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                http::HeaderValue::from_str(value).expect("value"),
            );
        }
        self.sender.ready().await.expect("ready");
        let response = self.sender.send_request(request).await.expect("response");
        let http_status = response.status().as_u16();
        let mut status_headers = response.headers().clone();
        let collected = response.into_body().collect().await.expect("body");
        if let Some(trailers) = collected.trailers() {
            status_headers.extend(trailers.clone());
        }
        RawAnswer {
            http_status,
            grpc_status: status_headers
                .get("grpc-status")
                .and_then(|v| v.to_str().ok()?.parse().ok()),
            grpc_message: status_headers
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .map(otlp_grpc::status::decode_message)
                .unwrap_or_default(),
            data: collected.to_bytes(),
        }
    }
}

/// A gRPC frame around `payload` with the given compressed flag.
pub fn frame(compressed: bool, payload: &[u8]) -> bytes::Bytes {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(u8::from(compressed));
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.into()
}
