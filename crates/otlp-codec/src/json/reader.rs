//! Reading OTLP/JSON: a pull parser over the input slice, zero-copy for keys and for strings
//! without escapes, with every nesting level counted and bounded.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::{Bytes, BytesMut};

use crate::schema::{Field, Reader};
use crate::{CodecError, CodecErrorKind};

const BASE64_CONFIG: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const BASE64_STANDARD: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, BASE64_CONFIG);
const BASE64_URL_SAFE: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::URL_SAFE, BASE64_CONFIG);

/// JSON objects and arrays allowed per `AnyValue` level (`{"arrayValue":{"values":[`), plus
/// room for the OTLP structure around them.
const NESTING_PER_ANY_VALUE: usize = 3;
const STRUCTURAL_NESTING: usize = 32;

pub(crate) struct JsonReader<'de> {
    input: &'de [u8],
    /// The same input, validated as UTF-8 once up front (JSON text must be UTF-8), so that
    /// strings are sliced out without validating each again.
    text: &'de str,
    pos: usize,
    /// Whether the next element of the current object or array is its first.
    first: bool,
    nesting: usize,
    max_nesting: usize,
    any_depth: usize,
    max_any_depth: usize,
    /// Where the next field is probably found in the current message's field table.
    hint: usize,
    /// The last length of recently read repeated fields, by field identity: requests repeat
    /// their shapes (every span has about as many attributes as the last), so reserving that
    /// many elements saves the reallocations of growing each vector from empty.
    array_lengths: [(usize, usize); ARRAY_HINTS],
    /// Decoded ids are carved out of shared blocks: one allocation per block instead of one
    /// per id (a request of 10,000 spans holds 30,000 ids).
    id_arena: BytesMut,
}

/// Repeated fields whose last length is remembered.
const ARRAY_HINTS: usize = 8;
/// Never reserve more than this on a guess.
const MAX_ARRAY_HINT: usize = 256;

/// Size of one id arena block.
const ID_ARENA_BLOCK: usize = 4096;

fn invalid(message: impl Into<String>) -> CodecError {
    CodecError::invalid(message)
}

/// Hex digit values; 0xff for anything else.
static HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

#[inline]
fn nibble(c: u8) -> Option<u8> {
    let value = HEX_VALUE[usize::from(c)];
    (value != 0xff).then_some(value)
}

impl<'de> JsonReader<'de> {
    #[inline]
    pub(crate) fn new(text: &'de str, max_any_depth: usize) -> Self {
        Self {
            input: text.as_bytes(),
            text,
            pos: 0,
            first: true,
            nesting: 0,
            max_nesting: max_any_depth
                .saturating_mul(NESTING_PER_ANY_VALUE)
                .saturating_add(STRUCTURAL_NESTING),
            any_depth: 0,
            max_any_depth,
            hint: 0,
            array_lengths: [(0, 0); ARRAY_HINTS],
            id_arena: BytesMut::new(),
        }
    }

    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// After the top-level value: only whitespace may follow.
    #[inline]
    pub(crate) fn finish(&mut self) -> Result<(), CodecError> {
        self.skip_ws();
        if self.pos != self.input.len() {
            return Err(invalid("unexpected characters after the JSON value").with_offset(self.pos));
        }
        Ok(())
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&c) = self.input.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.input.get(self.pos).copied()
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Result<(), CodecError> {
        match self.peek() {
            Some(c) if c == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(c) => Err(invalid(format!(
                "expected '{}', found '{}'",
                byte as char,
                c.escape_ascii()
            ))
            .with_offset(self.pos)),
            None => Err(invalid(format!(
                "expected '{}', found the end of input",
                byte as char
            ))
            .with_offset(self.pos)),
        }
    }

    #[inline]
    fn enter(&mut self) -> Result<(), CodecError> {
        self.nesting += 1;
        if self.nesting > self.max_nesting {
            return Err(CodecError::new(
                CodecErrorKind::TooDeep,
                format!("JSON nesting exceeds {}", self.max_nesting),
            )
            .with_offset(self.pos));
        }
        Ok(())
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> bool {
        if self.input[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// Reads a string's raw bytes (the opening quote is next) when it has no escapes: the
    /// common case for keys, which are compared as bytes and need no UTF-8 check. `None`
    /// (with nothing consumed) when there is an escape.
    #[inline]
    fn raw_str(&mut self) -> Result<Option<&'de [u8]>, CodecError> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = self.scan_plain(start);
        match self.input.get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                Ok(Some(&self.input[start..end]))
            }
            Some(b'\\') => {
                self.pos = start - 1;
                Ok(None)
            }
            Some(_) => Err(invalid("control character in string").with_offset(end)),
            None => Err(invalid("unterminated string").with_offset(start)),
        }
    }

