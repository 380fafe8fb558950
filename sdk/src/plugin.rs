//! The plugin side: the [`Exporter`] trait, the host imports (`log`, `report`, `files`), and
//! the glue [`crate::export!`] expands to.

use std::cell::RefCell;

pub use crate::bindings::exports::wasmtel::exporter::exporter::{Context, Error, Retryable};
use crate::view::Batch;

/// An exporter plugin.
pub trait Exporter: 'static {
    /// Creates the exporter from its config table (JSON text; see [`parse_config`]).
    fn init(config: &str, context: &Context) -> Result<Self, Error>
    where
        Self: Sized;

    /// Exports a batch: the resource, then events, spans and metrics in the order they were
    /// recorded. A plugin reads the records it exports and passes over the others.
    fn export(&mut self, batch: &Batch<'_>) -> Result<(), Error>;

    /// Makes everything exported so far durable or sent.
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// The last call: by default, a flush.
    fn shutdown(&mut self) -> Result<(), Error> {
        self.flush()
    }
}

impl Error {
    /// A permanent error: the host drops the batch.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Error::Permanent(message.to_string())
    }

    /// A retryable error: the host sends the batch again later.
    pub fn retryable(message: impl std::fmt::Display, retry_after_ms: Option<u64>) -> Self {
        Error::Retryable(Retryable {
            message: message.to_string(),
            retry_after_ms,
        })
    }
}

impl From<std::io::Error> for Error {
    /// I/O errors are worth retrying, unless the sandbox forbids the operation.
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound => {
                Error::permanent(e)
            }
            _ => Error::retryable(e, None),
        }
    }
}

/// Parses a plugin's config (JSON text) into `T`, as a permanent error naming what is wrong.
/// Use `#[serde(deny_unknown_fields)]` on `T` so that misspelt keys are reported.
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, Error> {
    serde_json::from_str(config).map_err(|e| Error::permanent(format!("invalid config: {e}")))
}

/// Writes diagnostics to the host's log, tagged with the exporter's name. Natively they go to
/// standard error.
pub mod log {
    use crate::bindings::wasmtel::exporter::log::Level;

    fn write(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        crate::bindings::wasmtel::exporter::log::log(level, message);
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!("{level:?}: {message}");
    }

    /// A trace message.
    pub fn trace(message: &str) {
        write(Level::Trace, message)
    }
    /// A debug message.
    pub fn debug(message: &str) {
        write(Level::Debug, message)
    }
    /// An info message.
    pub fn info(message: &str) {
        write(Level::Info, message)
    }
    /// A warning.
    pub fn warn(message: &str) {
        write(Level::Warn, message)
    }
    /// An error.
    pub fn error(message: &str) {
        write(Level::Error, message)
    }
}

/// What became of a batch's records beyond the call's outcome.
pub mod report {
    /// `count` records of the batch being exported were refused by their destination though the
    /// export succeeds (a collector's partial success): the host counts them as dropped, not
    /// exported, and keeps `reason`. Call it during [`crate::Exporter::export`].
    pub fn rejected(count: u64, reason: &str) {
        #[cfg(target_arch = "wasm32")]
        crate::bindings::wasmtel::exporter::report::rejected(count, reason);
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!("rejected {count}: {reason}");
    }
}

/// Files of the sandbox directory that the exporter writes alone (the host's
/// `wasmtel:exporter/files`): a lock keeps every other writer, in this process or another, away
/// from a file until it is dropped, and a file that a writer holds is never deleted. Natively,
/// the same with the system's advisory locks.
pub mod files {
    use std::path::Path;

    /// The hold of one file; dropping it lets the file go.
    pub struct Lock(#[allow(dead_code, reason = "held for its lock")] Held);

    #[cfg(target_arch = "wasm32")]
    type Held = crate::bindings::wasmtel::exporter::files::Lock;
    #[cfg(not(target_arch = "wasm32"))]
    type Held = std::fs::File;

    /// Why a lock was not taken.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum LockError {
        /// Another writer, of this process or another, holds the file.
        Held,
        /// The file system keeps no such locks (some network file systems).
        Unsupported(String),
        /// Anything else, said.
        Failed(String),
    }

