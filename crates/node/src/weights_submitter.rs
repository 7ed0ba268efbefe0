//! The weight submitter: the one home of writing this validator's weights to the chain.
//!
//! Each finalized epoch's weights are queued here ([`WeightSubmitter::submit`]; a newer epoch
//! replaces an older one not yet sent, since the chain keeps one vector per validator) and
//! written with the validator's own hotkey in the mode the subnet requires:
//!
//! - commit-reveal off: `set_weights`;
//! - commit-reveal version 2: a hash commit, its reveal data persisted *before* the commit is
//!   sent (so a crash cannot lose it), revealed by this task once the window opens;
//! - versions 3 and 4 (subtensor's default): a commit timelocked to the chain's drand beacon
//!   (`platform_chain::timelock`), which the chain reveals itself.
//!
//! Transient failures are retried (`platform_chain::retry`); the chain's rate limit is waited
//! out; every result is recorded in the node's database and its audit log, and counted in
//! `/metrics`. The chain crate supplies the calls and subtensor's rules; the decisions are here.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use borsh::{BorshDeserialize, BorshSerialize};
use platform_chain::retry::Retry;
use platform_chain::rules::reveal_window;
use platform_chain::scale::commit_hash;
use platform_chain::timelock::{self, seal_timelocked};
use platform_chain::{Chain, ChainError, Reveal};
use platform_crypto::Keypair;
use platform_primitives::{Epoch, Hotkey, Weights};
use platform_storage::{DataDir, Db, TableSpec};
use serde::Serialize;
use tokio::sync::watch;

use crate::chain_watch::ChainWatch;

/// One weight submission, as recorded in the node's database.
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, BorshSerialize, BorshDeserialize,
)]
pub struct WeightSubmission {
    /// The epoch whose weights these are.
    pub epoch: u64,
    /// Target UIDs.
    pub uids: Vec<u16>,
    /// Weights (sum 65535).
    pub weights: Vec<u16>,
    /// How it went to the chain.
    pub mode: SubmissionMode,
    /// The chain block that included it.
    pub chain_block: u64,
}

/// How an epoch's weights went to the chain. Stored and served by name (`none`, `set`,
/// `commit`, `timelocked`), so records written before this type existed still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionMode {
    /// The epoch closed with no weights: nothing was sent.
    None,
    /// `set_weights` (commit-reveal off).
    Set,
    /// A commit-reveal version 2 hash commit, revealed later by this validator.
    Commit,
    /// A commit timelocked to the chain's beacon (versions 3 and 4), revealed by the chain.
    Timelocked,
}

impl SubmissionMode {
    /// Its name, as stored and served.
    pub fn name(self) -> &'static str {
        match self {
            SubmissionMode::None => "none",
            SubmissionMode::Set => "set",
            SubmissionMode::Commit => "commit",
            SubmissionMode::Timelocked => "timelocked",
        }
    }
}

impl BorshSerialize for SubmissionMode {
    fn serialize<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        BorshSerialize::serialize(&self.name().to_string(), w)
    }
}

impl BorshDeserialize for SubmissionMode {
    fn deserialize_reader<R: std::io::Read>(r: &mut R) -> std::io::Result<Self> {
        let name = String::deserialize_reader(r)?;
        [
            SubmissionMode::None,
            SubmissionMode::Set,
            SubmissionMode::Commit,
            SubmissionMode::Timelocked,
        ]
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown weight submission mode {name:?}"),
            )
        })
    }
}

const SUBMISSIONS: TableSpec<u64, WeightSubmission> = TableSpec::new("weight_submissions", 1 << 20);

/// The recorded submission of `epoch`'s weights.
pub fn submission(dir: &DataDir, epoch: u64) -> Result<Option<WeightSubmission>> {
    Ok(dir.db().get(&SUBMISSIONS, &epoch)?)
}

/// The newest recorded submission.
pub fn last_submission(dir: &DataDir) -> Result<Option<WeightSubmission>> {
    Ok(dir
        .db()
        .range(&SUBMISSIONS, .., usize::MAX)?
        .into_iter()
        .next_back()
        .map(|(_, s)| s))
}

