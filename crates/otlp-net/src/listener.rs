//! The accept loop every receiver runs: a bounded number of connections, an optional TLS
//! handshake with a deadline, and shutdown that stops accepting and waits for the
//! connections to finish (or drops them all when the loop itself is dropped).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// A accepted connection: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Connection {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (the handshake is done).
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connection {
    /// The protocol the peer chose by ALPN, if TLS negotiated one.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Connection::Plain(_) => None,
            #[cfg(feature = "tls")]
            Connection::Tls(stream) => stream.get_ref().1.alpn_protocol(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections served at once; further peers wait in the listen backlog.
    pub max_connections: usize,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Completes when `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// TLS for the accept loop: the acceptor of a rustls server configuration.
#[cfg(feature = "tls")]
pub type TlsAcceptor = tokio_rustls::TlsAcceptor;

/// Without the `tls` feature there is no acceptor (the type has no values), so callers
/// pass `None` whatever features are unified.
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone)]
pub enum TlsAcceptor {}

/// Accepts connections until `shutdown`, handing each (after TLS, if configured) to
/// `serve`, at most `limits.max_connections` at a time; then waits for the connections to
/// end. `serve` is expected to watch `shutdown` itself and close its connection gracefully.
/// Dropping the returned future drops every connection at once.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limits: ListenerLimits,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Connection) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut stop = shutdown;
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            // Out of file descriptors and the like: wait instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let serve = serve.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            #[cfg(feature = "tls")]
            if let Some(acceptor) = tls {
                let handshake = acceptor.accept(stream);
                if let Ok(Ok(stream)) =
                    tokio::time::timeout(limits.handshake_timeout, handshake).await
                {
                    serve(Connection::Tls(Box::new(stream))).await;
                }
                return;
            }
            #[cfg(not(feature = "tls"))]
            if let Some(never) = tls {
                match never {}
            }
            serve(Connection::Plain(stream)).await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
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

impl<S: Send + Sync + 'static> Running<S> {
    /// Binds `address` and spawns `serve(listener, stats, shutdown signal)`.
    pub async fn spawn<F, Fut>(
        address: std::net::SocketAddr,
        stats: S,
        serve: F,
    ) -> io::Result<Self>
    where
        F: FnOnce(TcpListener, Arc<S>, watch::Receiver<bool>) -> io::Result<Fut>,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(address).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, signal) = watch::channel(false);
        let stats = Arc::new(stats);
        let task = tokio::spawn(serve(listener, stats.clone(), signal)?);
        Ok(Self {
            local_addr,
            shutdown,
            task,
            stats,
        })
    }

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

    /// Stops at once, dropping every connection mid-call, as a crash would (for fault
    /// tests).
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Runs the server `make` builds (given its shutdown signal) until `shutdown` completes,
/// then signals it and waits for its connections to finish.
pub async fn serve_until<F, Fut>(
    make: F,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    F: FnOnce(watch::Receiver<bool>) -> io::Result<Fut>,
    Fut: Future<Output = ()> + Send,
{
    let (sender, signal) = watch::channel(false);
    let serving = make(signal)?;
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
