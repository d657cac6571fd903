//! The accept loop every receiver runs: a bounded number of connections, an optional TLS
//! handshake with a deadline, and shutdown that stops accepting and waits for the
//! connections to finish (or drops them all when the loop itself is dropped).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// A accepted connection: plain TCP, or TLS over it; either way under an opening deadline
/// ([`Opening`]).
#[derive(Debug)]
pub enum Connection {
    /// Plain TCP.
    Plain(Opening<TcpStream>),
    /// TLS (the handshake is done).
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<Opening<TcpStream>>>),
}

/// Bytes a peer must send within [`ListenerLimits::opening_timeout`]: an HTTP/2 client
/// preface (24 bytes) and the header of the SETTINGS frame that must follow it at once
/// (9 bytes, RFC 9113 §3.4). A peer that sends the preface alone and stalls is therefore
/// ended by this deadline too, not left to the HTTP/2 keep-alive. A TLS ClientHello and
/// an OTLP HTTP/1.1 request are longer than this.
pub const OPENING_BYTES: usize = 24 + 9;

/// Process-wide counts of what the accept loops ended or could not do, for operators'
/// metrics ([`listener_counters`]).
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// Connections closed because the peer sent fewer than [`OPENING_BYTES`] bytes within
    /// the opening timeout (silent or slow peers holding a connection slot).
    pub opening_timeouts: AtomicU64,
    /// TLS handshakes that failed or did not finish within the handshake timeout.
    pub tls_handshake_failures: AtomicU64,
    /// Errors from `accept` (out of file descriptors and the like); each one pauses the
    /// loop briefly instead of spinning.
    pub accept_errors: AtomicU64,
    /// Stops whose deadline passed with connections still open (which were then dropped).
    pub aborted_at_stop: AtomicU64,
}

static COUNTERS: ListenerCounters = ListenerCounters {
    opening_timeouts: AtomicU64::new(0),
    tls_handshake_failures: AtomicU64::new(0),
    accept_errors: AtomicU64::new(0),
    aborted_at_stop: AtomicU64::new(0),
};

/// The process-wide [`ListenerCounters`] of every accept loop.
pub fn listener_counters() -> &'static ListenerCounters {
    &COUNTERS
}

/// An I/O stream whose peer must send [`OPENING_BYTES`] bytes before a deadline: until
/// then a read that finds the deadline passed fails with `TimedOut`, so a peer that opens
/// a connection and stays silent (or trickles its preface) cannot hold the slot. After the
/// opening, the protocol's own timers apply.
#[derive(Debug)]
pub struct Opening<T> {
    inner: T,
    still_needed: usize,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Opening<T> {
    /// `inner`, which must deliver its first bytes within `timeout`.
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            still_needed: OPENING_BYTES,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Opening<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = buf.filled().len() - before;
            this.still_needed = this.still_needed.saturating_sub(read);
            if this.still_needed == 0 || read == 0 {
                this.deadline = None;
            }
            return polled;
        }
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.deadline = None;
            COUNTERS.opening_timeouts.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer did not open the connection in time",
            )));
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Opening<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
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
    /// Longest a peer may take to send its first [`OPENING_BYTES`] bytes (a preface, a
    /// ClientHello, a request line) after connecting.
    pub opening_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            opening_timeout: Duration::from_secs(10),
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
                COUNTERS.accept_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = Opening::new(stream, limits.opening_timeout);
        let serve = serve.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            #[cfg(feature = "tls")]
            if let Some(acceptor) = tls {
                let handshake = acceptor.accept(stream);
                match tokio::time::timeout(limits.handshake_timeout, handshake).await {
                    Ok(Ok(stream)) => serve(Connection::Tls(Box::new(stream))).await,
                    _ => {
                        COUNTERS
                            .tls_handshake_failures
                            .fetch_add(1, Ordering::Relaxed);
                    }
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
