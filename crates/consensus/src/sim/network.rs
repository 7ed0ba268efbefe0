//! The simulated network: virtual time, an ordered event queue, latency, loss, duplication and
//! partitions, all driven by one seeded generator.

use std::collections::{BTreeMap, VecDeque};

use super::rng::Rng;

/// How messages travel.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Smallest one-way latency, ms.
    pub min_latency_ms: u64,
    /// Largest one-way latency, ms (uniform in between, which also reorders messages).
    pub max_latency_ms: u64,
    /// Messages lost, per mille.
    pub loss_per_mille: u64,
    /// Messages delivered twice, per mille.
    pub duplicate_per_mille: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            min_latency_ms: 5,
            max_latency_ms: 60,
            loss_per_mille: 10,
            duplicate_per_mille: 10,
        }
    }
}

/// A window of time during which actors in different groups cannot reach each other.
#[derive(Clone, Debug)]
pub struct Partition {
    /// Start, ms.
    pub from_ms: u64,
    /// End (heal), ms.
    pub until_ms: u64,
    /// Group of each actor.
    pub groups: Vec<u8>,
}

/// Time-ordered events; ties broken by insertion order so runs are deterministic. Events wait
/// in one first-in-first-out list per millisecond of virtual time: delays are whole
/// milliseconds and at most a few hundred of them are pending at once, while thousands of
/// messages are in flight, so finding the next event is a short walk to the earliest
/// millisecond rather than a heap operation per message. (A ring of per-millisecond lists for
/// the next second was no faster.)
pub struct Queue<E> {
    at: BTreeMap<u64, VecDeque<E>>,
    /// Emptied lists, kept for reuse so that a new millisecond allocates nothing.
    spare: Vec<VecDeque<E>>,
    /// Current virtual time, ms.
    pub now: u64,
}

impl<E> Queue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Queue<E> {
        Queue {
            at: BTreeMap::new(),
            spare: Vec::new(),
            now: 0,
        }
    }

    /// Schedules `event` after `delay_ms`.
    pub fn push(&mut self, delay_ms: u64, event: E) {
        let spare = &mut self.spare;
        self.at
            .entry(self.now + delay_ms)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push_back(event);
    }

    /// The next event, advancing time to it.
    pub fn pop(&mut self) -> Option<E> {
        let mut first = self.at.first_entry()?;
        self.now = *first.key();
        let event = first.get_mut().pop_front();
        if first.get().is_empty() {
            self.spare.push(first.remove());
        }
        event
    }
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// Decides whether and when a message between two actors arrives.
pub struct Links {
    /// Latency, loss and duplication.
    pub config: NetworkConfig,
    /// Partition windows.
    pub partitions: Vec<Partition>,
}

impl Links {
    /// Delays (ms) at which copies of a message sent now from `a` to `b` arrive: none if lost
    /// or partitioned, two if duplicated.
    pub fn delays(&self, rng: &mut Rng, now: u64, a: usize, b: usize) -> [Option<u64>; 2] {
        let cut = self
            .partitions
            .iter()
            .any(|p| now >= p.from_ms && now < p.until_ms && p.groups[a] != p.groups[b]);
        if cut || rng.chance(self.config.loss_per_mille) {
            return [None, None];
        }
        let first = rng.range(self.config.min_latency_ms, self.config.max_latency_ms);
        let second = rng
            .chance(self.config.duplicate_per_mille)
            .then(|| rng.range(self.config.min_latency_ms, self.config.max_latency_ms * 2));
        [Some(first), second]
    }

    /// Schedules on `queue` the copies of a message sent now from `a` to `b` ([`Links::delays`]),
    /// each made by `event`.
    pub fn deliver<E>(
        &self,
        rng: &mut Rng,
        queue: &mut Queue<E>,
        (a, b): (usize, usize),
        event: impl Fn() -> E,
    ) {
        self.deliver_after(rng, queue, (a, b), 0, event);
    }

    /// As [`Links::deliver`], each copy arriving `extra_ms` later (a sender that is slow).
    pub fn deliver_after<E>(
        &self,
        rng: &mut Rng,
        queue: &mut Queue<E>,
        (a, b): (usize, usize),
        extra_ms: u64,
        event: impl Fn() -> E,
    ) {
        for delay in self.delays(rng, queue.now, a, b).into_iter().flatten() {
            queue.push(delay + extra_ms, event());
        }
    }

    /// When the last partition heals (0 if none).
    pub fn heal_time(&self) -> u64 {
        self.partitions
            .iter()
            .map(|p| p.until_ms)
            .max()
            .unwrap_or(0)
    }
}

/// One or two partitions between two random groups of `actors` (the first and the last always
/// apart), each starting within `starts_before_ms` and lasting `lasts_ms.0..=lasts_ms.1`.
pub fn random_partitions(
    rng: &mut Rng,
    actors: usize,
    starts_before_ms: u64,
    lasts_ms: (u64, u64),
) -> Vec<Partition> {
    (0..rng.range(1, 2))
        .map(|_| {
            let from_ms = rng.range(0, starts_before_ms);
            let until_ms = from_ms + rng.range(lasts_ms.0, lasts_ms.1);
            let mut groups: Vec<u8> = (0..actors).map(|_| rng.below(2) as u8).collect();
            groups[0] = 0;
            groups[actors - 1] = 1;
            Partition {
                from_ms,
                until_ms,
                groups,
            }
        })
        .collect()
}
