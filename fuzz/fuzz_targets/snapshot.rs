//! Snapshots and their proofs from peers: import (every check but the certificate, which is
//! accepted here so the entries are reached) and the proof's own decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_node::snapshots::SnapshotProof;
use platform_state::Snapshot;

fuzz_target!(|data: &[u8]| {
    let _ = Snapshot::import(data, data.len(), |_, _, _, _| Ok(()));
    let _ = Snapshot::inspect(data, data.len());
    if let Ok(proof) = SnapshotProof::decode(data) {
        let _ = proof.finalized();
    }
});
