//! `wasmtel sessions`: the session logs the file-jsonl exporters write, listed, shown,
//! summarized and drawn.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Subcommand;
use wasmtel::SessionSummary;
use wasmtel::sessions::{Filter, Logs, Session, Shown, Skipped, printable};

/// Where the logs are, for every `sessions` command.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// The directory of the logs (default: that of each file-jsonl exporter of the config,
    /// ./logs with the embedded default).
    #[arg(long, value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
    /// The config whose file-jsonl exporters wrote the logs: their directories and file names
    /// (default: the embedded default).
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the sessions, newest first: id, start (UTC), duration, events, models, size and
    /// files. A session is named by its file names (file-jsonl's `{session_id}`); its files
    /// are the log's numbered files and those of other logs with the same id.
    List {
        /// Show at most N sessions (0: all).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows the records of a session in time order, one compact line each (time of day UTC,
    /// type, name, and the attributes that tell: not the session's metadata that every event
    /// repeats), or unchanged with --json.
    Events {
        /// The session: its id, the start of only its id, or `latest`.
        session: String,
        /// Only records of these types (event, span, metric) or names (`codex.api_request`,
        /// or a prefix ending in `*`), comma-separated.
        #[arg(long, value_name = "T,..", value_delimiter = ',')]
        types: Vec<String>,
        /// Only records whose line holds TEXT (case matters).
        #[arg(long, value_name = "TEXT")]
        contains: Option<String>,
        /// Only records at or after TIME: RFC 3339 in UTC (`2026-11-20T09:05:00Z`, the `Z`
        /// may be left out) or `+DURATION` after the session's start (`+5m`, `+90s`).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only records at or before TIME (as --since).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// First print the session's id, files, resource and start.
        #[arg(long, conflicts_with = "json")]
        header: bool,
        /// Cut lines to N characters (default: the terminal's width; 0: never).
        #[arg(long, value_name = "N", conflicts_with = "json")]
        width: Option<usize>,
        /// Write the records unchanged in the record format, each run after its resource's
        /// line: a fixture `wasmtel replay` takes.
        #[arg(long)]
        json: bool,
    },
    /// Summarizes a session: records per event name; tokens per model; API requests with
    /// errors, status codes and latency; tool calls per tool with success rate and durations;
    /// turns; start, end and duration; and the drops wasmtel recorded (`wasmtel.*` metrics,
    /// with `[telemetry] self_metrics_interval_ms` set).
    Summary {
        /// The session: its id, the start of only its id, or `latest`.
        session: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Draws a session as one self-contained HTML page (no network, no external script): its
    /// spans as a waterfall nested by parent, its events as marks on the same time axis, and
    /// its tokens per turn as a chart; hovering shows attributes.
    Timeline {
        /// The session: its id, the start of only its id, or `latest`.
        session: String,
        /// The page to write.
        #[arg(long, short, value_name = "FILE.html")]
        output: PathBuf,
    },
}

/// Runs a `sessions` command. Output cut short by its reader (`| head`) ends it quietly.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match run_command(args) {
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

fn run_command(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => wasmtel::Config::from_file(path)?,
        None => wasmtel::Config::default(),
    };
    let logs = Logs::of_config(&config, args.dir.as_deref())?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.command {
        Command::List { limit, json } => list(&logs, limit, json, &mut out)?,
        Command::Events {
            session,
            types,
            contains,
            since,
            until,
            header,
            width,
            json,
        } => {
            let session = logs.session(&session)?;
            let start = session.start_unix_nano;
            let filter = Filter {
                types,
                contains,
                since: since.map(|t| time_arg(&t, start, "--since")).transpose()?,
                until: until.map(|t| time_arg(&t, start, "--until")).transpose()?,
            };
            let shown = if json {
                Shown::Json
            } else {
                let width = width.or_else(|| {
                    std::io::stdout()
                        .is_terminal()
                        .then(|| console::Term::stdout().size_checked())
                        .flatten()
                        .map(|(_, columns)| usize::from(columns))
                });
                Shown::Lines { width }
            };
            if header {
                write_header(session, &mut out)?;
            }
            let (skipped, _) = session.write_events(&filter, shown, &mut out)?;
            out.flush()?;
            warn(&skipped);
        }
        Command::Summary { session, json } => {
            let session = logs.session(&session)?;
            let (summary, skipped) = session.summary()?;
            if json {
                let value = serde_json::json!({
                    "summary": summary,
                    "files": files_json(session),
                    "skipped": skipped,
                });
                writeln!(out, "{value:#}")?;
            } else {
                write_summary(&summary, session, &mut out)?;
            }
            out.flush()?;
            warn(&skipped);
        }
        Command::Timeline { session, output } => {
            let session = logs.session(&session)?;
            let file = std::fs::File::create(&output)
                .with_context(|| format!("cannot write {}", output.display()))?;
            let mut page = BufWriter::new(file);
            let skipped = session.timeline(&mut page)?;
            page.flush()
                .with_context(|| format!("cannot write {}", output.display()))?;
            writeln!(
                out,
                "wrote {}: session {} ({}), open it in a browser",
                output.display(),
                session.id,
                size(session.bytes())
            )?;
            out.flush()?;
            warn(&skipped);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Tells on standard error which lines were skipped, if any.
fn warn(skipped: &Skipped) {
    if !skipped.is_empty() {
        eprintln!("{skipped}");
    }
}

/// `--since`/`--until`: RFC 3339, or `+DURATION` after the session's start.
fn time_arg(text: &str, start: Option<u64>, flag: &str) -> anyhow::Result<u64> {
    if let Some(after) = text.strip_prefix('+') {
        let after = humantime::parse_duration(after)
            .with_context(|| format!("{flag} {text}: not a duration such as +5m or +90s"))?;
        let start = start.with_context(|| {
            format!(
                "{flag} {text}: the session's start is not known (its first lines have no time)"
            )
        })?;
        return Ok(start.saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX)));
    }
    let time = humantime::parse_rfc3339_weak(text).with_context(|| {
        format!("{flag} {text}: not a time such as 2026-11-20T09:05:00Z or +5m")
    })?;
    Ok(nanos(time))
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A time as RFC 3339 UTC to the millisecond.
fn time_text(nanos: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
}

/// A duration to the second (to the millisecond below one).
fn duration_text(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{} ms", d.as_millis());
    }
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// A size in B, KiB, MiB or GiB.
fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1 << 10 => format!("{b} B"),
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b if b < 1 << 30 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b => format!("{:.2} GiB", b as f64 / (1 << 30) as f64),
    }
}

