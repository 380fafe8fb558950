//! The plugin runtime: compiles exporter components (with an on-disk cache), links them against
//! the WASI subset their sandbox grants, and runs each instance in its own store, where it is an
//! `Exporter`. It owns starting an instance (instantiate, then `init`) and the sandbox defaults.
//!
//! [`crate::Telemetry`] drives plugins through this module; it is public for tools that drive one
//! plugin directly (fixture harnesses, benchmarks):
//!
//! ```no_run
//! # async fn demo(batch: wasmtel::plugin::Batch) -> Result<(), Box<dyn std::error::Error>> {
//! use wasmtel::plugin::{Runtime, Sandbox, builtin};
//! let runtime = Runtime::new(None)?;
//! let plugin = runtime.load("file-jsonl", builtin("file-jsonl").expect("built in"))?;
//! let mut instance = plugin.instantiate("demo", &Sandbox::default()).await?;
//! instance.init("{}", "demo", "session-1").await?;
//! instance.export(&batch).await?;
//! instance.shutdown().await?;
//! # Ok(()) }
//! ```

mod bindings;
mod budget;
mod disk;
mod epoch;
mod files;
mod inspect;
mod net;
mod responder;
mod stdio;
mod v0_1;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtel_sdk::jsonl::LineWriter;
use wasmtime::component::{Component, ComponentExportIndex, Func, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::builtin::{self, Builtin};
pub use crate::error::{CallError, StartError};
use crate::error::{Error, LoadCause, LoadError};
pub use crate::exporter::{Batch, Signal};
use crate::exporter::{Exporter, Start};
use crate::stats::{Limit, LimitCounts};
pub use budget::Limits;
use epoch::{Ticker, Ticking};
pub use inspect::{Import, Inspection, inspect};
pub use net::{HttpOptions, Tls, TlsError};
pub(crate) use responder::Responder;
pub use responder::{Answer, Exchange, MAX_BODY_BYTES, Outcome};
pub(crate) use stdio::Capture;
pub use stdio::LogRate;

/// The component of the built-in plugin `name`.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    builtin::find(name).map(|b| b.component)
}

/// The names of every built-in plugin.
pub fn builtin_names() -> Vec<&'static str> {
    builtin::BUILTINS.iter().map(|b| b.name).collect()
}

/// Where a plugin's component comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Source {
    /// Embedded in the binary.
    Builtin(&'static Builtin),
    /// A `.wasm` component file.
    File(PathBuf),
}

