//! A small network for state-machine tests: four validators with bound BLS keys, three miners,
//! and a WAT challenge whose score is the first eight payload bytes.

#![allow(dead_code)]

use platform_crypto::{BlsSecretKey, BlsSignature, Domain, Keypair, SignerBitmap};
use platform_primitives::{
    ChallengeId, Epoch, Hash, Height, Hotkey, NetUid, Submission, SubmissionId, Uid, View,
};
use platform_runtime::{Allocation, EvalInput, Runtime};
use platform_state::records::Genesis;
use platform_state::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Scores a payload by its first eight bytes (little-endian u64) and counts evaluations in KV.
pub const SCORE_WAT: &str = r#"(module
  (import "challenge_v1" "input_read" (func $in (param i32 i32 i32) (result i32)))
  (import "challenge_v1" "output_write" (func $out (param i32 i32) (result i32)))
  (import "challenge_v1" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 512) "evaluated")
  (func (export "evaluate") (param $len i32) (result i32)
    (drop (call $in (i32.const 0) (i32.const 0) (local.get $len)))
    (drop (call $put (i32.const 512) (i32.const 9) (i32.const 12) (i32.const 8)))
    (i64.store (i32.const 256) (i64.load (i32.const 12)))
    (i32.store (i32.const 264) (i32.const 0))
    (drop (call $out (i32.const 256) (i32.const 12)))
    (i32.const 0))
  (@custom "challenge_abi" "\01\00\00\00"))"#;

pub const NETUID: NetUid = NetUid(1);

pub struct Node {
    pub key: Keypair,
    pub bls: BlsSecretKey,
}

pub struct Net {
    pub state: State,
    pub validators: Vec<Node>,
    pub miners: Vec<Keypair>,
    pub owner: Keypair,
    pub runtime: Runtime,
    pub module: Vec<u8>,
    pub sudo_nonce: u64,
    pub miner_nonce: BTreeMap<Hotkey, u64>,
    pub clock: u64,
    /// Every block applied through [`Net::apply`].
    pub log: Vec<Block>,
    /// The genesis (its bindings carry randomized signatures, so keep the one used).
    pub genesis: Genesis,
}

pub fn bind(k: &Keypair, bls: &BlsSecretKey) -> BindKeysTx {
    let bls_key = bls.public();
    let pop = bls.prove_possession();
    let peer_id = vec![9; 38];
    BindKeysTx {
        hotkey: k.hotkey(),
        bls_key,
        pop,
        signature: Some(k.sign(
            Domain::BindKeys,
            &BindKeysTx::signing_bytes(NETUID, &bls_key, &pop, &peer_id),
        )),
        peer_id,
    }
}

pub fn genesis(
    validators: &[Node],
    miners: &[Keypair],
    owner: &Keypair,
    params: Params,
) -> Genesis {
    let mut metagraph = Vec::new();
    for (i, v) in validators.iter().enumerate() {
        metagraph.push(Neuron {
            uid: Uid(metagraph.len() as u16),
            hotkey: v.key.hotkey(),
            coldkey: [0; 32],
            stake: 1000 * (4 - i as u64) + 1000,
            validator_permit: true,
        });
    }
    for m in miners {
        metagraph.push(Neuron {
            uid: Uid(metagraph.len() as u16),
            hotkey: m.hotkey(),
            coldkey: [0; 32],
            stake: 0,
            validator_permit: false,
        });
    }
    Genesis {
        netuid: NETUID,
        owner: owner.hotkey(),
        params,
        chain_block: 10,
        chain_hash: Hash::of(b"chain 10"),
        metagraph,
        bindings: validators.iter().map(|v| bind(&v.key, &v.bls)).collect(),
        timestamp_ms: 1_000,
    }
}

impl Net {
    pub fn new(params: Params) -> Net {
        Net::with_genesis(params, |_| {})
    }

