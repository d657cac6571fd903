//! The lifecycle every receiver shares: bind an address or serve a listener it is given,
//! TLS with the receiver's ALPN protocols, the address and counters of a running receiver,
//! and shutdown with a deadline.
//!
//! A receiver says what it is by implementing [`Receiver`] (its limits, its TLS settings,
//! its ALPN protocols, and the [`ConnectionHandler`] that serves one accepted connection);
//! [`bind`] and [`serve`] run it over the accept loop ([`listener::accept_loop`]), and
//! [`receiver_builder_methods!`](crate::receiver_builder_methods) writes its builder
//! methods, so a transport writes none of this itself.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The listener [`serve`] takes (tokio's).
pub use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::listener::{self, Connection, ListenerLimits, TlsAcceptor};

/// What every receiver is made of before it runs: the service it hands requests to, its
/// configuration, the authentication hook and its TLS settings. A receiver type holds one
/// in a field `parts`, which [`receiver_builder_methods!`](crate::receiver_builder_methods)
/// and [`receiver_settings!`](crate::receiver_settings) work on.
pub struct ReceiverParts<Svc, Config> {
    /// The service every request is handed to.
    pub service: Svc,
    /// The receiver's configuration.
    pub config: Config,
    /// Run on every request's (every handshake's) headers before anything else of it.
    pub auth: Option<Arc<dyn crate::auth::Authenticate>>,
    /// Serve TLS with these settings.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::ServerTls>,
}

impl<Svc, Config: Default> ReceiverParts<Svc, Config> {
    /// `service` with the default configuration, no authentication and no TLS.
    pub fn new(service: Svc) -> Self {
        Self {
            service,
            config: Config::default(),
            auth: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl<Svc, Config: std::fmt::Debug> std::fmt::Debug for ReceiverParts<Svc, Config> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = f.debug_struct("ReceiverParts");
        parts
            .field("config", &self.config)
            .field("auth", &self.auth.is_some());
        #[cfg(feature = "tls")]
        parts.field("tls", &self.tls.is_some());
        parts.finish_non_exhaustive()
    }
}

/// Writes the builder methods every receiver has, so that they are the same for all:
/// `with_config`, `with_auth`, `with_tls` (under the calling crate's `tls` feature),
/// `bind` and `serve`. Used inside `impl<Svc> TheReceiver<Svc>` of a type with a field
/// `parts` ([`ReceiverParts`] with configuration `$config`), which implements [`Receiver`]
/// with `$running` as its [`Running`]. A macro rather than a trait with provided methods, so that the
/// methods are inherent and a caller needs no import to use them.
#[macro_export]
macro_rules! receiver_builder_methods {
    ($config:ty, $running:ty) => {
        /// Replaces the configuration.
        pub fn with_config(mut self, config: $config) -> Self {
            self.parts.config = config;
            self
        }

        /// Runs `auth` on the headers of every request (of every handshake, for a stream
        /// binding) before anything else of it is read.
        pub fn with_auth(mut self, auth: impl $crate::auth::Authenticate) -> Self {
            self.parts.auth = Some(::std::sync::Arc::new(auth));
            self
        }

        /// Serves TLS, offering the receiver's ALPN protocols (mutual TLS if the settings
        /// require client certificates).
        #[cfg(feature = "tls")]
        pub fn with_tls(mut self, tls: $crate::tls::ServerTls) -> Self {
            self.parts.tls = Some(tls);
            self
        }

        /// Binds `address` and serves in a background task until the returned handle
        /// shuts it down (dropping the handle shuts it down too).
        pub async fn bind(self, address: ::std::net::SocketAddr) -> ::std::io::Result<$running> {
            $crate::server::bind(self, address).await
        }

        /// Serves on `listener` until `shutdown` completes, then lets open calls and
        /// streams finish as the protocol allows.
        pub async fn serve(
            self,
            listener: $crate::server::TcpListener,
            shutdown: impl ::std::future::Future<Output = ()> + Send,
        ) -> ::std::io::Result<()> {
            $crate::server::serve(self, listener, shutdown).await
        }
    };
}

/// Writes the two [`Receiver`] methods every receiver answers from the same fields:
/// `listener_limits` (from `parts.config.listener`) and `tls` (from `parts.tls`, under the
/// calling crate's `tls` feature). Used inside `impl Receiver for TheReceiver<Svc>`.
#[macro_export]
macro_rules! receiver_settings {
    () => {
        fn listener_limits(&self) -> $crate::listener::ListenerLimits {
            self.parts.config.listener
        }

        #[cfg(feature = "tls")]
        fn tls(&self) -> Option<&$crate::tls::ServerTls> {
            self.parts.tls.as_ref()
        }
    };
}

/// A receiver before it runs: what the shared lifecycle needs to know of it.
pub trait Receiver: Sized + Send + 'static {
    /// The counters a running receiver keeps ([`Running::stats`]).
    type Stats: Default + Send + Sync + 'static;
    /// The protocols offered by ALPN when it serves TLS, preferred first.
    const ALPN: &'static [&'static [u8]];

    /// The accept loop's limits.
    fn listener_limits(&self) -> ListenerLimits;

    /// Its TLS settings, if it serves TLS.
    #[cfg(feature = "tls")]
    fn tls(&self) -> Option<&crate::tls::ServerTls> {
        None
    }

    /// The receiver made ready to serve connections, counting into `stats`; each
    /// connection it serves closes gracefully once `shutdown` turns true.
    fn into_handler(
        self,
        stats: Arc<Self::Stats>,
        shutdown: watch::Receiver<bool>,
    ) -> ConnectionHandler;
}

