//! Validator-to-validator networking for Platform over libp2p (DESIGN §11).
//!
//! - **Transport**: TCP + Noise + Yamux, connection limits, identify, ping.
//! - **Identity binding**: on connect both sides exchange a [`PeerBinding`]: the hotkey's
//!   signature over the libp2p peer id. Peers bound to a validator of the epoch are explicit
//!   gossipsub peers; everyone else is an observer that may sync and fetch blobs, but whose
//!   gossip is neither accepted nor forwarded.
//! - **Gossip**: one gossipsub topic per kind ([`Topic`]), tuned for 4–64 validators, carrying
//!   hotkey-signed [`Envelope`]s. Large payloads never ride gossip: it carries hashes; content
//!   moves over the `blob` protocol.
//! - **One ingress path**: every gossip message and request passes [`ingress::Ingress`]
//!   (size cap → strict decode → signature → membership and stake → replay window → rate limits
//!   → dispatch); rejections are counted by reason in [`Metrics`], cost the sender score, and
//!   enough of them get it banned for a period.
//! - **Request-response**: `hello` (binding), `sync` (certified blocks by height range),
//!   `blob` (content by hash, verified on receipt), `snapshot` (the latest snapshot's
//!   description; the snapshot itself is a blob).
//! - **Discovery**: Kademlia provider records announce only blobs that need discovery (miners'
//!   payloads, challenge modules), in a bounded, expiring store ([`providers`]). Blocks and
//!   snapshots never touch the DHT: they are fetched from the peer that announced or described
//!   them and from the other connected peers. Fetches try peers in turn, with a circuit breaker
//!   for peers that keep failing.
//! - **Partition detection**: connected validators holding less than two thirds of the stake for
//!   `partition_alarm` raise [`Event::Partitioned`]; [`Event::Healed`] when it clears.

pub mod admission;
pub mod ingress;
pub mod loopback;
pub mod metrics;
pub mod providers;
pub mod seen;
mod service;
pub mod stuck;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId, identity};
use platform_crypto::Keypair;
use platform_primitives::{Hash, Hotkey, NetUid};
use platform_storage::DataDir;
use tokio::sync::{mpsc, oneshot};

pub use ingress::{Membership, PayloadCheck, Rate, TopicSpec};
pub use libp2p;
pub use metrics::{Metrics, MetricsSnapshot};
pub use providers::{ProviderLimits, ProviderStats};
pub use service::{SERVE_OUTSIDERS, SERVE_PER_OUTSIDER, SERVE_READS};
pub use wire::{
    CertificateAsk, Envelope, MAX_CERTIFICATE_BYTES, MAX_CERTIFICATES, PeerBinding, SnapshotInfo,
    Topic,
};

use service::{Command, Task};
use wire::{Request, Response};

/// Network settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The subnet: topics and protocols are namespaced by it.
    pub netuid: NetUid,
    /// Where to listen (default `/ip4/127.0.0.1/tcp/0`: loopback, a port the OS picks).
    pub listen: Multiaddr,
    /// Peers to dial at start, as `/ip4/…/tcp/…/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Per-topic policy.
    pub topics: BTreeMap<Topic, TopicSpec>,
    /// Requests per peer (sync, blob, snapshot).
    pub request_rate: Rate,
    /// How long connected validators may hold less than 2/3 of stake before the node reports
    /// itself partitioned.
    pub partition_alarm: Duration,
    /// How long a peer that sent invalid messages stays banned.
    pub ban_period: Duration,
    /// Most established connections (see [`admission`]: one slot per validator is kept for
    /// validators, the rest is shared by everyone else).
    pub max_connections: u32,
    /// Most inbound connections of non-validators from one IP address.
    pub max_per_ip: u32,
    /// How long a connected peer has to bind a hotkey (`Hello`) before it is disconnected.
    pub bind_deadline: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Capacity of the event channel; accepted messages beyond it are dropped and counted.
    pub event_buffer: usize,
    /// The DHT's provider store: its limits and announcement cadence.
    pub providers: ProviderLimits,
}

