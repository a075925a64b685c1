//! What a leader knows about each follower's log, and how fast it may send to it.
//!
//! A follower is in one of three states, as in etcd's raft:
//! - `Probe`: we do not know where its log ends. One Append at a time; each rejection moves
//!   `next` back by a whole term (the conflict hint), each heartbeat answer allows one more.
//! - `Replicate`: its log matches ours up to `matched`. Appends are pipelined: `next` moves
//!   ahead optimistically, with at most `max_inflight` unanswered.
//! - `Snapshot`: its log is behind our compacted prefix; we wait for it to install a snapshot.

use std::collections::VecDeque;

use super::types::LogIndex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    Probe,
    Replicate,
    /// Waiting for the follower to install the snapshot ending at this index.
    Snapshot(LogIndex),
}

#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index known to match the leader's log.
    pub matched: LogIndex,
    /// The next index to send.
    pub next: LogIndex,
    pub state: ProgressState,
    /// In Probe: an Append is out and unanswered, so send no other.
    pub probe_sent: bool,
    /// Last index of each unanswered Append, oldest first (Replicate only).
    pub inflight: VecDeque<LogIndex>,
    /// Whether the follower answered since the last CheckQuorum round.
    pub recent_active: bool,
    /// The highest heartbeat round the follower answered (ReadIndex).
    pub read_seq: u64,
    /// The commit index last sent to the follower, to know when it needs a newer one.
    pub sent_commit: LogIndex,
    /// Ticks spent in the Snapshot state, to retry a transfer that was lost.
    pub snapshot_ticks: u64,
    /// Set when the follower was removed by the configuration at this index: the leader
    /// keeps replicating to it until it holds that entry and knows it committed, so that it
    /// stops campaigning, then forgets it.
    pub leaving: Option<LogIndex>,
    /// Ticks since the removal committed.
    pub leaving_ticks: u64,
}

impl Progress {
    pub fn new(next: LogIndex) -> Progress {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            recent_active: true,
            read_seq: 0,
            sent_commit: 0,
            snapshot_ticks: 0,
            leaving: None,
            leaving_ticks: 0,
        }
    }

    /// Whether another Append may be sent now.
    pub fn can_send(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => !self.probe_sent,
            ProgressState::Replicate => self.inflight.len() < max_inflight,
            ProgressState::Snapshot(_) => false,
        }
    }

    /// Records that an Append ending at `last` went out.
    pub fn sent(&mut self, last: LogIndex) {
        match self.state {
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate => {
                self.next = last + 1;
                self.inflight.push_back(last);
            }
            ProgressState::Snapshot(_) => unreachable!("sending entries during a snapshot"),
        }
    }

    /// The follower accepted everything up to `index`. Returns whether `matched` moved.
    pub fn accepted(&mut self, index: LogIndex) -> bool {
        let moved = index > self.matched;
        if moved {
            self.matched = index;
        }
        self.next = self.next.max(index + 1);
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        match self.state {
            ProgressState::Probe => self.become_replicate(),
            ProgressState::Snapshot(pending) if self.matched >= pending => self.become_replicate(),
            _ => {}
        }
        moved
    }

    /// The follower rejected an Append at `rejected`; `next` is where to try next. Returns
    /// false if the rejection is stale (for an Append older than what it already accepted).
    pub fn rejected(&mut self, rejected: LogIndex, next: LogIndex) -> bool {
        if rejected <= self.matched {
            return false;
        }
        if let ProgressState::Snapshot(_) = self.state {
            return false;
        }
        self.next = next.clamp(self.matched + 1, rejected.max(self.matched + 1));
        self.become_probe();
        true
    }

    pub fn become_probe(&mut self) {
        if let ProgressState::Snapshot(pending) = self.state {
            self.next = self.next.max(pending + 1).max(self.matched + 1);
        }
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflight.clear();
    }

    fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflight.clear();
    }

    pub fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ProgressState::Snapshot(index);
        self.snapshot_ticks = 0;
        self.probe_sent = false;
        self.inflight.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_at_a_time_then_pipelines() {
        let mut p = Progress::new(5);
        assert!(p.can_send(4));
        p.sent(7);
        assert!(!p.can_send(4), "probe waits for an answer");
        p.accepted(7);
        assert_eq!(p.state, ProgressState::Replicate);
        assert_eq!(p.next, 8);
        for last in [9, 11, 13, 15] {
            assert!(p.can_send(4));
            p.sent(last);
        }
        assert!(!p.can_send(4), "at most max_inflight in flight");
        p.accepted(11);
        assert_eq!(p.inflight.len(), 2);
        assert_eq!(p.next, 16);
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(5);
        p.accepted(10);
        assert!(!p.rejected(9, 3));
        assert_eq!(p.state, ProgressState::Replicate);
        assert!(p.rejected(12, 3));
        assert_eq!(p.next, 11, "never backs up past what matched");
        assert_eq!(p.state, ProgressState::Probe);
    }

    #[test]
    fn snapshot_state_ends_when_the_follower_reaches_it() {
        let mut p = Progress::new(1);
        p.become_snapshot(100);
        assert!(!p.can_send(4));
        p.accepted(100);
        assert_eq!(p.state, ProgressState::Replicate);
        assert_eq!(p.next, 101);
    }
}
