//! A snapshot larger than the network's 32 MiB blob limit moves between two real validators'
//! networks on 127.0.0.1 in chunks: stored chunked by one, fetched by the other through the
//! manifest, each chunk checked against its hash.

use std::sync::Arc;
use std::time::Duration;

use platform_crypto::Keypair;
use platform_network::{
    Config, Membership, Network, NothingToServe, identity_from_hotkey, loopback::connect_all,
    wire::MAX_BLOB_BYTES,
};
use platform_node::snapshots::{CHUNK_BYTES, fetch_peer, put_chunked, read_manifest};
use platform_primitives::NetUid;
use platform_storage::DataDir;

async fn start(seed: u8, dir: &std::path::Path) -> (Network, Arc<DataDir>) {
    let data = Arc::new(DataDir::open(dir).unwrap());
    let (net, _events) = Network::start(
        Config::new(NetUid(1)),
        Keypair::from_seed(&[seed; 32]),
        data.clone(),
        Arc::new(NothingToServe),
    )
    .await
    .unwrap();
    (net, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_above_the_blob_limit_is_served_in_chunks() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (holder, holder_data) = start(1, a_dir.path()).await;
    let (fetcher, fetcher_data) = start(2, b_dir.path()).await;
    let keys = [Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32])];
    let membership = Membership {
        validators: keys.iter().map(|k| (k.hotkey(), 100)).collect(),
        peer_ids: keys
            .iter()
            .map(|k| identity_from_hotkey(k).public().to_peer_id())
            .collect(),
    };
    connect_all(&[&holder, &fetcher], &membership, Duration::from_secs(20))
        .await
        .unwrap();

    // 40 MiB that do not repeat within a chunk's stride, so every chunk is its own blob.
    let len = MAX_BLOB_BYTES + 8 * 1024 * 1024;
    let bytes: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let manifest = put_chunked(holder_data.blobs(), &bytes, CHUNK_BYTES).unwrap();
    let chunks = read_manifest(holder_data.blobs(), &manifest)
        .unwrap()
        .unwrap()
        .chunks;
    assert_eq!(chunks.len(), len.div_ceil(CHUNK_BYTES));

    let got = fetch_peer(&fetcher, manifest, holder.peer_id())
        .await
        .unwrap();
    assert_eq!(got.len(), bytes.len());
    assert!(got == bytes, "the fetched snapshot differs");
    // The fetcher keeps the chunks it checked (so a later snapshot sharing them, or a
    // retry, fetches only what it lacks).
    let stored_all = async || chunks.iter().all(|c| fetcher_data.blobs().contains(c));
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !stored_all().await {
        assert!(
            std::time::Instant::now() < end,
            "the chunks were not stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A manifest nobody holds is an error that says so.
    let missing = platform_primitives::Hash::of(b"no such manifest");
    let err = fetch_peer(&fetcher, missing, holder.peer_id())
        .await
        .unwrap_err();
    assert!(err.contains("manifest"), "{err}");
}
