//! A node's data directory: everything it needs to restart, and nothing shared.
//!
//! ```text
//! DIR/hardstate     the term and vote, replaced atomically
//! DIR/log/          the Raft log after the last snapshot, in segments
//! DIR/snapshots/    the latest snapshot (a consistent export of the state)
//! DIR/state.redb    the chat state and the index it has applied
//! ```
//!
//! A node restarts from its database (at its last checkpoint) plus the log after it, never
//! from the start of history; a snapshot is taken only from a durable checkpoint, and log
//! segments are removed only behind a durable snapshot.

use std::path::{Path, PathBuf};

use super::error::{Result, StorageError};
use super::hardstate;
use super::log::{LogStore, PendingSync, TornTail};
use super::snapshot::{self, SealedSnapshot, SnapshotReader, SnapshotWriter};
use super::state::{
    Applied, AppliedBatch, BuiltImport, Export, PendingApply, PendingCheckpoint, StateDb,
};
use crate::raft::{Entry, HardState, LogIndex, SnapshotMeta};

/// Where each part of a node's data lives.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
    pub fn snapshots(&self) -> PathBuf {
        self.dir.join("snapshots")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.redb")
    }
}

/// What a node finds in its data directory when it starts.
#[derive(Debug)]
pub struct Recovered {
    pub hard_state: HardState,
    /// The latest snapshot's metadata (the default if none).
    pub snapshot: SnapshotMeta,
    /// The log entries after the snapshot.
    pub entries: Vec<Entry>,
    /// The index the state database has durably applied.
    pub applied: LogIndex,
    /// A torn record cut off the end of the log, to be reported.
    pub torn: Option<TornTail>,
}

pub struct NodeStorage {
    layout: Layout,
    log: LogStore,
    state: StateDb,
    snapshot: SnapshotMeta,
}

/// The metadata of the latest snapshot in `dir`, if any.
pub fn latest_snapshot(dir: &Path) -> Result<Option<(PathBuf, SnapshotMeta)>> {
    match snapshot::list(dir)?.pop() {
        None => Ok(None),
        Some(path) => {
            let meta = SnapshotReader::open(&path)?.meta;
            Ok(Some((path, meta)))
        }
    }
}

/// See [`NodeStorage::begin_install`].
#[must_use = "the snapshot is not installed until the install is finished"]
pub struct PendingInstall {
    snapshot: PathBuf,
    state: PathBuf,
    meta: SnapshotMeta,
}

impl PendingInstall {
    /// Builds the state from the snapshot, beside the state in use: the slow step, which
    /// may run on any thread.
    pub fn run(self) -> Result<InstalledState> {
        let import =
            StateDb::build_import(&self.state, &mut SnapshotReader::open(&self.snapshot)?)?;
        Ok(InstalledState {
            import,
            meta: self.meta,
        })
    }
}

/// A state built from a snapshot, for [`NodeStorage::finish_install`].
pub struct InstalledState {
    import: BuiltImport,
    meta: SnapshotMeta,
}

