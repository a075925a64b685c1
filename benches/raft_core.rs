//! How fast the pure Raft core commits: a 3-node cluster in memory, messages handed from
//! node to node at once, no disk. It measures the core's own cost per entry (batching,
//! pipelining, commit counting), the ceiling under any real network and disk.
//!
//! `cargo bench --bench raft_core` prints entries committed per second for several batch
//! sizes (proposals that reach the leader between two Readies).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftchat::raft::{Config, Membership, Message, Node, Restored};

fn cluster() -> Vec<Node> {
    let ids = ["n1", "n2", "n3"];
    let membership = Membership::with_voters(ids.iter().map(|id| (*id, format!("{id}:0"))));
    ids.iter()
        .map(|id| {
            let mut cfg = Config::new(*id);
            cfg.max_inflight = 256;
            Node::new(cfg, Restored::default(), Some(membership.clone())).unwrap()
        })
        .collect()
}

/// Runs every node's Ready and delivers every message until the cluster is quiet.
/// Returns how many entries the leader saw committed.
fn stabilize(nodes: &mut [Node], queue: &mut VecDeque<Message>) -> u64 {
    let mut committed = 0;
    loop {
        for (i, n) in nodes.iter_mut().enumerate() {
            while n.has_ready() {
                let rd = n.ready();
                if i == 0 {
                    committed += rd.committed_entries.len() as u64;
                }
                queue.extend(rd.messages);
                queue.extend(rd.persisted_messages);
                n.advance();
            }
        }
        if queue.is_empty() {
            return committed;
        }
        while let Some(m) = queue.pop_front() {
            let to = m.to.as_bytes()[1] - b'1';
            nodes[to as usize].step(m);
        }
    }
}

fn run(batch: usize, duration: Duration) -> f64 {
    let mut nodes = cluster();
    let mut queue = VecDeque::new();
    nodes[0].campaign();
    stabilize(&mut nodes, &mut queue);
    assert!(nodes[0].is_leader());
    let payload = Bytes::from(vec![b'x'; 100]);
    let mut committed = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        for _ in 0..batch {
            nodes[0].propose(payload.clone()).unwrap();
        }
        committed += stabilize(&mut nodes, &mut queue);
        // Keep memory flat, as a real node's snapshots do.
        let applied = nodes.iter().map(|n| n.applied()).min().unwrap();
        if applied > 100_000 {
            for n in nodes.iter_mut() {
                n.compact(applied).unwrap();
            }
        }
    }
    committed as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let duration = Duration::from_millis(if quick { 50 } else { 2_000 });
    println!("raft core, 3 nodes in memory, 100-byte entries");
    println!("{:>8}  {:>16}", "batch", "entries/s");
    for batch in [1, 16, 256, 4096] {
        println!("{batch:>8}  {:>16.0}", run(batch, duration));
    }
}
