//! The small vocabulary every part of the core shares: who, when, where in the log, and what
//! an entry carries.

use std::collections::BTreeMap;

use bytes::Bytes;

/// A node's name, as the cluster knows it (`n1`, `n6`, ...). Stable for the node's life.
pub type NodeId = String;

/// A Raft term: a logical clock that only moves forward; at most one leader per term.
pub type Term = u64;

/// A position in the replicated log, starting at 1; 0 means "before the first entry".
pub type LogIndex = u64;

/// One record of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub index: LogIndex,
    pub term: Term,
    pub payload: Payload,
}

/// What an entry asks the replicas to do when it commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Appended by every new leader, so that it can commit an entry of its own term
    /// (Raft §5.4.2) and so learn which earlier entries are committed.
    Noop,
    /// An opaque command for the application's state machine.
    Command(Bytes),
    /// The whole cluster configuration from this index on. It takes effect on a node as soon
    /// as it is in that node's log, not when it commits (Raft dissertation §4.1).
    Membership(Membership),
}

impl Entry {
    /// Roughly how many bytes the entry takes on the wire; used to bound batches.
    pub fn size(&self) -> usize {
        let payload = match &self.payload {
            Payload::Noop => 0,
            Payload::Command(data) => data.len(),
            Payload::Membership(m) => m.size(),
        };
        16 + payload
    }
}

/// Who is in the cluster: voters elect leaders and count towards commit; learners receive
/// the log but do neither. Each node comes with the address the servers use to reach it;
/// the core only carries the address, it never uses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub voters: BTreeMap<NodeId, String>,
    pub learners: BTreeMap<NodeId, String>,
}

impl Membership {
    /// A configuration of voters only.
    pub fn with_voters<I, S>(voters: I) -> Membership
    where
        I: IntoIterator<Item = (S, String)>,
        S: Into<NodeId>,
    {
        Membership {
            voters: voters.into_iter().map(|(id, a)| (id.into(), a)).collect(),
            learners: BTreeMap::new(),
        }
    }

    pub fn is_voter(&self, id: &str) -> bool {
        self.voters.contains_key(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.voters.contains_key(id) || self.learners.contains_key(id)
    }

    /// How many voters make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Every member, voters first, each once.
    pub fn members(&self) -> impl Iterator<Item = &NodeId> {
        self.voters.keys().chain(self.learners.keys())
    }

    pub fn address(&self, id: &str) -> Option<&str> {
        self.voters
            .get(id)
            .or_else(|| self.learners.get(id))
            .map(String::as_str)
    }

    fn size(&self) -> usize {
        self.members().map(|id| id.len() + 24).sum()
    }

    /// The configuration after `change`, or why it cannot be made.
    pub fn apply(&self, change: &ConfChange) -> Result<Membership, String> {
        let mut next = self.clone();
        match change {
            ConfChange::AddLearner { id, address } => {
                if self.contains(id) {
                    return Err(format!("{id} is already a member"));
                }
                next.learners.insert(id.clone(), address.clone());
            }
            ConfChange::Promote { id } => {
                let Some(address) = next.learners.remove(id) else {
                    return Err(format!("{id} is not a learner"));
                };
                next.voters.insert(id.clone(), address);
            }
            ConfChange::Remove { id } => {
                if next.voters.remove(id).is_none() && next.learners.remove(id).is_none() {
                    return Err(format!("{id} is not a member"));
                }
                if next.voters.is_empty() {
                    return Err(format!("removing {id} would leave no voters"));
                }
            }
        }
        Ok(next)
    }
}

/// One step of a membership change. Changes are made one server at a time, with at most one
/// uncommitted change in the log, which keeps any two consecutive majorities overlapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfChange {
    /// Start replicating to a new node that does not vote yet.
    AddLearner { id: NodeId, address: String },
    /// Make a caught-up learner a voter.
    Promote { id: NodeId },
    /// Take a voter or learner out; removing the leader makes it step down once committed.
    Remove { id: NodeId },
}

/// What must survive a crash besides the log (Raft Figure 2: currentTerm, votedFor). The
/// commit index is not part of it: a restarted node re-learns it from a leader, and the
/// application's own applied index tells it where to resume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
}

/// What a snapshot stands for: every entry up to `index` (of `term`) applied, and the
/// configuration in force at that point. The data itself never passes through the core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub index: LogIndex,
    pub term: Term,
    pub membership: Membership,
}

/// A node's role, as reported to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl std::fmt::Display for RoleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RoleKind::Follower => "follower",
            RoleKind::PreCandidate => "precandidate",
            RoleKind::Candidate => "candidate",
            RoleKind::Leader => "leader",
        })
    }
}
