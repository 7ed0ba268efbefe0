//! View synchronization: the certificates a validator lacks travel point-to-point.
//!
//! The consensus engine asks for what it misses with `Fetch` (the certificate of a proposal
//! whose parent it lacks) and `FetchView` (the certificates of a view it skipped or that moved
//! a peer past it). Here those never go out on gossip: each becomes a request on the network's
//! certificates protocol, asked of the connected validators in turn (the one the engine named
//! first) and answered to the asker only. Answers come from a [`CertificateBook`] that the
//! driver fills with every certificate its engine formed or received, so serving a peer never
//! waits on the driver. What comes back enters the engine as that validator's message: the
//! engine checks each certificate, moves to the highest certified view it proves, and
//! penalizes a validator that answered with a bad one.

use std::collections::BTreeMap;

use platform_network::{CertificateAsk, MAX_CERTIFICATES};

use super::*;

/// Views of certificates a book keeps (the consensus topic accepts messages up to 1,024 views
/// ahead, and a validator behind by more catches up by blocks).
const KEPT_VIEWS: usize = 1024;

/// Most certificate requests of one validator in flight at once.
const MAX_ASKS_IN_FLIGHT: usize = 8;

/// How often, and how long apart, an ask is repeated while no validator is connected (30 s:
/// long enough for a node back from a pause or a partition to redial its peers).
const NO_PEER_RETRIES: usize = 60;
const NO_PEER_WAIT: Duration = Duration::from_millis(500);

/// The certificates this validator can give a peer that asks: its epoch's latest
/// finalization and the notarizations and nullifications of its most recent views.
#[derive(Default)]
pub struct CertificateBook {
    inner: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    epoch: Epoch,
    /// The latest finalization: its view, proposal digest and encoded message.
    finalization: Option<(View, Hash, Vec<u8>)>,
    /// Notarizations (with their digest) and nullifications by view.
    views: BTreeMap<View, Vec<Held>>,
}

/// An encoded certificate, with its proposal's digest (`None`: a nullification).
type Held = (Option<Hash>, Vec<u8>);

impl CertificateBook {
    /// Keeps a certificate this validator's engine formed or received. One of an earlier epoch
    /// than the book's is ignored; one of a later epoch starts the book afresh (views restart
    /// with each epoch).
    pub fn record(&self, cert: &Certificate<BlsSignature>) {
        let epoch = cert.subject.epoch();
        let view = cert.subject.view();
        let digest = cert.subject.digest();
        let bytes = encode(&Message::Certificate(cert.clone()));
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
                    b.finalization = Some((view, d, bytes));
                }
            }
            VoteKind::Notarize | VoteKind::Nullify => {
                let held = b.views.entry(view).or_default();
                if !held.iter().any(|(d, _)| *d == digest) {
                    held.push((digest, bytes));
                }
                while b.views.len() > KEPT_VIEWS {
                    b.views.pop_first();
                }
            }
        }
    }

    /// What to answer a peer's `ask`, as the engine answers `Fetch` and `FetchView`: a
    /// proposal's finalization or notarization; a view's notarization and nullification, or
    /// the latest finalization once this validator finalized past that view.
    pub fn answer(&self, ask: CertificateAsk) -> Vec<Vec<u8>> {
        let b = self.inner.lock().expect("certificate book lock poisoned");
        let finalization = b.finalization.as_ref();
        let mut out: Vec<Vec<u8>> = match ask {
            CertificateAsk::Proposal(digest) => match finalization {
                Some((_, d, bytes)) if *d == digest => vec![bytes.clone()],
                _ => b
                    .views
                    .values()
                    .flatten()
                    .find(|(d, _)| *d == Some(digest))
                    .map(|(_, bytes)| bytes.clone())
                    .into_iter()
                    .collect(),
            },
            CertificateAsk::View { epoch, view } if epoch == b.epoch.0 => match finalization {
                Some((f, _, bytes)) if View(view) <= *f => vec![bytes.clone()],
                _ => b
                    .views
                    .get(&View(view))
                    .map(|held| held.iter().map(|(_, bytes)| bytes.clone()).collect())
                    .unwrap_or_default(),
            },
            CertificateAsk::View { .. } => Vec::new(),
        };
        out.truncate(MAX_CERTIFICATES);
        out
    }
}

