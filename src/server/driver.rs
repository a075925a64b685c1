//! The driver: the one task that owns the Raft core and the node's storage, and does what
//! each `Ready` asks, in the order the core prescribes.
//!
//! The whole node runs on one thread (a current-thread runtime): the gRPC services, the
//! peer links and this task. A message goes from a socket to the core and from the core
//! to a socket without waking another thread; on a virtual machine each such wake costs
//! tens of microseconds. The disk waits with much work queued behind them (the fsync of a
//! large batch, a checkpoint's commit) run on a blocking thread while this one serves the
//! network, and so does a leader's applying of a large batch of committed entries; a small
//! batch is synced and applied in place, where the hand-off would cost more than it frees.
//! Before an fsync the driver yields once, so that the messages allowed out before it (a
//! leader's appends) are written to their sockets first.
//!
//! Each turn of its loop takes every input that is waiting (up to a bound), steps the core
//! with all of them, then handles one Ready: one fsync covers all the entries and votes
//! that arrived while the previous fsync ran (group commit).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot};
use tracing::{info, warn};

use super::aside::Aside;
use super::error::ServeError;
use super::handle::{Input, InputReceiver, InputSender, NodeStatus, Query};
use super::transport::Transport;
use crate::chat::{self, Command, Envelope, Outcome, Reply};
use crate::raft::{
    Entry, LogIndex, Node, Payload, ProposeError, ReadId, Ready, RoleKind, SnapshotMeta, Term,
};
use crate::storage::node::NodeStorage;
use crate::storage::snapshot::SealedSnapshot;
use crate::storage::state::{Applied, AppliedBatch};
use crate::storage::{Result as StorageResult, StorageError};

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

/// How often the driver makes applied state durable, at most.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// A read whose ReadIndex never came back (a lost message) is failed after this long.
const READ_EXPIRY: Duration = Duration::from_secs(10);
/// From this many entries in one Ready, the log's fsync waits on a blocking thread while
/// this one serves the network. Below it (one client, or a follower of one), the hand-off
/// to that thread and back would cost more than it frees: measured at 1, 64 and 256 clients.
const SYNC_ASIDE_FROM: usize = 4;
/// From this many committed entries in one Ready, a leader applies them on a blocking
/// thread while this one serves the network: the hand-off costs two wake-ups, and applying
/// a message some 15 microseconds.
const APPLY_ASIDE_FROM: usize = 8;
/// The most inputs taken in one turn, so ticks and Readies are never starved.
const MAX_BATCH: usize = 4096;

pub struct DriverConfig {
    pub tick: Duration,
    pub snapshot_every: u64,
    /// How long without a leader before refusals say there is no quorum.
    pub no_quorum_after: Duration,
}

type Waiter = oneshot::Sender<Result<(Outcome, LogIndex), ServeError>>;

