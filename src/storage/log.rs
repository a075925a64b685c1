//! The Raft log on disk: append-only segment files of checksummed records.
//!
//! Each segment is named by the index of its first entry (`00000000000000000001.log`),
//! starts with a magic header, and holds records of consecutive entries; a new segment
//! begins once the current one passes `segment_bytes`. Appends are buffered, and nothing is
//! durable until [`LogStore::sync`], which writes and fdatasyncs once for everything
//! appended since the last sync: the driver calls it once per Raft `Ready`, so every entry
//! that arrived while the previous fsync ran shares the next one (group commit).
//!
//! The tail segment is filled with zeros a MiB ahead of its records, and records are
//! written over them rather than appended: an fdatasync then has no file size and no
//! block allocation to make durable, only data, which spares the file system a metadata
//! write on every sync (190 to 135 µs per sync on this machine's disk for the size; see
//! `preallocate` for the blocks). A segment is trimmed to its records when the next one
//! starts, so only the tail can end in preallocated zeros.
//!
//! Recovery reads every segment. Zeros after the last record are unused space. A record
//! that fails at the end of the last segment, with no valid record anywhere after it, is
//! a write a crash cut short: it is cut off and reported. Any other failure is corruption:
//! the log refuses to open, naming the file and the byte offset, and never skips a record.
//!
//! It does not keep entries in memory (the Raft core does) nor decide what to keep: the
//! owner truncates a conflicting suffix, resets after a snapshot install and drops
//! segments behind a snapshot.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::codec::{self, RECORD_HEADER, RecordError};
use super::error::{IoContext, Result, StorageError};
use super::fsutil::{create_dir, sync_dir};
use crate::raft::{Entry, LogIndex};

const MAGIC: &[u8; 8] = b"RCLOG01\n";

/// How far ahead of its records the tail segment is allocated. Growing the file is what
/// costs a metadata write, so it happens once per this many bytes of log, not per sync;
/// small enough that the sync that writes the zeros out takes a few milliseconds, and that
/// reading a tail segment's unused space at start-up costs nothing.
const PREALLOCATE: u64 = 1 << 20;

/// A record cut off at the end of the log, found when it was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub offset: u64,
    pub bytes: u64,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cut off a torn record at the end of the log: {} bytes at byte {} of {}",
            self.bytes,
            self.offset,
            self.path.display()
        )
    }
}

/// One segment as found on disk, for reports.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub first: LogIndex,
    pub entries: u64,
    pub bytes: u64,
}

/// What a read of the log found.
#[derive(Debug)]
pub struct LogContents {
    pub entries: Vec<Entry>,
    pub segments: Vec<SegmentInfo>,
    pub torn: Option<TornTail>,
}

struct Segment {
    path: PathBuf,
    first: LogIndex,
    /// Byte offset of each record, in index order.
    offsets: Vec<u64>,
    /// The segment's size, counting buffered records not yet written.
    end: u64,
}

impl Segment {
    fn next_index(&self) -> LogIndex {
        self.first + self.offsets.len() as u64
    }
}

pub struct LogStore {
    dir: PathBuf,
    segment_bytes: u64,
    /// Never empty once open; the last one is the tail being appended to.
    segments: Vec<Segment>,
    /// Shared with a [`PendingSync`] that waits on it elsewhere.
    tail: Arc<File>,
    /// The tail file's size: its records, then preallocated zeros.
    allocated: u64,
    /// Records appended to the tail and not yet written.
    buf: Vec<u8>,
    dir_dirty: bool,
}

fn segment_path(dir: &Path, first: LogIndex) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

