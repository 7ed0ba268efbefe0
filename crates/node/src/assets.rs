//! Challenge assets: the data sets a challenge's metadata pins by blake3 (`Asset`), which its
//! module reads with `asset_read`.
//!
//! An asset is looked for in the blob store, then asked of peers (connected ones, then the
//! DHT's providers), and only then fetched from the owner's URL (`http://…`; an asset with no
//! URL comes from peers only: the owner uploads it with the `Publish`). Whatever the source,
//! more than the asset's `max_bytes` is never read, and bytes whose blake3 differs are
//! refused. A fetched asset is stored and announced, so peers can fetch it from here; asset
//! blobs are not garbage-collected (like modules).
//!
//! Evaluations get a challenge version's assets from [`Assets::of`], in the metadata's order,
//! held in memory once per version. A validator that holds every asset of a version says so
//! on chain (`Tx::AssetsReady`, see [`crate::evaluator::Evaluator::confirm_assets`]); the
//! state activates a challenge with assets only once validators holding more than 2/3 of the
//! stake have.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use platform_network::Network;
use platform_primitives::{ChallengeId, Hash};
use platform_state::{Asset, ChallengeMeta};

/// Time limit of one asset download from its URL.
const URL_TIMEOUT: Duration = Duration::from_secs(120);

/// One challenge version's assets, in its metadata's order.
pub type AssetSet = Arc<Vec<Vec<u8>>>;

/// The assets of each challenge's latest version seen here.
pub struct Assets {
    held: Mutex<BTreeMap<ChallengeId, (u32, AssetSet)>>,
    http: reqwest::Client,
}

impl Default for Assets {
    fn default() -> Assets {
        Assets {
            held: Mutex::new(BTreeMap::new()),
            http: reqwest::Client::builder()
                .timeout(URL_TIMEOUT)
                .build()
                .expect("a plain HTTP client builds"),
        }
    }
}

impl Assets {
    /// The assets of `meta`'s version, fetched on first use. An older version's are dropped.
    pub async fn of(&self, net: &Network, meta: &ChallengeMeta) -> Result<AssetSet> {
        if meta.assets.is_empty() {
            return Ok(Arc::new(Vec::new()));
        }
        if let Some((version, set)) = self.held.lock().expect("asset lock poisoned").get(&meta.id)
            && *version == meta.version
        {
            return Ok(set.clone());
        }
        let mut set = Vec::with_capacity(meta.assets.len());
        for (i, asset) in meta.assets.iter().enumerate() {
            let bytes = fetch(net, &self.http, asset)
                .await
                .with_context(|| format!("asset {i} of challenge '{}'", meta.id))?;
            set.push(bytes);
        }
        let set = Arc::new(set);
        self.held
            .lock()
            .expect("asset lock poisoned")
            .insert(meta.id.clone(), (meta.version, set.clone()));
        Ok(set)
    }

    /// Forgets the assets of challenges no longer in `live` (retired or gone).
    pub fn retain(&self, live: &[(ChallengeId, u32)]) {
        self.held
            .lock()
            .expect("asset lock poisoned")
            .retain(|id, (version, _)| live.contains(&(id.clone(), *version)));
    }
}

/// One asset: from the blob store or peers, else from its URL; checked against its hash and
/// size, then stored and announced.
pub async fn fetch(net: &Network, http: &reqwest::Client, asset: &Asset) -> Result<Vec<u8>> {
    let events = crate::metrics::events();
    match net.fetch_blob(asset.blake3).await {
        Ok(bytes) if bytes.len() as u64 <= asset.max_bytes => {
            events.asset_fetch("network");
            return Ok(bytes);
        }
        Ok(bytes) => {
            events.asset_fetch("failed");
            bail!(
                "the blob is {} bytes; the challenge allows at most {}",
                bytes.len(),
                asset.max_bytes
            );
        }
        Err(e) if asset.url.is_empty() => {
            events.asset_fetch("failed");
            bail!(
                "{} is held by no peer and has no URL: {e}",
                asset.blake3.to_hex()
            );
        }
        Err(_) => {}
    }
    let bytes = match download(http, asset).await {
        Ok(b) => b,
        Err(e) => {
            events.asset_fetch("failed");
            return Err(e);
        }
    };
    events.asset_fetch("url");
    net.put_blob(bytes.clone())
        .await
        .context("storing the asset")?;
    Ok(bytes)
}

/// The asset from its URL: at most `max_bytes` read, its blake3 checked.
async fn download(http: &reqwest::Client, asset: &Asset) -> Result<Vec<u8>> {
    if asset.url.starts_with("https://") {
        bail!(
            "{}: this build fetches assets over plain http only (integrity comes from the \
             blake3 pin, not the transport); serve it over http://, or upload it with the \
             challenge (`platform owner challenge publish --asset FILE`) so peers serve it",
            asset.url
        );
    }
    let mut response = http
        .get(&asset.url)
        .send()
        .await
        .with_context(|| format!("fetching {}", asset.url))?;
    if !response.status().is_success() {
        bail!("{} answered {}", asset.url, response.status());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading {}", asset.url))?
    {
        if (bytes.len() + chunk.len()) as u64 > asset.max_bytes {
            bail!(
                "{} is larger than the challenge's {} bytes for it",
                asset.url,
                asset.max_bytes
            );
        }
        bytes.extend_from_slice(&chunk);
    }
    let got = Hash::of(&bytes);
    if got != asset.blake3 {
        bail!(
            "{} has blake3 {}, not the challenge's {}",
            asset.url,
            got.to_hex(),
            asset.blake3.to_hex()
        );
    }
    Ok(bytes)
}