impl NodeStorage {
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(NodeStorage, Recovered)> {
        let layout = Layout::new(dir);
        super::fsutil::create_dir(dir)?;
        snapshot::remove_leftovers(&layout.snapshots())?;
        let hard_state = hardstate::load(dir)?;
        let latest = latest_snapshot(&layout.snapshots())?;
        let mut state = StateDb::open(&layout.state())?;
        if let Some((path, meta)) = &latest
            && state.applied() < meta.index
        {
            // A crash came between storing a received snapshot and importing it.
            drop(state);
            state = StateDb::import(&layout.state(), &mut SnapshotReader::open(path)?)?;
            debug_assert_eq!(state.applied(), meta.index);
        }
        let snapshot = latest.map(|(_, m)| m).unwrap_or_default();
        let (mut log, mut entries, torn) = LogStore::open(&layout.log(), segment_bytes)?;
        entries.retain(|e| e.index > snapshot.index);
        match entries.first() {
            Some(first) if first.index != snapshot.index + 1 => {
                return Err(StorageError::Corrupt {
                    what: "log",
                    path: layout.log(),
                    offset: 0,
                    detail: format!(
                        "the log resumes at entry {} but the snapshot ends at {}",
                        first.index, snapshot.index
                    ),
                });
            }
            // Everything on disk is behind the snapshot (a crash while installing one):
            // the log starts again after it.
            None if log.next_index() != snapshot.index + 1 => log.reset(snapshot.index + 1)?,
            _ => {}
        }
        let applied = state.applied();
        let recovered = Recovered {
            hard_state,
            snapshot: snapshot.clone(),
            entries,
            applied,
            torn,
        };
        let storage = NodeStorage {
            layout,
            log,
            state,
            snapshot,
        };
        Ok((storage, recovered))
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    pub fn state(&self) -> &StateDb {
        &self.state
    }

    /// Step 1 of a Raft Ready (a received snapshot aside, see
    /// [`NodeStorage::begin_install`]): append entries, replace the hard state, and sync
    /// once.
    pub fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<()> {
        self.log.append(entries)?;
        if !entries.is_empty() {
            self.log.sync()?;
        }
        if let Some(hs) = hard_state {
            hardstate::save(&self.layout.dir, hs)?;
        }
        Ok(())
    }

    /// Step 1 in its common case, entries only, split in two: this appends and writes
    /// them; the returned sync, run on any thread, makes them durable.
    pub fn append(&mut self, entries: &[Entry]) -> Result<PendingSync> {
        self.log.append(entries)?;
        self.log.begin_sync()
    }

    /// Installing a received snapshot, in three steps so that the slow one can run on
    /// another thread: this adopts the snapshot file (from then on, a restart installs it
    /// by itself: `open` imports it and re-anchors the log); [`PendingInstall::run`]
    /// builds the new state beside the old; [`NodeStorage::finish_install`] puts it in
    /// place and starts the log again after it. Nothing else may touch the storage until
    /// the last step is done.
    pub fn begin_install(&mut self, meta: &SnapshotMeta, staged: &Path) -> Result<PendingInstall> {
        let stored = SnapshotReader::open(staged)?.meta;
        if &stored != meta {
            return Err(StorageError::Corrupt {
                what: "snapshot",
                path: staged.to_path_buf(),
                offset: 0,
                detail: format!("holds entry {}, not {}", stored.index, meta.index),
            });
        }
        let snapshot = snapshot::adopt(&self.layout.snapshots(), staged, meta)?;
        Ok(PendingInstall {
            snapshot,
            state: self.layout.state(),
            meta: meta.clone(),
        })
    }

    /// The last step of [`NodeStorage::begin_install`].
    pub fn finish_install(&mut self, built: InstalledState) -> Result<()> {
        self.state = built.import.adopt()?;
        self.log.reset(built.meta.index + 1)?;
        self.snapshot = built.meta;
        Ok(())
    }

    /// Where a snapshot received from a leader is written (see [`SnapshotWriter`]).
    pub fn receive_snapshot(&self, meta: SnapshotMeta) -> Result<SnapshotWriter> {
        SnapshotWriter::create_incoming(&self.layout.snapshots(), meta)
    }

    /// Step 3 of a Ready: apply committed entries, in one transaction.
    pub fn apply(&mut self, entries: &[Entry]) -> Result<Vec<Applied>> {
        self.state.apply(entries)
    }

    /// [`NodeStorage::apply`] while `go_on` says so (see [`StateDb::apply_while`]).
    pub fn apply_while(
        &mut self,
        entries: &[Entry],
        go_on: impl Fn() -> bool,
    ) -> Result<(usize, Vec<Applied>)> {
        self.state.apply_while(entries, go_on)
    }

    /// [`NodeStorage::apply`] on another thread (see [`StateDb::begin_apply`]).
    pub fn begin_apply(&mut self, entries: Vec<Entry>) -> Result<PendingApply> {
        self.state.begin_apply(entries)
    }

    /// Takes back a batch applied on another thread (see [`StateDb::finish_apply`]).
    pub fn finish_apply(&mut self, done: AppliedBatch) -> Result<(Vec<Entry>, Vec<Applied>)> {
        self.state.finish_apply(done)
    }

    /// Makes the applied state durable.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.state.checkpoint()
    }

    /// [`NodeStorage::checkpoint`] in two: the commit, to run on any thread, and then
    /// [`NodeStorage::checkpointed`] with what it returned.
    pub fn begin_checkpoint(&mut self) -> Option<PendingCheckpoint> {
        self.state.begin_checkpoint()
    }

