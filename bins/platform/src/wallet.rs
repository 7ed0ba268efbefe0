//! Bittensor's wallet options (`--wallet.name`, `--wallet.hotkey`, `--wallet.path`) and the
//! passwords of btcli-encrypted key files.
//!
//! A wallet is a folder `<wallet.path>/<wallet.name>` holding `coldkey`, `coldkeypub.txt` and
//! `hotkeys/<name>`; `btcli` encrypts the coldkey always and a hotkey when asked
//! (`--use-password`). An encrypted key file's password is looked for, in order, in:
//!
//! 1. the file named by `--wallet.password-file` or `PLATFORM_WALLET_PASSWORD_FILE` (its first
//!    line; mode 0600 like any secret);
//! 2. `PLATFORM_WALLET_PASSWORD`;
//! 3. btcli's own variable for that file (`BT_PW_<PATH>`, set by `btcli … --save-to-env`);
//! 4. a prompt on the terminal, when there is one.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use platform_crypto::keyfile::{Encryption, btcli_env_var_name, password_from_btcli_env};
use platform_crypto::keystore::read_secret_file;
use platform_crypto::{Keypair, WalletFile};
use zeroize::Zeroizing;

/// Where Bittensor keeps wallets unless told otherwise.
pub const DEFAULT_WALLET_PATH: &str = "~/.bittensor/wallets";
/// Largest password file read.
const MAX_PASSWORD_FILE: usize = 4096;

/// Bittensor's wallet options, named as `btcli` and the Bittensor SDK name them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WalletArgs {
    /// A btcli wallet's name: use its hotkey file <wallet.path>/<wallet.name>/hotkeys/
    /// <wallet.hotkey> instead of --hotkey.
    #[arg(long = "wallet.name", id = "wallet_name")]
    pub name: Option<String>,
    /// The hotkey's name within the wallet (default: `default`).
    #[arg(long = "wallet.hotkey", id = "wallet_hotkey", requires = "wallet_name")]
    pub hotkey: Option<String>,
    /// Where wallets live (default: ~/.bittensor/wallets).
    #[arg(long = "wallet.path", id = "wallet_path", requires = "wallet_name")]
    pub path: Option<String>,
    /// For a password-encrypted key file: a file (mode 0600) whose first line is the password.
    /// Without it: PLATFORM_WALLET_PASSWORD, btcli's BT_PW_… variable for the key file, or a
    /// prompt on the terminal.
    #[arg(
        long = "wallet.password-file",
        id = "wallet_password_file",
        env = "PLATFORM_WALLET_PASSWORD_FILE"
    )]
    pub password_file: Option<PathBuf>,
}

impl WalletArgs {
    /// The key to load: `--hotkey`, or the wallet's hotkey file. `None` when neither is given.
    pub fn hotkey_spec(&self, hotkey: Option<&str>) -> Result<Option<String>> {
        match (hotkey, &self.name) {
            (Some(_), Some(_)) => {
                bail!("give either --hotkey or --wallet.name (with --wallet.hotkey), not both")
            }
            (Some(h), None) => Ok(Some(h.to_owned())),
            (None, Some(name)) => {
                let hotkey = self.hotkey.as_deref().unwrap_or("default");
                for (what, part) in [
                    ("--wallet.name", name.as_str()),
                    ("--wallet.hotkey", hotkey),
                ] {
                    if part.is_empty() || part.contains('/') || part == "." || part == ".." {
                        bail!("{what} '{part}' is not a plain name");
                    }
                }
                let root = expand_home(self.path.as_deref().unwrap_or(DEFAULT_WALLET_PATH))?;
                let file = root.join(name).join("hotkeys").join(hotkey);
                if !file.is_file() {
                    bail!(
                        "wallet {name}, hotkey {hotkey}: no key file at {} (`btcli wallet list \
                         --wallet.path {}` shows the wallets there)",
                        file.display(),
                        root.display()
                    );
                }
                Ok(Some(file.display().to_string()))
            }
            (None, None) => Ok(None),
        }
    }

    /// Where passwords come from for these options.
    pub fn passwords(&self) -> Passwords {
        Passwords {
            file: self.password_file.clone(),
        }
    }
}