fn files_json(session: &Session) -> serde_json::Value {
    session
        .files
        .iter()
        .map(|f| serde_json::json!({ "path": f.path, "bytes": f.bytes }))
        .collect()
}

fn first_file(session: &Session) -> String {
    let first = session.files.first().map_or(String::new(), |f| {
        printable(&f.path.display().to_string()).into_owned()
    });
    match session.files.len() {
        0 | 1 => first,
        n => format!("{first} (+{} more)", n - 1),
    }
}

fn list(logs: &Logs, limit: usize, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let all = logs.sessions();
    let shown = match limit {
        0 => all,
        n => &all[..n.min(all.len())],
    };
    let mut rows = Vec::new();
    let mut skipped = Skipped::default();
    for session in shown {
        let (summary, s) = session.summary()?;
        skipped.add(s);
        rows.push((session, summary));
    }
    if json {
        let value: Vec<serde_json::Value> = rows
            .iter()
            .map(|(session, summary)| {
                serde_json::json!({
                    "id": session.id,
                    "start": summary.start_unix_nano.map(time_text),
                    "end": summary.end_unix_nano.map(time_text),
                    "duration_ms": summary.duration().map(|d| d.as_millis() as u64),
                    "events": summary.event_records,
                    "records": summary.records(),
                    "models": summary.models,
                    "bytes": session.bytes(),
                    "files": files_json(session),
                })
            })
            .collect();
        writeln!(out, "{:#}", serde_json::Value::Array(value))?;
    } else if all.is_empty() {
        let dirs: Vec<String> = logs
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        writeln!(out, "no session logs in {}", dirs.join(", "))?;
    } else {
        writeln!(
            out,
            "{:<36}  {:<24}  {:>10}  {:>7}  {:<20}  {:>10}  FILE",
            "SESSION", "START", "DURATION", "EVENTS", "MODELS", "SIZE"
        )?;
        for (session, summary) in &rows {
            writeln!(
                out,
                "{:<36}  {:<24}  {:>10}  {:>7}  {:<20}  {:>10}  {}",
                printable(&session.id),
                summary.start_unix_nano.map_or("-".into(), time_text),
                summary.duration().map_or("-".into(), duration_text),
                summary.event_records,
                match summary.models.join(",") {
                    m if m.is_empty() => "-".into(),
                    m => printable(&m).into_owned(),
                },
                size(session.bytes()),
                first_file(session)
            )?;
        }
        if shown.len() < all.len() {
            let older = all.len() - shown.len();
            let s = if older == 1 { "" } else { "s" };
            writeln!(out, "... {older} older session{s} (--limit 0 lists all)")?;
        }
    }
    out.flush()?;
    warn(&skipped);
    Ok(())
}

