//! Shared by the HTTP tests: a recording service and a raw HTTP/1.1 client.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use otlp_http::{HttpReceiver, HttpReceiverConfig, RunningHttpReceiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use otlp_testkit::recording::{Record, accept_all, recording};

pub async fn start(config: HttpReceiverConfig) -> (Record, RunningHttpReceiver) {
    let (record, service) = recording(accept_all);
    let running = HttpReceiver::new(service)
        .with_config(config)
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    (record, running)
}

pub fn endpoint(running: &RunningHttpReceiver) -> String {
    format!("http://{}", running.local_addr())
}

/// A raw HTTP/1.1 exchange: what the server answered, or `None` if it closed the
/// connection without an answer.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `head` and `body` and reads one response (up to `wait`).
pub async fn raw(
    address: SocketAddr,
    head: &str,
    body: &[u8],
    wait: Duration,
) -> Option<RawResponse> {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    let _ = stream.write_all(body).await;
    read_response(&mut stream, wait).await
}

pub async fn read_response(stream: &mut TcpStream, wait: Duration) -> Option<RawResponse> {
    let mut buffer = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = buffer[end + 4..].to_vec();
            while body.len() < length {
                let mut chunk = [0u8; 8192];
                let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
                    .await
                    .ok()?
                    .ok()?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(length);
            return Some(RawResponse {
                status,
                headers,
                body,
            });
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

pub fn post_head(
    path: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    length: Option<usize>,
) -> String {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n");
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    head
}
