//! The hash-chained, append-only audit log (`<data-dir>/audit/`).
//!
//! Every change a node makes on its operator's behalf — keys created, challenges published,
//! weights submitted — is recorded here, so an operator can later prove what happened and in
//! which order.
//!
//! # Format
//!
//! `audit/log` is a sequence of frames:
//!
//! ```text
//! u32 LE length ‖ Borsh(AuditRecord) ‖ blake3(Borsh(AuditRecord))
//! ```
//!
//! Each record carries its sequence number (from 0) and the hash of the previous record
//! ([`Hash::ZERO`] for the first), so removing, reordering or editing any record breaks the
//! chain at that point. `audit/HEAD` holds the count and last hash of the records known to be
//! durable; it is rewritten atomically after every group commit, so cutting records off the end
//! of the log is detected too.
//!
//! # Durability
//!
//! [`AuditLog::append`] returns only after its record is written and `fdatasync`ed. Concurrent
//! appends are group-committed: whichever caller finds no flush in progress writes every
//! pending record with one sync, then wakes the others.
//!
//! # Recovery
//!
//! A crash can leave the last frame half-written. On open, a bad frame that is the last thing in
//! the file (incomplete, failing its checksum, or followed only by zero bytes) and lies beyond
//! HEAD is cut off with a warning. Any other damage is an error: the log is never silently
//! repaired.
//!
//! # Limits of the guarantee
//!
//! The chain makes tampering *evident* relative to a trusted copy of HEAD or of any record hash;
//! someone who can rewrite the whole folder can forge a consistent history.

mod log;
mod record;

pub use log::{Appended, AuditLog, VerifyReport, tail, verify};
pub use record::{AuditEntry, AuditFields, AuditRecord};

use std::path::PathBuf;

#[cfg(doc)]
use platform_primitives::Hash;

/// Why an audit log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process is appending to this log.
    #[error(
        "the audit log in {0} is in use by another process (is a node running on this data directory?)"
    )]
    Locked(PathBuf),
    /// A record is damaged, missing or out of place.
    #[error("audit log damaged at record {seq} (byte offset {offset}): {reason}")]
    Corrupt {
        /// The sequence number expected at this point.
        seq: u64,
        /// Byte offset of the bad frame in `audit/log`.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Records that HEAD vouches for are gone from the end of the log.
    #[error(
        "audit log ends after {found} records but HEAD records {expected}: records were cut off the end"
    )]
    Truncated {
        /// Records HEAD says were written.
        expected: u64,
        /// Records found.
        found: u64,
    },
    /// The record HEAD points at is not the one in the log.
    #[error("audit record {seq} is not the record HEAD vouches for: the log was modified")]
    HeadMismatch {
        /// The record.
        seq: u64,
    },
    /// HEAD is missing or unreadable while the log has records.
    #[error("audit/HEAD is {0}; the log cannot be checked for truncation")]
    BadHead(&'static str),
    /// An entry exceeds the record limits.
    #[error("audit entry too large: {0}")]
    EntryTooLarge(String),
    /// An earlier write failed; the in-memory state may not match the disk.
    #[error("the audit log stopped after a write error ({0}); restart the process to recover it")]
    Failed(String),
}
