//! Timelock encryption to a drand round, in the wire format subtensor decrypts.
//!
//! A drand beacon signs each round number with one BLS key (the "quicknet" network: signatures in
//! G1, the public key in G2, one round every 3 s). The signature of round `n` is, by construction,
//! the Boneh–Franklin identity secret of the identity `sha256(n as big-endian u64)`. So anyone can
//! encrypt to round `n` today with only the beacon's public key, and anyone can decrypt once the
//! beacon publishes round `n`. Subtensor's timelocked weight commits (commit-reveal version 4) are
//! exactly this: the validator encrypts its weights to a future round, and the chain decrypts them
//! itself when that round's signature reaches it.
//!
//! The construction and byte layout are those of the `tle` crate (ideal-lab5/timelock, the
//! revision subtensor and the Python package `bittensor-drand` build on), which serializes with
//! arkworks' canonical compressed encoding:
//!
//! ```text
//! ciphertext = U (G2, 96 bytes compressed)
//!            ‖ u64le(32) ‖ V      V = σ ⊕ sha256(gt(e(Q_id, r·P)))
//!            ‖ u64le(32) ‖ W      W = k ⊕ sha256(σ)
//!            ‖ u64le(|B|) ‖ B     B = u64le(|C|) ‖ C ‖ u64le(12) ‖ nonce
//!            ‖ u64le(8) ‖ "AES_GCM_"
//! r   = sha256(σ ‖ k) mod q,  U = r·G2
//! C   = AES-256-GCM(key k, nonce, no associated data) of the plaintext, tag appended
//! Q_id = hash_to_G1(sha256(round_be), DST = "BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_")
//! gt(x) = the 12 base-field coordinates of x, c0 before c1 at each level, each 48 bytes
//!         little-endian (arkworks' order)
//! ```
//!
//! Decryption recomputes `σ` from `e(signature, U)`, `k` from `W`, and checks `r·G2 = U` before
//! it opens the body, so a wrong round signature or a tampered header is refused rather than
//! yielding garbage. Every length is checked against the bytes present and trailing bytes are
//! refused.
//!
//! Cross-implementation vectors (ciphertexts from `bittensor-drand`, decrypted here with a
//! genuine quicknet signature, and ours decrypted there) are in
//! `crates/chain/tests/vectors/tlock.json`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use blst::min_sig::{PublicKey, SecretKey, Signature};
use blst::{BLST_ERROR, blst_fp12, blst_p1_affine, blst_p2_affine};
use sha2::{Digest, Sha256};

/// Hash-to-curve domain of drand's quicknet (RFC 9380 suite for G1 signatures).
pub const QUICKNET_DST: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";
/// Quicknet's public key (G2, compressed), as published by drand.
pub const QUICKNET_PUBLIC_KEY_HEX: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
/// Quicknet's genesis, Unix seconds: round 1 was signed at this time.
pub const QUICKNET_GENESIS_SECS: u64 = 1_692_803_367;
/// Seconds between quicknet rounds.
pub const QUICKNET_PERIOD_SECS: u64 = 3;
/// The cipher suite tag `tle` writes.
const CIPHER_SUITE: &[u8] = b"AES_GCM_";
/// Largest ciphertext [`decrypt`] reads (subtensor's own cap on a commit is far smaller).
pub const MAX_CIPHERTEXT_BYTES: usize = 64 * 1024;
/// Bytes a ciphertext adds to its plaintext: U, V, W, the AES tag, the nonce and the framing.
pub const OVERHEAD_BYTES: usize = 96 + 8 + 32 + 8 + 32 + 8 + 8 + 16 + 8 + 12 + 8 + 8;
const NONCE_BYTES: usize = 12;

