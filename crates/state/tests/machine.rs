//! The state machine through its public gates: block validity, the transaction rules,
//! committees, certification, timeouts, evidence and jailing, epochs and snapshots.

mod common;

use common::*;
use platform_crypto::Keypair;
use platform_primitives::{Epoch, Hash, Height, Hotkey, Score, SubmissionId, Uid};
use platform_state::records::{SubmissionRecord, SubmissionStatus};
use platform_state::*;

fn reject_of(r: Result<Applied, BlockError>) -> Reject {
    match r {
        Err(BlockError::Tx { reject, .. }) => reject,
        other => panic!("expected a rejected transaction, got {other:?}"),
    }
}

#[test]
fn applying_a_block_twice_is_refused() {
    let mut net = Net::with_challenge(Params::default(), None);
    let (tx, _) = net.submit(0, &score_payload(5));
    let block = net.block(vec![tx]);
    net.state.apply_block(&block, &NoModules).unwrap();
    let root = net.state.root();
    let again = net.state.apply_block(&block, &NoModules);
    assert!(
        matches!(again, Err(BlockError::WrongHeight { .. })),
        "{again:?}"
    );
    assert_eq!(net.state.root(), root);
}

#[test]
fn one_bad_transaction_refuses_the_whole_block_and_changes_nothing() {
    let mut net = Net::with_challenge(Params::default(), None);
    let root = net.state.root();
    let height = net.state.meta().height;
    let (good, _) = net.submit(0, &score_payload(5));
    let (mut bad, _) = net.submit(1, &score_payload(6));
    if let Tx::Submit(s) = &mut bad {
        s.signature = None;
    }
    let r = net.apply(vec![good, bad]);
    assert!(
        matches!(
            r,
            Err(BlockError::Tx {
                index: 1,
                reject: Reject::Unsigned
            })
        ),
        "{r:?}"
    );
    assert_eq!(net.state.root(), root);
    assert_eq!(net.state.meta().height, height);
}

#[test]
fn header_fields_are_checked() {
    let mut net = Net::with_challenge(Params::default(), None);
    let base = net.block(vec![]);

    let mut b = base.clone();
    b.header.parent = Hash::of(b"elsewhere");
    assert!(matches!(
        net.state.verify_block(&b, &NoModules),
        Err(BlockError::WrongParent { .. })
    ));
    let mut b = base.clone();
    b.header.state_root = Hash::ZERO;
    assert!(matches!(
        net.state.verify_block(&b, &NoModules),
        Err(BlockError::WrongStateRoot { .. })
    ));
    let mut b = base.clone();
    b.header.tx_root = Hash::ZERO;
    assert!(matches!(
        net.state.verify_block(&b, &NoModules),
        Err(BlockError::WrongTxRoot)
    ));
    let mut b = base.clone();
    b.header.timestamp_ms = 0;
    assert!(matches!(
        net.state.verify_block(&b, &NoModules),
        Err(BlockError::TimestampBackwards { .. })
    ));
    // A beacon made by another validator does not verify for the named proposer.
    let mut b = base.clone();
    let other = &net.validators[0].key;
    assert_ne!(other.hotkey(), b.header.proposer);
    let meta = net.state.meta();
    b.header.beacon = other
        .vrf_prove(&BlockHeader::beacon_input(
            NETUID,
            meta.epoch,
            b.header.height,
        ))
        .1;
    assert!(matches!(
        net.state.verify_block(&b, &NoModules),
        Err(BlockError::BadBeacon)
    ));
    let mut b = base.clone();
    b.header.proposer = net.miners[0].hotkey();
    assert!(matches!(
        net.state.verify_block(&b, &NoModules),
        Err(BlockError::NotValidator { .. })
    ));
    // And the untouched block is fine (verification rolled everything back).
    net.state.apply_block(&base, &NoModules).unwrap();
}

/// Mempool admission and block application give the same verdict: they are one executor.
#[test]
fn admission_and_application_agree() {
    let mut net = Net::with_challenge(Params::default(), None);
    let (first, _) = net.submit(0, &score_payload(5));
    net.apply(vec![first.clone()]).unwrap();
    let stranger = Keypair::from_seed(&[99; 32]);
    let genesis = net.state.meta().network_id;
    let candidates = vec![
        // Replayed: the same transaction again (same nonce, same payload).
        first,
        // A non-owner sudo.
        sudo_by(
            &stranger,
            &genesis,
            100,
            SudoAction::SetParams(Params::default()),
        ),
        // An owner sudo with a used nonce.
        sudo_by(
            &net.owner,
            &genesis,
            1,
            SudoAction::SetParams(Params::default()),
        ),
    ];
    for tx in candidates {
        let admitted = net.state.admit(&tx, &NoModules).unwrap_err();
        let applied = reject_of(net.apply(vec![tx]));
        assert_eq!(admitted, applied);
    }
}

