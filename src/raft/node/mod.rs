//! One Raft node as a pure state machine: inputs are ticks, messages and requests; outputs
//! are collected into a [`Ready`]. The driver owns the clock, the disk and the network.
//!
//! The role is a closed enum of role types. Role-only state (a candidate's votes, a leader's
//! progress of each follower) lives in its role's type, so a follower cannot reach a field
//! that only a leader has, and the transitions are written as functions between the types.
//!
//! The code is split by concern: `election` (timeouts, pre-votes, votes, role changes),
//! `replication` (Append, heartbeats, snapshots, commit), `reads` (ReadIndex) and
//! `membership` (configuration changes and leadership transfer).

mod election;
mod membership;
mod reads;
mod replication;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use bytes::Bytes;

use super::config::Config;
use super::log::RaftLog;
use super::message::{Body, Message, ReadId};
use super::progress::{Progress, ProgressState};
use super::ready::{ReadState, Ready, SoftState};
use super::rng::{Rng, hash_str};
use super::types::{
    ConfChange, Entry, HardState, LogIndex, Membership, NodeId, Payload, RoleKind, SnapshotMeta,
    Term,
};
use reads::ReadQueue;

/// Why a request to the core was not taken. Grouped by what the caller should do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Send it to the leader instead (if one is known), or retry later.
    #[error("not the leader{}", .leader.as_ref().map(|l| format!(" (the leader is {l})")).unwrap_or_default())]
    NotLeader { leader: Option<NodeId> },
    /// Retry shortly: the leader is handing over, or has not committed in its term yet.
    #[error("the leader is busy: {0}")]
    Busy(&'static str),
    /// Another configuration change is still uncommitted; only one may be in flight.
    #[error("another membership change is in progress")]
    ChangeInProgress,
    /// The request itself is wrong and will never succeed.
    #[error("{0}")]
    Invalid(String),
}

/// What the application persisted, from which a node is rebuilt after a restart.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    pub hard_state: HardState,
    /// The last snapshot (the default for none).
    pub snapshot: SnapshotMeta,
    /// The log entries after the snapshot.
    pub entries: Vec<Entry>,
    /// The index the state machine had applied durably.
    pub applied: LogIndex,
}

/// A node's externally visible state, for status pages and tests.
#[derive(Clone, Debug)]
pub struct Status {
    pub id: NodeId,
    pub role: RoleKind,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: LogIndex,
    pub applied: LogIndex,
    pub last_index: LogIndex,
    pub last_term: Term,
    pub snapshot_index: LogIndex,
    pub membership: Membership,
    /// On a leader: the index each follower is known to hold.
    pub matched: BTreeMap<NodeId, LogIndex>,
}

enum Role {
    Follower(Follower),
    Candidate(Candidate),
    Leader(Leader),
}

#[derive(Default)]
struct Follower {
    leader: Option<NodeId>,
}

struct Candidate {
    /// A pre-candidate asks whether it could win, without raising its term.
    pre: bool,
    votes: BTreeMap<NodeId, bool>,
}

struct Leader {
    progress: BTreeMap<NodeId, Progress>,
    heartbeat_elapsed: u64,
    /// Ticks since the last CheckQuorum round.
    quorum_elapsed: u64,
    /// The index of this term's no-op: once committed, the leader knows its commit index.
    term_start: LogIndex,
    transfer: Option<Transfer>,
    reads: ReadQueue,
}

struct Transfer {
    target: NodeId,
    elapsed: u64,
}

pub struct Node {
    id: NodeId,
    cfg: Config,
    term: Term,
    vote: Option<NodeId>,
    log: RaftLog,
    role: Role,
    /// Ticks since the last sign of a leader (or since the campaign started).
    election_elapsed: u64,
    /// This round's randomized election timeout.
    election_timeout: u64,
    /// The timeout was cut short because the leader's connection was lost.
    leader_lost: bool,
    rng: Rng,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    reads: Vec<ReadState>,
    /// What the last Ready reported, to report only changes.
    last_hard_state: HardState,
    last_soft_state: SoftState,
    last_membership: Membership,
    /// The last index handed out for persistence by the Ready not yet advanced.
    handed_out: Option<LogIndex>,
}

