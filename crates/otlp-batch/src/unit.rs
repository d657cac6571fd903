//! What the batching task holds of a request between its arrival and its export.

use otlp_core::{ExportError, ExportRequest, Logs, Metrics, Signal, Traces};
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_model::wire::{Batchable, Encoded, Payload};

/// A request as the batching task keeps it: [`Payload`] (the default: bytes stay bytes, so a
/// relay batches without decoding) or the signal's owned message (for strategies that look
/// inside items, such as [`Prioritized`](crate::Prioritized)).
pub trait BatchUnit<S: Signal>: Batchable {
    /// The unit of a request; an error for encoded bytes that are not what they claim.
    fn from_request(request: ExportRequest<S>) -> Result<Self, ExportError>;
    /// The request that exports the unit.
    fn into_request(self) -> ExportRequest<S>;
}

impl<S: Signal> BatchUnit<S> for Payload<S::Request> {
    fn from_request(request: ExportRequest<S>) -> Result<Self, ExportError> {
        if request.is_encoded() {
            // The validated bytes are shared, not copied; reading their groups walks the
            // framing down to the items, not into them.
            Encoded::new(request.to_protobuf())
                .map(Payload::Encoded)
                .map_err(|e| ExportError::invalid_argument(e.to_string()))
        } else {
            request.into_message().map(Payload::Message)
        }
    }

    fn into_request(self) -> ExportRequest<S> {
        match self {
            Payload::Message(message) => ExportRequest::new(message),
            Payload::Encoded(encoded) => {
                let items = encoded.item_count();
                // Written as pieces by a transport that can, joined by one that cannot.
                ExportRequest::from_encoded_pieces(encoded.to_pieces(), items)
            }
        }
    }
}

macro_rules! message_unit {
    ($signal:ty, $request:ty) => {
        impl BatchUnit<$signal> for $request {
            fn from_request(request: ExportRequest<$signal>) -> Result<Self, ExportError> {
                request.into_message()
            }

            fn into_request(self) -> ExportRequest<$signal> {
                ExportRequest::new(self)
            }
        }
    };
}

message_unit!(Traces, ExportTraceServiceRequest);
message_unit!(Metrics, ExportMetricsServiceRequest);
message_unit!(Logs, ExportLogsServiceRequest);