    /// The index of the first `"`, `\\` or control character at or after `from` (or the
    /// input's length), eight bytes at a time.
    #[inline]
    fn scan_plain(&self, from: usize) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let input = self.input;
        let mut i = from;
        while let Some(chunk) = input.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let v = u64::from_le_bytes(word);
            let quote = v ^ (ONES * u64::from(b'"'));
            let backslash = v ^ (ONES * u64::from(b'\\'));
            let special = (quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (v.wrapping_sub(ONES * 0x20) & !v);
            if special & HIGH != 0 {
                break;
            }
            i += 8;
        }
        while let Some(&c) = input.get(i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                return i;
            }
            i += 1;
        }
        i
    }

    /// Reads a string (the opening quote is next), borrowing when it has no escapes.
    #[inline]
    fn str(&mut self) -> Result<Cow<'de, str>, CodecError> {
        self.expect(b'"')?;
        let start = self.pos;
        let input = self.input;
        let mut i = self.scan_plain(start);
        while i < input.len() {
            match input[i] {
                b'"' => {
                    self.pos = i + 1;
                    // Both ends are at ASCII quotes, so always on character boundaries.
                    return self
                        .text
                        .get(start..i)
                        .map(Cow::Borrowed)
                        .ok_or_else(|| invalid("string is not valid UTF-8").with_offset(start));
                }
                b'\\' => return self.escaped_str(start, i).map(Cow::Owned),
                c if c < 0x20 => {
                    return Err(invalid("control character in string").with_offset(i));
                }
                _ => i += 1,
            }
        }
        Err(invalid("unterminated string").with_offset(start))
    }

    #[inline]
    fn escaped_str(&mut self, start: usize, first_escape: usize) -> Result<String, CodecError> {
        let input = self.input;
        let mut out: Vec<u8> = input[start..first_escape].to_vec();
        let mut i = first_escape;
        loop {
            let Some(&c) = input.get(i) else {
                return Err(invalid("unterminated string").with_offset(start));
            };
            match c {
                b'"' => {
                    self.pos = i + 1;
                    return String::from_utf8(out)
                        .map_err(|_| invalid("string is not valid UTF-8").with_offset(start));
                }
                b'\\' => {
                    let escape = *input
                        .get(i + 1)
                        .ok_or_else(|| invalid("unterminated escape").with_offset(i))?;
                    i += 2;
                    let simple = match escape {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        other => {
                            return Err(invalid(format!(
                                "invalid escape '\\{}'",
                                other.escape_ascii()
                            ))
                            .with_offset(i - 2));
                        }
                    };
                    if let Some(byte) = simple {
                        out.push(byte);
                        continue;
                    }
                    let unit = self.hex4(i)?;
                    i += 4;
                    let code = if (0xD800..0xDC00).contains(&unit) {
                        // A high surrogate must be followed by an escaped low surrogate.
                        if input.get(i) != Some(&b'\\') || input.get(i + 1) != Some(&b'u') {
                            return Err(invalid("unpaired surrogate in string").with_offset(i));
                        }
                        let low = self.hex4(i + 2)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(invalid("unpaired surrogate in string").with_offset(i));
                        }
                        i += 6;
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        unit
                    };
                    let ch = char::from_u32(code)
                        .ok_or_else(|| invalid("unpaired surrogate in string").with_offset(i))?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return Err(invalid("control character in string").with_offset(i)),
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
    }

    #[inline]
    fn hex4(&self, at: usize) -> Result<u32, CodecError> {
        let digits = self
            .input
            .get(at..at + 4)
            .ok_or_else(|| invalid("truncated \\u escape").with_offset(at))?;
        digits.iter().try_fold(0u32, |acc, &d| {
            nibble(d)
                .map(|n| acc << 4 | u32::from(n))
                .ok_or_else(|| invalid("invalid \\u escape").with_offset(at))
        })
    }

    /// The text of a JSON number (validated against the JSON grammar).
    #[inline]
    fn number_text(&mut self) -> Result<&'de str, CodecError> {
        self.skip_ws();
        let input = self.input;
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while input.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if input.get(i) == Some(&b'-') {
            i += 1;
        }
        if input.get(i) == Some(&b'0') {
            i += 1;
        } else if !digits(&mut i) {
            return Err(invalid("expected a number").with_offset(start));
        }
        if input.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(invalid("expected digits after '.'").with_offset(i));
            }
        }
        if matches!(input.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(input.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(invalid("expected digits in exponent").with_offset(i));
            }
        }
        self.pos = i;
        // The grammar above admits ASCII only.
        std::str::from_utf8(&input[start..i]).map_err(|_| invalid("invalid number"))
    }

    /// An integer given as a JSON number or a decimal string.
    #[inline]
    fn integer<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, CodecError> {
        let at = self.pos;
        let text: Cow<'de, str> = if self.peek() == Some(b'"') {
            self.str()?
        } else {
            Cow::Borrowed(self.number_text()?)
        };
        text.parse::<T>().map_err(|_| {
            invalid(format!("expected {what}, found {}", shorten(&text))).with_offset(at)
        })
    }

    #[inline]
    fn skip_value(&mut self) -> Result<(), CodecError> {
        let mut stack: Vec<u8> = Vec::new();
        loop {
            // A value is expected here.
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        self.enter()?;
                        stack.push(b'{');
                        self.str()?;
                        self.expect(b':')?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        self.enter()?;
                        stack.push(b'[');
                        continue;
                    }
                }
                Some(b'"') => {
                    self.str()?;
                }
                Some(b't') if self.literal(b"true") => {}
                Some(b'f') if self.literal(b"false") => {}
                Some(b'n') if self.literal(b"null") => {}
                Some(b'-' | b'0'..=b'9') => {
                    self.number_text()?;
                }
                _ => return Err(invalid("expected a JSON value").with_offset(self.pos)),
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&open) = stack.last() else {
                    return Ok(());
                };
                match (open, self.peek()) {
                    (_, Some(b',')) => {
                        self.pos += 1;
                        if open == b'{' {
                            self.str()?;
                            self.expect(b':')?;
                        }
                        break;
                    }
                    (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                        self.pos += 1;
                        stack.pop();
                        self.nesting -= 1;
                    }
                    _ => {
                        return Err(invalid("expected ',' or the end of the object or array")
                            .with_offset(self.pos));
                    }
                }
            }
        }
    }
}