/// Why a timelock operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimelockError {
    /// The ciphertext's framing is wrong (a length, a tag, trailing bytes).
    #[error("malformed timelock ciphertext: {0}")]
    Malformed(&'static str),
    /// Larger than [`MAX_CIPHERTEXT_BYTES`].
    #[error("timelock ciphertext of {0} bytes exceeds the {MAX_CIPHERTEXT_BYTES}-byte limit")]
    TooLarge(usize),
    /// A curve point does not decode or is not in its subgroup.
    #[error("invalid BLS12-381 point in {0}")]
    BadPoint(&'static str),
    /// The signature is not the one for the round this was encrypted to (or the header was
    /// tampered with).
    #[error("the signature does not open this ciphertext (wrong round, or a tampered header)")]
    WrongSignature,
    /// The header opened but the body does not authenticate.
    #[error("the ciphertext body does not authenticate")]
    BodyRejected,
}

/// A beacon's public key (G2).
#[derive(Clone, Debug)]
pub struct BeaconKey(PublicKey);

impl BeaconKey {
    /// Drand quicknet, the beacon subtensor ingests.
    pub fn quicknet() -> Self {
        let bytes = hex::decode(QUICKNET_PUBLIC_KEY_HEX).expect("constant hex");
        Self::from_bytes(&bytes).expect("quicknet's published key is a valid G2 point")
    }

    /// Decodes a compressed G2 key, checking it is in the subgroup and not the identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TimelockError> {
        PublicKey::key_validate(bytes)
            .map(Self)
            .map_err(|_| TimelockError::BadPoint("beacon public key"))
    }

    /// The compressed encoding.
    pub fn to_bytes(&self) -> [u8; 96] {
        self.0.compress()
    }
}

/// A beacon's signature of one round (G1): the key that opens ciphertexts for that round.
#[derive(Clone, Debug)]
pub struct RoundSignature(Signature);

impl RoundSignature {
    /// Decodes a compressed G1 signature, checking it is in the subgroup and not the identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TimelockError> {
        Signature::sig_validate(bytes, true)
            .map(Self)
            .map_err(|_| TimelockError::BadPoint("round signature"))
    }

    /// The compressed encoding.
    pub fn to_bytes(&self) -> [u8; 48] {
        self.0.compress()
    }

    /// Whether this is `key`'s signature of `round`.
    pub fn verify(&self, key: &BeaconKey, round: u64) -> bool {
        self.0.verify(
            true,
            &round_message(round),
            QUICKNET_DST,
            &[],
            &key.0,
            false,
        ) == BLST_ERROR::BLST_SUCCESS
    }
}

/// A beacon's secret key. Only test beacons have one here: LocalChain signs its own rounds with
/// it so the devnet exercises the timelocked path end to end.
pub struct BeaconSecret(SecretKey);

impl BeaconSecret {
    /// A key derived from a 32-byte seed (BLS `KeyGen`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SecretKey::key_gen(seed, &[]).expect("a 32-byte seed is long enough"))
    }

    /// The matching public key.
    pub fn public(&self) -> BeaconKey {
        BeaconKey(self.0.sk_to_pk())
    }

    /// The signature of `round`, as drand computes it.
    pub fn sign_round(&self, round: u64) -> RoundSignature {
        RoundSignature(self.0.sign(&round_message(round), QUICKNET_DST, &[]))
    }
}

/// The random values one encryption uses. Fresh ones come from the OS; tests and vectors fix them.
#[derive(Clone, Debug)]
pub struct Randomness {
    /// The AES-256 key of the body (what the header hides).
    pub key: [u8; 32],
    /// Boneh–Franklin's `σ`.
    pub sigma: [u8; 32],
    /// The AES-GCM nonce.
    pub nonce: [u8; NONCE_BYTES],
}

impl Randomness {
    /// Fresh values from the operating system.
    pub fn fresh() -> Self {
        let mut r = Self {
            key: [0; 32],
            sigma: [0; 32],
            nonce: [0; NONCE_BYTES],
        };
        getrandom::fill(&mut r.key).expect("OS randomness");
        getrandom::fill(&mut r.sigma).expect("OS randomness");
        getrandom::fill(&mut r.nonce).expect("OS randomness");
        r
    }
}

/// The message drand signs for `round`: `sha256(round as big-endian u64)`.
pub fn round_message(round: u64) -> [u8; 32] {
    Sha256::digest(round.to_be_bytes()).into()
}

