//! The dev network's genesis: the LocalChain dev metagraph (`//Alice` … `//Dave`, then
//! `//Validator5` … `//Validator64` as validators, `//Miner1` … `//MinerN`), with the
//! validators' BLS keys and libp2p identities bound.

use anyhow::{Context, Result, bail};
use platform_chain::local::genesis as chain_genesis;
use platform_crypto::{Domain, Keypair, parse_suri};
use platform_primitives::{Hash, NetUid, Uid, decode, encode};
use platform_state::{BindKeysTx, Genesis, Neuron, Params, State};

/// The largest genesis file read.
const MAX_GENESIS_BYTES: usize = 16 << 20;

/// The dev URIs of the first `validators` dev validators, in default stake order.
pub fn dev_validator_uris(validators: usize) -> Vec<String> {
    (0..validators)
        .map(|i| chain_genesis::dev_validator(i).0)
        .collect()
}

/// A validator's key binding: its BLS key (derived from the hotkey seed) with proof of
/// possession, and its libp2p peer id, signed by the hotkey.
pub fn binding(key: &Keypair, netuid: NetUid) -> Result<BindKeysTx> {
    let bls = key
        .derive_bls_key()
        .context("the hotkey has no seed to derive a BLS key from")?;
    let bls_key = bls.public();
    let pop = bls.prove_possession();
    let peer_id = platform_network::identity_from_hotkey(key)
        .public()
        .to_peer_id()
        .to_bytes();
    let signature = key.sign(
        Domain::BindKeys,
        &BindKeysTx::signing_bytes(netuid, &bls_key, &pop, &peer_id),
    );
    Ok(BindKeysTx {
        hotkey: key.hotkey(),
        bls_key,
        pop,
        peer_id,
        signature: Some(signature),
    })
}

/// The dev genesis with the first `validators` dev validators bound (1 to 64). The metagraph is
/// LocalChain's dev genesis; `chain_hash` is the blake3 of that metagraph (the dev chain's block
/// 0 carries no hash of its own). `block_ms` sets how many blocks a committee member has to
/// attest before it is replaced: about 20 seconds' worth, and at least 30 blocks (evaluations
/// compile the module first).
pub fn dev(validators: usize, timestamp_ms: u64, block_ms: u64) -> Result<Genesis> {
    dev_with_miners(
        validators,
        chain_genesis::DEV_MINERS,
        &[],
        timestamp_ms,
        block_ms,
    )
}

/// [`dev`] with `miners` registered miners (1 to 256 less the registered validators) and the
/// first validators' stakes in TAO (`stakes`; the rest keep their defaults); LocalChain must be
/// started with the same numbers (`platform localchain --dev --validators --miners --stakes`).
pub fn dev_with_miners(
    validators: usize,
    miners: usize,
    stakes: &[u64],
    timestamp_ms: u64,
    block_ms: u64,
) -> Result<Genesis> {
    check_dev_network(validators, miners, stakes)?;
    let uris = dev_validator_uris(validators);
    let chain = chain_genesis::dev_network_with_stakes(
        validators,
        miners,
        chain_genesis::dev_hyperparameters().tempo,
        stakes,
    );
    let netuid = NetUid(chain.netuid);
    let metagraph: Vec<Neuron> = chain
        .neurons
        .iter()
        .enumerate()
        .map(|(i, n)| Neuron {
            uid: Uid(i as u16),
            hotkey: n.hotkey,
            coldkey: n.coldkey.unwrap_or(n.hotkey).0,
            stake: n.stake,
            // Validators beyond the requested number keep their stake but not their permit.
            validator_permit: n.validator_permit,
        })
        .collect();
    let bindings = uris[..validators]
        .iter()
        .map(|uri| binding(&parse_suri(uri).expect("dev URIs parse"), netuid))
        .collect::<Result<Vec<_>>>()?;
    let genesis = Genesis {
        netuid,
        owner: chain.owner,
        params: Params {
            attest_timeout_blocks: (20_000 / block_ms.max(1)).max(30),
            // Short devnet epochs: keep two closed epochs of settled records.
            retain_epochs: 2,
            ..Params::default()
        },
        chain_block: 0,
        chain_hash: Hash::of(&encode(&metagraph)),
        metagraph,
        bindings,
        timestamp_ms,
    };
    State::genesis(&genesis).map_err(|e| anyhow::anyhow!("the dev genesis is invalid: {e}"))?;
    Ok(genesis)
}

/// Checks a dev network's shape: 1 to 64 validators, miners within the subnet's 256 UIDs, at
/// most one stake per validator, each above zero.
pub fn check_dev_network(validators: usize, miners: usize, stakes: &[u64]) -> Result<()> {
    if validators == 0 || validators > chain_genesis::MAX_DEV_VALIDATORS {
        bail!(
            "a dev network has 1 to {} validators (//Alice, //Bob, //Charlie, //Dave, then \
             //Validator5 …); asked for {validators}",
            chain_genesis::MAX_DEV_VALIDATORS
        );
    }
    let max_miners = chain_genesis::max_dev_miners(validators);
    if miners == 0 || miners > max_miners {
        bail!(
            "with {validators} validators a dev network registers 1 to {max_miners} miners (256 \
             UIDs in all); asked for {miners}"
        );
    }
    if stakes.len() > validators {
        bail!(
            "{} stakes for {validators} validators: give at most one per validator",
            stakes.len()
        );
    }
    if stakes.contains(&0) {
        bail!("a validator's stake must be above zero TAO");
    }
    Ok(())
}

/// Reads a genesis file (Borsh, size-limited, no trailing bytes).
pub fn load(path: &std::path::Path) -> Result<Genesis> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read genesis {}", path.display()))?;
    decode("genesis", &bytes, MAX_GENESIS_BYTES)
        .with_context(|| format!("genesis {} is invalid", path.display()))
}

/// Writes a genesis file.
pub fn save(genesis: &Genesis, path: &std::path::Path) -> Result<()> {
    platform_storage::write_atomic(path, &encode(genesis), 0o644)
        .with_context(|| format!("cannot write genesis {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_genesis_binds_the_requested_validators() {
        let g = dev(3, 0, 1000).unwrap();
        assert_eq!(g.bindings.len(), 3);
        let state = State::genesis(&g).unwrap();
        let validators = state.current_epoch().validators;
        assert_eq!(
            validators.len(),
            3,
            "Dave has no permit with three validators"
        );
        // Past the named four, generated validators; past 64, none.
        let large = dev(9, 0, 1000).unwrap();
        assert_eq!(large.bindings.len(), 9);
        assert_eq!(
            State::genesis(&large)
                .unwrap()
                .current_epoch()
                .validators
                .len(),
            9
        );
        assert!(dev(65, 0, 1000).is_err());
        assert!(dev_with_miners(64, 193, &[], 0, 1000).is_err());
        assert!(dev_with_miners(4, 8, &[1, 0], 0, 1000).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genesis.bin");
        save(&g, &path).unwrap();
        assert_eq!(load(&path).unwrap(), g);
    }
}
