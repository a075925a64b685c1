//! Linearizable reads by ReadIndex (Raft dissertation §6.4), without writing to the log.
//!
//! A read is answered with the leader's commit index at the time it arrived, once the
//! leader has proved it was still leader after that moment: a majority answered a heartbeat
//! round that began after the read. Each round has a number (`seq`) that followers echo.
//! A new leader does not know the true commit index until it commits an entry of its own
//! term, so reads that reach it earlier wait for its no-op to commit.

use std::collections::VecDeque;

use super::{Body, LogIndex, Node, NodeId, ReadId, ReadState, Role};

#[derive(Default)]
pub(super) struct ReadQueue {
    /// The number of the latest heartbeat round.
    seq: u64,
    /// Reads that arrived before the leader committed an entry of its term.
    waiting: Vec<(ReadId, Option<NodeId>)>,
    /// Reads with their index, each waiting for a majority to answer its round.
    pending: VecDeque<PendingRead>,
    /// Some pending read waits for a round that has not started yet.
    round_needed: bool,
}

struct PendingRead {
    id: ReadId,
    /// The follower that forwarded it, or None for our own client.
    from: Option<NodeId>,
    index: LogIndex,
    seq: u64,
}

impl ReadQueue {
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    pub(super) fn needs_round(&self) -> bool {
        self.round_needed
    }

    pub(super) fn start_round(&mut self) {
        self.seq += 1;
        self.round_needed = false;
    }

    fn push(&mut self, id: ReadId, from: Option<NodeId>, index: LogIndex) {
        self.pending.push_back(PendingRead {
            id,
            from,
            index,
            seq: self.seq + 1,
        });
        self.round_needed = true;
    }
}

impl Node {
    pub(super) fn leader_read(&mut self, id: ReadId, from: Option<NodeId>) {
        let commit = self.log.commit();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.committed_in_term(commit) {
            l.reads.push(id, from, commit);
        } else {
            l.reads.waiting.push((id, from));
        }
    }

    /// The leader's first commit in its term: the reads that waited for it can proceed.
    pub(super) fn release_waiting_reads(&mut self) {
        let commit = self.log.commit();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if !l.committed_in_term(commit) {
            return;
        }
        for (id, from) in std::mem::take(&mut l.reads.waiting) {
            l.reads.push(id, from, commit);
        }
    }

    /// Answers the reads whose round a majority of voters has answered.
    pub(super) fn release_reads(&mut self) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let membership = self.log.membership();
        let mut acked: Vec<u64> = membership
            .voters
            .keys()
            .map(|id| {
                if *id == self.id {
                    l.reads.seq
                } else {
                    l.progress.get(id).map_or(0, |p| p.read_seq)
                }
            })
            .collect();
        if acked.is_empty() {
            return;
        }
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let proven = acked[membership.quorum() - 1];
        let mut done = Vec::new();
        while l.reads.pending.front().is_some_and(|r| r.seq <= proven) {
            done.push(l.reads.pending.pop_front().expect("checked"));
        }
        for read in done {
            self.answer_read(read.id, read.from, Some(read.index));
        }
    }

    fn answer_read(&mut self, id: ReadId, from: Option<NodeId>, index: Option<LogIndex>) {
        match from {
            None => self.reads.push(ReadState { id, index }),
            Some(follower) => self.send(follower, 0, Body::ReadIndexResponse { id, index }),
        }
    }

    /// Leadership is lost: nothing queued can be proven any more.
    pub(super) fn fail_reads(&mut self, queue: ReadQueue) {
        let waiting = queue.waiting.into_iter();
        let pending = queue.pending.into_iter().map(|r| (r.id, r.from));
        for (id, from) in waiting.chain(pending) {
            self.answer_read(id, from, None);
        }
    }
}
