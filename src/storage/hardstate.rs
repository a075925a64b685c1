//! The term and vote (Raft's currentTerm and votedFor), kept in one small file that is
//! replaced atomically: a crash leaves the old record or the new one, never a mix, and
//! the record's checksum is verified on every read.

use std::path::{Path, PathBuf};

use super::codec;
use super::error::{IoContext, Result, StorageError};
use super::fsutil::atomic_write;
use crate::raft::HardState;

const MAGIC: &[u8; 8] = b"RCHS01\n\0";
const FILE: &str = "hardstate";

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the term and vote; a directory that never had one starts at term 0.
pub fn load(dir: &Path) -> Result<HardState> {
    let path = path(dir);
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HardState::default()),
        Err(e) => return Err(e).at(&path),
    };
    let corrupt = |offset: u64, detail: &str| StorageError::Corrupt {
        what: "term and vote",
        path: path.clone(),
        offset,
        detail: detail.to_string(),
    };
    if !data.starts_with(MAGIC) {
        return Err(corrupt(0, "not a raftchat term-and-vote file"));
    }
    let body = &data[MAGIC.len()..];
    let (payload, size) =
        codec::get_record(body).map_err(|_| corrupt(MAGIC.len() as u64, "checksum mismatch"))?;
    if size != body.len() {
        return Err(corrupt(
            (MAGIC.len() + size) as u64,
            "stray bytes after the record",
        ));
    }
    codec::decode_hard_state(payload).map_err(|e| corrupt(MAGIC.len() as u64, &e))
}

/// Replaces the term and vote durably (write, fsync, rename, fsync the directory): call
/// before sending anything that depends on them.
pub fn save(dir: &Path, hs: &HardState) -> Result<()> {
    let mut data = MAGIC.to_vec();
    codec::put_record(&mut data, &codec::encode_hard_state(hs));
    atomic_write(&path(dir), &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_reads_back_and_replaces_the_old() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), HardState::default());
        let first = HardState {
            term: 3,
            vote: Some("n2".into()),
        };
        save(dir.path(), &first).unwrap();
        assert_eq!(load(dir.path()).unwrap(), first);
        let second = HardState {
            term: 4,
            vote: None,
        };
        save(dir.path(), &second).unwrap();
        assert_eq!(load(dir.path()).unwrap(), second);
        assert!(!path(dir.path()).with_extension("tmp").exists());
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let old = HardState {
            term: 7,
            vote: Some("n1".into()),
        };
        save(dir.path(), &old).unwrap();
        // A half-written temporary file, as a crash during save would leave.
        std::fs::write(
            path(dir.path()).with_extension("tmp"),
            b"RCHS01\n\0\x10\x00",
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap(), old);
        // And the next save goes through regardless.
        save(
            dir.path(),
            &HardState {
                term: 8,
                vote: None,
            },
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap().term, 8);
    }

    #[test]
    fn a_damaged_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        save(
            dir.path(),
            &HardState {
                term: 5,
                vote: None,
            },
        )
        .unwrap();
        let mut data = std::fs::read(path(dir.path())).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0x04;
        std::fs::write(path(dir.path()), &data).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("corrupt term and vote"), "{err}");
        assert!(err.contains("byte 8: checksum mismatch"), "{err}");
    }
}
