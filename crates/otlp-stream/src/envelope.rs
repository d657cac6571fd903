//! The envelope on the wire: `StreamBatch` messages built around a request's protobuf bytes
//! and taken apart again, validated without decoding when asked, so that both streaming
//! transports (gRPC, WebSocket) carry batches the same way.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use bytes::{BufMut, Bytes, BytesMut};
use otlp_codec::validate::DecodeMode;
use otlp_core::{AnyExportRequest, BatchId, ExportError, ExportRequest};
use otlp_model::stream::StreamBatch;
use otlp_model::stream::stream_batch::Payload;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

/// A batch as received: its sequence number, its id (if any) and its request.
pub type Batch = (u64, Option<Vec<u8>>, AnyExportRequest);

/// Decodes a `StreamBatch`: validated and split without decoding the payload
/// ([`DecodeMode::Validate`]), or decoded.
pub fn decode_batch(mode: DecodeMode, message: Bytes) -> Result<Batch, ExportError> {
    match mode {
        DecodeMode::Full => decode_batch_fully(message),
        DecodeMode::Validate => {
            let items = otlp_codec::validate::validate_stream_batch(&message).map_err(|e| {
                ExportError::invalid_argument(format!("malformed StreamBatch: {e}"))
            })?;
            split_batch(message, items)
        }
    }
}

/// The fields of a validated `StreamBatch`, the payload kept as bytes. Protobuf merges a
/// repeated message field by concatenation, and a oneof keeps its last member, so the
/// payload is the concatenation of the last member's occurrences since the member changed.
fn split_batch(message: Bytes, items: usize) -> Result<Batch, ExportError> {
    use prost::encoding::decode_varint;
    let malformed = || ExportError::invalid_argument("malformed StreamBatch");
    let mut rest = message.clone();
    let mut sequence = 0;
    let mut payload: Option<(u64, Vec<Bytes>)> = None;
    let mut batch_id = Bytes::new();
    while !rest.is_empty() {
        let key = decode_varint(&mut rest).map_err(|_| malformed())?;
        let (number, wire) = (key >> 3, key & 7);
        match (number, wire) {
            (1, 0) => sequence = decode_varint(&mut rest).map_err(|_| malformed())?,
            (_, 2) => {
                let len = usize::try_from(decode_varint(&mut rest).map_err(|_| malformed())?)
                    .map_err(|_| malformed())?;
                if len > rest.len() {
                    return Err(malformed());
                }
                let value = rest.split_to(len);
                match number {
                    2..=4 => match &mut payload {
                        Some((member, parts)) if *member == number => parts.push(value),
                        _ => payload = Some((number, vec![value])),
                    },
                    5 => batch_id = value,
                    _ => {}
                }
            }
            // Unknown fields of other wire types: the validator accepted them; skip.
            (_, 0) => {
                decode_varint(&mut rest).map_err(|_| malformed())?;
            }
            (_, 1) if rest.len() >= 8 => drop(rest.split_to(8)),
            (_, 5) if rest.len() >= 4 => drop(rest.split_to(4)),
            // A group in an unknown field (valid, and never written by anyone today).
            (_, 3) => return decode_batch_fully(message),
            _ => return Err(malformed()),
        }
    }
    let Some((member, parts)) = payload else {
        return Err(ExportError::invalid_argument(format!(
            "batch {sequence} carries no payload"
        )));
    };
    let bytes = if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        Bytes::from(parts.concat())
    };
    let request = match member {
        2 => AnyExportRequest::Traces(ExportRequest::from_encoded(bytes, items)),
        3 => AnyExportRequest::Metrics(ExportRequest::from_encoded(bytes, items)),
        _ => AnyExportRequest::Logs(ExportRequest::from_encoded(bytes, items)),
    };
    let id = (!batch_id.is_empty()).then(|| batch_id.to_vec());
    let request = match <[u8; 16]>::try_from(batch_id.as_ref()) {
        Ok(id) => with_batch_id(request, BatchId(id)),
        Err(_) => request,
    };
    Ok((sequence, id, request))
}

