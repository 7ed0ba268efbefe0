//! The replay cache on disk: ids of accepted gossip messages with their topic and round, so a
//! restarted node still refuses messages it accepted before the restart.
//!
//! The network task keeps the cache in memory and hands this store batches (new ids, ids that
//! fell out of their topic's window) about once a second, on a blocking thread. A crash loses
//! at most the last batch; messages in it may be accepted once more after a restart, which the
//! consumers tolerate (votes and certificates are idempotent).

use std::sync::Arc;

use platform_primitives::Hash;
use platform_storage::{DataDir, DbError, TableSpec};

use crate::wire::Topic;

const SEEN: TableSpec<[u8; 32], (Topic, u64)> = TableSpec::new("network_seen", 16);

/// The most ids restored at start (the windows bound the cache far below this).
const MAX_RESTORE: usize = 1 << 20;

/// The replay cache's table in the data directory's database.
#[derive(Clone)]
pub struct SeenStore {
    dir: Arc<DataDir>,
}

impl SeenStore {
    /// The store in `dir`.
    pub fn new(dir: Arc<DataDir>) -> SeenStore {
        SeenStore { dir }
    }

    /// Every remembered id.
    pub fn load(&self) -> Result<Vec<(Hash, Topic, u64)>, DbError> {
        Ok(self
            .dir
            .db()
            .range(&SEEN, .., MAX_RESTORE)?
            .into_iter()
            .map(|(id, (topic, round))| (Hash(id), topic, round))
            .collect())
    }

    /// Adds `fresh` ids and forgets `evicted` ones, in one transaction.
    pub fn apply(&self, fresh: &[(Hash, Topic, u64)], evicted: &[Hash]) -> Result<(), DbError> {
        if fresh.is_empty() && evicted.is_empty() {
            return Ok(());
        }
        self.dir.db().write(|tx| {
            for (id, topic, round) in fresh {
                tx.put(&SEEN, &id.0, &(*topic, *round))?;
            }
            for id in evicted {
                tx.delete(&SEEN, &id.0)?;
            }
            Ok::<_, DbError>(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Hash::of(b"a");
        let b = Hash::of(b"b");
        {
            let store = SeenStore::new(Arc::new(DataDir::open(tmp.path()).unwrap()));
            store
                .apply(&[(a, Topic::Consensus, 3), (b, Topic::Announce, 4)], &[])
                .unwrap();
            store.apply(&[], &[b]).unwrap();
        }
        let store = SeenStore::new(Arc::new(DataDir::open(tmp.path()).unwrap()));
        assert_eq!(store.load().unwrap(), vec![(a, Topic::Consensus, 3)]);
    }
}
