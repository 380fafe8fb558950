//! An exporter's persistent spool (`queue.spool`): batches written to disk before they are handed
//! to the plugin, and removed once it took them, so that an outage longer than the retries, an
//! exit with a slow backend, or a crash loses no batch (a crash still loses the records not yet
//! in one).
//!
//! A spool directory holds slots `0`, `1`, ...: a process writes into the first slot no other
//! process holds (a lock on its `lock` file), and adopts every other free slot that holds
//! batches, sending those first. A slot holds segment files `<seq>.seg` and a `cursor`:
//!
//! - a segment starts with [`SEGMENT_MAGIC`], then frames: a header of [`HEADER`] bytes (frame
//!   magic, payload length, records, time written in ms since the Unix epoch, the payload's
//!   CRC-32, the header's CRC-32, all little-endian) and the payload, a batch as the plugin
//!   gets it (`wit/exporter.wit`'s layout). A process never appends to a segment an earlier
//!   one wrote.
//! - the cursor says where the first batch not yet delivered starts, and whether it was being
//!   exported (so that, after a crash, its records may arrive twice: they are counted). A
//!   batch dropped past the bound is marked dead in place (its frame magic [`DEAD_MAGIC`]).
//!
//! What a start finds past a frame that does not read (a torn tail, a bad checksum) is skipped
//! and counted, never fatal. Spooled bytes are bounded: past the bound the oldest batches are
//! dropped, counted under their own reason.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_unix_nano;
use crate::exporter::Batch;
use crate::stats::Counters;

/// The first bytes of a segment: its format and version.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"wtspool1";
/// The first bytes of a frame.
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"WTB1");
/// The first bytes of a frame dropped in place (past the spool's bound): skipped at start.
const DEAD_MAGIC: u32 = u32::from_le_bytes(*b"WTB0");
/// A frame's header: magic, payload length, records, time (8 bytes), payload CRC, header CRC.
pub(crate) const HEADER: usize = 28;
/// The largest payload a frame may claim; past it the header is taken as damaged.
const MAX_PAYLOAD: u32 = 1 << 30;
/// The cursor: segment, offset, whether that batch was being exported, CRC.
const CURSOR: usize = 8 + 8 + 4 + 4;
/// Slots a spool directory may have: processes writing into one directory at once, at most.
const MAX_SLOTS: usize = 64;
/// The most batch bytes kept in memory beside the disk, so that a healthy exporter's batch is
/// not read back.
const CACHE_BYTES: u64 = 16 << 20;

/// When spooled batches are made durable against power loss (a crash of the process loses
/// nothing either way: what is written is the kernel's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sync {
    /// Each batch, before it is handed to the plugin.
    Batch,
    /// Every interval, at most.
    Interval(Duration),
    /// When the kernel writes it back.
    Never,
}

/// `queue.spool`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SpoolConfig {
    /// The exporter's spool directory (its slots are inside).
    pub dir: PathBuf,
    /// Spooled bytes, at most; past it the oldest batches are dropped.
    pub max_bytes: u64,
    pub sync: Sync,
}

impl SpoolConfig {
    /// Segment size: a sixteenth of the bound, between 1 and 64 MiB.
    fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 16).clamp(1 << 20, 64 << 20)
    }
}

/// Where a frame is: slot (index into the spool's slots), segment, offset.
type At = (usize, u64, u64);

/// One batch spooled and not yet delivered.
struct Entry {
    at: At,
    /// The payload's length.
    len: u32,
    records: u32,
    /// When it was written, in ms since the Unix epoch.
    time_ms: u64,
    payload_crc: u32,
    /// The batch, if still in memory.
    batch: Option<Batch>,
}

impl Entry {
    fn frame_len(&self) -> u64 {
        HEADER as u64 + u64::from(self.len)
    }

    fn end(&self) -> u64 {
        self.at.2 + self.frame_len()
    }
}

/// A slot this process holds.
struct Slot {
    dir: PathBuf,
    /// Held (locked) as long as the slot is.
    _lock: File,
    cursor: File,
    /// Its segments, each with how many of its entries are still spooled.
    segments: BTreeMap<u64, usize>,
}

/// The segment being written.
struct Writer {
    seq: u64,
    file: File,
    len: u64,
}

/// Open files and directories of a spool to make durable, apart from the spool: a sync can take
/// long on a busy disk, and nothing else need wait for it.
pub(crate) struct Durable {
    /// The segments written since the last sync, and each slot's cursor, with their paths.
    files: Vec<(PathBuf, File)>,
    /// Each slot's directory (for segments created and removed).
    dirs: Vec<PathBuf>,
    /// The spool's count of writes when this was taken.
    pub written: u64,
}

impl Durable {
    /// Syncs each file and directory; an error names the one that failed. (After a failed
    /// sync, Linux may have dropped what was not written: a later sync can succeed without it.)
    pub fn sync(self) -> io::Result<()> {
        let named = |path: &Path, e: io::Error| {
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        };
        for (path, file) in &self.files {
            file.sync_data().map_err(|e| named(path, e))?;
        }
        for dir in &self.dirs {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| named(dir, e))?;
        }
        Ok(())
    }
}

