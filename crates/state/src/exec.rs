//! The transaction executor: one implementation of every validation rule, used by all three
//! gates. Each function checks everything before it writes anything; the caller rolls the
//! store back on error anyway, so a partial write can never survive.

use std::collections::BTreeSet;

use platform_crypto::Domain;
use platform_crypto::sr25519::verify;
use platform_primitives::{
    ChallengeId, Epoch, Hash, Height, Hotkey, Score, SubmissionId, Weights, decode,
};
use platform_runtime::{EvalOutput, OutcomeClass};

use crate::committee::{capped_weights, draw_order};
use crate::keys;
use crate::machine::{BlockCtx, Event, MAX_VALUE_BYTES, State, TxOutcome, get, put};
use crate::records::*;
use crate::reject::Reject;
use crate::types::*;
use crate::weights::{WeightsHost, weights_digest};

/// Hard ceilings on challenge resources, whatever the owner signs.
const MAX_FUEL: u64 = 100_000_000_000;
const MAX_PAGES: u32 = 512;
const MAX_OUTPUT: u32 = 1 << 20;
const MAX_PAYLOAD: u64 = 16 << 20;
const MAX_PEER_ID: usize = 128;

/// The validator set of a metagraph: permitted neurons with at least the minimum stake.
pub(crate) fn validator_set(
    metagraph: &[Neuron],
    params: &Params,
) -> Result<Vec<(Hotkey, u64)>, Reject> {
    if metagraph.is_empty() || metagraph.len() > MAX_NEURONS {
        return Err(Reject::BadMetagraph {
            problem: "it must hold between 1 and 4096 neurons",
        });
    }
    if metagraph.windows(2).any(|w| w[0].uid >= w[1].uid) {
        return Err(Reject::BadMetagraph {
            problem: "UIDs must be strictly ascending",
        });
    }
    let mut hotkeys = BTreeSet::new();
    if !metagraph.iter().all(|n| hotkeys.insert(n.hotkey)) {
        return Err(Reject::BadMetagraph {
            problem: "a hotkey appears twice",
        });
    }
    let mut v: Vec<(Hotkey, u64)> = metagraph
        .iter()
        .filter(|n| n.validator_permit && n.stake >= params.min_stake)
        .map(|n| (n.hotkey, n.stake))
        .collect();
    v.sort();
    Ok(v)
}

fn check_sig(
    domain: Domain,
    signer: &Hotkey,
    message: &[u8],
    sig: &Option<platform_crypto::Signature>,
) -> Result<(), Reject> {
    let sig = sig.as_ref().ok_or(Reject::Unsigned)?;
    verify(signer, domain, message, sig).map_err(|_| Reject::BadSignature { signer: *signer })
}

fn check_meta(m: &ChallengeMeta) -> Result<(), Reject> {
    let bad = |what| Err(Reject::InvalidValue { what });
    if m.name.is_empty() || m.name.len() > MAX_NAME_BYTES {
        return bad("challenge name (1 to 256 bytes)");
    }
    if m.abi_version != platform_runtime::abi::ABI_VERSION {
        return bad("abi_version (this network runs ABI 1)");
    }
    let r = &m.resources;
    if r.fuel == 0 || r.fuel > MAX_FUEL {
        return bad("fuel (1 to 10^11)");
    }
    if r.max_memory_pages == 0 || r.max_memory_pages > MAX_PAGES {
        return bad("max_memory_pages (1 to 512)");
    }
    if r.max_output_bytes == 0 || r.max_output_bytes > MAX_OUTPUT {
        return bad("max_output_bytes (1 to 1 MiB)");
    }
    if r.max_payload_bytes == 0 || r.max_payload_bytes > MAX_PAYLOAD {
        return bad("max_payload_bytes (1 to 16 MiB)");
    }
    if m.emission_bps > 10_000 {
        return bad("emission_bps (at most 10000)");
    }
    if let ScoringRule::TopK { k, decay_bps } = m.scoring
        && (k == 0 || decay_bps == 0 || decay_bps > 10_000)
    {
        return bad("top_k rule (k >= 1, decay_bps 1 to 10000)");
    }
    let bad_asset = |a: &Asset| {
        a.url.len() > MAX_NAME_BYTES
            || !(a.url.is_empty() || a.url.starts_with("https://") || a.url.starts_with("http://"))
            || a.max_bytes == 0
            || a.max_bytes > MAX_ASSET_BYTES
    };
    if m.assets.len() > MAX_ASSETS || m.assets.iter().any(bad_asset) {
        return bad(
            "assets (at most 16; each an http(s) URL up to 256 bytes or none, and 1 byte to 32 \
             MiB)",
        );
    }
    Ok(())
}

