//! Settings of one Raft node. Times are in ticks: the driver decides how long a tick is.

use super::types::NodeId;

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// A follower campaigns after hearing nothing for a random number of ticks drawn from
    /// this range (min inclusive, max exclusive), so that candidates rarely collide (§5.2).
    pub election_ticks: (u64, u64),
    /// A leader sends heartbeats this often; well under the election timeout.
    pub heartbeat_ticks: u64,
    /// Upper bound on the entry bytes in one Append (at least one entry is always sent).
    pub max_append_bytes: usize,
    /// How many Appends may be in flight to one follower before waiting for answers.
    pub max_inflight: usize,
    /// Ask for pre-votes before a real election, so a node that was cut off cannot raise
    /// the term and depose a healthy leader when it returns.
    pub pre_vote: bool,
    /// A leader that has not heard from a majority within an election timeout steps down,
    /// and a follower that hears from its leader ignores campaigns (the leader lease).
    pub check_quorum: bool,
    /// The leader promotes a learner to voter once it has caught up with the commit index.
    pub auto_promote: bool,
    /// Ticks without progress after which a pending snapshot transfer is tried again.
    pub snapshot_retry_ticks: u64,
    /// Seeds the election timer's randomness; mixed with the node id.
    pub seed: u64,
}

impl Config {
    pub fn new(id: impl Into<NodeId>) -> Config {
        Config {
            id: id.into(),
            election_ticks: (10, 20),
            heartbeat_ticks: 2,
            max_append_bytes: 1 << 20,
            max_inflight: 64,
            pre_vote: true,
            check_quorum: true,
            auto_promote: true,
            snapshot_retry_ticks: 60,
            seed: 0,
        }
    }

    /// Checks the settings, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let (min, max) = self.election_ticks;
        if self.id.is_empty() {
            return Err("id must not be empty".into());
        }
        if min == 0 || max <= min {
            return Err(format!(
                "election_ticks must be a range min..max with 0 < min < max, got {min}..{max}"
            ));
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= min {
            return Err(format!(
                "heartbeat_ticks ({}) must be at least 1 and below the election timeout ({min})",
                self.heartbeat_ticks
            ));
        }
        if self.max_inflight == 0 {
            return Err("max_inflight must be at least 1".into());
        }
        Ok(())
    }
}