impl Driver {
    /// Routes the engine's request for certificates (a `Fetch` or `FetchView` it would send)
    /// to the network's certificates protocol, asking `first` (a validator index) before the
    /// others. An ask already in flight, or one past the in-flight bound, is not repeated: the
    /// engine asks again on its next timeout.
    pub(super) fn ask_certificates(
        &mut self,
        message: &Message<BlsSignature>,
        first: Option<ValidatorIndex>,
    ) {
        let ask = match message {
            Message::Fetch(digest) => CertificateAsk::Proposal(*digest),
            Message::FetchView(view) => CertificateAsk::View {
                epoch: self.epoch().0,
                view: view.0,
            },
            Message::Vote(_) | Message::Certificate(_) => return,
        };
        if self.asking.len() >= MAX_ASKS_IN_FLIGHT || !self.asking.insert(ask) {
            return;
        }
        let first = first.and_then(|i| self.consensus.validators.get(i as usize).copied());
        let (net, tx, generation) = (self.net.clone(), self.internal_tx.clone(), self.generation);
        tokio::spawn(async move {
            // A validator back from a partition or a pause asks before its connections are
            // back: with nobody to ask, it asks again shortly, for a while.
            let mut answer = None;
            for _ in 0..NO_PEER_RETRIES {
                match net.fetch_certificates(ask, first).await {
                    Ok(found) => {
                        answer = Some(found);
                        break;
                    }
                    Err(platform_network::NetError::NotFound { tried: 0, .. }) => {
                        tokio::time::sleep(NO_PEER_WAIT).await;
                    }
                    Err(e) => {
                        tracing::debug!("view sync: {e}");
                        break;
                    }
                }
            }
            let _ = tx
                .send(Internal::Certificates {
                    generation,
                    ask,
                    answer,
                })
                .await;
        });
    }

    /// A validator's answer to an ask: each certificate goes to the engine as that
    /// validator's message (the engine checks it and penalizes a bad one). Anything that does
    /// not decode to a certificate is dropped, counted and reported.
    pub(super) async fn on_certificates(
        &mut self,
        generation: u64,
        ask: CertificateAsk,
        answer: Option<(Hotkey, Vec<Vec<u8>>)>,
    ) -> Result<Vec<Effect<BlsSignature>>> {
        self.asking.remove(&ask);
        let events = crate::metrics::events();
        let Some((from, certs)) = answer else {
            events.view_sync_ask("unanswered");
            return Ok(Vec::new());
        };
        events.view_sync_ask("answered");
        if generation != self.generation {
            return Ok(Vec::new());
        }
        let Some(index) = self.consensus.validators.iter().position(|h| *h == from) else {
            return Ok(Vec::new());
        };
        let mut effects = Vec::new();
        for bytes in certs {
            match decode::<Message<BlsSignature>>(
                "certificate",
                &bytes,
                platform_consensus::types::MAX_MESSAGE_BYTES,
            ) {
                Ok(message @ Message::Certificate(_)) => {
                    effects.extend(self.engine().handle(Input::Message {
                        from: index as ValidatorIndex,
                        message,
                    }));
                }
                _ => {
                    crate::error::count_dropped("certificates", "malformed");
                    if let Err(e) = self
                        .net
                        .report_validator(from, "certificates", "malformed")
                        .await
                    {
                        tracing::debug!("reporting {from}: {e}");
                    }
                }
            }
        }
        Ok(effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform_crypto::SignerBitmap;

    fn cert(kind: VoteKind, epoch: u64, view: u64, digest: u8) -> Certificate<BlsSignature> {
        let key = platform_crypto::BlsSecretKey::from_seed(&[1; 32]);
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
            signature: key.sign(b"test"),
        }
    }

    fn view(epoch: u64, view: u64) -> CertificateAsk {
        CertificateAsk::View { epoch, view }
    }

    #[test]
    fn the_book_answers_as_the_engine_does() {
        let book = CertificateBook::default();
        let notarized = cert(VoteKind::Notarize, 1, 5, 5);
        let nullified = cert(VoteKind::Nullify, 1, 5, 0);
        book.record(&notarized);
        book.record(&nullified);
        book.record(&notarized);
        let encoded = |c: &Certificate<BlsSignature>| encode(&Message::Certificate(c.clone()));
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
        book.record(&finalized);
        assert_eq!(book.answer(view(1, 5)), vec![encoded(&finalized)]);
        assert_eq!(book.answer(view(1, 7)), vec![encoded(&finalized)]);
        // A later epoch starts the book afresh; an earlier one is ignored.
        book.record(&cert(VoteKind::Notarize, 2, 1, 1));
        assert!(book.answer(view(1, 5)).is_empty());
        book.record(&cert(VoteKind::Notarize, 1, 9, 9));
        assert!(book.answer(view(1, 9)).is_empty());
        assert_eq!(book.answer(view(2, 1)).len(), 1);
    }

    #[test]
    fn the_book_keeps_a_bounded_number_of_views() {
        let book = CertificateBook::default();
        for v in 1..=(KEPT_VIEWS as u64 + 10) {
            book.record(&cert(VoteKind::Nullify, 1, v, 0));
        }
        assert!(book.answer(view(1, 10)).is_empty());
        assert_eq!(book.answer(view(1, 11)).len(), 1);
        assert_eq!(book.answer(view(1, KEPT_VIEWS as u64 + 10)).len(), 1);
    }
}
