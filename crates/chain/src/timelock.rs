//! Timelocked weight commits (subtensor's commit-reveal versions 3 and 4).
//!
//! The validator SCALE-encodes its weights as subtensor's `WeightsTlockPayload`, encrypts them
//! to a future round of the drand beacon the chain ingests ([`platform_crypto::timelock`]), and
//! sends the ciphertext with `commit_timelocked_weights`. Nothing is revealed afterwards: during
//! the reveal epoch the chain decrypts every commit whose round it has a beacon signature for
//! and applies the weights itself.
//!
//! The reveal round is picked as the reference client (`bittensor-drand` 1.x, subtensor spec
//! 393's modulo epochs) picks it: the round whose beacon time is three blocks into the reveal
//! epoch, estimated from the chain's clock and block time. Aim later and the chain may not have
//! the signature yet when the epoch ends; earlier and the weights would be readable too soon.
//! Cross-implementation vectors: `crates/chain/tests/vectors/tlock.json`.

use platform_crypto::Keypair;
use platform_crypto::timelock::{self, BeaconKey, Randomness, TimelockError};
use serde::{Deserialize, Serialize};

use crate::retry::Retry;
use crate::rules::{epoch_index, epoch_start};
use crate::scale::{compact, vec_u16};
use crate::{Chain, ChainError, Hyperparameters};

/// Subtensor's cap on a timelocked commit (`MAX_CRV3_COMMIT_SIZE_BYTES`).
pub const MAX_COMMIT_BYTES: usize = 5000;
/// Blocks into the reveal epoch the reference client aims the beacon round at.
pub const SECURITY_BLOCK_OFFSET: u64 = 3;

/// The beacon a chain ingests, and the clocks needed to aim at one of its rounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    /// The beacon's public key (BLS12-381 G2, compressed), hex.
    pub public_key: String,
    /// When round 1 was signed, Unix milliseconds (on the chain's clock).
    pub genesis_ms: u64,
    /// Milliseconds between rounds.
    pub period_ms: u64,
    /// The chain's block time, milliseconds.
    pub block_time_ms: u64,
    /// The chain's present, Unix milliseconds on the same clock as `genesis_ms`.
    pub now_ms: u64,
}

impl Beacon {
    /// Drand quicknet, which subtensor ingests, with subtensor's 12 s blocks, at `now_ms`.
    pub fn quicknet(now_ms: u64) -> Beacon {
        Beacon {
            public_key: timelock::QUICKNET_PUBLIC_KEY_HEX.into(),
            genesis_ms: timelock::QUICKNET_GENESIS_SECS * 1000,
            period_ms: timelock::QUICKNET_PERIOD_SECS * 1000,
            block_time_ms: 12_000,
            now_ms,
        }
    }

    /// The decoded public key.
    pub fn key(&self) -> Result<BeaconKey, ChainError> {
        let bytes = hex::decode(&self.public_key).map_err(|_| ChainError::Malformed {
            reason: "the beacon public key is not hex".into(),
        })?;
        BeaconKey::from_bytes(&bytes).map_err(|e| ChainError::Malformed {
            reason: e.to_string(),
        })
    }

    /// The newest round signed by `at_ms` (0 before genesis): round 1 at genesis, then one
    /// per period.
    pub fn latest_round(&self, at_ms: u64) -> u64 {
        if at_ms < self.genesis_ms {
            return 0;
        }
        (at_ms - self.genesis_ms) / self.period_ms.max(1) + 1
    }
}

/// Where the chain is, for picking a reveal round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitAt {
    /// The subnet.
    pub netuid: u16,
    /// Its tempo.
    pub tempo: u16,
    /// `RevealPeriodEpochs`.
    pub reveal_period_epochs: u64,
    /// The chain's current block.
    pub current_block: u64,
}

/// The reveal round for a commit made now under the modulo epochs of subtensor spec 393: the
/// beacon round due [`SECURITY_BLOCK_OFFSET`] blocks into the reveal epoch, rounded down, at
/// least 1 (`bittensor-drand` 1.x's `generate_commit`, in integer milliseconds).
pub fn reveal_round(at: &CommitAt, beacon: &Beacon) -> u64 {
    let reveal_epoch = epoch_index(at.current_block, at.netuid, at.tempo) + at.reveal_period_epochs;
    let first_reveal_block = epoch_start(reveal_epoch, at.netuid, at.tempo);
    round_for_reveal_block(first_reveal_block, at.current_block, beacon)
}