    /// A network whose genesis `edit` changed first (say, a validator left unbound).
    pub fn with_genesis(params: Params, edit: impl FnOnce(&mut Genesis)) -> Net {
        let validators: Vec<Node> = (1..=4u8)
            .map(|i| {
                let key = Keypair::from_seed(&[i; 32]);
                let bls = key.derive_bls_key().unwrap();
                Node { key, bls }
            })
            .collect();
        let miners: Vec<Keypair> = (11..=13u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let owner = Keypair::from_seed(&[1; 32]);
        let mut genesis = genesis(&validators, &miners, &owner, params);
        edit(&mut genesis);
        let state = State::genesis(&genesis).unwrap();
        let module = wat::parse_str(SCORE_WAT).unwrap();
        Net {
            state,
            validators,
            miners,
            owner,
            runtime: Runtime::new(Resources::default().policy(), Allocation::OnDemand).unwrap(),
            module,
            sudo_nonce: 0,
            miner_nonce: BTreeMap::new(),
            clock: 1_000,
            log: Vec::new(),
            genesis,
        }
    }

    /// A network with challenge "score" published and active.
    pub fn with_challenge(params: Params, committee_size: Option<u16>) -> Net {
        let mut net = Net::new(params);
        let meta = net.meta("score", committee_size);
        let publish = net.sudo(SudoAction::Publish(meta));
        net.apply(vec![publish]).unwrap();
        let activate = net.sudo(SudoAction::Transition {
            challenge: id("score"),
            to: Lifecycle::Active,
        });
        net.apply(vec![activate]).unwrap();
        net
    }

    pub fn meta(&self, name: &str, committee_size: Option<u16>) -> ChallengeMeta {
        ChallengeMeta {
            id: id(name),
            name: name.into(),
            version: 1,
            wasm_hash: Hash::of(&self.module),
            abi_version: 1,
            resources: Resources {
                max_payload_bytes: 1024,
                ..Resources::default()
            },
            committee_size,
            emission_bps: 8_000,
            scoring: ScoringRule::WinnerTakesAll,
            assets: vec![],
        }
    }

    pub fn sudo(&mut self, action: SudoAction) -> Tx {
        self.sudo_nonce += 1;
        sudo_by(
            &self.owner,
            &self.state.meta().network_id,
            self.sudo_nonce,
            action,
        )
    }

    pub fn submit(&mut self, miner: usize, payload: &[u8]) -> (Tx, SubmissionId) {
        let k = &self.miners[miner];
        let nonce = self.miner_nonce.entry(k.hotkey()).or_default();
        *nonce += 1;
        let submission = Submission {
            challenge: id("score"),
            miner: k.hotkey(),
            payload_hash: Hash::of(payload),
            payload_len: payload.len() as u64,
            nonce: *nonce,
        };
        let sig = k.sign(
            Domain::Submission,
            &SubmitTx::signing_bytes(NETUID, &self.state.meta().network_id, &submission),
        );
        let sid = submission.id();
        (
            Tx::Submit(SubmitTx {
                submission,
                signature: Some(sig),
            }),
            sid,
        )
    }

    pub fn proposer(&self) -> &Keypair {
        let h = self.state.meta().height.0 as usize;
        &self.validators[h % self.validators.len()].key
    }

    /// A block holding exactly `txs` (no filtering), from the next proposer.
    pub fn block(&mut self, txs: Vec<Tx>) -> Block {
        self.clock += 1_000;
        let meta = self.state.meta();
        let height = Height(meta.height.0 + 1);
        let proposer = &self.validators[(height.0 as usize) % self.validators.len()].key;
        let (_, beacon) =
            proposer.vrf_prove(&BlockHeader::beacon_input(NETUID, meta.epoch, height));
        let state_root = self.state.root();
        Block {
            header: BlockHeader {
                height,
                view: View(height.0),
                parent: self.state.last_block(),
                state_root,
                proposer: proposer.hotkey(),
                timestamp_ms: self.clock,
                beacon,
                tx_root: Block::tx_root(&txs),
            },
            txs,
        }
    }

    pub fn apply(&mut self, txs: Vec<Tx>) -> Result<Applied, BlockError> {
        let b = self.block(txs);
        let r = self.state.apply_block(&b, &NoModules);
        if r.is_ok() {
            self.log.push(b);
        }
        r
    }

    /// Evaluates a submission as its committee would and returns the result and the attest
    /// signature of each member.
    pub fn evaluate(
        &self,
        sid: &SubmissionId,
        payload: &[u8],
    ) -> (ResultBody, Vec<(usize, Attest)>) {
        let r = self.state.submission(sid).unwrap();
        let module = self.runtime.load(&self.module).unwrap();
        let (_, e, _) = self.runtime.validate_and_evaluate(
            &module,
            &EvalInput {
                seed: r.seed,
                payload: payload.to_vec(),
            },
            Arc::new(self.state.challenge_kv(&id("score"))),
            Arc::new(vec![]),
        );
        let body = ResultBody {
            outcome: e.outcome,
            output: e.output,
            write_set: e.write_set,
            fuel_used: e.fuel_used,
            engine_hash: self.runtime.engine_hash(),
        };
        let digest = body.digest();
        let attests = r
            .committee
            .iter()
            .enumerate()
            .map(|(i, hk)| (i, self.attest(hk, sid, digest)))
            .collect();
        (body, attests)
    }

    pub fn attest(&self, hk: &Hotkey, sid: &SubmissionId, digest: Hash) -> Attest {
        let v = self
            .validators
            .iter()
            .find(|v| v.key.hotkey() == *hk)
            .unwrap();
        Attest {
            submission: *sid,
            evaluator: *hk,
            digest,
            signature: v.bls.sign(&Attest::message(NETUID, sid, &digest)),
        }
    }

    /// A certificate signed by the members at `indexes` of the committee.
    pub fn certify(
        &self,
        sid: &SubmissionId,
        body: &ResultBody,
        attests: &[(usize, Attest)],
        indexes: &[usize],
    ) -> Tx {
        let n = self.state.submission(sid).unwrap().committee.len();
        let mut signers = SignerBitmap::new(n);
        let mut sigs = Vec::new();
        for (i, a) in attests {
            if indexes.contains(i) {
                signers.set(*i);
                sigs.push(a.signature);
            }
        }
        Tx::Certify(CertifyTx {
            submission: *sid,
            result: body.clone(),
            signers,
            signature: BlsSignature::aggregate(&sigs).unwrap(),
        })
    }

    pub fn anchor(&self) -> Tx {
        let current = self.state.current_epoch();
        Tx::EpochAnchor(EpochAnchor {
            epoch: Epoch(current.epoch.0 + 1),
            chain_block: current.chain_block + 360,
            chain_hash: Hash::of(&(current.chain_block + 360).to_le_bytes()),
            metagraph: current.metagraph,
        })
    }
}

/// `k`'s signed `Sudo` for the network `network` (`Genesis::network_id`).
pub fn sudo_by(k: &Keypair, network: &Hash, nonce: u64, action: SudoAction) -> Tx {
    let sig = k.sign(
        Domain::Sudo,
        &SudoTx::signing_bytes(NETUID, network, nonce, &action),
    );
    Tx::Sudo(SudoTx {
        action,
        nonce,
        signer: k.hotkey(),
        signature: Some(sig),
    })
}

pub fn id(s: &str) -> ChallengeId {
    ChallengeId::new(s).unwrap()
}

pub fn score_payload(score: u64) -> Vec<u8> {
    let mut p = score.to_le_bytes().to_vec();
    p.extend(b"payload");
    p
}
