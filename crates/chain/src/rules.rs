//! Subtensor's rules for weights, as pure functions: LocalChain enforces them, and the subtensor
//! client checks them before it signs anything, so a call that the chain would refuse gets an
//! error naming the rule (with the numbers the chain's own error leaves out) and costs no fee.

use std::collections::BTreeSet;

use platform_primitives::Hotkey;

use crate::{ChainError, Hyperparameters, NeuronInfo};

/// What the `set_weights` checks look at besides the call itself.
pub struct WeightsContext<'a> {
    /// The subnet.
    pub netuid: u16,
    /// Its hyperparameters.
    pub hyper: &'a Hyperparameters,
    /// Its neurons, by UID.
    pub neurons: &'a [NeuronInfo],
    /// The block the weights would be set in.
    pub block: u64,
}

/// The neuron of `hotkey`, or [`ChainError::NotRegistered`].
pub fn registered<'a>(
    netuid: u16,
    neurons: &'a [NeuronInfo],
    hotkey: &Hotkey,
) -> Result<&'a NeuronInfo, ChainError> {
    neurons
        .iter()
        .find(|n| n.hotkey == *hotkey)
        .ok_or_else(|| ChainError::NotRegistered {
            hotkey: hotkey.to_ss58(),
            netuid,
        })
}

/// subtensor's `set_weights` checks, in its order; returns the max-upscaled weights.
/// `last_set` is the block this hotkey last set weights at (`None`: never, no rate limit).
pub fn check_weights(
    cx: &WeightsContext<'_>,
    signer: &Hotkey,
    last_set: Option<u64>,
    uids: &[u16],
    weights: &[u16],
    version_key: u64,
) -> Result<Vec<u16>, ChainError> {
    let (netuid, hyper) = (cx.netuid, cx.hyper);
    if uids.len() != weights.len() {
        return Err(ChainError::LengthMismatch {
            uids: uids.len(),
            weights: weights.len(),
        });
    }
    let me = registered(netuid, cx.neurons, signer)?;
    let self_weight = uids.len() == 1 && uids[0] == me.uid;
    if !me.validator_permit && !self_weight {
        return Err(ChainError::NoValidatorPermit {
            hotkey: signer.to_ss58(),
            netuid,
        });
    }
    if version_key < hyper.weights_version_key {
        return Err(ChainError::VersionKey {
            given: version_key,
            required: hyper.weights_version_key,
        });
    }
    let limit = hyper.weights_set_rate_limit;
    if let Some(last) = last_set
        && cx.block < last + limit
    {
        return Err(ChainError::RateLimited {
            last,
            limit,
            next: last + limit,
        });
    }
    for &u in uids {
        if !cx.neurons.iter().any(|n| n.uid == u) {
            return Err(ChainError::UnknownUid { uid: u, netuid });
        }
    }
    let mut seen = BTreeSet::new();
    for &u in uids {
        if !seen.insert(u) {
            return Err(ChainError::DuplicateUid { uid: u });
        }
    }
    if !self_weight && uids.len() < usize::from(hyper.min_allowed_weights) {
        return Err(ChainError::TooFewWeights {
            given: uids.len(),
            min: hyper.min_allowed_weights,
        });
    }
    let normalized = max_upscale(weights);
    let sum: u64 = normalized.iter().map(|&w| u64::from(w)).sum();
    if uids.len() > 1
        && hyper.max_weights_limit < u16::MAX
        && normalized
            .iter()
            .any(|&w| u64::from(w) * 65_535 > u64::from(hyper.max_weights_limit) * sum)
    {
        return Err(ChainError::MaxWeightExceeded {
            limit: hyper.max_weights_limit,
        });
    }
    Ok(normalized)
}

/// `set_weights` is refused on subnets with commit-reveal on.
pub fn check_direct(netuid: u16, hyper: &Hyperparameters) -> Result<(), ChainError> {
    if hyper.commit_reveal_weights_enabled {
        return Err(ChainError::CommitRevealRequired { netuid });
    }
    Ok(())
}

/// CRv2 commits and reveals need commit-reveal on, at version 2.
pub fn check_crv2(netuid: u16, hyper: &Hyperparameters) -> Result<(), ChainError> {
    if !hyper.commit_reveal_weights_enabled {
        return Err(ChainError::CommitRevealDisabled { netuid });
    }
    if hyper.commit_reveal_version != 2 {
        return Err(ChainError::TimelockedOnly {
            netuid,
            version: hyper.commit_reveal_version,
        });
    }
    Ok(())
}

/// subtensor's checks on a timelocked commit (`commit_timelocked_weights`): commit-reveal on,
/// and the version the commit names is the chain's, 3 or 4.
pub fn check_timelocked(
    netuid: u16,
    hyper: &Hyperparameters,
    version: u16,
) -> Result<(), ChainError> {
    if !hyper.commit_reveal_weights_enabled {
        return Err(ChainError::CommitRevealDisabled { netuid });
    }
    if version != hyper.commit_reveal_version || !matches!(version, 3 | 4) {
        return Err(ChainError::Rejected {
            reason: format!(
                "commit-reveal version {version} given; subnet {netuid} takes timelocked commits \
                 of version {} only (IncorrectCommitRevealVersion)",
                hyper.commit_reveal_version
            ),
        });
    }
    Ok(())
}

/// subtensor's max-upscale: scale so the largest weight becomes 65535 (all-zero stays zero).
pub fn max_upscale(weights: &[u16]) -> Vec<u16> {
    let max = weights.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return weights.to_vec();
    }
    weights
        .iter()
        .map(|&w| (u64::from(w) * 65_535 / u64::from(max)) as u16)
        .collect()
}

/// Subtensor's epoch index of a block: `(block + netuid + 1) / (tempo + 1)`.
pub fn epoch_index(block: u64, netuid: u16, tempo: u16) -> u64 {
    (block + u64::from(netuid) + 1) / (u64::from(tempo) + 1)
}

/// First block of epoch `index`.
pub fn epoch_start(index: u64, netuid: u16, tempo: u16) -> u64 {
    (index * (u64::from(tempo) + 1)).saturating_sub(u64::from(netuid) + 1)
}

/// Whether `block` is the first block of a subtensor epoch.
pub fn is_epoch_start(block: u64, netuid: u16, tempo: u16) -> bool {
    epoch_start(epoch_index(block, netuid, tempo), netuid, tempo) == block
}

/// The first block of the epoch after the one `block` is in.
pub fn next_epoch_start(block: u64, netuid: u16, tempo: u16) -> u64 {
    epoch_start(epoch_index(block, netuid, tempo) + 1, netuid, tempo)
}

/// The reveal window `(first, last)` of a CRv2 commit made at `block`.
pub fn reveal_window(block: u64, netuid: u16, tempo: u16, reveal_period_epochs: u64) -> (u64, u64) {
    let reveal_epoch = epoch_index(block, netuid, tempo) + reveal_period_epochs;
    (
        epoch_start(reveal_epoch, netuid, tempo),
        epoch_start(reveal_epoch + 1, netuid, tempo) - 1,
    )
}

/// A commitment's size: at most [`crate::MAX_COMMITMENT_BYTES`] (three raw fields of 128).
pub fn check_commitment(data: &[u8]) -> Result<(), ChainError> {
    if data.len() > crate::MAX_COMMITMENT_BYTES {
        return Err(ChainError::Malformed {
            reason: format!(
                "a commitment of {} bytes exceeds {}",
                data.len(),
                crate::MAX_COMMITMENT_BYTES
            ),
        });
    }
    Ok(())
}
