//! The DHT's record store: provider records only, bounded and expiring.
//!
//! Platform uses Kademlia for one thing: finding who holds a blob that needs discovery (a
//! miner's payload, a challenge module). Blocks and snapshots never go through it; they travel
//! by announcement and request-response. The library's default in-memory store holds at most
//! 1,024 keys and never forgets a remote record nobody asks about, so a network that announced
//! every blob filled it after about a thousand blocks and then refused every new announcement.
//!
//! This store has two separate budgets:
//!
//! - **Our own records** (`max_provided`): the blobs this node announces. When full, the oldest
//!   announcement is withdrawn to make room for the new one (newer blobs are the ones peers are
//!   about to ask for). The node withdraws a record itself when it collects the blob.
//! - **Other peers' records** (`max_remote`, at most `max_per_key` per key): each expires after
//!   the record TTL. When full, expired records are swept first; if none has expired, the record
//!   closest to expiry is dropped. An announcement is never refused for lack of room.
//!
//! Value records (`PUT_VALUE`) are refused outright: Platform stores nothing in the DHT.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::store::{Error, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

/// Limits of the provider store and the cadence of announcements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderLimits {
    /// Most keys this node announces at once.
    pub max_provided: usize,
    /// Most provider records of other peers held.
    pub max_remote: usize,
    /// Most providers kept for one key.
    pub max_per_key: usize,
    /// How long another peer's record is kept without being re-announced.
    pub record_ttl: Duration,
    /// How often this node re-announces its own records (well under `record_ttl`).
    pub republish: Duration,
}

impl Default for ProviderLimits {
    fn default() -> Self {
        ProviderLimits {
            max_provided: 16_384,
            max_remote: 65_536,
            max_per_key: 20,
            record_ttl: Duration::from_secs(60 * 60),
            republish: Duration::from_secs(10 * 60),
        }
    }
}

/// Counters the service reads into its metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProviderStats {
    /// Keys this node announces now.
    pub provided: usize,
    /// Other peers' records held now.
    pub remote: usize,
    /// Own announcements withdrawn to make room (since start).
    pub evicted_own: u64,
    /// Other peers' records dropped before expiry to make room (since start).
    pub evicted_remote: u64,
    /// Other peers' records dropped because they expired (since start).
    pub expired: u64,
}

/// A [`RecordStore`] holding provider records within [`ProviderLimits`].
pub struct ProviderStore {
    local: PeerId,
    limits: ProviderLimits,
    /// Own records by key with the sequence number of their first announcement, and the keys
    /// by that number (oldest first).
    provided: HashMap<RecordKey, (u64, ProviderRecord)>,
    provided_order: BTreeMap<u64, RecordKey>,
    next_seq: u64,
    /// Other peers' records by key.
    remote: HashMap<RecordKey, Vec<ProviderRecord>>,
    /// Other peers' records by expiry, to sweep and evict without scanning.
    by_expiry: BTreeSet<(Instant, Vec<u8>, PeerId)>,
    stats: ProviderStats,
}

impl ProviderStore {
    pub fn new(local: PeerId, limits: ProviderLimits) -> ProviderStore {
        ProviderStore {
            local,
            limits,
            provided: HashMap::new(),
            provided_order: BTreeMap::new(),
            next_seq: 0,
            remote: HashMap::new(),
            by_expiry: BTreeSet::new(),
            stats: ProviderStats::default(),
        }
    }

    pub fn stats(&self) -> ProviderStats {
        ProviderStats {
            provided: self.provided.len(),
            remote: self.by_expiry.len(),
            ..self.stats
        }
    }

    /// Drops other peers' records that expired by `now`.
    pub fn sweep(&mut self, now: Instant) {
        while self.by_expiry.first().is_some_and(|first| first.0 <= now) {
            self.pop_soonest();
            self.stats.expired += 1;
        }
    }

    /// Drops the record closest to expiry. The index entry goes first, so every call shrinks
    /// it and loops over it end.
    fn pop_soonest(&mut self) {
        if let Some((_, key, peer)) = self.by_expiry.pop_first() {
            let key = RecordKey::new(&key);
            if let Some(list) = self.remote.get_mut(&key) {
                list.retain(|p| p.provider != peer);
                if list.is_empty() {
                    self.remote.remove(&key);
                }
            }
        }
    }

