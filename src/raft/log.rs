//! The core's view of the replicated log: the entries after the last snapshot, where the
//! commit and apply cursors stand, and which entries the application has yet to persist.
//!
//! Invariants:
//! - `entries[i].index == snapshot.index + 1 + i`, and terms never decrease along the log.
//! - `snapshot.index <= applied <= commit <= last_index()`.
//! - Everything below `unstable` has been handed to the application to persist; `persisted`
//!   is what it has confirmed durable (the leader counts only that towards commit).
//! - `configs` lists the membership entries in `entries`, in order; the newest one, or the
//!   snapshot's, is the configuration in force.
//!
//! It does not own snapshot data or touch a disk: the application persists what the core
//! hands it and rebuilds a log from what it persisted with [`RaftLog::restore`].

use super::types::{Entry, LogIndex, Membership, Payload, SnapshotMeta, Term};

#[derive(Debug)]
pub struct RaftLog {
    snapshot: SnapshotMeta,
    entries: Vec<Entry>,
    configs: Vec<(LogIndex, Membership)>,
    commit: LogIndex,
    applied: LogIndex,
    unstable: LogIndex,
    persisted: LogIndex,
    /// A snapshot received from the leader that the application has not been told of yet.
    pending_snapshot: Option<SnapshotMeta>,
}

