//! A small typed layer over redb: tables are declared once as [`TableSpec`]s with a key type
//! that encodes order-preservingly and a Borsh value type with a size limit, so every value read
//! back goes through the same strict decoder as bytes from the network.

use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::{CodecError, decode, encode};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database file could not be opened.
    #[error("cannot open database {path}: {reason}")]
    Open {
        /// The database file.
        path: String,
        /// redb's explanation.
        reason: String,
    },
    /// A read or write failed inside redb.
    #[error("database error: {0}")]
    Redb(String),
    /// A stored value does not decode: the database is corrupted or from another version.
    #[error("table '{table}': {source}")]
    Decode {
        /// The table.
        table: &'static str,
        /// The decoder's complaint.
        source: CodecError,
    },
    /// A stored key does not decode.
    #[error("table '{table}': malformed key of {len} bytes")]
    BadKey {
        /// The table.
        table: &'static str,
        /// Key length.
        len: usize,
    },
}

fn redb_err(e: impl std::fmt::Display) -> DbError {
    DbError::Redb(e.to_string())
}

/// A key that encodes to bytes whose lexicographic order is the key's order.
pub trait StoreKey: Sized {
    /// The encoded key.
    fn to_key(&self) -> Vec<u8>;
    /// Decodes a key; `None` if the bytes are not one.
    fn from_key(bytes: &[u8]) -> Option<Self>;
}

