//! An exporter's queue and its worker. The queue holds the records laid out by record calls (in
//! room each recording thread reuses); the worker takes them, cuts batches (by count, by bytes,
//! by delay, at a change of resource), collects the aggregated metrics per interval, and exports
//! through its [`Exporter`], retrying, restarting and parking it per policy. It owns every change
//! of the exporter's health, the first included.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc::error::SendError;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wasmtel_sdk::encode;
use wasmtel_sdk::model::{KeyValue, Record};

use crate::clock::now_unix_nano;
use crate::config::PipelineConfig;
use crate::error::{CallError, Error, Location};
use crate::exporter::{Batch, Exporter, Start};
use crate::metrics::Reader;
use crate::spool::{Spool, Sync};
use crate::stats::{Counters, ExporterState};

/// The most room a recording thread keeps from one record to the next; a larger record's room
/// is given back.
const KEEP: usize = 64 << 10;

/// The most room a queue keeps once its worker has taken what it held; a burst's room is given
/// back.
const KEEP_QUEUED: usize = 1 << 20;

/// Room a recording thread reuses from one record to the next.
pub(crate) type Room = std::thread::LocalKey<std::cell::Cell<Vec<u8>>>;

/// Takes the thread's `room`, empty (fresh room if it is in use, as by a record made while
/// another is laid out, or gone as the thread ends).
pub(crate) fn take_room(room: &'static Room) -> Vec<u8> {
    let mut taken = room.try_with(std::cell::Cell::take).unwrap_or_default();
    taken.clear();
    taken
}

/// Gives `taken` back as the thread's `room`, for its next record, unless it grew large (or the
/// thread is ending).
pub(crate) fn give_back(room: &'static Room, taken: Vec<u8>) {
    if taken.capacity() <= KEEP {
        let _ = room.try_with(|kept| kept.set(taken));
    }
}

thread_local! {
    /// Where a recording thread lays its records out before they are copied into their queues.
    static LAYOUT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Lays a record out with `lay`, in the recording thread's reused room, and hands it to `then`.
pub(crate) fn laid<R>(lay: impl FnOnce(&mut Vec<u8>), then: impl FnOnce(&[u8]) -> R) -> R {
    let mut out = take_room(&LAYOUT);
    lay(&mut out);
    let result = then(&out);
    give_back(&LAYOUT, out);
    result
}

/// What a worker is told besides its records.
pub(crate) enum Control {
    /// Export what is queued and buffered, flush the exporter, then answer.
    Flush(oneshot::Sender<()>),
    /// Export (or spool) what is queued and buffered, shut the exporter down, and stop, by the
    /// deadline.
    Shutdown(Instant),
}

/// Why a record was not queued.
#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    /// The queue holds its capacity.
    Full,
    /// The worker has stopped.
    Closed,
}

/// An exporter's queue, as record calls see it: the records sent to the exporter, laid out one
/// after another in one buffer that its worker takes whole. A record call copies its record in
/// under a lock held while it does (the worker holds it only to swap the buffer for an empty
/// one, and to say what it has read), so a send allocates nothing once the buffer has grown and
/// touches nothing the worker writes per record. Bounded by records queued, or taken by the
/// worker and not yet read into its batch (a change of resource counts as one), and by their
/// bytes. The worker is
/// woken at most once per take, and only when a batch's worth of records is on its way (queued,
/// taken, or in its batch), by count or by bytes; when the queue is half full; or when a record
/// comes to a worker that holds none (to start the batch's delay). Not at every record.
#[derive(Clone)]
pub(crate) struct Queue {
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
}

/// What a queue's senders and its worker share.
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when the worker has read what it took (or stopped): room for a sender that
    /// waits.
    room: Condvar,
    wake: Notify,
    capacity: usize,
    /// The bytes of the records queued or taken and not yet read, at most.
    max_queued_bytes: usize,
    max_batch: usize,
    max_batch_bytes: usize,
    /// The exporter's counters: what a closed queue drops is counted there.
    counters: Arc<Counters>,
}

/// The records queued, and what the worker holds.
#[derive(Default)]
struct Pending {
    /// The records, each as in a batch (a change of resource as a resource record).
    laid: Vec<u8>,
    queued: usize,
    queued_bytes: usize,
    /// How many of the queued are changes of resource (not records of a signal).
    queued_resources: usize,
    /// Records (and their bytes) the worker has taken and not yet read.
    held: usize,
    held_bytes: usize,
    /// What the worker's batch holds (not yet exported), as it last said.
    batch: usize,
    batch_bytes: usize,
    /// Whether the worker was woken since it last took the queue.
    woken: bool,
    /// Senders waiting for room.
    waiting: usize,
    closed: bool,
    /// How often the worker took the queue.
    #[cfg(test)]
    takes: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A sender that panicked while holding the lock left the queue whole: a record is
        // counted only once its bytes are in.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes what is queued into `into` (emptied first), counting it as held; returns how many
    /// records it took (changes of resource among them).
    fn take(&self, into: &mut Vec<u8>) -> usize {
        into.clear();
        if into.capacity() > KEEP_QUEUED {
            *into = Vec::new();
        }
        let mut p = self.lock();
        std::mem::swap(&mut p.laid, into);
        let taken = std::mem::take(&mut p.queued);
        p.queued_resources = 0;
        p.held += taken;
        p.held_bytes += std::mem::take(&mut p.queued_bytes);
        p.woken = false;
        #[cfg(test)]
        {
            p.takes += 1;
        }
        taken
    }

    /// The worker has read `read` (records taken, and their bytes) into its batch (or, a change
    /// of resource, done with them): room for more; its batch now holds `batch`. A worker that
    /// holds nothing while records came unannounced (during its exports) is woken for them.
    fn read(&self, read: (usize, usize), batch: (usize, usize)) {
        let mut p = self.lock();
        p.held -= read.0;
        p.held_bytes -= read.1;
        (p.batch, p.batch_bytes) = batch;
        let wake = !p.woken && p.queued > 0 && p.held == 0 && p.batch == 0;
        p.woken |= wake;
        let waiting = p.waiting > 0 && read.0 > 0;
        drop(p);
        if wake {
            self.wake.notify_one();
        }
        if waiting {
            self.room.notify_all();
        }
    }

    /// Closes the queue: the records queued now are dropped, counted as dropped at shutdown
    /// (their count returned), and every later send is refused.
    fn close(&self) -> u64 {
        let mut p = self.lock();
        p.closed = true;
        p.laid = Vec::new();
        p.queued_bytes = 0;
        let left = (std::mem::take(&mut p.queued) - std::mem::take(&mut p.queued_resources)) as u64;
        drop(p);
        self.room.notify_all();
        Counters::add(&self.counters.dropped_shutdown, left);
        left
    }
}

