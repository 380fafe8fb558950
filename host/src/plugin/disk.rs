//! The sandbox directory's quota (`sandbox.disk_mib`).
//!
//! What a directory holds is counted when the first instance that writes into it starts (every
//! file's bytes, a block for every file, directory and link, and what each directory's list of
//! names takes past its first block), then kept up to date by the calls that change it, which
//! wasmtel takes before wasmtime-wasi does: writes (direct and through streams), `set-size`, and
//! creating, linking, renaming and removing entries. A call that would take the directory past
//! the quota fails inside the plugin with `insufficient-space` (ENOSPC), as on a full disk,
//! having written nothing; the plugin may free space and go on.
//!
//! The count is one per directory in the process: exporters that share a directory share what it
//! holds, each within its own quota. Each regular file a plugin changes is counted at the size it
//! was last seen with, so a change is counted as the file's new size, never as a difference: two
//! instances changing one file at the same moment are each counted once, in whatever order they
//! land. A removed entry is held open across the call, so its bytes (or its list of names) are
//! given back only if the call took its last name, whatever other calls named meanwhile; and a
//! file's bytes only once no plugin holds it open (until then the disk still holds them). Writes
//! through a file's stream land before the call returns, so no other call sees the file in
//! between; a `write` or `set-size` runs on a thread that counts it when it lands, so one
//! abandoned at its deadline is counted too, and keeps the count the one the next instance takes
//! until then. What another process changes in the directory is seen when a plugin next changes
//! that file, or when the count is next made, after every instance writing there has ended; a
//! tree that cannot be counted whole takes no more writes.
//!
//! A known gap, bounded by one call: a call that makes or removes a name, abandoned at its
//! deadline (a fault; faults lead to parking), still lands, uncounted if it lands after every
//! instance writing into the directory has ended and a new count was made: a block, and what its
//! directory's list grew by.
//!
//! A directory's list of names grows with the names made in it and, on many file systems (ext4),
//! never shrinks while the directory lives: after every call that makes or removes a name, the
//! directory that lists it is counted at its size.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::unix::fs::{FileExt, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use bytes::Bytes;
use cap_primitives::fs::{FollowSymlinks, Metadata, MetadataExt as _};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{
    DynOutputStream, FsResult, OutputStream, Pollable, StreamError, StreamResult,
};

use super::HostState;
use crate::stats::{Limit, LimitCounts};

/// What an entry (file, directory, link) costs besides its bytes: a block.
pub(super) const ENTRY: u64 = 4096;

/// The most one write of a file's stream takes at once.
const STREAM_CHUNK: usize = 64 * 1024;

/// The interface whose calls are metered, at the version wasmtime-wasi implements.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// What tells one file from another: its device and inode.
type Identity = (u64, u64);

/// What a call that makes an entry takes before it runs: the entry's block, and room for the
/// directory that lists it to grow by a block.
pub(super) const MAKE: u64 = 2 * ENTRY;

/// An entry of a directory that a call may remove, as the quota sees it: held open, so that
/// after the call it tells whether that call took its last name (whatever took or gave names
/// meanwhile).
pub(super) struct Entry {
    identity: Identity,
    is_dir: bool,
    held: std::fs::File,
}

impl Entry {
    /// The entry `file` is a handle of.
    pub fn held(file: std::fs::File) -> Option<Entry> {
        let meta = Metadata::from_file(&file).ok()?;
        Some(Entry {
            identity: identity(&meta),
            is_dir: meta.is_dir(),
            held: file,
        })
    }

    /// Whether nothing names it any more (when that cannot be told: it is named).
    fn unnamed(&self) -> bool {
        self.held.metadata().is_ok_and(|m| m.nlink() == 0)
    }
}

fn identity(meta: &Metadata) -> Identity {
    (meta.dev(), meta.ino())
}

/// The directory, relative to a directory, that lists `path`.
pub(super) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// What a directory holds, for every instance that writes into it.
#[derive(Default)]
struct Usage {
    used: AtomicU64,
    ledger: Mutex<Ledger>,
    /// Whether `ledger.removed` holds any file.
    removed_any: AtomicBool,
}