type ServeOne = dyn Fn(Connection) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// Serves one accepted connection (TLS already done) to its end; cloned for every
/// connection. (One allocation per connection, not per request.)
#[derive(Clone)]
pub struct ConnectionHandler(Arc<ServeOne>);

impl ConnectionHandler {
    /// The handler that serves each connection with `serve`.
    pub fn new<F, Fut>(serve: F) -> Self
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self(Arc::new(move |connection| Box::pin(serve(connection))))
    }

    /// Serves `connection`.
    pub fn serve(&self, connection: Connection) -> impl Future<Output = ()> + Send + use<> {
        (self.0)(connection)
    }
}

impl std::fmt::Debug for ConnectionHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHandler").finish_non_exhaustive()
    }
}

/// Binds `address` and serves `receiver` in a background task until the returned handle
/// shuts it down (dropping the handle shuts it down too).
pub async fn bind<R: Receiver>(receiver: R, address: SocketAddr) -> io::Result<Running<R::Stats>> {
    let listener = TcpListener::bind(address).await?;
    let local_addr = listener.local_addr()?;
    let (shutdown, signal) = watch::channel(false);
    let stats = Arc::new(R::Stats::default());
    let task = tokio::spawn(serving(receiver, listener, stats.clone(), signal)?);
    Ok(Running {
        local_addr,
        shutdown,
        task,
        stats,
    })
}

/// Serves `receiver` on `listener` until `shutdown` completes, then lets open calls and
/// streams finish as the protocol allows.
pub async fn serve<R: Receiver>(
    receiver: R,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let (sender, signal) = watch::channel(false);
    let serving = serving(receiver, listener, Arc::new(R::Stats::default()), signal)?;
    tokio::pin!(serving);
    tokio::select! {
        () = shutdown => {
            let _ = sender.send(true);
            serving.await;
        }
        () = &mut serving => {}
    }
    Ok(())
}

fn serving<R: Receiver>(
    receiver: R,
    listener: TcpListener,
    stats: Arc<R::Stats>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<impl Future<Output = ()> + Send + 'static> {
    let limits = receiver.listener_limits();
    let tls = tls_acceptor(&receiver)?;
    let handler = receiver.into_handler(stats, shutdown.clone());
    Ok(listener::accept_loop(
        listener,
        limits,
        tls,
        shutdown,
        move |connection| handler.serve(connection),
    ))
}

#[cfg(feature = "tls")]
fn tls_acceptor<R: Receiver>(receiver: &R) -> io::Result<Option<TlsAcceptor>> {
    let Some(tls) = receiver.tls() else {
        return Ok(None);
    };
    let config = tls.rustls_config(R::ALPN).map_err(io::Error::other)?;
    Ok(Some(TlsAcceptor::from(config)))
}

#[cfg(not(feature = "tls"))]
fn tls_acceptor<R: Receiver>(_receiver: &R) -> io::Result<Option<TlsAcceptor>> {
    Ok(None)
}

/// A server running in the background: its address, its counters `S`, and the means to
/// stop it. Dropping the handle stops the server too.
#[derive(Debug)]
pub struct Running<S> {
    local_addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<S>,
}

impl<S> Running<S> {
    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// Its counters.
    pub fn stats(&self) -> &S {
        &self.stats
    }

    /// Stops accepting, lets open calls and streams finish as the protocol allows (GOAWAY,
    /// close frames), and returns when every connection is closed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// [`Running::shutdown`] within `deadline`: connections still open when it passes
    /// (silent peers, streams that do not end, services that do not answer) are dropped
    /// and counted in [`listener::ListenerCounters::aborted_at_stop`]. Returns whether every
    /// connection finished by itself.
    pub async fn shutdown_within(mut self, deadline: Duration) -> bool {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(deadline, &mut self.task).await.is_ok() {
            return true;
        }
        listener::listener_counters()
            .aborted_at_stop
            .fetch_add(1, Ordering::Relaxed);
        self.task.abort();
        let _ = (&mut self.task).await;
        false
    }

    /// Stops at once, dropping every connection mid-call, as a crash would (for fault
    /// tests).
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
