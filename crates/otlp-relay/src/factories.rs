//! The upstream protocols the relay can export with, chosen by the `protocol` setting
//! through registered factories: a new transport crate plugs in by registering one
//! ([`Upstreams::with`]), without editing an enum or a match here.

use std::sync::Arc;

use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, SignalKind};

use crate::config::{ConfigError, OtlpExporter};
use crate::pipeline::Exporter;
use crate::upstream::{Env, UpstreamSettings, resolve};

/// Builds exporters for one or more upstream protocols.
pub trait UpstreamFactory: Send + Sync {
    /// The `protocol` names it serves (`grpc`, `http/json`, ...).
    fn protocols(&self) -> &'static [&'static str];

    /// The endpoint used when none is configured, for `protocol`.
    fn default_endpoint(&self, protocol: &str) -> &'static str;

    /// The exporter for one signal; `settings.endpoint` is already filled in.
    fn build(&self, settings: &UpstreamSettings) -> Result<Exporter, ConfigError>;
}

/// The registered upstream factories.
#[derive(Clone)]
pub struct Upstreams {
    factories: Vec<Arc<dyn UpstreamFactory>>,
}

impl Upstreams {
    /// gRPC (`grpc`, `grpc-stream`), OTLP/HTTP (`http/protobuf`, `http/json`,
    /// `http/msgpack`, `http/cbor`) and WebSocket (`websocket`, `websocket/json`).
    pub fn builtin() -> Self {
        Self {
            factories: vec![Arc::new(Grpc), Arc::new(Http), Arc::new(WebSocket)],
        }
    }

    /// These factories and `factory`, which takes precedence for the protocols it names.
    pub fn with(mut self, factory: impl UpstreamFactory + 'static) -> Self {
        self.factories.insert(0, Arc::new(factory));
        self
    }

    /// Every protocol name served, in registration order.
    pub fn protocols(&self) -> Vec<&'static str> {
        self.factories
            .iter()
            .flat_map(|f| f.protocols().iter().copied())
            .collect()
    }

    /// The exporter of one signal: its settings resolved ([`resolve`]), then handed to the
    /// factory of its protocol.
    pub fn build(
        &self,
        settings: &OtlpExporter,
        signal: SignalKind,
        env: Env<'_>,
    ) -> Result<Exporter, ConfigError> {
        let mut resolved = resolve(settings, signal, env)?;
        let Some(factory) = self
            .factories
            .iter()
            .find(|f| f.protocols().contains(&resolved.protocol.as_str()))
        else {
            return Err(ConfigError::setting(
                "exporter.otlp.protocol",
                format!(
                    "unknown OTLP protocol {:?} (known: {})",
                    resolved.protocol,
                    self.protocols().join(", ")
                ),
            ));
        };
        if resolved.endpoint.is_none() {
            resolved.endpoint = Some(factory.default_endpoint(&resolved.protocol).to_string());
        }
        factory.build(&resolved)
    }
}

/// An exporter of any transport, for a factory outside this crate.
pub fn boxed<E>(exporter: E) -> Exporter
where
    E: tower_service::Service<AnyExportRequest, Response = ExportOutcome, Error = ExportError>
        + Clone
        + Send
        + 'static,
    E::Future: Send + 'static,
{
    Exporter::Other(tower::util::BoxCloneService::new(exporter))
}

fn endpoint(settings: &UpstreamSettings) -> &str {
    settings.endpoint.as_deref().unwrap_or_default()
}

struct Grpc;

impl UpstreamFactory for Grpc {
    fn protocols(&self) -> &'static [&'static str] {
        &["grpc", "grpc-stream"]
    }

    fn default_endpoint(&self, _: &str) -> &'static str {
        "http://localhost:4317"
    }

    fn build(&self, settings: &UpstreamSettings) -> Result<Exporter, ConfigError> {
        let mut config = otlp_grpc::ExporterConfig::new(endpoint(settings))
            .map_err(|e| ConfigError::setting(&settings.endpoint_key, e))?;
        config.headers = settings.headers.clone();
        config.timeout = settings.timeout;
        config.compression = settings.compression.clone();
        config.tls = settings.tls.clone();
        let exporter = otlp_grpc::GrpcExporter::new(config).map_err(ConfigError::value)?;
        if settings.protocol == "grpc-stream" {
            return Ok(Exporter::GrpcStream(otlp_grpc::StreamExporter::new(
                exporter,
                otlp_grpc::StreamExporterConfig {
                    call_timeout: Some(settings.timeout),
                    ..Default::default()
                },
            )));
        }
        Ok(Exporter::Grpc(exporter))
    }
}

struct Http;

impl UpstreamFactory for Http {
    fn protocols(&self) -> &'static [&'static str] {
        &["http/protobuf", "http/json", "http/msgpack", "http/cbor"]
    }

    fn default_endpoint(&self, _: &str) -> &'static str {
        "http://localhost:4318"
    }

    fn build(&self, settings: &UpstreamSettings) -> Result<Exporter, ConfigError> {
        let invalid_endpoint = |e: ExportError| ConfigError::setting(&settings.endpoint_key, e);
        let mut config = if settings.endpoint_is_full_url {
            let mut config = otlp_http::HttpExporterConfig::new(self.default_endpoint(""))
                .map_err(invalid_endpoint)?;
            let index = SignalKind::ALL
                .iter()
                .position(|s| *s == settings.signal)
                .unwrap_or_default();
            config.signal_urls[index] = Some(
                endpoint(settings)
                    .parse()
                    .map_err(|e| ConfigError::setting(&settings.endpoint_key, e))?,
            );
            config
        } else {
            otlp_http::HttpExporterConfig::new(endpoint(settings)).map_err(invalid_endpoint)?
        };
        config = match settings.protocol.as_str() {
            "http/json" => config.with_codec(otlp_codec::Json::default()),
            "http/msgpack" => config.with_codec(otlp_codec::MessagePack::default()),
            "http/cbor" => config.with_codec(otlp_codec::Cbor::default()),
            _ => config,
        };
        config.headers = settings.headers.clone();
        config.timeout = settings.timeout;
        config.compression = settings.compression.clone();
        config.tls = settings.tls.clone();
        Ok(Exporter::Http(Box::new(
            otlp_http::HttpExporter::new(config).map_err(ConfigError::value)?,
        )))
    }
}

struct WebSocket;

impl UpstreamFactory for WebSocket {
    fn protocols(&self) -> &'static [&'static str] {
        &["websocket", "websocket/json"]
    }

    fn default_endpoint(&self, _: &str) -> &'static str {
        "ws://localhost:4318/v1/stream"
    }

    fn build(&self, settings: &UpstreamSettings) -> Result<Exporter, ConfigError> {
        let mut config = otlp_websocket::WsExporterConfig::new(endpoint(settings).to_string());
        config.call_timeout = settings.timeout;
        config.headers = settings.headers.clone();
        config.tls = settings.tls.clone();
        config.encoding = if settings.protocol == "websocket/json" {
            // Text messages carry no per-message compression.
            otlp_websocket::Encoding::Json
        } else {
            otlp_websocket::Encoding::Protobuf(settings.compression.clone())
        };
        Ok(Exporter::WebSocket(otlp_websocket::WsExporter::new(config)))
    }
}