    fn drop_remote(&mut self, key: &RecordKey, peer: &PeerId) {
        if let Some(list) = self.remote.get_mut(key) {
            if let Some(i) = list.iter().position(|p| &p.provider == peer) {
                let gone = list.remove(i);
                self.by_expiry.remove(&(expiry(&gone), key.to_vec(), *peer));
            }
            if list.is_empty() {
                self.remote.remove(key);
            }
        }
    }

    fn add_own(&mut self, record: ProviderRecord) {
        let key = record.key.clone();
        if let Some(slot) = self.provided.get_mut(&key) {
            slot.1 = record;
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.provided.insert(key.clone(), (seq, record));
        self.provided_order.insert(seq, key);
        while self.provided.len() > self.limits.max_provided.max(1) {
            let Some((_, oldest)) = self.provided_order.pop_first() else {
                break;
            };
            self.provided.remove(&oldest);
            self.stats.evicted_own += 1;
        }
    }

    fn add_remote(&mut self, mut record: ProviderRecord) {
        let now = Instant::now();
        // A record without an expiry (a peer's TTL of "never") gets ours: nothing remote is
        // kept forever.
        if record
            .expires
            .is_none_or(|t| t > now + self.limits.record_ttl)
        {
            record.expires = Some(now + self.limits.record_ttl);
        }
        let key = record.key.clone();
        let peer = record.provider;
        if let Some(list) = self.remote.get(&key)
            && let Some(old) = list.iter().find(|p| p.provider == peer)
        {
            // A re-announcement: refresh in place.
            let old_expiry = expiry(old);
            self.by_expiry.remove(&(old_expiry, key.to_vec(), peer));
            self.by_expiry.insert((expiry(&record), key.to_vec(), peer));
            let list = self.remote.get_mut(&key).expect("present");
            let slot = list
                .iter_mut()
                .find(|p| p.provider == peer)
                .expect("present");
            *slot = record;
            return;
        }
        if self
            .remote
            .get(&key)
            .is_some_and(|l| l.len() >= self.limits.max_per_key)
        {
            // Enough providers for this key; more would only help a Sybil flood.
            return;
        }
        if self.by_expiry.len() >= self.limits.max_remote {
            self.sweep(now);
        }
        while self.by_expiry.len() >= self.limits.max_remote.max(1) {
            self.pop_soonest();
            self.stats.evicted_remote += 1;
        }
        self.by_expiry.insert((expiry(&record), key.to_vec(), peer));
        self.remote.entry(key).or_default().push(record);
    }
}

fn expiry(r: &ProviderRecord) -> Instant {
    r.expires.expect("remote records always carry an expiry")
}

impl RecordStore for ProviderStore {
    type RecordsIter<'a> = std::iter::Empty<Cow<'a, Record>>;
    type ProvidedIter<'a> = std::iter::Map<
        std::collections::hash_map::Values<'a, RecordKey, (u64, ProviderRecord)>,
        fn(&'a (u64, ProviderRecord)) -> Cow<'a, ProviderRecord>,
    >;

    fn get(&self, _: &RecordKey) -> Option<Cow<'_, Record>> {
        None
    }

    fn put(&mut self, _: Record) -> Result<()> {
        Err(Error::MaxRecords)
    }

    fn remove(&mut self, _: &RecordKey) {}

    fn records(&self) -> Self::RecordsIter<'_> {
        std::iter::empty()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> Result<()> {
        if record.provider == self.local {
            self.add_own(record);
        } else {
            self.add_remote(record);
        }
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let mut out: Vec<ProviderRecord> = self
            .provided
            .get(key)
            .map(|(_, r)| r.clone())
            .into_iter()
            .collect();
        if let Some(list) = self.remote.get(key) {
            out.extend(list.iter().cloned());
        }
        out
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.provided.values().map(|(_, r)| Cow::Borrowed(r))
    }

