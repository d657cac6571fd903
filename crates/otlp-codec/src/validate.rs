//! Protobuf validation without decoding: walks an encoded export request with a table
//! generated from the protos (`generated/wire.rs`), checking everything prost's decoder
//! checks — keys, varints, lengths, wire types of known fields, packed encodings, UTF-8 of
//! strings, nesting depth, groups in unknown fields — and counting the request's items as
//! [`SignalRequest::item_count`](otlp_model::SignalRequest::item_count) would after a
//! decode, including the oneof rule that only the last `Metric.data` member survives.
//!
//! A receiver that only forwards (a relay exporting protobuf) can thus refuse malformed
//! input and count items at a fraction of a decode's cost, then pass the bytes on with
//! `ExportRequest::from_encoded`. The property tests check the claim both ways: on valid
//! messages the count equals `item_count`, and on corrupted bytes the validator fails
//! exactly when prost's decode fails.

use bytes::Bytes;
use otlp_core::{ExportError, ExportRequest, Signal, SignalKind};

use crate::CodecError;
use crate::generated_wire::{
    EXPORT_LOGS_SERVICE_REQUEST, EXPORT_METRICS_SERVICE_REQUEST, EXPORT_TRACE_SERVICE_REQUEST,
    MESSAGES, STREAM_BATCH,
};

/// How a known field is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireKind {
    /// Not a field of the message: skipped, whatever its wire type.
    Unknown,
    Varint,
    Fixed64,
    Fixed32,
    /// Repeated scalars: packed (one length-delimited run) or one element per key.
    RepeatedVarint,
    RepeatedFixed64,
    // No OTLP message has a repeated 32-bit fixed-width field today; the generator emits it
    // when one appears.
    #[allow(dead_code)]
    RepeatedFixed32,
    String,
    Bytes,
    /// A message: index into the table.
    Message(usize),
}

/// A field's entry in its message's table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireField {
    pub(crate) kind: WireKind,
    /// Every occurrence is one item of the signal.
    pub(crate) item: bool,
    /// Member of the oneof whose last present member's items are the ones that count.
    pub(crate) oneof: bool,
}

impl WireField {
    pub(crate) const UNKNOWN: WireField = WireField {
        kind: WireKind::Unknown,
        item: false,
        oneof: false,
    };
}

/// A message's table: fields indexed by number.
#[derive(Debug)]
pub(crate) struct WireMessage {
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [WireField],
}

/// Levels of nested messages (and groups) allowed below the root: prost's recursion limit.
pub const MAX_DEPTH: usize = 100;

/// Checks that `bytes` decode as an export request of `signal`, as strictly as prost
/// would, and returns its item count.
///
/// ```
/// use otlp_codec::validate::validate_request;
/// use otlp_core::SignalKind;
/// use otlp_model::collector::trace::ExportTraceServiceRequest;
/// use otlp_model::trace::{ResourceSpans, ScopeSpans, Span};
/// use prost::Message;
///
/// let request = ExportTraceServiceRequest {
///     resource_spans: vec![ResourceSpans {
///         scope_spans: vec![ScopeSpans { spans: vec![Span::default(); 3], ..Default::default() }],
///         ..Default::default()
///     }],
/// };
/// let bytes = request.encode_to_vec();
/// assert_eq!(validate_request(SignalKind::Traces, &bytes)?, 3);
/// assert!(validate_request(SignalKind::Traces, &bytes[..bytes.len() - 1]).is_err());
/// # Ok::<(), otlp_codec::CodecError>(())
/// ```
pub fn validate_request(signal: SignalKind, bytes: &[u8]) -> Result<usize, CodecError> {
    let root = match signal {
        SignalKind::Traces => EXPORT_TRACE_SERVICE_REQUEST,
        SignalKind::Metrics => EXPORT_METRICS_SERVICE_REQUEST,
        SignalKind::Logs => EXPORT_LOGS_SERVICE_REQUEST,
    };
    validate(bytes, root)
}

/// Checks that `bytes` decode as an `otlp_transport.v1.StreamBatch`, and returns the item
/// count of its payload.
pub fn validate_stream_batch(bytes: &[u8]) -> Result<usize, CodecError> {
    validate(bytes, STREAM_BATCH)
}

/// What a receiver does with a request's protobuf bytes before handing it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecodeMode {
    /// Check the bytes as strictly as a decode would ([`validate_request`]) and count the
    /// items, without building the message; the service gets the validated bytes
    /// (`ExportRequest::from_encoded`) and decodes only if it needs to. A relay forwarding
    /// protobuf never decodes.
    #[default]
    Validate,
    /// Decode into owned messages before handing on.
    Full,
}

