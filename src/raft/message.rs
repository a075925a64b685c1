//! The messages Raft nodes exchange. Every message travels in one envelope that names its
//! sender, its receiver and the sender's term; requests and their responses come in pairs.

use super::types::{Entry, LogIndex, NodeId, SnapshotMeta, Term};

/// An identifier the application picks for a read request, echoed when the read is ready.
pub type ReadId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    /// The sender's term. Zero marks a message outside the term rules (read forwarding),
    /// which a node handles whatever its own term.
    pub term: Term,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Would you vote for me in `term` (my term + 1)? Changes nobody's state (§9.6 PreVote).
    PreVote(Campaign),
    PreVoteResponse {
        granted: bool,
    },
    /// Vote for me in `term` (§5.2).
    Vote(Campaign),
    VoteResponse {
        granted: bool,
    },
    /// Append `entries` after `prev_index`, which must hold `prev_term` (§5.3).
    Append(Append),
    AppendResponse(AppendResponse),
    /// I am still your leader; everything up to `commit` is committed. `read_seq` numbers the
    /// round, so that answers prove leadership for the reads queued before it (ReadIndex).
    Heartbeat {
        commit: LogIndex,
        read_seq: u64,
    },
    HeartbeatResponse {
        read_seq: u64,
        last_index: LogIndex,
    },
    /// Replace your log with this snapshot; the data travels beside the message.
    InstallSnapshot(SnapshotMeta),
    /// Campaign now, without waiting for a timeout or a pre-vote (leadership transfer).
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of its client.
    ReadIndex {
        id: ReadId,
    },
    /// The leader's answer: serve the read once applied up to `index`; None if it could not.
    ReadIndexResponse {
        id: ReadId,
        index: Option<LogIndex>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    pub last_index: LogIndex,
    pub last_term: Term,
    /// Sent on a leader's request (TimeoutNow): voters skip their leader lease.
    pub transfer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    pub prev_index: LogIndex,
    pub prev_term: Term,
    pub entries: Vec<Entry>,
    pub commit: LogIndex,
}

/// A follower's answer to Append or InstallSnapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendResponse {
    /// The follower's log now matches the leader's up to `last_index`.
    Accepted { last_index: LogIndex },
    /// The entry at `rejected` did not match. The hint lets the leader skip a whole term
    /// per round trip instead of one entry (the "fast backup" of the MIT 6.5840 labs):
    /// `conflict_term` is the follower's term at `rejected` (0 if its log is shorter), and
    /// `conflict_index` the first index it holds of that term (its last index + 1 if shorter).
    Rejected {
        rejected: LogIndex,
        conflict_term: Term,
        conflict_index: LogIndex,
    },
}