fn check_params(p: &Params) -> Result<(), Reject> {
    let bad = |what| Err(Reject::InvalidValue { what });
    if p.max_committee_share_bps == 0 || p.max_committee_share_bps > 10_000 {
        return bad("max_committee_share_bps (1 to 10000)");
    }
    if p.attest_timeout_blocks == 0 {
        return bad("attest_timeout_blocks (at least 1)");
    }
    if p.max_submissions_per_epoch == 0 {
        return bad("max_submissions_per_epoch (at least 1)");
    }
    Ok(())
}

impl State {
    pub(crate) fn apply_tx(
        &mut self,
        ctx: &BlockCtx,
        tx: &Tx,
        host: &dyn WeightsHost,
    ) -> Result<TxOutcome, Reject> {
        match tx {
            Tx::Submit(t) => self.submit(ctx, t),
            Tx::Attest(a) => self.attest(a),
            Tx::Certify(c) => self.certify(ctx, c),
            Tx::Sudo(s) => self.sudo(s),
            Tx::BindKeys(b) => self.bind_keys(b),
            Tx::Evidence(e) => self.evidence(e),
            Tx::EpochAnchor(a) => self.anchor(a),
            Tx::EpochClose(c) => self.close(c, host),
            Tx::AssetsReady(a) => self.assets_ready_tx(a),
        }
    }

    fn assets_ready_tx(&mut self, a: &AssetsReady) -> Result<TxOutcome, Reject> {
        let none = || Reject::NoAssetsToConfirm {
            challenge: a.challenge.clone(),
            version: a.version,
        };
        let c = self.challenge(&a.challenge).ok_or_else(none)?;
        if c.meta.assets.is_empty() || c.meta.version != a.version || c.status == Lifecycle::Retired
        {
            return Err(none());
        }
        if !self
            .current_epoch()
            .validators
            .iter()
            .any(|(hk, _)| *hk == a.validator)
        {
            return Err(Reject::NotValidator {
                hotkey: a.validator,
            });
        }
        let mut ready = self.assets_ready(&a.challenge);
        let Err(at) = ready.binary_search(&a.validator) else {
            return Err(Reject::AssetsAlreadyConfirmed {
                challenge: a.challenge.clone(),
                validator: a.validator,
            });
        };
        let key = self.verified_bls(&a.validator)?;
        a.signature
            .verify(
                &key,
                &AssetsReady::message(self.meta().netuid, &a.challenge, a.version),
            )
            .map_err(|_| Reject::BadBlsSignature)?;
        ready.insert(at, a.validator);
        put(
            &mut self.store,
            keys::assets_ready(&a.challenge),
            &AssetsReadyRecord {
                version: a.version,
                validators: ready,
            },
        );
        Ok(TxOutcome::AssetsConfirmed {
            challenge: a.challenge.clone(),
            version: a.version,
            validator: a.validator,
        })
    }

    /// Refuses to activate a challenge with assets until validators holding more than 2/3 of
    /// the current epoch's stake hold them.
    fn check_assets_available(&self, c: &ChallengeRecord) -> Result<(), Reject> {
        if c.meta.assets.is_empty() {
            return Ok(());
        }
        let ready = self.assets_ready(&c.meta.id);
        let validators = self.current_epoch().validators;
        let total: u64 = validators.iter().map(|(_, s)| *s).sum();
        let ready_stake: u64 = validators
            .iter()
            .filter(|(hk, _)| ready.binary_search(hk).is_ok())
            .map(|(_, s)| *s)
            .sum();
        if u128::from(ready_stake) * 3 <= u128::from(total) * 2 {
            return Err(Reject::AssetsUnavailable {
                challenge: c.meta.id.clone(),
                ready_stake,
                total_stake: total,
            });
        }
        Ok(())
    }

    fn verified_bls(&self, hotkey: &Hotkey) -> Result<platform_crypto::VerifiedBlsKey, Reject> {
        let mut cache = self.bls.lock().unwrap_or_else(|p| p.into_inner());
        let keys = self
            .bound_keys(hotkey)
            .ok_or(Reject::NotBound { hotkey: *hotkey })?;
        if let Some(k) = cache.get(hotkey)
            && k.public() == keys.bls_key
        {
            return Ok(k.clone());
        }
        let k = keys
            .bls_key
            .verify_possession(&keys.pop)
            .map_err(|_| Reject::BadProofOfPossession)?;
        cache.insert(*hotkey, k.clone());
        Ok(k)
    }