#[test]
fn submission_rules() {
    let params = Params {
        max_submissions_per_epoch: 2,
        ..Params::default()
    };
    let mut net = Net::with_challenge(params, None);
    let (a, _) = net.submit(0, &score_payload(1));
    let (b, _) = net.submit(0, &score_payload(2));
    net.apply(vec![a, b]).unwrap();
    let (c, _) = net.submit(0, &score_payload(3));
    assert_eq!(
        reject_of(net.apply(vec![c])),
        Reject::RateLimited { limit: 2 }
    );
    // Another miner copying miner 0's payload earns nothing: the first keeps it.
    let (copy, _) = net.submit(1, &score_payload(1));
    assert!(matches!(
        reject_of(net.apply(vec![copy])),
        Reject::DuplicatePayload { .. }
    ));
    // A payload longer than the challenge allows.
    let (mut big, _) = net.submit(1, &score_payload(4));
    if let Tx::Submit(s) = &mut big {
        s.submission.payload_len = 4096;
    }
    // Re-sign: the signature covers the claimed length.
    let k = &net.miners[1];
    if let Tx::Submit(s) = &mut big {
        s.signature = Some(k.sign(
            platform_crypto::Domain::Submission,
            &SubmitTx::signing_bytes(NETUID, &net.state.meta().network_id, &s.submission),
        ));
    }
    assert_eq!(
        reject_of(net.apply(vec![big])),
        Reject::PayloadTooLarge {
            len: 4096,
            max: 1024
        }
    );
}

/// A miner's submissions reach the leader through different mempools and gossip paths, so a
/// later nonce may be ordered first: the earlier one is still accepted while it is within the
/// miner's last `NonceWindow::SIZE` nonces. A used nonce is never accepted again, and one
/// older than the window is refused.
#[test]
fn a_miners_nonces_may_be_ordered_out_of_order_but_never_replayed() {
    let params = Params {
        max_submissions_per_epoch: 64,
        ..Params::default()
    };
    let mut net = Net::with_challenge(params, None);
    let subs: Vec<Tx> = (1..=18)
        .map(|i| net.submit(0, &score_payload(i)).0)
        .collect();
    // Nonce 2 before nonce 1: both are ordered.
    net.apply(vec![subs[1].clone()]).unwrap();
    net.apply(vec![subs[0].clone()]).unwrap();
    // Either again is a replay.
    for replay in [&subs[0], &subs[1]] {
        assert!(matches!(
            reject_of(net.apply(vec![replay.clone()])),
            Reject::NonceReplayed { last: 2, .. }
        ));
    }
    // Nonces 4..=18 ordered, 3 held back: the window (17 used nonces, 16 kept) moves its
    // floor to 1, and nonce 3 is still within it.
    net.apply(subs[3..].to_vec()).unwrap();
    net.apply(vec![subs[2].clone()]).unwrap();
    // 18 used: the floor is now 2; every used nonce is refused, above or below it.
    for replay in &subs {
        assert!(matches!(
            reject_of(net.apply(vec![replay.clone()])),
            Reject::NonceReplayed { last: 18, .. }
        ));
    }
    // An unused nonce at or below the floor is too old.
    let old = {
        let k = &net.miners[0];
        let submission = platform_primitives::Submission {
            challenge: platform_primitives::ChallengeId::new("score").unwrap(),
            miner: k.hotkey(),
            payload_hash: platform_primitives::Hash::of(&score_payload(99)),
            payload_len: score_payload(99).len() as u64,
            nonce: 0,
        };
        let sig = k.sign(
            platform_crypto::Domain::Submission,
            &SubmitTx::signing_bytes(NETUID, &net.state.meta().network_id, &submission),
        );
        Tx::Submit(SubmitTx {
            submission,
            signature: Some(sig),
        })
    };
    assert!(matches!(
        reject_of(net.apply(vec![old])),
        Reject::NonceReplayed { nonce: 0, .. }
    ));
}

#[test]
fn lifecycle_emission_and_params_rules() {
    let mut net = Net::with_challenge(Params::default(), None);
    // Illegal: Active -> Draft.
    let t = net.sudo(SudoAction::Transition {
        challenge: id("score"),
        to: Lifecycle::Draft,
    });
    assert!(matches!(
        reject_of(net.apply(vec![t])),
        Reject::IllegalTransition { .. }
    ));
    // A second challenge at 3000 bps would total 11000.
    let mut second = net.meta("second", None);
    second.emission_bps = 3_000;
    let p = net.sudo(SudoAction::Publish(second.clone()));
    assert_eq!(
        reject_of(net.apply(vec![p])),
        Reject::EmissionOverflow { total: 11_000 }
    );
    second.emission_bps = 2_000;
    let p = net.sudo(SudoAction::Publish(second.clone()));
    net.apply(vec![p]).unwrap();
    // Updating metadata needs a higher version.
    let again = net.sudo(SudoAction::Publish(second.clone()));
    assert!(matches!(
        reject_of(net.apply(vec![again])),
        Reject::VersionNotIncreased { current: 1, .. }
    ));
    // Retire, then it can never come back.
    let retire = net.sudo(SudoAction::Transition {
        challenge: id("second"),
        to: Lifecycle::Retired,
    });
    assert!(matches!(
        reject_of(net.apply(vec![retire])),
        Reject::IllegalTransition { .. }
    ));
    let retire = net.sudo(SudoAction::Transition {
        challenge: id("score"),
        to: Lifecycle::Retired,
    });
    net.apply(vec![retire]).unwrap();
    let mut back = net.meta("score", None);
    back.version = 2;
    let p = net.sudo(SudoAction::Publish(back));
    assert!(matches!(
        reject_of(net.apply(vec![p])),
        Reject::IllegalTransition { .. }
    ));
    // Parameters are validated.
    let bad = Params {
        max_committee_share_bps: 0,
        ..Params::default()
    };
    let p = net.sudo(SudoAction::SetParams(bad));
    assert!(matches!(
        reject_of(net.apply(vec![p])),
        Reject::InvalidValue { .. }
    ));
    // The signature covers the whole metadata: changing the module hash after signing breaks it.
    let mut meta = net.meta("third", None);
    meta.emission_bps = 0;
    let mut tx = net.sudo(SudoAction::Publish(meta));
    if let Tx::Sudo(s) = &mut tx
        && let SudoAction::Publish(m) = &mut s.action
    {
        m.wasm_hash = Hash::of(b"another module");
    }
    assert!(matches!(
        reject_of(net.apply(vec![tx])),
        Reject::BadSignature { .. }
    ));
}

