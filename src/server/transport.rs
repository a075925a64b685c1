//! Messages to peers: one task per peer, each with a bounded queue and one long-lived
//! client-streaming `Deliver` call, reconnecting with backoff when the peer is away.
//!
//! Raft tolerates lost messages, so the transport never blocks the driver: when a peer's
//! queue is full, or its connection is down, messages are dropped and the core resends
//! what matters. An InstallSnapshot message is not sent as is: its task streams the
//! snapshot file in chunks, the message riding on the last one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tracing::{debug, warn};

use super::handle::{Input, InputSender};
use super::wire;
use crate::proto::raft as pb;
use crate::proto::raft::raft_client::RaftClient;
use crate::raft::{Body, Membership, Message, NodeId, SnapshotMeta};
use crate::storage::node::latest_snapshot;
use crate::storage::snapshot::SnapshotReader;

/// Messages waiting for one peer; past this, new ones are dropped.
const QUEUE: usize = 4096;

struct Link {
    address: String,
    tx: mpsc::Sender<Message>,
}

/// The request metadata key on a peer stream that carries the sender's address.
pub const ADDRESS_KEY: &str = crate::proto::metadata::ADDRESS;

pub struct Transport {
    id: NodeId,
    faults: std::sync::Arc<super::faults::Faults>,
    /// This node's own address, announced to peers.
    address: String,
    /// Addresses peers announced that the configuration does not (yet) hold.
    learned: HashMap<NodeId, String>,
    runtime: Handle,
    links: HashMap<NodeId, Link>,
    snapshots: PathBuf,
    driver: InputSender,
}

impl Transport {
    pub fn new(
        id: NodeId,
        faults: std::sync::Arc<super::faults::Faults>,
        address: String,
        runtime: Handle,
        snapshots: PathBuf,
        driver: InputSender,
    ) -> Transport {
        Transport {
            id,
            faults,
            address,
            learned: HashMap::new(),
            runtime,
            links: HashMap::new(),
            snapshots,
            driver,
        }
    }

    /// Keeps one link per member of the configuration (other than this node), and per
    /// peer that announced itself.
    pub fn update(&mut self, membership: &Membership) {
        let mut wanted: HashMap<NodeId, String> = self.learned.clone();
        for (id, address) in membership.voters.iter().chain(&membership.learners) {
            wanted.insert(id.clone(), address.clone());
        }
        wanted.remove(&self.id);
        self.links
            .retain(|id, link| wanted.get(id) == Some(&link.address));
        for (id, address) in wanted {
            if !self.links.contains_key(&id) {
                self.connect(id, address);
            }
        }
    }

    /// A peer told us its address: make sure we can answer it.
    pub fn learn(&mut self, peer: &str, address: &str) {
        if peer == self.id || self.links.get(peer).is_some_and(|l| l.address == address) {
            return;
        }
        self.learned.insert(peer.to_string(), address.to_string());
        self.links.remove(peer);
        self.connect(peer.to_string(), address.to_string());
    }

    fn connect(&mut self, id: NodeId, address: String) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = PeerTask {
            faults: self.faults.clone(),
            peer: id.clone(),
            address: address.clone(),
            own_address: self.address.clone(),
            snapshots: self.snapshots.clone(),
            driver: self.driver.clone(),
        };
        self.runtime.spawn(task.run(rx));
        self.links.insert(id, Link { address, tx });
    }

    /// Hands a message to its peer's queue; drops it if the peer is unknown or behind.
    pub fn send(&self, msg: Message) {
        let Some(link) = self.links.get(&msg.to) else {
            debug!(to = %msg.to, "no address for a peer; message dropped");
            return;
        };
        match self.faults.fate(&msg.to) {
            super::faults::Fate::Deliver => {
                if link.tx.try_send(msg).is_err() {
                    debug!("queue to a peer is full; a message was dropped");
                }
            }
            super::faults::Fate::Drop => {}
            super::faults::Fate::Delay(d) => {
                // Held back on a timer of its own, so later messages can overtake it.
                let tx = link.tx.clone();
                self.runtime.spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = tx.try_send(msg);
                });
            }
        }
    }
}

struct PeerTask {
    faults: std::sync::Arc<super::faults::Faults>,
    peer: NodeId,
    address: String,
    own_address: String,
    snapshots: PathBuf,
    driver: InputSender,
}

