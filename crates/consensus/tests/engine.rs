//! The engine driven by hand: persistence before release, restart after a crash between
//! persisting and sending, evidence and penalties.

use platform_consensus::sim::keys::{MacKeys, SimKeys};
use platform_consensus::{
    Certificate, Config, Effect, Engine, Input, MacScheme, Message, Offence, Proposal, SafetyState,
    Subject, Validators, Vote, VoteKind,
};
use platform_crypto::bls::SignerBitmap;
use platform_primitives::{Epoch, Hash, Height, NetUid, View};

const N: usize = 4;

fn config(me: u16) -> Config {
    Config {
        netuid: NetUid(1),
        epoch: Epoch(1),
        validators: Validators::new(vec![1; N]),
        beacon: [7; 32],
        anchor: Hash([1; 32]),
        anchor_height: Height(0),
        anchor_view: View(0),
        me: Some(me),
        timeout_ms: 1_000,
        max_backoff_exp: 4,
        future_views: 100,
        collectors: 0,
    }
}

fn keys() -> MacKeys {
    MacKeys::new(9, N)
}

fn engine(me: u16) -> Engine<MacScheme> {
    Engine::new(config(me), keys().scheme(Some(me)))
}

fn start(
    e: &mut Engine<MacScheme>,
    safety: SafetyState,
) -> Vec<Effect<platform_consensus::scheme::Mac>> {
    e.handle(Input::Start {
        safety,
        certificates: Vec::new(),
    })
}

/// A vote of `kind` on `subject`, signed by `signer`.
fn vote(kind: VoteKind, subject: Subject, signer: u16) -> Vote<platform_consensus::scheme::Mac> {
    let message = platform_consensus::types::signing_message(NetUid(1), kind, &subject);
    Vote {
        kind,
        subject,
        signer,
        signature: platform_consensus::Scheme::sign(&keys().scheme(Some(signer)), &message),
    }
}

/// A notarize vote for `p`, signed by `signer`.
fn notarize(p: Proposal, signer: u16) -> Vote<platform_consensus::scheme::Mac> {
    vote(VoteKind::Notarize, Subject::Proposal(p), signer)
}

/// A validator that is not the leader of view 1, and the leader's proposal for view 1.
fn follower_and_proposal() -> (u16, Proposal, Vote<platform_consensus::scheme::Mac>) {
    let probe = engine(0);
    let leader = probe.leader(View(1));
    let me = (leader + 1) % N as u16;
    let p = Proposal {
        epoch: Epoch(1),
        view: View(1),
        height: Height(1),
        parent: Hash([1; 32]),
        payload: Hash([5; 32]),
    };
    (me, p, notarize(p, leader))
}

fn broadcast_votes<S: Clone>(effects: &[Effect<S>]) -> Vec<Vote<S>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Vote(v)) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_vote_leaves_only_after_it_is_persisted() {
    let (me, p, proposal) = follower_and_proposal();
    let mut e = engine(me);
    start(&mut e, SafetyState::default());
    let effects = e.handle(Input::Message {
        from: proposal.signer,
        message: Message::Vote(proposal.clone()),
    });
    assert!(
        effects
            .iter()
            .any(|x| matches!(x, Effect::Verify(q) if *q == p))
    );
    let effects = e.handle(Input::Verified {
        digest: p.digest(),
        valid: true,
    });
    assert!(
        broadcast_votes(&effects).is_empty(),
        "nothing is sent before the WAL write"
    );
    let Some(Effect::Persist { state, token }) = effects
        .into_iter()
        .find(|x| matches!(x, Effect::Persist { .. }))
    else {
        panic!("a persist effect")
    };
    assert_eq!(state.notarized, Some(p));
    let released = broadcast_votes(&e.handle(Input::Persisted(token)));
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].subject, Subject::Proposal(p));
}

