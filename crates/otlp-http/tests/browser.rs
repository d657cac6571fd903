//! A real browser: headless Chromium loads a page from one origin whose script posts
//! OTLP/JSON with `fetch` to the receiver on another origin (so CORS preflight is real);
//! the spans arrive and the page shows the answer.

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::start;
use http_body_util::Full;
use otlp_http::{Cors, HttpReceiverConfig};
use otlp_testkit::interop;

const PAGE: &str = r#"<!doctype html>
<html><body><pre id="result">pending</pre><script>
const spans = [0, 1, 2].map(i => ({
  traceId: "5b8efff798038103d269b633813fc60c",
  spanId: "eee19b7ec3c1b17" + i,
  name: "browser-span-" + i,
  kind: 3,
  startTimeUnixNano: "1700000000000000000",
  endTimeUnixNano: "1700000000100000000",
  attributes: [{ key: "i", value: { intValue: String(i) } }]
}));
const body = { resourceSpans: [{
  resource: { attributes: [{ key: "service.name", value: { stringValue: "browser" } }] },
  scopeSpans: [{ scope: { name: "browser-test" }, spans }]
}] };
fetch("RECEIVER/v1/traces", {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body)
}).then(r => r.text().then(t => {
  document.getElementById("result").textContent = "status " + r.status + " body " + t;
})).catch(e => {
  document.getElementById("result").textContent = "error " + e;
});
</script></body></html>"#;

/// Serves `html` at every path of `listener`.
fn serve_page(listener: tokio::net::TcpListener, html: String) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let html = html.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let mut response = http::Response::new(Full::new(Bytes::from(html.clone())));
                    response
                        .headers_mut()
                        .insert("content-type", http::HeaderValue::from_static("text/html"));
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_posts_otlp_json_across_origins() {
    // The page's origin is known once its listener is bound; the receiver allows exactly it.
    let page = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let page_origin = format!(
        "http://127.0.0.1:{}",
        page.local_addr().expect("address").port()
    );
    let config = HttpReceiverConfig {
        cors: Cors::allow_origins([page_origin.clone()]),
        ..Default::default()
    };
    let (record, running) = start(config).await;
    serve_page(page, PAGE.replace("RECEIVER", &common::endpoint(&running)));

    let profile = std::env::temp_dir().join(format!("otlp-chromium-{}", std::process::id()));
    let url = format!("{page_origin}/");
    let output = tokio::task::spawn_blocking(move || {
        let profile_arg = format!("--user-data-dir={}", profile.display());
        let output = interop::run(
            &interop::chromium(),
            &[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                &profile_arg,
                "--virtual-time-budget=10000",
                "--dump-dom",
                &url,
            ],
            b"",
        );
        let _ = std::fs::remove_dir_all(&profile);
        output
    })
    .await
    .expect("chromium task");
    let Some(dom) = output else { return };
    let dom = String::from_utf8_lossy(&dom);
    assert!(
        dom.contains("status 200"),
        "the page shows the answer: {dom}"
    );
    {
        let received = record.lock().expect("lock");
        assert_eq!(received.spans(), 3, "the browser's spans arrived");
        let spans = &received.traces[0].resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans[2].name, "browser-span-2");
        assert_eq!(hex(&spans[0].trace_id), "5b8efff798038103d269b633813fc60c");
    }
    running.shutdown().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