fn list_segments(dir: &Path) -> Result<Vec<(LogIndex, PathBuf)>> {
    let mut found = Vec::new();
    for item in fs::read_dir(dir).at(dir)? {
        let path = item.at(dir)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(first) = name.strip_suffix(".log").and_then(|n| n.parse().ok()) {
            found.push((first, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Reads one segment. `last` says whether a damaged end may be a torn write.
fn scan(
    path: &Path,
    first: LogIndex,
    last: bool,
    entries: &mut Vec<Entry>,
) -> Result<(Vec<u64>, u64, Option<TornTail>)> {
    let data = fs::read(path).at(path)?;
    let corrupt = |offset: usize, detail: String| StorageError::Corrupt {
        what: "log record",
        path: path.to_path_buf(),
        offset: offset as u64,
        detail,
    };
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        if last && MAGIC.starts_with(&data) {
            // Created, then the crash came before its header was durable.
            let torn = TornTail {
                path: path.to_path_buf(),
                offset: 0,
                bytes: data.len() as u64,
            };
            return Ok((Vec::new(), 0, Some(torn)));
        }
        return Err(corrupt(0, "not a raftchat log segment".into()));
    }
    let mut offsets = Vec::new();
    let mut at = MAGIC.len();
    while at < data.len() {
        match codec::get_record(&data[at..]) {
            Ok((payload, size)) => {
                let entry = codec::decode_entry(payload).map_err(|e| corrupt(at, e))?;
                let expected = first + offsets.len() as u64;
                if entry.index != expected {
                    let detail = format!("entry {} where {expected} belongs", entry.index);
                    return Err(corrupt(at, detail));
                }
                offsets.push(at as u64);
                entries.push(entry);
                at += size;
            }
            Err(_) if data[at..].iter().all(|&b| b == 0) => {
                // Preallocated space: the records end here.
                return Ok((offsets, at as u64, None));
            }
            Err(why) => {
                if last && !any_record_after(&data, at + 1) {
                    let torn = TornTail {
                        path: path.to_path_buf(),
                        offset: at as u64,
                        bytes: (data.len() - at) as u64,
                    };
                    return Ok((offsets, at as u64, Some(torn)));
                }
                let detail = match why {
                    RecordError::Checksum => "checksum mismatch".to_string(),
                    RecordError::Truncated => "record length runs past the data".to_string(),
                };
                return Err(corrupt(at, detail));
            }
        }
    }
    Ok((offsets, data.len() as u64, None))
}

/// Whether a valid record starts anywhere at or after `from`: if so, the damage before it
/// is not a torn end but corruption in the middle.
fn any_record_after(data: &[u8], from: usize) -> bool {
    // No record starts in the zeros at the end: its checksum would be wrong.
    let used = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    (from..used.min(data.len().saturating_sub(RECORD_HEADER))).any(|at| {
        codec::get_record(&data[at..])
            .is_ok_and(|(payload, _)| codec::decode_entry(payload).is_ok())
    })
}

/// Reads every segment in `dir` without changing anything (for `raftchat inspect`).
pub fn read(dir: &Path) -> Result<LogContents> {
    let mut entries = Vec::new();
    let mut segments = Vec::new();
    let mut torn = None;
    let listed = if dir.is_dir() {
        list_segments(dir)?
    } else {
        Vec::new()
    };
    let count = listed.len();
    for (i, (first, path)) in listed.into_iter().enumerate() {
        if let Some(prev) = entries.last().map(|e: &Entry| e.index)
            && first != prev + 1
        {
            return Err(StorageError::Corrupt {
                what: "log segment",
                path,
                offset: 0,
                detail: format!("starts at entry {first} but the previous ends at {prev}"),
            });
        }
        let before = entries.len();
        let (offsets, end, cut) = scan(&path, first, i + 1 == count, &mut entries)?;
        debug_assert_eq!(offsets.len(), entries.len() - before);
        segments.push(SegmentInfo {
            path,
            first,
            entries: offsets.len() as u64,
            bytes: end,
        });
        torn = cut;
    }
    Ok(LogContents {
        entries,
        segments,
        torn,
    })
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail. Returns the store,
    /// every entry on disk, and the torn tail it cut, if any.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<(LogStore, Vec<Entry>, Option<TornTail>)> {
        create_dir(dir)?;
        let listed = list_segments(dir)?;
        let contents = read(dir)?;
        if let Some(torn) = &contents.torn {
            let f = OpenOptions::new()
                .write(true)
                .open(&torn.path)
                .at(&torn.path)?;
            f.set_len(torn.offset).at(&torn.path)?;
            if torn.offset == 0 {
                f.set_len(0).at(&torn.path)?;
                (&f).write_all(MAGIC).at(&torn.path)?;
            }
            f.sync_all().at(&torn.path)?;
        }
        let mut segments = Vec::new();
        let mut entries = contents.entries.iter();
        for info in &contents.segments {
            let mut offsets = Vec::with_capacity(info.entries as usize);
            // Offsets are recomputed from the entries' encoded sizes: cheaper than keeping
            // them from the scan, and checked against the size scanned.
            let mut at = MAGIC.len() as u64;
            for _ in 0..info.entries {
                let e = entries.next().expect("counted");
                offsets.push(at);
                at += record_size(e);
            }
            let end = if info.bytes == 0 {
                MAGIC.len() as u64
            } else {
                info.bytes
            };
            debug_assert_eq!(at, end);
            segments.push(Segment {
                path: info.path.clone(),
                first: info.first,
                offsets,
                end,
            });
        }
        debug_assert_eq!(listed.len(), segments.len());
        let mut store = if let Some(last) = segments.last() {
            let tail = OpenOptions::new()
                .write(true)
                .open(&last.path)
                .at(&last.path)?;
            let allocated = tail.metadata().at(&last.path)?.len();
            LogStore {
                dir: dir.to_path_buf(),
                segment_bytes,
                segments,
                tail: Arc::new(tail),
                allocated,
                buf: Vec::new(),
                dir_dirty: false,
            }
        } else {
            let (segment, tail) = new_segment(dir, 1)?;
            sync_dir(dir)?;
            LogStore {
                dir: dir.to_path_buf(),
                segment_bytes,
                allocated: segment.end,
                segments: vec![segment],
                tail: Arc::new(tail),
                buf: Vec::new(),
                dir_dirty: false,
            }
        };
        store.segment_bytes = segment_bytes.max(MAGIC.len() as u64 + 1);
        Ok((store, contents.entries, contents.torn))
    }

    fn tail(&mut self) -> &mut Segment {
        self.segments.last_mut().expect("never empty")
    }

    /// The index the next appended entry must have.
    pub fn next_index(&self) -> LogIndex {
        self.segments.last().expect("never empty").next_index()
    }

    /// The first index still on disk.
    pub fn first_index(&self) -> LogIndex {
        self.segments[0].first
    }

    /// Appends entries, first removing any at or after `entries[0].index` (a new leader
    /// overwriting a conflicting suffix). Not durable until [`LogStore::sync`].
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index < self.next_index() {
            self.truncate_from(first.index)?;
        }
        assert_eq!(
            first.index,
            self.next_index(),
            "appending entry {} to a log that ends before {}",
            first.index,
            self.next_index()
        );
        let mut payload = Vec::new();
        for entry in entries {
            payload.clear();
            codec::encode_entry(entry, &mut payload);
            let size = (RECORD_HEADER + payload.len()) as u64;
            let full = self.tail().end + size > self.segment_bytes;
            if full && !self.tail().offsets.is_empty() {
                self.rotate(entry.index)?;
            }
            let seg = self.tail();
            seg.offsets.push(seg.end);
            seg.end += size;
            codec::put_record(&mut self.buf, &payload);
        }
        Ok(())
    }

    /// Starts a new tail segment whose first entry will be `first`.
    fn rotate(&mut self, first: LogIndex) -> Result<()> {
        // The finished segment is synced before the next one exists, so only the last
        // segment can ever have a torn end.
        self.write_buffer()?;
        let (path, end) = {
            let seg = self.segments.last().expect("never empty");
            (seg.path.clone(), seg.end)
        };
        if self.allocated > end {
            self.tail.set_len(end).at(&path)?;
        }
        self.tail.sync_data().at(&path)?;
        let (segment, tail) = new_segment(&self.dir, first)?;
        self.tail = Arc::new(tail);
        self.allocated = segment.end;
        self.segments.push(segment);
        self.dir_dirty = true;
        Ok(())
    }

    fn write_buffer(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let seg = self.segments.last().expect("never empty");
        let at = seg.end - self.buf.len() as u64;
        if seg.end > self.allocated {
            self.allocated = preallocate(&self.tail, self.allocated, seg.end).at(&seg.path)?;
        }
        self.tail.write_all_at(&self.buf, at).at(&seg.path)?;
        self.buf.clear();
        Ok(())
    }

    /// Makes everything appended so far durable: one write and one fdatasync per segment
    /// touched, plus the directory if a segment was created.
    pub fn sync(&mut self) -> Result<()> {
        self.begin_sync()?.run()
    }

    /// Writes what was appended and returns the waiting part of a sync, to run on a thread
    /// that may block: only once it has run is anything appended so far durable.
    pub fn begin_sync(&mut self) -> Result<PendingSync> {
        self.write_buffer()?;
        Ok(PendingSync {
            tail: self.tail.clone(),
            path: self.segments.last().expect("never empty").path.clone(),
            dir: std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone()),
        })
    }

    /// Removes the entries from `index` on, durably. Later segments are removed before the
    /// one holding `index` is cut, so a crash in between leaves a shorter, gapless log.
    fn truncate_from(&mut self, index: LogIndex) -> Result<()> {
        self.write_buffer()?;
        while self.segments.len() > 1 && self.segments.last().expect("never empty").first > index {
            let seg = self.segments.pop().expect("checked");
            fs::remove_file(&seg.path).at(&seg.path)?;
        }
        sync_dir(&self.dir)?;
        let seg = self.segments.last_mut().expect("never empty");
        let keep = (index.max(seg.first) - seg.first) as usize;
        let cut = seg.offsets.get(keep).copied().unwrap_or(seg.end);
        seg.offsets.truncate(keep);
        seg.end = cut;
        let f = OpenOptions::new()
            .write(true)
            .open(&seg.path)
            .at(&seg.path)?;
        f.set_len(cut).at(&seg.path)?;
        f.sync_data().at(&seg.path)?;
        self.tail = Arc::new(f);
        self.allocated = cut;
        Ok(())
    }

    /// Drops every entry: the log starts again at `next` (after installing a snapshot).
    pub fn reset(&mut self, next: LogIndex) -> Result<()> {
        self.buf.clear();
        // Old segments go first, newest first, each removal durable before the next, so
        // that a crash at any point leaves a gapless log that starts where it did: a
        // prefix of the old one (which, behind a snapshot, `NodeStorage::open` trims or
        // starts again after it), or the new, empty one. A suffix would not connect to
        // the snapshot, and a file system may persist unordered removals in any order.
        for seg in std::mem::take(&mut self.segments).into_iter().rev() {
            fs::remove_file(&seg.path).at(&seg.path)?;
            sync_dir(&self.dir)?;
        }
        let (segment, tail) = new_segment(&self.dir, next)?;
        sync_dir(&self.dir)?;
        self.allocated = segment.end;
        self.segments.push(segment);
        self.tail = Arc::new(tail);
        Ok(())
    }

    /// Removes whole segments that hold only entries up to `index` (covered by a durable
    /// snapshot). The tail segment always stays.
    pub fn compact(&mut self, index: LogIndex) -> Result<()> {
        // Oldest first, each removal durable before the next: a crash leaves a suffix of
        // the segments, never a gap, which the next start would refuse.
        while self.segments.len() > 1 && self.segments[1].first <= index + 1 {
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path).at(&seg.path)?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

fn record_size(e: &Entry) -> u64 {
    let mut payload = Vec::new();
    codec::encode_entry(e, &mut payload);
    (RECORD_HEADER + payload.len()) as u64
}

fn new_segment(dir: &Path, first: LogIndex) -> Result<(Segment, File)> {
    let path = segment_path(dir, first);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .at(&path)?;
    f.write_all(MAGIC).at(&path)?;
    f.sync_data().at(&path)?;
    let segment = Segment {
        path,
        first,
        offsets: Vec::new(),
        end: MAGIC.len() as u64,
    };
    Ok((segment, f))
}

/// The fdatasync of one [`LogStore::sync`], detached from the log. Only the tail needs
/// one: a segment is synced when the next one starts.
#[must_use = "nothing is durable until the sync has run"]
pub struct PendingSync {
    tail: Arc<File>,
    path: PathBuf,
    /// The log's directory, when a segment was created since the last sync.
    dir: Option<PathBuf>,
}

impl PendingSync {
    pub fn run(self) -> Result<()> {
        self.tail.sync_data().at(&self.path)?;
        if let Some(dir) = &self.dir {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// Grows the tail file from `allocated` to hold at least `needed` bytes, a chunk ahead,
/// by writing zeros; returns its new size. Not `fallocate`: ext4 marks the blocks it
/// allocates unwritten, and the first write into each converts it, so almost every
/// fdatasync would also write the extent's metadata. Written zeros make the blocks
/// ordinary data: with three logs syncing at once on this machine's disk, 220 µs per
/// fdatasync instead of 310 (85 instead of 100 for one log alone).
fn preallocate(f: &File, allocated: u64, needed: u64) -> std::io::Result<u64> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let target = needed.max(allocated) + PREALLOCATE;
    let mut at = allocated;
    while at < target {
        let n = (target - at).min(ZEROS.len() as u64);
        f.write_all_at(&ZEROS[..n as usize], at)?;
        at += n;
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Payload;
    use bytes::Bytes;

    fn entry(index: LogIndex, term: u64) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Command(Bytes::from(format!("command {index}"))),
        }
    }

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| entry(i, term)).collect()
    }

    fn open(dir: &Path) -> (LogStore, Vec<Entry>, Option<TornTail>) {
        LogStore::open(dir, 300).unwrap()
    }

    #[test]
    fn appends_survive_a_reopen_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, found, _) = open(dir.path());
        assert!(found.is_empty());
        log.append(&entries(1..=40, 1)).unwrap();
        log.sync().unwrap();
        assert!(log.segment_count() > 3, "small segments rotate");
        drop(log);
        let (log, found, torn) = open(dir.path());
        assert_eq!(found, entries(1..=40, 1));
        assert_eq!(torn, None);
        assert_eq!(log.next_index(), 41);
    }

    #[test]
    fn a_conflicting_suffix_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = open(dir.path());
        log.append(&entries(1..=30, 1)).unwrap();
        log.sync().unwrap();
        log.append(&entries(12..=14, 2)).unwrap();
        log.sync().unwrap();
        let (_, found, _) = open(dir.path());
        let mut expect = entries(1..=11, 1);
        expect.extend(entries(12..=14, 2));
        assert_eq!(found, expect);
    }

    #[test]
    fn compaction_and_reset_remove_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = open(dir.path());
        log.append(&entries(1..=40, 1)).unwrap();
        log.sync().unwrap();
        let before = log.segment_count();
        log.compact(25).unwrap();
        assert!(log.segment_count() < before);
        let first = log.first_index();
        assert!(first <= 26, "an entry after the snapshot was dropped");
        let (_, found, _) = open(dir.path());
        assert_eq!(found.first().unwrap().index, first);
        assert_eq!(found.last().unwrap().index, 40);
        let (mut log, _, _) = open(dir.path());
        log.reset(101).unwrap();
        log.append(&entries(101..=102, 3)).unwrap();
        log.sync().unwrap();
        let (_, found, _) = open(dir.path());
        assert_eq!(found, entries(101..=102, 3));
    }

    #[test]
    fn a_reset_cut_short_leaves_a_prefix_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = LogStore::open(dir.path(), 256).unwrap();
        log.append(&entries(1..=40, 1)).unwrap();
        log.sync().unwrap();
        let mut segments = list_segments(dir.path()).unwrap();
        assert!(segments.len() > 3, "{segments:?}");
        // The newest segment will not go (a directory stands where the file was).
        let (_, newest) = segments.pop().unwrap();
        fs::remove_file(&newest).unwrap();
        fs::create_dir(&newest).unwrap();
        assert!(log.reset(101).is_err());
        // Nothing older went before it: what is left starts where the log started.
        let left = list_segments(dir.path()).unwrap();
        assert_eq!(left.len(), segments.len() + 1);
        assert_eq!(left[0].0, 1);
    }

    #[test]
    fn a_cut_at_every_byte_of_the_last_record_loses_only_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = LogStore::open(dir.path(), 1 << 20).unwrap();
        log.append(&entries(1..=5, 1)).unwrap();
        log.sync().unwrap();
        drop(log);
        let path = segment_path(dir.path(), 1);
        let (last_start, end) = {
            let (log, _, _) = LogStore::open(dir.path(), 1 << 20).unwrap();
            (
                log.segments[0].offsets[4] as usize,
                log.segments[0].end as usize,
            )
        };
        // The records, without the preallocated space after them.
        let full = fs::read(&path).unwrap()[..end].to_vec();
        // Cut exactly before the last record: a clean, shorter log.
        fs::write(&path, &full[..last_start]).unwrap();
        let (_, found, torn) = LogStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((found.len(), torn), (4, None));
        // Cut anywhere inside it: the record is cut off and the cut reported.
        for cut in last_start + 1..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let (log, found, torn) = LogStore::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(found, entries(1..=4, 1), "cut at byte {cut}");
            let torn = torn.unwrap_or_else(|| panic!("cut at byte {cut} not reported"));
            assert_eq!(torn.offset as usize, last_start);
            assert_eq!(log.next_index(), 5);
            drop(log);
            // The cut was made durable: a second open finds a clean log.
            let (_, again, torn) = LogStore::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(again.len(), 4);
            assert_eq!(torn, None);
        }
    }

    #[test]
    fn preallocated_space_is_not_a_torn_record_and_is_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = LogStore::open(dir.path(), 64 << 20).unwrap();
        log.append(&entries(1..=5, 1)).unwrap();
        log.sync().unwrap();
        let end = log.segments[0].end;
        drop(log);
        let path = segment_path(dir.path(), 1);
        let size = fs::metadata(&path).unwrap().len();
        assert!(size > end, "the tail is allocated ahead of its records");
        let (mut log, found, torn) = LogStore::open(dir.path(), 64 << 20).unwrap();
        assert_eq!((found, torn), (entries(1..=5, 1), None));
        log.append(&entries(6..=8, 1)).unwrap();
        log.sync().unwrap();
        drop(log);
        let (_, found, torn) = LogStore::open(dir.path(), 64 << 20).unwrap();
        assert_eq!((found, torn), (entries(1..=8, 1), None));
        assert_eq!(fs::metadata(&path).unwrap().len(), size, "written in place");
    }

    #[test]
    fn a_torn_record_before_preallocated_space_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = LogStore::open(dir.path(), 64 << 20).unwrap();
        log.append(&entries(1..=5, 1)).unwrap();
        log.sync().unwrap();
        let (last_start, end) = (log.segments[0].offsets[4], log.segments[0].end);
        drop(log);
        // The last record's second half never reached the disk: zeros where it was.
        let path = segment_path(dir.path(), 1);
        let mut data = fs::read(&path).unwrap();
        let half = (last_start + end) as usize / 2;
        data[half..end as usize].fill(0);
        fs::write(&path, &data).unwrap();
        let (log, found, torn) = LogStore::open(dir.path(), 64 << 20).unwrap();
        assert_eq!(found, entries(1..=4, 1));
        assert_eq!(torn.map(|t| t.offset), Some(last_start));
        assert_eq!(log.next_index(), 5);
    }

    #[test]
    fn rotated_segments_are_trimmed_to_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = open(dir.path());
        log.append(&entries(1..=40, 1)).unwrap();
        log.sync().unwrap();
        let segments: Vec<(PathBuf, u64)> = log
            .segments
            .iter()
            .map(|s| (s.path.clone(), s.end))
            .collect();
        for (path, end) in &segments[..segments.len() - 1] {
            assert_eq!(
                fs::metadata(path).unwrap().len(),
                *end,
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_refused_with_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = LogStore::open(dir.path(), 1 << 20).unwrap();
        log.append(&entries(1..=5, 1)).unwrap();
        log.sync().unwrap();
        let third = log.segments[0].offsets[2];
        drop(log);
        let path = segment_path(dir.path(), 1);
        let mut data = fs::read(&path).unwrap();
        data[third as usize + 12] ^= 0x01;
        fs::write(&path, &data).unwrap();
        let err = match LogStore::open(dir.path(), 1 << 20) {
            Ok(_) => panic!("a corrupt log was opened"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err,
            format!(
                "corrupt log record in {} at byte {third}: checksum mismatch",
                path.display()
            )
        );
        // And the read-only path says the same, without changing the file.
        assert_eq!(read(dir.path()).unwrap_err().to_string(), err);
        assert_eq!(fs::read(&path).unwrap(), data);
    }

    #[test]
    fn a_damaged_length_in_the_middle_is_not_taken_for_a_torn_end() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = LogStore::open(dir.path(), 1 << 20).unwrap();
        log.append(&entries(1..=5, 1)).unwrap();
        log.sync().unwrap();
        let second = log.segments[0].offsets[1] as usize;
        drop(log);
        let path = segment_path(dir.path(), 1);
        let mut data = fs::read(&path).unwrap();
        data[second + 3] = 0x7f; // a length far past the end of the file
        fs::write(&path, &data).unwrap();
        assert!(matches!(
            LogStore::open(dir.path(), 1 << 20),
            Err(StorageError::Corrupt { offset, .. }) if offset as usize == second
        ));
    }
}
