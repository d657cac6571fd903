//! The receivers the relay can run, chosen by their configuration's kind through
//! registered factories: `[receivers.grpc]`, `[receivers.http]` and `[receivers.websocket]`
//! are the built-in kinds (the section name is the kind), and every `[[receivers.extra]]`
//! entry names its kind with `kind = "..."`. A new transport crate plugs in by registering
//! a [`ReceiverFactory`] ([`ReceiverKinds::with`]), without editing an enum or a match here.
//!
//! Starting is two steps so that a bad setting starts nothing: every section is first
//! *prepared* (parsed, certificates read), and only then is anything bound.

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use otlp_net::auth::BearerToken;
use otlp_net::intake::IntakeConfig;
use otlp_net::listener::ListenerLimits;
use otlp_net::tls::ServerTls;
use serde::de::DeserializeOwned;

use crate::config::{
    ConfigError, GrpcReceiver, HttpReceiver, Listen, ReceiverTls, Receivers, WebSocketReceiver,
};

/// A boxed future that is `Send`: what the object-safe factory traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The service every receiver hands its requests to: the relay's pipelines.
pub type Sink = otlp_pipeline::Entry;

/// What every receiver is given, the same for all: the pipelines to hand requests to and
/// the settings of `[receivers]` that apply to every receiver.
#[derive(Clone)]
pub struct ReceiverContext {
    /// Where received requests go.
    pub sink: Sink,
    /// Size limits, decompression, decoding and the shared memory budget.
    pub intake: IntakeConfig,
    /// Connections per listener.
    pub listener: ListenerLimits,
    /// Bearer tokens every receiver requires, if any.
    pub auth: Option<BearerToken>,
    /// Browser origins allowed to send (CORS, the WebSocket `Origin` check).
    pub allowed_origins: Vec<String>,
    /// Batch ids each stream receiver remembers for de-duplication (its window counts
    /// against the memory budget for the relay's life).
    pub dedup_capacity: usize,
}

/// A running receiver, as the relay holds it.
pub struct StartedReceiver {
    /// What it serves, for the start-up line (`gRPC 127.0.0.1:4317`).
    pub listening: Vec<String>,
    stop: Box<dyn FnOnce(Duration) -> BoxFuture<'static, bool> + Send>,
}

impl StartedReceiver {
    /// A receiver serving `listening`, stopped by `stop(deadline)`, which returns whether
    /// every connection finished by itself.
    pub fn new<F, Fut>(listening: Vec<String>, stop: F) -> Self
    where
        F: FnOnce(Duration) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            listening,
            stop: Box::new(move |deadline| Box::pin(stop(deadline))),
        }
    }

    /// One of `otlp-net`'s running receivers, described as `label address` and `extra`.
    pub fn from_running<S: Send + Sync + 'static>(
        label: &str,
        running: otlp_net::server::Running<S>,
        extra: Vec<String>,
    ) -> Self {
        let mut listening = vec![format!("{label} {}", running.local_addr())];
        listening.extend(extra);
        Self::new(listening, move |deadline| running.shutdown_within(deadline))
    }

    /// Stops accepting and lets open requests finish within `deadline`; returns whether
    /// every connection finished by itself.
    pub async fn shutdown_within(self, deadline: Duration) -> bool {
        (self.stop)(deadline).await
    }
}

/// A receiver section parsed and checked, its files read, not yet bound.
pub trait PreparedReceiver: Send {
    /// How many stream receivers (each with a de-duplication window) it will run.
    fn stream_windows(&self) -> usize;

    /// Binds and serves.
    fn start(
        self: Box<Self>,
        context: &ReceiverContext,
    ) -> BoxFuture<'_, Result<StartedReceiver, ConfigError>>;
}

/// Builds the receivers of one configuration kind.
pub trait ReceiverFactory: Send + Sync {
    /// The kind it serves: the section name of a built-in receiver, or the `kind` of a
    /// `[[receivers.extra]]` entry.
    fn kind(&self) -> &'static str;

    /// Parses and checks `section` (found at `key`, which errors name), reading any file
    /// it names. `None`: the section turns the receiver off.
    fn prepare(
        &self,
        section: &toml::Table,
        key: &str,
    ) -> Result<Option<Box<dyn PreparedReceiver>>, ConfigError>;
}

/// The registered receiver factories.
#[derive(Clone)]
pub struct ReceiverKinds {
    factories: Vec<Arc<dyn ReceiverFactory>>,
}

impl ReceiverKinds {
    /// `grpc`, `http` (with OTLP over WebSocket on its port) and `websocket`.
    pub fn builtin() -> Self {
        Self {
            factories: vec![
                Arc::new(BuiltinFactory::<GrpcReceiver>(PhantomData)),
                Arc::new(BuiltinFactory::<HttpReceiver>(PhantomData)),
                Arc::new(BuiltinFactory::<WebSocketReceiver>(PhantomData)),
            ],
        }
    }

    /// These factories and `factory`, which takes precedence for its kind.
    pub fn with(mut self, factory: impl ReceiverFactory + 'static) -> Self {
        self.factories.insert(0, Arc::new(factory));
        self
    }

