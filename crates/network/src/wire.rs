//! What travels between nodes: signed gossip envelopes, the identity binding, and the
//! request-response protocols with their length-prefixed, size-capped framing.

use std::io;

use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};
use platform_crypto::{Domain, Keypair, Signature, SignatureError, sr25519};
use platform_primitives::{Hash, Hotkey, NetUid, decode, encode};

/// The gossip topics of a subnet (DESIGN §11). Each has its own size cap, replay window and
/// rate limits ([`crate::TopicSpec`]).
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub enum Topic {
    /// Votes and certificates.
    Consensus,
    /// Miners' submissions relayed by the validator that received them (the payload itself
    /// moves as a blob; gossip carries its hash).
    Submissions,
    /// Committee members' attestations.
    Attestations,
    /// Announcements: new blobs, snapshots.
    Announce,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 4] = [
        Topic::Consensus,
        Topic::Submissions,
        Topic::Attestations,
        Topic::Announce,
    ];

    /// The short name used in topic strings and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Consensus => "consensus",
            Topic::Submissions => "submissions",
            Topic::Attestations => "attestations",
            Topic::Announce => "announce",
        }
    }

    /// The gossipsub topic string: `platform/<netuid>/<name>/1`.
    pub fn topic_string(self, netuid: NetUid) -> String {
        format!("platform/{}/{}/1", netuid.0, self.name())
    }
}

/// A message published on a topic: who wrote it, for which round, what it says, signed with the
/// author's hotkey. The round is the view (consensus) or height/epoch (other topics) the message
/// belongs to; it bounds replay.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Envelope {
    /// The subnet.
    pub netuid: NetUid,
    /// The topic it was published on (a message never moves between topics).
    pub topic: Topic,
    /// The author's hotkey.
    pub author: Hotkey,
    /// The round it belongs to.
    pub round: u64,
    /// The topic-specific payload, decoded by the topic's own check.
    pub payload: Vec<u8>,
    /// sr25519 signature of the author over [`Envelope::signing_bytes`] in [`Domain::Gossip`].
    pub signature: Signature,
}

impl Envelope {
    /// Signs a new envelope.
    pub fn sign(
        key: &Keypair,
        netuid: NetUid,
        topic: Topic,
        round: u64,
        payload: Vec<u8>,
    ) -> Envelope {
        let author = key.hotkey();
        let msg = signing_bytes(netuid, topic, &author, round, &payload);
        Envelope {
            netuid,
            topic,
            author,
            round,
            payload,
            signature: key.sign(Domain::Gossip, &msg),
        }
    }

    /// The bytes the author signs: everything but the signature, with the payload hashed.
    pub fn signing_bytes(&self) -> Vec<u8> {
        signing_bytes(
            self.netuid,
            self.topic,
            &self.author,
            self.round,
            &self.payload,
        )
    }

    /// Checks the author's signature.
    pub fn verify(&self) -> Result<(), SignatureError> {
        sr25519::verify(
            &self.author,
            Domain::Gossip,
            &self.signing_bytes(),
            &self.signature,
        )
    }
}

fn signing_bytes(
    netuid: NetUid,
    topic: Topic,
    author: &Hotkey,
    round: u64,
    payload: &[u8],
) -> Vec<u8> {
    encode(&(netuid, topic, author, round, Hash::of(payload)))
}

/// A hotkey's signed statement that a libp2p peer id is its own, exchanged on connect.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct PeerBinding {
    /// The subnet.
    pub netuid: NetUid,
    /// The hotkey that owns the peer.
    pub hotkey: Hotkey,
    /// The libp2p peer id, as bytes.
    pub peer_id: Vec<u8>,
    /// sr25519 signature in [`Domain::PeerIdentity`] over `(netuid, peer_id)`.
    pub signature: Signature,
}

impl PeerBinding {
    /// Signs a binding of `peer` to `key`'s hotkey.
    pub fn sign(key: &Keypair, netuid: NetUid, peer: &PeerId) -> PeerBinding {
        let peer_id = peer.to_bytes();
        let signature = key.sign(Domain::PeerIdentity, &encode(&(netuid, &peer_id)));
        PeerBinding {
            netuid,
            hotkey: key.hotkey(),
            peer_id,
            signature,
        }
    }

