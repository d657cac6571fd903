//! The relay's configuration: a TOML file read over the embedded defaults, then flags over
//! the file. Every section and key is optional; an unknown key, a value of the wrong type
//! or a bad address is an error that names the key and the file line, and nothing starts.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// How many times its encoded size a request may take once decoded (the receivers reserve
/// `ExportRequest::decoded_size_estimate`, about 4.2 times for realistic spans), for
/// checking that the largest request fits the memory budget.
const DECODED_FACTOR: u64 = 5;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where telemetry comes in.
    pub receivers: Receivers,
    /// The health and metrics listener.
    pub admin: Admin,
    /// Queue, batching and retry between receivers and exporter.
    pub pipeline: Pipeline,
    /// Where telemetry goes.
    pub exporter: Exporter,
    /// The threads the relay runs on.
    pub runtime: Runtime,
}

/// The receivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Receivers {
    /// Bytes of requests all receivers together may hold while the pipeline takes them
    /// (beyond it, requests are refused with a retry hint); 0: no shared limit.
    pub memory_budget_bytes: u64,
    /// Largest request any receiver takes, as sent and after decompression (gRPC message,
    /// HTTP body, WebSocket message); larger ones are refused as too large.
    pub max_request_bytes: u64,
    /// Connections each listener serves at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Bearer tokens a client must present (`Authorization: Bearer TOKEN`) to every
    /// receiver, the WebSocket path included; with none here and no file, receivers do not
    /// authenticate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bearer_tokens: Vec<String>,
    /// A file of further bearer tokens, one per line (blank lines and `#` comments
    /// ignored), read at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_tokens_file: Option<String>,
    /// Browser origins allowed to send (CORS on HTTP, the `Origin` check on WebSocket);
    /// `"*"` allows any. Empty: no browser page may send, other clients are unaffected.
    pub allowed_origins: Vec<String>,
    /// OTLP/gRPC.
    pub grpc: GrpcReceiver,
    /// OTLP/HTTP (and OTLP over WebSocket on the same port).
    pub http: HttpReceiver,
    /// OTLP over WebSocket on a listener of its own.
    pub websocket: WebSocketReceiver,
    /// `[[receivers.extra]]`: further receivers, each `kind = "..."` of a registered
    /// [`ReceiverFactory`](crate::receivers::ReceiverFactory) and its own settings (a
    /// second gRPC listener, or a transport from another crate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<toml::Table>,
}

impl Default for Receivers {
    fn default() -> Self {
        Self {
            memory_budget_bytes: 512 << 20,
            max_request_bytes: 64 << 20,
            max_connections: 1024,
            bearer_tokens: Vec::new(),
            bearer_tokens_file: None,
            allowed_origins: Vec::new(),
            grpc: GrpcReceiver::default(),
            http: HttpReceiver::default(),
            websocket: WebSocketReceiver::default(),
            extra: Vec::new(),
        }
    }
}

impl Receivers {
    /// The bearer tokens of the configuration and its token file; `None` when there are
    /// none (no authentication). A file that cannot be read, or that holds no token, is an
    /// error naming the setting.
    pub fn bearer_auth(&self) -> Result<Option<otlp_net::auth::BearerToken>, ConfigError> {
        let mut tokens = self.bearer_tokens.clone();
        if let Some(path) = &self.bearer_tokens_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::setting("receivers.bearer_tokens_file", format!("{path:?}: {e}"))
            })?;
            let before = tokens.len();
            tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_string),
            );
            if tokens.len() == before {
                return Err(ConfigError::setting(
                    "receivers.bearer_tokens_file",
                    format!("{path:?} holds no token"),
                ));
            }
        }
        if let Some(bad) = tokens
            .iter()
            .find(|t| t.is_empty() || t.contains(char::is_whitespace))
        {
            return Err(ConfigError::setting(
                "receivers.bearer_tokens",
                format!(
                    "{:?} is not a token (empty or with spaces)",
                    bad.chars().take(4).collect::<String>()
                ),
            ));
        }
        let mut tokens = tokens.into_iter();
        Ok(tokens.next().map(|first| {
            tokens.fold(otlp_net::auth::BearerToken::new(first), |auth, token| {
                auth.or(token)
            })
        }))
    }
}

/// `tls = { cert = "...", key = "...", client_ca = "..." }` of a receiver: serve TLS with
/// this certificate chain and key (PEM files); with `client_ca`, require client
/// certificates signed by it (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverTls {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key.
    pub key: String,
    /// PEM CA certificates that client certificates must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
}

