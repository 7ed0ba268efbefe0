//! Snapshots, their proofs and their chunk manifests from peers: import (every check but the
//! certificate, which is accepted here so the entries are reached), the proof's own decoder,
//! and the manifest's (one value, one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_node::snapshots::{Manifest, SnapshotProof};
use platform_state::Snapshot;

fuzz_target!(|data: &[u8]| {
    let _ = Snapshot::import(data, data.len(), |_, _, _, _| Ok(()));
    let _ = Snapshot::inspect(data, data.len());
    if let Ok(proof) = SnapshotProof::decode(data) {
        let _ = proof.finalized();
    }
    if let Ok(manifest) = Manifest::decode(data) {
        assert_eq!(platform_primitives::encode(&manifest), data);
    }
});
