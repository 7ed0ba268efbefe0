//! Static validation of a module before it is compiled: size, imports, the ABI section, memory
//! and table declarations, and caps on everything countable. Each rejection says what was wrong.

use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType, Validator, WasmFeatures};

use crate::abi::{ABI_SECTION, ABI_VERSION, HOST_MODULE, host_signature};
use crate::policy::Policy;

/// Why a module was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Larger than the policy allows.
    #[error("module is {size} bytes; the policy allows at most {limit}")]
    TooLarge {
        /// Module size.
        size: usize,
        /// The limit.
        limit: u32,
    },
    /// Not valid WebAssembly under the enabled features.
    #[error("not a valid WebAssembly module for this runtime: {0}")]
    Invalid(String),
    /// An import from outside `challenge_v1`, or an unknown or mistyped host function.
    #[error("forbidden import {module}::{name}: {reason}")]
    ForbiddenImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// Why.
        reason: String,
    },
    /// No `challenge_abi` custom section.
    #[error("missing the 'challenge_abi' custom section; build with the platform challenge SDK")]
    MissingAbiSection,
    /// An ABI version this runtime does not speak.
    #[error("unsupported challenge ABI version {0:?}; this runtime supports version {ABI_VERSION}")]
    UnsupportedAbi(Vec<u8>),
    /// A memory without a declared maximum, or one above the policy.
    #[error("memory {0}")]
    Memory(String),
    /// Too many tables or a table maximum above the policy.
    #[error("table {0}")]
    Table(String),
    /// A count above its cap.
    #[error("too many {what}: {count}, the policy allows at most {limit}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many.
        count: u64,
        /// The cap.
        limit: u32,
    },
    /// A required export is missing or has the wrong type.
    #[error(
        "missing or mistyped export '{0}': challenges export `memory` and `evaluate(i32) -> i32`"
    )]
    MissingExport(&'static str),
}

/// What validation learned about a module.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ModuleInfo {
    /// The ABI version of its `challenge_abi` section.
    pub abi_version: u32,
    /// Imported host functions.
    pub imports: Vec<String>,
    /// Exported names.
    pub exports: Vec<String>,
    /// Whether it exports `validate`.
    pub has_validate: bool,
}

/// The WebAssembly features challenge modules may use, identical to the engine's settings
/// (see `engine.rs`): what rustc emits for wasm32-unknown-unknown, and nothing else.
pub fn features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::FLOATS
}

fn too_many(what: &'static str, count: u64, limit: u32) -> Result<(), Rejection> {
    if count > u64::from(limit) {
        return Err(Rejection::TooMany { what, count, limit });
    }
    Ok(())
}