impl Source {
    /// The built-in named `name`, else the file at the path `name`.
    pub(crate) fn named(name: &str) -> Source {
        match builtin::find(name) {
            Some(builtin) => Source::Builtin(builtin),
            None => Source::File(name.into()),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Builtin(builtin) => f.write_str(builtin.name),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The interface `name` of the WIT package, at the version this host implements.
fn interface(name: &str) -> String {
    format!("wasmtel:exporter/{name}@{}", wasmtel_sdk::WIT_VERSION)
}

/// The defaults of `sandbox.memory_mib`, `sandbox.max_memories`, `sandbox.max_tables` and
/// `sandbox.max_table_elements`.
pub(crate) const DEFAULT_LIMITS: Limits = Limits {
    memory_bytes: 64 << 20,
    memories: 16,
    tables: 64,
    table_elements: 1_000_000,
};
/// The default of `sandbox.memory_mib` for a plugin in JavaScript or Python (as [`inspect`] tells
/// them): a garbage-collected heap and its runtime need more than [`DEFAULT_LIMITS`] gives.
pub(crate) const SCRIPTED_MEMORY_BYTES: usize = 256 << 20;
/// The default of `sandbox.max_handles`.
pub(crate) const DEFAULT_MAX_HANDLES: usize = 128;
/// The default of `sandbox.http_fields_kib`.
pub(crate) const DEFAULT_HTTP_FIELDS_BYTES: usize = 64 << 10;
/// The default of `sandbox.disk_mib`.
pub(crate) const DEFAULT_DISK_BYTES: u64 = 256 << 20;
/// The default of `sandbox.timeout_ms`.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The defaults of `sandbox.log_lines_per_sec` and `sandbox.log_bytes_per_sec`.
pub(crate) const DEFAULT_LOG_RATE: LogRate = LogRate {
    lines: 100,
    bytes: 64 * 1024,
};

/// What a sandboxed instance may use. The default grants no directory, 64 MiB of memory and
/// 5 s per call.
#[derive(Clone, Debug, PartialEq)]
pub struct Sandbox {
    /// The one host directory the plugin sees (as its current directory), if any.
    pub dir: Option<PathBuf>,
    /// What the instance may hold in linear memory and tables (memory summed over all its
    /// memories).
    pub limits: Limits,
    /// How many host-side resources (open files and directories, streams, pollables, HTTP
    /// fields, requests, responses) the instance may hold at once; so also its descriptors.
    pub max_handles: usize,
    /// The most one HTTP fields resource (a request's or response's headers or trailers) may
    /// hold, in bytes, as wasmtime-wasi-http counts them; passing it is a fault.
    pub http_fields_bytes: usize,
    /// What the directory may hold, in bytes: its files' bytes and a block (4 KiB) for each
    /// file, directory and link. A write past it fails inside the plugin (`insufficient-space`).
    pub disk_bytes: u64,
    /// The longest one call into the plugin may run.
    pub timeout: Duration,
    /// The hosts the plugin may send HTTP requests to (see the README); none by default.
    pub allow_hosts: Vec<String>,
    /// How the host sends those requests.
    pub http: HttpOptions,
    /// How much of its output (log, stdout, stderr) reaches the host's log.
    pub log_rate: LogRate,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            dir: None,
            limits: DEFAULT_LIMITS,
            max_handles: DEFAULT_MAX_HANDLES,
            http_fields_bytes: DEFAULT_HTTP_FIELDS_BYTES,
            disk_bytes: DEFAULT_DISK_BYTES,
            timeout: DEFAULT_TIMEOUT,
            allow_hosts: Vec::new(),
            http: HttpOptions::default(),
            log_rate: DEFAULT_LOG_RATE,
        }
    }
}

/// Compiles and links plugins. One per [`crate::Telemetry`]; cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    bounded: bool,
    /// What keeps call deadlines, if they are kept (bounded).
    ticker: Option<Arc<Ticker>>,
}

/// A compiled plugin, linked and ready to instantiate.
#[derive(Clone)]
pub struct Plugin {
    pre: Pre,
    /// `text-batches.export-lines`, if the plugin takes batches as text.
    text: Option<ComponentExportIndex>,
    /// The language it was written in, as far as [`inspect`] tells.
    language: Option<String>,
    engine: Engine,
    /// Whether its instances' limits are enforced (always, but in benchmarks of their cost).
    bounded: bool,
    ticker: Option<Arc<Ticker>>,
}

/// A plugin's bindings, linked: of this host's WIT version, or of the released 0.1 that
/// [`v0_1`] adapts.
#[derive(Clone)]
enum Pre {
    Current(bindings::PluginPre<HostState>),
    V0_1(bindings::v0_1::PluginPre<HostState>),
}

/// A plugin instance's exports, as [`Pre`] binds them.
enum Api {
    Current(bindings::Plugin),
    V0_1(v0_1::Adapted),
}

/// What a call into a plugin answers: a fault, or the plugin's own outcome, as this version's
/// error.
type CallResult = wasmtime::Result<Result<(), bindings::Error>>;

impl Api {
    async fn init(
        &self,
        store: &mut Store<HostState>,
        config: &str,
        context: &bindings::Context,
    ) -> CallResult {
        match self {
            Api::Current(plugin) => {
                let api = plugin.wasmtel_exporter_exporter();
                api.call_init(store, config, context).await
            }
            Api::V0_1(plugin) => plugin.init(store, config, context).await,
        }
    }

    async fn flush(&self, store: &mut Store<HostState>) -> CallResult {
        match self {
            Api::Current(plugin) => plugin.wasmtel_exporter_exporter().call_flush(store).await,
            Api::V0_1(plugin) => plugin.flush(store).await,
        }
    }

