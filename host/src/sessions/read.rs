//! Reading log files as they may be found: being written (a last line without its newline),
//! from another version (fields this one does not know), or damaged (a line that is not a
//! record). A line is read into the few fields a listing or a summary needs, without building
//! the record; lines that do not read are skipped and counted, never fatal.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::fold::{Known, Scalar};

/// A line longer than this is skipped unread (a record is far smaller: see
/// `queue.max_batch_bytes`), so that a damaged file costs no more memory than this.
pub(crate) const MAX_LINE: usize = 64 << 20;

/// How many skipped lines are named; the others are counted.
const NAMED: usize = 10;

/// Lines of a session's files that were skipped: those that are not records (named by file
/// and line, the first few), and last lines still being written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "runtime", derive(serde::Serialize))]
pub struct Skipped {
    /// Lines that are not records of the record format.
    pub invalid: u64,
    /// Last lines without their newline that do not read: still being written.
    pub partial: u64,
    /// Files that went away before they were read (pruned by their writer meanwhile).
    pub vanished: u64,
    /// The first invalid lines: `file:line: why`.
    pub first: Vec<String>,
}

impl Skipped {
    /// Whether no line was skipped.
    pub fn is_empty(&self) -> bool {
        self.invalid == 0 && self.partial == 0 && self.vanished == 0
    }

    /// Adds what `other` skipped.
    pub fn add(&mut self, other: Skipped) {
        self.invalid += other.invalid;
        self.partial += other.partial;
        self.vanished += other.vanished;
        let room = NAMED.saturating_sub(self.first.len());
        self.first.extend(other.first.into_iter().take(room));
    }

    /// Counts `line` of `file`, which is not a record because of `why`: as partial if it is a
    /// last line without its newline, else as invalid.
    pub(crate) fn note(&mut self, line: &RawLine<'_>, why: impl fmt::Display) {
        if line.complete {
            self.invalid(line.path, line.number, why);
        } else {
            self.partial += 1;
        }
    }

    pub(crate) fn invalid(&mut self, file: &Path, line: u64, why: impl fmt::Display) {
        self.invalid += 1;
        if self.first.len() < NAMED {
            self.first
                .push(format!("{}:{line}: skipped: {why}", file.display()));
        }
    }
}

impl fmt::Display for Skipped {
    /// One line per named line, then the counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.first {
            writeln!(f, "{line}")?;
        }
        let more = self.invalid.saturating_sub(self.first.len() as u64);
        if more > 0 {
            writeln!(f, "... and {more} more invalid lines")?;
        }
        write!(
            f,
            "skipped: {} invalid lines, {} partial last lines (being written)",
            self.invalid, self.partial
        )?;
        if self.vanished > 0 {
            write!(f, ", {} files gone before they were read", self.vanished)?;
        }
        Ok(())
    }
}

/// The lines of one file, each with its number, the newline taken off; a last line without
/// one is given as not complete. A line longer than [`MAX_LINE`] is skipped and counted.
pub(crate) struct Lines {
    input: BufReader<File>,
    path: PathBuf,
    number: u64,
    line: Vec<u8>,
}

/// A line as read: its file and number, its bytes, and whether its newline ended it.
pub(crate) struct RawLine<'a> {
    pub path: &'a Path,
    pub number: u64,
    pub bytes: &'a [u8],
    pub complete: bool,
}

impl Lines {
    pub fn open(path: &Path) -> std::io::Result<Lines> {
        Ok(Lines {
            input: BufReader::with_capacity(64 << 10, File::open(path)?),
            path: path.to_path_buf(),
            number: 0,
            line: Vec::new(),
        })
    }

    /// The next line that is not blank, or none at the end of the file (or if it cannot be
    /// read further: counted as an invalid line).
    pub fn next(&mut self, skipped: &mut Skipped) -> Option<RawLine<'_>> {
        loop {
            self.line.clear();
            let read = (&mut self.input)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.line);
            match read {
                Ok(0) => return None,
                Ok(_) => self.number += 1,
                Err(e) => {
                    skipped.invalid(&self.path, self.number + 1, format!("cannot read: {e}"));
                    return None;
                }
            }
            let complete = self.line.last() == Some(&b'\n');
            if !complete && self.line.len() > MAX_LINE {
                // Past the bound: the rest of the line is passed over unread.
                let rest = self.input.skip_until(b'\n');
                skipped.invalid(
                    &self.path,
                    self.number,
                    format!("longer than {} MiB", MAX_LINE >> 20),
                );
                if rest.is_err() {
                    return None;
                }
                continue;
            }
            // The line without its ends: the newline (and a carriage return before it), and a
            // byte-order mark that starts the file.
            let mut end = self.line.len() - usize::from(complete);
            if self.line[..end].ends_with(b"\r") {
                end -= 1;
            }
            let bom = "\u{feff}".as_bytes();
            let start = if self.number == 1 && self.line[..end].starts_with(bom) {
                bom.len()
            } else {
                0
            };
            if self.line[start..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(RawLine {
                path: &self.path,
                number: self.number,
                bytes: &self.line[start..end],
                complete,
            });
        }
    }
}

/// A record's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Resource,
    Event,
    Span,
    Metric,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Resource => "resource",
            Kind::Event => "event",
            Kind::Span => "span",
            Kind::Metric => "metric",
        }
    }
}

/// What a listing, a filter or a summary reads of a record line, borrowed from it: its type,
/// its name, its times, and the attributes of Codex's catalog. Fields it does not read are
/// passed over, whatever they are, so that lines of other versions read too.
pub(crate) struct Lean<'a> {
    pub kind: Kind,
    pub name: Cow<'a, str>,
    /// An event's time, a span's start, a metric's earliest point (0: none).
    pub time: u64,
    /// A span's end, a metric's latest point, an event's time.
    pub end: u64,
    pub known: Known<'a>,
}

