//! `raftchat inspect` as a person runs it: on a data directory written by the storage
//! layer, on a corrupt one, and on one that does not exist.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use raftchat::chat::cmd::{Register, Send};
use raftchat::chat::{self, Envelope};
use raftchat::raft::{Entry, HardState, Membership, Payload, SnapshotMeta};
use raftchat::storage::node::NodeStorage;

fn entry(index: u64, command: chat::Command) -> Entry {
    let env = Envelope {
        client_id: 9,
        seq: index,
        time_ms: 0,
        command,
    };
    Entry {
        index,
        term: 2,
        payload: Payload::Command(Bytes::from(env.encode())),
    }
}

/// A data directory with a snapshot at 3 and entries 4 to 5 after it, all applied.
fn node_dir(dir: &Path) {
    let reg = |user: &str| {
        chat::Command::Register(Register {
            user: user.into(),
            password_hash: "h".into(),
            token: format!("t-{user}"),
        })
    };
    let send = |text: &str| {
        chat::Command::Send(Send {
            user: "alice".into(),
            token: "t-alice".into(),
            to: "bob".into(),
            text: text.into(),
        })
    };
    let log = vec![
        entry(1, reg("alice")),
        entry(2, reg("bob")),
        entry(3, send("hello bob")),
        entry(4, send("still here")),
        Entry {
            index: 5,
            term: 3,
            payload: Payload::Noop,
        },
    ];
    let (mut s, _) = NodeStorage::open(dir, 1 << 20).unwrap();
    let hs = HardState {
        term: 3,
        vote: Some("n2".into()),
    };
    s.persist(&log, Some(&hs)).unwrap();
    s.apply(&log[..3]).unwrap();
    let meta = SnapshotMeta {
        index: 3,
        term: 2,
        membership: Membership::with_voters([("n1", "a".into()), ("n2", "b".into())]),
    };
    s.take_snapshot(meta).unwrap();
    s.apply(&log[3..]).unwrap();
    s.checkpoint().unwrap();
}

fn inspect(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raftchat"))
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in walk(dir) {
        let name = entry.strip_prefix(dir).unwrap().display().to_string();
        out.insert(name, std::fs::read(&entry).unwrap());
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn inspect_prints_term_log_snapshot_applied_and_state() {
    let dir = tempfile::tempdir().unwrap();
    node_dir(dir.path());
    let before = files(dir.path());
    let (code, out, err) = inspect(&[dir.path().to_str().unwrap(), "--log"]);
    assert_eq!(code, 0, "{err}");
    let expected = format!(
        "data directory: {}
term: 3  vote: n2
snapshot: up to entry 3 (term 2), voters n1 n2
log: entries 4 (term 2) to 5 (term 3) in 1 segment, checksums ok
applied: 5
chat state:
  accounts: 2
    alice
    bob
  messages: 2
    alice -> bob: \"hello bob\" (unread)
    alice -> bob: \"still here\" (unread)
log entries:
         4  term 2    send alice -> bob: \"still here\"  [client 9 #4]
         5  term 3    no-op (a new leader's first entry)
",
        dir.path().display()
    );
    assert_eq!(out, expected);
    assert_eq!(files(dir.path()), before, "inspect changed the directory");
}

#[test]
fn inspect_names_the_file_and_offset_of_corruption() {
    let dir = tempfile::tempdir().unwrap();
    node_dir(dir.path());
    let segment = walk(&dir.path().join("log")).pop().unwrap();
    let mut data = std::fs::read(&segment).unwrap();
    // The first record starts after the 8-byte header; damage its payload.
    data[8 + 8 + 3] ^= 0xff;
    std::fs::write(&segment, &data).unwrap();
    let (code, out, err) = inspect(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(
        err.trim_end(),
        format!(
            "raftchat inspect: corrupt log record in {} at byte 8: checksum mismatch",
            segment.display()
        )
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn inspect_of_a_missing_directory_says_so() {
    let (code, _, err) = inspect(&["/nonexistent/raftchat-node"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        "raftchat inspect: /nonexistent/raftchat-node: no such directory"
    );
}
