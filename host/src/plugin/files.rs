//! `wasmtel:exporter/files`: advisory locks on files of the sandbox directory, taken by the host
//! for the plugin, so that two writers never append to one file and a live file is never
//! deleted. Paths are resolved inside the directory (cap-std): no `..`, absolute path or link
//! leads out; and only regular files are taken (no link, FIFO or device, which could block).

use std::fs::TryLockError;
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions};
use wasmtime::component::Resource;

use super::HostState;
use super::bindings::wasmtel::exporter::files::{Host, HostLock, LockError};
use super::disk::{Entry, MAKE, parent};

/// How many files one instance may hold at once.
const MAX_LOCKS: usize = 64;

/// A held file: its lock goes with it.
pub struct HeldFile(#[allow(dead_code, reason = "held for its lock")] Arc<std::fs::File>);

/// The sandbox directory, opened, for the `files` interface.
pub(super) fn open_dir(path: &std::path::Path) -> std::io::Result<Dir> {
    Dir::open_ambient_dir(path, cap_std::ambient_authority())
}

impl HostState {
    fn dir(&self) -> Result<&Dir, String> {
        self.dir
            .as_ref()
            .ok_or_else(|| "the sandbox grants no directory".to_string())
    }
}

/// The device and inode of `path` if it is a regular file (not following a link), none if it
/// does not exist; an error if it is anything else.
fn regular(dir: &Dir, path: &str) -> Result<Option<(u64, u64)>, String> {
    use cap_std::fs::MetadataExt;
    match dir.symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some((meta.dev(), meta.ino()))),
        Ok(_) => Err(format!("{path}: not a regular file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

/// Whether `file` is the file of `identity` (device, inode).
fn is(file: &cap_std::fs::File, identity: (u64, u64)) -> bool {
    use cap_std::fs::MetadataExt;
    file.metadata()
        .is_ok_and(|m| (m.dev(), m.ino()) == identity)
}

/// A lock that could not be taken, as the plugin sees it.
fn lock_error(path: &str, e: TryLockError) -> LockError {
    match e {
        TryLockError::WouldBlock => LockError::Held,
        // ENOLCK: the file system keeps no locks (some network file systems).
        TryLockError::Error(e)
            if e.kind() == std::io::ErrorKind::Unsupported || e.raw_os_error() == Some(37) =>
        {
            LockError::Unsupported(format!("{path}: {e}"))
        }
        TryLockError::Error(e) => LockError::Failed(format!("{path}: {e}")),
    }
}

impl Host for HostState {
    fn try_lock(&mut self, path: String) -> Result<Resource<HeldFile>, LockError> {
        let failed = |e: &dyn std::fmt::Display| LockError::Failed(format!("{path}: {e}"));
        if self.locks >= MAX_LOCKS {
            return Err(failed(&format!(
                "at most {MAX_LOCKS} files may be held at once"
            )));
        }
        let dir = self.dir().map_err(LockError::Failed)?;
        let new = regular(dir, &path).map_err(LockError::Failed)?.is_none();
        if new && !self.disk.take(MAKE) {
            return Err(failed(&"it would pass sandbox.disk_mib"));
        }
        let options = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .clone();
        let opened = dir.open_with(&path, &options);
        if new {
            let listing = dir.metadata(parent(path.as_ref()));
            self.disk.made(opened.is_ok(), listing.ok().as_ref());
        }
        let file = opened.map_err(|e| failed(&e))?.into_std();
        file.try_lock().map_err(|e| lock_error(&path, e))?;
        let file = Arc::new(file);
        self.disk.opened(&file);
        let lock = self.table.push(HeldFile(file)).map_err(|e| failed(&e))?;
        self.locks += 1;
        Ok(lock)
    }

    fn remove_unlocked(&mut self, path: String) -> Result<bool, String> {
        let dir = self.dir()?;
        let Some(identity) = regular(dir, &path)? else {
            return Err(format!("{path}: no such file"));
        };
        let file = dir.open(&path).map_err(|e| format!("{path}: {e}"))?;
        let opened = is(&file, identity);
        let file = file.into_std();
        match file.try_lock() {
            // Deleted while held, and only if the name still leads to the file that was locked,
            // so no writer takes it in between and no other file goes in its place.
            Ok(()) if opened && regular(dir, &path)? == Some(identity) => {
                let removed = dir.remove_file(&path);
                if let (Ok(()), Some(entry)) = (&removed, Entry::held(file)) {
                    self.disk.removed(entry);
                }
                if let Ok(listing) = dir.metadata(parent(path.as_ref())) {
                    self.disk.listed(&listing);
                }
                removed.map(|()| true)
            }
            Ok(()) => return Err(format!("{path}: changed while being removed")),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
        .map_err(|e| format!("{path}: {e}"))
    }
}

impl HostLock for HostState {
    fn drop(&mut self, lock: Resource<HeldFile>) -> wasmtime::Result<()> {
        self.table.delete(lock)?;
        self.locks -= 1;
        Ok(())
    }
}
