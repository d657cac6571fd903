//! MessagePack: a compact binary mapping of the OTLP messages (our extension; content type
//! `application/msgpack`). Messages are maps keyed by protobuf field number; see
//! docs/codecs.md for the full mapping.

use bytes::Bytes;

use crate::binary::{Cursor, check_depth};
use crate::schema::{Field, Reader, Schema, Writer};
use crate::{Codec, CodecError, DecodeLimits, OtlpCodec};

/// MessagePack (`application/msgpack`, an otlp-transport extension, not part of OTLP).
///
/// ```
/// use otlp_codec::{Codec, MessagePack};
/// use otlp_model::collector::logs::ExportLogsServiceRequest;
///
/// let request = otlp_testkit::realistic::logs(10, 1);
/// let mut bytes = Vec::new();
/// MessagePack::default().encode(&request, &mut bytes)?;
/// let back: ExportLogsServiceRequest = MessagePack::default().decode(bytes.into())?;
/// assert_eq!(back, request);
/// # Ok::<(), otlp_codec::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePack {
    limits: DecodeLimits,
}

crate::binary::binary_codec!(
    MessagePack,
    MsgpackWriter,
    MsgpackReader,
    "msgpack",
    "application/msgpack"
);

struct MsgpackWriter<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
    max_depth: usize,
}

