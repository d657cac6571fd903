//! Protobuf, the OTLP default, through prost.

use bytes::Bytes;

use crate::schema::{Field, Schema, Writer};
use crate::{Codec, CodecError, CodecErrorKind, DecodeLimits, OtlpCodec};

/// The deepest `AnyValue` nesting a prost decode can produce: prost refuses messages nested
/// more than 100 deep, and each `AnyValue` level below a request costs two message levels
/// (`AnyValue` -> `ArrayValue`/`KeyValueList` [-> `KeyValue`]) after at least 5 of structure.
const PROST_IMPLIED_ANY_VALUE_DEPTH: usize = 48;

/// Protobuf (`application/x-protobuf`).
///
/// Decoding slices the input `Bytes` for `bytes` fields instead of copying. prost limits
/// message nesting to 100, which bounds `AnyValue` nesting below the default limit of 64;
/// a lower configured limit is enforced by an extra walk over the decoded message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Protobuf {
    limits: DecodeLimits,
}

impl Protobuf {
    /// Protobuf with `limits`.
    pub fn new(limits: DecodeLimits) -> Self {
        Self { limits }
    }
}

impl<M: prost::Message + Schema> Codec<M> for Protobuf {
    fn encode(&self, message: &M, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.reserve(message.encoded_len());
        message
            .encode(out)
            .map_err(|e| CodecError::invalid(e.to_string()))
    }

    fn decode(&self, input: Bytes) -> Result<M, CodecError> {
        self.limits.check_input(input.len())?;
        let message = M::decode(input).map_err(|e| CodecError::invalid(e.to_string()))?;
        if self.limits.max_any_value_depth < PROST_IMPLIED_ANY_VALUE_DEPTH {
            message.write(&mut DepthCheck {
                depth: 0,
                max: self.limits.max_any_value_depth,
            })?;
        }
        Ok(message)
    }
}

impl OtlpCodec for Protobuf {
    fn name(&self) -> &str {
        "protobuf"
    }
    fn content_type(&self) -> &str {
        "application/x-protobuf"
    }
    fn is_protobuf(&self) -> bool {
        true
    }
}

/// A writer that writes nothing and only checks `AnyValue` nesting.
struct DepthCheck {
    depth: usize,
    max: usize,
}

impl Writer for DepthCheck {
    fn begin_message(&mut self, _fields: usize) -> Result<(), CodecError> {
        Ok(())
    }
    fn end_message(&mut self) {}
    fn field(&mut self, _field: &'static Field) {}
    fn enter_any_value(&mut self) -> Result<(), CodecError> {
        self.depth += 1;
        if self.depth > self.max {
            return Err(CodecError::new(
                CodecErrorKind::TooDeep,
                format!("AnyValue nesting exceeds {}", self.max),
            ));
        }
        Ok(())
    }
    fn exit_any_value(&mut self) {
        self.depth -= 1;
    }
    fn uint32(&mut self, _: u32) {}
    fn int32(&mut self, _: i32) {}
    fn enumeration(&mut self, _: i32) {}
    fn uint64(&mut self, _: u64) {}
    fn int64(&mut self, _: i64) {}
    fn double(&mut self, _: f64) {}
    fn boolean(&mut self, _: bool) {}
    fn string(&mut self, _: &str) {}
    fn bytes(&mut self, _: &[u8]) {}
    fn id(&mut self, _: &[u8]) {}
    fn begin_array(&mut self, _: usize) {}
    fn array_item(&mut self, _: usize) {}
    fn end_array(&mut self) {}
}