#[test]
fn certification_needs_more_than_two_thirds_and_credits_only_signers() {
    let mut net = Net::with_challenge(Params::default(), None);
    let payload = score_payload(700);
    let (tx, sid) = net.submit(0, &payload);
    net.apply(vec![tx]).unwrap();
    let committee = net.state.submission(&sid).unwrap().committee;
    assert_eq!(committee.len(), 4, "committee_size 0 means every validator");
    let (body, attests) = net.evaluate(&sid, &payload);

    let two = net.certify(&sid, &body, &attests, &[0, 1]);
    assert_eq!(
        reject_of(net.apply(vec![two])),
        Reject::InsufficientSigners {
            signers: 2,
            committee: 4
        }
    );
    // A certificate over a different result does not verify.
    let mut forged = body.clone();
    forged.fuel_used += 1;
    let bad = net.certify(&sid, &forged, &attests, &[0, 1, 2]);
    assert_eq!(reject_of(net.apply(vec![bad])), Reject::BadBlsSignature);

    let three = net.certify(&sid, &body, &attests, &[0, 1, 2]);
    let applied = net.apply(vec![three.clone()]).unwrap();
    assert!(matches!(
        applied.outcomes[0],
        TxOutcome::Certified {
            score: Some(Score(700)),
            signers: 3,
            ..
        }
    ));
    let credits = net.state.credits(Epoch(0));
    assert_eq!(credits.len(), 3);
    assert!(!credits.contains_key(&committee[3]));
    // The write-set was applied once; certifying again is refused.
    assert_eq!(net.state.challenge_kv(&id("score")).len(), 1);
    assert!(matches!(
        reject_of(net.apply(vec![three])),
        Reject::NotPending { .. }
    ));
}

/// Runs `blocks` empty blocks; the events they raised.
fn idle(net: &mut Net, blocks: usize) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..blocks {
        events.extend(net.apply(vec![]).unwrap().events);
    }
    events
}

/// A network whose challenge draws committees of `size` (attestation deadline: 3 blocks, no
/// stake cap), one submission ordered: the network, the submission's id, its payload and its
/// record right after ordering.
fn ordered_with_committee(size: u16) -> (Net, SubmissionId, Vec<u8>, SubmissionRecord) {
    let params = Params {
        attest_timeout_blocks: 3,
        max_committee_share_bps: 10_000,
        ..Params::default()
    };
    let mut net = Net::with_challenge(params, Some(size));
    let payload = score_payload(9);
    let (tx, sid) = net.submit(0, &payload);
    net.apply(vec![tx]).unwrap();
    let first = net.state.submission(&sid).unwrap();
    (net, sid, payload, first)
}

#[test]
fn missing_members_are_replaced_after_the_timeout() {
    let (mut net, sid, payload, first) = ordered_with_committee(2);
    assert_eq!(first.committee.len(), 2);
    // One member attests; the other does not.
    let (_, attests) = net.evaluate(&sid, &payload);
    net.apply(vec![Tx::Attest(attests[0].1.clone())]).unwrap();
    let events = idle(&mut net, 3);
    let r = net.state.submission(&sid).unwrap();
    assert_eq!(r.dropped, vec![first.committee[1]]);
    assert_eq!(r.committee.len(), 2);
    assert_eq!(r.committee[0], first.committee[0]);
    assert!(!first.committee.contains(&r.committee[1]));
    assert!(matches!(events.as_slice(), [Event::Replaced { .. }]));
    // The replacement can attest and the two certify.
    let (body, attests) = net.evaluate(&sid, &payload);
    let cert = net.certify(&sid, &body, &attests, &[0, 1]);
    net.apply(vec![Tx::Attest(attests[1].1.clone()), cert])
        .unwrap();
    assert!(matches!(
        net.state.submission(&sid).unwrap().status,
        SubmissionStatus::Certified { .. }
    ));
}

#[test]
fn a_member_attesting_a_minority_digest_is_replaced_and_the_majority_keeps_its_seats() {
    let (mut net, sid, payload, first) = ordered_with_committee(3);
    assert_eq!(first.committee.len(), 3);
    // Two members attest the real result, the third a different one: no digest has more
    // than two thirds, so no certificate can form.
    let (body, attests) = net.evaluate(&sid, &payload);
    let wrong = net.attest(&first.committee[2], &sid, Hash::of(b"forged"));
    net.apply(vec![
        Tx::Attest(attests[0].1.clone()),
        Tx::Attest(attests[1].1.clone()),
        Tx::Attest(wrong),
    ])
    .unwrap();
    let events = idle(&mut net, 3);
    let r = net.state.submission(&sid).unwrap();
    assert_eq!(r.dropped, vec![first.committee[2]]);
    assert_eq!(r.committee[..2], first.committee[..2]);
    assert_eq!(r.committee.len(), 3);
    assert!(!first.committee.contains(&r.committee[2]));
    assert_eq!(
        r.attestations.len(),
        2,
        "the dissenter's attestation is set aside"
    );
    assert!(matches!(events.as_slice(), [Event::Replaced { .. }]));
    // The replacement agrees with the two who stayed, and the three certify.
    let (_, attests) = net.evaluate(&sid, &payload);
    let cert = net.certify(&sid, &body, &attests, &[0, 1, 2]);
    net.apply(vec![cert]).unwrap();
    assert!(matches!(
        net.state.submission(&sid).unwrap().status,
        SubmissionStatus::Certified { .. }
    ));
}

