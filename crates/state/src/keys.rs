//! The layout of state keys: one tag byte per table, then the key parts. Variable-length parts
//! (challenge ids) carry a length byte so that one table's keys never prefix another's; numbers
//! that must sort (heights, epochs) are big-endian.

use platform_primitives::{ChallengeId, Epoch, Hash, Height, Hotkey, SubmissionId};

pub const META: u8 = 0x00;
pub const PARAMS: u8 = 0x01;
pub const CHALLENGE: u8 = 0x02;
pub const CHALLENGE_KV: u8 = 0x03;
pub const SUBMISSION: u8 = 0x04;
pub const PAYLOAD: u8 = 0x05;
pub const MINER_NONCE: u8 = 0x06;
pub const MINER_COUNT: u8 = 0x07;
pub const VALIDATOR_KEYS: u8 = 0x08;
pub const JAIL: u8 = 0x09;
pub const EPOCH: u8 = 0x0a;
pub const SCORE: u8 = 0x0b;
pub const DEADLINE: u8 = 0x0c;
pub const CREDIT: u8 = 0x0d;
pub const EVIDENCE: u8 = 0x0e;
pub const EQUIVOCATION: u8 = 0x0f;
pub const ASSETS_READY: u8 = 0x10;

fn challenge_part(k: &mut Vec<u8>, id: &ChallengeId) {
    k.push(id.as_str().len() as u8);
    k.extend(id.as_str().as_bytes());
}

pub fn meta() -> Vec<u8> {
    vec![META]
}

pub fn params() -> Vec<u8> {
    vec![PARAMS]
}

pub fn challenge(id: &ChallengeId) -> Vec<u8> {
    let mut k = vec![CHALLENGE];
    challenge_part(&mut k, id);
    k
}

pub fn assets_ready(id: &ChallengeId) -> Vec<u8> {
    let mut k = vec![ASSETS_READY];
    challenge_part(&mut k, id);
    k
}

pub fn challenge_kv_prefix(id: &ChallengeId) -> Vec<u8> {
    let mut k = vec![CHALLENGE_KV];
    challenge_part(&mut k, id);
    k
}

pub fn challenge_kv(id: &ChallengeId, key: &[u8]) -> Vec<u8> {
    let mut k = challenge_kv_prefix(id);
    k.extend(key);
    k
}

pub fn submission(id: &SubmissionId) -> Vec<u8> {
    let mut k = vec![SUBMISSION];
    k.extend(id.0.0);
    k
}

pub fn payload(challenge: &ChallengeId, payload: &Hash) -> Vec<u8> {
    let mut k = vec![PAYLOAD];
    challenge_part(&mut k, challenge);
    k.extend(payload.0);
    k
}

pub fn miner_nonce(miner: &Hotkey) -> Vec<u8> {
    let mut k = vec![MINER_NONCE];
    k.extend(miner.0);
    k
}

pub fn miner_count_prefix(epoch: Epoch) -> Vec<u8> {
    let mut k = vec![MINER_COUNT];
    k.extend(epoch.0.to_be_bytes());
    k
}

pub fn miner_count(epoch: Epoch, challenge: &ChallengeId, miner: &Hotkey) -> Vec<u8> {
    let mut k = miner_count_prefix(epoch);
    challenge_part(&mut k, challenge);
    k.extend(miner.0);
    k
}

pub fn validator_keys(hotkey: &Hotkey) -> Vec<u8> {
    let mut k = vec![VALIDATOR_KEYS];
    k.extend(hotkey.0);
    k
}

pub fn jail(hotkey: &Hotkey) -> Vec<u8> {
    let mut k = vec![JAIL];
    k.extend(hotkey.0);
    k
}

pub fn epoch(epoch: Epoch) -> Vec<u8> {
    let mut k = vec![EPOCH];
    k.extend(epoch.0.to_be_bytes());
    k
}

pub fn score_prefix(challenge: &ChallengeId) -> Vec<u8> {
    let mut k = vec![SCORE];
    challenge_part(&mut k, challenge);
    k
}

pub fn score(challenge: &ChallengeId, miner: &Hotkey) -> Vec<u8> {
    let mut k = score_prefix(challenge);
    k.extend(miner.0);
    k
}

pub fn deadline(height: Height, submission: &SubmissionId) -> Vec<u8> {
    let mut k = vec![DEADLINE];
    k.extend(height.0.to_be_bytes());
    k.extend(submission.0.0);
    k
}

pub fn credit(epoch: Epoch, hotkey: &Hotkey) -> Vec<u8> {
    let mut k = vec![CREDIT];
    k.extend(epoch.0.to_be_bytes());
    k.extend(hotkey.0);
    k
}

pub fn equivocation(hotkey: &Hotkey, epoch: Epoch, view: platform_primitives::View) -> Vec<u8> {
    let mut k = vec![EQUIVOCATION];
    k.extend(hotkey.0);
    k.extend(epoch.0.to_be_bytes());
    k.extend(view.0.to_be_bytes());
    k
}

pub fn evidence(hotkey: &Hotkey, submission: &SubmissionId) -> Vec<u8> {
    let mut k = vec![EVIDENCE];
    k.extend(hotkey.0);
    k.extend(submission.0.0);
    k
}
