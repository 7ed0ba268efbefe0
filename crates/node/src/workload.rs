//! A small network state with registered miners and one active challenge, and signed
//! submissions to it: the workload of `platform bench mempool` and of the mempool's tests.

use anyhow::{Result, anyhow};
use platform_crypto::{Domain, Keypair};
use platform_primitives::{ChallengeId, Hash, NetUid, Submission, Uid};
use platform_state::{
    ChallengeMeta, Genesis, Lifecycle, Neuron, NoModules, Params, Resources, ScoringRule, State,
    SubmitTx, SudoAction, SudoTx, Tx,
};

/// The workload's subnet.
pub const NETUID: NetUid = NetUid(1);

/// The owner's signed `Sudo` for the network `network` (`Genesis::network_id`).
pub fn sudo(owner: &Keypair, network: &Hash, nonce: u64, action: SudoAction) -> Tx {
    let signature = owner.sign(
        Domain::Sudo,
        &SudoTx::signing_bytes(NETUID, network, nonce, &action),
    );
    Tx::Sudo(SudoTx {
        action,
        nonce,
        signer: owner.hotkey(),
        signature: Some(signature),
    })
}

/// `miner`'s signed submission to the challenge `bench` of the network `network`; its payload
/// is `nonce`'s bytes.
pub fn submission(miner: &Keypair, network: &Hash, nonce: u64) -> Tx {
    let payload = nonce.to_le_bytes();
    let submission = Submission {
        challenge: ChallengeId::new("bench").expect("valid id"),
        miner: miner.hotkey(),
        payload_hash: Hash::of(&payload),
        payload_len: payload.len() as u64,
        nonce,
    };
    let signature = miner.sign(
        Domain::Submission,
        &SubmitTx::signing_bytes(NETUID, network, &submission),
    );
    Tx::Submit(SubmitTx {
        submission,
        signature: Some(signature),
    })
}

/// One validator (the owner), `miners` registered, and the challenge `bench` published and
/// activated by the owner's `Sudo` transactions in blocks; at most `per_epoch` submissions per
/// miner per epoch.
pub fn state_with_active_challenge(
    owner: &Keypair,
    miners: &[Keypair],
    per_epoch: u32,
) -> Result<State> {
    let mut metagraph = vec![Neuron {
        uid: Uid(0),
        hotkey: owner.hotkey(),
        coldkey: owner.hotkey().0,
        stake: 1_000,
        validator_permit: true,
    }];
    for (i, m) in miners.iter().enumerate() {
        metagraph.push(Neuron {
            uid: Uid(i as u16 + 1),
            hotkey: m.hotkey(),
            coldkey: m.hotkey().0,
            stake: 0,
            validator_permit: false,
        });
    }
    let genesis = Genesis {
        netuid: NETUID,
        owner: owner.hotkey(),
        params: Params {
            max_submissions_per_epoch: per_epoch,
            ..Params::default()
        },
        chain_block: 0,
        chain_hash: Hash::of(b"bench"),
        metagraph,
        bindings: Vec::new(),
        timestamp_ms: 0,
    };
    let mut state = State::genesis(&genesis).map_err(|e| anyhow!("bench genesis: {e}"))?;
    let meta = ChallengeMeta {
        id: ChallengeId::new("bench").expect("valid id"),
        name: "bench".into(),
        version: 1,
        wasm_hash: Hash::of(b"module"),
        abi_version: platform_runtime::abi::ABI_VERSION,
        resources: Resources::default(),
        committee_size: None,
        emission_bps: 10_000,
        scoring: ScoringRule::WinnerTakesAll,
        assets: Vec::new(),
    };
    let g = genesis.network_id();
    let steps = [
        sudo(owner, &g, 1, SudoAction::Publish(meta)),
        sudo(
            owner,
            &g,
            2,
            SudoAction::Transition {
                challenge: ChallengeId::new("bench").expect("valid id"),
                to: Lifecycle::Active,
            },
        ),
    ];
    for (i, tx) in steps.into_iter().enumerate() {
        let (block, outcomes) = state.build_block(
            owner,
            platform_primitives::View(i as u64 + 1),
            0,
            vec![tx],
            &NoModules,
        );
        if let Some((_, Err(e))) = outcomes.first() {
            return Err(anyhow!("setting up the challenge: {e}"));
        }
        state
            .apply_block(&block, &NoModules)
            .map_err(|e| anyhow!("setting up the challenge: {e:?}"))?;
    }
    Ok(state)
}
