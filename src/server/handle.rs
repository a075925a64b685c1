//! How the gRPC services reach the driver: inputs sent over a channel, answers over
//! one-shot channels, and the node's status shared for reading.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};
use tonic::Status;

use super::error::ServeError;
use crate::chat::{self, Outcome, Store, StoreError};
use crate::raft::{ConfChange, LogIndex, Membership, Message, NodeId, RoleKind, Term};

/// The way into the driver. Unbounded, so that a sender never waits: the services, the
/// peer links and the snapshot threads all hand over and go on, and the driver takes
/// whatever has gathered in one turn.
pub type InputSender = mpsc::UnboundedSender<Input>;
pub type InputReceiver = mpsc::UnboundedReceiver<Input>;

/// A read to run against the state once it is linearizable to do so.
pub type Query = Box<dyn FnOnce(Result<&dyn Store, ServeError>) + Send>;

pub enum Input {
    Peer(Message),
    /// An InstallSnapshot message whose snapshot is stored (not yet adopted) at `staged`.
    Snapshot {
        msg: Message,
        staged: std::path::PathBuf,
    },
    Propose {
        data: Bytes,
        reply: oneshot::Sender<Result<(Outcome, LogIndex), ServeError>>,
    },
    Read(Query),
    /// The canonical dump of this node's state as it stands, with its applied index
    /// (no ReadIndex: the lab compares replicas each as it is).
    Dump(oneshot::Sender<Result<(LogIndex, String), ServeError>>),
    Change {
        change: ConfChange,
        reply: oneshot::Sender<Result<LogIndex, ServeError>>,
    },
    Transfer {
        target: NodeId,
        reply: oneshot::Sender<Result<LogIndex, ServeError>>,
    },
    Compact {
        reply: oneshot::Sender<Result<LogIndex, ServeError>>,
    },
    SnapshotSent {
        peer: NodeId,
        ok: bool,
    },
    /// A snapshot of our own state, written off the driver thread, sealed and ready to
    /// adopt (or the error that stopped it).
    SnapshotWritten(Result<crate::storage::snapshot::SealedSnapshot, crate::storage::StorageError>),
    /// The connection to a peer was refused or broke.
    PeerLost {
        peer: NodeId,
    },
    /// A peer's address, announced on its stream: a node that joins knows no addresses
    /// until it learns the configuration, yet must answer the leader that contacts it.
    PeerAddress {
        peer: NodeId,
        address: String,
    },
    Shutdown,
}

/// What the node reports about itself (the admin service's status).
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub id: NodeId,
    pub role: RoleKind,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: LogIndex,
    pub applied: LogIndex,
    pub last_index: LogIndex,
    pub snapshot_index: LogIndex,
    pub membership: Membership,
    pub matched: Vec<(NodeId, LogIndex)>,
}

impl NodeStatus {
    pub fn leader_address(&self) -> Option<(String, String)> {
        let leader = self.leader.clone()?;
        let address = self.membership.address(&leader)?.to_string();
        Some((leader, address))
    }
}

#[derive(Clone)]
pub struct NodeHandle {
    /// The network faults in force on this node's peer traffic.
    pub faults: Arc<super::faults::Faults>,
    /// Bytes received so far of a snapshot still streaming in (0 when none is).
    pub receiving: Arc<std::sync::atomic::AtomicU64>,
    inputs: InputSender,
    status: Arc<RwLock<NodeStatus>>,
    messages: broadcast::Sender<chat::Message>,
    timeout: Duration,
}

fn stopped() -> Status {
    Status::unavailable("the node is shutting down")
}

impl NodeHandle {
    pub fn new(
        faults: Arc<super::faults::Faults>,
        inputs: InputSender,
        status: Arc<RwLock<NodeStatus>>,
        messages: broadcast::Sender<chat::Message>,
        timeout: Duration,
    ) -> NodeHandle {
        NodeHandle {
            faults,
            receiving: Arc::default(),
            inputs,
            status,
            messages,
            timeout,
        }
    }

    pub fn send(&self, input: Input) -> bool {
        self.inputs.send(input).is_ok()
    }

    pub fn status(&self) -> NodeStatus {
        self.status.read().expect("status lock").clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<chat::Message> {
        self.messages.subscribe()
    }

    /// Waits for an answer, or says that none came in time.
    async fn wait<T>(
        &self,
        rx: oneshot::Receiver<Result<T, ServeError>>,
        what: &str,
    ) -> Result<T, Status> {
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result.map_err(Status::from),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(Status::unavailable(format!(
                "no quorum: the {what} was not committed within {:.1}s (it may still be applied; \
                 retry with the same request id)",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    /// Proposes an encoded chat command and waits for its outcome and the log index it
    /// committed at.
    pub async fn propose(&self, data: Vec<u8>) -> Result<(Outcome, LogIndex), Status> {
        let (reply, rx) = oneshot::channel();
        let data = Bytes::from(data);
        if !self.send(Input::Propose { data, reply }) {
            return Err(stopped());
        }
        self.wait(rx, "request").await
    }

    /// Runs `f` against the state once a ReadIndex proves it up to date.
    pub async fn query<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let query: Query = Box::new(move |store| {
            let result = store.and_then(|s| f(s).map_err(|e| ServeError::Internal(e.to_string())));
            let _ = reply.send(result);
        });
        if !self.send(Input::Read(query)) {
            return Err(stopped());
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result.map_err(Status::from),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(Status::unavailable(format!(
                "no quorum: the leader could not confirm a read within {:.1}s",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    /// This node's applied index and the canonical dump of its state there.
    pub async fn dump(&self) -> Result<(LogIndex, String), Status> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Input::Dump(reply)) {
            return Err(stopped());
        }
        match rx.await {
            Ok(result) => result.map_err(Status::from),
            Err(_) => Err(stopped()),
        }
    }

    pub async fn change(&self, change: ConfChange) -> Result<LogIndex, Status> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Input::Change { change, reply }) {
            return Err(stopped());
        }
        self.wait(rx, "membership change").await
    }

    pub async fn transfer(&self, target: NodeId) -> Result<LogIndex, Status> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Input::Transfer { target, reply }) {
            return Err(stopped());
        }
        self.wait(rx, "leadership transfer").await
    }

    pub async fn compact(&self) -> Result<LogIndex, Status> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Input::Compact { reply }) {
            return Err(stopped());
        }
        self.wait(rx, "compaction").await
    }
}
