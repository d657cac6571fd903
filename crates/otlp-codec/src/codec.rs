//! The codec traits and the registry transports select codecs from.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use otlp_core::{Logs, Metrics, Signal, Traces};
use otlp_model::collector::logs::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use otlp_model::collector::metrics::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use otlp_model::collector::trace::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use otlp_model::stream::{StreamAck, StreamBatch};

use crate::CodecError;

/// Limits every decoder enforces, each with a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest input accepted, in bytes (default 64 MiB, the OTLP recommendation).
    pub max_input_bytes: usize,
    /// Deepest `AnyValue` nesting accepted (default 64). Encoders refuse to write deeper
    /// values too, so that nothing we write is refused by ourselves.
    pub max_any_value_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_input_bytes: 64 * 1024 * 1024,
            max_any_value_depth: 64,
        }
    }
}

impl DecodeLimits {
    /// Fails with `TooLarge` when `len` exceeds `max_input_bytes`.
    pub fn check_input(&self, len: usize) -> Result<(), CodecError> {
        if len > self.max_input_bytes {
            return Err(CodecError::new(
                crate::CodecErrorKind::TooLarge,
                format!(
                    "input of {len} bytes exceeds the limit of {} bytes",
                    self.max_input_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// Encoding and decoding of one message type: bytes in, message out, and back. No I/O;
/// framing and compression belong to the transport.
pub trait Codec<M>: Send + Sync {
    /// Appends the encoding of `message` to `out`.
    fn encode(&self, message: &M, out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Decodes one message.
    fn decode(&self, input: Bytes) -> Result<M, CodecError>;
}

/// A format that encodes every message an OTLP transport carries: the requests and
/// responses of all three signals, and the stream envelope. Transports hold
/// `Arc<dyn OtlpCodec>` and pick one by content type from a [`CodecSet`].
///
/// A new format is a type implementing [`Codec`] for each of those messages and this trait.
pub trait OtlpCodec:
    Codec<ExportTraceServiceRequest>
    + Codec<ExportTraceServiceResponse>
    + Codec<ExportMetricsServiceRequest>
    + Codec<ExportMetricsServiceResponse>
    + Codec<ExportLogsServiceRequest>
    + Codec<ExportLogsServiceResponse>
    + Codec<StreamBatch>
    + Codec<StreamAck>
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// A short name for configuration: `protobuf`, `json`, `msgpack`, `cbor`.
    fn name(&self) -> &str;
    /// The content type (HTTP `Content-Type`, WebSocket subprotocol suffix).
    fn content_type(&self) -> &str;
    /// Whether this is the OTLP protobuf encoding, whose bytes transports may validate and
    /// pass through without decoding (every other codec's requests are decoded).
    fn is_protobuf(&self) -> bool {
        false
    }
}

/// Signal-generic access to an [`OtlpCodec`], so transports are written once for all
/// signals.
///
/// ```
/// use otlp_codec::{CodecSignal, Json};
/// use otlp_core::Traces;
///
/// let codec = Json::default();
/// let mut out = Vec::new();
/// Traces::encode_request(&codec, &Default::default(), &mut out)?;
/// assert_eq!(out, b"{}");
/// # Ok::<(), otlp_codec::CodecError>(())
/// ```
pub trait CodecSignal: Signal {
    /// Encodes a request of this signal.
    fn encode_request(
        codec: &dyn OtlpCodec,
        request: &Self::Request,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError>;
    /// Decodes a request of this signal.
    fn decode_request(codec: &dyn OtlpCodec, input: Bytes) -> Result<Self::Request, CodecError>;
    /// Encodes a response of this signal.
    fn encode_response(
        codec: &dyn OtlpCodec,
        response: &Self::Response,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError>;
    /// Decodes a response of this signal.
    fn decode_response(codec: &dyn OtlpCodec, input: Bytes) -> Result<Self::Response, CodecError>;
}

macro_rules! codec_signal {
    ($signal:ty) => {
        impl CodecSignal for $signal {
            fn encode_request(
                codec: &dyn OtlpCodec,
                request: &Self::Request,
                out: &mut Vec<u8>,
            ) -> Result<(), CodecError> {
                Codec::<<$signal as Signal>::Request>::encode(codec, request, out)
            }
            fn decode_request(
                codec: &dyn OtlpCodec,
                input: Bytes,
            ) -> Result<Self::Request, CodecError> {
                Codec::<<$signal as Signal>::Request>::decode(codec, input)
            }
            fn encode_response(
                codec: &dyn OtlpCodec,
                response: &Self::Response,
                out: &mut Vec<u8>,
            ) -> Result<(), CodecError> {
                Codec::<<$signal as Signal>::Response>::encode(codec, response, out)
            }
            fn decode_response(
                codec: &dyn OtlpCodec,
                input: Bytes,
            ) -> Result<Self::Response, CodecError> {
                Codec::<<$signal as Signal>::Response>::decode(codec, input)
            }
        }
    };
}

codec_signal!(Traces);
codec_signal!(Metrics);
codec_signal!(Logs);

/// The codecs a transport accepts, looked up by content type.
///
/// ```
/// use otlp_codec::CodecSet;
/// let set = CodecSet::with_defaults();
/// assert_eq!(set.by_content_type("application/x-protobuf").unwrap().name(), "protobuf");
/// assert_eq!(set.by_content_type("application/json; charset=utf-8").unwrap().name(), "json");
/// assert!(set.by_content_type("text/plain").is_none());
/// // Only the protobuf codec's bytes may be passed through undecoded.
/// assert!(set.by_content_type("application/x-protobuf").unwrap().is_protobuf());
/// assert!(!set.by_content_type("application/json").unwrap().is_protobuf());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CodecSet {
    codecs: Vec<Arc<dyn OtlpCodec>>,
}

impl CodecSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Protobuf and every format compiled in, with default limits.
    pub fn with_defaults() -> Self {
        Self::with_limits(DecodeLimits::default())
    }

    /// Protobuf and every format compiled in, with `limits`.
    pub fn with_limits(limits: DecodeLimits) -> Self {
        #[allow(unused_mut)]
        let mut set = Self::new().with(crate::Protobuf::new(limits));
        #[cfg(feature = "json")]
        {
            set = set.with(crate::Json::new(limits));
        }
        #[cfg(feature = "msgpack")]
        {
            set = set.with(crate::MessagePack::new(limits));
        }
        #[cfg(feature = "cbor")]
        {
            set = set.with(crate::Cbor::new(limits));
        }
        set
    }

    /// Adds a codec; one with the same content type is replaced.
    pub fn with(mut self, codec: impl OtlpCodec) -> Self {
        let codec: Arc<dyn OtlpCodec> = Arc::new(codec);
        match self
            .codecs
            .iter_mut()
            .find(|c| c.content_type() == codec.content_type())
        {
            Some(slot) => *slot = codec,
            None => self.codecs.push(codec),
        }
        self
    }

    /// The codec for a `Content-Type` value; parameters (`; charset=utf-8`) and case are
    /// ignored.
    pub fn by_content_type(&self, content_type: &str) -> Option<&Arc<dyn OtlpCodec>> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        self.codecs
            .iter()
            .find(|c| c.content_type().eq_ignore_ascii_case(essence))
    }

    /// The codec with this name (`protobuf`, `json`, ...).
    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn OtlpCodec>> {
        self.codecs
            .iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The codecs, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn OtlpCodec>> {
        self.codecs.iter()
    }
}
