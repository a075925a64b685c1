//! The chat state on disk, in redb, with the index of the last applied entry stored in the
//! same transaction as the state it describes: the two can never disagree.
//!
//! Applying is batched: every entry applied between two checkpoints goes into one open
//! write transaction, and [`StateDb::checkpoint`] commits it with one fsync. A commit is
//! what costs in a copy-on-write B-tree (each dirty page copied, checksummed and written
//! out), so one commit per checkpoint instead of one per batch of entries is most of
//! what applying a message costs. Queries read through the open transaction, so they see
//! everything applied. Between checkpoints the Raft log is what is durable: after a crash
//! the database comes back at its last checkpoint and the node replays the log from
//! there, so the log must never be compacted past [`StateDb::durable`].
//!
//! The indexes of messages (the derived tables, see [`Table::is_derived`]) are not in the
//! database: they live in memory beside it and are rebuilt from the messages when it is
//! opened, so they always describe exactly what the database holds.
//!
//! Why redb: pure Rust (no C toolchain on a fresh machine), ACID transactions with a
//! copy-on-write B-tree that survives a crash at any point, a stable file format, and a
//! durability switch per transaction, which is exactly what checkpointing needs.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};

use redb::{
    Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableError, WriteTransaction,
};

use super::derived::{DerivedTables, Rebuild};
use super::error::{IoContext, Result, StorageError};
use super::snapshot::{SnapshotReader, SnapshotWriter};
use crate::chat::{self, Outcome, Rows, Store, StoreError, Table};
use crate::encoding::{Reader, put_bytes};
use crate::raft::{Entry, LogIndex, Payload};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const APPLIED: &str = "applied";

fn def(table: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(table.name())
}

/// redb's page cache. Its default (1 GiB) would keep every page that rebuilding the
/// derived tables reads, which is the whole messages table; what applying and queries
/// touch again (the recent messages, accounts, sessions) fits in far less.
const CACHE_BYTES: usize = 32 << 20;