/// Submits the newest finalized epoch's weights; older ones still queued are skipped (the
/// chain keeps one weight vector per validator).
pub struct WeightSubmitter {
    tx: watch::Sender<Option<(Epoch, Weights)>>,
    /// The newest epoch submitted (or recorded as having nothing to submit).
    done: Arc<Mutex<Option<u64>>>,
}

impl WeightSubmitter {
    /// Starts the submitter task.
    pub fn start(
        key: Arc<Keypair>,
        chain: Arc<ChainWatch>,
        dir: Arc<DataDir>,
        netuid: u16,
    ) -> Result<WeightSubmitter> {
        let pending = PendingStore::open(&dir.root().join(PENDING_COMMITS_FILE))?;
        let done = Arc::new(Mutex::new(last_submission(&dir)?.map(|s| s.epoch)));
        let (tx, rx) = watch::channel(None);
        tokio::spawn(submit_loop(
            key,
            chain,
            dir,
            netuid,
            pending,
            rx,
            done.clone(),
        ));
        Ok(WeightSubmitter { tx, done })
    }

    /// The newest epoch whose weights were submitted.
    pub fn last_submitted(&self) -> Option<u64> {
        *self.done.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `epoch`'s weights (replacing any older ones not yet sent).
    pub fn submit(&self, epoch: Epoch, weights: Weights) {
        self.tx.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|(e, _)| *e >= epoch) {
                return false;
            }
            *cur = Some((epoch, weights));
            true
        });
    }
}

async fn submit_loop(
    key: Arc<Keypair>,
    chain: Arc<ChainWatch>,
    dir: Arc<DataDir>,
    netuid: u16,
    pending: PendingStore,
    mut rx: watch::Receiver<Option<(Epoch, Weights)>>,
    done: Arc<Mutex<Option<u64>>>,
) {
    let last = || *done.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        // Reveal CRv2 commits whose window opened, every few seconds while any is pending.
        let wait = tokio::time::sleep(Duration::from_secs(3));
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = wait => {
                let events = crate::metrics::events();
                if pending.all().is_ok_and(|p| !p.is_empty()) {
                    match reveal_due(chain.client(), &key, &pending, Retry::default()).await {
                        Ok(outcomes) => for o in outcomes {
                            tracing::info!("weights reveal: {o:?}");
                            events.weights("revealed");
                        },
                        Err(e) => {
                            tracing::warn!("revealing weights: {e}");
                            events.weights("reveal_failed");
                        }
                    }
                }
                events.pending_commits.set(pending.all().map_or(0, |p| p.len() as i64));
                continue;
            }
        }
        let Some((epoch, weights)) = rx.borrow_and_update().clone() else {
            continue;
        };
        if last().is_some_and(|d| d >= epoch.0) {
            continue;
        }
        match submit_one(&key, &chain, &dir, netuid, &pending, epoch, &weights, &rx).await {
            Ok(true) => {
                crate::metrics::events().weights("submitted");
                *done.lock().unwrap_or_else(|p| p.into_inner()) = Some(epoch.0);
            }
            Ok(false) => crate::metrics::events().weights("superseded"),
            Err(e) => {
                crate::metrics::events().weights("failed");
                tracing::error!(epoch = epoch.0, "weights not submitted: {e:#}");
            }
        }
    }
}

/// Records a submission in the database and the audit log.
async fn record_submission(
    dir: &Arc<DataDir>,
    key: &Keypair,
    record: WeightSubmission,
) -> Result<()> {
    let d = dir.clone();
    let hotkey = key.hotkey().to_ss58();
    tokio::task::spawn_blocking(move || -> Result<()> {
        d.db()
            .write(|tx| tx.put(&SUBMISSIONS, &record.epoch, &record))?;
        d.audit().append(platform_storage::AuditEntry::with_fields(
            "weights.submit",
            &hotkey,
            &[
                ("epoch", &record.epoch.to_string()),
                ("mode", record.mode.name()),
                ("chain_block", &record.chain_block.to_string()),
                ("uids", &format!("{:?}", record.uids)),
                ("weights", &format!("{:?}", record.weights)),
            ],
        ))?;
        Ok(())
    })
    .await?
}

