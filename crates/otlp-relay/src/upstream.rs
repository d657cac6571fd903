//! The `otlp` exporter's settings, from flags and the standard `OTEL_EXPORTER_OTLP_*`
//! environment variables (flags win): endpoint, protocol, headers, compression, timeout,
//! certificates, and the per-signal endpoints of OTLP/HTTP.

use std::sync::Arc;
use std::time::Duration;

use otlp_compression::{Compression, CompressionSet};
use otlp_core::SignalKind;

use crate::config::{ConfigError, OtlpExporter};
pub use crate::factories::{UpstreamFactory, Upstreams};
use crate::pipeline::Exporter;

/// Reads a variable (the process environment in the binary, a map in tests).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas, values
/// percent-encoded.
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError::value(format!("{pair:?} is not key=value")))?;
            Ok((
                key.trim().to_ascii_lowercase(),
                otlp_net::percent_decode(value.trim()),
            ))
        })
        .collect()
}

/// One setting: the configuration file's value, else `OTEL_EXPORTER_OTLP_<SIGNAL>_<suffix>`,
/// else `OTEL_EXPORTER_OTLP_<suffix>`; with the name it came from, for errors.
struct Lookup<'a> {
    env: Env<'a>,
    signal: SignalKind,
}

impl Lookup<'_> {
    fn get(&self, configured: Option<&str>, key: &str, suffix: &str) -> Option<(String, String)> {
        if let Some(value) = configured {
            return Some((format!("exporter.otlp.{key}"), value.to_string()));
        }
        let specific = format!(
            "OTEL_EXPORTER_OTLP_{}_{suffix}",
            self.signal.name().to_ascii_uppercase()
        );
        let general = format!("OTEL_EXPORTER_OTLP_{suffix}");
        [specific, general].into_iter().find_map(|name| {
            (self.env)(&name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name, v))
        })
    }
}

/// The deadline of one export of `signal`: the configuration's, then the standard
/// variables (the signal's own first), then 10 s.
pub fn timeout(
    settings: &OtlpExporter,
    signal: SignalKind,
    env: Env<'_>,
) -> Result<Duration, ConfigError> {
    let lookup = Lookup { env, signal };
    Ok(match settings.timeout {
        Some(interval) => interval.0,
        None => match lookup.get(None, "timeout", "TIMEOUT") {
            Some((name, t)) => t
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError::setting(name, format!("{t:?} is not milliseconds")))?,
            None => Duration::from_secs(10),
        },
    })
}

/// What an upstream protocol's factory is given: the `[exporter.otlp]` settings of one
/// signal, resolved against the standard variables (the signal's own variant first).
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The protocol (`grpc`, `http/protobuf`, ...).
    pub protocol: String,
    /// The signal the exporter is for.
    pub signal: SignalKind,
    /// The endpoint, or `None` for the protocol's default.
    pub endpoint: Option<String>,
    /// Whether `endpoint` is the signal's own full URL (its `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`)
    /// rather than a base that OTLP/HTTP appends `v1/<signal>` to.
    pub endpoint_is_full_url: bool,
    /// The setting the endpoint came from, for errors.
    pub endpoint_key: String,
    /// Headers (gRPC metadata) sent with every export.
    pub headers: http::HeaderMap,
    /// The deadline of one export.
    pub timeout: Duration,
    /// The compression, if any.
    pub compression: Option<Arc<dyn Compression>>,
    /// TLS settings when a CA (and maybe a client certificate) is configured; `None` uses
    /// the system trust roots for `https://` and `wss://`.
    pub tls: Option<otlp_net::tls::ClientTls>,
}

/// The upstream exporter of one signal with the built-in protocols ([`Upstreams::builtin`]).
pub fn build(
    settings: &OtlpExporter,
    signal: SignalKind,
    env: Env<'_>,
) -> Result<Exporter, ConfigError> {
    Upstreams::builtin().build(settings, signal, env)
}

