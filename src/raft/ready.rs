//! What the core hands the application after some input: the work to do, in order.

use super::message::{Message, ReadId};
use super::types::{Entry, HardState, LogIndex, Membership, NodeId, RoleKind, SnapshotMeta, Term};

/// One batch of work. The application must handle a `Ready` in exactly this order, then
/// call [`Node::advance`](super::Node::advance) before asking for the next one:
///
/// 0. `messages` may be sent at once, even before step 1 is durable. They are a leader's
///    Appends and heartbeats and a pre-candidate's pre-votes: none of them promises anything
///    about this node's disk, so the leader writes its own log while its followers write
///    theirs (Raft dissertation §10.2.1). The leader counts itself towards a commit only
///    once `advance` says its entries are durable. When the Ready carries a new
///    `hard_state`, this is empty: every message then waits for the term to be durable.
/// 1. Make durable, in this order: `snapshot` (replace the state machine with the snapshot
///    data received beside the message, and drop the whole log), then `entries` (append;
///    any stored entry at or after `entries[0].index` is replaced), then `hard_state`
///    (term and vote, replaced atomically). fsync before going on: this is the rule of
///    Raft's Figure 2, "updated on stable storage before responding to RPCs".
/// 2. Send `persisted_messages`: votes, acknowledgements of entries, everything that
///    promises something about what step 1 wrote.
/// 3. Apply `committed_entries` to the state machine, in order.
/// 4. Answer the `reads` once the state machine has applied up to each one's index.
#[derive(Debug, Default)]
pub struct Ready {
    pub messages: Vec<Message>,
    pub snapshot: Option<SnapshotMeta>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    pub persisted_messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub reads: Vec<ReadState>,
    /// Set when the role, the term or the known leader changed (for status and routing).
    pub soft_state: Option<SoftState>,
    /// Set when the configuration in force changed (the application updates its peers).
    pub membership: Option<Membership>,
}

impl Ready {
    /// Whether anything in step 1 asks for an fsync.
    pub fn must_persist(&self) -> bool {
        self.snapshot.is_some() || !self.entries.is_empty() || self.hard_state.is_some()
    }
}

/// The answer to a read request: once the state machine has applied `index`, a read issued
/// before the request was made sees every write committed before it (linearizable). `None`
/// means the read could not be served (leadership was lost): try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub id: ReadId,
    pub index: Option<LogIndex>,
}

/// The volatile facts about a node that its surroundings care about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftState {
    pub role: RoleKind,
    pub term: Term,
    pub leader: Option<NodeId>,
}