/// Encrypts `plaintext` so that `key`'s signature of `round` opens it.
pub fn encrypt(
    key: &BeaconKey,
    round: u64,
    plaintext: &[u8],
    randomness: &Randomness,
) -> Result<Vec<u8>, TimelockError> {
    if plaintext.len() + OVERHEAD_BYTES > MAX_CIPHERTEXT_BYTES {
        return Err(TimelockError::TooLarge(plaintext.len() + OVERHEAD_BYTES));
    }
    let Randomness {
        key: body_key,
        sigma,
        nonce,
    } = randomness;
    let r = h3(sigma, body_key)?;
    let u = r.sk_to_pk().compress();
    // e(Q_id, r·P) = e(r·Q_id, P), and r·Q_id is a BLS signature of the round message under r.
    let r_q_id = r.sign(&round_message(round), QUICKNET_DST, &[]);
    let gt = pairing((&r_q_id).into(), (&key.0).into());
    let v = xor32(sigma, &Sha256::digest(gt).into());
    let w = xor32(body_key, &Sha256::digest(sigma).into());
    let body = Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(body_key))
        .encrypt(Nonce::from_slice(nonce), plaintext)
        .map_err(|_| TimelockError::TooLarge(plaintext.len()))?;

    let mut inner = Vec::with_capacity(body.len() + 8 + 8 + NONCE_BYTES);
    put_vec(&mut inner, &body);
    put_vec(&mut inner, nonce);
    let mut out = Vec::with_capacity(inner.len() + OVERHEAD_BYTES);
    out.extend_from_slice(&u);
    put_vec(&mut out, &v);
    put_vec(&mut out, &w);
    put_vec(&mut out, &inner);
    put_vec(&mut out, CIPHER_SUITE);
    Ok(out)
}

/// Decrypts a ciphertext with the signature of the round it was encrypted to.
pub fn decrypt(ciphertext: &[u8], signature: &RoundSignature) -> Result<Vec<u8>, TimelockError> {
    let parsed = Parsed::decode(ciphertext)?;
    let u = PublicKey::key_validate(parsed.u).map_err(|_| TimelockError::BadPoint("header U"))?;
    let gt = pairing((&signature.0).into(), (&u).into());
    let sigma = xor32(parsed.v, &Sha256::digest(gt).into());
    let body_key = xor32(parsed.w, &Sha256::digest(sigma).into());
    let r = h3(&sigma, &body_key).map_err(|_| TimelockError::WrongSignature)?;
    if r.sk_to_pk().compress() != parsed.u {
        return Err(TimelockError::WrongSignature);
    }
    Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(&body_key))
        .decrypt(Nonce::from_slice(parsed.nonce), parsed.body)
        .map_err(|_| TimelockError::BodyRejected)
}

/// Checks a ciphertext's framing and its header point, which needs no secret: the shape of a
/// commit before it is sent or stored.
pub fn check_framing(ciphertext: &[u8]) -> Result<(), TimelockError> {
    let parsed = Parsed::decode(ciphertext)?;
    PublicKey::key_validate(parsed.u).map_err(|_| TimelockError::BadPoint("header U"))?;
    Ok(())
}

/// The borrowed parts of a ciphertext.
struct Parsed<'a> {
    u: &'a [u8],
    v: &'a [u8; 32],
    w: &'a [u8; 32],
    body: &'a [u8],
    nonce: &'a [u8],
}

impl<'a> Parsed<'a> {
    fn decode(bytes: &'a [u8]) -> Result<Self, TimelockError> {
        if bytes.len() > MAX_CIPHERTEXT_BYTES {
            return Err(TimelockError::TooLarge(bytes.len()));
        }
        let mut outer = Reader(bytes);
        let u = outer.take(96, "header U")?;
        let v = outer.vec("header V")?;
        let w = outer.vec("header W")?;
        let inner = outer.vec("body")?;
        let suite = outer.vec("cipher suite")?;
        outer.end("after the cipher suite")?;
        if suite != CIPHER_SUITE {
            return Err(TimelockError::Malformed(
                "unknown cipher suite (expected AES_GCM_)",
            ));
        }
        let v: &[u8; 32] = v
            .try_into()
            .map_err(|_| TimelockError::Malformed("V is not 32 bytes"))?;
        let w: &[u8; 32] = w
            .try_into()
            .map_err(|_| TimelockError::Malformed("W is not 32 bytes"))?;
        let mut inner = Reader(inner);
        let body = inner.vec("AES ciphertext")?;
        let nonce = inner.vec("AES nonce")?;
        inner.end("after the AES nonce")?;
        if nonce.len() != NONCE_BYTES {
            return Err(TimelockError::Malformed(
                "the AES-GCM nonce is not 12 bytes",
            ));
        }
        Ok(Self {
            u,
            v,
            w,
            body,
            nonce,
        })
    }
}