#[test]
fn with_no_single_largest_digest_every_member_is_replaced_and_then_the_submission_expires() {
    let (mut net, sid, payload, first) = ordered_with_committee(3);
    // One real, one forged, one silent: a tie, so no attestation is trusted.
    let (_, attests) = net.evaluate(&sid, &payload);
    let wrong = net.attest(&first.committee[1], &sid, Hash::of(b"forged"));
    net.apply(vec![Tx::Attest(attests[0].1.clone()), Tx::Attest(wrong)])
        .unwrap();
    idle(&mut net, 3);
    let r = net.state.submission(&sid).unwrap();
    assert_eq!(r.dropped, first.committee);
    assert_eq!(r.committee.len(), 1, "only one validator was left to draw");
    assert!(r.attestations.is_empty());
    // The replacement stays silent too; nobody is left to draw.
    let events = idle(&mut net, 3);
    assert!(matches!(events.as_slice(), [Event::Expired { .. }]));
    assert!(matches!(
        net.state.submission(&sid).unwrap().status,
        SubmissionStatus::Expired { .. }
    ));
}

/// A vote of `kind` on `subject` by the genesis epoch's validator `signer`, signed with its BLS
/// key.
fn signed_vote(
    net: &Net,
    signer: usize,
    kind: platform_consensus::VoteKind,
    subject: platform_consensus::Subject,
) -> platform_consensus::Vote<platform_crypto::BlsSignature> {
    // Numbered as the engine numbers signers: among the epoch's consensus members.
    let hotkey = net.state.current_epoch().members[signer].hotkey;
    let node = net
        .validators
        .iter()
        .find(|v| v.key.hotkey() == hotkey)
        .unwrap();
    let message = platform_consensus::types::signing_message(NETUID, kind, &subject);
    platform_consensus::Vote {
        kind,
        signature: node.bls.sign(&message),
        subject,
        signer: signer as u16,
    }
}

/// A validator's vote on a proposal in view `view` of the genesis epoch.
fn vote(
    net: &Net,
    signer: usize,
    kind: platform_consensus::VoteKind,
    view: u64,
    payload: &[u8],
) -> platform_consensus::Vote<platform_crypto::BlsSignature> {
    let subject = platform_consensus::Subject::Proposal(platform_consensus::Proposal {
        epoch: Epoch(0),
        view: platform_primitives::View(view),
        height: Height(1),
        parent: Hash::of(b"parent"),
        payload: Hash::of(payload),
    });
    signed_vote(net, signer, kind, subject)
}

#[test]
fn equivocating_consensus_votes_jail_the_validator_once() {
    use platform_consensus::VoteKind::{Finalize, Notarize, Nullify};
    let mut net = Net::with_challenge(Params::default(), None);
    let offender = net.state.current_epoch().validators[1].0;
    let evidence = |first, second| Tx::Evidence(Evidence::Equivocation { first, second });
    let a = vote(&net, 1, Notarize, 3, b"block a");
    let b = vote(&net, 1, Notarize, 3, b"block b");
    // Not equivocation: the same vote twice, two views, two kinds, two signers, nullify.
    for (x, y) in [
        (a.clone(), a.clone()),
        (a.clone(), vote(&net, 1, Notarize, 4, b"block b")),
        (a.clone(), vote(&net, 1, Finalize, 3, b"block b")),
        (a.clone(), vote(&net, 2, Notarize, 3, b"block b")),
        (
            vote(&net, 1, Nullify, 3, b"block a"),
            vote(&net, 1, Nullify, 3, b"block b"),
        ),
    ] {
        assert_eq!(
            reject_of(net.apply(vec![evidence(x, y)])),
            Reject::NotEvidence
        );
    }
    // A vote in another validator's name does not verify.
    let mut forged = b.clone();
    forged.signature = vote(&net, 2, Notarize, 3, b"block b").signature;
    assert_eq!(
        reject_of(net.apply(vec![evidence(a.clone(), forged)])),
        Reject::BadBlsSignature
    );
    let applied = net.apply(vec![evidence(a.clone(), b.clone())]).unwrap();
    assert!(
        matches!(applied.outcomes[0], TxOutcome::Jailed { hotkey, .. } if hotkey == offender),
        "{:?}",
        applied.outcomes
    );
    assert!(net.state.jailed_until(&offender).is_some());
    assert!(matches!(
        reject_of(net.apply(vec![evidence(b, a)])),
        Reject::EquivocationKnown { .. }
    ));
}

