//! Audit records and their on-disk frames.

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::{Hash, decode, encode};

use super::AuditError;

/// Longest `kind`.
pub const MAX_KIND: usize = 64;
/// Longest `actor`.
pub const MAX_ACTOR: usize = 128;
/// Largest `details`.
pub const MAX_DETAILS: usize = 64 * 1024;
/// Largest encoded record (bounded by the three limits above plus fixed fields).
pub const MAX_RECORD: usize = MAX_KIND + MAX_ACTOR + MAX_DETAILS + 128;
/// Frame overhead: length prefix and trailing hash.
pub const FRAME_OVERHEAD: usize = 4 + 32;

/// What a caller asks to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// What happened, as a dotted name: `keys.generate`, `challenge.publish`.
    pub kind: String,
    /// Who did it: a hotkey's SS58 address, or `operator` for local commands.
    pub actor: String,
    /// Borsh-encoded details; [`AuditFields`] for human-readable key/value details.
    pub details: Vec<u8>,
}

impl AuditEntry {
    /// An entry whose details are key/value text fields.
    pub fn with_fields(kind: &str, actor: &str, fields: &[(&str, &str)]) -> AuditEntry {
        AuditEntry {
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            details: encode(&AuditFields(
                fields
                    .iter()
                    .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )),
        }
    }

    pub(crate) fn check(&self) -> Result<(), AuditError> {
        let too = |what: &str, len: usize, max: usize| {
            Err(AuditError::EntryTooLarge(format!(
                "{what} is {len} bytes, at most {max}"
            )))
        };
        if self.kind.len() > MAX_KIND {
            return too("kind", self.kind.len(), MAX_KIND);
        }
        if self.actor.len() > MAX_ACTOR {
            return too("actor", self.actor.len(), MAX_ACTOR);
        }
        if self.details.len() > MAX_DETAILS {
            return too("details", self.details.len(), MAX_DETAILS);
        }
        Ok(())
    }
}

/// Human-readable details: ordered key/value pairs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AuditFields(pub Vec<(String, String)>);

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AuditRecord {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Wall-clock time of the append, milliseconds since the Unix epoch (informational).
    pub timestamp_ms: u64,
    /// What happened.
    pub kind: String,
    /// Who did it.
    pub actor: String,
    /// Borsh-encoded details.
    pub details: Vec<u8>,
    /// Hash of the previous record; [`Hash::ZERO`] for the first.
    pub prev: Hash,
}

impl AuditRecord {
    /// The details as key/value fields, if they were recorded that way.
    pub fn fields(&self) -> Option<AuditFields> {
        decode("audit details", &self.details, MAX_DETAILS).ok()
    }

    /// Encodes the record as a frame and returns it with the record's hash.
    pub(crate) fn to_frame(&self) -> (Vec<u8>, Hash) {
        let payload = encode(self);
        let hash = Hash::of(&payload);
        let mut frame = Vec::with_capacity(payload.len() + FRAME_OVERHEAD);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&payload);
        frame.extend_from_slice(&hash.0);
        (frame, hash)
    }
}

/// The outcome of reading one frame at the start of `bytes`.
pub(crate) enum Frame {
    /// A well-formed record, its hash and the frame length.
    Ok(AuditRecord, Hash, usize),
    /// The frame runs past the end of the data.
    Incomplete,
    /// The frame is complete (`len` bytes) but does not check out.
    Bad(String, Option<usize>),
}

pub(crate) fn read_frame(bytes: &[u8]) -> Frame {
    let Some(len_bytes) = bytes.get(..4) else {
        return Frame::Incomplete;
    };
    let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
    if len > MAX_RECORD {
        return Frame::Bad(
            format!("frame length {len} exceeds the record limit {MAX_RECORD}"),
            None,
        );
    }
    let total = len + FRAME_OVERHEAD;
    if bytes.len() < total {
        return Frame::Incomplete;
    }
    let payload = &bytes[4..4 + len];
    let hash = Hash::of(payload);
    if hash.0 != bytes[4 + len..total] {
        return Frame::Bad(
            "checksum mismatch: the record's bytes were changed".into(),
            Some(total),
        );
    }
    match decode::<AuditRecord>("audit record", payload, MAX_RECORD) {
        Ok(record) => Frame::Ok(record, hash, total),
        Err(e) => Frame::Bad(e.to_string(), Some(total)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The on-disk frame format. A change here makes existing logs unreadable.
    #[test]
    fn golden_frame() {
        let record = AuditRecord {
            seq: 1,
            timestamp_ms: 2,
            kind: "k".into(),
            actor: "a".into(),
            details: vec![0xee],
            prev: Hash([0x11; 32]),
        };
        let payload = concat!(
            "0100000000000000", // seq
            "0200000000000000", // timestamp_ms
            "010000006b",       // kind
            "0100000061",       // actor
            "01000000ee",       // details
        )
        .to_owned()
            + &"11".repeat(32); // prev
        let (frame, hash) = record.to_frame();
        assert_eq!(hash, Hash::of(&hex::decode(&payload).unwrap()));
        let expected = format!("{:08x}", (payload.len() / 2) as u32)
            .chars()
            .collect::<Vec<_>>();
        // Length prefix is little-endian.
        let len_le: String = expected.chunks(2).rev().flatten().collect();
        assert_eq!(
            hex::encode(&frame),
            format!("{len_le}{payload}{}", hash.to_hex())
        );
        assert!(
            matches!(read_frame(&frame), Frame::Ok(r, h, n) if r == record && h == hash && n == frame.len())
        );
    }

    #[test]
    fn golden_fields() {
        let e = AuditEntry::with_fields("keys.generate", "operator", &[("name", "v")]);
        assert_eq!(
            hex::encode(&e.details),
            "01000000040000006e616d650100000076"
        );
    }
}