    fn remove_provider(&mut self, key: &RecordKey, provider: &PeerId) {
        if provider == &self.local {
            if let Some((seq, _)) = self.provided.remove(key) {
                self.provided_order.remove(&seq);
            }
        } else {
            self.drop_remote(key, provider);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(keys: impl Iterator<Item = RecordKey>) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = keys.map(|k| k.to_vec()).collect();
        v.sort();
        v
    }

    fn key(i: u32) -> RecordKey {
        RecordKey::new(&i.to_be_bytes())
    }

    fn limits(own: usize, remote: usize) -> ProviderLimits {
        ProviderLimits {
            max_provided: own,
            max_remote: remote,
            max_per_key: 2,
            record_ttl: Duration::from_secs(60),
            republish: Duration::from_secs(10),
        }
    }

    #[test]
    fn own_records_past_the_limit_withdraw_the_oldest_and_never_fail() {
        let me = PeerId::random();
        let mut s = ProviderStore::new(me, limits(3, 10));
        for i in 0..10 {
            s.add_provider(ProviderRecord::new(key(i), me, vec![]))
                .expect("never refused");
        }
        assert_eq!(s.stats().provided, 3);
        assert_eq!(s.stats().evicted_own, 7);
        assert_eq!(
            sorted(s.provided().map(|r| r.key.clone())),
            sorted([7, 8, 9].into_iter().map(key))
        );
        assert_eq!(s.providers(&key(9)).len(), 1);
        assert!(s.providers(&key(0)).is_empty());
    }

    #[test]
    fn withdrawing_an_own_record_frees_its_slot() {
        let me = PeerId::random();
        let mut s = ProviderStore::new(me, limits(2, 10));
        s.add_provider(ProviderRecord::new(key(1), me, vec![]))
            .unwrap();
        s.add_provider(ProviderRecord::new(key(2), me, vec![]))
            .unwrap();
        s.remove_provider(&key(1), &me);
        s.add_provider(ProviderRecord::new(key(3), me, vec![]))
            .unwrap();
        assert_eq!(s.stats().evicted_own, 0);
        assert_eq!(
            sorted(s.provided().map(|r| r.key.clone())),
            sorted([2, 3].into_iter().map(key))
        );
    }

    #[test]
    fn remote_records_expire_and_make_room_for_new_ones() {
        let mut s = ProviderStore::new(PeerId::random(), limits(2, 4));
        let now = Instant::now();
        for i in 0..4 {
            let mut r = ProviderRecord::new(key(i), PeerId::random(), vec![]);
            r.expires = Some(now + Duration::from_secs(u64::from(i) + 1));
            s.add_provider(r).unwrap();
        }
        assert_eq!(s.stats().remote, 4);
        s.sweep(now + Duration::from_millis(2_500));
        assert_eq!(s.stats().remote, 2);
        assert_eq!(s.stats().expired, 2);
        assert!(s.providers(&key(0)).is_empty());
        assert_eq!(s.providers(&key(3)).len(), 1);
    }

    #[test]
    fn a_full_remote_store_drops_the_record_closest_to_expiry() {
        let mut s = ProviderStore::new(PeerId::random(), limits(2, 3));
        for i in 0..10 {
            s.add_provider(ProviderRecord::new(key(i), PeerId::random(), vec![]))
                .unwrap();
            assert!(s.stats().remote <= 3);
        }
        assert_eq!(s.stats().remote, 3);
        assert_eq!(s.stats().evicted_remote, 7);
        // The newest announcements are the ones kept.
        for i in 7..10 {
            assert_eq!(s.providers(&key(i)).len(), 1, "key {i}");
        }
    }

    #[test]
    fn providers_per_key_are_capped_and_re_announcements_refresh() {
        let mut s = ProviderStore::new(PeerId::random(), limits(2, 100));
        let a = PeerId::random();
        for _ in 0..3 {
            s.add_provider(ProviderRecord::new(key(1), a, vec![]))
                .unwrap();
        }
        assert_eq!(s.stats().remote, 1);
        for _ in 0..5 {
            s.add_provider(ProviderRecord::new(key(1), PeerId::random(), vec![]))
                .unwrap();
        }
        assert_eq!(s.providers(&key(1)).len(), 2);
        assert_eq!(s.stats().remote, 2);
        s.remove_provider(&key(1), &a);
        assert_eq!(s.stats().remote, 1);
    }

    #[test]
    fn value_records_are_refused() {
        let mut s = ProviderStore::new(PeerId::random(), limits(2, 2));
        assert!(s.put(Record::new(key(1), vec![1])).is_err());
        assert!(s.get(&key(1)).is_none());
    }
}