/// The engine numbers only the validators that had bound keys when the epoch began. With an
/// unbound validator ordered before the offender, evidence signed under the engine's numbering
/// names the offender (not the validator after him in the whole set) and jails him; the same
/// votes numbered by the whole set are not evidence. A binding in the middle of the epoch
/// changes the members only from the next epoch.
#[test]
fn an_unbound_validator_does_not_shift_who_equivocation_evidence_names() {
    use platform_consensus::VoteKind::Notarize;
    // The validator with the lowest hotkey stays unbound at genesis.
    let lowest = (1..=4u8)
        .map(|i| Keypair::from_seed(&[i; 32]).hotkey())
        .min()
        .unwrap();
    let mut net = Net::with_genesis(Params::default(), |g| {
        g.bindings.retain(|b| b.hotkey != lowest);
    });
    let epoch = net.state.current_epoch();
    assert_eq!(epoch.validators[0].0, lowest);
    assert_eq!(epoch.validators.len(), 4);
    let members: Vec<Hotkey> = epoch.members.iter().map(|m| m.hotkey).collect();
    assert_eq!(members.len(), 3);
    assert!(!members.contains(&lowest));
    // Member 1 is validator 2 of the whole set.
    let offender = members[1];
    assert_eq!(epoch.validators[2].0, offender);
    let evidence = |first, second| Tx::Evidence(Evidence::Equivocation { first, second });
    let a = vote(&net, 1, Notarize, 3, b"block a");
    let b = vote(&net, 1, Notarize, 3, b"block b");
    // Numbered by the whole set (index 2), the same signatures name someone else.
    let (mut a2, mut b2) = (a.clone(), b.clone());
    a2.signer = 2;
    b2.signer = 2;
    assert_eq!(
        reject_of(net.apply(vec![evidence(a2, b2)])),
        Reject::BadBlsSignature
    );
    let applied = net.apply(vec![evidence(a, b)]).unwrap();
    assert!(
        matches!(applied.outcomes[0], TxOutcome::Jailed { hotkey, .. } if hotkey == offender),
        "{:?}",
        applied.outcomes
    );
    // The unbound validator binds mid-epoch: members stay as seated until the next epoch.
    let node = net
        .validators
        .iter()
        .find(|v| v.key.hotkey() == lowest)
        .unwrap();
    let binding = Tx::BindKeys(bind(&node.key, &node.bls));
    net.apply(vec![binding]).unwrap();
    assert!(net.state.bound_keys(&lowest).is_some());
    assert_eq!(net.state.current_epoch().members.len(), 3);
    close_epoch(&mut net);
    let seated: Vec<Hotkey> = net
        .state
        .current_epoch()
        .members
        .iter()
        .map(|m| m.hotkey)
        .collect();
    assert_eq!(seated.len(), 4);
    assert_eq!(seated[0], lowest);
}

/// A validator's nullify vote for `view` of the genesis epoch.
fn nullify_vote(
    net: &Net,
    signer: usize,
    view: u64,
) -> platform_consensus::Vote<platform_crypto::BlsSignature> {
    let subject = platform_consensus::Subject::View(Epoch(0), platform_primitives::View(view));
    signed_vote(net, signer, platform_consensus::VoteKind::Nullify, subject)
}

/// The safety rules never sign a nullify and a finalize in one view: both, verified, jail the
/// signer, in either order; a nullify with a notarize (allowed) or of another view is not
/// evidence.
#[test]
fn a_nullify_and_a_finalize_in_one_view_jail_the_validator() {
    use platform_consensus::VoteKind::{Finalize, Notarize};
    let mut net = Net::with_challenge(Params::default(), None);
    let offender = net.state.current_epoch().validators[2].0;
    let evidence = |first, second| Tx::Evidence(Evidence::Equivocation { first, second });
    let nullify = nullify_vote(&net, 2, 5);
    let finalize = vote(&net, 2, Finalize, 5, b"block");
    for (x, y) in [
        (nullify.clone(), vote(&net, 2, Notarize, 5, b"block")),
        (nullify.clone(), vote(&net, 2, Finalize, 6, b"block")),
        (nullify.clone(), vote(&net, 3, Finalize, 5, b"block")),
    ] {
        assert_eq!(
            reject_of(net.apply(vec![evidence(x, y)])),
            Reject::NotEvidence
        );
    }
    let applied = net
        .apply(vec![evidence(finalize.clone(), nullify.clone())])
        .unwrap();
    assert!(
        matches!(applied.outcomes[0], TxOutcome::Jailed { hotkey, .. } if hotkey == offender),
        "{:?}",
        applied.outcomes
    );
    assert!(matches!(
        reject_of(net.apply(vec![evidence(nullify, finalize)])),
        Reject::EquivocationKnown { .. }
    ));
}