    impl std::fmt::Display for LockError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                LockError::Held => {
                    f.write_str("another writer (an exporter of this or another process) holds it")
                }
                LockError::Unsupported(m) => write!(f, "its file system keeps no locks: {m}"),
                LockError::Failed(m) => f.write_str(m),
            }
        }
    }

    /// Takes the lock of `path` (the file is created, empty, if missing; only a regular file can
    /// be locked).
    pub fn try_lock(path: &Path) -> Result<Lock, LockError> {
        #[cfg(target_arch = "wasm32")]
        {
            use crate::bindings::wasmtel::exporter::files::{self as host, LockError as E};
            let path = text(path).map_err(LockError::Failed)?;
            host::try_lock(&path).map(Lock).map_err(|e| match e {
                E::Held => LockError::Held,
                E::Unsupported(m) => LockError::Unsupported(m),
                E::Failed(m) => LockError::Failed(m),
            })
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let failed =
                |e: &dyn std::fmt::Display| LockError::Failed(format!("{}: {e}", path.display()));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| failed(&e))?;
            match file.try_lock() {
                Ok(()) => Ok(Lock(file)),
                Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held),
                Err(std::fs::TryLockError::Error(e))
                    if e.kind() == std::io::ErrorKind::Unsupported =>
                {
                    Err(LockError::Unsupported(format!("{}: {e}", path.display())))
                }
                Err(std::fs::TryLockError::Error(e)) => Err(failed(&e)),
            }
        }
    }

    /// Deletes `path` unless a writer holds its lock: `false` if one does (the file is live).
    pub fn remove_unlocked(path: &Path) -> Result<bool, String> {
        #[cfg(target_arch = "wasm32")]
        {
            crate::bindings::wasmtel::exporter::files::remove_unlocked(&text(path)?)
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
            let file = std::fs::File::open(path).map_err(|e| err(&e))?;
            match file.try_lock() {
                Ok(()) => std::fs::remove_file(path)
                    .map(|()| true)
                    .map_err(|e| err(&e)),
                Err(std::fs::TryLockError::WouldBlock) => Ok(false),
                Err(std::fs::TryLockError::Error(e)) => Err(err(&e)),
            }
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn text(path: &Path) -> Result<String, String> {
        path.to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{}: not UTF-8", path.display()))
    }
}

thread_local! {
    static INSTANCE: RefCell<State> = const { RefCell::new(State::New) };
}

enum State {
    New,
    Running(Box<dyn Exporter>),
    ShutDown,
}

#[doc(hidden)]
pub fn __init<T: Exporter>(config: String, context: Context) -> Result<(), Error> {
    INSTANCE.with_borrow_mut(|state| match state {
        State::New => {
            *state = State::Running(Box::new(T::init(&config, &context)?));
            Ok(())
        }
        State::Running(_) => Err(Error::permanent("init called twice")),
        State::ShutDown => Err(Error::permanent("init called after shutdown")),
    })
}

#[doc(hidden)]
pub fn __with(f: impl FnOnce(&mut dyn Exporter) -> Result<(), Error>) -> Result<(), Error> {
    INSTANCE.with_borrow_mut(|state| match state {
        State::Running(exporter) => f(exporter.as_mut()),
        State::New => Err(Error::permanent("called before init")),
        State::ShutDown => Err(Error::permanent("called after shutdown")),
    })
}

#[doc(hidden)]
pub fn __export(bytes: &[u8]) -> Result<(), Error> {
    let batch = Batch::new(bytes).map_err(Error::permanent)?;
    __with(|e| e.export(&batch))
}

#[doc(hidden)]
pub fn __shutdown() -> Result<(), Error> {
    let result = __with(|e| e.shutdown());
    INSTANCE.with_borrow_mut(|state| *state = State::ShutDown);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode, model};

    struct Counting(u32);

    impl Exporter for Counting {
        fn init(config: &str, _context: &Context) -> Result<Self, Error> {
            match config {
                "{}" => Ok(Counting(0)),
                other => Err(Error::permanent(format!("invalid config: {other}"))),
            }
        }
        fn export(&mut self, batch: &Batch<'_>) -> Result<(), Error> {
            self.0 += batch.events().count() as u32;
            Ok(())
        }
    }

    #[test]
    fn the_glue_refuses_calls_out_of_order() {
        let context = Context {
            exporter_name: "t".into(),
            session_id: "s".into(),
        };
        let batch = encode::batch(&[], &[model::Record::Event(model::Event::new("e"))]);
        let called = |r: Result<(), Error>| match r {
            Err(Error::Permanent(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(called(__export(&batch)), "called before init");
        assert_eq!(
            called(__init::<Counting>("{\"x\":1}".into(), context.clone())),
            "invalid config: {\"x\":1}"
        );
        __init::<Counting>("{}".into(), context.clone()).expect("init");
        assert_eq!(
            called(__init::<Counting>("{}".into(), context.clone())),
            "init called twice"
        );
        __export(&batch).expect("export");
        assert!(
            called(__export(&batch[..batch.len() - 1])).starts_with("not a batch in the layout"),
            "a cut batch is refused"
        );
        __shutdown().expect("shutdown");
        assert_eq!(called(__export(&batch)), "called after shutdown");
        assert_eq!(
            called(__init::<Counting>("{}".into(), context)),
            "init called after shutdown"
        );
    }
}