/// The worker's end of a [`Queue`]. Dropped (the worker stopped, or aborted), it closes the
/// queue.
pub(crate) struct Inbox {
    shared: Arc<Shared>,
    control: mpsc::Receiver<Control>,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Queue {
    /// A queue of `config.capacity` records and `config.max_bytes` bytes for a worker that cuts
    /// batches of `config.max_batch` records or `config.max_batch_bytes` bytes, counting into
    /// `counters`.
    pub fn new(config: &PipelineConfig, counters: Arc<Counters>) -> (Queue, Inbox) {
        let (tx, rx) = mpsc::channel(8);
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            room: Condvar::new(),
            wake: Notify::new(),
            capacity: config.capacity.max(1),
            max_queued_bytes: config.max_bytes,
            max_batch: config.max_batch,
            max_batch_bytes: config.max_batch_bytes,
            counters,
        });
        let inbox = Inbox {
            shared: shared.clone(),
            control: rx,
        };
        (
            Queue {
                shared,
                control: tx,
            },
            inbox,
        )
    }

    /// Queues `record` (laid out as in a batch; a change of resource if `resource`) if there is
    /// room; if there is none, waits for it when `wait` (not from inside an async runtime), else
    /// refuses it.
    #[inline]
    pub fn send_record(&self, record: &[u8], resource: bool, wait: bool) -> Result<(), Refused> {
        debug_assert!(
            !wait || tokio::runtime::Handle::try_current().is_err(),
            "waiting for room inside an async runtime would block it"
        );
        let s = &*self.shared;
        let mut p = s.lock();
        while !p.closed
            && (p.queued + p.held >= s.capacity
                || p.queued_bytes + p.held_bytes + record.len() > s.max_queued_bytes)
        {
            if !wait {
                return Err(Refused::Full);
            }
            // The worker is woken before waiting on it.
            p.waiting += 1;
            s.wake.notify_one();
            p = s.room.wait(p).unwrap_or_else(PoisonError::into_inner);
            p.waiting -= 1;
        }
        if p.closed {
            return Err(Refused::Closed);
        }
        p.laid.extend_from_slice(record);
        p.queued += 1;
        p.queued_resources += usize::from(resource);
        p.queued_bytes += record.len();
        let wake = !p.woken
            && (p.held + p.batch == 0
                || p.queued + p.held + p.batch >= s.max_batch
                || p.queued_bytes + p.held_bytes + p.batch_bytes >= s.max_batch_bytes
                || p.queued + p.held >= s.capacity.div_ceil(2));
        p.woken |= wake;
        drop(p);
        if wake {
            s.wake.notify_one();
        }
        Ok(())
    }

    /// The records queued now (not yet taken by the worker, which counts them pending from
    /// then on); changes of resource are not records.
    pub fn queued(&self) -> u64 {
        let p = self.shared.lock();
        (p.queued - p.queued_resources) as u64
    }

    /// Tells the worker `control`, waiting for room.
    pub async fn send(&self, control: Control) -> Result<(), SendError<Control>> {
        self.control.send(control).await
    }

    /// Waits until the worker has stopped taking messages.
    #[cfg(test)]
    pub async fn closed(&self) {
        self.control.closed().await;
    }

    /// How often the worker took the queue.
    #[cfg(test)]
    fn takes(&self) -> usize {
        self.shared.lock().takes
    }
}

/// The batch being filled, laid out: the resource, then the records in arrival order.
struct Buffer {
    laid: Vec<u8>,
    /// The resource's record, which starts each batch.
    resource: Vec<u8>,
    records: usize,
    /// The records' bytes.
    bytes: usize,
    /// When the batch's delay ends (none: nothing held, or a deterministic worker, which cuts
    /// batches by count and bytes only).
    deadline: Option<Instant>,
    /// The queue this batch is filled from, and what has been read from what the worker took
    /// of it (records and bytes) since the queue was last told.
    queue: Arc<Shared>,
    read: (usize, usize),
}

impl Buffer {
    /// An empty batch of records from `queue`, from the resource `resource`.
    fn new(queue: Arc<Shared>, resource: &[KeyValue]) -> Buffer {
        let mut laid_resource = Vec::new();
        encode::resource_into(&mut laid_resource, resource);
        Buffer {
            laid: Vec::new(),
            resource: laid_resource,
            records: 0,
            bytes: 0,
            deadline: None,
            queue,
            read: (0, 0),
        }
    }

    fn len(&self) -> usize {
        self.records
    }

    fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The batch's bytes, for a record to be added: the resource first.
    fn start(&mut self) -> &mut Vec<u8> {
        if self.records == 0 {
            self.laid.clear();
            self.laid.extend_from_slice(&self.resource);
        }
        &mut self.laid
    }

    /// Adds a record taken from the queue, laid out.
    fn push(&mut self, record: &[u8]) {
        self.start().extend_from_slice(record);
        self.records += 1;
        self.bytes += record.len();
        self.read_one(record);
    }

    /// Counts a record taken from the queue as read.
    fn read_one(&mut self, record: &[u8]) {
        self.read = (self.read.0 + 1, self.read.1 + record.len());
    }

    /// Tells the queue what has been read and what the batch holds.
    fn tell(&mut self) {
        let read = std::mem::take(&mut self.read);
        self.queue.read(read, (self.records, self.bytes));
    }

    /// Adds `record`, laying it out here.
    fn push_record(&mut self, record: &Record) {
        let out = self.start();
        let before = out.len();
        encode::record_into(out, record);
        self.bytes += out.len() - before;
        self.records += 1;
    }

    /// Empties the buffer (and tells the queue): the batch laid out, and how many records it
    /// holds.
    fn take(&mut self) -> (Vec<u8>, usize) {
        self.bytes = 0;
        self.deadline = None;
        let taken = (
            std::mem::take(&mut self.laid),
            std::mem::take(&mut self.records),
        );
        self.tell();
        taken
    }
}

/// Whether an exporter gets its batches.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Health {
    /// Batches are exported; `failures` batches in a row were given up on.
    Running { failures: u32 },
    /// The exporter kept failing: batches are dropped until `until`, then one is tried once.
    Parked { until: Instant, backoff: Duration },
    /// The exporter refused its config: every batch is dropped.
    Failed,
}

/// The first delay after a fault before a fresh instance is made; doubled per fault in a row.
const RESTART_BACKOFF: Duration = Duration::from_millis(50);
/// How often a batch is tried again after faults, at most (fewer if `queue.max_retries` says so).
const MAX_FAULT_RETRIES: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Batches given up on in a row before the exporter is parked.
const PARK_AFTER: u32 = 3;
/// How long an exporter is parked at first; doubled each time a trial fails.
const FIRST_PARK: Duration = Duration::from_secs(5);
const MAX_PARK: Duration = Duration::from_secs(600);

/// How long before shutdown's deadline a spool's sender stops, at most.
const STOP_MARGIN: Duration = Duration::from_millis(20);

/// One exporter's worker: it takes the records queued, cuts batches, and hands each to its
/// [`Sender`], or, with a spool, writes it to the spool, from which a task of its own sends.
pub(crate) struct Worker<S: Start> {
    config: PipelineConfig,
    counters: Arc<Counters>,
    resource: Arc<[KeyValue]>,
    /// Cut batches by size only, never by delay (replay), so that a replay is deterministic.
    deterministic: bool,
    /// What sends the batches; with a spool, moved into its own task when the worker runs.
    sender: Option<Sender<S>>,
    spool: Option<Link>,
}

/// What a worker and its spool's sender share.
#[derive(Clone)]
struct Link {
    spool: Arc<Mutex<Spool>>,
    /// Signalled when a batch is spooled.
    spooled: Arc<Notify>,
}

