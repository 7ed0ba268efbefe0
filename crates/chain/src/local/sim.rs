//! The simulation itself: a subnet's neurons, weights and commits, and subtensor's rules for
//! them, advanced one block at a time. Pure and synchronous; [`super::LocalChain`] adds
//! persistence and locking, [`super::server`] the HTTP interface.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use platform_crypto::Signature;
use platform_crypto::sr25519::verify_substrate;
use platform_crypto::timelock::BeaconSecret;
use platform_primitives::{Hotkey, encode};

use crate::rules;
use crate::scale::commit_hash;
use crate::{ChainError, EpochSchedule, Hyperparameters, NeuronInfo, Reveal, ValidatorWeights};

/// Most UIDs per subnet (subtensor's limit).
pub const MAX_UIDS: u16 = 256;
/// Most pending commits per hotkey (subtensor keeps a bounded queue).
pub const MAX_COMMITS: usize = 10;
/// The chain's clock advances this much per block (subtensor's block time).
pub const BLOCK_TIME_MS: u64 = 12_000;
/// The test beacon signs a round this often on the chain's clock (drand quicknet's period).
pub const BEACON_PERIOD_MS: u64 = 3_000;

/// A pending CRv2 commit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Commit {
    /// The committed hash.
    pub hash: [u8; 32],
    /// Block of the commit.
    pub block: u64,
    /// First block it can be revealed at.
    pub first_reveal: u64,
    /// Last block it can be revealed at.
    pub last_reveal: u64,
}

/// A neuron with its registration block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Registered {
    /// What the chain reports.
    pub info: NeuronInfo,
    /// Block it registered at (0 for genesis neurons).
    pub since: u64,
}

/// One subnet.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Subnet {
    /// Its id.
    pub netuid: u16,
    /// Its owner.
    pub owner: Hotkey,
    /// Hyperparameters.
    pub hyper: Hyperparameters,
    /// Neurons by UID.
    pub neurons: Vec<Registered>,
    /// Stored weights by validator UID: `(uid, weight)` pairs, max-upscaled.
    pub weights: BTreeMap<u16, Vec<(u16, u16)>>,
    /// Pending commits by hotkey.
    pub commits: BTreeMap<Hotkey, Vec<Commit>>,
    /// Timelocked commits by the epoch they were made in (subtensor's
    /// `TimelockedWeightCommits`), revealed by the chain itself during the reveal epoch.
    pub timelocked: BTreeMap<u64, Vec<TimelockedEntry>>,
    /// Timelocked commits opened and applied.
    pub timelocked_revealed: u64,
    /// Timelocked commits dropped at reveal (did not open, wrong hotkey, refused weights).
    pub timelocked_failed: u64,
    /// Each hotkey's commitments, oldest first (the last [`COMMITMENT_HISTORY`]), so a read at
    /// a past block sees what was set then.
    pub commitments: BTreeMap<Hotkey, Vec<(u64, Vec<u8>)>>,
}

/// Commitments kept per hotkey for reads at past blocks.
pub const COMMITMENT_HISTORY: usize = 8;

/// One timelocked commit waiting for its beacon round.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TimelockedEntry {
    /// Who committed.
    pub hotkey: Hotkey,
    /// Block of the commit.
    pub block: u64,
    /// The ciphertext.
    pub commit: Vec<u8>,
    /// The beacon round that opens it.
    pub reveal_round: u64,
}

/// A call a hotkey signs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Call {
    /// Register the signer on a subnet (as a miner: no stake, no permit).
    Register {
        /// The subnet.
        netuid: u16,
    },
    /// `set_weights`.
    SetWeights {
        /// The subnet.
        netuid: u16,
        /// UIDs.
        uids: Vec<u16>,
        /// Weights.
        weights: Vec<u16>,
        /// Version key.
        version_key: u64,
    },
    /// `commit_weights` (CRv2).
    CommitWeights {
        /// The subnet.
        netuid: u16,
        /// The commit hash.
        hash: [u8; 32],
    },
    /// `reveal_weights` (CRv2).
    RevealWeights {
        /// The subnet.
        netuid: u16,
        /// The revealed data.
        reveal: Reveal,
    },
    /// `commit_timelocked_weights` (commit-reveal v3/v4).
    CommitTimelocked {
        /// The subnet.
        netuid: u16,
        /// The ciphertext.
        commit: Vec<u8>,
        /// The beacon round that opens it.
        reveal_round: u64,
        /// The commit-reveal version the sender targets (must be the subnet's).
        version: u16,
    },
    /// `set_commitment` (the Commitments pallet): the signer's commitment on the subnet.
    SetCommitment {
        /// The subnet.
        netuid: u16,
        /// What is committed (at most [`crate::MAX_COMMITMENT_BYTES`]).
        data: Vec<u8>,
    },
}