    /// Checks that the binding is for `netuid`, names `remote` (so a binding cannot be replayed
    /// by another peer) and carries a valid signature.
    pub fn verify(&self, netuid: NetUid, remote: &PeerId) -> Result<(), &'static str> {
        if self.netuid != netuid {
            return Err("wrong_netuid");
        }
        if self.peer_id != remote.to_bytes() {
            return Err("binding_for_other_peer");
        }
        sr25519::verify(
            &self.hotkey,
            Domain::PeerIdentity,
            &encode(&(self.netuid, &self.peer_id)),
            &self.signature,
        )
        .map_err(|_| "bad_signature")
    }
}

/// The latest snapshot a node holds: its height, the blob that holds it and the certificate
/// that binds it (opaque here; the node checks it).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SnapshotInfo {
    /// The finalized height of the snapshot.
    pub height: u64,
    /// The blob holding the snapshot bytes.
    pub blob: Hash,
    /// The certificate of the block at that height.
    pub certificate: Vec<u8>,
}

/// The request-response protocols.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Identity binding, both ways, on connect.
    Hello,
    /// Certified blocks by height range, and single blocks not yet final.
    Sync,
    /// Content by hash.
    Blob,
    /// The latest snapshot's description.
    Snapshot,
    /// Consensus certificates a validator lacks (view synchronization), answered to the
    /// asker only, and only to validators.
    Certificates,
    /// A consensus message addressed to one validator (a finalize vote to its view's
    /// collectors), between validators only, checked exactly as consensus gossip is.
    Direct,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 6] = [
        Protocol::Hello,
        Protocol::Sync,
        Protocol::Blob,
        Protocol::Snapshot,
        Protocol::Certificates,
        Protocol::Direct,
    ];

    /// The short name used in protocol strings and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Hello => "hello",
            Protocol::Sync => "sync",
            Protocol::Blob => "blob",
            Protocol::Snapshot => "snapshot",
            Protocol::Certificates => "certificates",
            Protocol::Direct => "direct",
        }
    }

    /// The libp2p protocol string: `/platform/<netuid>/<name>/1`.
    pub fn stream_protocol(self, netuid: NetUid) -> StreamProtocol {
        StreamProtocol::try_from_owned(format!("/platform/{}/{}/1", netuid.0, self.name()))
            .expect("protocol strings start with a slash")
    }

    fn from_stream(p: &StreamProtocol) -> io::Result<Protocol> {
        let s = p.as_ref();
        Protocol::ALL
            .into_iter()
            .find(|k| s.ends_with(&format!("/{}/1", k.name())))
            .ok_or_else(|| invalid("unknown protocol"))
    }

    /// The largest request accepted.
    pub fn max_request(self) -> usize {
        match self {
            Protocol::Hello => 512,
            Protocol::Sync | Protocol::Blob | Protocol::Snapshot | Protocol::Certificates => 128,
            Protocol::Direct => MAX_DIRECT_BYTES + 64,
        }
    }

    /// The largest response accepted.
    pub fn max_response(self) -> usize {
        match self {
            Protocol::Hello => 512,
            Protocol::Sync => MAX_SYNC_RESPONSE + 1024,
            Protocol::Blob => MAX_BLOB_BYTES + 1024,
            Protocol::Snapshot => 64 * 1024,
            Protocol::Certificates => MAX_CERTIFICATES * (MAX_CERTIFICATE_BYTES + 8) + 64,
            Protocol::Direct => 64,
        }
    }
}

/// The most bytes of blocks one sync response carries; the requester asks again for the rest.
pub const MAX_SYNC_RESPONSE: usize = 4 * 1024 * 1024;
/// The most blocks one sync request may ask for.
pub const MAX_SYNC_BLOCKS: u64 = 256;
/// The largest blob served or fetched.
pub const MAX_BLOB_BYTES: usize = 32 * 1024 * 1024;

/// The largest encoded envelope a [`Protocol::Direct`] request carries: the consensus
/// topic's own cap.
pub const MAX_DIRECT_BYTES: usize = 20 * 1024;

/// The most certificates one answer carries.
pub const MAX_CERTIFICATES: usize = 4;
/// The largest encoded certificate served or accepted (the consensus layer's message cap).
pub const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;

/// Which consensus certificates a validator asks for. Opaque to the network: the node's
/// [`crate::Provider`] answers, and the asker's consensus engine checks what comes back.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub enum CertificateAsk {
    /// The notarization or finalization of the proposal with this digest.
    Proposal(Hash),
    /// The certificates of a view of an epoch (or the latest finalization, once the responder
    /// finalized past it).
    View {
        /// The epoch.
        epoch: u64,
        /// The view.
        view: u64,
    },
}

