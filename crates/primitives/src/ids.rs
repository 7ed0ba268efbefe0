//! Identifiers of the protocol.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::hash::Hash;
use crate::ss58::{self, Ss58Error};

macro_rules! counter {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug,
            BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

counter!(
    /// Height of a block in Platform's replicated log (genesis is 0).
    Height(u64)
);
counter!(
    /// A consensus view (round) number; each view has one leader.
    View(u64)
);
counter!(
    /// A Platform epoch, anchored on a chain block; weights are set once per epoch.
    Epoch(u64)
);
counter!(
    /// A Bittensor subnet id.
    NetUid(u16)
);
counter!(
    /// A neuron's slot in a subnet's metagraph.
    Uid(u16)
);

/// An sr25519 public key that identifies a validator, miner or subnet owner. Written as an SS58
/// address with Bittensor's prefix 42.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Hotkey(pub [u8; 32]);

impl Hotkey {
    /// The SS58 address (prefix 42).
    pub fn to_ss58(&self) -> String {
        ss58::encode(ss58::BITTENSOR_PREFIX, &self.0)
    }

    /// The public key as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Hotkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl fmt::Debug for Hotkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hotkey({})", self.to_ss58())
    }
}

impl FromStr for Hotkey {
    type Err = Ss58Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ss58::decode(s.trim()).map(Hotkey)
    }
}

impl serde::Serialize for Hotkey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_ss58())
    }
}

impl<'de> serde::Deserialize<'de> for Hotkey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a string is not a challenge id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{0}' is not a challenge id: use 1 to {max} characters from a-z, 0-9 and '-', starting with a letter",
    max = ChallengeId::MAX_LEN
)]
pub struct ChallengeIdError(pub String);

/// The short, human-chosen name of a challenge (`tsp`, `classifier`), unique within a subnet.
///
/// 1 to 32 characters from `a-z`, `0-9` and `-`, starting with a letter. The Borsh decoder
/// enforces the same rule, so an invalid id never enters the state.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize)]
pub struct ChallengeId(String);

impl ChallengeId {
    /// The longest id in bytes.
    pub const MAX_LEN: usize = 32;

    /// Validates and wraps `s`.
    pub fn new(s: &str) -> Result<ChallengeId, ChallengeIdError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(ChallengeId(s.to_owned()))
        } else {
            Err(ChallengeIdError(s.to_owned()))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl BorshDeserialize for ChallengeId {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let len = u32::deserialize_reader(reader)? as usize;
        if len > Self::MAX_LEN {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("challenge id of {len} bytes, at most {}", Self::MAX_LEN),
            ));
        }
        let mut buf = vec![0u8; len];
        reader.read_exact(&mut buf)?;
        let s = String::from_utf8(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        ChallengeId::new(&s)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

impl fmt::Display for ChallengeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChallengeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChallengeId({})", self.0)
    }
}

impl FromStr for ChallengeId {
    type Err = ChallengeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChallengeId::new(s)
    }
}

impl serde::Serialize for ChallengeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ChallengeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        ChallengeId::new(&s).map_err(serde::de::Error::custom)
    }
}

/// What a miner submits to a challenge: the canonical form whose blake3 is the
/// [`SubmissionId`]. The payload itself travels as a content-addressed blob.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Submission {
    /// The challenge that scores the payload.
    pub challenge: ChallengeId,
    /// The miner's hotkey; it signs the submission.
    pub miner: Hotkey,
    /// blake3 of the payload bytes.
    pub payload_hash: Hash,
    /// Payload length in bytes, checked against the challenge policy before fetching.
    pub payload_len: u64,
    /// The miner's nonce; a (miner, nonce) pair is accepted once.
    pub nonce: u64,
}

impl Submission {
    /// The submission's id: blake3 of its Borsh encoding.
    pub fn id(&self) -> SubmissionId {
        SubmissionId(Hash::of(&crate::codec::encode(self)))
    }
}

/// The id of a submission: blake3 of the canonical (Borsh) [`Submission`].
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct SubmissionId(pub crate::hash::Hash);

impl fmt::Display for SubmissionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_id_rules() {
        for ok in ["tsp", "classifier", "a", "a-1", &"x".repeat(32)] {
            assert!(ChallengeId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "-a",
            "Tsp",
            "ts p",
            "tsp_",
            &"x".repeat(33),
            "é",
        ] {
            assert!(ChallengeId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn challenge_id_decoder_enforces_the_rules() {
        let bad = crate::codec::encode("Not Valid");
        let err = crate::codec::decode::<ChallengeId>("challenge id", &bad, 64).unwrap_err();
        assert!(err.to_string().contains("not a challenge id"), "{err}");
        let long = crate::codec::encode(&"x".repeat(33));
        assert!(crate::codec::decode::<ChallengeId>("challenge id", &long, 64).is_err());
    }

    #[test]
    fn hotkey_parses_its_display() {
        let hk = Hotkey([7u8; 32]);
        assert_eq!(hk.to_string().parse::<Hotkey>(), Ok(hk));
        let json = serde_json::to_string(&hk).unwrap();
        assert_eq!(serde_json::from_str::<Hotkey>(&json).unwrap(), hk);
    }
}