    async fn shutdown(&self, store: &mut Store<HostState>) -> CallResult {
        match self {
            Api::Current(plugin) => {
                plugin
                    .wasmtel_exporter_exporter()
                    .call_shutdown(store)
                    .await
            }
            Api::V0_1(plugin) => plugin.shutdown(store).await,
        }
    }
}

/// The state of one instance's store.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    budget: budget::Budget,
    /// The sandbox directory's quota.
    disk: Arc<disk::Disk>,
    http: WasiHttpCtx,
    http_hooks: net::Hooks,
    /// Its messages into the host's log, within their rate.
    log: Arc<stdio::PluginLog>,
    /// When the call under way must end, if it must.
    deadline: Option<Instant>,
    /// The sandbox directory, for `wasmtel:exporter/files`.
    dir: Option<cap_std::fs::Dir>,
    /// Files held through `wasmtel:exporter/files`.
    locks: usize,
    /// The sandbox limits this instance ran into, counted for its exporter.
    passed: Arc<LimitCounts>,
    /// Records of the call under way that the plugin reports rejected, and the last reason.
    rejected: Option<(u64, String)>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl bindings::wasmtel::exporter::report::Host for HostState {
    fn rejected(&mut self, count: u64, reason: String) {
        let (total, _) = self.rejected.get_or_insert_with(Default::default);
        *total = total.saturating_add(count);
        self.rejected.as_mut().expect("just set").1 = stdio::bounded_owned(reason);
    }
}

impl bindings::wasmtel::exporter::log::Host for HostState {
    fn log(&mut self, level: bindings::Level, message: String) {
        self.log.log(level, &message);
    }
}

/// The deadline of a call passed; raised from the epoch callback.
#[derive(Debug, thiserror::Error)]
#[error("call ran past its deadline of {} ms (sandbox.timeout_ms)", .0.as_millis())]
struct DeadlineExceeded(Duration);

/// The sandbox limit that stopped a call, with one line that says so. `refused` is the grow the
/// budget refused during the call, if any: a trap after it (an allocator giving up) is put down
/// to that limit.
fn limit_of(e: &wasmtime::Error, refused: Option<budget::OverBudget>) -> Option<(Limit, String)> {
    if let Some(d) = e.downcast_ref::<DeadlineExceeded>() {
        return Some((Limit::Timeout, d.to_string()));
    }
    if let Some(wasmtime::component::ResourceTableError::Full) =
        e.downcast_ref::<wasmtime::component::ResourceTableError>()
    {
        return Some((
            Limit::Handles,
            "it holds as many host resources (open files, streams, HTTP fields, ...) as \
             sandbox.max_handles allows"
                .into(),
        ));
    }
    // wasmtime says these in words only.
    let root = e.root_cause().to_string();
    [
        (
            "memory count too high",
            Limit::Memories,
            "it declares more memories",
        ),
        (
            "table count too high",
            Limit::Tables,
            "it declares more tables",
        ),
        (
            "total size of fields exceeds",
            Limit::HttpFields,
            "an HTTP fields holds more",
        ),
        (
            "too many fields in the field",
            Limit::HttpFields,
            "an HTTP fields holds more",
        ),
    ]
    .into_iter()
    .find(|(words, ..)| root.contains(words))
    .map(|(_, limit, what)| (limit, format!("{what} than {limit} allows")))
    .or_else(|| {
        refused.map(|over| {
            (
                over.limit,
                format!("{}, after a grow was refused: {over}", first_line(e)),
            )
        })
    })
}

/// The first line of `e`'s root cause (a trap code, say); the wasm backtrace that wasmtime
/// attaches goes to the debug log.
fn first_line(e: &wasmtime::Error) -> String {
    tracing::debug!("plugin fault: {e:?}");
    let root = e.root_cause().to_string();
    root.lines().next().unwrap_or_default().to_string()
}

