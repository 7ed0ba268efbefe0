//! The network task: owns the libp2p swarm, runs every inbound message through the
//! [`Ingress`] pipeline, answers requests (reads happen on blocking threads), and carries out
//! the [`crate::Network`] handle's commands.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, identify, identity, kad, noise, ping, tcp, yamux,
};
use platform_crypto::Keypair;
use platform_primitives::{Hash, Hotkey, NetUid};
use platform_storage::DataDir;
use tokio::sync::{mpsc, oneshot};

use crate::admission::{Admission, BindDeadline};
use crate::ingress::{Ingress, Membership, Verdict};
use crate::metrics::Metrics;
use crate::providers::ProviderStore;
use crate::seen::SeenStore;
use crate::stuck::StuckLinks;
use crate::wire::{
    Codec, Envelope, MAX_BLOB_BYTES, MAX_CERTIFICATES, MAX_SYNC_BLOCKS, MAX_SYNC_RESPONSE,
    PeerBinding, Protocol, Request, Response, Topic,
};
use crate::{Config, Event, NetError, NetStatus, PeerLink, Provider};

/// The most bytes of control messages (IHAVE, IWANT, IDONTWANT, GRAFT, PRUNE) in one gossip
/// frame, sent or accepted.
pub(crate) const GOSSIP_CONTROL_BYTES: usize = 64 * 1024;

/// The most message ids one IHAVE or IWANT lists: each takes 34 bytes (a 32-byte blake3 id and
/// its protobuf framing), so 1,024 take 34.8 KiB, well inside [`GOSSIP_CONTROL_BYTES`].
pub(crate) const GOSSIP_CONTROL_IDS: usize = 1024;

/// How often each connection is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// A ping unanswered this long closes the connection: the link is taken for dead.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    admission: Admission,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    gossip: gossipsub::Behaviour,
    kad: kad::Behaviour<ProviderStore>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    hello: request_response::Behaviour<Codec>,
    sync: request_response::Behaviour<Codec>,
    blob: request_response::Behaviour<Codec>,
    snapshot: request_response::Behaviour<Codec>,
    certificates: request_response::Behaviour<Codec>,
    direct: request_response::Behaviour<Codec>,
}

impl Behaviour {
    /// The request-response behaviour of a protocol. Each protocol has its own: libp2p treats
    /// the protocols of one behaviour as versions of the same protocol.
    fn rr(&mut self, p: Protocol) -> &mut request_response::Behaviour<Codec> {
        match p {
            Protocol::Hello => &mut self.hello,
            Protocol::Sync => &mut self.sync,
            Protocol::Blob => &mut self.blob,
            Protocol::Snapshot => &mut self.snapshot,
            Protocol::Certificates => &mut self.certificates,
            Protocol::Direct => &mut self.direct,
        }
    }
}

/// What the handle asks of the task.
pub(crate) enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<(), NetError>>),
    SetMembership(Membership),
    SetRound(Topic, u64),
    Publish(Envelope, oneshot::Sender<Result<Hash, NetError>>),
    /// Send a consensus envelope to the validator with this hotkey only
    /// ([`crate::Network::send_direct`]).
    Direct(Hotkey, Envelope, oneshot::Sender<Result<(), NetError>>),
    Provide(Hash),
    Unprovide(Hash),
    Providers(Hash, oneshot::Sender<Vec<PeerId>>),
    Request(PeerId, Request, oneshot::Sender<Result<Response, NetError>>),
    Report(PeerId, &'static str, &'static str),
    ReportValidator(Hotkey, &'static str, &'static str),
    SyncPeers(oneshot::Sender<Vec<PeerId>>),
    PeersOf(Hotkey, oneshot::Sender<Vec<PeerId>>),
    /// Connected peers bound to a validator of the set, with the validator.
    ValidatorPeers(oneshot::Sender<Vec<(PeerId, Hotkey)>>),
    Status(oneshot::Sender<NetStatus>),
    Shutdown(oneshot::Sender<()>),
}

/// Results of blocking work, back into the task.
enum Internal {
    /// A response read off the task; the peer and whether it was served as a validator
    /// return its serving slot.
    Respond(
        Protocol,
        (PeerId, bool),
        ResponseChannel<Response>,
        Response,
    ),
}

/// Reads (sync, blob, snapshot) run at once; further requests wait their turn, so at most this
/// many blobs are being read into memory.
pub const SERVE_READS: usize = 8;
/// Requests one peer outside the validator set may have queued or served at once.
pub const SERVE_PER_OUTSIDER: u32 = 2;
/// Requests queued or served at once for all peers that are not validators of the set
/// together (observers, nodes catching up, strangers), so that they never crowd out validators.
pub const SERVE_OUTSIDERS: u32 = 4;