impl Config {
    /// Defaults for `netuid`.
    pub fn new(netuid: NetUid) -> Config {
        Config {
            netuid,
            listen: "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"),
            bootstrap: Vec::new(),
            topics: Topic::ALL
                .into_iter()
                .map(|t| (t, TopicSpec::default_for(t)))
                .collect(),
            request_rate: Rate {
                per_sec: 50,
                burst: 100,
            },
            partition_alarm: Duration::from_secs(10),
            ban_period: ingress::DEFAULT_BAN,
            max_connections: 256,
            max_per_ip: 8,
            bind_deadline: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            event_buffer: 4096,
            providers: ProviderLimits::default(),
        }
    }
}

/// What the network serves to peers that ask: certified blocks and the latest snapshot. Blobs
/// come straight from the data directory's blob store. Called on blocking threads.
pub trait Provider: Send + Sync + 'static {
    /// Encoded certified blocks from `from` up to `to` (inclusive), consecutive, stopping early
    /// when the next would exceed `max_bytes` in total or is not held.
    fn blocks(&self, from: u64, to: u64, max_bytes: usize) -> Vec<Vec<u8>>;
    /// The latest snapshot held.
    fn latest_snapshot(&self) -> Option<SnapshotInfo>;
    /// Encoded consensus certificates for `ask`, at most [`MAX_CERTIFICATES`]. A node that
    /// takes no part in consensus has none.
    fn certificates(&self, _ask: CertificateAsk) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// The encoded block at `height` with header hash `header` that this node holds though it
    /// is not final yet. A node that takes no part in consensus has none.
    fn unfinalized_block(&self, _height: u64, _header: Hash) -> Option<Vec<u8>> {
        None
    }
}

/// A provider with nothing to serve (observers, tools).
#[derive(Clone, Copy, Debug, Default)]
pub struct NothingToServe;

impl Provider for NothingToServe {
    fn blocks(&self, _: u64, _: u64, _: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }
    fn latest_snapshot(&self) -> Option<SnapshotInfo> {
        None
    }
}

/// Where a fetch may look for a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// Connected peers only (snapshots: someone told us they hold it).
    Peers,
    /// Connected peers only, and the bytes are not stored: an announced block is kept in
    /// memory until the node has checked it, and stored by the node only then.
    Unverified,
    /// Connected peers, then the DHT's providers (payloads, modules).
    PeersThenDht,
}

/// What the network tells the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A gossip message passed the ingress pipeline.
    Gossip {
        /// Its topic.
        topic: Topic,
        /// The verified envelope.
        envelope: Envelope,
        /// The peer that forwarded it.
        from: PeerId,
    },
    /// A peer proved which hotkey it belongs to.
    PeerBound {
        /// The peer.
        peer: PeerId,
        /// Its hotkey.
        hotkey: Hotkey,
        /// Whether the hotkey is a validator of the current set.
        validator: bool,
    },
    /// Connected validators have held less than 2/3 of stake for the alarm period.
    Partitioned {
        /// Stake of connected validators, ourselves included.
        connected_stake: u128,
        /// Total stake of the set.
        total_stake: u128,
    },
    /// The partition cleared.
    Healed,
}

/// A view of the network for health checks and operators.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NetStatus {
    /// Our peer id.
    pub peer_id: String,
    /// Where we listen.
    pub listen_addrs: Vec<String>,
    /// Connected peers, observers included.
    pub connected_peers: usize,
    /// Hotkeys of connected, bound validators.
    pub connected_validators: Vec<Hotkey>,
    /// Stake of connected validators, ourselves included.
    pub connected_stake: u128,
    /// Total stake of the validator set.
    pub total_stake: u128,
    /// Whether the partition alarm is raised.
    pub partitioned: bool,
    /// Currently banned peers.
    pub banned: Vec<String>,
    /// Every connected peer, by peer id.
    pub peers: Vec<PeerLink>,
}

