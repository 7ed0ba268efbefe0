//! Bittensor wallet hotkey files.
//!
//! `btcli` writes a hotkey as JSON under `~/.bittensor/wallets/<wallet>/hotkeys/<name>`:
//!
//! ```json
//! {"accountId": "0x…", "publicKey": "0x…", "secretPhrase": "…", "secretSeed": "0x…",
//!  "ss58Address": "5…"}
//! ```
//!
//! Platform's keystore writes the same format, so its files work with Bittensor tools and the
//! other way round. Loading checks that the secret derives the recorded address.

use std::fmt;

use platform_primitives::Hotkey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::keyfile::{Encryption, NaclError, nacl_decrypt};
use crate::sr25519::Keypair;
use crate::suri::{SuriError, parse_suri};

/// Largest wallet file accepted; real ones are under 1 KiB.
pub const MAX_WALLET_FILE: usize = 64 * 1024;

/// Why a wallet file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The file is larger than any wallet file.
    #[error(
        "{file}: {len} bytes is too large for a wallet hotkey file (at most {MAX_WALLET_FILE})"
    )]
    TooLarge {
        /// The file.
        file: String,
        /// Its length.
        len: usize,
    },
    /// The file is encrypted (btcli's `--use-password`) and no password was given.
    #[error("{file}: the key file is encrypted ({method}) and no password was given")]
    Encrypted {
        /// The file.
        file: String,
        /// Its format.
        method: &'static str,
    },
    /// The password does not open the file.
    #[error("{file}: {source}")]
    Decrypt {
        /// The file.
        file: String,
        /// Why.
        source: NaclError,
    },
    /// An encryption format older than btcli's current one.
    #[error(
        "{file}: the key file uses {method} encryption, which Platform does not read; `btcli wallet update` rewrites it in the current (NaCl) format"
    )]
    OldEncryption {
        /// The file.
        file: String,
        /// Its format.
        method: &'static str,
    },
    /// Not JSON, or JSON of another shape.
    #[error("{file}: not a Bittensor wallet hotkey file ({reason})")]
    Malformed {
        /// The file.
        file: String,
        /// What was wrong.
        reason: String,
    },
    /// Neither `secretSeed` nor `secretPhrase` is present.
    #[error(
        "{file}: has neither 'secretSeed' nor 'secretPhrase'; it holds no secret key (is it a coldkeypub file?)"
    )]
    NoSecret {
        /// The file.
        file: String,
    },
    /// The secret is not a valid seed or mnemonic.
    #[error("{file}: {source}")]
    BadSecret {
        /// The file.
        file: String,
        /// Why the secret is invalid.
        source: SuriError,
    },
    /// The secret derives another address than the one recorded.
    #[error(
        "{file}: the secret derives {derived}, but the file says ss58Address is {recorded}; the file is corrupted or was edited"
    )]
    AddressMismatch {
        /// The file.
        file: String,
        /// Address in the file.
        recorded: String,
        /// Address derived from the secret.
        derived: Hotkey,
    },
    /// `secretSeed` and `secretPhrase` describe different keys.
    #[error(
        "{file}: 'secretSeed' and 'secretPhrase' describe different keys; the file is corrupted"
    )]
    SeedPhraseMismatch {
        /// The file.
        file: String,
    },
}

/// The JSON of a Bittensor hotkey file. `Debug` shows only the address.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WalletFile {
    /// `0x` + public key hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// `0x` + public key hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The BIP39 mnemonic, when the key came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_phrase: Option<String>,
    /// `0x` + 32-byte mini-secret seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_seed: Option<String>,
    /// The SS58 address (prefix 42).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ss58_address: Option<String>,
}

impl Drop for WalletFile {
    fn drop(&mut self) {
        if let Some(s) = self.secret_phrase.as_mut() {
            s.zeroize();
        }
        if let Some(s) = self.secret_seed.as_mut() {
            s.zeroize();
        }
    }
}

impl fmt::Debug for WalletFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalletFile({:?}, secrets redacted)", self.ss58_address)
    }
}

impl WalletFile {
    /// The file contents for `key`. Fails only for a key without a seed (soft-derived), which
    /// no wallet format can hold.
    pub fn for_key(key: &Keypair, phrase: Option<&str>) -> Option<WalletFile> {
        let seed = key.seed()?;
        let public = format!("0x{}", key.hotkey().to_hex());
        Some(WalletFile {
            account_id: Some(public.clone()),
            public_key: Some(public),
            secret_phrase: phrase.map(str::to_owned),
            secret_seed: Some(format!("0x{}", hex::encode(seed))),
            ss58_address: Some(key.hotkey().to_ss58()),
        })
    }

