//! Deliberate faults for the test suite (`Fault`, accepted only by builds with the
//! `test-faults` feature): a Byzantine validator's gossip.

use super::*;

impl Driver {
    /// The deliberate fault [`Fault::FloodAnnounces`]: announces made-up blocks for the next
    /// views, most of which this validator does not lead, and a second block for its own.
    pub(super) async fn flood_announcements(&self) {
        let view = self.consensus.engine.view();
        let epoch = self.epoch();
        for i in 0..16u64 {
            let junk = Hash::of(&encode(&(self.finalized_height(), view.0, i)));
            let a = Announcement {
                epoch,
                view: View(view.0 + i),
                header: junk,
                blob: Hash::of(&encode(&junk)),
            };
            let _ = self
                .net
                .publish(Topic::Announce, self.finalized_height() + 1, encode(&a))
                .await;
        }
    }

    /// The deliberate fault [`Fault::GarbageGossip`]: messages on every topic that pass the
    /// network's checks (well formed, signed by this validator, in the round window) and mean
    /// nothing: a notarize vote for a proposal nobody made with a signature over other bytes,
    /// a submission no miner signed, an attestation of a submission nobody made.
    pub(super) async fn gossip_garbage(&self) {
        let Some(bls) = self.key.derive_bls_key() else {
            return;
        };
        let view = self.consensus.engine.view();
        let junk = Hash::of(&encode(&(self.finalized_height(), view.0, "garbage")));
        let mut messages = Vec::new();
        if let Some(me) = self.consensus.me {
            let vote = platform_consensus::Vote {
                kind: VoteKind::Notarize,
                subject: Subject::Proposal(Proposal {
                    epoch: self.epoch(),
                    view,
                    height: Height(self.finalized_height() + 1),
                    parent: self.finalized_digest(),
                    payload: junk,
                }),
                signer: me,
                signature: bls.sign(&junk.0),
            };
            let message: Message<BlsSignature> = Message::Vote(vote);
            messages.push((Topic::Consensus, view.0, encode(&message)));
        }
        let submission = platform_primitives::Submission {
            challenge: platform_primitives::ChallengeId::new("garbage").expect("a valid id"),
            miner: self.key.hotkey(),
            payload_hash: junk,
            payload_len: 1,
            nonce: self.finalized_height(),
        };
        let unsigned = Tx::Submit(platform_state::SubmitTx {
            submission,
            signature: None,
        });
        messages.push((
            Topic::Submissions,
            self.finalized_height(),
            encode(&unsigned),
        ));
        let result = platform_state::ResultBody {
            outcome: platform_runtime::OutcomeClass::Ok,
            output: Vec::new(),
            write_set: Vec::new(),
            fuel_used: 0,
            engine_hash: [0; 32],
        };
        let digest = result.digest();
        let attestation = crate::evaluator::Attestation {
            attest: platform_state::Attest {
                submission: platform_primitives::SubmissionId(junk),
                evaluator: self.key.hotkey(),
                digest,
                signature: bls.sign(&digest.0),
            },
            result,
        };
        messages.push((
            Topic::Attestations,
            self.finalized_height(),
            encode(&attestation),
        ));
        for (topic, round, bytes) in messages {
            if let Err(e) = self.net.publish(topic, round, bytes).await {
                tracing::debug!("gossiping garbage: {e}");
            }
        }
    }

    /// The deliberate fault [`Fault::PoisonAnchors`]: gossips an anchor for the next epoch
    /// whose metagraph makes this validator the only one, straight to peers (its own mempool
    /// would refuse it).
    pub(super) async fn gossip_forged_anchor(&self) {
        let current = self.pool.state().current_epoch();
        let me = self.key.hotkey();
        let mut metagraph = current.metagraph;
        for n in &mut metagraph {
            n.validator_permit = n.hotkey == me;
        }
        let forged = Tx::EpochAnchor(EpochAnchor {
            epoch: Epoch(current.epoch.0 + 1),
            chain_block: current.chain_block + 1,
            chain_hash: Hash::of(b"forged"),
            metagraph,
        });
        let round = self.finalized_height();
        if let Err(e) = self
            .net
            .publish(Topic::Submissions, round, encode(&forged))
            .await
        {
            tracing::debug!("gossiping a forged anchor: {e}");
        }
    }

    /// The deliberate fault [`Fault::FloodFetches`], per tick: 256 asks on gossip, where they
    /// do not belong (half `FetchView` for decided views, half `Fetch` for digests nobody
    /// proposed, all distinct so that no replay cache stops them), after — until a peer has
    /// answered one — 128 certificate requests point-to-point for decided views.
    ///
    /// The order is fixed so that both defences show in every run: the point-to-point burst
    /// costs each peer's score less than a ban (a rate-limited request costs 2 points, 50
    /// reach the ban) and is awaited before the gossip goes out; the gossip then gets this
    /// validator banned. Repeating the burst every tick could ban it before any gossip left.
    pub(super) async fn flood_fetches(&mut self) {
        let view = self.consensus.engine.view();
        self.fetch_flood_tick += 1;
        let tick = self.fetch_flood_tick;
        if !self.fetch_flood_reached_peer {
            let mut requests = tokio::task::JoinSet::new();
            for i in 0..128u64 {
                let ask = platform_network::CertificateAsk::View {
                    epoch: self.epoch().0,
                    view: view.0.saturating_sub(1 + i % view.0.max(1)),
                };
                let net = self.net.clone();
                requests.spawn(async move { net.fetch_certificates(ask, None).await });
            }
            while let Some(done) = requests.join_next().await {
                let reached = match done {
                    Ok(Ok(_)) => true,
                    Ok(Err(platform_network::NetError::NotFound { tried, .. })) => tried > 0,
                    _ => false,
                };
                self.fetch_flood_reached_peer |= reached;
            }
            if !self.fetch_flood_reached_peer {
                return;
            }
        }
        for i in 0..128u64 {
            let old = View(view.0.saturating_sub(1 + (tick * 128 + i) % view.0.max(1)));
            let junk = Hash::of(&encode(&(tick, i, "fetch")));
            for message in [
                Message::<BlsSignature>::FetchView(old),
                Message::<BlsSignature>::Fetch(junk),
            ] {
                if let Err(e) = self
                    .net
                    .publish(Topic::Consensus, view.0, encode(&message))
                    .await
                {
                    tracing::debug!("flooding fetches: {e}");
                    return;
                }
            }
        }
    }
}