#[test]
fn conflicting_attestations_jail_and_jailed_validators_are_never_drawn() {
    let params = Params {
        max_committee_share_bps: 10_000,
        max_submissions_per_epoch: 100,
        ..Params::default()
    };
    let mut net = Net::with_challenge(params, Some(2));
    let payload = score_payload(3);
    let (tx, sid) = net.submit(0, &payload);
    net.apply(vec![tx]).unwrap();
    let member = net.state.submission(&sid).unwrap().committee[0];
    let a = net.attest(&member, &sid, Hash::of(b"one"));
    let b = net.attest(&member, &sid, Hash::of(b"two"));
    // Same digest twice is not evidence.
    let same = Tx::Evidence(Evidence::Conflicting {
        a: a.clone(),
        b: a.clone(),
    });
    assert_eq!(reject_of(net.apply(vec![same])), Reject::NotEvidence);
    let ev = Tx::Evidence(Evidence::Conflicting { a, b });
    let applied = net.apply(vec![ev.clone()]).unwrap();
    assert!(matches!(applied.outcomes[0], TxOutcome::Jailed { hotkey, .. } if hotkey == member));
    assert!(matches!(
        reject_of(net.apply(vec![ev])),
        Reject::EvidenceKnown { .. }
    ));
    // Property: whatever the submission (and so the draw seed), the jailed validator is never
    // drawn.
    let net = std::cell::RefCell::new(net);
    let drawn = std::cell::Cell::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 48,
        ..Default::default()
    });
    runner
        .run(&(0u64..1 << 40, 0usize..3), |(value, miner)| {
            let mut net = net.borrow_mut();
            let (tx, sid) = net.submit(miner, &score_payload(1_000 + value));
            if net.apply(vec![tx]).is_ok() {
                let committee = net.state.submission(&sid).unwrap().committee;
                proptest::prop_assert_eq!(committee.len(), 2);
                proptest::prop_assert!(!committee.contains(&member));
                drawn.set(drawn.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    assert!(drawn.get() >= 40, "only {} draws were made", drawn.get());
}

#[test]
fn epochs_close_only_with_the_computed_weights() {
    let mut net = Net::with_challenge(Params::default(), None);
    let payload = score_payload(400);
    let (tx, sid) = net.submit(1, &payload);
    net.apply(vec![tx]).unwrap();
    let (body, attests) = net.evaluate(&sid, &payload);
    let cert = net.certify(&sid, &body, &attests, &[0, 1, 2, 3]);
    net.apply(vec![cert]).unwrap();

    let close = |digest| {
        Tx::EpochClose(EpochClose {
            epoch: Epoch(0),
            weights_digest: digest,
        })
    };
    assert_eq!(
        reject_of(net.apply(vec![close(Hash::ZERO)])),
        Reject::NotAnchored { epoch: Epoch(1) }
    );
    let anchor = net.anchor();
    net.apply(vec![anchor.clone()]).unwrap();
    assert_eq!(
        reject_of(net.apply(vec![anchor])),
        Reject::AlreadyAnchored { epoch: Epoch(1) }
    );
    let weights = net.state.compute_weights(&NoModules).unwrap();
    // 80% to the only scored miner (UID 5), 20% to the burn UID 0.
    assert_eq!(weights.uids(), &[Uid(0), Uid(5)]);
    assert_eq!(weights.weights(), &[13107, 52428]);
    assert!(matches!(
        reject_of(net.apply(vec![close(Hash::ZERO)])),
        Reject::WeightsMismatch { .. }
    ));
    net.apply(vec![close(weights_digest(&weights))]).unwrap();
    assert_eq!(net.state.meta().epoch, Epoch(1));
    assert_eq!(net.state.epoch(Epoch(0)).unwrap().weights, Some(weights));
}

#[test]
fn same_blocks_give_the_same_root_everywhere() {
    let mut a = Net::with_challenge(Params::default(), None);
    for i in 0..5u64 {
        let payload = score_payload(10 + i);
        let (tx, sid) = a.submit((i % 3) as usize, &payload);
        a.apply(vec![tx]).unwrap();
        let (body, attests) = a.evaluate(&sid, &payload);
        let cert = a.certify(&sid, &body, &attests, &[0, 1, 2]);
        a.apply(vec![cert]).unwrap();
    }
    // A second validator, from the same genesis, replays the log.
    let mut b = State::genesis(&a.genesis).unwrap();
    let mut roots = Vec::new();
    for block in &a.log {
        roots.push(b.apply_block(block, &NoModules).unwrap().state_root);
    }
    assert_eq!(b.root(), a.state.root());
    assert_eq!(roots.last(), Some(&a.state.root()));
}

#[test]
fn snapshots_round_trip_and_refuse_anything_that_does_not_match() {
    let mut net = Net::with_challenge(Params::default(), None);
    let (tx, _) = net.submit(0, &score_payload(5));
    net.apply(vec![tx]).unwrap();
    let root = net.state.root();
    let snap = net.state.export_snapshot(b"certificate".to_vec());
    let bytes = snap.to_bytes();
    let accept = |_: &Hash, _: Height, _: &Hash, c: &[u8]| {
        if c == b"certificate" {
            Ok(())
        } else {
            Err("unknown certificate".to_string())
        }
    };
    let mut imported = Snapshot::import(&bytes, 1 << 24, accept).unwrap();
    assert_eq!(imported.root(), root);
    assert_eq!(imported.meta(), net.state.meta());

    // A changed value.
    let mut bad = snap.clone();
    bad.entries[3].1.push(0);
    assert!(matches!(
        Snapshot::import(&bad.to_bytes(), 1 << 24, accept),
        Err(SnapshotError::RootMismatch { .. })
    ));
    // Out of order.
    let mut bad = snap.clone();
    bad.entries.swap(1, 2);
    assert!(matches!(
        Snapshot::import(&bad.to_bytes(), 1 << 24, accept),
        Err(SnapshotError::Unordered)
    ));
    // A claimed height that is not the state's.
    let mut bad = snap.clone();
    bad.height = Height(99);
    assert!(matches!(
        Snapshot::import(&bad.to_bytes(), 1 << 24, accept),
        Err(SnapshotError::PositionMismatch { .. })
    ));
    // A certificate the consensus layer does not accept.
    let mut bad = snap.clone();
    bad.certificate = b"forged".to_vec();
    assert!(matches!(
        Snapshot::import(&bad.to_bytes(), 1 << 24, accept),
        Err(SnapshotError::Certificate { .. })
    ));
    // Trailing bytes and oversize input.
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        Snapshot::import(&trailing, 1 << 24, accept),
        Err(SnapshotError::Codec(_))
    ));
    assert!(matches!(
        Snapshot::import(&bytes, 16, accept),
        Err(SnapshotError::Codec(_))
    ));
}

/// A Byzantine validator gossips an anchor with a metagraph of its choosing: it is never
/// admitted, a proposer's builder leaves it out of an ordinary block, and a block that mixes it
/// with other transactions is refused as a whole.
#[test]
fn epoch_transactions_never_enter_a_mempool_or_an_ordinary_block() {
    let mut net = Net::with_challenge(Params::default(), None);
    let anchor = net.anchor();
    assert_eq!(
        net.state.admit(&anchor, &NoModules).unwrap_err(),
        Reject::EpochTransactionNotAdmitted {
            kind: "epoch_anchor"
        }
    );
    let (submit, _) = net.submit(1, &score_payload(100));
    let (block, outcomes) = net.state.build_block(
        &net.validators[0].key,
        platform_primitives::View(1),
        1_000,
        vec![anchor.clone(), submit.clone()],
        &NoModules,
    );
    assert_eq!(block.txs, vec![submit.clone()]);
    assert!(matches!(
        outcomes[0].1,
        Err(Reject::EpochTransactionNotAdmitted { .. })
    ));
    let root = net.state.root();
    assert_eq!(
        net.apply(vec![submit, anchor.clone()]).unwrap_err(),
        BlockError::MixedEpochBlock {
            index: 0,
            kind: "submit"
        }
    );
    assert_eq!(
        net.state.root(),
        root,
        "nothing of the refused block applied"
    );
    // On its own, in an epoch block, the anchor applies.
    net.apply(vec![anchor]).unwrap();
}

/// Anchors the next epoch and closes the current one with its computed weights.
fn close_epoch(net: &mut Net) {
    let anchor = net.anchor();
    net.apply(vec![anchor]).unwrap();
    let weights = net.state.compute_weights(&NoModules).unwrap();
    let epoch = net.state.meta().epoch;
    net.apply(vec![Tx::EpochClose(EpochClose {
        epoch,
        weights_digest: weights_digest(&weights),
    })])
    .unwrap();
}

/// Settled records leave the state at the close `retain_epochs` epochs after theirs; a miner's
/// best certified submission, pending submissions and recent epochs stay; a replica replaying
/// the blocks and a snapshot of the pruned state agree on the root.
#[test]
fn closes_prune_settled_records_past_the_retention_and_keep_the_best() {
    let mut net = Net::with_challenge(
        Params {
            retain_epochs: 1,
            ..Params::default()
        },
        None,
    );
    let certified = |net: &mut Net, score: u64| {
        let payload = score_payload(score);
        let (tx, sid) = net.submit(0, &payload);
        net.apply(vec![tx]).unwrap();
        let (body, attests) = net.evaluate(&sid, &payload);
        let cert = net.certify(&sid, &body, &attests, &[0, 1, 2, 3]);
        net.apply(vec![cert]).unwrap();
        sid
    };
    let best = certified(&mut net, 10);
    let worse = certified(&mut net, 5);
    let (tx, pending) = net.submit(1, &score_payload(7));
    net.apply(vec![tx]).unwrap();
    assert_eq!(net.state.credits(Epoch(0)).len(), 4);

    // The close of epoch 0 keeps everything: epoch 0 is within the retention.
    close_epoch(&mut net);
    assert!(net.state.submission(&worse).is_some());
    assert!(net.state.epoch(Epoch(0)).is_some());

    // The close of epoch 1 removes what epoch 0 settled, except the best.
    close_epoch(&mut net);
    assert_eq!(net.state.meta().epoch, Epoch(2));
    assert!(net.state.submission(&worse).is_none());
    assert!(net.state.submission(&best).is_some());
    assert!(net.state.submission(&pending).is_some());
    assert_eq!(
        net.state.scores(&id("score"))[&net.miners[0].hotkey()].submission,
        best
    );
    assert!(net.state.epoch(Epoch(0)).is_none());
    assert!(net.state.epoch(Epoch(1)).is_some() && net.state.epoch(Epoch(2)).is_some());
    assert!(net.state.credits(Epoch(0)).is_empty());
    // The worse record and its payload entry, epoch 0's record and its four credits.
    assert_eq!(net.state.meta().pruned, 7);
    // The pruned payload's index entry went with it; the best one's did not.
    let (again, _) = net.submit(0, &score_payload(5));
    net.state.admit(&again, &NoModules).unwrap();
    let (copy, _) = net.submit(0, &score_payload(10));
    assert_eq!(
        net.state.admit(&copy, &NoModules).unwrap_err(),
        Reject::DuplicatePayload { first: best }
    );

    let mut replica = State::genesis(&net.genesis).unwrap();
    for block in &net.log {
        replica.apply_block(block, &NoModules).unwrap();
    }
    assert_eq!(replica.root(), net.state.root());
    let snap = net.state.export_snapshot(b"c".to_vec()).to_bytes();
    let mut imported =
        Snapshot::import(&snap, 1 << 24, |_: &Hash, _: Height, _: &Hash, _: &[u8]| {
            Ok(())
        })
        .unwrap();
    assert_eq!(imported.root(), net.state.root());
}

/// The owner's `Sudo` and a miner's submission signed for another network with the same netuid
/// (another genesis: testnet and mainnet deployments) are refused as badly signed, in
/// admission and in blocks alike; the same ones signed for this network are taken.
#[test]
fn transactions_signed_for_another_genesis_are_refused() {
    let mut net = Net::with_challenge(Params::default(), None);
    let elsewhere = Hash::of(b"another deployment of subnet 1");
    assert_ne!(elsewhere, net.state.meta().network_id);
    let action = SudoAction::SetParams(Params::default());
    let replayed = sudo_by(&net.owner, &elsewhere, 50, action.clone());
    let admitted = net.state.admit(&replayed, &NoModules).unwrap_err();
    assert!(
        matches!(admitted, Reject::BadSignature { .. }),
        "{admitted:?}"
    );
    assert_eq!(reject_of(net.apply(vec![replayed])), admitted);

    let (tx, _) = net.submit(0, &score_payload(5));
    let Tx::Submit(mut s) = tx else {
        unreachable!()
    };
    s.signature = Some(net.miners[0].sign(
        platform_crypto::Domain::Submission,
        &SubmitTx::signing_bytes(NETUID, &elsewhere, &s.submission),
    ));
    let foreign = Tx::Submit(s);
    let admitted = net.state.admit(&foreign, &NoModules).unwrap_err();
    assert!(
        matches!(admitted, Reject::BadSignature { .. }),
        "{admitted:?}"
    );
    assert_eq!(reject_of(net.apply(vec![foreign])), admitted);

    // Signed for this network, both are taken.
    let genesis = net.state.meta().network_id;
    net.apply(vec![sudo_by(&net.owner, &genesis, 50, action)])
        .unwrap();
    let (ok, _) = net.submit(0, &score_payload(6));
    net.apply(vec![ok]).unwrap();
}

/// A challenge with assets is activated only once validators holding more than 2/3 of the
/// stake confirmed they hold them; each validator confirms once per version, with its bound
/// BLS key; a new version starts over.
#[test]
fn a_challenge_with_assets_waits_for_a_quorum_holding_them() {
    let mut net = Net::new(Params::default());
    let mut meta = net.meta("data", None);
    meta.assets = vec![Asset {
        url: String::new(),
        blake3: Hash::of(b"the data set"),
        max_bytes: 1 << 20,
    }];
    let publish = net.sudo(SudoAction::Publish(meta.clone()));
    net.apply(vec![publish]).unwrap();
    let activate = |net: &mut Net| {
        net.sudo(SudoAction::Transition {
            challenge: id("data"),
            to: Lifecycle::Active,
        })
    };
    let ready = |net: &Net, i: usize, version: u32| {
        let v = &net.validators[i];
        Tx::AssetsReady(AssetsReady {
            challenge: id("data"),
            version,
            validator: v.key.hotkey(),
            signature: v
                .bls
                .sign(&AssetsReady::message(NETUID, &id("data"), version)),
        })
    };
    // Stakes 5,000, 4,000, 3,000 and 2,000 of 14,000.
    let tx = activate(&mut net);
    assert_eq!(
        reject_of(net.apply(vec![tx])),
        Reject::AssetsUnavailable {
            challenge: id("data"),
            ready_stake: 0,
            total_stake: 14_000,
        }
    );
    net.sudo_nonce -= 1;
    net.apply(vec![ready(&net, 0, 1), ready(&net, 1, 1)])
        .unwrap();
    assert_eq!(net.state.assets_ready(&id("data")).len(), 2);
    // 9,000 is not more than 2/3 of 14,000.
    let tx = activate(&mut net);
    assert!(matches!(
        reject_of(net.apply(vec![tx])),
        Reject::AssetsUnavailable {
            ready_stake: 9_000,
            ..
        }
    ));
    net.sudo_nonce -= 1;
    // Once per validator and version; the current version only; signed by the validator.
    assert_eq!(
        reject_of(net.apply(vec![ready(&net, 0, 1)])),
        Reject::AssetsAlreadyConfirmed {
            challenge: id("data"),
            validator: net.validators[0].key.hotkey(),
        }
    );
    assert_eq!(
        reject_of(net.apply(vec![ready(&net, 2, 2)])),
        Reject::NoAssetsToConfirm {
            challenge: id("data"),
            version: 2,
        }
    );
    let mut forged = ready(&net, 2, 1);
    if let Tx::AssetsReady(a) = &mut forged {
        a.signature = net.validators[3]
            .bls
            .sign(&AssetsReady::message(NETUID, &id("data"), 1));
    }
    assert_eq!(reject_of(net.apply(vec![forged])), Reject::BadBlsSignature);
    let outsider = Keypair::from_seed(&[42; 32]);
    let mut outside = ready(&net, 2, 1);
    if let Tx::AssetsReady(a) = &mut outside {
        a.validator = outsider.hotkey();
    }
    assert_eq!(
        reject_of(net.apply(vec![outside])),
        Reject::NotValidator {
            hotkey: outsider.hotkey()
        }
    );
    // The third confirmation makes 12,000: activated.
    net.apply(vec![ready(&net, 2, 1)]).unwrap();
    let tx = activate(&mut net);
    net.apply(vec![tx]).unwrap();
    assert_eq!(
        net.state.challenge(&id("data")).unwrap().status,
        Lifecycle::Active
    );
    // A new version's assets are confirmed afresh.
    meta.version = 2;
    let publish = net.sudo(SudoAction::Publish(meta));
    net.apply(vec![publish]).unwrap();
    assert!(net.state.assets_ready(&id("data")).is_empty());
    net.apply(vec![ready(&net, 3, 2)]).unwrap();
    assert_eq!(
        net.state.assets_ready(&id("data")),
        vec![net.validators[3].key.hotkey()]
    );
    // A challenge without assets is activated as before and takes no confirmation.
    let plain = net.meta("plain", None);
    let mut plain_meta = plain;
    plain_meta.emission_bps = 0;
    let publish = net.sudo(SudoAction::Publish(plain_meta));
    net.apply(vec![publish]).unwrap();
    let tx = net.sudo(SudoAction::Transition {
        challenge: id("plain"),
        to: Lifecycle::Active,
    });
    net.apply(vec![tx]).unwrap();
}
