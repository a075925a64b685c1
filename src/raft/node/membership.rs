//! Membership changes, one server at a time (Raft dissertation §4.1), and leadership
//! transfer (§3.10).
//!
//! Safety rests on three rules: a configuration takes effect as soon as it is in a node's
//! log; a leader appends a new one only when the previous one is committed; and only after
//! it has committed an entry of its own term (the fix for the single-server change bug
//! found after the dissertation: without it, a new leader's change could overlap an
//! uncommitted one of the previous leader's).

use super::{ConfChange, LogIndex, Membership, Node, NodeId, ProposeError, Role};
use crate::raft::message::Body;
use crate::raft::progress::Progress;

impl Node {
    pub(super) fn check_change(&mut self, change: &ConfChange) -> Result<Membership, ProposeError> {
        let commit = self.log.commit();
        let leader = self.leader_or_redirect()?;
        if !leader.committed_in_term(commit) {
            return Err(ProposeError::Busy(
                "the new leader has not committed an entry of its term yet",
            ));
        }
        if self.log.pending_config().is_some() {
            return Err(ProposeError::ChangeInProgress);
        }
        self.log
            .membership()
            .apply(change)
            .map_err(ProposeError::Invalid)
    }

    /// The leader appended a new configuration (at its last index): track new members,
    /// and mark removed ones as leaving (see [`Progress::leaving`]).
    pub(super) fn on_membership_change(&mut self, m: Membership) {
        let at = self.log.last_index();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        for (id, p) in l.progress.iter_mut() {
            p.leaving = match (m.contains(id), p.leaving) {
                (true, _) => None,
                (false, Some(since)) => Some(since),
                (false, None) => Some(at),
            };
        }
        for id in m.members() {
            if *id != self.id && !l.progress.contains_key(id) {
                l.progress.insert(id.clone(), Progress::new(at + 1));
            }
        }
        if l.transfer.as_ref().is_some_and(|t| !m.is_voter(&t.target)) {
            l.transfer = None;
        }
    }

    /// A leader that removed itself leads until the change commits, then steps down and
    /// asks the most up-to-date voter to take over at once.
    pub(super) fn maybe_step_down_after_removal(&mut self) {
        if self.log.membership().is_voter(&self.id) || self.log.pending_config().is_some() {
            return;
        }
        let Role::Leader(l) = &self.role else {
            return;
        };
        let successor = l
            .progress
            .iter()
            .filter(|(id, _)| self.log.membership().is_voter(id))
            .max_by_key(|(_, p)| p.matched)
            .map(|(id, _)| id.clone());
        if let Some(to) = successor {
            self.send(to, self.term, Body::TimeoutNow);
        }
        self.become_follower(self.term, None);
    }

    /// Forgets removed followers that hold their removal and know it committed, and those
    /// that did not catch up within `limit` ticks of it committing (they may be gone).
    pub(super) fn forget_departed(&mut self, limit: u64) {
        let commit = self.log.commit();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.progress.retain(|_, p| match p.leaving {
            None => true,
            Some(at) if commit < at => true,
            Some(at) => {
                p.leaving_ticks += 1;
                let told = p.matched >= at && p.sent_commit >= at;
                !told && p.leaving_ticks < limit
            }
        });
    }

    /// Promotes a learner that has caught up with the commit index.
    pub(super) fn maybe_promote_learner(&mut self) {
        if !self.cfg.auto_promote || self.log.pending_config().is_some() {
            return;
        }
        let commit = self.log.commit();
        let Role::Leader(l) = &self.role else {
            return;
        };
        if l.transfer.is_some() || !l.committed_in_term(commit) {
            return;
        }
        let ready = self
            .log
            .membership()
            .learners
            .keys()
            .find(|id| l.progress.get(*id).is_some_and(|p| p.matched >= commit))
            .cloned();
        if let Some(id) = ready {
            // Cannot fail: the checks above are those of check_change.
            let _ = self.propose_change(ConfChange::Promote { id });
        }
    }

    /// Hands leadership to `target`: proposals stop, the target is brought up to date,
    /// then told to campaign at once. Abandoned after an election timeout.
    pub fn transfer_leader(&mut self, target: &str) -> Result<(), ProposeError> {
        let is_voter = self.log.membership().is_voter(target);
        let is_self = target == self.id;
        let l = self.leader_or_redirect()?;
        if is_self {
            return Ok(());
        }
        if !is_voter {
            return Err(ProposeError::Invalid(format!("{target} is not a voter")));
        }
        l.transfer = Some(super::Transfer {
            target: target.to_string(),
            elapsed: 0,
        });
        self.maybe_finish_transfer(target);
        self.maybe_send_append(target, false);
        Ok(())
    }

    pub(super) fn maybe_finish_transfer(&mut self, peer: &str) {
        let last: LogIndex = self.log.last_index();
        let Role::Leader(l) = &self.role else {
            return;
        };
        let caught_up = l.transfer.as_ref().is_some_and(|t| t.target == peer)
            && l.progress.get(peer).is_some_and(|p| p.matched == last);
        if caught_up {
            let to: NodeId = peer.to_string();
            self.send(to, self.term, Body::TimeoutNow);
        }
    }
}
