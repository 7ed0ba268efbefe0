//! View synchronization: which certificates a validator asks its peers for, and what it
//! answers when asked.
//!
//! The consensus engine asks for what it misses with `Fetch` (the certificate of a proposal
//! whose parent it lacks) and `FetchView` (the certificates of a view it skipped or that moved
//! a peer past it). Those never travel on gossip: each becomes a point-to-point
//! [`CertificateAsk`] ([`ask_for`]), at most [`MAX_ASKS_IN_FLIGHT`] at once and never two
//! alike ([`Asks`]), answered to the asker only from the answering validator's
//! [`CertificateBook`]. What comes back enters the engine as that validator's message: the
//! engine checks each certificate, moves to the highest certified view it proves, and
//! penalizes a validator that answered with a bad one.
//!
//! The driver routes asks over the network's certificates protocol and serves its book from
//! the network's task; the node-level simulator ([`super::sim`]) routes them over its
//! simulated links. Nothing here performs I/O or reads a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use platform_consensus::{Certificate, Message, VoteKind};
use platform_network::{CertificateAsk, MAX_CERTIFICATES};
use platform_primitives::{Epoch, Hash, View};

/// Views of certificates a book keeps (the consensus topic accepts messages up to 1,024 views
/// ahead, and a validator behind by more catches up by blocks).
pub const KEPT_VIEWS: usize = 1024;

/// Most certificate asks of one validator in flight at once.
pub const MAX_ASKS_IN_FLIGHT: usize = 8;

/// The ask an engine's `Fetch` or `FetchView` in `epoch` becomes (`None` for other messages).
pub fn ask_for<S>(message: &Message<S>, epoch: Epoch) -> Option<CertificateAsk> {
    match message {
        Message::Fetch(digest) => Some(CertificateAsk::Proposal(*digest)),
        Message::FetchView(view) => Some(CertificateAsk::View {
            epoch: epoch.0,
            view: view.0,
        }),
        Message::Vote(_) | Message::Certificate(_) => None,
    }
}

/// The asks in flight.
#[derive(Debug, Default)]
pub struct Asks {
    in_flight: BTreeSet<CertificateAsk>,
}

impl Asks {
    /// Whether to send `ask` now: not when the same one is in flight, nor past
    /// [`MAX_ASKS_IN_FLIGHT`] (the engine asks again on its next timeout). If so, it is in
    /// flight until [`Asks::done`].
    pub fn start(&mut self, ask: CertificateAsk) -> bool {
        self.in_flight.len() < MAX_ASKS_IN_FLIGHT && self.in_flight.insert(ask)
    }

    /// `ask` was answered, or no validator could answer it.
    pub fn done(&mut self, ask: &CertificateAsk) {
        self.in_flight.remove(ask);
    }

    /// A new engine starts: earlier asks' answers are for the old one.
    pub fn clear(&mut self) {
        self.in_flight.clear();
    }
}

/// The certificates this validator can give a peer that asks: its epoch's latest
/// finalization and the notarizations and nullifications of its most recent views. `C` is how
/// a certificate is held (the driver keeps it encoded, ready to send).
pub struct CertificateBook<C> {
    inner: Mutex<Book<C>>,
}

impl<C> Default for CertificateBook<C> {
    fn default() -> Self {
        CertificateBook {
            inner: Mutex::new(Book::default()),
        }
    }
}

struct Book<C> {
    epoch: Epoch,
    /// The latest finalization: its view, proposal digest and held certificate.
    finalization: Option<(View, Hash, C)>,
    /// Notarizations (with their digest) and nullifications by view.
    views: BTreeMap<View, Vec<Held<C>>>,
}

impl<C> Default for Book<C> {
    fn default() -> Self {
        Book {
            epoch: Epoch::default(),
            finalization: None,
            views: BTreeMap::new(),
        }
    }
}

/// A held certificate, with its proposal's digest (`None`: a nullification).
type Held<C> = (Option<Hash>, C);

impl<C: Clone> CertificateBook<C> {
    /// Keeps `cert`, a certificate this validator's engine formed or received, as `held`. One
    /// of an earlier epoch than the book's is ignored; one of a later epoch starts the book
    /// afresh (views restart with each epoch).
    pub fn record<S>(&self, cert: &Certificate<S>, held: impl FnOnce() -> C) {
        let epoch = cert.subject.epoch();
        let view = cert.subject.view();
        let digest = cert.subject.digest();
        let mut b = self.inner.lock().expect("certificate book lock poisoned");
        if epoch < b.epoch {
            return;
        }
        if epoch > b.epoch {
            *b = Book {
                epoch,
                ..Book::default()
            };
        }
        match cert.kind {
            VoteKind::Finalize => {
                if b.finalization.as_ref().is_none_or(|(v, _, _)| *v < view)
                    && let Some(d) = digest
                {
                    b.finalization = Some((view, d, held()));
                }
            }
            VoteKind::Notarize | VoteKind::Nullify => {
                let kept = b.views.entry(view).or_default();
                if !kept.iter().any(|(d, _)| *d == digest) {
                    kept.push((digest, held()));
                }
                while b.views.len() > KEPT_VIEWS {
                    b.views.pop_first();
                }
            }
        }
    }

