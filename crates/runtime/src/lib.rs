//! The WebAssembly challenge runtime: a deterministic, metered, strictly bounded sandbox.
//!
//! Every validator must get bit-identical results for the same module, input and state, and no
//! module may hang, crash or exhaust the node. The pieces:
//! - [`validate`]: static checks before anything is compiled;
//! - [`engine`]: the wasmtime configuration, every flag explicit;
//! - [`host`]: ABI v1 host functions, metered and bounds-checked;
//! - [`exec`]: a fresh store per call, outcome classes, the receipt digest.

pub mod abi;
pub mod compile;
pub mod engine;
pub mod exec;
pub mod fixtures;
pub mod host;
pub mod policy;
pub mod priority;
pub mod validate;

pub use abi::{EvalInput, EvalOutput};
pub use compile::{ArtifactCache, CompileLimits, Compiler, LoadStats, ModuleLoader};
pub use engine::Allocation;
pub use exec::{Entry, Evaluation, LoadError, LoadedModule, OutcomeClass, Runtime, receipt_digest};
pub use policy::Policy;
pub use validate::{ModuleInfo, Rejection};