fn decode_batch_fully(message: Bytes) -> Result<Batch, ExportError> {
    let batch = StreamBatch::decode(message)
        .map_err(|e| ExportError::invalid_argument("malformed StreamBatch").with_source(e))?;
    let request: AnyExportRequest = match batch.payload {
        Some(Payload::Traces(r)) => AnyExportRequest::Traces(ExportRequest::new(r)),
        Some(Payload::Metrics(r)) => AnyExportRequest::Metrics(ExportRequest::new(r)),
        Some(Payload::Logs(r)) => AnyExportRequest::Logs(ExportRequest::new(r)),
        None => {
            return Err(ExportError::invalid_argument(format!(
                "batch {} carries no payload",
                batch.sequence
            )));
        }
    };
    let id = (!batch.batch_id.is_empty()).then(|| batch.batch_id.to_vec());
    let request = match <[u8; 16]>::try_from(batch.batch_id.as_ref()) {
        Ok(id) => with_batch_id(request, BatchId(id)),
        Err(_) => request,
    };
    Ok((batch.sequence, id, request))
}

/// `request` with the batch id `id`.
pub fn with_batch_id(request: AnyExportRequest, id: BatchId) -> AnyExportRequest {
    match request {
        AnyExportRequest::Traces(r) => r.with_batch_id(id).into(),
        AnyExportRequest::Metrics(r) => r.with_batch_id(id).into(),
        AnyExportRequest::Logs(r) => r.with_batch_id(id).into(),
    }
}

/// The `sequence` of a batch that may be malformed elsewhere: its first field, if that is
/// field 1 as a varint (how every encoder writes it).
pub fn peek_sequence(message: &[u8]) -> Option<u64> {
    let mut rest = message;
    let key = prost::encoding::decode_varint(&mut rest).ok()?;
    (key == 1 << 3)
        .then(|| prost::encoding::decode_varint(&mut rest).ok())
        .flatten()
}

/// Encodes a `StreamBatch` around the request's protobuf bytes without decoding them (the
/// payload fields are wire-compatible with `bytes`).
pub fn encode_batch(sequence: u64, request: &AnyExportRequest) -> (Bytes, Option<BatchId>) {
    // The payload's pieces are written in place: a batch's are joined only here.
    let (tag, pieces, id) = match request {
        AnyExportRequest::Traces(r) => (2, r.protobuf_pieces(), r.batch_id()),
        AnyExportRequest::Metrics(r) => (3, r.protobuf_pieces(), r.batch_id()),
        AnyExportRequest::Logs(r) => (4, r.protobuf_pieces(), r.batch_id()),
    };
    let len: usize = pieces.iter().map(Bytes::len).sum();
    let mut out = BytesMut::with_capacity(len + 48);
    encode_key(1, WireType::Varint, &mut out);
    encode_varint(sequence, &mut out);
    encode_key(tag, WireType::LengthDelimited, &mut out);
    encode_varint(len as u64, &mut out);
    for piece in &pieces {
        out.put_slice(piece);
    }
    if let Some(BatchId(id)) = id {
        encode_key(5, WireType::LengthDelimited, &mut out);
        encode_varint(16, &mut out);
        out.put_slice(&id);
    }
    (out.freeze(), id)
}

/// `request` with the batch id `id`, unless it has one already.
pub fn with_id(request: AnyExportRequest, id: BatchId) -> AnyExportRequest {
    match request {
        AnyExportRequest::Traces(r) if r.batch_id().is_none() => r.with_batch_id(id).into(),
        AnyExportRequest::Metrics(r) if r.batch_id().is_none() => r.with_batch_id(id).into(),
        AnyExportRequest::Logs(r) if r.batch_id().is_none() => r.with_batch_id(id).into(),
        other => other,
    }
}

/// Batch ids for one sender: a random prefix per sender, then counted, so they never repeat within it and
/// collide across exporters only by chance (2^-64 per pair).
pub struct BatchIds {
    prefix: u64,
    next: u64,
}

impl Default for BatchIds {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchIds {
    /// A source with a fresh random prefix.
    pub fn new() -> Self {
        let random = |salt: u64| {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(salt);
            hasher.finish()
        };
        Self {
            prefix: random(1),
            next: random(2),
        }
    }

    /// The next id.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> BatchId {
        self.next = self.next.wrapping_add(1);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.prefix.to_be_bytes());
        id[8..].copy_from_slice(&self.next.to_be_bytes());
        BatchId(id)
    }
}