    /// What to answer a peer's `ask`, as the engine answers `Fetch` and `FetchView`: a
    /// proposal's finalization or notarization; a view's notarization and nullification, or
    /// the latest finalization once this validator finalized past that view. At most
    /// [`MAX_CERTIFICATES`].
    pub fn answer(&self, ask: CertificateAsk) -> Vec<C> {
        let b = self.inner.lock().expect("certificate book lock poisoned");
        let finalization = b.finalization.as_ref();
        let mut out: Vec<C> = match ask {
            CertificateAsk::Proposal(digest) => match finalization {
                Some((_, d, held)) if *d == digest => vec![held.clone()],
                _ => b
                    .views
                    .values()
                    .flatten()
                    .find(|(d, _)| *d == Some(digest))
                    .map(|(_, held)| held.clone())
                    .into_iter()
                    .collect(),
            },
            CertificateAsk::View { epoch, view } if epoch == b.epoch.0 => match finalization {
                Some((f, _, held)) if View(view) <= *f => vec![held.clone()],
                _ => b
                    .views
                    .get(&View(view))
                    .map(|kept| kept.iter().map(|(_, held)| held.clone()).collect())
                    .unwrap_or_default(),
            },
            CertificateAsk::View { .. } => Vec::new(),
        };
        out.truncate(MAX_CERTIFICATES);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform_consensus::{Proposal, Subject};
    use platform_crypto::SignerBitmap;
    use platform_primitives::Height;

    fn cert(kind: VoteKind, epoch: u64, view: u64, digest: u8) -> Certificate<u8> {
        let proposal = Proposal {
            epoch: Epoch(epoch),
            view: View(view),
            height: Height(view),
            parent: Hash([0; 32]),
            payload: Hash([digest; 32]),
        };
        let subject = match kind {
            VoteKind::Nullify => Subject::View(Epoch(epoch), View(view)),
            _ => Subject::Proposal(proposal),
        };
        Certificate {
            kind,
            subject,
            signers: SignerBitmap::new(4),
            signature: digest,
        }
    }

    fn view(epoch: u64, view: u64) -> CertificateAsk {
        CertificateAsk::View { epoch, view }
    }

    #[test]
    fn the_book_answers_as_the_engine_does() {
        let book = CertificateBook::default();
        let keep = |c: &Certificate<u8>| {
            let c = c.clone();
            move || c
        };
        let notarized = cert(VoteKind::Notarize, 1, 5, 5);
        let nullified = cert(VoteKind::Nullify, 1, 5, 0);
        book.record(&notarized, keep(&notarized));
        book.record(&nullified, keep(&nullified));
        book.record(&notarized, keep(&notarized));
        let encoded = |c: &Certificate<u8>| c.clone();
        // A view's certificates, each once; a proposal's notarization by its digest.
        assert_eq!(
            book.answer(view(1, 5)),
            vec![encoded(&notarized), encoded(&nullified)]
        );
        let digest = notarized.subject.digest().unwrap();
        assert_eq!(
            book.answer(CertificateAsk::Proposal(digest)),
            vec![encoded(&notarized)]
        );
        // Another epoch's view, or one never seen: nothing.
        assert!(book.answer(view(2, 5)).is_empty());
        assert!(book.answer(view(1, 6)).is_empty());
        // Finalized at view 7: any view up to it is answered with that finalization.
        let finalized = cert(VoteKind::Finalize, 1, 7, 7);
        book.record(&finalized, keep(&finalized));
        assert_eq!(book.answer(view(1, 5)), vec![encoded(&finalized)]);
        assert_eq!(book.answer(view(1, 7)), vec![encoded(&finalized)]);
        // A later epoch starts the book afresh; an earlier one is ignored.
        let later = cert(VoteKind::Notarize, 2, 1, 1);
        book.record(&later, keep(&later));
        assert!(book.answer(view(1, 5)).is_empty());
        let earlier = cert(VoteKind::Notarize, 1, 9, 9);
        book.record(&earlier, keep(&earlier));
        assert!(book.answer(view(1, 9)).is_empty());
        assert_eq!(book.answer(view(2, 1)).len(), 1);
    }

    #[test]
    fn the_book_keeps_a_bounded_number_of_views() {
        let book = CertificateBook::default();
        for v in 1..=(KEPT_VIEWS as u64 + 10) {
            let c = cert(VoteKind::Nullify, 1, v, 0);
            book.record(&c, || c.clone());
        }
        assert!(book.answer(view(1, 10)).is_empty());
        assert_eq!(book.answer(view(1, 11)).len(), 1);
        assert_eq!(book.answer(view(1, KEPT_VIEWS as u64 + 10)).len(), 1);
    }

    #[test]
    fn asks_are_bounded_and_never_doubled() {
        let mut asks = Asks::default();
        let ask = |v| view(1, v);
        assert!(asks.start(ask(1)));
        assert!(!asks.start(ask(1)), "the same ask is in flight");
        for v in 2..=MAX_ASKS_IN_FLIGHT as u64 {
            assert!(asks.start(ask(v)));
        }
        assert!(!asks.start(ask(100)), "at most MAX_ASKS_IN_FLIGHT");
        asks.done(&ask(1));
        assert!(asks.start(ask(100)));
        asks.clear();
        assert!(asks.start(ask(1)));
    }

    #[test]
    fn only_the_engines_asks_become_certificate_asks() {
        let fetch: Message<u8> = Message::Fetch(Hash::of(b"p"));
        assert_eq!(
            ask_for(&fetch, Epoch(3)),
            Some(CertificateAsk::Proposal(Hash::of(b"p")))
        );
        let fetch_view: Message<u8> = Message::FetchView(View(9));
        assert_eq!(ask_for(&fetch_view, Epoch(3)), Some(view(3, 9)));
        let cert: Message<u8> = Message::Certificate(cert(VoteKind::Nullify, 3, 9, 0));
        assert_eq!(ask_for(&cert, Epoch(3)), None);
    }
}
