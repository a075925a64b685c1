//! A running node: one gRPC port serving the chat, peer and admin services (plus the
//! standard health and reflection services), a driver task that owns the Raft core and
//! the storage, and one task per peer link, all on one thread (see `driver` for why).
//!
//! Ownership: `run` owns the driver task and the server; the services hold a
//! [`NodeHandle`] (a channel into the driver and the shared status). Shutdown (SIGTERM or
//! Ctrl-C) stops accepting requests, gives open ones a short grace period, then stops the
//! driver, which makes the applied state durable before it exits.
//!
//! It does not forward writes to the leader: a follower answers with the leader's address
//! and the client library follows it (see `client`).

mod admin_service;
mod aside;
mod chat_service;
mod driver;
mod error;
pub mod faults;
pub mod handle;
mod http;
mod http_date;
mod passwords;
mod peer_service;
mod transport;
pub mod wire;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{info, warn};

use crate::proto;
use crate::raft::{self, Membership, Restored, RoleKind};
use crate::storage::node::NodeStorage;
pub use chat_service::INDEX_KEY;
pub use error::{LEADER_KEY, ServeError};
pub use handle::{NodeHandle, NodeStatus};

/// Entries applied between automatic snapshots, unless told otherwise (etcd's default too).
/// A snapshot exports the whole state, so its cost grows with the state while what it
/// frees (the log behind it) does not: at 10,000, a node holding a million messages would
/// write 250 MB to free 2.5 MB, and under sustained load the exports were a third of the
/// disk's writes. The price: up to this many entries held in memory, about 25 MB.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100_000;

/// Everything a node is started with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: String,
    pub data_dir: PathBuf,
    /// Where this node listens; also the address its peers and clients use.
    pub listen: String,
    /// The other members of a new cluster (ignored once the node has a configuration).
    pub peers: Vec<(String, String)>,
    /// An existing cluster's node to ask for membership, instead of bootstrapping.
    pub join: Option<String>,
    /// The election timeout is drawn from this range, in ms.
    pub election_ms: (u64, u64),
    pub heartbeat_ms: u64,
    /// Entries applied between automatic snapshots.
    pub snapshot_every: u64,
    /// How long a request may wait for a quorum before it fails as unavailable.
    pub request_timeout: Duration,
    pub segment_bytes: u64,
}

impl NodeConfig {
    pub fn new(id: &str, data_dir: PathBuf, listen: &str) -> NodeConfig {
        NodeConfig {
            id: id.to_string(),
            data_dir,
            listen: listen.to_string(),
            peers: Vec::new(),
            join: None,
            election_ms: (300, 600),
            heartbeat_ms: 50,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            request_timeout: Duration::from_secs(5),
            segment_bytes: 64 << 20,
        }
    }

    /// The clock tick: fine enough for the heartbeat and the election timeout.
    fn tick(&self) -> Duration {
        Duration::from_millis((self.heartbeat_ms / 5).clamp(1, 10))
    }

    fn raft_config(&self) -> Result<raft::Config, String> {
        let tick = self.tick().as_millis() as u64;
        let mut c = raft::Config::new(self.id.clone());
        c.election_ticks = (self.election_ms.0 / tick, self.election_ms.1 / tick);
        c.heartbeat_ticks = (self.heartbeat_ms / tick).max(1);
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| e.to_string())?;
        c.seed = u64::from_le_bytes(seed);
        c.validate().map_err(|e| {
            format!(
                "election timeout {}..{} ms and heartbeat {} ms: {e}",
                self.election_ms.0, self.election_ms.1, self.heartbeat_ms
            )
        })?;
        Ok(c)
    }
}