/// The export request of protobuf `bytes` by `mode`: validated bytes or a decoded message.
/// Malformed input is an `InvalidArgument` error either way.
pub fn protobuf_request<S: Signal>(
    mode: DecodeMode,
    bytes: Bytes,
) -> Result<ExportRequest<S>, ExportError> {
    match mode {
        DecodeMode::Full => ExportRequest::<S>::from_protobuf(bytes),
        DecodeMode::Validate => {
            let items = validate_request(S::KIND, &bytes).map_err(|e| {
                ExportError::invalid_argument(format!("malformed {} request: {e}", S::KIND))
            })?;
            Ok(ExportRequest::from_encoded(bytes, items))
        }
    }
}

struct Frame {
    message: usize,
    end: usize,
    /// The field of the parent this message is the value of.
    field: usize,
    items: usize,
    oneof_field: usize,
    oneof_items: usize,
}

/// Why validation stopped, kept small so that the hot path's results stay in registers
/// (a `CodecError` is a few words of heap-owning fields); made a `CodecError` once, at the
/// end.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// What is wrong, and the byte offset.
    At(&'static str, usize),
    /// A known field with a wire type its type cannot have.
    WireType {
        number: usize,
        wire: u8,
        message: usize,
        offset: usize,
    },
}

fn error(message: &'static str, offset: usize) -> Fault {
    Fault::At(message, offset)
}

impl From<Fault> for CodecError {
    fn from(fault: Fault) -> Self {
        let (message, offset) = match fault {
            Fault::At(message, offset) => (message.to_string(), offset),
            Fault::WireType {
                number,
                wire,
                message,
                offset,
            } => (
                format!(
                    "field {number} of {} has wire type {wire}, which its type cannot have",
                    MESSAGES[message].name
                ),
                offset,
            ),
        };
        CodecError::invalid(format!("malformed protobuf: {message}")).with_offset(offset)
    }
}

/// Reads a varint ending at or before `end`. Keys, lengths and most values are one byte,
/// read inline; longer varints take the out-of-line path.
#[inline(always)]
fn varint(bytes: &[u8], pos: usize, end: usize) -> Result<(u64, usize), Fault> {
    if pos < end
        && let Some(&byte) = bytes.get(pos)
        && byte < 0x80
    {
        return Ok((u64::from(byte), pos + 1));
    }
    long_varint(bytes, pos, end)
}

#[inline(never)]
fn long_varint(bytes: &[u8], mut pos: usize, end: usize) -> Result<(u64, usize), Fault> {
    let start = pos;
    let mut value = 0u64;
    for shift in 0..10 {
        if pos >= end {
            return Err(error("truncated varint", start));
        }
        let byte = bytes[pos];
        pos += 1;
        if shift == 9 && byte > 1 {
            return Err(error("varint longer than 64 bits", start));
        }
        value |= u64::from(byte & 0x7f) << (shift * 7);
        if byte < 0x80 {
            return Ok((value, pos));
        }
    }
    Err(error("varint longer than 10 bytes", start))
}

#[inline]
fn length(bytes: &[u8], pos: usize, end: usize) -> Result<(usize, usize), Fault> {
    let (len, pos) = varint(bytes, pos, end)?;
    match usize::try_from(len) {
        Ok(len) if len <= end - pos => Ok((len, pos)),
        _ => Err(error("length beyond the end of the message", pos)),
    }
}

#[inline]
fn fixed(pos: usize, size: usize, end: usize) -> Result<usize, Fault> {
    if end - pos < size {
        Err(error("truncated fixed-width value", pos))
    } else {
        Ok(pos + size)
    }
}

fn validate(bytes: &[u8], root: usize) -> Result<usize, CodecError> {
    walk(bytes, root).map_err(CodecError::from)
}

