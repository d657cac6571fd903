//! Generates `otlp-codec`'s schema code from the protobuf descriptors: for every OTLP
//! message, a static field table and format-agnostic `write`/`read` functions against the
//! codec crate's `Writer`/`Reader` traits. JSON, MessagePack and CBOR all run on this one
//! generated code, so a field added to a `.proto` reaches every format at once.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

/// Where the output is committed, relative to the workspace root.
pub(crate) const OUTPUT: &str = "crates/otlp-codec/src/generated/schema.rs";

/// Packages whose messages get schema code (google.rpc uses well-known types that the
/// codecs handle by hand where needed).
fn wanted(package: &str) -> bool {
    package.starts_with("opentelemetry.proto.") || package.starts_with("otlp_transport.")
}

fn upper_camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn lower_camel(name: &str) -> String {
    let upper = upper_camel(name);
    let mut chars = upper.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn rust_field(name: &str) -> String {
    match name {
        "type" => "r#type".to_string(),
        other => other.to_string(),
    }
}

/// Full protobuf name (".pkg.Outer.Inner") -> Rust path from the crate root of otlp-model.
type Paths = BTreeMap<String, String>;

fn collect_paths(
    paths: &mut Paths,
    proto_prefix: &str,
    rust_prefix: &str,
    message: &DescriptorProto,
) {
    let name = message.name();
    let full = format!("{proto_prefix}.{name}");
    paths.insert(full.clone(), format!("{rust_prefix}::{name}"));
    let nested_rust = format!("{rust_prefix}::{}", snake(name));
    for nested in &message.nested_type {
        collect_paths(paths, &full, &nested_rust, nested);
    }
    for enumeration in &message.enum_type {
        paths.insert(
            format!("{full}.{}", enumeration.name()),
            format!("{nested_rust}::{}", enumeration.name()),
        );
    }
}

/// How a field is written and read.
enum Shape<'a> {
    Scalar(&'static str),
    Id(usize),
    Enum(&'a str),
    Message(&'a str),
}

fn shape<'a>(field: &FieldDescriptorProto, paths: &'a Paths) -> Shape<'a> {
    match field.r#type() {
        Type::Double | Type::Float => Shape::Scalar("double"),
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => Shape::Scalar("int64"),
        Type::Uint64 | Type::Fixed64 => Shape::Scalar("uint64"),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => Shape::Scalar("int32"),
        Type::Uint32 | Type::Fixed32 => Shape::Scalar("uint32"),
        Type::Bool => Shape::Scalar("boolean"),
        Type::String => Shape::Scalar("string"),
        Type::Bytes => match field.name() {
            "trace_id" => Shape::Id(16),
            "span_id" | "parent_span_id" => Shape::Id(8),
            _ => Shape::Scalar("bytes"),
        },
        Type::Enum => Shape::Enum(&paths[field.type_name()]),
        Type::Message | Type::Group => Shape::Message(&paths[field.type_name()]),
    }
}

/// Code that writes the value expression `value` (a reference for strings, bytes and
/// messages, a copy otherwise).
fn write_value(shape: &Shape<'_>, value: &str) -> String {
    match shape {
        Shape::Scalar("string") => format!("w.string({value});"),
        Shape::Scalar("bytes") => format!("w.bytes({value});"),
        Shape::Scalar(kind) => format!("w.{kind}(*{value});"),
        Shape::Id(_) => format!("w.id({value});"),
        Shape::Enum(_) => format!("w.enumeration(*{value});"),
        Shape::Message(_) => format!("{value}.write(w)?;"),
    }
}

/// An expression reading one value.
fn read_value(shape: &Shape<'_>) -> String {
    match shape {
        Shape::Scalar(kind) => format!("r.{kind}()"),
        Shape::Id(len) => format!("r.id({len})"),
        Shape::Enum(path) => {
            format!("r.enumeration(|name| {path}::from_str_name(name).map(|e| e as i32))")
        }
        Shape::Message(path) => format!("<{path} as Schema>::read(r)"),
    }
}

fn is_default_check(shape: &Shape<'_>, access: &str) -> String {
    match shape {
        Shape::Scalar("string" | "bytes") | Shape::Id(_) => format!("!{access}.is_empty()"),
        Shape::Scalar("boolean") => access.to_string(),
        Shape::Scalar("double") => format!("{access} != 0.0"),
        _ => format!("{access} != 0"),
    }
}