impl Link {
    fn lock(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a worker tells its spool's sender.
enum ToSender {
    /// Answer once the batches spooled until now are delivered (or cannot be now) and the
    /// exporter flushed.
    Flush(oneshot::Sender<()>),
    /// Deliver what is spooled until the deadline, then stop; what is left stays spooled.
    Stop(Instant),
}

/// What a spool's sender was told by its worker.
#[derive(Default)]
struct Heard {
    /// Each flush waits for the batches spooled before it: until as many are gone.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    /// When to stop, once told.
    stop: Option<Instant>,
}

impl Heard {
    fn hear(&mut self, message: Option<ToSender>, link: &Link) {
        match message {
            Some(ToSender::Flush(done)) => self.flushes.push((link.lock().added(), done)),
            Some(ToSender::Stop(deadline)) => self.stop = Some(deadline),
            // The worker is gone: stop now.
            None => self.stop = Some(self.stop.unwrap_or_else(Instant::now)),
        }
    }

    /// Runs `work` while hearing what the worker says; None if the stop deadline came first
    /// (`work` is dropped mid-way).
    async fn during<T>(
        &mut self,
        work: impl Future<Output = T>,
        told: &mut mpsc::UnboundedReceiver<ToSender>,
        link: &Link,
    ) -> Option<T> {
        tokio::pin!(work);
        loop {
            let deadline = self.stop.unwrap_or_else(Instant::now);
            tokio::select! {
                done = &mut work => return Some(done),
                message = told.recv(), if self.stop.is_none() || !told.is_closed() => {
                    self.hear(message, link);
                }
                () = tokio::time::sleep_until(deadline), if self.stop.is_some() => return None,
            }
        }
    }
}

/// Aborts its task when dropped (the worker that owns it was aborted).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a batch handed to a [`Sender`] ended.
#[derive(Debug, PartialEq)]
enum Delivery {
    /// Exported, or dropped and counted.
    Done,
    /// Not delivered now, and worth trying later: kept in the spool.
    Kept,
}

/// What exports an exporter's batches: its live instance and health, retrying, restarting and
/// parking per policy. It owns every change of the exporter's health, the first included.
struct Sender<S: Start> {
    name: String,
    location: Option<Location>,
    max_retries: u32,
    starter: S,
    exporter: Option<S::Exporter>,
    health: Health,
    counters: Arc<Counters>,
    /// Whether its batches are spooled: one that cannot be delivered now is kept, not dropped,
    /// and its records are no longer counted pending.
    spooled: bool,
}

impl<S: Start> Worker<S> {
    /// A worker for the exporter `name` (defined at `location`), whose exporters `starter`
    /// makes; it counts into `counters`. Batches carry `resource` until a record changes it.
    pub fn new(
        name: &str,
        location: Option<Location>,
        config: PipelineConfig,
        starter: S,
        counters: Arc<Counters>,
        resource: &[KeyValue],
        deterministic: bool,
    ) -> Self {
        Worker {
            sender: Some(Sender {
                name: name.to_string(),
                location,
                max_retries: config.max_retries,
                starter,
                exporter: None,
                health: Health::Running { failures: 0 },
                counters: counters.clone(),
                spooled: false,
            }),
            config,
            counters,
            resource: resource.into(),
            deterministic,
            spool: None,
        }
    }

    /// Opens the spool, if the config has one (if it cannot be opened, the exporter runs
    /// without, and says why), and makes the first exporter. If that fails, the exporter is
    /// parked (tried again later) or, if it refused its config, failed.
    pub async fn start(&mut self) {
        let sender = self.sender.as_mut().expect("not yet running");
        if let Some(config) = &self.config.spool {
            match Spool::open(config, self.counters.clone()) {
                Ok((spool, found)) => {
                    let c = &self.counters;
                    let _ = c.spool_dir.set(config.dir.clone());
                    Counters::add(&c.spool_replayed, found.records);
                    Counters::add(&c.spool_in_doubt, found.in_doubt);
                    Counters::add(&c.dropped_corrupt, found.lost_records);
                    Counters::add(&c.spool_skipped_bytes, found.skipped_bytes);
                    if found.batches > 0 {
                        tracing::info!(
                            exporter = %sender.name,
                            "{} records in {} batches left spooled by an earlier run go first",
                            found.records,
                            found.batches
                        );
                    }
                    sender.spooled = true;
                    self.spool = Some(Link {
                        spool: Arc::new(Mutex::new(spool)),
                        spooled: Arc::new(Notify::new()),
                    });
                }
                Err(e) => {
                    let message = format!("{e}; running without a spool");
                    tracing::error!(exporter = %sender.name, "{message}");
                    self.counters.set_error(message);
                }
            }
        }
        sender.start().await;
    }

    /// Works until it is told to shut down or every sender is gone; collects metrics with
    /// `reader` (none: the exporter takes no metrics).
    pub async fn run(mut self, mut inbox: Inbox, mut reader: Option<Reader>) {
        let shared = inbox.shared.clone();
        let control = &mut inbox.control;
        let mut buffer = Buffer::new(shared.clone(), &self.resource);
        let mut taken = Vec::new();
        let mut interval = tokio::time::interval(self.config.metrics_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        // With a spool, a task of its own sends what is spooled.
        let spooled = self.spool.clone().map(|link| {
            let (tell, told) = mpsc::unbounded_channel();
            let sender = self.sender.take().expect("not yet running");
            let task = tokio::spawn(sender.send_spooled(link, told));
            (tell, AbortOnDrop(task))
        });
        // With `sync = "interval"`, what is spooled is made durable that often.
        let mut ticks = match self.sync_policy() {
            Some(Sync::Interval(every)) if spooled.is_some() => {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                Some(ticks)
            }
            _ => None,
        };
        loop {
            // The worker takes what is queued when woken (see `Queue` for when),
            // when the batch's delay ends, and before it flushes or stops.
            let deadline = buffer.deadline;
            tokio::select! {
                message = control.recv() => {
                    self.take_queue(&shared, &mut taken);
                    self.take(&taken, &mut buffer).await;
                    self.collect(reader.as_mut(), &mut buffer);
                    self.export(&mut buffer).await;
                    match (message, &spooled) {
                        (Some(Control::Flush(done)), None) => {
                            let sender = self.sender.as_mut().expect("sends here");
                            sender.flush().await;
                            let _ = done.send(());
                        }
                        (Some(Control::Flush(done)), Some((tell, _))) => {
                            let _ = tell.send(ToSender::Flush(done));
                            self.spool.as_ref().expect("spooled").spooled.notify_one();
                        }
                        (message, _) => {
                            let deadline = match message {
                                Some(Control::Shutdown(deadline)) => deadline,
                                _ => Instant::now(),
                            };
                            self.stop(spooled, deadline).await;
                            control.close();
                            shared.close();
                            return;
                        }
                    }
                }
                () = shared.wake.notified() => {
                    self.take_queue(&shared, &mut taken);
                    self.take(&taken, &mut buffer).await;
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.take_queue(&shared, &mut taken);
                    self.take(&taken, &mut buffer).await;
                    self.export(&mut buffer).await;
                }
                _ = interval.tick() => {
                    if reader.as_ref().is_some_and(|r| !r.is_idle()) {
                        self.collect(reader.as_mut(), &mut buffer);
                        self.export(&mut buffer).await;
                    }
                }
                _ = async { ticks.as_mut().expect("syncs").tick().await }, if ticks.is_some() => {
                    self.sync(None).await;
                }
            }
        }
    }

    /// Stops, all that was queued and buffered already exported or spooled: without a spool,
    /// flushes and shuts the exporter down; with one, makes it durable and lets its sender
    /// deliver until `deadline`.
    async fn stop(
        &mut self,
        spooled: Option<(mpsc::UnboundedSender<ToSender>, AbortOnDrop)>,
        deadline: Instant,
    ) {
        match spooled {
            None => {
                let sender = self.sender.as_mut().expect("sends here");
                // What the plugin keeps across calls is made durable or sent first, whether
                // or not its `shutdown` flushes.
                sender.flush().await;
                sender.shutdown().await;
            }
            Some((tell, mut task)) => {
                self.sync(Some(deadline)).await;
                // The sender stops a little before the deadline, so that this worker ends
                // within it, what is spooled made durable.
                let margin = deadline.saturating_duration_since(Instant::now()) / 10;
                let _ = tell.send(ToSender::Stop(deadline - margin.min(STOP_MARGIN)));
                if tokio::time::timeout_at(deadline, &mut task.0)
                    .await
                    .is_err()
                {
                    task.0.abort();
                }
                self.sync(Some(deadline)).await;
            }
        }
    }

    /// How the spool is synced; None without a spool.
    fn sync_policy(&self) -> Option<Sync> {
        self.config.spool.as_ref().map(|s| s.sync)
    }

    /// Makes what is spooled durable, if anything was written since the last time (never with
    /// `sync = "never"`), on a thread for blocking work: a slow disk holds up neither the
    /// spool nor the runtime. Waits for it until `deadline` at most (it goes on after).
    fn sync(&self, deadline: Option<Instant>) -> impl Future<Output = ()> + use<S> {
        let spooled = match (&self.spool, &self.config.spool) {
            (Some(link), Some(config)) if config.sync != Sync::Never => {
                Some((link.clone(), config.dir.clone()))
            }
            _ => None,
        };
        let counters = self.counters.clone();
        // A future of its own (not holding `self`, which is not `Sync`), so that the worker's
        // stays `Send`.
        async move {
            let Some((link, dir)) = spooled else { return };
            let report = |what: String| {
                let message = format!("spool {}: {what}", dir.display());
                tracing::warn!("{message}");
                counters.set_error(message);
            };
            let durable = match link.lock().durable() {
                Ok(Some(durable)) => durable,
                Ok(None) => return,
                Err(e) => return report(format!("cannot sync: {e}")),
            };
            let written = durable.written;
            let synced = tokio::task::spawn_blocking(move || durable.sync());
            let synced = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, synced).await {
                    Ok(synced) => synced,
                    Err(_) => {
                        return report("not yet durable when the shutdown deadline came".into());
                    }
                },
                None => synced.await,
            };
            match synced
                .map_err(std::io::Error::other)
                .and_then(|synced| synced)
            {
                Ok(()) => link.lock().synced(written),
                Err(e) => report(format!("cannot sync: {e}")),
            }
        }
    }

    /// Takes what is queued into `taken`: from now on this worker counts it as pending.
    fn take_queue(&self, shared: &Shared, taken: &mut Vec<u8>) {
        let n = shared.take(taken) as u64;
        self.counters.pending.fetch_add(n, Relaxed);
    }

    /// Adds the records `taken` from the queue to the batch, exporting each batch they fill,
    /// and tells the queue what it read (room for more) and what the batch holds.
    async fn take(&mut self, taken: &[u8], buffer: &mut Buffer) {
        let (max_batch, max_bytes) = (self.config.max_batch, self.config.max_batch_bytes);
        for (resource, record) in encode::records_in(taken) {
            if resource {
                buffer.read_one(record);
                self.counters.done(1);
                // A change of resource: the batch so far goes with the old one. The same
                // resource again changes nothing.
                if *record != *buffer.resource {
                    self.export(buffer).await;
                    buffer.resource.clear();
                    buffer.resource.extend_from_slice(record);
                    self.resource = wasmtel_sdk::Batch::new(record)
                        .expect("laid out by wasmtel_sdk::encode")
                        .resource()
                        .to_model()
                        .into();
                }
                continue;
            }
            // A record that would take the batch past its byte cap starts the next.
            if !buffer.is_empty() && buffer.bytes + record.len() > max_bytes {
                self.export(buffer).await;
            }
            if buffer.is_empty() && !self.deterministic {
                buffer.deadline = Some(Instant::now() + self.config.max_delay);
            }
            buffer.push(record);
            if buffer.len() >= max_batch || buffer.bytes >= max_bytes {
                self.export(buffer).await;
            }
        }
        buffer.tell();
    }

    /// Adds the metrics `reader` collects to the buffer.
    fn collect(&self, reader: Option<&mut Reader>, buffer: &mut Buffer) {
        let Some(reader) = reader else { return };
        for metric in reader.collect(now_unix_nano()) {
            buffer.push_record(&Record::Metric(metric));
            self.counters.pending.fetch_add(1, Relaxed);
        }
    }

    /// Exports and empties `buffer`: one batch, its records in the order they came; with a
    /// spool, spools it (if it cannot be written, it is dropped and counted).
    async fn export(&mut self, buffer: &mut Buffer) {
        if buffer.is_empty() {
            return;
        }
        let (laid, records) = buffer.take();
        let batch = Batch::laid(self.resource.clone(), laid, records);
        let Some(link) = &self.spool else {
            let sender = self.sender.as_mut().expect("sends here");
            sender.deliver(&batch).await;
            return;
        };
        let written = link.lock().append(&batch);
        match written {
            Ok(()) => {
                // With `sync = "batch"`, durable before it is sent.
                if self.sync_policy() == Some(Sync::Batch) {
                    self.sync(None).await;
                }
                // Spooled: no longer pending, whatever befalls the process.
                self.counters.done(records as u64);
                link.spooled.notify_one();
            }
            Err(e) => {
                let message = format!("spool: cannot write a batch of {records} records: {e}");
                tracing::error!("{message}; dropped");
                self.counters.set_error(message);
                self.counters.dropped_batch(records as u64);
                self.counters.done(records as u64);
            }
        }
    }
}

impl<S: Start> Sender<S> {
    /// Makes the first exporter. If that fails, the exporter is parked (tried again later) or,
    /// if it refused its config, failed.
    async fn start(&mut self) {
        match self.starter.start().await {
            Ok(exporter) => self.exporter = Some(exporter),
            Err(e) => {
                let permanent = e.is_permanent();
                let message = self.start_error(e);
                tracing::error!(exporter = %self.name, "{message}");
                self.counters.set_error(message);
                if permanent {
                    self.set_health(Health::Failed);
                } else {
                    self.park(FIRST_PARK);
                }
            }
        }
    }

