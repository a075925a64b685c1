//! A deterministic simulator for the Raft core: N nodes, a simulated clock, a network that
//! drops, duplicates, delays, reorders and partitions messages, and crashes after which a
//! node keeps only what it had persisted.
//!
//! Everything random comes from one seed, and events at the same instant run in the order
//! they were scheduled, so a run replays exactly. After every event the simulator checks
//! the safety properties of Raft (Figure 3 of the paper) and panics, naming the broken
//! property, at the first violation:
//! - election safety: at most one leader per term;
//! - log matching: two logs that hold an entry with the same index and term are identical
//!   up to it (checked on what each node persisted);
//! - leader completeness: a new leader holds every entry committed so far;
//! - state machine safety: no two nodes apply different entries at one index;
//! - terms never decrease on any node, across crashes;
//! - linearizable reads: a read returns state that includes every write acknowledged
//!   before it was issued.
//!
//! The application on each node is a hash chain over the commands it applied: equal hashes
//! at an index mean equal histories. Its state is volatile except for snapshots, so a node
//! that restarts re-applies its log from its last snapshot.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use bytes::Bytes;
use raftchat::raft::{
    AppendResponse, Body, ConfChange, Config, Entry, HardState, LogIndex, Membership, Message,
    Node, Payload, ProposeError, Ready, Restored, Rng, RoleKind, SnapshotMeta, Term,
};

pub type Id = String;

/// How a simulation behaves; every field is drawn from the seed in random runs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    pub seed: u64,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// One-way delay in ms, uniform in this range (so messages reorder).
    pub delay_ms: (u64, u64),
    /// Probability that a message is held back 100 to 600 ms (long reordering).
    pub long_delay: f64,
    pub tick_ms: u64,
    /// A node compacts its log after this many applied entries (u64::MAX: never).
    pub snapshot_every: u64,
    /// Probability that a crash-enabled node dies between sending and persisting a Ready.
    pub crash_in_ready: f64,
    pub election_ticks: (u64, u64),
    pub heartbeat_ticks: u64,
    pub max_append_bytes: usize,
    pub max_inflight: usize,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// A crash resets the connections to the dead node, and peers that can still reach it
    /// hear of it at once (`Node::peer_lost`), as over TCP.
    pub connection_loss: bool,
}

impl SimConfig {
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            drop: 0.0,
            duplicate: 0.0,
            delay_ms: (1, 5),
            long_delay: 0.0,
            tick_ms: 10,
            snapshot_every: u64::MAX,
            crash_in_ready: 0.0,
            election_ticks: (15, 30),
            heartbeat_ticks: 3,
            max_append_bytes: 64 * 1024,
            max_inflight: 16,
            pre_vote: true,
            check_quorum: true,
            connection_loss: false,
        }
    }

    /// The unreliable network of the MIT 6.5840 labs: some requests and replies lost, a few
    /// delayed for long, all delayed a little.
    pub fn unreliable(mut self) -> SimConfig {
        self.drop = 0.1;
        self.delay_ms = (0, 27);
        self.long_delay = 0.05;
        self
    }
}

/// The application's state: how far it applied and a hash of everything it applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppState {
    pub index: LogIndex,
    pub hash: u64,
}

impl AppState {
    fn apply(&mut self, entry: &Entry) {
        assert_eq!(entry.index, self.index + 1, "entries applied out of order");
        self.index = entry.index;
        if let Payload::Command(data) = &entry.payload {
            self.hash = mix(self.hash, data);
        }
    }
}

fn mix(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash ^ 0x9E37_79B9_7F4A_7C15, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// What a node has on disk.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: SnapshotMeta,
    pub snapshot_state: AppState,
    pub entries: Vec<Entry>,
}

impl Disk {
    fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        let first = self.snapshot.index + 1;
        if index < first {
            return None;
        }
        self.entries.get((index - first) as usize).map(|e| e.term)
    }

    fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let first = self.snapshot.index + 1;
        if index < first {
            return None;
        }
        self.entries.get((index - first) as usize)
    }

    fn last_index(&self) -> LogIndex {
        self.snapshot.index + self.entries.len() as u64
    }
}

