//! The `otlp` exporter's settings, from flags and the standard `OTEL_EXPORTER_OTLP_*`
//! environment variables (flags win): endpoint, protocol, headers, compression, timeout,
//! certificates, and the per-signal endpoints of OTLP/HTTP.

use std::time::Duration;

use otlp_compression::CompressionSet;
use otlp_core::SignalKind;

use crate::pipeline::Exporter;

/// Reads a variable (the process environment in the binary, a map in tests).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas, values
/// percent-encoded.
pub(crate) fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("OTEL_EXPORTER_OTLP_HEADERS: {pair:?} is not key=value"))?;
            Ok((
                key.trim().to_ascii_lowercase(),
                percent_decode(value.trim()),
            ))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `OTEL_EXPORTER_OTLP_<suffix>`, if set and not empty.
fn var(env: Env<'_>, suffix: &str) -> Option<String> {
    env(&format!("OTEL_EXPORTER_OTLP_{suffix}")).filter(|v| !v.trim().is_empty())
}

/// The upstream exporter for `protocol` (`grpc`, `http/protobuf`, `http/json`,
/// `websocket`) and `endpoint`, each from its flag or else the environment.
pub(crate) fn build(
    protocol: Option<&str>,
    endpoint: Option<&str>,
    env: Env<'_>,
) -> Result<Exporter, String> {
    let protocol = protocol
        .map(str::to_string)
        .or_else(|| var(env, "PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_string());
    let default_endpoint = match protocol.as_str() {
        "grpc" => "http://localhost:4317",
        "websocket" => "ws://localhost:4319/v1/stream",
        _ => "http://localhost:4318",
    };
    let endpoint = endpoint
        .map(str::to_string)
        .or_else(|| var(env, "ENDPOINT"))
        .unwrap_or_else(|| default_endpoint.to_string());
    let headers = var(env, "HEADERS")
        .map(|h| parse_headers(&h))
        .transpose()?
        .unwrap_or_default();
    let timeout = var(env, "TIMEOUT")
        .map(|t| {
            t.trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("OTEL_EXPORTER_OTLP_TIMEOUT: {t:?} is not milliseconds"))
        })
        .transpose()?
        .unwrap_or(Duration::from_secs(10));
    let compression = match var(env, "COMPRESSION").as_deref() {
        None | Some("none") => None,
        Some(name) => Some(
            CompressionSet::with_defaults()
                .by_http_name(name)
                .cloned()
                .ok_or_else(|| format!("OTEL_EXPORTER_OTLP_COMPRESSION: unknown {name:?}"))?,
        ),
    };
    let header_map = || -> Result<http::HeaderMap, String> {
        let mut map = http::HeaderMap::new();
        for (key, value) in &headers {
            let name = http::HeaderName::from_bytes(key.as_bytes())
                .map_err(|e| format!("OTEL_EXPORTER_OTLP_HEADERS: {key:?}: {e}"))?;
            let value = http::HeaderValue::from_str(value)
                .map_err(|e| format!("OTEL_EXPORTER_OTLP_HEADERS: {key:?}: {e}"))?;
            map.append(name, value);
        }
        Ok(map)
    };
    let client_tls = || -> Result<Option<otlp_net::tls::ClientTls>, String> {
        let Some(ca) = var(env, "CERTIFICATE") else {
            return Ok(None);
        };
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: {e}"));
        let mut tls =
            otlp_net::tls::ClientTls::with_ca_pem(&read(&ca)?).map_err(|e| e.to_string())?;
        if let (Some(cert), Some(key)) = (var(env, "CLIENT_CERTIFICATE"), var(env, "CLIENT_KEY")) {
            tls = tls
                .with_client_certificate(&read(&cert)?, &read(&key)?)
                .map_err(|e| e.to_string())?;
        }
        Ok(Some(tls))
    };
    match protocol.as_str() {
        "grpc" => {
            let mut config =
                otlp_grpc::ExporterConfig::new(&endpoint).map_err(|e| e.to_string())?;
            config.headers = header_map()?;
            config.timeout = timeout;
            config.compression = compression;
            config.tls = client_tls()?;
            Ok(Exporter::Grpc(
                otlp_grpc::GrpcExporter::new(config).map_err(|e| e.to_string())?,
            ))
        }
        "http/protobuf" | "http/json" => {
            let mut config =
                otlp_http::HttpExporterConfig::new(&endpoint).map_err(|e| e.to_string())?;
            if protocol == "http/json" {
                config = config.with_codec(otlp_codec::Json::default());
            }
            config.headers = header_map()?;
            config.timeout = timeout;
            config.compression = compression;
            config.tls = client_tls()?;
            for (index, signal) in SignalKind::ALL.into_iter().enumerate() {
                let name = format!(
                    "OTEL_EXPORTER_OTLP_{}_ENDPOINT",
                    signal.name().to_ascii_uppercase()
                );
                if let Some(url) = env(&name).filter(|v| !v.trim().is_empty()) {
                    config.signal_urls[index] =
                        Some(url.parse().map_err(|e| format!("{name}: {e}"))?);
                }
            }
            Ok(Exporter::Http(Box::new(
                otlp_http::HttpExporter::new(config).map_err(|e| e.to_string())?,
            )))
        }
        "websocket" => {
            let mut config = otlp_websocket::WsExporterConfig::new(endpoint);
            config.headers = header_map()?;
            if let Some(algorithm) = compression {
                config.encoding = otlp_websocket::Encoding::Protobuf(Some(algorithm));
            }
            Ok(Exporter::WebSocket(otlp_websocket::WsExporter::new(config)))
        }
        other => Err(format!(
            "unknown OTLP protocol {other:?} (grpc, http/protobuf, http/json, websocket)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_with_percent_decoding() {
        let headers = parse_headers("api-key=abc%20def, X-Tenant=acme").expect("valid");
        assert_eq!(
            headers,
            vec![
                ("api-key".into(), "abc def".into()),
                ("x-tenant".into(), "acme".into())
            ]
        );
        assert!(parse_headers("novalue").is_err());
    }

    #[test]
    fn flags_win_over_the_environment_and_bad_values_name_the_variable() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4317".to_string()),
            "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("soon".to_string()),
            _ => None,
        };
        let error = build(None, None, &env).err().expect("bad timeout");
        assert!(error.contains("OTEL_EXPORTER_OTLP_TIMEOUT"), "{error}");
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("gzip".to_string()),
            _ => None,
        };
        assert!(matches!(build(None, None, &env), Ok(Exporter::Grpc(_))));
        assert!(matches!(
            build(Some("http/json"), None, &env),
            Ok(Exporter::Http(_))
        ));
        assert!(build(Some("carrier-pigeon"), None, &env).is_err());
    }
}
