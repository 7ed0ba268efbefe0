//! The keystore: `<data-dir>/keys/<name>.json`, one Bittensor-format hotkey file per key.
//!
//! Files are created with mode 0600 inside a 0700 folder, written to a temporary file, synced
//! and linked into place so that a crash never leaves a half-written key and an existing key is
//! never overwritten. Loading refuses any secret file that group or others can read.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use platform_primitives::Hotkey;
use zeroize::Zeroizing;

use crate::sr25519::Keypair;
use crate::suri::parse_suri;
use crate::wallet::{MAX_WALLET_FILE, WalletError, WalletFile};

/// Why a keystore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A secret file that other users can read.
    #[error(
        "{path} holds a secret key but is readable by group or others (mode {mode:04o}); fix it with: chmod 600 {path}"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key name that is not a plain file name.
    #[error("'{0}' is not a key name: use 1 to 64 characters from A-Z, a-z, 0-9, '-' and '_'")]
    BadName(String),
    /// A key of this name exists already.
    #[error("a key named '{name}' already exists at {path}; choose another --name")]
    Exists {
        /// The name.
        name: String,
        /// Its file.
        path: PathBuf,
    },
    /// No key of this name.
    #[error("no key named '{name}' in {dir}; `platform keys list` shows the keys there")]
    NotFound {
        /// The name.
        name: String,
        /// The keystore folder.
        dir: PathBuf,
    },
    /// The file is not a valid wallet hotkey file.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// A key without a seed (soft-derived) cannot be stored.
    #[error(
        "this key was derived with a soft junction and has no seed; a key file needs a seed (use //hard junctions)"
    )]
    NoSeed,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a file that holds a secret, refusing it if group or others can read it.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    let mut file = File::open(path).map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeystoreError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    Read::by_ref(&mut file)
        .take(MAX_WALLET_FILE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    Ok(bytes)
}

/// Loads a Bittensor wallet hotkey file from any path (with the permission check).
pub fn load_wallet_file(path: &Path) -> Result<Keypair, KeystoreError> {
    let bytes = read_secret_file(path)?;
    Ok(WalletFile::load(&path.display().to_string(), &bytes)?)
}

/// A key in the keystore.
#[derive(Clone, Debug)]
pub struct KeyEntry {
    /// The key's name.
    pub name: String,
    /// Its public key.
    pub hotkey: Hotkey,
    /// Its file.
    pub path: PathBuf,
}