    pub fn checkpointed(&mut self, index: LogIndex) {
        self.state.checkpointed(index)
    }

    /// Takes a snapshot at the applied index (which `meta` must describe), then removes
    /// the log segments and older snapshots behind it.
    pub fn take_snapshot(&mut self, meta: SnapshotMeta) -> Result<PathBuf> {
        let sealed = self.begin_snapshot(meta)?.run()?;
        self.finish_snapshot(sealed)?
            .ok_or_else(|| StorageError::Database {
                path: self.layout.snapshots(),
                detail: "a newer snapshot overtook the one just taken".into(),
            })
    }

    /// Starts a snapshot at the applied index (which `meta` must describe): the state is
    /// made durable and pinned, and [`SnapshotJob::run`] writes it, on any thread, while
    /// this storage goes on applying. [`NodeStorage::finish_snapshot`] then adopts it.
    pub fn begin_snapshot(&mut self, meta: SnapshotMeta) -> Result<SnapshotJob> {
        if meta.index != self.state.applied() {
            return Err(StorageError::Database {
                path: self.layout.state(),
                detail: format!(
                    "a snapshot is taken at the applied index {}, not {}",
                    self.state.applied(),
                    meta.index
                ),
            });
        }
        self.state.checkpoint()?;
        let writer = SnapshotWriter::create(&self.layout.snapshots(), meta)?;
        let export = self.state.begin_export()?;
        Ok(SnapshotJob { export, writer })
    }

    /// Adopts a snapshot a job wrote, then removes the log segments and older snapshots
    /// behind it; None (and the file removed) if a newer snapshot came in meanwhile.
    pub fn finish_snapshot(&mut self, sealed: SealedSnapshot) -> Result<Option<PathBuf>> {
        if sealed.meta().index <= self.snapshot.index {
            sealed.discard()?;
            return Ok(None);
        }
        let meta = sealed.meta().clone();
        let path = sealed.publish()?;
        self.log.compact(meta.index)?;
        self.snapshot = meta;
        Ok(Some(path))
    }
}

/// A snapshot being written: the state pinned at a durable checkpoint, and its file.
pub struct SnapshotJob {
    export: Export,
    writer: SnapshotWriter,
}

