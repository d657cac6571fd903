//! The relay's receivers over TLS, configured in its file: gRPC with mutual TLS, HTTP with
//! TLS and its WebSocket path as wss://, the WebSocket listener of its own as wss:// with mutual TLS; a missing certificate file names its setting and starts nothing.

use std::process::Command;

use otlp_core::{ExportRequest, Traces};
use otlp_testkit::realistic;

mod common;
use common::{read_lines, start_relay, stop, temp_file};

fn write(name: &str, text: &str) -> String {
    let path = temp_file(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_serve_tls_and_mutual_tls_from_the_configuration_file() {
    let pki = otlp_testkit::pki::TestPki::generate();
    let ca = write("ca.pem", &pki.ca_pem);
    let cert = write("server.pem", &pki.server.cert_pem);
    let key = write("server-key.pem", &pki.server.key_pem);
    let output = temp_file("tls.jsonl");
    let config = write(
        "tls.toml",
        &format!(
            "[receivers.grpc]\ntls = {{ cert = {cert:?}, key = {key:?}, client_ca = {ca:?} }}\n\
             [receivers.http]\ntls = {{ cert = {cert:?}, key = {key:?} }}\n\
             [receivers.websocket]\nlisten = \"127.0.0.1:0\"\n\
             tls = {{ cert = {cert:?}, key = {key:?}, client_ca = {ca:?} }}\n\
             [exporter.file]\npath = {:?}\n",
            output.display().to_string()
        ),
    );
    let relay = start_relay(&["--config", &config], &[]);
    let grpc_url = format!(
        "https://localhost:{}",
        relay.grpc.rsplit(':').next().expect("port")
    );
    let http_url = format!(
        "https://localhost:{}",
        relay.http.rsplit(':').next().expect("port")
    );
    let client_tls = otlp_net::tls::ClientTls::with_ca_pem(pki.ca_pem.as_bytes()).expect("ca");

    let traces = realistic::traces(7, 1);
    let anonymous = otlp_grpc::GrpcExporter::new(
        otlp_grpc::ExporterConfig::new(&grpc_url)
            .expect("config")
            .with_tls(client_tls.clone()),
    )
    .expect("exporter");
    assert!(
        anonymous
            .export(&ExportRequest::<Traces>::new(traces.clone()))
            .await
            .is_err(),
        "gRPC without a client certificate is refused"
    );
    let identified = client_tls
        .clone()
        .with_client_certificate(
            pki.client.cert_pem.as_bytes(),
            pki.client.key_pem.as_bytes(),
        )
        .expect("identity");
    otlp_grpc::GrpcExporter::new(
        otlp_grpc::ExporterConfig::new(&grpc_url)
            .expect("config")
            .with_tls(identified),
    )
    .expect("exporter")
    .export(&ExportRequest::<Traces>::new(traces.clone()))
    .await
    .expect("mutual TLS");
    otlp_http::HttpExporter::new(
        otlp_http::HttpExporterConfig::new(&http_url)
            .expect("config")
            .with_tls(client_tls.clone()),
    )
    .expect("exporter")
    .export(&ExportRequest::<Traces>::new(traces.clone()))
    .await
    .expect("HTTPS");
    // The WebSocket path of the HTTP port is wss:// now.
    let ws_url = format!(
        "wss://localhost:{}/v1/stream",
        relay.http.rsplit(':').next().expect("port")
    );
    otlp_websocket::WsExporter::new(
        otlp_websocket::WsExporterConfig::new(ws_url).with_tls(client_tls.clone()),
    )
    .export(ExportRequest::<Traces>::new(traces.clone()).into())
    .await
    .expect("wss");
    // The WebSocket listener of its own serves wss:// with mutual TLS.
    let standalone = format!(
        "wss://localhost:{}/v1/stream",
        relay
            .banner_address("WebSocket ", 1)
            .rsplit(':')
            .next()
            .expect("port")
    );
    let mut anonymous =
        otlp_websocket::WsExporterConfig::new(standalone.clone()).with_tls(client_tls.clone());
    anonymous.connect_timeout = std::time::Duration::from_secs(2);
    anonymous.call_timeout = std::time::Duration::from_secs(2);
    assert!(
        otlp_websocket::WsExporter::new(anonymous)
            .export(ExportRequest::<Traces>::new(traces.clone()).into())
            .await
            .is_err(),
        "wss without a client certificate is refused"
    );
    let identified = client_tls
        .with_client_certificate(
            pki.client.cert_pem.as_bytes(),
            pki.client.key_pem.as_bytes(),
        )
        .expect("identity");
    otlp_websocket::WsExporter::new(
        otlp_websocket::WsExporterConfig::new(standalone).with_tls(identified),
    )
    .export(ExportRequest::<Traces>::new(traces.clone()).into())
    .await
    .expect("wss with mutual TLS");
    let report = stop(relay);
    assert!(report.contains("28 items in, 28 sent"), "{report}");
    let lines = read_lines(&output);
    assert_eq!(otlp_testkit::items(lines.traces).len(), 28);
    for path in [ca, cert, key, config, output.display().to_string()] {
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn a_missing_certificate_names_its_setting_and_nothing_starts() {
    let config = write(
        "missing-cert.toml",
        "[receivers.grpc]\nlisten = \"127.0.0.1:0\"\ntls = { cert = \"/nonexistent/server.pem\", key = \"/nonexistent/key.pem\" }\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_otlp-relay"))
        .args([
            "--config",
            &config,
            "--http-listen",
            "off",
            "--admin-listen",
            "off",
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("receivers.grpc.tls.cert"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    let _ = std::fs::remove_file(config);
}
