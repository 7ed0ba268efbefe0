//! The mempool: transactions admitted by the state's own rules, waiting for a block.
//!
//! - **Bounded**: at most `capacity` transactions; each signer (miner, owner, validator) holds
//!   at most `per_signer`.
//! - **Fair**: proposers take transactions round-robin across signers, oldest first within a
//!   signer, so one busy miner cannot crowd out the others.
//! - **Eviction with a stated reason**: when full, the newest transaction of the signer holding
//!   the most is evicted (`"mempool full: evicted from the largest sender"`); a signer over its
//!   share is refused instead. Transactions a block includes leave (`"included"`); those a
//!   proposer's build refuses leave with the state's reason.
//!
//! Admission itself (signatures, nonces, challenge state) is `State::admit` on the canonical
//! state, run by the caller; the mempool only holds what passed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use platform_network::{Network, Topic};
use platform_primitives::{ChallengeId, Hash, Hotkey, SubmissionId};
use platform_state::{NoModules, Reject, State, Tx};

/// Why a transaction was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The state's rules refuse it.
    #[error("{0}")]
    Rejected(Reject),
    /// The mempool refuses it.
    #[error("{0}")]
    Mempool(#[from] MempoolError),
}

/// The canonical state (after the last finalized block) and the mempool, shared by the
/// consensus driver and the API. Each lock is held for one short, synchronous step — never
/// across an `.await` — and callers on the async runtime go through `spawn_blocking`. Readers
/// that only look (the API's GET routes) take [`Pool::latest`], an immutable copy the driver
/// publishes after each finalized block, and never wait on the driver.
pub struct Pool {
    state: Mutex<State>,
    mempool: Mutex<Mempool>,
    latest: RwLock<Arc<State>>,
}

impl Pool {
    /// A pool over `state`.
    pub fn new(state: State, mempool: Mempool) -> Pool {
        Pool {
            latest: RwLock::new(Arc::new(state.fork())),
            state: Mutex::new(state),
            mempool: Mutex::new(mempool),
        }
    }

    /// The state as of the last [`Pool::publish`]: a copy that shares the canonical state's
    /// unchanged parts, taken without waiting on the driver.
    pub fn latest(&self) -> Arc<State> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Publishes a copy of the canonical state for [`Pool::latest`] (O(1): the state's maps
    /// are persistent). The driver calls it whenever the canonical state changes.
    pub fn publish(&self) {
        let copy = Arc::new(self.state().fork());
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = copy;
    }

    /// The canonical state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mempool.
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        self.mempool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits `tx` if the state would accept it in the next block and the mempool has room.
    /// A submission also counts against its miner's per-epoch quota together with the
    /// miner's submissions already pending, so a miner cannot park more payloads here than it
    /// may have ordered. Returns a transaction evicted to make room, with the reason.
    pub fn admit(&self, tx: Tx) -> Result<Option<(Tx, &'static str)>, AdmitError> {
        let pending = {
            let mempool = self.mempool();
            if mempool.contains(&tx.hash()) {
                return Err(MempoolError::Duplicate.into());
            }
            match &tx {
                Tx::Submit(t) => {
                    let s = &t.submission;
                    if mempool.pending_submission(&s.id()) {
                        return Err(MempoolError::Duplicate.into());
                    }
                    Some(mempool.pending_for(&s.miner, &s.challenge))
                }
                _ => None,
            }
        };
        if let (Some(pending), Tx::Submit(t)) = (pending, &tx) {
            let s = &t.submission;
            let state = self.state();
            let ordered = state.submissions_this_epoch(&s.challenge, &s.miner) as usize;
            let limit = state.params().max_submissions_per_epoch as usize;
            if ordered + pending >= limit {
                return Err(MempoolError::QuotaFull {
                    ordered,
                    pending,
                    limit,
                }
                .into());
            }
        }
        self.state()
            .admit(&tx, &NoModules)
            .map_err(AdmitError::Rejected)?;
        Ok(self.mempool().insert(tx)?)
    }

    /// Admits this validator's own `tx` ([`Pool::admit`]) and, once admitted, gossips it to
    /// the other validators at `round` ([`publish_tx`]): the path of the transactions a
    /// validator makes itself (key bindings, certificates, evidence). Runs the state's
    /// checks: call it on a blocking thread inside the runtime.
    pub fn admit_and_publish(
        &self,
        net: &Network,
        tx: Tx,
        round: u64,
    ) -> Result<Option<(Tx, &'static str)>, AdmitError> {
        let evicted = self.admit(tx.clone())?;
        let net = net.clone();
        tokio::runtime::Handle::current().spawn(async move { publish_tx(&net, &tx, round).await });
        Ok(evicted)
    }
}

/// Gossips a transaction this validator holds in its mempool on the submissions topic. Alone on
/// the network, or with peers not subscribed yet, publishing fails; its own proposals still
/// carry the transaction.
pub async fn publish_tx(net: &Network, tx: &Tx, round: u64) {
    if let Err(e) = net
        .publish(Topic::Submissions, round, platform_primitives::encode(tx))
        .await
    {
        tracing::debug!("gossiping a {} transaction: {e}", tx.kind());
    }
}

/// Why a transaction was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already pending.
    #[error("the transaction is already pending")]
    Duplicate,
    /// The signer holds its whole share.
    #[error("the sender already has {0} pending transactions, the most one sender may hold")]
    SenderFull(usize),
    /// The miner's submissions to the challenge, ordered this epoch and pending, reach the
    /// network's per-epoch quota.
    #[error(
        "the miner has {ordered} submissions to this challenge ordered this epoch and {pending} \
         pending, and may have {limit} per epoch"
    )]
    QuotaFull {
        /// Ordered this epoch.
        ordered: usize,
        /// Waiting in the mempool.
        pending: usize,
        /// `max_submissions_per_epoch`.
        limit: usize,
    },
}