fn walk(bytes: &[u8], root: usize) -> Result<usize, Fault> {
    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    let mut frame = Frame {
        message: root,
        end: bytes.len(),
        field: 0,
        items: 0,
        oneof_field: 0,
        oneof_items: 0,
    };
    let mut pos = 0;
    loop {
        if pos == frame.end {
            let items = frame.items + frame.oneof_items;
            let Some(mut parent) = stack.pop() else {
                return Ok(items);
            };
            let field = &MESSAGES[parent.message].fields[frame.field];
            if field.oneof {
                if parent.oneof_field == frame.field {
                    parent.oneof_items += items;
                } else {
                    parent.oneof_field = frame.field;
                    parent.oneof_items = items;
                }
            } else {
                parent.items += items + usize::from(field.item);
            }
            frame = parent;
            continue;
        }
        let key_at = pos;
        let (key, next) = varint(bytes, pos, frame.end)?;
        pos = next;
        let number = usize::try_from(key >> 3).unwrap_or(usize::MAX);
        if key > u64::from(u32::MAX) || number == 0 {
            return Err(error("invalid field key", key_at));
        }
        let wire = (key & 7) as u8;
        let field = MESSAGES[frame.message]
            .fields
            .get(number)
            .copied()
            .unwrap_or(WireField::UNKNOWN);
        if field.oneof && !matches!(field.kind, WireKind::Message(_)) {
            frame.oneof_field = number;
            frame.oneof_items = 0;
        }
        pos = match (field.kind, wire) {
            (WireKind::Unknown, _) => skip(bytes, pos, frame.end, wire, number, stack.len())?,
            (WireKind::Varint | WireKind::RepeatedVarint, 0) => varint(bytes, pos, frame.end)?.1,
            (WireKind::Fixed64 | WireKind::RepeatedFixed64, 1) => fixed(pos, 8, frame.end)?,
            (WireKind::Fixed32 | WireKind::RepeatedFixed32, 5) => fixed(pos, 4, frame.end)?,
            (WireKind::RepeatedVarint, 2) => {
                let (len, start) = length(bytes, pos, frame.end)?;
                let mut at = start;
                while at < start + len {
                    at = varint(bytes, at, start + len)?.1;
                }
                at
            }
            (WireKind::RepeatedFixed64, 2) => packed_fixed(bytes, pos, frame.end, 8)?,
            (WireKind::RepeatedFixed32, 2) => packed_fixed(bytes, pos, frame.end, 4)?,
            (WireKind::Bytes, 2) => {
                let (len, start) = length(bytes, pos, frame.end)?;
                start + len
            }
            (WireKind::String, 2) => {
                let (len, start) = length(bytes, pos, frame.end)?;
                let text = &bytes[start..start + len];
                // Names and attribute values are nearly always ASCII, checked a word at a
                // time; a string that is not gets the full UTF-8 check.
                if !text.is_ascii() && std::str::from_utf8(text).is_err() {
                    return Err(error("string is not valid UTF-8", start));
                }
                start + len
            }
            (WireKind::Message(message), 2) => {
                let (len, start) = length(bytes, pos, frame.end)?;
                // The child is at level stack.len() + 1 below the root.
                if stack.len() + 1 > MAX_DEPTH {
                    return Err(error("messages nested too deeply", start));
                }
                let child = Frame {
                    message,
                    end: start + len,
                    field: number,
                    items: 0,
                    oneof_field: 0,
                    oneof_items: 0,
                };
                stack.push(std::mem::replace(&mut frame, child));
                start
            }
            (_, wire) => {
                return Err(Fault::WireType {
                    number,
                    wire,
                    message: frame.message,
                    offset: key_at,
                });
            }
        };
    }
}

fn packed_fixed(bytes: &[u8], pos: usize, end: usize, size: usize) -> Result<usize, Fault> {
    let (len, start) = length(bytes, pos, end)?;
    if !len.is_multiple_of(size) {
        return Err(error(
            "packed fixed-width values of a partial length",
            start,
        ));
    }
    Ok(start + len)
}

/// Skips the value of an unknown field; groups are skipped to their matching end.
fn skip(
    bytes: &[u8],
    pos: usize,
    end: usize,
    wire: u8,
    number: usize,
    depth: usize,
) -> Result<usize, Fault> {
    match wire {
        0 => Ok(varint(bytes, pos, end)?.1),
        1 => fixed(pos, 8, end),
        5 => fixed(pos, 4, end),
        2 => {
            let (len, start) = length(bytes, pos, end)?;
            Ok(start + len)
        }
        3 => {
            // Open groups, innermost last; each counts towards the nesting limit.
            let mut open = vec![number];
            let mut pos = pos;
            while let Some(&innermost) = open.last() {
                if depth + open.len() > MAX_DEPTH {
                    return Err(error("groups nested too deeply", pos));
                }
                let key_at = pos;
                let (key, next) = varint(bytes, pos, end)?;
                pos = next;
                let inner = usize::try_from(key >> 3).unwrap_or(usize::MAX);
                if key > u64::from(u32::MAX) || inner == 0 {
                    return Err(error("invalid field key", key_at));
                }
                match (key & 7) as u8 {
                    4 if inner == innermost => {
                        open.pop();
                    }
                    4 => return Err(error("unmatched end of group", key_at)),
                    3 => open.push(inner),
                    wire => pos = skip(bytes, pos, end, wire, inner, depth + open.len())?,
                }
            }
            Ok(pos)
        }
        4 => Err(error("end of a group that was not started", pos)),
        _ => Err(error("invalid wire type", pos)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_roots_it_names() {
        assert!(
            MESSAGES[EXPORT_TRACE_SERVICE_REQUEST]
                .name
                .ends_with("ExportTraceServiceRequest")
        );
        assert!(
            MESSAGES[EXPORT_METRICS_SERVICE_REQUEST]
                .name
                .ends_with("ExportMetricsServiceRequest")
        );
        assert!(
            MESSAGES[EXPORT_LOGS_SERVICE_REQUEST]
                .name
                .ends_with("ExportLogsServiceRequest")
        );
        assert!(MESSAGES[STREAM_BATCH].name.ends_with("StreamBatch"));
    }

    #[test]
    fn varints_are_checked_like_prost() {
        assert_eq!(varint(&[0x96, 0x01], 0, 2).expect("valid"), (150, 2));
        assert!(varint(&[0x96], 0, 1).is_err());
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&max, 0, 10).expect("u64::MAX").0, u64::MAX);
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(varint(&over, 0, 10).is_err());
    }
}
