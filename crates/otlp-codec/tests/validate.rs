//! The protobuf validator against prost's decoder, by property: on any valid request it
//! accepts and counts exactly `item_count`; on corrupted bytes it fails exactly when the
//! decode fails (and counts the same when both succeed).

use otlp_codec::validate::{MAX_DEPTH, validate_request};
use otlp_core::SignalKind;
use otlp_model::SignalRequest;
use otlp_model::collector::logs::ExportLogsServiceRequest;
use otlp_model::collector::metrics::ExportMetricsServiceRequest;
use otlp_model::collector::trace::ExportTraceServiceRequest;
use otlp_testkit::strategies;
use proptest::prelude::*;
use prost::Message;

/// What a full decode says: the item count, or failure.
fn decoded(kind: SignalKind, bytes: &[u8]) -> Option<usize> {
    match kind {
        SignalKind::Traces => ExportTraceServiceRequest::decode(bytes)
            .ok()
            .map(|m| m.item_count()),
        SignalKind::Metrics => ExportMetricsServiceRequest::decode(bytes)
            .ok()
            .map(|m| m.item_count()),
        SignalKind::Logs => ExportLogsServiceRequest::decode(bytes)
            .ok()
            .map(|m| m.item_count()),
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Delete(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        bytes.push(0x0a);
        return;
    }
    let n = bytes.len();
    match *mutation {
        Mutation::Flip(i, x) => bytes[i % n] ^= x,
        Mutation::Truncate(i) => bytes.truncate(i % n),
        Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
        Mutation::Delete(i) => {
            bytes.remove(i % n);
        }
    }
}

fn check(
    kind: SignalKind,
    encoded: Vec<u8>,
    items: usize,
    mutations: &[Mutation],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(validate_request(kind, &encoded).ok(), Some(items));
    let mut bytes = encoded;
    for m in mutations {
        apply(&mut bytes, m);
        let ours = validate_request(kind, &bytes).ok();
        let prost = decoded(kind, &bytes);
        prop_assert_eq!(ours, prost, "after {:?} ({} bytes)", m, bytes.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn traces_validate_like_prost(
        request in strategies::traces_request(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        check(SignalKind::Traces, request.encode_to_vec(), request.item_count(), &mutations)?;
    }

    #[test]
    fn metrics_validate_like_prost(
        request in strategies::metrics_request(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        check(SignalKind::Metrics, request.encode_to_vec(), request.item_count(), &mutations)?;
    }

    #[test]
    fn logs_validate_like_prost(
        request in strategies::logs_request(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        check(SignalKind::Logs, request.encode_to_vec(), request.item_count(), &mutations)?;
    }

    #[test]
    fn arbitrary_bytes_validate_like_prost(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        for kind in SignalKind::ALL {
            prop_assert_eq!(validate_request(kind, &bytes).ok(), decoded(kind, &bytes));
        }
    }
}

/// Bytes of a logs request whose first record's body nests `depth` array values.
fn nested_logs(depth: usize) -> Vec<u8> {
    use otlp_model::common::{AnyValue, ArrayValue, any_value::Value};
    let mut value = AnyValue {
        value: Some(Value::IntValue(1)),
    };
    for _ in 0..depth {
        value = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    let mut request = otlp_testkit::realistic::logs(1, 1);
    request.resource_logs[0].scope_logs[0].log_records[0].body = Some(value);
    request.encode_to_vec()
}

#[test]
fn the_nesting_limit_is_prosts() {
    // Walk up to the depth where prost gives up: the validator must flip at the same one.
    let mut flipped = false;
    for depth in 1..MAX_DEPTH {
        let bytes = nested_logs(depth);
        let prost = decoded(SignalKind::Logs, &bytes);

        assert_eq!(
            validate_request(SignalKind::Logs, &bytes).ok(),
            prost,
            "depth {depth}"
        );
        flipped |= prost.is_none();
    }
    assert!(flipped, "the walk reached prost's limit");
}

#[test]
fn the_last_metric_data_member_is_the_one_counted() {
    use otlp_model::metrics::{Gauge, Metric, NumberDataPoint, Sum, metric::Data};
    let gauge = Metric {
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint::default(); 3],
        })),
        ..Default::default()
    };
    let sum = Metric {
        data: Some(Data::Sum(Sum {
            data_points: vec![NumberDataPoint::default(); 2],
            ..Default::default()
        })),
        ..Default::default()
    };
    // Concatenated encodings merge: gauge then sum leaves the sum; gauge twice appends.
    let mut metrics = otlp_testkit::realistic::metrics(1, 1);
    let scope = &mut metrics.resource_metrics[0].scope_metrics[0];
    scope.metrics.clear();
    let base = metrics.encode_to_vec();
    for (parts, expected) in [
        (vec![&gauge, &sum], 2),
        (vec![&gauge, &gauge], 6),
        (vec![&sum, &gauge], 3),
    ] {
        let mut merged = Vec::new();
        for part in parts {
            merged.extend(part.encode_to_vec());
        }
        let mut metric_field = vec![0x12]; // ScopeMetrics.metrics = 2, length-delimited
        prost::encoding::encode_varint(merged.len() as u64, &mut metric_field);
        metric_field.extend(merged);
        let scope_bytes = {
            let mut scope = metrics.resource_metrics[0].scope_metrics[0].encode_to_vec();
            scope.extend(&metric_field);
            scope
        };
        let mut resource = metrics.resource_metrics[0].clone();
        resource.scope_metrics.clear();
        let mut resource_bytes = resource.encode_to_vec();
        resource_bytes.push(0x12);
        prost::encoding::encode_varint(scope_bytes.len() as u64, &mut resource_bytes);
        resource_bytes.extend(scope_bytes);
        let mut request = vec![0x0a];
        prost::encoding::encode_varint(resource_bytes.len() as u64, &mut request);
        request.extend(resource_bytes);
        let _ = &base;
        assert_eq!(decoded(SignalKind::Metrics, &request), Some(expected));
        assert_eq!(
            validate_request(SignalKind::Metrics, &request).ok(),
            Some(expected)
        );
    }
}