    /// Every kind served, in registration order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.factories.iter().map(|f| f.kind()).collect()
    }

    /// Every receiver section of `receivers`, prepared by the factory of its kind; an
    /// unknown kind is an error naming the known ones. Nothing is bound yet.
    pub fn prepare(
        &self,
        receivers: &Receivers,
    ) -> Result<Vec<Box<dyn PreparedReceiver>>, ConfigError> {
        let mut prepared = Vec::new();
        for section in receivers.sections()? {
            let Some(factory) = self.factories.iter().find(|f| f.kind() == section.kind) else {
                return Err(ConfigError::setting(
                    format!("{}.kind", section.key),
                    format!(
                        "unknown receiver kind {:?} (known: {})",
                        section.kind,
                        self.kinds().join(", ")
                    ),
                ));
            };
            prepared.extend(factory.prepare(&section.settings, &section.key)?);
        }
        Ok(prepared)
    }
}

impl Receivers {
    /// Every receiver section, each with the kind that selects its factory: the built-in
    /// `grpc`, `http` and `websocket` sections (their name is their kind), then each
    /// `[[receivers.extra]]` entry (its `kind` taken out of its settings).
    pub fn sections(&self) -> Result<Vec<ReceiverSection>, ConfigError> {
        let builtin = |kind: &str, settings: Result<toml::Table, toml::ser::Error>| {
            let key = format!("receivers.{kind}");
            Ok(ReceiverSection {
                kind: kind.to_string(),
                settings: settings.map_err(|e| ConfigError::setting(&key, e))?,
                key,
            })
        };
        let mut sections = vec![
            builtin("grpc", toml::Table::try_from(&self.grpc))?,
            builtin("http", toml::Table::try_from(&self.http))?,
            builtin("websocket", toml::Table::try_from(&self.websocket))?,
        ];
        for (index, entry) in self.extra.iter().enumerate() {
            let key = format!("receivers.extra[{index}]");
            let mut settings = entry.clone();
            let kind = match settings.remove("kind") {
                Some(toml::Value::String(kind)) => kind,
                _ => {
                    return Err(ConfigError::setting(
                        format!("{key}.kind"),
                        "every extra receiver needs `kind = \"...\"` (a registered receiver kind)",
                    ));
                }
            };
            sections.push(ReceiverSection {
                kind,
                key,
                settings,
            });
        }
        Ok(sections)
    }
}

/// One receiver section of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverSection {
    /// The kind that selects its factory.
    pub kind: String,
    /// Where it is in the configuration (`receivers.grpc`, `receivers.extra[0]`).
    pub key: String,
    /// Its settings (for an extra entry, without `kind`).
    pub settings: toml::Table,
}

/// `section` read as the typed settings `T`; errors name `key`.
pub fn parse_section<T: DeserializeOwned>(
    section: &toml::Table,
    key: &str,
) -> Result<T, ConfigError> {
    T::deserialize(toml::Value::Table(section.clone()))
        .map_err(|e| ConfigError::setting(key, e.message().trim_end()))
}

/// A built-in receiver kind: its typed section and how it starts.
trait Builtin: DeserializeOwned + Send + 'static {
    /// Its kind, which is also its section's name.
    const KIND: &'static str;

    /// Where it listens (or off), and its TLS settings.
    fn listener(&self) -> (Listen, Option<&ReceiverTls>);

    /// How many stream receivers it runs.
    fn stream_windows(&self) -> usize {
        1
    }

    /// Binds `address` and serves.
    fn start(
        self,
        address: SocketAddr,
        tls: Option<ServerTls>,
        context: &ReceiverContext,
    ) -> BoxFuture<'_, std::io::Result<StartedReceiver>>;
}

/// The factory of a built-in kind.
struct BuiltinFactory<S>(PhantomData<fn() -> S>);

/// A built-in section parsed, its certificates read.
struct PreparedBuiltin<S> {
    key: String,
    address: SocketAddr,
    tls: Option<ServerTls>,
    settings: S,
}

impl<S: Builtin> ReceiverFactory for BuiltinFactory<S> {
    fn kind(&self) -> &'static str {
        S::KIND
    }

    fn prepare(
        &self,
        section: &toml::Table,
        key: &str,
    ) -> Result<Option<Box<dyn PreparedReceiver>>, ConfigError> {
        // A built-in kind's default address is its own section's: an extra one of the
        // same kind names its own, or it would collide with the built-in receiver.
        if key.starts_with("receivers.extra") && !section.contains_key("listen") {
            return Err(ConfigError::setting(
                format!("{key}.listen"),
                format!("an extra {} receiver needs its own address", S::KIND),
            ));
        }
        let settings: S = parse_section(section, key)?;
        let (listen, tls) = settings.listener();
        let Some(address) = listen.0 else {
            return Ok(None);
        };
        let tls = tls.map(|tls| tls.load(&format!("{key}.tls"))).transpose()?;
        Ok(Some(Box::new(PreparedBuiltin {
            key: key.to_string(),
            address,
            tls,
            settings,
        })))
    }
}