    fn start_error(&self, source: crate::error::StartError) -> String {
        Error::Start {
            exporter: self.name.clone(),
            location: self.location.clone(),
            source: Box::new(source),
        }
        .chain()
    }

    /// Sends what `link`'s spool holds, oldest first, as told by `told`, until told to stop
    /// and either the spool is empty or the deadline has come.
    async fn send_spooled(mut self, link: Link, mut told: mpsc::UnboundedReceiver<ToSender>) {
        let mut heard = Heard::default();
        loop {
            let now = Instant::now();
            if heard.stop.is_some_and(|deadline| now >= deadline) {
                return;
            }
            let resting = match self.health {
                Health::Parked { until, .. } if now < until => Some(until),
                Health::Failed => Some(now + MAX_PARK),
                _ => None,
            };
            let batch = if resting.is_none() {
                link.lock().front()
            } else {
                None
            };
            if let Some(batch) = batch {
                let outcome = heard.during(self.deliver(&batch), &mut told, &link).await;
                match outcome {
                    Some(Delivery::Done) => {
                        let flushed = {
                            let mut spool = link.lock();
                            spool.done();
                            heard
                                .flushes
                                .first()
                                .is_some_and(|(added, _)| spool.gone(*added))
                        };
                        // What the plugin holds of them is made durable or sent.
                        if flushed && heard.during(self.flush(), &mut told, &link).await.is_none() {
                            self.exporter = None;
                            return;
                        }
                        let gone = |added: u64| link.lock().gone(added);
                        for (_, done) in heard.flushes.extract_if(.., |(added, _)| gone(*added)) {
                            let _ = done.send(());
                        }
                    }
                    Some(Delivery::Kept) => link.lock().kept(),
                    // Cut off mid-call: the instance is not used again; the batch stays.
                    None => {
                        self.exporter = None;
                        return;
                    }
                }
                continue;
            }
            // Nothing to send now: the spool is empty, or the exporter rests (what is
            // spooled is safe on disk meanwhile).
            // The plugin is flushed (and, at the end, shut down) whatever is left spooled: what
            // it took is made durable or sent.
            // What is heard meanwhile waits for the next round (a batch spooled behind it may
            // be sendable).
            let (flushes, stop) = (heard.flushes.len(), heard.stop);
            if (flushes > 0 || stop.is_some())
                && heard.during(self.flush(), &mut told, &link).await.is_none()
            {
                self.exporter = None;
                return;
            }
            for (_, done) in heard.flushes.drain(..flushes) {
                let _ = done.send(());
            }
            if !heard.flushes.is_empty() || heard.stop != stop {
                continue;
            }
            if let Some(deadline) = stop {
                let _ = tokio::time::timeout_at(deadline, self.shutdown()).await;
                return;
            }
            tokio::select! {
                () = link.spooled.notified() => {}
                message = told.recv() => heard.hear(message, &link),
                () = tokio::time::sleep_until(resting.unwrap_or(now)), if resting.is_some() => {}
            }
        }
    }