/// The settings of one signal's upstream: the configuration's `[exporter.otlp]` values, then
/// the standard variables (the signal's own variant first), then the defaults.
pub fn resolve(
    settings: &OtlpExporter,
    signal: SignalKind,
    env: Env<'_>,
) -> Result<UpstreamSettings, ConfigError> {
    let lookup = Lookup { env, signal };
    let protocol = lookup
        .get(settings.protocol.as_deref(), "protocol", "PROTOCOL")
        .map(|(_, v)| v)
        .unwrap_or_else(|| "http/protobuf".to_string());
    // A signal's own endpoint variable is its full URL; the general one is a base to which
    // OTLP/HTTP appends v1/<signal>.
    let signal_endpoint_name = format!(
        "OTEL_EXPORTER_OTLP_{}_ENDPOINT",
        signal.name().to_ascii_uppercase()
    );
    let endpoint = lookup.get(settings.endpoint.as_deref(), "endpoint", "ENDPOINT");
    let endpoint_is_full_url = endpoint
        .as_ref()
        .is_some_and(|(name, _)| *name == signal_endpoint_name);
    let endpoint_key = endpoint.as_ref().map_or_else(
        || "exporter.otlp.endpoint".to_string(),
        |(name, _)| name.clone(),
    );
    let mut headers = match lookup.get(None, "headers", "HEADERS") {
        Some((name, text)) => parse_headers(&text).map_err(|e| e.for_key(name))?,
        None => Vec::new(),
    };
    headers.extend(
        settings
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
    );
    let mut header_map = http::HeaderMap::new();
    for (key, value) in &headers {
        let invalid = |e: &dyn std::fmt::Display| {
            ConfigError::setting("exporter.otlp.headers", format!("{key:?}: {e}"))
        };
        let name = http::HeaderName::from_bytes(key.as_bytes()).map_err(|e| invalid(&e))?;
        let value = http::HeaderValue::from_str(value).map_err(|e| invalid(&e))?;
        header_map.append(name, value);
    }
    let compression = match lookup.get(
        settings.compression.as_deref(),
        "compression",
        "COMPRESSION",
    ) {
        None => None,
        Some((_, name)) if name == "none" => None,
        Some((key, name)) => Some(
            CompressionSet::with_defaults()
                .by_http_name(&name)
                .cloned()
                .ok_or_else(|| {
                    ConfigError::setting(key, format!("unknown compression {name:?}"))
                })?,
        ),
    };
    Ok(UpstreamSettings {
        protocol,
        signal,
        endpoint: endpoint.map(|(_, v)| v),
        endpoint_is_full_url,
        endpoint_key,
        headers: header_map,
        timeout: timeout(settings, signal, env)?,
        compression,
        tls: client_tls(settings, &lookup)?,
    })
}

/// The client TLS settings when a CA is configured.
fn client_tls(
    settings: &OtlpExporter,
    lookup: &Lookup<'_>,
) -> Result<Option<otlp_net::tls::ClientTls>, ConfigError> {
    let Some((ca_name, ca)) = lookup.get(
        settings.certificate.as_deref(),
        "certificate",
        "CERTIFICATE",
    ) else {
        return Ok(None);
    };
    let read = |name: &str, path: &str| {
        std::fs::read(path).map_err(|e| ConfigError::setting(name, format!("{path}: {e}")))
    };
    let mut tls = otlp_net::tls::ClientTls::with_ca_pem(&read(&ca_name, &ca)?)
        .map_err(|e| ConfigError::setting(&ca_name, e))?;
    let cert = lookup.get(
        settings.client_certificate.as_deref(),
        "client_certificate",
        "CLIENT_CERTIFICATE",
    );
    let key = lookup.get(settings.client_key.as_deref(), "client_key", "CLIENT_KEY");
    if let (Some((cert_name, cert)), Some((key_name, key))) = (cert, key) {
        tls = tls
            .with_client_certificate(&read(&cert_name, &cert)?, &read(&key_name, &key)?)
            .map_err(|e| ConfigError::setting(&cert_name, e))?;
    }
    Ok(Some(tls))
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
    fn the_file_wins_over_the_environment_and_a_signal_variable_over_the_general_one() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4317".to_string()),
            "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("soon".to_string()),
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT" => Some("500".to_string()),
            _ => None,
        };
        let error = build(&OtlpExporter::default(), SignalKind::Traces, &env)
            .err()
            .expect("bad timeout");
        assert_eq!(
            error.key.as_deref(),
            Some("OTEL_EXPORTER_OTLP_TIMEOUT"),
            "{error}"
        );
        assert!(matches!(
            build(&OtlpExporter::default(), SignalKind::Logs, &env),
            Ok(Exporter::Grpc(_))
        ));
        let settings = OtlpExporter {
            timeout: Some(crate::config::Interval(Duration::from_secs(1))),
            protocol: Some("http/json".into()),
            ..OtlpExporter::default()
        };
        assert!(matches!(
            build(&settings, SignalKind::Traces, &env),
            Ok(Exporter::Http(_))
        ));
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_string()),
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" => Some("http://m:9/custom/path".to_string()),
            "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION" => Some("brotli".to_string()),
            _ => None,
        };
        let error = build(&OtlpExporter::default(), SignalKind::Metrics, &env)
            .err()
            .expect("unknown compression");
        assert_eq!(
            error.key.as_deref(),
            Some("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION"),
            "{error}"
        );
        let Ok(Exporter::Http(traces)) = build(&OtlpExporter::default(), SignalKind::Traces, &env)
        else {
            panic!("http exporter")
        };
        assert_eq!(
            traces.config().url(SignalKind::Traces).to_string(),
            "http://localhost:4318/v1/traces"
        );
        let settings = OtlpExporter {
            protocol: Some("carrier-pigeon".into()),
            ..OtlpExporter::default()
        };
        assert!(build(&settings, SignalKind::Traces, &env).is_err());
    }
}