impl PeerTask {
    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let endpoint = match Endpoint::from_shared(format!("http://{}", self.address)) {
            Ok(e) => e
                .connect_timeout(Duration::from_millis(500))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(1))
                .keep_alive_timeout(Duration::from_secs(2)),
            Err(e) => {
                warn!(peer = %self.peer, "bad peer address {}: {e}", self.address);
                return;
            }
        };
        let mut backoff = Duration::from_millis(20);
        // One snapshot transfer at a time: a retry while one streams would only compete.
        let sending = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            let client = RaftClient::new(endpoint.connect_lazy());
            let (stream_tx, stream_rx) = mpsc::channel::<pb::Message>(256);
            let mut call_client = client.clone();
            let mut request = tonic::Request::new(ReceiverStream::new(stream_rx));
            if let Ok(v) = self.own_address.parse() {
                request.metadata_mut().insert(ADDRESS_KEY, v);
            }
            let mut call = tokio::spawn(async move { call_client.deliver(request).await });
            let mut sent_any = false;
            let ended = loop {
                let msg = tokio::select! {
                    msg = rx.recv() => msg,
                    ended = &mut call => break ended,
                };
                let Some(msg) = msg else {
                    call.abort();
                    return; // the link was removed
                };
                if let Body::InstallSnapshot(meta) = &msg.body {
                    use std::sync::atomic::Ordering;
                    if sending.swap(true, Ordering::AcqRel) {
                        continue;
                    }
                    let task = SnapshotSend {
                        faults: self.faults.clone(),
                        sending: sending.clone(),
                        client: client.clone(),
                        peer: self.peer.clone(),
                        snapshots: self.snapshots.clone(),
                        driver: self.driver.clone(),
                    };
                    tokio::spawn(task.run(meta.clone(), msg));
                    continue;
                }
                if stream_tx.send(wire::to_wire(&msg)).await.is_err() {
                    break call.await; // the call ended: reconnect
                }
                sent_any = true;
            };
            if let Ok(Err(status)) = ended {
                debug!(peer = %self.peer, "link down: {}", status.message());
                // Refused or reset, not mere silence: the peer is most likely gone. If it
                // was the leader, the core need not wait out a whole election timeout.
                let _ = self.driver.send(Input::PeerLost {
                    peer: self.peer.clone(),
                });
            }
            backoff = if sent_any {
                Duration::from_millis(20)
            } else {
                (backoff * 2).min(Duration::from_millis(500))
            };
            tokio::time::sleep(backoff).await;
        }
    }
}

struct SnapshotSend {
    faults: std::sync::Arc<super::faults::Faults>,
    sending: std::sync::Arc<std::sync::atomic::AtomicBool>,
    client: RaftClient<tonic::transport::Channel>,
    peer: NodeId,
    snapshots: PathBuf,
    driver: InputSender,
}

impl SnapshotSend {
    async fn run(mut self, meta: SnapshotMeta, msg: Message) {
        let ok = match self.send(&meta, &msg).await {
            Ok(()) => true,
            Err(e) => {
                warn!(peer = %self.peer, index = meta.index, "snapshot transfer failed: {e}");
                false
            }
        };
        self.sending
            .store(false, std::sync::atomic::Ordering::Release);
        let _ = self.driver.send(Input::SnapshotSent {
            peer: self.peer,
            ok,
        });
    }

    async fn send(&mut self, meta: &SnapshotMeta, msg: &Message) -> Result<(), String> {
        let snapshots = self.snapshots.clone();
        let wanted = meta.clone();
        // Reading the file is blocking work: do it off the async threads, chunk by chunk.
        let (tx, rx) = mpsc::channel::<pb::SnapshotChunk>(4);
        let message = wire::to_wire(msg);
        let (faults, peer) = (self.faults.clone(), self.peer.clone());
        let reader = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let (path, stored) = latest_snapshot(&snapshots)
                .map_err(|e| e.to_string())?
                .ok_or("no snapshot on disk")?;
            if stored != wanted {
                return Err(format!(
                    "the snapshot on disk is for entry {}",
                    stored.index
                ));
            }
            let mut r = SnapshotReader::open(&path).map_err(|e| e.to_string())?;
            let mut offset = 0;
            let mut first = true;
            while let Some(data) = r.next_chunk().map_err(|e| e.to_string())? {
                let len = data.len() as u64;
                let chunk = pb::SnapshotChunk {
                    meta: first.then(|| wire::meta_to_wire(&wanted)),
                    offset,
                    data: data.into(),
                    done: false,
                    message: None,
                };
                first = false;
                offset += len;
                match faults.chunk_fate(&peer) {
                    super::faults::Fate::Deliver => {}
                    super::faults::Fate::Drop => return Err("the link is blocked".into()),
                    super::faults::Fate::Delay(d) => std::thread::sleep(d),
                }
                if tx.blocking_send(chunk).is_err() {
                    return Err("the transfer was cut".into());
                }
            }
            let last = pb::SnapshotChunk {
                meta: first.then(|| wire::meta_to_wire(&wanted)),
                offset,
                data: Default::default(),
                done: true,
                message: Some(message),
            };
            tx.blocking_send(last)
                .map_err(|_| "the transfer was cut".to_string())
        });
        let result = self.client.install_snapshot(ReceiverStream::new(rx)).await;
        reader.await.map_err(|e| e.to_string())??;
        result.map(|_| ()).map_err(|s| s.message().to_string())
    }
}