    /// A consensus member's key, verified: from the cache when the member still has that key
    /// bound (the usual case), else by its proof of possession.
    fn member_key(&self, m: &Member) -> Result<platform_crypto::VerifiedBlsKey, Reject> {
        if let Ok(k) = self.verified_bls(&m.hotkey)
            && k.public() == m.bls_key
        {
            return Ok(k);
        }
        m.bls_key
            .verify_possession(&m.pop)
            .map_err(|_| Reject::BadProofOfPossession)
    }

    /// Seats `epoch`'s consensus members (see [`EpochRecord::members`]): its validators that
    /// have bound keys now, with those keys. Called as the epoch begins.
    pub(crate) fn seat_members(&mut self, epoch: Epoch) {
        let Some(mut record) = self.epoch(epoch) else {
            return;
        };
        record.members = record
            .validators
            .iter()
            .filter_map(|&(hotkey, stake)| {
                let keys = self.bound_keys(&hotkey)?;
                Some(Member {
                    hotkey,
                    stake,
                    bls_key: keys.bls_key,
                    pop: keys.pop,
                })
            })
            .collect();
        put(&mut self.store, keys::epoch(epoch), &record);
    }

    /// Validators who may sit on committees now: in the epoch's set, bound, not jailed; with
    /// capped sortition weights.
    fn eligible(&self, exclude: &[Hotkey]) -> Vec<(Hotkey, u128)> {
        let meta = self.meta();
        let params = self.params();
        let set: Vec<(Hotkey, u64)> = self
            .current_epoch()
            .validators
            .into_iter()
            .filter(|(hk, _)| {
                self.bound_keys(hk).is_some()
                    && self
                        .jailed_until(hk)
                        .is_none_or(|until| meta.epoch >= until)
                    && !exclude.contains(hk)
            })
            .collect();
        let stakes: Vec<u64> = set.iter().map(|v| v.1).collect();
        let w = capped_weights(&stakes, params.max_committee_share_bps);
        set.into_iter().map(|v| v.0).zip(w).collect()
    }

    fn submit(&mut self, ctx: &BlockCtx, t: &SubmitTx) -> Result<TxOutcome, Reject> {
        let meta = self.meta();
        let params = self.params();
        let s = &t.submission;
        check_sig(
            Domain::Submission,
            &s.miner,
            &SubmitTx::signing_bytes(meta.netuid, &meta.network_id, s),
            &t.signature,
        )?;
        let challenge = self
            .challenge(&s.challenge)
            .ok_or_else(|| Reject::UnknownChallenge {
                challenge: s.challenge.clone(),
            })?;
        if challenge.status != Lifecycle::Active {
            return Err(Reject::ChallengeNotActive {
                challenge: s.challenge.clone(),
                status: challenge.status,
            });
        }
        if !self
            .current_epoch()
            .metagraph
            .iter()
            .any(|n| n.hotkey == s.miner)
        {
            return Err(Reject::UnknownMiner { miner: s.miner });
        }
        let max = challenge.meta.resources.max_payload_bytes;
        if s.payload_len > max {
            return Err(Reject::PayloadTooLarge {
                len: s.payload_len,
                max,
            });
        }
        let mut nonces =
            get::<NonceWindow>(&self.store, &keys::miner_nonce(&s.miner)).unwrap_or_default();
        if !nonces.accepts(s.nonce) {
            return Err(Reject::NonceReplayed {
                nonce: s.nonce,
                last: nonces.last(),
            });
        }
        let count_key = keys::miner_count(meta.epoch, &s.challenge, &s.miner);
        let count = get::<u32>(&self.store, &count_key).unwrap_or(0);
        if count >= params.max_submissions_per_epoch {
            return Err(Reject::RateLimited {
                limit: params.max_submissions_per_epoch,
            });
        }
        let payload_key = keys::payload(&s.challenge, &s.payload_hash);
        if let Some(first) = get::<SubmissionId>(&self.store, &payload_key) {
            return Err(Reject::DuplicatePayload { first });
        }

        let id = s.id();
        let draw_seed = derive(b"committee", &ctx.beacon.0, &id);
        let seed_hash = derive(b"evaluation-seed", &ctx.beacon.0, &id);
        let seed = u64::from_le_bytes(seed_hash.0[..8].try_into().expect("8 bytes"));
        let size = challenge
            .meta
            .committee_size
            .unwrap_or(params.committee_size);
        let order = draw_order(&self.eligible(&[]), &draw_seed);
        let committee: Vec<Hotkey> = if size == 0 {
            order
        } else {
            order.into_iter().take(usize::from(size)).collect()
        };
        let deadline = Height(ctx.height.0 + params.attest_timeout_blocks);
        nonces.record(s.nonce);
        put(&mut self.store, keys::miner_nonce(&s.miner), &nonces);
        put(&mut self.store, count_key, &(count + 1));
        put(&mut self.store, payload_key, &id);
        put(&mut self.store, keys::deadline(deadline, &id), &());
        put(
            &mut self.store,
            keys::submission(&id),
            &SubmissionRecord {
                submission: s.clone(),
                height: ctx.height,
                epoch: meta.epoch,
                seed,
                draw_seed,
                committee: committee.clone(),
                dropped: Vec::new(),
                deadline,
                attestations: Vec::new(),
                status: SubmissionStatus::Pending,
            },
        );
        Ok(TxOutcome::Submitted {
            submission: id,
            committee,
        })
    }