fn create(path: &Path) -> Result<Database> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| db_err(path, e))
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> StorageError {
    StorageError::Database {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn store_err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// The result of applying one committed entry: the command's outcome, for the client
/// waiting on it (None for entries that carry no command).
#[derive(Debug)]
pub struct Applied {
    pub index: LogIndex,
    pub outcome: Option<Outcome>,
}

pub struct StateDb {
    path: PathBuf,
    db: Database,
    /// What was applied since the last checkpoint, not committed yet.
    open: Option<WriteTransaction>,
    /// The derived tables of everything applied, checkpointed or not.
    derived: DerivedTables,
    applied: LogIndex,
    durable: LogIndex,
    /// The open transaction is applying on another thread (see [`StateDb::begin_apply`]):
    /// until it is back, the state may be neither read nor written here.
    away: bool,
}

impl StateDb {
    /// Opens (or creates) the database; after a crash it comes back at its last checkpoint.
    pub fn open(path: &Path) -> Result<StateDb> {
        let db = create(path)?;
        let txn = db.begin_read().map_err(|e| db_err(path, e))?;
        let applied = read_applied(&txn).map_err(|e| db_err(path, e))?;
        let derived = rebuild_derived(&txn).map_err(|e| db_err(path, e))?;
        drop(txn);
        Ok(StateDb {
            path: path.to_path_buf(),
            db,
            open: None,
            derived,
            applied,
            durable: applied,
            away: false,
        })
    }

    /// The index of the last entry applied (durable or not).
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// The index of the last entry applied durably: the log must keep what follows it.
    pub fn durable(&self) -> LogIndex {
        self.durable
    }

    /// Applies committed entries, skipping those already applied (a replay after a
    /// restart). Not durable until the next checkpoint.
    pub fn apply(&mut self, entries: &[Entry]) -> Result<Vec<Applied>> {
        self.apply_while(entries, || true)
            .map(|(_, results)| results)
    }

    /// [`StateDb::apply`], asking `go_on` before each entry and stopping when it says no;
    /// returns how many of `entries` it went through. The tables stay open throughout, so
    /// this costs less than applying the same entries a few at a time.
    pub fn apply_while(
        &mut self,
        entries: &[Entry],
        go_on: impl Fn() -> bool,
    ) -> Result<(usize, Vec<Applied>)> {
        self.here()?;
        let skip = self.already_applied(entries);
        if skip == entries.len() {
            return Ok((skip, Vec::new()));
        }
        if self.open.is_none() {
            let txn = self.db.begin_write().map_err(|e| db_err(&self.path, e))?;
            self.open = Some(txn);
        }
        let txn = self.open.as_ref().expect("a transaction was just opened");
        let result = apply_in(txn, &mut self.derived, &entries[skip..], go_on);
        self.applied_in_open(result)
            .map(|results| (skip + results.len(), results))
    }

    /// Takes the outcome of applying in the open transaction.
    fn applied_in_open(
        &mut self,
        result: std::result::Result<Vec<Applied>, String>,
    ) -> Result<Vec<Applied>> {
        match result {
            Ok(results) => {
                if let Some(last) = results.last() {
                    self.applied = last.index;
                }
                Ok(results)
            }
            Err(e) => {
                // Half a batch must never reach a checkpoint: everything since the last
                // one is dropped, and the log still holds it.
                self.open = None;
                self.applied = self.durable;
                let rebuilt = self
                    .db
                    .begin_read()
                    .map_err(|e| e.to_string())
                    .and_then(|txn| rebuild_derived(&txn));
                match rebuilt {
                    Ok(derived) => self.derived = derived,
                    Err(also) => {
                        let why = format!("{e}; then rebuilding the indexes failed: {also}");
                        return Err(db_err(&self.path, why));
                    }
                }
                Err(db_err(&self.path, e))
            }
        }
    }

    /// [`StateDb::apply`] detached, so that a large batch can be applied on another thread
    /// while this one serves the network: the open transaction goes with it, and comes
    /// back through [`StateDb::finish_apply`]. Until then the state can be neither read
    /// nor written here (an error says so rather than a read that misses the batch).
    pub fn begin_apply(&mut self, entries: Vec<Entry>) -> Result<PendingApply> {
        self.here()?;
        let skip = self.already_applied(&entries);
        let txn = match self.open.take() {
            Some(txn) => txn,
            None => self.db.begin_write().map_err(|e| db_err(&self.path, e))?,
        };
        self.away = true;
        Ok(PendingApply {
            txn,
            derived: std::mem::take(&mut self.derived),
            entries,
            skip,
        })
    }

    /// Takes back what [`StateDb::begin_apply`] sent away: the batch's entries, and the
    /// results of those not applied before (in log order).
    pub fn finish_apply(&mut self, done: AppliedBatch) -> Result<(Vec<Entry>, Vec<Applied>)> {
        self.away = false;
        self.open = Some(done.txn);
        self.derived = done.derived;
        let results = self.applied_in_open(done.results)?;
        Ok((done.entries, results))
    }

    /// How many of `entries`, from the first, were applied before (a replay).
    fn already_applied(&self, entries: &[Entry]) -> usize {
        entries
            .iter()
            .take_while(|e| e.index <= self.applied)
            .count()
    }

    fn here(&self) -> Result<()> {
        if self.away {
            return Err(db_err(
                &self.path,
                "the state is being applied on another thread",
            ));
        }
        Ok(())
    }

    /// Makes everything applied so far durable: one commit, one fsync.
    pub fn checkpoint(&mut self) -> Result<()> {
        if let Some(pending) = self.begin_checkpoint() {
            let durable = pending.run()?;
            self.checkpointed(durable);
        }
        Ok(())
    }

    /// The commit of a checkpoint, detached so that it can wait on the disk on another
    /// thread (None: nothing was applied since the last). Nothing may be applied until it
    /// has run and [`StateDb::checkpointed`] was told.
    pub fn begin_checkpoint(&mut self) -> Option<PendingCheckpoint> {
        if self.away {
            return None; // the batch away is checkpointed once it is back
        }
        let txn = self.open.take()?;
        Some(PendingCheckpoint {
            txn,
            path: self.path.clone(),
            applied: self.applied,
        })
    }

    /// A checkpoint's commit ran: the state is durable up to `index`.
    pub fn checkpointed(&mut self, index: LogIndex) {
        self.durable = self.durable.max(index);
    }

    /// Runs a read-only query against a consistent view of the state.
    pub fn query<T>(
        &self,
        f: impl FnOnce(&dyn Store) -> std::result::Result<T, StoreError>,
    ) -> Result<T> {
        self.here()?;
        let result = match &self.open {
            // What is applied but not checkpointed is only visible inside its transaction.
            Some(txn) => f(&WriteStore::new(txn, Derived::Read(&self.derived))),
            None => {
                let txn = self.db.begin_read().map_err(|e| db_err(&self.path, e))?;
                f(&ReadStore {
                    txn: &txn,
                    derived: &self.derived,
                })
            }
        };
        result.map_err(|e| db_err(&self.path, e))
    }

    /// Pins the state as of the last checkpoint (a read transaction) so that it can be
    /// exported on another thread while this one goes on applying.
    pub fn begin_export(&self) -> Result<Export> {
        let txn = self.db.begin_read().map_err(|e| db_err(&self.path, e))?;
        Ok(Export {
            txn,
            path: self.path.clone(),
        })
    }

    /// Replaces the database at `path` with a snapshot's content, atomically: it is built
    /// beside, made durable, then renamed over the old one.
    pub fn import(path: &Path, snapshot: &mut SnapshotReader) -> Result<StateDb> {
        StateDb::build_import(path, snapshot)?.adopt()
    }

    /// The slow half of [`StateDb::import`], which touches nothing in use: builds the
    /// database beside `path` from the snapshot and makes it durable.
    pub fn build_import(path: &Path, snapshot: &mut SnapshotReader) -> Result<BuiltImport> {
        let tmp = path.with_extension("import");
        if tmp.exists() {
            fs::remove_file(&tmp).at(&tmp)?;
        }
        match fill(&tmp, snapshot) {
            Ok(()) => Ok(BuiltImport {
                path: path.to_path_buf(),
                tmp,
            }),
            Err(e) => {
                // Half a database is of no use to anyone: it goes (the snapshot stays).
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// Writes a new database at `tmp` with a snapshot's rows and applied index, durably.
fn fill(tmp: &Path, snapshot: &mut SnapshotReader) -> Result<()> {
    let db = create(tmp)?;
    let txn = db.begin_write().map_err(|e| db_err(tmp, e))?;
    let index = snapshot.meta.index;
    let mut pending = Vec::new();
    while let Some(chunk) = snapshot.next_chunk()? {
        pending.extend_from_slice(&chunk);
        let used = import_rows(&txn, &pending).map_err(|e| db_err(tmp, e))?;
        pending.drain(..used);
    }
    if !pending.is_empty() {
        return Err(db_err(tmp, "snapshot data ends inside a row"));
    }
    {
        let mut meta = txn.open_table(META).map_err(|e| db_err(tmp, e))?;
        meta.insert(APPLIED, index).map_err(|e| db_err(tmp, e))?;
    }
    txn.commit().map_err(|e| db_err(tmp, e))
}

/// A database built from a snapshot beside the one in use (see [`StateDb::build_import`]).
#[must_use = "the node's state is unchanged until the import is adopted"]
pub struct BuiltImport {
    path: PathBuf,
    tmp: PathBuf,
}

impl BuiltImport {
    /// Renames the built database over the old one, durably, and opens it. The old one's
    /// [`StateDb`] must not be used after this.
    pub fn adopt(self) -> Result<StateDb> {
        fs::rename(&self.tmp, &self.path).at(&self.path)?;
        super::fsutil::sync_dir(self.path.parent().expect("a file has a directory"))?;
        StateDb::open(&self.path)
    }
}

/// See [`StateDb::begin_checkpoint`].
#[must_use = "nothing is durable until the checkpoint has run"]
pub struct PendingCheckpoint {
    txn: WriteTransaction,
    path: PathBuf,
    applied: LogIndex,
}

impl PendingCheckpoint {
    /// Commits; returns the index the state is now durable up to.
    pub fn run(self) -> Result<LogIndex> {
        self.txn.commit().map_err(|e| db_err(&self.path, e))?;
        Ok(self.applied)
    }
}

/// See [`StateDb::begin_apply`].
#[must_use = "the state may not be used until the batch is back"]
pub struct PendingApply {
    txn: WriteTransaction,
    derived: DerivedTables,
    entries: Vec<Entry>,
    /// How many of `entries` were applied before (a replay).
    skip: usize,
}

/// A batch applied away, to hand back to [`StateDb::finish_apply`].
pub struct AppliedBatch {
    txn: WriteTransaction,
    derived: DerivedTables,
    entries: Vec<Entry>,
    results: std::result::Result<Vec<Applied>, String>,
}

impl PendingApply {
    pub fn run(mut self) -> AppliedBatch {
        let entries = &self.entries[self.skip..];
        let results = apply_in(&self.txn, &mut self.derived, entries, || true);
        AppliedBatch {
            txn: self.txn,
            derived: self.derived,
            entries: self.entries,
            results,
        }
    }
}

/// Applies `entries` inside `txn`, while `go_on` says so.
fn apply_in(
    txn: &WriteTransaction,
    derived: &mut DerivedTables,
    entries: &[Entry],
    go_on: impl Fn() -> bool,
) -> std::result::Result<Vec<Applied>, String> {
    let mut results = Vec::with_capacity(entries.len());
    let mut store = WriteStore::new(txn, Derived::Write(derived));
    for entry in entries {
        if !go_on() {
            break;
        }
        let outcome = match &entry.payload {
            Payload::Command(data) => {
                Some(chat::apply(&mut store, entry.index, data).map_err(|e| e.to_string())?)
            }
            Payload::Noop | Payload::Membership(_) => None,
        };
        results.push(Applied {
            index: entry.index,
            outcome,
        });
    }
    drop(store);
    if let Some(last) = results.last() {
        let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
        meta.insert(APPLIED, last.index)
            .map_err(|e| e.to_string())?;
    }
    Ok(results)
}

/// The derived tables of the messages in `txn`.
fn rebuild_derived(txn: &ReadTransaction) -> std::result::Result<DerivedTables, String> {
    let messages = match txn.open_table(def(Table::Messages)) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(DerivedTables::default()),
        Err(e) => return Err(e.to_string()),
    };
    let mut rebuild = Rebuild::default();
    for row in messages.iter().map_err(|e| e.to_string())? {
        let (id, message) = row.map_err(|e| e.to_string())?;
        rebuild
            .add_message(message.value())
            .map_err(|e| format!("message {:?}: {e}", id.value()))?;
    }
    Ok(rebuild.finish())
}

fn read_applied(txn: &ReadTransaction) -> std::result::Result<LogIndex, redb::Error> {
    match txn.open_table(META) {
        Ok(meta) => Ok(meta.get(APPLIED)?.map_or(0, |v| v.value())),
        Err(TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

enum ExportError {
    Db(redb::Error),
    Storage(StorageError),
}

impl<E: Into<redb::Error>> From<E> for ExportError {
    fn from(e: E) -> ExportError {
        ExportError::Db(e.into())
    }
}

/// Rows are `table: u8 | key | value`, table by its position in [`Table::ALL`].
/// The state as of one moment, to be written into a snapshot.
pub struct Export {
    txn: ReadTransaction,
    path: PathBuf,
}

impl Export {
    /// Writes every row; returns the applied index the rows stand for.
    pub fn write_to(self, out: &mut SnapshotWriter) -> Result<LogIndex> {
        let applied = read_applied(&self.txn).map_err(|e| db_err(&self.path, e))?;
        export_tables(&self.txn, out).map_err(|e| match e {
            ExportError::Db(e) => db_err(&self.path, e),
            ExportError::Storage(e) => e,
        })?;
        Ok(applied)
    }
}

fn export_tables(
    txn: &ReadTransaction,
    out: &mut SnapshotWriter,
) -> std::result::Result<(), ExportError> {
    let mut buf = Vec::new();
    for (i, table) in Table::ALL.into_iter().enumerate() {
        if table.is_derived() {
            continue; // made again from the messages on import
        }
        let t = match txn.open_table(def(table)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        for row in t.iter()? {
            let (k, v) = row?;
            buf.push(i as u8);
            put_bytes(&mut buf, k.value());
            put_bytes(&mut buf, v.value());
            if buf.len() >= super::snapshot::CHUNK {
                out.write(&buf).map_err(ExportError::Storage)?;
                buf.clear();
            }
        }
    }
    out.write(&buf).map_err(ExportError::Storage)
}

/// Inserts the whole rows at the start of `data`; returns how many bytes they used.
fn import_rows(txn: &WriteTransaction, data: &[u8]) -> std::result::Result<usize, String> {
    let mut used = 0;
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let row = (|| {
            let t = r.u8("table")? as usize;
            let k = r.bytes("key")?;
            let v = r.bytes("value")?;
            Ok::<_, String>((t, k, v))
        })();
        let Ok((t, k, v)) = row else { break };
        let table = *Table::ALL.get(t).ok_or(format!("unknown table {t}"))?;
        used = data.len() - r.remaining();
        if table.is_derived() {
            continue; // a snapshot from before these tables were derived
        }
        let mut open = txn.open_table(def(table)).map_err(|e| e.to_string())?;
        open.insert(k, v).map_err(|e| e.to_string())?;
    }
    Ok(used)
}

/// The derived tables as a store sees them: writable while applying, not in a query.
enum Derived<'a> {
    Write(&'a mut DerivedTables),
    Read(&'a DerivedTables),
}

impl Derived<'_> {
    fn tables(&self) -> &DerivedTables {
        match self {
            Derived::Write(d) => d,
            Derived::Read(d) => d,
        }
    }

    fn tables_mut(&mut self) -> std::result::Result<&mut DerivedTables, StoreError> {
        match self {
            Derived::Write(d) => Ok(d),
            Derived::Read(_) => Err(StoreError("a query cannot write".into())),
        }
    }
}

/// The chat tables inside a write transaction.
struct WriteStore<'a> {
    txn: &'a WriteTransaction,
    derived: Derived<'a>,
    /// Each table opened once per transaction, on first use: opening a table costs more
    /// than the lookup or insert done in it, and a message touches six of them.
    open: RefCell<[Option<WriteTable<'a>>; Table::ALL.len()]>,
}

type WriteTable<'a> = redb::Table<'a, &'static [u8], &'static [u8]>;

impl<'a> WriteStore<'a> {
    fn new(txn: &'a WriteTransaction, derived: Derived<'a>) -> WriteStore<'a> {
        WriteStore {
            txn,
            derived,
            open: RefCell::new(Default::default()),
        }
    }

    fn with<T>(
        &self,
        table: Table,
        f: impl FnOnce(&mut WriteTable<'a>) -> std::result::Result<T, StoreError>,
    ) -> std::result::Result<T, StoreError> {
        let mut open = self.open.borrow_mut();
        let slot = &mut open[table as usize];
        let t = match slot {
            Some(t) => t,
            None => slot.insert(self.txn.open_table(def(table)).map_err(store_err)?),
        };
        f(t)
    }
}

impl Store for WriteStore<'_> {
    fn get(&self, table: Table, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        if table.is_derived() {
            return self.derived.tables().get(table, key);
        }
        self.with(table, |t| {
            Ok(t.get(key).map_err(store_err)?.map(|v| v.value().to_vec()))
        })
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> std::result::Result<Rows, StoreError> {
        if table.is_derived() {
            return Ok(self.derived.tables().scan(table, prefix, from, limit));
        }
        self.with(table, |t| scan_table(t, prefix, from, limit))
    }

    fn put(
        &mut self,
        table: Table,
        key: &[u8],
        value: &[u8],
    ) -> std::result::Result<(), StoreError> {
        if table.is_derived() {
            return self.derived.tables_mut()?.put(table, key, value);
        }
        self.with(table, |t| {
            t.insert(key, value).map_err(store_err)?;
            Ok(())
        })
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> std::result::Result<(), StoreError> {
        if table.is_derived() {
            return self.derived.tables_mut()?.delete(table, key);
        }
        self.with(table, |t| {
            t.remove(key).map_err(store_err)?;
            Ok(())
        })
    }
}

/// The chat tables in a read transaction (queries and offline inspection).
struct ReadStore<'a> {
    txn: &'a ReadTransaction,
    derived: &'a DerivedTables,
}

impl Store for ReadStore<'_> {
    fn get(&self, table: Table, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        if table.is_derived() {
            return self.derived.get(table, key);
        }
        match self.txn.open_table(def(table)) {
            Ok(t) => Ok(t.get(key).map_err(store_err)?.map(|v| v.value().to_vec())),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> std::result::Result<Rows, StoreError> {
        if table.is_derived() {
            return Ok(self.derived.scan(table, prefix, from, limit));
        }
        match self.txn.open_table(def(table)) {
            Ok(t) => scan_table(&t, prefix, from, limit),
            Err(TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
            Err(e) => Err(store_err(e)),
        }
    }

    fn put(&mut self, _: Table, _: &[u8], _: &[u8]) -> std::result::Result<(), StoreError> {
        Err(StoreError("a read-only view cannot be written".into()))
    }

    fn delete(&mut self, _: Table, _: &[u8]) -> std::result::Result<(), StoreError> {
        Err(StoreError("a read-only view cannot be written".into()))
    }
}

fn scan_table(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
    from: &[u8],
    limit: usize,
) -> std::result::Result<Rows, StoreError> {
    let start = from.max(prefix);
    let mut out = Vec::new();
    for row in t.range::<&[u8]>(start..).map_err(store_err)? {
        let (k, v) = row.map_err(store_err)?;
        if !k.value().starts_with(prefix) || out.len() == limit {
            break;
        }
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

/// Opens a stopped node's database without changing it, for `raftchat inspect`. A
/// database that needs recovery (its node was killed) is recovered on a copy.
pub fn read_only<T>(
    path: &Path,
    f: impl FnOnce(LogIndex, &dyn Store) -> std::result::Result<T, StoreError>,
) -> Result<T> {
    let run = |db: &dyn ReadableDatabase| -> Result<T> {
        let txn = db.begin_read().map_err(|e| db_err(path, e))?;
        let applied = read_applied(&txn).map_err(|e| db_err(path, e))?;
        let derived = rebuild_derived(&txn).map_err(|e| db_err(path, e))?;
        let store = ReadStore {
            txn: &txn,
            derived: &derived,
        };
        f(applied, &store).map_err(|e| db_err(path, e))
    };
    match ReadOnlyDatabase::open(path) {
        Ok(db) => run(&db),
        Err(_) => {
            let copy_dir = tempfile::tempdir().at(path)?;
            let copy = copy_dir.path().join("state.redb");
            fs::copy(path, &copy).at(path)?;
            let db = Database::open(&copy).map_err(|e| db_err(path, e))?;
            run(&db)
        }
    }
}
