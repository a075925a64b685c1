//! What is checked after every run, on every node's data directory, offline, with the same
//! reader as `raftchat inspect` (SCENARIOS.md, "Always checked at the end"):
//! 1. every log and snapshot file decodes and its checksums hold;
//! 2. the committed prefixes of all logs agree;
//! 3. every write a client saw acknowledged is in the log, at the index it was told;
//! 4. rebuilding each node's state from its snapshot and log gives its own state, and
//!    nodes that applied the same index hold the same state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::history::Acked;
use crate::chat::{Envelope, query};
use crate::inspect::{self, Report};
use crate::raft::{Entry, Payload};
use crate::storage::node::{Layout, latest_snapshot};
use crate::storage::snapshot::SnapshotReader;
use crate::storage::state::StateDb;

pub struct NodeDir {
    pub name: String,
    pub dir: PathBuf,
}

/// What one node's data directory held, read offline.
#[derive(Clone, Debug)]
pub struct NodeSummary {
    pub name: String,
    /// Every file decoded and its checksums held (or why not).
    pub checksums: Result<(), String>,
    /// Entries in the log on disk, after the snapshot.
    pub entries: usize,
    pub snapshot: Option<u64>,
    /// The last entry on disk: index and term (the snapshot's when the log is empty).
    pub last: Option<(u64, u64)>,
    pub applied: u64,
    /// CRC32C of the canonical dump of its chat state.
    pub fingerprint: u32,
}

/// What the checks found.
pub struct Checked {
    /// One line per failed check (empty if all hold).
    pub failures: Vec<String>,
    /// Every node that left a data directory, in the order given.
    pub nodes: Vec<NodeSummary>,
}

/// Runs the checks.
pub fn check(nodes: &[NodeDir], acked: &[Acked]) -> Checked {
    let mut failures = Vec::new();
    let mut reports: Vec<(&str, Report)> = Vec::new();
    let mut summaries = Vec::new();
    for n in nodes {
        if !n.dir.exists() {
            continue; // never started
        }
        match inspect::read(&n.dir) {
            Ok(r) => {
                summaries.push(NodeSummary {
                    name: n.name.clone(),
                    checksums: Ok(()),
                    entries: r.entries.len(),
                    snapshot: r.snapshot.as_ref().map(|s| s.index),
                    last: r
                        .last()
                        .or_else(|| r.snapshot.as_ref().map(|s| (s.index, s.term))),
                    applied: r.applied,
                    fingerprint: crc32c::crc32c(r.dump.as_bytes()),
                });
                reports.push((&n.name, r));
            }
            Err(e) => {
                failures.push(format!("checksums: {}: {e}", n.name));
                summaries.push(NodeSummary {
                    name: n.name.clone(),
                    checksums: Err(e.to_string()),
                    entries: 0,
                    snapshot: None,
                    last: None,
                    applied: 0,
                    fingerprint: 0,
                });
            }
        }
    }
    let logs: Vec<BTreeMap<u64, &Entry>> = reports
        .iter()
        .map(|(_, r)| r.entries.iter().map(|e| (e.index, e)).collect())
        .collect();
    // 2. Committed prefixes agree.
    for (i, (a, ra)) in reports.iter().enumerate() {
        for (j, (b, rb)) in reports.iter().enumerate().skip(i + 1) {
            let upto = ra.applied.min(rb.applied);
            for (index, ea) in logs[i].range(..=upto) {
                if let Some(eb) = logs[j].get(index)
                    && ea != eb
                {
                    failures.push(format!(
                        "committed prefixes: {a} and {b} differ at entry {index} (term {} vs {})",
                        ea.term, eb.term
                    ));
                    break;
                }
            }
        }
    }
    // 3. Every acknowledged write is in the log where the client was told.
    let snapshot_top = reports
        .iter()
        .filter_map(|(_, r)| r.snapshot.as_ref().map(|s| s.index))
        .max()
        .unwrap_or(0);
    for a in acked {
        let found: Vec<&Entry> = logs
            .iter()
            .filter_map(|l| l.get(&a.index).copied())
            .collect();
        if found.is_empty() {
            if a.index > snapshot_top {
                failures.push(format!(
                    "acknowledged writes: {} (entry {}) is in no node's log or snapshot",
                    a.what, a.index
                ));
            }
            continue;
        }
        let matches = |e: &Entry| match &e.payload {
            Payload::Command(data) => Envelope::decode(data)
                .is_ok_and(|env| env.client_id == a.client_id && env.seq == a.seq),
            _ => false,
        };
        if !found.iter().any(|e| matches(e)) {
            failures.push(format!(
                "acknowledged writes: {} was acknowledged at entry {}, which holds another command",
                a.what, a.index
            ));
        }
    }
    // 4. Each state rebuilt from snapshot and log is the node's own; equal indexes, equal
    //    states.
    let mut by_applied: BTreeMap<u64, (&str, &str)> = BTreeMap::new();
    for (k, (name, r)) in reports.iter().enumerate() {
        match rebuild(&nodes_dir(nodes, name), r, &logs[k]) {
            Ok(dump) if dump == r.dump => {}
            Ok(_) => failures.push(format!(
                "rebuild: {name}: its snapshot and log give another state than its database"
            )),
            Err(e) => failures.push(format!("rebuild: {name}: {e}")),
        }
        match by_applied.get(&r.applied) {
            Some((other, dump)) if *dump != r.dump => failures.push(format!(
                "states: {name} and {other} applied entry {} but hold different states",
                r.applied
            )),
            Some(_) => {}
            None => {
                by_applied.insert(r.applied, (name, &r.dump));
            }
        }
    }
    Checked {
        failures,
        nodes: summaries,
    }
}

fn nodes_dir(nodes: &[NodeDir], name: &str) -> PathBuf {
    nodes
        .iter()
        .find(|n| n.name == name)
        .map(|n| n.dir.clone())
        .expect("a reported node")
}

/// The state a node's snapshot and log give, up to its applied index.
fn rebuild(
    dir: &std::path::Path,
    r: &Report,
    log: &BTreeMap<u64, &Entry>,
) -> Result<String, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = scratch.path().join("state.redb");
    let mut state =
        match latest_snapshot(&Layout::new(dir).snapshots()).map_err(|e| e.to_string())? {
            Some((snap, _)) => {
                let mut reader = SnapshotReader::open(&snap).map_err(|e| e.to_string())?;
                StateDb::import(&path, &mut reader).map_err(|e| e.to_string())?
            }
            None => StateDb::open(&path).map_err(|e| e.to_string())?,
        };
    // (BTreeMap::range panics on an empty inclusive range, so guard it.)
    let entries: Vec<Entry> = if r.applied > state.applied() {
        log.range(state.applied() + 1..=r.applied)
            .map(|(_, e)| (*e).clone())
            .collect()
    } else {
        Vec::new()
    };
    let expected = r.applied.saturating_sub(state.applied());
    if entries.len() as u64 != expected {
        return Err(format!(
            "the log lacks entries between {} and {}",
            state.applied(),
            r.applied
        ));
    }
    state.apply(&entries).map_err(|e| e.to_string())?;
    state.query(query::dump).map_err(|e| e.to_string())
}
