//! The client of `ExportStream`: one batch, then its acknowledgements as they come — RECEIVED
//! once the server holds the batch, COMPLETED when its pipeline has finished with it.

use std::sync::Arc;

use hyper::body::Incoming;
use otlp_compression::Compression;
use otlp_core::{AnyExportRequest, ExportError};
use otlp_model::stream::StreamAck;
use prost::Message;

use super::{GrpcExporter, error_of_headers, response_encoding};
use crate::body::{GrpcBody, next_frame};
use crate::framing::{FrameDecoder, FrameLimits};
use crate::protocol::EXPORT_STREAM_PATH;
use crate::status::error_from_trailers;

/// The acknowledgements of one `ExportStream` call, read with [`StagedExport::next_ack`].
#[derive(Debug)]
pub struct StagedExport {
    body: Incoming,
    decoder: FrameDecoder,
    encoding: Option<Arc<dyn Compression>>,
    trailers: Option<http::HeaderMap>,
    finished: bool,
}

impl StagedExport {
    /// The next acknowledgement; `None` when the call has ended with OK, an error when it
    /// ended otherwise or broke.
    pub async fn next_ack(&mut self) -> Option<Result<StreamAck, ExportError>> {
        if self.finished {
            return None;
        }
        match next_frame(
            &mut self.body,
            &mut self.decoder,
            &mut self.trailers,
            &mut otlp_net::budget::Admission::default(),
        )
        .await
        {
            Ok(Some(frame)) => Some(
                self.decoder
                    .message(frame, self.encoding.as_deref())
                    .and_then(|message| {
                        StreamAck::decode(message).map_err(|e| {
                            ExportError::internal("malformed StreamAck").with_source(e)
                        })
                    }),
            ),
            Ok(None) => {
                self.finished = true;
                let trailers = self.trailers.take().unwrap_or_default();
                error_from_trailers(&trailers).map(Err)
            }
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}

impl GrpcExporter {
    /// Sends one batch with the server-streaming `ExportStream` call and returns its
    /// acknowledgements as they arrive (see `docs/grpc.md`).
    ///
    /// The whole call is bounded by the exporter's timeout only until the response
    /// headers arrive; waiting for the acknowledgements is the caller's to bound.
    pub async fn export_staged(
        &self,
        request: &AnyExportRequest,
        sequence: u64,
    ) -> Result<StagedExport, ExportError> {
        let config = &self.inner.config;
        let message = otlp_stream::envelope::encode_batch(sequence, request).0;
        let allowed = match request {
            AnyExportRequest::Traces(r) => r.compression_allowed(),
            AnyExportRequest::Metrics(r) => r.compression_allowed(),
            AnyExportRequest::Logs(r) => r.compression_allowed(),
        };
        let compression = config.compression.as_ref().filter(|_| allowed);
        let body = self.frame(vec![message], compression.map(|c| c.as_ref()))?;
        let http_request = self.request(EXPORT_STREAM_PATH, compression, GrpcBody::framed(body));
        let response = tokio::time::timeout(config.timeout, self.channel().send(http_request))
            .await
            .map_err(|_| ExportError::timeout("no answer within the deadline"))??;
        if let Some(error) = error_of_headers(&response, compression) {
            return Err(error);
        }
        let encoding = response_encoding(response.headers(), config)?;
        Ok(StagedExport {
            body: response.into_body(),
            decoder: FrameDecoder::new(FrameLimits {
                max_message_bytes: config.max_response_bytes,
                max_frame_bytes: config.max_response_bytes,
            }),
            encoding,
            trailers: None,
            finished: false,
        })
    }
}
