//! Genesis files, and the two ways of making one.
//!
//! - **The dev network's** ([`dev`]): the LocalChain dev metagraph (`//Alice` … `//Dave`, then
//!   `//Validator5` … `//Validator64` as validators, `//Miner1` … `//MinerN`), with the
//!   validators' BLS keys and libp2p identities bound.
//! - **From the chain** ([`from_chain`]): the subnet as the chain has it at an agreed block —
//!   metagraph, owner, and the key binding of every permitted validator that published a
//!   [`PeerRecord`] (its commitment on the subnet) by then. Every node derives the same genesis
//!   from the same block, so no file needs passing around; the records' addresses replace a
//!   bootstrap list.

use anyhow::{Context, Result, bail};
use borsh::{BorshDeserialize, BorshSerialize};
use platform_chain::local::genesis as chain_genesis;
use platform_chain::{AnyChain, Chain};
use platform_crypto::{BlsPublicKey, BlsSignature, Domain, Keypair, Signature, parse_suri};
use platform_primitives::{Hash, Hotkey, NetUid, Uid, decode, encode};
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

/// What a validator publishes on chain (its commitment on the subnet) so that peers can bind
/// its keys and reach it: the key binding its hotkey signed and the addresses it listens on.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PeerRecord {
    /// Format version ([`PeerRecord::VERSION`]).
    pub version: u8,
    /// Its BLS public key.
    pub bls_key: BlsPublicKey,
    /// Proof of possession of the BLS secret key.
    pub pop: BlsSignature,
    /// Its libp2p peer id (bytes).
    pub peer_id: Vec<u8>,
    /// The hotkey's signature (domain `BindKeys`) over the binding.
    pub signature: Signature,
    /// Multiaddresses it listens on (`/ip4/…/tcp/…`), at most [`PeerRecord::MAX_ADDRS`].
    pub addrs: Vec<String>,
}

impl PeerRecord {
    /// The format written.
    pub const VERSION: u8 = 1;
    /// Most addresses a record carries.
    pub const MAX_ADDRS: usize = 2;

    /// `key`'s record for subnet `netuid`, listening on `addrs`.
    pub fn new(key: &Keypair, netuid: NetUid, addrs: Vec<String>) -> Result<PeerRecord> {
        let b = binding(key, netuid)?;
        Ok(PeerRecord {
            version: Self::VERSION,
            bls_key: b.bls_key,
            pop: b.pop,
            peer_id: b.peer_id,
            signature: b.signature.expect("binding signs"),
            addrs: addrs.into_iter().take(Self::MAX_ADDRS).collect(),
        })
    }

    /// The encoded record, within the chain's commitment size.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let bytes = encode(self);
        if bytes.len() > platform_chain::MAX_COMMITMENT_BYTES {
            bail!(
                "the peer record is {} bytes, over the chain's {} for a commitment (shorter \
                 listen addresses help)",
                bytes.len(),
                platform_chain::MAX_COMMITMENT_BYTES
            );
        }
        Ok(bytes)
    }

    /// A record from a commitment's bytes (size-limited, no trailing bytes, known version).
    pub fn decode(bytes: &[u8]) -> Result<PeerRecord> {
        let r: PeerRecord = decode("peer record", bytes, platform_chain::MAX_COMMITMENT_BYTES)?;
        if r.version != Self::VERSION || r.addrs.len() > Self::MAX_ADDRS {
            bail!("not a version-1 peer record");
        }
        Ok(r)
    }

    /// The key binding it carries for `hotkey`, if its signature and proof of possession
    /// verify for subnet `netuid`.
    pub fn binding(&self, hotkey: Hotkey, netuid: NetUid) -> Option<BindKeysTx> {
        let message = BindKeysTx::signing_bytes(netuid, &self.bls_key, &self.pop, &self.peer_id);
        platform_crypto::sr25519::verify(&hotkey, Domain::BindKeys, &message, &self.signature)
            .ok()?;
        self.bls_key.verify_possession(&self.pop).ok()?;
        Some(BindKeysTx {
            hotkey,
            bls_key: self.bls_key,
            pop: self.pop,
            peer_id: self.peer_id.clone(),
            signature: Some(self.signature),
        })
    }
}

