//! The file exporter: one `Export*ServiceRequest` per line in OTLP/JSON, the format of the
//! OpenTelemetry Collector's file exporter, written to a file or standard output.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use otlp_codec::{CodecSignal, Json};
use otlp_core::{
    AnyExportRequest, BoxExportFuture, ExportError, ExportOutcome, ExportRequest, Logs, Metrics,
    Traces,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;
use tower_service::Service;

/// What the relay has received and written, for the live summary.
#[derive(Debug, Default)]
pub struct Counters {
    /// Spans received.
    pub spans: AtomicU64,
    /// Metric data points received.
    pub points: AtomicU64,
    /// Log records received.
    pub records: AtomicU64,
    /// Requests written.
    pub written: AtomicU64,
    /// Requests that could not be written (counted, and refused to the sender).
    pub failed: AtomicU64,
    /// Times the output file was rotated.
    pub rotations: AtomicU64,
}

/// `request` as one line of OTLP/JSON, newline included.
pub fn json_line<S: CodecSignal>(request: &ExportRequest<S>) -> Result<Vec<u8>, ExportError> {
    let message = request.message()?;
    let mut line = Vec::new();
    S::encode_request(&Json::default(), &message, &mut line)
        .map_err(|e| ExportError::codec(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

/// [`json_line`] of any signal's request.
pub fn any_json_line(request: &AnyExportRequest) -> Result<Vec<u8>, ExportError> {
    match request {
        AnyExportRequest::Traces(r) => json_line(r),
        AnyExportRequest::Metrics(r) => json_line(r),
        AnyExportRequest::Logs(r) => json_line(r),
    }
}

/// Where the lines go: standard output, or a file rotated by size.
pub enum Output {
    /// Standard output (or any writer).
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
    /// A file, appended to.
    File(RotatingFile),
}

/// A file that is renamed to `PATH.1` (older ones shifted up to `PATH.<keep>`) and started
/// afresh before a line would take it past `rotate_bytes`.
pub struct RotatingFile {
    path: PathBuf,
    file: tokio::fs::File,
    size: u64,
    rotate_bytes: u64,
    keep: usize,
}

impl RotatingFile {
    /// Opens `path` for appending; `rotate_bytes` 0 never rotates.
    pub async fn open(path: PathBuf, rotate_bytes: u64, keep: usize) -> std::io::Result<Self> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        let size = file.metadata().await?.len();
        Ok(Self {
            path,
            file,
            size,
            rotate_bytes,
            keep,
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    async fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        if self.keep == 0 {
            tokio::fs::remove_file(&self.path).await?;
        } else {
            for n in (1..self.keep).rev() {
                let from = self.numbered(n);
                if tokio::fs::try_exists(&from).await? {
                    tokio::fs::rename(&from, self.numbered(n + 1)).await?;
                }
            }
            tokio::fs::rename(&self.path, self.numbered(1)).await?;
        }
        self.file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        self.size = 0;
        Ok(())
    }

    /// Writes one line, rotating first when it would not fit (a line longer than the limit
    /// gets a file of its own: lines are never split).
    async fn write_line(&mut self, line: &[u8]) -> std::io::Result<bool> {
        let rotated = self.rotate_bytes > 0
            && self.size > 0
            && self.size + line.len() as u64 > self.rotate_bytes;
        if rotated {
            self.rotate().await?;
        }
        self.file.write_all(line).await?;
        self.file.flush().await?;
        self.size += line.len() as u64;
        Ok(rotated)
    }
}

impl Output {
    async fn write_line(&mut self, line: &[u8]) -> std::io::Result<bool> {
        match self {
            Output::Stream(out) => {
                out.write_all(line).await?;
                out.flush().await?;
                Ok(false)
            }
            Output::File(file) => file.write_line(line).await,
        }
    }
}

/// Writes requests as OTLP/JSON lines.
#[derive(Clone)]
pub struct JsonLines {
    out: Arc<Mutex<Output>>,
    counters: Arc<Counters>,
}

impl JsonLines {
    /// Lines written to `out`.
    pub fn new(out: Output, counters: Arc<Counters>) -> Self {
        Self {
            out: Arc::new(Mutex::new(out)),
            counters,
        }
    }

    async fn write<S: CodecSignal>(
        &self,
        request: ExportRequest<S>,
    ) -> Result<ExportOutcome, ExportError> {
        let items = request.item_count();
        let counter = match S::KIND {
            otlp_core::SignalKind::Traces => &self.counters.spans,
            otlp_core::SignalKind::Metrics => &self.counters.points,
            otlp_core::SignalKind::Logs => &self.counters.records,
        };
        counter.fetch_add(items as u64, Ordering::Relaxed);
        let result =
            async {
                let line = json_line(&request)?;
                let rotated =
                    self.out.lock().await.write_line(&line).await.map_err(|e| {
                        ExportError::unavailable(format!("writing the output: {e}"))
                    })?;
                if rotated {
                    self.counters.rotations.fetch_add(1, Ordering::Relaxed);
                }
                Ok(ExportOutcome::success(items))
            }
            .await;
        let counter = if result.is_ok() {
            &self.counters.written
        } else {
            &self.counters.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }
}

impl Service<AnyExportRequest> for JsonLines {
    type Response = ExportOutcome;
    type Error = ExportError;
    type Future = BoxExportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ExportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AnyExportRequest) -> Self::Future {
        let sink = self.clone();
        Box::pin(async move {
            match request {
                AnyExportRequest::Traces(r) => sink.write::<Traces>(r).await,
                AnyExportRequest::Metrics(r) => sink.write::<Metrics>(r).await,
                AnyExportRequest::Logs(r) => sink.write::<Logs>(r).await,
            }
        })
    }
}
