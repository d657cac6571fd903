//! Writing OTLP/JSON: bytes pushed straight into the output buffer.

use base64::Engine as _;

use crate::schema::{Field, Writer};
use crate::{CodecError, CodecErrorKind};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// For each byte: 0 = copy as is; otherwise the character after the backslash
/// (`u` = write as `\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

pub(crate) struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
    needs_comma: bool,
    depth: usize,
    max_depth: usize,
}

impl<'a> JsonWriter<'a> {
    #[inline]
    pub(crate) fn new(out: &'a mut Vec<u8>, max_depth: usize) -> Self {
        Self {
            out,
            needs_comma: false,
            depth: 0,
            max_depth,
        }
    }

    #[inline]
    fn quoted_str(&mut self, value: &str) {
        let bytes = value.as_bytes();
        self.out.reserve(bytes.len() + 2);
        self.out.push(b'"');
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = ESCAPE[usize::from(b)];
            if escape == 0 {
                continue;
            }
            self.out.extend_from_slice(&bytes[start..i]);
            self.out.push(b'\\');
            self.out.push(escape);
            if escape == b'u' {
                self.out.extend_from_slice(b"00");
                self.out.push(HEX[usize::from(b >> 4)]);
                self.out.push(HEX[usize::from(b & 0xf)]);
            }
            start = i + 1;
        }
        self.out.extend_from_slice(&bytes[start..]);
        self.out.push(b'"');
    }
}

impl Writer for JsonWriter<'_> {
    #[inline]
    fn begin_message(&mut self, _fields: usize) -> Result<(), CodecError> {
        self.out.push(b'{');
        self.needs_comma = false;
        Ok(())
    }

    #[inline]
    fn end_message(&mut self) {
        self.out.push(b'}');
        self.needs_comma = true;
    }

    #[inline]
    fn field(&mut self, field: &'static Field) {
        let key = field.json_key.as_bytes();
        let key = if self.needs_comma { key } else { &key[1..] };
        self.out.extend_from_slice(key);
        self.needs_comma = true;
    }

    #[inline]
    fn enter_any_value(&mut self) -> Result<(), CodecError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(CodecError::new(
                CodecErrorKind::TooDeep,
                format!("AnyValue nesting exceeds {}", self.max_depth),
            ));
        }
        Ok(())
    }

    #[inline]
    fn exit_any_value(&mut self) {
        self.depth -= 1;
    }

    #[inline]
    fn uint32(&mut self, value: u32) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    #[inline]
    fn int32(&mut self, value: i32) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    #[inline]
    fn enumeration(&mut self, value: i32) {
        self.int32(value);
    }

    #[inline]
    fn uint64(&mut self, value: u64) {
        self.out.push(b'"');
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.out.push(b'"');
    }

    #[inline]
    fn int64(&mut self, value: i64) {
        self.out.push(b'"');
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.out.push(b'"');
    }

    #[inline]
    fn double(&mut self, value: f64) {
        if value.is_finite() {
            self.out
                .extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
        } else if value.is_nan() {
            self.out.extend_from_slice(b"\"NaN\"");
        } else if value > 0.0 {
            self.out.extend_from_slice(b"\"Infinity\"");
        } else {
            self.out.extend_from_slice(b"\"-Infinity\"");
        }
    }

    #[inline]
    fn boolean(&mut self, value: bool) {
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    #[inline]
    fn string(&mut self, value: &str) {
        self.quoted_str(value);
    }

    #[inline]
    fn bytes(&mut self, value: &[u8]) {
        self.out.push(b'"');
        let start = self.out.len();
        let len = base64::encoded_len(value.len(), true).unwrap_or(0);
        self.out.resize(start + len, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(value, &mut self.out[start..])
            .unwrap_or(0);
        self.out.truncate(start + written);
        self.out.push(b'"');
    }

    #[inline]
    fn id(&mut self, value: &[u8]) {
        self.out.reserve(value.len() * 2 + 2);
        self.out.push(b'"');
        for &b in value {
            self.out.push(HEX[usize::from(b >> 4)]);
            self.out.push(HEX[usize::from(b & 0xf)]);
        }
        self.out.push(b'"');
    }

    #[inline]
    fn begin_array(&mut self, _len: usize) {
        self.out.push(b'[');
    }

    #[inline]
    fn array_item(&mut self, index: usize) {
        if index > 0 {
            self.out.push(b',');
        }
    }

    #[inline]
    fn end_array(&mut self) {
        self.out.push(b']');
        self.needs_comma = true;
    }
}
