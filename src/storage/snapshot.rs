//! Snapshot files: what a snapshot stands for (its last index, term and configuration) and
//! its data, a consistent export of the state database, in checksummed chunks.
//!
//! A snapshot is written to a temporary file, synced, and renamed into place, so a crash
//! leaves either no new snapshot or a whole one; a trailer record counts the chunks, so a
//! file cut short is caught on read. Once a newer snapshot is in place the older ones are
//! removed. The same writer receives a snapshot streamed from a leader, chunk by chunk.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::codec;
use super::error::{IoContext, Result, StorageError};
use super::fsutil::{create_dir, sync_dir};
use crate::encoding::{Reader, put_u64};
use crate::raft::SnapshotMeta;

const MAGIC: &[u8; 8] = b"RCSNAP1\n";

/// Chunks of data are at most this large.
pub const CHUNK: usize = 1 << 20;

fn file_name(meta: &SnapshotMeta) -> String {
    format!("{:020}-{:020}.snap", meta.index, meta.term)
}

/// The snapshot files in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .at(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    found.sort();
    Ok(found)
}

/// Writes a snapshot; nothing is visible until [`SnapshotWriter::finish`].
pub struct SnapshotWriter {
    dir: PathBuf,
    meta: SnapshotMeta,
    tmp: PathBuf,
    /// Received from a leader: finished under a unique name, replacing nothing (the
    /// driver installs it once the core accepts it).
    incoming: bool,
    out: BufWriter<File>,
    chunks: u64,
    bytes: u64,
    pending: Vec<u8>,
}

impl SnapshotWriter {
    pub fn create(dir: &Path, meta: SnapshotMeta) -> Result<SnapshotWriter> {
        Self::create_as(dir, meta, false)
    }

    /// A writer for a snapshot streaming in from a leader. Several may run at once (a
    /// retried transfer): each has its own file.
    pub fn create_incoming(dir: &Path, meta: SnapshotMeta) -> Result<SnapshotWriter> {
        Self::create_as(dir, meta, true)
    }

    fn create_as(dir: &Path, meta: SnapshotMeta, incoming: bool) -> Result<SnapshotWriter> {
        create_dir(dir)?;
        // A name of its own: a retried transfer, or a snapshot taken while another of the
        // same entry is still being written, never shares a file.
        let mut salt = [0u8; 8];
        let _ = getrandom::fill(&mut salt);
        let salt = u64::from_le_bytes(salt);
        let tmp = dir.join(format!("{}.{salt:016x}.tmp", file_name(&meta)));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .at(&tmp)?;
        let mut out = BufWriter::new(file);
        let mut header = Vec::new();
        codec::encode_snapshot_meta(&meta, &mut header);
        let mut framed = MAGIC.to_vec();
        codec::put_record(&mut framed, &header);
        out.write_all(&framed).at(&tmp)?;
        Ok(SnapshotWriter {
            dir: dir.to_path_buf(),
            meta,
            tmp,
            incoming,
            out,
            chunks: 0,
            bytes: 0,
            pending: Vec::new(),
        })
    }

    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Adds data; it is cut into chunks of at most [`CHUNK`] bytes.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let room = CHUNK - self.pending.len();
            let (now, later) = data.split_at(room.min(data.len()));
            self.pending.extend_from_slice(now);
            data = later;
            if self.pending.len() == CHUNK {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut framed = Vec::with_capacity(self.pending.len() + codec::RECORD_HEADER + 1);
        let mut payload = Vec::with_capacity(self.pending.len() + 1);
        payload.push(b'D');
        payload.extend_from_slice(&self.pending);
        codec::put_record(&mut framed, &payload);
        self.out.write_all(&framed).at(&self.tmp)?;
        self.chunks += 1;
        self.bytes += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Seals the snapshot, makes it durable and visible, and removes older ones. Returns
    /// its path.
    pub fn finish(self) -> Result<PathBuf> {
        self.seal()?.publish()
    }

    /// Writes the trailer and makes the file durable, still under its temporary name:
    /// the slow part, which can run away from the thread that decides whether to use it.
    pub fn seal(mut self) -> Result<SealedSnapshot> {
        self.flush_chunk()?;
        let mut trailer = vec![b'E'];
        put_u64(&mut trailer, self.chunks);
        put_u64(&mut trailer, self.bytes);
        let mut framed = Vec::new();
        codec::put_record(&mut framed, &trailer);
        self.out.write_all(&framed).at(&self.tmp)?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .at(&self.tmp)?;
        file.sync_all().at(&self.tmp)?;
        Ok(SealedSnapshot {
            dir: self.dir,
            meta: self.meta,
            tmp: self.tmp,
            incoming: self.incoming,
        })
    }
}

/// A complete, durable snapshot not yet visible under its name.
pub struct SealedSnapshot {
    dir: PathBuf,
    meta: SnapshotMeta,
    tmp: PathBuf,
    incoming: bool,
}

impl SealedSnapshot {
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Makes it visible: a received one as `.incoming` (adopted once installed), one of
    /// our own as the node's snapshot, older ones removed. Returns its path.
    pub fn publish(self) -> Result<PathBuf> {
        if self.incoming {
            let path = self.tmp.with_extension("incoming");
            fs::rename(&self.tmp, &path).at(&path)?;
            sync_dir(&self.dir)?;
            return Ok(path);
        }
        let path = self.dir.join(file_name(&self.meta));
        fs::rename(&self.tmp, &path).at(&path)?;
        sync_dir(&self.dir)?;
        remove_older(&self.dir, &path)?;
        Ok(path)
    }