/// The sender a transaction is accounted to for fairness: its signer, or for unsigned kinds
/// (certificates, evidence, epoch transactions) a bucket of their own.
pub fn signer(tx: &Tx) -> Hotkey {
    match tx {
        Tx::Submit(t) => t.submission.miner,
        Tx::Attest(a) => a.evaluator,
        Tx::Certify(c) => Hotkey(c.submission.0.0),
        Tx::Sudo(s) => s.signer,
        Tx::BindKeys(b) => b.hotkey,
        Tx::AssetsReady(a) => a.validator,
        Tx::Evidence(_) | Tx::EpochAnchor(_) | Tx::EpochClose(_) => Hotkey([0; 32]),
    }
}

/// Pending transactions.
#[derive(Debug)]
pub struct Mempool {
    capacity: usize,
    per_signer: usize,
    queues: BTreeMap<Hotkey, VecDeque<(Hash, Tx)>>,
    index: HashMap<Hash, Hotkey>,
    /// Ids of pending submissions, so a miner polling its submission costs a lookup.
    submissions: HashSet<SubmissionId>,
    /// Where the next round-robin pass starts.
    cursor: Option<Hotkey>,
}

impl Mempool {
    /// An empty pool.
    pub fn new(capacity: usize, per_signer: usize) -> Mempool {
        Mempool {
            capacity,
            per_signer,
            queues: BTreeMap::new(),
            index: HashMap::new(),
            submissions: HashSet::new(),
            cursor: None,
        }
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether a submission with this id is pending.
    pub fn pending_submission(&self, id: &SubmissionId) -> bool {
        self.submissions.contains(id)
    }

    /// The ids of every pending submission.
    pub fn pending_submissions(&self) -> HashSet<SubmissionId> {
        self.submissions.clone()
    }

    /// How many submissions of `miner` to `challenge` are pending.
    pub fn pending_for(&self, miner: &Hotkey, challenge: &ChallengeId) -> usize {
        self.queues.get(miner).map_or(0, |q| {
            q.iter()
                .filter(
                    |(_, tx)| matches!(tx, Tx::Submit(t) if t.submission.challenge == *challenge),
                )
                .count()
        })
    }

    /// Keeps the submission-id index in step with the pool.
    fn track(&mut self, tx: &Tx, pending: bool) {
        if let Tx::Submit(t) = tx {
            let id = t.submission.id();
            if pending {
                self.submissions.insert(id);
            } else {
                self.submissions.remove(&id);
            }
        }
    }

    /// Whether `hash` is pending.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.index.contains_key(hash)
    }