impl MsgpackWriter<'_> {
    #[inline]
    fn uint(&mut self, v: u64) {
        match v {
            0..=0x7f => self.out.push(v as u8),
            0x80..=0xff => self.out.extend_from_slice(&[0xcc, v as u8]),
            0x100..=0xffff => {
                self.out.push(0xcd);
                self.out.extend_from_slice(&(v as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.out.push(0xce);
                self.out.extend_from_slice(&(v as u32).to_be_bytes());
            }
            _ => {
                self.out.push(0xcf);
                self.out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }

    #[inline]
    fn int(&mut self, v: i64) {
        if v >= 0 {
            return self.uint(v as u64);
        }
        match v {
            -32..=-1 => self.out.push(v as i8 as u8),
            -128..=-33 => self.out.extend_from_slice(&[0xd0, v as i8 as u8]),
            -32768..=-129 => {
                self.out.push(0xd1);
                self.out.extend_from_slice(&(v as i16).to_be_bytes());
            }
            -2_147_483_648..=-32769 => {
                self.out.push(0xd2);
                self.out.extend_from_slice(&(v as i32).to_be_bytes());
            }
            _ => {
                self.out.push(0xd3);
                self.out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }

    #[inline]
    fn header(&mut self, len: usize, fix: u8, fix_max: usize, one: Option<u8>, two: u8, four: u8) {
        if len <= fix_max {
            self.out.push(fix | len as u8);
        } else if let (Some(marker), true) = (one, len <= 0xff) {
            self.out.extend_from_slice(&[marker, len as u8]);
        } else if len <= 0xffff {
            self.out.push(two);
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.out.push(four);
            self.out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }

    #[inline]
    fn bin(&mut self, value: &[u8]) {
        let len = value.len();
        if len <= 0xff {
            self.out.extend_from_slice(&[0xc4, len as u8]);
        } else if len <= 0xffff {
            self.out.push(0xc5);
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.out.push(0xc6);
            self.out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        self.out.extend_from_slice(value);
    }
}

impl Writer for MsgpackWriter<'_> {
    #[inline]
    fn begin_message(&mut self, fields: usize) -> Result<(), CodecError> {
        self.header(fields, 0x80, 15, None, 0xde, 0xdf);
        Ok(())
    }
    #[inline]
    fn end_message(&mut self) {}
    #[inline]
    fn field(&mut self, field: &'static Field) {
        self.uint(u64::from(field.number));
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
        self.uint(u64::from(value));
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
        self.uint(value);
    }
    #[inline]
    fn int64(&mut self, value: i64) {
        self.int(value);
    }
    #[inline]
    fn double(&mut self, value: f64) {
        self.out.push(0xcb);
        self.out.extend_from_slice(&value.to_bits().to_be_bytes());
    }
    #[inline]
    fn boolean(&mut self, value: bool) {
        self.out.push(if value { 0xc3 } else { 0xc2 });
    }
    #[inline]
    fn string(&mut self, value: &str) {
        self.header(value.len(), 0xa0, 31, Some(0xd9), 0xda, 0xdb);
        self.out.extend_from_slice(value.as_bytes());
    }
    #[inline]
    fn bytes(&mut self, value: &[u8]) {
        self.bin(value);
    }
    #[inline]
    fn id(&mut self, value: &[u8]) {
        self.bin(value);
    }
    #[inline]
    fn begin_array(&mut self, len: usize) {
        self.header(len, 0x90, 15, None, 0xdc, 0xdd);
    }
    #[inline]
    fn array_item(&mut self, _index: usize) {}
    #[inline]
    fn end_array(&mut self) {}
}

struct MsgpackReader<'de> {
    cursor: Cursor<'de>,
}

/// A decoded MessagePack value head.
enum Head {
    Uint(u64),
    Int(i64),
    Double(f64),
    Bool(bool),
    Nil,
    Str(u64),
    Bin(u64),
    Array(u64),
    Map(u64),
    Ext(u64),
}

impl<'de> MsgpackReader<'de> {
    #[inline]
    fn head(&mut self) -> Result<Head, CodecError> {
        let c = &mut self.cursor;
        let marker = c.byte()?;
        Ok(match marker {
            0x00..=0x7f => Head::Uint(u64::from(marker)),
            0x80..=0x8f => Head::Map(u64::from(marker & 0x0f)),
            0x90..=0x9f => Head::Array(u64::from(marker & 0x0f)),
            0xa0..=0xbf => Head::Str(u64::from(marker & 0x1f)),
            0xc0 => Head::Nil,
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => Head::Bin(c.be(1)?),
            0xc5 => Head::Bin(c.be(2)?),
            0xc6 => Head::Bin(c.be(4)?),
            0xc7 => Head::Ext(c.be(1)? + 1),
            0xc8 => Head::Ext(c.be(2)? + 1),
            0xc9 => Head::Ext(c.be(4)? + 1),
            0xca => Head::Double(f64::from(f32::from_bits(c.be(4)? as u32))),
            0xcb => Head::Double(f64::from_bits(c.be(8)?)),
            0xcc => Head::Uint(c.be(1)?),
            0xcd => Head::Uint(c.be(2)?),
            0xce => Head::Uint(c.be(4)?),
            0xcf => Head::Uint(c.be(8)?),
            0xd0 => Head::Int(i64::from(c.be(1)? as u8 as i8)),
            0xd1 => Head::Int(i64::from(c.be(2)? as u16 as i16)),
            0xd2 => Head::Int(i64::from(c.be(4)? as u32 as i32)),
            0xd3 => Head::Int(c.be(8)? as i64),
            0xd4 => Head::Ext(2),
            0xd5 => Head::Ext(3),
            0xd6 => Head::Ext(5),
            0xd7 => Head::Ext(9),
            0xd8 => Head::Ext(17),
            0xd9 => Head::Str(c.be(1)?),
            0xda => Head::Str(c.be(2)?),
            0xdb => Head::Str(c.be(4)?),
            0xdc => Head::Array(c.be(2)?),
            0xdd => Head::Array(c.be(4)?),
            0xde => Head::Map(c.be(2)?),
            0xdf => Head::Map(c.be(4)?),
            0xe0..=0xff => Head::Int(i64::from(marker as i8)),
            0xc1 => return Err(c.error("invalid MessagePack marker 0xc1")),
        })
    }

    #[inline]
    fn integer(&mut self) -> Result<i128, CodecError> {
        match self.head()? {
            Head::Uint(v) => Ok(i128::from(v)),
            Head::Int(v) => Ok(i128::from(v)),
            _ => Err(self.cursor.error("expected an integer")),
        }
    }

    /// Skips one complete value, iteratively.
    #[inline]
    fn skip(&mut self) -> Result<(), CodecError> {
        let base = self.cursor.remaining.len();
        loop {
            match self.head()? {
                Head::Str(len) | Head::Bin(len) | Head::Ext(len) => {
                    self.cursor.take(len)?;
                }
                Head::Array(n) => self.cursor.open(n)?,
                Head::Map(n) => self.cursor.open(n.saturating_mul(2))?,
                _ => {}
            }
            // Find the next value still to skip, closing finished containers.
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

impl<'de> Reader<'de> for MsgpackReader<'de> {
    crate::binary::shared_reader_methods!();

    #[inline]
    fn begin_message(&mut self) -> Result<bool, CodecError> {
        match self.head()? {
            Head::Nil => Ok(false),
            Head::Map(n) => {
                self.cursor.open(n)?;
                Ok(true)
            }
            _ => Err(self.cursor.error("expected a map")),
        }
    }

    #[inline]
    fn null(&mut self) -> Result<bool, CodecError> {
        if self.cursor.peek() == Some(0xc0) {
            self.cursor.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    #[inline]
    fn double(&mut self) -> Result<f64, CodecError> {
        match self.head()? {
            Head::Double(v) => Ok(v),
            _ => Err(self.cursor.error("expected a float")),
        }
    }

    #[inline]
    fn boolean(&mut self) -> Result<bool, CodecError> {
        match self.head()? {
            Head::Bool(v) => Ok(v),
            _ => Err(self.cursor.error("expected a boolean")),
        }
    }

    #[inline]
    fn string(&mut self) -> Result<String, CodecError> {
        match self.head()? {
            Head::Str(len) => {
                let raw = self.cursor.take(len)?;
                String::from_utf8(raw.to_vec())
                    .map_err(|_| self.cursor.error("string is not valid UTF-8"))
            }
            _ => Err(self.cursor.error("expected a string")),
        }
    }

    #[inline]
    fn bytes(&mut self) -> Result<Bytes, CodecError> {
        match self.head()? {
            Head::Bin(len) => Ok(Bytes::copy_from_slice(self.cursor.take(len)?)),
            _ => Err(self.cursor.error("expected binary data")),
        }
    }

    #[inline]
    fn begin_array(&mut self) -> Result<bool, CodecError> {
        match self.head()? {
            Head::Nil => Ok(false),
            Head::Array(n) => {
                self.cursor.open(n)?;
                Ok(true)
            }
            _ => Err(self.cursor.error("expected an array")),
        }
    }
}
