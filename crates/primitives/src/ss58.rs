//! SS58 addresses for 32-byte account ids, as Substrate and Bittensor write them.
//!
//! Layout: `base58(prefix ‖ account ‖ checksum)`, where `checksum` is the first two bytes of
//! `blake2b-512("SS58PRE" ‖ prefix ‖ account)`. Prefixes below 64 take one byte; 64..16383 take
//! two. Bittensor uses the generic Substrate prefix 42.

use blake2::{Blake2b512, Digest};

/// The address prefix of Bittensor (the generic Substrate prefix).
pub const BITTENSOR_PREFIX: u16 = 42;

/// Why a string is not a Bittensor SS58 address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Ss58Error {
    /// Not base58 at all.
    #[error("'{input}' is not an SS58 address: {reason}")]
    NotBase58 {
        /// The string that was parsed.
        input: String,
        /// The base58 decoder's complaint.
        reason: String,
    },
    /// Decoded to a length that no 32-byte account address has.
    #[error(
        "'{input}' is not an SS58 address of a 32-byte key: it decodes to {len} bytes, expected 35 or 36"
    )]
    BadLength {
        /// The string that was parsed.
        input: String,
        /// Decoded length in bytes.
        len: usize,
    },
    /// The last two bytes do not match the checksum (a typo, or a truncated copy).
    #[error("'{input}' has a bad SS58 checksum: check the address for typos")]
    BadChecksum {
        /// The string that was parsed.
        input: String,
    },
    /// A valid address of another network.
    #[error(
        "'{input}' is an address for network prefix {prefix}; Bittensor addresses use prefix {expected}"
    )]
    WrongPrefix {
        /// The string that was parsed.
        input: String,
        /// The prefix it carries.
        prefix: u16,
        /// The prefix we accept.
        expected: u16,
    },
}

fn checksum(body: &[u8]) -> [u8; 2] {
    let mut h = Blake2b512::new();
    h.update(b"SS58PRE");
    h.update(body);
    let out = h.finalize();
    [out[0], out[1]]
}

fn prefix_bytes(prefix: u16) -> Vec<u8> {
    if prefix < 64 {
        vec![prefix as u8]
    } else {
        vec![
            ((prefix & 0b1111_1100) >> 2) as u8 | 0b0100_0000,
            ((prefix >> 8) as u8) | (((prefix & 0b11) << 6) as u8),
        ]
    }
}

/// Encodes a 32-byte account id with the given network prefix (0..16383).
pub fn encode(prefix: u16, account: &[u8; 32]) -> String {
    let mut body = prefix_bytes(prefix);
    body.extend_from_slice(account);
    let sum = checksum(&body);
    body.extend_from_slice(&sum);
    bs58::encode(body).into_string()
}

/// Decodes an address and returns its prefix and account id, checking the checksum.
pub fn decode_any(input: &str) -> Result<(u16, [u8; 32]), Ss58Error> {
    let bytes = bs58::decode(input)
        .into_vec()
        .map_err(|e| Ss58Error::NotBase58 {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
    let (prefix, prefix_len) = match bytes.first() {
        Some(&b) if b < 64 => (u16::from(b), 1),
        Some(&b) if b < 128 && bytes.len() > 1 => {
            let lower = ((b << 2) | (bytes[1] >> 6)) as u16;
            let upper = (bytes[1] & 0b0011_1111) as u16;
            (lower | (upper << 8), 2)
        }
        _ => {
            return Err(Ss58Error::BadLength {
                input: input.to_owned(),
                len: bytes.len(),
            });
        }
    };
    if bytes.len() != prefix_len + 32 + 2 {
        return Err(Ss58Error::BadLength {
            input: input.to_owned(),
            len: bytes.len(),
        });
    }
    let (body, sum) = bytes.split_at(prefix_len + 32);
    if checksum(body) != sum {
        return Err(Ss58Error::BadChecksum {
            input: input.to_owned(),
        });
    }
    let mut account = [0u8; 32];
    account.copy_from_slice(&body[prefix_len..]);
    Ok((prefix, account))
}

/// Decodes a Bittensor (prefix 42) address.
pub fn decode(input: &str) -> Result<[u8; 32], Ss58Error> {
    let (prefix, account) = decode_any(input)?;
    if prefix != BITTENSOR_PREFIX {
        return Err(Ss58Error::WrongPrefix {
            input: input.to_owned(),
            prefix,
            expected: BITTENSOR_PREFIX,
        });
    }
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    // //Alice's public key, as printed by `subkey inspect //Alice`.
    const ALICE: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

    fn alice() -> [u8; 32] {
        let mut a = [0u8; 32];
        hex::decode_to_slice(ALICE, &mut a).unwrap();
        a
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            encode(42, &alice()),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        // Polkadot (prefix 0) and Kusama (prefix 2) addresses of the same key.
        assert_eq!(
            encode(0, &alice()),
            "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5"
        );
        assert_eq!(
            encode(2, &alice()),
            "HNZata7iMYWmk5RvZRTiAsSDhV8366zq2YGb3tLH5Upf74F"
        );
    }

    #[test]
    fn round_trip_two_byte_prefix() {
        let addr = encode(1284, &alice());
        assert_eq!(decode_any(&addr), Ok((1284, alice())));
    }

    #[test]
    fn errors_name_the_problem() {
        let good = encode(42, &alice());
        let mut typo = good.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(matches!(decode(&typo), Err(Ss58Error::BadChecksum { .. })));
        assert!(matches!(
            decode("15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5"),
            Err(Ss58Error::WrongPrefix {
                prefix: 0,
                expected: 42,
                ..
            })
        ));
        assert!(matches!(decode("0OIl"), Err(Ss58Error::NotBase58 { .. })));
        assert!(matches!(decode("5Grwva"), Err(Ss58Error::BadLength { .. })));
        assert_eq!(decode(&good), Ok(alice()));
    }
}