pub struct Driver {
    node: Node,
    storage: NodeStorage,
    transport: Transport,
    inputs: InputReceiver,
    /// For work done on other threads to report back (snapshots written).
    own_inputs: InputSender,
    /// A snapshot is being written off this thread.
    snapshotting: bool,
    status: Arc<RwLock<NodeStatus>>,
    messages: broadcast::Sender<chat::Message>,
    cfg: DriverConfig,
    /// Proposals waiting to be applied: index -> (term proposed in, reply).
    waiters: HashMap<LogIndex, (Term, Waiter)>,
    /// Reads waiting for their read index, by read id.
    reads: HashMap<ReadId, (Instant, Query)>,
    /// Reads with a read index, waiting for the state to reach it.
    ready_reads: BTreeMap<LogIndex, Vec<(Instant, Query)>>,
    next_read: ReadId,
    last_checkpoint: Instant,
    role: RoleKind,
    term: Term,
    /// Received snapshots stored but not installed yet, by their metadata.
    staged: Vec<(SnapshotMeta, PathBuf)>,
    /// A storage failure met while serving a request: it stops the node.
    fatal: Option<StorageError>,
    /// Since when this node has known no leader: long enough, and it says there is no
    /// quorum rather than that an election is under way.
    leaderless_since: Option<Instant>,
    /// The leader this node knows of.
    leader: Option<String>,
    /// Whether the configuration in force holds this node: leaving it is worth a log
    /// line, while a joining node's snapshot from before its joining is not.
    member: bool,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: Node,
        storage: NodeStorage,
        transport: Transport,
        inputs: InputReceiver,
        own_inputs: InputSender,
        status: Arc<RwLock<NodeStatus>>,
        messages: broadcast::Sender<chat::Message>,
        cfg: DriverConfig,
    ) -> Driver {
        let (role, term) = (node.role(), node.term());
        let member = node.membership().contains(node.id());
        Driver {
            node,
            storage,
            transport,
            inputs,
            own_inputs,
            snapshotting: false,
            status,
            messages,
            cfg,
            waiters: HashMap::new(),
            reads: HashMap::new(),
            ready_reads: BTreeMap::new(),
            // Read ids differ between runs of the node: a leader's answer to a read forwarded
            // before a restart must not match a new one.
            next_read: (u64::from(rand_u32()) << 32) | 1,
            last_checkpoint: Instant::now(),
            role,
            term,
            staged: Vec::new(),
            fatal: None,
            leaderless_since: Some(Instant::now()),
            leader: None,
            member,
        }
    }

    /// Runs until shutdown. A storage failure stops the node: it can no longer promise
    /// that what it acknowledges is durable.
    pub async fn run(mut self) -> StorageResult<()> {
        self.transport.update(self.node.membership());
        self.publish_status();
        let mut next_tick = Instant::now() + self.cfg.tick;
        let timer = tokio::time::sleep_until(next_tick.into());
        tokio::pin!(timer);
        loop {
            let first = tokio::select! {
                biased;
                input = self.inputs.recv() => Some(input),
                () = &mut timer => None,
            };
            if let Some(input) = first {
                let Some(input) = input else {
                    return self.shutdown().await; // every sender is gone
                };
                let mut stop = !self.handle(input);
                for _ in 0..MAX_BATCH {
                    if stop {
                        break;
                    }
                    match self.inputs.try_recv() {
                        Ok(input) => stop = !self.handle(input),
                        Err(_) => break,
                    }
                }
                if let Some(e) = self.fatal.take() {
                    return Err(e);
                }
                if stop {
                    return self.shutdown().await;
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.node.tick();
                next_tick += self.cfg.tick;
                if next_tick < now {
                    // We fell behind (a long fsync): skip ticks rather than burst them.
                    next_tick = now + self.cfg.tick;
                }
                timer.as_mut().reset(next_tick.into());
                self.expire_reads();
            }
            self.process_ready().await?;
            self.maybe_checkpoint(false).await?;
            self.maybe_snapshot()?;
            self.publish_status();
        }
    }

    async fn shutdown(mut self) -> StorageResult<()> {
        self.process_ready().await?;
        self.maybe_checkpoint(true).await?;
        info!(term = self.node.term(), "stopped cleanly");
        Ok(())
    }

    /// Takes one input. Returns false on shutdown.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Peer(msg) => self.node.step(msg),
            Input::Snapshot { msg, staged } => {
                if let crate::raft::Body::InstallSnapshot(meta) = &msg.body {
                    self.staged.push((meta.clone(), staged));
                }
                self.node.step(msg);
            }
            Input::Propose { data, reply } => match self.node.propose(data) {
                Ok((index, term)) => {
                    self.waiters.insert(index, (term, reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(self.refusal(e)));
                }
            },
            Input::Dump(reply) => {
                let applied = self.storage.state().applied();
                let result = self
                    .storage
                    .state()
                    .query(|store| crate::chat::query::dump(store))
                    .map(|dump| (applied, dump))
                    .map_err(|e| ServeError::Internal(e.to_string()));
                let _ = reply.send(result);
            }
            Input::Read(query) => {
                let id = self.next_read;
                self.next_read += 1;
                match self.node.read_index(id) {
                    Ok(()) => {
                        self.reads.insert(id, (Instant::now(), query));
                    }
                    Err(e) => query(Err(self.refusal(e))),
                }
            }
            Input::Change { change, reply } => {
                let result = self
                    .node
                    .propose_change(change)
                    .map(|(index, _)| index)
                    .map_err(|e| self.refusal(e));
                let _ = reply.send(result);
            }
            Input::Transfer { target, reply } => {
                let result = self
                    .node
                    .transfer_leader(&target)
                    .map(|()| self.node.last_index())
                    .map_err(|e| self.refusal(e));
                let _ = reply.send(result);
            }
            Input::Compact { reply } => {
                let result = self
                    .snapshot_now()
                    .map_err(|e| ServeError::Internal(format!("compaction failed: {e}")));
                // Before the answer: whoever asks for the status next must see the snapshot.
                self.publish_status();
                let _ = reply.send(result);
            }
            Input::SnapshotSent { peer, ok } => self.node.report_snapshot(&peer, ok),
            Input::SnapshotWritten(result) => {
                self.snapshotting = false;
                if let Err(e) = result.and_then(|sealed| self.adopt_snapshot(sealed)) {
                    self.fatal = Some(e);
                }
            }
            Input::PeerAddress { peer, address } => self.transport.learn(&peer, &address),
            Input::PeerLost { peer } => self.node.peer_lost(&peer),
            Input::Shutdown => return false,
        }
        true
    }

    fn refusal(&self, e: ProposeError) -> ServeError {
        match e {
            ProposeError::NotLeader { leader: None }
                if self
                    .leaderless_since
                    .is_some_and(|t| t.elapsed() >= self.cfg.no_quorum_after) =>
            {
                let voters = self.node.membership().voters.len();
                ServeError::NoQuorum(format!(
                    "no quorum: no leader for {:.1}s; electing one needs {} of the {voters} voters",
                    self.leaderless_since
                        .map_or(0.0, |t| t.elapsed().as_secs_f64()),
                    voters / 2 + 1
                ))
            }
            ProposeError::NotLeader { leader } => ServeError::NotLeader(leader.and_then(|id| {
                let address = self.node.membership().address(&id)?.to_string();
                Some((id, address))
            })),
            ProposeError::Busy(why) => ServeError::Unavailable(why.to_string()),
            ProposeError::ChangeInProgress => ServeError::FailedPrecondition(e.to_string()),
            ProposeError::Invalid(why) => ServeError::Invalid(why),
        }
    }

    async fn process_ready(&mut self) -> StorageResult<()> {
        while self.node.has_ready() {
            let rd = self.node.ready();
            self.handle_ready(rd).await?;
            self.node.advance();
        }
        // Received snapshots the core did not take (it was already past them) go.
        let commit = self.node.commit();
        self.staged.retain(|(meta, path)| {
            let keep = meta.index > commit;
            if !keep {
                let _ = std::fs::remove_file(path);
            }
            keep
        });
        Ok(())
    }

    async fn handle_ready(&mut self, rd: Ready) -> StorageResult<()> {
        let Ready {
            messages,
            snapshot,
            entries,
            hard_state,
            persisted_messages,
            committed_entries,
            reads,
            soft_state,
            membership,
        } = rd;
        // 0. What may leave before the disk: a leader's appends go out while it writes.
        let sent_early = !messages.is_empty();
        for m in messages {
            self.transport.send(m);
        }
        if sent_early && (snapshot.is_some() || !entries.is_empty() || hard_state.is_some()) {
            // The peer links run on this thread: let them write before the fsync blocks it.
            tokio::task::yield_now().await;
        }
        // 1. Durable before anything that promises it.
        let staged = match &snapshot {
            None => None,
            Some(meta) => {
                info!(
                    index = meta.index,
                    term = meta.term,
                    "installing a snapshot from the leader"
                );
                let at = self.staged.iter().position(|(m, _)| m == meta);
                let at = at.ok_or_else(|| StorageError::Corrupt {
                    what: "snapshot",
                    path: self.storage.layout().snapshots(),
                    offset: 0,
                    detail: format!(
                        "entry {} was accepted but its data is not stored",
                        meta.index
                    ),
                })?;
                Some(self.staged.swap_remove(at).1)
            }
        };
        if let (Some(meta), Some(staged)) = (&snapshot, &staged) {
            // Building the state from the snapshot takes a while on a large one: it runs
            // on a blocking thread, and this one goes on answering status and health calls
            // (everything that needs the storage waits for this task).
            let install = self.storage.begin_install(meta, staged)?;
            let built = Aside::start(self.storage.layout().state(), move || install.run());
            let built = built.wait().await?;
            self.storage.finish_install(built)?;
        }
        let mut committed = committed_entries;
        // A leader with many entries to apply: they are applied on a blocking thread while
        // this one serves the clients, and the log's fsync runs on another. A follower's
        // thread has little else to do: it applies them itself while the fsync runs, which
        // spares the hand-off.
        let apply_aside = self.role == RoleKind::Leader && committed.len() >= APPLY_ASIDE_FROM;
        let mut applying = None;
        if snapshot.is_none() && hard_state.is_none() && entries.len() >= SYNC_ASIDE_FROM {
            // Many entries: several clients are waiting, and their next requests with them.
            // The fsync waits on a thread of its own while this one works.
            let sync = self.storage.append(&entries)?;
            let sync = Aside::start(self.storage.layout().log(), move || sync.run());
            // Meanwhile, apply what is already committed, which a majority holds durably:
            // the state becomes durable only at a checkpoint, after this fsync. Applied
            // here, it stops as soon as the fsync is done, so that its acknowledgements
            // wait for no more than the entry being applied.
            if apply_aside {
                applying = Some(self.apply_aside(std::mem::take(&mut committed))?);
            } else if !committed.is_empty() {
                let (used, applied) = self
                    .storage
                    .apply_while(&committed, || !sync.is_finished())?;
                self.deliver(&committed[..used], applied);
                committed.drain(..used);
            }
            sync.wait().await?;
        } else {
            self.storage.persist(&entries, hard_state.as_ref())?;
        }
        if snapshot.is_some() {
            // The state jumped: reads waiting for earlier indexes are now satisfied.
            self.serve_reads();
        }
        // 2. Then the promises, on their way before the apply holds the thread.
        let promised = !persisted_messages.is_empty();
        for m in persisted_messages {
            self.transport.send(m);
        }
        if apply_aside && applying.is_none() {
            applying = Some(self.apply_aside(std::mem::take(&mut committed))?);
        }
        if promised && !committed.is_empty() {
            tokio::task::yield_now().await;
        }
        // 3. Apply (what is left of it).
        if let Some(applying) = applying {
            let (batch, applied) = self.storage.finish_apply(applying.wait().await?)?;
            self.deliver(&batch, applied);
        }
        if !committed.is_empty() {
            self.apply(&committed)?;
        }
        // 4. Reads.
        for r in reads {
            let Some((_, query)) = self.reads.remove(&r.id) else {
                continue;
            };
            match r.index {
                Some(index) => self
                    .ready_reads
                    .entry(index)
                    .or_default()
                    .push((Instant::now(), query)),
                None => query(Err(ServeError::Unavailable(
                    "leadership changed while confirming the read; retry".into(),
                ))),
            }
        }
        self.serve_reads();
        if let Some(soft) = soft_state {
            self.on_role_change(soft.role, soft.term, soft.leader);
        }
        if let Some(m) = membership {
            let voters: Vec<&str> = m.voters.keys().map(String::as_str).collect();
            let learners: Vec<&str> = m.learners.keys().map(String::as_str).collect();
            info!(
                ?voters,
                ?learners,
                term = self.node.term(),
                "configuration changed"
            );
            let member = m.contains(self.node.id());
            if self.member && !member {
                info!(
                    term = self.node.term(),
                    "this node is no longer a member of the cluster"
                );
            }
            self.member = member;
            self.transport.update(&m);
        }
        Ok(())
    }

    /// Starts applying `entries` on a blocking thread: the state is away until
    /// [`NodeStorage::finish_apply`] takes the result.
    fn apply_aside(&mut self, entries: Vec<Entry>) -> StorageResult<Aside<AppliedBatch>> {
        let pending = self.storage.begin_apply(entries)?;
        Ok(Aside::start(self.storage.layout().state(), move || {
            Ok(pending.run())
        }))
    }

    fn apply(&mut self, entries: &[Entry]) -> StorageResult<()> {
        let applied = self.storage.apply(entries)?;
        self.deliver(entries, applied);
        Ok(())
    }

    /// Hands the outcomes of applied `entries` to the clients waiting on them, and sent
    /// messages to subscribers. `applied` is in log order, and lacks entries that were
    /// applied before (a replay).
    fn deliver(&mut self, entries: &[Entry], applied: Vec<Applied>) {
        let mut applied = applied.into_iter().peekable();
        for entry in entries {
            let outcome = applied
                .next_if(|a| a.index == entry.index)
                .and_then(|a| a.outcome);
            if let Some(Ok(Reply::Sent { id, time_ms })) = &outcome {
                self.publish_message(entry, *id, *time_ms);
            }
            let Some((term, waiter)) = self.waiters.remove(&entry.index) else {
                continue;
            };
            let result = match outcome {
                Some(outcome) if entry.term == term => Ok((outcome, entry.index)),
                // Another entry took that index: ours was lost with a leadership change.
                _ => Err(ServeError::Unavailable(
                    "leadership changed before the request committed; retry".into(),
                )),
            };
            let _ = waiter.send(result);
        }
    }

    /// Tells subscribers about a message that was just applied.
    fn publish_message(&self, entry: &Entry, id: u64, time_ms: u64) {
        let Payload::Command(data) = &entry.payload else {
            return;
        };
        if self.messages.receiver_count() == 0 {
            return; // nobody listens: spare decoding the entry again
        }
        if let Ok(Envelope {
            command: Command::Send(send),
            ..
        }) = Envelope::decode(data)
        {
            let _ = self.messages.send(chat::Message {
                id,
                from: send.user,
                to: send.to,
                text: send.text,
                time_ms,
                read: false,
            });
        }
    }

    fn serve_reads(&mut self) {
        let applied = self.storage.state().applied();
        let later = self.ready_reads.split_off(&(applied + 1));
        let now = std::mem::replace(&mut self.ready_reads, later);
        for (_, query) in now.into_values().flatten() {
            let result = self.storage.state().query(|store| {
                query(Ok(store));
                Ok(())
            });
            if let Err(e) = result {
                warn!("read failed: {e}");
            }
        }
    }

    fn expire_reads(&mut self) {
        let expired: Vec<ReadId> = self
            .reads
            .iter()
            .filter(|(_, (at, _))| at.elapsed() > READ_EXPIRY)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((_, query)) = self.reads.remove(&id) {
                query(Err(ServeError::Unavailable(
                    "the read was not confirmed".into(),
                )));
            }
        }
    }

    fn on_role_change(&mut self, role: RoleKind, term: Term, leader: Option<String>) {
        if role != self.role || term != self.term {
            match role {
                RoleKind::Leader => info!(term, "became leader"),
                RoleKind::Candidate => info!(term, "campaigning"),
                RoleKind::PreCandidate => {}
                RoleKind::Follower => info!(term, leader = leader.as_deref(), "following"),
            }
        }
        if self.role == RoleKind::Leader && role != RoleKind::Leader {
            // Whatever we proposed may or may not commit under the next leader; the
            // clients will retry with the same ids, and deduplication makes that safe.
            for (_, (_, waiter)) in self.waiters.drain() {
                let _ = waiter.send(Err(ServeError::Unavailable(
                    "leadership lost before the request committed; retry".into(),
                )));
            }
        }
        if leader != self.leader {
            // Reads waiting for the old leader to confirm them would wait in vain: the
            // clients retry, and find the new leader, or learn that there is none.
            for (_, (_, query)) in self.reads.drain() {
                query(Err(ServeError::Unavailable(
                    "the leader changed while confirming the read; retry".into(),
                )));
            }
        }
        self.role = role;
        self.term = term;
        if leader.is_none() {
            self.leaderless_since.get_or_insert_with(Instant::now);
        } else {
            self.leaderless_since = None;
        }
        self.leader = leader;
    }

    /// The commit waits on a blocking thread, so that the node's thread serves the network
    /// meanwhile: a checkpoint under load writes megabytes.
    async fn maybe_checkpoint(&mut self, force: bool) -> StorageResult<()> {
        if force || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            if let Some(pending) = self.storage.begin_checkpoint() {
                let path = self.storage.layout().state();
                let durable = Aside::start(path, move || pending.run()).wait().await?;
                self.storage.checkpointed(durable);
            }
            self.last_checkpoint = Instant::now();
        }
        Ok(())
    }

    /// Every `snapshot_every` entries, a snapshot: the state is pinned at a durable
    /// checkpoint here and written on a thread of its own, so that a large state does not
    /// hold up heartbeats and writes while it is exported.
    fn maybe_snapshot(&mut self) -> StorageResult<()> {
        let applied = self.storage.state().applied();
        if self.snapshotting || applied < self.storage.snapshot().index + self.cfg.snapshot_every {
            return Ok(());
        }
        let Some(meta) = self.node.snapshot_meta(applied) else {
            return Ok(());
        };
        let job = self.storage.begin_snapshot(meta)?;
        let done = self.own_inputs.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let _ = done.send(Input::SnapshotWritten(job.run()));
            });
        match spawned {
            Ok(_) => self.snapshotting = true,
            Err(e) => warn!("cannot start a thread to write a snapshot: {e}"),
        }
        Ok(())
    }

    /// Makes a written snapshot the node's, then lets the core forget the log behind it.
    fn adopt_snapshot(&mut self, sealed: SealedSnapshot) -> StorageResult<()> {
        let index = sealed.meta().index;
        if self.storage.finish_snapshot(sealed)?.is_none() {
            return Ok(()); // a newer one came in while it was written
        }
        if let Err(e) = self.node.compact(index) {
            warn!("the core kept its log: {e}");
        }
        info!(index, term = self.node.term(), "took a snapshot");
        Ok(())
    }

    /// Snapshots the state at the applied index, then lets the core forget the log
    /// behind it: only once the snapshot is durable.
    fn snapshot_now(&mut self) -> StorageResult<LogIndex> {
        let applied = self.storage.state().applied();
        if applied <= self.storage.snapshot().index {
            return Ok(self.storage.snapshot().index);
        }
        let meta = self
            .node
            .snapshot_meta(applied)
            .ok_or_else(|| StorageError::Database {
                path: self.storage.layout().state(),
                detail: format!("entry {applied} is no longer in the log"),
            })?;
        self.storage.take_snapshot(meta)?;
        if let Err(e) = self.node.compact(applied) {
            warn!("the core kept its log: {e}");
        }
        info!(index = applied, term = self.node.term(), "took a snapshot");
        Ok(applied)
    }

    fn publish_status(&self) {
        let st = self.node.status();
        let status = NodeStatus {
            id: st.id,
            role: st.role,
            term: st.term,
            leader: st.leader,
            commit: st.commit,
            applied: self.storage.state().applied(),
            last_index: st.last_index,
            snapshot_index: self.storage.snapshot().index,
            membership: st.membership,
            matched: st.matched.into_iter().collect(),
        };
        *self.status.write().expect("status lock") = status;
    }
}
