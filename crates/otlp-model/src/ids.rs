//! Trace and span ids, and the lowercase hex form OTLP/JSON and W3C headers use.

use std::fmt;

use bytes::Bytes;

/// An error from [`decode_hex`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The input has an odd number of characters.
    #[error("hex string has odd length {0}")]
    OddLength(usize),
    /// A character outside `0-9a-fA-F`.
    #[error("invalid hex character at offset {0}")]
    InvalidCharacter(usize),
}

/// An error building a [`TraceId`] or [`SpanId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id has the wrong number of bytes.
    #[error("expected {expected} bytes, got {actual}")]
    WrongLength {
        /// Bytes the id type requires.
        expected: usize,
        /// Bytes supplied.
        actual: usize,
    },
    /// The hex form was malformed.
    #[error(transparent)]
    Hex(#[from] HexError),
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends the lowercase hex form of `bytes` to `out`.
pub fn encode_hex(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX_DIGITS[usize::from(b >> 4)] as char);
        out.push(HEX_DIGITS[usize::from(b & 0x0f)] as char);
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex in either case.
pub fn decode_hex(hex: &str) -> Result<Vec<u8>, HexError> {
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(HexError::OddLength(bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let high = nibble(pair[0]).ok_or(HexError::InvalidCharacter(2 * i))?;
        let low = nibble(pair[1]).ok_or(HexError::InvalidCharacter(2 * i + 1))?;
        out.push((high << 4) | low);
    }
    Ok(out)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The length of the id in bytes.
            pub const LEN: usize = $len;

            /// The all-zero id, which OTLP defines as invalid.
            pub const INVALID: Self = Self([0; $len]);

            /// Wraps raw bytes.
            pub const fn from_array(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Takes the id from a protobuf `bytes` field; the length must be exact.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::WrongLength {
                    expected: $len,
                    actual: bytes.len(),
                })?;
                Ok(Self(array))
            }

            /// Parses the hex form, in either case.
            pub fn from_hex(hex: &str) -> Result<Self, IdError> {
                Self::from_slice(&decode_hex(hex)?)
            }

            /// The lowercase hex form.
            pub fn to_hex(&self) -> String {
                let mut out = String::with_capacity($len * 2);
                encode_hex(&self.0, &mut out);
                out
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Whether the id is valid, that is, not all zero.
            pub fn is_valid(&self) -> bool {
                self.0 != [0; $len]
            }

            /// The id as a protobuf `bytes` field value.
            pub fn to_bytes(&self) -> Bytes {
                Bytes::copy_from_slice(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::from_hex(s)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = IdError;
            fn try_from(bytes: &[u8]) -> Result<Self, IdError> {
                Self::from_slice(bytes)
            }
        }
    };
}

id_type!(
    /// A 16-byte trace id.
    ///
    /// ```
    /// use otlp_model::TraceId;
    /// let id: TraceId = "5B8EFFF798038103D269B633813FC60C".parse()?;
    /// assert_eq!(id.to_hex(), "5b8efff798038103d269b633813fc60c");
    /// assert!(id.is_valid());
    /// # Ok::<(), otlp_model::IdError>(())
    /// ```
    TraceId,
    16
);

id_type!(
    /// An 8-byte span id.
    ///
    /// ```
    /// use otlp_model::SpanId;
    /// assert!(SpanId::from_hex("eee19b7ec3c1b174").is_ok());
    /// assert!(SpanId::from_hex("eee19b7ec3c1b1").is_err()); // 7 bytes
    /// assert!(!SpanId::INVALID.is_valid());
    /// ```
    SpanId,
    8
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trips_in_either_case(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut hex = String::new();
            encode_hex(&bytes, &mut hex);
            prop_assert_eq!(hex.len(), bytes.len() * 2);
            prop_assert!(hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            prop_assert_eq!(decode_hex(&hex)?, bytes.clone());
            prop_assert_eq!(decode_hex(&hex.to_ascii_uppercase())?, bytes);
        }

        #[test]
        fn trace_id_round_trips(bytes in any::<[u8; 16]>()) {
            let id = TraceId::from_array(bytes);
            prop_assert_eq!(TraceId::from_hex(&id.to_hex())?, id);
            prop_assert_eq!(TraceId::from_slice(&id.to_bytes())?, id);
        }
    }

    #[test]
    fn malformed_hex_is_an_error_naming_the_place() {
        assert_eq!(decode_hex("abc"), Err(HexError::OddLength(3)));
        assert_eq!(decode_hex("0g"), Err(HexError::InvalidCharacter(1)));
        assert_eq!(
            SpanId::from_hex("00112233445566778899aabbccddeeff"),
            Err(IdError::WrongLength {
                expected: 8,
                actual: 16
            })
        );
        assert_eq!(
            TraceId::from_hex("zz").unwrap_err(),
            IdError::Hex(HexError::InvalidCharacter(0))
        );
    }
}