fn message_code(out: &mut String, proto_full: &str, message: &DescriptorProto, paths: &Paths) {
    let rust = &paths[proto_full];
    let is_any_value = proto_full == ".opentelemetry.proto.common.v1.AnyValue";
    let module = {
        let (parent, _) = rust.rsplit_once("::").unwrap_or(("", rust));
        format!("{parent}::{}", snake(message.name()))
    };
    let oneof_names: Vec<String> = message
        .oneof_decl
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    let real_oneof = |f: &FieldDescriptorProto| f.oneof_index.is_some() && !f.proto3_optional();

    // Field table.
    let _ = writeln!(out, "impl Schema for {rust} {{");
    let _ = writeln!(out, "const FIELDS: &'static [Field] = &[");
    for field in &message.field {
        let _ = writeln!(
            out,
            "Field {{ number: {}, json: \"{}\", proto: \"{}\", json_key: \",\\\"{}\\\":\" }},",
            field.number(),
            lower_camel(field.name()),
            field.name(),
            lower_camel(field.name())
        );
    }
    let _ = writeln!(out, "];");

    // write
    let _ = writeln!(
        out,
        "fn write<W: Writer>(&self, w: &mut W) -> Result<(), CodecError> {{"
    );
    let mut count_terms = Vec::new();
    let mut body = String::new();
    let mut oneofs_done = Vec::new();
    for (index, field) in message.field.iter().enumerate() {
        let name = rust_field(field.name());
        let access = format!("self.{name}");
        let shape = shape(field, paths);
        let key = format!("w.field(&Self::FIELDS[{index}]);");
        if real_oneof(field) {
            let oneof = field.oneof_index() as usize;
            if oneofs_done.contains(&oneof) {
                continue;
            }
            oneofs_done.push(oneof);
            let oneof_field = rust_field(&oneof_names[oneof]);
            let oneof_enum = format!("{module}::{}", upper_camel(&oneof_names[oneof]));
            count_terms.push(format!("usize::from(self.{oneof_field}.is_some())"));
            let _ = writeln!(
                body,
                "if let Some(value) = &self.{oneof_field} {{ match value {{"
            );
            for (i, f) in message.field.iter().enumerate() {
                if f.oneof_index == field.oneof_index && real_oneof(f) {
                    let s = self::shape(f, paths);
                    let _ = writeln!(
                        body,
                        "{oneof_enum}::{}(v) => {{ w.field(&Self::FIELDS[{i}]); {} }}",
                        upper_camel(f.name()),
                        write_value(&s, "v")
                    );
                }
            }
            let _ = writeln!(body, "}} }}");
            continue;
        }
        if field.label() == Label::Repeated {
            count_terms.push(format!("usize::from(!{access}.is_empty())"));
            let _ = writeln!(
                body,
                "if !{access}.is_empty() {{ {key} w.begin_array({access}.len()); for (i, v) in {access}.iter().enumerate() {{ w.array_item(i); {} }} w.end_array(); }}",
                write_value(&shape, "v")
            );
        } else if field.proto3_optional() || matches!(shape, Shape::Message(_)) {
            count_terms.push(format!("usize::from({access}.is_some())"));
            let _ = writeln!(
                body,
                "if let Some(v) = &{access} {{ {key} {} }}",
                write_value(&shape, "v")
            );
        } else {
            let check = is_default_check(&shape, &access);
            count_terms.push(format!("usize::from({check})"));
            let _ = writeln!(
                body,
                "if {check} {{ {key} {} }}",
                write_value(&shape, &format!("&{access}"))
            );
        }
    }
    if is_any_value {
        let _ = writeln!(out, "w.enter_any_value()?;");
    }
    let count = if count_terms.is_empty() {
        "0".to_string()
    } else {
        count_terms.join(" + ")
    };
    let _ = writeln!(out, "w.begin_message({count})?;");
    out.push_str(&body);
    let _ = writeln!(out, "w.end_message();");
    if is_any_value {
        let _ = writeln!(out, "w.exit_any_value();");
    }
    let _ = writeln!(out, "Ok(()) }}");

    // read
    let _ = writeln!(
        out,
        "fn read<'de, R: Reader<'de>>(r: &mut R) -> Result<Self, CodecError> {{"
    );
    if is_any_value {
        let _ = writeln!(out, "r.enter_any_value()?;");
    }
    let _ = writeln!(out, "let mut m = Self::default();");
    let _ = writeln!(out, "if r.begin_message()? {{");
    let _ = writeln!(
        out,
        "while let Some(index) = r.next_field(Self::FIELDS)? {{"
    );
    let _ = writeln!(out, "let field = &Self::FIELDS[index];");
    let _ = writeln!(out, "match index {{");
    for (index, field) in message.field.iter().enumerate() {
        let name = rust_field(field.name());
        let access = format!("m.{name}");
        let shape = shape(field, paths);
        let read = read_value(&shape);
        if real_oneof(field) {
            let oneof = field.oneof_index() as usize;
            let oneof_field = rust_field(&oneof_names[oneof]);
            let oneof_enum = format!("{module}::{}", upper_camel(&oneof_names[oneof]));
            let _ = writeln!(
                out,
                "{index} => {{ if m.{oneof_field}.is_some() {{ return Err(CodecError::invalid(\"more than one member of a oneof is set\").at(field)); }} m.{oneof_field} = Some({oneof_enum}::{}({read}.map_err(|e| e.at(field))?)); }}",
                upper_camel(field.name())
            );
        } else if field.label() == Label::Repeated {
            let _ = writeln!(
                out,
                "{index} => {{ if r.begin_array().map_err(|e| e.at(field))? {{ {access}.reserve(r.array_hint(field)); let mut i = 0; while r.next_item().map_err(|e| e.at_index(field, i))? {{ if r.null()? {{ {access}.push(Default::default()); }} else {{ {access}.push({read}.map_err(|e| e.at_index(field, i))?); }} i += 1; }} r.record_array_len(field, i); }} }}"
            );
        } else if field.proto3_optional() || matches!(shape, Shape::Message(_)) {
            let _ = writeln!(
                out,
                "{index} => {access} = Some({read}.map_err(|e| e.at(field))?),"
            );
        } else {
            let _ = writeln!(
                out,
                "{index} => {access} = {read}.map_err(|e| e.at(field))?,"
            );
        }
    }
    let _ = writeln!(out, "_ => {{}}");
    let _ = writeln!(out, "}} }} r.end_message(); }}");
    if is_any_value {
        let _ = writeln!(out, "r.exit_any_value();");
    }
    let _ = writeln!(out, "Ok(m) }} }}");
}