/// The fault of a failed call, one line: the sandbox limit behind it (see [`limit_of`]), which
/// is counted, or else what the call trapped with and the last warnings or errors the plugin
/// wrote during the call (a panic's message, say).
fn fault(e: &wasmtime::Error, state: &mut HostState) -> String {
    if let Some((limit, message)) = limit_of(e, state.budget.take_refused()) {
        state.passed.pass(limit);
        return message;
    }
    let trap = first_line(e);
    match state.log.last_words() {
        words if words.is_empty() => trap,
        words => format!("{trap}; the plugin's last words: {words}"),
    }
}

impl Runtime {
    /// A runtime whose compiled plugins are cached in `cache_dir` (none: no cache).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Runtime, Error> {
        Runtime::with_cache(cache_dir, true).map_err(|e| Error::Runtime(e.into()))
    }

    /// A runtime whose instances have none of the sandbox's limits (memory, tables, handles,
    /// deadlines and the epoch checks compiled in for them, disk quota): only for benchmarks
    /// that measure what the limits cost.
    #[doc(hidden)]
    pub fn unbounded(cache_dir: Option<PathBuf>) -> Result<Runtime, Error> {
        Runtime::with_cache(cache_dir, false).map_err(|e| Error::Runtime(e.into()))
    }

    fn with_cache(cache_dir: Option<PathBuf>, bounded: bool) -> anyhow::Result<Runtime> {
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(bounded)
            .max_wasm_stack(512 * 1024);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        if bounded {
            disk::add_to_linker(&mut linker)?;
        }
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        bindings::v0_1::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        // The epoch ticker keeps call deadlines, so only a bounded runtime has one; it ticks
        // while a call runs and ends once the engine is gone.
        let ticker = bounded.then(|| Ticker::start(&engine)).transpose()?;
        Ok(Runtime {
            engine,
            linker,
            cache_dir,
            bounded,
            ticker,
        })
    }

    /// Loads the component of `source`: a built-in's embedded bytes, or a file.
    pub(crate) fn load_source(&self, source: &Source) -> Result<Plugin, LoadError> {
        let what = source.to_string();
        match source {
            Source::Builtin(builtin) => self.load(&what, builtin.component),
            Source::File(path) => match std::fs::read(path) {
                Ok(bytes) => self.load(&what, &bytes),
                Err(e) => Err(LoadError {
                    plugin: what,
                    cause: if e.kind() == std::io::ErrorKind::NotFound {
                        LoadCause::NotFound
                    } else {
                        LoadCause::Read(e)
                    },
                }),
            },
        }
    }

    /// Compiles (or loads from the cache) and links the component in `bytes`. `what` names it in
    /// errors: a built-in plugin's name or a file path.
    pub fn load(&self, what: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let err = |cause: LoadCause| LoadError {
            plugin: what.to_string(),
            cause,
        };
        check_header(bytes).map_err(|r| err(LoadCause::NotAComponent(r)))?;
        let component = self
            .compile(bytes)
            .map_err(|e| err(LoadCause::Compile(e.into())))?;
        let expected = interface("exporter");
        // wasmtime looks exports up by semver: every 0.2.x plugin serves a 0.2.y host, and
        // every 0.1.x plugin is adapted.
        let current = component.get_export(None, &expected).is_some();
        let adapted = !current && component.get_export(None, v0_1::EXPORTER).is_some();
        if !current && !adapted {
            let exports: Vec<String> = component
                .component_type()
                .exports(&self.engine)
                .map(|(name, _)| name.to_string())
                .collect();
            let found = exports
                .iter()
                .find(|e| e.starts_with("wasmtel:exporter/exporter@"));
            return Err(err(match found {
                Some(other) => LoadCause::OtherVersion {
                    found: other.clone(),
                    expected,
                },
                None => LoadCause::NotAnExporter {
                    expected,
                    exports: if exports.is_empty() {
                        "none".to_string()
                    } else {
                        exports.join(", ")
                    },
                },
            }));
        }
        let text = component
            .get_export_index(None, interface("text-batches"))
            .and_then(|batches| component.get_export_index(Some(&batches), "export-lines"));
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            err(LoadCause::Imports {
                log: interface("log"),
                source: e.into(),
            })
        })?;
        let incomplete = |e: wasmtime::Error| {
            err(LoadCause::Incomplete {
                expected: if adapted {
                    v0_1::EXPORTER.to_string()
                } else {
                    expected.clone()
                },
                source: e.into(),
            })
        };
        let pre = if adapted {
            Pre::V0_1(bindings::v0_1::PluginPre::new(instance_pre).map_err(incomplete)?)
        } else {
            Pre::Current(bindings::PluginPre::new(instance_pre).map_err(incomplete)?)
        };
        Ok(Plugin {
            pre,
            text,
            language: inspect(bytes).ok().and_then(|i| i.language),
            engine: self.engine.clone(),
            bounded: self.bounded,
            ticker: self.ticker.clone(),
        })
    }

    /// Where the compiled form of the component in `bytes` is cached, if there is a cache; the
    /// file exists once it has been compiled.
    pub fn cache_path(&self, bytes: &[u8]) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut key = Sha256::new();
        key.update(bytes);
        let mut engine_hash = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(
            &self.engine.precompile_compatibility_hash(),
            &mut engine_hash,
        );
        key.update(std::hash::Hasher::finish(&engine_hash).to_le_bytes());
        key.update(env!("CARGO_PKG_VERSION"));
        Some(dir.join(format!("{:x}.cwasm", key.finalize())))
    }

    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let (Some(dir), Some(path)) = (&self.cache_dir, self.cache_path(bytes)) else {
            return Component::new(&self.engine, bytes);
        };
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an engine with the same
            // compatibility hash (part of its name), into wasmtel's own cache directory.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::debug!("ignoring cached {}: {e:#}", path.display()),
            }
        }
        let compiled = self.engine.precompile_component(bytes)?;
        if let Err(e) = write_atomically(dir, &path, &compiled) {
            tracing::debug!("cannot cache compiled plugin in {}: {e}", dir.display());
        }
        prune_cache(dir, CACHE_ENTRIES);
        // SAFETY: `compiled` was just produced by this engine.
        unsafe { Component::deserialize(&self.engine, &compiled) }
    }
}

