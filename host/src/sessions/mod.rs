//! Session logs: the files the file-jsonl plugin writes, found and read back. [`Logs::find`]
//! lists the sessions of the config's log directories (or any directory), newest first;
//! a [`Session`] reads its records in time order across its files, summarizes them
//! ([`Session::summary`]) and draws them ([`Session::timeline`]).
//!
//! Reading is robust and bounded: files are streamed, never loaded whole; a line that is not a
//! record is skipped, named by file and line, and counted; a last line still being written is
//! skipped and counted as partial; fields of other versions are passed over.

mod events;
mod fold;
pub(crate) mod live;
mod read;
mod timeline;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

pub use events::{Filter, Shown, printable};
pub use read::Skipped;

use crate::config::Config;
use crate::error::Error;
use crate::summary::SessionSummary;
use fold::Fold;
use read::{Kind, Lean, Lines};

/// The metric whose `dropped_*` outcomes a summary reports (see `wasmtel.*` in the README).
const DROPS_METRIC: &str = "wasmtel.exporter.records";

/// How every file the file-jsonl plugin writes starts.
const FIRST_LINE: &[u8] = br#"{"type":"resource""#;

/// Where a session log is: a directory, and the name of a session's file in it, with
/// `{session_id}` where the session's id goes (as file-jsonl's `file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The directory.
    pub dir: PathBuf,
    /// The file name, e.g. `wasmtel-{session_id}.jsonl`.
    pub file: String,
}

/// One file of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size when it was found.
    pub bytes: u64,
    /// The log it belongs to: its directory and name around the session id (files of one log
    /// follow each other; several logs of a session are read side by side).
    log: (PathBuf, String, String),
    /// Its number in the log: 0 for the first file, then 1, 2... as file-jsonl numbers them.
    number: u64,
}

/// A session found in the logs: its id and its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Its id, as its file names give it.
    pub id: String,
    /// Its files: each log's in order.
    pub files: Vec<LogFile>,
    /// When it started, in nanoseconds since the Unix epoch, as its first lines tell (the
    /// earliest of the first times in each of its logs); none if they have none. Sessions are
    /// listed by it; its summary reads every record for the earliest.
    pub start_unix_nano: Option<u64>,
}

/// The sessions of some directories, newest first.
#[derive(Clone, Debug, Default)]
pub struct Logs {
    sessions: Vec<Session>,
    dirs: Vec<PathBuf>,
}

