//! The node's error boundary: what an error means for the validator.
//!
//! A validator handles input it does not control — gossip from peers, blocks and snapshots
//! they serve, requests from anyone — next to failures of its own machinery. The two must
//! never be confused:
//!
//! - [`NodeError::Fatal`]: the validator cannot go on safely (its database or consensus WAL
//!   failed, a finalized block does not apply to its state, its network task is gone). It
//!   stops, and the operator must look. Any `anyhow` error from the node's own machinery
//!   converts to this: an unforeseen failure stops rather than runs on in doubt.
//! - [`NodeError::Dropped`]: one input could not be handled. It is dropped, counted under
//!   `platform_inputs_dropped_total{input, reason}`, logged at debug level, and the validator
//!   goes on. Handlers of external input return this for anything the input itself causes;
//!   penalizing the sender is the network layer's job (ingress) or the handler's.
//!
//! The driver's loop passes every handler's result through [`contain`], so a handler that
//! propagates a `Dropped` error cannot end the validator.

/// What went wrong while handling one event.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The validator cannot go on safely.
    #[error(transparent)]
    Fatal(#[from] anyhow::Error),
    /// One input could not be handled; the validator goes on.
    #[error("dropped a {input}: {reason}")]
    Dropped {
        /// What kind of input (`consensus`, `announce`, `transaction`, `attestation`, …).
        input: &'static str,
        /// Why (`malformed`, `unknown_submission`, …): a metric label, so a fixed word.
        reason: &'static str,
    },
}

impl NodeError {
    /// An input dropped for `reason`.
    pub fn dropped(input: &'static str, reason: &'static str) -> NodeError {
        NodeError::Dropped { input, reason }
    }
}

/// Counts an input dropped for `reason` (for handlers that drop inside a spawned task, where
/// no error can travel back to [`contain`]).
pub fn count_dropped(input: &'static str, reason: &'static str) {
    crate::metrics::events().inputs_dropped(input, reason);
}

/// The boundary: a dropped input is counted and the validator goes on; a fatal error is
/// returned, which stops it.
pub fn contain(result: Result<(), NodeError>) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(NodeError::Dropped { input, reason }) => {
            tracing::debug!(input, reason, "dropped an input");
            count_dropped(input, reason);
            Ok(())
        }
        Err(NodeError::Fatal(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped_count(input: &'static str, reason: &'static str) -> u64 {
        crate::metrics::events()
            .inputs_dropped
            .get_or_create(&vec![("input", input.into()), ("reason", reason.into())])
            .get()
    }

    #[test]
    fn a_dropped_input_is_counted_and_contained() {
        let before = dropped_count("consensus", "malformed");
        assert!(contain(Err(NodeError::dropped("consensus", "malformed"))).is_ok());
        assert_eq!(dropped_count("consensus", "malformed"), before + 1);
    }

    #[test]
    fn a_fatal_error_goes_through_and_failures_of_the_machinery_are_fatal() {
        fn machinery() -> Result<(), NodeError> {
            let failed: anyhow::Result<()> = Err(anyhow::anyhow!("the database is corrupt"));
            failed?;
            Ok(())
        }
        let err = contain(machinery()).unwrap_err();
        assert_eq!(err.to_string(), "the database is corrupt");
        assert!(contain(Ok(())).is_ok());
    }
}