/// What the count of a directory keeps besides its total: the sizes of its files and lists of
/// names, and the files plugins hold open.
#[derive(Default)]
struct Ledger {
    /// The size of every regular file, as counted (when the count was made, or a plugin last
    /// changed it), by identity.
    files: HashMap<Identity, u64>,
    /// The directories whose list of names takes more than a block, by identity: the size each
    /// is counted at.
    dirs: HashMap<Identity, u64>,
    /// Every handle of a file that plugins hold open, by the file; a dropped handle leaves a
    /// dead reference, swept out as the map grows.
    open: HashMap<Identity, Vec<Weak<std::fs::File>>>,
    /// Past this many files, the dead references are swept out.
    sweep_at: usize,
    /// Files whose last name went while they were open, with their handles: each one's bytes
    /// are given back once these are the last (which keeps the file, and its identity, until
    /// then).
    removed: Vec<(Identity, Vec<Arc<std::fs::File>>)>,
}

/// The count of every directory that instances write into, by its path.
static USAGE: LazyLock<Mutex<HashMap<PathBuf, Weak<Usage>>>> = LazyLock::new(Default::default);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Usage {
    /// The count of `dir`: the one instances writing there now keep, or a new one.
    fn of(dir: &Path) -> Arc<Usage> {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mut all = lock(&USAGE);
        if let Some(usage) = all.get(&dir).and_then(Weak::upgrade) {
            return usage;
        }
        all.retain(|_, usage| usage.strong_count() > 0);
        let (used, ledger) = walk(&dir).unwrap_or_else(|e| {
            tracing::warn!(
                "cannot count what {} holds ({e}): nothing more may be written there",
                dir.display()
            );
            (u64::MAX / 2, Ledger::default())
        });
        let usage = Arc::new(Usage {
            used: AtomicU64::new(used),
            ledger: Mutex::new(ledger),
            ..Usage::default()
        });
        all.insert(dir, Arc::downgrade(&usage));
        usage
    }

    fn give_back(&self, bytes: u64) {
        self.change(0, bytes);
    }

    /// Adds `add` to the count and takes `sub` from it, at once.
    fn change(&self, add: u64, sub: u64) {
        let _ = self.used.fetch_update(Relaxed, Relaxed, |used| {
            Some(used.saturating_add(add).saturating_sub(sub))
        });
    }

    /// Gives back the bytes of removed files that nothing holds open any more.
    fn release_closed(&self) {
        if !self.removed_any.load(Relaxed) {
            return;
        }
        let mut ledger = lock(&self.ledger);
        let Ledger { files, removed, .. } = &mut *ledger;
        removed.retain(|(identity, handles)| {
            let closed = handles.iter().all(|h| Arc::strong_count(h) == 1);
            if closed {
                self.give_back(files.remove(identity).unwrap_or(0));
            }
            !closed
        });
        self.removed_any.store(!removed.is_empty(), Relaxed);
    }

    /// Counts the regular file `file` at its size now, having held `held` for a change of it:
    /// gives that back, and takes or gives back what the file's size is past or short of its
    /// size as counted (a file not seen before was counted empty).
    fn count(&self, file: &std::fs::File, held: u64) {
        let mut ledger = lock(&self.ledger);
        // What cannot be seen stays counted as held.
        let Ok(meta) = file.metadata().map(Metadata::from_just_metadata) else {
            return;
        };
        let (now, counted) = if meta.is_file() {
            let counted = ledger.files.insert(identity(&meta), meta.len());
            (meta.len(), counted.unwrap_or(0))
        } else {
            (0, 0)
        };
        self.change(now, counted + held);
    }
}

/// What the directory tree at `dir` holds: its files' bytes (once for a file of many names), a
/// block per entry, and what each directory's list of names takes past a block; with the
/// ledger of its files, and of the directories whose list takes more, at their size. Links are
/// not followed. Each directory is opened from its parent, so no depth of nesting hides a
/// subtree; an entry that goes meanwhile is skipped, and any other error leaves the tree
/// uncounted.
fn walk(dir: &Path) -> std::io::Result<(u64, Ledger)> {
    let skip = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let root = cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority())?;
    let mut ledger = Ledger::default();
    let list = |dirs: &mut HashMap<Identity, u64>, meta: &Metadata| {
        let past = meta.len().saturating_sub(ENTRY);
        if past > 0 {
            dirs.insert(identity(meta), meta.len());
        }
        past
    };
    let mut total = list(&mut ledger.dirs, &root.dir_metadata()?);
    // The directories being read, from the root down: as many open as the tree is deep.
    let mut open = vec![root.entries()?];
    while let Some(entries) = open.last_mut() {
        let Some(entry) = entries.next() else {
            open.pop();
            continue;
        };
        let entry = entry?;
        let meta = match entry.metadata() {
            Err(e) if skip(&e) => continue,
            meta => meta?,
        };
        total += ENTRY;
        if meta.is_dir() {
            total += list(&mut ledger.dirs, &meta);
            match entry.open_dir().and_then(|d| d.entries()) {
                Err(e) if skip(&e) => {}
                entries => open.push(entries?),
            }
        } else if meta.is_file() && ledger.files.insert(identity(&meta), meta.len()).is_none() {
            total += meta.len();
        }
    }
    Ok((total, ledger))
}

