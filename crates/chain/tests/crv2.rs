//! The CRv2 commit hash against known answers computed with the Python `bittensor` package
//! (`tests/vectors/make_crv2_vectors.py`; the file records the package version).

use platform_chain::scale::commit_hash;
use platform_primitives::Hotkey;

#[test]
fn commit_hash_matches_bittensor() {
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/crv2.json")).unwrap();
    assert!(v["bittensor"].as_str().unwrap().starts_with('9'));
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 5);
    let list = |x: &serde_json::Value| -> Vec<u16> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap() as u16)
            .collect()
    };
    for case in vectors {
        let hotkey: Hotkey = case["hotkey"].as_str().unwrap().parse().unwrap();
        let hash = commit_hash(
            &hotkey.0,
            case["netuid"].as_u64().unwrap() as u16,
            &list(&case["uids"]),
            &list(&case["values"]),
            &list(&case["salt"]),
            case["version_key"].as_u64().unwrap(),
        );
        assert_eq!(
            format!("0x{}", hex::encode(hash)),
            case["hash"].as_str().unwrap(),
            "{case}"
        );
    }
}