/// What a start found in the slots it took.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Found {
    /// Batches and records left by earlier runs, to be sent first.
    pub batches: u64,
    pub records: u64,
    /// Records of a batch that was being exported when its process stopped: they may arrive
    /// twice.
    pub in_doubt: u64,
    /// Records of frames whose header read but whose payload did not (cut, or damaged).
    pub lost_records: u64,
    /// Bytes skipped: cut or damaged frames, and what followed them in their segment.
    pub skipped_bytes: u64,
}

/// A spool directory, its slots held by this process.
pub(crate) struct Spool {
    config: SpoolConfig,
    counters: Arc<Counters>,
    slots: Vec<Slot>,
    writer: Writer,
    /// Writes so far (a count that orders them), and how many of them are known durable.
    written: u64,
    synced: u64,
    /// Segments written into but no longer the writer's (rotated from, or with a batch marked
    /// dead), to make durable with the next sync: each with the count of writes then.
    retired: Vec<(PathBuf, u64, File)>,
    entries: VecDeque<Entry>,
    /// Frame bytes of the entries.
    bytes: u64,
    records: u64,
    cached: u64,
    /// Whether the first entry was handed out for export (and its cursor says so).
    in_flight: bool,
    /// Entries ever added (found at start, or appended), and ever removed (delivered, or dropped).
    added: u64,
    removed: u64,
}

/// Why a spool could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("spool {}: {message}", dir.display())]
pub(crate) struct SpoolError {
    pub dir: PathBuf,
    pub message: String,
}