pub struct SimNode {
    pub id: Id,
    /// None while the node is down.
    pub raft: Option<Node>,
    pub disk: Disk,
    pub app: AppState,
    /// Snapshot data that arrived with an InstallSnapshot, until the core accepts it.
    staged: Option<(SnapshotMeta, AppState)>,
    /// Whether this node was in the initial configuration.
    bootstrap: bool,
    /// The highest term this node was ever seen in (terms never decrease).
    max_term: Term,
    /// Counts the node's starts, so each life has one clock.
    incarnation: u64,
}

/// A message on the wire, with the snapshot data beside an InstallSnapshot.
#[derive(Clone, Debug)]
struct Packet {
    msg: Message,
    snapshot: Option<AppState>,
}

#[derive(Debug)]
enum Event {
    /// A clock tick for one life of a node (ticks of an earlier life are dropped).
    Tick(Id, u64),
    Deliver(Packet),
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A client write awaiting its outcome.
#[derive(Clone, Debug)]
struct PendingWrite {
    node: Id,
    index: LogIndex,
    term: Term,
    data: Bytes,
}

/// A client read awaiting its answer.
#[derive(Clone, Debug)]
struct PendingRead {
    node: Id,
    /// The highest index of a write acknowledged before the read was issued.
    must_see: LogIndex,
    /// The read index, once the core granted it.
    index: Option<LogIndex>,
}

pub struct Sim {
    pub cfg: SimConfig,
    pub rng: Rng,
    pub now: u64,
    pub nodes: BTreeMap<Id, SimNode>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    /// Links that carry nothing: (from, to).
    cut: BTreeSet<(Id, Id)>,
    /// Nodes that may crash inside a Ready (random runs only).
    pub crash_enabled: bool,
    /// Messages handed to the network, by kind, for the message-count tests.
    pub sent: BTreeMap<&'static str, u64>,
    /// Every leader seen, by term.
    leaders: BTreeMap<Term, Id>,
    /// Every committed entry seen applied: index -> (term, hash of the state after it).
    committed: BTreeMap<LogIndex, (Term, u64)>,
    pub highest_committed: LogIndex,
    writes: Vec<PendingWrite>,
    /// Acknowledged writes: index -> data.
    pub acked: BTreeMap<LogIndex, Bytes>,
    /// Writes whose proposal was overwritten (never acknowledged).
    pub lost_writes: u64,
    reads: BTreeMap<u64, PendingRead>,
    next_read: u64,
    pub reads_served: u64,
    pub reads_failed: u64,
    next_command: u64,
    events: u64,
    /// The initial configuration.
    bootstrap: Membership,
    /// Print every event (set SIM_TRACE=1 to debug a seed).
    pub trace: bool,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        let ids: Vec<Id> = (1..=cfg.nodes).map(|i| format!("n{i}")).collect();
        let bootstrap = Membership::with_voters(ids.iter().map(|id| (id.clone(), addr(id))));
        let mut sim = Sim {
            rng: Rng::new(cfg.seed),
            cfg,
            now: 0,
            nodes: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            cut: BTreeSet::new(),
            crash_enabled: false,
            sent: BTreeMap::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            highest_committed: 0,
            writes: Vec::new(),
            acked: BTreeMap::new(),
            lost_writes: 0,
            reads: BTreeMap::new(),
            next_read: 1,
            reads_served: 0,
            reads_failed: 0,
            next_command: 1,
            events: 0,
            bootstrap,
            trace: false,
        };
        for id in ids {
            sim.nodes.insert(id.clone(), SimNode::new(id.clone(), true));
            sim.start(&id);
        }
        sim
    }

    fn raft_config(&self, id: &str) -> Config {
        let mut c = Config::new(id);
        c.election_ticks = self.cfg.election_ticks;
        c.heartbeat_ticks = self.cfg.heartbeat_ticks;
        c.max_append_bytes = self.cfg.max_append_bytes;
        c.max_inflight = self.cfg.max_inflight;
        c.pre_vote = self.cfg.pre_vote;
        c.check_quorum = self.cfg.check_quorum;
        c.seed = self.cfg.seed ^ self.now.wrapping_mul(31);
        c
    }

