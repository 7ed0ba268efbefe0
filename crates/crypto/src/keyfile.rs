//! Encrypted Bittensor key files.
//!
//! `btcli` encrypts a key file (always the coldkey, a hotkey when asked) in the format the
//! Python package `bittensor-wallet` writes, which it calls NaCl:
//!
//! ```text
//! "$NACL" ‖ nonce (24 bytes) ‖ XSalsa20-Poly1305 secretbox of the JSON key file
//! key = Argon2i v1.3 (password, salt = NACL_SALT, t = 8, m = 512 MiB, p = 1), 32 bytes
//! ```
//!
//! The Argon2 parameters are libsodium's `OPSLIMIT_SENSITIVE` / `MEMLIMIT_SENSITIVE`, so
//! deriving the key takes about a second and half a gibibyte; callers do it once, at start.
//! Two older formats exist (Ansible Vault and a Fernet "legacy" one); they are recognised and
//! refused with a pointer to `btcli`, which rewrites them as NaCl.
//!
//! `btcli` can also keep a password in an environment variable named after the file
//! (`BT_PW_<PATH>`), obfuscated by XOR with the variable's name and base64-encoded;
//! [`password_from_btcli_env`] reads it.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use zeroize::Zeroizing;

/// The fixed salt `bittensor-wallet` derives every key file's key with.
pub const NACL_SALT: [u8; 16] = *b"\x13q\x83\xdf\xf1Z\t\xbc\x9c\x90\xb5Q\x879\xe9\xb1";
/// The prefix of a NaCl-encrypted key file.
pub const NACL_PREFIX: &[u8] = b"$NACL";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// libsodium's `crypto_pwhash_argon2i_OPSLIMIT_SENSITIVE`.
const ARGON2_PASSES: u32 = 8;
/// libsodium's `crypto_pwhash_argon2i_MEMLIMIT_SENSITIVE` (512 MiB), in KiB.
const ARGON2_KIB: u32 = 512 * 1024;

/// How a key file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// Plain JSON.
    None,
    /// `$NACL`: Argon2i + XSalsa20-Poly1305 (current `btcli`).
    Nacl,
    /// `$ANSIBLE_VAULT` (older `btcli`).
    AnsibleVault,
    /// Fernet, `gAAAAA…` (oldest `btcli`).
    Legacy,
}

impl Encryption {
    /// Recognises a key file's format from its first bytes.
    pub fn of(bytes: &[u8]) -> Encryption {
        let b = bytes.trim_ascii_start();
        if b.starts_with(NACL_PREFIX) {
            Encryption::Nacl
        } else if b.starts_with(b"$ANSIBLE_VAULT") {
            Encryption::AnsibleVault
        } else if b.starts_with(b"gAAAAA") {
            Encryption::Legacy
        } else {
            Encryption::None
        }
    }

    /// A name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Encryption::None => "none",
            Encryption::Nacl => "NaCl",
            Encryption::AnsibleVault => "Ansible Vault",
            Encryption::Legacy => "legacy (Fernet)",
        }
    }
}

/// Why a NaCl key file could not be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NaclError {
    /// Shorter than prefix, nonce and tag.
    #[error("the encrypted key file is truncated ({0} bytes)")]
    Truncated(usize),
    /// The authentication tag did not match: a wrong password or a damaged file.
    #[error("wrong password (or the file is damaged)")]
    WrongPassword,
}

/// The secretbox key a password derives. Deriving is the slow part (Argon2i over 512 MiB);
/// one key opens and seals any number of files encrypted with the same password.
pub struct NaclKey(Zeroizing<[u8; 32]>);

impl NaclKey {
    /// Derives the key `bittensor-wallet` derives from `password`.
    pub fn derive(password: &str) -> NaclKey {
        let params = Params::new(ARGON2_KIB, ARGON2_PASSES, 1, Some(32))
            .expect("libsodium's sensitive parameters are valid Argon2 parameters");
        let argon = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(password.as_bytes(), &NACL_SALT, key.as_mut())
            .expect("a 16-byte salt and a 32-byte output are within Argon2's limits");
        NaclKey(key)
    }

