//! Static types and call payloads generated from the checked-in subtensor metadata
//! (`crates/chain/metadata/finney-spec393.scale`; provenance in `metadata/README.md`).
#![allow(missing_docs, clippy::all)]

#[subxt::subxt(runtime_metadata_path = "metadata/finney-spec393.scale")]
pub mod api {}
