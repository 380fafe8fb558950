//! The `wasmtel` command: replay recorded telemetry through the configured exporter plugins,
//! check a configuration, and test and inspect plugins.

use std::io::{BufReader, IsTerminal, Seek};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod new;
mod sessions_cli;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wasmtel::{Config, Telemetry};

/// wasmtel: telemetry whose exporters are sandboxed WebAssembly components.
///
/// Without --config, the embedded default is used: the built-in file-jsonl exporter, writing
/// the record format into ./logs/wasmtel-<session id>.jsonl.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replays a file in the record format (JSON lines) through the configured exporters.
    ///
    /// The whole input is checked first: on an invalid line nothing is exported, and the error
    /// names the line. Batches are cut by size only, never by time, so replaying the same input is
    /// deterministic. Ends with a summary: records read, then a line per exporter: its state if
    /// not running, records exported and dropped (and why), batches, failed calls, faults, the
    /// last error. A broken exporter costs only its own output: the exit status is 0 unless
    /// --strict is given and a record was dropped.
    Replay {
        /// The input file, or `-` for standard input.
        input: String,
        /// The config file (default: the embedded default, file-jsonl into ./logs).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Print only errors, not the summary.
        #[arg(long, short)]
        quiet: bool,
        /// Exit with status 2 if any exporter did not deliver every record (dropped, or left in its
        /// spool).
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        switch: Switch,
    },
    /// Loads the config, instantiates every exporter's plugin and calls its init; prints each
    /// exporter as ok or with its error. Exits non-zero if any failed.
    ///
    /// Plugins see a temporary directory in place of their sandbox directory, so nothing is
    /// written where the config says.
    Check {
        /// The config file (default: the embedded default).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Then export this recorded session (in the record format) to every exporter, batched
        /// as `replay` batches it, and flush: real batches meet the sandbox's limits. HTTP
        /// requests go to the hosts the config allows (point it at a test collector); files go
        /// to the temporary directory. Any call that does not return ok fails the exporter.
        #[arg(long, value_name = "FILE")]
        fixture: Option<PathBuf>,
        #[command(flatten)]
        switch: Switch,
    },
    /// Runs a plugin in its sandbox on a recorded fixture and compares what it did with an
    /// expected directory: the files it left in its directory (`files/`), its log, stdout and
    /// stderr (`log.txt`), its calls with their outcomes (`calls.txt`) and its HTTP requests
    /// with their answers (`requests.txt`, OTLP and JSON bodies decoded). Prints a diff of each
    /// file that differs, with line numbers, and exits 1; with --update, writes the directory
    /// instead.
    ///
    /// Batches are cut from the fixture as `wasmtel replay` cuts them, each exported once: an
    /// error is recorded and not retried, and a fault ends the run, so that every run is the
    /// same. No request leaves the process: those to hosts the sandbox allows are answered by
    /// `responses.toml` of the expected directory if it has one (`[[answer]]` tables of
    /// `status`, `headers`, `body`, `delay_ms`, given in order, the last repeated), else each
    /// with 200; the others are refused.
    Test {
        /// A built-in plugin's name or a path to a `.wasm` component.
        plugin: String,
        /// The recorded fixture, in the record format.
        #[arg(long, value_name = "FILE")]
        fixture: PathBuf,
        /// A config with one exporter, whose `config`, `sandbox` and `queue` apply (its `plugin`
        /// is replaced by PLUGIN, its sandbox directory by a temporary one). Without it the
        /// plugin gets `{}` and the default sandbox.
        #[arg(long, value_name = "TOML")]
        config: Option<PathBuf>,
        /// The expected directory.
        #[arg(long, value_name = "DIR")]
        expect: PathBuf,
        /// Write what the plugin did into the expected directory instead of comparing:
        /// `calls.txt`, `log.txt` and `files/` afresh. A directory that holds other things and
        /// no `calls.txt` is refused.
        #[arg(long)]
        update: bool,
    },
    /// Tells what a plugin is, without running it: the wasmtel:exporter version it targets and
    /// whether this host runs it, its exports, the imports it asks for (the capabilities it
    /// wants) with what this host grants each, its size, the language and tools that made it,
    /// and whether its compiled form is cached.
    Inspect {
        /// A built-in plugin's name (file-jsonl, otlp, statsig) or a path to a `.wasm` component.
        plugin: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reads the session logs that file-jsonl exporters write (found by the config's exporters,
    /// or in --dir): `list` the sessions, show one's records (`events`), `summary` it, or draw
    /// it as an HTML page (`timeline`). Files still being written, several files per session
    /// and damaged lines are read as they are: a line that is not a record is named on
    /// standard error and skipped.
    Sessions(sessions_cli::Args),
    /// Shows or sends what the exporters' spools hold (`queue.spool` in the config): batches
    /// kept on disk until their plugin takes them, left by an outage, an exit whose shutdown
    /// budget ran out, or a crash. Any start of an exporter sends what its spool holds first;
    /// `drain` does only that.
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// Makes a new plugin project in the directory NAME (or --dir): a CSV exporter to change
    /// into yours, with the WIT package, wasmtel's SDK or helper library, a recorded session
    /// (fixture.jsonl) and the expected directory it passes. `sh test.sh` in it builds the
    /// plugin and runs its fixture test (`wasmtel test`); its README says more.
    New {
        /// The plugin's name: lowercase letters, digits, `-` and `_`, starting with a letter.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: new::Lang,
        /// Where to make it (default: ./NAME); it must not exist, or be empty.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// For each exporter with a spool: its directory, and per slot (a process writing into the
    /// directory) the process holding it if one runs, the batches, records and bytes waiting,
    /// how old the oldest is, records that may arrive twice, and bytes that do not read.
    Status {
        /// The config file (default: the embedded default, which has no spool).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Starts the exporters that have a spool, sends what their spools hold (every slot no
    /// running process holds), and stops when they are empty or --timeout has passed. Exits 0
    /// if it sent all they held, 1 if something is left (it stays for a later start) or a
    /// spool could not be opened. Slots held by running processes are theirs to send.
    Drain {
        /// The config file (default: the embedded default, which has no spool).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// How long to try once the plugins are loaded, shutdown included: e.g. `30s`, `5m`.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

/// Telemetry on or off, over the config file and the environment (`CODEX_OTEL_ENABLED`,
/// `OTEL_SDK_DISABLED`), which are read in that order.
#[derive(clap::Args)]
struct Switch {
    /// Turn telemetry on, whatever the config and the environment say.
    #[arg(long, conflicts_with = "no_telemetry")]
    telemetry: bool,
    /// Turn telemetry off: records are read and discarded, no plugin runs.
    #[arg(long)]
    no_telemetry: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMTEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay {
            input,
            config,
            quiet,
            strict,
            switch,
        } => load_config(config.as_deref(), &switch)
            .and_then(|config| replay(&input, config, quiet, strict)),
        Command::Check {
            config,
            fixture,
            switch,
        } => load_config(config.as_deref(), &switch)
            .and_then(|config| check(config, fixture.as_deref())),
        Command::Inspect { plugin, json } => inspect(&plugin, json),
        Command::Sessions(args) => sessions_cli::run(args),
        Command::Spool(command) => spool(command),
        Command::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            new::new(&name, lang, &dir).map(|written| {
                println!(
                    "made {} ({} files): `sh {}/test.sh` builds it and runs its fixture test",
                    dir.display(),
                    written.len(),
                    dir.display()
                );
                ExitCode::SUCCESS
            })
        }
        Command::Test {
            plugin,
            fixture,
            config,
            expect,
            update,
        } => test(&plugin, fixture, config, &expect, update),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Inputs of at least this many records show a progress bar on a terminal.
const PROGRESS_FROM: u64 = 10_000;

/// The config: the file (or the embedded default), then the environment, then the switch.
fn load_config(path: Option<&Path>, switch: &Switch) -> anyhow::Result<Config> {
    let config = match path {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let config = config.with_env()?;
    Ok(match (switch.telemetry, switch.no_telemetry) {
        (true, _) => config.with_enabled(true),
        (_, true) => config.with_enabled(false),
        _ => config,
    })
}

fn replay(name: &str, config: Config, quiet: bool, strict: bool) -> anyhow::Result<ExitCode> {
    let builder = Telemetry::builder(config);
    // A progress bar on a terminal, for inputs long enough to wait for.
    let progress = indicatif::ProgressBar::hidden();
    let terminal = std::io::stderr().is_terminal() && !quiet;
    let show = |done: u64, total: u64| {
        if terminal && total >= PROGRESS_FROM {
            if progress.is_hidden() {
                progress.set_length(total);
                progress.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {human_pos}/{human_len} records, {eta} left",
                    )
                    .expect("a valid template"),
                );
                progress.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            progress.set_position(done);
        }
    };
    let summary = if name == "-" {
        // Standard input cannot be read twice: spool it to a temporary file (deleted when done),
        // so that memory stays bounded whatever its size.
        let mut spool = tempfile::NamedTempFile::new().context("cannot spool standard input")?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool)
            .context("cannot read standard input")?;
        let open = || std::fs::File::open(spool.path()).map(BufReader::new);
        wasmtel::replay(name, open, builder, show)?
    } else {
        // One handle for both passes: the input stays readable whatever happens to its name.
        let file = std::fs::File::open(name).map_err(|source| wasmtel::Error::Io {
            what: format!("cannot open {name}"),
            source,
        })?;
        let open = || {
            let mut file = file.try_clone()?;
            file.seek(std::io::SeekFrom::Start(0))?;
            Ok(BufReader::new(file))
        };
        wasmtel::replay(name, open, builder, show)?
    };
    progress.finish_and_clear();
    if !quiet {
        println!("{summary}");
    }
    // An exporter that does not take a signal of the input exports fewer records and drops none;
    // what is left in a spool is not delivered yet.
    let lost = summary
        .exporters
        .iter()
        .any(|e| e.dropped() > 0 || e.spooled > 0);
    Ok(if strict && lost {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn check(config: Config, fixture: Option<&Path>) -> anyhow::Result<ExitCode> {
    if !config.enabled() {
        println!(
            "telemetry is disabled ([telemetry] enabled = false, the environment, or \
             --no-telemetry): no exporter runs; checking them anyway"
        );
    }
    for notice in config.notices() {
        println!("note: {notice}");
    }
    let mut failed = false;
    let cache = wasmtel::default_cache_dir();
    let results = match fixture {
        Some(fixture) => wasmtel::check_fixture(&config, cache, fixture),
        None => wasmtel::check(&config, cache)
            .into_iter()
            .map(|(name, result)| (name, result.map(|()| Default::default())))
            .collect(),
    };
    if results.is_empty() {
        println!("no exporter is configured: nothing would be exported");
    }
    for (name, result) in results {
        match result {
            Ok(checked) if fixture.is_some() => println!(
                "{name}: ok: {} records in {} batches exported, then flushed{}",
                checked.records,
                checked.batches,
                match checked.too_large {
                    0 => String::new(),
                    n => format!(
                        " ({n} left out, larger than queue.max_batch_bytes: the pipeline drops \
                         them so)"
                    ),
                }
            ),
            Ok(_) => println!("{name}: ok"),
            Err(e) => {
                failed = true;
                println!("{name}: error: {}", e.chain());
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn test(
    plugin: &str,
    fixture: PathBuf,
    config: Option<PathBuf>,
    expect: &Path,
    update: bool,
) -> anyhow::Result<ExitCode> {
    let mut run = wasmtel::harness::FixtureRun::new(plugin, &fixture);
    if let Some(config) = config {
        run = run.config(config);
    }
    let responses = expect.join(wasmtel::harness::RESPONSES);
    if responses.exists() {
        run = run.responses(responses);
    }
    let capture = run.run()?;
    let mut what = format!(
        "{} calls, {} log lines, {} files",
        capture.calls.len(),
        capture.log.len(),
        capture.files.len()
    );
    if !capture.requests.is_empty() {
        what += &format!(", {} requests", capture.requests.len());
    }
    if update {
        capture
            .write(expect)
            .with_context(|| format!("cannot write {}", expect.display()))?;
        println!("wrote {}: {what}", expect.display());
        return Ok(ExitCode::SUCCESS);
    }
    match capture.compare(expect) {
        Ok(()) => {
            println!(
                "ok: {plugin} on {} did what {} holds ({what})",
                fixture.display(),
                expect.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(mismatch) => {
            println!("{mismatch}");
            println!(
                "FAILED: {plugin} on {} did not do what {} holds (--update to accept what it did)",
                fixture.display(),
                expect.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn spool(command: SpoolCommand) -> anyhow::Result<ExitCode> {
    let on = Switch {
        telemetry: true,
        no_telemetry: false,
    };
    let (config, drain) = match command {
        SpoolCommand::Status { config } => (config, None),
        SpoolCommand::Drain { config, timeout } => (config, Some(timeout)),
    };
    let config = load_config(config.as_deref(), &on)?;
    let none = "no exporter has a spool (`queue.spool` in its table)";
    let Some(timeout) = drain else {
        let statuses = wasmtel::spool_status(&config);
        if statuses.is_empty() {
            println!("{none}");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for status in statuses {
            println!("{}: {}", status.exporter, status.dir.display());
            match &status.slots {
                Err(e) => println!("  cannot read: {e}"),
                Ok(slots) if slots.is_empty() => println!("  empty"),
                Ok(slots) => {
                    for slot in slots {
                        print_slot(slot, now);
                    }
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    // Only the exporters that have a spool are started.
    let stats = wasmtel::drain_spools(config, timeout, wasmtel::default_cache_dir())?;
    if stats.is_empty() {
        println!("{none}");
    }
    let mut left = 0;
    let mut unopened = false;
    for s in &stats {
        println!("{s}");
        left += s.spooled;
        unopened |= s.spool.is_none();
    }
    if unopened {
        println!(
            "a spool could not be opened (see the exporter's last error): nothing of it was sent"
        );
    }
    if left > 0 {
        println!("{left} records are still spooled: a later start (or drain) sends them");
    }
    Ok(if left == 0 && !unopened {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line for a slot of a spool: who holds it, and what waits in it.
fn print_slot(slot: &wasmtel::SlotStatus, now_ms: u64) {
    let name = slot
        .dir
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let holder = match slot.held_by {
        Some(0) => "held by a running process".into(),
        Some(pid) => format!("held by process {pid}"),
        None => "free".into(),
    };
    print!(
        "  slot {name} ({holder}): {} batches, {} records, {} bytes",
        slot.batches, slot.records, slot.bytes
    );
    if let Some(oldest) = slot.oldest_unix_ms {
        let age = std::time::Duration::from_secs(now_ms.saturating_sub(oldest) / 1000);
        print!(", oldest {} ago", humantime::format_duration(age));
    }
    if slot.in_doubt > 0 {
        print!(", {} may arrive twice", slot.in_doubt);
    }
    if slot.unreadable_bytes > 0 {
        let why = if slot.held_by.is_some() {
            "damaged, or being written"
        } else {
            "cut or damaged: skipped at the next start"
        };
        print!(", {} bytes do not read ({why})", slot.unreadable_bytes);
    }
    println!();
}

fn inspect(plugin: &str, json: bool) -> anyhow::Result<ExitCode> {
    let bytes = match wasmtel::plugin::builtin(plugin) {
        Some(bytes) => bytes.to_vec(),
        None => std::fs::read(plugin).with_context(|| {
            format!(
                "cannot read {plugin} (nor is it a built-in plugin: {})",
                wasmtel::plugin::builtin_names().join(", ")
            )
        })?,
    };
    let inspection =
        wasmtel::plugin::inspect(&bytes).map_err(|why| anyhow::anyhow!("{plugin}: {why}"))?;
    let runtime = wasmtel::plugin::Runtime::new(wasmtel::default_cache_dir())?;
    let cache = runtime.cache_path(&bytes);
    let cached = cache.as_ref().is_some_and(|p| p.exists());
    let fits = inspection.compatibility();
    if json {
        let out = serde_json::json!({
            "plugin": plugin,
            "inspection": inspection,
            "loads": fits.is_ok(),
            "compatibility": fits.as_ref().unwrap_or_else(|e| e),
            "cache": { "path": cache, "cached": cached },
        });
        println!("{out:#}");
    } else {
        println!("plugin:    {plugin}");
        print!("{inspection}");
        match &cache {
            Some(path) if cached => println!("compiled:  cached, {}", path.display()),
            Some(path) => println!(
                "compiled:  not yet: its first load compiles it, then it is cached as {}",
                path.display()
            ),
            None => {
                println!("compiled:  the cache is off (WASMTEL_CACHE_DIR=): every load compiles it")
            }
        }
    }
    Ok(if fits.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