/// The index of the field whose JSON or proto name is `key`, looking first at the field
/// after `hint`: writers (ours and the official SDKs') emit fields in declaration order.
#[inline]
fn find_field(fields: &[Field], key: &[u8], hint: usize) -> Option<usize> {
    let same = |name: &str| {
        let name = name.as_bytes();
        // Field names are short: a byte loop beats a call to memcmp.
        name.len() == key.len() && name.iter().zip(key).all(|(a, b)| a == b)
    };
    let start = hint.min(fields.len());
    (start..fields.len())
        .chain(0..start)
        .find(|&i| same(fields[i].json))
        .or_else(|| fields.iter().position(|f| same(f.proto)))
}

fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(32).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("{short:?}")
}

impl<'de> Reader<'de> for JsonReader<'de> {
    #[inline]
    fn begin_message(&mut self) -> Result<bool, CodecError> {
        match self.peek() {
            Some(b'n') if self.literal(b"null") => Ok(false),
            Some(b'{') => {
                self.pos += 1;
                self.enter()?;
                self.first = true;
                self.hint = 0;
                Ok(true)
            }
            _ => Err(invalid("expected an object").with_offset(self.pos)),
        }
    }

    #[inline]
    fn next_field(&mut self, fields: &'static [Field]) -> Result<Option<usize>, CodecError> {
        loop {
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    self.nesting -= 1;
                    self.first = false;
                    return Ok(None);
                }
                Some(b',') if !self.first => self.pos += 1,
                Some(b'"') if self.first => {}
                _ => {
                    return Err(invalid("expected a field name or the end of the object")
                        .with_offset(self.pos));
                }
            }
            self.first = false;
            let found = match self.raw_str()? {
                Some(key) => {
                    if self.input.get(self.pos) == Some(&b':') {
                        self.pos += 1;
                    } else {
                        self.expect(b':')?;
                    }
                    find_field(fields, key, self.hint)
                }
                None => {
                    let key = self.str()?;
                    self.expect(b':')?;
                    find_field(fields, key.as_bytes(), self.hint)
                }
            };
            if let Some(index) = found {
                self.hint = index + 1;
                // `null` means absent: skip the field here rather than in every caller.
                if self.peek() == Some(b'n') && self.literal(b"null") {
                    continue;
                }
                return Ok(Some(index));
            }
            // Unknown fields are ignored, as the OTLP/JSON mapping requires.
            self.skip_value()?;
        }
    }

    #[inline]
    fn end_message(&mut self) {}

    #[inline]
    fn null(&mut self) -> Result<bool, CodecError> {
        Ok(self.peek() == Some(b'n') && self.literal(b"null"))
    }

    #[inline]
    fn enter_any_value(&mut self) -> Result<(), CodecError> {
        self.any_depth += 1;
        if self.any_depth > self.max_any_depth {
            return Err(CodecError::new(
                CodecErrorKind::TooDeep,
                format!("AnyValue nesting exceeds {}", self.max_any_depth),
            )
            .with_offset(self.pos));
        }
        Ok(())
    }

    #[inline]
    fn exit_any_value(&mut self) {
        self.any_depth -= 1;
    }

    #[inline]
    fn uint32(&mut self) -> Result<u32, CodecError> {
        self.integer("an unsigned 32-bit integer")
    }

    #[inline]
    fn int32(&mut self) -> Result<i32, CodecError> {
        self.integer("a 32-bit integer")
    }

    #[inline]
    fn enumeration(&mut self, by_name: fn(&str) -> Option<i32>) -> Result<i32, CodecError> {
        if self.peek() == Some(b'"') {
            let at = self.pos;
            let name = self.str()?;
            return by_name(&name).or_else(|| name.parse().ok()).ok_or_else(|| {
                invalid(format!("unknown enum value {}", shorten(&name))).with_offset(at)
            });
        }
        self.integer("an enum number or name")
    }

    #[inline]
    fn uint64(&mut self) -> Result<u64, CodecError> {
        self.integer("an unsigned 64-bit integer")
    }

    #[inline]
    fn int64(&mut self) -> Result<i64, CodecError> {
        self.integer("a 64-bit integer")
    }

    #[inline]
    fn double(&mut self) -> Result<f64, CodecError> {
        let at = self.pos;
        if self.peek() == Some(b'"') {
            let text = self.str()?;
            return match &*text {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => other
                    .parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite())
                    .ok_or_else(|| {
                        invalid(format!("expected a number, found {}", shorten(other)))
                            .with_offset(at)
                    }),
            };
        }
        let text = self.number_text()?;
        text.parse::<f64>()
            .map_err(|_| invalid(format!("invalid number {}", shorten(text))).with_offset(at))
    }

    #[inline]
    fn boolean(&mut self) -> Result<bool, CodecError> {
        match self.peek() {
            Some(b't') if self.literal(b"true") => Ok(true),
            Some(b'f') if self.literal(b"false") => Ok(false),
            _ => Err(invalid("expected true or false").with_offset(self.pos)),
        }
    }

    #[inline]
    fn string(&mut self) -> Result<String, CodecError> {
        Ok(self.str()?.into_owned())
    }

    #[inline]
    fn bytes(&mut self) -> Result<Bytes, CodecError> {
        if self.peek() != Some(b'"') {
            return Err(invalid("expected a base64 string").with_offset(self.pos));
        }
        let at = self.pos;
        let text = self.str()?;
        BASE64_STANDARD
            .decode(text.as_bytes())
            .or_else(|_| BASE64_URL_SAFE.decode(text.as_bytes()))
            .map(Bytes::from)
            .map_err(|e| invalid(format!("invalid base64: {e}")).with_offset(at))
    }

    #[inline]
    fn id(&mut self, len: usize) -> Result<Bytes, CodecError> {
        let at = self.pos;
        let owned;
        let hex: &[u8] = match self.raw_str()? {
            Some(raw) => raw,
            None => {
                owned = self.str()?;
                owned.as_bytes()
            }
        };
        if hex.is_empty() {
            return Ok(Bytes::new());
        }
        if hex.len() != len * 2 {
            return Err(invalid(format!(
                "expected {} hex characters, got {}",
                len * 2,
                hex.len()
            ))
            .with_offset(at));
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(h), Some(l)) => *slot = h << 4 | l,
                _ => return Err(invalid("invalid hex character").with_offset(at)),
            }
        }
        if self.id_arena.capacity() < len {
            self.id_arena = BytesMut::with_capacity(ID_ARENA_BLOCK.max(len));
        }
        self.id_arena.extend_from_slice(&out[..len]);
        Ok(self.id_arena.split().freeze())
    }

    #[inline]
    fn begin_array(&mut self) -> Result<bool, CodecError> {
        match self.peek() {
            Some(b'n') if self.literal(b"null") => Ok(false),
            Some(b'[') => {
                self.pos += 1;
                self.enter()?;
                self.first = true;
                Ok(true)
            }
            _ => Err(invalid("expected an array").with_offset(self.pos)),
        }
    }

    #[inline]
    fn array_hint(&mut self, field: &'static Field) -> usize {
        let key = field as *const Field as usize;
        let (remembered, len) = self.array_lengths[key / 8 % ARRAY_HINTS];
        if remembered == key { len } else { 0 }
    }

    #[inline]
    fn record_array_len(&mut self, field: &'static Field, len: usize) {
        let key = field as *const Field as usize;
        self.array_lengths[key / 8 % ARRAY_HINTS] = (key, len.min(MAX_ARRAY_HINT));
    }

    #[inline]
    fn next_item(&mut self) -> Result<bool, CodecError> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                self.nesting -= 1;
                self.first = false;
                Ok(false)
            }
            Some(b',') if !self.first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if self.first => {
                self.first = false;
                Ok(true)
            }
            _ => Err(invalid("expected ',' or ']'").with_offset(self.pos)),
        }
    }
}
