//! Content-addressed blobs: `blobs/<blake3 hex>`.
//!
//! A blob is written to a temporary file, synced, and renamed to its hash, so a reader sees
//! either nothing or the whole blob. Reads re-hash the content: a blob damaged on disk is an
//! error, never silently served.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use platform_primitives::Hash;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The stored bytes no longer hash to their name.
    #[error(
        "blob {hash} is corrupted on disk (its content hashes to {actual}); delete {path} and fetch it again"
    )]
    Corrupted {
        /// The name.
        hash: Hash,
        /// What the content hashes to.
        actual: Hash,
        /// The file.
        path: PathBuf,
    },
    /// The blob is larger than the caller accepts.
    #[error("blob {hash} is {len} bytes; at most {limit} are accepted here")]
    TooLarge {
        /// The blob.
        hash: Hash,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },
}

/// The blob folder.
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    tmp_counter: AtomicU64,
}

impl BlobStore {
    /// Opens (creating if needed) a blob folder and removes temporary files a crash left.
    pub fn open(dir: &Path) -> Result<BlobStore, BlobError> {
        let io = |source| BlobError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        for entry in fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(BlobStore {
            dir: dir.to_owned(),
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The file a blob lives in.
    pub fn path(&self, hash: &Hash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    /// Whether the blob is stored.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.path(hash).is_file()
    }

    /// Stores `bytes` and returns their hash. Storing a blob that exists is a no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<Hash, BlobError> {
        let hash = Hash::of(bytes);
        let path = self.path(&hash);
        if path.is_file() {
            return Ok(hash);
        }
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| BlobError::Io { path: p, source }
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io(&path)(e));
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(hash)
    }

    /// Reads and verifies a blob of at most `limit` bytes; `None` if it is not stored.
    pub fn get(&self, hash: &Hash, limit: u64) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path(hash);
        let io = |source| BlobError::Io {
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().map_err(io)?.len();
        if len > limit {
            return Err(BlobError::TooLarge {
                hash: *hash,
                len,
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        Read::by_ref(&mut file)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let actual = Hash::of(&bytes);
        if actual != *hash {
            return Err(BlobError::Corrupted {
                hash: *hash,
                actual,
                path,
            });
        }
        Ok(Some(bytes))
    }

    /// Deletes a blob; `false` if it was not stored. The directory is synced, so a deletion
    /// that returned stays done.
    pub fn remove(&self, hash: &Hash) -> Result<bool, BlobError> {
        let path = self.path(hash);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(BlobError::Io { path, source }),
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| BlobError::Io {
                path: self.dir.clone(),
                source,
            })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_dedupe() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let h = store.put(b"module bytes").unwrap();
        assert_eq!(h, Hash::of(b"module bytes"));
        assert_eq!(store.put(b"module bytes").unwrap(), h);
        assert_eq!(
            store.get(&h, 1024).unwrap().as_deref(),
            Some(&b"module bytes"[..])
        );
        assert_eq!(store.get(&Hash::of(b"absent"), 1024).unwrap(), None);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary files left"
        );
        assert!(store.remove(&h).unwrap());
        assert!(!store.contains(&h));
        assert!(!store.remove(&h).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn corruption_and_size_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let h = store.put(b"payload").unwrap();
        assert!(matches!(
            store.get(&h, 3),
            Err(BlobError::TooLarge {
                len: 7,
                limit: 3,
                ..
            })
        ));
        fs::write(store.path(&h), b"PAYLOAD").unwrap();
        let err = store.get(&h, 1024).unwrap_err();
        assert!(matches!(err, BlobError::Corrupted { .. }));
        assert!(err.to_string().contains("delete"), "{err}");
    }

    #[test]
    fn leftover_temporary_files_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".tmp-1-0"), b"half a blob").unwrap();
        BlobStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