    fn pending(&self, id: &SubmissionId) -> Result<SubmissionRecord, Reject> {
        match self.submission(id) {
            Some(r) if r.status == SubmissionStatus::Pending => Ok(r),
            _ => Err(Reject::NotPending { submission: *id }),
        }
    }

    fn check_attest_signature(&self, a: &Attest) -> Result<(), Reject> {
        let key = self.verified_bls(&a.evaluator)?;
        a.signature
            .verify(
                &key,
                &Attest::message(self.meta().netuid, &a.submission, &a.digest),
            )
            .map_err(|_| Reject::BadBlsSignature)
    }

    fn attest(&mut self, a: &Attest) -> Result<TxOutcome, Reject> {
        let mut r = self.pending(&a.submission)?;
        if !r.committee.contains(&a.evaluator) {
            return Err(Reject::NotInCommittee {
                submission: a.submission,
                evaluator: a.evaluator,
            });
        }
        if r.attestations.iter().any(|(hk, _)| *hk == a.evaluator) {
            return Err(Reject::AlreadyAttested {
                submission: a.submission,
                evaluator: a.evaluator,
            });
        }
        self.check_attest_signature(a)?;
        r.attestations.push((a.evaluator, a.digest));
        put(&mut self.store, keys::submission(&a.submission), &r);
        Ok(TxOutcome::Attested {
            submission: a.submission,
            evaluator: a.evaluator,
        })
    }

    fn certify(&mut self, ctx: &BlockCtx, c: &CertifyTx) -> Result<TxOutcome, Reject> {
        let mut r = self.pending(&c.submission)?;
        let n = r.committee.len() as u32;
        let signers = c.signers.count() as u32;
        if n == 0 || signers * 3 <= n * 2 {
            return Err(Reject::InsufficientSigners {
                signers,
                committee: n,
            });
        }
        let keys_ = r
            .committee
            .iter()
            .map(|hk| self.verified_bls(hk))
            .collect::<Result<Vec<_>, _>>()?;
        let digest = c.result.digest();
        let meta = self.meta();
        c.signature
            .verify_aggregate(
                &keys_,
                &c.signers,
                &Attest::message(meta.netuid, &c.submission, &digest),
            )
            .map_err(|_| Reject::BadBlsSignature)?;
        let score = if c.result.outcome == OutcomeClass::Ok {
            decode::<EvalOutput>("certified output", &c.result.output, MAX_VALUE_BYTES)
                .ok()
                .map(|o| Score(o.score))
        } else {
            None
        };
        let signed_by: Vec<Hotkey> = c.signers.members().map(|i| r.committee[i]).collect();
        let challenge = &r.submission.challenge;
        if c.result.outcome == OutcomeClass::Ok {
            for (k, v) in &c.result.write_set {
                match v {
                    Some(v) => self.store.put(keys::challenge_kv(challenge, k), v.clone()),
                    None => self.store.delete(&keys::challenge_kv(challenge, k)),
                }
            }
        }
        let seq = meta.certified;
        if let Some(score) = score {
            let key = keys::score(challenge, &r.submission.miner);
            let better = get::<ScoreEntry>(&self.store, &key).is_none_or(|old| score > old.score);
            if better {
                put(
                    &mut self.store,
                    key,
                    &ScoreEntry {
                        score,
                        seq,
                        submission: c.submission,
                    },
                );
            }
        }
        for hk in &signed_by {
            let key = keys::credit(meta.epoch, hk);
            let credits = get::<u64>(&self.store, &key).unwrap_or(0);
            put(&mut self.store, key, &(credits + 1));
        }
        self.store
            .delete(&keys::deadline(r.deadline, &c.submission));
        r.status = SubmissionStatus::Certified {
            digest,
            outcome: c.result.outcome,
            score,
            signers: signed_by,
            height: ctx.height,
        };
        put(&mut self.store, keys::submission(&c.submission), &r);
        put(
            &mut self.store,
            keys::meta(),
            &Meta {
                certified: seq + 1,
                ..meta
            },
        );
        Ok(TxOutcome::Certified {
            submission: c.submission,
            score,
            signers,
        })
    }

