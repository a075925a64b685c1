//! Log replication (Raft §5.3, §5.4, §7): the leader's sending, pipelining and commit
//! rule, and a follower's handling of Append, heartbeats and snapshots.

use super::{Body, Leader, LogIndex, Node, NodeId, Role, SnapshotMeta};
use crate::raft::message::{Append, AppendResponse};
use crate::raft::progress::ProgressState;

impl Node {
    pub(super) fn tick_leader(&mut self) {
        let (min_election, _) = self.cfg.election_ticks;
        let retry = self.cfg.snapshot_retry_ticks;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.heartbeat_elapsed += 1;
        l.quorum_elapsed += 1;
        for p in l.progress.values_mut() {
            if let ProgressState::Snapshot(_) = p.state {
                p.snapshot_ticks += 1;
                if p.snapshot_ticks >= retry {
                    p.become_probe();
                }
            }
        }
        if let Some(t) = &mut l.transfer {
            t.elapsed += 1;
            if t.elapsed >= min_election {
                l.transfer = None;
            }
        }
        if l.quorum_elapsed >= min_election {
            l.quorum_elapsed = 0;
            if self.cfg.check_quorum && !self.quorum_active() {
                // Cut off from a majority: another leader may already exist. Step down so
                // clients go elsewhere rather than wait on us (CheckQuorum).
                self.become_follower(self.term, None);
                return;
            }
        }
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            l.heartbeat_elapsed = 0;
            l.reads.start_round();
            self.broadcast_heartbeat();
            // With no other voter, the round is proven as soon as it starts.
            self.release_reads();
        }
        self.send_commit_updates();
        self.maybe_promote_learner();
        self.forget_departed(10 * self.cfg.election_ticks.1);
    }

    /// Whether a majority of voters (us included) answered since the last check; resets
    /// the marks for the next round.
    fn quorum_active(&mut self) -> bool {
        let Role::Leader(l) = &mut self.role else {
            return false;
        };
        let membership = self.log.membership();
        let mut active = usize::from(membership.is_voter(&self.id));
        for (id, p) in l.progress.iter_mut() {
            if p.recent_active && membership.is_voter(id) {
                active += 1;
            }
            p.recent_active = false;
        }
        active >= membership.quorum()
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        let commit = self.log.commit();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let read_seq = l.reads.seq();
        let beats: Vec<_> = l
            .progress
            .iter_mut()
            .map(|(id, p)| {
                let told = commit.min(p.matched);
                // What a heartbeat tells need not go out again in an Append.
                p.sent_commit = p.sent_commit.max(told);
                (id.clone(), told)
            })
            .collect();
        for (to, commit) in beats {
            self.send(to, self.term, Body::Heartbeat { commit, read_seq });
        }
    }

    /// Whether flushing would send anything (for `has_ready`).
    pub(super) fn leader_has_sends(&self) -> bool {
        let Role::Leader(l) = &self.role else {
            return false;
        };
        let last = self.log.last_index();
        l.reads.needs_round()
            || l.progress
                .values()
                .any(|p| p.can_send(self.cfg.max_inflight) && p.next <= last)
    }

    /// Tells followers a commit index that no Append carried yet. This waits for the
    /// tick rather than going out as the commit moves: under load the next Append carries
    /// it anyway, and at one write at a time an Append of its own, and its answer, would
    /// double the messages of every write. A follower learns of a commit at most a tick
    /// later (as it would in hashicorp/raft), and applies it then.
    fn send_commit_updates(&mut self) {
        let commit = self.log.commit();
        let Role::Leader(l) = &self.role else {
            return;
        };
        let behind: Vec<NodeId> = l
            .progress
            .iter()
            .filter(|(_, p)| p.sent_commit < commit)
            .map(|(id, _)| id.clone())
            .collect();
        for peer in behind {
            self.maybe_send_append(&peer, true);
        }
    }

    /// Sends what the followers lack, batched: called once per Ready, so that all the
    /// proposals that arrived since the last one travel in the same Appends.
    pub(super) fn flush(&mut self) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.reads.needs_round() {
            l.reads.start_round();
            l.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
            self.release_reads();
        }
        let Role::Leader(l) = &self.role else {
            return;
        };
        let peers: Vec<NodeId> = l.progress.keys().cloned().collect();
        for peer in peers {
            self.maybe_send_append(&peer, false);
        }
    }

    /// Sends `peer` the entries it lacks, as far as its pipeline allows. With `probe`, sends
    /// an Append even without entries, to learn where the follower's log stands.
    pub(super) fn maybe_send_append(&mut self, peer: &str, probe: bool) {
        let (max_inflight, max_bytes) = (self.cfg.max_inflight, self.cfg.max_append_bytes);
        let (last, commit) = (self.log.last_index(), self.log.commit());
        let mut out = Vec::new();
        {
            let Role::Leader(l) = &mut self.role else {
                return;
            };
            let Some(p) = l.progress.get_mut(peer) else {
                return;
            };
            let mut probe = probe;
            while p.can_send(max_inflight) {
                if p.next < self.log.first_index() {
                    // What it lacks is compacted away: it needs the snapshot (§7).
                    let meta = self.log.snapshot().clone();
                    p.become_snapshot(meta.index);
                    out.push(Body::InstallSnapshot(meta));
                    break;
                }
                if p.next > last && !probe {
                    break;
                }
                let prev_index = p.next - 1;
                let prev_term = self.log.term(prev_index).expect("prev within the log");
                let entries = if p.next <= last {
                    self.log.slice(p.next, max_bytes)
                } else {
                    Vec::new()
                };
                let sent_last = prev_index + entries.len() as u64;
                p.sent(sent_last);
                p.sent_commit = commit;
                probe = false;
                out.push(Body::Append(Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                }));
            }
        }
        for body in out {
            self.send(peer.to_string(), self.term, body);
        }
    }

    pub(super) fn handle_append_response(&mut self, from: &NodeId, resp: AppendResponse) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(p) = l.progress.get_mut(from) else {
            return;
        };
        p.recent_active = true;
        match resp {
            AppendResponse::Accepted { last_index } => {
                if p.accepted(last_index) {
                    self.maybe_commit();
                }
                self.maybe_finish_transfer(from);
                self.maybe_send_append(from, false);
            }
            AppendResponse::Rejected {
                rejected,
                conflict_term,
                conflict_index,
            } => {
                // Skip the follower's whole conflicting term at once: if we hold entries of
                // that term, our last one may match; otherwise none of that term can.
                let next = match self.log.last_index_of_term(conflict_term) {
                    Some(last) if conflict_term > 0 => last + 1,
                    _ => conflict_index,
                };
                if p.rejected(rejected, next) {
                    self.maybe_send_append(from, true);
                }
            }
        }
    }

    pub(super) fn handle_heartbeat_response(
        &mut self,
        from: &NodeId,
        read_seq: u64,
        _last_index: LogIndex,
    ) {
        let (last, max_inflight) = (self.log.last_index(), self.cfg.max_inflight);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(p) = l.progress.get_mut(from) else {
            return;
        };
        p.recent_active = true;
        p.read_seq = p.read_seq.max(read_seq);
        let behind = p.matched < last;
        match p.state {
            ProgressState::Probe => p.probe_sent = false,
            // An Append may have been lost with the pipeline full; free a slot so the next
            // one goes out, and is rejected if there is a gap, which starts a probe.
            ProgressState::Replicate if p.inflight.len() >= max_inflight => {
                p.inflight.pop_front();
            }
            _ => {}
        }
        self.release_reads();
        if behind {
            self.maybe_send_append(from, true);
        }
    }

    /// Commits the highest index that a majority of voters hold, if it is of the current
    /// term: an entry of an older term is never committed by counting replicas (§5.4.2,
    /// Figure 8); it commits when a later entry of this term does.
    pub(super) fn maybe_commit(&mut self) {
        let Role::Leader(l) = &self.role else {
            return;
        };
        let membership = self.log.membership();
        let mut matched: Vec<LogIndex> = membership
            .voters
            .keys()
            .map(|id| {
                if *id == self.id {
                    self.log.persisted()
                } else {
                    l.progress.get(id).map_or(0, |p| p.matched)
                }
            })
            .collect();
        if matched.is_empty() {
            return;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let index = matched[membership.quorum() - 1];
        if index > self.log.commit() && self.log.term(index) == Some(self.term) {
            self.log.commit_to(index);
            self.on_commit();
        }
    }

    /// The leader's commit index moved.
    fn on_commit(&mut self) {
        self.release_waiting_reads();
        self.maybe_step_down_after_removal();
    }

    // --- The follower's side. ---

    pub(super) fn handle_append(&mut self, from: NodeId, a: Append) {
        let commit = self.log.commit();
        if a.prev_index < commit {
            // We hold everything up to our commit index exactly as the leader does; tell it
            // so and let it continue from there.
            let body = Body::AppendResponse(AppendResponse::Accepted { last_index: commit });
            return self.send_after_persist(from, body);
        }
        let prev_index = a.prev_index;
        let response = match self.log.maybe_append(a.prev_index, a.prev_term, a.entries) {
            Some(last_new) => {
                self.log.commit_to(a.commit.min(last_new));
                AppendResponse::Accepted {
                    last_index: last_new,
                }
            }
            None => {
                let last = self.log.last_index();
                let (conflict_term, conflict_index) = if prev_index > last {
                    (0, last + 1)
                } else {
                    let term = self.log.term(prev_index).expect("prev_index >= commit");
                    (term, self.log.first_index_of_term_at(prev_index))
                };
                AppendResponse::Rejected {
                    rejected: prev_index,
                    conflict_term,
                    conflict_index,
                }
            }
        };
        self.send_after_persist(from, Body::AppendResponse(response));
    }

    pub(super) fn handle_heartbeat(&mut self, from: NodeId, commit: LogIndex, read_seq: u64) {
        let last_index = self.log.last_index();
        self.log.commit_to(commit.min(last_index));
        self.send_after_persist(
            from,
            Body::HeartbeatResponse {
                read_seq,
                last_index,
            },
        );
    }

    pub(super) fn handle_snapshot(&mut self, from: NodeId, meta: SnapshotMeta) {
        let index = meta.index;
        if index <= self.log.commit() {
            let last_index = self.log.commit();
            let body = Body::AppendResponse(AppendResponse::Accepted { last_index });
            return self.send_after_persist(from, body);
        }
        if self.log.matches(meta.index, meta.term) {
            // We already hold the entries it covers; they only need committing.
            self.log.commit_to(index);
        } else {
            self.log.install_snapshot(meta);
        }
        let body = Body::AppendResponse(AppendResponse::Accepted { last_index: index });
        self.send_after_persist(from, body);
    }
}

impl Leader {
    /// Whether the leader has committed an entry of its own term, and so knows the true
    /// commit index (needed before serving reads or changing membership).
    pub(super) fn committed_in_term(&self, commit: LogIndex) -> bool {
        commit >= self.term_start
    }
}
