//! A node data directory that already holds a large chat state, built offline through the
//! storage layer (the same code a node applies committed entries with), so that a restart
//! with 1,000,000 messages can be measured without first sending them one by one.
//!
//! The state is `users` accounts (`user0`, ... with session tokens `t-user0`, ...) and
//! `messages` messages of 100 bytes between them, committed at term 1 and compacted into a
//! snapshot whose configuration is `members`: the directory is what a member of that
//! cluster would hold after a clean shutdown.

use std::path::Path;

use bytes::Bytes;

use crate::chat::cmd::{Register, Send};
use crate::chat::{self, Envelope};
use crate::raft::{Entry, HardState, Membership, Payload, SnapshotMeta};
use crate::storage::StorageError;
use crate::storage::node::NodeStorage;

/// Entries applied per transaction, with a checkpoint after each.
const BATCH: u64 = 5_000;

pub fn build(
    dir: &Path,
    members: Membership,
    users: usize,
    messages: u64,
) -> Result<(), StorageError> {
    let (mut s, _) = NodeStorage::open(dir, 64 << 20)?;
    let mut index = 0;
    let mut entry = |command: chat::Command| {
        index += 1;
        command_entry(index, command)
    };
    let names: Vec<String> = (0..users).map(|i| format!("user{i}")).collect();
    let accounts: Vec<Entry> = names
        .iter()
        .map(|u| {
            entry(chat::Command::Register(Register {
                user: u.clone(),
                // Not a real hash: nobody logs in with a password here, the tokens serve.
                password_hash: "fixture".into(),
                token: format!("t-{u}"),
            }))
        })
        .collect();
    s.persist(
        &accounts,
        Some(&HardState {
            term: 1,
            vote: None,
        }),
    )?;
    s.apply(&accounts)?;
    let text = "x".repeat(100);
    let mut sent = 0;
    while sent < messages {
        let batch: Vec<Entry> = (0..BATCH.min(messages - sent))
            .map(|i| {
                let from = &names[((sent + i) % users as u64) as usize];
                let to = &names[((sent + i + 1) % users as u64) as usize];
                entry(chat::Command::Send(Send {
                    user: from.clone(),
                    token: format!("t-{from}"),
                    to: to.clone(),
                    text: text.clone(),
                }))
            })
            .collect();
        sent += batch.len() as u64;
        s.persist(&batch, None)?;
        s.apply(&batch)?;
        s.checkpoint()?;
    }
    let applied = s.state().applied();
    s.take_snapshot(SnapshotMeta {
        index: applied,
        term: 1,
        membership: members,
    })?;
    Ok(())
}

/// A committed entry at `index` (term 1) holding `command`, as a client would have
/// proposed it.
pub fn command_entry(index: u64, command: chat::Command) -> Entry {
    let env = Envelope {
        client_id: 1 + index % 64,
        seq: index,
        time_ms: index,
        command,
    };
    Entry {
        index,
        term: 1,
        payload: Payload::Command(Bytes::from(env.encode())),
    }
}

/// Copies a data directory (files and one level of folders: the layout a node writes).
pub fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