fn io_error(dir: &Path, what: &str, e: io::Error) -> SpoolError {
    SpoolError {
        dir: dir.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

/// Creates `dir` (and its parents) for this user alone.
fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Creates the file `path`, which must not exist, for this user alone.
fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Takes `lock` for this process: false if another holds it. A holder that only looks (`wasmtel
/// spool status`, for a moment) is waited for a little.
fn try_lock(lock: &File) -> io::Result<bool> {
    let mut waits = [2, 10].into_iter();
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => match waits.next() {
                Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
                None => return Ok(false),
            },
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Creates the segment `seq` of the slot in `dir`, its magic written: the one to write into.
fn new_segment(dir: &Path, seq: u64) -> Result<Writer, SpoolError> {
    let path = segment_path(dir, seq);
    let mut file = create_new(&path).map_err(|e| io_error(&path, "cannot create", e))?;
    file.write_all(SEGMENT_MAGIC)
        .map_err(|e| io_error(&path, "cannot write", e))?;
    Ok(Writer {
        seq,
        file,
        len: SEGMENT_MAGIC.len() as u64,
    })
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// The segments of a slot directory, by sequence number.
fn segments_in(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// A frame header read back: whether it is live (not dropped in place), payload length,
/// records, time, payload CRC; none if it is not one. Its CRC covers all but the magic.
fn read_header(header: &[u8; HEADER]) -> Option<(bool, u32, u32, u64, u32)> {
    let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    let header_crc = crc32fast::hash(&header[4..HEADER - 4]);
    let live = match u32_at(0) {
        FRAME_MAGIC => true,
        DEAD_MAGIC => false,
        _ => return None,
    };
    if u32_at(24) != header_crc || u32_at(4) > MAX_PAYLOAD {
        return None;
    }
    let time = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
    Some((live, u32_at(4), u32_at(8), time, u32_at(20)))
}

fn write_header(len: u32, records: u32, time_ms: u64, payload_crc: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..12].copy_from_slice(&records.to_le_bytes());
    h[12..20].copy_from_slice(&time_ms.to_le_bytes());
    h[20..24].copy_from_slice(&payload_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[4..HEADER - 4]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A cursor read back: the first frame not delivered (segment, offset) and whether it was being
/// exported; none if there is none or it does not read.
fn read_cursor(file: &File) -> Option<(u64, u64, bool)> {
    let mut c = [0u8; CURSOR];
    file.read_exact_at(&mut c, 0).ok()?;
    let crc = u32::from_le_bytes(c[20..24].try_into().expect("4 bytes"));
    if crc != crc32fast::hash(&c[..20]) {
        return None;
    }
    let seq = u64::from_le_bytes(c[0..8].try_into().expect("8 bytes"));
    let offset = u64::from_le_bytes(c[8..16].try_into().expect("8 bytes"));
    let flag = u32::from_le_bytes(c[16..20].try_into().expect("4 bytes"));
    Some((seq, offset, flag == 1))
}

fn write_cursor(file: &File, seq: u64, offset: u64, in_flight: bool) -> io::Result<()> {
    let mut c = [0u8; CURSOR];
    c[0..8].copy_from_slice(&seq.to_le_bytes());
    c[8..16].copy_from_slice(&offset.to_le_bytes());
    c[16..20].copy_from_slice(&u32::from(in_flight).to_le_bytes());
    let crc = crc32fast::hash(&c[..20]);
    c[20..24].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&c, 0)
}

/// The frames of one segment past `from` (an offset; 0: all): each as (offset, payload length,
/// records, time, payload CRC), and the bytes past the last that reads (a cut or damaged tail),
/// with the records its header claimed if it read. `None` if the segment is not one (another
/// format), which is left alone.
#[allow(clippy::type_complexity)]
fn scan(path: &Path, from: u64) -> io::Result<Option<(Vec<(u64, u32, u32, u64, u32)>, u64, u64)>> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut magic = [0u8; 8];
    if size < 8 || {
        file.read_exact(&mut magic)?;
        &magic != SEGMENT_MAGIC
    } {
        return Ok(None);
    }
    let mut frames = Vec::new();
    let mut at = from.max(8);
    let mut header = [0u8; HEADER];
    while at < size {
        let Some((live, len, records, time, crc)) = (at + HEADER as u64 <= size)
            .then(|| file.read_exact_at(&mut header, at).ok())
            .flatten()
            .and_then(|()| read_header(&header))
        else {
            return Ok(Some((frames, size - at, 0)));
        };
        let end = at + HEADER as u64 + u64::from(len);
        if end > size {
            return Ok(Some((frames, size - at, u64::from(records))));
        }
        if live {
            frames.push((at, len, records, time, crc));
        }
        at = end;
    }
    Ok(Some((frames, 0, 0)))
}

impl Spool {
    /// Opens the spool of `config` for this process: takes the first free slot to write into,
    /// adopts every other free slot that holds batches, and reads what they hold (counting what
    /// does not read, and what was being exported, in `found`).
    pub fn open(
        config: &SpoolConfig,
        counters: Arc<Counters>,
    ) -> Result<(Spool, Found), SpoolError> {
        let dir = &config.dir;
        create_dir(dir).map_err(|e| io_error(dir, "cannot create the directory", e))?;
        // The first slot taken is the one this process writes into: what it holds was written
        // first, and comes first.
        let mut slots = Vec::new();
        for n in 0..MAX_SLOTS {
            let slot_dir = dir.join(n.to_string());
            let lock_path = slot_dir.join("lock");
            if !slots.is_empty() && !lock_path.exists() {
                continue;
            }
            create_dir(&slot_dir).map_err(|e| io_error(&slot_dir, "cannot create", e))?;
            let lock = open_rw(&lock_path).map_err(|e| io_error(&lock_path, "cannot open", e))?;
            match try_lock(&lock) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return Err(io_error(&lock_path, "cannot lock", e)),
            }
            let _ = lock.set_len(0);
            let _ = (&lock).write_all(std::process::id().to_string().as_bytes());
            let cursor_path = slot_dir.join("cursor");
            let cursor =
                open_rw(&cursor_path).map_err(|e| io_error(&cursor_path, "cannot open", e))?;
            let seqs = segments_in(&slot_dir).map_err(|e| io_error(&slot_dir, "cannot list", e))?;
            if !slots.is_empty() && seqs.is_empty() {
                continue;
            }
            slots.push(Slot {
                dir: slot_dir,
                _lock: lock,
                cursor,
                segments: seqs.into_iter().map(|s| (s, 0)).collect(),
            });
        }
        if slots.is_empty() {
            return Err(SpoolError {
                dir: dir.clone(),
                message: format!("all {MAX_SLOTS} slots are held by other processes"),
            });
        }
        let cursors: Vec<_> = slots.iter().map(|s| read_cursor(&s.cursor)).collect();
        let last_seq = slots[0]
            .segments
            .keys()
            .next_back()
            .copied()
            .max(cursors[0].map(|(seq, _, _)| seq));
        let mut found = Found::default();
        let mut entries = VecDeque::new();
        for (index, (slot, cursor)) in slots.iter_mut().zip(cursors).enumerate() {
            let read = read_slot(index, &slot.dir, &mut slot.segments, cursor, &mut entries);
            if read.skipped_bytes > 0 {
                tracing::warn!(
                    "spool {}: {} bytes that do not read (a cut or damaged tail) skipped",
                    slot.dir.display(),
                    read.skipped_bytes
                );
            }
            found.add(read);
        }
        // Past every segment the slot has had (those left alone included, and the one its
        // cursor names, whose file may be gone): what an earlier cursor says is behind it.
        let writer = new_segment(&slots[0].dir, last_seq.map_or(0, |s| s + 1))?;
        slots[0].segments.insert(writer.seq, 0);
        let mut spool = Spool {
            config: config.clone(),
            counters,
            slots,
            writer,
            written: 1,
            synced: 0,
            retired: Vec::new(),
            bytes: entries.iter().map(Entry::frame_len).sum(),
            records: entries.iter().map(|e| u64::from(e.records)).sum(),
            added: entries.len() as u64,
            removed: 0,
            entries,
            cached: 0,
            in_flight: false,
        };
        for index in 0..spool.slots.len() {
            spool.prune(index);
        }
        if config.sync == Sync::Batch {
            spool.sync().map_err(|e| io_error(dir, "cannot sync", e))?;
        }
        spool.bound();
        spool.publish();
        Ok((spool, found))
    }

    /// Spools `batch`: written before this returns (made durable by a sync, which
    /// `sync = "batch"` asks for after each). Past the bound, the oldest batches are dropped and
    /// counted.
    pub fn append(&mut self, batch: &Batch) -> io::Result<()> {
        if self.writer.len >= self.config.segment_bytes() {
            self.rotate()?;
        }
        let payload = batch.laid_out();
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_PAYLOAD)
            .ok_or_else(|| io::Error::other("a batch larger than 1 GiB"))?;
        let records = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        let time_ms = now_unix_nano() / 1_000_000;
        let crc = crc32fast::hash(payload);
        let header = write_header(len, records, time_ms, crc);
        let offset = self.writer.len;
        let file = &self.writer.file;
        let written = file
            .write_all_at(&header, offset)
            .and_then(|()| file.write_all_at(payload, offset + HEADER as u64));
        if let Err(e) = written {
            // What was written of it goes: the next frame is written where this one started.
            let _ = file.set_len(offset);
            return Err(e);
        }
        self.writer.len += HEADER as u64 + u64::from(len);
        self.written += 1;
        let keep = self.cached + u64::from(len) <= CACHE_BYTES;
        self.cached += if keep { u64::from(len) } else { 0 };
        *self.slots[0]
            .segments
            .get_mut(&self.writer.seq)
            .expect("the writer's segment") += 1;
        let entry = Entry {
            at: (0, self.writer.seq, offset),
            len,
            records,
            time_ms,
            payload_crc: crc,
            batch: keep.then(|| batch.clone()),
        };
        self.bytes += entry.frame_len();
        self.records += u64::from(records);
        self.entries.push_back(entry);
        self.added += 1;
        self.bound();
        self.publish();
        Ok(())
    }

    /// Starts a new segment to write into; the one before is made durable by the next sync.
    fn rotate(&mut self) -> io::Result<()> {
        let writer =
            new_segment(&self.slots[0].dir, self.writer.seq + 1).map_err(io::Error::other)?;
        self.slots[0].segments.insert(writer.seq, 0);
        let old = std::mem::replace(&mut self.writer, writer);
        self.written += 1;
        if self.slots[0].segments.get(&old.seq) == Some(&0) {
            self.remove_segment(0, old.seq);
        } else {
            self.retire(segment_path(&self.slots[0].dir, old.seq), old.file);
        }
        Ok(())
    }

    /// Keeps `file` (a segment at `path` no longer written) for the next sync; not with
    /// `sync = "never"`, which makes nothing durable.
    fn retire(&mut self, path: PathBuf, file: File) {
        if self.config.sync == Sync::Never {
            return;
        }
        let written = self.written;
        match self.retired.iter_mut().find(|(p, _, _)| *p == path) {
            Some(retired) => retired.1 = written,
            None => self.retired.push((path, written, file)),
        }
    }

    /// Makes what was written durable: the segment being written, those written before it or
    /// with batches marked dead since the last sync, the slots' directories, and the cursors.
    pub fn sync(&mut self) -> io::Result<()> {
        let Some(durable) = self.durable()? else {
            return Ok(());
        };
        let written = durable.written;
        durable.sync()?;
        self.synced(written);
        Ok(())
    }

    /// What [`Spool::sync`] would make durable, if anything was written since the last sync,
    /// to be synced without holding the spool; once it is, tell [`Spool::synced`].
    pub fn durable(&self) -> io::Result<Option<Durable>> {
        if self.written == self.synced {
            return Ok(None);
        }
        let segment = segment_path(&self.slots[0].dir, self.writer.seq);
        let mut files = vec![(segment, self.writer.file.try_clone()?)];
        for slot in &self.slots {
            files.push((slot.dir.join("cursor"), slot.cursor.try_clone()?));
        }
        for (path, _, file) in &self.retired {
            files.push((path.clone(), file.try_clone()?));
        }
        Ok(Some(Durable {
            files,
            dirs: self.slots.iter().map(|s| s.dir.clone()).collect(),
            written: self.written,
        }))
    }

    /// What [`Spool::durable`] gave (when `written` writes were done) is durable.
    pub fn synced(&mut self, written: u64) {
        self.synced = self.synced.max(written);
        self.retired.retain(|(_, at, _)| *at > written);
    }

    /// The oldest batch not delivered, for export: its cursor now says it is being exported.
    /// A batch whose bytes no longer read back (damaged on disk) is dropped and counted, and
    /// the next one is given.
    pub fn front(&mut self) -> Option<Batch> {
        loop {
            let entry = self.entries.front_mut()?;
            let batch = match entry.batch.clone() {
                Some(batch) => Some(batch),
                None => read_batch(&self.slots[entry.at.0].dir, entry),
            };
            match batch {
                Some(batch) => {
                    let (slot, seq, offset) = entry.at;
                    let _ = write_cursor(&self.slots[slot].cursor, seq, offset, true);
                    self.in_flight = true;
                    return Some(batch);
                }
                None => {
                    let records = u64::from(entry.records);
                    let bytes = entry.frame_len();
                    tracing::error!(
                        "spool {}: a batch of {records} records no longer reads back; dropped",
                        self.config.dir.display()
                    );
                    Counters::add(&self.counters.dropped_corrupt, records);
                    Counters::add(&self.counters.spool_skipped_bytes, bytes);
                    self.pop();
                }
            }
        }
    }

    /// The batch [`Spool::front`] gave is done with (delivered, or dropped and counted): it
    /// leaves the spool.
    pub fn done(&mut self) {
        if self.in_flight {
            self.pop();
        }
    }

    /// The batch [`Spool::front`] gave was not delivered, and stays first: its cursor no longer
    /// says it is being exported.
    pub fn kept(&mut self) {
        if let Some(entry) = self.entries.front().filter(|_| self.in_flight) {
            let (slot, seq, offset) = entry.at;
            let _ = write_cursor(&self.slots[slot].cursor, seq, offset, false);
            self.in_flight = false;
        }
    }

    /// Removes the first entry; moves its slot's cursor past it, and removes what segments it
    /// leaves empty.
    fn pop(&mut self) {
        let Some(entry) = self.entries.pop_front() else {
            return;
        };
        self.removed += 1;
        self.in_flight = false;
        self.written += 1;
        self.forget(&entry);
        let slot = entry.at.0;
        let next = self
            .entries
            .iter()
            .find(|e| e.at.0 == slot)
            .map_or((entry.at.1, entry.end()), |e| (e.at.1, e.at.2));
        let _ = write_cursor(&self.slots[slot].cursor, next.0, next.1, false);
        self.prune(slot);
        self.publish();
    }

    /// Takes `entry`'s figures out of the spool's.
    fn forget(&mut self, entry: &Entry) {
        self.bytes -= entry.frame_len();
        self.records -= u64::from(entry.records);
        if entry.batch.is_some() {
            self.cached -= u64::from(entry.len);
        }
        let (slot, seq, _) = entry.at;
        if let Some(live) = self.slots[slot].segments.get_mut(&seq) {
            *live = live.saturating_sub(1);
        }
    }

    /// Removes the segments of `slot` that hold nothing more (not the one being written).
    fn prune(&mut self, slot: usize) {
        let empty: Vec<u64> = self.slots[slot]
            .segments
            .iter()
            .filter(|&(&seq, &live)| live == 0 && !(slot == 0 && seq == self.writer.seq))
            .map(|(&seq, _)| seq)
            .collect();
        for seq in empty {
            self.remove_segment(slot, seq);
        }
    }

    fn remove_segment(&mut self, slot: usize, seq: u64) {
        let path = segment_path(&self.slots[slot].dir, seq);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!("spool: cannot remove {}: {e}", path.display());
        }
        self.slots[slot].segments.remove(&seq);
    }

    /// Drops the oldest batches (not one being exported) while the spool holds more than its
    /// bound, counting them.
    fn bound(&mut self) {
        while self.bytes > self.config.max_bytes {
            let skip = usize::from(self.in_flight);
            if self.entries.len() <= skip {
                return;
            }
            let entry = self.entries.remove(skip).expect("an entry");
            self.forget(&entry);
            let c = &self.counters;
            Counters::add(&c.dropped_spool_full, u64::from(entry.records));
            Counters::add(&c.batches_dropped, 1);
            self.removed += 1;
            // Marked dead where it is, so that no later start sends it, wherever the cursor is.
            let (slot, seq, offset) = entry.at;
            let path = segment_path(&self.slots[slot].dir, seq);
            let marked = OpenOptions::new().write(true).open(&path).and_then(|f| {
                f.write_all_at(&DEAD_MAGIC.to_le_bytes(), offset)?;
                Ok(f)
            });
            match marked {
                Ok(file) => {
                    self.written += 1;
                    self.retire(path, file);
                }
                Err(e) => tracing::warn!("spool: cannot mark a dropped batch: {e}"),
            }
            self.prune(slot);
        }
    }

    /// Sets the spool's gauges in the exporter's counters.
    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        c.spooled_records.store(self.records, Relaxed);
        c.spooled_bytes.store(self.bytes, Relaxed);
        c.spooled_batches.store(self.entries.len() as u64, Relaxed);
        c.spool_oldest_ms
            .store(self.entries.front().map_or(0, |e| e.time_ms), Relaxed);
    }

    /// How many batches were ever added to the spool (found at start, or appended).
    pub fn added(&self) -> u64 {
        self.added
    }

    /// Whether every batch of the first `added` is gone (delivered, or dropped).
    pub fn gone(&self, added: u64) -> bool {
        self.removed >= added
    }
}