    /// Sends one batch, retrying per policy; counts the outcome. A parked exporter drops the
    /// batch (with a spool, keeps it), unless its parking time is over: then the batch is its
    /// one trial. With a spool, a batch whose retries are spent is kept too, unless the
    /// exporter refused it for good or faulted on it each time.
    async fn deliver(&mut self, batch: &Batch) -> Delivery {
        let n = batch.len() as u64;
        let max_retries = match self.health {
            Health::Running { .. } => self.max_retries,
            Health::Parked { until, .. } if Instant::now() >= until => 0,
            Health::Parked { .. } | Health::Failed if self.spooled => return Delivery::Kept,
            Health::Parked { .. } | Health::Failed => {
                self.drop_batch(n);
                return Delivery::Done;
            }
        };
        let c = self.counters.clone();
        let mut attempt = 0u32;
        let (message, keep) = loop {
            if attempt > 0 {
                Counters::add(&c.batches_retried, 1);
            }
            let exporter = match self.live_exporter().await {
                Ok(exporter) => exporter,
                Err(e) => break (e, true),
            };
            let started = std::time::Instant::now();
            let result = exporter.export(batch).await;
            Counters::add(&c.export_nanos, started.elapsed().as_nanos() as u64);
            let error = match result {
                Ok(()) => {
                    Counters::add(&c.batches_ok, 1);
                    let rejected = match exporter.take_rejected() {
                        Some((count, reason)) => {
                            let count = count.min(n);
                            let message =
                                format!("{count} of a batch of {n} records rejected: {reason}");
                            tracing::warn!(exporter = %self.name, "{message}");
                            c.set_error(message);
                            Counters::add(&c.dropped_rejected, count);
                            count
                        }
                        None => 0,
                    };
                    Counters::add(&c.records_exported, n - rejected);
                    self.settle(n);
                    self.recovered();
                    return Delivery::Done;
                }
                Err(e) => e,
            };
            Counters::add(&c.batches_failed, 1);
            let message = format!("batch of {n} records: {error}");
            c.set_error(message.clone());
            let (wait, tries) = match &error {
                CallError::Permanent(_) => break (message, false),
                CallError::Retryable { retry_after, .. } => {
                    (retry_after.unwrap_or_else(|| backoff(attempt)), max_retries)
                }
                // A fault is seldom cured by waiting: a fresh instance gets a few tries.
                CallError::Fault(_) => {
                    Counters::add(&c.faults, 1);
                    self.exporter = None;
                    (backoff(attempt), max_retries.min(MAX_FAULT_RETRIES))
                }
            };
            if attempt >= tries {
                break (message, matches!(error, CallError::Retryable { .. }));
            }
            tracing::warn!(exporter = %self.name, "{message}; retrying in {} ms", wait.as_millis());
            attempt += 1;
            tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
        };
        self.failed();
        if keep && self.spooled {
            tracing::warn!(exporter = %self.name, "kept {n} records in the spool: {message}");
            return Delivery::Kept;
        }
        tracing::error!(exporter = %self.name, "dropped {n} records: {message}");
        self.drop_batch(n);
        Delivery::Done
    }

    /// Counts a batch of `n` records as dropped.
    fn drop_batch(&self, n: u64) {
        self.counters.dropped_batch(n);
        self.settle(n);
    }

    /// `n` records are done with: no longer pending (spooled records were not).
    fn settle(&self, n: u64) {
        if !self.spooled {
            self.counters.done(n);
        }
    }

    /// A batch was exported: a parked exporter runs again.
    fn recovered(&mut self) {
        if self.health != (Health::Running { failures: 0 }) {
            if matches!(self.health, Health::Parked { .. }) {
                tracing::info!(exporter = %self.name, "exporter recovered");
            }
            self.set_health(Health::Running { failures: 0 });
        }
    }

    /// A batch was given up on (or, spooled, kept): after a few in a row, or after a failed
    /// trial, park. With a spool, parking lasts at most [`MAX_BACKOFF`]: what waits is on disk,
    /// and is sent soon after the destination is back.
    fn failed(&mut self) {
        let longest = if self.spooled { MAX_BACKOFF } else { MAX_PARK };
        let backoff = match self.health {
            Health::Running { failures } if failures + 1 < PARK_AFTER => {
                self.health = Health::Running {
                    failures: failures + 1,
                };
                return;
            }
            Health::Running { .. } => FIRST_PARK,
            Health::Parked { backoff, .. } => (backoff * 2).min(longest),
            Health::Failed => return,
        };
        let meanwhile = if self.spooled {
            "its batches wait in the spool"
        } else {
            "its batches are dropped (and counted)"
        };
        tracing::error!(
            exporter = %self.name,
            "exporter parked for {} s: {meanwhile} until it is tried again",
            backoff.as_secs()
        );
        self.park(backoff);
    }

    /// Drops batches for `backoff`, then tries one.
    fn park(&mut self, backoff: Duration) {
        self.set_health(Health::Parked {
            until: Instant::now() + backoff,
            backoff,
        });
    }

    fn set_health(&mut self, health: Health) {
        self.counters.set_state(match health {
            Health::Running { .. } => ExporterState::Running,
            Health::Parked { .. } => ExporterState::Parked,
            Health::Failed => ExporterState::Failed,
        });
        self.health = health;
    }

    /// The exporter, made afresh after a fault or a failed start.
    async fn live_exporter(&mut self) -> Result<&mut S::Exporter, String> {
        if self.exporter.is_none() {
            Counters::add(&self.counters.restarts, 1);
            match self.starter.start().await {
                Ok(exporter) => self.exporter = Some(exporter),
                Err(e) => {
                    let message = format!("restart failed: {}", self.start_error(e));
                    self.counters.set_error(message.clone());
                    return Err(message);
                }
            }
        }
        Ok(self.exporter.as_mut().expect("just made"))
    }

    async fn flush(&mut self) {
        if let Some(exporter) = &mut self.exporter
            && let Err(e) = exporter.flush().await
        {
            self.note_call_error("flush", e);
        }
    }

    async fn shutdown(&mut self) {
        if let Some(exporter) = &mut self.exporter
            && let Err(e) = exporter.shutdown().await
        {
            self.note_call_error("shutdown", e);
        }
        self.exporter = None;
    }

    fn note_call_error(&mut self, call: &str, e: CallError) {
        let message = format!("{call}: {e}");
        tracing::warn!(exporter = %self.name, "{message}");
        if matches!(e, CallError::Fault(_)) {
            Counters::add(&self.counters.faults, 1);
            self.exporter = None;
        }
        self.counters.set_error(message);
    }
}

/// Exponential backoff: 50 ms, 100 ms, 200 ms, ... capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    RESTART_BACKOFF
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF)
}

/// Asks the worker behind `queue` to export what it holds and flush its exporter; resolves when it
/// has (or when the worker is gone).
pub(crate) async fn flush(queue: Queue) {
    let (done, wait) = oneshot::channel();
    if queue.send(Control::Flush(done)).await.is_ok() {
        let _ = wait.await;
    }
}

/// How long an aborted worker may take to notice; it is stopped at its next await.
const ABORT_GRACE: Duration = Duration::from_millis(100);

/// Asks the worker behind `queue` to export what it holds and shut its exporter down, and waits for
/// it until `deadline` (the end of shutdown's budget of `budget`). Past it the worker is aborted
/// and the records it still held are counted as dropped at shutdown. Returns whether it finished
/// in time.
pub(crate) async fn stop(
    queue: Queue,
    mut worker: JoinHandle<()>,
    counters: &Counters,
    deadline: Instant,
    budget: Duration,
) -> bool {
    let stopped = async {
        let _ = queue.send(Control::Shutdown(deadline)).await;
        let _ = (&mut worker).await;
    };
    if tokio::time::timeout_at(deadline, stopped).await.is_ok() {
        return true;
    }
    // What is queued is dropped (and counted) as the queue closes; once the worker is gone it
    // counts nothing more: what it held is counted here, once.
    let queued = queue.shared.close();
    worker.abort();
    let _ = tokio::time::timeout(ABORT_GRACE, worker).await;
    let held = counters.pending.swap(0, Relaxed);
    Counters::add(&counters.dropped_shutdown, held);
    let undelivered = queued + held;
    if undelivered > 0 {
        counters.set_error(format!(
            "shutdown deadline ({} ms) passed with {undelivered} records undelivered",
            budget.as_millis()
        ));
    }
    false
}

#[cfg(test)]
mod tests {
    //! The worker against the in-memory exporter, on tokio's paused clock: time moves only when
    //! every task waits, so delays, backoffs and parking are exact and cost no real time.

    use tokio::time::sleep;
    use wasmtel_sdk::model::{Event, Number, Scope};

    use super::*;
    use crate::config::Signals;
    use crate::metrics::{Instrument, InstrumentKind, Measure, Store};
    use crate::routing::{Route, Routes};
    use crate::stats::ExporterStats;
    use crate::testing::{Call, InMemoryExporter, Outcome};