impl StoreKey for u64 {
    fn to_key(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn from_key(bytes: &[u8]) -> Option<Self> {
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

impl StoreKey for [u8; 32] {
    fn to_key(&self) -> Vec<u8> {
        self.to_vec()
    }
    fn from_key(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok()
    }
}

impl StoreKey for String {
    fn to_key(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn from_key(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// A table's name, key type, value type and the largest value it holds.
pub struct TableSpec<K, V> {
    name: &'static str,
    max_value: usize,
    _types: PhantomData<fn(K, V)>,
}

impl<K: StoreKey, V: BorshSerialize + BorshDeserialize> TableSpec<K, V> {
    /// Declares a table.
    pub const fn new(name: &'static str, max_value: usize) -> Self {
        TableSpec {
            name,
            max_value,
            _types: PhantomData,
        }
    }

    fn def(&self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(self.name)
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V, DbError> {
        decode(self.name, bytes, self.max_value).map_err(|source| DbError::Decode {
            table: self.name,
            source,
        })
    }
}

/// One table's share of the database file ([`Db::usage`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableUsage {
    /// The table.
    pub name: String,
    /// Entries it holds.
    pub entries: u64,
    /// Bytes of its keys and values.
    pub stored_bytes: u64,
    /// Bytes of its index pages and other metadata.
    pub metadata_bytes: u64,
    /// Bytes of its pages left unused by fragmentation.
    pub fragmented_bytes: u64,
}

/// redb's page cache (its default is 1 GiB, which a long run would slowly fill).
const CACHE_BYTES: usize = 32 << 20;

/// The node's redb database.
pub struct Db {
    inner: redb::Database,
}

impl Db {
    /// Every table's entries and bytes, names ascending: where the file's space goes.
    pub fn usage(&self) -> Result<Vec<TableUsage>, DbError> {
        use redb::{ReadableTableMetadata, TableHandle};
        let txn = self.inner.begin_read().map_err(redb_err)?;
        let mut out = Vec::new();
        for handle in txn.list_tables().map_err(redb_err)? {
            let name = handle.name().to_string();
            let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&name);
            let table = txn.open_table(def).map_err(redb_err)?;
            let stats = table.stats().map_err(redb_err)?;
            out.push(TableUsage {
                entries: table.len().map_err(redb_err)?,
                stored_bytes: stats.stored_bytes(),
                metadata_bytes: stats.metadata_bytes(),
                fragmented_bytes: stats.fragmented_bytes(),
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Opens or creates the database at `path`. Fails if another process holds it.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let inner = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| {
                DbError::Open {
            path: path.display().to_string(),
            reason: match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    "it is in use by another process (is a node running on this data directory?)"
                        .into()
                }
                other => other.to_string(),
            },
        }
            })?;
        Ok(Db { inner })
    }

    /// Runs `f` in a write transaction; commits (durably) if it returns `Ok`, aborts otherwise.
    pub fn write<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut tx = WriteTx {
            tx: self.inner.begin_write().map_err(redb_err)?,
        };
        let value = f(&mut tx)?;
        tx.tx.commit().map_err(redb_err)?;
        Ok(value)
    }

    /// Reads one value.
    pub fn get<K: StoreKey, V: BorshSerialize + BorshDeserialize>(
        &self,
        table: &TableSpec<K, V>,
        key: &K,
    ) -> Result<Option<V>, DbError> {
        let tx = self.inner.begin_read().map_err(redb_err)?;
        let t = match tx.open_table(table.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(redb_err(e)),
        };
        match t.get(key.to_key().as_slice()).map_err(redb_err)? {
            Some(v) => table.decode_value(v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Up to `limit` entries whose keys fall in `range`, in key order.
    pub fn range<K: StoreKey, V: BorshSerialize + BorshDeserialize>(
        &self,
        table: &TableSpec<K, V>,
        range: impl RangeBounds<K>,
        limit: usize,
    ) -> Result<Vec<(K, V)>, DbError> {
        use std::ops::Bound;
        let tx = self.inner.begin_read().map_err(redb_err)?;
        let t = match tx.open_table(table.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(redb_err(e)),
        };
        let enc = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.to_key()),
            Bound::Excluded(k) => Bound::Excluded(k.to_key()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let (lo, hi) = (enc(range.start_bound()), enc(range.end_bound()));
        fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
            match b {
                Bound::Included(v) => Bound::Included(v.as_slice()),
                Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
                Bound::Unbounded => Bound::Unbounded,
            }
        }
        let mut out = Vec::new();
        for item in t
            .range::<&[u8]>((as_slice(&lo), as_slice(&hi)))
            .map_err(redb_err)?
            .take(limit)
        {
            let (k, v) = item.map_err(redb_err)?;
            let key = K::from_key(k.value()).ok_or(DbError::BadKey {
                table: table.name,
                len: k.value().len(),
            })?;
            out.push((key, table.decode_value(v.value())?));
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

/// An open write transaction.
pub struct WriteTx {
    tx: redb::WriteTransaction,
}

impl WriteTx {
    /// Inserts or replaces a value.
    pub fn put<K: StoreKey, V: BorshSerialize + BorshDeserialize>(
        &mut self,
        table: &TableSpec<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), DbError> {
        let bytes = encode(value);
        if bytes.len() > table.max_value {
            return Err(DbError::Decode {
                table: table.name,
                source: CodecError::TooLarge {
                    what: "value to store",
                    len: bytes.len(),
                    limit: table.max_value,
                },
            });
        }
        let mut t = self.tx.open_table(table.def()).map_err(redb_err)?;
        t.insert(key.to_key().as_slice(), bytes.as_slice())
            .map_err(redb_err)?;
        Ok(())
    }

    /// Reads a value inside the transaction (sees this transaction's writes).
    pub fn get<K: StoreKey, V: BorshSerialize + BorshDeserialize>(
        &mut self,
        table: &TableSpec<K, V>,
        key: &K,
    ) -> Result<Option<V>, DbError> {
        let t = self.tx.open_table(table.def()).map_err(redb_err)?;
        let v = t.get(key.to_key().as_slice()).map_err(redb_err)?;
        v.map(|v| table.decode_value(v.value())).transpose()
    }

    /// Removes a value; returns whether it existed.
    pub fn delete<K: StoreKey, V: BorshSerialize + BorshDeserialize>(
        &mut self,
        table: &TableSpec<K, V>,
        key: &K,
    ) -> Result<bool, DbError> {
        let mut t = self.tx.open_table(table.def()).map_err(redb_err)?;
        let existed = t
            .remove(key.to_key().as_slice())
            .map_err(redb_err)?
            .is_some();
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMBERS: TableSpec<u64, String> = TableSpec::new("numbers", 64);

    #[test]
    fn put_get_range_delete_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let db = Db::open(&path).unwrap();
            db.write::<_, DbError>(|tx| {
                for n in [300u64, 2, 1 << 40, 17] {
                    tx.put(&NUMBERS, &n, &format!("n{n}"))?;
                }
                Ok(())
            })
            .unwrap();
            // An aborted transaction leaves nothing behind.
            let failed: Result<(), DbError> = db.write(|tx| {
                tx.put(&NUMBERS, &5, &"five".to_string())?;
                Err(DbError::Redb("caller gave up".into()))
            });
            assert!(failed.is_err());
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.get(&NUMBERS, &17).unwrap(), Some("n17".to_string()));
        assert_eq!(db.get(&NUMBERS, &5).unwrap(), None);
        let keys: Vec<u64> = db
            .range(&NUMBERS, 2..=300, 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            vec![2, 17, 300],
            "big-endian keys iterate in numeric order"
        );
        assert_eq!(db.range(&NUMBERS, .., 2).unwrap().len(), 2);
        assert!(
            db.write::<_, DbError>(|tx| tx.delete(&NUMBERS, &17))
                .unwrap()
        );
        assert_eq!(db.get(&NUMBERS, &17).unwrap(), None);
    }

    #[test]
    fn a_second_open_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let _first = Db::open(&path).unwrap();
        let err = Db::open(&path).err().unwrap().to_string();
        assert!(err.contains("in use by another process"), "{err}");
    }

    #[test]
    fn oversized_stored_values_are_decode_errors() {
        const SMALL: TableSpec<u64, String> = TableSpec::new("numbers", 4);
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db.redb")).unwrap();
        db.write::<_, DbError>(|tx| tx.put(&NUMBERS, &1, &"a longer value".to_string()))
            .unwrap();
        assert!(matches!(db.get(&SMALL, &1), Err(DbError::Decode { .. })));
    }
}
