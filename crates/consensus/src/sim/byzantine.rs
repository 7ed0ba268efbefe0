//! Byzantine actors. Each runs a real engine (so it takes part in the protocol) and distorts what
//! it sends, signing with its own key outside the safety rules where the attack needs it.

use std::str::FromStr;

use platform_primitives::{Hash, View};

use super::rng::Rng;
use crate::scheme::Scheme;
use crate::types::{
    Certificate, Message, Subject, ValidatorIndex, Vote, VoteKind, signing_message,
};

/// How a Byzantine validator misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behavior {
    /// Sends conflicting proposals and votes to different halves of the network.
    Equivocate,
    /// Sends nothing at all.
    Withhold,
    /// Proposes invalid blocks and votes for any block without checking it.
    Invalid,
    /// Sends votes and certificates with bad signatures, also in other validators' names.
    Forge,
    /// Re-sends old messages it has seen.
    Replay,
    /// Floods validly signed nullify votes for the current and future views.
    NullifySpam,
}

impl Behavior {
    /// Every behavior.
    pub const ALL: [Behavior; 6] = [
        Behavior::Equivocate,
        Behavior::Withhold,
        Behavior::Invalid,
        Behavior::Forge,
        Behavior::Replay,
        Behavior::NullifySpam,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Behavior::Equivocate => "equivocate",
            Behavior::Withhold => "withhold",
            Behavior::Invalid => "invalid",
            Behavior::Forge => "forge",
            Behavior::Replay => "replay",
            Behavior::NullifySpam => "nullify-spam",
        }
    }
}

impl FromStr for Behavior {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Behavior::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Behavior::ALL.iter().map(|b| b.name()).collect();
                format!(
                    "unknown Byzantine behavior '{s}'; choose one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Where a distorted message goes.
pub enum Target {
    /// Every other actor.
    All,
    /// Actors whose index is even (true) or odd (false): two halves of the network.
    Half(bool),
}

/// What a Byzantine actor knows and holds when it distorts a message.
pub struct Attacker<'a, S: Scheme> {
    /// How it misbehaves.
    pub behavior: Behavior,
    /// Its own key.
    pub scheme: &'a S,
    /// The subnet.
    pub netuid: platform_primitives::NetUid,
    /// Its validator index.
    pub me: ValidatorIndex,
    /// Validators in the set.
    pub n: usize,
    /// Makes a signature that will not verify.
    pub forged: &'a dyn Fn([u8; 32]) -> S::Signature,
    /// Messages it received earlier (for replay).
    pub history: &'a [Message<S::Signature>],
}

impl<S: Scheme> Attacker<'_, S> {
    fn vote(&self, kind: VoteKind, subject: Subject) -> Vote<S::Signature> {
        Vote {
            kind,
            subject,
            signer: self.me,
            signature: self
                .scheme
                .sign(&signing_message(self.netuid, kind, &subject)),
        }
    }

    /// The messages sent instead of (or besides) one honest broadcast.
    pub fn distort(
        &self,
        message: Message<S::Signature>,
        rng: &mut Rng,
    ) -> Vec<(Target, Message<S::Signature>)> {
        let forged = self.forged;
        match self.behavior {
            Behavior::Withhold => Vec::new(),
            Behavior::Invalid => vec![(Target::All, message)],
            Behavior::Equivocate => match &message {
                // Half the network gets the honest vote, the other half a conflicting one; as
                // gossip relays every message, each half later sees the other's vote too
                // (the delays are drawn per send, so the order varies).
                Message::Vote(v) if v.kind != VoteKind::Nullify => {
                    let Subject::Proposal(mut p) = v.subject else {
                        return vec![(Target::All, message)];
                    };
                    p.payload = Hash(rng.bytes32());
                    let twin = Message::Vote(self.vote(v.kind, Subject::Proposal(p)));
                    vec![
                        (Target::Half(true), message.clone()),
                        (Target::Half(false), twin.clone()),
                        (Target::Half(false), message),
                        (Target::Half(true), twin),
                    ]
                }
                _ => vec![(Target::All, message)],
            },
            Behavior::Forge => {
                let mut out = vec![(Target::All, message.clone())];
                if let Message::Vote(v) = &message {
                    // The same vote with a broken signature, and one in another validator's name.
                    out.push((
                        Target::All,
                        Message::Vote(Vote {
                            signature: forged(rng.bytes32()),
                            ..v.clone()
                        }),
                    ));
                    let victim = rng.below(self.n as u64) as ValidatorIndex;
                    out.push((
                        Target::All,
                        Message::Vote(Vote {
                            signer: victim,
                            signature: forged(rng.bytes32()),
                            ..v.clone()
                        }),
                    ));
                    // A certificate claiming everyone signed.
                    let mut signers = platform_crypto::bls::SignerBitmap::new(self.n);
                    (0..self.n).for_each(|i| signers.set(i));
                    let cert = Certificate {
                        kind: v.kind,
                        subject: v.subject,
                        signers,
                        signature: forged(rng.bytes32()),
                    };
                    out.push((Target::All, Message::Certificate(cert)));
                }
                out
            }
            Behavior::Replay => {
                let mut out = vec![(Target::All, message)];
                for _ in 0..3.min(self.history.len()) {
                    let old = self.history[rng.below(self.history.len() as u64) as usize].clone();
                    out.push((Target::All, old));
                }
                out
            }
            Behavior::NullifySpam => {
                let mut out = vec![(Target::All, message.clone())];
                let epoch = match &message {
                    Message::Vote(v) => match v.subject {
                        Subject::Proposal(p) => p.epoch,
                        Subject::View(e, _) => e,
                    },
                    _ => return out,
                };
                let view = message.view().expect("votes have views");
                for ahead in 0..4 {
                    let vote = self.vote(
                        VoteKind::Nullify,
                        Subject::View(epoch, View(view.0 + ahead)),
                    );
                    out.push((Target::All, Message::Vote(vote)));
                }
                out
            }
        }
    }
}

/// Remembers messages a replayer has received (bounded).
pub fn remember<Sig: Clone>(
    history: &mut Vec<Message<Sig>>,
    message: &Message<Sig>,
    rng: &mut Rng,
) {
    const CAP: usize = 256;
    if history.len() < CAP {
        history.push(message.clone());
    } else {
        let i = rng.below(CAP as u64) as usize;
        history[i] = message.clone();
    }
}
