//! Generates `otlp-codec`'s wire table from the protobuf descriptors: for every OTLP message,
//! the wire kind of each field number, which fields are the signal's items (spans, data
//! points, log records), and which oneof members may contain items. The protobuf validator
//! walks encoded requests with this table, checking what prost's decoder checks and
//! counting items, without building the message.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

/// Where the output is committed, relative to the workspace root.
pub(crate) const OUTPUT: &str = "crates/otlp-codec/src/generated/wire.rs";

/// The fields whose every occurrence is one item of the signal.
const ITEM_FIELDS: &[(&str, &str)] = &[
    (".opentelemetry.proto.trace.v1.ScopeSpans", "spans"),
    (".opentelemetry.proto.logs.v1.ScopeLogs", "log_records"),
    (".opentelemetry.proto.metrics.v1.Gauge", "data_points"),
    (".opentelemetry.proto.metrics.v1.Sum", "data_points"),
    (".opentelemetry.proto.metrics.v1.Histogram", "data_points"),
    (
        ".opentelemetry.proto.metrics.v1.ExponentialHistogram",
        "data_points",
    ),
    (".opentelemetry.proto.metrics.v1.Summary", "data_points"),
];

/// The roots the validator is used on, with the constant naming each.
const ROOTS: &[(&str, &str)] = &[
    (
        ".opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
        "EXPORT_TRACE_SERVICE_REQUEST",
    ),
    (
        ".opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
        "EXPORT_METRICS_SERVICE_REQUEST",
    ),
    (
        ".opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest",
        "EXPORT_LOGS_SERVICE_REQUEST",
    ),
    (".otlp_transport.v1.StreamBatch", "STREAM_BATCH"),
];

fn collect<'a>(
    messages: &mut BTreeMap<String, &'a DescriptorProto>,
    prefix: &str,
    message: &'a DescriptorProto,
) {
    let full = format!("{prefix}.{}", message.name());
    for nested in &message.nested_type {
        collect(messages, &full, nested);
    }
    messages.insert(full, message);
}

fn kind(field: &FieldDescriptorProto, index: &BTreeMap<String, usize>) -> String {
    let repeated = field.label() == Label::Repeated;
    let scalar = |single: &str, packed: &str| {
        if repeated {
            format!("WireKind::{packed}")
        } else {
            format!("WireKind::{single}")
        }
    };
    match field.r#type() {
        Type::Int32
        | Type::Int64
        | Type::Uint32
        | Type::Uint64
        | Type::Sint32
        | Type::Sint64
        | Type::Bool
        | Type::Enum => scalar("Varint", "RepeatedVarint"),
        Type::Fixed64 | Type::Sfixed64 | Type::Double => scalar("Fixed64", "RepeatedFixed64"),
        Type::Fixed32 | Type::Sfixed32 | Type::Float => scalar("Fixed32", "RepeatedFixed32"),
        Type::String => "WireKind::String".to_string(),
        Type::Bytes => "WireKind::Bytes".to_string(),
        Type::Message | Type::Group => format!("WireKind::Message({})", index[field.type_name()]),
    }
}

/// Messages that contain items somewhere below them.
fn containing_items(messages: &BTreeMap<String, &DescriptorProto>) -> BTreeSet<String> {
    let mut containing: BTreeSet<String> = ITEM_FIELDS.iter().map(|(m, _)| m.to_string()).collect();
    loop {
        let before = containing.len();
        for (name, message) in messages {
            if message
                .field
                .iter()
                .any(|f| f.r#type() == Type::Message && containing.contains(f.type_name()))
            {
                containing.insert(name.clone());
            }
        }
        if containing.len() == before {
            return containing;
        }
    }
}

/// The generated Rust source.
pub(crate) fn generate(descriptors: &FileDescriptorSet) -> Result<String, String> {
    let mut messages = BTreeMap::new();
    for file in &descriptors.file {
        let wanted = file.package().starts_with("opentelemetry.proto.")
            || file.package().starts_with("otlp_transport.");
        if wanted {
            for message in &file.message_type {
                collect(&mut messages, &format!(".{}", file.package()), message);
            }
        }
    }
    let index: BTreeMap<String, usize> = messages
        .keys()
        .enumerate()
        .map(|(i, name)| (name.clone(), i))
        .collect();
    let containing = containing_items(&messages);
    let mut code = String::from(
        "use crate::validate::{WireField, WireKind, WireMessage};\n\
         /// Every message's field table, indexed by field number.\n\
         pub(crate) static MESSAGES: &[WireMessage] = &[\n",
    );
    for (name, message) in &messages {
        let max = message.field.iter().map(|f| f.number()).max().unwrap_or(0);
        let mut slots =
            vec!["WireField::UNKNOWN".to_string(); usize::try_from(max + 1).unwrap_or(0)];
        // The oneof whose members may hold items: only the last member present counts,
        // as only it survives decoding.
        let counted_oneofs: BTreeSet<i32> = message
            .field
            .iter()
            .filter(|f| f.oneof_index.is_some() && !f.proto3_optional())
            .filter(|f| f.r#type() == Type::Message && containing.contains(f.type_name()))
            .map(|f| f.oneof_index())
            .collect();
        if counted_oneofs.len() > 1 {
            return Err(format!(
                "{name}: more than one oneof contains items; the validator tracks one per message"
            ));
        }
        for field in &message.field {
            let item = ITEM_FIELDS
                .iter()
                .any(|(m, f)| m == name && *f == field.name());
            let in_counted_oneof = field.oneof_index.is_some()
                && !field.proto3_optional()
                && counted_oneofs.contains(&field.oneof_index());
            slots[usize::try_from(field.number()).unwrap_or(0)] = format!(
                "WireField {{ kind: {}, item: {item}, oneof: {in_counted_oneof} }}",
                kind(field, &index),
            );
        }
        let _ = writeln!(
            code,
            "// {name}\nWireMessage {{ name: \"{}\", fields: &[{}] }},",
            name.trim_start_matches('.'),
            slots.join(", ")
        );
    }
    code.push_str("];\n");
    for (root, constant) in ROOTS {
        let position = index
            .get(*root)
            .ok_or_else(|| format!("{root} is not among the protos"))?;
        let _ = writeln!(
            code,
            "/// Index of `{}` in [`MESSAGES`].\npub(crate) const {constant}: usize = {position};",
            root.trim_start_matches('.')
        );
    }
    let parsed =
        syn::parse_file(&code).map_err(|e| format!("generated wire table does not parse: {e}"))?;
    Ok(format!(
        "// @generated by `cargo xtask codegen` from proto/. Do not edit by hand.\n{}",
        prettyplease::unparse(&parsed)
    ))
}