/// Where compiled plugins are cached: `$WASMTEL_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmtel`, else
/// `$HOME/.cache/wasmtel`. `WASMTEL_CACHE_DIR=` (empty) turns the cache off.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WASMTEL_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wasmtel"))
}

/// How many compiled plugins the cache keeps: the most recently written.
const CACHE_ENTRIES: usize = 32;

/// Deletes all but the `keep` most recently written `.cwasm` files of `dir`.
fn prune_cache(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut compiled: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    if compiled.len() <= keep {
        return;
    }
    compiled.sort();
    for (_, path) in &compiled[..compiled.len() - keep] {
        let _ = std::fs::remove_file(path);
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Tells a component from what is not one, before the compiler gives a lower-level error.
fn check_header(bytes: &[u8]) -> Result<(), &'static str> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(
            "it is a core WebAssembly module, not a component: build it for wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)",
        ),
        Some([0, b'a', b's', b'm', ..]) => Err("it is WebAssembly of an unknown version"),
        _ => Err("it is not WebAssembly (no `\\0asm` header)"),
    }
}

/// One running instance of a plugin, with its own store.
pub struct Instance {
    store: Store<HostState>,
    plugin: Api,
    /// `text-batches.export-lines`, with the lines of the batch being exported, if the plugin
    /// takes batches as text.
    text: Option<(Func, LineWriter)>,
    /// The deadline of each call; none if unbounded.
    timeout: Option<Duration>,
    ticker: Option<Arc<Ticker>>,
}

impl Plugin {
    /// The language it was written in, as far as its component tells (see [`inspect`]).
    pub fn language(&self) -> Option<&str> {
        self.language.as_deref()
    }

    /// Whether it runs a language with a garbage collector in a runtime of its own (JavaScript,
    /// Python), which needs more memory than the default.
    pub(crate) fn scripted(&self) -> bool {
        matches!(self.language(), Some("JavaScript" | "Python"))
    }

    /// Creates a fresh instance inside `sandbox`, named `exporter` in logs.
    pub async fn instantiate(
        &self,
        exporter: &str,
        sandbox: &Sandbox,
    ) -> Result<Instance, StartError> {
        self.instantiate_captured(exporter, sandbox, None, None)
            .await
    }

