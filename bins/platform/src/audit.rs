//! `platform audit`: check and read the hash-chained audit log.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use platform_storage::{DataDir, audit};
use serde::Serialize;

use crate::DataDirArg;
use crate::output;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check every record's hash, the chain of hashes and HEAD. Exits 0 when intact; otherwise
    /// prints the first bad record and exits 1.
    Verify {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Print the result as JSON (`ok`, `records`, `last_hash`, or `error`).
        #[arg(long)]
        json: bool,
    },
    /// Print the most recent records (the whole log is verified on the way).
    Tail {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// How many records to print.
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        n: usize,
        /// Print one JSON object per record.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct RecordView {
    seq: u64,
    timestamp_ms: u64,
    time: String,
    kind: String,
    actor: String,
    /// Key/value details, when recorded that way.
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<std::collections::BTreeMap<String, String>>,
    /// Details as hex, when they are not key/value fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    details_hex: Option<String>,
}

pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { data_dir, json } => {
            let dir = DataDir::audit_dir(&data_dir.path);
            match audit::verify(&dir) {
                Ok(report) => {
                    if json {
                        output::json(&serde_json::json!({
                            "ok": true,
                            "records": report.records,
                            "last_hash": report.last_hash,
                            "head_records": report.head_records,
                            "torn_bytes": report.torn_bytes,
                        }));
                    } else {
                        let last = report
                            .last_hash
                            .map_or_else(|| "none".into(), |h| h.to_hex());
                        let torn = if report.torn_bytes > 0 {
                            format!(
                                "; a torn final record ({} bytes) left by a crash will be cut off when the node next opens the log",
                                report.torn_bytes
                            )
                        } else {
                            String::new()
                        };
                        println!(
                            "audit log intact: {} records, last hash {last}{torn}",
                            report.records
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => {
                    if json {
                        output::json(&serde_json::json!({ "ok": false, "error": err.to_string() }));
                    }
                    eprintln!("error: {}: {err}", dir.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Tail { data_dir, n, json } => {
            let records = audit::tail(&DataDir::audit_dir(&data_dir.path), n)?;
            for r in records {
                let fields = r.fields();
                let view = RecordView {
                    seq: r.seq,
                    timestamp_ms: r.timestamp_ms,
                    time: output::utc_timestamp(r.timestamp_ms),
                    kind: r.kind,
                    actor: r.actor,
                    details_hex: fields.is_none().then(|| hex::encode(&r.details)),
                    fields: fields.map(|f| f.0.into_iter().collect()),
                };
                if json {
                    output::json(&view);
                } else {
                    let details = match (&view.fields, &view.details_hex) {
                        (Some(f), _) => f
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        (None, Some(h)) => format!("details=0x{h}"),
                        (None, None) => String::new(),
                    };
                    println!(
                        "#{:<6} {}  {:<16} {:<10} {details}",
                        view.seq, view.time, view.kind, view.actor
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
