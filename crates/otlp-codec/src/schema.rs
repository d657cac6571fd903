//! The format-agnostic shape of OTLP messages: a field table per message, and `write` /
//! `read` functions (generated from the protos) that drive a format's [`Writer`] or
//! [`Reader`]. A format implements the two traits once and then handles every message.

use bytes::Bytes;

use crate::CodecError;

/// A field's number and names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The protobuf field number (the key in MessagePack and CBOR).
    pub number: u32,
    /// The lowerCamelCase JSON name (written, and accepted).
    pub json: &'static str,
    /// The original snake_case name (also accepted in JSON, as proto3 JSON requires).
    pub proto: &'static str,
    /// `,"json":` — the JSON key as written, with its leading separator, so that a writer
    /// emits a key with one copy.
    pub json_key: &'static str,
}

/// A message the codecs can encode and decode. Implemented by generated code for every
/// OTLP message and our stream envelope.
pub trait Schema: Sized + Default {
    /// The message's fields, in declaration order.
    const FIELDS: &'static [Field];

    /// Writes the message, omitting fields that hold their default value.
    fn write<W: Writer>(&self, w: &mut W) -> Result<(), CodecError>;

    /// Reads the message; absent fields keep their default value.
    fn read<'de, R: Reader<'de>>(r: &mut R) -> Result<Self, CodecError>;
}

/// The output side of a format.
pub trait Writer {
    /// Starts a message that will have `fields` fields written.
    fn begin_message(&mut self, fields: usize) -> Result<(), CodecError>;
    /// Ends the current message.
    fn end_message(&mut self);
    /// Writes the key of the next field.
    fn field(&mut self, field: &'static Field);
    /// Entering an `AnyValue`: fails past the nesting limit.
    fn enter_any_value(&mut self) -> Result<(), CodecError>;
    /// Leaving an `AnyValue`.
    fn exit_any_value(&mut self);
    /// A `uint32` or `fixed32`.
    fn uint32(&mut self, value: u32);
    /// An `int32`, `sint32` or `sfixed32`.
    fn int32(&mut self, value: i32);
    /// An enum value.
    fn enumeration(&mut self, value: i32);
    /// A `uint64` or `fixed64`.
    fn uint64(&mut self, value: u64);
    /// An `int64`, `sint64` or `sfixed64`.
    fn int64(&mut self, value: i64);
    /// A `double`.
    fn double(&mut self, value: f64);
    /// A `bool`.
    fn boolean(&mut self, value: bool);
    /// A `string`.
    fn string(&mut self, value: &str);
    /// A `bytes` field that is not an id.
    fn bytes(&mut self, value: &[u8]);
    /// A trace or span id (hex in OTLP/JSON).
    fn id(&mut self, value: &[u8]);
    /// Starts a repeated field of `len` elements.
    fn begin_array(&mut self, len: usize);
    /// Before element `index` of the current array.
    fn array_item(&mut self, index: usize);
    /// Ends the current array.
    fn end_array(&mut self);
}

/// The input side of a format. Errors carry no field names; the generated code adds them.
pub trait Reader<'de> {
    /// Starts a message; `false` when the value is null, which reads as the default.
    fn begin_message(&mut self) -> Result<bool, CodecError>;
    /// The index in `fields` of the next known field, skipping unknown fields and fields
    /// whose value is null (absent); `None` at the end of the message.
    fn next_field(&mut self, fields: &'static [Field]) -> Result<Option<usize>, CodecError>;
    /// Ends the current message (after `next_field` returned `None`).
    fn end_message(&mut self);
    /// Consumes a null value if one is next (null means "default" in proto3 JSON).
    fn null(&mut self) -> Result<bool, CodecError>;
    /// Entering an `AnyValue`: fails past the nesting limit.
    fn enter_any_value(&mut self) -> Result<(), CodecError>;
    /// Leaving an `AnyValue`.
    fn exit_any_value(&mut self);
    /// A `uint32` or `fixed32`.
    fn uint32(&mut self) -> Result<u32, CodecError>;
    /// An `int32`, `sint32` or `sfixed32`.
    fn int32(&mut self) -> Result<i32, CodecError>;
    /// An enum value: a number, or (where the format has names) a name that `by_name` knows.
    fn enumeration(&mut self, by_name: fn(&str) -> Option<i32>) -> Result<i32, CodecError>;
    /// A `uint64` or `fixed64`.
    fn uint64(&mut self) -> Result<u64, CodecError>;
    /// An `int64`, `sint64` or `sfixed64`.
    fn int64(&mut self) -> Result<i64, CodecError>;
    /// A `double`.
    fn double(&mut self) -> Result<f64, CodecError>;
    /// A `bool`.
    fn boolean(&mut self) -> Result<bool, CodecError>;
    /// A `string`.
    fn string(&mut self) -> Result<String, CodecError>;
    /// A `bytes` field that is not an id.
    fn bytes(&mut self) -> Result<Bytes, CodecError>;
    /// A trace or span id of `len` bytes (or empty).
    fn id(&mut self, len: usize) -> Result<Bytes, CodecError>;
    /// Starts a repeated field; `false` when it is null (no elements).
    fn begin_array(&mut self) -> Result<bool, CodecError>;
    /// Whether another element follows (consuming separators).
    fn next_item(&mut self) -> Result<bool, CodecError>;
    /// How many elements to reserve for a repeated field before reading it (a guess from
    /// the last array of the same field); 0 for no guess.
    fn array_hint(&mut self, _field: &'static Field) -> usize {
        0
    }
    /// How many elements the repeated field just read had, to improve the next guess.
    fn record_array_len(&mut self, _field: &'static Field, _len: usize) {}
}