    /// [`Plugin::instantiate`], every message of the plugin (its log, stdout and stderr) also
    /// kept in `capture`, if given, before its log rate is applied; the requests it may send
    /// answered by `responder`, if given, instead of their hosts.
    pub(crate) async fn instantiate_captured(
        &self,
        exporter: &str,
        sandbox: &Sandbox,
        capture: Option<Capture>,
        responder: Option<Arc<Responder>>,
    ) -> Result<Instance, StartError> {
        let sender = net::Sender::new(&sandbox.allow_hosts, &sandbox.http).answered_by(responder);
        let sender = Arc::new(sender);
        self.instantiate_counted(exporter, sandbox, sender, Arc::default(), capture)
            .await
    }

    /// [`Plugin::instantiate_captured`], its HTTP requests sent by `sender`, counting the
    /// sandbox limits the instance runs into in `passed`.
    async fn instantiate_counted(
        &self,
        exporter: &str,
        sandbox: &Sandbox,
        sender: Arc<net::Sender>,
        passed: Arc<LimitCounts>,
        capture: Option<Capture>,
    ) -> Result<Instance, StartError> {
        self.try_instantiate(exporter, sandbox, sender, passed, capture)
            .await
            .map_err(|e| StartError::Instantiate(e.into()))
    }

    /// What starts instances of this plugin for the exporter `exporter`: instantiate in
    /// `sandbox`, then `init` with `config` (JSON text) and `session_id`. The sandbox limits
    /// its instances run into are counted in `passed`. Its instances share one HTTP sender (and
    /// so its pooled connections).
    pub(crate) fn setup(
        self,
        exporter: &str,
        sandbox: Sandbox,
        config: String,
        session_id: String,
        passed: Arc<LimitCounts>,
    ) -> Setup {
        Setup {
            sender: Arc::new(net::Sender::new(&sandbox.allow_hosts, &sandbox.http)),
            plugin: self,
            exporter: exporter.to_string(),
            sandbox,
            config,
            session_id,
            passed,
        }
    }

    async fn try_instantiate(
        &self,
        exporter: &str,
        sandbox: &Sandbox,
        sender: Arc<net::Sender>,
        passed: Arc<LimitCounts>,
        capture: Option<Capture>,
    ) -> anyhow::Result<Instance> {
        let log = Arc::new(stdio::PluginLog::new(
            exporter.into(),
            sandbox.log_rate,
            passed.clone(),
            capture,
        ));
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(stdio::LogStream::new(log.clone(), "stdout"))
            .stderr(stdio::LogStream::new(log.clone(), "stderr"));
        if let Some(dir) = &sandbox.dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create sandbox directory {}: {e}", dir.display())
            })?;
            wasi.preopened_dir(dir, ".", FsPerms::ReadWrite)?;
        }
        let dir = match &sandbox.dir {
            Some(path) => Some(files::open_dir(path).map_err(|e| {
                anyhow::anyhow!("cannot open sandbox directory {}: {e}", path.display())
            })?),
            None => None,
        };
        let mut table = ResourceTable::new();
        if self.bounded {
            table.set_max_capacity(sandbox.max_handles);
        }
        let state = HostState {
            wasi: wasi.build(),
            table,
            budget: budget::Budget::new(sandbox.limits),
            disk: disk::Disk::new(
                sandbox.disk_bytes,
                sandbox.dir.as_deref(),
                passed.clone(),
                exporter.into(),
            ),
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(sandbox.http_fields_bytes);
                http
            },
            http_hooks: net::Hooks {
                sender,
                log: log.clone(),
                passed: passed.clone(),
            },
            log,
            deadline: None,
            dir,
            locks: 0,
            passed,
            rejected: None,
        };
        let mut store = Store::new(&self.engine, state);
        let limit = sandbox.timeout;
        let timeout = self.bounded.then_some(limit);
        if self.bounded {
            store.limiter(|s| &mut s.budget);
        }
        store.epoch_deadline_callback(move |ctx| match ctx.data().deadline {
            Some(deadline) if Instant::now() >= deadline => Err(DeadlineExceeded(limit).into()),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        let ticking = arm(&mut store, timeout, self.ticker.as_deref());
        let made = async {
            let instance_pre = match &self.pre {
                Pre::Current(pre) => pre.instance_pre(),
                Pre::V0_1(pre) => pre.instance_pre(),
            };
            let instance = instance_pre.instantiate_async(&mut store).await?;
            let plugin = match &self.pre {
                Pre::Current(_) => Api::Current(bindings::Plugin::new(&mut store, &instance)?),
                Pre::V0_1(_) => Api::V0_1(v0_1::Adapted(bindings::v0_1::Plugin::new(
                    &mut store, &instance,
                )?)),
            };
            let text = self
                .text
                .as_ref()
                .and_then(|i| instance.get_func(&mut store, i));
            wasmtime::Result::Ok((plugin, text))
        };
        let made = within(timeout, made).await;
        let (plugin, text) = made.map_err(|e| {
            let refused = store.data_mut().budget.take_refused();
            match limit_of(&e, refused) {
                Some((limit, message)) => {
                    store.data().passed.pass(limit);
                    anyhow::anyhow!(message)
                }
                None => e.into(),
            }
        })?;
        drop(ticking);
        Ok(Instance {
            store,
            plugin,
            text: text.map(|f| (f, LineWriter::default())),
            timeout,
            ticker: self.ticker.clone(),
        })
    }
}