/// The beacon round due [`SECURITY_BLOCK_OFFSET`] blocks after `first_reveal_block`, estimated
/// from `current_block` at the beacon's `now_ms`.
pub fn round_for_reveal_block(first_reveal_block: u64, current_block: u64, beacon: &Beacon) -> u64 {
    let target_block = first_reveal_block + SECURITY_BLOCK_OFFSET;
    let blocks = target_block.saturating_sub(current_block);
    let target_ms = beacon
        .now_ms
        .saturating_add(blocks.saturating_mul(beacon.block_time_ms));
    // One round behind the newest signed at the target instant, so it is surely published.
    (target_ms.saturating_sub(beacon.genesis_ms) / beacon.period_ms.max(1)).max(1)
}

/// A subnet's epoch state in runtimes with stateful epochs (newer than spec 393): epochs run
/// when `tempo` blocks have passed since the last one or when the owner triggered one, and
/// commits are filed under the counter `SubnetEpochIndex` rather than a block formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochState {
    /// `LastEpochBlock`.
    pub last_epoch_block: u64,
    /// `PendingEpochAt`: an owner-triggered epoch due at this block (0: none).
    pub pending_epoch_at: u64,
    /// `SubnetEpochIndex`.
    pub subnet_epoch_index: u64,
    /// `Tempo`.
    pub tempo: u16,
    /// `BlocksSinceLastStep`.
    pub blocks_since_last_step: u64,
    /// The chain's head.
    pub current_block: u64,
}

/// Subtensor's `MaxTempo`: past this many blocks without a step an epoch runs regardless.
const MAX_TEMPO: u64 = 50_400;
/// A commit sent now lands in the next block.
const COMMIT_INCLUSION_BLOCK_OFFSET: u64 = 1;

impl EpochState {
    /// Whether an epoch runs at `block` (subtensor's `should_run_epoch`).
    fn runs_at(&self, block: u64) -> bool {
        if self.tempo == 0 {
            return false;
        }
        (self.pending_epoch_at > 0 && block >= self.pending_epoch_at)
            || self.blocks_since_last_step > MAX_TEMPO
            || block.saturating_sub(self.last_epoch_block) >= u64::from(self.tempo)
    }

    /// The epoch a commit or reveal at `block` belongs to: the counter, plus one when an epoch
    /// runs in that block (reveals and commits are judged before the block's epoch step).
    fn epoch_at(&self, block: u64) -> u64 {
        self.subnet_epoch_index + u64::from(self.runs_at(block))
    }

    /// The state after `block`'s epoch step.
    fn after(mut self, block: u64) -> EpochState {
        self.blocks_since_last_step += 1;
        self.current_block = block;
        if self.runs_at(block) {
            self.last_epoch_block = block;
            self.pending_epoch_at = 0;
            self.subnet_epoch_index += 1;
            self.blocks_since_last_step = 0;
        }
        self
    }

    /// The first block of the epoch `reveal_period_epochs` after the one a commit sent now
    /// lands in, found by stepping the schedule forward (at most `(period + 1) × MaxTempo`
    /// blocks); `None` when the subnet runs no epochs or the bound is passed.
    pub fn first_reveal_block(&self, reveal_period_epochs: u64) -> Option<u64> {
        if self.tempo == 0 {
            return None;
        }
        let inclusion = self.current_block + COMMIT_INCLUSION_BLOCK_OFFSET;
        let mut state = *self;
        for b in self.current_block + 1..inclusion {
            state = state.after(b);
        }
        let target = state.epoch_at(inclusion) + reveal_period_epochs;
        let bound = inclusion
            + reveal_period_epochs
                .saturating_add(1)
                .saturating_mul(MAX_TEMPO);
        for b in inclusion..=bound {
            if state.epoch_at(b) == target {
                return Some(b);
            }
            state = state.after(b);
        }
        None
    }
}

