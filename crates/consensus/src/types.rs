//! Proposals, votes, certificates and the messages that carry them.

use borsh::{BorshDeserialize, BorshSerialize};
use platform_crypto::bls::SignerBitmap;
use platform_primitives::{Epoch, Hash, Height, NetUid, View, encode};

/// A validator's position in the epoch's ordered validator set.
pub type ValidatorIndex = u16;

/// A block proposal as consensus sees it: its place in the chain and a digest of the block's
/// contents, which the application owns.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// The epoch whose validator set votes on it (so votes never replay across epochs).
    pub epoch: Epoch,
    /// The view it was proposed in.
    pub view: View,
    /// Its height: the parent's height plus one.
    pub height: Height,
    /// Digest of the parent proposal (or of the epoch's starting block).
    pub parent: Hash,
    /// Digest of the block contents.
    pub payload: Hash,
}

/// The payload of a *seal*: a block with no contents that extends a terminal block (one the
/// application lets nothing follow in this epoch, such as an epoch's close) or another seal.
/// Seals exist only so that a terminal block can still be finalized after its own finalize
/// votes were lost or refused: finalizing a seal finalizes its ancestors, as any block does.
/// The application never applies or stores a seal; see the crate documentation.
pub const SEAL: Hash = Hash::ZERO;

impl Proposal {
    /// blake3 of the Borsh encoding: the proposal's identity.
    pub fn digest(&self) -> Hash {
        Hash::of(&encode(self))
    }

    /// Whether this is a seal ([`SEAL`]).
    pub fn is_seal(&self) -> bool {
        self.payload == SEAL
    }
}

/// Whether `seals` lead from `terminal` to `head`: a non-empty chain of seals, each extending
/// the one before in the same epoch, the first extending `terminal`, the last being `head`. A
/// finalization of `head` then proves `terminal` final.
pub fn seals_link(terminal: &Proposal, seals: &[Proposal], head: &Proposal) -> bool {
    let mut parent = *terminal;
    for seal in seals {
        if !seal.is_seal()
            || seal.parent != parent.digest()
            || seal.epoch != parent.epoch
            || seal.height.0 != parent.height.0 + 1
            || seal.view <= parent.view
        {
            return false;
        }
        parent = *seal;
    }
    !seals.is_empty() && parent == *head
}

/// The three kinds of vote.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum VoteKind {
    /// "This proposal is valid and extends a certified chain."
    Notarize,
    /// "This view made no progress in time."
    Nullify,
    /// "I saw this proposal notarized and did not nullify its view."
    Finalize,
}

impl VoteKind {
    fn tag(self) -> &'static str {
        match self {
            VoteKind::Notarize => "notarize",
            VoteKind::Nullify => "nullify",
            VoteKind::Finalize => "finalize",
        }
    }
}

/// What a vote is about: a proposal (notarize, finalize) or a view (nullify).
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Subject {
    /// A notarize or finalize vote names the proposal.
    Proposal(Proposal),
    /// A nullify vote names the epoch and view.
    View(Epoch, View),
}

impl Subject {
    /// The view the subject belongs to.
    pub fn view(&self) -> View {
        match self {
            Subject::Proposal(p) => p.view,
            Subject::View(_, v) => *v,
        }
    }

    /// The epoch the subject belongs to.
    pub fn epoch(&self) -> Epoch {
        match self {
            Subject::Proposal(p) => p.epoch,
            Subject::View(e, _) => *e,
        }
    }

    /// The bytes that identify the subject inside a signed message.
    fn body(&self) -> Vec<u8> {
        match self {
            Subject::Proposal(p) => p.digest().0.to_vec(),
            Subject::View(e, v) => encode(&(e, v)),
        }
    }

    /// The proposal digest, for proposal subjects.
    pub fn digest(&self) -> Option<Hash> {
        match self {
            Subject::Proposal(p) => Some(p.digest()),
            Subject::View(..) => None,
        }
    }
}

/// The exact bytes a validator signs for a vote: a domain tag per netuid and vote kind, then the
/// subject. A signature for one kind or subnet never verifies as another.
pub fn signing_message(netuid: NetUid, kind: VoteKind, subject: &Subject) -> Vec<u8> {
    let mut m = format!("platform/{}/{}\0", netuid.0, kind.tag()).into_bytes();
    m.extend_from_slice(&subject.body());
    m
}

/// One validator's signed vote.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Vote<S> {
    /// Notarize, nullify or finalize.
    pub kind: VoteKind,
    /// What is voted on.
    pub subject: Subject,
    /// Who signed.
    pub signer: ValidatorIndex,
    /// The signature over [`signing_message`].
    pub signature: S,
}

