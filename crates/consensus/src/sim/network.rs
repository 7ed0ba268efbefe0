//! The simulated network: virtual time, an ordered event queue, latency, loss, duplication and
//! partitions, all driven by one seeded generator.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

/// Time-ordered events; ties broken by insertion order so runs are deterministic.
pub struct Queue<E> {
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    slots: Vec<Option<E>>,
    free: Vec<usize>,
    seq: u64,
    /// Current virtual time, ms.
    pub now: u64,
}

impl<E> Queue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Queue<E> {
        Queue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            now: 0,
        }
    }

    /// Schedules `event` after `delay_ms`.
    pub fn push(&mut self, delay_ms: u64, event: E) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(event);
                i
            }
            None => {
                self.slots.push(Some(event));
                self.slots.len() - 1
            }
        };
        self.heap
            .push(Reverse((self.now + delay_ms, self.seq, slot)));
        self.seq += 1;
    }

    /// The next event, advancing time to it.
    pub fn pop(&mut self) -> Option<E> {
        let Reverse((time, _, slot)) = self.heap.pop()?;
        self.now = time;
        self.free.push(slot);
        self.slots[slot].take()
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
    pub fn delays(&self, rng: &mut Rng, now: u64, a: usize, b: usize) -> Vec<u64> {
        let cut = self
            .partitions
            .iter()
            .any(|p| now >= p.from_ms && now < p.until_ms && p.groups[a] != p.groups[b]);
        if cut || rng.chance(self.config.loss_per_mille) {
            return Vec::new();
        }
        let mut out = vec![rng.range(self.config.min_latency_ms, self.config.max_latency_ms)];
        if rng.chance(self.config.duplicate_per_mille) {
            out.push(rng.range(self.config.min_latency_ms, self.config.max_latency_ms * 2));
        }
        out
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