/// Outsiders' requests being served, counted so that each new one can be refused cheaply.
/// Validators' requests are never refused: they queue for a read (bounded per connection by
/// the protocol's stream limit), since a validator fetching an epoch's payloads must get them.
#[derive(Debug, Default)]
struct Serving {
    by_outsider: HashMap<PeerId, u32>,
    outsiders: u32,
}

impl Serving {
    /// Admits a request of `peer`, or says why not.
    fn admit(&mut self, peer: PeerId, validator: bool) -> Result<(), &'static str> {
        if validator {
            return Ok(());
        }
        let mine = self.by_outsider.get(&peer).copied().unwrap_or(0);
        if mine >= SERVE_PER_OUTSIDER {
            return Err("busy_peer");
        }
        if self.outsiders >= SERVE_OUTSIDERS {
            return Err("busy");
        }
        *self.by_outsider.entry(peer).or_default() += 1;
        self.outsiders += 1;
        Ok(())
    }

    /// Returns the slot of a finished request.
    fn release(&mut self, peer: PeerId, validator: bool) {
        if validator {
            return;
        }
        if let Some(n) = self.by_outsider.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.by_outsider.remove(&peer);
            }
        }
        self.outsiders = self.outsiders.saturating_sub(1);
    }
}

/// The gossipsub configuration for 4–64 validators: flood publishing (every subscribed peer gets
/// our own messages directly), a mesh that forms with as few as one peer, message id = blake3
/// of the data, and manual validation (nothing is forwarded before the pipeline accepts it).
///
/// Validators are not gossipsub's explicit peers: gossipsub forwards every message to every
/// explicit peer, so with n validators each message crossed the network about n² times (and
/// explicit peers never join the mesh). Flood publishing already sends each message to every
/// validator directly; forwarding through the mesh (3 to 8 peers) only repairs a missing link.
///
/// Control messages are bounded on both sides. gossipsub's receiver refuses, as a broken
/// stream, any frame larger than `max_transmit_size` or whose control part exceeds
/// `max_control_message_size` (16 KiB by default), while its sender lists up to
/// `max_control_messages_sent` message ids (5,000 by default, ~170 KB) in one IHAVE or IWANT.
/// With the defaults, a burst of more than ~470 messages in the 1.5 s gossip window broke the
/// stream of every peer it was advertised to; after five broken streams gossipsub disables the
/// connection's handler for good (see [`crate::stuck`]). Here a control message always fits:
/// at most [`GOSSIP_CONTROL_IDS`] ids of 32 bytes in [`GOSSIP_CONTROL_BYTES`], and a frame may
/// hold the largest message or the largest control message.
fn gossip_config(max_message: usize) -> Result<gossipsub::Config, NetError> {
    gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(500))
        .mesh_n_low(1)
        .mesh_n(3)
        .mesh_n_high(8)
        .mesh_outbound_min(1)
        .gossip_lazy(3)
        .flood_publish(true)
        .history_length(6)
        .history_gossip(3)
        .duplicate_cache_time(Duration::from_secs(120))
        .max_transmit_size(max_message + GOSSIP_CONTROL_BYTES + 1024)
        .max_control_message_size(GOSSIP_CONTROL_BYTES)
        .max_control_messages_sent(GOSSIP_CONTROL_IDS)
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .build()
        .map_err(|e| NetError::Setup(format!("gossipsub configuration: {e}")))
}