    /// Decrypts a `$NACL` key file. Leading whitespace is ignored, as `btcli` writes none but
    /// editors may add a newline.
    pub fn open(&self, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, NaclError> {
        let (nonce, sealed) = split(bytes)?;
        XSalsa20Poly1305::new(self.0.as_ref().into())
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map(Zeroizing::new)
            .map_err(|_| NaclError::WrongPassword)
    }

    /// Encrypts a key file as `btcli` does, with the given nonce (callers pass fresh random
    /// bytes; tests pass fixed ones).
    pub fn seal(&self, plain: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let sealed = XSalsa20Poly1305::new(self.0.as_ref().into())
            .encrypt(Nonce::from_slice(&nonce), plain)
            .expect("secretbox encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NACL_PREFIX.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(NACL_PREFIX);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }
}

/// Nonce and sealed box of a `$NACL` file, checked for length before any key is derived.
fn split(bytes: &[u8]) -> Result<(&[u8], &[u8]), NaclError> {
    let body = bytes
        .trim_ascii_start()
        .strip_prefix(NACL_PREFIX)
        .ok_or(NaclError::Truncated(bytes.len()))?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(NaclError::Truncated(bytes.len()));
    }
    Ok(body.split_at(NONCE_LEN))
}

/// Decrypts a `$NACL` key file with `password` (see [`NaclKey::open`]).
pub fn nacl_decrypt(bytes: &[u8], password: &str) -> Result<Zeroizing<Vec<u8>>, NaclError> {
    split(bytes)?;
    NaclKey::derive(password).open(bytes)
}

/// The environment variable `btcli` keeps a key file's password in: `BT_PW_` followed by the
/// file's path with `/` and `.` replaced by `_`, upper-cased.
pub fn btcli_env_var_name(path: &str) -> String {
    let flat: String = path
        .chars()
        .map(|c| if c == '/' || c == '.' { '_' } else { c })
        .collect();
    format!("BT_PW_{}", flat.to_uppercase())
}

/// Decodes a `BT_PW_…` value: base64 of the password XOR the variable's name. `None` when
/// the value is not base64 or does not decode to UTF-8.
pub fn password_from_btcli_env(var_name: &str, value: &str) -> Option<Zeroizing<String>> {
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()?,
    );
    let key = var_name.as_bytes();
    if key.is_empty() {
        return None;
    }
    let plain: Vec<u8> = raw
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % key.len()])
        .collect();
    String::from_utf8(plain).ok().map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_by_prefix() {
        assert_eq!(Encryption::of(b"$NACL..."), Encryption::Nacl);
        assert_eq!(
            Encryption::of(b"\n$ANSIBLE_VAULT;1.1"),
            Encryption::AnsibleVault
        );
        assert_eq!(Encryption::of(b"gAAAAABk"), Encryption::Legacy);
        assert_eq!(Encryption::of(br#"{"secretSeed":"0x"}"#), Encryption::None);
    }

    #[test]
    fn truncated_files_are_refused_before_any_key_derivation() {
        assert_eq!(
            nacl_decrypt(b"$NACL0123", "pw"),
            Err(NaclError::Truncated(9))
        );
        assert_eq!(nacl_decrypt(b"{}", "pw"), Err(NaclError::Truncated(2)));
    }

    #[test]
    fn btcli_env_values_decode() {
        let name = btcli_env_var_name("/home/v/.bittensor/wallets/w/coldkey");
        assert_eq!(name, "BT_PW__HOME_V__BITTENSOR_WALLETS_W_COLDKEY");
        let obfuscated: Vec<u8> = b"hunter2"
            .iter()
            .zip(name.bytes().cycle())
            .map(|(p, k)| p ^ k)
            .collect();
        let value = base64::engine::general_purpose::STANDARD.encode(obfuscated);
        assert_eq!(
            password_from_btcli_env(&name, &value)
                .as_deref()
                .map(String::as_str),
            Some("hunter2")
        );
        assert_eq!(password_from_btcli_env(&name, "not base64!"), None);
    }
}
