//! `platform challenge new` and `platform challenge build`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use platform_primitives::Hash;
use platform_runtime::{Policy, validate::validate};
use serde::Serialize;

use crate::output;

/// The SDK's sources, vendored into every new challenge so it builds anywhere.
const SDK_MANIFEST: &str = include_str!("../../../crates/sdk/Cargo.toml");
const SDK_LIB: &str = include_str!("../../../crates/sdk/src/lib.rs");

const CONFIG: &str = r#"[build]
target = "wasm32-unknown-unknown"

[target.wasm32-unknown-unknown]
# Platform's runtime requires a declared memory maximum: 32 MiB (512 pages).
rustflags = ["-C", "link-arg=--max-memory=33554432"]
"#;

fn manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
platform-challenge-sdk = {{ path = "sdk" }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

[workspace]
"#
    )
}

const LIB: &str = r#"//! A Platform challenge. Edit `evaluate` (and `validate`), then:
//!
//!     platform challenge build
//!     platform challenge test target/wasm32-unknown-unknown/release/NAME.wasm --submission samples/good1.bin

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec::Vec;

use platform_challenge_sdk::{EvalInput, EvalOutput, SCORE_ONE, challenge, kv};

/// Refuse empty payloads before evaluating them.
fn validate(input: &EvalInput) -> bool {
    !input.payload.is_empty()
}

/// Score: the fraction of payload bytes equal to the seed's lowest byte, in fixed point.
fn evaluate(input: EvalInput) -> EvalOutput {
    let target = input.seed as u8;
    let hits = input.payload.iter().filter(|&&b| b == target).count() as u64;
    let score = hits * SCORE_ONE / input.payload.len().max(1) as u64;
    let runs = kv::get_borsh::<u64>(b"runs").unwrap_or(0) + 1;
    kv::put_borsh(b"runs", &runs);
    EvalOutput { score, details: Vec::new() }
}

challenge!(evaluate: evaluate, validate: validate);
"#;

/// Creates a challenge crate at `path`.
pub fn new(path: &Path, json: bool) -> Result<ExitCode> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("the challenge path needs a final name")?;
    let ok = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "'{name}' is not a challenge name: use lowercase letters, digits, '-' and '_', starting with a letter"
        );
    }
    if path.exists() {
        bail!("{} already exists; choose a new name", path.display());
    }
    let write = |rel: &str, contents: &[u8]| -> Result<()> {
        let p = path.join(rel);
        std::fs::create_dir_all(p.parent().expect("relative path has a parent"))?;
        std::fs::write(&p, contents).with_context(|| format!("writing {}", p.display()))
    };
    write("Cargo.toml", manifest(name).as_bytes())?;
    write(".cargo/config.toml", CONFIG.as_bytes())?;
    write(
        "src/lib.rs",
        LIB.replace("NAME", &name.replace('-', "_")).as_bytes(),
    )?;
    write("sdk/Cargo.toml", SDK_MANIFEST.as_bytes())?;
    write("sdk/src/lib.rs", SDK_LIB.as_bytes())?;
    // Seed 0 scores bytes equal to 0.
    write("samples/good1.bin", &[0, 0, 0, 7])?;
    write("samples/invalid1.bin", &[])?;
    write(".gitignore", b"/target\n")?;
    if json {
        output::json(&serde_json::json!({ "path": path, "name": name }));
    } else {
        println!("created challenge '{name}' in {}", path.display());
        println!("next: cd {} && platform challenge build", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Built {
    wasm: PathBuf,
    hash: String,
    size: usize,
}

/// Builds the challenge crate at `path` for wasm32 in release and checks the module.
pub fn build(path: &Path, json: bool) -> Result<ExitCode> {
    let manifest = path.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "no Cargo.toml in {}; give the path of a challenge crate",
            path.display()
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest_abs = std::fs::canonicalize(&manifest)?;
    let metadata = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .context("running cargo metadata (is cargo installed?)")?;
    if !metadata.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&metadata.stderr).trim()
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&metadata.stdout)?;
    let target_dir = PathBuf::from(
        meta["target_directory"]
            .as_str()
            .context("cargo metadata has no target directory")?,
    );
    let package = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["manifest_path"]
                .as_str()
                .is_some_and(|m| Path::new(m) == manifest_abs)
        })
        .context(
            "the manifest is not a package (a workspace root?); give a challenge crate's path",
        )?;
    let lib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .context("the package has no cdylib target; add crate-type = [\"cdylib\"] under [lib]")?;
    let lib_name = lib["name"].as_str().unwrap_or_default().replace('-', "_");
    if !json {
        eprintln!(
            "building {} for wasm32-unknown-unknown…",
            package["name"].as_str().unwrap_or("?")
        );
    }
    // Cargo reads `.cargo/config.toml` (the memory maximum) from the working directory.
    let status = Command::new(&cargo)
        .current_dir(path)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--manifest-path",
        ])
        .arg(&manifest_abs)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!(
            "cargo build failed (is the wasm32 target installed? `rustup target add wasm32-unknown-unknown`)"
        );
    }
    let wasm = target_dir
        .join("wasm32-unknown-unknown/release")
        .join(format!("{lib_name}.wasm"));
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    validate(&bytes, &Policy::default())
        .map_err(|e| anyhow::anyhow!("{} was built but fails the policy: {e}", wasm.display()))?;
    let built = Built {
        hash: Hash::of(&bytes).to_hex(),
        size: bytes.len(),
        wasm,
    };
    if json {
        output::json(&built);
    } else {
        println!("wasm: {}", built.wasm.display());
        println!("hash: {}", built.hash);
        println!("size: {} bytes", built.size);
    }
    Ok(ExitCode::SUCCESS)
}