impl Found {
    fn add(&mut self, other: Found) {
        self.batches += other.batches;
        self.records += other.records;
        self.in_doubt += other.in_doubt;
        self.lost_records += other.lost_records;
        self.skipped_bytes += other.skipped_bytes;
    }
}

/// Reads what the slot in `dir` (the `index`th) holds past `cursor` (its cursor, read) into
/// `entries`, counting each entry in its segment of `segments`; segments wholly behind the
/// cursor are left with none (to be removed), those that do not read are left out. No cursor
/// (none that reads): everything is sent again.
fn read_slot(
    index: usize,
    dir: &Path,
    segments: &mut BTreeMap<u64, usize>,
    cursor: Option<(u64, u64, bool)>,
    entries: &mut VecDeque<Entry>,
) -> Found {
    let mut found = Found::default();
    let seqs: Vec<u64> = segments.keys().copied().collect();
    for seq in seqs {
        let from = match cursor {
            Some((at, _, _)) if seq < at => continue,
            Some((at, offset, _)) if seq == at => offset,
            _ => 0,
        };
        let path = segment_path(dir, seq);
        let scanned = match scan(&path, from) {
            Ok(Some(scanned)) => scanned,
            Ok(None) => {
                tracing::warn!(
                    "spool: {} is not a segment of this version; left alone",
                    path.display()
                );
                segments.remove(&seq);
                continue;
            }
            Err(e) => {
                tracing::error!("spool: cannot read {}: {e}", path.display());
                segments.remove(&seq);
                continue;
            }
        };
        let (frames, skipped, lost) = scanned;
        found.skipped_bytes += skipped;
        found.lost_records += lost;
        for (offset, len, records, time_ms, payload_crc) in frames {
            if cursor == Some((seq, offset, true)) {
                found.in_doubt += u64::from(records);
            }
            found.batches += 1;
            found.records += u64::from(records);
            *segments.get_mut(&seq).expect("listed") += 1;
            entries.push_back(Entry {
                at: (index, seq, offset),
                len,
                records,
                time_ms,
                payload_crc,
                batch: None,
            });
        }
    }
    found
}

