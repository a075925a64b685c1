//! `raftchat inspect DIR`: what a stopped node left in its data directory, read without
//! changing anything. Every checksum is verified on the way; the lab's end-of-run checks
//! use this same reader.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::chat::{Command, Envelope, query};
use crate::raft::{Entry, HardState, LogIndex, Payload, SnapshotMeta, Term};
use crate::storage::log::{self, TornTail};
use crate::storage::node::{Layout, latest_snapshot};
use crate::storage::snapshot::SnapshotReader;
use crate::storage::{StorageError, hardstate, state};

/// Everything `inspect` found.
#[derive(Debug)]
pub struct Report {
    pub dir: PathBuf,
    pub hard_state: HardState,
    pub snapshot: Option<SnapshotMeta>,
    /// The entries on disk after the snapshot.
    pub entries: Vec<Entry>,
    pub segments: usize,
    /// A torn record at the end of the log (the node cuts it off when it next starts).
    pub torn: Option<TornTail>,
    pub applied: LogIndex,
    /// The canonical dump of the chat state.
    pub dump: String,
}

impl Report {
    pub fn first(&self) -> Option<(LogIndex, Term)> {
        self.entries.first().map(|e| (e.index, e.term))
    }

    pub fn last(&self) -> Option<(LogIndex, Term)> {
        self.entries.last().map(|e| (e.index, e.term))
    }
}

/// Reads a node's data directory.
pub fn read(dir: &Path) -> Result<Report, StorageError> {
    if !dir.is_dir() {
        return Err(StorageError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        });
    }
    let layout = Layout::new(dir);
    let hard_state = hardstate::load(dir)?;
    let snapshot = match latest_snapshot(&layout.snapshots())? {
        None => None,
        Some((path, meta)) => {
            // Reading it through checks every chunk and the trailer.
            let mut reader = SnapshotReader::open(&path)?;
            while reader.next_chunk()?.is_some() {}
            Some(meta)
        }
    };
    let contents = log::read(&layout.log())?;
    let after = snapshot.as_ref().map_or(0, |s| s.index);
    let entries: Vec<Entry> = contents
        .entries
        .into_iter()
        .filter(|e| e.index > after)
        .collect();
    let (applied, dump) = if layout.state().exists() {
        state::read_only(&layout.state(), |applied, store| {
            Ok((applied, query::dump(store)?))
        })?
    } else {
        (0, String::new())
    };
    Ok(Report {
        dir: dir.to_path_buf(),
        hard_state,
        snapshot,
        entries,
        segments: contents.segments.len(),
        torn: contents.torn,
        applied,
        dump,
    })
}

/// A one-line description of an entry, for `inspect --log`.
pub fn describe(entry: &Entry) -> String {
    match &entry.payload {
        Payload::Noop => "no-op (a new leader's first entry)".into(),
        Payload::Membership(m) => {
            let voters: Vec<&str> = m.voters.keys().map(String::as_str).collect();
            let learners: Vec<&str> = m.learners.keys().map(String::as_str).collect();
            let mut s = format!("membership: voters {}", voters.join(" "));
            if !learners.is_empty() {
                let _ = write!(s, "; learners {}", learners.join(" "));
            }
            s
        }
        Payload::Command(data) => match Envelope::decode(data) {
            Err(e) => format!("command ({} bytes, undecodable: {e})", data.len()),
            Ok(env) => {
                let what = match env.command {
                    Command::Register(c) => format!("register {}", c.user),
                    Command::Login(c) => format!("login {}", c.user),
                    Command::Logout(c) => format!("logout {}", c.user),
                    Command::Send(c) => format!("send {} -> {}: {:?}", c.user, c.to, c.text),
                    Command::Read(c) if c.with.is_empty() => format!("read {} (unread)", c.user),
                    Command::Read(c) => format!("read {} (with {})", c.user, c.with),
                    Command::DeleteMessages(c) if c.all => {
                        format!("delete all messages of {}", c.user)
                    }
                    Command::DeleteMessages(c) => {
                        format!("delete messages of {}: {:?}", c.user, c.ids)
                    }
                    Command::DeleteAccount(c) => format!("delete account {}", c.user),
                };
                format!("{what}  [client {:x} #{}]", env.client_id, env.seq)
            }
        },
    }
}

/// The report as a person reads it.
pub fn render(r: &Report, with_log: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "data directory: {}", r.dir.display());
    let vote = r.hard_state.vote.as_deref().unwrap_or("none");
    let _ = writeln!(out, "term: {}  vote: {vote}", r.hard_state.term);
    match &r.snapshot {
        None => {
            let _ = writeln!(out, "snapshot: none");
        }
        Some(s) => {
            let voters: Vec<&str> = s.membership.voters.keys().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "snapshot: up to entry {} (term {}), voters {}",
                s.index,
                s.term,
                voters.join(" ")
            );
        }
    }
    match (r.first(), r.last()) {
        (Some((fi, ft)), Some((li, lt))) => {
            let _ = writeln!(
                out,
                "log: entries {fi} (term {ft}) to {li} (term {lt}) in {} segment{}, checksums ok",
                r.segments,
                if r.segments == 1 { "" } else { "s" }
            );
        }
        _ => {
            let _ = writeln!(out, "log: empty, checksums ok");
        }
    }
    if let Some(t) = &r.torn {
        let _ = writeln!(
            out,
            "log tail: a torn record of {} bytes at byte {} of {} (a crash mid-write; cut off at next start)",
            t.bytes,
            t.offset,
            t.path.display()
        );
    }
    let _ = writeln!(out, "applied: {}", r.applied);
    let _ = writeln!(out, "chat state:");
    for line in r.dump.lines() {
        let _ = writeln!(out, "  {line}");
    }
    if with_log {
        let _ = writeln!(out, "log entries:");
        for e in &r.entries {
            let _ = writeln!(out, "  {:>8}  term {:<4} {}", e.index, e.term, describe(e));
        }
    }
    out
}
