//! How fast the storage layer is, on this machine's disk:
//! - the raw cost of one fdatasync (write 100 bytes, sync), p50 and p99;
//! - the Raft log with group commit: entries per second and per fsync when B entries of
//!   100 bytes share each sync;
//! - a node's write path without the network: B entries appended and synced, then applied,
//!   with a checkpoint every 200 ms as the driver does; µs per entry for each part;
//! - applying chat messages to the state database, with a checkpoint per batch;
//! - restart: opening a data directory whose state holds N messages (1,000,000 by
//!   default, `BENCH_MESSAGES` to change) until the first query is answered.
//!
//! `cargo bench --bench storage`. Every loop is bounded in count and in time.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftchat::chat::cmd::Send;
use raftchat::chat::{self, query};
use raftchat::raft::{Entry, Membership, Payload};
use raftchat::storage::log::LogStore;
use raftchat::storage::node::NodeStorage;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn raw_fdatasync(dir: &std::path::Path) {
    let path = dir.join("fsync-probe");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < 2000 && started.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        f.write_all(&[b'x'; 100]).unwrap();
        f.sync_data().unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "raw fdatasync (100-byte append):  p50 {:>7.3} ms   p99 {:>7.3} ms   ({} samples)",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.len()
    );
}

fn group_commit(dir: &std::path::Path) {
    println!("raft log, 100-byte entries, one fsync per batch:");
    println!(
        "{:>8} {:>14} {:>12} {:>14}",
        "batch", "entries/s", "fsyncs/s", "entries/fsync"
    );
    for batch in [1u64, 16, 64, 256] {
        let sub = dir.join(format!("log-{batch}"));
        let (mut log, _, _) = LogStore::open(&sub, 64 << 20).unwrap();
        let payload = Bytes::from(vec![b'm'; 100]);
        let mut next = 1;
        let mut syncs = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) && next < 2_000_000 {
            let entries: Vec<Entry> = (next..next + batch)
                .map(|index| Entry {
                    index,
                    term: 1,
                    payload: Payload::Command(payload.clone()),
                })
                .collect();
            log.append(&entries).unwrap();
            log.sync().unwrap();
            next += batch;
            syncs += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let entries = (next - 1) as f64;
        println!(
            "{batch:>8} {:>14.0} {:>12.0} {:>14}",
            entries / secs,
            syncs as f64 / secs,
            batch
        );
    }
}

/// What one node spends per entry on its disk and state, batch by batch, as its driver
/// does it: persist (append and fdatasync), apply, and a checkpoint every 200 ms.
fn write_path(dir: &std::path::Path) {
    use raftchat::chat::cmd::Register;
    println!("a node's write path, 100-byte messages among 64 users, checkpoint every 200 ms:");
    println!(
        "{:>8} {:>12} {:>12} {:>14} {:>12}",
        "batch", "persist µs", "apply µs", "checkpoint µs", "entries/s"
    );
    let node = dir.join("write-path");
    let (mut s, _) = NodeStorage::open(&node, 64 << 20).unwrap();
    let mut index = 0;
    let users: Vec<Entry> = (0..64)
        .map(|u| {
            index += 1;
            raftchat::bench::fixture::command_entry(
                index,
                chat::Command::Register(Register {
                    user: format!("user{u}"),
                    password_hash: "fixture".into(),
                    token: format!("t-user{u}"),
                }),
            )
        })
        .collect();
    s.persist(&users, None).unwrap();
    s.apply(&users).unwrap();
    s.checkpoint().unwrap();
    let text = "x".repeat(100);
    for batch in [1u64, 10, 50] {
        let (mut persist, mut apply, mut checkpoint) = (0.0, 0.0, 0.0);
        let (started, mut last_checkpoint, mut done) = (Instant::now(), Instant::now(), 0u64);
        while started.elapsed() < Duration::from_secs(3) && done < 200_000 {
            let entries: Vec<Entry> = (0..batch)
                .map(|_| {
                    index += 1;
                    let (from, to) = (index % 64, (index + 1) % 64);
                    raftchat::bench::fixture::command_entry(
                        index,
                        chat::Command::Send(Send {
                            user: format!("user{from}"),
                            token: format!("t-user{from}"),
                            to: format!("user{to}"),
                            text: text.clone(),
                        }),
                    )
                })
                .collect();
            let t = Instant::now();
            s.persist(&entries, None).unwrap();
            persist += t.elapsed().as_secs_f64();
            let t = Instant::now();
            s.apply(&entries).unwrap();
            apply += t.elapsed().as_secs_f64();
            if last_checkpoint.elapsed() >= Duration::from_millis(200) {
                let t = Instant::now();
                s.checkpoint().unwrap();
                checkpoint += t.elapsed().as_secs_f64();
                last_checkpoint = Instant::now();
            }
            done += batch;
        }
        let per = |secs: f64| secs * 1e6 / done as f64;
        println!(
            "{batch:>8} {:>12.1} {:>12.1} {:>14.1} {:>12.0}",
            per(persist),
            per(apply),
            per(checkpoint),
            done as f64 / started.elapsed().as_secs_f64()
        );
    }
}

