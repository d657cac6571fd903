//! The upgrade hook over a real socket: an `Upgrade` request for the mounted path reaches
//! the handler, which owns the connection after `101`; a refusal keeps the handler's
//! status; a plain request for the path gets 426; other paths stay OTLP/HTTP.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use otlp_core::{AnyExportRequest, ExportError, ExportOutcome};
use otlp_http::HttpReceiver;
use otlp_net::upgrade::{Refusal, UpgradeHandler, UpgradedIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Answers `echo` upgrades carrying `x-allow: yes`, then echoes bytes until the peer leaves.
struct Echo;

impl UpgradeHandler for Echo {
    fn protocol(&self) -> &str {
        "echo"
    }

    fn accept(&self, request: &http::request::Parts) -> Result<http::HeaderMap, Refusal> {
        if request.headers.get("x-allow").is_none_or(|v| v != "yes") {
            return Err(Refusal {
                status: http::StatusCode::FORBIDDEN,
                message: "not allowed".into(),
            });
        }
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", http::HeaderValue::from_static("upgrade"));
        headers.insert("upgrade", http::HeaderValue::from_static("echo"));
        Ok(headers)
    }

    fn serve(
        &self,
        mut io: Box<dyn UpgradedIo>,
        _request: http::request::Parts,
        mut shutdown: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut buffer = [0u8; 64];
            // The receiver's stop waits for upgraded connections: the handler ends its own.
            let echo = async {
                while let Ok(n) = io.read(&mut buffer).await {
                    if n == 0 || io.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! {
                () = echo => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        })
    }
}

async fn head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.expect("read"),
            1,
            "closed early"
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn ask(address: std::net::SocketAddr, request: &str) -> (tokio::net::TcpStream, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = head(&mut stream).await;
    (stream, head)
}

#[tokio::test]
async fn an_upgrade_on_the_mounted_path_hands_the_connection_to_the_handler() {
    let service = tower::service_fn(|request: AnyExportRequest| async move {
        Ok::<_, ExportError>(ExportOutcome::success(request.item_count()))
    });
    let running = HttpReceiver::new(service)
        .with_upgrade("/echo", Arc::new(Echo))
        .bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let address = running.local_addr();

    let (mut stream, answer) = ask(
        address,
        "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nx-allow: yes\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    stream.write_all(b"hello").await.expect("write");
    let mut echoed = [0u8; 5];
    stream.read_exact(&mut echoed).await.expect("echo");
    assert_eq!(&echoed, b"hello");

    let (_, refused) = ask(
        address,
        "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");

    let (_, plain) = ask(address, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
    assert!(
        plain.to_ascii_lowercase().contains("upgrade: echo"),
        "{plain}"
    );

    // Other paths are still OTLP/HTTP.
    let (_, otlp) = ask(
        address,
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(otlp.starts_with("HTTP/1.1 200"), "{otlp}");
    running.shutdown().await;
}