    fn emission_total_with(&self, id: &ChallengeId, bps: u16) -> Result<(), Reject> {
        let total: u32 = self
            .challenges()
            .iter()
            .filter(|c| c.status != Lifecycle::Retired && c.meta.id != *id)
            .map(|c| u32::from(c.meta.emission_bps))
            .sum::<u32>()
            + u32::from(bps);
        if total > 10_000 {
            return Err(Reject::EmissionOverflow { total });
        }
        Ok(())
    }

    fn sudo(&mut self, t: &SudoTx) -> Result<TxOutcome, Reject> {
        let mut meta = self.meta();
        check_sig(
            Domain::Sudo,
            &t.signer,
            &SudoTx::signing_bytes(meta.netuid, &meta.network_id, t.nonce, &t.action),
            &t.signature,
        )?;
        if t.signer != meta.owner {
            return Err(Reject::NotOwner { signer: t.signer });
        }
        if let Some(last) = meta.sudo_nonce
            && t.nonce <= last
        {
            return Err(Reject::NonceReplayed {
                nonce: t.nonce,
                last,
            });
        }
        let effect = match &t.action {
            SudoAction::Publish(m) => {
                check_meta(m)?;
                let status = match self.challenge(&m.id) {
                    None => Lifecycle::Draft,
                    Some(old) if old.status == Lifecycle::Retired => {
                        return Err(Reject::IllegalTransition {
                            challenge: m.id.clone(),
                            from: Lifecycle::Retired,
                            to: Lifecycle::Draft,
                        });
                    }
                    Some(old) if m.version <= old.meta.version => {
                        return Err(Reject::VersionNotIncreased {
                            challenge: m.id.clone(),
                            current: old.meta.version,
                        });
                    }
                    Some(old) => old.status,
                };
                self.emission_total_with(&m.id, m.emission_bps)?;
                put(
                    &mut self.store,
                    keys::challenge(&m.id),
                    &ChallengeRecord {
                        meta: m.clone(),
                        status,
                    },
                );
                TxOutcome::Published {
                    challenge: m.id.clone(),
                    version: m.version,
                }
            }
            SudoAction::Transition { challenge, to } => {
                let mut c = self
                    .challenge(challenge)
                    .ok_or_else(|| Reject::UnknownChallenge {
                        challenge: challenge.clone(),
                    })?;
                if !c.status.can_become(*to) {
                    return Err(Reject::IllegalTransition {
                        challenge: challenge.clone(),
                        from: c.status,
                        to: *to,
                    });
                }
                if *to == Lifecycle::Active {
                    self.check_assets_available(&c)?;
                }
                c.status = *to;
                put(&mut self.store, keys::challenge(challenge), &c);
                TxOutcome::Transitioned {
                    challenge: challenge.clone(),
                    to: *to,
                }
            }
            SudoAction::SetEmission {
                challenge,
                emission_bps,
            } => {
                let mut c = self
                    .challenge(challenge)
                    .ok_or_else(|| Reject::UnknownChallenge {
                        challenge: challenge.clone(),
                    })?;
                if c.status == Lifecycle::Retired {
                    return Err(Reject::ChallengeNotActive {
                        challenge: challenge.clone(),
                        status: c.status,
                    });
                }
                self.emission_total_with(challenge, *emission_bps)?;
                c.meta.emission_bps = *emission_bps;
                put(&mut self.store, keys::challenge(challenge), &c);
                TxOutcome::EmissionSet {
                    challenge: challenge.clone(),
                    emission_bps: *emission_bps,
                }
            }
            SudoAction::SetParams(p) => {
                check_params(p)?;
                put(&mut self.store, keys::params(), p);
                TxOutcome::ParamsSet
            }
        };
        meta = self.meta();
        meta.sudo_nonce = Some(t.nonce);
        put(&mut self.store, keys::meta(), &meta);
        Ok(effect)
    }