/// A quorum's signatures: who signed and one aggregate signature.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Certificate<S> {
    /// The kind of vote aggregated.
    pub kind: VoteKind,
    /// The subject all signers voted on.
    pub subject: Subject,
    /// Signers, by validator index.
    pub signers: SignerBitmap,
    /// The aggregate signature.
    pub signature: S,
}

/// Everything validators send each other.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Message<S> {
    /// A vote. The leader's notarize vote is also its proposal.
    Vote(Vote<S>),
    /// A certificate formed from a quorum of votes.
    Certificate(Certificate<S>),
    /// A request for the notarization or finalization of a proposal this node lacks.
    Fetch(Hash),
    /// A request for the certificates of a view this node skipped (it jumped ahead on a later
    /// certificate and now lacks the link back to the newest notarized block).
    FetchView(View),
}

impl<S> Message<S> {
    /// The epoch a message belongs to (`None` for fetches).
    pub fn epoch(&self) -> Option<Epoch> {
        match self {
            Message::Vote(v) => Some(v.subject.epoch()),
            Message::Certificate(c) => Some(c.subject.epoch()),
            Message::Fetch(_) | Message::FetchView(_) => None,
        }
    }

    /// The view a message concerns (`None` for fetches).
    pub fn view(&self) -> Option<View> {
        match self {
            Message::Vote(v) => Some(v.subject.view()),
            Message::Certificate(c) => Some(c.subject.view()),
            Message::Fetch(_) | Message::FetchView(_) => None,
        }
    }
}

/// The largest encoded message accepted from a peer (a certificate for 65,535 validators fits).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Whether a vote kind may name this subject: nullify votes name a view, notarize and
/// finalize votes a proposal.
pub fn kind_fits(kind: VoteKind, subject: &Subject) -> bool {
    matches!(
        (kind, subject),
        (VoteKind::Nullify, Subject::View(..))
            | (
                VoteKind::Notarize | VoteKind::Finalize,
                Subject::Proposal(_)
            )
    )
}

/// Checks a certificate on its own, outside any engine: a quorum of `validators` (by stake)
/// signed `kind` over its subject, and the subject fits the kind. Used by nodes that catch up
/// on finalized blocks from peers.
pub fn certificate_is_valid<S: crate::Scheme>(
    netuid: NetUid,
    validators: &crate::Validators,
    scheme: &S,
    cert: &Certificate<S::Signature>,
) -> bool {
    if !kind_fits(cert.kind, &cert.subject) || cert.signers.members().any(|i| i >= validators.len())
    {
        return false;
    }
    certificate_verifies(
        validators,
        scheme,
        cert,
        &signing_message(netuid, cert.kind, &cert.subject),
    )
}

/// [`certificate_is_valid`] for a caller that already has the certificate's signing message
/// (`message`, which must be [`signing_message`] of its netuid, kind and subject).
pub(crate) fn certificate_verifies<S: crate::Scheme>(
    validators: &crate::Validators,
    scheme: &S,
    cert: &Certificate<S::Signature>,
    message: &[u8],
) -> bool {
    if !kind_fits(cert.kind, &cert.subject) || cert.signers.members().any(|i| i >= validators.len())
    {
        return false;
    }
    let stake = validators.stake_of(cert.signers.members());
    validators.is_quorum(stake) && scheme.verify_aggregate(&cert.signers, message, &cert.signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(parent: &Proposal, payload: Hash) -> Proposal {
        Proposal {
            epoch: parent.epoch,
            view: View(parent.view.0 + 2),
            height: Height(parent.height.0 + 1),
            parent: parent.digest(),
            payload,
        }
    }

    #[test]
    fn seals_link_a_terminal_block_to_the_certified_one() {
        let close = Proposal {
            epoch: Epoch(3),
            view: View(40),
            height: Height(12),
            parent: Hash([1; 32]),
            payload: Hash([2; 32]),
        };
        let s1 = after(&close, SEAL);
        let s2 = after(&s1, SEAL);
        assert!(seals_link(&close, &[s1], &s1));
        assert!(seals_link(&close, &[s1, s2], &s2));
        assert!(!seals_link(&close, &[], &close), "no seals prove nothing");
        assert!(
            !seals_link(&close, &[s1, s2], &s1),
            "the head must be the last seal"
        );
        assert!(!seals_link(&close, &[s2], &s2), "a gap in the chain");
        let block = after(&close, Hash([3; 32]));
        assert!(!seals_link(&close, &[block], &block), "not a seal");
        let mut other_epoch = s1;
        other_epoch.epoch = Epoch(4);
        assert!(!seals_link(&close, &[other_epoch], &other_epoch));
        let mut same_view = s1;
        same_view.view = close.view;
        assert!(!seals_link(&close, &[same_view], &same_view));
    }
}
