//! The canonical codec for protocol bytes.
//!
//! Borsh is canonical: one value has exactly one encoding. These helpers add the two rules that
//! every decoder of external input must follow: a size limit checked *before* any parsing, and
//! no trailing bytes after the value.

use borsh::{BorshDeserialize, BorshSerialize};

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The input is larger than the caller allows for this kind of value.
    #[error("{what} is {len} bytes, at most {limit} bytes are accepted")]
    TooLarge {
        /// The kind of value that was being decoded.
        what: &'static str,
        /// Input length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The bytes are not a valid encoding of the value.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// The kind of value that was being decoded.
        what: &'static str,
        /// What the decoder found wrong.
        reason: String,
    },
    /// A valid value was followed by extra bytes.
    #[error("{what} has {extra} trailing bytes after a complete value")]
    TrailingBytes {
        /// The kind of value that was being decoded.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
}

/// Encodes a value with Borsh.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("Borsh serialization into a Vec cannot fail")
}

/// Decodes exactly one `T` from `bytes`, refusing inputs longer than `limit` and any trailing
/// bytes. `what` names the value in errors ("submission", "audit record", ...).
pub fn decode<T: BorshDeserialize>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
) -> Result<T, CodecError> {
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            what,
            len: bytes.len(),
            limit,
        });
    }
    let mut rest = bytes;
    let value = T::deserialize(&mut rest).map_err(|e| CodecError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes {
            what,
            extra: rest.len(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode(&7u32);
        bytes.push(0);
        assert_eq!(
            decode::<u32>("n", &bytes, 16),
            Err(CodecError::TrailingBytes {
                what: "n",
                extra: 1
            })
        );
    }

    #[test]
    fn rejects_oversize_before_parsing() {
        let bytes = vec![0u8; 17];
        assert!(matches!(
            decode::<Vec<u8>>("blob", &bytes, 16),
            Err(CodecError::TooLarge {
                len: 17,
                limit: 16,
                ..
            })
        ));
    }

    #[test]
    fn rejects_truncated_input() {
        let bytes = encode(&vec![1u8, 2, 3]);
        assert!(matches!(
            decode::<Vec<u8>>("blob", &bytes[..bytes.len() - 1], 64),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn huge_length_prefix_is_an_error_not_an_allocation() {
        // A length prefix of u32::MAX with no elements behind it.
        let bytes = u32::MAX.to_le_bytes();
        assert!(matches!(
            decode::<Vec<u64>>("list", &bytes, 64),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn round_trips() {
        let v = (1u8, String::from("tsp"), vec![3u64, 4]);
        assert_eq!(
            decode::<(u8, String, Vec<u64>)>("t", &encode(&v), 1024),
            Ok(v)
        );
    }
}