/// Validates `bytes` against `policy`.
pub fn validate(bytes: &[u8], policy: &Policy) -> Result<ModuleInfo, Rejection> {
    if bytes.len() > policy.max_module_bytes as usize {
        return Err(Rejection::TooLarge {
            size: bytes.len(),
            limit: policy.max_module_bytes,
        });
    }
    Validator::new_with_features(features())
        .validate_all(bytes)
        .map_err(|e| Rejection::Invalid(e.to_string()))?;

    let mut info = ModuleInfo {
        abi_version: 0,
        imports: Vec::new(),
        exports: Vec::new(),
        has_validate: false,
    };
    let mut abi: Option<Vec<u8>> = None;
    let mut types: Vec<(Vec<ValType>, Vec<ValType>)> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut functions = 0u64;
    let mut tables = 0u64;
    let mut evaluate_ok = false;
    let mut memory_exported = false;

    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| Rejection::Invalid(e.to_string()))? {
            Payload::TypeSection(reader) => {
                for rec in reader {
                    let rec = rec.map_err(|e| Rejection::Invalid(e.to_string()))?;
                    for sub in rec.into_types() {
                        let f = sub.unwrap_func();
                        too_many(
                            "parameters in one function type",
                            f.params().len() as u64,
                            policy.max_params,
                        )?;
                        types.push((f.params().to_vec(), f.results().to_vec()));
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| Rejection::Invalid(e.to_string()))?;
                    let forbidden = |reason: &str| Rejection::ForbiddenImport {
                        module: import.module.to_owned(),
                        name: import.name.to_owned(),
                        reason: reason.to_owned(),
                    };
                    if import.module != HOST_MODULE {
                        return Err(forbidden(&format!("only '{HOST_MODULE}' may be imported")));
                    }
                    let TypeRef::Func(ty) = import.ty else {
                        return Err(forbidden("only functions may be imported"));
                    };
                    let Some((params, results)) = host_signature(import.name) else {
                        return Err(forbidden("not a host function of ABI v1"));
                    };
                    let declared = types
                        .get(ty as usize)
                        .ok_or_else(|| forbidden("bad type index"))?;
                    if declared.0 != params || declared.1 != results {
                        return Err(forbidden("wrong signature"));
                    }
                    functions += 1;
                    info.imports.push(import.name.to_owned());
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    func_types.push(ty.map_err(|e| Rejection::Invalid(e.to_string()))?);
                }
                functions += func_types.len() as u64;
                too_many("functions", functions, policy.max_functions)?;
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table.map_err(|e| Rejection::Invalid(e.to_string()))?;
                    tables += 1;
                    if tables > 1 {
                        return Err(Rejection::Table(
                            "count: at most one table is allowed".into(),
                        ));
                    }
                    match table.ty.maximum {
                        None => return Err(Rejection::Table("has no declared maximum".into())),
                        Some(max) if max > u64::from(policy.max_table_elements) => {
                            return Err(Rejection::Table(format!(
                                "maximum {max} exceeds the policy's {}",
                                policy.max_table_elements
                            )));
                        }
                        _ => {}
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory.map_err(|e| Rejection::Invalid(e.to_string()))?;
                    match memory.maximum {
                        None => {
                            return Err(Rejection::Memory(
                                "has no declared maximum; link with -C link-arg=--max-memory=<bytes>".into(),
                            ));
                        }
                        Some(max) if max > u64::from(policy.max_memory_pages) => {
                            return Err(Rejection::Memory(format!(
                                "maximum of {max} pages exceeds the policy's {} pages",
                                policy.max_memory_pages
                            )));
                        }
                        _ => {}
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                too_many("globals", u64::from(reader.count()), policy.max_globals)?
            }
            Payload::DataSection(reader) => too_many(
                "data segments",
                u64::from(reader.count()),
                policy.max_data_segments,
            )?,
            Payload::ExportSection(reader) => {
                too_many("exports", u64::from(reader.count()), policy.max_exports)?;
                let imported = info.imports.len();
                for export in reader {
                    let export = export.map_err(|e| Rejection::Invalid(e.to_string()))?;
                    info.exports.push(export.name.to_owned());
                    let func_sig = |index: u32| -> Option<&(Vec<ValType>, Vec<ValType>)> {
                        let local = (index as usize).checked_sub(imported)?;
                        types.get(*func_types.get(local)? as usize)
                    };
                    let one_i32 = |sig: Option<&(Vec<ValType>, Vec<ValType>)>| {
                        sig.is_some_and(|(p, r)| p == &[ValType::I32] && r == &[ValType::I32])
                    };
                    match (export.name, export.kind) {
                        ("memory", ExternalKind::Memory) => memory_exported = true,
                        ("evaluate", ExternalKind::Func) => {
                            evaluate_ok = one_i32(func_sig(export.index))
                        }
                        ("validate" | "query" | "weights", ExternalKind::Func) => {
                            if !one_i32(func_sig(export.index)) {
                                return Err(Rejection::MissingExport(match export.name {
                                    "validate" => "validate",
                                    "query" => "query",
                                    _ => "weights",
                                }));
                            }
                            info.has_validate |= export.name == "validate";
                        }
                        _ => {}
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut locals = 0u64;
                for local in body
                    .get_locals_reader()
                    .map_err(|e| Rejection::Invalid(e.to_string()))?
                {
                    let (count, _) = local.map_err(|e| Rejection::Invalid(e.to_string()))?;
                    locals += u64::from(count);
                }
                too_many("locals in one function", locals, policy.max_locals)?;
            }
            Payload::CustomSection(section) if section.name() == ABI_SECTION => {
                abi = Some(section.data().to_vec());
            }
            _ => {}
        }
    }
    let abi = abi.ok_or(Rejection::MissingAbiSection)?;
    if abi != ABI_VERSION.to_le_bytes() {
        return Err(Rejection::UnsupportedAbi(abi));
    }
    info.abi_version = ABI_VERSION;
    if !memory_exported {
        return Err(Rejection::MissingExport("memory"));
    }
    if !evaluate_ok {
        return Err(Rejection::MissingExport("evaluate"));
    }
    Ok(info)
}