    /// Boots a node from its disk (a restart if it ran before).
    fn start(&mut self, id: &str) {
        let cfg = self.raft_config(id);
        let bootstrap = self.bootstrap.clone();
        let n = self.nodes.get_mut(id).expect("known node");
        assert!(n.raft.is_none(), "{id} is already running");
        let restored = Restored {
            hard_state: n.disk.hard_state.clone(),
            snapshot: n.disk.snapshot.clone(),
            entries: n.disk.entries.clone(),
            applied: n.disk.snapshot.index,
        };
        let raft = Node::new(cfg, restored, n.bootstrap.then_some(bootstrap)).expect("config");
        assert!(
            raft.term() >= n.max_term,
            "{id} restarted at term {} after being at term {}: a persisted term was lost",
            raft.term(),
            n.max_term
        );
        n.app = n.disk.snapshot_state;
        n.staged = None;
        n.raft = Some(raft);
        n.incarnation += 1;
        let life = n.incarnation;
        // Nodes tick at their own phase, as real clocks do.
        let phase = self.rng.range(0, self.cfg.tick_ms);
        self.schedule(self.now + phase + 1, Event::Tick(id.to_string(), life));
    }

    /// Kills a node: it keeps only its disk, and its clients never hear back.
    pub fn crash(&mut self, id: &str) {
        let n = self.nodes.get_mut(id).expect("known node");
        n.raft = None;
        n.staged = None;
        self.forget_requests_at(id);
        if self.cfg.connection_loss {
            let dead = id.to_string();
            for (other, n) in self.nodes.iter_mut() {
                let reachable = !self.cut.contains(&(other.clone(), dead.clone()));
                if let (Some(raft), true) = (n.raft.as_mut(), reachable) {
                    raft.peer_lost(&dead);
                }
            }
        }
    }

    pub fn restart(&mut self, id: &str) {
        if self.is_up(id) {
            self.crash(id);
        }
        self.start(id);
    }

    pub fn is_up(&self, id: &str) -> bool {
        self.nodes.get(id).is_some_and(|n| n.raft.is_some())
    }

    pub fn ids(&self) -> Vec<Id> {
        self.nodes.keys().cloned().collect()
    }

    pub fn node(&self, id: &str) -> &Node {
        self.nodes[id].raft.as_ref().expect("node is up")
    }

    // --- The network. ---

    /// Cuts every link to and from `id` (the MIT labs' disconnect).
    pub fn disconnect(&mut self, id: &str) {
        for other in self.ids() {
            if other != id {
                self.cut.insert((id.to_string(), other.clone()));
                self.cut.insert((other, id.to_string()));
            }
        }
    }

    pub fn connect(&mut self, id: &str) {
        self.cut.retain(|(a, b)| a != id && b != id);
    }

    /// Only nodes in the same group can talk; nodes in no group are cut off.
    pub fn partition(&mut self, groups: &[Vec<Id>]) {
        self.cut.clear();
        let group_of = |id: &Id| groups.iter().position(|g| g.contains(id));
        let ids = self.ids();
        for a in &ids {
            for b in &ids {
                if a != b && (group_of(a).is_none() || group_of(a) != group_of(b)) {
                    self.cut.insert((a.clone(), b.clone()));
                }
            }
        }
    }

    /// One direction only: `from` can no longer reach `to`.
    pub fn cut_link(&mut self, from: &str, to: &str) {
        self.cut.insert((from.to_string(), to.to_string()));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn set_reliable(&mut self) {
        self.cfg.drop = 0.0;
        self.cfg.duplicate = 0.0;
        self.cfg.long_delay = 0.0;
        self.cfg.delay_ms = (1, 5);
        self.crash_enabled = false;
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn transmit(&mut self, msg: Message) {
        *self.sent.entry(kind(&msg.body)).or_default() += 1;
        let snapshot = match &msg.body {
            Body::InstallSnapshot(meta) => {
                let disk = &self.nodes[&msg.from].disk;
                assert_eq!(
                    &disk.snapshot, meta,
                    "a leader offered a snapshot it does not have on disk"
                );
                Some(disk.snapshot_state)
            }
            _ => None,
        };
        if self.rng_chance(self.cfg.drop) {
            return;
        }
        let copies = if self.rng_chance(self.cfg.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let (lo, hi) = self.cfg.delay_ms;
            let mut delay = if hi > lo {
                self.rng.range(lo, hi + 1)
            } else {
                lo
            };
            if self.rng_chance(self.cfg.long_delay) {
                delay += self.rng.range(100, 600);
            }
            let packet = Packet {
                msg: msg.clone(),
                snapshot,
            };
            self.schedule(self.now + delay, Event::Deliver(packet));
        }
    }

    fn rng_chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() % 1_000_000) < (p * 1_000_000.0) as u64
    }

