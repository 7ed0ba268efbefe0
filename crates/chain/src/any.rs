//! [`AnyChain`]: the chain a URL names — `http://…` a LocalChain, `ws://…`/`wss://…` a
//! subtensor node — behind one [`Chain`].

use platform_crypto::Keypair;

use crate::local::LocalChainClient;
use crate::subtensor::SubtensorChain;
use crate::timelock::{Beacon, EpochState, TimelockedCommit};
use crate::{
    BlockRef, Chain, ChainError, EpochSchedule, Hyperparameters, Included, NeuronInfo, Reveal,
    ValidatorWeights,
};

/// A LocalChain or a subtensor node.
#[derive(Clone)]
pub enum AnyChain {
    /// A LocalChain over loopback HTTP (`platform localchain`).
    Local(LocalChainClient),
    /// A subtensor node over WebSocket JSON-RPC.
    Subtensor(SubtensorChain),
}

impl AnyChain {
    /// Connects to the chain `url` names.
    pub async fn connect(url: &str) -> Result<AnyChain, ChainError> {
        if is_subtensor_url(url) {
            Ok(AnyChain::Subtensor(SubtensorChain::connect(url).await?))
        } else {
            Ok(AnyChain::Local(LocalChainClient::new(url)?))
        }
    }

    /// A subtensor node's runtime: its spec version and which shapes Platform uses it changed
    /// (`None` for LocalChain, whose interface is Platform's own).
    pub async fn runtime(&self) -> Result<Option<crate::subtensor::RuntimeShapes>, ChainError> {
        match self {
            AnyChain::Local(_) => Ok(None),
            AnyChain::Subtensor(c) => c.runtime().await.map(Some),
        }
    }

    /// Publishes `data` as `signer`'s commitment on subnet `netuid` (at most
    /// [`crate::MAX_COMMITMENT_BYTES`]; the hotkey must be registered there). Platform's
    /// validators keep their peer record there.
    pub async fn set_commitment(
        &self,
        signer: &Keypair,
        netuid: u16,
        data: Vec<u8>,
    ) -> Result<Included, ChainError> {
        match self {
            AnyChain::Local(c) => c.set_commitment(signer, netuid, data).await,
            AnyChain::Subtensor(c) => c.set_commitment(signer, netuid, data).await,
        }
    }

    /// Every hotkey's commitment on `netuid` as of `block` (the head when `None`), hotkeys
    /// ascending.
    pub async fn commitments(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<crate::Commitment>, ChainError> {
        match self {
            AnyChain::Local(c) => c.commitments(netuid, block).await,
            AnyChain::Subtensor(c) => c.commitments(netuid, block).await,
        }
    }

    /// The subnet owner's hotkey (subtensor: `SubnetOwnerHotkey`): the key Platform takes the
    /// owner's actions from.
    pub async fn subnet_owner(
        &self,
        netuid: u16,
    ) -> Result<platform_primitives::Hotkey, ChainError> {
        match self {
            AnyChain::Local(c) => c.subnet_owner(netuid).await,
            AnyChain::Subtensor(c) => c.subnet_owner(netuid).await,
        }
    }

    /// The LocalChain client, if this is one (registration and the consensus view exist only
    /// there).
    pub fn local(&self) -> Option<&LocalChainClient> {
        match self {
            AnyChain::Local(c) => Some(c),
            AnyChain::Subtensor(_) => None,
        }
    }
}

/// Whether `url` names a subtensor node rather than a LocalChain.
pub fn is_subtensor_url(url: &str) -> bool {
    url.starts_with("ws://") || url.starts_with("wss://")
}

/// Forwards a [`Chain`] method to whichever chain this is.
macro_rules! forward {
    ($self:ident, $c:ident => $call:expr) => {
        match $self {
            AnyChain::Local($c) => $call.await,
            AnyChain::Subtensor($c) => $call.await,
        }
    };
}

impl Chain for AnyChain {
    async fn head(&self) -> Result<BlockRef, ChainError> {
        forward!(self, c => c.head())
    }

    async fn block(&self, number: u64) -> Result<BlockRef, ChainError> {
        forward!(self, c => c.block(number))
    }

    async fn hyperparameters(&self, netuid: u16) -> Result<Hyperparameters, ChainError> {
        forward!(self, c => c.hyperparameters(netuid))
    }

    async fn metagraph(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<NeuronInfo>, ChainError> {
        forward!(self, c => c.metagraph(netuid, block))
    }

    async fn epoch_schedule(&self, netuid: u16) -> Result<EpochSchedule, ChainError> {
        forward!(self, c => c.epoch_schedule(netuid))
    }

    async fn set_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<Included, ChainError> {
        forward!(self, c => c.set_weights(signer, netuid, uids, weights, version_key))
    }

    async fn commit_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<Included, ChainError> {
        forward!(self, c => c.commit_weights(signer, netuid, hash))
    }

    async fn reveal_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        reveal: &Reveal,
    ) -> Result<Included, ChainError> {
        forward!(self, c => c.reveal_weights(signer, netuid, reveal))
    }

    async fn weights(&self, netuid: u16) -> Result<Vec<ValidatorWeights>, ChainError> {
        forward!(self, c => c.weights(netuid))
    }

    async fn beacon(&self) -> Result<Beacon, ChainError> {
        forward!(self, c => c.beacon())
    }

    async fn epoch_state(&self, netuid: u16) -> Result<Option<EpochState>, ChainError> {
        forward!(self, c => c.epoch_state(netuid))
    }

    async fn commit_timelocked_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        commit: &TimelockedCommit,
        version: u16,
    ) -> Result<Included, ChainError> {
        forward!(self, c => c.commit_timelocked_weights(signer, netuid, commit, version))
    }
}
