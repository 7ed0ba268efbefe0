//! Secret URIs, as Substrate's `subkey` and Bittensor's tools read them:
//!
//! ```text
//! <phrase or 0x-seed>[//hard][/soft]…[///password]
//! ```
//!
//! The phrase is a BIP39 English mnemonic (12–24 words) or a `0x` followed by a 32-byte hex seed.
//! When it is omitted (`//Alice`), Substrate's well-known development phrase is used. A hard
//! junction (`//x`) derives a new mini-secret, so the result still has a seed; a soft junction
//! (`/x`) derives a key without one.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use schnorrkel::derive::{ChainCode, Derivation};
use schnorrkel::{ExpansionMode, MiniSecretKey};
use zeroize::Zeroizing;

use crate::sr25519::Keypair;

/// The public development mnemonic behind `//Alice`, `//Bob`, …. Never hold value with it.
pub const DEV_PHRASE: &str =
    "bottom drive obey lake curtain smoke basket hold race lonely fit walk";

/// The longest secret URI accepted.
pub const MAX_SURI_LEN: usize = 1024;

/// Why a secret URI could not be turned into a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SuriError {
    /// Nothing was given.
    #[error("empty secret URI: give a mnemonic, a 0x seed or a dev URI such as //Alice")]
    Empty,
    /// Longer than [`MAX_SURI_LEN`].
    #[error("secret URI is {0} bytes long; at most {MAX_SURI_LEN} are accepted")]
    TooLong(usize),
    /// A `0x` seed with a non-hex character or an odd number of digits.
    #[error("the 0x seed is not valid hex: {0}")]
    BadHex(String),
    /// A hex seed of the wrong length.
    #[error("the 0x seed is {0} bytes; a seed is exactly 32 bytes (64 hex digits)")]
    SeedLength(usize),
    /// A mnemonic with a word outside the BIP39 English list.
    #[error("mnemonic word {position} ('{word}') is not in the BIP39 English word list")]
    UnknownWord {
        /// 1-based position of the word.
        position: usize,
        /// The word itself.
        word: String,
    },
    /// A mnemonic of a length BIP39 does not define.
    #[error("mnemonic has {0} words; BIP39 mnemonics have 12, 15, 18, 21 or 24")]
    WordCount(usize),
    /// All words are valid but the checksum does not match.
    #[error("mnemonic checksum does not match: a word is wrong or out of order")]
    Checksum,
    /// A derivation path that cannot be parsed.
    #[error("bad derivation path '{0}': junctions look like //hard or /soft")]
    BadPath(String),
    /// `///password` after a hex seed, where it would be silently ignored.
    #[error("a ///password applies only to mnemonics, not to 0x seeds")]
    PasswordWithSeed,
}

/// Parses a secret URI into a key pair.
pub fn parse_suri(suri: &str) -> Result<Keypair, SuriError> {
    let suri = suri.trim();
    if suri.is_empty() {
        return Err(SuriError::Empty);
    }
    if suri.len() > MAX_SURI_LEN {
        return Err(SuriError::TooLong(suri.len()));
    }
    let (body, password) = match suri.split_once("///") {
        Some((body, password)) => (body, Some(password)),
        None => (suri, None),
    };
    let (phrase, path) = match body.find('/') {
        Some(i) => (body[..i].trim(), &body[i..]),
        None => (body.trim(), ""),
    };
    let junctions = parse_path(path)?;

    let root = if let Some(hex_seed) = phrase.strip_prefix("0x") {
        if password.is_some() {
            return Err(SuriError::PasswordWithSeed);
        }
        let bytes =
            Zeroizing::new(hex::decode(hex_seed).map_err(|e| SuriError::BadHex(e.to_string()))?);
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SuriError::SeedLength(bytes.len()))?;
        Zeroizing::new(seed)
    } else {
        let phrase = if phrase.is_empty() {
            DEV_PHRASE
        } else {
            phrase
        };
        mini_secret_from_phrase(phrase, password.unwrap_or(""))?
    };

    let mut secret = MiniSecretKey::from_bytes(root.as_slice())
        .expect("32 bytes")
        .expand(ExpansionMode::Ed25519);
    let mut seed = Some(root);
    for junction in &junctions {
        match junction {
            Junction::Hard(cc) => {
                let (mini, _) = secret.hard_derive_mini_secret_key(Some(ChainCode(*cc)), b"");
                secret = mini.expand(ExpansionMode::Ed25519);
                seed = Some(Zeroizing::new(mini.to_bytes()));
            }
            Junction::Soft(cc) => {
                secret = secret.derived_key_simple(ChainCode(*cc), []).0;
                seed = None;
            }
        }
    }
    Ok(match seed {
        Some(seed) => Keypair::from_seed(&seed),
        None => Keypair::from_secret(secret),
    })
}

/// The Substrate mini-secret of a mnemonic: PBKDF2 over the BIP39 *entropy* (not the phrase),
/// which is where Substrate departs from BIP39 seeds.
fn mini_secret_from_phrase(phrase: &str, password: &str) -> Result<Zeroizing<[u8; 32]>, SuriError> {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    let normalized = words.join(" ");
    let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &normalized)
        .map_err(|e| match e {
            bip39::Error::UnknownWord(i) => SuriError::UnknownWord {
                position: i + 1,
                word: words.get(i).copied().unwrap_or_default().to_owned(),
            },
            bip39::Error::BadWordCount(n) => SuriError::WordCount(n),
            _ => SuriError::Checksum,
        })?;
    let entropy = Zeroizing::new(mnemonic.to_entropy());
    let mini = substrate_bip39::mini_secret_from_entropy(&entropy, password)
        .map_err(|_| SuriError::WordCount(words.len()))?;
    Ok(Zeroizing::new(mini.to_bytes()))
}

