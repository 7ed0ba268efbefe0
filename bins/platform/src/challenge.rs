//! `platform challenge`: inspect and test challenge modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use platform_primitives::Score;
use platform_runtime::{
    Allocation, CompileLimits, Compiler, Entry, EvalInput, LoadError, OutcomeClass, Policy,
    Runtime, validate::validate,
};
use serde::Serialize;

use crate::output;

#[derive(Subcommand, Debug)]
pub enum ChallengeCommand {
    /// Create a new challenge crate (with a vendored SDK and samples) that builds as generated.
    New {
        /// Path of the new crate; its last component is the challenge name.
        path: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build a challenge crate for wasm32 in release and check the module against the policy.
    Build {
        /// The challenge crate (default: the current directory).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Print the result as JSON (`wasm`, `hash`, `size`).
        #[arg(long)]
        json: bool,
    },
    /// Show a module's ABI version, imports, exports and whether it passes the policy checks.
    Inspect {
        /// A `.wasm` or `.wat` file.
        file: PathBuf,
        /// Print the result as JSON (`valid`, `errors`, `abi_version`, `imports`, `exports`).
        #[arg(long)]
        json: bool,
    },
    /// Run `validate` (if exported) and one evaluation of a module on a submission.
    ///
    /// The module is compiled in a resource-limited worker process, as a validator does.
    /// A module that fails static validation prints outcome `rejected` and exits with code 2.
    Test {
        /// A `.wasm` or `.wat` file.
        file: PathBuf,
        /// The submission payload file.
        #[arg(long)]
        submission: PathBuf,
        /// The evaluation seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fuel for the call (default: the policy's).
        #[arg(long)]
        fuel: Option<u64>,
        /// Which export to run: `evaluate` (after `validate`), `query` or `weights`.
        #[arg(long, default_value = "evaluate", value_parser = ["evaluate", "query", "weights"])]
        entry: String,
        /// A file the module reads with `asset_read` (repeat, in index order), as the
        /// challenge's metadata would pin it.
        #[arg(long = "asset", value_name = "FILE")]
        assets: Vec<PathBuf>,
        /// Print the result as JSON (`outcome`, `score`, `fuel_used`, `receipt`, `wall_us`, …).
        #[arg(long)]
        json: bool,
    },
}

/// Largest module source file read (a `.wat` text is larger than its binary).
const MAX_SOURCE: u64 = 32 << 20;
/// Largest submission payload read by `challenge test`.
const MAX_PAYLOAD: u64 = 16 << 20;

fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{what} {}", path.display()))?
        .len();
    if len > limit {
        bail!(
            "{what} {} is {len} bytes; at most {limit} are accepted",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// Reads a `.wasm` or `.wat` module.
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_limited(path, MAX_SOURCE, "module")?;
    if path.extension().is_some_and(|e| e == "wat") || !bytes.starts_with(b"\0asm") {
        return wat::parse_bytes(&bytes)
            .map(|b| b.into_owned())
            .map_err(|e| {
                anyhow::anyhow!("{}: not a valid .wasm or .wat module: {e}", path.display())
            });
    }
    Ok(bytes)
}

/// The bounded compiler: this binary's hidden compile worker.
pub fn worker_compiler() -> Result<Compiler> {
    Ok(Compiler::Subprocess {
        program: std::env::current_exe().context("locating the platform binary")?,
        args: vec!["runtime-compile-worker".into()],
        limits: CompileLimits::default(),
    })
}

#[derive(Serialize)]
struct Inspection {
    file: PathBuf,
    valid: bool,
    errors: Vec<String>,
    abi_version: Option<u32>,
    imports: Vec<String>,
    exports: Vec<String>,
    size: usize,
    hash: String,
}

#[derive(Serialize)]
struct TestReport {
    outcome: OutcomeClass,
    score: Option<String>,
    score_raw: Option<u64>,
    fuel_used: u64,
    write_set_entries: usize,
    receipt: String,
    wall_us: u64,
    compile_ms: u64,
    validate: Option<OutcomeClass>,
    error: Option<String>,
    logs: Vec<String>,
}

pub fn run(cmd: ChallengeCommand) -> Result<ExitCode> {
    match cmd {
        ChallengeCommand::New { path, json } => crate::scaffold::new(&path, json),
        ChallengeCommand::Build { path, json } => crate::scaffold::build(&path, json),
        ChallengeCommand::Inspect { file, json } => {
            let bytes = read_module(&file)?;
            let report = match validate(&bytes, &Policy::default()) {
                Ok(info) => Inspection {
                    valid: true,
                    errors: Vec::new(),
                    abi_version: Some(info.abi_version),
                    imports: info.imports,
                    exports: info.exports,
                    size: bytes.len(),
                    hash: platform_primitives::Hash::of(&bytes).to_hex(),
                    file,
                },
                Err(e) => Inspection {
                    valid: false,
                    errors: vec![e.to_string()],
                    abi_version: None,
                    imports: Vec::new(),
                    exports: Vec::new(),
                    size: bytes.len(),
                    hash: platform_primitives::Hash::of(&bytes).to_hex(),
                    file,
                },
            };
            if json {
                output::json(&report);
            } else {
                println!(
                    "module:      {} ({} bytes, blake3 {})",
                    report.file.display(),
                    report.size,
                    report.hash
                );
                match report.abi_version {
                    Some(v) => println!("abi version: {v}"),
                    None => println!("abi version: unknown"),
                }
                println!("imports:     {}", report.imports.join(", "));
                println!("exports:     {}", report.exports.join(", "));
                if report.valid {
                    println!("policy:      passes");
                } else {
                    println!("policy:      REJECTED: {}", report.errors.join("; "));
                }
            }
            Ok(if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        ChallengeCommand::Test {
            file,
            submission,
            seed,
            fuel,
            entry,
            assets,
            json,
        } => {
            let bytes = read_module(&file)?;
            let assets = Arc::new(
                assets
                    .iter()
                    .map(|p| read_limited(p, platform_state::MAX_ASSET_BYTES, "asset"))
                    .collect::<Result<Vec<_>>>()?,
            );
            let payload = read_limited(&submission, MAX_PAYLOAD, "submission")?;
            let mut policy = Policy::default();
            if let Some(f) = fuel {
                policy.fuel = f;
            }
            let rt = Runtime::new(policy, Allocation::Pooling).map_err(anyhow::Error::msg)?;
            let (module, stats) = match rt.load_with(&bytes, &worker_compiler()?, None) {
                Ok(loaded) => loaded,
                Err(LoadError::Rejected(rejection)) => {
                    let e = rt.rejected(&rejection);
                    if json {
                        output::json(&serde_json::json!({
                            "outcome": e.outcome, "error": e.error, "receipt": e.digest.to_hex(),
                        }));
                    } else {
                        println!("outcome:  rejected");
                        println!("reason:   {rejection}");
                    }
                    return Ok(ExitCode::from(2));
                }
                Err(e) => return Err(e.into()),
            };
            let input = EvalInput { seed, payload };
            let (validation, e, wall) = match entry.as_str() {
                "query" | "weights" => {
                    let which = if entry == "query" {
                        Entry::Query
                    } else {
                        Entry::Weights
                    };
                    let start = std::time::Instant::now();
                    let e = rt.call(&module, which, &input, Arc::new(BTreeMap::new()), assets);
                    (None, e, start.elapsed())
                }
                _ => rt.validate_and_evaluate(&module, &input, Arc::new(BTreeMap::new()), assets),
            };
            let report = TestReport {
                outcome: e.outcome,
                score: e.score.map(|s| Score(s).to_string()),
                score_raw: e.score,
                fuel_used: e.fuel_used,
                write_set_entries: e.write_set.len(),
                receipt: e.digest.to_hex(),
                wall_us: wall.as_micros() as u64,
                compile_ms: stats.compile.as_millis() as u64,
                validate: validation.map(|v| v.outcome),
                error: e.error,
                logs: e.logs,
            };
            if json {
                output::json(&report);
            } else {
                println!(
                    "outcome:    {}",
                    serde_json::to_value(report.outcome)?
                        .as_str()
                        .unwrap_or("?")
                );
                if let Some(s) = &report.score {
                    println!("score:      {s}");
                }
                println!("fuel used:  {}", report.fuel_used);
                println!("write-set:  {} entries", report.write_set_entries);
                println!("receipt:    {}", report.receipt);
                println!(
                    "wall time:  {} µs (compile {} ms)",
                    report.wall_us, report.compile_ms
                );
                if let Some(err) = &report.error {
                    println!("error:      {err}");
                }
                for line in &report.logs {
                    println!("log:        {line}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The hidden compile worker entry point.
pub fn compile_worker(
    cpu_seconds: u64,
    memory_bytes: u64,
    policy: Option<&str>,
) -> Result<ExitCode> {
    let limits = CompileLimits {
        cpu_seconds,
        memory_bytes,
        ..CompileLimits::default()
    };
    let policy = match policy {
        Some(text) => {
            let bytes = hex::decode(text).context("--policy: not hex")?;
            platform_primitives::decode::<Policy>("--policy", &bytes, 4096)
                .map_err(|e| anyhow::anyhow!("--policy: {e}"))?
        }
        None => Policy::default(),
    };
    match platform_runtime::compile::compile_worker(limits, &policy) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