    /// Adds an admitted transaction. Returns the transaction evicted to make room, with the
    /// reason.
    pub fn insert(&mut self, tx: Tx) -> Result<Option<(Tx, &'static str)>, MempoolError> {
        let hash = tx.hash();
        if self.index.contains_key(&hash) {
            return Err(MempoolError::Duplicate);
        }
        let who = signer(&tx);
        let mine = self.queues.get(&who).map_or(0, VecDeque::len);
        if mine >= self.per_signer {
            return Err(MempoolError::SenderFull(self.per_signer));
        }
        let mut evicted = None;
        if self.index.len() >= self.capacity {
            // The signer with the most pending gives up its newest.
            let largest = self
                .queues
                .iter()
                .max_by_key(|(h, q)| (q.len(), std::cmp::Reverse(**h)))
                .map(|(h, _)| *h)
                .expect("a full pool has a sender");
            if self.queues[&largest].len() <= mine + 1 {
                // Evicting would not be fairer than refusing.
                return Err(MempoolError::SenderFull(mine));
            }
            let q = self.queues.get_mut(&largest).expect("exists");
            let (h, old) = q.pop_back().expect("non-empty");
            if q.is_empty() {
                self.queues.remove(&largest);
            }
            self.index.remove(&h);
            self.track(&old, false);
            crate::metrics::events().mempool_dropped(old.kind(), "evicted".into());
            evicted = Some((old, "mempool full: evicted from the largest sender"));
        }
        self.track(&tx, true);
        let queue = self.queues.entry(who).or_default();
        // The owner's actions are kept in nonce order, whatever order gossip delivered them
        // in: a later nonce applied first would void the earlier one. A miner's submissions
        // too: the state accepts them out of order only within a window of recent nonces.
        let at = match &tx {
            Tx::Sudo(new) => queue
                .iter()
                .position(|(_, q)| matches!(q, Tx::Sudo(old) if old.nonce > new.nonce))
                .unwrap_or(queue.len()),
            Tx::Submit(new) => queue
                .iter()
                .position(|(_, q)| {
                    matches!(q, Tx::Submit(old) if old.submission.nonce > new.submission.nonce)
                })
                .unwrap_or(queue.len()),
            _ => queue.len(),
        };
        queue.insert(at, (hash, tx));
        self.index.insert(hash, who);
        Ok(evicted)
    }

    /// Up to `max` transactions for a block, round-robin across signers (starting after the
    /// signer the previous call ended on), oldest first within each. They stay pending until
    /// [`Mempool::remove`].
    ///
    /// `sudo_next` is the owner nonce the state takes next (`None`: any, before the first).
    /// Owner actions are proposed only in an unbroken run of nonces from it: one whose
    /// predecessor has not arrived yet waits (with what the owner queued after it) instead of
    /// voiding that predecessor.
    pub fn candidates(&mut self, max: usize, sudo_next: Option<u64>) -> Vec<Tx> {
        let signers: Vec<Hotkey> = self.queues.keys().copied().collect();
        if signers.is_empty() {
            return Vec::new();
        }
        let start = self
            .cursor
            .and_then(|c| signers.iter().position(|s| *s > c))
            .unwrap_or(0);
        let order: Vec<Hotkey> = signers[start..]
            .iter()
            .chain(&signers[..start])
            .copied()
            .collect();
        let mut out = Vec::new();
        let mut depth = 0;
        let mut next_sudo = sudo_next;
        let mut held: HashSet<Hotkey> = HashSet::new();
        while out.len() < max {
            let mut any = false;
            for s in &order {
                if out.len() == max {
                    break;
                }
                if held.contains(s) {
                    continue;
                }
                if let Some((_, tx)) = self.queues[s].get(depth) {
                    if let Tx::Sudo(t) = tx {
                        match next_sudo {
                            Some(n) if t.nonce > n => {
                                held.insert(*s);
                                continue;
                            }
                            // A used nonce: proposed, refused, and so dropped.
                            Some(n) if t.nonce < n => {}
                            _ => next_sudo = Some(t.nonce.saturating_add(1)),
                        }
                    }
                    out.push(tx.clone());
                    self.cursor = Some(*s);
                    any = true;
                }
            }
            if !any {
                break;
            }
            depth += 1;
        }
        out
    }

