//! gRPC message framing: each message is a 1-byte compressed flag, a 4-byte big-endian
//! length and the payload. Owning the framing (rather than tonic's) is what lets every
//! algorithm of otlp-compression serve as a `grpc-encoding`, with the decompressed size
//! bounded by construction.
//!
//! [`FrameDecoder`] is sans-IO: the transport pushes body chunks as they arrive and pulls
//! complete frames; a declared length over the limit is refused before it is buffered.

use bytes::{Buf, Bytes, BytesMut};
use otlp_compression::{Compression, DEFAULT_DECOMPRESSED_LIMIT};
use otlp_core::{ErrorKind, ExportError};

/// Bytes of the frame header.
pub const HEADER_LEN: usize = 5;

/// Most bytes reserved ahead of the data that has arrived (the buffer then grows by
/// doubling as data comes).
const RESERVE_STEP: usize = 1 << 20;

/// Size limits for incoming messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest message after decompression (default 64 MiB, the OTLP recommendation).
    pub max_message_bytes: usize,
    /// Largest frame payload as sent (compressed or not).
    pub max_frame_bytes: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_DECOMPRESSED_LIMIT,
            max_frame_bytes: DEFAULT_DECOMPRESSED_LIMIT,
        }
    }
}

/// One frame as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The compressed flag.
    pub compressed: bool,
    /// The payload as sent.
    pub payload: Bytes,
}

/// Appends a frame carrying `message`, compressed with `compression` if given (the
/// frame of [`FramedMessage`], in `out`).
pub fn encode_frame(
    message: &[u8],
    compression: Option<&dyn Compression>,
    out: &mut BytesMut,
) -> Result<(), ExportError> {
    let frame = FramedMessage::new(vec![Bytes::copy_from_slice(message)], compression)?;
    out.reserve(frame.len());
    for chunk in frame.into_chunks() {
        out.extend_from_slice(&chunk);
    }
    Ok(())
}

/// A frame as its header and its payload's pieces, so that an uncompressed message is
/// written as it is held (whole, or as the pieces of a batch), without being copied
/// behind its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedMessage {
    /// The 5-byte header.
    pub header: Bytes,
    /// The payload, in order: the message's pieces, or its compressed form.
    pub payload: Vec<Bytes>,
}

impl FramedMessage {
    /// The message of consecutive `pieces` framed, compressed with `compression` if given
    /// (which joins the pieces first).
    pub fn new(
        pieces: Vec<Bytes>,
        compression: Option<&dyn Compression>,
    ) -> Result<Self, ExportError> {
        let (compressed, payload) = match compression {
            Some(algorithm) => {
                let message = match <[Bytes; 1]>::try_from(pieces) {
                    Ok([message]) => message,
                    Err(pieces) => Bytes::from(pieces.concat()),
                };
                let mut buffer = Vec::with_capacity(message.len() / 2);
                algorithm.compress(&message, &mut buffer)?;
                (true, vec![Bytes::from(buffer)])
            }
            None => (false, pieces),
        };
        let len = payload.iter().map(Bytes::len).sum::<usize>();
        let len = u32::try_from(len)
            .map_err(|_| ExportError::too_large("a gRPC message cannot exceed 4 GiB"))?;
        let mut header = [0u8; HEADER_LEN];
        header[0] = u8::from(compressed);
        header[1..].copy_from_slice(&len.to_be_bytes());
        Ok(Self {
            header: Bytes::copy_from_slice(&header),
            payload,
        })
    }

    /// Bytes on the wire, header included.
    pub fn len(&self) -> usize {
        self.header.len() + self.payload.iter().map(Bytes::len).sum::<usize>()
    }

    /// Never: a frame has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The frame in one buffer (a copy of the payload), for a writer that must put a
    /// frame out in one write.
    pub fn into_bytes(self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        for chunk in self.into_chunks() {
            out.extend_from_slice(&chunk);
        }
        out.freeze()
    }