#[test]
fn crash_after_persist_before_send_resends_the_same_vote_never_another() {
    let (me, p, proposal) = follower_and_proposal();
    let mut e = engine(me);
    start(&mut e, SafetyState::default());
    e.handle(Input::Message {
        from: proposal.signer,
        message: Message::Vote(proposal.clone()),
    });
    let effects = e.handle(Input::Verified {
        digest: p.digest(),
        valid: true,
    });
    let Some(Effect::Persist { state, .. }) = effects
        .into_iter()
        .find(|x| matches!(x, Effect::Persist { .. }))
    else {
        panic!("a persist effect")
    };
    // Crash here: the WAL holds `state`, the vote never left. What would have been sent:
    let mut reference = engine(me);
    let token = notarize_unpersisted(&mut reference, p, &proposal);
    let would_have_sent = broadcast_votes(&reference.handle(Input::Persisted(token)));

    let mut restarted = engine(me);
    let resent = broadcast_votes(&start(&mut restarted, state));
    assert_eq!(
        resent, would_have_sent,
        "after restart the same vote is sent, byte for byte"
    );

    // The restarted validator refuses to notarize a different proposal in that view.
    let mut other = p;
    other.payload = Hash([6; 32]);
    let conflicting = notarize(other, proposal.signer);
    let mut effects = restarted.handle(Input::Message {
        from: proposal.signer,
        message: Message::Vote(conflicting),
    });
    // Even if the application were asked and approved it, nothing conflicting is signed.
    effects.extend(restarted.handle(Input::Verified {
        digest: other.digest(),
        valid: true,
    }));
    assert!(
        !effects
            .iter()
            .any(|x| matches!(x, Effect::Verify(_) | Effect::Persist { .. }))
    );
}

#[test]
fn equivocation_becomes_evidence() {
    let (me, p, proposal) = follower_and_proposal();
    let mut e = engine(me);
    start(&mut e, SafetyState::default());
    e.handle(Input::Message {
        from: proposal.signer,
        message: Message::Vote(proposal.clone()),
    });
    let mut other = p;
    other.payload = Hash([9; 32]);
    let second = notarize(other, proposal.signer);
    let effects = e.handle(Input::Message {
        from: proposal.signer,
        message: Message::Vote(second.clone()),
    });
    assert!(effects.iter().any(
        |x| matches!(x, Effect::Evidence { first, second: s } if *first == proposal && *s == second)
    ));
    assert!(effects.iter().any(|x| matches!(
        x,
        Effect::Penalize {
            offence: Offence::Equivocation,
            ..
        }
    )));
}

#[test]
fn forged_certificates_and_strangers_are_penalized() {
    let mut e = engine(0);
    start(&mut e, SafetyState::default());
    let mut signers = SignerBitmap::new(N);
    (0..N).for_each(|i| signers.set(i));
    let forged = Certificate {
        kind: VoteKind::Nullify,
        subject: Subject::View(Epoch(1), View(1)),
        signers,
        signature: platform_consensus::scheme::Mac([3; 32]),
    };
    let effects = e.handle(Input::Message {
        from: 2,
        message: Message::Certificate(forged),
    });
    assert!(effects.iter().any(|x| matches!(
        x,
        Effect::Penalize {
            peer: 2,
            offence: Offence::InvalidCertificate
        }
    )));
    assert_eq!(e.view(), View(1), "a forged nullification moves nobody");

    // Too few signers, even with valid signatures.
    let mut two = SignerBitmap::new(N);
    two.set(1);
    two.set(2);
    let msg = platform_consensus::types::signing_message(
        NetUid(1),
        VoteKind::Nullify,
        &Subject::View(Epoch(1), View(1)),
    );
    let sigs: Vec<_> = [1u16, 2]
        .iter()
        .map(|&i| platform_consensus::Scheme::sign(&keys().scheme(Some(i)), &msg))
        .collect();
    let agg = platform_consensus::Scheme::aggregate(
        &keys().scheme(None),
        &sigs.iter().collect::<Vec<_>>(),
    )
    .unwrap();
    let weak = Certificate {
        kind: VoteKind::Nullify,
        subject: Subject::View(Epoch(1), View(1)),
        signers: two,
        signature: agg,
    };
    let effects = e.handle(Input::Message {
        from: 3,
        message: Message::Certificate(weak),
    });
    assert!(effects.iter().any(|x| matches!(
        x,
        Effect::Penalize {
            peer: 3,
            offence: Offence::InvalidCertificate
        }
    )));

    // A vote from an index outside the set.
    let stranger = Vote {
        kind: VoteKind::Nullify,
        subject: Subject::View(Epoch(1), View(1)),
        signer: 40,
        signature: platform_consensus::scheme::Mac([0; 32]),
    };
    let effects = e.handle(Input::Message {
        from: 1,
        message: Message::Vote(stranger),
    });
    assert!(effects.iter().any(|x| matches!(
        x,
        Effect::Penalize {
            peer: 1,
            offence: Offence::NotAValidator
        }
    )));
}