    /// Throws it away (a newer snapshot overtook it).
    pub fn discard(self) -> Result<()> {
        fs::remove_file(&self.tmp).at(&self.tmp)
    }
}

/// Makes a received snapshot (see [`SnapshotWriter::create_incoming`]) the node's
/// snapshot: renamed into place, then older ones removed.
pub fn adopt(dir: &Path, incoming: &Path, meta: &SnapshotMeta) -> Result<PathBuf> {
    let path = dir.join(file_name(meta));
    fs::rename(incoming, &path).at(&path)?;
    sync_dir(dir)?;
    remove_older(dir, &path)?;
    Ok(path)
}

fn remove_older(dir: &Path, keep: &Path) -> Result<()> {
    for old in list(dir)? {
        if old != keep {
            fs::remove_file(&old).at(&old)?;
        }
    }
    sync_dir(dir)
}

/// Removes what an interrupted write or transfer left behind (at start-up).
pub fn remove_leftovers(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for item in fs::read_dir(dir).at(dir)? {
        let path = item.at(dir)?.path();
        if path
            .extension()
            .is_some_and(|x| x == "tmp" || x == "incoming")
        {
            fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

/// Reads a snapshot file, checking every record.
pub struct SnapshotReader {
    path: PathBuf,
    input: BufReader<File>,
    offset: u64,
    pub meta: SnapshotMeta,
    chunks: u64,
    bytes: u64,
    done: bool,
}

impl SnapshotReader {
    pub fn open(path: &Path) -> Result<SnapshotReader> {
        let file = File::open(path).at(path)?;
        let mut reader = SnapshotReader {
            path: path.to_path_buf(),
            input: BufReader::new(file),
            offset: 0,
            meta: SnapshotMeta::default(),
            chunks: 0,
            bytes: 0,
            done: false,
        };
        let mut magic = [0u8; 8];
        if reader.input.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(reader.corrupt("not a raftchat snapshot"));
        }
        reader.offset = MAGIC.len() as u64;
        let header = reader.record()?;
        let mut r = Reader::new(&header);
        reader.meta = codec::decode_snapshot_meta(&mut r)
            .and_then(|m| r.finish("snapshot header").map(|_| m))
            .map_err(|e| reader.corrupt(&e))?;
        Ok(reader)
    }

    fn corrupt(&self, detail: &str) -> StorageError {
        StorageError::Corrupt {
            what: "snapshot",
            path: self.path.clone(),
            offset: self.offset,
            detail: detail.to_string(),
        }
    }

    fn record(&mut self) -> Result<Vec<u8>> {
        let mut header = [0u8; codec::RECORD_HEADER];
        self.input
            .read_exact(&mut header)
            .map_err(|_| self.corrupt("the file ends early"))?;
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        if len > codec::MAX_RECORD {
            return Err(self.corrupt("record length out of range"));
        }
        let mut buf = header.to_vec();
        buf.resize(codec::RECORD_HEADER + len, 0);
        self.input
            .read_exact(&mut buf[codec::RECORD_HEADER..])
            .map_err(|_| self.corrupt("the file ends early"))?;
        let payload = codec::get_record(&buf)
            .map_err(|_| self.corrupt("checksum mismatch"))?
            .0
            .to_vec();
        self.offset += buf.len() as u64;
        Ok(payload)
    }

    /// The next chunk of data, or None after the last (whose trailer checks out).
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let mut payload = self.record()?;
        match payload.first() {
            Some(b'D') => {
                payload.remove(0);
                self.chunks += 1;
                self.bytes += payload.len() as u64;
                Ok(Some(payload))
            }
            Some(b'E') => {
                let mut r = Reader::new(&payload[1..]);
                let chunks = r.u64("chunk count").map_err(|e| self.corrupt(&e))?;
                let bytes = r.u64("byte count").map_err(|e| self.corrupt(&e))?;
                if (chunks, bytes) != (self.chunks, self.bytes) {
                    return Err(self.corrupt("the trailer does not match the data"));
                }
                self.done = true;
                Ok(None)
            }
            _ => Err(self.corrupt("unknown record")),
        }
    }

    /// Reads all the data (for small snapshots and tests).
    pub fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk()? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Membership;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term: 2,
            membership: Membership::with_voters([("n1", "a:1".to_string())]),
        }
    }

    #[test]
    fn a_snapshot_reads_back_and_replaces_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        for index in [10, 20] {
            let mut w = SnapshotWriter::create(dir.path(), meta(index)).unwrap();
            w.write(&data).unwrap();
            w.finish().unwrap();
        }
        let files = list(dir.path()).unwrap();
        assert_eq!(files.len(), 1, "the older snapshot was removed");
        let mut r = SnapshotReader::open(&files[0]).unwrap();
        assert_eq!(r.meta, meta(20));
        assert_eq!(r.read_all().unwrap(), data);
    }

    #[test]
    fn an_unfinished_snapshot_is_invisible_and_a_cut_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SnapshotWriter::create(dir.path(), meta(5)).unwrap();
        w.write(b"partial").unwrap();
        drop(w);
        assert!(list(dir.path()).unwrap().is_empty());
        let mut w = SnapshotWriter::create(dir.path(), meta(6)).unwrap();
        w.write(&[7u8; 5000]).unwrap();
        let path = w.finish().unwrap();
        let full = fs::read(&path).unwrap();
        fs::write(&path, &full[..full.len() - 3]).unwrap();
        let mut r = SnapshotReader::open(&path).unwrap();
        let err = r.read_all().unwrap_err().to_string();
        assert!(err.contains("corrupt snapshot"), "{err}");
    }
}
