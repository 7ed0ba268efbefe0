//! LocalChain genesis: a file, or the built-in dev genesis.

use platform_crypto::parse_suri;
use platform_primitives::Hotkey;
use serde::Deserialize;

use super::sim::{ChainState, Registered, Subnet};
use crate::{ChainError, Hyperparameters, NeuronInfo};

/// A genesis file (TOML). Hotkeys and coldkeys are SS58 addresses: a genesis holds no secrets.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// The subnet.
    pub netuid: u16,
    /// The subnet owner's hotkey (SS58).
    pub owner: Hotkey,
    /// Hyperparameters.
    pub hyperparameters: Hyperparameters,
    /// Neurons, UIDs in file order from 0.
    pub neurons: Vec<GenesisNeuron>,
}

/// A neuron in a genesis file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisNeuron {
    /// Hotkey (SS58).
    pub hotkey: Hotkey,
    /// Coldkey (SS58); defaults to the hotkey.
    pub coldkey: Option<Hotkey>,
    /// Stake in rao.
    #[serde(default)]
    pub stake: u64,
    /// Validator permit.
    #[serde(default)]
    pub validator_permit: bool,
}

/// The named dev validators: `//Alice` (owner, 4000 TAO), `//Bob` (3000), `//Charlie` (2000),
/// `//Dave` (1000). They are always registered; larger dev networks add `//Validator5` …
/// `//Validator64` (see [`dev_validator`]), then miners `//Miner1` … `//MinerN` (8 by default).
pub const DEV_VALIDATORS: [(&str, u64); 4] = [
    ("//Alice", 4_000),
    ("//Bob", 3_000),
    ("//Charlie", 2_000),
    ("//Dave", 1_000),
];

/// The most dev validators: a subnet's validator permits.
pub const MAX_DEV_VALIDATORS: usize = 64;

/// Miners in the dev genesis unless asked otherwise.
pub const DEV_MINERS: usize = 8;

/// The `i`-th dev validator (from 0): its secret URI and default stake in TAO. After the four
/// named ones come `//Validator5`, `//Validator6`, … with stakes falling by 10 TAO from 990,
/// so that every stake differs (leaders and quorums weigh validators unequally).
pub fn dev_validator(i: usize) -> (String, u64) {
    match DEV_VALIDATORS.get(i) {
        Some((uri, tao)) => ((*uri).to_owned(), *tao),
        None => (format!("//Validator{}", i + 1), 1_000 - 10 * (i as u64 - 3)),
    }
}

/// How many dev validators a dev network of `validators` permitted validators registers: the
/// four named ones always (the rest keep their stake but no permit), more when asked.
pub fn dev_registered_validators(validators: usize) -> usize {
    validators.max(DEV_VALIDATORS.len())
}

/// The most miners a dev network with `validators` validators can register (256 UIDs in all).
pub fn max_dev_miners(validators: usize) -> usize {
    super::sim::MAX_UIDS as usize - dev_registered_validators(validators)
}

/// Rao per TAO.
pub const RAO: u64 = 1_000_000_000;

/// Hyperparameters of the dev genesis: a short tempo and a rate limit that lets a validator
/// set weights once per epoch; commit-reveal off.
pub fn dev_hyperparameters() -> Hyperparameters {
    Hyperparameters {
        tempo: 20,
        min_allowed_weights: 1,
        max_weights_limit: u16::MAX,
        weights_version_key: 0,
        weights_set_rate_limit: 10,
        commit_reveal_weights_enabled: false,
        commit_reveal_version: 2,
        reveal_period_epochs: 1,
    }
}

/// The built-in dev genesis (netuid 1).
pub fn dev() -> GenesisFile {
    dev_network(
        DEV_VALIDATORS.len(),
        DEV_MINERS,
        dev_hyperparameters().tempo,
    )
}

/// The dev genesis with validator permits for the first `validators` dev validators only (the
/// others keep their stake), `miners` miners `//Miner1` … (at most [`max_dev_miners`]; more
/// are left out) and the given tempo. The weights rate limit is at most half the tempo, so a
/// validator can set weights once per epoch whatever the tempo.
pub fn dev_network(validators: usize, miners: usize, tempo: u16) -> GenesisFile {
    dev_network_with_stakes(validators, miners, tempo, &[])
}

/// [`dev_network`] with the first validators' stakes, in TAO, set by `stakes` (the others keep
/// their defaults from [`dev_validator`]).
pub fn dev_network_with_stakes(
    validators: usize,
    miners: usize,
    tempo: u16,
    stakes: &[u64],
) -> GenesisFile {
    let hk = |s: &str| parse_suri(s).expect("dev URIs parse").hotkey();
    let mut neurons: Vec<GenesisNeuron> = (0..dev_registered_validators(validators))
        .map(|i| {
            let (uri, tao) = dev_validator(i);
            GenesisNeuron {
                hotkey: hk(&uri),
                coldkey: None,
                stake: stakes.get(i).copied().unwrap_or(tao) * RAO,
                validator_permit: i < validators,
            }
        })
        .collect();
    for i in 1..=miners.min(max_dev_miners(validators)) {
        neurons.push(GenesisNeuron {
            hotkey: hk(&format!("//Miner{i}")),
            coldkey: None,
            stake: 0,
            validator_permit: false,
        });
    }
    let mut hyperparameters = dev_hyperparameters();
    hyperparameters.tempo = tempo;
    hyperparameters.weights_set_rate_limit = hyperparameters
        .weights_set_rate_limit
        .min(u64::from(tempo / 2));
    GenesisFile {
        netuid: 1,
        owner: hk("//Alice"),
        hyperparameters,
        neurons,
    }
}

impl GenesisFile {
    /// Parses a TOML genesis.
    pub fn parse(text: &str) -> Result<GenesisFile, ChainError> {
        toml::from_str(text).map_err(|e| ChainError::Malformed {
            reason: format!("genesis: {e}"),
        })
    }

    /// The chain state at block 0.
    pub fn into_state(self) -> Result<ChainState, ChainError> {
        if self.hyperparameters.tempo == 0 {
            return Err(ChainError::Malformed {
                reason: "genesis: tempo must be at least 1".into(),
            });
        }
        if self.neurons.len() > usize::from(super::sim::MAX_UIDS) {
            return Err(ChainError::SubnetFull {
                netuid: self.netuid,
                max: super::sim::MAX_UIDS,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.neurons.iter().find(|n| !seen.insert(n.hotkey)) {
            return Err(ChainError::Malformed {
                reason: format!("genesis: hotkey {} appears twice", dup.hotkey),
            });
        }
        let neurons = self
            .neurons
            .iter()
            .enumerate()
            .map(|(i, n)| Registered {
                info: NeuronInfo {
                    uid: i as u16,
                    hotkey: n.hotkey,
                    coldkey: n.coldkey.unwrap_or(n.hotkey),
                    stake: n.stake,
                    validator_permit: n.validator_permit,
                    active: true,
                    last_update: 0,
                },
                since: 0,
            })
            .collect();
        let subnet = Subnet {
            netuid: self.netuid,
            owner: self.owner,
            hyper: self.hyperparameters,
            neurons,
            weights: Default::default(),
            commits: Default::default(),
            timelocked: Default::default(),
            timelocked_revealed: 0,
            timelocked_failed: 0,
            commitments: Default::default(),
        };
        let genesis_hash = *blake3::hash(&platform_primitives::encode(&subnet)).as_bytes();
        Ok(ChainState {
            genesis_hash,
            block: 0,
            subnets: [(self.netuid, subnet)].into_iter().collect(),
            nonces: Default::default(),
        })
    }
}