/// Starts the swarm and returns the task's state, listening on `cfg.listen`.
pub(crate) struct Task {
    own_binding: PeerBinding,
    serving: Serving,
    reads: Arc<tokio::sync::Semaphore>,
    swarm: Swarm<Behaviour>,
    netuid: NetUid,
    key: Arc<Keypair>,
    ingress: Ingress,
    metrics: Arc<Metrics>,
    topics: HashMap<TopicHash, Topic>,
    events: mpsc::Sender<Event>,
    commands: mpsc::Receiver<Command>,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    requests: HashMap<(Protocol, OutboundRequestId), oneshot::Sender<Result<Response, NetError>>>,
    provider_queries: HashMap<kad::QueryId, (HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    banned: HashMap<PeerId, Instant>,
    /// Each connected peer's remote address and last ping round trip (for `status`).
    links: HashMap<PeerId, (Multiaddr, Option<Duration>)>,
    /// Connected peers that have not bound a hotkey yet, disconnected after `bind_deadline`.
    unbound: BindDeadline,
    bind_deadline: Duration,
    ban_period: Duration,
    partition_alarm: Duration,
    below_since: Option<Instant>,
    partitioned: bool,
    seen: SeenStore,
    /// Bootstrap peers, redialed while disconnected (a peer may start after us).
    bootstrap: Vec<(PeerId, Multiaddr)>,
    flushing: Option<tokio::task::JoinHandle<()>>,
    /// Peers whose gossip queue refused messages lately (see [`crate::stuck`]).
    stuck: StuckLinks,
    /// Peers whose stuck link was closed, to be dialed again once it is gone.
    redial: HashSet<PeerId>,
    dir: Arc<DataDir>,
    provider: Arc<dyn Provider>,
}

impl Task {
    pub(crate) fn new(
        cfg: Config,
        key: Arc<Keypair>,
        identity: identity::Keypair,
        dir: Arc<DataDir>,
        provider: Arc<dyn Provider>,
        (metrics, events, commands): (Arc<Metrics>, mpsc::Sender<Event>, mpsc::Receiver<Command>),
    ) -> Result<Task, NetError> {
        let netuid = cfg.netuid;
        let max_message = cfg.topics.values().map(|s| s.max_bytes).max().unwrap_or(0);
        let gossip_cfg = gossip_config(max_message)?;
        let request_timeout = cfg.request_timeout;
        let (max_connections, max_per_ip) = (cfg.max_connections, cfg.max_per_ip);
        let admission_metrics = metrics.clone();
        let dht = cfg.providers;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Setup(format!("transport: {e}")))?
            .with_behaviour(|k| {
                let rr = |p: Protocol| {
                    request_response::Behaviour::with_codec(
                        Codec,
                        [(p.stream_protocol(netuid), ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(request_timeout)
                            .with_max_concurrent_streams(256),
                    )
                };
                let peer = k.public().to_peer_id();
                let mut kad_cfg = kad::Config::new(
                    libp2p::StreamProtocol::try_from_owned(format!("/platform/{}/kad/1", netuid.0))
                        .expect("starts with a slash"),
                );
                kad_cfg.set_provider_publication_interval(Some(dht.republish));
                kad_cfg.set_provider_record_ttl(Some(dht.record_ttl));
                kad_cfg.set_record_ttl(Some(dht.record_ttl));
                kad_cfg.set_replication_interval(None);
                kad_cfg.set_publication_interval(None);
                kad_cfg.set_query_timeout(Duration::from_secs(10));
                let mut kad =
                    kad::Behaviour::with_config(peer, ProviderStore::new(peer, dht), kad_cfg);
                kad.set_mode(Some(kad::Mode::Server));
                let gossip = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Anonymous,
                    gossip_cfg,
                )?;
                Ok(Behaviour {
                    admission: Admission::new(max_connections, max_per_ip, admission_metrics),
                    blocked: Default::default(),
                    gossip,
                    kad,
                    identify: identify::Behaviour::new(identify::Config::new(
                        format!("/platform/{}/1", netuid.0),
                        k.public(),
                    )),
                    // A link cut without a reset (a cable, a firewall, a dead host) keeps its TCP
                    // connection open for minutes; a ping every 2 s that must answer within
                    // 5 s notices it in at most ~7 s, and the connection is closed so the peer
                    // is redialed.
                    ping: ping::Behaviour::new(
                        ping::Config::new()
                            .with_interval(PING_INTERVAL)
                            .with_timeout(PING_TIMEOUT),
                    ),
                    hello: rr(Protocol::Hello),
                    sync: rr(Protocol::Sync),
                    blob: rr(Protocol::Blob),
                    snapshot: rr(Protocol::Snapshot),
                    certificates: rr(Protocol::Certificates),
                    direct: rr(Protocol::Direct),
                })
            })
            .map_err(|e| NetError::Setup(format!("behaviour: {e}")))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();

        let mut topics = HashMap::new();
        for t in Topic::ALL {
            let topic = IdentTopic::new(t.topic_string(netuid));
            swarm
                .behaviour_mut()
                .gossip
                .subscribe(&topic)
                .map_err(|e| NetError::Setup(format!("subscribe to {}: {e}", t.name())))?;
            topics.insert(topic.hash(), t);
        }
        swarm
            .listen_on(cfg.listen.clone())
            .map_err(|e| NetError::Setup(format!("listen on {}: {e}", cfg.listen)))?;
        let mut bootstrap = Vec::new();
        for addr in &cfg.bootstrap {
            let peer = addr.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            });
            let Some(peer) = peer else {
                return Err(NetError::Setup(format!(
                    "bootstrap address {addr} has no /p2p/<peer id>"
                )));
            };
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            swarm
                .dial(addr.clone())
                .map_err(|e| NetError::Setup(format!("dial {addr}: {e}")))?;
            bootstrap.push((peer, addr.clone()));
        }

