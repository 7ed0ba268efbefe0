//! The data directory of a Platform node and the stores inside it:
//!
//! ```text
//! <data-dir>/
//!   db.redb     redb database: typed tables (blocks, state, WAL, … as later layers add them)
//!   blobs/      content-addressed files named by their blake3 hash
//!   audit/      hash-chained, append-only audit log (log, HEAD, LOCK)
//!   keys/       keystore (see platform-crypto)
//! ```
//!
//! Every write that is acknowledged is durable: blobs and key files are synced before they are
//! renamed into place, audit appends return only after `fdatasync`, and redb commits are
//! durable when they return.

mod atomic;
pub mod audit;
pub mod blobs;
mod datadir;
pub mod db;

pub use atomic::write_atomic;
pub use audit::{AuditEntry, AuditError, AuditLog, AuditRecord, VerifyReport};
pub use blobs::{BlobError, BlobStore};
pub use datadir::{DataDir, DataDirError};
pub use db::{Db, DbError, StoreKey, TableSpec, TableUsage};
