//! Network faults on a node's peer traffic, switched on through the admin service: the lab
//! partitions, loses and delays messages between nodes while clients still reach them all.
//!
//! Why here and not in proxies the lab owns: the transport already decides message by
//! message where each goes, so a rule is one lookup per message and the node's code stays
//! one path; and a blocked link looks to the node exactly as a real partition does, since
//! nothing it sends arrives, its requests time out, and an open stream carries no data.
//! Faults are outbound: a partition is two nodes each blocking the other, and a one-way
//! partition is one of them blocking.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::raft::Rng;

/// What happens to messages to one peer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub block: bool,
    pub drop_rate: f64,
    pub delay_ms: (u64, u64),
}

/// The fate of one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Drop,
    Delay(Duration),
}

pub struct Faults {
    rules: Mutex<(BTreeMap<String, Rule>, Rng)>,
    dropped: AtomicU64,
    delayed: AtomicU64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            rules: Mutex::new((BTreeMap::new(), Rng::new(0))),
            dropped: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
        }
    }
}

impl Faults {
    /// Replaces every rule (an empty set heals the network).
    pub fn set(&self, rules: BTreeMap<String, Rule>, seed: u64) {
        *self.rules.lock().expect("faults lock") = (rules, Rng::new(seed));
    }

    /// Decides what happens to the next message to `peer`.
    pub fn fate(&self, peer: &str) -> Fate {
        let mut guard = self.rules.lock().expect("faults lock");
        let (rules, rng) = &mut *guard;
        let Some(rule) = rules.get(peer) else {
            return Fate::Deliver;
        };
        let lost = rule.block
            || (rule.drop_rate > 0.0
                && (rng.next_u64() % 1_000_000) < (rule.drop_rate * 1_000_000.0) as u64);
        if lost {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Fate::Drop;
        }
        self.delay(rule, rng)
    }

    /// A delay drawn from the rule's range, if it has one.
    fn delay(&self, rule: &Rule, rng: &mut Rng) -> Fate {
        let (lo, hi) = rule.delay_ms;
        if hi == 0 {
            return Fate::Deliver;
        }
        let ms = if hi > lo { rng.range(lo, hi + 1) } else { lo };
        self.delayed.fetch_add(1, Ordering::Relaxed);
        Fate::Delay(Duration::from_millis(ms))
    }

    /// What happens to the next chunk of a stream to `peer` (a snapshot transfer): a
    /// blocked link cuts the stream, a delay holds each chunk back. Lost packets on a
    /// stream are resent underneath, so a drop rate costs nothing here.
    pub fn chunk_fate(&self, peer: &str) -> Fate {
        let mut guard = self.rules.lock().expect("faults lock");
        let (rules, rng) = &mut *guard;
        match rules.get(peer) {
            Some(rule) if rule.block => Fate::Drop,
            Some(rule) => self.delay(rule, rng),
            None => Fate::Deliver,
        }
    }

    pub fn counters(&self) -> (u64, u64) {
        (
            self.dropped.load(Ordering::Relaxed),
            self.delayed.load(Ordering::Relaxed),
        )
    }

    /// The rules in force, in a line (empty when none).
    pub fn describe(&self) -> String {
        let guard = self.rules.lock().expect("faults lock");
        let mut out = String::new();
        for (peer, r) in &guard.0 {
            if !out.is_empty() {
                out.push_str("; ");
            }
            let _ = write!(out, "to {peer}:");
            if r.block {
                out.push_str(" blocked");
            }
            if r.drop_rate > 0.0 {
                let _ = write!(out, " drop {:.0}%", r.drop_rate * 100.0);
            }
            if r.delay_ms.1 > 0 {
                let _ = write!(out, " delay {}-{} ms", r.delay_ms.0, r.delay_ms.1);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_decide_each_message_and_replay_with_the_seed() {
        let f = Faults::default();
        assert_eq!(f.fate("n2"), Fate::Deliver);
        let rules = BTreeMap::from([
            (
                "n2".to_string(),
                Rule {
                    block: true,
                    ..Rule::default()
                },
            ),
            (
                "n3".to_string(),
                Rule {
                    drop_rate: 0.5,
                    delay_ms: (5, 10),
                    ..Rule::default()
                },
            ),
        ]);
        f.set(rules.clone(), 7);
        assert_eq!(f.fate("n2"), Fate::Drop);
        let first: Vec<Fate> = (0..50).map(|_| f.fate("n3")).collect();
        assert!(first.contains(&Fate::Drop) && first.iter().any(|x| matches!(x, Fate::Delay(_))));
        f.set(rules, 7);
        f.fate("n2");
        let again: Vec<Fate> = (0..50).map(|_| f.fate("n3")).collect();
        assert_eq!(first, again, "the same seed makes the same choices");
        assert!(f.describe().contains("to n2: blocked"));
        f.set(BTreeMap::new(), 0);
        assert_eq!(f.fate("n2"), Fate::Deliver);
        assert_eq!(f.describe(), "");
    }
}
