//! Keys and signatures of Platform.
//!
//! - [`sr25519`]: hotkeys as Bittensor and Substrate use them (SS58 prefix 42, the `substrate`
//!   signing context, hard and soft derivation), plus domain-separated signing for Platform's
//!   own messages and batch verification.
//! - [`suri`]: secret URIs — BIP39 mnemonics, `0x` seeds and dev URIs such as `//Alice`.
//! - [`bls`]: BLS12-381 (min-pk) for consensus votes: aggregation, signer bitmaps and proofs of
//!   possession, without which a key can never join an aggregate.
//! - [`vrf`]: the sr25519 VRF that seeds leader election and committee sortition.
//! - [`wallet`] and [`keystore`]: Bittensor wallet hotkey files and the data directory's
//!   `keys/` folder, refusing secrets that other users can read; [`keyfile`]: btcli's
//!   password-encrypted key files.
//!
//! Secrets are zeroized on drop and never appear in `Debug` output.

pub mod bls;
pub mod fixtures;
pub mod keyfile;
pub mod keystore;
pub mod sr25519;
pub mod suri;
pub mod timelock;
pub mod vrf;
pub mod wallet;

pub use bls::{BlsError, BlsPublicKey, BlsSecretKey, BlsSignature, SignerBitmap, VerifiedBlsKey};
pub use keystore::{Keystore, KeystoreError};
pub use sr25519::{Domain, Keypair, Signature, SignatureError, SignedMessage, verify_batch};
pub use suri::{SuriError, parse_suri};
pub use vrf::{VrfError, VrfProof, VrfRandomness};
pub use wallet::{WalletError, WalletFile};