/// Submits one epoch's weights, waiting out the chain's rate limit. `Ok(false)`: a newer epoch
/// arrived first.
#[allow(clippy::too_many_arguments)]
async fn submit_one(
    key: &Keypair,
    chain: &ChainWatch,
    dir: &Arc<DataDir>,
    netuid: u16,
    pending: &PendingStore,
    epoch: Epoch,
    weights: &Weights,
    rx: &watch::Receiver<Option<(Epoch, Weights)>>,
) -> Result<bool> {
    let uids: Vec<u16> = weights.uids().iter().map(|u| u.0).collect();
    let values = weights.weights().to_vec();
    if uids.is_empty() {
        tracing::info!(
            epoch = epoch.0,
            "epoch closed with no weights; nothing to submit"
        );
        let record = WeightSubmission {
            epoch: epoch.0,
            uids,
            weights: values,
            mode: SubmissionMode::None,
            chain_block: 0,
        };
        record_submission(dir, key, record).await?;
        return Ok(true);
    }
    for _ in 0..20 {
        if rx.borrow().as_ref().is_some_and(|(e, _)| *e > epoch) {
            return Ok(false);
        }
        let client = chain.client();
        let version = Retry::default()
            .run(|| client.hyperparameters(netuid))
            .await?
            .weights_version_key;
        let result = submit_weights(
            client,
            key,
            netuid,
            &uids,
            &values,
            version,
            Some(pending),
            Retry::default(),
        )
        .await;
        match result {
            Ok(done) => {
                let (mode, block) = done.mode_and_block();
                let record = WeightSubmission {
                    epoch: epoch.0,
                    uids: uids.clone(),
                    weights: values.clone(),
                    mode,
                    chain_block: block,
                };
                record_submission(dir, key, record).await?;
                tracing::info!(
                    epoch = epoch.0,
                    mode = mode.name(),
                    chain_block = block,
                    "weights submitted"
                );
                return Ok(true);
            }
            Err(ChainError::RateLimited { next, .. }) => {
                tracing::info!(epoch = epoch.0, next, "weights rate-limited; waiting");
                // At most ten minutes; the chain may also be unreachable meanwhile.
                for _ in 0..2400 {
                    if client.head().await.is_ok_and(|h| h.number >= next) {
                        break;
                    }
                    if rx.borrow().as_ref().is_some_and(|(e, _)| *e > epoch) {
                        return Ok(false);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("gave up after 20 rate-limited attempts")
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
    /// The mode and the block it landed in.
    pub fn mode_and_block(&self) -> (SubmissionMode, u64) {
        match *self {
            Submitted::Set { block } => (SubmissionMode::Set, block),
            Submitted::Committed { block, .. } => (SubmissionMode::Commit, block),
            Submitted::Timelocked { block, .. } => (SubmissionMode::Timelocked, block),
        }
    }
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
    let window = reveal_window(inc.block, netuid, hyper.tempo, hyper.reveal_period_epochs);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Records written when the mode was a string read as the typed mode, and back.
    #[test]
    fn submission_records_keep_their_string_encoding() {
        #[derive(BorshSerialize)]
        struct Before {
            epoch: u64,
            uids: Vec<u16>,
            weights: Vec<u16>,
            mode: String,
            chain_block: u64,
        }
        for mode in [
            SubmissionMode::None,
            SubmissionMode::Set,
            SubmissionMode::Commit,
            SubmissionMode::Timelocked,
        ] {
            let before = borsh::to_vec(&Before {
                epoch: 3,
                uids: vec![4],
                weights: vec![65_535],
                mode: mode.name().into(),
                chain_block: 77,
            })
            .unwrap();
            let record: WeightSubmission = borsh::from_slice(&before).unwrap();
            assert_eq!(record.mode, mode);
            assert_eq!(borsh::to_vec(&record).unwrap(), before);
        }
        let unknown = borsh::to_vec(&Before {
            epoch: 3,
            uids: vec![],
            weights: vec![],
            mode: "sideways".into(),
            chain_block: 0,
        })
        .unwrap();
        assert!(borsh::from_slice::<WeightSubmission>(&unknown).is_err());
    }
}
