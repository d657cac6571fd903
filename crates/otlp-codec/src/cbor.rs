//! CBOR (RFC 8949): a compact binary mapping of the OTLP messages (our extension; content
//! type `application/cbor`). Messages are maps keyed by protobuf field number, with
//! definite lengths; see docs/codecs.md for the full mapping.

use bytes::Bytes;

use crate::binary::{Cursor, check_depth};
use crate::schema::{Field, Reader, Schema, Writer};
use crate::{Codec, CodecError, DecodeLimits, OtlpCodec};

/// CBOR (`application/cbor` carrying OTLP messages: an otlp-transport extension).
///
/// ```
/// use otlp_codec::{Cbor, Codec};
/// use otlp_model::collector::metrics::ExportMetricsServiceRequest;
///
/// let request = otlp_testkit::realistic::metrics(10, 1);
/// let mut bytes = Vec::new();
/// Cbor::default().encode(&request, &mut bytes)?;
/// let back: ExportMetricsServiceRequest = Cbor::default().decode(bytes.into())?;
/// assert_eq!(back, request);
/// # Ok::<(), otlp_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Cbor {
    limits: DecodeLimits,
}

crate::binary::binary_codec!(Cbor, CborWriter, CborReader, "cbor", "application/cbor");

const UNSIGNED: u8 = 0;
const NEGATIVE: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const SIMPLE: u8 = 7;

struct CborWriter<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
    max_depth: usize,
}

impl CborWriter<'_> {
    #[inline]
    fn head(&mut self, major: u8, value: u64) {
        let major = major << 5;
        match value {
            0..=23 => self.out.push(major | value as u8),
            24..=0xff => self.out.extend_from_slice(&[major | 24, value as u8]),
            0x100..=0xffff => {
                self.out.push(major | 25);
                self.out.extend_from_slice(&(value as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.out.push(major | 26);
                self.out.extend_from_slice(&(value as u32).to_be_bytes());
            }
            _ => {
                self.out.push(major | 27);
                self.out.extend_from_slice(&value.to_be_bytes());
            }
        }
    }

    #[inline]
    fn int(&mut self, value: i64) {
        if value >= 0 {
            self.head(UNSIGNED, value as u64);
        } else {
            // -1 - n is encoded as n.
            self.head(NEGATIVE, !(value as u64));
        }
    }
}

impl Writer for CborWriter<'_> {
    #[inline]
    fn begin_message(&mut self, fields: usize) -> Result<(), CodecError> {
        self.head(MAP, fields as u64);
        Ok(())
    }
    #[inline]
    fn end_message(&mut self) {}
    #[inline]
    fn field(&mut self, field: &'static Field) {
        self.head(UNSIGNED, u64::from(field.number));
    }
    #[inline]
    fn enter_any_value(&mut self) -> Result<(), CodecError> {
        check_depth(&mut self.depth, self.max_depth)
    }
    #[inline]
    fn exit_any_value(&mut self) {
        self.depth -= 1;
    }
    #[inline]
    fn uint32(&mut self, value: u32) {
        self.head(UNSIGNED, u64::from(value));
    }
    #[inline]
    fn int32(&mut self, value: i32) {
        self.int(i64::from(value));
    }
    #[inline]
    fn enumeration(&mut self, value: i32) {
        self.int(i64::from(value));
    }
    #[inline]
    fn uint64(&mut self, value: u64) {
        self.head(UNSIGNED, value);
    }
    #[inline]
    fn int64(&mut self, value: i64) {
        self.int(value);
    }
    #[inline]
    fn double(&mut self, value: f64) {
        self.out.push(SIMPLE << 5 | 27);
        self.out.extend_from_slice(&value.to_bits().to_be_bytes());
    }
    #[inline]
    fn boolean(&mut self, value: bool) {
        self.out.push(SIMPLE << 5 | if value { 21 } else { 20 });
    }
    #[inline]
    fn string(&mut self, value: &str) {
        self.head(TEXT, value.len() as u64);
        self.out.extend_from_slice(value.as_bytes());
    }
    #[inline]
    fn bytes(&mut self, value: &[u8]) {
        self.head(BYTES, value.len() as u64);
        self.out.extend_from_slice(value);
    }
    #[inline]
    fn id(&mut self, value: &[u8]) {
        self.bytes(value);
    }
    #[inline]
    fn begin_array(&mut self, len: usize) {
        self.head(ARRAY, len as u64);
    }
    #[inline]
    fn array_item(&mut self, _index: usize) {}
    #[inline]
    fn end_array(&mut self) {}
}

