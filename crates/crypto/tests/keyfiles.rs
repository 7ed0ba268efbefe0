//! btcli's encrypted key files, checked against files the reference implementation wrote
//! (`vectors/make_keyfile_vectors.py`, Python package `bittensor-wallet`).

use std::path::Path;

use platform_crypto::WalletError;
use platform_crypto::keyfile::{
    Encryption, NaclError, NaclKey, btcli_env_var_name, password_from_btcli_env,
};
use platform_crypto::wallet::WalletFile;

#[derive(serde::Deserialize)]
struct Vectors {
    files: Vec<Vector>,
}

#[derive(serde::Deserialize)]
struct Vector {
    file: String,
    password: String,
    ss58: String,
    env_var: String,
    env_value: String,
    generated_at: String,
}

fn vectors() -> Vec<Vector> {
    let v: Vectors = serde_json::from_str(include_str!("vectors/keyfiles/keyfiles.json")).unwrap();
    assert!(v.files.len() >= 2);
    v.files
}

fn read(v: &Vector) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors/keyfiles")
            .join(&v.file),
    )
    .unwrap()
}

#[test]
fn their_encrypted_files_open_with_the_password_and_derive_the_recorded_key() {
    for v in vectors() {
        let bytes = read(&v);
        assert_eq!(Encryption::of(&bytes), Encryption::Nacl, "{}", v.file);
        let key = WalletFile::load_with_password(&v.file, &bytes, Some(&v.password)).unwrap();
        assert_eq!(key.hotkey().to_ss58(), v.ss58, "{}", v.file);
        assert!(matches!(
            WalletFile::load(&v.file, &bytes),
            Err(WalletError::Encrypted { .. })
        ));
    }
}

#[test]
fn a_wrong_password_or_a_damaged_file_is_refused() {
    let v = &vectors()[0];
    let bytes = read(v);
    assert!(matches!(
        WalletFile::load_with_password(&v.file, &bytes, Some("not the password")),
        Err(WalletError::Decrypt {
            source: NaclError::WrongPassword,
            ..
        })
    ));
    let key = NaclKey::derive(&v.password);
    let plain = key.open(&bytes).unwrap();
    // Re-encrypting their plaintext under their nonce gives their file byte for byte, so a
    // file we write opens in btcli.
    let nonce: [u8; 24] = bytes[5..29].try_into().unwrap();
    assert_eq!(key.seal(&plain, nonce), bytes);
    // One flipped ciphertext bit fails authentication.
    let mut damaged = bytes.clone();
    *damaged.last_mut().unwrap() ^= 1;
    assert_eq!(key.open(&damaged).unwrap_err(), NaclError::WrongPassword);
}

#[test]
fn btcli_password_variables_are_named_and_decoded_as_btcli_does() {
    for v in vectors() {
        assert_eq!(btcli_env_var_name(&v.generated_at), v.env_var);
        let password = password_from_btcli_env(&v.env_var, &v.env_value).unwrap();
        assert_eq!(password.as_str(), v.password);
    }
}