impl ReceiverTls {
    /// Reads the files into rustls settings; errors name `key` (the setting) and the file.
    pub fn load(&self, key: &str) -> Result<otlp_net::tls::ServerTls, ConfigError> {
        let read = |field: &str, path: &str| {
            std::fs::read(path).map_err(|e| {
                ConfigError::setting(format!("{key}.{field}"), format!("{path:?}: {e}"))
            })
        };
        let mut tls = otlp_net::tls::ServerTls::from_pem(
            &read("cert", &self.cert)?,
            &read("key", &self.key)?,
        )
        .map_err(|e| ConfigError::setting(key, e))?;
        if let Some(ca) = &self.client_ca {
            tls = tls
                .require_client_certificates(&read("client_ca", ca)?)
                .map_err(|e| ConfigError::setting(format!("{key}.client_ca"), e))?;
        }
        Ok(tls)
    }
}

/// `[receivers.grpc]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcReceiver {
    /// The listening address, or off.
    pub listen: Listen,
    /// TLS, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ReceiverTls>,
}

impl Default for GrpcReceiver {
    fn default() -> Self {
        Self {
            listen: Listen::on([127, 0, 0, 1], 4317),
            tls: None,
        }
    }
}

/// `[receivers.http]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpReceiver {
    /// The listening address, or off.
    pub listen: Listen,
    /// The path where an HTTP/1.1 upgrade opens an OTLP WebSocket stream; empty: none.
    pub websocket_path: String,
    /// TLS, if set (the WebSocket path is then `wss://`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ReceiverTls>,
}

impl Default for HttpReceiver {
    fn default() -> Self {
        Self {
            listen: Listen::on([127, 0, 0, 1], 4318),
            websocket_path: "/v1/stream".to_string(),
            tls: None,
        }
    }
}

/// `[receivers.websocket]`: a WebSocket listener of its own (off by default: the HTTP port
/// serves the WebSocket path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketReceiver {
    /// The listening address, or off.
    pub listen: Listen,
    /// The path the handshake must ask for.
    pub path: String,
    /// TLS, if set (the receiver then serves `wss://`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ReceiverTls>,
}

impl Default for WebSocketReceiver {
    fn default() -> Self {
        Self {
            listen: Listen::OFF,
            path: "/v1/stream".to_string(),
            tls: None,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// The listening address of `GET /health` and `GET /metrics`, or off.
    pub listen: Listen,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: Listen::on([127, 0, 0, 1], 13133),
        }
    }
}

/// `[runtime]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Runtime {
    /// Worker threads; 0: tokio's choice (`TOKIO_WORKER_THREADS`, else one per core).
    ///
    /// One worker suits a relay whose load one core carries: all its work then stays on
    /// the thread that read it, where with more workers tokio wakes an idle one whenever a
    /// turn of work readies two tasks (the request that starts a batch, each export), which
    /// costs more CPU than the work it shares when requests come one at a time
    /// (`cargo xtask bench relay` measures both).
    pub workers: usize,
}

impl Runtime {
    /// Most worker threads a configuration may ask for.
    pub const MAX_WORKERS: usize = 1024;
}

/// What a full queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Receivers wait for room (their clients see the delay, nothing is dropped).
    Block,
    /// The new request is refused with a retryable error, and counted.
    DropNewest,
    /// The oldest queued requests are dropped, and counted.
    DropOldest,
}

/// `[pipeline]`: per signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pipeline {
    /// Most items (spans, points, records) queued per signal.
    pub queue_items: usize,
    /// What a full queue does.
    pub overflow: Overflow,
    /// Most items per exported batch.
    pub batch_items: usize,
    /// Most bytes (protobuf) per exported batch, unless one item alone is larger.
    pub batch_bytes: u64,
    /// Decode each request to batch it rather than batching its protobuf bytes: the path
    /// before byte-level batching, for comparing the two (`cargo xtask bench relay`).
    pub decode_to_batch: bool,
    /// How long a batch waits to fill.
    pub linger: Interval,
    /// Batches exported at once, per signal.
    pub concurrent_exports: usize,
    /// How long a stop may take to export what is queued.
    pub drain_timeout: Interval,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            queue_items: 2048 * 512,
            overflow: Overflow::Block,
            batch_items: 512,
            batch_bytes: 4 << 20,
            decode_to_batch: false,
            linger: Interval(Duration::from_millis(200)),
            concurrent_exports: 4,
            drain_timeout: Interval(Duration::from_secs(10)),
        }
    }
}

/// The exporter kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExporterKind {
    /// OTLP/JSON lines to a file or standard output.
    File,
    /// OTLP to an upstream.
    Otlp,
    /// Accept and discard.
    Null,
}

