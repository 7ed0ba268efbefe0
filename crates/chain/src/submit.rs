//! Submitting a validator's weights the way the subnet requires, on any [`Chain`]:
//! `set_weights` when commit-reveal is off; with commit-reveal version 2, a hash commit (its
//! reveal data persisted *before* the commit is sent, so a crash cannot lose it) and a later
//! reveal; with versions 3 and 4 (subtensor's default), a commit timelocked to the chain's drand
//! beacon ([`crate::timelock`]) that the chain reveals itself. Transient failures (an
//! unreachable endpoint) are retried with exponential backoff a bounded number of times; the
//! chain's verdicts are not retried.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use borsh::{BorshDeserialize, BorshSerialize};
use platform_crypto::Keypair;
use platform_primitives::Hotkey;
use platform_storage::{Db, TableSpec};
use serde::Serialize;

use platform_crypto::timelock::Randomness;

use crate::rules::{epoch_index, epoch_start};
use crate::scale::commit_hash;
use crate::timelock::{self, CommitAt, WeightsPayload};
use crate::{Chain, ChainError, Reveal};

/// How transient failures are retried.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            base: Duration::from_millis(500),
            max: Duration::from_secs(8),
        }
    }
}

impl Retry {
    /// Runs `op` until it succeeds, fails with a non-transient error, or the attempts run out.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, ChainError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let mut delay = self.base;
        let mut attempt = 1;
        loop {
            match op().await {
                Err(ChainError::Unreachable { url, reason }) if attempt < self.attempts.max(1) => {
                    tracing::warn!(%url, %reason, attempt, "chain unreachable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// A commit whose reveal is still to come.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
pub struct PendingCommit {
    /// The subnet.
    pub netuid: u16,
    /// Who committed.
    pub hotkey: Hotkey,
    /// The data to reveal.
    pub reveal: Reveal,
    /// Its CRv2 hash.
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
    /// Block the commit was included in (`None` until the chain accepted it).
    pub committed_at: Option<u64>,
    /// First and last block of the reveal window, once committed.
    pub window: Option<(u64, u64)>,
}

/// The file, in a data directory, that holds pending commits.
pub const PENDING_COMMITS_FILE: &str = "pending_commits.redb";

/// Most pending commits kept (subtensor keeps ten per hotkey per subnet).
const MAX_PENDING: usize = 1024;

const PENDING: TableSpec<[u8; 32], PendingCommit> = TableSpec::new("pending_commits", 1 << 20);

/// Pending commits, persisted in a redb file so they survive restarts.
pub struct PendingStore {
    db: Db,
}

impl PendingStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<PendingStore, ChainError> {
        Ok(PendingStore {
            db: Db::open(path).map_err(|e| ChainError::Storage(e.to_string()))?,
        })
    }

    fn put(&self, c: &PendingCommit) -> Result<(), ChainError> {
        self.db
            .write(|tx| tx.put(&PENDING, &c.hash, c))
            .map_err(|e: platform_storage::DbError| ChainError::Storage(e.to_string()))
    }

    fn remove(&self, hash: &[u8; 32]) -> Result<(), ChainError> {
        self.db
            .write(|tx| tx.delete(&PENDING, hash).map(|_| ()))
            .map_err(|e: platform_storage::DbError| ChainError::Storage(e.to_string()))
    }

    /// Every pending commit.
    pub fn all(&self) -> Result<Vec<PendingCommit>, ChainError> {
        self.db
            .range(&PENDING, .., MAX_PENDING)
            .map(|v| v.into_iter().map(|(_, c)| c).collect())
            .map_err(|e| ChainError::Storage(e.to_string()))
    }
}

/// What a weight submission did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Submitted {
    /// Set directly.
    Set {
        /// Block.
        block: u64,
    },
    /// Committed; reveal with [`reveal_due`] inside the window.
    Committed {
        /// Block.
        block: u64,
        /// First block of the reveal window.
        reveal_from: u64,
        /// Last block of the reveal window.
        reveal_until: u64,
    },
    /// Committed timelocked; the chain reveals it once its beacon signs `reveal_round`.
    Timelocked {
        /// Block.
        block: u64,
        /// The beacon round the commit opens at.
        reveal_round: u64,
        /// Size of the commit, bytes.
        commit_bytes: usize,
    },
}

impl Submitted {
    /// The mode's name (`set`, `commit`, `timelocked`) and the block it landed in.
    pub fn mode_and_block(&self) -> (&'static str, u64) {
        match *self {
            Submitted::Set { block } => ("set", block),
            Submitted::Committed { block, .. } => ("commit", block),
            Submitted::Timelocked { block, .. } => ("timelocked", block),
        }
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
) -> Result<timelock::TimelockedCommit, ChainError> {
    let (beacon, round) =
        timelocked_reveal_round(chain, netuid, tempo, reveal_period_epochs, retry).await?;
    let (uids, values, version_key) = payload;
    let payload = WeightsPayload {
        hotkey: signer.hotkey().0,
        uids: uids.to_vec(),
        values: values.to_vec(),
        version_key,
    };
    timelock::seal(&beacon, round, &payload, &Randomness::fresh())
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
) -> Result<(timelock::Beacon, u64), ChainError> {
    let beacon = retry.run(|| chain.beacon()).await?;
    let round = match retry.run(|| chain.epoch_state(netuid)).await? {
        // Newer runtimes: the stateful schedule.
        Some(state) => timelock::reveal_round_stateful(&state, reveal_period_epochs, &beacon)
            .ok_or_else(|| {
                ChainError::Unsupported(format!(
                    "subnet {netuid} runs no epochs (tempo 0): a timelocked commit would never \
                     be revealed"
                ))
            })?,
        None => {
            let head = retry.run(|| chain.head()).await?;
            let at = CommitAt {
                netuid,
                tempo,
                reveal_period_epochs,
                current_block: head.number,
            };
            timelock::reveal_round(&at, &beacon)
        }
    };
    Ok((beacon, round))
}

/// Submits weights as the subnet's hyperparameters require.
#[allow(clippy::too_many_arguments)]
pub async fn submit_weights<C: Chain>(
    chain: &C,
    signer: &Keypair,
    netuid: u16,
    uids: &[u16],
    weights: &[u16],
    version_key: u64,
    pending: Option<&PendingStore>,
    retry: Retry,
) -> Result<Submitted, ChainError> {
    let hyper = retry.run(|| chain.hyperparameters(netuid)).await?;
    if !hyper.commit_reveal_weights_enabled {
        let inc = retry
            .run(|| chain.set_weights(signer, netuid, uids, weights, version_key))
            .await?;
        return Ok(Submitted::Set { block: inc.block });
    }
    if let Some(version) = timelock::timelocked_version(&hyper) {
        if uids.len() != weights.len() {
            return Err(ChainError::LengthMismatch {
                uids: uids.len(),
                weights: weights.len(),
            });
        }
        let sealed = seal_timelocked(
            chain,
            signer,
            netuid,
            hyper.tempo,
            hyper.reveal_period_epochs,
            (uids, weights, version_key),
            retry,
        )
        .await?;
        let inc = retry
            .run(|| chain.commit_timelocked_weights(signer, netuid, &sealed, version))
            .await?;
        return Ok(Submitted::Timelocked {
            block: inc.block,
            reveal_round: sealed.reveal_round,
            commit_bytes: sealed.commit.len(),
        });
    }
    if hyper.commit_reveal_version != 2 {
        return Err(ChainError::Unsupported(format!(
            "subnet {netuid} uses commit-reveal version {}, which Platform does not know \
             (it submits version 2 hash commits and version 3/4 timelocked commits)",
            hyper.commit_reveal_version
        )));
    }
    let Some(pending) = pending else {
        return Err(ChainError::Unsupported(format!(
            "subnet {netuid} uses commit-reveal: a place to keep the reveal data is needed \
             (give a data directory)"
        )));
    };
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes)
        .map_err(|e| ChainError::Storage(format!("no randomness for the salt: {e}")))?;
    let salt: Vec<u16> = salt_bytes
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let reveal = Reveal {
        uids: uids.to_vec(),
        values: weights.to_vec(),
        salt,
        version_key,
    };
    let hash = commit_hash(
        &signer.hotkey().0,
        netuid,
        &reveal.uids,
        &reveal.values,
        &reveal.salt,
        version_key,
    );
    let mut record = PendingCommit {
        netuid,
        hotkey: signer.hotkey(),
        reveal,
        hash,
        committed_at: None,
        window: None,
    };
    // Persist first: after a crash between these two steps, the reveal data still exists.
    pending.put(&record)?;
    let inc = match retry
        .run(|| chain.commit_weights(signer, netuid, hash))
        .await
    {
        Ok(inc) => inc,
        Err(e) => {
            // A refusal leaves nothing on chain to reveal. An unknown outcome (a lost
            // connection, no finality in time) may have: keep the reveal data, and the next
            // `reveal_due` reveals it or learns from the chain that there is no such commit.
            if !e.outcome_unknown() {
                pending.remove(&hash)?;
            }
            return Err(e);
        }
    };
    let tempo = hyper.tempo;
    let reveal_epoch = epoch_index(inc.block, netuid, tempo) + hyper.reveal_period_epochs;
    let window = (
        epoch_start(reveal_epoch, netuid, tempo),
        epoch_start(reveal_epoch + 1, netuid, tempo) - 1,
    );
    record.committed_at = Some(inc.block);
    record.window = Some(window);
    pending.put(&record)?;
    Ok(Submitted::Committed {
        block: inc.block,
        reveal_from: window.0,
        reveal_until: window.1,
    })
}

/// What happened to one pending commit in [`reveal_due`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RevealOutcome {
    /// Revealed in this block.
    Revealed {
        /// The netuid.
        netuid: u16,
        /// Block.
        block: u64,
    },
    /// Its window has not opened.
    NotYet {
        /// The netuid.
        netuid: u16,
        /// First block of the window.
        from: u64,
    },
    /// The chain refused it for good (window passed, no such commit): dropped.
    Dropped {
        /// The netuid.
        netuid: u16,
        /// Why.
        reason: String,
    },
}

/// Reveals every pending commit of `signer` whose window is open now.
pub async fn reveal_due<C: Chain>(
    chain: &C,
    signer: &Keypair,
    pending: &PendingStore,
    retry: Retry,
) -> Result<Vec<RevealOutcome>, ChainError> {
    let head = retry.run(|| chain.head()).await?;
    let mut out = Vec::new();
    for c in pending.all()? {
        if c.hotkey != signer.hotkey() {
            continue;
        }
        let Some((from, _)) = c.window else {
            // Never confirmed: the commit may or may not be on chain; try to reveal anyway.
            out.push(attempt(chain, signer, pending, &c, retry).await?);
            continue;
        };
        if head.number < from {
            out.push(RevealOutcome::NotYet {
                netuid: c.netuid,
                from,
            });
            continue;
        }
        out.push(attempt(chain, signer, pending, &c, retry).await?);
    }
    Ok(out)
}

async fn attempt<C: Chain>(
    chain: &C,
    signer: &Keypair,
    pending: &PendingStore,
    c: &PendingCommit,
    retry: Retry,
) -> Result<RevealOutcome, ChainError> {
    match retry
        .run(|| chain.reveal_weights(signer, c.netuid, &c.reveal))
        .await
    {
        Ok(inc) => {
            pending.remove(&c.hash)?;
            Ok(RevealOutcome::Revealed {
                netuid: c.netuid,
                block: inc.block,
            })
        }
        Err(ChainError::RevealWindow { from, now, .. }) if now < from => {
            Ok(RevealOutcome::NotYet {
                netuid: c.netuid,
                from,
            })
        }
        Err(
            e @ (ChainError::RevealWindow { .. }
            | ChainError::NoMatchingCommit { .. }
            | ChainError::NotRegistered { .. }),
        ) => {
            pending.remove(&c.hash)?;
            Ok(RevealOutcome::Dropped {
                netuid: c.netuid,
                reason: e.to_string(),
            })
        }
        Err(e) => Err(e),
    }
}

mod hex_hash {
    pub fn serialize<S: serde::Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}
