//! Subprotocols and messages of the binding (`docs/websocket.md`): which encoding a
//! connection speaks, and batches and acknowledgements in and out of WebSocket messages.

use std::sync::Arc;

use bytes::Bytes;
use otlp_codec::{Codec, Json};
use otlp_compression::{Compression, CompressionSet};
use otlp_core::{AnyExportRequest, ExportError, ExportRequest};
use otlp_model::stream::stream_batch::Payload;
use otlp_model::stream::{StreamAck, StreamBatch};
use otlp_net::budget::Admission;
use otlp_net::intake::{Intake, IntakeStats};
use otlp_stream::envelope::{Batch, encode_batch, with_batch_id};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

/// The protobuf subprotocol (binary messages).
pub const PROTOBUF: &str = "otlp-stream.v1.protobuf";
/// The OTLP/JSON subprotocol (text messages), for browsers.
pub const JSON: &str = "otlp-stream.v1.json";

/// What a connection speaks, chosen by subprotocol.
#[derive(Clone)]
pub enum Encoding {
    /// Protobuf in binary messages, each compressed with the algorithm if there is one.
    Protobuf(Option<Arc<dyn Compression>>),
    /// OTLP/JSON in text messages.
    Json,
}

impl std::fmt::Debug for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.subprotocol())
    }
}

impl Encoding {
    /// Protobuf with `algorithm`.
    pub fn compressed(algorithm: impl Compression) -> Self {
        Encoding::Protobuf(Some(Arc::new(algorithm)))
    }

    /// What a client offers in its handshake (`Sec-WebSocket-Protocol`): the subprotocol,
    /// and after a compressed one plain protobuf, which a receiver that lacks the
    /// algorithm chooses instead of refusing the connection.
    pub fn offered(&self) -> String {
        match self {
            Encoding::Protobuf(Some(_)) => format!("{}, {PROTOBUF}", self.subprotocol()),
            _ => self.subprotocol(),
        }
    }

    /// The encoding a client speaks once the receiver chose `chosen` from what it
    /// [offered](Encoding::offered): plain protobuf if that is the choice, itself otherwise.
    pub fn as_chosen(&self, chosen: Option<&str>) -> Self {
        match (self, chosen.map(str::trim)) {
            (Encoding::Protobuf(Some(_)), Some(PROTOBUF)) => Encoding::Protobuf(None),
            _ => self.clone(),
        }
    }

    /// The subprotocol name.
    pub fn subprotocol(&self) -> String {
        match self {
            Encoding::Json => JSON.to_string(),
            Encoding::Protobuf(None) => PROTOBUF.to_string(),
            Encoding::Protobuf(Some(algorithm)) => format!(
                "{PROTOBUF}+{}",
                algorithm.http_name().unwrap_or_else(|| algorithm.name())
            ),
        }
    }

    /// The encoding a subprotocol name stands for, if `algorithms` has what it needs.
    pub fn parse(name: &str, algorithms: &CompressionSet) -> Option<Self> {
        let name = name.trim();
        if name == JSON {
            return Some(Encoding::Json);
        }
        if name == PROTOBUF {
            return Some(Encoding::Protobuf(None));
        }
        let encoding = name.strip_prefix(PROTOBUF)?.strip_prefix('+')?;
        algorithms
            .by_http_name(encoding)
            .map(|a| Encoding::Protobuf(Some(a.clone())))
    }

    /// The first supported of the offered subprotocols (a `Sec-WebSocket-Protocol` value).
    pub fn choose(offered: &str, algorithms: &CompressionSet) -> Option<Self> {
        offered
            .split(',')
            .find_map(|name| Self::parse(name, algorithms))
    }

    /// The message carrying batch `sequence` of `request`.
    pub fn batch_message(
        &self,
        sequence: u64,
        request: &AnyExportRequest,
    ) -> Result<Message, ExportError> {
        match self {
            Encoding::Protobuf(compression) => {
                let (bytes, _) = encode_batch(sequence, request);
                Ok(Message::Binary(compress(compression.as_deref(), bytes)?))
            }
            Encoding::Json => {
                // The envelope is written around the request's own JSON, so the request is
                // encoded in place, never copied into a StreamBatch first.
                let json = Json::default();
                let mut out = format!("{{\"sequence\":\"{sequence}\",").into_bytes();
                let encoded = match request {
                    AnyExportRequest::Traces(r) => {
                        out.extend_from_slice(b"\"traces\":");
                        json.encode(r.message()?.as_ref(), &mut out)
                    }
                    AnyExportRequest::Metrics(r) => {
                        out.extend_from_slice(b"\"metrics\":");
                        json.encode(r.message()?.as_ref(), &mut out)
                    }
                    AnyExportRequest::Logs(r) => {
                        out.extend_from_slice(b"\"logs\":");
                        json.encode(r.message()?.as_ref(), &mut out)
                    }
                };
                encoded.map_err(|e| ExportError::codec(e.to_string()))?;
                let id = batch_id_of(request);
                if !id.is_empty() {
                    use base64::Engine as _;
                    let id = base64::engine::general_purpose::STANDARD.encode(&id);
                    out.extend_from_slice(format!(",\"batchId\":\"{id}\"").as_bytes());
                }
                out.push(b'}');
                let text = String::from_utf8(out)
                    .map_err(|_| ExportError::codec("OTLP/JSON output is not UTF-8"))?;
                Ok(Message::text(text))
            }
        }
    }