fn write_header(session: &Session, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "session {}", printable(&session.id))?;
    if let Some(start) = session.start_unix_nano {
        writeln!(out, "start   {}", time_text(start))?;
    }
    for file in &session.files {
        writeln!(
            out,
            "file    {} ({})",
            file.path.display(),
            size(file.bytes)
        )?;
    }
    if let Some(line) = session.resource_line()
        && let Ok(serde_json::Value::Object(resource)) = serde_json::from_str(&line)
        && let Some(serde_json::Value::Object(attributes)) = resource.get("attributes")
    {
        let shown: Vec<String> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "resource {}", printable(&shown.join(" ")))?;
    }
    writeln!(out, "{:<12}  {:<6}  NAME  ATTRIBUTES", "TIME (UTC)", "TYPE")?;
    Ok(())
}

fn write_summary(
    summary: &SessionSummary,
    session: &Session,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    writeln!(out, "session   {}", printable(&summary.session_id))?;
    writeln!(
        out,
        "files     {} ({} file{}, {})",
        first_file(session),
        session.files.len(),
        if session.files.len() == 1 { "" } else { "s" },
        size(session.bytes())
    )?;
    match (summary.start_unix_nano, summary.end_unix_nano) {
        (Some(start), Some(end)) => writeln!(
            out,
            "time      {} to {} ({})",
            time_text(start),
            time_text(end),
            duration_text(Duration::from_nanos(end.saturating_sub(start)))
        )?,
        _ => writeln!(out, "time      - (no record has a time)")?,
    }
    writeln!(
        out,
        "records   {} events, {} spans, {} metrics; {} turns",
        summary.event_records, summary.span_records, summary.metric_records, summary.turns
    )?;
    writeln!(out, "\nevents")?;
    for c in &summary.events {
        writeln!(out, "  {:<40} {:>8}", printable(&c.name), c.count)?;
    }
    if !summary.tokens.is_empty() {
        writeln!(
            out,
            "\ntokens{:<34} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "", "input", "cached", "output", "reasoning", "total"
        )?;
        let all = summary.total_tokens();
        let mut rows: Vec<_> = summary.tokens.iter().collect();
        if rows.len() > 1 {
            rows.push(&all);
        }
        for t in rows {
            let model = if std::ptr::eq(t, &all) {
                "(all)".into()
            } else {
                printable(&t.model)
            };
            writeln!(
                out,
                "  {:<38} {:>10} {:>10} {:>10} {:>10} {:>10}",
                model, t.input, t.cached, t.output, t.reasoning, t.total
            )?;
        }
    }
    let r = &summary.requests;
    if r.count > 0 {
        let statuses: Vec<String> = r
            .statuses
            .iter()
            .map(|(code, n)| match code {
                0 => format!("none: {n}"),
                code => format!("{code}: {n}"),
            })
            .collect();
        writeln!(
            out,
            "\nAPI requests  {} ({} errors); status {}",
            r.count,
            r.errors,
            statuses.join(", ")
        )?;
        let l = &r.latency_ms;
        if l.count > 0 {
            writeln!(
                out,
                "  latency     p50 {} ms, p90 {} ms, max {} ms",
                l.p50, l.p90, l.max
            )?;
        }
    }
    if !summary.tools.is_empty() {
        writeln!(
            out,
            "\ntool calls{:<30} {:>6} {:>8} {:>9} {:>9} {:>9}",
            "", "calls", "success", "p50 ms", "p90 ms", "max ms"
        )?;
        for t in &summary.tools {
            let d = &t.duration_ms;
            writeln!(
                out,
                "  {:<38} {:>6} {:>7.1}% {:>9} {:>9} {:>9}",
                printable(&t.tool),
                t.calls,
                t.success_rate() * 100.0,
                d.p50,
                d.p90,
                d.max
            )?;
        }
    }
    if summary.drops.is_empty() {
        writeln!(out, "\ndrops     none recorded")?;
    } else {
        writeln!(out, "\ndrops recorded by wasmtel")?;
        for d in &summary.drops {
            writeln!(
                out,
                "  {:<24} {:<16} {:>8}",
                printable(&d.exporter),
                printable(&d.reason),
                d.records
            )?;
        }
    }
    Ok(())
}
