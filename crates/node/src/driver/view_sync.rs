//! View synchronization, the driver's part: the engine's asks for certificates it lacks go
//! point-to-point over the network's certificates protocol (never on gossip), and answers
//! come back to the engine. Which asks go, and what a validator answers, is decided in
//! [`crate::core::view_sync`].

use platform_network::CertificateAsk;

use super::*;
use crate::core::view_sync::ask_for;

/// How often, and how long apart, an ask is repeated while no validator is connected (30 s:
/// long enough for a node back from a pause or a partition to redial its peers).
const NO_PEER_RETRIES: usize = 60;
const NO_PEER_WAIT: Duration = Duration::from_millis(500);

/// The driver's book holds each certificate encoded as the message that carries it.
pub type CertificateBook = crate::core::view_sync::CertificateBook<Vec<u8>>;

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
        let Some(ask) = ask_for(message, self.epoch()) else {
            return;
        };
        if !self.asking.start(ask) {
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
        self.asking.done(&ask);
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