/// The reveal round for a commit made now under stateful epochs (`bittensor-drand` 2.x's
/// `generate_commit_v2`); `None` when the subnet runs no epochs.
pub fn reveal_round_stateful(
    state: &EpochState,
    reveal_period_epochs: u64,
    beacon: &Beacon,
) -> Option<u64> {
    let first = state.first_reveal_block(reveal_period_epochs)?;
    Some(round_for_reveal_block(first, state.current_block, beacon))
}

/// Subtensor's `WeightsTlockPayload`: what a timelocked commit hides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsPayload {
    /// The committing hotkey (the chain refuses a payload naming another).
    pub hotkey: [u8; 32],
    /// Target UIDs.
    pub uids: Vec<u16>,
    /// Weights.
    pub values: Vec<u16>,
    /// Version key.
    pub version_key: u64,
}

impl WeightsPayload {
    /// SCALE: `hotkey: Vec<u8>, uids: Vec<u16>, values: Vec<u16>, version_key: u64`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(1 + 32 + 8 + 2 * (self.uids.len() + self.values.len()) + 8);
        compact(32, &mut out);
        out.extend(self.hotkey);
        vec_u16(&self.uids, &mut out);
        vec_u16(&self.values, &mut out);
        out.extend(self.version_key.to_le_bytes());
        out
    }

    /// Decodes exactly one payload (trailing bytes refused), as the chain does at reveal.
    pub fn decode(bytes: &[u8]) -> Result<WeightsPayload, ChainError> {
        let bad = |what: &str| ChainError::Malformed {
            reason: format!("timelocked weights payload: {what}"),
        };
        let mut r = bytes;
        if read_compact(&mut r).ok_or_else(|| bad("hotkey length"))? != 32 {
            return Err(bad("the hotkey is not 32 bytes"));
        }
        let hotkey: [u8; 32] = take(&mut r, 32)
            .ok_or_else(|| bad("hotkey"))?
            .try_into()
            .expect("32 bytes");
        let uids = read_vec_u16(&mut r).ok_or_else(|| bad("uids"))?;
        let values = read_vec_u16(&mut r).ok_or_else(|| bad("values"))?;
        let version_key = u64::from_le_bytes(
            take(&mut r, 8)
                .ok_or_else(|| bad("version key"))?
                .try_into()
                .expect("8 bytes"),
        );
        if !r.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(WeightsPayload {
            hotkey,
            uids,
            values,
            version_key,
        })
    }
}

/// A commit ready to send: the ciphertext and the round it opens at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelockedCommit {
    /// The exact bytes `commit_timelocked_weights` carries, hex in JSON.
    #[serde(with = "hex_bytes")]
    pub commit: Vec<u8>,
    /// The beacon round the chain decrypts it with.
    pub reveal_round: u64,
}

/// Encrypts `payload` to `round` of `beacon`.
pub fn seal(
    beacon: &Beacon,
    round: u64,
    payload: &WeightsPayload,
    randomness: &Randomness,
) -> Result<TimelockedCommit, ChainError> {
    let commit =
        timelock::encrypt(&beacon.key()?, round, &payload.encode(), randomness).map_err(|e| {
            ChainError::Malformed {
                reason: e.to_string(),
            }
        })?;
    if commit.len() > MAX_COMMIT_BYTES {
        return Err(ChainError::Malformed {
            reason: format!(
                "the timelocked commit is {} bytes; subtensor accepts at most {MAX_COMMIT_BYTES} \
                 ({} weights is too many)",
                commit.len(),
                payload.uids.len()
            ),
        });
    }
    Ok(TimelockedCommit {
        commit,
        reveal_round: round,
    })
}

/// Opens a commit with the beacon's signature of its round, as the chain does.
pub fn open(
    commit: &[u8],
    signature: &timelock::RoundSignature,
) -> Result<WeightsPayload, ChainError> {
    let plain =
        timelock::decrypt(commit, signature).map_err(|e: TimelockError| ChainError::Malformed {
            reason: e.to_string(),
        })?;
    WeightsPayload::decode(&plain)
}

/// Whether a subnet takes timelocked commits, and which version the commit must name.
pub fn timelocked_version(hyper: &Hyperparameters) -> Option<u16> {
    (hyper.commit_reveal_weights_enabled && matches!(hyper.commit_reveal_version, 3 | 4))
        .then_some(hyper.commit_reveal_version)
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Some(head)
}