enum Junction {
    Hard([u8; 32]),
    Soft([u8; 32]),
}

fn parse_path(path: &str) -> Result<Vec<Junction>, SuriError> {
    let mut junctions = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let hard = rest.starts_with("//");
        let after = rest.trim_start_matches('/');
        if rest.len() - after.len() > 2 {
            return Err(SuriError::BadPath(path.to_owned()));
        }
        let end = after.find('/').unwrap_or(after.len());
        let code = &after[..end];
        if code.is_empty() {
            return Err(SuriError::BadPath(path.to_owned()));
        }
        let cc = chain_code(code);
        junctions.push(if hard {
            Junction::Hard(cc)
        } else {
            Junction::Soft(cc)
        });
        rest = &after[end..];
    }
    Ok(junctions)
}

/// A junction's chain code as Substrate computes it: a number is its u64 little-endian bytes;
/// anything else is its SCALE encoding (compact length, then bytes). Encodings longer than 32
/// bytes are replaced by their blake2b-256 hash; shorter ones are zero-padded.
fn chain_code(code: &str) -> [u8; 32] {
    let encoded = match code.parse::<u64>() {
        Ok(n) => n.to_le_bytes().to_vec(),
        Err(_) => {
            let mut v = scale_compact_len(code.len());
            v.extend_from_slice(code.as_bytes());
            v
        }
    };
    let mut cc = [0u8; 32];
    if encoded.len() > 32 {
        cc.copy_from_slice(&Blake2b::<U32>::digest(&encoded));
    } else {
        cc[..encoded.len()].copy_from_slice(&encoded);
    }
    cc
}

/// SCALE compact encoding of a length (paths are bounded by [`MAX_SURI_LEN`], far below 2^30).
fn scale_compact_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x3f => vec![(n as u8) << 2],
        0x40..=0x3fff => (((n as u16) << 2) | 1).to_le_bytes().to_vec(),
        _ => (((n as u32) << 2) | 2).to_le_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ss58(suri: &str) -> String {
        parse_suri(suri).unwrap().hotkey().to_ss58()
    }

    #[test]
    fn dev_accounts_match_substrate() {
        // As printed by `subkey inspect //Alice` etc.
        assert_eq!(
            ss58("//Alice"),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        assert_eq!(
            ss58("//Bob"),
            "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
        );
        assert_eq!(
            ss58("//Charlie"),
            "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y"
        );
        assert_eq!(ss58(&format!("{DEV_PHRASE}//Alice")), ss58("//Alice"));
        // The bare dev phrase.
        assert_eq!(
            ss58(DEV_PHRASE),
            "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV"
        );
    }

    #[test]
    fn hard_derivation_keeps_a_seed_soft_does_not() {
        assert!(parse_suri("//Alice").unwrap().seed().is_some());
        assert!(parse_suri("//Alice/soft").unwrap().seed().is_none());
    }

    #[test]
    fn seed_and_its_errors() {
        let seed = format!("0x{}", "11".repeat(32));
        assert_eq!(parse_suri(&seed).unwrap().seed(), Some(&[0x11; 32]));
        assert_eq!(parse_suri("0x1234").unwrap_err(), SuriError::SeedLength(2));
        assert!(matches!(
            parse_suri("0xzz").unwrap_err(),
            SuriError::BadHex(_)
        ));
        assert_eq!(
            parse_suri(&format!("{seed}///pw")).unwrap_err(),
            SuriError::PasswordWithSeed
        );
    }

    #[test]
    fn mnemonic_errors_name_the_problem() {
        let words: Vec<&str> = DEV_PHRASE.split(' ').collect();
        let mut wrong = words.clone();
        wrong[2] = "oboe";
        assert_eq!(
            parse_suri(&wrong.join(" ")).unwrap_err(),
            SuriError::UnknownWord {
                position: 3,
                word: "oboe".into()
            }
        );
        assert_eq!(
            parse_suri(&words[..11].join(" ")).unwrap_err(),
            SuriError::WordCount(11)
        );
        let mut swapped = words.clone();
        swapped.swap(0, 1);
        assert_eq!(
            parse_suri(&swapped.join(" ")).unwrap_err(),
            SuriError::Checksum
        );
        assert_eq!(parse_suri("  ").unwrap_err(), SuriError::Empty);
        assert_eq!(
            parse_suri("//Alice/").unwrap_err(),
            SuriError::BadPath("//Alice/".into())
        );
        // As in Substrate, everything after the first `///` is the password.
        assert_ne!(ss58("//Alice////x"), ss58("//Alice"));
    }

    #[test]
    fn chain_codes() {
        // "Alice": compact length 5 << 2 = 0x14, then the bytes, zero padded.
        let cc = chain_code("Alice");
        assert_eq!(&cc[..6], b"\x14Alice");
        assert!(cc[6..].iter().all(|&b| b == 0));
        assert_eq!(&chain_code("42")[..8], &42u64.to_le_bytes());
        assert_eq!(scale_compact_len(64), vec![0x01, 0x01]);
    }
}
