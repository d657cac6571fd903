//! Read access to routing fields of an [`Encoded`](super::Encoded) request — resource
//! attributes such as `service.name`, the items' trace ids — straight from the bytes, for
//! load balancing and routing that must not pay for a decode.

use std::marker::PhantomData;

use bytes::Bytes;

use super::encoded::{ITEMS, SCOPE_GROUPS, WireLayout, children};
use super::reader::{WireType, fields};

/// `ResourceX.resource`, `Resource.attributes`, `KeyValue.key`/`value`,
/// `AnyValue.string_value`.
const RESOURCE: u32 = 1;
const ATTRIBUTES: u32 = 1;
const KEY: u32 = 1;
const VALUE: u32 = 2;
const STRING_VALUE: u32 = 1;

/// One resource group of an encoded request (its payload shares the request's buffer).
pub struct ResourceView<R> {
    payload: Bytes,
    signal: PhantomData<fn() -> R>,
}

impl<R: WireLayout> ResourceView<R> {
    pub(crate) fn new(payload: Bytes) -> Self {
        Self {
            payload,
            signal: PhantomData,
        }
    }

    /// The string value of the resource attribute `key` (its first occurrence), if it is
    /// present and a string.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use otlp_model::collector::logs::ExportLogsServiceRequest;
    /// use otlp_model::common::{AnyValue, KeyValue, any_value::Value};
    /// use otlp_model::logs::ResourceLogs;
    /// use otlp_model::resource::Resource;
    /// use otlp_model::wire::Encoded;
    /// use prost::Message;
    ///
    /// let service = KeyValue {
    ///     key_strindex: 0,
    ///     key: "service.name".into(),
    ///     value: Some(AnyValue { value: Some(Value::StringValue("checkout".into())) }),
    /// };
    /// let request = ExportLogsServiceRequest {
    ///     resource_logs: vec![ResourceLogs {
    ///         resource: Some(Resource { attributes: vec![service], ..Default::default() }),
    ///         ..Default::default()
    ///     }],
    /// };
    /// let encoded = Encoded::<ExportLogsServiceRequest>::new(Bytes::from(request.encode_to_vec()))?;
    /// let resource = encoded.resources().next().expect("one group");
    /// assert_eq!(resource.attribute_str("service.name"), Some("checkout"));
    /// assert_eq!(resource.attribute_str("host.name"), None);
    /// # Ok::<(), otlp_model::wire::WireError>(())
    /// ```
    pub fn attribute_str(&self, key: &str) -> Option<&str> {
        // Repeated `resource` fields merge on decode: their attributes concatenate.
        for resource in children(&self.payload, RESOURCE) {
            let resource = &self.payload[resource.ok()?];
            for attribute in children(resource, ATTRIBUTES) {
                let attribute = &resource[attribute.ok()?];
                if last_len_field(attribute, KEY) == Some(key.as_bytes()) {
                    return std::str::from_utf8(string_value(attribute)?).ok();
                }
            }
        }
        None
    }

    /// `service.name`, the attribute routing most often keys on.
    pub fn service_name(&self) -> Option<&str> {
        self.attribute_str("service.name")
    }

    /// The encoded elements (spans, metrics, log records) of every scope, in order.
    pub fn elements(&self) -> impl Iterator<Item = ElementView<'_, R>> + '_ {
        let payload: &[u8] = &self.payload;
        children(payload, SCOPE_GROUPS)
            .filter_map(move |scope| payload.get(scope.ok()?))
            .flat_map(|scope| {
                children(scope, ITEMS).filter_map(move |element| {
                    Some(ElementView {
                        bytes: scope.get(element.ok()?)?,
                        signal: PhantomData,
                    })
                })
            })
    }
}

/// One encoded span, metric or log record.
pub struct ElementView<'a, R> {
    bytes: &'a [u8],
    signal: PhantomData<fn() -> R>,
}

impl<'a, R: WireLayout> ElementView<'a, R> {
    /// The element's trace id (spans and log records; empty when unset), or `None` for a
    /// signal without one.
    pub fn trace_id(&self) -> Option<&'a [u8]> {
        let number = R::TRACE_ID_FIELD?;
        Some(last_len_field(self.bytes, number).unwrap_or_default())
    }

    /// The element's encoding.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// The payload of the last length-delimited field `number` (the one a decode keeps).
fn last_len_field(message: &[u8], number: u32) -> Option<&[u8]> {
    let mut last = None;
    for field in fields(message) {
        let field = field.ok()?;
        if field.number == number && field.wire_type == WireType::Len {
            last = Some(field.value);
        }
    }
    message.get(last?)
}

/// `AnyValue`'s oneof members (string, bool, int, double, array, kvlist, bytes, string
/// index); other field numbers are unknown and change nothing.
const VALUE_MEMBERS: std::ops::RangeInclusive<u32> = 1..=8;

/// A `KeyValue`'s string value as a decode sees it: repeated `value` fields merge, and the
/// last oneof member present across them wins.
fn string_value(attribute: &[u8]) -> Option<&[u8]> {
    let mut last: Option<(u32, &[u8])> = None;
    for value in fields(attribute) {
        let value = value.ok()?;
        if value.number != VALUE || value.wire_type != WireType::Len {
            continue;
        }
        let value = attribute.get(value.value)?;
        for member in fields(value) {
            let member = member.ok()?;
            if VALUE_MEMBERS.contains(&member.number) {
                last = Some((member.number, value.get(member.value.clone())?));
            }
        }
    }
    match last? {
        (STRING_VALUE, string) => Some(string),
        _ => None,
    }
}
