//! `platform inspect`: where a stopped validator's data directory spends its space — each
//! top-level entry (database, blobs, audit log, compiled modules, logs) and each table of the
//! database with its entries and bytes. For measuring what grows over a long run.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::output;

/// `platform inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    data_dir: crate::DataDirArg,
    /// Print JSON: `entries` (each top-level entry's `name`, `bytes`, `files`) and `tables`
    /// (each database table's `name`, `entries`, `stored_bytes`, `metadata_bytes`,
    /// `fragmented_bytes`).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    bytes: u64,
    files: u64,
}

#[derive(Serialize)]
struct Table {
    name: String,
    entries: u64,
    stored_bytes: u64,
    metadata_bytes: u64,
    fragmented_bytes: u64,
}

#[derive(Serialize)]
struct Report {
    data_dir: String,
    bytes: u64,
    entries: Vec<Entry>,
    tables: Vec<Table>,
}

/// Bytes and files under `path` (itself, if a file).
fn size_of(path: &Path) -> Result<(u64, u64)> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok((meta.len(), 1));
    }
    let (mut bytes, mut files) = (0, 0);
    for e in std::fs::read_dir(path)? {
        let (b, f) = size_of(&e?.path())?;
        bytes += b;
        files += f;
    }
    Ok((bytes, files))
}

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let root = args.data_dir.path.clone();
    let mut entries = Vec::new();
    for e in std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))? {
        let e = e?;
        let (bytes, files) = size_of(&e.path())?;
        entries.push(Entry {
            name: e.file_name().to_string_lossy().into_owned(),
            bytes,
            files,
        });
    }
    entries.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    let db = platform_storage::Db::open(&root.join("db.redb"))
        .with_context(|| format!("opening the database of {}", root.display()))?;
    let tables = db
        .usage()?
        .into_iter()
        .map(|t| Table {
            name: t.name,
            entries: t.entries,
            stored_bytes: t.stored_bytes,
            metadata_bytes: t.metadata_bytes,
            fragmented_bytes: t.fragmented_bytes,
        })
        .collect();
    let report = Report {
        data_dir: root.display().to_string(),
        bytes: entries.iter().map(|e| e.bytes).sum(),
        entries,
        tables,
    };
    if args.json {
        output::json(&report);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {} bytes", report.data_dir, report.bytes);
    for e in &report.entries {
        println!(
            "  {:<24} {:>12} bytes  {:>6} files",
            e.name, e.bytes, e.files
        );
    }
    println!("database tables:");
    println!(
        "  {:<24} {:>9} {:>12} {:>12} {:>12}",
        "table", "entries", "stored", "metadata", "fragmented"
    );
    for t in &report.tables {
        println!(
            "  {:<24} {:>9} {:>12} {:>12} {:>12}",
            t.name, t.entries, t.stored_bytes, t.metadata_bytes, t.fragmented_bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}
