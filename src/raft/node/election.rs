//! Elections (Raft §5.2 and dissertation §9.6): timeouts, pre-votes, votes, and the role
//! transitions they cause.

use std::collections::BTreeMap;

use super::reads::ReadQueue;
use super::{Body, Candidate, Follower, Leader, Node, NodeId, Payload, Progress, Role, Term};
use crate::raft::message::Campaign;

impl Node {
    /// Whether this node may stand for election: a voter may; and so may a voter of the
    /// previous configuration while the newest one, which removed it, is uncommitted. That
    /// node may hold the only copy of the change: if it could not stand, the others, whose
    /// logs are shorter, could never win its vote (a leader that removed itself and then
    /// crashed would stall the cluster). Votes are still counted in the newest
    /// configuration, whose majorities overlap the previous one's, and once elected it
    /// commits the change and steps down.
    pub(super) fn can_campaign(&self) -> bool {
        self.log.membership().is_voter(&self.id)
            || (self.log.pending_config().is_some()
                && self.log.previous_membership().is_voter(&self.id))
    }

    /// Whether we heard from a live leader within the minimum election timeout, in which
    /// case a campaign by someone else is refused (the leader lease of CheckQuorum).
    pub(super) fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && match &self.role {
                Role::Leader(_) => true,
                Role::Follower(f) => {
                    f.leader.is_some() && self.election_elapsed < self.cfg.election_ticks.0
                }
                Role::Candidate(_) => false,
            }
    }

    /// The transport lost its connection to `peer`: refused or reset, not mere silence.
    /// If that is our leader, it has most likely died, so we stop honouring its lease and
    /// campaign after a short random delay rather than a whole election timeout; peers
    /// that lost it too grant us their pre-votes. Nothing here bears on safety: if the
    /// leader is alive after all, the others still hear it and refuse our pre-vote, and
    /// its next message makes us its follower again, without a new term.
    pub fn peer_lost(&mut self, peer: &str) {
        let Role::Follower(f) = &mut self.role else {
            return;
        };
        if f.leader.as_deref() != Some(peer) {
            return;
        }
        f.leader = None;
        self.election_elapsed = 0;
        // Random, so that two followers that lost the leader together rarely split.
        let spread = (2 * self.cfg.heartbeat_ticks).max(2);
        self.election_timeout = self.rng.range(1, spread + 1);
        self.leader_lost = true;
    }

    pub(super) fn reset_election_timer(&mut self) {
        self.leader_lost = false;
        self.election_elapsed = 0;
        let (min, max) = self.cfg.election_ticks;
        self.election_timeout = self.rng.range(min, max);
    }

    /// The election timer fired (or a leader asked us to take over, `transfer`).
    pub(super) fn hup(&mut self, transfer: bool) {
        if self.cfg.pre_vote && !transfer {
            self.become_pre_candidate();
        } else {
            self.become_candidate(transfer);
        }
    }

    fn campaign_request(&self, transfer: bool) -> Campaign {
        Campaign {
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer,
        }
    }

    fn other_voters(&self) -> Vec<NodeId> {
        self.log
            .membership()
            .voters
            .keys()
            .filter(|id| **id != self.id)
            .cloned()
            .collect()
    }

    fn become_pre_candidate(&mut self) {
        self.leave_leadership();
        self.role = Role::Candidate(Candidate::new(&self.id, true));
        self.reset_election_timer();
        let request = self.campaign_request(false);
        for to in self.other_voters() {
            self.send(to, self.term + 1, Body::PreVote(request.clone()));
        }
        self.maybe_win();
    }

    fn become_candidate(&mut self, transfer: bool) {
        self.leave_leadership();
        self.term += 1;
        self.vote = Some(self.id.clone());
        self.role = Role::Candidate(Candidate::new(&self.id, false));
        self.reset_election_timer();
        let request = self.campaign_request(transfer);
        // Our own vote and the new term must be durable before anyone is asked for theirs.
        for to in self.other_voters() {
            self.send_after_persist(to, Body::Vote(request.clone()));
        }
        self.maybe_win();
    }

    /// Steps down (or stays) as a follower in `term`, following `leader` if known.
    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "term going backwards");
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.leave_leadership();
        self.role = Role::Follower(Follower { leader });
        self.reset_election_timer();
    }

    /// Acknowledges `leader` as the leader of the current term; called on every message
    /// that only a leader sends.
    pub(super) fn follow(&mut self, leader: &NodeId) {
        match &mut self.role {
            Role::Follower(f) => {
                if f.leader.as_ref() != Some(leader) {
                    f.leader = Some(leader.clone());
                }
                if self.leader_lost {
                    // A leader after all: a whole election timeout again, not the short
                    // one left by losing the last one.
                    self.reset_election_timer();
                } else {
                    self.election_elapsed = 0;
                }
            }
            Role::Candidate(_) => self.become_follower(self.term, Some(leader.clone())),
            Role::Leader(_) => panic!(
                "multiple leaders in term {}: {} and {leader}",
                self.term, self.id
            ),
        }
    }

    /// Before any role change away from leader: reads it was serving cannot be served.
    fn leave_leadership(&mut self) {
        let role = std::mem::replace(&mut self.role, Role::Follower(Follower::default()));
        match role {
            Role::Leader(leader) => self.fail_reads(leader.reads),
            other => self.role = other,
        }
    }

    pub(super) fn handle_pre_vote(&mut self, from: NodeId, term: Term, c: Campaign) {
        // Grant only what a real vote would get: a later term, an up-to-date log, and no
        // leader we still hear from.
        let granted = term > self.term
            && !self.in_lease()
            && self.log.is_up_to_date(c.last_index, c.last_term);
        let reply_term = if granted { term } else { self.term };
        self.persisted_messages.push(crate::raft::message::Message {
            from: self.id.clone(),
            to: from,
            term: reply_term,
            body: Body::PreVoteResponse { granted },
        });
    }

    pub(super) fn handle_vote(&mut self, from: NodeId, c: Campaign) {
        let leader_known = self.leader().is_some();
        let can_vote = self.vote.as_ref() == Some(&from) || (self.vote.is_none() && !leader_known);
        let granted = can_vote && self.log.is_up_to_date(c.last_index, c.last_term);
        if granted {
            self.vote = Some(from.clone());
            self.reset_election_timer();
        }
        self.send_after_persist(from, Body::VoteResponse { granted });
    }

    pub(super) fn handle_campaign_response(
        &mut self,
        from: NodeId,
        term: Term,
        pre: bool,
        granted: bool,
    ) {
        let Role::Candidate(c) = &mut self.role else {
            return;
        };
        // A granted pre-vote carries the term we would campaign in; a refusal, the voter's.
        let expected = if pre && granted {
            self.term + 1
        } else {
            self.term
        };
        if c.pre != pre || term != expected {
            return;
        }
        if !self.log.membership().is_voter(&from) {
            return;
        }
        c.votes.entry(from).or_insert(granted);
        self.maybe_win();
    }

    /// Counts the votes and acts once a majority has decided either way.
    fn maybe_win(&mut self) {
        let Role::Candidate(c) = &self.role else {
            return;
        };
        let membership = self.log.membership();
        let quorum = membership.quorum();
        let count = |want: bool| {
            c.votes
                .iter()
                .filter(|(id, g)| **g == want && membership.is_voter(id))
                .count()
        };
        let (granted, refused) = (count(true), count(false));
        let pre = c.pre;
        if granted >= quorum {
            if pre {
                self.become_candidate(false);
            } else {
                self.become_leader();
            }
        } else if refused >= quorum {
            self.become_follower(self.term, None);
        }
    }

    fn become_leader(&mut self) {
        let role = std::mem::replace(&mut self.role, Role::Follower(Follower::default()));
        let Role::Candidate(candidate) = role else {
            unreachable!("only a candidate can win an election")
        };
        // A new leader commits a no-op of its own term at once: only then can it know which
        // earlier entries are committed (§5.4.2, §8).
        let term_start = self.log.append(self.term, Payload::Noop);
        let peers = self.log.membership().members().cloned().collect::<Vec<_>>();
        self.role = Role::Leader(candidate.into_leader(&self.id, peers, term_start));
        self.election_elapsed = 0;
    }
}

impl Candidate {
    fn new(id: &NodeId, pre: bool) -> Candidate {
        Candidate {
            pre,
            votes: BTreeMap::from([(id.clone(), true)]),
        }
    }

    /// Winning turns a candidate into a leader with a fresh view of every follower.
    fn into_leader(self, id: &NodeId, members: Vec<NodeId>, term_start: u64) -> Leader {
        debug_assert!(!self.pre, "a pre-candidate cannot lead");
        Leader {
            progress: members
                .into_iter()
                .filter(|m| m != id)
                .map(|m| (m, Progress::new(term_start)))
                .collect(),
            heartbeat_elapsed: 0,
            quorum_elapsed: 0,
            term_start,
            transfer: None,
            reads: ReadQueue::default(),
        }
    }
}
