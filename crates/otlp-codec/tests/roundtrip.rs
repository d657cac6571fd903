//! Every codec, every signal: lossless round trips, and cross-codec equivalence.
#![cfg(all(feature = "json", feature = "msgpack", feature = "cbor"))]

use bytes::Bytes;
use otlp_codec::{Cbor, Codec, Json, MessagePack, Protobuf, schema::Schema};
use otlp_model::SignalResponse;
use otlp_model::collector::logs::ExportLogsServiceResponse;
use otlp_model::collector::metrics::ExportMetricsServiceResponse;
use otlp_model::collector::trace::ExportTraceServiceResponse;
use otlp_model::stream::{StreamAck, StreamBatch, stream_batch};
use otlp_testkit::strategies;
use proptest::prelude::*;
use prost::Message;

fn round_trip_all<M>(message: &M) -> Result<(), TestCaseError>
where
    M: Schema + Message + PartialEq + std::fmt::Debug + Default,
{
    let direct = message.encode_to_vec();
    for (name, codec) in [
        ("protobuf", &Protobuf::default() as &dyn Codec<M>),
        ("json", &Json::default()),
        ("msgpack", &MessagePack::default()),
        ("cbor", &Cbor::default()),
    ] {
        let mut bytes = Vec::new();
        codec
            .encode(message, &mut bytes)
            .map_err(|e| TestCaseError::fail(format!("{name} encode: {e}")))?;
        let back = codec.decode(Bytes::from(bytes.clone())).map_err(|e| {
            TestCaseError::fail(format!(
                "{name} decode: {e}\n{}",
                String::from_utf8_lossy(&bytes)
            ))
        })?;
        prop_assert_eq!(&back, message, "{} is lossy", name);
        // Cross-codec equivalence: FORMAT -> model -> protobuf equals the direct encoding.
        prop_assert_eq!(
            back.encode_to_vec(),
            direct.clone(),
            "{} -> protobuf differs",
            name
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn traces(request in strategies::traces_request()) {
        round_trip_all(&request)?;
    }

    #[test]
    fn metrics(request in strategies::metrics_request()) {
        round_trip_all(&request)?;
    }

    #[test]
    fn logs(request in strategies::logs_request()) {
        round_trip_all(&request)?;
    }

    #[test]
    fn responses(rejected in any::<i64>(), message in strategies::text()) {
        round_trip_all(&ExportTraceServiceResponse::with_partial_success(rejected, message.clone()))?;
        round_trip_all(&ExportMetricsServiceResponse::with_partial_success(rejected, message.clone()))?;
        round_trip_all(&ExportLogsServiceResponse::with_partial_success(rejected, message))?;
    }

    #[test]
    fn stream_envelope(logs in strategies::logs_request(), sequence in any::<u64>(), id in strategies::bytes(16), code in any::<i32>(), message in strategies::text()) {
        round_trip_all(&StreamBatch { sequence, payload: Some(stream_batch::Payload::Logs(logs)), batch_id: id })?;
        round_trip_all(&StreamAck { sequence, stage: 2, code, message: message.clone(), retry_after_millis: sequence / 3, rejected_items: i64::from(code), error_message: message })?;
    }
}

#[test]
fn nan_round_trips_through_every_codec() {
    use otlp_model::metrics::{
        Gauge, Metric, NumberDataPoint, metric::Data, number_data_point::Value,
    };
    let request = otlp_model::collector::metrics::ExportMetricsServiceRequest {
        resource_metrics: vec![otlp_model::metrics::ResourceMetrics {
            scope_metrics: vec![otlp_model::metrics::ScopeMetrics {
                metrics: vec![Metric {
                    name: "m".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e-300]
                            .into_iter()
                            .map(|d| NumberDataPoint {
                                value: Some(Value::AsDouble(d)),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let direct = request.encode_to_vec();
    for codec in [
        &Json::default() as &dyn Codec<_>,
        &MessagePack::default(),
        &Cbor::default(),
    ] {
        let mut bytes = Vec::new();
        codec.encode(&request, &mut bytes).expect("encode");
        let back = codec.decode(bytes.into()).expect("decode");
        // NaN != NaN, so compare the protobuf bytes: bit-exact.
        assert_eq!(back.encode_to_vec(), direct);
    }
    let mut json = Vec::new();
    Json::default().encode(&request, &mut json).expect("encode");
    let json = String::from_utf8(json).expect("utf8");
    assert!(json.contains(r#""asDouble":"NaN""#), "{json}");
    assert!(json.contains(r#""asDouble":"Infinity""#), "{json}");
    assert!(json.contains(r#""asDouble":"-Infinity""#), "{json}");
}