/// `[exporter]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Exporter {
    /// Which exporter runs.
    pub kind: ExporterKind,
    /// The file exporter's settings.
    pub file: FileExporter,
    /// The otlp exporter's settings.
    pub otlp: OtlpExporter,
}

impl Default for Exporter {
    fn default() -> Self {
        Self {
            kind: ExporterKind::File,
            file: FileExporter::default(),
            otlp: OtlpExporter::default(),
        }
    }
}

/// `[exporter.file]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileExporter {
    /// The output file (appended to), or `-` for standard output.
    pub path: String,
    /// Rotate before the file would grow past this many bytes; 0: never.
    pub rotate_bytes: u64,
    /// Rotated files kept: `PATH.1` (newest) to `PATH.<keep>`.
    pub keep: usize,
}

impl Default for FileExporter {
    fn default() -> Self {
        Self {
            path: "-".to_string(),
            rotate_bytes: 0,
            keep: 5,
        }
    }
}

/// `[exporter.otlp]`: what is left unset comes from the `OTEL_EXPORTER_OTLP_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpExporter {
    /// `grpc`, `grpc-stream`, `http/protobuf`, `http/json`, `http/msgpack`, `http/cbor`,
    /// `websocket` or `websocket/json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The upstream's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// A compression name (`gzip`, `zstd`, ...) or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// The deadline of one export.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Interval>,
    /// Headers (gRPC metadata) sent with every export.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A PEM file of the CA certificates that verify the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// A PEM client certificate (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// The PEM private key of the client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

/// A listening address, or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl Listen {
    /// No listener.
    pub const OFF: Listen = Listen(None);

    fn on(ip: [u8; 4], port: u16) -> Self {
        Listen(Some(SocketAddr::from((ip, port))))
    }

    /// Parses `off` or an address like `0.0.0.0:4317`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text == "off" {
            return Ok(Listen::OFF);
        }
        text.parse().map(|a| Listen(Some(a))).map_err(|_| {
            ConfigError::value(format!(
                "{text:?} is not an address like \"0.0.0.0:4317\" (or \"off\")"
            ))
        })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => write!(f, "{address}"),
            None => f.write_str("off"),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Listen::parse(&text).map_err(de::Error::custom)
    }
}

/// A duration written with its unit: `"250ms"`, `"10s"`, `"1.5s"`, `"2m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Duration);

impl Interval {
    /// Parses a number followed by `ms`, `s` or `m`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
            (n, 0.001)
        } else if let Some(n) = text.strip_suffix('s') {
            (n, 1.0)
        } else if let Some(n) = text.strip_suffix('m') {
            (n, 60.0)
        } else {
            return Err(ConfigError::value(format!(
                "{text:?} has no unit: write it like \"200ms\", \"10s\" or \"1m\""
            )));
        };
        number
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0 && n * scale < 1e9)
            .map(|n| Interval(Duration::from_secs_f64(n * scale)))
            .ok_or_else(|| {
                ConfigError::value(format!(
                    "{text:?} is not a duration like \"200ms\" or \"10s\""
                ))
            })
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis.is_multiple_of(1000) {
            write!(f, "{}s", millis / 1000)
        } else {
            write!(f, "{millis}ms")
        }
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Interval::parse(&text).map_err(de::Error::custom)
    }
}