#[test]
fn votes_of_another_epoch_are_ignored() {
    let (me, mut p, _) = follower_and_proposal();
    let mut e = engine(me);
    start(&mut e, SafetyState::default());
    p.epoch = Epoch(2);
    let leader = e.leader(View(1));
    let effects = e.handle(Input::Message {
        from: leader,
        message: Message::Vote(notarize(p, leader)),
    });
    assert!(effects.is_empty(), "{effects:?}");
}

/// A nullify vote for `view`, signed by `signer`.
fn nullify(view: u64, signer: u16) -> Vote<platform_consensus::scheme::Mac> {
    vote(
        VoteKind::Nullify,
        Subject::View(Epoch(1), View(view)),
        signer,
    )
}

#[test]
fn a_quorum_completed_by_our_own_vote_forms_when_the_others_voted_first() {
    // Two peers nullify view 1 before our timer fires: not a quorum yet (2 of 4), so their
    // votes wait unverified. Our own nullify completes the quorum; the peers will not send
    // theirs again, so it must form now.
    let mut e = engine(0);
    start(&mut e, SafetyState::default());
    for signer in [1, 2] {
        let effects = e.handle(Input::Message {
            from: signer,
            message: Message::Vote(nullify(1, signer)),
        });
        assert!(!effects.iter().any(|x| matches!(x, Effect::EnteredView(_))));
    }
    let effects = e.handle(Input::Timeout(View(1)));
    assert!(
        broadcast_votes(&effects).is_empty(),
        "a first nullify vote leaves only once persisted"
    );
    let Some(Effect::Persist { token, .. }) = effects
        .into_iter()
        .find(|x| matches!(x, Effect::Persist { .. }))
    else {
        panic!("a persist effect")
    };
    let effects = e.handle(Input::Persisted(token));
    assert!(
        effects
            .iter()
            .any(|x| matches!(x, Effect::Certified(c) if c.kind == VoteKind::Nullify)),
        "{effects:?}"
    );
    assert_eq!(e.view(), View(2));
    // Every peer saw the same votes: the nullification is journaled, not broadcast.
    assert!(
        !effects
            .iter()
            .any(|x| matches!(x, Effect::Broadcast(Message::Certificate(_)))),
        "{effects:?}"
    );
    // It goes out with the next timeout, for peers that missed votes.
    let effects = e.handle(Input::Timeout(View(2)));
    assert!(
        effects.iter().any(|x| matches!(x,
            Effect::Broadcast(Message::Certificate(c)) if c.kind == VoteKind::Nullify)),
        "{effects:?}"
    );
}

