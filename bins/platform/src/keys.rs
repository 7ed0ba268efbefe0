//! `platform keys`: hotkeys in the data directory's keystore.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use platform_crypto::keystore::KeyEntry;
use platform_crypto::{Keypair, Keystore, parse_suri};
use platform_primitives::Hotkey;
use platform_storage::{AuditEntry, DataDir};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::DataDirArg;
use crate::output;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a new hotkey from a fresh 12-word mnemonic and store it in the keystore.
    ///
    /// The key file (mode 0600) holds the mnemonic in Bittensor's wallet format: back it up.
    Generate {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Name of the key in the keystore.
        #[arg(long, default_value = "default")]
        name: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Store an existing hotkey: a Bittensor wallet hotkey file, a mnemonic, a seed or a URI.
    ///
    /// Secrets given without a value are read from the first line of stdin, which keeps them
    /// out of shell history and process listings:
    /// `platform keys import --mnemonic < phrase.txt`.
    Import {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Name of the key in the keystore.
        #[arg(long, default_value = "default")]
        name: String,
        /// A Bittensor wallet hotkey file, e.g. ~/.bittensor/wallets/W/hotkeys/H.
        #[arg(long, group = "source")]
        wallet: Option<PathBuf>,
        /// A BIP39 mnemonic (12–24 words); omit the value to read it from stdin.
        #[arg(long, group = "source", num_args = 0..=1, value_name = "PHRASE")]
        mnemonic: Option<Option<String>>,
        /// A 32-byte seed as 0x-prefixed hex; omit the value to read it from stdin.
        #[arg(long, group = "source", num_args = 0..=1, value_name = "HEX")]
        seed: Option<Option<String>>,
        /// A secret URI such as //Alice or `<mnemonic>//hard`; omit the value to read stdin.
        #[arg(long, group = "source", num_args = 0..=1, value_name = "SURI")]
        suri: Option<Option<String>>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the public side of a key: a mnemonic, a 0x seed, a dev URI (//Alice) or an address.
    ///
    /// Nothing is stored and no secret is printed.
    Inspect {
        /// A secret URI (mnemonic, 0x seed, //Alice, `<phrase>//hard///password`) or an SS58
        /// address.
        suri: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the keys in the keystore.
    List {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The public description of a key, as printed by every `keys` command.
#[derive(Serialize)]
struct KeyReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    ss58: String,
    public_key: String,
    /// The validator BLS key derived from the hotkey seed (absent for keys without a seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    bls_public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
}

impl KeyReport {
    fn of(hotkey: Hotkey, key: Option<&Keypair>) -> KeyReport {
        KeyReport {
            name: None,
            ss58: hotkey.to_ss58(),
            public_key: format!("0x{}", hotkey.to_hex()),
            bls_public_key: key
                .and_then(Keypair::derive_bls_key)
                .map(|k| format!("0x{}", hex::encode(k.public().0))),
            path: None,
        }
    }

    fn stored(entry: &KeyEntry, key: &Keypair) -> KeyReport {
        KeyReport {
            name: Some(entry.name.clone()),
            path: Some(entry.path.clone()),
            ..KeyReport::of(entry.hotkey, Some(key))
        }
    }

    fn print(&self, json: bool) {
        if json {
            return output::json(self);
        }
        if let Some(name) = &self.name {
            println!("name:           {name}");
        }
        println!("ss58 address:   {}", self.ss58);
        println!("public key:     {}", self.public_key);
        if let Some(bls) = &self.bls_public_key {
            println!("bls public key: {bls}");
        }
        if let Some(path) = &self.path {
            println!("key file:       {}", path.display());
        }
    }
}

pub fn run(cmd: KeysCommand) -> Result<ExitCode> {
    match cmd {
        KeysCommand::Generate {
            data_dir,
            name,
            json,
        } => {
            let dd = DataDir::open(&data_dir.path)?;
            let store = Keystore::open(dd.root())?;
            let entry = store.generate(&name)?;
            let key = store.load(&name)?;
            record(&dd, "keys.generate", &entry)?;
            KeyReport::stored(&entry, &key).print(json);
            if !json {
                eprintln!("The key file holds the mnemonic: back it up and keep it private.");
            }
        }
        KeysCommand::Import {
            data_dir,
            name,
            wallet,
            mnemonic,
            seed,
            suri,
            json,
        } => {
            let (key, phrase) = read_import_source(wallet, mnemonic, seed, suri)?;
            let dd = DataDir::open(&data_dir.path)?;
            let store = Keystore::open(dd.root())?;
            let entry = store.insert(&name, &key, phrase.as_deref().map(String::as_str))?;
            record(&dd, "keys.import", &entry)?;
            KeyReport::stored(&entry, &key).print(json);
        }
        KeysCommand::Inspect { suri, json } => {
            let report = match suri.trim().parse::<Hotkey>() {
                Ok(hotkey) => KeyReport::of(hotkey, None),
                Err(_) if !suri.contains(' ') && !suri.starts_with("0x") && !suri.contains('/') => {
                    // Not a URI form, so report why it is not an address either.
                    let err = suri.trim().parse::<Hotkey>().unwrap_err();
                    bail!("{err}");
                }
                Err(_) => {
                    let key = parse_suri(&suri)?;
                    KeyReport::of(key.hotkey(), Some(&key))
                }
            };
            report.print(json);
        }
        KeysCommand::List { data_dir, json } => {
            let store = Keystore::open(&data_dir.path)?;
            let mut reports = Vec::new();
            for entry in store.list()? {
                let key = store.load(&entry.name)?;
                reports.push(KeyReport::stored(&entry, &key));
            }
            if json {
                output::json(&reports);
            } else if reports.is_empty() {
                println!("no keys in {}", store.dir().display());
            } else {
                for r in &reports {
                    println!("{:<20} {}", r.name.as_deref().unwrap_or(""), r.ss58);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn record(dd: &DataDir, kind: &str, entry: &KeyEntry) -> Result<()> {
    let ss58 = entry.hotkey.to_ss58();
    dd.audit()
        .append(AuditEntry::with_fields(
            kind,
            "operator",
            &[("name", &entry.name), ("ss58", &ss58)],
        ))
        .context("recording the key in the audit log")?;
    Ok(())
}

type Secret = Zeroizing<String>;

fn read_import_source(
    wallet: Option<PathBuf>,
    mnemonic: Option<Option<String>>,
    seed: Option<Option<String>>,
    suri: Option<Option<String>>,
) -> Result<(Keypair, Option<Secret>)> {
    if let Some(path) = wallet {
        return Ok((
            crate::wallet::Passwords::from_env().load_key_file(&path)?,
            None,
        ));
    }
    if let Some(phrase) = mnemonic {
        let phrase = value_or_stdin(phrase, "mnemonic")?;
        if phrase.contains('/') {
            bail!("--mnemonic takes only the words; use --suri for derivation paths");
        }
        return Ok((parse_suri(&phrase)?, Some(phrase)));
    }
    if let Some(hex_seed) = seed {
        let hex_seed = value_or_stdin(hex_seed, "seed")?;
        if !hex_seed.starts_with("0x") {
            bail!("--seed takes 0x followed by 64 hex digits");
        }
        return Ok((parse_suri(&hex_seed)?, None));
    }
    if let Some(uri) = suri {
        let uri = value_or_stdin(uri, "secret URI")?;
        return Ok((parse_suri(&uri)?, None));
    }
    bail!("say what to import: --wallet FILE, --mnemonic, --seed or --suri (see --help)")
}

fn value_or_stdin(value: Option<String>, what: &str) -> Result<Secret> {
    if let Some(v) = value {
        return Ok(Zeroizing::new(v));
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let trimmed = Zeroizing::new(line.trim().to_owned());
    if trimmed.is_empty() {
        bail!("no {what} on stdin: pipe it in, or give it as the option's value");
    }
    Ok(trimmed)
}