/// A cursor over arkworks' canonical encoding (vectors carry a u64 little-endian length).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TimelockError> {
        if self.0.len() < n {
            return Err(TimelockError::Malformed(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn vec(&mut self, what: &'static str) -> Result<&'a [u8], TimelockError> {
        let len = u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes"));
        let len = usize::try_from(len).map_err(|_| TimelockError::Malformed(what))?;
        self.take(len, what)
    }

    fn end(&self, what: &'static str) -> Result<(), TimelockError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(TimelockError::Malformed(what))
        }
    }
}

fn put_vec(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// The scalar group's order `q`, big-endian.
const ORDER: [u8; 32] = [
    0x73, 0xed, 0xa7, 0x53, 0x29, 0x9d, 0x7d, 0x48, 0x33, 0x39, 0xd8, 0x08, 0x09, 0xa1, 0xd8, 0x05,
    0x53, 0xbd, 0xa4, 0x02, 0xff, 0xfe, 0x5b, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
];

/// `tle`'s H3: `sha256(σ ‖ k)` read big-endian and reduced mod `q`, as a scalar. Zero (chance
/// 2⁻²⁵⁵) has no key and is refused.
fn h3(sigma: &[u8; 32], key: &[u8; 32]) -> Result<SecretKey, TimelockError> {
    let mut hasher = Sha256::new();
    hasher.update(sigma);
    hasher.update(key);
    let n = reduce_mod_order(hasher.finalize().into());
    SecretKey::from_bytes(&n).map_err(|_| TimelockError::Malformed("degenerate scalar"))
}

/// A 256-bit big-endian integer mod `q`. Since 2²⁵⁶ < 3q, at most two subtractions.
fn reduce_mod_order(mut n: [u8; 32]) -> [u8; 32] {
    while n >= ORDER {
        let mut borrow = 0u16;
        for i in (0..32).rev() {
            let d = u16::from(n[i]).wrapping_sub(u16::from(ORDER[i]) + borrow);
            n[i] = d as u8;
            borrow = (d >> 15) & 1;
        }
    }
    n
}

/// `e(p, q)` serialized as `tle` hashes it: arkworks' order and endianness.
fn pairing(p: &blst_p1_affine, q: &blst_p2_affine) -> Vec<u8> {
    let gt = blst_fp12::miller_loop(q, p).final_exp();
    // blst writes fp2 index i (outer), then fp6 index j, each coordinate big-endian;
    // arkworks writes j (outer), then i, each little-endian.
    let be = gt.to_bendian();
    let mut out = Vec::with_capacity(576);
    for j in 0..2 {
        for i in 0..3 {
            for t in 0..2 {
                let k = (i * 2 + j) * 2 + t;
                out.extend(be[k * 48..(k + 1) * 48].iter().rev());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drand quicknet's signature of round 1000 (public data).
    const ROUND_1000: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";

    fn fixed() -> Randomness {
        Randomness {
            key: [7; 32],
            sigma: [9; 32],
            nonce: [3; 12],
        }
    }

    #[test]
    fn quicknets_round_1000_signature_verifies_under_its_key() {
        let sig = RoundSignature::from_bytes(&hex::decode(ROUND_1000).unwrap()).unwrap();
        assert!(sig.verify(&BeaconKey::quicknet(), 1000));
        assert!(!sig.verify(&BeaconKey::quicknet(), 1001));
    }

    #[test]
    fn a_round_signature_opens_what_was_encrypted_to_its_round_and_no_other() {
        let key = BeaconKey::quicknet();
        let sig = RoundSignature::from_bytes(&hex::decode(ROUND_1000).unwrap()).unwrap();
        let ct = encrypt(&key, 1000, b"weights", &Randomness::fresh()).unwrap();
        assert_eq!(decrypt(&ct, &sig).unwrap(), b"weights");
        let other = encrypt(&key, 1001, b"weights", &Randomness::fresh()).unwrap();
        assert_eq!(decrypt(&other, &sig), Err(TimelockError::WrongSignature));
    }

    #[test]
    fn a_test_beacon_signs_rounds_that_open_its_ciphertexts() {
        let beacon = BeaconSecret::from_seed(&[42; 32]);
        let sig = beacon.sign_round(77);
        assert!(sig.verify(&beacon.public(), 77));
        let ct = encrypt(&beacon.public(), 77, &[1, 2, 3], &fixed()).unwrap();
        assert_eq!(ct.len(), 3 + OVERHEAD_BYTES);
        assert_eq!(decrypt(&ct, &sig).unwrap(), vec![1, 2, 3]);
        assert_eq!(
            decrypt(&ct, &beacon.sign_round(78)),
            Err(TimelockError::WrongSignature)
        );
    }

    #[test]
    fn encryption_is_a_function_of_its_randomness() {
        let key = BeaconKey::quicknet();
        let a = encrypt(&key, 5, b"x", &fixed()).unwrap();
        assert_eq!(a, encrypt(&key, 5, b"x", &fixed()).unwrap());
        assert_ne!(a, encrypt(&key, 5, b"x", &Randomness::fresh()).unwrap());
    }

    #[test]
    fn tampering_and_bad_framing_are_refused_without_panicking() {
        let beacon = BeaconSecret::from_seed(&[1; 32]);
        let sig = beacon.sign_round(9);
        let ct = encrypt(&beacon.public(), 9, b"payload", &fixed()).unwrap();

        let mut trailing = ct.clone();
        trailing.push(0);
        assert!(matches!(
            decrypt(&trailing, &sig),
            Err(TimelockError::Malformed(_))
        ));
        for cut in [0, 1, 95, 96, 104, 200, ct.len() - 1] {
            assert!(decrypt(&ct[..cut], &sig).is_err(), "cut at {cut}");
        }
        // A flipped bit of V or W changes σ or k: the r·G2 check refuses it.
        for at in [96 + 8 + 3, 96 + 8 + 32 + 8 + 5] {
            let mut bad = ct.clone();
            bad[at] ^= 1;
            assert_eq!(
                decrypt(&bad, &sig),
                Err(TimelockError::WrongSignature),
                "byte {at}"
            );
        }
        // A flipped bit of the AES body fails its tag.
        let mut bad = ct.clone();
        let body_at = 96 + 80 + 8 + 8 + 2;
        bad[body_at] ^= 1;
        assert_eq!(decrypt(&bad, &sig), Err(TimelockError::BodyRejected));
        // A length claiming more than is there.
        let mut bad = ct.clone();
        bad[96..104].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decrypt(&bad, &sig),
            Err(TimelockError::Malformed(_))
        ));
        // A foreign cipher suite.
        let mut bad = ct.clone();
        let n = bad.len();
        bad[n - 1] = b'X';
        assert!(matches!(
            decrypt(&bad, &sig),
            Err(TimelockError::Malformed(_))
        ));
        assert_eq!(
            decrypt(&vec![0; MAX_CIPHERTEXT_BYTES + 1], &sig),
            Err(TimelockError::TooLarge(MAX_CIPHERTEXT_BYTES + 1))
        );
        check_framing(&ct).unwrap();
    }

    #[test]
    fn digests_reduce_like_big_endian_integers_mod_the_group_order() {
        let mut one = [0; 32];
        one[31] = 1;
        let mut q_plus_one = ORDER;
        q_plus_one[31] += 1;
        assert_eq!(reduce_mod_order(ORDER), [0; 32]);
        assert_eq!(reduce_mod_order(q_plus_one), one);
        assert_eq!(reduce_mod_order(one), one);
        // 2^256 - 1 - 2q: the largest digest needs both subtractions.
        let expected =
            hex::decode("1824b159acc5056f998c4fefecbc4ff55884b7fa0003480200000001fffffffd")
                .unwrap();
        assert_eq!(reduce_mod_order([0xff; 32]).to_vec(), expected);
    }
}