impl Logs {
    /// Finds the sessions in `places`. A file is a session's when its name is a place's file
    /// name with some id for `{session_id}` (and perhaps file-jsonl's `.N` before its
    /// extension); or, failing that, when it ends in `.jsonl` and starts with the `resource`
    /// line file-jsonl writes first, its id then being the UUID in its name, or its name
    /// without the number and extension. A directory that does not exist holds no session.
    pub fn find(places: &[Place]) -> Result<Logs, Error> {
        let mut dirs: BTreeMap<PathBuf, Vec<&str>> = BTreeMap::new();
        for place in places {
            dirs.entry(place.dir.clone())
                .or_default()
                .push(place.file.as_str());
        }
        let mut sessions: BTreeMap<String, Vec<LogFile>> = BTreeMap::new();
        for (dir, patterns) in &dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(Error::Io {
                        what: format!("cannot read the log directory {}", dir.display()),
                        source,
                    });
                }
            };
            for entry in entries.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let path = entry.path();
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let found = patterns
                    .iter()
                    .find_map(|p| by_pattern(&name, p))
                    .or_else(|| by_content(&name, &path));
                if let Some((id, (prefix, suffix), number)) = found {
                    sessions.entry(id).or_default().push(LogFile {
                        path,
                        bytes: meta.len(),
                        log: (dir.clone(), prefix, suffix),
                        number,
                    });
                }
            }
        }
        let mut sessions: Vec<Session> = sessions
            .into_iter()
            .map(|(id, mut files)| {
                files.sort_by(|a, b| (&a.log, a.number, &a.path).cmp(&(&b.log, b.number, &b.path)));
                let start_unix_nano = first_time(&files);
                Session {
                    id,
                    files,
                    start_unix_nano,
                }
            })
            .collect();
        sessions.sort_by(|a, b| {
            b.start_unix_nano
                .cmp(&a.start_unix_nano)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(Logs {
            sessions,
            dirs: dirs.into_keys().collect(),
        })
    }

    /// The sessions of `config`'s logs: in the directory of each of its file-jsonl exporters
    /// (or in `dir`, if given), named as it names them. Without a file-jsonl exporter, `dir`
    /// is searched for file-jsonl's default names (and any file of the record format).
    pub fn of_config(config: &Config, dir: Option<&Path>) -> Result<Logs, Error> {
        let mut places: Vec<Place> = config
            .session_logs()
            .into_iter()
            .map(|(at, file)| Place {
                dir: dir.map_or(at, Path::to_path_buf),
                file,
            })
            .collect();
        match (places.is_empty(), dir) {
            (true, Some(dir)) => places.push(Place {
                dir: dir.to_path_buf(),
                file: crate::builtin::FILE_JSONL_DEFAULT_FILE.into(),
            }),
            (true, None) => {
                return Err(Error::Sessions(
                    "the config has no file-jsonl exporter, so it writes no session logs: \
                     give their directory with --dir"
                        .into(),
                ));
            }
            _ => {}
        }
        Logs::find(&places)
    }

    /// The sessions, newest first (by the time of their first record; those without one last).
    pub fn sessions(&self) -> &[Session] {
        &self.sessions
    }

    /// The directories searched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The session `query` names: its id, a prefix of only its id, or `latest` (the newest).
    pub fn session(&self, query: &str) -> Result<&Session, Error> {
        if let Some(exact) = self.sessions.iter().find(|s| s.id == query) {
            return Ok(exact);
        }
        let matching: Vec<&Session> = self
            .sessions
            .iter()
            .filter(|s| s.id.starts_with(query))
            .collect();
        let dirs = || {
            self.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match matching[..] {
            [one] => Ok(one),
            [] if query == "latest" => self
                .sessions
                .first()
                .ok_or_else(|| Error::Sessions(format!("no session in {} (latest: none)", dirs()))),
            [] => Err(Error::Sessions(format!(
                "no session {query:?} in {} (`wasmtel sessions list` lists them)",
                dirs()
            ))),
            _ => Err(Error::Sessions(format!(
                "{query:?} is the start of {} sessions' ids ({}...): give more of it",
                matching.len(),
                matching
                    .iter()
                    .take(3)
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// The id, log (name around the id) and number of the file `name`, if it is named as
/// `pattern` names a session's file.
fn by_pattern(name: &str, pattern: &str) -> Option<(String, (String, String), u64)> {
    let Some((prefix, suffix)) = pattern.split_once("{session_id}") else {
        // A fixed name: one log, its name its session's id.
        let (id, number) = unnumbered(name.strip_suffix(".jsonl").unwrap_or(name));
        let base = pattern.strip_suffix(".jsonl").unwrap_or(pattern);
        return (id == base).then(|| (id.to_string(), (pattern.into(), String::new()), number));
    };
    let middle = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let (id, number) = unnumbered(middle);
    (!id.is_empty()).then(|| (id.to_string(), (prefix.into(), suffix.into()), number))
}

/// The id, log and number of a file found by its content: a `.jsonl` file that starts as
/// file-jsonl's do. Such files of one session are one log, in the order of their numbers, then
/// names.
fn by_content(name: &str, path: &Path) -> Option<(String, (String, String), u64)> {
    let stem = name.strip_suffix(".jsonl")?;
    let mut start = [0u8; FIRST_LINE.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .ok()
        .filter(|()| start == *FIRST_LINE)?;
    let (stem, number) = unnumbered(stem);
    let id = match find_uuid(stem) {
        Some(at) => &stem[at..at + 36],
        None => stem,
    };
    // One log for all such files of a session, read one after the other: however many there
    // are, a session is read with one file open per log of the config, and one more.
    Some((id.to_string(), (String::new(), String::new()), number))
}

/// `text` without file-jsonl's `.N`, and N (0 without).
fn unnumbered(text: &str) -> (&str, u64) {
    match text.rsplit_once('.') {
        Some((head, n))
            if !head.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (head, n.parse().unwrap_or(0))
        }
        _ => (text, 0),
    }
}

/// Where the first UUID (8-4-4-4-12 hex digits) in `text` starts.
fn find_uuid(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..=bytes.len().checked_sub(36)?).find(|&at| {
        bytes[at..at + 36].iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
    })
}

/// How many lines of a session's first files are read for the time it started.
const FIRST_LINES: usize = 64;

/// A session's files, log by log.
fn logs(files: &[LogFile]) -> impl Iterator<Item = &[LogFile]> {
    files.chunk_by(|a, b| a.log == b.log)
}

/// The earliest of the first times found in the first lines of each log's first file.
fn first_time(files: &[LogFile]) -> Option<u64> {
    let mut skipped = Skipped::default();
    logs(files)
        .filter_map(|log| {
            let mut lines = Lines::open(&log[0].path).ok()?;
            for _ in 0..FIRST_LINES {
                let line = lines.next(&mut skipped)?;
                if let Ok(lean) = Lean::parse(line.bytes)
                    && lean.time > 0
                {
                    return Some(lean.time);
                }
            }
            None
        })
        .min()
}

/// A record of a session as read: what was read of it, its line, the line of the resource
/// that produced it (empty if its log has none before it), and where it is.
pub(crate) struct Item<'a> {
    pub lean: Lean<'a>,
    pub line: &'a [u8],
    pub resource: &'a [u8],
    /// Its file and line number.
    pub path: &'a Path,
    pub number: u64,
}

/// One log of a session being read: its files, one after the other, and its next record.
struct Cursor<'s> {
    files: std::slice::Iter<'s, LogFile>,
    lines: Option<(&'s Path, Lines)>,
    /// The next record; none at the end.
    head: Option<Head<'s>>,
    /// The line of the resource of the next record.
    resource: Vec<u8>,
}

/// A record read ahead: its line, the time it is ordered by, where it is.
struct Head<'s> {
    line: Vec<u8>,
    time: u64,
    path: &'s Path,
    number: u64,
}

impl<'s> Cursor<'s> {
    /// Moves to the next record, skipping (and counting) lines that are not records.
    fn advance(&mut self, skipped: &mut Skipped) -> Result<(), Error> {
        self.head = None;
        loop {
            let (path, lines) = match &mut self.lines {
                Some(open) => open,
                None => match self.files.next() {
                    Some(file) => match open(&file.path, skipped)? {
                        Some(lines) => self.lines.insert((&file.path, lines)),
                        None => continue,
                    },
                    None => return Ok(()),
                },
            };
            let Some(line) = lines.next(skipped) else {
                self.lines = None;
                continue;
            };
            match Lean::parse(line.bytes) {
                Err(why) => skipped.note(&line, why),
                Ok(lean) if lean.kind == Kind::Resource => {
                    self.resource.clear();
                    self.resource.extend_from_slice(line.bytes);
                }
                Ok(lean) => {
                    self.head = Some(Head {
                        line: line.bytes.to_vec(),
                        time: lean.end,
                        path,
                        number: line.number,
                    });
                    return Ok(());
                }
            }
        }
    }
}

impl Session {
    /// The line of the resource its first file starts with (the record format's `resource`
    /// line); none if it starts otherwise.
    pub fn resource_line(&self) -> Option<String> {
        let mut lines = Lines::open(&self.files.first()?.path).ok()?;
        let line = lines.next(&mut Skipped::default())?;
        let lean = Lean::parse(line.bytes).ok()?;
        (lean.kind == Kind::Resource).then(|| String::from_utf8_lossy(line.bytes).into_owned())
    }

    /// Its files' size together.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Summarizes its records (see [`SessionSummary`]), reading each file once, and tells
    /// which lines were skipped. Drops are those of the latest `wasmtel.exporter.records`
    /// point per exporter and reason (a cumulative sum; a delta one is added up).
    pub fn summary(&self) -> Result<(SessionSummary, Skipped), Error> {
        let mut fold = Fold::default();
        let mut skipped = Skipped::default();
        for file in &self.files {
            let Some(mut lines) = open(&file.path, &mut skipped)? else {
                continue;
            };
            while let Some(line) = lines.next(&mut skipped) {
                let lean = match Lean::parse(line.bytes) {
                    Ok(lean) => lean,
                    Err(why) => {
                        skipped.note(&line, why);
                        continue;
                    }
                };
                match lean.kind {
                    Kind::Event => fold.event(&lean.name, lean.time, lean.known),
                    Kind::Span => fold.span(&lean.name, lean.time, lean.end),
                    Kind::Metric => {
                        fold.metric();
                        fold.saw_time(lean.time);
                        fold.saw_time(lean.end);
                        if lean.name == DROPS_METRIC {
                            fold_drops(&mut fold, line.bytes);
                        }
                    }
                    Kind::Resource => {}
                }
            }
        }
        Ok((fold.summary(&self.id), skipped))
    }

    /// Calls `each` with every record, in the order of their times (an event's, a span's end,
    /// a metric's latest point) across its logs, each log's in the order written; lines that
    /// are not records go to `skipped`. Stops at the first error `each` returns.
    pub(crate) fn each(
        &self,
        skipped: &mut Skipped,
        mut each: impl FnMut(Item<'_>) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        let mut cursors: Vec<Cursor<'_>> = logs(&self.files)
            .map(|files| Cursor {
                files: files.iter(),
                lines: None,
                head: None,
                resource: Vec::new(),
            })
            .collect();
        for cursor in &mut cursors {
            cursor.advance(skipped)?;
        }
        let written = |source| Error::Io {
            what: "cannot write".into(),
            source,
        };
        while let Some(next) = cursors
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((c.head.as_ref()?.time, i)))
            .min()
            .map(|(_, i)| i)
        {
            let cursor = &mut cursors[next];
            let head = cursor.head.as_ref().expect("a head");
            let lean = Lean::parse(&head.line).expect("read before");
            each(Item {
                lean,
                line: &head.line,
                resource: &cursor.resource,
                path: head.path,
                number: head.number,
            })
            .map_err(written)?;
            cursor.advance(skipped)?;
        }
        Ok(())
    }
}

/// Opens a log file for reading; none if it went away since it was found (its writer pruned
/// it), counted in `skipped`.
fn open(path: &Path, skipped: &mut Skipped) -> Result<Option<Lines>, Error> {
    match Lines::open(path) {
        Ok(lines) => Ok(Some(lines)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skipped.vanished += 1;
            Ok(None)
        }
        Err(source) => Err(Error::Io {
            what: format!("cannot read {}", path.display()),
            source,
        }),
    }
}

/// Folds the `dropped_*` points of a `wasmtel.exporter.records` line (read in full, but
/// leniently: such lines are few, and may come from another version).
fn fold_drops(fold: &mut Fold, line: &[u8]) {
    use serde_json::Value;
    let Ok(metric) = serde_json::from_slice::<Value>(line) else {
        return;
    };
    let delta = metric["temporality"] == "delta";
    let time = |point: &Value, key: &str| point[key].as_str().and_then(read::time_nanos);
    for point in metric["points"].as_array().into_iter().flatten() {
        let attributes = &point["attributes"];
        let (Some(exporter), Some(outcome)) = (
            attributes["exporter"].as_str(),
            attributes["outcome"].as_str(),
        ) else {
            continue;
        };
        let (Some(reason), Some(records)) = (
            outcome.strip_prefix("dropped_"),
            point["value"].as_f64().filter(|v| *v >= 0.0),
        ) else {
            continue;
        };
        fold.dropped(
            (
                exporter.to_string(),
                reason.to_string(),
                time(point, "start").unwrap_or(0),
            ),
            time(point, "time").unwrap_or(0),
            records as u64,
            delta,
        );
    }
}
