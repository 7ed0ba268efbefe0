//! A network launched from the chain (`netuid` and `genesis_block` in config.toml).
//!
//! Each validator publishes its [`PeerRecord`] — its key binding and the address it listens on
//! — as its commitment on the subnet, when it starts and whenever the record the chain holds
//! differs from its own (a new address, or a data directory started afresh). Every node derives
//! the genesis from the chain at the agreed block ([`crate::genesis::from_chain`]), and dials
//! the validators whose records the chain holds: first at start, then every
//! [`DISCOVERY_PERIOD`], so an address change reaches the network through the chain. There is
//! no genesis file to hand around and no bootstrap list to keep.

use std::time::Duration;

use anyhow::{Context, Result};
use platform_chain::{AnyChain, Chain};
use platform_crypto::Keypair;
use platform_network::Network;
use platform_network::libp2p::multiaddr::Protocol;
use platform_network::libp2p::{Multiaddr, PeerId};
use platform_primitives::NetUid;
use platform_state::Genesis;

use crate::genesis::{PeerRecord, from_chain, peer_records};

/// How often the chain's peer records are read to dial validators not connected.
pub const DISCOVERY_PERIOD: Duration = Duration::from_secs(10);

/// How often the chain's head is read while waiting for the genesis block.
const HEAD_POLL: Duration = Duration::from_millis(500);

/// `addr` without its `/p2p/…` suffix: the record carries the peer id once.
fn without_peer_id(addr: &Multiaddr) -> String {
    let mut a = addr.clone();
    if matches!(a.iter().last(), Some(Protocol::P2p(_))) {
        a.pop();
    }
    a.to_string()
}

/// Publishes `key`'s peer record for `netuid` with `net`'s listen address, unless the chain
/// already holds the same record.
pub async fn publish_record(
    chain: &AnyChain,
    key: &Keypair,
    netuid: NetUid,
    net: &Network,
) -> Result<()> {
    let record = PeerRecord::new(key, netuid, vec![without_peer_id(net.addr())])?;
    let bytes = record.encode()?;
    let held = chain
        .commitments(netuid.0, None)
        .await
        .context("reading the chain's peer records")?
        .into_iter()
        .find(|c| c.hotkey == key.hotkey());
    if held.is_some_and(|c| c.data == bytes) {
        tracing::info!("the chain holds this validator's peer record already");
        return Ok(());
    }
    let included = chain
        .set_commitment(key, netuid.0, bytes)
        .await
        .context("publishing this validator's peer record on the chain")?;
    tracing::info!(
        block = included.block,
        addr = %net.addr(),
        "published this validator's peer record on the chain"
    );
    Ok(())
}

/// Waits until the chain reaches `block`, then derives the genesis there.
pub async fn genesis_at(chain: &AnyChain, netuid: NetUid, block: u64) -> Result<Genesis> {
    let mut said = None;
    loop {
        let head = chain.head().await.context("reading the chain's head")?;
        if head.number >= block {
            break;
        }
        // Say it once, then every 20 blocks.
        if said.is_none_or(|s: u64| head.number >= s + 20) {
            tracing::info!(
                head = head.number,
                genesis_block = block,
                "waiting for the chain to reach the genesis block"
            );
            said = Some(head.number);
        }
        tokio::time::sleep(HEAD_POLL).await;
    }
    let genesis = from_chain(chain, netuid, block).await?;
    tracing::info!(
        block,
        validators = genesis.bindings.len(),
        network_id = %genesis.network_id(),
        "derived the genesis from the chain"
    );
    Ok(genesis)
}

/// Dials, now and every [`DISCOVERY_PERIOD`], each validator whose peer record the chain holds
/// and that is not connected; republishes this validator's record if the chain's differs.
pub fn spawn_discovery(
    chain: AnyChain,
    key: Keypair,
    netuid: NetUid,
    net: Network,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let me = key.hotkey();
        loop {
            if let Err(e) = discover(&chain, &key, netuid, &net, me).await {
                tracing::warn!("peer discovery through the chain: {e:#}");
            }
            tokio::time::sleep(DISCOVERY_PERIOD).await;
        }
    })
}

async fn discover(
    chain: &AnyChain,
    key: &Keypair,
    netuid: NetUid,
    net: &Network,
    me: platform_primitives::Hotkey,
) -> Result<()> {
    let connected: Vec<String> = net
        .status()
        .await?
        .peers
        .into_iter()
        .map(|p| p.peer_id)
        .collect();
    let mut own = None;
    for (binding, addrs) in peer_records(chain, netuid, None).await? {
        if binding.hotkey == me {
            own = Some(addrs);
            continue;
        }
        let Ok(peer) = PeerId::from_bytes(&binding.peer_id) else {
            continue;
        };
        if connected.contains(&peer.to_string()) {
            continue;
        }
        for addr in addrs {
            let Ok(addr) = addr.parse::<Multiaddr>() else {
                continue;
            };
            let addr = addr.with(Protocol::P2p(peer));
            if let Err(e) = net.dial(addr.clone()).await {
                tracing::debug!(%addr, "dialing a validator from its peer record: {e}");
            }
        }
    }
    if own != Some(vec![without_peer_id(net.addr())]) {
        publish_record(chain, key, netuid, net).await?;
    }
    Ok(())
}