/// A request on one of the [`Protocol`]s.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Request {
    /// "Here is who I am; who are you?"
    Hello(PeerBinding),
    /// Certified blocks with heights in `from..=to`.
    Sync {
        /// First height.
        from: u64,
        /// Last height (inclusive).
        to: u64,
    },
    /// The blob with this blake3 hash.
    Blob(Hash),
    /// The latest snapshot's description.
    Snapshot,
    /// Consensus certificates.
    Certificates(CertificateAsk),
    /// An encoded [`Envelope`] on the consensus topic, for the receiver only.
    Direct(Vec<u8>),
    /// The encoded block at `height` whose header hashes to `header`, before it is final (a
    /// validator that restarted, or missed its announcement, must verify it to build on it).
    Block {
        /// Its height.
        height: u64,
        /// Its header's hash (the proposal's payload).
        header: Hash,
    },
}

impl Request {
    /// The protocol the request travels on.
    pub fn protocol(&self) -> Protocol {
        match self {
            Request::Hello(_) => Protocol::Hello,
            Request::Sync { .. } => Protocol::Sync,
            Request::Blob(_) => Protocol::Blob,
            Request::Snapshot => Protocol::Snapshot,
            Request::Certificates(_) => Protocol::Certificates,
            Request::Direct(_) => Protocol::Direct,
            Request::Block { .. } => Protocol::Sync,
        }
    }
}

/// A response on one of the [`Protocol`]s.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Response {
    /// The responder's binding.
    Hello(PeerBinding),
    /// Encoded certified blocks, consecutive from the requested start; fewer than asked when the
    /// responder has no more or the size bound was reached.
    Blocks(Vec<Vec<u8>>),
    /// The blob's bytes, or `None` when the responder does not hold it.
    Blob(Option<Vec<u8>>),
    /// The latest snapshot, if the responder has one.
    Snapshot(Option<SnapshotInfo>),
    /// Encoded consensus certificates (at most [`MAX_CERTIFICATES`]), none when the responder
    /// has nothing for the ask.
    Certificates(Vec<Vec<u8>>),
    /// A direct message passed the receiver's checks.
    Received,
    /// The request was refused; the code says why (`rate_limited`, `banned`, `bad_range`, ...).
    Error(String),
}

impl Response {
    fn fits(&self, protocol: Protocol) -> bool {
        matches!(
            (self, protocol),
            (Response::Hello(_), Protocol::Hello)
                | (Response::Blocks(_), Protocol::Sync)
                | (Response::Blob(_), Protocol::Blob)
                | (Response::Snapshot(_), Protocol::Snapshot)
                | (Response::Certificates(_), Protocol::Certificates)
                | (Response::Received, Protocol::Direct)
                | (Response::Error(_), _)
        )
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads one frame: a u32 little-endian length, checked against `limit` before anything is
/// allocated, then that many bytes.
async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, limit: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(invalid(&format!(
            "frame of {len} bytes exceeds the limit of {limit}"
        )));
    }
    // Memory grows with what arrives, not with what the length prefix claims: a peer that
    // declares 32 MiB and sends nothing costs nothing.
    let mut buf = Vec::with_capacity(len.min(FRAME_CHUNK));
    io.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {len} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

/// The most a frame's buffer is given before its bytes arrive.
const FRAME_CHUNK: usize = 64 * 1024;

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| invalid("frame too large"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

/// The request-response codec: one length-prefixed Borsh value per stream direction, with the
/// protocol's size caps and strict decoding (no trailing bytes), and the variant checked
/// against the protocol it arrived on.
#[derive(Clone, Copy, Default, Debug)]
pub struct Codec;

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let p = Protocol::from_stream(protocol)?;
        let bytes = read_frame(io, p.max_request()).await?;
        let req: Request =
            decode("request", &bytes, p.max_request()).map_err(|e| invalid(&e.to_string()))?;
        if req.protocol() != p {
            return Err(invalid("request does not belong to the protocol"));
        }
        Ok(req)
    }

