//! The thread that advances the engine's epoch, against which running plugin code checks the
//! deadline of its call: every [`EPOCH_TICK`] while some call is running, and not otherwise, so
//! that a process whose plugins are idle is not woken a hundred times a second for nothing.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances while a call runs: the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How often an idle ticker looks whether its engine is gone (then it ends).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// An engine's ticker.
pub(super) struct Ticker {
    /// Calls running now.
    calls: Arc<AtomicUsize>,
    thread: Thread,
}

/// A running call, as its ticker counts it.
pub(super) struct Ticking(Arc<AtomicUsize>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AcqRel);
    }
}

impl Ticker {
    /// Starts the ticker of `engine`; it ends once the engine is dropped.
    pub fn start(engine: &Engine) -> std::io::Result<Arc<Ticker>> {
        let weak = engine.weak();
        let calls = Arc::new(AtomicUsize::new(0));
        let running = calls.clone();
        let thread = std::thread::Builder::new()
            .name("wasmtel-epoch".into())
            .spawn(move || {
                loop {
                    let busy = running.load(Acquire) > 0;
                    if busy {
                        std::thread::sleep(EPOCH_TICK);
                    } else {
                        // Woken by the next call's start (or, now and then, to look whether
                        // the engine is gone).
                        std::thread::park_timeout(IDLE_CHECK);
                    }
                    match weak.upgrade() {
                        Some(engine) if busy => engine.increment_epoch(),
                        Some(_) => {}
                        None => break,
                    }
                }
            })?;
        Ok(Arc::new(Ticker {
            calls,
            thread: thread.thread().clone(),
        }))
    }

    /// Counts a call as running until the returned guard is dropped; the first wakes the
    /// ticker.
    pub fn call(&self) -> Ticking {
        if self.calls.fetch_add(1, AcqRel) == 0 {
            self.thread.unpark();
        }
        Ticking(self.calls.clone())
    }
}