    /// Pretty JSON, as btcli writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a struct of strings serializes")
    }

    /// Parses and checks an unencrypted wallet file's bytes. `file` names it in errors.
    pub fn load(file: &str, bytes: &[u8]) -> Result<Keypair, WalletError> {
        WalletFile::load_with_password(file, bytes, None)
    }

    /// Parses and checks a wallet file's bytes, decrypting them first with `password` when
    /// the file is encrypted in btcli's NaCl format (see [`crate::keyfile`]).
    pub fn load_with_password(
        file: &str,
        bytes: &[u8],
        password: Option<&str>,
    ) -> Result<Keypair, WalletError> {
        let file = file.to_owned();
        if bytes.len() > MAX_WALLET_FILE {
            return Err(WalletError::TooLarge {
                file,
                len: bytes.len(),
            });
        }
        match (Encryption::of(bytes), password) {
            (Encryption::None, _) => WalletFile::parse(file, bytes),
            (Encryption::Nacl, Some(password)) => {
                let plain =
                    nacl_decrypt(bytes, password).map_err(|source| WalletError::Decrypt {
                        file: file.clone(),
                        source,
                    })?;
                if Encryption::of(&plain) != Encryption::None {
                    return Err(WalletError::Malformed {
                        file,
                        reason: "encrypted twice".into(),
                    });
                }
                WalletFile::parse(file, &plain)
            }
            (method @ Encryption::Nacl, None) => Err(WalletError::Encrypted {
                file,
                method: method.name(),
            }),
            (method, _) => Err(WalletError::OldEncryption {
                file,
                method: method.name(),
            }),
        }
    }

    fn parse(file: String, bytes: &[u8]) -> Result<Keypair, WalletError> {
        let parsed: WalletFile =
            serde_json::from_slice(bytes).map_err(|e| WalletError::Malformed {
                file: file.clone(),
                reason: e.to_string(),
            })?;
        let bad = |source| WalletError::BadSecret {
            file: file.clone(),
            source,
        };
        let key = match (&parsed.secret_seed, &parsed.secret_phrase) {
            (Some(seed), phrase) => {
                if !seed.starts_with("0x") {
                    return Err(bad(SuriError::BadHex(
                        "secretSeed must start with 0x".into(),
                    )));
                }
                let key = parse_suri(seed).map_err(bad)?;
                if let Some(phrase) = phrase {
                    let from_phrase = parse_suri(phrase).map_err(bad)?;
                    if from_phrase.hotkey() != key.hotkey() {
                        return Err(WalletError::SeedPhraseMismatch { file });
                    }
                }
                key
            }
            (None, Some(phrase)) => parse_suri(phrase).map_err(bad)?,
            (None, None) => return Err(WalletError::NoSecret { file }),
        };
        if let Some(recorded) = &parsed.ss58_address
            && *recorded != key.hotkey().to_ss58()
        {
            return Err(WalletError::AddressMismatch {
                file,
                recorded: recorded.clone(),
                derived: key.hotkey(),
            });
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE_SEED: &str = "0xe5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a";

    fn alice_file() -> String {
        format!(
            r#"{{"accountId":"0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d",
               "publicKey":"0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d",
               "secretSeed":"{ALICE_SEED}",
               "ss58Address":"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"}}"#
        )
    }

    #[test]
    fn loads_a_btcli_style_file() {
        let key = WalletFile::load("alice", alice_file().as_bytes()).unwrap();
        assert_eq!(
            key.hotkey().to_ss58(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
    }

    #[test]
    fn round_trips_through_for_key() {
        let key = parse_suri("//Bob").unwrap();
        let json = WalletFile::for_key(&key, None).unwrap().to_json();
        assert_eq!(
            WalletFile::load("bob", json.as_bytes()).unwrap().hotkey(),
            key.hotkey()
        );
    }

    #[test]
    fn bad_files_get_specific_errors() {
        let wrong_addr = alice_file().replace(
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
            "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
        );
        assert!(matches!(
            WalletFile::load("f", wrong_addr.as_bytes()),
            Err(WalletError::AddressMismatch { .. })
        ));
        let truncated = &alice_file()[..40];
        assert!(matches!(
            WalletFile::load("f", truncated.as_bytes()),
            Err(WalletError::Malformed { .. })
        ));
        assert!(matches!(
            WalletFile::load("f", b"$NACL\x00\x01"),
            Err(WalletError::Encrypted { .. })
        ));
        assert!(matches!(
            WalletFile::load_with_password("f", b"$NACL\x00\x01", Some("pw")),
            Err(WalletError::Decrypt {
                source: NaclError::Truncated(7),
                ..
            })
        ));
        assert!(matches!(
            WalletFile::load_with_password("f", b"$ANSIBLE_VAULT;1.1;AES256\n", Some("pw")),
            Err(WalletError::OldEncryption { .. })
        ));
        assert!(matches!(
            WalletFile::load("f", br#"{"ss58Address":"5Grw"}"#),
            Err(WalletError::NoSecret { .. })
        ));
        let short_seed = alice_file().replace(ALICE_SEED, "0x1234");
        assert!(matches!(
            WalletFile::load("f", short_seed.as_bytes()),
            Err(WalletError::BadSecret {
                source: SuriError::SeedLength(2),
                ..
            })
        ));
        let big = vec![b' '; MAX_WALLET_FILE + 1];
        assert!(matches!(
            WalletFile::load("f", &big),
            Err(WalletError::TooLarge { .. })
        ));
        let err = WalletFile::load("/path/to/hk", truncated.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/path/to/hk:"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let key = parse_suri("//Alice").unwrap();
        let file = WalletFile::for_key(&key, Some("secret words here")).unwrap();
        let shown = format!("{file:?}");
        assert!(
            !shown.contains("secret words") && !shown.contains(&ALICE_SEED[2..10]),
            "{shown}"
        );
    }
}
