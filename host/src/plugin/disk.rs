//! The sandbox directory's quota (`sandbox.disk_mib`).
//!
//! What the directory holds is counted when an instance starts (every file's bytes, and a block
//! for every file, directory and link), then kept up to date by the calls that change it, which
//! wasmtel puts in front of wasmtime-wasi's own: writes (direct and through streams),
//! `set-size`, and creating, linking, renaming and removing entries. A call that would take the
//! directory past its quota fails inside the plugin with `insufficient-space` (ENOSPC), as on a
//! full disk, having written nothing; the plugin may free space and go on.
//!
//! The count is conservative: what a write might add is taken before it runs, and what it did
//! not add is given back after. A file's bytes are given back with its last name. Known limits:
//! a file removed while the plugin still holds it open counts as freed at once, and the quota is
//! one instance's, so exporters that share a directory each have their own.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, DescriptorType, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{
    DynOutputStream, FsResult, OutputStream, Pollable, StreamError, StreamResult,
};

use super::HostState;
use crate::stats::{Limit, LimitCounts};

/// What an entry (file, directory, link) costs besides its bytes: a block.
pub(super) const ENTRY: u64 = 4096;

/// The interface whose calls are metered, at the version wasmtime-wasi implements.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// One instance's quota, and what it holds of it.
pub(super) struct Disk {
    quota: u64,
    used: AtomicU64,
    passed: Arc<LimitCounts>,
    exporter: Arc<str>,
    /// Whether the host's log has said that a write was refused.
    warned: AtomicBool,
}

impl Disk {
    /// The quota of `dir` (none: nothing to count), with what it holds now.
    pub fn new(
        quota: u64,
        dir: Option<&Path>,
        passed: Arc<LimitCounts>,
        exporter: Arc<str>,
    ) -> Arc<Disk> {
        Arc::new(Disk {
            quota,
            used: AtomicU64::new(dir.map_or(0, usage)),
            passed,
            exporter,
            warned: AtomicBool::new(false),
        })
    }

    /// Takes `bytes` more of the quota: false (counted, and said once) if that would pass it.
    pub fn take(&self, bytes: u64) -> bool {
        let taken = bytes == 0
            || self
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
        let _ = self
            .used
            .fetch_update(Relaxed, Relaxed, |used| Some(used.saturating_sub(bytes)));
    }
}

/// What the directory tree at `dir` holds: its files' bytes and a block per entry. Links are not
/// followed.
fn usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total += ENTRY + if meta.is_file() { meta.len() } else { 0 };
            if meta.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    total
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