/// A validator hundreds of views behind the others (cut off, then healed) sees a vote of a view
/// far beyond what it keeps: it still asks the sender for its own view's certificate, and the
/// answer — a finalization of that far view — moves it straight there, so it votes again in
/// the same epoch.
#[test]
fn a_validator_far_behind_asks_once_and_jumps_to_a_finalization() {
    let mut e = engine(0);
    start(&mut e, SafetyState::default());
    assert_eq!(e.view(), View(1));
    let far = View(1 + 5 * config(0).future_views);
    let p = Proposal {
        epoch: Epoch(1),
        view: far,
        height: Height(40),
        parent: Hash([2; 32]),
        payload: Hash([6; 32]),
    };
    let effects = e.handle(Input::Message {
        from: 2,
        message: Message::Vote(notarize(p, 2)),
    });
    assert!(
        effects.iter().any(|x| matches!(
            x,
            Effect::Send {
                to: 2,
                message: Message::FetchView(v)
            } if *v == View(1)
        )),
        "no FetchView for our view: {effects:?}"
    );
    // The peer answers with its latest finalization.
    let subject = Subject::Proposal(p);
    let msg = platform_consensus::types::signing_message(NetUid(1), VoteKind::Finalize, &subject);
    let sigs: Vec<_> = [1u16, 2, 3]
        .iter()
        .map(|&i| platform_consensus::Scheme::sign(&keys().scheme(Some(i)), &msg))
        .collect();
    let mut signers = SignerBitmap::new(N);
    [1, 2, 3].into_iter().for_each(|i| signers.set(i));
    let finalization = Certificate {
        kind: VoteKind::Finalize,
        subject,
        signers,
        signature: platform_consensus::Scheme::aggregate(
            &keys().scheme(None),
            &sigs.iter().collect::<Vec<_>>(),
        )
        .unwrap(),
    };
    e.handle(Input::Message {
        from: 2,
        message: Message::Certificate(finalization),
    });
    assert_eq!(e.view(), View(far.0 + 1), "it joined the others' view");
}

/// A signer's nullify and finalize votes in one view (which the safety rules never both sign)
/// are proof of equivocation, whichever comes first; the engine hands both to the node.
#[test]
fn a_nullify_and_a_finalize_in_one_view_are_evidence() {
    let (me, p, _) = follower_and_proposal();
    let signer = (me + 1) % N as u16;
    for nullify_first in [true, false] {
        let mut e = engine(me);
        start(&mut e, SafetyState::default());
        let nullify = vote(VoteKind::Nullify, Subject::View(Epoch(1), View(1)), signer);
        let finalize = vote(VoteKind::Finalize, Subject::Proposal(p), signer);
        let (first, second) = if nullify_first {
            (nullify, finalize)
        } else {
            (finalize, nullify)
        };
        e.handle(Input::Message {
            from: signer,
            message: Message::Vote(first.clone()),
        });
        let effects = e.handle(Input::Message {
            from: signer,
            message: Message::Vote(second.clone()),
        });
        assert!(
            effects.iter().any(|x| matches!(
                x,
                Effect::Evidence { first: a, second: b } if *a == first && *b == second
            )),
            "no evidence ({nullify_first}): {effects:?}"
        );
        assert!(effects.iter().any(|x| matches!(
            x,
            Effect::Penalize {
                offence: Offence::Equivocation,
                ..
            }
        )));
    }
}

/// `Resend` (a validator reconnected) repeats the durable votes of the current view, and only
/// those: a vote still waiting for its WAL write stays back, nothing new is signed or
/// persisted, and no timer is set.
#[test]
fn a_resend_repeats_only_durable_votes_and_signs_nothing_new() {
    let (me, p, proposal) = follower_and_proposal();
    let mut e = engine(me);
    let token = notarize_unpersisted(&mut e, p, &proposal);
    // The notarize vote is not durable yet: a resend holds it back.
    let early = e.handle(Input::Resend);
    assert!(broadcast_votes(&early).is_empty(), "{early:?}");
    e.handle(Input::Persisted(token));
    let effects = e.handle(Input::Resend);
    let votes = broadcast_votes(&effects);
    assert_eq!(votes.len(), 1, "{effects:?}");
    assert_eq!(
        (votes[0].kind, votes[0].subject),
        (VoteKind::Notarize, Subject::Proposal(p))
    );
    assert!(
        !effects
            .iter()
            .any(|x| matches!(x, Effect::Persist { .. } | Effect::Timeout { .. })),
        "{effects:?}"
    );
    assert_eq!(e.view(), View(1));
}

/// Starts `e`, hands it the leader's `proposal` of `p` and approves it: the engine signs its
/// notarize vote and asks for it to be persisted. Returns the persist token.
fn notarize_unpersisted(
    e: &mut Engine<MacScheme>,
    p: Proposal,
    proposal: &Vote<platform_consensus::scheme::Mac>,
) -> u64 {
    start(e, SafetyState::default());
    e.handle(Input::Message {
        from: proposal.signer,
        message: Message::Vote(proposal.clone()),
    });
    e.handle(Input::Verified {
        digest: p.digest(),
        valid: true,
    })
    .into_iter()
    .find_map(|x| match x {
        Effect::Persist { token, .. } => Some(token),
        _ => None,
    })
    .expect("the notarize vote is persisted")
}