    pub(crate) fn bind_keys(&mut self, b: &BindKeysTx) -> Result<TxOutcome, Reject> {
        let meta = self.meta();
        check_sig(
            Domain::BindKeys,
            &b.hotkey,
            &BindKeysTx::signing_bytes(meta.netuid, &b.bls_key, &b.pop, &b.peer_id),
            &b.signature,
        )?;
        let permitted = self
            .current_epoch()
            .metagraph
            .iter()
            .any(|n| n.hotkey == b.hotkey && n.validator_permit);
        if !permitted {
            return Err(Reject::NotValidator { hotkey: b.hotkey });
        }
        if b.peer_id.len() > MAX_PEER_ID {
            return Err(Reject::InvalidValue {
                what: "peer_id (at most 128 bytes)",
            });
        }
        let verified = b
            .bls_key
            .verify_possession(&b.pop)
            .map_err(|_| Reject::BadProofOfPossession)?;
        put(
            &mut self.store,
            keys::validator_keys(&b.hotkey),
            &BoundKeys::from(b),
        );
        self.bls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(b.hotkey, verified);
        Ok(TxOutcome::Bound { hotkey: b.hotkey })
    }

    fn evidence(&mut self, e: &Evidence) -> Result<TxOutcome, Reject> {
        let offender = match e {
            Evidence::Equivocation { first, second } => return self.equivocation(first, second),
            Evidence::Conflicting { a, b } => {
                if a.submission != b.submission
                    || a.evaluator != b.evaluator
                    || a.digest == b.digest
                {
                    return Err(Reject::NotEvidence);
                }
                self.check_attest_signature(a)?;
                self.check_attest_signature(b)?;
                a
            }
            Evidence::WrongResult { attest } => {
                let certified = match self.submission(&attest.submission).map(|r| r.status) {
                    Some(SubmissionStatus::Certified { digest, .. }) => digest,
                    _ => return Err(Reject::NotEvidence),
                };
                if certified == attest.digest {
                    return Err(Reject::NotEvidence);
                }
                self.check_attest_signature(attest)?;
                attest
            }
        };
        let key = keys::evidence(&offender.evaluator, &offender.submission);
        if self.store.get(&key).is_some() {
            return Err(Reject::EvidenceKnown {
                hotkey: offender.evaluator,
                submission: offender.submission,
            });
        }
        put(&mut self.store, key, &());
        Ok(self.jail(offender.evaluator))
    }

    /// Jails `hotkey` for `jail_epochs` after the current one (never shortening a jail).
    fn jail(&mut self, hotkey: Hotkey) -> TxOutcome {
        let until = Epoch(self.meta().epoch.0 + 1 + self.params().jail_epochs);
        if self.jailed_until(&hotkey).is_none_or(|u| u < until) {
            put(&mut self.store, keys::jail(&hotkey), &until);
        }
        TxOutcome::Jailed { hotkey, until }
    }

    /// Equivocation: both votes are of one kind (notarize or finalize) for two proposals of one
    /// epoch and view, or a nullify and a finalize of one epoch and view; by one signer; and
    /// both verify under the BLS key the signer (by its index among that epoch's consensus
    /// members, as the engine numbers signers) signed with in that epoch.
    fn equivocation(
        &mut self,
        a: &platform_consensus::Vote<platform_crypto::BlsSignature>,
        b: &platform_consensus::Vote<platform_crypto::BlsSignature>,
    ) -> Result<TxOutcome, Reject> {
        use platform_consensus::{Subject, VoteKind, types::signing_message};
        // Two notarize or two finalize votes on different proposals of one view, or a nullify
        // and a finalize of one view (the safety rules sign neither pair).
        let (epoch, view) = match (a.kind, &a.subject, b.kind, &b.subject) {
            (ka, Subject::Proposal(pa), kb, Subject::Proposal(pb))
                if ka == kb
                    && ka != VoteKind::Nullify
                    && pa.epoch == pb.epoch
                    && pa.view == pb.view
                    && pa != pb =>
            {
                (pa.epoch, pa.view)
            }
            (VoteKind::Nullify, Subject::View(e, v), VoteKind::Finalize, Subject::Proposal(p))
            | (VoteKind::Finalize, Subject::Proposal(p), VoteKind::Nullify, Subject::View(e, v))
                if p.epoch == *e && p.view == *v =>
            {
                (*e, *v)
            }
            _ => return Err(Reject::NotEvidence),
        };
        if a.signer != b.signer {
            return Err(Reject::NotEvidence);
        }
        // The signer as the epoch's engine numbered it, with the key it signed with then.
        let record = self.epoch(epoch).ok_or(Reject::NotEvidence)?;
        let member = record
            .members
            .get(a.signer as usize)
            .ok_or(Reject::NotEvidence)?;
        let hotkey = member.hotkey;
        let key = self.member_key(member)?;
        let netuid = self.meta().netuid;
        for v in [a, b] {
            v.signature
                .verify(&key, &signing_message(netuid, v.kind, &v.subject))
                .map_err(|_| Reject::BadBlsSignature)?;
        }
        let known = keys::equivocation(&hotkey, epoch, view);
        if self.store.get(&known).is_some() {
            return Err(Reject::EquivocationKnown {
                hotkey,
                epoch,
                view,
            });
        }
        put(&mut self.store, known, &());
        Ok(self.jail(hotkey))
    }