impl Node {
    /// A node rebuilt from persisted state. `bootstrap` is the initial configuration of a
    /// new cluster, used only when nothing persisted says otherwise; a node joining an
    /// existing cluster passes none and waits to be contacted by the leader.
    pub fn new(
        cfg: Config,
        restored: Restored,
        bootstrap: Option<Membership>,
    ) -> Result<Node, String> {
        cfg.validate()?;
        let Restored {
            hard_state,
            mut snapshot,
            entries,
            applied,
        } = restored;
        // The initial configuration is the one in force at index 0: it stays the base under
        // any membership entries in the log, until a snapshot carries a later one.
        if snapshot.index == 0
            && snapshot.membership.voters.is_empty()
            && let Some(initial) = bootstrap
        {
            snapshot.membership = initial;
        }
        let log = RaftLog::restore(snapshot, entries, applied, applied);
        let mut rng = Rng::new(cfg.seed ^ hash_str(&cfg.id));
        let election_timeout = rng.range(cfg.election_ticks.0, cfg.election_ticks.1);
        let last_membership = log.membership().clone();
        let mut node = Node {
            id: cfg.id.clone(),
            term: hard_state.term,
            vote: hard_state.vote.clone(),
            log,
            role: Role::Follower(Follower::default()),
            election_elapsed: 0,
            election_timeout,
            leader_lost: false,
            rng,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            reads: Vec::new(),
            last_hard_state: hard_state,
            last_soft_state: SoftState {
                role: RoleKind::Follower,
                term: 0,
                leader: None,
            },
            last_membership,
            handed_out: None,
            cfg,
        };
        node.last_soft_state = node.soft_state();
        Ok(node)
    }

