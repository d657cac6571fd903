//! The compression checks: a compressed request arrives intact, and a receiver that
//! accepts no compression still gets the request, uncompressed.

use otlp_core::{AnyExportRequest, ErrorKind, ExportRequest, Traces};

use super::{MAX_REQUEST, ReceiverSettings, Transport, exchange, recording_service};
use crate::realistic;

/// Sends one traces request through the transport's compressing exporter to a receiver
/// that accepts compression or not, resending it uncompressed (as the retry layer does)
/// if the exporter reports the encoding refused; checks that the service saw it once,
/// exactly as sent. Passes at once for a transport without compression.
async fn compressed_exchange(transport: &dyn Transport, accept: bool) -> Result<(), String> {
    let (service, seen) = recording_service();
    let settings = ReceiverSettings {
        accept_compression: accept,
        ..ReceiverSettings::limited(MAX_REQUEST)
    };
    let (endpoint, stop) = transport.start_receiver(service, settings).await?;
    let exporter = match transport.compressing_exporter(&endpoint) {
        Ok(Some(exporter)) => exporter,
        other => {
            stop().await;
            return other.map(|_| ());
        }
    };
    let request = ExportRequest::<Traces>::new(realistic::traces(40, 31));
    let result = match exchange(exporter.clone(), request.clone().into()).await {
        Ok(Err(error)) if error.kind() == ErrorKind::UnsupportedMediaType && !accept => {
            exchange(exporter, request.clone().without_compression().into()).await
        }
        other => other,
    };
    stop().await;
    match result? {
        Ok(outcome) if outcome.accepted() == request.item_count() => {}
        other => return Err(format!("expected the service's success, got {other:?}")),
    }
    let seen = seen
        .lock()
        .map_err(|_| "the recording lock is poisoned".to_string())?;
    let [AnyExportRequest::Traces(arrived)] = seen.as_slice() else {
        return Err(format!("the service saw {} requests, not one", seen.len()));
    };
    let arrived = arrived.message().map_err(|e| e.to_string())?;
    let sent = request.message().map_err(|e| e.to_string())?;
    if arrived != sent {
        return Err("the request arrived changed".into());
    }
    Ok(())
}

/// A request compressed with gzip, to a receiver that accepts it.
pub(super) async fn arrives_intact(transport: &dyn Transport) -> Result<(), String> {
    compressed_exchange(transport, true).await
}

/// A request the exporter would compress, to a receiver that accepts no compression.
pub(super) async fn refused(transport: &dyn Transport) -> Result<(), String> {
    compressed_exchange(transport, false).await
}