impl RaftLog {
    /// A log rebuilt from what the application persisted: its last snapshot (the default
    /// meta for none), the entries after it, and the index its state machine has applied.
    pub fn restore(
        snapshot: SnapshotMeta,
        entries: Vec<Entry>,
        commit: LogIndex,
        applied: LogIndex,
    ) -> RaftLog {
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.index,
                snapshot.index + 1 + i as u64,
                "restored log is not contiguous after the snapshot"
            );
        }
        let last = snapshot.index + entries.len() as u64;
        let applied = applied.clamp(snapshot.index, last);
        // A persisted commit index is a hint from a past life: never trust it beyond the log.
        let commit = commit.clamp(applied, last);
        let configs = entries
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Membership(m) => Some((e.index, m.clone())),
                _ => None,
            })
            .collect();
        RaftLog {
            snapshot,
            entries,
            configs,
            commit,
            applied,
            unstable: last + 1,
            persisted: last,
            pending_snapshot: None,
        }
    }

    pub fn first_index(&self) -> LogIndex {
        self.snapshot.index + 1
    }

    pub fn last_index(&self) -> LogIndex {
        self.snapshot.index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    pub fn commit(&self) -> LogIndex {
        self.commit
    }

    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    pub fn persisted(&self) -> LogIndex {
        self.persisted
    }

    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// The term of the entry at `index`, if the log still knows it (it forgets the terms of
    /// compacted entries, except the snapshot's last one).
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            Some(self.snapshot.term)
        } else {
            self.entry(index).map(|e| e.term)
        }
    }

    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index < self.first_index() {
            return None;
        }
        self.entries.get((index - self.first_index()) as usize)
    }

    pub fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a candidate whose log ends at (`last_index`, `last_term`) is at least as
    /// up to date as ours (§5.4.1): the later last term wins, then the longer log.
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The configuration in force: the newest in the log, committed or not.
    pub fn membership(&self) -> &Membership {
        self.configs
            .last()
            .map_or(&self.snapshot.membership, |(_, m)| m)
    }

    /// The configuration in force at `index` (used to describe a snapshot taken there).
    pub fn membership_at(&self, index: LogIndex) -> &Membership {
        self.configs
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or(&self.snapshot.membership, |(_, m)| m)
    }

    /// The configuration that the newest one replaced (the snapshot's if there is none).
    pub fn previous_membership(&self) -> &Membership {
        match self.configs.len() {
            0 | 1 => &self.snapshot.membership,
            n => &self.configs[n - 2].1,
        }
    }

    /// The index of a membership entry that is not committed yet, if there is one.
    pub fn pending_config(&self) -> Option<LogIndex> {
        self.configs
            .last()
            .map(|(i, _)| *i)
            .filter(|i| *i > self.commit)
    }

    /// Entries from `from` on, at most `max_bytes` of them but always at least one if any.
    pub fn slice(&self, from: LogIndex, max_bytes: usize) -> Vec<Entry> {
        assert!(from >= self.first_index(), "slice before the log's start");
        let start = (from - self.first_index()) as usize;
        let mut size = 0;
        let mut out = Vec::new();
        for entry in self.entries.iter().skip(start) {
            size += entry.size();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        out
    }

    /// Appends a new entry at the end (the leader's path). Returns its index.
    pub fn append(&mut self, term: Term, payload: Payload) -> LogIndex {
        let index = self.last_index() + 1;
        assert!(
            term >= self.last_term(),
            "appending an entry of an older term"
        );
        if let Payload::Membership(m) = &payload {
            self.configs.push((index, m.clone()));
        }
        self.entries.push(Entry {
            index,
            term,
            payload,
        });
        index
    }

    /// Appends a leader's entries that follow `prev_index`, the follower's path (§5.3): an
    /// entry that conflicts with ours (same index, other term) removes ours and all after
    /// it; entries we already hold are kept as they are, so a stale, reordered Append can
    /// never truncate what a newer one added. Returns the index of the last entry received,
    /// or None if our log does not hold `prev_index` with `prev_term`.
    pub fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Vec<Entry>,
    ) -> Option<LogIndex> {
        if !self.matches(prev_index, prev_term) {
            return None;
        }
        let last_new = prev_index + entries.len() as u64;
        for entry in entries {
            match self.term(entry.index) {
                Some(term) if term == entry.term => continue,
                Some(_) => {
                    assert!(
                        entry.index > self.commit,
                        "a leader overwrote committed entry {} (commit {})",
                        entry.index,
                        self.commit
                    );
                    self.truncate_from(entry.index);
                }
                None => {}
            }
            self.append(entry.term, entry.payload);
        }
        Some(last_new)
    }

    fn truncate_from(&mut self, index: LogIndex) {
        let keep = (index - self.first_index()) as usize;
        self.entries.truncate(keep);
        self.configs.retain(|(i, _)| *i < index);
        self.unstable = self.unstable.min(index);
        self.persisted = self.persisted.min(index - 1);
    }

    /// The first index of the term that holds `index`, scanning back no further than the
    /// snapshot: the hint a follower sends when it rejects an Append.
    pub fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let term = self.term(index).expect("index within the log");
        let mut first = index;
        while first > self.first_index() && self.term(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// The last index holding `term`, if the log has any entry of it.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.term <= term)
            .filter(|e| e.term == term)
            .map(|e| e.index)
    }

    /// Moves the commit index forward (never back).
    pub fn commit_to(&mut self, index: LogIndex) -> bool {
        if index <= self.commit {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "commit {index} beyond the last index {}",
            self.last_index()
        );
        self.commit = index;
        true
    }

    /// Entries not yet handed out for persistence; from now on they count as handed out.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        if self.unstable > self.last_index() {
            return Vec::new();
        }
        let from = (self.unstable - self.first_index()) as usize;
        self.unstable = self.last_index() + 1;
        self.entries[from..].to_vec()
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable <= self.last_index()
    }

    /// The application confirmed everything handed out so far is durable.
    pub fn persisted_to(&mut self, index: LogIndex) {
        self.persisted = self.persisted.max(index.min(self.unstable - 1));
    }

    /// Committed entries not yet handed to the application; from now on they count as applied.
    pub fn take_committed(&mut self) -> Vec<Entry> {
        if self.applied >= self.commit {
            return Vec::new();
        }
        let from = (self.applied + 1 - self.first_index()) as usize;
        let to = (self.commit + 1 - self.first_index()) as usize;
        self.applied = self.commit;
        self.entries[from..to].to_vec()
    }

    pub fn has_committed(&self) -> bool {
        self.applied < self.commit
    }

    /// Forgets the entries up to `index`, which the application has captured in a snapshot.
    pub fn compact(&mut self, index: LogIndex) -> Result<(), String> {
        if index <= self.snapshot.index {
            return Ok(());
        }
        if index > self.applied {
            return Err(format!(
                "cannot compact to {index}: only {} is applied",
                self.applied
            ));
        }
        if index > self.persisted {
            return Err(format!(
                "cannot compact to {index}: only {} is durable",
                self.persisted
            ));
        }
        let term = self.term(index).expect("applied entries are in the log");
        let membership = self.membership_at(index).clone();
        let drop = (index - self.snapshot.index) as usize;
        self.entries.drain(..drop);
        self.configs.retain(|(i, _)| *i > index);
        self.snapshot = SnapshotMeta {
            index,
            term,
            membership,
        };
        Ok(())
    }

    /// Replaces the whole log by a snapshot received from the leader (§7).
    pub fn install_snapshot(&mut self, meta: SnapshotMeta) {
        assert!(
            meta.index > self.commit,
            "installing a snapshot behind the commit index"
        );
        self.entries.clear();
        self.configs.clear();
        self.commit = meta.index;
        self.applied = meta.index;
        self.unstable = meta.index + 1;
        self.persisted = meta.index;
        self.snapshot = meta.clone();
        self.pending_snapshot = Some(meta);
    }

    pub fn take_pending_snapshot(&mut self) -> Option<SnapshotMeta> {
        self.pending_snapshot.take()
    }

    pub fn has_pending_snapshot(&self) -> bool {
        self.pending_snapshot.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn log_of_terms(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &term)| Entry {
                index: i as u64 + 1,
                term,
                payload: Payload::Command(Bytes::from(vec![i as u8])),
            })
            .collect();
        RaftLog::restore(SnapshotMeta::default(), entries, 0, 0)
    }

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Noop,
        }
    }

    #[test]
    fn append_truncates_only_from_the_first_conflict() {
        let mut log = log_of_terms(&[1, 1, 2, 2]);
        assert_eq!(
            log.maybe_append(2, 1, vec![entry(3, 2), entry(4, 3)]),
            Some(4)
        );
        assert_eq!(log.term(3), Some(2), "matching entry is kept");
        assert_eq!(log.term(4), Some(3), "conflicting entry is replaced");
        assert_eq!(log.last_index(), 4);
    }

    #[test]
    fn stale_append_does_not_truncate_newer_entries() {
        let mut log = log_of_terms(&[1, 1, 1, 1]);
        assert_eq!(log.maybe_append(1, 1, vec![entry(2, 1)]), Some(2));
        assert_eq!(log.last_index(), 4);
    }

    #[test]
    fn append_rejects_a_mismatched_previous_entry() {
        let mut log = log_of_terms(&[1, 2]);
        assert_eq!(log.maybe_append(2, 1, vec![entry(3, 3)]), None);
        assert_eq!(log.maybe_append(5, 2, vec![]), None);
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let log = log_of_terms(&[1, 2, 2]);
        assert!(log.is_up_to_date(1, 3));
        assert!(log.is_up_to_date(3, 2));
        assert!(!log.is_up_to_date(2, 2));
        assert!(!log.is_up_to_date(10, 1));
    }

    #[test]
    fn term_hints_find_term_boundaries() {
        let log = log_of_terms(&[1, 1, 4, 4, 4, 5]);
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.last_index_of_term(4), Some(5));
        assert_eq!(log.last_index_of_term(3), None);
        assert_eq!(log.last_index_of_term(1), Some(2));
    }

    #[test]
    fn compaction_keeps_the_boundary_term_and_the_config() {
        let mut log = log_of_terms(&[1, 1, 2, 2]);
        let m = Membership::with_voters([("n1", "a".to_string())]);
        log.append(2, Payload::Membership(m.clone()));
        log.take_unstable();
        log.persisted_to(5);
        log.commit_to(5);
        log.take_committed();
        log.compact(5).unwrap();
        assert_eq!(log.first_index(), 6);
        assert_eq!(log.term(5), Some(2));
        assert_eq!(log.term(4), None);
        assert_eq!(log.membership(), &m);
        assert!(log.compact(7).is_err());
    }

    #[test]
    fn slices_are_bounded_by_bytes_but_never_empty() {
        let log = log_of_terms(&[1; 10]);
        assert_eq!(log.slice(1, 0).len(), 1);
        assert_eq!(log.slice(1, 17 * 3).len(), 3);
        assert_eq!(log.slice(8, usize::MAX).len(), 3);
    }
}