fn walk(out: &mut String, proto_prefix: &str, message: &DescriptorProto, paths: &Paths) {
    let full = format!("{proto_prefix}.{}", message.name());
    message_code(out, &full, message, paths);
    for nested in &message.nested_type {
        walk(out, &full, nested, paths);
    }
}

/// The generated Rust source.
pub(crate) fn generate(descriptors: &FileDescriptorSet) -> Result<String, String> {
    let mut paths = Paths::new();
    for file in &descriptors.file {
        let package = file.package();
        let rust_prefix = format!("otlp_model::generated::{}", package.replace('.', "::"));
        for message in &file.message_type {
            collect_paths(&mut paths, &format!(".{package}"), &rust_prefix, message);
        }
        for enumeration in &file.enum_type {
            paths.insert(
                format!(".{package}.{}", enumeration.name()),
                format!("{rust_prefix}::{}", enumeration.name()),
            );
        }
    }
    let mut code = String::from(
        "use crate::schema::{Field, Reader, Schema, Writer};\nuse crate::CodecError;\n",
    );
    let mut files: Vec<_> = descriptors
        .file
        .iter()
        .filter(|f| wanted(f.package()))
        .collect();
    files.sort_by(|a, b| a.name().cmp(b.name()));
    for file in files {
        for message in &file.message_type {
            walk(&mut code, &format!(".{}", file.package()), message, &paths);
        }
    }
    let parsed =
        syn::parse_file(&code).map_err(|e| format!("generated schema code does not parse: {e}"))?;
    Ok(format!(
        "// @generated by `cargo xtask codegen` from proto/. Do not edit by hand.\n{}",
        prettyplease::unparse(&parsed)
    ))
}