/// Runs a node until SIGTERM or Ctrl-C. An error is one line for a person: the node did
/// not start, or it stopped because its storage failed.
pub async fn run(cfg: NodeConfig) -> Result<(), String> {
    let raft_cfg = cfg.raft_config()?;
    let (storage, recovered) = NodeStorage::open(&cfg.data_dir, cfg.segment_bytes)
        .map_err(|e| format!("cannot start on {}: {e}", cfg.data_dir.display()))?;
    if let Some(torn) = &recovered.torn {
        warn!("{torn}");
    }
    info!(
        term = recovered.hard_state.term,
        snapshot = recovered.snapshot.index,
        applied = recovered.applied,
        entries = recovered.entries.len(),
        "recovered from disk"
    );
    let bootstrap = cfg.join.is_none().then(|| {
        let mut all = cfg.peers.clone();
        all.push((cfg.id.clone(), cfg.listen.clone()));
        Membership::with_voters(all)
    });
    let restored = Restored {
        hard_state: recovered.hard_state,
        snapshot: recovered.snapshot,
        entries: recovered.entries,
        applied: recovered.applied,
    };
    let node = raft::Node::new(raft_cfg, restored, bootstrap)?;
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;

    let (inputs_tx, inputs_rx) = mpsc::unbounded_channel();
    let st = node.status();
    let status = Arc::new(RwLock::new(NodeStatus {
        id: st.id,
        role: RoleKind::Follower,
        term: st.term,
        leader: None,
        commit: st.commit,
        applied: st.applied,
        last_index: st.last_index,
        snapshot_index: st.snapshot_index,
        membership: st.membership,
        matched: Vec::new(),
    }));
    let (messages_tx, _) = broadcast::channel(4096);
    let faults = Arc::new(faults::Faults::default());
    let handle = NodeHandle::new(
        faults.clone(),
        inputs_tx.clone(),
        status.clone(),
        messages_tx.clone(),
        cfg.request_timeout,
    );
    let snapshots = storage.layout().snapshots();
    let transport = transport::Transport::new(
        cfg.id.clone(),
        faults,
        cfg.listen.clone(),
        tokio::runtime::Handle::current(),
        snapshots.clone(),
        inputs_tx.clone(),
    );
    let driver = driver::Driver::new(
        node,
        storage,
        transport,
        inputs_rx,
        inputs_tx.clone(),
        status,
        messages_tx,
        driver::DriverConfig {
            tick: cfg.tick(),
            snapshot_every: cfg.snapshot_every,
            // Two of the longest election timeouts without a leader: not an election
            // running its course, but a majority out of reach.
            no_quorum_after: Duration::from_millis(2 * cfg.election_ms.1),
        },
    );
    let mut driver = tokio::spawn(driver.run());

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<proto::chat::chat_server::ChatServer<chat_service::ChatService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::DESCRIPTORS)
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let chat = Arc::new(chat_service::ChatService {
        node: handle.clone(),
        passwords: passwords::Passwords::start()
            .map_err(|e| format!("cannot start the password thread: {e}"))?,
    });
    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection)
        .add_service(proto::chat::chat_server::ChatServer::from_arc(chat.clone()))
        .add_service(proto::admin::admin_server::AdminServer::new(
            admin_service::AdminService {
                node: handle.clone(),
            },
        ))
        .add_service(proto::raft::raft_server::RaftServer::new(
            peer_service::PeerService {
                node: handle.clone(),
                snapshots,
            },
        ))
        .prepare();
    let server = http::serve(listener, http::NodeService { chat, routes }, async {
        let _ = stop_rx.await;
    });
    info!(listen = %cfg.listen, "serving");
    if let Some(seed) = cfg.join.clone() {
        tokio::spawn(join(cfg.clone(), seed, handle.clone()));
    }
    tokio::pin!(server);
    let (outcome, driver_result) = tokio::select! {
        () = &mut server => (Err("the server stopped".to_string()), None),
        r = &mut driver => (Ok(()), Some(r)),
        _ = shutdown_signal() => {
            info!("shutting down");
            let _ = stop_tx.send(());
            // Open streams (a subscriber) would hold the server forever: grant a grace
            // period, then go on regardless.
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut server).await;
            (Ok(()), None)
        }
    };
    let driver_result = match driver_result {
        Some(r) => r,
        None => {
            handle.send(handle::Input::Shutdown);
            driver.await
        }
    };
    match driver_result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("stopped: storage failed: {e}")),
        Err(_) => return Err("stopped: the driver panicked".into()),
    }
    outcome
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Asks the cluster at `seed` to add this node, until it is a member.
async fn join(cfg: NodeConfig, seed: String, node: NodeHandle) {
    use crate::proto::admin::admin_client::AdminClient;
    let mut target = seed.clone();
    let mut delay = Duration::from_millis(100);
    loop {
        if node.status().membership.contains(&cfg.id) {
            info!("joined the cluster");
            return;
        }
        let request = crate::proto::admin::AddNodeRequest {
            id: cfg.id.clone(),
            address: cfg.listen.clone(),
        };
        let attempt = async {
            let mut client = AdminClient::connect(format!("http://{target}"))
                .await
                .map_err(|e| tonic::Status::unavailable(format!("cannot reach it: {e}")))?;
            client.add_node(request).await
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(_)) => info!(via = %target, "asked to join the cluster"),
            Ok(Err(status)) => {
                if let Some(leader) = status
                    .metadata()
                    .get(LEADER_KEY)
                    .and_then(|v| v.to_str().ok())
                    .filter(|l| *l != target)
                {
                    target = leader.to_string();
                    continue;
                }
                if status.message().contains("already a member") {
                    // Added already: wait for the configuration to reach us.
                } else {
                    warn!(via = %target, "join refused: {}", status.message());
                    // A leader we were sent to may have died since: start over at the seed.
                    target = seed.clone();
                }
            }
            Err(_) => {
                warn!(via = %target, "no answer to the join request within 5s");
                target = seed.clone();
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