    const MS: Duration = Duration::from_millis(1);

    /// Lets `d` pass, then lets the worker act on whatever came due at that instant.
    async fn pass(d: Duration) {
        sleep(d).await;
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
    }

    /// A running worker over an in-memory exporter, and what the record call sends through.
    struct Harness {
        routes: Routes,
        store: Arc<Store>,
        exporter: InMemoryExporter,
        worker: Option<JoinHandle<()>>,
        t0: Instant,
    }

    fn config(max_batch: usize, max_retries: u32) -> PipelineConfig {
        PipelineConfig {
            capacity: 16,
            max_batch,
            max_delay: Duration::from_secs(1),
            max_retries,
            ..PipelineConfig::default()
        }
    }

    impl Harness {
        /// Starts a worker with `config` over `exporter` (scripted beforehand).
        async fn start(config: PipelineConfig, exporter: &InMemoryExporter) -> Harness {
            Harness::start_with(config, exporter, false).await
        }

        /// [`Harness::start`], cutting batches by size only if `deterministic`.
        async fn start_with(
            config: PipelineConfig,
            exporter: &InMemoryExporter,
            deterministic: bool,
        ) -> Harness {
            let t0 = Instant::now();
            let counters = Arc::new(Counters::default());
            let max_record_bytes = config.max_batch_bytes;
            let (queue, inbox) = Queue::new(&config, counters.clone());
            let temporality = config.temporality;
            let mut worker = Worker::new(
                "test",
                None,
                config,
                exporter.clone(),
                counters.clone(),
                &[],
                deterministic,
            );
            let store = Store::new(1);
            let reader = Reader::new(store.clone(), 0, temporality);
            worker.start().await;
            let route = Route {
                name: "test".into(),
                plugin: "in-memory".into(),
                signals: Signals::ALL,
                max_record_bytes,
                queue,
                counters,
            };
            Harness {
                routes: Routes::new(vec![route]),
                store,
                exporter: exporter.clone(),
                worker: Some(tokio::spawn(worker.run(inbox, Some(reader)))),
                t0,
            }
        }

        /// Records `n` events (never waiting), then lets the worker take them.
        async fn events(&self, n: usize) {
            for i in 0..n {
                self.routes
                    .record(Record::Event(Event::new("e").attr("i", i).at(1)), false);
            }
            tokio::task::yield_now().await;
        }

        fn stats(&self) -> ExporterStats {
            self.routes.stats().remove(0)
        }

        fn route(&self) -> &Route {
            self.routes.iter().next().expect("one route")
        }

        /// The calls so far, each with its time since the start.
        fn calls(&self) -> Vec<(Duration, Call)> {
            self.exporter
                .calls()
                .into_iter()
                .map(|(at, call)| (at - self.t0, call))
                .collect()
        }

        /// The export calls so far: their time since the start and their size.
        fn exports(&self) -> Vec<(Duration, usize)> {
            self.calls()
                .into_iter()
                .filter_map(|(at, call)| match call {
                    Call::Export { records, .. } => Some((at, records)),
                    _ => None,
                })
                .collect()
        }

        async fn flush(&self) {
            flush(self.route().queue.clone()).await;
        }

        /// Stops the worker within `timeout`; whether it finished in time.
        async fn stop(&mut self, timeout: Duration) -> bool {
            let route = self.route().clone();
            let worker = self.worker.take().expect("running");
            let deadline = Instant::now() + timeout;
            stop(route.queue, worker, &route.counters, deadline, timeout).await
        }
    }

    /// [`config`] with a spool in `dir`.
    fn spooled(dir: &std::path::Path, max_batch: usize, max_retries: u32) -> PipelineConfig {
        PipelineConfig {
            spool: Some(crate::spool::SpoolConfig {
                dir: dir.to_path_buf(),
                max_bytes: 1 << 30,
                sync: Sync::Interval(Duration::from_millis(500)),
            }),
            ..config(max_batch, max_retries)
        }
    }