/// How long past its deadline a call blocked in a host call (a sleep, a poll, I/O) is given to
/// end by itself; running code is stopped at the deadline by the epoch check.
const BLOCKED_GRACE: Duration = Duration::from_millis(50);

/// Runs a call into the plugin within its deadline (if it has one), which also holds while the
/// plugin waits in a host call: past it the call is abandoned (a fault: the instance is not used
/// again).
async fn within<T>(
    timeout: Option<Duration>,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    let Some(timeout) = timeout else {
        return call.await;
    };
    match tokio::time::timeout(timeout + BLOCKED_GRACE, call).await {
        Ok(result) => result,
        Err(_) => Err(DeadlineExceeded(timeout).into()),
    }
}

/// Starts the deadline of a call (if it has one): the epoch callback checks it at every tick of
/// `ticker`, which ticks while the returned guard lives. Grows refused before the call are
/// forgotten.
fn arm(
    store: &mut Store<HostState>,
    timeout: Option<Duration>,
    ticker: Option<&Ticker>,
) -> Option<Ticking> {
    store.data_mut().budget.take_refused();
    store.data().log.forget_last_words();
    store.data_mut().deadline = timeout.map(|t| Instant::now() + t);
    store.set_epoch_deadline(1);
    ticker.map(Ticker::call)
}

/// The outcome of a call: the plugin's own error, or a fault, with the sandbox limit behind it
/// counted in the instance's `passed`.
fn finish(result: CallResult, state: &mut HostState) -> Result<(), CallError> {
    match result {
        Ok(Ok(())) => Ok(()),
        // A plugin's error message is cut to a bounded length before it goes anywhere.
        Ok(Err(bindings::Error::Permanent(m))) => {
            Err(CallError::Permanent(stdio::bounded_owned(m)))
        }
        Ok(Err(bindings::Error::Retryable(r))) => Err(CallError::Retryable {
            message: stdio::bounded_owned(r.message),
            retry_after: r.retry_after_ms.map(Duration::from_millis),
        }),
        Err(e) => Err(CallError::Fault(fault(&e, state))),
    }
}

impl Instance {
    /// Calls `init` with the exporter's config (JSON text).
    pub async fn init(
        &mut self,
        config: &str,
        exporter: &str,
        session_id: &str,
    ) -> Result<(), CallError> {
        let _ticking = arm(&mut self.store, self.timeout, self.ticker.as_deref());
        let context = bindings::Context {
            exporter_name: exporter.into(),
            session_id: session_id.into(),
        };
        let call = self.plugin.init(&mut self.store, config, &context);
        let result = within(self.timeout, call).await;
        finish(result, self.store.data_mut())
    }