/// `~/…` with the home folder; other paths unchanged.
fn expand_home(path: &str) -> Result<PathBuf> {
    match path.strip_prefix("~/") {
        Some(rest) => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| anyhow!("{path}: HOME is not set; give an absolute path"))?;
            Ok(PathBuf::from(home).join(rest))
        }
        None => Ok(PathBuf::from(path)),
    }
}

/// The sources of a key file's password.
#[derive(Clone, Debug, Default)]
pub struct Passwords {
    /// `--wallet.password-file`.
    pub file: Option<PathBuf>,
}

impl Passwords {
    /// Only the environment (and the terminal): for commands without wallet options.
    pub fn from_env() -> Passwords {
        Passwords {
            file: std::env::var_os("PLATFORM_WALLET_PASSWORD_FILE").map(PathBuf::from),
        }
    }

    /// The password of the encrypted key file `key_file`.
    fn password_for(&self, key_file: &Path) -> Result<Zeroizing<String>> {
        if let Some(file) = &self.file {
            let bytes =
                read_secret_file(file).map_err(|e| anyhow!("--wallet.password-file: {e}"))?;
            if bytes.len() > MAX_PASSWORD_FILE {
                bail!(
                    "--wallet.password-file {}: longer than {MAX_PASSWORD_FILE} bytes; it should \
                     hold only the password",
                    file.display()
                );
            }
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                anyhow!("--wallet.password-file {}: not UTF-8 text", file.display())
            })?;
            let line = text.lines().next().unwrap_or("");
            return Ok(Zeroizing::new(line.to_owned()));
        }
        if let Ok(pw) = std::env::var("PLATFORM_WALLET_PASSWORD") {
            return Ok(Zeroizing::new(pw));
        }
        let absolute = std::path::absolute(key_file).unwrap_or_else(|_| key_file.to_owned());
        let var = btcli_env_var_name(&absolute.display().to_string());
        if let Ok(value) = std::env::var(&var) {
            return password_from_btcli_env(&var, &value)
                .ok_or_else(|| anyhow!("{var} is set but is not a value btcli wrote"));
        }
        if std::io::stdin().is_terminal() {
            let pw = rpassword::prompt_password(format!("password for {}: ", key_file.display()))?;
            return Ok(Zeroizing::new(pw));
        }
        bail!(
            "{}: the key file is encrypted; give its password with --wallet.password-file FILE \
             (or PLATFORM_WALLET_PASSWORD_FILE), PLATFORM_WALLET_PASSWORD, btcli's {var}, or run \
             in a terminal to be asked",
            key_file.display()
        )
    }

    /// Loads a Bittensor key file, asking for its password only when it is encrypted.
    pub fn load_key_file(&self, path: &Path) -> Result<Keypair> {
        let bytes = read_secret_file(path)?;
        let name = path.display().to_string();
        let password = match Encryption::of(&bytes) {
            Encryption::Nacl => Some(self.password_for(path)?),
            _ => None,
        };
        Ok(WalletFile::load_with_password(
            &name,
            &bytes,
            password.as_deref().map(String::as_str),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallet_names_resolve_to_btcli_paths_and_refuse_traversal() {
        let dir = tempfile::tempdir().unwrap();
        let hotkeys = dir.path().join("w").join("hotkeys");
        std::fs::create_dir_all(&hotkeys).unwrap();
        std::fs::write(hotkeys.join("default"), b"{}").unwrap();
        let args = WalletArgs {
            name: Some("w".into()),
            path: Some(dir.path().display().to_string()),
            ..WalletArgs::default()
        };
        assert_eq!(
            args.hotkey_spec(None).unwrap().unwrap(),
            hotkeys.join("default").display().to_string()
        );
        assert!(args.hotkey_spec(Some("//Alice")).is_err());
        let missing = WalletArgs {
            hotkey: Some("h9".into()),
            ..args.clone()
        };
        let err = missing.hotkey_spec(None).unwrap_err().to_string();
        assert!(err.contains("no key file"), "{err}");
        let sneaky = WalletArgs {
            hotkey: Some("../../etc".into()),
            ..args
        };
        assert!(sneaky.hotkey_spec(None).is_err());
        assert_eq!(
            WalletArgs::default().hotkey_spec(Some("//Bob")).unwrap(),
            Some("//Bob".into())
        );
    }
}
