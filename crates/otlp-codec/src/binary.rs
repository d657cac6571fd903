//! What the MessagePack and CBOR readers share: a cursor over the input, a stack of
//! remaining entries per open map or array, and the nesting limits.

use crate::{CodecError, CodecErrorKind};

/// Open containers per `AnyValue` level (`{5: {1: [` in both formats) and around them.
const NESTING_PER_ANY_VALUE: usize = 3;
const STRUCTURAL_NESTING: usize = 32;

pub(crate) struct Cursor<'de> {
    pub(crate) input: &'de [u8],
    pub(crate) pos: usize,
    /// Entries (map) or items (array) left in each open container.
    pub(crate) remaining: Vec<u64>,
    max_nesting: usize,
    any_depth: usize,
    max_any_depth: usize,
}

impl<'de> Cursor<'de> {
    #[inline]
    pub(crate) fn new(input: &'de [u8], max_any_depth: usize) -> Self {
        Self {
            input,
            pos: 0,
            remaining: Vec::new(),
            max_nesting: max_any_depth
                .saturating_mul(NESTING_PER_ANY_VALUE)
                .saturating_add(STRUCTURAL_NESTING),
            any_depth: 0,
            max_any_depth,
        }
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> CodecError {
        CodecError::invalid(message).with_offset(self.pos)
    }

    #[inline]
    pub(crate) fn byte(&mut self) -> Result<u8, CodecError> {
        let byte = *self
            .input
            .get(self.pos)
            .ok_or_else(|| self.error("unexpected end of input"))?;
        self.pos += 1;
        Ok(byte)
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn take(&mut self, len: u64) -> Result<&'de [u8], CodecError> {
        let len = usize::try_from(len).map_err(|_| self.error("length overflows"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.input.len())
            .ok_or_else(|| self.error(format!("declared length {len} exceeds the input")))?;
        let slice = &self.input[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    #[inline]
    pub(crate) fn be(&mut self, bytes: usize) -> Result<u64, CodecError> {
        let slice = self.take(bytes as u64)?;
        Ok(slice.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    }

    /// Opens a container of `entries` entries. Each entry must be backed by at least one
    /// byte of input, which bounds what a declared count can make us do.
    #[inline]
    pub(crate) fn open(&mut self, entries: u64) -> Result<(), CodecError> {
        if entries > (self.input.len() - self.pos) as u64 {
            return Err(self.error(format!("declared {entries} entries exceed the input")));
        }
        if self.remaining.len() >= self.max_nesting {
            return Err(CodecError::new(
                CodecErrorKind::TooDeep,
                format!("nesting exceeds {}", self.max_nesting),
            )
            .with_offset(self.pos));
        }
        self.remaining.push(entries);
        Ok(())
    }

    /// Takes the next entry of the innermost container, or closes it: `false` at its end.
    #[inline]
    pub(crate) fn next_entry(&mut self) -> bool {
        match self.remaining.last_mut() {
            Some(0) | None => {
                self.remaining.pop();
                false
            }
            Some(left) => {
                *left -= 1;
                true
            }
        }
    }

    #[inline]
    pub(crate) fn enter_any_value(&mut self) -> Result<(), CodecError> {
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
    pub(crate) fn exit_any_value(&mut self) {
        self.any_depth -= 1;
    }

    #[inline]
    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        if self.pos != self.input.len() {
            return Err(self.error("unexpected bytes after the message"));
        }
        Ok(())
    }
}

/// The encode-side depth guard both binary writers share.
pub(crate) fn check_depth(depth: &mut usize, max: usize) -> Result<(), CodecError> {
    *depth += 1;
    if *depth > max {
        return Err(CodecError::new(
            CodecErrorKind::TooDeep,
            format!("AnyValue nesting exceeds {max}"),
        ));
    }
    Ok(())
}

/// The `Reader` methods MessagePack and CBOR share: both key messages by field number,
/// carry integers natively and ids as raw bytes. The reader type must have a `cursor`, and
/// `integer`, `skip` and `bytes` methods.
macro_rules! shared_reader_methods {
    () => {
        #[inline]
        fn next_field(
            &mut self,
            fields: &'static [crate::schema::Field],
        ) -> Result<Option<usize>, CodecError> {
            loop {
                if !self.cursor.next_entry() {
                    return Ok(None);
                }
                let number = self.integer()?;
                if let Some(index) = fields.iter().position(|f| i128::from(f.number) == number) {
                    // nil/null means absent: skip the field here rather than in every caller.
                    if self.null()? {
                        continue;
                    }
                    return Ok(Some(index));
                }
                self.skip()?;
            }
        }

        #[inline]
        fn end_message(&mut self) {}

        #[inline]
        fn enter_any_value(&mut self) -> Result<(), CodecError> {
            self.cursor.enter_any_value()
        }

        #[inline]
        fn exit_any_value(&mut self) {
            self.cursor.exit_any_value();
        }

        #[inline]
        fn uint32(&mut self) -> Result<u32, CodecError> {
            let value = self.integer()?;
            crate::binary::ranged(&self.cursor, value, "uint32")
        }

        #[inline]
        fn int32(&mut self) -> Result<i32, CodecError> {
            let value = self.integer()?;
            crate::binary::ranged(&self.cursor, value, "int32")
        }

        #[inline]
        fn enumeration(&mut self, _by_name: fn(&str) -> Option<i32>) -> Result<i32, CodecError> {
            let value = self.integer()?;
            crate::binary::ranged(&self.cursor, value, "an enum")
        }

        #[inline]
        fn uint64(&mut self) -> Result<u64, CodecError> {
            let value = self.integer()?;
            crate::binary::ranged(&self.cursor, value, "uint64")
        }

        #[inline]
        fn int64(&mut self) -> Result<i64, CodecError> {
            let value = self.integer()?;
            crate::binary::ranged(&self.cursor, value, "int64")
        }

        #[inline]
        fn id(&mut self, len: usize) -> Result<Bytes, CodecError> {
            let id = self.bytes()?;
            if !id.is_empty() && id.len() != len {
                return Err(self
                    .cursor
                    .error(format!("expected an id of {len} bytes, got {}", id.len())));
            }
            Ok(id)
        }

        #[inline]
        fn next_item(&mut self) -> Result<bool, CodecError> {
            Ok(self.cursor.next_entry())
        }
    };
}

pub(crate) use shared_reader_methods;

/// Narrows a decoded integer to the field's type, or fails naming the type.
pub(crate) fn ranged<T: TryFrom<i128>>(
    cursor: &Cursor<'_>,
    value: i128,
    what: &str,
) -> Result<T, CodecError> {
    T::try_from(value).map_err(|_| cursor.error(format!("{value} is out of range for {what}")))
}

/// The codec type of a binary format: its constructor, its `Codec` impl over every schema
/// message (a writer with a depth guard, a reader over a `Cursor`), and its `OtlpCodec` names.
macro_rules! binary_codec {
    ($codec:ident, $writer:ident, $reader:ident, $name:literal, $content_type:literal) => {
        impl $codec {
            #[doc = concat!("`", $name, "` with `limits`.")]
            pub fn new(limits: DecodeLimits) -> Self {
                Self { limits }
            }
        }

        impl<M: Schema> Codec<M> for $codec {
            #[inline]
            fn encode(&self, message: &M, out: &mut Vec<u8>) -> Result<(), CodecError> {
                message.write(&mut $writer {
                    out,
                    depth: 0,
                    max_depth: self.limits.max_any_value_depth,
                })
            }

            #[inline]
            fn decode(&self, input: Bytes) -> Result<M, CodecError> {
                self.limits.check_input(input.len())?;
                let mut reader = $reader {
                    cursor: crate::binary::Cursor::new(&input, self.limits.max_any_value_depth),
                };
                let message = M::read(&mut reader)?;
                reader.cursor.finish()?;
                Ok(message)
            }
        }

        impl OtlpCodec for $codec {
            fn name(&self) -> &str {
                $name
            }
            fn content_type(&self) -> &str {
                $content_type
            }
        }
    };
}

pub(crate) use binary_codec;
