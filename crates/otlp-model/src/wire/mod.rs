//! Export requests as bytes: batching, splitting and routing reads over validated protobuf
//! without building messages.
//!
//! A receiver that validated a request's protobuf (as `otlp_codec::validate` does, as
//! strictly as a decode) has no need to decode it only to batch it: [`Encoded`] keeps the
//! request as its resource groups, [`Encoded::append`] concatenates them (protobuf repeated
//! fields concatenate) and [`Encoded::split`] cuts at item boundaries, rebuilding only the
//! group cut at a part boundary. [`ResourceView`] reads routing fields (resource attributes,
//! trace ids) from the same bytes. Owned messages stay one [`Encoded::decode`] away.
//!
//! [`Batchable`] is what a batcher needs of what it batches; owned messages, [`Encoded`]
//! and [`Payload`] (either, as requests arrive) all have it.

mod encoded;
mod reader;
mod view;

pub use encoded::{COALESCE_BELOW, Encoded, WireLayout};
pub use view::{ElementView, ResourceView};

use crate::SignalRequest;

/// Encoded bytes that are not the protobuf they should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf at byte {offset}: {message}")]
pub struct WireError {
    message: std::borrow::Cow<'static, str>,
    offset: usize,
}

impl WireError {
    pub(crate) fn new(message: &'static str, offset: usize) -> Self {
        Self {
            message: message.into(),
            offset,
        }
    }

    pub(crate) fn new_owned(message: String, offset: usize) -> Self {
        Self {
            message: message.into(),
            offset,
        }
    }
}

/// What a batcher does with requests: count their items and bytes, append one to another,
/// and cut one into parts of at most N items that keep each item's resource and scope.
pub trait Batchable: Sized + Send + 'static {
    /// Spans, metric data points or log records held.
    fn item_count(&self) -> usize;
    /// The size of the protobuf encoding.
    fn encoded_len(&self) -> usize;
    /// Appends the items of `other` after those of `self`, without merging groups.
    fn append(&mut self, other: Self);
    /// Parts of at most `max_items` items (`0` is taken as `1`), in order.
    fn split(self, max_items: usize) -> Vec<Self>;
}

impl<R: SignalRequest> Batchable for R {
    fn item_count(&self) -> usize {
        SignalRequest::item_count(self)
    }
    fn encoded_len(&self) -> usize {
        prost::Message::encoded_len(self)
    }
    fn append(&mut self, other: Self) {
        SignalRequest::append(self, other);
    }
    fn split(self, max_items: usize) -> Vec<Self> {
        SignalRequest::split(self, max_items)
    }
}

impl<R: WireLayout> Batchable for Encoded<R> {
    fn item_count(&self) -> usize {
        Encoded::item_count(self)
    }
    fn encoded_len(&self) -> usize {
        Encoded::encoded_len(self)
    }
    fn append(&mut self, other: Self) {
        Encoded::append(self, other);
    }
    fn split(self, max_items: usize) -> Vec<Self> {
        Encoded::split(self, max_items)
    }
}

/// A request as it arrived: an owned message, or validated bytes. Batching keeps bytes as
/// bytes and messages as messages; where the two meet, the message is encoded (an encode
/// is several times cheaper than the decode the other way).
#[derive(Debug, Clone)]
pub enum Payload<R> {
    /// An owned message.
    Message(R),
    /// Protobuf bytes, by resource group.
    Encoded(Encoded<R>),
}

impl<R: WireLayout> Payload<R> {
    /// The bytes form, encoding a message.
    pub fn into_encoded(self) -> Encoded<R> {
        match self {
            Payload::Message(message) => Encoded::from_message(&message),
            Payload::Encoded(encoded) => encoded,
        }
    }
}

impl<R: WireLayout> Batchable for Payload<R> {
    fn item_count(&self) -> usize {
        match self {
            Payload::Message(message) => SignalRequest::item_count(message),
            Payload::Encoded(encoded) => encoded.item_count(),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Payload::Message(message) => prost::Message::encoded_len(message),
            Payload::Encoded(encoded) => encoded.encoded_len(),
        }
    }

    fn append(&mut self, other: Self) {
        let this = std::mem::replace(self, Payload::Encoded(Encoded::default()));
        *self = match (this, other) {
            (Payload::Message(mut a), Payload::Message(b)) => {
                SignalRequest::append(&mut a, b);
                Payload::Message(a)
            }
            (a, b) => {
                let mut a = a.into_encoded();
                a.append(b.into_encoded());
                Payload::Encoded(a)
            }
        };
    }

    fn split(self, max_items: usize) -> Vec<Self> {
        match self {
            Payload::Message(message) => SignalRequest::split(message, max_items)
                .into_iter()
                .map(Payload::Message)
                .collect(),
            Payload::Encoded(encoded) => encoded
                .split(max_items)
                .into_iter()
                .map(Payload::Encoded)
                .collect(),
        }
    }
}