/// A configuration that cannot be used, from a file, a flag or the environment: the one
/// error type of the relay library's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file it was found in, when it came from one.
    pub path: Option<String>,
    /// The 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// The setting at fault (`pipeline.batch_items`, a flag, an environment variable),
    /// when one is known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// The setting `key` cannot be used, because of `message`.
    pub fn setting(key: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            path: None,
            line: None,
            key: Some(key.into()),
            message: message.to_string(),
        }
    }

    /// A value that cannot be used, before its setting is known ([`ConfigError::for_key`]
    /// names it).
    pub fn value(message: impl fmt::Display) -> Self {
        Self {
            path: None,
            line: None,
            key: None,
            message: message.to_string(),
        }
    }

    /// This error, for the setting `key` (kept if one is named already).
    pub fn for_key(mut self, key: impl Into<String>) -> Self {
        self.key.get_or_insert_with(|| key.into());
        self
    }

    /// This error, found in the file `path` whose text is `text` (the line is looked up
    /// from the key when not known).
    fn in_file(mut self, path: &str, text: &str) -> Self {
        self.path = Some(path.to_string());
        if self.line.is_none() {
            self.line = self.key.as_deref().and_then(|key| line_of_key(text, key));
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{path}:")?;
            if let Some(line) = self.line {
                write!(f, "{line}:")?;
            }
            f.write_str(" ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads `text` (the contents of `path`) over the defaults, then checks the values
    /// that depend on each other.
    pub fn from_toml(text: &str, path: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            ConfigError {
                line,
                ..ConfigError::value(error.message().trim_end())
            }
            .in_file(path, text)
        })?;
        config.check().map_err(|e| e.in_file(path, text))?;
        Ok(config)
    }

    /// Reads the file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::value(e).in_file(&shown, ""))?;
        Config::from_toml(&text, &shown)
    }

    /// The configuration as TOML (what `--print-config` shows).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    /// Checks what a type cannot: ranges and combinations. Returns the key at fault.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.runtime.workers > Runtime::MAX_WORKERS {
            return Err(ConfigError::setting(
                "runtime.workers",
                format!(
                    "{} is more than {}",
                    self.runtime.workers,
                    Runtime::MAX_WORKERS
                ),
            ));
        }
        let pipeline = &self.pipeline;
        if pipeline.batch_items == 0 {
            return Err(ConfigError::setting(
                "pipeline.batch_items",
                "must be at least 1",
            ));
        }
        if pipeline.queue_items < pipeline.batch_items {
            return Err(ConfigError::setting(
                "pipeline.queue_items",
                format!(
                    "{} is smaller than batch_items ({})",
                    pipeline.queue_items, pipeline.batch_items
                ),
            ));
        }
        if pipeline.batch_bytes == 0 {
            return Err(ConfigError::setting(
                "pipeline.batch_bytes",
                "must be at least 1",
            ));
        }
        if pipeline.concurrent_exports == 0 {
            return Err(ConfigError::setting(
                "pipeline.concurrent_exports",
                "must be at least 1",
            ));
        }
        let receivers = &self.receivers;
        if receivers.max_request_bytes == 0 {
            return Err(ConfigError::setting(
                "receivers.max_request_bytes",
                "must be at least 1",
            ));
        }
        // The stream receivers' de-duplication windows hold up to a sixteenth of the
        // budget for the whole run; a request must fit in the rest.
        if receivers.memory_budget_bytes > 0
            && receivers.max_request_bytes.saturating_mul(DECODED_FACTOR)
                > receivers.memory_budget_bytes / 16 * 15
        {
            return Err(ConfigError::setting(
                "receivers.max_request_bytes",
                format!(
                    "{} is more than a fifth of fifteen sixteenths of memory_budget_bytes ({}; \
                     the rest holds the de-duplication windows): a request takes up to about \
                     five times its size once decoded, so one of that size could never be \
                     taken",
                    receivers.max_request_bytes, receivers.memory_budget_bytes
                ),
            ));
        }
        if receivers.max_connections == 0 {
            return Err(ConfigError::setting(
                "receivers.max_connections",
                "must be at least 1",
            ));
        }
        let http_path = &self.receivers.http.websocket_path;
        if !http_path.is_empty() && !http_path.starts_with('/') {
            return Err(ConfigError::setting(
                "receivers.http.websocket_path",
                format!("{http_path:?} must start with /"),
            ));
        }
        if !self.receivers.websocket.path.starts_with('/') {
            return Err(ConfigError::setting(
                "receivers.websocket.path",
                format!("{:?} must start with /", self.receivers.websocket.path),
            ));
        }
        if self.exporter.file.path.is_empty() {
            return Err(ConfigError::setting(
                "exporter.file.path",
                "must not be empty",
            ));
        }
        if self.exporter.file.rotate_bytes > 0 && self.exporter.file.path == "-" {
            return Err(ConfigError::setting(
                "exporter.file.rotate_bytes",
                "standard output cannot be rotated; set exporter.file.path",
            ));
        }
        let listeners = [
            ("receivers.grpc.listen", self.receivers.grpc.listen),
            ("receivers.http.listen", self.receivers.http.listen),
            (
                "receivers.websocket.listen",
                self.receivers.websocket.listen,
            ),
            ("admin.listen", self.admin.listen),
        ];
        for (i, (key, listen)) in listeners.iter().enumerate() {
            let Some(address) = listen.0 else { continue };
            if address.port() == 0 {
                continue;
            }
            if let Some((other, _)) = listeners[..i].iter().find(|(_, l)| l.0 == Some(address)) {
                return Err(ConfigError::setting(
                    *key,
                    format!("{address} is already {other}"),
                ));
            }
        }
        Ok(())
    }
}

/// The line where the last segment of `key` is set (for errors found after parsing).
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
    let mut in_section = section.is_empty();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            in_section = header.trim_end_matches(']').trim() == section;
            continue;
        }
        if in_section
            && let Some((left, _)) = line.split_once('=')
            && left.trim().trim_matches('"') == name
        {
            return Some(number + 1);
        }
    }
    None
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