/// One instance's quota, and the count of its directory.
pub(super) struct Disk {
    quota: u64,
    usage: Arc<Usage>,
    passed: Arc<LimitCounts>,
    exporter: Arc<str>,
    /// Whether the host's log has said that a write was refused.
    warned: AtomicBool,
}

impl Disk {
    /// A quota of `quota` bytes in `dir` (none: nothing to count).
    pub fn new(
        quota: u64,
        dir: Option<&Path>,
        passed: Arc<LimitCounts>,
        exporter: Arc<str>,
    ) -> Arc<Disk> {
        Arc::new(Disk {
            quota,
            usage: dir.map_or_else(Default::default, Usage::of),
            passed,
            exporter,
            warned: AtomicBool::new(false),
        })
    }

    /// Takes `bytes` more of the quota: false (counted, and said once) if that would pass it.
    pub fn take(&self, bytes: u64) -> bool {
        if bytes == 0 {
            return true;
        }
        self.usage.release_closed();
        let taken = self
            .usage
            .used
            .fetch_update(Relaxed, Relaxed, |used| {
                used.checked_add(bytes).filter(|&u| u <= self.quota)
            })
            .is_ok();
        if !taken {
            self.passed.pass(Limit::Disk);
            if !self.warned.swap(true, Relaxed) {
                tracing::warn!(
                    exporter = %self.exporter,
                    "a write into the sandbox directory was refused (insufficient-space): it \
                     would pass sandbox.disk_mib ({} MiB)",
                    self.quota >> 20
                );
            }
        }
        taken
    }

    /// Gives `bytes` of the quota back.
    pub fn give_back(&self, bytes: u64) {
        self.usage.give_back(bytes);
    }

    /// Notes a handle of `file` that a plugin holds, so that the file's bytes stay counted while
    /// it is open, whatever becomes of its names.
    pub fn opened(&self, file: &Arc<std::fs::File>) {
        let Ok(meta) = file.metadata() else { return };
        if !meta.is_file() {
            return;
        }
        let mut ledger = lock(&self.usage.ledger);
        let handles = ledger.open.entry((meta.dev(), meta.ino())).or_default();
        handles.retain(|h| h.strong_count() > 0);
        handles.push(Arc::downgrade(file));
        if ledger.open.len() > ledger.sweep_at {
            ledger.open.retain(|_, handles| {
                handles.retain(|h| h.strong_count() > 0);
                !handles.is_empty()
            });
            ledger.sweep_at = 2 * ledger.open.len() + 64;
        }
    }

    /// After a call removed a name: gives back its block, and if nothing names `entry` (the
    /// entry the name led to before the call) any more, what it held: its list of names if it
    /// was a directory, its bytes if it was a file (once no plugin holds it open).
    pub fn removed(&self, entry: Entry) {
        let mut ledger = lock(&self.usage.ledger);
        if !entry.unnamed() {
            self.give_back(ENTRY);
            return;
        }
        if entry.is_dir {
            let list = ledger.dirs.remove(&entry.identity);
            self.give_back(list.map_or(ENTRY, |size| size.max(ENTRY)));
            return;
        }
        let handles: Vec<_> = (ledger.open.remove(&entry.identity).into_iter().flatten())
            .filter_map(|h| h.upgrade())
            .collect();
        if handles.is_empty() {
            let bytes = ledger.files.remove(&entry.identity).unwrap_or(0);
            self.give_back(ENTRY + bytes);
        } else {
            self.give_back(ENTRY);
            ledger.removed.push((entry.identity, handles));
            self.usage.removed_any.store(true, Relaxed);
        }
    }

    /// After a call that took [`MAKE`] to make an entry listed in the directory `parent`: gives
    /// back the room, and the entry's block if it was not `made`; counts the directory as it is.
    pub fn made(&self, made: bool, parent: Option<&Metadata>) {
        // The growth is counted while the room is still held, so no other call takes the room
        // in between.
        if let Some(parent) = parent {
            self.listed(parent);
        }
        self.give_back(if made { MAKE - ENTRY } else { MAKE });
    }