struct CborReader<'de> {
    cursor: Cursor<'de>,
}

impl<'de> CborReader<'de> {
    /// Reads an item head: major type and argument. Indefinite lengths are refused: our
    /// writer never produces them and definite lengths keep the limits simple.
    #[inline]
    fn head(&mut self) -> Result<(u8, u64), CodecError> {
        let initial = self.cursor.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let value = match info {
            0..=23 => u64::from(info),
            24 => self.cursor.be(1)?,
            25 => self.cursor.be(2)?,
            26 => self.cursor.be(4)?,
            27 => self.cursor.be(8)?,
            31 => {
                return Err(self
                    .cursor
                    .error("indefinite-length CBOR items are not accepted"));
            }
            _ => return Err(self.cursor.error("invalid CBOR additional information")),
        };
        Ok((major, value))
    }

    #[inline]
    fn integer(&mut self) -> Result<i128, CodecError> {
        match self.head()? {
            (UNSIGNED, v) => Ok(i128::from(v)),
            (NEGATIVE, v) => Ok(-1 - i128::from(v)),
            _ => Err(self.cursor.error("expected an integer")),
        }
    }

    #[inline]
    fn skip(&mut self) -> Result<(), CodecError> {
        let base = self.cursor.remaining.len();
        loop {
            match self.head()? {
                (BYTES | TEXT, len) => {
                    self.cursor.take(len)?;
                }
                (ARRAY, n) => self.cursor.open(n)?,
                (MAP, n) => self.cursor.open(n.saturating_mul(2))?,
                // A tag applies to the next item, which the loop reads next.
                (TAG, _) => self.cursor.open(1)?,
                _ => {}
            }
            loop {
                if self.cursor.remaining.len() == base {
                    return Ok(());
                }
                if self.cursor.next_entry() {
                    break;
                }
            }
        }
    }
}

impl<'de> Reader<'de> for CborReader<'de> {
    crate::binary::shared_reader_methods!();

    #[inline]
    fn begin_message(&mut self) -> Result<bool, CodecError> {
        match self.head()? {
            (SIMPLE, 22) => Ok(false),
            (MAP, n) => {
                self.cursor.open(n)?;
                Ok(true)
            }
            _ => Err(self.cursor.error("expected a map")),
        }
    }

    #[inline]
    fn null(&mut self) -> Result<bool, CodecError> {
        if self.cursor.peek() == Some(SIMPLE << 5 | 22) {
            self.cursor.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    #[inline]
    fn double(&mut self) -> Result<f64, CodecError> {
        let at = self.cursor.pos;
        let initial = self.cursor.byte()?;
        match initial {
            0xfb => Ok(f64::from_bits(self.cursor.be(8)?)),
            0xfa => Ok(f64::from(f32::from_bits(self.cursor.be(4)? as u32))),
            _ => Err(crate::CodecError::invalid("expected a float").with_offset(at)),
        }
    }

    #[inline]
    fn boolean(&mut self) -> Result<bool, CodecError> {
        match self.head()? {
            (SIMPLE, 20) => Ok(false),
            (SIMPLE, 21) => Ok(true),
            _ => Err(self.cursor.error("expected a boolean")),
        }
    }

    #[inline]
    fn string(&mut self) -> Result<String, CodecError> {
        match self.head()? {
            (TEXT, len) => {
                let raw = self.cursor.take(len)?;
                String::from_utf8(raw.to_vec())
                    .map_err(|_| self.cursor.error("string is not valid UTF-8"))
            }
            _ => Err(self.cursor.error("expected a text string")),
        }
    }

    #[inline]
    fn bytes(&mut self) -> Result<Bytes, CodecError> {
        match self.head()? {
            (BYTES, len) => Ok(Bytes::copy_from_slice(self.cursor.take(len)?)),
            _ => Err(self.cursor.error("expected a byte string")),
        }
    }

    #[inline]
    fn begin_array(&mut self) -> Result<bool, CodecError> {
        match self.head()? {
            (SIMPLE, 22) => Ok(false),
            (ARRAY, n) => {
                self.cursor.open(n)?;
                Ok(true)
            }
            _ => Err(self.cursor.error("expected an array")),
        }
    }
}