impl<'a> Lean<'a> {
    /// The time a record is shown and filtered at: an event's, a span's start, a metric's
    /// latest point.
    pub fn shown_time(&self) -> u64 {
        match self.kind {
            Kind::Metric => self.end,
            _ => self.time,
        }
    }

    /// Reads `line`; an error says why it is not a record.
    pub fn parse(line: &'a [u8]) -> Result<Lean<'a>, String> {
        let raw: RawRecord<'a> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let kind = match raw.kind.as_ref() {
            "resource" => Kind::Resource,
            "event" => Kind::Event,
            "span" => Kind::Span,
            "metric" => Kind::Metric,
            other => return Err(format!("unknown record type {other:?}")),
        };
        let time = |t: Option<Cow<'_, str>>, what: &str| match t {
            Some(t) => time_nanos(&t).ok_or_else(|| format!("invalid {what} {t:?}")),
            None => Ok(0),
        };
        let (time, end) = match kind {
            Kind::Event => {
                let t = time(raw.time, "time")?;
                (t, t)
            }
            Kind::Span => (time(raw.start, "start")?, time(raw.end, "end")?),
            Kind::Metric => raw.points.map(|p| (p.first, p.last)).unwrap_or((0, 0)),
            Kind::Resource => (0, 0),
        };
        // An event may have no name (a plain log record); a span or a metric may not.
        if matches!(kind, Kind::Span | Kind::Metric) && raw.name.is_none() {
            return Err("missing field `name`".into());
        }
        Ok(Lean {
            kind,
            name: raw.name.unwrap_or_default(),
            time,
            end,
            known: raw.attributes.map(|a| a.0).unwrap_or_default(),
        })
    }
}

/// An RFC 3339 time as nanoseconds since the Unix epoch.
pub(crate) fn time_nanos(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339(text).ok()?;
    u64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    start: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    end: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    attributes: Option<KnownAttributes<'a>>,
    #[serde(default)]
    points: Option<PointTimes>,
}

/// The attributes [`Known`] reads, the others passed over.
struct KnownAttributes<'a>(Known<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for KnownAttributes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = KnownAttributes<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut known = Known::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if Known::wants(&key) {
                        let value: ScalarOf<'de> = map.next_value()?;
                        known.take(&key, value.0);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(KnownAttributes(known))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A [`Scalar`], borrowed from the line where its text has no escapes.
struct ScalarOf<'a>(Scalar<'a>);

impl<'de> Deserialize<'de> for ScalarOf<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScalarOf<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
                Ok(ScalarOf(Scalar::Bool(b)))
            }
            fn visit_i64<E>(self, i: i64) -> Result<Self::Value, E> {
                Ok(ScalarOf(Scalar::Int(i)))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Self::Value, E> {
                Ok(ScalarOf(match i64::try_from(u) {
                    Ok(i) => Scalar::Int(i),
                    Err(_) => Scalar::Float(u as f64),
                }))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Self::Value, E> {
                Ok(ScalarOf(Scalar::Float(x)))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(ScalarOf(Scalar::Str(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(ScalarOf(Scalar::Str(Cow::Owned(s.to_string()))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(ScalarOf(Scalar::Other))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ScalarOf(Scalar::Other))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ScalarOf(Scalar::Other))
            }
        }
        d.deserialize_any(V)
    }
}

/// The earliest and latest `time` of a metric's points.
struct PointTimes {
    first: u64,
    last: u64,
}

impl<'de> Deserialize<'de> for PointTimes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Point(Option<u64>);
        impl<'de> Deserialize<'de> for Point {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Point;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a point")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Point, A::Error> {
                        let mut time = None;
                        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                            if key == "time" {
                                let text: Cow<'de, str> = map.next_value()?;
                                time = Some(time_nanos(&text).ok_or_else(|| {
                                    de::Error::custom(format!("invalid time {text:?}"))
                                })?);
                            } else {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                        Ok(Point(time))
                    }
                }
                d.deserialize_map(V)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PointTimes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of points")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PointTimes, A::Error> {
                let mut times = PointTimes { first: 0, last: 0 };
                while let Some(Point(time)) = seq.next_element()? {
                    if let Some(t) = time {
                        times.first = if times.first == 0 {
                            t
                        } else {
                            times.first.min(t)
                        };
                        times.last = times.last.max(t);
                    }
                }
                Ok(times)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_ends_and_a_last_line_without_one_is_not_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "\u{feff}{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\"").expect("write");
        let mut lines = Lines::open(&path).expect("open");
        let mut skipped = Skipped::default();
        let mut seen = Vec::new();
        while let Some(line) = lines.next(&mut skipped) {
            seen.push((line.number, line.bytes.to_vec(), line.complete));
        }
        assert_eq!(
            seen,
            [
                (1, b"{\"a\":1}".to_vec(), true),
                (4, b"{\"b\":2}".to_vec(), true),
                (5, b"{\"c\"".to_vec(), false),
            ]
        );
        assert!(skipped.is_empty());
    }

    #[test]
    fn an_event_may_have_no_name_but_a_span_may_not() {
        let plain = Lean::parse(br#"{"type":"event","time":"2026-01-01T00:00:00Z","body":"hi"}"#)
            .expect("a plain log record");
        assert_eq!((plain.kind, plain.name.as_ref()), (Kind::Event, ""));
        let span =
            br#"{"type":"span","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:01Z"}"#;
        assert!(Lean::parse(span).is_err());
        let future =
            br#"{"type":"event","time":"2026-01-01T00:00:00Z","name":"x","new":[1,{"a":2}]}"#;
        assert!(
            Lean::parse(future).is_ok(),
            "fields of another version are passed over"
        );
    }
}
