//! `wasmtel:exporter/files`: advisory locks on files of the sandbox directory, taken by the host
//! for the plugin, so that two writers never append to one file and a live file is never
//! deleted. Paths are resolved inside the directory (cap-std): no `..`, absolute path or link
//! leads out.

use std::fs::TryLockError;

use cap_std::fs::{Dir, OpenOptions};
use wasmtime::component::Resource;

use super::HostState;
use super::bindings::wasmtel::exporter::files::{Host, HostLock};

/// How many files one instance may hold at once.
const MAX_LOCKS: usize = 64;

/// A held file: its lock goes with it.
pub struct HeldFile(#[allow(dead_code, reason = "held for its lock")] std::fs::File);

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

fn held(e: TryLockError) -> String {
    match e {
        TryLockError::WouldBlock => {
            "another writer (an exporter of this or of another process) holds it".to_string()
        }
        TryLockError::Error(e) => e.to_string(),
    }
}

impl Host for HostState {
    fn try_lock(&mut self, path: String) -> Result<Resource<HeldFile>, String> {
        if self.locks >= MAX_LOCKS {
            return Err(format!(
                "{path}: at most {MAX_LOCKS} files may be held at once"
            ));
        }
        let file = self
            .dir()?
            .open_with(
                &path,
                OpenOptions::new().read(true).write(true).create(true),
            )
            .map_err(|e| format!("{path}: {e}"))?
            .into_std();
        file.try_lock()
            .map_err(|e| format!("{path}: {}", held(e)))?;
        let lock = self
            .table
            .push(HeldFile(file))
            .map_err(|e| format!("{path}: {e}"))?;
        self.locks += 1;
        Ok(lock)
    }

    fn remove_unlocked(&mut self, path: String) -> Result<bool, String> {
        let dir = self.dir()?;
        let file = dir
            .open(&path)
            .map_err(|e| format!("{path}: {e}"))?
            .into_std();
        match file.try_lock() {
            // Deleted while held, so no writer takes it in between.
            Ok(()) => dir.remove_file(&path).map(|()| true),
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