    /// The batch a received message carries, taken in by `intake` (protobuf: decompressed
    /// with both copies held in `admission`, then validated or decoded; JSON: decoded). A
    /// failure names the batch's sequence when it is readable, so that the batch alone can
    /// be refused; every failure is counted as a refusal.
    pub fn read_batch<Svc, St: AsRef<IntakeStats>>(
        &self,
        message: Message,
        intake: &Intake<Svc, St>,
        admission: &mut Admission,
    ) -> Result<Batch, (Option<u64>, ExportError)> {
        match (self, message) {
            (Encoding::Protobuf(compression), Message::Binary(bytes)) => {
                let bytes = intake
                    .decompress(bytes, compression.as_deref(), admission)
                    .map_err(|e| (None, e))?;
                intake.stream_batch(bytes)
            }
            (Encoding::Json, Message::Text(text)) => {
                let batch: StreamBatch = Json::default()
                    .decode(Bytes::from(text.as_bytes().to_vec()))
                    .map_err(|e| {
                        let error =
                            ExportError::invalid_argument(format!("malformed StreamBatch: {e}"));
                        (None, intake.refused(error))
                    })?;
                let sequence = batch.sequence;
                let request = match batch.payload {
                    Some(Payload::Traces(r)) => AnyExportRequest::Traces(ExportRequest::new(r)),
                    Some(Payload::Metrics(r)) => AnyExportRequest::Metrics(ExportRequest::new(r)),
                    Some(Payload::Logs(r)) => AnyExportRequest::Logs(ExportRequest::new(r)),
                    None => {
                        let error = ExportError::invalid_argument("the batch carries no payload");
                        return Err((Some(sequence), intake.refused(error)));
                    }
                };
                let id = (!batch.batch_id.is_empty()).then(|| batch.batch_id.to_vec());
                let request = match <[u8; 16]>::try_from(batch.batch_id.as_ref()) {
                    Ok(id) => with_batch_id(request, otlp_core::BatchId(id)),
                    Err(_) => request,
                };
                Ok((sequence, id, request))
            }
            (_, _) => Err((
                None,
                intake.refused(ExportError::new(
                    otlp_core::ErrorKind::UnsupportedMediaType,
                    "a message of the wrong kind for the subprotocol",
                )),
            )),
        }
    }

    /// The message carrying an acknowledgement (never compressed).
    pub fn ack_message(&self, ack: &StreamAck) -> Message {
        match self {
            Encoding::Protobuf(_) => Message::Binary(Bytes::from(ack.encode_to_vec())),
            Encoding::Json => {
                let mut out = Vec::new();
                let _ = Json::default().encode(ack, &mut out);
                Message::text(String::from_utf8(out).unwrap_or_default())
            }
        }
    }

    /// The acknowledgement a received message carries.
    pub fn read_ack(&self, message: Message) -> Result<StreamAck, ExportError> {
        let malformed = |e: String| ExportError::internal(format!("malformed StreamAck: {e}"));
        match (self, message) {
            (Encoding::Protobuf(_), Message::Binary(bytes)) => {
                StreamAck::decode(bytes).map_err(|e| malformed(e.to_string()))
            }
            (Encoding::Json, Message::Text(text)) => Json::default()
                .decode(Bytes::from(text.as_bytes().to_vec()))
                .map_err(|e: otlp_codec::CodecError| malformed(e.to_string())),
            _ => Err(malformed("a message of the wrong kind".into())),
        }
    }
}

fn batch_id_of(request: &AnyExportRequest) -> Bytes {
    let id = match request {
        AnyExportRequest::Traces(r) => r.batch_id(),
        AnyExportRequest::Metrics(r) => r.batch_id(),
        AnyExportRequest::Logs(r) => r.batch_id(),
    };
    id.map_or_else(Bytes::new, |id| Bytes::copy_from_slice(&id.0))
}

fn compress(algorithm: Option<&dyn Compression>, bytes: Bytes) -> Result<Bytes, ExportError> {
    match algorithm {
        None => Ok(bytes),
        Some(algorithm) => {
            let mut out = Vec::with_capacity(bytes.len() / 4);
            algorithm.compress(&bytes, &mut out)?;
            Ok(Bytes::from(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocols_name_and_choose_encodings() {
        let set = CompressionSet::with_defaults();
        let chosen = Encoding::choose(
            "x-unknown, otlp-stream.v1.protobuf+zstd, otlp-stream.v1.json",
            &set,
        )
        .expect("one is supported");
        assert_eq!(chosen.subprotocol(), "otlp-stream.v1.protobuf+zstd");
        assert!(Encoding::choose("otlp-stream.v1.protobuf+brotli", &set).is_none());
        assert_eq!(
            Encoding::choose(JSON, &set).map(|e| e.subprotocol()),
            Some(JSON.to_string())
        );
    }

    #[test]
    fn the_json_envelope_is_a_stream_batch_with_its_id() {
        let message = otlp_model::collector::logs::ExportLogsServiceRequest::default();
        let request = AnyExportRequest::Logs(
            ExportRequest::new(message.clone()).with_batch_id(otlp_core::BatchId([7; 16])),
        );
        let Message::Text(text) = Encoding::Json.batch_message(42, &request).expect("encode")
        else {
            panic!("a text message");
        };
        let batch: StreamBatch = Json::default()
            .decode(Bytes::from(text.as_bytes().to_vec()))
            .expect("a StreamBatch");
        assert_eq!(batch.sequence, 42);
        assert_eq!(batch.batch_id.as_ref(), &[7; 16]);
        assert_eq!(batch.payload, Some(Payload::Logs(message)));
    }
}