    /// Counts the directory `meta` at its size now: what its list of names takes past a block.
    pub fn listed(&self, meta: &Metadata) {
        if !meta.is_dir() {
            return;
        }
        let size = meta.len().max(ENTRY);
        let mut ledger = lock(&self.usage.ledger);
        let counted = if size > ENTRY {
            ledger.dirs.insert(identity(meta), size)
        } else {
            ledger.dirs.remove(&identity(meta))
        }
        .unwrap_or(ENTRY);
        self.usage.change(size, counted);
    }

    /// Takes what writing `n` bytes at `at` (none: at the end) may add to `file`; none if that
    /// would pass the quota.
    fn reserve(&self, file: &std::fs::File, at: Option<u64>, n: u64) -> Option<Reserved> {
        let before = len(file);
        let most = at
            .unwrap_or(before)
            .saturating_add(n)
            .saturating_sub(before);
        self.take(most).then_some(Reserved(most))
    }

    /// Counts `file` at its size after a call that `reserved` was taken for, and gives that
    /// back.
    fn settle(&self, file: &std::fs::File, reserved: Reserved) {
        self.usage.count(file, reserved.0);
    }

    /// Counts `file` at its size now (after a change not reserved for: it may only shrink).
    pub fn recount(&self, file: &std::fs::File) {
        self.usage.count(file, 0);
    }
}

/// What a change of a file took of the quota before it ran: what it may add to the file.
struct Reserved(u64);

/// Runs `change` of `file`, which `reserved` was taken for, on a blocking thread that counts
/// the file once the change has landed, whether or not the caller still waits: the thread holds
/// the count, so it stays the one the next instance writing into the directory takes.
async fn change_of<R: Send + 'static>(
    disk: Arc<Disk>,
    file: Arc<std::fs::File>,
    reserved: Reserved,
    change: impl FnOnce(&std::fs::File) -> std::io::Result<R> + Send + 'static,
) -> std::io::Result<R> {
    tokio::task::spawn_blocking(move || {
        let result = change(&file);
        disk.settle(&file, reserved);
        result
    })
    .await
    .map_err(std::io::Error::other)?
}

/// What `file` holds now.
fn len(file: &std::fs::File) -> u64 {
    file.metadata().map_or(0, |m| m.len())
}