    /// The header, then the payload's pieces.
    pub fn into_chunks(self) -> impl Iterator<Item = Bytes> {
        std::iter::once(self.header).chain(self.payload.into_iter().filter(|p| !p.is_empty()))
    }
}

/// Reassembles frames from body chunks. Frames are copied out of the chunks: a slice of a
/// chunk would keep alive the whole buffer the HTTP/2 connection read it into, shared with
/// other requests' bytes, which no memory budget sees.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
    limits: FrameLimits,
}

impl FrameDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: FrameLimits) -> Self {
        Self {
            buffer: BytesMut::new(),
            limits,
        }
    }

    /// Adds a chunk of the request or response body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete frame, `None` if more bytes are needed. A declared length over
    /// the frame limit is an error (RESOURCE_EXHAUSTED) as soon as the header is read, so
    /// such a body is never buffered; so is a compressed flag other than 0 or 1 (INTERNAL).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ExportError> {
        let Some((compressed, len)) = self.header(&self.buffer)? else {
            return Ok(None);
        };
        if self.buffer.len() < HEADER_LEN + len {
            // Reserve what the frame still needs, now that it is known to be within limits,
            // but at most a step ahead of what has arrived: a declared length is a promise,
            // and a peer that never keeps it must not hold the whole allocation.
            let missing = HEADER_LEN + len - self.buffer.len();
            self.buffer
                .reserve(missing.min(RESERVE_STEP.max(self.buffer.len())));
            return Ok(None);
        }
        self.buffer.advance(HEADER_LEN);
        let payload = self.buffer.split_to(len).freeze();
        Ok(Some(Frame {
            compressed,
            payload,
        }))
    }

    /// The compressed flag and length of the frame `bytes` begins with, checked; `None`
    /// if its header is not all there.
    fn header(&self, bytes: &[u8]) -> Result<Option<(bool, usize)>, ExportError> {
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let flag = header[0];
        if flag > 1 {
            return Err(ExportError::new(
                ErrorKind::Internal,
                format!("invalid gRPC compressed flag {flag}"),
            ));
        }
        let mut length = [0u8; 4];
        length.copy_from_slice(&header[1..]);
        let len = u32::from_be_bytes(length) as usize;
        if len > self.limits.max_frame_bytes {
            return Err(ExportError::too_large(format!(
                "gRPC message of {len} bytes exceeds the limit of {} bytes",
                self.limits.max_frame_bytes
            )));
        }
        Ok(Some((flag == 1, len)))
    }

    /// At the end of the body: an error if a partial frame is left.
    pub fn finish(&self) -> Result<(), ExportError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(ExportError::new(
                ErrorKind::Internal,
                format!(
                    "the body ended inside a gRPC frame ({} bytes left)",
                    self.buffer.len()
                ),
            ))
        }
    }

    /// The message of `frame`: decompressed with `encoding` (the request's `grpc-encoding`)
    /// when the frame is compressed, within the message limit. A compressed frame without
    /// an encoding is INTERNAL, as the gRPC specification says.
    pub fn message(
        &self,
        frame: Frame,
        encoding: Option<&dyn Compression>,
    ) -> Result<Bytes, ExportError> {
        let encoding = frame_encoding(&frame, encoding)?;
        Ok(otlp_compression::decompress_received(
            frame.payload,
            encoding,
            self.limits.max_message_bytes,
        )?)
    }
}

/// The algorithm that decompresses `frame`: `encoding` (the request's `grpc-encoding`) when
/// the frame is compressed, none when it is not. A compressed frame without an encoding is
/// INTERNAL, as the gRPC specification says.
pub fn frame_encoding<'a>(
    frame: &Frame,
    encoding: Option<&'a dyn Compression>,
) -> Result<Option<&'a dyn Compression>, ExportError> {
    match (frame.compressed, encoding) {
        (false, _) => Ok(None),
        (true, Some(algorithm)) => Ok(Some(algorithm)),
        (true, None) => Err(ExportError::new(
            ErrorKind::Internal,
            "a compressed gRPC message arrived without grpc-encoding",
        )),
    }
}