/// The keystore folder of a data directory.
#[derive(Clone, Debug)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// Opens (creating with mode 0700 if needed) `<data_dir>/keys`.
    pub fn open(data_dir: &Path) -> Result<Keystore, KeystoreError> {
        let dir = data_dir.join("keys");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(&dir))?;
        Ok(Keystore { dir })
    }

    /// The keystore folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, name: &str) -> Result<PathBuf, KeystoreError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(KeystoreError::BadName(name.to_owned()));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// Creates a new key from a fresh 12-word mnemonic (as `btcli` does) and stores it.
    pub fn generate(&self, name: &str) -> Result<KeyEntry, KeystoreError> {
        let mut entropy = Zeroizing::new([0u8; 16]);
        getrandom::fill(entropy.as_mut_slice()).map_err(|e| KeystoreError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(format!("no randomness from the OS: {e}")),
        })?;
        let mnemonic = bip39::Mnemonic::from_entropy(entropy.as_slice())
            .expect("16 bytes is valid BIP39 entropy");
        let phrase = Zeroizing::new(mnemonic.to_string());
        let key = parse_suri(&phrase).expect("a generated mnemonic parses");
        self.insert(name, &key, Some(&phrase))
    }

    /// Stores an existing key under `name`, with its mnemonic if it has one.
    pub fn insert(
        &self,
        name: &str,
        key: &Keypair,
        phrase: Option<&str>,
    ) -> Result<KeyEntry, KeystoreError> {
        let path = self.path_of(name)?;
        if path.exists() {
            return Err(KeystoreError::Exists {
                name: name.to_owned(),
                path,
            });
        }
        let json = Zeroizing::new(
            WalletFile::for_key(key, phrase)
                .ok_or(KeystoreError::NoSeed)?
                .to_json(),
        );
        let tmp = self.dir.join(format!(".{name}.json.tmp"));
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(json.as_bytes()).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        // hard_link fails if the target exists, so two concurrent inserts cannot both win.
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(KeystoreError::Exists {
                    name: name.to_owned(),
                    path,
                });
            }
            Err(e) => return Err(io(&path)(e)),
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(KeyEntry {
            name: name.to_owned(),
            hotkey: key.hotkey(),
            path,
        })
    }

    /// Loads the key `name`.
    pub fn load(&self, name: &str) -> Result<Keypair, KeystoreError> {
        let path = self.path_of(name)?;
        if !path.exists() {
            return Err(KeystoreError::NotFound {
                name: name.to_owned(),
                dir: self.dir.clone(),
            });
        }
        load_wallet_file(&path)
    }

    /// Every key, sorted by name. Each file is fully checked.
    pub fn list(&self) -> Result<Vec<KeyEntry>, KeystoreError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !name.starts_with('.') {
                names.push(name.to_owned());
            }
        }
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let hotkey = self.load(&name)?.hotkey();
                Ok(KeyEntry {
                    path: self.path_of(&name)?,
                    name,
                    hotkey,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_store_load() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::open(dir.path()).unwrap();
        let entry = ks.generate("validator").unwrap();
        let mode = fs::metadata(&entry.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(ks.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(ks.load("validator").unwrap().hotkey(), entry.hotkey);
        assert!(matches!(
            ks.generate("validator"),
            Err(KeystoreError::Exists { .. })
        ));
        let listed = ks.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].hotkey, entry.hotkey);
    }

    #[test]
    fn refuses_secret_readable_by_others_and_says_how_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::open(dir.path()).unwrap();
        let entry = ks
            .insert("alice", &parse_suri("//Alice").unwrap(), None)
            .unwrap();
        fs::set_permissions(&entry.path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = ks.load("alice").unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", entry.path.display())),
            "{err}"
        );
        assert!(err.contains("0644"), "{err}");
    }

    #[test]
    fn names_cannot_escape_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::open(dir.path()).unwrap();
        for bad in ["../x", "a/b", "", ".hidden", &"n".repeat(65)] {
            assert!(
                matches!(ks.load(bad), Err(KeystoreError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            ks.load("absent"),
            Err(KeystoreError::NotFound { .. })
        ));
    }

    #[test]
    fn corrupted_and_truncated_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::open(dir.path()).unwrap();
        let entry = ks
            .insert("bob", &parse_suri("//Bob").unwrap(), None)
            .unwrap();
        let text = fs::read_to_string(&entry.path).unwrap();
        fs::write(&entry.path, &text[..text.len() / 2]).unwrap();
        assert!(matches!(
            ks.load("bob"),
            Err(KeystoreError::Wallet(WalletError::Malformed { .. }))
        ));
        // A flipped digit in the seed derives another address than recorded.
        let seed_at = text.find("secretSeed").unwrap() + 16;
        let mut bytes = text.into_bytes();
        bytes[seed_at] = if bytes[seed_at] == b'0' { b'1' } else { b'0' };
        fs::write(&entry.path, &bytes).unwrap();
        assert!(matches!(
            ks.load("bob"),
            Err(KeystoreError::Wallet(WalletError::AddressMismatch { .. }))
        ));
    }

    #[test]
    fn soft_derived_keys_cannot_be_stored() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::open(dir.path()).unwrap();
        let soft = parse_suri("//Alice/soft").unwrap();
        assert!(matches!(
            ks.insert("s", &soft, None),
            Err(KeystoreError::NoSeed)
        ));
    }
}