/// Puts the metered calls in front of wasmtime-wasi's in `linker`, which already has them.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    macro_rules! meter {
        ($($method:literal => $f:ident),* $(,)?) => {$(
            types.func_wrap_async(
                concat!("[method]descriptor.", $method),
                |mut store, params| Box::new(async move { $f(store.data_mut(), params).await }),
            )?;
        )*};
    }
    meter! {
        "write" => write,
        "write-via-stream" => write_via_stream,
        "append-via-stream" => append_via_stream,
        "set-size" => set_size,
        "open-at" => open_at,
        "create-directory-at" => create_directory_at,
        "symlink-at" => symlink_at,
        "link-at" => link_at,
        "rename-at" => rename_at,
        "unlink-file-at" => unlink_file_at,
        "remove-directory-at" => remove_directory_at,
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// A call's answer to the plugin.
type Answer<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;

/// wasmtime-wasi's answer, as the plugin gets it.
fn answer<T>(result: FsResult<T>) -> Answer<T> {
    match result {
        Ok(value) => Ok((Ok(value),)),
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}

fn no_space<T>() -> Answer<T> {
    Ok((Err(ErrorCode::InsufficientSpace),))
}

/// The open file of `fd` if it is a regular file: what else it may be (a directory, a device
/// such as /dev/null) takes nothing of the quota when written.
fn regular_file(
    state: &HostState,
    fd: &Resource<Descriptor>,
) -> wasmtime::Result<Option<Arc<std::fs::File>>> {
    Ok(match state.table.get(fd)? {
        Descriptor::File(f) if f.file.metadata().is_ok_and(|m| m.is_file()) => Some(f.file.clone()),
        _ => None,
    })
}

/// The open file of `fd` if it is a regular file of a directory the plugin may write into;
/// wasmtel writes it itself. Writes to anything else are left to wasmtime-wasi, which refuses
/// them where writes are not permitted.
fn writable_file(
    state: &HostState,
    fd: &Resource<Descriptor>,
) -> wasmtime::Result<Option<Arc<std::fs::File>>> {
    let writable =
        matches!(state.table.get(fd)?, Descriptor::File(f) if !f.perms.write_not_permitted());
    Ok(regular_file(state, fd)?.filter(|_| writable))
}

/// A name in a directory of the plugin's, resolved as wasmtime-wasi resolves it: inside the
/// directory.
struct Place {
    dir: Arc<std::fs::File>,
    path: PathBuf,
}

impl Place {
    /// `path` in the directory `dir`; none if `dir` is not a directory.
    fn of(state: &HostState, dir: &Resource<Descriptor>, path: &str) -> Option<Place> {
        match state.table.get(dir) {
            Ok(Descriptor::Dir(dir)) => Some(Place {
                dir: dir.dir.clone(),
                path: path.into(),
            }),
            _ => None,
        }
    }

    /// The identity of the entry at this place; none if there is none.
    fn identity(&self, follow: bool) -> Option<Identity> {
        let follow = if follow {
            FollowSymlinks::Yes
        } else {
            FollowSymlinks::No
        };
        let meta = cap_primitives::fs::stat(&self.dir, &self.path, follow).ok()?;
        Some(identity(&meta))
    }

    /// The entry at this place (not following a link), held open; none if there is none, or it
    /// cannot be opened (a link, or what the host may not read), when a removal gives back its
    /// block alone. Opened without blocking, so a FIFO put there meanwhile does not wait.
    fn held(&self) -> Option<Entry> {
        let mut options = cap_primitives::fs::OpenOptions::new();
        options
            .read(true)
            ._cap_fs_ext_follow(FollowSymlinks::No)
            ._cap_fs_ext_maybe_dir(true)
            ._cap_fs_ext_nonblock(true);
        Entry::held(cap_primitives::fs::open(&self.dir, &self.path, &options).ok()?)
    }

    /// The directory that lists this place.
    fn parent(&self) -> Option<Metadata> {
        cap_primitives::fs::stat(&self.dir, parent(&self.path), FollowSymlinks::Yes).ok()
    }
}

/// Counts the directory that lists `place` (if any) as it is now.
fn relist(state: &HostState, place: Option<&Place>) {
    if let Some(parent) = place.and_then(Place::parent) {
        state.disk.listed(&parent);
    }
}

async fn write(
    state: &mut HostState,
    (fd, buffer, offset): (Resource<Descriptor>, Vec<u8>, u64),
) -> Answer<u64> {
    let Some(file) = writable_file(state, &fd)?.filter(|_| !buffer.is_empty()) else {
        return answer(state.filesystem().write(fd, buffer, offset).await);
    };
    let Some(reserved) = state.disk.reserve(&file, Some(offset), buffer.len() as u64) else {
        return no_space();
    };
    let written = change_of(state.disk.clone(), file, reserved, move |f| {
        f.write_at(&buffer, offset)
    });
    done(written.await.map(|n| n as u64))
}

async fn set_size(state: &mut HostState, (fd, size): (Resource<Descriptor>, u64)) -> Answer<()> {
    let Some(file) = writable_file(state, &fd)? else {
        return answer(state.filesystem().set_size(fd, size).await);
    };
    let Some(reserved) = state.disk.reserve(&file, Some(size), 0) else {
        return no_space();
    };
    done(change_of(state.disk.clone(), file, reserved, move |f| f.set_len(size)).await)
}

/// The answer to the plugin of a call wasmtel made itself.
fn done<T>(result: std::io::Result<T>) -> Answer<T> {
    Ok((result.map_err(ErrorCode::from),))
}

async fn write_via_stream(
    state: &mut HostState,
    (fd, offset): (Resource<Descriptor>, u64),
) -> Answer<Resource<DynOutputStream>> {
    let file = regular_file(state, &fd)?;
    let stream = state.filesystem().write_via_stream(fd, offset);
    match file {
        Some(file) => metered(state, stream, file, Some(offset)),
        None => answer(stream),
    }
}

async fn append_via_stream(
    state: &mut HostState,
    (fd,): (Resource<Descriptor>,),
) -> Answer<Resource<DynOutputStream>> {
    let file = regular_file(state, &fd)?;
    let stream = state.filesystem().append_via_stream(fd);
    match file {
        Some(file) => metered(state, stream, file, None),
        None => answer(stream),
    }
}

/// Puts a [`Metered`] stream of `file` in the place of wasmtime-wasi's `stream`, once that has
/// been granted.
fn metered(
    state: &mut HostState,
    stream: FsResult<Resource<DynOutputStream>>,
    file: Arc<std::fs::File>,
    at: Option<u64>,
) -> Answer<Resource<DynOutputStream>> {
    let stream = match stream {
        Ok(stream) => stream,
        Err(e) => return answer(Err(e)),
    };
    drop(state.table.delete(stream)?);
    let metered: DynOutputStream = Box::new(Metered {
        file,
        disk: state.disk.clone(),
        at,
        closed: false,
    });
    Ok((Ok(state.table.push(metered)?),))
}

async fn open_at(
    state: &mut HostState,
    (dir, path_flags, path, open_flags, flags): (
        Resource<Descriptor>,
        PathFlags,
        String,
        OpenFlags,
        DescriptorFlags,
    ),
) -> Answer<Resource<Descriptor>> {
    let (create, truncate) = (
        open_flags.contains(OpenFlags::CREATE),
        open_flags.contains(OpenFlags::TRUNCATE),
    );
    let place = Place::of(state, &dir, &path);
    let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
    let before = place.as_ref().and_then(|p| p.identity(follow));
    let new = create && before.is_none();
    if new && !state.disk.take(MAKE) {
        return no_space();
    }
    let result = state
        .filesystem()
        .open_at(dir, path_flags, path, open_flags, flags)
        .await;
    if new {
        let parent = place.as_ref().and_then(Place::parent);
        state.disk.made(result.is_ok(), parent.as_ref());
    }
    if let Ok(fd) = &result
        && let Some(file) = regular_file(state, fd)?
    {
        state.disk.opened(&file);
        if truncate {
            state.disk.recount(&file);
        }
    }
    answer(result)
}

/// Takes what a call that makes an entry at `place` may take, then counts what it took.
async fn entry_made(
    state: &mut HostState,
    place: Option<Place>,
    make: impl AsyncFnOnce(&mut HostState) -> FsResult<()>,
) -> Answer<()> {
    if !state.disk.take(MAKE) {
        return no_space();
    }
    let result = make(state).await;
    let parent = place.as_ref().and_then(Place::parent);
    state.disk.made(result.is_ok(), parent.as_ref());
    answer(result)
}

async fn create_directory_at(
    state: &mut HostState,
    (dir, path): (Resource<Descriptor>, String),
) -> Answer<()> {
    let place = Place::of(state, &dir, &path);
    entry_made(state, place, async |s| {
        s.filesystem().create_directory_at(dir, path).await
    })
    .await
}

async fn symlink_at(
    state: &mut HostState,
    (dir, target, path): (Resource<Descriptor>, String, String),
) -> Answer<()> {
    let place = Place::of(state, &dir, &path);
    entry_made(state, place, async |s| {
        s.filesystem().symlink_at(dir, target, path).await
    })
    .await
}

async fn link_at(
    state: &mut HostState,
    (dir, flags, old, new_dir, new): (
        Resource<Descriptor>,
        PathFlags,
        String,
        Resource<Descriptor>,
        String,
    ),
) -> Answer<()> {
    let place = Place::of(state, &new_dir, &new);
    entry_made(state, place, async |s| {
        s.filesystem().link_at(dir, flags, old, new_dir, new).await
    })
    .await
}

async fn rename_at(
    state: &mut HostState,
    (dir, old, new_dir, new): (Resource<Descriptor>, String, Resource<Descriptor>, String),
) -> Answer<()> {
    // A rename onto an existing name removes what was there, unless that is the file renamed
    // (the same name, or another link to it), when the rename does nothing. A new name may grow
    // the list of its directory: room for that is taken first (a rename onto an existing name
    // adds none, so it is never refused, and may free space).
    let (from, to) = (
        Place::of(state, &dir, &old),
        Place::of(state, &new_dir, &new),
    );
    let renamed = from.as_ref().and_then(|p| p.identity(false));
    let target = to.as_ref().and_then(|p| p.identity(false));
    let held = to.as_ref().and_then(Place::held);
    let room = if target.is_none() { MAKE - ENTRY } else { 0 };
    if !state.disk.take(room) {
        return no_space();
    }
    let result = state.filesystem().rename_at(dir, old, new_dir, new).await;
    if let (Ok(()), Some(target)) = (&result, target)
        && renamed != Some(target)
    {
        match held {
            Some(entry) => state.disk.removed(entry),
            None => state.disk.give_back(ENTRY),
        }
    }
    relist(state, from.as_ref());
    relist(state, to.as_ref());
    state.disk.give_back(room);
    answer(result)
}

async fn unlink_file_at(state: &mut HostState, at: (Resource<Descriptor>, String)) -> Answer<()> {
    entry_removed(state, at, async |s, dir, path| {
        s.filesystem().unlink_file_at(dir, path).await
    })
    .await
}

async fn remove_directory_at(
    state: &mut HostState,
    at: (Resource<Descriptor>, String),
) -> Answer<()> {
    entry_removed(state, at, async |s, dir, path| {
        s.filesystem().remove_directory_at(dir, path).await
    })
    .await
}

/// Runs a call that removes the entry `path` of `dir`; if it did, gives back what the entry
/// held. Then counts the directory that listed it as it is now.
async fn entry_removed(
    state: &mut HostState,
    (dir, path): (Resource<Descriptor>, String),
    remove: impl AsyncFnOnce(&mut HostState, Resource<Descriptor>, String) -> FsResult<()>,
) -> Answer<()> {
    let place = Place::of(state, &dir, &path);
    let entry = place.as_ref().and_then(Place::held);
    let result = remove(state, dir, path).await;
    if result.is_ok() {
        match entry {
            Some(entry) => state.disk.removed(entry),
            None => state.disk.give_back(ENTRY),
        }
    }
    relist(state, place.as_ref());
    answer(result)
}

/// A regular file's output stream whose writes take what they add to the file from the quota
/// first. A write lands before the call returns (a file's write does not wait on anything but
/// the disk), so the file's size is known at every call.
struct Metered {
    file: Arc<std::fs::File>,
    disk: Arc<Disk>,
    /// Where the next write goes; none for a stream that appends.
    at: Option<u64>,
    /// Whether a write failed, which ends the stream.
    closed: bool,
}

impl Metered {
    fn open(&self) -> StreamResult<()> {
        if self.closed {
            Err(StreamError::Closed)
        } else {
            Ok(())
        }
    }
}

/// Writes `bytes` at the end of `file`, each write at the end as it is then, whoever else
/// writes the file.
fn append_all(file: &std::fs::File, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = append(file, bytes)?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[written..];
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn append(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<usize> {
    use rustix::io::{Errno, ReadWriteFlags, pwritev2};
    match pwritev2(file, &[IoSlice::new(bytes)], 0, ReadWriteFlags::APPEND) {
        Err(Errno::NOSYS | Errno::NOTSUP) => append_by_seeking(file, bytes),
        written => Ok(written?),
    }
}

#[cfg(not(target_os = "linux"))]
fn append(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<usize> {
    append_by_seeking(file, bytes)
}

/// Appends where the system appends with no flag for one write: at the end found by seeking.
fn append_by_seeking(mut file: &std::fs::File, bytes: &[u8]) -> std::io::Result<usize> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::End(0))?;
    file.write(bytes)
}

#[wasmtime_wasi::async_trait]
impl Pollable for Metered {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Metered {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.open()?;
        let failed = |e: std::io::Error| StreamError::LastOperationFailed(e.into());
        let Some(reserved) = self.disk.reserve(&self.file, self.at, bytes.len() as u64) else {
            // Nothing was written: the stream stays open, for when space has been freed.
            return Err(failed(std::io::Error::from_raw_os_error(libc::ENOSPC)));
        };
        let written = match &mut self.at {
            Some(at) => self.file.write_all_at(&bytes, *at).map(|()| {
                *at += bytes.len() as u64;
            }),
            None => append_all(&self.file, &bytes),
        };
        self.disk.settle(&self.file, reserved);
        written.map_err(|e| {
            self.closed = true;
            failed(e)
        })
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.open()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.open().map(|()| STREAM_CHUNK)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_count_reaches_a_file_nested_deeper_than_a_path_may_be_long() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let name = "d".repeat(200);
        let mut dir =
            cap_std::fs::Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        // 25 levels of 200 bytes: past PATH_MAX (4096), as a plugin can nest them, one
        // directory handle at a time.
        for _ in 0..25 {
            dir.create_dir(&name).unwrap();
            dir = dir.open_dir(&name).unwrap();
        }
        dir.write("deep", vec![7; 10_000]).unwrap();
        dir.create_dir("empty").unwrap();
        assert_eq!(walk(tmp.path()).unwrap().0, 27 * ENTRY + 10_000);
    }

    /// A quota of a GiB in `dir`, as an instance of an exporter writing there has it.
    fn instance(dir: &Path) -> Arc<Disk> {
        Disk::new(1 << 30, Some(dir), Default::default(), "test".into())
    }

    /// What the quota counts in the directory now.
    fn counted(disk: &Disk) -> u64 {
        disk.usage.release_closed();
        disk.usage.used.load(Relaxed)
    }

    #[test]
    fn two_instances_changing_one_file_at_once_are_each_counted_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("f"), vec![1; 100_000]).unwrap();
        let (first, second) = (instance(tmp.path()), instance(tmp.path()));
        let open = || {
            std::fs::OpenOptions::new()
                .append(true)
                .open(tmp.path().join("f"))
                .unwrap()
        };
        let (a, b) = (open(), open());
        // Both cut the file to nothing at once: its bytes are given back once.
        let (cut_a, cut_b) = (
            first.reserve(&a, Some(0), 0).unwrap(),
            second.reserve(&b, Some(0), 0).unwrap(),
        );
        a.set_len(0).unwrap();
        b.set_len(0).unwrap();
        first.settle(&a, cut_a);
        second.settle(&b, cut_b);
        assert_eq!(counted(&first), walk(tmp.path()).unwrap().0);
        // Both append at once, each reading the size before the other's write: each write is
        // counted once.
        let (add_a, add_b) = (
            first.reserve(&a, None, 30_000).unwrap(),
            second.reserve(&b, None, 50_000).unwrap(),
        );
        append_all(&a, &[2; 30_000]).unwrap();
        append_all(&b, &[3; 50_000]).unwrap();
        second.settle(&b, add_b);
        first.settle(&a, add_a);
        assert_eq!(counted(&second), walk(tmp.path()).unwrap().0);
        assert_eq!(counted(&second), ENTRY + 80_000);
    }

    #[test]
    fn a_file_given_another_name_while_one_is_removed_stays_counted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (a, c) = (tmp.path().join("a"), tmp.path().join("c"));
        std::fs::write(&a, vec![1; 100_000]).unwrap();
        let disk = instance(tmp.path());
        // One instance is about to remove `a` when another links `c` to it: the file lives on.
        let entry = Entry::held(std::fs::File::open(&a).unwrap()).unwrap();
        assert!(disk.take(MAKE));
        std::fs::hard_link(&a, &c).unwrap();
        disk.made(true, None);
        std::fs::remove_file(&a).unwrap();
        disk.removed(entry);
        assert_eq!(counted(&disk), walk(tmp.path()).unwrap().0);
        // Its last name removed, its bytes are given back.
        let entry = Entry::held(std::fs::File::open(&c).unwrap()).unwrap();
        std::fs::remove_file(&c).unwrap();
        disk.removed(entry);
        assert_eq!(counted(&disk), walk(tmp.path()).unwrap().0);
        assert_eq!(counted(&disk), 0);
    }

    #[tokio::test]
    async fn a_change_its_caller_abandoned_is_counted_by_the_next_instance() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = Arc::new(std::fs::File::create(tmp.path().join("f")).unwrap());
        let disk = instance(tmp.path());
        let (land, landing) = std::sync::mpsc::channel::<()>();
        let reserved = disk.reserve(&file, Some(0), 1 << 20).unwrap();
        let write = change_of(disk.clone(), file.clone(), reserved, move |f| {
            landing.recv().unwrap();
            f.write_all_at(&vec![7; 1 << 20], 0)
        });
        // The call is abandoned at its deadline, and the instance ends; the next one starts
        // while the write is still on its way.
        let abandoned = tokio::time::timeout(Duration::from_millis(20), write).await;
        assert!(abandoned.is_err(), "the write waits to be let land");
        drop((disk, file));
        let next = instance(tmp.path());
        land.send(()).unwrap();
        let waited = std::time::Instant::now();
        while counted(&next) != walk(tmp.path()).unwrap().0 {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "the count is {} of {}",
                counted(&next),
                walk(tmp.path()).unwrap().0
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(counted(&next), ENTRY + (1 << 20));
    }

    #[test]
    fn a_directory_is_counted_at_the_size_its_list_of_names_took() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let names: Vec<_> = (0..300).map(|n| dir.join(format!("{n:0>250}"))).collect();
        for name in &names {
            std::fs::write(name, "").unwrap();
        }
        for name in &names {
            std::fs::remove_file(name).unwrap();
        }
        let size = |path: &Path| std::fs::metadata(path).unwrap().len();
        let (total, large) = walk(tmp.path()).unwrap();
        let past = |path: &Path| size(path).saturating_sub(ENTRY);
        assert_eq!(total, ENTRY + past(&dir) + past(tmp.path()));
        let dir_meta = cap_std::fs::Dir::open_ambient_dir(&dir, cap_std::ambient_authority())
            .unwrap()
            .dir_metadata()
            .unwrap();
        assert_eq!(
            large.dirs.get(&identity(&dir_meta)).copied(),
            (size(&dir) > ENTRY).then(|| size(&dir))
        );
    }
}