    /// The `i` attribute of each event exported, in order.
    fn exported_is(exporter: &InMemoryExporter) -> Vec<i64> {
        exporter
            .events()
            .iter()
            .map(|e| match e.attributes[0].value {
                wasmtel_sdk::model::Value::Int(i) => i,
                ref other => panic!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_spool_an_outage_longer_than_every_retry_loses_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let exporter = InMemoryExporter::new();
        // Two tries per batch: three batches given up on park the exporter (5 s), and the
        // trials at 5 s and 15 s fail too; the one at 35 s goes through.
        exporter.script(std::iter::repeat_n(retryable(None), 8));
        let h = Harness::start(spooled(tmp.path(), 4, 1), &exporter).await;
        h.events(16).await;
        pass(Duration::from_secs(30)).await;
        let s = h.stats();
        assert_eq!(
            (s.records_exported, s.dropped(), s.spooled, s.pending),
            (0, 0, 16, 0),
            "{s}"
        );
        assert_eq!(s.state, ExporterState::Parked, "{s}");
        assert_eq!(h.exports().len(), 8);
        pass(Duration::from_secs(10)).await;
        let s = h.stats();
        assert_eq!(
            (s.records_exported, s.dropped(), s.spooled),
            (16, 0, 0),
            "{s}"
        );
        assert_eq!(
            exported_is(&exporter),
            (0..16).collect::<Vec<_>>(),
            "in order"
        );
        assert_eq!(s.state, ExporterState::Running);
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_spool_shutdown_leaves_what_is_not_delivered_for_the_next_start() {
        let tmp = tempfile::tempdir().unwrap();
        let exporter = InMemoryExporter::new();
        exporter.script(std::iter::repeat_n(retryable(None), 100));
        let mut h = Harness::start(spooled(tmp.path(), 4, 1), &exporter).await;
        h.events(10).await;
        pass(MS).await;
        assert!(h.stop(Duration::from_millis(200)).await, "stopped in time");
        let s = h.stats();
        assert_eq!(
            (s.records_exported, s.dropped(), s.spooled),
            (0, 0, 10),
            "the batch cut at shutdown is spooled too: {s}"
        );

        let exporter = InMemoryExporter::new();
        let mut h = Harness::start(spooled(tmp.path(), 4, 1), &exporter).await;
        pass(MS).await;
        let s = h.stats();
        assert_eq!(
            (
                s.spool_replayed,
                s.spool_in_doubt,
                s.records_exported,
                s.spooled
            ),
            (10, 0, 10, 0),
            "the batch tried was refused, so it is not in doubt: {s}"
        );
        assert_eq!(exported_is(&exporter), (0..10).collect::<Vec<_>>());
        assert!(h.stop(Duration::from_secs(1)).await);
    }

    fn retryable(retry_after: Option<Duration>) -> Outcome {
        Outcome::Fail(CallError::Retryable {
            message: "busy".into(),
            retry_after,
        })
    }

    fn permanent() -> Outcome {
        Outcome::Fail(CallError::Permanent("no".into()))
    }

    #[tokio::test(start_paused = true)]
    async fn batches_are_cut_by_count_and_the_rest_after_the_delay() {
        let h = Harness::start(config(3, 0), &InMemoryExporter::new()).await;
        h.events(7).await;
        assert_eq!(h.exports(), [(Duration::ZERO, 3), (Duration::ZERO, 3)]);
        pass(999 * MS).await;
        assert_eq!(h.exports().len(), 2, "the last record waits for its batch");
        pass(MS).await;
        assert_eq!(h.exports()[2], (1000 * MS, 1), "cut by delay");
        assert_eq!((h.stats().records_exported, h.stats().pending), (7, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_filled_one_record_at_a_time_goes_at_once() {
        // The worker takes each record as it comes, then holds it for its batch: the record
        // that fills the batch wakes it, whatever waits in the queue.
        let h = Harness::start(config(3, 0), &InMemoryExporter::new()).await;
        for _ in 0..3 {
            h.events(1).await;
        }
        assert_eq!(h.exports(), [(Duration::ZERO, 3)]);
        assert_eq!(h.stats().pending, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_holds_part_of_a_batch_is_not_woken_by_each_record() {
        let config = PipelineConfig {
            capacity: 1024,
            ..config(512, 0)
        };
        let h = Harness::start(config, &InMemoryExporter::new()).await;
        for _ in 0..100 {
            h.events(1).await;
        }
        assert_eq!(
            h.route().queue.takes(),
            1,
            "the first record wakes the worker; the others wait for the batch's delay"
        );
        pass(1000 * MS).await;
        assert_eq!(h.exports(), [(1000 * MS, 100)]);
        assert_eq!(h.route().queue.takes(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_of_resource_left_queued_at_shutdown_is_not_counted_as_a_record() {
        let exporter = InMemoryExporter::new();
        exporter.script([Outcome::Stall(Duration::from_secs(3600))]);
        let mut h = Harness::start(config(1, 0), &exporter).await;
        h.events(1).await; // taken, its export stalls
        let resource = vec![KeyValue::new("service.name", "codex")];
        h.routes.record(Record::Resource(resource), false);
        h.events(2).await;
        assert_eq!(h.stats().pending, 3, "records, not the change of resource");
        assert!(
            !h.stop(Duration::from_secs(5)).await,
            "stuck past the deadline"
        );
        let s = h.stats();
        assert_eq!((s.dropped_shutdown, s.pending), (3, 0), "{s}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_is_bounded_by_bytes_too() {
        let exporter = InMemoryExporter::new();
        exporter.script([Outcome::Stall(Duration::from_secs(3600))]);
        let config = PipelineConfig {
            max_batch_bytes: 2000,
            max_bytes: 3000,
            ..config(1, 0)
        };
        let h = Harness::start(config, &exporter).await;
        let big = || Record::Event(Event::new("big").attr("output", "x".repeat(1000)).at(1));
        h.routes.record(big(), false); // taken, its export stalls
        tokio::task::yield_now().await;
        for _ in 0..4 {
            h.routes.record(big(), false);
        }
        // About 1.1 kB each: two fit under 3000 bytes, the others do not, whatever the capacity.
        let s = h.stats();
        assert_eq!((s.dropped_queue_full, s.pending), (2, 3), "{s}");
    }

    #[tokio::test(start_paused = true)]
    async fn batches_are_cut_by_bytes() {
        let config = PipelineConfig {
            max_batch_bytes: 3000,
            ..config(100, 0)
        };
        let h = Harness::start(config, &InMemoryExporter::new()).await;
        for _ in 0..5 {
            h.routes.record(
                Record::Event(Event::new("big").attr("output", "x".repeat(1000)).at(1)),
                false,
            );
        }
        tokio::task::yield_now().await;
        // Each takes about 1.1 kB: two fit under 3000 bytes, a third starts the next batch.
        assert_eq!(h.exports(), [(Duration::ZERO, 2), (Duration::ZERO, 2)]);
        h.flush().await;
        assert_eq!(
            h.exports()[2],
            (Duration::ZERO, 1),
            "flush exports the rest at once"
        );
        assert_eq!(h.calls().last().map(|c| &c.1), Some(&Call::Flush));
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_of_resource_ends_the_batch() {
        let h = Harness::start(config(100, 0), &InMemoryExporter::new()).await;
        h.events(2).await;
        h.routes.record(
            Record::Resource(vec![KeyValue::new("service.name", "b")]),
            false,
        );
        h.events(1).await;
        h.flush().await;
        let batches = h.exporter.batches();
        assert_eq!(batches.iter().map(Batch::len).collect::<Vec<_>>(), [2, 1]);
        assert!(batches[0].resource().is_empty());
        assert_eq!(batches[1].resource()[0].key, "service.name");
        assert_eq!(
            h.stats().pending,
            0,
            "the resource record is accounted for too"
        );
    }

    fn span(name: &str) -> Record {
        Record::Span(wasmtel_sdk::model::Span {
            trace_id: 1,
            span_id: 1,
            parent_span_id: None,
            name: name.into(),
            kind: wasmtel_sdk::model::SpanKind::Internal,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: wasmtel_sdk::model::StatusCode::Unset,
            status_message: String::new(),
            scope: Scope::default(),
        })
    }

    /// Records events and spans in this order (`e` or `s`), then flushes; returns the batches'
    /// records the same way.
    async fn mixed(h: &Harness, order: &str) -> Vec<String> {
        for c in order.chars() {
            let record = match c {
                'e' => Record::Event(Event::new("e").at(1)),
                _ => span("s"),
            };
            h.routes.record(record, false);
        }
        h.flush().await;
        let letter = |r: &Record| if r.as_event().is_some() { 'e' } else { 's' };
        h.exporter
            .batches()
            .iter()
            .map(|b| b.records().map(|r| letter(&r)).collect())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_holds_every_signal_in_the_order_recorded() {
        let live = Harness::start(config(100, 0), &InMemoryExporter::new()).await;
        assert_eq!(mixed(&live, "eesee").await, ["eesee"]);
        let replay = Harness::start_with(config(100, 0), &InMemoryExporter::new(), true).await;
        assert_eq!(mixed(&replay, "eesee").await, ["eesee"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_resource_again_does_not_cut_the_batch() {
        let h = Harness::start(config(100, 0), &InMemoryExporter::new()).await;
        let resource = || Record::Resource(vec![KeyValue::new("service.name", "a")]);
        h.routes.record(resource(), false);
        h.events(2).await;
        h.routes.record(resource(), false);
        h.events(1).await;
        h.flush().await;
        let sizes: Vec<usize> = h.exporter.batches().iter().map(Batch::len).collect();
        assert_eq!(sizes, [3]);
        assert_eq!(h.stats().pending, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_larger_than_any_batch_is_dropped_at_the_record_call() {
        let config = PipelineConfig {
            max_batch_bytes: 3000,
            ..config(100, 0)
        };
        let h = Harness::start(config, &InMemoryExporter::new()).await;
        let big = |n: usize| Record::Event(Event::new("big").attr("output", "x".repeat(n)).at(1));
        h.routes.record(big(2000), false);
        h.routes.record(big(3000), false);
        h.flush().await;
        let s = h.stats();
        assert_eq!(
            (s.records_exported, s.dropped_too_large, s.pending),
            (1, 1, 0),
            "{s}"
        );
        assert!(s.to_string().contains("too large 1"), "{s}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_of_resource_is_never_too_large() {
        let config = PipelineConfig {
            max_batch_bytes: 500,
            ..config(100, 0)
        };
        let h = Harness::start(config, &InMemoryExporter::new()).await;
        let big = vec![KeyValue::new("service.name", "x".repeat(1000))];
        h.routes.record(Record::Resource(big.clone()), false);
        h.events(1).await;
        h.flush().await;
        assert_eq!(h.stats().dropped(), 0);
        assert_eq!(h.exporter.batches()[0].resource(), &big[..]);
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_with_doubling_backoff() {
        let exporter = InMemoryExporter::new();
        exporter.script([retryable(None), retryable(None), Outcome::Ok]);
        let h = Harness::start(config(1, 3), &exporter).await;
        h.events(1).await;
        pass(Duration::from_secs(1)).await;
        assert_eq!(
            h.exports(),
            [(Duration::ZERO, 1), (50 * MS, 1), (150 * MS, 1)]
        );
        let s = h.stats();
        assert_eq!(
            (
                s.batches_failed,
                s.batches_retried,
                s.batches_ok,
                s.records_exported
            ),
            (2, 2, 1, 1),
            "{s}"
        );
        assert_eq!(s.state, ExporterState::Running);
    }

    #[tokio::test(start_paused = true)]
    async fn the_plugins_retry_after_is_obeyed() {
        let exporter = InMemoryExporter::new();
        exporter.script([retryable(Some(700 * MS)), Outcome::Ok]);
        let h = Harness::start(config(1, 3), &exporter).await;
        h.events(1).await;
        pass(Duration::from_secs(1)).await;
        assert_eq!(h.exports(), [(Duration::ZERO, 1), (700 * MS, 1)]);
        assert_eq!(h.stats().records_exported, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_dropped_and_counted_when_retries_are_spent_or_the_error_is_permanent() {
        let exporter = InMemoryExporter::new();
        exporter.script([retryable(None), retryable(None), permanent()]);
        let h = Harness::start(config(1, 1), &exporter).await;
        h.events(2).await;
        pass(Duration::from_secs(1)).await;
        assert_eq!(
            h.exports().len(),
            3,
            "two tries for the first, one for the permanent"
        );
        let s = h.stats();
        assert_eq!(
            (
                s.dropped_failed,
                s.batches_dropped,
                s.records_exported,
                s.pending
            ),
            (2, 2, 0, 0),
            "{s}"
        );
        assert!(
            s.last_error
                .as_deref()
                .unwrap_or_default()
                .contains("permanent error: no")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_throws_the_instance_away_and_a_fresh_one_takes_the_retry() {
        let exporter = InMemoryExporter::new();
        exporter.script([Outcome::Fail(CallError::Fault("trap".into()))]);
        let h = Harness::start(config(1, 1), &exporter).await;
        h.events(1).await;
        pass(Duration::from_secs(1)).await;
        let calls: Vec<Call> = h.calls().into_iter().map(|c| c.1).collect();
        let export = Call::Export { records: 1 };
        assert_eq!(calls, [Call::Start, export.clone(), Call::Start, export]);
        let s = h.stats();
        assert_eq!((s.faults, s.restarts, s.records_exported), (1, 1, 1), "{s}");
    }

    #[tokio::test(start_paused = true)]
    async fn faults_get_three_fresh_instances_however_many_retries_errors_get() {
        let exporter = InMemoryExporter::new();
        let fault = || Outcome::Fail(CallError::Fault("trap".into()));
        exporter.script([fault(), fault(), fault(), fault(), Outcome::Ok]);
        let h = Harness::start(config(1, 10), &exporter).await;
        h.events(2).await;
        pass(Duration::from_secs(5)).await;
        let s = h.stats();
        assert_eq!(
            (s.faults, s.dropped_failed, s.records_exported),
            (4, 1, 1),
            "the first batch: 4 tries, then dropped; the next one exported: {s}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_exporter_that_keeps_failing_is_parked_longer_each_time_and_recovers() {
        let exporter = InMemoryExporter::new();
        // Three batches given up on, then a failed trial; the next trial succeeds.
        exporter.script([permanent(), permanent(), permanent(), permanent()]);
        let h = Harness::start(config(1, 0), &exporter).await;
        h.events(3).await;
        assert_eq!(h.stats().state, ExporterState::Parked);
        // Parked: batches are dropped without a call until 5 s have passed.
        pass(Duration::from_secs(1)).await;
        h.events(1).await;
        assert_eq!(h.exports().len(), 3);
        pass(Duration::from_secs(4)).await;
        h.events(1).await;
        assert_eq!(h.exports()[3].0, 5000 * MS, "the trial after 5 s fails");
        assert_eq!(h.stats().state, ExporterState::Parked);
        // Now parked for 10 s.
        pass(Duration::from_millis(9999)).await;
        h.events(1).await;
        assert_eq!(h.exports().len(), 4, "still parked after 9.999 s");
        pass(MS).await;
        h.events(1).await;
        assert_eq!(
            h.exports()[4].0,
            15000 * MS,
            "tried again after twice as long"
        );
        let s = h.stats();
        assert_eq!(s.state, ExporterState::Running, "{s}");
        assert_eq!(
            (s.records_exported, s.dropped_failed, s.batches_dropped),
            (1, 6, 6),
            "{s}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_start_parks_and_a_refused_config_fails_for_good() {
        let retry = InMemoryExporter::new();
        retry.script_starts([Some(CallError::Fault("trap in init".into()))]);
        let h = Harness::start(config(1, 0), &retry).await;
        assert_eq!(h.stats().state, ExporterState::Parked);
        assert!(
            h.stats()
                .last_error
                .unwrap_or_default()
                .contains("init failed: plugin fault")
        );
        h.events(1).await;
        assert!(h.exports().is_empty(), "parked: dropped without a call");
        pass(Duration::from_secs(5)).await;
        h.events(1).await;
        let s = h.stats();
        assert_eq!(
            (s.state, s.restarts, s.records_exported, s.dropped_failed),
            (ExporterState::Running, 1, 1, 1),
            "{s}"
        );

        let refuse = InMemoryExporter::new();
        refuse.script_starts([Some(CallError::Permanent("bad config".into()))]);
        let h = Harness::start(config(1, 0), &refuse).await;
        pass(Duration::from_secs(60)).await;
        h.events(2).await;
        let s = h.stats();
        assert_eq!(
            (s.state, s.dropped_failed, s.restarts),
            (ExporterState::Failed, 2, 0),
            "{s}"
        );
        assert_eq!(refuse.calls().len(), 1, "never started again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_at_the_record_call_and_after_shutdown_records_are_dropped() {
        let exporter = InMemoryExporter::new();
        exporter.script([Outcome::Stall(Duration::from_secs(3600))]);
        let config = PipelineConfig {
            capacity: 2,
            ..config(1, 0)
        };
        let mut h = Harness::start(config, &exporter).await;
        h.events(1).await; // taken, its export stalls
        h.events(3).await; // two fit the queue, one does not
        let s = h.stats();
        assert_eq!((s.dropped_queue_full, s.pending), (1, 3), "{s}");
        assert!(
            !h.stop(Duration::from_secs(5)).await,
            "stuck past the deadline"
        );
        h.route().queue.closed().await;
        h.events(1).await;
        let s = h.stats();
        assert_eq!(
            (s.dropped_queue_full, s.dropped_shutdown, s.pending),
            (1, 4, 0),
            "three undelivered at the deadline, one recorded after: {s}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_keeps_its_deadline_with_a_stuck_exporter() {
        let exporter = InMemoryExporter::new();
        exporter.script([Outcome::Stall(Duration::MAX)]);
        let mut h = Harness::start(config(1, 0), &exporter).await;
        h.events(1).await;
        let started = Instant::now();
        assert!(!h.stop(Duration::from_secs(5)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let s = h.stats();
        assert_eq!((s.dropped_shutdown, s.pending), (1, 0), "{s}");
        assert!(
            s.last_error
                .unwrap_or_default()
                .contains("shutdown deadline (5000 ms)")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_exports_what_is_buffered_then_flushes_and_shuts_the_exporter_down() {
        let mut h = Harness::start(config(100, 0), &InMemoryExporter::new()).await;
        h.events(3).await;
        assert!(h.stop(Duration::from_secs(5)).await);
        let calls: Vec<Call> = h.calls().into_iter().map(|c| c.1).collect();
        assert_eq!(
            calls[1..],
            [Call::Export { records: 3 }, Call::Flush, Call::Shutdown]
        );
        assert_eq!(h.stats().records_exported, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn flush_waits_for_a_slow_exporter() {
        let exporter = InMemoryExporter::new();
        exporter.script([Outcome::Stall(Duration::from_secs(2))]);
        let h = Harness::start(config(100, 0), &exporter).await;
        h.events(2).await;
        let started = Instant::now();
        h.flush().await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(h.stats().records_exported, 2);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), h.flush())
                .await
                .is_ok(),
            "an idle flush is immediate"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn measurements_are_aggregated_and_exported_each_interval() {
        let h = Harness::start(config(100, 0), &InMemoryExporter::new()).await;
        let counter = Instrument {
            name: "calls".into(),
            description: String::new(),
            unit: String::new(),
            kind: InstrumentKind::Counter,
        };
        let stream = h.store.stream(&counter, &Scope::default()).expect("new");
        for n in [2, 3] {
            stream.measure(Measure::Add(n), &[]);
        }
        tokio::task::yield_now().await;
        assert!(h.exports().is_empty());
        pass(PipelineConfig::default().metrics_interval).await;
        let metrics = h.exporter.metrics();
        assert_eq!(metrics.len(), 1, "one metric, at the interval");
        let wasmtel_sdk::model::MetricData::Sum { points, .. } = &metrics[0].data else {
            panic!("{metrics:?}")
        };
        assert_eq!(points[0].value, Number::Int(5));
        assert_eq!(h.stats().pending, 0);
    }
}