    pub fn id(&self) -> &NodeId {
        &self.id
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn role(&self) -> RoleKind {
        match &self.role {
            Role::Follower(_) => RoleKind::Follower,
            Role::Candidate(c) if c.pre => RoleKind::PreCandidate,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
        }
    }

    /// The leader this node knows of in its current term.
    pub fn leader(&self) -> Option<&NodeId> {
        match &self.role {
            Role::Follower(f) => f.leader.as_ref(),
            Role::Candidate(_) => None,
            Role::Leader(_) => Some(&self.id),
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    pub fn membership(&self) -> &Membership {
        self.log.membership()
    }

    pub fn commit(&self) -> LogIndex {
        self.log.commit()
    }

    pub fn applied(&self) -> LogIndex {
        self.log.applied()
    }

    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// The entry at `index`, if the in-memory log still holds it.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.entry(index)
    }

    pub fn status(&self) -> Status {
        let matched = match &self.role {
            Role::Leader(l) => l
                .progress
                .iter()
                .map(|(id, p)| (id.clone(), p.matched))
                .chain([(self.id.clone(), self.log.persisted())])
                .collect(),
            _ => BTreeMap::new(),
        };
        Status {
            id: self.id.clone(),
            role: self.role(),
            term: self.term,
            leader: self.leader().cloned(),
            commit: self.log.commit(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            snapshot_index: self.log.snapshot().index,
            membership: self.log.membership().clone(),
            matched,
        }
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        if matches!(self.role, Role::Leader(_)) {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.election_timeout && self.can_campaign() {
                self.hup(false);
            }
        }
    }

    /// Proposes a command. On success it has been appended to the leader's log at the
    /// returned index and term; it is committed if an entry with that index and that term
    /// comes out in `committed_entries`, and lost if one with another term does.
    pub fn propose(&mut self, data: Bytes) -> Result<(LogIndex, Term), ProposeError> {
        self.propose_payload(Payload::Command(data))
    }

    fn propose_payload(&mut self, payload: Payload) -> Result<(LogIndex, Term), ProposeError> {
        let leader = self.leader_or_redirect()?;
        if leader.transfer.is_some() {
            return Err(ProposeError::Busy("leadership transfer in progress"));
        }
        let index = self.log.append(self.term, payload);
        if let Some(m) = self.changed_membership() {
            self.on_membership_change(m);
        }
        Ok((index, self.term))
    }

    /// Asks for a linearizable read. The answer comes back in a later Ready's `reads`.
    pub fn read_index(&mut self, id: ReadId) -> Result<(), ProposeError> {
        match &self.role {
            Role::Leader(_) => {
                self.leader_read(id, None);
                Ok(())
            }
            Role::Follower(Follower {
                leader: Some(leader),
            }) => {
                let leader = leader.clone();
                self.send(leader, 0, Body::ReadIndex { id });
                Ok(())
            }
            _ => Err(ProposeError::NotLeader { leader: None }),
        }
    }

    /// Proposes a membership change (one at a time).
    pub fn propose_change(&mut self, change: ConfChange) -> Result<(LogIndex, Term), ProposeError> {
        let next = self.check_change(&change)?;
        self.propose_payload(Payload::Membership(next))
    }

    /// What a snapshot of the state at `index` stands for (term and configuration there),
    /// so the application can write it before [`Node::compact`] forgets the entries.
    pub fn snapshot_meta(&self, index: LogIndex) -> Option<SnapshotMeta> {
        Some(SnapshotMeta {
            index,
            term: self.log.term(index)?,
            membership: self.log.membership_at(index).clone(),
        })
    }

    /// Forgets the log up to `index`, which the application has captured in a snapshot
    /// (at most its applied index, and never beyond what is durable). Returns what the
    /// snapshot stands for, to be stored with its data.
    pub fn compact(&mut self, index: LogIndex) -> Result<SnapshotMeta, String> {
        self.log.compact(index)?;
        Ok(self.log.snapshot().clone())
    }

    /// The application's word on a snapshot it was sending to `peer`: on failure the
    /// leader probes the follower again and sends a new one if it still needs it.
    pub fn report_snapshot(&mut self, peer: &str, success: bool) {
        if let Role::Leader(l) = &mut self.role
            && let Some(p) = l.progress.get_mut(peer)
            && matches!(p.state, ProgressState::Snapshot(_))
            && !success
        {
            p.become_probe();
        }
    }

    /// Starts an election now, as if the election timer had fired (a leader ignores it).
    pub fn campaign(&mut self) {
        if self.can_campaign() && !self.is_leader() {
            self.hup(false);
        }
    }

    /// Takes one message from a peer.
    pub fn step(&mut self, msg: Message) {
        if msg.to != self.id || msg.from == self.id {
            return;
        }
        if msg.term == 0 {
            return self.step_termless(msg);
        }
        if msg.term > self.term {
            match &msg.body {
                // A pre-vote is a question about the future: it changes no one's term.
                Body::PreVote(_) | Body::PreVoteResponse { granted: true } => {}
                // The leader lease: while we hear from a leader, a campaign is ignored
                // outright, so a node that was cut off cannot depose it (§9.6).
                Body::Vote(c) if !c.transfer && self.in_lease() => return,
                body => {
                    let leader = match body {
                        Body::Append(_) | Body::Heartbeat { .. } | Body::InstallSnapshot(_) => {
                            Some(msg.from.clone())
                        }
                        _ => None,
                    };
                    self.become_follower(msg.term, leader);
                }
            }
        } else if msg.term < self.term {
            return self.step_stale(msg);
        }
        match msg.body {
            Body::PreVote(c) => self.handle_pre_vote(msg.from, msg.term, c),
            Body::Vote(c) => self.handle_vote(msg.from, c),
            Body::PreVoteResponse { granted } => {
                self.handle_campaign_response(msg.from, msg.term, true, granted)
            }
            Body::VoteResponse { granted } => {
                self.handle_campaign_response(msg.from, msg.term, false, granted)
            }
            Body::Append(append) => {
                self.follow(&msg.from);
                self.handle_append(msg.from, append);
            }
            Body::Heartbeat { commit, read_seq } => {
                self.follow(&msg.from);
                self.handle_heartbeat(msg.from, commit, read_seq);
            }
            Body::InstallSnapshot(meta) => {
                self.follow(&msg.from);
                self.handle_snapshot(msg.from, meta);
            }
            Body::AppendResponse(resp) => self.handle_append_response(&msg.from, resp),
            Body::HeartbeatResponse {
                read_seq,
                last_index,
            } => self.handle_heartbeat_response(&msg.from, read_seq, last_index),
            Body::TimeoutNow => {
                if self.can_campaign() && !self.is_leader() {
                    self.hup(true);
                }
            }
            Body::ReadIndex { .. } | Body::ReadIndexResponse { .. } => {}
        }
    }

    /// A message from an older term: answer in a way that tells the sender about the newer
    /// term, where that helps it; otherwise drop it.
    fn step_stale(&mut self, msg: Message) {
        match msg.body {
            // A stale leader learns of the newer term from the answer and steps down;
            // without pre-vote and check-quorum it would find out at its next election.
            Body::Append(_) | Body::Heartbeat { .. } | Body::InstallSnapshot(_)
                if self.cfg.pre_vote || self.cfg.check_quorum =>
            {
                let last_index = self.log.last_index();
                self.send_after_persist(
                    msg.from,
                    Body::HeartbeatResponse {
                        read_seq: 0,
                        last_index,
                    },
                );
            }
            Body::PreVote(_) => {
                self.send_after_persist(msg.from, Body::PreVoteResponse { granted: false })
            }
            Body::Vote(_) => {
                self.send_after_persist(msg.from, Body::VoteResponse { granted: false })
            }
            _ => {}
        }
    }

    fn step_termless(&mut self, msg: Message) {
        match msg.body {
            Body::ReadIndex { id } => {
                if self.is_leader() {
                    self.leader_read(id, Some(msg.from));
                } else {
                    self.send(msg.from, 0, Body::ReadIndexResponse { id, index: None });
                }
            }
            Body::ReadIndexResponse { id, index } => self.reads.push(ReadState { id, index }),
            _ => {}
        }
    }

    /// Whether the application has work to do: if so, call [`Node::ready`].
    pub fn has_ready(&self) -> bool {
        !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || !self.reads.is_empty()
            || self.log.has_unstable()
            || self.log.has_pending_snapshot()
            || self.log.has_committed()
            || self.hard_state_changed()
            || self.soft_state_changed()
            || self.log.membership() != &self.last_membership
            || self.leader_has_sends()
    }

    /// Collects the work to do; see [`Ready`] for the order. Call [`Node::advance`] once
    /// it is done.
    pub fn ready(&mut self) -> Ready {
        assert!(self.handed_out.is_none(), "ready() before advance()");
        self.flush();
        let snapshot = self.log.take_pending_snapshot();
        let entries = self.log.take_unstable();
        self.handed_out = Some(self.log.last_index());
        let hard_state = self.hard_state_changed().then(|| {
            self.last_hard_state = self.hard_state();
            self.last_hard_state.clone()
        });
        let soft_state = self.soft_state_changed().then(|| {
            self.last_soft_state = self.soft_state();
            self.last_soft_state.clone()
        });
        let membership = (self.log.membership() != &self.last_membership).then(|| {
            self.last_membership = self.log.membership().clone();
            self.last_membership.clone()
        });
        let mut messages = std::mem::take(&mut self.messages);
        let mut persisted_messages = std::mem::take(&mut self.persisted_messages);
        if hard_state.is_some() {
            // A new term or vote is not durable yet, and every message speaks for it: a
            // node that won an election within this Ready (a single voter does) must not
            // lead before its term is on disk, or after a crash it could win the same term
            // again and send different entries under it.
            messages.append(&mut persisted_messages);
            persisted_messages = messages;
            messages = Vec::new();
        }
        Ready {
            messages,
            snapshot,
            entries,
            hard_state,
            persisted_messages,
            committed_entries: self.log.take_committed(),
            reads: std::mem::take(&mut self.reads),
            soft_state,
            membership,
        }
    }

    /// The application has done everything the last Ready asked: in particular, its
    /// entries and hard state are durable.
    pub fn advance(&mut self) {
        let last = self.handed_out.take().expect("advance() without ready()");
        self.log.persisted_to(last);
        if self.is_leader() {
            self.maybe_commit();
        }
    }

    // Compared field by field: has_ready() runs often and need not clone to compare.
    fn hard_state_changed(&self) -> bool {
        self.term != self.last_hard_state.term || self.vote != self.last_hard_state.vote
    }

    fn soft_state_changed(&self) -> bool {
        let last = &self.last_soft_state;
        self.term != last.term || self.role() != last.role || self.leader() != last.leader.as_ref()
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote.clone(),
        }
    }

    fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role(),
            term: self.term,
            leader: self.leader().cloned(),
        }
    }

