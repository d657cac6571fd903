//! A listener that records what the first client sends and answers nothing: for checking
//! what an exporter puts on the wire (for example that an `https://` endpoint gets a TLS
//! hello, never a plaintext request with its headers).

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Binds a loopback port and, on a thread, records up to 64 KiB from the first connection
/// for `window`, then closes it. Join the handle for the bytes.
///
/// # Panics
///
/// If no loopback port can be bound (test support: no peer data is involved).
///
/// ```
/// let (address, recorded) = otlp_testkit::eavesdrop::first_bytes(std::time::Duration::from_millis(200));
/// let mut client = std::net::TcpStream::connect(address).unwrap();
/// std::io::Write::write_all(&mut client, b"hello").unwrap();
/// assert_eq!(recorded.join().unwrap(), b"hello");
/// ```
pub fn first_bytes(window: Duration) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("the bound address");
    let handle = std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return Vec::new();
        };
        let started = Instant::now();
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while seen.len() < 64 * 1024 {
            let left = window.saturating_sub(started.elapsed());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
        seen
    });
    (address, handle)
}

/// Whether `bytes` begin like a TLS handshake record (a ClientHello).
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x16, 0x03, ..])
}

/// An upstream that accepts connections and never reads or answers (a stalled peer): its
/// address, and the connections it holds open until the returned guard is dropped.
///
/// ```
/// let hole = otlp_testkit::eavesdrop::BlackHole::start();
/// let _client = std::net::TcpStream::connect(hole.address()).unwrap();
/// ```
#[derive(Debug)]
pub struct BlackHole {
    address: SocketAddr,
    held: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl BlackHole {
    /// Binds a loopback port and holds every connection made to it.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound (test support: no peer data is involved).
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("the bound address");
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = std::sync::Arc::downgrade(&held);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // Gone once the guard is dropped: stop holding.
                let Some(held) = keep.upgrade() else {
                    return;
                };
                if let Ok(mut held) = held.lock() {
                    held.push(stream);
                }
            }
        });
        Self { address, held }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connections it holds now.
    pub fn connections(&self) -> usize {
        self.held.lock().map_or(0, |held| held.len())
    }
}