    /// Removes transactions (included in a finalized block, or refused by the state).
    pub fn remove(&mut self, hashes: impl IntoIterator<Item = Hash>) {
        for h in hashes {
            let Some(who) = self.index.remove(&h) else {
                continue;
            };
            let Some(q) = self.queues.get_mut(&who) else {
                continue;
            };
            let Some(at) = q.iter().position(|(x, _)| *x == h) else {
                continue;
            };
            let (_, tx) = q.remove(at).expect("position is in range");
            if q.is_empty() {
                self.queues.remove(&who);
            }
            self.track(&tx, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform_crypto::Keypair;
    use platform_primitives::{ChallengeId, Submission};
    use platform_state::SubmitTx;

    /// A miner may park no more submissions than it may have ordered in the epoch: pending
    /// ones count against the quota (before, a miner with a quota of 3 could fill its whole
    /// mempool share, and the disk with their payloads), and a re-signed copy of a pending
    /// submission is a duplicate.
    /// The owner's actions arrive out of order (gossip does not keep it): they are kept in
    /// nonce order, and one whose predecessor is missing waits instead of voiding it.
    #[test]
    fn owner_actions_are_proposed_in_an_unbroken_run_of_nonces() {
        let owner = platform_crypto::parse_suri("//Alice").unwrap();
        let sudo = |nonce| {
            platform_state::Tx::Sudo(platform_state::SudoTx {
                action: platform_state::SudoAction::SetParams(platform_state::Params::default()),
                nonce,
                signer: owner.hotkey(),
                signature: None,
            })
        };
        let nonces = |txs: Vec<Tx>| -> Vec<u64> {
            txs.iter()
                .map(|t| match t {
                    Tx::Sudo(s) => s.nonce,
                    _ => unreachable!(),
                })
                .collect()
        };
        let mut m = Mempool::new(100, 100);
        for n in [4, 2, 3] {
            m.insert(sudo(n)).unwrap();
        }
        // The state took nonce 1: 2, 3, 4 in order.
        assert_eq!(nonces(m.candidates(10, Some(2))), vec![2, 3, 4]);
        // The state took nothing yet: the first queued starts the run.
        assert_eq!(nonces(m.candidates(10, None)), vec![2, 3, 4]);
        // Nonce 1 has not arrived: nothing of the owner's is proposed yet.
        assert_eq!(nonces(m.candidates(10, Some(1))), Vec::<u64>::new());
        // A used nonce queued before the next ones is still proposed (and refused); the run
        // goes on from the state's next.
        m.insert(sudo(1)).unwrap();
        assert_eq!(nonces(m.candidates(10, Some(3))), vec![1, 2, 3, 4]);
    }

    /// Gossip delivers a miner's submissions in any order; they are proposed in nonce order.
    #[test]
    fn a_miners_submissions_are_proposed_in_nonce_order() {
        let miner = Keypair::from_seed(&[2; 32]);
        let g = platform_primitives::Hash::of(b"network");
        let mut m = Mempool::new(100, 100);
        for n in [3, 1, 2] {
            m.insert(crate::workload::submission(&miner, &g, n))
                .unwrap();
        }
        let nonces: Vec<u64> = m
            .candidates(10, None)
            .iter()
            .map(|t| match t {
                Tx::Submit(s) => s.submission.nonce,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(nonces, vec![1, 2, 3]);
    }

    #[test]
    fn pending_submissions_count_against_the_miners_quota() {
        use crate::workload::{state_with_active_challenge, submission};
        let owner = Keypair::from_seed(&[1; 32]);
        let miners = [Keypair::from_seed(&[2; 32]), Keypair::from_seed(&[3; 32])];
        let state = state_with_active_challenge(&owner, &miners, 3).unwrap();
        let g = state.meta().network_id;
        let submission = |miner: &Keypair, nonce| submission(miner, &g, nonce);
        let pool = Pool::new(state, Mempool::new(100, 100));
        let parked: Vec<Tx> = (1..=3).map(|n| submission(&miners[0], n)).collect();
        for tx in &parked {
            pool.admit(tx.clone()).unwrap();
        }
        assert_eq!(
            pool.admit(submission(&miners[0], 4)).unwrap_err(),
            AdmitError::Mempool(MempoolError::QuotaFull {
                ordered: 0,
                pending: 3,
                limit: 3
            })
        );
        // Another miner has its own quota; the same submission signed again is a duplicate.
        pool.admit(submission(&miners[1], 1)).unwrap();
        assert_eq!(
            pool.admit(submission(&miners[1], 1)).unwrap_err(),
            AdmitError::Mempool(MempoolError::Duplicate)
        );
        // Once one leaves the pool (refused by a block, say), the miner may submit again.
        pool.mempool().remove([parked[0].hash()]);
        pool.admit(submission(&miners[0], 5)).unwrap();
    }

    /// A reader gets the published copy while the driver holds the canonical state's lock,
    /// and sees a change only once it is published.
    #[test]
    fn readers_take_the_published_state_without_waiting_on_the_lock() {
        let genesis = |n| State::genesis(&crate::genesis::dev(n, 0, 1000).unwrap()).unwrap();
        let pool = Arc::new(Pool::new(genesis(4), Mempool::new(10, 10)));
        let held = pool.state();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = pool.clone();
        std::thread::spawn(move || tx.send(reader.latest().current_epoch().validators.len()));
        let read = rx.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(
            read,
            Ok(4),
            "the reader waited on the canonical state's lock"
        );
        drop(held);
        *pool.state() = genesis(3);
        assert_eq!(pool.latest().current_epoch().validators.len(), 4);
        pool.publish();
        assert_eq!(pool.latest().current_epoch().validators.len(), 3);
    }

    fn submit(miner: u8, nonce: u64) -> Tx {
        let key = Keypair::from_seed(&[miner; 32]);
        Tx::Submit(SubmitTx {
            submission: Submission {
                challenge: ChallengeId::new("tsp").unwrap(),
                miner: key.hotkey(),
                payload_hash: Hash::of(&nonce.to_le_bytes()),
                payload_len: 8,
                nonce,
            },
            signature: None,
        })
    }

    fn miner(tx: &Tx) -> Hotkey {
        signer(tx)
    }

    #[test]
    fn round_robin_across_senders() {
        let mut m = Mempool::new(100, 10);
        for n in 0..3 {
            m.insert(submit(1, n)).unwrap();
        }
        m.insert(submit(2, 0)).unwrap();
        m.insert(submit(3, 0)).unwrap();
        let picked: Vec<Hotkey> = m.candidates(4, None).iter().map(miner).collect();
        let distinct: std::collections::BTreeSet<_> = picked[..3].iter().collect();
        assert_eq!(
            distinct.len(),
            3,
            "the first pass takes one from each sender"
        );
        assert_eq!(m.len(), 5, "candidates stay pending until removed");
        assert_eq!(m.insert(submit(2, 0)), Err(MempoolError::Duplicate));
    }

    #[test]
    fn full_pool_evicts_from_the_largest_sender() {
        let mut m = Mempool::new(4, 10);
        for n in 0..3 {
            m.insert(submit(1, n)).unwrap();
        }
        m.insert(submit(2, 0)).unwrap();
        let (evicted, reason) = m.insert(submit(3, 0)).unwrap().unwrap();
        assert_eq!(evicted, submit(1, 2), "the largest sender's newest goes");
        assert!(reason.contains("full"));
        assert_eq!(m.len(), 4);
        // Now senders hold 2, 1, 1: a fourth sender evicts from the largest again, but the
        // largest sender itself is refused rather than evicting its own.
        assert!(matches!(
            m.insert(submit(1, 9)),
            Err(MempoolError::SenderFull(_))
        ));
    }

    #[test]
    fn pending_submissions_are_indexed() {
        let mut m = Mempool::new(2, 10);
        let ids = |n: u64| match submit(1, n) {
            Tx::Submit(t) => t.submission.id(),
            _ => unreachable!(),
        };
        m.insert(submit(1, 0)).unwrap();
        m.insert(submit(1, 1)).unwrap();
        assert!(m.pending_submission(&ids(0)));
        // Evicted (from the largest sender) and removed submissions are no longer pending.
        m.insert(submit(2, 0)).unwrap();
        assert!(!m.pending_submission(&ids(1)));
        m.remove([submit(1, 0).hash()]);
        assert!(!m.pending_submission(&ids(0)));
    }

    #[test]
    fn a_sender_is_capped() {
        let mut m = Mempool::new(100, 2);
        m.insert(submit(1, 0)).unwrap();
        m.insert(submit(1, 1)).unwrap();
        assert_eq!(m.insert(submit(1, 2)), Err(MempoolError::SenderFull(2)));
        m.remove([submit(1, 0).hash()]);
        m.insert(submit(1, 2)).unwrap();
        assert_eq!(m.len(), 2);
    }
}
