//! HTTP/2 bodies: the one body type both ends send (a single message with trailers, or a
//! channel of frames for streams), and reading gRPC frames out of a received body within
//! the limits.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame as BodyFrame, SizeHint};
use otlp_compression::Compression;
use otlp_core::{ErrorKind, ExportError};
use tokio::sync::mpsc;

use crate::framing::{Frame, FrameDecoder};

/// The body of every request and response this crate sends.
///
/// A unary call is one data chunk (the framed message) and, for a response, trailers; a
/// stream is a channel whose sender writes frames as they are ready. Bodies never fail:
/// a stream ends when its sender is dropped.
#[derive(Debug)]
pub struct GrpcBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Once {
        /// Sent in order: a message, or a frame's header and then its payload's pieces.
        data: std::collections::VecDeque<Bytes>,
        trailers: Option<HeaderMap>,
    },
    Channel(mpsc::Receiver<BodyFrame<Bytes>>),
}

impl GrpcBody {
    /// An empty body (a trailers-only response puts its status in the headers).
    pub fn empty() -> Self {
        Self::once(None, None)
    }

    /// One chunk of data, then trailers if given.
    pub fn once(data: Option<Bytes>, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Once {
                data: data.filter(|d| !d.is_empty()).into_iter().collect(),
                trailers,
            },
        }
    }

    /// One gRPC frame, its header and its payload written as they are (a message is not
    /// copied behind its header).
    pub fn framed(frame: crate::framing::FramedMessage) -> Self {
        Self {
            kind: Kind::Once {
                data: frame.into_chunks().collect(),
                trailers: None,
            },
        }
    }

    /// A streamed body and the sender that writes it. The channel holds at most `capacity`
    /// frames, so a writer ahead of the peer's flow control waits instead of buffering.
    pub fn channel(capacity: usize) -> (BodySender, Self) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (
            BodySender { sender },
            Self {
                kind: Kind::Channel(receiver),
            },
        )
    }
}

/// Writes a streamed [`GrpcBody`].
#[derive(Debug, Clone)]
pub struct BodySender {
    sender: mpsc::Sender<BodyFrame<Bytes>>,
}

impl BodySender {
    /// Writes data; `false` if the body is gone (the peer reset the stream).
    pub async fn data(&self, data: Bytes) -> bool {
        self.sender.send(BodyFrame::data(data)).await.is_ok()
    }

    /// Writes the trailers, which end the body.
    pub async fn trailers(self, trailers: HeaderMap) -> bool {
        self.sender
            .send(BodyFrame::trailers(trailers))
            .await
            .is_ok()
    }

    /// Whether the receiving side has gone.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, Infallible>>> {
        match &mut self.kind {
            Kind::Once { data, trailers } => {
                if let Some(data) = data.pop_front() {
                    return Poll::Ready(Some(Ok(BodyFrame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(BodyFrame::trailers(t))))
            }
            Kind::Channel(receiver) => receiver.poll_recv(cx).map(|frame| frame.map(Ok)),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.kind, Kind::Once { data, trailers: None } if data.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Once { data, .. } => {
                SizeHint::with_exact(data.iter().map(|d| d.len() as u64).sum())
            }
            Kind::Channel(_) => SizeHint::default(),
        }
    }
}

/// The next frame of a received body, `Ok(None)` at its end (the trailers, if any, are
/// stored in `trailers`). Body errors (a reset stream, a broken connection) are
/// UNAVAILABLE-class errors.
pub(crate) async fn next_frame<B>(
    body: &mut B,
    decoder: &mut FrameDecoder,
    trailers: &mut Option<HeaderMap>,
    intake: &mut otlp_net::budget::Admission,
) -> Result<Option<Frame>, ExportError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    loop {
        if let Some(frame) = decoder.next_frame()? {
            return Ok(Some(frame));
        }
        let chunk = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
        match chunk {
            None => {
                decoder.finish()?;
                return Ok(None);
            }
            Some(Err(error)) => {
                return Err(ExportError::new(
                    ErrorKind::Unavailable,
                    format!("the stream broke: {error}"),
                ));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    intake.cover(decoder.buffered() + data.len())?;
                    decoder.push(&data);
                }
                Err(frame) => {
                    if let Ok(received) = frame.into_trailers() {
                        trailers.get_or_insert_with(HeaderMap::new).extend(received);
                    }
                }
            },
        }
    }
}

/// Reads the single frame of a unary body, as sent. A second frame or none at all is a
/// protocol violation.
pub(crate) async fn read_unary_frame<B>(
    body: &mut B,
    decoder: &mut FrameDecoder,
    trailers: &mut Option<HeaderMap>,
    admission: &mut otlp_net::budget::Admission,
) -> Result<Option<Frame>, ExportError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let Some(frame) = next_frame(body, decoder, trailers, admission).await? else {
        return Ok(None);
    };
    if next_frame(body, decoder, trailers, admission)
        .await?
        .is_some()
    {
        return Err(ExportError::new(
            ErrorKind::Unimplemented,
            "a unary call carried more than one message",
        ));
    }
    Ok(Some(frame))
}

/// Reads the single message of a unary body ([`read_unary_frame`]), decompressed within
/// the limits.
pub(crate) async fn read_unary<B>(
    body: &mut B,
    decoder: &mut FrameDecoder,
    encoding: Option<&dyn Compression>,
    trailers: &mut Option<HeaderMap>,
    intake: &mut otlp_net::budget::Admission,
) -> Result<Option<Bytes>, ExportError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let Some(frame) = read_unary_frame(body, decoder, trailers, intake).await? else {
        return Ok(None);
    };
    let compressed = frame.compressed.then_some(frame.payload.len());
    let message = decoder.message(frame, encoding)?;
    if let Some(compressed) = compressed {
        intake.cover(compressed.saturating_add(message.len()))?;
    }
    Ok(Some(message))
}