impl SnapshotJob {
    /// Writes the whole state and makes the file durable (the slow part).
    pub fn run(mut self) -> Result<SealedSnapshot> {
        let index = self.export.write_to(&mut self.writer)?;
        if index != self.writer.meta().index {
            return Err(StorageError::Database {
                path: PathBuf::new(),
                detail: format!(
                    "the pinned state is at entry {index}, not {}",
                    self.writer.meta().index
                ),
            });
        }
        self.writer.seal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::cmd::{Read, Register, Send};
    use crate::chat::{self, Command, Envelope, MemoryStore, Store, Table, query};
    use crate::raft::{Membership, Payload};
    use bytes::Bytes;

    fn command(index: u64, command: Command) -> Entry {
        let env = Envelope {
            client_id: 1,
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

    /// A history: alice and bob register, then alice sends `n` messages.
    fn history(n: u64) -> Vec<Entry> {
        let mut out = vec![
            command(
                1,
                Command::Register(Register {
                    user: "alice".into(),
                    password_hash: "h".into(),
                    token: "ta".into(),
                }),
            ),
            command(
                2,
                Command::Register(Register {
                    user: "bob".into(),
                    password_hash: "h".into(),
                    token: "tb".into(),
                }),
            ),
        ];
        for i in 0..n {
            out.push(command(
                3 + i,
                Command::Send(Send {
                    user: "alice".into(),
                    token: "ta".into(),
                    to: "bob".into(),
                    text: format!("message {i}"),
                }),
            ));
        }
        out
    }

    /// How many messages bob has.
    fn bobs(s: &NodeStorage) -> usize {
        s.state()
            .query(|st| query::messages_for(st, "bob", 0, 100))
            .unwrap()
            .len()
    }

    fn dump(s: &NodeStorage) -> String {
        s.state().query(|st| query::dump(st)).unwrap()
    }

    /// Every row of the derived tables, as text.
    fn indexes(st: &dyn Store) -> String {
        let mut out = String::new();
        for table in Table::ALL.into_iter().filter(|t| t.is_derived()) {
            for (key, _) in st.scan(table, b"", b"", usize::MAX).unwrap() {
                out += &format!("{} {}\n", table.name(), key.escape_ascii());
            }
        }
        out
    }

    #[test]
    fn the_indexes_are_rebuilt_from_the_messages_on_a_restart() {
        // Messages both ways, and a read that marks some of bob's.
        let mut log = history(5);
        log.push(command(
            8,
            Command::Send(Send {
                user: "bob".into(),
                token: "tb".into(),
                to: "alice".into(),
                text: "back".into(),
            }),
        ));
        log.push(command(
            9,
            Command::Read(Read {
                user: "bob".into(),
                token: "tb".into(),
                with: String::new(),
                after: 0,
                limit: 2,
            }),
        ));
        // What the state machine writes, every table kept whole.
        let mut plain = MemoryStore::default();
        for e in &log {
            if let Payload::Command(data) = &e.payload {
                chat::apply(&mut plain, e.index, data).unwrap().unwrap();
            }
        }
        let expected = indexes(&plain);
        for table in ["user_messages", "conversations", "unread"] {
            assert!(expected.contains(table), "{table} has rows:\n{expected}");
        }
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        s.persist(&log, None).unwrap();
        s.apply(&log).unwrap();
        assert_eq!(s.state().query(|st| Ok(indexes(st))).unwrap(), expected);
        s.checkpoint().unwrap();
        drop(s);
        let (s, rec) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.applied, 9, "all was checkpointed: nothing to replay");
        assert_eq!(s.state().query(|st| Ok(indexes(st))).unwrap(), expected);
    }

    #[test]
    fn a_restart_replays_only_the_log_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let log = history(20);
        let (mut s, rec) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.applied, 0);
        s.persist(
            &log,
            Some(&HardState {
                term: 1,
                vote: None,
            }),
        )
        .unwrap();
        s.apply(&log[..15]).unwrap();
        s.checkpoint().unwrap();
        let expected = {
            s.apply(&log[15..]).unwrap();
            dump(&s)
        };
        drop(s);
        let (mut s, rec) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.hard_state.term, 1);
        assert_eq!(rec.entries.len(), 22, "the log is whole");
        assert!(rec.applied >= 15, "the checkpoint survived");
        // The replay skips what the database already holds.
        let replayed = s.apply(&rec.entries).unwrap();
        assert_eq!(replayed.len() as u64, 22 - rec.applied);
        assert!(replayed.iter().all(|a| a.index > rec.applied));
        assert_eq!(dump(&s), expected);
    }

    #[test]
    fn what_is_applied_is_read_at_once_and_durable_only_at_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let log = history(10);
        let (mut s, _) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        s.persist(&log, None).unwrap();
        s.apply(&log[..6]).unwrap();
        s.checkpoint().unwrap();
        s.apply(&log[6..]).unwrap();
        // A query sees the applied state, checkpointed or not.
        assert_eq!(bobs(&s), 10);
        assert_eq!((s.state().applied(), s.state().durable()), (12, 6));
        // A crash loses what followed the checkpoint; the log brings it back.
        drop(s);
        let (mut s, rec) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.applied, 6);
        assert_eq!(bobs(&s), 4);
        s.apply(&rec.entries).unwrap();
        assert_eq!(bobs(&s), 10);
    }

    #[test]
    fn applying_while_told_stops_between_entries_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let log = history(8);
        let (mut s, _) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        s.persist(&log, None).unwrap();
        s.apply(&log[..2]).unwrap();
        // Told to stop after three entries; the two already applied count as gone through.
        let asked = std::cell::Cell::new(0);
        let (used, applied) = s
            .apply_while(&log, || {
                asked.set(asked.get() + 1);
                asked.get() <= 3
            })
            .unwrap();
        assert_eq!(used, 5);
        let indexes: Vec<u64> = applied.iter().map(|a| a.index).collect();
        assert_eq!(indexes, [3, 4, 5]);
        assert_eq!(s.state().applied(), 5);
        // Told to stop at once: nothing changes.
        let (used, applied) = s.apply_while(&log[used..], || false).unwrap();
        assert_eq!((used, applied.len(), s.state().applied()), (0, 0, 5));
        // The rest, then a restart after a checkpoint: all ten entries are in the state.
        let (used, applied) = s.apply_while(&log[5..], || true).unwrap();
        assert_eq!((used, applied.len()), (5, 5));
        s.checkpoint().unwrap();
        drop(s);
        let (s, rec) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.applied, 10);
        assert_eq!(bobs(&s), 8);
    }

    #[test]
    fn a_batch_applied_on_another_thread_leaves_the_state_as_applying_it_here_would() {
        let dir = tempfile::tempdir().unwrap();
        let log = history(12);
        let (mut s, _) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        s.persist(&log, None).unwrap();
        s.apply(&log[..4]).unwrap();
        // The batch overlaps what is applied: only the entries after it are applied away.
        let pending = s.begin_apply(log[2..10].to_vec()).unwrap();
        // Meanwhile the state is neither read nor written here, nor checkpointed.
        let err = s.state().query(|st| query::dump(st)).unwrap_err();
        assert!(err.to_string().contains("another thread"), "{err}");
        assert!(s.apply(&log[10..]).is_err());
        s.checkpoint().unwrap();
        let done = std::thread::spawn(move || pending.run()).join().unwrap();
        let (batch, applied) = s.finish_apply(done).unwrap();
        assert_eq!(batch.len(), 8, "the batch comes back whole");
        let indexes: Vec<u64> = applied.iter().map(|a| a.index).collect();
        assert_eq!(indexes, [5, 6, 7, 8, 9, 10]);
        assert_eq!((s.state().applied(), s.state().durable()), (10, 0));
        s.apply(&log[10..]).unwrap();
        let away = dump(&s);
        // The same log applied here, in another directory, gives the same state.
        let other = tempfile::tempdir().unwrap();
        let (mut here, _) = NodeStorage::open(other.path(), 1 << 20).unwrap();
        here.persist(&log, None).unwrap();
        here.apply(&log).unwrap();
        assert_eq!(away, dump(&here));
        // And it reaches the disk at the next checkpoint.
        s.checkpoint().unwrap();
        drop(s);
        let (s, rec) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.applied, 14);
        assert_eq!(bobs(&s), 12);
    }

    #[test]
    fn a_snapshot_compacts_the_log_and_a_restart_starts_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = history(40);
        let (mut s, _) = NodeStorage::open(dir.path(), 600).unwrap();
        s.persist(&log, None).unwrap();
        s.apply(&log[..30]).unwrap();
        let meta = SnapshotMeta {
            index: 30,
            term: 1,
            membership: Membership::with_voters([("n1", "a".to_string())]),
        };
        s.take_snapshot(meta.clone()).unwrap();
        s.apply(&log[30..]).unwrap();
        s.checkpoint().unwrap();
        let expected = dump(&s);
        drop(s);
        let (s, rec) = NodeStorage::open(dir.path(), 600).unwrap();
        assert_eq!(rec.snapshot, meta);
        assert_eq!(rec.entries.first().map(|e| e.index), Some(31));
        assert_eq!(dump(&s), expected);
        let segments = std::fs::read_dir(s.layout().log()).unwrap().count();
        assert!(segments < 10, "segments behind the snapshot were removed");
    }

    /// A leader's storage with alice's ten messages, and its snapshot at entry 12.
    fn leader_snapshot() -> (tempfile::TempDir, NodeStorage, SnapshotMeta, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let log = history(10);
        let (mut leader, _) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        leader.persist(&log, None).unwrap();
        leader.apply(&log).unwrap();
        let meta = SnapshotMeta {
            index: 12,
            term: 1,
            membership: Membership::default(),
        };
        let path = leader.take_snapshot(meta.clone()).unwrap();
        (dir, leader, meta, path)
    }

    /// A follower's first step of an install: it stores the leader's snapshot at `path`
    /// and adopts it, as a crash right after would leave it.
    fn receive_and_adopt(s: &NodeStorage, meta: &SnapshotMeta, path: &Path) {
        let mut w = s.receive_snapshot(meta.clone()).unwrap();
        w.write(&SnapshotReader::open(path).unwrap().read_all().unwrap())
            .unwrap();
        let staged = w.finish().unwrap();
        snapshot::adopt(&s.layout().snapshots(), &staged, meta).unwrap();
    }

    #[test]
    fn an_installed_snapshot_replaces_state_and_log() {
        // The leader's side: a state, exported as a snapshot.
        let (_leader_dir, leader, meta, path) = leader_snapshot();
        // The follower's side: an unrelated log, then the snapshot streams in.
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        s.persist(&history(2)[..2], None).unwrap();
        let mut w = s.receive_snapshot(meta.clone()).unwrap();
        let mut r = SnapshotReader::open(&path).unwrap();
        while let Some(chunk) = r.next_chunk().unwrap() {
            w.write(&chunk).unwrap();
        }
        let staged = w.finish().unwrap();
        let built = s.begin_install(&meta, &staged).unwrap().run().unwrap();
        s.finish_install(built).unwrap();
        assert_eq!(dump(&s), dump(&leader));
        assert_eq!(s.state().applied(), 12);
        drop(s);
        let (_, rec) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        assert!(rec.entries.is_empty(), "the old log is gone");
        assert_eq!(rec.snapshot.index, 12);
    }

    #[test]
    fn a_crash_in_the_middle_of_a_snapshot_install_restarts_from_the_snapshot() {
        // A leader's snapshot at entry 12.
        let (_leader_dir, leader, meta, path) = leader_snapshot();
        // A follower with a short log stores it and adopts it, then dies before importing
        // the state or resetting its log.
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        s.persist(&history(2)[..2], None).unwrap();
        receive_and_adopt(&s, &meta, &path);
        drop(s);
        let (mut s, rec) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.snapshot, meta);
        assert_eq!(rec.applied, 12, "the state was imported from the snapshot");
        assert!(rec.entries.is_empty());
        assert_eq!(dump(&s), dump(&leader));
        // And the log takes the next entry after the snapshot.
        let next = Entry {
            index: 13,
            term: 2,
            payload: Payload::Noop,
        };
        s.persist(&[next], None).unwrap();
    }

    #[test]
    fn a_crash_while_the_log_is_cut_for_a_snapshot_restarts_from_the_snapshot() {
        let (_leader_dir, leader, meta, path) = leader_snapshot();
        // A follower whose log of another history spans many small segments.
        let dir = tempfile::tempdir().unwrap();
        let stale: Vec<Entry> = history(30)
            .into_iter()
            .map(|e| Entry { term: 3, ..e })
            .collect();
        let (mut s, _) = NodeStorage::open(dir.path(), 512).unwrap();
        s.persist(&stale, None).unwrap();
        let before: Vec<PathBuf> = crate::storage::log::read(&s.layout().log())
            .unwrap()
            .segments
            .into_iter()
            .map(|seg| seg.path)
            .collect();
        assert!(before.len() > 4, "{before:?}");
        // It adopts the snapshot at entry 12, then dies while its log is being removed:
        // the newest segments are gone, the oldest are still there.
        receive_and_adopt(&s, &meta, &path);
        drop(s);
        for seg in &before[before.len() / 2..] {
            std::fs::remove_file(seg).unwrap();
        }
        let (mut s, rec) = NodeStorage::open(dir.path(), 512).unwrap();
        assert_eq!((rec.snapshot.index, rec.applied), (12, 12));
        assert_eq!(dump(&s), dump(&leader));
        // What is left of the old log after the snapshot is kept as a follower keeps any
        // unconfirmed suffix, for the leader to overwrite.
        assert_eq!(
            rec.entries.first().map(|e| (e.index, e.term)),
            Some((13, 3))
        );
        let next = Entry {
            index: 13,
            term: 4,
            payload: Payload::Noop,
        };
        s.persist(std::slice::from_ref(&next), None).unwrap();
        drop(s);
        let (_, rec) = NodeStorage::open(dir.path(), 512).unwrap();
        assert_eq!(rec.entries, [next]);
    }

    #[test]
    fn a_snapshot_that_cannot_be_imported_leaves_no_half_database() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = NodeStorage::open(dir.path(), 1 << 20).unwrap();
        let meta = SnapshotMeta {
            index: 5,
            term: 1,
            membership: Membership::default(),
        };
        let mut w = s.receive_snapshot(meta).unwrap();
        w.write(&[3, 10, b'k']).unwrap(); // a row cut short inside its key
        let staged = w.finish().unwrap();
        let state = s.layout().state();
        let built = StateDb::build_import(&state, &mut SnapshotReader::open(&staged).unwrap());
        let err = built.err().expect("the import fails").to_string();
        assert!(err.contains("ends inside a row"), "{err}");
        assert!(!state.with_extension("import").exists());
    }
}
