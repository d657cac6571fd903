//! The few protobuf wire primitives the byte-level batch needs: walking a message's fields
//! by offset, and writing a length-delimited field's key and length.

use std::ops::Range;

use super::WireError;

/// Groups nest no deeper than this (prost's recursion limit).
const MAX_GROUP_DEPTH: usize = 100;

/// A protobuf wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    Len,
    StartGroup,
    Fixed32,
}

/// One field of a message: its number and where it lies in the message's bytes.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) number: u32,
    pub(crate) wire_type: WireType,
    /// The whole field: key, length (if any) and value.
    pub(crate) whole: Range<usize>,
    /// The value (for a length-delimited field: its payload, without the length).
    pub(crate) value: Range<usize>,
}

/// The fields of one message, in order.
pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Iterates over the fields of the message encoded in `bytes`.
pub(crate) fn fields(bytes: &[u8]) -> Fields<'_> {
    Fields { bytes, pos: 0 }
}

impl Iterator for Fields<'_> {
    type Item = Result<Field, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let field = read_field(self.bytes, self.pos);
        match &field {
            Ok(field) => self.pos = field.whole.end,
            // Nothing after a malformed field can be read.
            Err(_) => self.pos = self.bytes.len(),
        }
        Some(field)
    }
}

fn read_field(bytes: &[u8], start: usize) -> Result<Field, WireError> {
    let (key, pos) = varint(bytes, start)?;
    // As prost: a key is a 32-bit value, and field 0 does not exist.
    let number = u32::try_from(key)
        .ok()
        .map(|key| key >> 3)
        .filter(|n| *n != 0)
        .ok_or(WireError::new("invalid field number", start))?;
    let (wire_type, value) = match key & 7 {
        0 => {
            let (_, end) = varint(bytes, pos)?;
            (WireType::Varint, pos..end)
        }
        1 => (WireType::Fixed64, pos..fixed(bytes, pos, 8)?),
        2 => {
            let (len, at) = varint(bytes, pos)?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| at.checked_add(len))
                .filter(|end| *end <= bytes.len())
                .ok_or(WireError::new("length beyond the end of the message", pos))?;
            (WireType::Len, at..end)
        }
        3 => (WireType::StartGroup, pos..skip_group(bytes, pos, number)?),
        5 => (WireType::Fixed32, pos..fixed(bytes, pos, 4)?),
        _ => return Err(WireError::new("invalid wire type", start)),
    };
    Ok(Field {
        number,
        wire_type,
        whole: start..value.end,
        value,
    })
}

/// The offset just past the end-group key that closes group `number` opened before `pos`.
fn skip_group(bytes: &[u8], mut pos: usize, number: u32) -> Result<usize, WireError> {
    let mut open = vec![number];
    while let Some(&innermost) = open.last() {
        if open.len() > MAX_GROUP_DEPTH {
            return Err(WireError::new("groups nested too deep", pos));
        }
        let start = pos;
        let (key, after_key) = varint(bytes, pos)?;
        let field = u32::try_from(key >> 3).unwrap_or(0);
        pos = match key & 7 {
            4 if field == innermost => {
                open.pop();
                after_key
            }
            4 => return Err(WireError::new("mismatched end of group", start)),
            3 => {
                open.push(field);
                after_key
            }
            _ => read_field(bytes, start)?.whole.end,
        };
    }
    Ok(pos)
}

/// Reads a varint at `pos`: its value and the offset after it.
pub(crate) fn varint(bytes: &[u8], mut pos: usize) -> Result<(u64, usize), WireError> {
    let start = pos;
    let mut value = 0u64;
    for shift in 0..10 {
        let Some(&byte) = bytes.get(pos) else {
            return Err(WireError::new("truncated varint", start));
        };
        pos += 1;
        if shift == 9 && byte > 1 {
            return Err(WireError::new("varint longer than 64 bits", start));
        }
        value |= u64::from(byte & 0x7f) << (shift * 7);
        if byte < 0x80 {
            return Ok((value, pos));
        }
    }
    Err(WireError::new("varint longer than 10 bytes", start))
}

fn fixed(bytes: &[u8], pos: usize, size: usize) -> Result<usize, WireError> {
    pos.checked_add(size)
        .filter(|end| *end <= bytes.len())
        .ok_or(WireError::new("truncated fixed-width value", pos))
}

/// Appends the key and length of a length-delimited field `number` of `len` bytes.
pub(crate) fn put_len_key(out: &mut Vec<u8>, number: u32, len: usize) {
    put_varint(out, u64::from(number) << 3 | 2);
    put_varint(out, len as u64);
}

/// The size of [`put_len_key`]'s output.
pub(crate) fn len_key_size(number: u32, len: usize) -> usize {
    varint_size(u64::from(number) << 3 | 2) + varint_size(len as u64)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_size(value: u64) -> usize {
    // One byte per started group of seven bits, and at least one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_sizes_match_what_is_written() {
        for value in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_size(value), "{value}");
            assert_eq!(varint(&out, 0).ok(), Some((value, out.len())));
        }
    }

    #[test]
    fn groups_are_skipped_whole_and_mismatches_refused() {
        // Field 5 as a group holding a varint field 1, then field 2 = varint 7.
        let bytes = [0x2b, 0x08, 0x01, 0x2c, 0x10, 0x07];
        let read: Vec<_> = fields(&bytes).collect::<Result<_, _>>().unwrap_or_default();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].whole, 0..4);
        assert_eq!(read[1].number, 2);
        // End of group 6 where group 5 is open.
        assert!(fields(&[0x2b, 0x34]).next().is_some_and(|f| f.is_err()));
    }

    #[test]
    fn keys_and_varints_are_refused_where_prost_refuses_them() {
        // A tenth varint byte above 1 overflows 64 bits.
        let long = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02];
        assert!(varint(&long, 0).is_err());
        // A key above 32 bits (field 2^29, length-delimited, empty).
        let big_key = [0x82, 0x80, 0x80, 0x80, 0x10, 0x00];
        assert!(fields(&big_key).next().is_some_and(|f| f.is_err()));
    }
}