/// What one slot of a spool directory holds, read without taking it (`wasmtel spool status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotStatus {
    /// Its directory.
    pub dir: PathBuf,
    /// The process that holds it (writes into it, or sends what it holds), if one does.
    pub held_by: Option<u32>,
    /// Batches not yet delivered, their records, and their bytes on disk.
    pub batches: u64,
    /// Their records.
    pub records: u64,
    /// Their bytes on disk, frame headers included.
    pub bytes: u64,
    /// When the oldest was written, in ms since the Unix epoch.
    pub oldest_unix_ms: Option<u64>,
    /// Records of a batch that was being exported (may arrive twice).
    pub in_doubt: u64,
    /// Bytes that do not read: a cut or damaged tail (or, in a slot held, one being written).
    pub unreadable_bytes: u64,
}

/// What each slot of the spool directory `dir` holds (none if it does not exist).
pub(crate) fn status(dir: &Path) -> io::Result<Vec<SlotStatus>> {
    let mut slots = Vec::new();
    if !dir.exists() {
        return Ok(slots);
    }
    for n in 0..MAX_SLOTS {
        let slot_dir = dir.join(n.to_string());
        let lock_path = slot_dir.join("lock");
        if !lock_path.exists() {
            continue;
        }
        let lock = File::open(&lock_path)?;
        let held_by = match lock.try_lock_shared() {
            Ok(()) => None,
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&lock_path).unwrap_or_default();
                Some(pid.trim().parse().unwrap_or(0))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        };
        // Let go at once: a process starting meanwhile takes the slot (it is read as held then).
        drop(lock);
        let cursor = match File::open(slot_dir.join("cursor")) {
            Ok(file) => read_cursor(&file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut segments = segments_in(&slot_dir)?
            .into_iter()
            .map(|s| (s, 0))
            .collect();
        let mut entries = VecDeque::new();
        let found = read_slot(n, &slot_dir, &mut segments, cursor, &mut entries);
        slots.push(SlotStatus {
            dir: slot_dir,
            held_by,
            batches: found.batches,
            records: found.records,
            bytes: entries.iter().map(Entry::frame_len).sum(),
            oldest_unix_ms: entries.iter().map(|e| e.time_ms).min(),
            in_doubt: found.in_doubt,
            unreadable_bytes: found.skipped_bytes,
        });
    }
    Ok(slots)
}

/// Reads `entry`'s batch from its segment in `dir`; none if it does not read back whole.
fn read_batch(dir: &Path, entry: &Entry) -> Option<Batch> {
    let file = File::open(segment_path(dir, entry.at.1)).ok()?;
    let mut payload = vec![0u8; entry.len as usize];
    file.read_exact_at(&mut payload, entry.at.2 + HEADER as u64)
        .ok()?;
    if crc32fast::hash(&payload) != entry.payload_crc {
        return None;
    }
    let resource = wasmtel_sdk::Batch::new(&payload)
        .ok()?
        .resource()
        .to_model();
    Some(Batch::laid(
        resource.into(),
        payload,
        entry.records as usize,
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use wasmtel_sdk::model::{Event, KeyValue, Record};

    use super::*;

    fn config(dir: &Path, max_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes,
            sync: Sync::Batch,
        }
    }

    /// A batch of `n` events named `name-0`, `name-1`, ...
    fn batch(name: &str, n: usize) -> Batch {
        let records: Vec<Record> = (0..n)
            .map(|i| {
                Record::Event(Event {
                    name: format!("{name}-{i}").into(),
                    ..Event::default()
                })
            })
            .collect();
        Batch::of(&[KeyValue::new("service.name", "t")], &records)
    }

    fn names(batch: &Batch) -> Vec<String> {
        batch
            .records()
            .map(|r| match r {
                Record::Event(e) => e.name.to_string(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn open(dir: &Path, max_bytes: u64) -> (Spool, Found, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let (spool, found) = Spool::open(&config(dir, max_bytes), counters.clone()).expect("open");
        (spool, found, counters)
    }

    /// Takes every batch out of `spool`, delivered; their first records' names.
    fn drain(spool: &mut Spool) -> Vec<String> {
        let mut firsts = Vec::new();
        while let Some(batch) = spool.front() {
            firsts.push(names(&batch)[0].clone());
            spool.done();
        }
        firsts
    }

    /// The one slot's segment files.
    fn segments(dir: &Path) -> Vec<PathBuf> {
        segments_in(&dir.join("0"))
            .unwrap()
            .into_iter()
            .map(|s| segment_path(&dir.join("0"), s))
            .collect()
    }

    #[test]
    fn what_is_not_delivered_is_found_again_and_what_was_delivered_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut spool, found, counters) = open(tmp.path(), 1 << 30);
        assert_eq!(found, Found::default());
        for name in ["a", "b", "c"] {
            spool.append(&batch(name, 3)).unwrap();
        }
        assert_eq!(counters.spooled_records.load(Relaxed), 9);
        assert_eq!(counters.spooled_batches.load(Relaxed), 3);
        let first = spool.front().unwrap();
        assert_eq!(names(&first), ["a-0", "a-1", "a-2"]);
        spool.done();
        drop(spool);

        let (mut spool, found, counters) = open(tmp.path(), 1 << 30);
        assert_eq!((found.batches, found.records, found.in_doubt), (2, 6, 0));
        assert_eq!(counters.spooled_records.load(Relaxed), 6);
        spool.append(&batch("d", 1)).unwrap();
        assert_eq!(drain(&mut spool), ["b-0", "c-0", "d-0"]);
        assert_eq!(counters.spooled_bytes.load(Relaxed), 0);
        drop(spool);
        let (_, found, _) = open(tmp.path(), 1 << 30);
        assert_eq!(found, Found::default(), "nothing is sent twice");
        assert_eq!(
            segments(tmp.path()).len(),
            1,
            "emptied segments are removed"
        );
    }

    #[test]
    fn a_batch_being_exported_when_the_process_stopped_is_sent_again_and_counted_in_doubt() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut spool, _, _) = open(tmp.path(), 1 << 30);
        spool.append(&batch("a", 4)).unwrap();
        spool.append(&batch("b", 2)).unwrap();
        assert!(spool.front().is_some());
        drop(spool);
        let (mut spool, found, _) = open(tmp.path(), 1 << 30);
        assert_eq!((found.batches, found.records, found.in_doubt), (2, 6, 4));
        assert_eq!(drain(&mut spool), ["a-0", "b-0"]);
    }

    #[test]
    fn a_cut_tail_is_skipped_and_counted_and_the_rest_is_sent() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut spool, _, _) = open(tmp.path(), 1 << 30);
        for name in ["a", "b", "c"] {
            spool.append(&batch(name, 5)).unwrap();
        }
        drop(spool);
        let segment = segments(tmp.path()).pop().unwrap();
        let size = std::fs::metadata(&segment).unwrap().len();
        // Cut in the last frame's payload: its header reads, so its records are known lost.
        let file = OpenOptions::new().write(true).open(&segment).unwrap();
        file.set_len(size - 10).unwrap();
        let (mut spool, found, _) = open(tmp.path(), 1 << 30);
        assert_eq!((found.batches, found.records), (2, 10));
        assert_eq!(found.lost_records, 5);
        let c_len = HEADER as u64 + batch("c", 5).laid_out().len() as u64;
        assert_eq!(found.skipped_bytes, c_len - 10, "the cut frame");
        assert_eq!(drain(&mut spool), ["a-0", "b-0"]);
        drop(spool);

        // Cut in a header: what follows cannot be known, and is counted in bytes.
        let (mut spool, _, _) = open(tmp.path(), 1 << 30);
        spool.append(&batch("d", 2)).unwrap();
        spool.append(&batch("e", 2)).unwrap();
        drop(spool);
        let segment = segments(tmp.path()).pop().unwrap();
        let size = std::fs::metadata(&segment).unwrap().len();
        let e_len = HEADER as u64 + batch("e", 2).laid_out().len() as u64;
        let file = OpenOptions::new().write(true).open(&segment).unwrap();
        file.set_len(size - e_len + 7).unwrap();
        let (mut spool, found, _) = open(tmp.path(), 1 << 30);
        assert_eq!(
            (found.batches, found.lost_records, found.skipped_bytes),
            (1, 0, 7)
        );
        assert_eq!(drain(&mut spool), ["d-0"]);
    }

    #[test]
    fn a_damaged_payload_is_dropped_and_counted_when_read() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut spool, _, _) = open(tmp.path(), 1 << 30);
        spool.append(&batch("a", 3)).unwrap();
        spool.append(&batch("b", 3)).unwrap();
        drop(spool);
        let segment = segments(tmp.path()).pop().unwrap();
        let file = OpenOptions::new().write(true).open(&segment).unwrap();
        // A byte inside the first payload.
        file.write_all_at(b"\xff", (SEGMENT_MAGIC.len() + HEADER + 5) as u64)
            .unwrap();
        let (mut spool, found, counters) = open(tmp.path(), 1 << 30);
        assert_eq!(found.batches, 2, "a damaged payload is found when read");
        assert_eq!(drain(&mut spool), ["b-0"]);
        assert_eq!(counters.dropped_corrupt.load(Relaxed), 3);
    }

    #[test]
    fn past_its_bound_the_oldest_batches_are_dropped_but_not_the_one_being_sent() {
        let tmp = tempfile::tempdir().unwrap();
        let one = HEADER as u64 + batch("a", 3).laid_out().len() as u64;
        let (mut spool, _, counters) = open(tmp.path(), 3 * one);
        for name in ["a", "b", "c"] {
            spool.append(&batch(name, 3)).unwrap();
        }
        assert_eq!(counters.dropped_spool_full.load(Relaxed), 0);
        let sending = spool.front().unwrap();
        spool.append(&batch("d", 3)).unwrap();
        assert_eq!(counters.dropped_spool_full.load(Relaxed), 3, "b went");
        spool.done();
        assert_eq!(names(&sending)[0], "a-0");
        assert_eq!(drain(&mut spool), ["c-0", "d-0"]);
    }

    #[test]
    fn a_slot_emptied_by_another_process_and_taken_again_keeps_what_is_written_into_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (first, _, _) = open(tmp.path(), 1 << 30);
        let (mut second, _, _) = open(tmp.path(), 1 << 30);
        for _ in 0..3 {
            second.append(&batch("b", 1)).unwrap();
        }
        drop(second);
        drop(first);
        // A third writes into slot 0 and adopts slot 1, sending what it held: its files go,
        // its cursor stays past them.
        let (mut third, found, _) = open(tmp.path(), 1 << 30);
        assert_eq!(found.batches, 3);
        assert_eq!(drain(&mut third), ["b-0", "b-0", "b-0"]);
        drop(third);
        let (third, _, _) = open(tmp.path(), 1 << 30);
        // A fourth, beside it, writes into slot 1 afresh and stops; a fifth finds what it wrote.
        let (mut fourth, _, _) = open(tmp.path(), 1 << 30);
        fourth.append(&batch("d", 2)).unwrap();
        drop(fourth);
        let (mut fifth, found, _) = open(tmp.path(), 1 << 30);
        assert_eq!((found.batches, found.records), (1, 2));
        assert_eq!(drain(&mut fifth), ["d-0"]);
        drop(third);
    }

    #[test]
    fn a_batch_dropped_behind_the_one_being_sent_stays_dropped_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let one = HEADER as u64 + batch("a", 3).laid_out().len() as u64;
        let (mut spool, _, counters) = open(tmp.path(), 2 * one);
        spool.append(&batch("a", 3)).unwrap();
        spool.append(&batch("b", 3)).unwrap();
        assert!(spool.front().is_some());
        spool.append(&batch("c", 3)).unwrap();
        assert_eq!(counters.dropped_spool_full.load(Relaxed), 3, "b went");
        drop(spool);
        let (mut spool, found, _) = open(tmp.path(), 1 << 30);
        assert_eq!((found.batches, found.in_doubt), (2, 3));
        assert_eq!(drain(&mut spool), ["a-0", "c-0"], "b is not sent after all");
    }

    #[test]
    fn a_second_process_writes_into_its_own_slot_and_a_later_one_sends_both() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut first, _, _) = open(tmp.path(), 1 << 30);
        let (mut second, _, _) = open(tmp.path(), 1 << 30);
        first.append(&batch("a", 1)).unwrap();
        second.append(&batch("b", 1)).unwrap();
        assert!(tmp.path().join("1").join("lock").exists());
        drop(second);
        // A third, while the first runs, takes the second's slot and what it left.
        let (mut third, found, _) = open(tmp.path(), 1 << 30);
        assert_eq!(found.batches, 1);
        assert_eq!(drain(&mut third), ["b-0"]);
        drop(third);
        drop(first);
        let (mut fourth, found, _) = open(tmp.path(), 1 << 30);
        assert_eq!(found.batches, 1);
        assert_eq!(drain(&mut fourth), ["a-0"]);
    }

    #[test]
    fn a_sync_covers_what_was_written_before_it_was_taken_and_the_segments_rotated_from() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut spool, _, _) = open(tmp.path(), 64 << 20);
        assert!(spool.durable().expect("files").is_none(), "synced at start");
        spool.append(&batch("a", 1)).expect("append");
        let taken = spool.durable().expect("files").expect("a sync is due");
        spool.append(&batch("b", 1)).expect("append");
        let written = taken.written;
        taken.sync().expect("sync");
        spool.synced(written);
        assert!(
            spool.durable().expect("files").is_some(),
            "b was written after the sync was taken"
        );
        while segments(tmp.path()).len() < 2 {
            spool.append(&batch("c", 2000)).expect("append");
        }
        assert_eq!(spool.retired.len(), 1, "the segment rotated from");
        spool.sync().expect("sync");
        assert!(spool.retired.is_empty());
        assert!(spool.durable().expect("files").is_none());
    }
}
