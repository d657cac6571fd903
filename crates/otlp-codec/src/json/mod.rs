//! OTLP/JSON, exactly as the OTLP specification maps protobuf to JSON: lowerCamelCase keys
//! (snake_case accepted too), trace and span ids as hex (either case accepted), enums
//! written as integers and accepted as integers or names, 64-bit integers written as
//! decimal strings and accepted as strings or numbers, other bytes as base64, NaN and
//! infinities as strings, unknown fields ignored, defaults omitted.

mod reader;
mod writer;

use bytes::Bytes;

use crate::schema::Schema;
use crate::{Codec, CodecError, DecodeLimits, OtlpCodec};

pub(crate) use reader::JsonReader;
pub(crate) use writer::JsonWriter;

/// OTLP/JSON (`application/json`), strict and lossless: `decode(encode(x)) == x` for every
/// message, and what the specification forbids is an error naming the field.
///
/// ```
/// use otlp_codec::{Codec, Json};
/// use otlp_model::collector::trace::ExportTraceServiceRequest;
///
/// let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
///     "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
///     "name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000"}]}]}]}"#;
/// let request: ExportTraceServiceRequest = Json::default().decode(json.to_vec().into())?;
/// let span = &request.resource_spans[0].scope_spans[0].spans[0];
/// assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
///
/// let mut out = Vec::new();
/// Json::default().encode(&request, &mut out)?;
/// assert!(String::from_utf8(out).unwrap().contains(r#""traceId":"5b8efff798038103d269b633813fc60c""#));
/// # Ok::<(), otlp_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json {
    limits: DecodeLimits,
}

impl Json {
    /// OTLP/JSON with `limits`.
    pub fn new(limits: DecodeLimits) -> Self {
        Self { limits }
    }
}

impl<M: Schema> Codec<M> for Json {
    fn encode(&self, message: &M, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut writer = JsonWriter::new(out, self.limits.max_any_value_depth);
        message.write(&mut writer)
    }

    fn decode(&self, input: Bytes) -> Result<M, CodecError> {
        self.limits.check_input(input.len())?;
        let text = std::str::from_utf8(&input).map_err(|e| {
            CodecError::invalid("JSON text is not valid UTF-8").with_offset(e.valid_up_to())
        })?;
        let mut reader = JsonReader::new(text, self.limits.max_any_value_depth);
        let message = M::read(&mut reader).map_err(|e| e.with_offset(reader.offset()))?;
        reader.finish()?;
        Ok(message)
    }
}

impl OtlpCodec for Json {
    fn name(&self) -> &str {
        "json"
    }
    fn content_type(&self) -> &str {
        "application/json"
    }
}