/// A signed call: `sign_substrate("localchain/v1" ‖ genesis hash ‖ borsh(nonce, call))`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedCall {
    /// The signer.
    pub signer: Hotkey,
    /// The signer's next nonce.
    pub nonce: u64,
    /// The call.
    pub call: Call,
    /// sr25519 signature in the Substrate context.
    pub signature: Signature,
}

impl SignedCall {
    /// The bytes that are signed.
    pub fn signing_bytes(genesis: &[u8; 32], nonce: u64, call: &Call) -> Vec<u8> {
        let mut m = b"localchain/v1".to_vec();
        m.extend(genesis);
        m.extend(encode(&(nonce, call)));
        m
    }
}

/// The whole chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChainState {
    /// Hash identifying this chain (of its genesis).
    pub genesis_hash: [u8; 32],
    /// Current block number.
    pub block: u64,
    /// Subnets by netuid.
    pub subnets: BTreeMap<u16, Subnet>,
    /// Next nonce per account.
    pub nonces: BTreeMap<Hotkey, u64>,
}

fn ss58(h: &Hotkey) -> String {
    h.to_ss58()
}

pub use crate::rules::{epoch_index, epoch_start, max_upscale};

impl ChainState {
    /// The hash of block `n` (the chain's blocks carry nothing else).
    pub fn block_hash(&self, n: u64) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.genesis_hash);
        h.update(&n.to_le_bytes());
        *h.finalize().as_bytes()
    }

    /// Block `n`, if the chain has produced it.
    pub fn block_ref(&self, n: u64) -> Result<crate::BlockRef, ChainError> {
        if n > self.block {
            return Err(ChainError::UnknownBlock {
                number: n,
                head: self.block,
            });
        }
        Ok(crate::BlockRef {
            number: n,
            hash: self.block_hash(n),
        })
    }

    /// A subnet, or the error that names it.
    pub fn subnet(&self, netuid: u16) -> Result<&Subnet, ChainError> {
        self.subnets
            .get(&netuid)
            .ok_or(ChainError::UnknownNetuid { netuid })
    }

    fn subnet_mut(&mut self, netuid: u16) -> Result<&mut Subnet, ChainError> {
        self.subnets
            .get_mut(&netuid)
            .ok_or(ChainError::UnknownNetuid { netuid })
    }

    /// The metagraph as of `block` (neurons registered by then).
    pub fn metagraph(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<NeuronInfo>, ChainError> {
        let at = block.unwrap_or(self.block);
        Ok(self
            .subnet(netuid)?
            .neurons
            .iter()
            .filter(|n| n.since <= at)
            .map(|n| n.info.clone())
            .collect())
    }

    /// Tempo and next epoch start.
    pub fn schedule(&self, netuid: u16) -> Result<EpochSchedule, ChainError> {
        let tempo = self.subnet(netuid)?.hyper.tempo;
        let next = epoch_start(epoch_index(self.block, netuid, tempo) + 1, netuid, tempo);
        Ok(EpochSchedule {
            tempo,
            current_block: self.block,
            next_epoch_block: next,
        })
    }

    /// Stored weights per validator.
    pub fn weights(&self, netuid: u16) -> Result<Vec<ValidatorWeights>, ChainError> {
        let s = self.subnet(netuid)?;
        Ok(s.weights
            .iter()
            .map(|(uid, row)| ValidatorWeights {
                uid: *uid,
                hotkey: s.neurons[usize::from(*uid)].info.hotkey,
                uids: row.iter().map(|p| p.0).collect(),
                weights: row.iter().map(|p| p.1).collect(),
            })
            .collect())
    }

    /// Yuma's consensus step, for people to see what agreement does: per UID, the
    /// stake-weighted median (κ = 1/2) of the weights validators with a permit give it, each
    /// validator's row normalized to sum 65535 first. Validators that set no weights count as
    /// giving 0.
    pub fn consensus(&self, netuid: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        let s = self.subnet(netuid)?;
        let validators: Vec<&Registered> = s
            .neurons
            .iter()
            .filter(|n| n.info.validator_permit)
            .collect();
        let total: u128 = validators.iter().map(|v| u128::from(v.info.stake)).sum();
        let rows: Vec<(u64, BTreeMap<u16, u64>)> = validators
            .iter()
            .map(|v| {
                let row = s.weights.get(&v.info.uid).cloned().unwrap_or_default();
                let sum: u64 = row.iter().map(|p| u64::from(p.1)).sum();
                let normalized = row
                    .iter()
                    .map(|&(u, w)| (u, (u64::from(w) * 65_535).checked_div(sum).unwrap_or(0)))
                    .collect();
                (v.info.stake, normalized)
            })
            .collect();
        let mut out = Vec::new();
        for n in &s.neurons {
            let uid = n.info.uid;
            let mut votes: Vec<(u64, u64)> = rows
                .iter()
                .map(|(stake, row)| (row.get(&uid).copied().unwrap_or(0), *stake))
                .collect();
            votes.sort();
            let mut acc: u128 = 0;
            let mut median = 0;
            for (w, stake) in votes {
                acc += u128::from(stake);
                if total > 0 && acc * 2 >= total {
                    median = w;
                    break;
                }
            }
            if median > 0 {
                out.push((uid, median as u16));
            }
        }
        Ok(out)
    }

    /// Advances one block: drops CRv2 commits whose window passed, then reveals the timelocked
    /// commits whose beacon round has arrived (as subtensor does at the start of each block).
    pub fn produce_block(&mut self) {
        self.block += 1;
        // Drop commits whose reveal window has passed.
        for s in self.subnets.values_mut() {
            for list in s.commits.values_mut() {
                list.retain(|c| c.last_reveal >= self.block);
            }
            s.commits.retain(|_, l| !l.is_empty());
        }
        let netuids: Vec<u16> = self.subnets.keys().copied().collect();
        for netuid in netuids {
            self.reveal_timelocked(netuid);
        }
    }

    /// The test beacon this chain signs rounds with: its key is derived from the genesis hash,
    /// and its clock is the chain's own (12 s per block from time 0, a round every 3 s), so the
    /// devnet's timelocked commits open at the same block however fast its blocks really are.
    pub fn beacon(&self) -> crate::timelock::Beacon {
        crate::timelock::Beacon {
            public_key: hex::encode(self.beacon_secret().public().to_bytes()),
            genesis_ms: 0,
            period_ms: BEACON_PERIOD_MS,
            block_time_ms: BLOCK_TIME_MS,
            now_ms: self.block * BLOCK_TIME_MS,
        }
    }

    fn beacon_secret(&self) -> BeaconSecret {
        let mut seed = *blake3::hash(b"localchain test beacon").as_bytes();
        for (s, g) in seed.iter_mut().zip(self.genesis_hash) {
            *s ^= g;
        }
        BeaconSecret::from_seed(&seed)
    }

    /// Subtensor's `reveal_crv3_commits_for_subnet`: commits of epoch `now − reveal period` are
    /// opened when the beacon has signed their round (kept for the next block otherwise);
    /// older epochs' commits are dropped. A commit that does not open, names another hotkey or
    /// fails the weight rules is dropped and counted.
    fn reveal_timelocked(&mut self, netuid: u16) {
        let Some(s) = self.subnets.get(&netuid) else {
            return;
        };
        let (tempo, period) = (s.hyper.tempo, s.hyper.reveal_period_epochs);
        let current = rules::epoch_index(self.block, netuid, tempo);
        let Some(reveal_epoch) = current.checked_sub(period) else {
            return;
        };
        let latest = self.beacon().latest_round(self.block * BLOCK_TIME_MS);
        let s = self.subnets.get_mut(&netuid).expect("checked above");
        s.timelocked.retain(|&epoch, _| epoch >= reveal_epoch);
        let Some(entries) = s.timelocked.remove(&reveal_epoch) else {
            return;
        };
        let secret = self.beacon_secret();
        let mut waiting = Vec::new();
        for e in entries {
            if e.reveal_round > latest {
                waiting.push(e);
                continue;
            }
            let signature = secret.sign_round(e.reveal_round);
            let applied = crate::timelock::open(&e.commit, &signature).and_then(|p| {
                if p.hotkey != e.hotkey.0 {
                    return Err(ChainError::Malformed {
                        reason: "the payload names another hotkey".into(),
                    });
                }
                self.store_weights(netuid, e.hotkey, &p.uids, &p.values, p.version_key)
            });
            let s = self.subnets.get_mut(&netuid).expect("checked above");
            match applied {
                Ok(()) => s.timelocked_revealed += 1,
                Err(_) => s.timelocked_failed += 1,
            }
        }
        if !waiting.is_empty() {
            let s = self.subnets.get_mut(&netuid).expect("checked above");
            s.timelocked.insert(reveal_epoch, waiting);
        }
    }

    /// Checks the signature and nonce, then applies the call in the current block.
    pub fn apply(&mut self, tx: &SignedCall) -> Result<u64, ChainError> {
        let expected = self.nonces.get(&tx.signer).copied().unwrap_or(0);
        if tx.nonce != expected {
            return Err(ChainError::BadSignature {
                reason: format!(
                    "nonce {} given, the account's next nonce is {expected}",
                    tx.nonce
                ),
            });
        }
        verify_substrate(
            &tx.signer,
            &SignedCall::signing_bytes(&self.genesis_hash, tx.nonce, &tx.call),
            &tx.signature,
        )
        .map_err(|e| ChainError::BadSignature {
            reason: e.to_string(),
        })?;
        let block = self.dispatch(tx.signer, &tx.call)?;
        self.nonces.insert(tx.signer, expected + 1);
        Ok(block)
    }

    /// Runs `call` for `signer` in the current block, without the signature and nonce checks
    /// of [`ChainState::apply`] (for callers that authenticate the call themselves).
    pub fn dispatch(&mut self, signer: Hotkey, call: &Call) -> Result<u64, ChainError> {
        let block = self.block;
        match call {
            Call::Register { netuid } => self.register(*netuid, signer)?,
            Call::SetWeights {
                netuid,
                uids,
                weights,
                version_key,
            } => {
                rules::check_direct(*netuid, &self.subnet(*netuid)?.hyper)?;
                self.store_weights(*netuid, signer, uids, weights, *version_key)?;
            }
            Call::CommitWeights { netuid, hash } => self.commit(*netuid, signer, *hash)?,
            Call::RevealWeights { netuid, reveal } => self.reveal(*netuid, signer, reveal)?,
            Call::CommitTimelocked {
                netuid,
                commit,
                reveal_round,
                version,
            } => self.commit_timelocked(*netuid, signer, commit, *reveal_round, *version)?,
            Call::SetCommitment { netuid, data } => self.set_commitment(*netuid, signer, data)?,
        }
        Ok(block)
    }

    /// Subtensor's Commitments pallet, as Platform uses it: a registered hotkey keeps one
    /// commitment per subnet, replaced by the next.
    fn set_commitment(
        &mut self,
        netuid: u16,
        hotkey: Hotkey,
        data: &[u8],
    ) -> Result<(), ChainError> {
        rules::check_commitment(data)?;
        let block = self.block;
        let s = self.subnet_mut(netuid)?;
        if !s.neurons.iter().any(|n| n.info.hotkey == hotkey) {
            return Err(ChainError::NotRegistered {
                hotkey: ss58(&hotkey),
                netuid,
            });
        }
        let list = s.commitments.entry(hotkey).or_default();
        list.retain(|(b, _)| *b != block);
        list.push((block, data.to_vec()));
        if list.len() > COMMITMENT_HISTORY {
            list.remove(0);
        }
        Ok(())
    }

    /// Every hotkey's commitment on `netuid` as of `block` (the head when `None`), hotkeys
    /// ascending.
    pub fn commitments(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<crate::Commitment>, ChainError> {
        let at = block.unwrap_or(self.block);
        Ok(self
            .subnet(netuid)?
            .commitments
            .iter()
            .filter_map(|(hotkey, list)| {
                list.iter()
                    .rev()
                    .find(|(b, _)| *b <= at)
                    .map(|(b, data)| crate::Commitment {
                        hotkey: *hotkey,
                        block: *b,
                        data: data.clone(),
                    })
            })
            .collect())
    }

    fn register(&mut self, netuid: u16, hotkey: Hotkey) -> Result<(), ChainError> {
        let block = self.block;
        let s = self.subnet_mut(netuid)?;
        if let Some(n) = s.neurons.iter().find(|n| n.info.hotkey == hotkey) {
            return Err(ChainError::AlreadyRegistered {
                hotkey: ss58(&hotkey),
                netuid,
                uid: n.info.uid,
            });
        }
        if s.neurons.len() >= usize::from(MAX_UIDS) {
            return Err(ChainError::SubnetFull {
                netuid,
                max: MAX_UIDS,
            });
        }
        let uid = s.neurons.len() as u16;
        s.neurons.push(Registered {
            info: NeuronInfo {
                uid,
                hotkey,
                coldkey: hotkey,
                stake: 0,
                validator_permit: false,
                active: true,
                last_update: block,
            },
            since: block,
        });
        Ok(())
    }

    fn registered(&self, netuid: u16, hotkey: &Hotkey) -> Result<&Registered, ChainError> {
        self.subnet(netuid)?
            .neurons
            .iter()
            .find(|n| n.info.hotkey == *hotkey)
            .ok_or_else(|| ChainError::NotRegistered {
                hotkey: ss58(hotkey),
                netuid,
            })
    }

    /// subtensor's `set_weights` checks ([`rules::check_weights`]), then stores the
    /// max-upscaled row.
    fn store_weights(
        &mut self,
        netuid: u16,
        hotkey: Hotkey,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let block = self.block;
        let s = self.subnet(netuid)?;
        let neurons: Vec<NeuronInfo> = s.neurons.iter().map(|n| n.info.clone()).collect();
        let cx = rules::WeightsContext {
            netuid,
            hyper: &s.hyper,
            neurons: &neurons,
            block,
        };
        let me = rules::registered(netuid, &neurons, &hotkey)?;
        let last_set = s.weights.contains_key(&me.uid).then_some(me.last_update);
        let uid = me.uid;
        let normalized = rules::check_weights(&cx, &hotkey, last_set, uids, weights, version_key)?;
        let mut row: Vec<(u16, u16)> = uids.iter().copied().zip(normalized).collect();
        row.sort();
        let s = self.subnet_mut(netuid)?;
        s.weights.insert(uid, row);
        s.neurons[usize::from(uid)].info.last_update = block;
        Ok(())
    }

    fn crv2(&self, netuid: u16) -> Result<&Subnet, ChainError> {
        let s = self.subnet(netuid)?;
        rules::check_crv2(netuid, &s.hyper)?;
        Ok(s)
    }

    fn commit(&mut self, netuid: u16, hotkey: Hotkey, hash: [u8; 32]) -> Result<(), ChainError> {
        let block = self.block;
        let s = self.crv2(netuid)?;
        self.registered(netuid, &hotkey)?;
        let (first_reveal, last_reveal) =
            rules::reveal_window(block, netuid, s.hyper.tempo, s.hyper.reveal_period_epochs);
        let pending = s.commits.get(&hotkey).map_or(0, Vec::len);
        if pending >= MAX_COMMITS {
            return Err(ChainError::TooManyCommits {
                hotkey: ss58(&hotkey),
                max: MAX_COMMITS,
            });
        }
        self.subnet_mut(netuid)?
            .commits
            .entry(hotkey)
            .or_default()
            .push(Commit {
                hash,
                block,
                first_reveal,
                last_reveal,
            });
        Ok(())
    }

    /// Subtensor's `commit_timelocked_weights`: commit-reveal on, the subnet's version, a
    /// registered hotkey, fewer than [`MAX_COMMITS`] unrevealed commits, at most
    /// [`crate::timelock::MAX_COMMIT_BYTES`]. The ciphertext's framing is checked too (subtensor
    /// stores anything and fails at reveal; refusing early is kinder to the sender).
    fn commit_timelocked(
        &mut self,
        netuid: u16,
        hotkey: Hotkey,
        commit: &[u8],
        reveal_round: u64,
        version: u16,
    ) -> Result<(), ChainError> {
        let block = self.block;
        let s = self.subnet(netuid)?;
        rules::check_timelocked(netuid, &s.hyper, version)?;
        if commit.len() > crate::timelock::MAX_COMMIT_BYTES {
            return Err(ChainError::Malformed {
                reason: format!(
                    "a timelocked commit of {} bytes exceeds {}",
                    commit.len(),
                    crate::timelock::MAX_COMMIT_BYTES
                ),
            });
        }
        platform_crypto::timelock::check_framing(commit).map_err(|e| ChainError::Malformed {
            reason: e.to_string(),
        })?;
        self.registered(netuid, &hotkey)?;
        let epoch = rules::epoch_index(block, netuid, s.hyper.tempo);
        let mine = s
            .timelocked
            .values()
            .flatten()
            .filter(|e| e.hotkey == hotkey)
            .count();
        if mine >= MAX_COMMITS {
            return Err(ChainError::TooManyCommits {
                hotkey: ss58(&hotkey),
                max: MAX_COMMITS,
            });
        }
        self.subnet_mut(netuid)?
            .timelocked
            .entry(epoch)
            .or_default()
            .push(TimelockedEntry {
                hotkey,
                block,
                commit: commit.to_vec(),
                reveal_round,
            });
        Ok(())
    }

    fn reveal(&mut self, netuid: u16, hotkey: Hotkey, r: &Reveal) -> Result<(), ChainError> {
        let block = self.block;
        let s = self.crv2(netuid)?;
        let hash = commit_hash(
            &hotkey.0,
            netuid,
            &r.uids,
            &r.values,
            &r.salt,
            r.version_key,
        );
        let commits = s.commits.get(&hotkey).cloned().unwrap_or_default();
        let Some(pos) = commits.iter().position(|c| c.hash == hash) else {
            return Err(ChainError::NoMatchingCommit {
                hotkey: ss58(&hotkey),
                hash: hex::encode(hash),
            });
        };
        let c = &commits[pos];
        if block < c.first_reveal || block > c.last_reveal {
            return Err(ChainError::RevealWindow {
                from: c.first_reveal,
                to: c.last_reveal,
                now: block,
            });
        }
        // Revealed weights go through the same checks as set_weights (minus the CR guard).
        self.store_weights(netuid, hotkey, &r.uids, &r.values, r.version_key)?;
        let list = self
            .subnet_mut(netuid)?
            .commits
            .get_mut(&hotkey)
            .expect("the commit was found above");
        list.remove(pos);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_upscale_edge_cases() {
        assert_eq!(max_upscale(&[]), Vec::<u16>::new());
        assert_eq!(max_upscale(&[0, 0]), vec![0, 0], "all zero stays zero");
        assert_eq!(max_upscale(&[1]), vec![65_535]);
        assert_eq!(max_upscale(&[65_535, 1]), vec![65_535, 1]);
        assert_eq!(max_upscale(&[3, 2]), vec![65_535, 43_690]);
        assert_eq!(max_upscale(&[7, 0, 7]), vec![65_535, 0, 65_535]);
    }

    #[test]
    fn epoch_arithmetic_matches_subtensor() {
        // subtensor: blocks_until_next_epoch = tempo - (block + netuid + 1) % (tempo + 1).
        for netuid in [0u16, 1, 7] {
            for tempo in [1u16, 20, 360] {
                for block in 0..800u64 {
                    let until =
                        u64::from(tempo) - (block + u64::from(netuid) + 1) % (u64::from(tempo) + 1);
                    let next = epoch_start(epoch_index(block, netuid, tempo) + 1, netuid, tempo);
                    assert_eq!(
                        next,
                        block + until + 1,
                        "netuid {netuid} tempo {tempo} block {block}"
                    );
                }
            }
        }
    }
}