    fn anchor(&mut self, a: &EpochAnchor) -> Result<TxOutcome, Reject> {
        let meta = self.meta();
        let next = Epoch(meta.epoch.0 + 1);
        if a.epoch != next {
            return Err(Reject::WrongEpoch {
                expected: next,
                got: a.epoch,
            });
        }
        if self.epoch(next).is_some() {
            return Err(Reject::AlreadyAnchored { epoch: next });
        }
        let previous = self.current_epoch().chain_block;
        if a.chain_block <= previous {
            return Err(Reject::AnchorNotAfter {
                previous,
                got: a.chain_block,
            });
        }
        let validators = validator_set(&a.metagraph, &self.params())?;
        let count = validators.len() as u32;
        put(
            &mut self.store,
            keys::epoch(next),
            &EpochRecord {
                epoch: next,
                chain_block: a.chain_block,
                chain_hash: a.chain_hash,
                metagraph: a.metagraph.clone(),
                validators,
                members: Vec::new(),
                weights: None,
            },
        );
        Ok(TxOutcome::Anchored {
            epoch: next,
            validators: count,
        })
    }

    fn close(&mut self, c: &EpochClose, host: &dyn WeightsHost) -> Result<TxOutcome, Reject> {
        let meta = self.meta();
        if c.epoch != meta.epoch {
            return Err(Reject::WrongEpoch {
                expected: meta.epoch,
                got: c.epoch,
            });
        }
        let next = Epoch(meta.epoch.0 + 1);
        if self.epoch(next).is_none() {
            return Err(Reject::NotAnchored { epoch: next });
        }
        let weights: Weights = self.compute_weights(host)?;
        let expected = weights_digest(&weights);
        if expected != c.weights_digest {
            return Err(Reject::WeightsMismatch {
                expected,
                got: c.weights_digest,
            });
        }
        let mut record = self.current_epoch();
        record.weights = Some(weights.clone());
        put(&mut self.store, keys::epoch(meta.epoch), &record);
        // Per-epoch submission counters are done with.
        let prefix = keys::miner_count_prefix(meta.epoch);
        let stale: Vec<Vec<u8>> = self.store.scan(&prefix).map(|(k, _)| k.to_vec()).collect();
        for k in stale {
            self.store.delete(&k);
        }
        let pruned = match self.params().retain_epochs {
            0 => 0,
            r => meta
                .epoch
                .0
                .checked_sub(r)
                .map_or(0, |last| self.prune_through(Epoch(last))),
        };
        self.seat_members(next);
        put(
            &mut self.store,
            keys::meta(),
            &Meta {
                epoch: next,
                pruned: meta.pruned + u64::from(pruned),
                ..meta
            },
        );
        Ok(TxOutcome::Closed {
            epoch: c.epoch,
            uids: weights.uids().iter().map(|u| u.0).collect(),
            weights: weights.weights().to_vec(),
            pruned,
        })
    }