fn restart(dir: &std::path::Path, messages: u64) {
    let node = dir.join("node");
    // The same state `raftchat bench` restarts on: 100 users, N messages of 100 bytes,
    // applied in batches with a checkpoint each, then a snapshot.
    let started = Instant::now();
    raftchat::bench::fixture::build(
        &node,
        Membership::with_voters([("n1", "127.0.0.1:1".into())]),
        100,
        messages,
    )
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "apply: {messages} messages of 100 bytes, then a snapshot, in {secs:.1} s ({:.0}/s, batches of 5000 with a checkpoint each)",
        messages as f64 / secs
    );
    let (mut s, _) = NodeStorage::open(&node, 64 << 20).unwrap();
    let mut index = s.state().applied();
    let mut next = |c| {
        index += 1;
        raftchat::bench::fixture::command_entry(index, c)
    };
    // A tail of the log after the snapshot, as a running node would have.
    let tail: Vec<Entry> = (0..500)
        .map(|i| {
            next(chat::Command::Send(Send {
                user: "user0".into(),
                token: "t-user0".into(),
                to: "user1".into(),
                text: format!("tail {i}"),
            }))
        })
        .collect();
    s.persist(&tail, None).unwrap();
    drop(s);
    let started = Instant::now();
    let (s, rec) = NodeStorage::open(&node, 64 << 20).unwrap();
    let exists = s
        .state()
        .query(|st| query::user_exists(st, "user42"))
        .unwrap();
    let restart = started.elapsed();
    assert!(exists && rec.entries.len() == 500);
    let size: u64 = std::fs::metadata(node.join("state.redb")).unwrap().len();
    println!(
        "restart with {messages} messages ({} MB database, 500-entry log tail): open to first query {:.0} ms",
        size >> 20,
        restart.as_secs_f64() * 1e3
    );
    drop(s);
    process_restart(&node, messages);
}

/// The same data directory under a real `raftchat node` process: from spawning it to its
/// first linearizable read (which needs an elected leader and its no-op committed).
fn process_restart(dir: &std::path::Path, messages: u64) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_raftchat"))
        .args([
            "node",
            "--id",
            "n1",
            "--listen",
            &addr,
            "--election-timeout-ms",
            "150-300",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let served = runtime.block_on(async {
        let mut client = raftchat::client::Client::new(vec![addr]);
        client.timeouts.attempt = Duration::from_millis(200);
        client.timeouts.deadline = Duration::from_secs(60);
        client.check_username("user42").await
    });
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(served, Ok(true));
    println!(
        "node process with {messages} messages: start to first linearizable read {:.0} ms \
         (includes one election of 150-300 ms)",
        elapsed.as_secs_f64() * 1e3
    );
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let messages = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 1_000_000 });
    // On the target directory's disk, not a tmpfs, so fsync costs what it really costs.
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(base).unwrap();
    raw_fdatasync(dir.path());
    group_commit(dir.path());
    write_path(dir.path());
    restart(dir.path(), messages);
}