    // --- Running. ---

    /// Runs the simulation for `ms` of simulated time.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now + ms;
        while self.step_until(until) {}
        self.now = until;
    }

    /// Runs until `done` holds (checked after every event) or `ms` pass. Returns whether
    /// it held.
    pub fn run_until(&mut self, ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let until = self.now + ms;
        if done(self) {
            return true;
        }
        while self.step_until(until) {
            if done(self) {
                return true;
            }
        }
        self.now = until;
        done(self)
    }

    /// Runs one event due before `until`; false if there is none.
    fn step_until(&mut self, until: u64) -> bool {
        let Some(Reverse(next)) = self.queue.peek() else {
            return false;
        };
        if next.at > until {
            return false;
        }
        let Reverse(Scheduled { at, event, .. }) = self.queue.pop().expect("peeked");
        self.now = at;
        self.events += 1;
        let touched = match event {
            Event::Tick(id, life) => {
                let n = self.nodes.get_mut(&id).expect("known node");
                let Some(raft) = n.raft.as_mut().filter(|_| n.incarnation == life) else {
                    return true; // a crashed node stops ticking; restart schedules anew
                };
                raft.tick();
                let lead = raft.is_leader();
                if self.trace {
                    eprintln!(
                        "{:>6} tick {id}: {} term {}",
                        self.now,
                        raft.role(),
                        raft.term()
                    );
                }
                let next = self.now + self.cfg.tick_ms;
                self.schedule(next, Event::Tick(id.clone(), life));
                // A server batches what arrives together: a proposal may share the Ready
                // of the tick that just made this node leader.
                if lead && self.crash_enabled && self.rng_chance(0.2) {
                    let _ = self.propose_quietly(&id);
                }
                id
            }
            Event::Deliver(packet) => {
                let (from, to) = (packet.msg.from.clone(), packet.msg.to.clone());
                if self.cut.contains(&(from, to.clone())) {
                    return true;
                }
                let Some(n) = self.nodes.get_mut(&to) else {
                    return true;
                };
                let Some(raft) = n.raft.as_mut() else {
                    return true;
                };
                if let (Body::InstallSnapshot(meta), Some(state)) =
                    (&packet.msg.body, packet.snapshot)
                {
                    n.staged = Some((meta.clone(), state));
                }
                if self.trace {
                    eprintln!("{:>6} deliver {:?}", self.now, packet.msg);
                }
                raft.step(packet.msg);
                to
            }
        };
        self.process_ready(&touched);
        self.check_leaders();
        if self.events.is_multiple_of(64) {
            self.check_log_matching();
        }
        true
    }

    /// Does what the node's Ready asks, in the order the core prescribes.
    fn process_ready(&mut self, id: &str) {
        loop {
            let Some(raft) = self.nodes.get_mut(id).and_then(|n| n.raft.as_mut()) else {
                return;
            };
            if !raft.has_ready() {
                return;
            }
            let rd = raft.ready();
            self.handle_ready(id, rd);
        }
    }

    fn handle_ready(&mut self, id: &str, rd: Ready) {
        let must_persist = rd.must_persist();
        let Ready {
            messages,
            snapshot,
            entries,
            hard_state,
            persisted_messages,
            committed_entries,
            reads,
            soft_state,
            membership: _,
        } = rd;
        let durable_term = self.nodes[id].disk.hard_state.term;
        for m in messages {
            // What leaves before the fsync must not speak for a term that is not durable
            // (a pre-vote asks about the next term without claiming it).
            let claims = !matches!(m.body, Body::PreVote(_)) && m.term != 0;
            assert!(
                !claims || m.term <= durable_term,
                "{id} sent {:?} in term {} before term {} was durable",
                kind(&m.body),
                m.term,
                m.term
            );
            self.transmit(m);
        }
        if self.crash_enabled && must_persist && self.rng_chance(self.cfg.crash_in_ready) {
            // Died before the fsync: the disk keeps none of this Ready.
            self.crash(id);
            return;
        }
        let n = self.nodes.get_mut(id).expect("node");
        if let Some(meta) = snapshot {
            let (staged_meta, state) = n.staged.take().expect("snapshot data arrived with it");
            assert_eq!(
                staged_meta, meta,
                "installed a snapshot other than the one received"
            );
            assert_eq!(state.index, meta.index);
            n.disk.snapshot = meta;
            n.disk.snapshot_state = state;
            n.disk.entries.clear();
            n.app = state;
        }
        if let Some(first) = entries.first() {
            let keep = first.index - n.disk.snapshot.index - 1;
            n.disk.entries.truncate(keep as usize);
            n.disk.entries.extend(entries);
        }
        if let Some(hs) = hard_state {
            assert!(
                hs.term >= n.disk.hard_state.term,
                "{id}: persisted term went from {} to {}",
                n.disk.hard_state.term,
                hs.term
            );
            n.max_term = n.max_term.max(hs.term);
            n.disk.hard_state = hs;
        }
        for m in persisted_messages {
            self.transmit(m);
        }
        for entry in committed_entries {
            self.apply(id, &entry);
        }
        for read in reads {
            self.read_answered(id, read.id, read.index);
        }
        if let Some(soft) = soft_state
            && soft.role == RoleKind::Leader
        {
            self.check_new_leader(id);
        }
        let raft = self
            .nodes
            .get_mut(id)
            .and_then(|n| n.raft.as_mut())
            .expect("up");
        raft.advance();
        self.maybe_compact(id);
        self.serve_reads(id);
    }

    fn apply(&mut self, id: &str, entry: &Entry) {
        let n = self.nodes.get_mut(id).expect("node");
        n.app.apply(entry);
        let state = n.app;
        match self.committed.get(&entry.index) {
            Some(&(term, hash)) => {
                assert_eq!(
                    (term, hash),
                    (entry.term, state.hash),
                    "{id} applied a different entry at index {} than another node",
                    entry.index
                );
            }
            None => {
                if entry.index > 1
                    && let Some(&(_, prev_hash)) = self.committed.get(&(entry.index - 1))
                {
                    // The state before this entry must be the one everyone had.
                    let mut expect = AppState {
                        index: entry.index - 1,
                        hash: prev_hash,
                    };
                    expect.apply(entry);
                    assert_eq!(
                        expect.hash, state.hash,
                        "{id} applied index {} on a divergent state",
                        entry.index
                    );
                }
                self.committed.insert(entry.index, (entry.term, state.hash));
            }
        }
        self.highest_committed = self.highest_committed.max(entry.index);
        // Acknowledge the client whose write this is.
        let mut i = 0;
        while i < self.writes.len() {
            let w = &self.writes[i];
            if w.node == id && w.index == entry.index {
                let w = self.writes.swap_remove(i);
                let applied_data = match &entry.payload {
                    Payload::Command(d) => Some(d.clone()),
                    _ => None,
                };
                if w.term == entry.term {
                    assert_eq!(
                        applied_data.as_ref(),
                        Some(&w.data),
                        "same index and term but a different entry"
                    );
                    self.acked.insert(w.index, w.data);
                } else {
                    self.lost_writes += 1;
                }
            } else {
                i += 1;
            }
        }
    }

    fn maybe_compact(&mut self, id: &str) {
        let every = self.cfg.snapshot_every;
        let n = self.nodes.get_mut(id).expect("node");
        let Some(raft) = n.raft.as_mut() else { return };
        if every == u64::MAX || n.app.index < n.disk.snapshot.index + every {
            return;
        }
        if let Ok(meta) = raft.compact(n.app.index) {
            let drop = (meta.index - n.disk.snapshot.index) as usize;
            n.disk.entries.drain(..drop.min(n.disk.entries.len()));
            n.disk.snapshot = meta;
            n.disk.snapshot_state = n.app;
        }
    }

    // --- Clients. ---

    /// Proposes `n` commands at `id` before handling a Ready, as a server does with the
    /// requests that arrived together: they travel in the same Appends.
    pub fn propose_many(&mut self, id: &str, n: usize) -> Vec<LogIndex> {
        let mut indexes = Vec::new();
        for _ in 0..n {
            if let Ok((index, _)) = self.propose_quietly(id) {
                indexes.push(index);
            }
        }
        self.process_ready(id);
        indexes
    }

    /// Proposes a fresh command at `id`. Returns its (index, term) if `id` took it.
    pub fn propose(&mut self, id: &str) -> Result<(LogIndex, Term), ProposeError> {
        let result = self.propose_quietly(id);
        self.process_ready(id);
        result
    }

    fn propose_quietly(&mut self, id: &str) -> Result<(LogIndex, Term), ProposeError> {
        let data = Bytes::from(format!("c{}", self.next_command));
        self.next_command += 1;
        let raft = self.nodes.get_mut(id).and_then(|n| n.raft.as_mut());
        let Some(raft) = raft else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        let (index, term) = raft.propose(data.clone())?;
        self.writes.push(PendingWrite {
            node: id.to_string(),
            index,
            term,
            data,
        });
        Ok((index, term))
    }

    /// Proposes at whichever node is leader now.
    pub fn propose_at_leader(&mut self) -> Option<(LogIndex, Term)> {
        let leader = self.leader()?;
        self.propose(&leader).ok()
    }

    /// Issues a linearizable read at `id`.
    pub fn read(&mut self, id: &str) -> bool {
        let must_see = self.acked.keys().next_back().copied().unwrap_or(0);
        let rid = self.next_read;
        let Some(raft) = self.nodes.get_mut(id).and_then(|n| n.raft.as_mut()) else {
            return false;
        };
        if raft.read_index(rid).is_err() {
            return false;
        }
        self.next_read += 1;
        if self.trace {
            eprintln!("{:>6} read {rid} issued at {id}", self.now);
        }
        self.reads.insert(
            rid,
            PendingRead {
                node: id.to_string(),
                must_see,
                index: None,
            },
        );
        self.process_ready(id);
        true
    }

    fn read_answered(&mut self, id: &str, rid: u64, index: Option<LogIndex>) {
        if self.trace {
            eprintln!("{:>6} read {rid} at {id} answered: {index:?}", self.now);
        }
        let Some(read) = self.reads.get_mut(&rid) else {
            return;
        };
        assert_eq!(read.node, id, "read answered at another node");
        match index {
            Some(index) => read.index = Some(index),
            None => {
                self.reads.remove(&rid);
                self.reads_failed += 1;
            }
        }
    }

    /// Serves the granted reads whose index `id` has applied, and checks what they see.
    fn serve_reads(&mut self, id: &str) {
        let applied = self.nodes[id].app.index;
        let ready: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.node == id && r.index.is_some_and(|i| i <= applied))
            .map(|(k, _)| *k)
            .collect();
        for rid in ready {
            let read = self.reads.remove(&rid).expect("listed");
            assert!(
                applied >= read.must_see,
                "stale read at {id}: served at applied index {applied} (read index {:?}), \
                 but a write at index {} was acknowledged before the read began",
                read.index,
                read.must_see
            );
            self.reads_served += 1;
        }
    }

    /// Whether a write proposed at `node` at `index` still awaits its outcome.
    pub fn write_pending(&self, node: &str, index: LogIndex) -> bool {
        self.writes
            .iter()
            .any(|w| w.node == node && w.index == index)
    }

    /// Forgets reads and writes at nodes that crashed: their outcome is unknown.
    pub fn forget_requests_at(&mut self, id: &str) {
        self.writes.retain(|w| w.node != id);
        self.reads.retain(|_, r| r.node != id);
    }

    // --- Membership. ---

    /// Starts a brand-new node with an empty disk (not part of the initial configuration).
    pub fn spawn(&mut self, id: &str) {
        self.nodes
            .insert(id.to_string(), SimNode::new(id.to_string(), false));
        self.start(id);
    }

    pub fn change(&mut self, change: ConfChange) -> Result<LogIndex, ProposeError> {
        let leader = self
            .leader()
            .ok_or(ProposeError::NotLeader { leader: None })?;
        let raft = self.nodes.get_mut(&leader).and_then(|n| n.raft.as_mut());
        let (index, _) = raft.expect("leader is up").propose_change(change)?;
        self.process_ready(&leader);
        Ok(index)
    }

    pub fn transfer(&mut self, to: &str) -> Result<(), ProposeError> {
        let leader = self
            .leader()
            .ok_or(ProposeError::NotLeader { leader: None })?;
        let raft = self.nodes.get_mut(&leader).and_then(|n| n.raft.as_mut());
        raft.expect("up").transfer_leader(to)?;
        self.process_ready(&leader);
        Ok(())
    }

    // --- Observations. ---

    /// The leader of the highest term among running nodes, if any node leads in it.
    pub fn leader(&self) -> Option<Id> {
        self.nodes
            .values()
            .filter_map(|n| n.raft.as_ref())
            .filter(|r| r.is_leader())
            .max_by_key(|r| r.term())
            .map(|r| r.id().clone())
    }

    /// A leader that a majority of its configuration's running voters follow in its term.
    pub fn stable_leader(&self) -> Option<Id> {
        let leader = self.leader()?;
        let raft = self.node(&leader);
        let m = raft.membership();
        let following = m
            .voters
            .keys()
            .filter(|id| {
                self.nodes[*id]
                    .raft
                    .as_ref()
                    .is_some_and(|r| r.term() == raft.term() && r.leader() == Some(&leader))
            })
            .count();
        (following >= m.quorum()).then_some(leader)
    }

    pub fn term_of(&self, id: &str) -> Term {
        self.node(id).term()
    }

    pub fn applied(&self, id: &str) -> LogIndex {
        self.nodes[id].app.index
    }

    pub fn app(&self, id: &str) -> AppState {
        self.nodes[id].app
    }

    /// The leader has committed everything in its log, and every running member of its
    /// configuration has applied exactly that, with the same state.
    pub fn converged(&self) -> bool {
        let Some(leader) = self.stable_leader() else {
            return false;
        };
        let raft = self.node(&leader);
        let commit = raft.commit();
        let target = self.nodes[&leader].app;
        // The leader must have committed its whole log, its own no-op included: before
        // that, its commit index may lag what earlier leaders committed.
        if commit != raft.last_index() || target.index != commit {
            return false;
        }
        raft.membership().members().all(|id| {
            self.nodes
                .get(id)
                .is_some_and(|n| n.raft.is_some() && n.app == target)
        })
    }

    /// One line per node: what a person debugging a seed wants to see first.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for n in self.nodes.values() {
            let Some(r) = &n.raft else {
                out += &format!("  {}: down\n", n.id);
                continue;
            };
            let st = r.status();
            out += &format!(
                "  {}: {} term {} leader {:?} commit {} applied {} last {}/{} snap {} voters {:?} learners {:?} matched {:?}\n",
                n.id,
                st.role,
                st.term,
                st.leader,
                st.commit,
                n.app.index,
                st.last_index,
                st.last_term,
                st.snapshot_index,
                st.membership.voters.keys().collect::<Vec<_>>(),
                st.membership.learners.keys().collect::<Vec<_>>(),
                st.matched
            );
        }
        out
    }

    /// How many terms had a leader.
    pub fn elections(&self) -> usize {
        self.leaders.len()
    }

    pub fn total_sent(&self) -> u64 {
        self.sent.values().sum()
    }

    // --- Checks. ---

    fn check_leaders(&mut self) {
        for n in self.nodes.values() {
            if let Some(r) = &n.raft
                && r.is_leader()
            {
                let prior = self.leaders.entry(r.term()).or_insert_with(|| n.id.clone());
                assert_eq!(
                    prior,
                    &n.id,
                    "two leaders in term {}: {prior} and {}",
                    r.term(),
                    n.id
                );
            }
        }
        for n in self.nodes.values_mut() {
            if let Some(r) = &n.raft {
                assert!(
                    r.term() >= n.max_term,
                    "{}: term went back from {} to {}",
                    n.id,
                    n.max_term,
                    r.term()
                );
                n.max_term = r.term();
            }
        }
    }

    /// Leader completeness: a new leader's log holds every entry committed so far.
    fn check_new_leader(&self, id: &str) {
        let raft = self.node(id);
        let snapshot_index = self.nodes[id].disk.snapshot.index;
        for (&index, &(term, _)) in self.committed.range(snapshot_index + 1..) {
            let entry = raft.entry(index);
            assert_eq!(
                entry.map(|e| e.term),
                Some(term),
                "{id} became leader in term {} without committed entry {index} (term {term})",
                raft.term()
            );
        }
        if snapshot_index > 0
            && let Some(&(_, hash)) = self.committed.get(&snapshot_index)
        {
            assert_eq!(
                self.nodes[id].disk.snapshot_state.hash, hash,
                "{id}'s snapshot differs from the committed state"
            );
        }
    }

    /// Log matching, on what each node persisted: if two logs hold an entry with the same
    /// index and term, they are identical up to it.
    pub fn check_log_matching(&self) {
        let disks: Vec<(&Id, &Disk)> = self.nodes.values().map(|n| (&n.id, &n.disk)).collect();
        for (i, (a_id, a)) in disks.iter().enumerate() {
            for (b_id, b) in &disks[i + 1..] {
                let lo = a.snapshot.index.max(b.snapshot.index) + 1;
                let hi = a.last_index().min(b.last_index());
                // The highest index where both hold the same term...
                let Some(top) = (lo..=hi).rev().find(|&k| a.term_at(k) == b.term_at(k)) else {
                    continue;
                };
                // ...and everything below it must be the same entry.
                for k in lo..=top {
                    assert_eq!(
                        a.entry(k),
                        b.entry(k),
                        "log matching broken at index {k} between {a_id} and {b_id} \
                         (they agree at index {top})"
                    );
                }
            }
        }
    }

    /// After the faults are over: a leader exists, a new write commits everywhere, and all
    /// members converge on one state that holds every acknowledged write.
    pub fn check_liveness(&mut self, within_ms: u64) {
        self.trace = std::env::var("SIM_TRACE").is_ok();
        self.set_reliable();
        self.heal();
        let found = self.run_until(within_ms, |s| s.stable_leader().is_some());
        assert!(
            found,
            "no stable leader {within_ms} ms after the faults healed\n{}",
            self.describe()
        );
        // A write through the leader a majority follows must commit. One proposed just as
        // leadership changes may be overwritten (it was never acknowledged): try again.
        let mut acked = None;
        for _ in 0..10 {
            let Some(leader) = self.stable_leader() else {
                self.run_until(within_ms, |s| s.stable_leader().is_some());
                continue;
            };
            let Ok((index, _)) = self.propose(&leader) else {
                self.run_for(50);
                continue;
            };
            self.run_until(within_ms, |s| !s.write_pending(&leader, index));
            if self.acked.contains_key(&index) {
                acked = Some(index);
                break;
            }
        }
        let Some(index) = acked else {
            panic!(
                "no write committed {within_ms} ms after healing\n{}",
                self.describe()
            );
        };
        // A read through the leader must be answered. One issued just as leadership moves
        // fails (and says so); try again.
        let mut answered = false;
        for _ in 0..10 {
            self.run_until(within_ms, |s| s.stable_leader().is_some());
            let Some(leader) = self.stable_leader() else {
                continue;
            };
            let (served, failed) = (self.reads_served, self.reads_failed);
            assert!(
                self.read(&leader),
                "the healed leader {leader} refused a read"
            );
            self.run_until(within_ms, |s| {
                s.reads_served > served || s.reads_failed > failed
            });
            if self.reads_served > served {
                answered = true;
                break;
            }
        }
        assert!(
            answered,
            "no read was answered {within_ms} ms after healing\n{}",
            self.describe()
        );
        let done = self.run_until(within_ms, |s| s.converged());
        assert!(
            done,
            "the cluster did not converge {within_ms} ms after healing (last write at {index})\n{}",
            self.describe()
        );
        let max_acked = self.acked.keys().next_back().copied().unwrap_or(0);
        let leader = self.stable_leader().expect("converged");
        assert!(
            self.applied(&leader) >= max_acked,
            "an acknowledged write at {max_acked} is missing; leader {leader} applied {}\n{}",
            self.applied(&leader),
            self.describe()
        );
        self.check_log_matching();
    }
}

impl SimNode {
    fn new(id: Id, bootstrap: bool) -> SimNode {
        SimNode {
            id,
            raft: None,
            disk: Disk::default(),
            app: AppState::default(),
            staged: None,
            bootstrap,
            max_term: 0,
            incarnation: 0,
        }
    }
}

pub fn addr(id: &str) -> String {
    format!("sim://{id}")
}

fn kind(body: &Body) -> &'static str {
    match body {
        Body::PreVote(_) => "pre_vote",
        Body::PreVoteResponse { .. } => "pre_vote_response",
        Body::Vote(_) => "vote",
        Body::VoteResponse { .. } => "vote_response",
        Body::Append(_) => "append",
        Body::AppendResponse(AppendResponse::Rejected { .. }) => "append_reject",
        Body::AppendResponse(_) => "append_response",
        Body::Heartbeat { .. } => "heartbeat",
        Body::HeartbeatResponse { .. } => "heartbeat_response",
        Body::InstallSnapshot(_) => "install_snapshot",
        Body::TimeoutNow => "timeout_now",
        Body::ReadIndex { .. } => "read_index",
        Body::ReadIndexResponse { .. } => "read_index_response",
    }
}