    /// Removes what epochs up to `last` left behind: settled submission records and their
    /// payload index entries (except each miner's best certified submission, which its score
    /// names), the epochs' records and credits, and equivocation records of those epochs (their
    /// evidence can no longer be checked without the epoch's validator set). Every validator
    /// removes the same keys at the same close, so roots stay identical. Returns how many
    /// records went.
    fn prune_through(&mut self, last: Epoch) -> u32 {
        let mut gone: Vec<Vec<u8>> = Vec::new();
        for (k, v) in self.store.scan(&[keys::SUBMISSION]) {
            let r: SubmissionRecord =
                decode("submission", v, MAX_VALUE_BYTES).expect("written by us");
            if r.epoch > last || r.status == SubmissionStatus::Pending {
                continue;
            }
            let s = &r.submission;
            let id = SubmissionId(Hash(k[1..].try_into().expect("32-byte id")));
            let best = get::<ScoreEntry>(&self.store, &keys::score(&s.challenge, &s.miner))
                .is_some_and(|e| e.submission == id);
            if !best {
                gone.push(k.to_vec());
                gone.push(keys::payload(&s.challenge, &s.payload_hash));
            }
        }
        for table in [keys::EPOCH, keys::CREDIT] {
            for (k, _) in self.store.scan(&[table]) {
                let epoch = u64::from_be_bytes(k[1..9].try_into().expect("8-byte epoch"));
                if epoch > last.0 {
                    break;
                }
                gone.push(k.to_vec());
            }
        }
        for (k, _) in self.store.scan(&[keys::EQUIVOCATION]) {
            let epoch = u64::from_be_bytes(k[33..41].try_into().expect("8-byte epoch"));
            if epoch <= last.0 {
                gone.push(k.to_vec());
            }
        }
        for k in &gone {
            self.store.delete(k);
        }
        gone.len() as u32
    }

    /// Replaces committee members who missed their deadline, before a block's transactions.
    pub(crate) fn run_timeouts(&mut self, height: Height) -> Vec<Event> {
        let mut due = Vec::new();
        for (k, _) in self.store.scan(&[keys::DEADLINE]) {
            let at = u64::from_be_bytes(k[1..9].try_into().expect("8 bytes"));
            if at > height.0 {
                break;
            }
            due.push((
                k.to_vec(),
                SubmissionId(Hash(k[9..41].try_into().expect("32"))),
            ));
        }
        let timeout = self.params().attest_timeout_blocks;
        let mut events = Vec::new();
        for (key, id) in due {
            self.store.delete(&key);
            let Some(mut r) = self.submission(&id) else {
                continue;
            };
            // Members by the digest they attested on chain, largest group first.
            let mut groups = std::collections::BTreeMap::<Hash, Vec<Hotkey>>::new();
            for (hk, d) in &r.attestations {
                if r.committee.contains(hk) {
                    groups.entry(*d).or_default().push(*hk);
                }
            }
            let mut sizes: Vec<usize> = groups.values().map(Vec::len).collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            if sizes
                .first()
                .is_some_and(|&c| c * 3 > r.committee.len() * 2)
            {
                // A certificate can be formed; give the proposers another round to include it.
                r.deadline = Height(height.0 + timeout);
                put(&mut self.store, keys::deadline(r.deadline, &id), &());
                put(&mut self.store, keys::submission(&id), &r);
                continue;
            }
            // The members of the one largest group keep their seats. Everyone else is
            // replaced: members that did not attest, and members that attested a digest fewer
            // agree with (evaluation is deterministic, so a split means someone is wrong, and
            // keeping a dissenter would let it block the certificate for good). With no single
            // largest group, nobody's attestation is trusted over another's.
            let keep: Vec<Hotkey> = match (sizes.first(), sizes.get(1)) {
                (Some(a), b) if b.is_none_or(|b| a > b) => groups
                    .into_values()
                    .find(|g| g.len() == *a)
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let dropped: Vec<Hotkey> = r
                .committee
                .iter()
                .filter(|hk| !keep.contains(hk))
                .copied()
                .collect();
            let mut excluded: Vec<Hotkey> = r.committee.clone();
            excluded.extend(r.dropped.iter().copied());
            let replacements: Vec<Hotkey> = draw_order(&self.eligible(&excluded), &r.draw_seed)
                .into_iter()
                .take(dropped.len())
                .collect();
            if replacements.is_empty() && keep.is_empty() {
                r.status = SubmissionStatus::Expired { height };
                events.push(Event::Expired { submission: id });
            } else {
                // Kept members stay in draw order; replacements follow in theirs.
                r.committee.retain(|hk| keep.contains(hk));
                r.committee.extend(replacements.iter().copied());
                r.attestations.retain(|(hk, _)| keep.contains(hk));
                r.dropped.extend(dropped.iter().copied());
                r.deadline = Height(height.0 + timeout);
                put(&mut self.store, keys::deadline(r.deadline, &id), &());
                events.push(Event::Replaced {
                    submission: id,
                    dropped,
                    added: replacements,
                });
            }
            put(&mut self.store, keys::submission(&id), &r);
        }
        events
    }
}

fn derive(label: &[u8], beacon: &[u8; 32], id: &SubmissionId) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(label);
    h.update(beacon);
    h.update(&id.0.0);
    Hash(*h.finalize().as_bytes())
}