impl<S: Builtin> PreparedReceiver for PreparedBuiltin<S> {
    fn stream_windows(&self) -> usize {
        self.settings.stream_windows()
    }

    fn start(
        self: Box<Self>,
        context: &ReceiverContext,
    ) -> BoxFuture<'_, Result<StartedReceiver, ConfigError>> {
        let PreparedBuiltin {
            key,
            address,
            tls,
            settings,
        } = *self;
        Box::pin(async move {
            settings.start(address, tls, context).await.map_err(|e| {
                ConfigError::setting(format!("{key}.listen"), format!("{address}: {e}"))
            })
        })
    }
}

/// `receiver` with the section's TLS and the shared authentication, if any.
macro_rules! secured {
    ($receiver:expr, $tls:expr, $context:expr) => {{
        let mut receiver = $receiver;
        if let Some(tls) = $tls {
            receiver = receiver.with_tls(tls);
        }
        if let Some(auth) = $context.auth.clone() {
            receiver = receiver.with_auth(auth);
        }
        receiver
    }};
}

/// The WebSocket receiver settings every WebSocket endpoint of the relay shares.
fn websocket_config(context: &ReceiverContext, path: &str) -> otlp_websocket::WsReceiverConfig {
    let defaults = otlp_websocket::WsReceiverConfig::default();
    otlp_websocket::WsReceiverConfig {
        path: path.to_string(),
        intake: context.intake.clone(),
        max_frame_bytes: defaults
            .max_frame_bytes
            .min(context.intake.max_request_bytes),
        listener: context.listener,
        allowed_origins: context.allowed_origins.clone(),
        dedup_capacity: context.dedup_capacity,
        ..defaults
    }
}

impl Builtin for GrpcReceiver {
    const KIND: &'static str = "grpc";

    fn listener(&self) -> (Listen, Option<&ReceiverTls>) {
        (self.listen, self.tls.as_ref())
    }

    fn start(
        self,
        address: SocketAddr,
        tls: Option<ServerTls>,
        context: &ReceiverContext,
    ) -> BoxFuture<'_, std::io::Result<StartedReceiver>> {
        Box::pin(async move {
            let config = otlp_grpc::ReceiverConfig {
                intake: context.intake.clone(),
                listener: context.listener,
                dedup_capacity: context.dedup_capacity,
                ..otlp_grpc::ReceiverConfig::default()
            };
            let receiver = otlp_grpc::GrpcReceiver::new(context.sink.clone()).with_config(config);
            let running = secured!(receiver, tls, context).bind(address).await?;
            Ok(StartedReceiver::from_running("gRPC", running, Vec::new()))
        })
    }
}

impl Builtin for HttpReceiver {
    const KIND: &'static str = "http";

    fn listener(&self) -> (Listen, Option<&ReceiverTls>) {
        (self.listen, self.tls.as_ref())
    }

    fn stream_windows(&self) -> usize {
        usize::from(!self.websocket_path.is_empty())
    }

    fn start(
        self,
        address: SocketAddr,
        tls: Option<ServerTls>,
        context: &ReceiverContext,
    ) -> BoxFuture<'_, std::io::Result<StartedReceiver>> {
        Box::pin(async move {
            let config = otlp_http::HttpReceiverConfig {
                intake: context.intake.clone(),
                listener: context.listener,
                cors: otlp_http::Cors::allow_origins(context.allowed_origins.iter().cloned()),
                ..otlp_http::HttpReceiverConfig::default()
            };
            let mut receiver =
                otlp_http::HttpReceiver::new(context.sink.clone()).with_config(config);
            let path = self.websocket_path;
            if !path.is_empty() {
                let (handler, _) = otlp_websocket::WsReceiver::new(context.sink.clone())
                    .with_config(websocket_config(context, &path))
                    .into_upgrade_handler();
                receiver = receiver.with_upgrade(path.clone(), handler);
            }
            let running = secured!(receiver, tls, context).bind(address).await?;
            let extra = if path.is_empty() {
                Vec::new()
            } else {
                vec![format!("WebSocket {}{path}", running.local_addr())]
            };
            Ok(StartedReceiver::from_running("HTTP", running, extra))
        })
    }
}

impl Builtin for WebSocketReceiver {
    const KIND: &'static str = "websocket";

    fn listener(&self) -> (Listen, Option<&ReceiverTls>) {
        (self.listen, self.tls.as_ref())
    }

    fn start(
        self,
        address: SocketAddr,
        tls: Option<ServerTls>,
        context: &ReceiverContext,
    ) -> BoxFuture<'_, std::io::Result<StartedReceiver>> {
        Box::pin(async move {
            let receiver = otlp_websocket::WsReceiver::new(context.sink.clone())
                .with_config(websocket_config(context, &self.path));
            let running = secured!(receiver, tls, context).bind(address).await?;
            let listening = format!("WebSocket {}{}", running.local_addr(), self.path);
            Ok(StartedReceiver::new(vec![listening], move |deadline| {
                running.shutdown_within(deadline)
            }))
        })
    }
}