    /// Queues a message that promises nothing about this node's disk.
    fn send(&mut self, to: NodeId, term: Term, body: Body) {
        self.messages.push(Message {
            from: self.id.clone(),
            to,
            term,
            body,
        });
    }

    /// Queues a message that may leave only once the Ready's writes are durable.
    fn send_after_persist(&mut self, to: NodeId, body: Body) {
        self.persisted_messages.push(Message {
            from: self.id.clone(),
            to,
            term: self.term,
            body,
        });
    }

    fn leader_or_redirect(&mut self) -> Result<&mut Leader, ProposeError> {
        let leader = self.leader().cloned();
        match &mut self.role {
            Role::Leader(l) => Ok(l),
            _ => Err(ProposeError::NotLeader { leader }),
        }
    }

    /// The membership in force, if it differs from the one the roles were last set up for.
    fn changed_membership(&self) -> Option<Membership> {
        match &self.role {
            Role::Leader(l) => {
                let m = self.log.membership();
                let tracked = l.progress.iter().filter(|(_, p)| p.leaving.is_none());
                let same = m.members().filter(|id| **id != self.id).count() == tracked.count()
                    && m.members()
                        .filter(|id| **id != self.id)
                        .all(|id| l.progress.get(id).is_some_and(|p| p.leaving.is_none()));
                (!same).then(|| m.clone())
            }
            _ => None,
        }
    }
}