/// A connected peer as the network task sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PeerLink {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// The remote address of its first connection.
    pub address: Option<String>,
    /// The last ping's round trip, in milliseconds (`None` before the first ping).
    pub rtt_ms: Option<u64>,
    /// The validator it is bound to (`None`: an observer, or not bound yet).
    pub validator: Option<Hotkey>,
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The network could not start.
    #[error("network setup failed: {0}")]
    Setup(String),
    /// A dial was refused before it started.
    #[error("cannot dial {0}")]
    Dial(String),
    /// Nobody is subscribed to the topic yet.
    #[error("no connected peer is subscribed to the topic yet")]
    NoPeers,
    /// gossipsub refused the message.
    #[error("publish failed: {0}")]
    Publish(String),
    /// A request failed (timeout, connection closed, unsupported protocol).
    #[error("request failed: {0}")]
    Request(String),
    /// The peer answered with an error code.
    #[error("peer refused the request: {0}")]
    Refused(String),
    /// No peer could provide what was asked.
    #[error("{what} is not available from any peer (tried {tried})")]
    NotFound {
        /// What was asked for.
        what: String,
        /// How many peers were tried.
        tried: usize,
    },
    /// Reading or writing local storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The network task has stopped.
    #[error("the network has stopped")]
    Stopped,
}

/// Consecutive failures after which a peer is skipped.
const BREAKER_FAILURES: u32 = 3;
/// How long a tripped breaker skips the peer.
const BREAKER_OPEN: Duration = Duration::from_secs(30);

/// Circuit breakers for fetches: a peer that failed [`BREAKER_FAILURES`] times in a row is
/// skipped for [`BREAKER_OPEN`].
#[derive(Debug, Default)]
struct Breakers {
    peers: HashMap<PeerId, (u32, Option<Instant>)>,
}

impl Breakers {
    fn open(&self, peer: &PeerId, now: Instant) -> bool {
        matches!(self.peers.get(peer), Some((_, Some(until))) if *until > now)
    }
    fn fail(&mut self, peer: PeerId, now: Instant) {
        let e = self.peers.entry(peer).or_insert((0, None));
        e.0 += 1;
        if e.0 >= BREAKER_FAILURES {
            e.0 = 0;
            e.1 = Some(now + BREAKER_OPEN);
        }
    }
    fn succeed(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }
}

/// The derived libp2p identity of a hotkey: an ed25519 key from the hotkey's seed, so a
/// validator keeps its peer id across restarts. Keys without a seed get a fresh identity.
pub fn identity_from_hotkey(key: &Keypair) -> identity::Keypair {
    match key.seed() {
        Some(seed) => {
            let mut bytes = blake3::derive_key("platform libp2p identity v1", seed);
            identity::Keypair::ed25519_from_bytes(&mut bytes)
                .expect("any 32 bytes are an ed25519 secret key")
        }
        None => identity::Keypair::generate_ed25519(),
    }
}

/// A handle on a running network. Cheap to clone; the network stops when the last handle is
/// dropped or [`Network::shutdown`] is called.
#[derive(Clone)]
pub struct Network {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    addr: Multiaddr,
    netuid: NetUid,
    key: Arc<Keypair>,
    dir: Arc<DataDir>,
    metrics: Arc<Metrics>,
    breakers: Arc<Mutex<Breakers>>,
}

