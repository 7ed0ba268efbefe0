//! The data directory as a whole: its layout, its format version and the stores inside.

use std::path::{Path, PathBuf};

use crate::audit::{AuditEntry, AuditError, AuditLog};
use crate::blobs::{BlobError, BlobStore};
use crate::db::{Db, DbError, TableSpec};

/// The layout version this build reads and writes. A data directory of another version is
/// refused (start a fresh one, from the network's genesis or a peer's snapshot):
/// 1. the first layout;
/// 2. snapshots stored as chunks listed by a manifest blob, and the state's miner nonces as
///    windows of recent nonces (a version-1 snapshot or state does not read back);
/// 3. each epoch record of the state names the epoch's consensus members with their keys (a
///    version-2 snapshot or state does not read back).
pub const FORMAT_VERSION: u32 = 3;

const META: TableSpec<String, u32> = TableSpec::new("meta", 16);
const FORMAT_KEY: &str = "format_version";

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The folder could not be created.
    #[error("cannot create data directory {path}: {source}")]
    Create {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Written by another version of Platform.
    #[error(
        "data directory {path} has format version {found}; this build of platform reads version \
         {expected}: start this validator on a fresh data directory (`platform init`), which \
         catches up from its peers"
    )]
    Version {
        /// The folder.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// Ours.
        expected: u32,
    },
}

/// An open data directory, held exclusively by this process.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    db: Db,
    blobs: BlobStore,
    audit: AuditLog,
}

impl DataDir {
    /// Opens `root`, creating the layout on first use (and recording that in the audit log).
    pub fn open(root: &Path) -> Result<DataDir, DataDirError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|source| DataDirError::Create {
                path: root.to_owned(),
                source,
            })?;
        // The audit lock is taken first, so a second process fails before touching anything.
        let audit = AuditLog::open(&root.join("audit"))?;
        let db = Db::open(&root.join("db.redb"))?;
        let blobs = BlobStore::open(&root.join("blobs"))?;
        let key = FORMAT_KEY.to_owned();
        match db.get(&META, &key)? {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(DataDirError::Version {
                    path: root.to_owned(),
                    found,
                    expected: FORMAT_VERSION,
                });
            }
            None => {
                db.write::<_, DbError>(|tx| tx.put(&META, &key, &FORMAT_VERSION))?;
                audit.append(AuditEntry::with_fields(
                    "datadir.create",
                    "operator",
                    &[("format_version", &FORMAT_VERSION.to_string())],
                ))?;
            }
        }
        Ok(DataDir {
            root: root.to_owned(),
            db,
            blobs,
            audit,
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The redb database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Where the audit log of the data directory at `root` lives (for read-only tools).
    pub fn audit_dir(root: &Path) -> PathBuf {
        root.join("audit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_layout_once_and_checks_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("node");
        {
            let dd = DataDir::open(&root).unwrap();
            assert_eq!(dd.audit().len(), 1);
            assert!(matches!(
                DataDir::open(&root),
                Err(DataDirError::Audit(AuditError::Locked(_)))
            ));
        }
        let dd = DataDir::open(&root).unwrap();
        assert_eq!(dd.audit().len(), 1, "reopening records nothing new");
        dd.db()
            .write::<_, DbError>(|tx| tx.put(&META, &FORMAT_KEY.to_owned(), &99))
            .unwrap();
        drop(dd);
        let err = DataDir::open(&root).unwrap_err().to_string();
        assert!(err.contains("format version 99"), "{err}");
    }
}