fn read_compact(r: &mut &[u8]) -> Option<u64> {
    let first = *r.first()?;
    match first & 0b11 {
        0b00 => take(r, 1).map(|b| u64::from(b[0] >> 2)),
        0b01 => take(r, 2).map(|b| u64::from(u16::from_le_bytes([b[0], b[1]]) >> 2)),
        0b10 => take(r, 4).map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 2)),
        _ => None, // lengths of 2^30 and more are never a weight vector
    }
}

fn read_vec_u16(r: &mut &[u8]) -> Option<Vec<u16>> {
    let n = usize::try_from(read_compact(r)?).ok()?;
    let bytes = take(r, n.checked_mul(2)?)?;
    Some(
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Seals weights for a timelocked commit made now: the reveal round from the chain's head and
/// beacon, the payload encrypted to it. Nothing is sent.
pub async fn seal_timelocked<C: Chain>(
    chain: &C,
    signer: &Keypair,
    netuid: u16,
    tempo: u16,
    reveal_period_epochs: u64,
    payload: (&[u16], &[u16], u64),
    retry: Retry,
) -> Result<TimelockedCommit, ChainError> {
    let (beacon, round) =
        timelocked_reveal_round(chain, netuid, tempo, reveal_period_epochs, retry).await?;
    let (uids, values, version_key) = payload;
    let payload = WeightsPayload {
        hotkey: signer.hotkey().0,
        uids: uids.to_vec(),
        values: values.to_vec(),
        version_key,
    };
    seal(&beacon, round, &payload, &Randomness::fresh())
}

/// The chain's beacon and the round a timelocked commit made now would be sealed to: the
/// stateful schedule of newer runtimes when the chain exposes it, the spec-393 formula
/// otherwise.
pub async fn timelocked_reveal_round<C: Chain>(
    chain: &C,
    netuid: u16,
    tempo: u16,
    reveal_period_epochs: u64,
    retry: Retry,
) -> Result<(Beacon, u64), ChainError> {
    let beacon = retry.run(|| chain.beacon()).await?;
    let round = match retry.run(|| chain.epoch_state(netuid)).await? {
        // Newer runtimes: the stateful schedule.
        Some(state) => {
            reveal_round_stateful(&state, reveal_period_epochs, &beacon).ok_or_else(|| {
                ChainError::Unsupported(format!(
                    "subnet {netuid} runs no epochs (tempo 0): a timelocked commit would never \
                     be revealed"
                ))
            })?
        }
        None => {
            let head = retry.run(|| chain.head()).await?;
            let at = CommitAt {
                netuid,
                tempo,
                reveal_period_epochs,
                current_block: head.number,
            };
            reveal_round(&at, &beacon)
        }
    };
    Ok((beacon, round))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_survives_its_encoding_and_nothing_else_decodes() {
        let p = WeightsPayload {
            hotkey: [7; 32],
            uids: (0..70).collect(),
            values: (0..70).map(|i| i * 900).collect(),
            version_key: u64::MAX,
        };
        let bytes = p.encode();
        assert_eq!(WeightsPayload::decode(&bytes).unwrap(), p);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(WeightsPayload::decode(&trailing).is_err());
        for cut in 0..bytes.len() {
            assert!(
                WeightsPayload::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_reveal_round_aims_three_blocks_into_the_reveal_epoch() {
        // tempo 9, netuid 0: epochs start at blocks 9, 19, 29, … (epoch e at 10e - 1).
        let beacon = Beacon {
            public_key: String::new(),
            genesis_ms: 0,
            period_ms: 3000,
            block_time_ms: 12_000,
            now_ms: 120_000, // block 10
        };
        let at = CommitAt {
            netuid: 0,
            tempo: 9,
            reveal_period_epochs: 1,
            current_block: 10,
        };
        // Block 10 is in epoch 1; reveal epoch 2 starts at block 19; target block 22, 12 blocks
        // away: 120 s + 144 s = 264 s, round 88.
        assert_eq!(reveal_round(&at, &beacon), 88);
        // Before genesis the round is 1, never 0.
        let early = Beacon {
            genesis_ms: 10_000_000,
            ..beacon
        };
        assert_eq!(reveal_round(&at, &early), 1);
    }
}