impl Network {
    /// Starts the network: listens, dials the bootstrap peers and returns the handle and the
    /// event stream (bounded: see [`Config::event_buffer`]).
    pub async fn start(
        cfg: Config,
        key: Keypair,
        dir: Arc<DataDir>,
        provider: Arc<dyn Provider>,
    ) -> Result<(Network, mpsc::Receiver<Event>), NetError> {
        let netuid = cfg.netuid;
        let identity = identity_from_hotkey(&key);
        let key = Arc::new(key);
        let metrics = Arc::new(Metrics::default());
        let (events_tx, events) = mpsc::channel(cfg.event_buffer.max(1));
        let (commands, commands_rx) = mpsc::channel(256);
        let mut task = Task::new(
            cfg,
            key.clone(),
            identity,
            dir.clone(),
            provider,
            (metrics.clone(), events_tx, commands_rx),
        )?;
        let peer_id = task.peer_id();
        let addr = task
            .first_listen_addr()
            .await?
            .with(libp2p::multiaddr::Protocol::P2p(peer_id));
        tokio::spawn(async move {
            if let Some(done) = task.run().await {
                let _ = done.send(());
            }
        });
        Ok((
            Network {
                commands,
                peer_id,
                addr,
                netuid,
                key,
                dir,
                metrics,
                breakers: Arc::default(),
            },
            events,
        ))
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The address others dial, with our peer id.
    pub fn addr(&self) -> &Multiaddr {
        &self.addr
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    async fn tell(&self, cmd: Command) -> Result<(), NetError> {
        self.commands.send(cmd).await.map_err(|_| NetError::Stopped)
    }

    /// Dials a peer.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|tx| Command::Dial(addr, tx)).await?
    }

    /// Sets the epoch's validators and stakes.
    pub async fn set_membership(&self, m: Membership) -> Result<(), NetError> {
        self.tell(Command::SetMembership(m)).await
    }

    /// Moves a topic's current round (its replay window follows).
    pub async fn set_round(&self, topic: Topic, round: u64) -> Result<(), NetError> {
        self.tell(Command::SetRound(topic, round)).await
    }

    /// Signs `payload` with our hotkey and publishes it on `topic` for `round`. Returns the
    /// message id (blake3 of the encoded envelope).
    pub async fn publish(
        &self,
        topic: Topic,
        round: u64,
        payload: Vec<u8>,
    ) -> Result<Hash, NetError> {
        let env = Envelope::sign(&self.key, self.netuid, topic, round, payload);
        self.publish_envelope(env).await
    }

    /// Sends a consensus message to the validator with hotkey `to` only, over
    /// [`Protocol::Direct`] to one of its connected peers; [`NetError::NoPeers`] when none is
    /// connected (the caller may gossip it instead). Delivery is not confirmed.
    pub async fn send_direct(
        &self,
        to: Hotkey,
        round: u64,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        let env = Envelope::sign(&self.key, self.netuid, Topic::Consensus, round, payload);
        self.call(|tx| Command::Direct(to, env, tx)).await?
    }

    /// Publishes an already signed envelope (re-broadcasting another validator's message).
    pub async fn publish_envelope(&self, env: Envelope) -> Result<Hash, NetError> {
        self.call(|tx| Command::Publish(env, tx)).await?
    }

    /// Stores `bytes` in the blob store and announces it in the DHT (a blob that needs
    /// discovery: a payload, a module). Returns its hash.
    pub async fn put_blob(&self, bytes: Vec<u8>) -> Result<Hash, NetError> {
        let hash = self.store_blob(bytes).await?;
        self.tell(Command::Provide(hash)).await?;
        Ok(hash)
    }

    /// Stores `bytes` in the blob store without announcing them (a block: peers fetch it from
    /// the announcer and each other). Returns its hash.
    pub async fn store_blob(&self, bytes: Vec<u8>) -> Result<Hash, NetError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || dir.blobs().put(&bytes))
            .await
            .map_err(|e| NetError::Storage(e.to_string()))?
            .map_err(|e| NetError::Storage(e.to_string()))
    }

    /// Announces a blob already in the blob store (after a restart).
    pub async fn provide(&self, hash: Hash) -> Result<(), NetError> {
        self.tell(Command::Provide(hash)).await
    }

    /// Stops announcing a blob (it was collected). Peers forget the record when it expires.
    pub async fn unprovide(&self, hash: Hash) -> Result<(), NetError> {
        self.tell(Command::Unprovide(hash)).await
    }

    /// Peers the DHT lists as providers of `hash`.
    pub async fn providers(&self, hash: Hash) -> Result<Vec<PeerId>, NetError> {
        self.call(|tx| Command::Providers(hash, tx)).await
    }

    /// Sends one request and waits for the answer.
    async fn request(&self, peer: PeerId, req: Request) -> Result<Response, NetError> {
        match self.call(|tx| Command::Request(peer, req, tx)).await?? {
            Response::Error(code) => Err(NetError::Refused(code)),
            ok => Ok(ok),
        }
    }

    /// Counts a bad answer from `peer` and penalizes it.
    pub async fn report(
        &self,
        peer: PeerId,
        channel: &'static str,
        reason: &'static str,
    ) -> Result<(), NetError> {
        self.tell(Command::Report(peer, channel, reason)).await
    }

    /// Counts an offence by a validator (found by the consensus layer, which knows the author
    /// but not the peer) and penalizes the peers bound to its hotkey.
    pub async fn report_validator(
        &self,
        hotkey: Hotkey,
        channel: &'static str,
        reason: &'static str,
    ) -> Result<(), NetError> {
        self.tell(Command::ReportValidator(hotkey, channel, reason))
            .await
    }

    fn breaker_open(&self, peer: &PeerId) -> bool {
        self.breakers
            .lock()
            .expect("breaker lock poisoned")
            .open(peer, Instant::now())
    }

    fn breaker_result(&self, peer: PeerId, ok: bool) {
        let mut b = self.breakers.lock().expect("breaker lock poisoned");
        if ok {
            b.succeed(&peer);
        } else {
            b.fail(peer, Instant::now());
        }
    }

    /// A blob that needs discovery (a payload, a module): from the local store, else from the
    /// connected peers and then the DHT's providers in turn (verified against the hash; then
    /// stored and announced by us too, in the background).
    pub async fn fetch_blob(&self, hash: Hash) -> Result<Vec<u8>, NetError> {
        self.fetch_blob_asking(hash, Vec::new(), Reach::PeersThenDht)
            .await
    }

    /// A blob a peer described to us (a snapshot): asked of `hint` first, then of the other
    /// connected peers. Never looked up in the DHT, and the copy is stored but not announced.
    pub async fn fetch_blob_from(
        &self,
        hash: Hash,
        hint: Option<PeerId>,
    ) -> Result<Vec<u8>, NetError> {
        self.fetch_blob_asking(hash, hint.into_iter().collect(), Reach::Peers)
            .await
    }

    /// A blob its author announced (a block): asked first of the author's own connected peers
    /// (it stored the blob before announcing it) and `hint`, then of the other connected peers.
    /// Never looked up in the DHT, and not stored: the caller stores it once it has checked
    /// the block (`store_blob`).
    pub async fn fetch_announced_blob(
        &self,
        hash: Hash,
        author: Hotkey,
        hint: Option<PeerId>,
    ) -> Result<Vec<u8>, NetError> {
        let mut first = self.call(|tx| Command::PeersOf(author, tx)).await?;
        first.extend(hint);
        self.fetch_blob_asking(hash, first, Reach::Unverified).await
    }

    /// The blob from the local store, else asked of the connected peers among `first` in
    /// order, then of every other connected peer (validators first), and only then — for
    /// [`Reach::PeersThenDht`] — of the DHT's providers. Only connected peers are asked before
    /// the DHT, so a peer that is down or cut off costs nothing here: nothing waits on dialing
    /// it or on a lookup that waits for it to answer.
    async fn fetch_blob_asking(
        &self,
        hash: Hash,
        first: Vec<PeerId>,
        reach: Reach,
    ) -> Result<Vec<u8>, NetError> {
        let dir = self.dir.clone();
        let local = tokio::task::spawn_blocking(move || {
            dir.blobs().get(&hash, wire::MAX_BLOB_BYTES as u64)
        })
        .await
        .map_err(|e| NetError::Storage(e.to_string()))?
        .map_err(|e| NetError::Storage(e.to_string()))?;
        if let Some(bytes) = local {
            return Ok(bytes);
        }
        let connected = self.sync_peers().await?;
        let mut order: Vec<PeerId> = first
            .into_iter()
            .filter(|p| connected.contains(p))
            .collect();
        order.extend(connected);
        let mut asked = std::collections::HashSet::new();
        let mut tried = 0;
        for peer in order {
            if asked.insert(peer)
                && let Some(bytes) = self.try_blob(peer, hash, reach, &mut tried).await?
            {
                return Ok(bytes);
            }
        }
        if reach == Reach::PeersThenDht {
            for peer in self.providers(hash).await? {
                if asked.insert(peer)
                    && let Some(bytes) = self.try_blob(peer, hash, reach, &mut tried).await?
                {
                    return Ok(bytes);
                }
            }
        }
        Err(NetError::NotFound {
            what: format!("blob {hash}"),
            tried,
        })
    }

    /// Asks one peer for a blob; `None` when it does not deliver a matching one.
    async fn try_blob(
        &self,
        peer: PeerId,
        hash: Hash,
        reach: Reach,
        tried: &mut usize,
    ) -> Result<Option<Vec<u8>>, NetError> {
        if self.breaker_open(&peer) {
            return Ok(None);
        }
        *tried += 1;
        match self.request(peer, Request::Blob(hash)).await {
            Ok(Response::Blob(Some(bytes))) if Hash::of(&bytes) == hash => {
                self.breaker_result(peer, true);
                // Store it (and announce a discoverable one) in the background: the caller has
                // verified bytes now, and the synced write stays off its path (a verifier
                // waiting for a block).
                if reach != Reach::Unverified {
                    let this = self.clone();
                    let copy = bytes.clone();
                    tokio::spawn(async move {
                        let stored = match reach {
                            Reach::PeersThenDht => this.put_blob(copy).await,
                            _ => this.store_blob(copy).await,
                        };
                        if let Err(e) = stored {
                            tracing::warn!("storing fetched blob {hash}: {e}");
                        }
                    });
                }
                Ok(Some(bytes))
            }
            Ok(Response::Blob(Some(_))) => {
                self.breaker_result(peer, false);
                self.report(peer, "blob", "bad_content").await?;
                Ok(None)
            }
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::debug!(%peer, "blob {hash}: {e}");
                self.breaker_result(peer, false);
                Ok(None)
            }
        }
    }

    /// Connected peers, bound validators first.
    async fn sync_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(Command::SyncPeers).await
    }

    /// Certified blocks `from..=to` from a peer: each connected peer is asked in turn until
    /// one answers with blocks that `verify` accepts (it gets the first height and the encoded
    /// blocks, and checks heights and certificates). A peer whose blocks fail is penalized.
    /// Fewer blocks than asked come back when peers hold no more.
    pub async fn sync_blocks(
        &self,
        from: u64,
        to: u64,
        verify: impl Fn(u64, &[Vec<u8>]) -> Result<(), &'static str>,
    ) -> Result<Vec<Vec<u8>>, NetError> {
        let to = to.min(from.saturating_add(wire::MAX_SYNC_BLOCKS - 1));
        let mut tried = 0;
        for peer in self.sync_peers().await? {
            if self.breaker_open(&peer) {
                continue;
            }
            tried += 1;
            match self.request(peer, Request::Sync { from, to }).await {
                Ok(Response::Blocks(blocks)) if blocks.is_empty() => {}
                Ok(Response::Blocks(blocks)) => {
                    let too_many = blocks.len() as u64 > to - from + 1;
                    match if too_many {
                        Err("bad_range")
                    } else {
                        verify(from, &blocks)
                    } {
                        Ok(()) => {
                            self.breaker_result(peer, true);
                            return Ok(blocks);
                        }
                        Err(reason) => {
                            self.breaker_result(peer, false);
                            self.report(peer, "sync", reason).await?;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, "sync {from}..={to}: {e}");
                    self.breaker_result(peer, false);
                }
            }
        }
        Err(NetError::NotFound {
            what: format!("blocks {from}..={to}"),
            tried,
        })
    }

    /// The connected validators' peers, those bound to `first` before the others, the rest in
    /// peer order (stable).
    async fn validators_first(
        &self,
        first: Option<Hotkey>,
    ) -> Result<Vec<(PeerId, Hotkey)>, NetError> {
        let mut peers = self.call(Command::ValidatorPeers).await?;
        peers.sort_by_key(|(p, h)| (Some(*h) != first, *p));
        Ok(peers)
    }

    /// The block at `height` with header hash `header`, not yet final, asked point-to-point of
    /// the connected validators in turn — those bound to `first` before the others — until
    /// one answers with bytes `verify` accepts (it decodes them and checks the header's hash).
    /// A validator that answers with another block is penalized.
    pub async fn fetch_block(
        &self,
        height: u64,
        header: Hash,
        first: Option<Hotkey>,
        verify: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>, NetError> {
        let mut tried = 0;
        for (peer, _) in self.validators_first(first).await? {
            if self.breaker_open(&peer) {
                continue;
            }
            tried += 1;
            match self.request(peer, Request::Block { height, header }).await {
                Ok(Response::Blocks(blocks)) if blocks.is_empty() => {}
                Ok(Response::Blocks(mut blocks)) => {
                    if blocks.len() == 1 && verify(&blocks[0]) {
                        self.breaker_result(peer, true);
                        return Ok(blocks.swap_remove(0));
                    }
                    self.breaker_result(peer, false);
                    self.report(peer, "sync", "wrong_block").await?;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, "block {height} {header}: {e}");
                    self.breaker_result(peer, false);
                }
            }
        }
        Err(NetError::NotFound {
            what: format!("block {height} {header}"),
            tried,
        })
    }

    /// Consensus certificates for `ask`, asked point-to-point (never gossiped) of the
    /// connected validators in turn — those bound to `first` before the others — until one
    /// answers with some. Returns the answering validator's hotkey and the encoded
    /// certificates; the caller's consensus engine checks them (and reports the validator for
    /// a bad one). An answer with more than [`MAX_CERTIFICATES`] or an oversized one is
    /// refused and penalized here.
    pub async fn fetch_certificates(
        &self,
        ask: CertificateAsk,
        first: Option<Hotkey>,
    ) -> Result<(Hotkey, Vec<Vec<u8>>), NetError> {
        let mut tried = 0;
        for (peer, hotkey) in self.validators_first(first).await? {
            if self.breaker_open(&peer) {
                continue;
            }
            tried += 1;
            match self.request(peer, Request::Certificates(ask)).await {
                Ok(Response::Certificates(certs)) if certs.is_empty() => {}
                Ok(Response::Certificates(certs)) => {
                    if certs.len() > MAX_CERTIFICATES
                        || certs.iter().any(|c| c.len() > MAX_CERTIFICATE_BYTES)
                    {
                        self.breaker_result(peer, false);
                        self.report(peer, "certificates", "oversize").await?;
                        continue;
                    }
                    self.breaker_result(peer, true);
                    return Ok((hotkey, certs));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, "certificates {ask:?}: {e}");
                    self.breaker_result(peer, false);
                }
            }
        }
        Err(NetError::NotFound {
            what: format!("certificates for {ask:?}"),
            tried,
        })
    }

    /// The highest snapshot any connected peer describes, with the peer. Fetch its bytes with
    /// [`Network::fetch_blob`].
    pub async fn latest_snapshot(&self) -> Result<Option<(SnapshotInfo, PeerId)>, NetError> {
        let mut best: Option<(SnapshotInfo, PeerId)> = None;
        for peer in self.sync_peers().await? {
            if let Ok(Response::Snapshot(Some(info))) = self.request(peer, Request::Snapshot).await
                && best.as_ref().is_none_or(|(b, _)| info.height > b.height)
            {
                best = Some((info, peer));
            }
        }
        Ok(best)
    }

    /// The network's status.
    pub async fn status(&self) -> Result<NetStatus, NetError> {
        self.call(Command::Status).await
    }

    /// Stops the network, persisting the replay cache first.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.call(Command::Shutdown).await
    }
}