    /// Exports one batch (already laid out), within the deadline.
    pub async fn export(&mut self, batch: &Batch) -> Result<(), CallError> {
        self.store.data_mut().rejected = None;
        let _ticking = arm(&mut self.store, self.timeout, self.ticker.as_deref());
        if let Some((func, lines)) = &mut self.text {
            let text = batch_lines(lines, batch)?;
            let call = async {
                let func = func.typed::<(&str,), (Result<(), bindings::Error>,)>(&self.store)?;
                Ok(func.call_async(&mut self.store, (text,)).await?.0)
            };
            let result = within(self.timeout, call).await;
            return finish(result, self.store.data_mut());
        }
        let result = match &self.plugin {
            Api::Current(plugin) => {
                let api = plugin.wasmtel_exporter_exporter();
                let call = api.call_export_batch(&mut self.store, batch.laid_out());
                within(self.timeout, call).await
            }
            Api::V0_1(plugin) => {
                let view = batch.view()?;
                plugin.export(&mut self.store, &view, self.timeout).await
            }
        };
        finish(result, self.store.data_mut())
    }

    /// Asks the plugin to make what it has durable.
    pub async fn flush(&mut self) -> Result<(), CallError> {
        let _ticking = arm(&mut self.store, self.timeout, self.ticker.as_deref());
        let result = within(self.timeout, self.plugin.flush(&mut self.store)).await;
        finish(result, self.store.data_mut())
    }

    /// The last call.
    pub async fn shutdown(&mut self) -> Result<(), CallError> {
        let _ticking = arm(&mut self.store, self.timeout, self.ticker.as_deref());
        let result = within(self.timeout, self.plugin.shutdown(&mut self.store)).await;
        finish(result, self.store.data_mut())
    }
}

/// `batch` as lines of the record format, written by `lines`: its resource line, then a line per
/// record.
fn batch_lines<'a>(lines: &'a mut LineWriter, batch: &Batch) -> Result<&'a str, CallError> {
    let view = batch.view()?;
    lines.clear();
    lines.new_file();
    lines.resource(view.resource());
    for record in view.records() {
        lines.record(record);
    }
    let text = match lines.lines() {
        [] => lines.resource_line(),
        text => text,
    };
    std::str::from_utf8(text).map_err(|e| CallError::Permanent(format!("a batch's text: {e}")))
}

impl Exporter for Instance {
    async fn export(&mut self, batch: &Batch) -> Result<(), CallError> {
        Instance::export(self, batch).await
    }

    fn take_rejected(&mut self) -> Option<(u64, String)> {
        self.store.data_mut().rejected.take()
    }

    async fn flush(&mut self) -> Result<(), CallError> {
        Instance::flush(self).await
    }

    async fn shutdown(&mut self) -> Result<(), CallError> {
        Instance::shutdown(self).await
    }
}

/// Starts instances of one plugin for one exporter: instantiate, then `init`.
pub(crate) struct Setup {
    plugin: Plugin,
    exporter: String,
    sandbox: Sandbox,
    config: String,
    session_id: String,
    passed: Arc<LimitCounts>,
    /// What sends its instances' HTTP requests.
    sender: Arc<net::Sender>,
}

impl Start for Setup {
    type Exporter = Instance;

    async fn start(&self) -> Result<Instance, StartError> {
        let mut instance = self
            .plugin
            .instantiate_counted(
                &self.exporter,
                &self.sandbox,
                self.sender.clone(),
                self.passed.clone(),
                None,
            )
            .await?;
        instance
            .init(&self.config, &self.exporter, &self.session_id)
            .await
            .map_err(StartError::Init)?;
        Ok(instance)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_cache_keeps_the_newest_compiled_plugins_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        for age in 0..5u64 {
            let path = dir.path().join(format!("{age}.cwasm"));
            std::fs::write(&path, b"x").expect("write");
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(SystemTime::now() - Duration::from_secs(age * 60))
                .expect("mtime");
        }
        std::fs::write(dir.path().join("notes.txt"), b"kept").expect("write");
        super::prune_cache(dir.path(), 3);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["0.cwasm", "1.cwasm", "2.cwasm", "notes.txt"]);
    }
}