fn borrow(fd: &Resource<Descriptor>) -> Resource<Descriptor> {
    Resource::new_borrow(fd.rep())
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

/// The size of `fd` if it is a regular file (see [`regular_file`]).
fn size_of(state: &HostState, fd: &Resource<Descriptor>) -> wasmtime::Result<Option<u64>> {
    Ok(regular_file(state, fd)?.map(|f| len(&f)))
}

/// What `file` holds now.
fn len(file: &std::fs::File) -> u64 {
    file.metadata().map_or(0, |m| m.len())
}

/// What `path` under `dir` holds of the quota; none if it does not exist.
async fn cost_at(
    state: &mut HostState,
    dir: &Resource<Descriptor>,
    flags: PathFlags,
    path: &str,
) -> Option<u64> {
    let stat = state
        .filesystem()
        .stat_at(borrow(dir), flags, path.to_string())
        .await
        .ok()?;
    let bytes = match stat.type_ {
        DescriptorType::RegularFile if stat.link_count <= 1 => stat.size,
        _ => 0,
    };
    Some(ENTRY + bytes)
}

async fn write(
    state: &mut HostState,
    (fd, buffer, offset): (Resource<Descriptor>, Vec<u8>, u64),
) -> Answer<u64> {
    let Some(before) = size_of(state, &fd)? else {
        return answer(state.filesystem().write(fd, buffer, offset).await);
    };
    let most = offset
        .saturating_add(buffer.len() as u64)
        .saturating_sub(before);
    if !state.disk.take(most) {
        return no_space();
    }
    let same = borrow(&fd);
    let result = state.filesystem().write(fd, buffer, offset).await;
    let grown = size_of(state, &same)?
        .unwrap_or(before)
        .saturating_sub(before);
    state.disk.give_back(most.saturating_sub(grown));
    answer(result)
}

async fn set_size(state: &mut HostState, (fd, size): (Resource<Descriptor>, u64)) -> Answer<()> {
    let before = size_of(state, &fd)?.unwrap_or(size);
    if !state.disk.take(size.saturating_sub(before)) {
        return no_space();
    }
    let result = state.filesystem().set_size(fd, size).await;
    state.disk.give_back(if result.is_ok() {
        before.saturating_sub(size)
    } else {
        size.saturating_sub(before)
    });
    answer(result)
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

/// Puts a [`Metered`] stream of `file` in the place of `stream`.
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
    let inner = state.table.delete(stream)?;
    let metered: DynOutputStream = Box::new(Metered {
        inner,
        disk: state.disk.clone(),
        file,
        at,
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
    let before = if create || truncate {
        cost_at(state, &dir, path_flags, &path).await
    } else {
        None
    };
    let new = create && before.is_none();
    if new && !state.disk.take(ENTRY) {
        return no_space();
    }
    let result = state
        .filesystem()
        .open_at(dir, path_flags, path, open_flags, flags)
        .await;
    match (&result, before) {
        (Err(_), None) if new => state.disk.give_back(ENTRY),
        (Ok(_), Some(cost)) if truncate => state.disk.give_back(cost - ENTRY),
        _ => {}
    }
    answer(result)
}

/// Takes an entry's block for a call that makes one; gives it back if the call fails.
async fn entry_made(
    state: &mut HostState,
    make: impl AsyncFnOnce(&mut HostState) -> FsResult<()>,
) -> Answer<()> {
    if !state.disk.take(ENTRY) {
        return no_space();
    }
    let result = make(state).await;
    if result.is_err() {
        state.disk.give_back(ENTRY);
    }
    answer(result)
}

async fn create_directory_at(
    state: &mut HostState,
    (dir, path): (Resource<Descriptor>, String),
) -> Answer<()> {
    entry_made(state, async |s| {
        s.filesystem().create_directory_at(dir, path).await
    })
    .await
}

async fn symlink_at(
    state: &mut HostState,
    (dir, target, path): (Resource<Descriptor>, String, String),
) -> Answer<()> {
    entry_made(state, async |s| {
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
    entry_made(state, async |s| {
        s.filesystem().link_at(dir, flags, old, new_dir, new).await
    })
    .await
}

async fn rename_at(
    state: &mut HostState,
    (dir, old, new_dir, new): (Resource<Descriptor>, String, Resource<Descriptor>, String),
) -> Answer<()> {
    // A rename onto an existing name removes what was there, unless that is the file renamed
    // (the same name, or another link to it), when the rename does nothing.
    let renamed = identity(state, &dir, &old).await;
    if renamed.is_some() && renamed == identity(state, &new_dir, &new).await {
        return answer(state.filesystem().rename_at(dir, old, new_dir, new).await);
    }
    let (target_dir, target) = (borrow(&new_dir), new.clone());
    entry_removed(state, &target_dir, &target, async |s| {
        s.filesystem().rename_at(dir, old, new_dir, new).await
    })
    .await
}

async fn unlink_file_at(
    state: &mut HostState,
    (dir, path): (Resource<Descriptor>, String),
) -> Answer<()> {
    let (from, name) = (borrow(&dir), path.clone());
    entry_removed(state, &from, &name, async |s| {
        s.filesystem().unlink_file_at(dir, path).await
    })
    .await
}

async fn remove_directory_at(
    state: &mut HostState,
    (dir, path): (Resource<Descriptor>, String),
) -> Answer<()> {
    let (from, name) = (borrow(&dir), path.clone());
    entry_removed(state, &from, &name, async |s| {
        s.filesystem().remove_directory_at(dir, path).await
    })
    .await
}

/// What tells the file at `path` under `dir` from others (links not followed); none if there is
/// none.
async fn identity(
    state: &mut HostState,
    dir: &Resource<Descriptor>,
    path: &str,
) -> Option<(u64, u64)> {
    let hash = state
        .filesystem()
        .metadata_hash_at(borrow(dir), PathFlags::empty(), path.to_string())
        .await
        .ok()?;
    Some((hash.lower, hash.upper))
}

/// Runs `remove`, which removes the entry `path` of `dir`, and gives back what it held if it
/// went.
async fn entry_removed(
    state: &mut HostState,
    dir: &Resource<Descriptor>,
    path: &str,
    remove: impl AsyncFnOnce(&mut HostState) -> FsResult<()>,
) -> Answer<()> {
    let cost = cost_at(state, dir, PathFlags::empty(), path).await;
    let result = remove(state).await;
    if result.is_ok() {
        state.disk.give_back(cost.unwrap_or(0));
    }
    answer(result)
}

/// A file's output stream whose writes take their growth of the file from the quota first.
struct Metered {
    inner: DynOutputStream,
    disk: Arc<Disk>,
    /// The file, whose size is read at each write (another call may have changed it).
    file: Arc<std::fs::File>,
    /// Where the next write goes; none for a stream that appends.
    at: Option<u64>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Metered {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Metered {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let n = bytes.len() as u64;
        // The stream lets one write be under way at a time, and it has landed by now.
        let growth = match self.at {
            Some(at) => at.saturating_add(n).saturating_sub(len(&self.file)),
            None => n,
        };
        if !self.disk.take(growth) {
            let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC);
            return Err(StreamError::LastOperationFailed(enospc.into()));
        }
        if let Some(at) = &mut self.at {
            *at = at.saturating_add(n);
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}