/// Drives `e` (validator `me`) through `p`'s notarization in view 1 (the leader's vote, its
/// own, one more) and returns the effects of releasing its finalize vote.
fn notarize_and_release_finalize(
    e: &mut Engine<MacScheme>,
    me: u16,
    p: Proposal,
    proposal: &Vote<platform_consensus::scheme::Mac>,
) -> Vec<Effect<platform_consensus::scheme::Mac>> {
    let persisted = |effects: Vec<Effect<platform_consensus::scheme::Mac>>| {
        effects.into_iter().find_map(|x| match x {
            Effect::Persist { token, .. } => Some(token),
            _ => None,
        })
    };
    let token = notarize_unpersisted(e, p, proposal);
    e.handle(Input::Persisted(token));
    let third = (0..N as u16)
        .find(|v| *v != me && *v != proposal.signer)
        .unwrap();
    let token = persisted(e.handle(Input::Message {
        from: third,
        message: Message::Vote(notarize(p, third)),
    }))
    .expect("the notarization makes it sign a finalize vote");
    e.handle(Input::Persisted(token))
}

/// With collectors, a finalize vote goes to each of its view's collectors (point-to-point),
/// never to everyone; a collector that completes the finalization broadcasts it, since the
/// others never saw the votes. Without collectors, the vote is broadcast as before.
#[test]
fn finalize_votes_go_to_the_collectors_who_broadcast_the_finalization() {
    let (me, p, proposal) = follower_and_proposal();
    let mut cfg = config(me);
    cfg.collectors = 2;
    let mut e = Engine::new(cfg, keys().scheme(Some(me)));
    let collectors = e.collectors(View(1));
    assert_eq!(collectors.len(), 2);
    assert!(collectors.iter().all(|c| usize::from(*c) < N));
    assert_ne!(collectors[0], collectors[1]);

    let released = notarize_and_release_finalize(&mut e, me, p, &proposal);
    assert!(broadcast_votes(&released).is_empty(), "{released:?}");
    let mut sent_to: Vec<u16> = released
        .iter()
        .filter_map(|x| match x {
            Effect::Send {
                to,
                message: Message::Vote(v),
            } if v.kind == VoteKind::Finalize => Some(*to),
            _ => None,
        })
        .collect();
    sent_to.sort();
    let mut expected: Vec<u16> = collectors.iter().copied().filter(|c| *c != me).collect();
    expected.sort();
    assert_eq!(sent_to, expected);

    // Each collector, fed the finalize votes of a quorum, broadcasts the finalization; a
    // validator that is not a collector forms it without broadcasting it.
    for v in 0..N as u16 {
        let mut cfg = config(v);
        cfg.collectors = 2;
        let mut node = Engine::new(cfg, keys().scheme(Some(v)));
        start(&mut node, SafetyState::default());
        let mut effects = Vec::new();
        for signer in (0..N as u16).filter(|s| *s != v).take(3) {
            effects.extend(node.handle(Input::Message {
                from: signer,
                message: Message::Vote(vote(VoteKind::Finalize, Subject::Proposal(p), signer)),
            }));
        }
        let broadcast = effects.iter().any(|x| {
            matches!(x, Effect::Broadcast(Message::Certificate(c)) if c.kind == VoteKind::Finalize)
        });
        let formed = effects
            .iter()
            .any(|x| matches!(x, Effect::Certified(c) if c.kind == VoteKind::Finalize));
        assert!(formed, "validator {v} formed the finalization: {effects:?}");
        assert_eq!(broadcast, collectors.contains(&v), "validator {v}");
    }

    // Without collectors the same finalize vote is broadcast.
    let mut plain = engine(me);
    let released = notarize_and_release_finalize(&mut plain, me, p, &proposal);
    let votes = broadcast_votes(&released);
    assert_eq!(votes.len(), 1, "{released:?}");
    assert_eq!(votes[0].kind, VoteKind::Finalize);
}