/// The valid peer records of subnet `netuid` as of chain block `block` (the head when `None`):
/// each with the binding it proves and its addresses. Commitments that are not a record, or
/// whose signatures do not verify, are skipped.
pub async fn peer_records(
    chain: &AnyChain,
    netuid: NetUid,
    block: Option<u64>,
) -> Result<Vec<(BindKeysTx, Vec<String>)>> {
    let commitments = chain
        .commitments(netuid.0, block)
        .await
        .context("reading the validators' peer records from the chain")?;
    Ok(commitments
        .into_iter()
        .filter_map(|c| {
            let record = PeerRecord::decode(&c.data).ok()?;
            let binding = record.binding(c.hotkey, netuid)?;
            Some((binding, record.addrs))
        })
        .collect())
}

/// The genesis of subnet `netuid` as the chain has it at `block`: the metagraph, the subnet
/// owner, and the bindings of the permitted validators whose peer records were on chain by
/// then. Deterministic: every node derives the same genesis from the same block. Platform's
/// default parameters; genesis time 0 (block times start with the first block).
pub async fn from_chain(chain: &AnyChain, netuid: NetUid, block: u64) -> Result<Genesis> {
    let at = chain
        .block(block)
        .await
        .with_context(|| format!("reading chain block {block}"))?;
    let infos = chain
        .metagraph(netuid.0, Some(block))
        .await
        .with_context(|| format!("reading subnet {} at block {block}", netuid.0))?;
    let metagraph = crate::chain_watch::to_neurons(&infos);
    let owner = chain.subnet_owner(netuid.0).await?;
    let permitted: Vec<Hotkey> = metagraph
        .iter()
        .filter(|n| n.validator_permit)
        .map(|n| n.hotkey)
        .collect();
    let bindings: Vec<BindKeysTx> = peer_records(chain, netuid, Some(block))
        .await?
        .into_iter()
        .map(|(b, _)| b)
        .filter(|b| permitted.contains(&b.hotkey))
        .collect();
    if bindings.is_empty() {
        bail!(
            "no validator of subnet {} had published its peer record by block {block}: start \
             the validators (`platform run` publishes it) before the chain reaches that block",
            netuid.0
        );
    }
    let genesis = Genesis {
        netuid,
        owner,
        params: Params::default(),
        chain_block: block,
        chain_hash: Hash(at.hash),
        metagraph,
        bindings,
        timestamp_ms: 0,
    };
    State::genesis(&genesis)
        .map_err(|e| anyhow::anyhow!("the chain's subnet makes no valid genesis: {e}"))?;
    Ok(genesis)
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

    /// A peer record round-trips within the chain's commitment size and proves its binding
    /// for its own hotkey and subnet only; tampering, trailing bytes and unknown versions are
    /// refused.
    #[test]
    fn a_peer_record_proves_its_binding_for_its_hotkey_only() {
        let alice = parse_suri("//Alice").unwrap();
        let netuid = NetUid(1);
        let record =
            PeerRecord::new(&alice, netuid, vec!["/ip4/10.0.0.1/tcp/30333".into()]).unwrap();
        let bytes = record.encode().unwrap();
        assert!(bytes.len() <= platform_chain::MAX_COMMITMENT_BYTES);
        let back = PeerRecord::decode(&bytes).unwrap();
        assert_eq!(back, record);
        let b = back
            .binding(alice.hotkey(), netuid)
            .expect("a valid binding");
        // sr25519 signatures are randomized: the same keys, the record's own signature.
        let fresh = binding(&alice, netuid).unwrap();
        assert_eq!(
            (b.bls_key, b.pop, &b.peer_id),
            (fresh.bls_key, fresh.pop, &fresh.peer_id)
        );
        assert_eq!(b.signature, Some(record.signature));
        let bob = parse_suri("//Bob").unwrap().hotkey();
        assert!(
            back.binding(bob, netuid).is_none(),
            "claimed by another hotkey"
        );
        assert!(
            back.binding(alice.hotkey(), NetUid(2)).is_none(),
            "another subnet"
        );
        let mut forged = back.clone();
        forged.peer_id[0] ^= 1;
        assert!(forged.binding(alice.hotkey(), netuid).is_none());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(PeerRecord::decode(&trailing).is_err());
        let mut other = record;
        other.version = 2;
        assert!(PeerRecord::decode(&encode(&other)).is_err());
    }
}