        let seen = SeenStore::new(dir.clone());
        let mut ingress = Ingress::new(netuid, cfg.topics, cfg.request_rate, metrics.clone());
        ingress.restore_seen(
            seen.load()
                .map_err(|e| NetError::Setup(format!("replay cache: {e}")))?,
        );
        let (internal_tx, internal_rx) = mpsc::channel(256);
        // Our binding never changes: signed once, not once per connection or Hello.
        let own_binding = PeerBinding::sign(&key, netuid, swarm.local_peer_id());
        Ok(Task {
            own_binding,
            serving: Serving::default(),
            reads: Arc::new(tokio::sync::Semaphore::new(SERVE_READS)),
            swarm,
            netuid,
            key,
            ingress,
            metrics,
            topics,
            events,
            commands,
            internal_tx,
            internal_rx,
            requests: HashMap::new(),
            provider_queries: HashMap::new(),
            banned: HashMap::new(),
            links: HashMap::new(),
            unbound: BindDeadline::default(),
            bind_deadline: cfg.bind_deadline,
            ban_period: cfg.ban_period,
            partition_alarm: cfg.partition_alarm,
            below_since: None,
            partitioned: false,
            seen,
            bootstrap,
            flushing: None,
            stuck: StuckLinks::default(),
            redial: HashSet::new(),
            dir,
            provider,
        })
    }

    /// Waits for the first listen address (the OS picks the port when it is 0).
    pub(crate) async fn first_listen_addr(&mut self) -> Result<Multiaddr, NetError> {
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(NetError::Setup(format!("listener: {error}")));
                }
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(NetError::Setup(format!("listener closed: {reason:?}")));
                }
                other => self.on_swarm(other),
            }
        }
    }

    pub(crate) fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs until shut down or until every handle is dropped. Returns the shutdown reply, to be
    /// sent once the task (and with it the swarm and its hold on the data directory) is gone.
    pub(crate) async fn run(mut self) -> Option<oneshot::Sender<()>> {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_flush = Instant::now();
        let mut last_redial = Instant::now();
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        self.flush_seen().await;
                        return Some(done);
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.flush_seen().await;
                        return None;
                    }
                },
                Some(Internal::Respond(p, (peer, validator), ch, res)) = self.internal_rx.recv() => {
                    self.serving.release(peer, validator);
                    let _ = self.swarm.behaviour_mut().rr(p).send_response(ch, res);
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.enforce_bans(now);
                    self.enforce_bind_deadline(now);
                    self.watch_partition(now);
                    self.stuck.sweep(now);
                    let store = self.swarm.behaviour_mut().kad.store_mut();
                    store.sweep(now);
                    self.metrics.set_dht(store.stats());
                    if now.duration_since(last_redial) >= Duration::from_secs(2) {
                        last_redial = now;
                        self.redial_bootstrap();
                    }
                    if now.duration_since(last_flush) >= Duration::from_secs(1) {
                        last_flush = now;
                        self.flush_seen_in_background();
                    }
                }
            }
        }
    }

    /// Disconnects peers connected for `bind_deadline` without binding a hotkey: a slot is
    /// not held by a connection that does nothing.
    fn enforce_bind_deadline(&mut self, now: Instant) {
        for peer in self.unbound.overdue(now, self.bind_deadline) {
            if self.swarm.is_connected(&peer) && self.ingress.bound_hotkey(&peer).is_none() {
                tracing::debug!(%peer, "disconnecting a peer that never bound a hotkey");
                self.metrics.rejected("connection", "unbound");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// Dials bootstrap peers we are not connected to (and have not banned).
    fn redial_bootstrap(&mut self) {
        for (peer, addr) in self.bootstrap.clone() {
            if !self.swarm.is_connected(&peer)
                && !self.banned.contains_key(&peer)
                && let Err(e) = self.swarm.dial(addr.clone())
            {
                tracing::debug!("redialing {addr}: {e}");
            }
        }
    }

    fn emit(&self, ev: Event) {
        if self.events.try_send(ev).is_err() {
            self.metrics.dropped();
        }
    }

    fn flush_seen_in_background(&mut self) {
        let (fresh, evicted) = self.ingress.take_changes();
        if fresh.is_empty() && evicted.is_empty() {
            return;
        }
        if self.flushing.as_ref().is_some_and(|f| !f.is_finished()) {
            // The previous batch is still being written; keep these for the next tick.
            self.ingress.restore_changes(fresh, evicted);
            return;
        }
        let store = self.seen.clone();
        self.flushing = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = store.apply(&fresh, &evicted) {
                tracing::warn!("could not persist the replay cache: {e}");
            }
        }));
    }

    async fn flush_seen(&mut self) {
        if let Some(previous) = self.flushing.take() {
            let _ = previous.await;
        }
        let (fresh, evicted) = self.ingress.take_changes();
        let store = self.seen.clone();
        let done = tokio::task::spawn_blocking(move || store.apply(&fresh, &evicted)).await;
        if let Ok(Err(e)) = done {
            tracing::warn!("could not persist the replay cache: {e}");
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial(addr, reply) => {
                let r = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|e| NetError::Dial(format!("{addr}: {e}")));
                let _ = reply.send(r);
            }
            Command::SetMembership(m) => {
                self.swarm
                    .behaviour_mut()
                    .admission
                    .set_validators(m.peer_ids.clone());
                self.ingress.set_membership(m)
            }
            Command::SetRound(topic, round) => self.ingress.set_round(topic, round),
            Command::Publish(env, reply) => {
                let topic = IdentTopic::new(env.topic.topic_string(self.netuid));
                let data = platform_primitives::encode(&env);
                let r = match self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(topic, data.clone())
                {
                    Ok(_) => Ok(Hash::of(&data)),
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                        Err(NetError::NoPeers)
                    }
                    Err(e) => Err(NetError::Publish(e.to_string())),
                };
                let _ = reply.send(r);
            }
            Command::Provide(hash) => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(kad::RecordKey::new(&hash.0))
                {
                    tracing::warn!("could not announce blob {hash}: {e}");
                }
            }
            Command::Unprovide(hash) => {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .stop_providing(&kad::RecordKey::new(&hash.0));
            }
            Command::Providers(hash, reply) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(kad::RecordKey::new(&hash.0));
                self.provider_queries.insert(id, (HashSet::new(), reply));
            }
            Command::Direct(hotkey, env, reply) => {
                // Fire and forget, as gossip is: the receiver's answer only says whether its
                // checks passed, and a lost message is repeated at the sender's next timeout.
                let r = match self.ingress.peers_of(&hotkey).first() {
                    Some(peer) => {
                        let req = Request::Direct(platform_primitives::encode(&env));
                        self.swarm.behaviour_mut().direct.send_request(peer, req);
                        self.metrics.direct_sent();
                        Ok(())
                    }
                    None => Err(NetError::NoPeers),
                };
                let _ = reply.send(r);
            }
            Command::Request(peer, req, reply) => {
                let p = req.protocol();
                let id = self.swarm.behaviour_mut().rr(p).send_request(&peer, req);
                self.requests.insert((p, id), reply);
            }
            Command::Report(peer, channel, reason) => {
                self.ingress.report(channel, &peer, reason, Instant::now());
            }
            Command::ReportValidator(hotkey, channel, reason) => {
                for peer in self.ingress.peers_of(&hotkey) {
                    self.ingress.report(channel, &peer, reason, Instant::now());
                }
            }
            Command::SyncPeers(reply) => {
                let mut peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                peers.sort_by_key(|p| (!self.ingress.is_validator_peer(p), *p));
                let _ = reply.send(peers);
            }
            Command::ValidatorPeers(reply) => {
                let mut peers: Vec<(PeerId, Hotkey)> = self
                    .swarm
                    .connected_peers()
                    .filter(|p| self.ingress.is_validator_peer(p))
                    .filter_map(|p| Some((*p, self.ingress.bound_hotkey(p)?)))
                    .collect();
                peers.sort();
                let _ = reply.send(peers);
            }
            Command::PeersOf(hotkey, reply) => {
                let _ = reply.send(self.ingress.peers_of(&hotkey));
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Shutdown(_) => unreachable!("handled by the loop"),
        }
    }

    fn status(&self) -> NetStatus {
        let (connected_stake, total_stake) = self.stake_view();
        let mut validators: Vec<Hotkey> = self
            .swarm
            .connected_peers()
            .filter(|p| self.ingress.is_validator_peer(p))
            .filter_map(|p| self.ingress.bound_hotkey(p))
            .collect();
        validators.sort();
        validators.dedup();
        let mut banned: Vec<String> = self.banned.keys().map(|p| p.to_string()).collect();
        banned.sort();
        let mut peers: Vec<PeerLink> = self
            .swarm
            .connected_peers()
            .map(|p| {
                let link = self.links.get(p);
                PeerLink {
                    peer_id: p.to_string(),
                    address: link.map(|l| l.0.to_string()),
                    rtt_ms: link.and_then(|l| l.1).map(|d| d.as_millis() as u64),
                    validator: self
                        .ingress
                        .is_validator_peer(p)
                        .then(|| self.ingress.bound_hotkey(p))
                        .flatten(),
                }
            })
            .collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        NetStatus {
            peers,
            peer_id: self.peer_id().to_string(),
            listen_addrs: self.swarm.listeners().map(|a| a.to_string()).collect(),
            connected_peers: self.swarm.connected_peers().count(),
            connected_validators: validators,
            connected_stake,
            total_stake,
            partitioned: self.partitioned,
            banned,
        }
    }

    /// Stake of validators we are connected to (ourselves included), and the set's total.
    fn stake_view(&self) -> (u128, u128) {
        let m = self.ingress.membership();
        let mut hotkeys: BTreeMap<Hotkey, u64> = BTreeMap::new();
        if let Some(s) = m.stake(&self.key.hotkey()) {
            hotkeys.insert(self.key.hotkey(), s);
        }
        for p in self.swarm.connected_peers() {
            if let Some(h) = self.ingress.bound_hotkey(p)
                && let Some(s) = m.stake(&h)
            {
                hotkeys.insert(h, s);
            }
        }
        (hotkeys.values().map(|s| u128::from(*s)).sum(), m.total())
    }

    fn watch_partition(&mut self, now: Instant) {
        let (connected, total) = self.stake_view();
        let below = total > 0 && connected * 3 < total * 2;
        if below {
            let since = *self.below_since.get_or_insert(now);
            if !self.partitioned && now.duration_since(since) >= self.partition_alarm {
                self.partitioned = true;
                tracing::warn!(
                    connected_stake = connected,
                    total_stake = total,
                    "partitioned: connected validators hold less than two thirds of the stake"
                );
                self.emit(Event::Partitioned {
                    connected_stake: connected,
                    total_stake: total,
                });
            }
        } else {
            self.below_since = None;
            if self.partitioned {
                self.partitioned = false;
                tracing::info!("partition healed");
                self.emit(Event::Healed);
            }
        }
    }

    fn enforce_bans(&mut self, now: Instant) {
        for (peer, causes) in self.ingress.take_bannable(now) {
            tracing::warn!(%peer, %causes, "banning a peer that sent invalid messages");
            self.metrics.banned();
            self.banned.insert(peer, now + self.ban_period);
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.banned.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    fn bind(&mut self, peer: PeerId, binding: &PeerBinding) -> Result<(), &'static str> {
        if self.ingress.bound_hotkey(&peer) == Some(binding.hotkey) {
            // Proven already on this connection: a repeated Hello costs nothing more.
            return Ok(());
        }
        self.metrics.signature_checked();
        binding.verify(self.netuid, &peer)?;
        self.ingress.bind(peer, binding.hotkey);
        self.unbound.settled(&peer);
        let validator = self.ingress.is_validator_peer(&peer);
        self.emit(Event::PeerBound {
            peer,
            hotkey: binding.hotkey,
            validator,
        });
        Ok(())
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } if num_established.get() == 1 => {
                self.links
                    .insert(peer_id, (endpoint.get_remote_address().clone(), None));
                self.unbound.connected(peer_id, Instant::now());
                // First connection to this peer: tell it who we are (it answers in kind).
                let hello = self.own_binding.clone();
                let id = self
                    .swarm
                    .behaviour_mut()
                    .hello
                    .send_request(&peer_id, Request::Hello(hello));
                let (tx, _rx) = oneshot::channel();
                self.requests.insert((Protocol::Hello, id), tx);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.links.remove(&peer_id);
                self.unbound.settled(&peer_id);
                self.ingress.unbind(&peer_id);
                self.stuck.forget(&peer_id);
                if self.redial.remove(&peer_id) && !self.banned.contains_key(&peer_id) {
                    self.redial_stuck(peer_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            })) => self.on_slow_peer(peer_id, failed_messages),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) => {
                if let Some(link) = self.links.get_mut(&peer) {
                    link.1 = Some(rtt);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetProviders(result),
                step,
                ..
            })) => {
                if let (Ok(kad::GetProvidersOk::FoundProviders { providers, .. }), Some(q)) =
                    (result, self.provider_queries.get_mut(&id))
                {
                    q.0.extend(providers);
                }
                if step.last
                    && let Some((mut found, reply)) = self.provider_queries.remove(&id)
                {
                    found.remove(&self.peer_id());
                    let mut found: Vec<PeerId> = found.into_iter().collect();
                    found.sort();
                    let _ = reply.send(found);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Hello(ev)) => self.on_rr(Protocol::Hello, ev),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_rr(Protocol::Sync, ev),
            SwarmEvent::Behaviour(BehaviourEvent::Blob(ev)) => self.on_rr(Protocol::Blob, ev),
            SwarmEvent::Behaviour(BehaviourEvent::Snapshot(ev)) => {
                self.on_rr(Protocol::Snapshot, ev)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Certificates(ev)) => {
                self.on_rr(Protocol::Certificates, ev)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(ev)) => self.on_rr(Protocol::Direct, ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            })) => {
                tracing::debug!(%peer, "ping failed ({e}); closing the connection");
                self.metrics.rejected("ping", "dead_link");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    /// gossipsub refused to queue messages for `peer` (its queue was full); a peer refused at
    /// every heartbeat for [`crate::stuck::STUCK_AFTER`] has a stuck link, which is closed and
    /// dialed again.
    fn on_slow_peer(&mut self, peer: PeerId, failed: gossipsub::FailedMessages) {
        self.metrics
            .gossip_send_failed((failed.priority + failed.non_priority) as u64);
        if !self.stuck.report(peer, Instant::now()) {
            return;
        }
        tracing::warn!(
            %peer,
            "gossip to this peer has not drained for {}s; closing its connections and dialing it again",
            crate::stuck::STUCK_AFTER.as_secs()
        );
        self.metrics.stuck_link();
        if self.swarm.disconnect_peer_id(peer).is_ok() {
            self.redial.insert(peer);
        }
    }

    /// Dials a peer whose stuck link was closed, at the addresses the DHT and identify know.
    fn redial_stuck(&mut self, peer: PeerId) {
        use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
        let known = self
            .bootstrap
            .iter()
            .filter(|(p, _)| *p == peer)
            .map(|(_, a)| a.clone())
            .collect();
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .addresses(known)
            .extend_addresses_through_behaviour()
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, "redialing after a stuck link: {e}");
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, msg: gossipsub::Message) {
        let Some(&topic) = self.topics.get(&msg.topic) else {
            self.swarm
                .behaviour_mut()
                .gossip
                .report_message_validation_result(&id, &source, MessageAcceptance::Reject);
            return;
        };
        self.metrics.received(topic.name(), msg.data.len());
        let verdict = self
            .ingress
            .check_gossip(topic, &source, &msg.data, Instant::now());
        let acceptance = match &verdict {
            Verdict::Accept(_) => MessageAcceptance::Accept,
            Verdict::Reject(_) => MessageAcceptance::Reject,
            Verdict::Ignore(_) => MessageAcceptance::Ignore,
        };
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(&id, &source, acceptance);
        if let Verdict::Accept(envelope) = verdict {
            self.emit(Event::Gossip {
                topic,
                envelope,
                from: source,
            });
        }
    }

    fn on_rr(&mut self, protocol: Protocol, ev: request_response::Event<Request, Response>) {
        match ev {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_request(protocol, peer, request, channel),
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Response::Hello(binding) = &response
                    && let Err(reason) = self.bind(peer, binding)
                {
                    self.ingress
                        .report(Protocol::Hello.name(), &peer, reason, Instant::now());
                }
                if let Some(reply) = self.requests.remove(&(protocol, request_id)) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(reply) = self.requests.remove(&(protocol, request_id)) {
                    let _ = reply.send(Err(NetError::Request(error.to_string())));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                // Undecodable or oversize requests end here: count and penalize them.
                if let request_response::InboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::InvalidData
                {
                    self.ingress
                        .report(protocol.name(), &peer, "malformed", Instant::now());
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        protocol: Protocol,
        peer: PeerId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        let now = Instant::now();
        if let Request::Direct(bytes) = request {
            let res = self.on_direct(peer, &bytes, now);
            let _ = self
                .swarm
                .behaviour_mut()
                .direct
                .send_response(channel, res);
            return;
        }
        if let Err(code) = self.ingress.check_request(protocol, &peer, now) {
            let _ = self
                .swarm
                .behaviour_mut()
                .rr(protocol)
                .send_response(channel, Response::Error(code.into()));
            return;
        }
        match request {
            Request::Hello(binding) => {
                let res = match self.bind(peer, &binding) {
                    Ok(()) => Response::Hello(self.own_binding.clone()),
                    Err(reason) => {
                        self.ingress
                            .report(Protocol::Hello.name(), &peer, reason, now);
                        Response::Error(reason.into())
                    }
                };
                let _ = self.swarm.behaviour_mut().hello.send_response(channel, res);
            }
            Request::Sync { from, to } => {
                if to < from || to - from >= MAX_SYNC_BLOCKS {
                    self.ingress
                        .report(Protocol::Sync.name(), &peer, "bad_range", now);
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, Response::Error("bad_range".into()));
                    return;
                }
                let provider = self.provider.clone();
                self.respond_later(Protocol::Sync, peer, channel, move || {
                    Response::Blocks(provider.blocks(from, to, MAX_SYNC_RESPONSE))
                });
            }
            Request::Blob(hash) => {
                let dir = self.dir.clone();
                self.respond_later(Protocol::Blob, peer, channel, move || {
                    match dir.blobs().get(&hash, MAX_BLOB_BYTES as u64) {
                        Ok(found) => Response::Blob(found),
                        Err(e) => {
                            tracing::warn!("reading blob {hash}: {e}");
                            Response::Error("unavailable".into())
                        }
                    }
                });
            }
            Request::Snapshot => {
                let provider = self.provider.clone();
                self.respond_later(Protocol::Snapshot, peer, channel, move || {
                    Response::Snapshot(provider.latest_snapshot())
                });
            }
            // Only validators take part in consensus: an outsider has no use for
            // certificates, and answering it would make this node an amplifier.
            Request::Certificates(_) if !self.ingress.is_validator_peer(&peer) => {
                self.ingress
                    .report(Protocol::Certificates.name(), &peer, "not_validator", now);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .certificates
                    .send_response(channel, Response::Error("not_validator".into()));
            }
            Request::Direct(_) => unreachable!("handled above"),
            // Blocks not yet final are for validators (they vote on them); an outsider waits
            // for them to be final and syncs them.
            Request::Block { .. } if !self.ingress.is_validator_peer(&peer) => {
                self.ingress
                    .report(Protocol::Sync.name(), &peer, "not_validator", now);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, Response::Error("not_validator".into()));
            }
            Request::Block { height, header } => {
                let provider = self.provider.clone();
                self.respond_later(Protocol::Sync, peer, channel, move || {
                    Response::Blocks(
                        provider
                            .unfinalized_block(height, header)
                            .into_iter()
                            .collect(),
                    )
                });
            }
            Request::Certificates(ask) => {
                let provider = self.provider.clone();
                self.respond_later(Protocol::Certificates, peer, channel, move || {
                    let mut certs = provider.certificates(ask);
                    certs.truncate(MAX_CERTIFICATES);
                    Response::Certificates(certs)
                });
            }
        }
    }

    /// A consensus message sent to this validator alone: only validators may send one, and
    /// it passes the consensus topic's checks (size, replay, round window, signature, the
    /// per-peer and per-author rates, the payload check) exactly as gossip does, with the same
    /// penalties, before the node sees it.
    fn on_direct(&mut self, peer: PeerId, bytes: &[u8], now: Instant) -> Response {
        if !self.ingress.is_validator_peer(&peer) {
            self.ingress
                .report(Protocol::Direct.name(), &peer, "not_validator", now);
            return Response::Error("not_validator".into());
        }
        match self
            .ingress
            .check_gossip(Topic::Consensus, &peer, bytes, now)
        {
            Verdict::Accept(envelope) => {
                self.metrics.accepted(Protocol::Direct.name());
                self.emit(Event::Gossip {
                    topic: Topic::Consensus,
                    envelope,
                    from: peer,
                });
                Response::Received
            }
            Verdict::Reject(reason) | Verdict::Ignore(reason) => Response::Error(reason.into()),
        }
    }

    /// Runs `read` on a blocking thread and sends its response from the task.
    /// Serves a request with a read on the blocking pool once one of [`SERVE_READS`] is free.
    /// A peer outside the validator set beyond its share ([`SERVE_PER_OUTSIDER`],
    /// [`SERVE_OUTSIDERS`]) is answered `busy` (or `busy_peer`) at once instead.
    fn respond_later(
        &mut self,
        protocol: Protocol,
        peer: PeerId,
        channel: ResponseChannel<Response>,
        read: impl FnOnce() -> Response + Send + 'static,
    ) {
        let validator = self.ingress.is_validator_peer(&peer);
        if let Err(reason) = self.serving.admit(peer, validator) {
            self.metrics.rejected(protocol.name(), reason);
            let _ = self
                .swarm
                .behaviour_mut()
                .rr(protocol)
                .send_response(channel, Response::Error(reason.into()));
            return;
        }
        let tx = self.internal_tx.clone();
        let reads = self.reads.clone();
        tokio::spawn(async move {
            let _permit = reads.acquire_owned().await;
            // A read that panicked still returns its slot.
            let res = tokio::task::spawn_blocking(read)
                .await
                .unwrap_or_else(|_| Response::Error("unavailable".into()));
            let _ = tx
                .send(Internal::Respond(protocol, (peer, validator), channel, res))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest IHAVE or IWANT this node sends fits what it (and every peer built alike)
    /// accepts, with room for the topic name and framing; a frame fits the largest message or
    /// the largest control part.
    #[test]
    fn the_largest_control_message_fits_what_peers_accept() {
        let id = gossipsub::MessageId::from(blake3::hash(b"a message").as_bytes().to_vec());
        let per_id = 2 + id.0.len();
        let topic = Topic::ALL
            .iter()
            .map(|t| t.topic_string(NetUid(u16::MAX)).len())
            .max()
            .unwrap();
        let ihave = GOSSIP_CONTROL_IDS * per_id + topic + 16;
        let max_message = 20 * 1024;
        let cfg = gossip_config(max_message).unwrap();
        assert_eq!(cfg.max_control_messages_sent(), GOSSIP_CONTROL_IDS);
        assert!(ihave <= cfg.max_control_message_size(), "{ihave} bytes");
        assert!(cfg.max_transmit_size() >= cfg.max_control_message_size() + 16);
        assert!(cfg.max_transmit_size() >= max_message + 1024);
    }
}