    async fn read_response<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let p = Protocol::from_stream(protocol)?;
        let bytes = read_frame(io, p.max_response()).await?;
        let res: Response =
            decode("response", &bytes, p.max_response()).map_err(|e| invalid(&e.to_string()))?;
        if !res.fits(p) {
            return Err(invalid("response does not belong to the protocol"));
        }
        Ok(res)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode(&req)).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode(&res)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use libp2p::request_response::Codec as _;

    fn key(seed: u8) -> Keypair {
        Keypair::from_seed(&[seed; 32])
    }

    #[test]
    fn envelope_signature_covers_every_field() {
        let k = key(1);
        let e = Envelope::sign(&k, NetUid(1), Topic::Consensus, 7, b"vote".to_vec());
        e.verify().unwrap();
        let mut other = e.clone();
        other.round = 8;
        assert!(other.verify().is_err());
        let mut other = e.clone();
        other.topic = Topic::Attestations;
        assert!(other.verify().is_err());
        let mut other = e.clone();
        other.payload.push(0);
        assert!(other.verify().is_err());
        let mut other = e;
        other.netuid = NetUid(2);
        assert!(other.verify().is_err());
    }

    #[test]
    fn a_frame_shorter_than_its_prefix_fails_without_taking_the_claimed_memory() {
        // Claims 30 MiB (under the limit), sends 5 bytes, then the stream ends.
        let mut bytes = (30u32 << 20).to_le_bytes().to_vec();
        bytes.extend(b"hello");
        let mut io = futures::io::Cursor::new(bytes);
        let err = block_on(read_frame(&mut io, 32 << 20)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("after 5 of"), "{err}");
        // A whole frame reads back; a frame over the limit is refused before any read.
        let mut whole = 5u32.to_le_bytes().to_vec();
        whole.extend(b"hello");
        let mut io = futures::io::Cursor::new(whole);
        assert_eq!(block_on(read_frame(&mut io, 16)).unwrap(), b"hello");
        let mut io = futures::io::Cursor::new(100u32.to_le_bytes().to_vec());
        assert!(block_on(read_frame(&mut io, 16)).is_err());
    }

    #[test]
    fn binding_names_its_peer() {
        let k = key(2);
        let peer = PeerId::random();
        let b = PeerBinding::sign(&k, NetUid(1), &peer);
        b.verify(NetUid(1), &peer).unwrap();
        assert_eq!(
            b.verify(NetUid(1), &PeerId::random()),
            Err("binding_for_other_peer")
        );
        assert_eq!(b.verify(NetUid(2), &peer), Err("wrong_netuid"));
        let mut forged = b.clone();
        forged.hotkey = key(3).hotkey();
        assert_eq!(forged.verify(NetUid(1), &peer), Err("bad_signature"));
    }

    #[test]
    fn codec_caps_sizes_and_checks_the_protocol() {
        let sync = Protocol::Sync.stream_protocol(NetUid(1));
        let blob = Protocol::Blob.stream_protocol(NetUid(1));
        let mut buf = Vec::new();
        block_on(Codec.write_request(&sync, &mut buf, Request::Sync { from: 1, to: 9 })).unwrap();
        let got = block_on(Codec.read_request(&sync, &mut buf.as_slice())).unwrap();
        assert_eq!(got, Request::Sync { from: 1, to: 9 });
        // The same request on the blob protocol is refused.
        assert!(block_on(Codec.read_request(&blob, &mut buf.as_slice())).is_err());
        // A block not yet final is asked for on the sync protocol, and only there.
        let ask = Request::Block {
            height: 7,
            header: Hash::of(b"header"),
        };
        let mut buf = Vec::new();
        block_on(Codec.write_request(&sync, &mut buf, ask.clone())).unwrap();
        assert_eq!(
            block_on(Codec.read_request(&sync, &mut buf.as_slice())).unwrap(),
            ask
        );
        assert!(block_on(Codec.read_request(&blob, &mut buf.as_slice())).is_err());
        // A frame announcing more than the cap is refused before reading it.
        let mut huge = (u32::MAX).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        let err = block_on(Codec.read_request(&sync, &mut huge.as_slice())).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        // Trailing bytes inside a frame are refused.
        let mut body = encode(&Request::Snapshot);
        body.push(0);
        let mut framed = (body.len() as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(&body);
        let snap = Protocol::Snapshot.stream_protocol(NetUid(1));
        assert!(block_on(Codec.read_request(&snap, &mut framed.as_slice())).is_err());
    }
}
