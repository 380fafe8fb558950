//! A session's records, filtered, as compact lines or unchanged in the record format.

use std::fmt::Write as _;
use std::io::Write;

use serde_json::Value;

use super::read::{Kind, Skipped};
use super::{Item, Session};
use crate::error::Error;

/// Which records of a session are shown. The default shows all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Record types (`event`, `span`, `metric`) and names (`codex.api_request`, or a prefix
    /// ending in `*`: `codex.sse_*`): a record is shown if its type or its name is one of
    /// them. Empty: every record.
    pub types: Vec<String>,
    /// Text its line holds, as written or as JSON writes it in a string (so `"` matches
    /// `\"`); case matters.
    pub contains: Option<String>,
    /// Records at or after this time (nanoseconds since the Unix epoch): an event's time, a
    /// span's start, a metric's latest point.
    pub since: Option<u64>,
    /// Records at or before this time.
    pub until: Option<u64>,
}

/// How the records are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// Unchanged, in the record format, each run after the line of its resource: a fixture.
    /// A line `wasmtel replay` would refuse (of another version, say) is left out, and
    /// counted as skipped.
    Json,
    /// A compact line each: time, type, name and the attributes that tell (not the session's
    /// metadata, which every event repeats), cut to `width` characters if given.
    Lines {
        /// The widest a line may be.
        width: Option<usize>,
    },
}

/// The attributes Codex puts on every event of a session: left out of the compact lines.
const METADATA: &[&str] = &[
    "event.timestamp",
    "conversation.id",
    "app.version",
    "auth_mode",
    "originator",
    "user.account_id",
    "user.email",
    "terminal.type",
    "model",
    "slug",
];

impl Filter {
    fn admits(&self, item: &Item<'_>, escaped: Option<&str>) -> bool {
        let lean = &item.lean;
        let time = lean.shown_time();
        let typed = self.types.is_empty()
            || self.types.iter().any(|t| {
                t == lean.kind.name()
                    || match t.strip_suffix('*') {
                        Some(prefix) => lean.name.starts_with(prefix),
                        None => *t == lean.name,
                    }
            });
        let holds = |text: &str| {
            let line = item.line;
            !text.is_empty() && line.windows(text.len()).any(|w| w == text.as_bytes())
        };
        typed
            && self.since.is_none_or(|since| time >= since)
            && self.until.is_none_or(|until| time <= until)
            && self
                .contains
                .as_deref()
                .is_none_or(|text| holds(text) || escaped.is_some_and(holds))
    }
}

impl Session {
    /// Writes the records `filter` admits into `out`, in time order across the session's logs,
    /// as `shown`; returns the lines skipped and how many records were written.
    pub fn write_events(
        &self,
        filter: &Filter,
        shown: Shown,
        out: &mut impl Write,
    ) -> Result<(Skipped, u64), Error> {
        // The text as JSON writes it inside a string, if that differs.
        let escaped = filter.contains.as_deref().and_then(|text| {
            let json = serde_json::to_string(text).expect("a string serializes");
            let inner = &json[1..json.len() - 1];
            (inner != text).then(|| inner.to_string())
        });
        let mut skipped = Skipped::default();
        // Lines read, but not as a replay reads them.
        let mut refused = Skipped::default();
        let mut written = 0;
        let mut resource: Vec<u8> = Vec::new();
        let mut text = String::new();
        self.each(&mut skipped, |item| {
            if !filter.admits(&item, escaped.as_deref()) {
                return Ok(());
            }
            match shown {
                Shown::Json => {
                    // Only lines a replay takes: the output is a fixture.
                    let strict = std::str::from_utf8(item.line)
                        .map_err(|e| e.to_string())
                        .and_then(crate::jsonl::parse_line);
                    if let Err(why) = strict {
                        refused.invalid(item.path, item.number, why);
                        return Ok(());
                    }
                    if item.resource != resource.as_slice() {
                        resource = item.resource.to_vec();
                        if !resource.is_empty() {
                            out.write_all(&resource)?;
                            out.write_all(b"\n")?;
                        }
                    }
                    out.write_all(item.line)?;
                    out.write_all(b"\n")?;
                }
                Shown::Lines { width } => {
                    text.clear();
                    compact(&item, &mut text);
                    cut(&mut text, width);
                    text.push('\n');
                    out.write_all(text.as_bytes())?;
                }
            }
            written += 1;
            Ok(())
        })?;
        skipped.add(refused);
        Ok((skipped, written))
    }
}

/// `nanos` as a time of day, UTC, to the millisecond.
fn time_of_day(nanos: u64) -> String {
    let ms = nanos / 1_000_000;
    let (h, m, s) = (ms / 3_600_000 % 24, ms / 60_000 % 60, ms / 1000 % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", ms % 1000)
}

/// A value as a compact line shows it: text as it is unless it has spaces, quotes, `=` or
/// control characters (then as JSON, which escapes them), anything else as JSON.
fn shown_value(value: &Value, out: &mut String) {
    match value {
        Value::String(s)
            if !s.is_empty() && !s.contains([' ', '"', '=']) && !s.contains(char::is_control) =>
        {
            out.push_str(s)
        }
        other => out.push_str(&printable(&other.to_string())),
    }
}

/// `text` with its control characters (which a terminal would obey: escapes, carriage
/// returns) written as `\u{..}`: text from logs, safe to print.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| match c {
            c if c.is_control() => format!("\\u{{{:x}}}", u32::from(c)),
            c => c.to_string(),
        })
        .collect::<String>()
        .into()
}

/// The attributes of `object`'s `key` as `k=v` pairs, but those in `leave_out`.
fn shown_attributes(object: &Value, key: &str, leave_out: &[&str], out: &mut String) {
    if let Some(Value::Object(attributes)) = object.get(key) {
        for (k, v) in attributes {
            if !leave_out.contains(&k.as_str()) {
                let _ = write!(out, " {}=", printable(k));
                shown_value(v, out);
            }
        }
    }
}

/// The compact line of `item`.
fn compact(item: &Item<'_>, out: &mut String) {
    let lean = &item.lean;
    let _ = write!(
        out,
        "{}  {:<6}  {}",
        time_of_day(lean.shown_time()),
        lean.kind.name(),
        printable(&lean.name)
    );
    let Ok(record) = serde_json::from_slice::<Value>(item.line) else {
        return;
    };
    match lean.kind {
        Kind::Event => {
            if let Some(body) = record.get("body") {
                out.push_str(" body=");
                shown_value(body, out);
            }
            shown_attributes(&record, "attributes", METADATA, out);
        }
        Kind::Span => {
            let ms = lean.end.saturating_sub(lean.time) as f64 / 1e6;
            let _ = write!(out, " ({ms:.1} ms)");
            let status = record.get("status");
            if status.and_then(|s| s.get("code")).and_then(Value::as_str) == Some("error") {
                out.push_str(" ERROR");
                if let Some(message) = status.and_then(|s| s.get("message")) {
                    out.push(' ');
                    shown_value(message, out);
                }
            }
            shown_attributes(&record, "attributes", &[], out);
        }
        Kind::Metric => {
            if let Some(kind) = record.get("kind").and_then(Value::as_str) {
                let _ = write!(out, " {}:", printable(kind));
            }
            let points = record.get("points").and_then(Value::as_array);
            for (i, point) in points.into_iter().flatten().enumerate() {
                out.push_str(if i == 0 { " " } else { "; " });
                let mut attributes = String::new();
                shown_attributes(point, "attributes", &[], &mut attributes);
                if !attributes.is_empty() {
                    let _ = write!(out, "{}: ", attributes.trim_start().replace(' ', ","));
                }
                match (point.get("value"), point.get("count"), point.get("sum")) {
                    (Some(value), _, _) => shown_value(value, out),
                    (None, Some(count), Some(sum)) => {
                        let _ = write!(out, "count={count} sum={sum}");
                    }
                    _ => {}
                }
            }
        }
        Kind::Resource => {}
    }
}

/// Cuts `line` to `width` characters, the last one then `…`.
fn cut(line: &mut String, width: Option<usize>) {
    let Some(width) = width.filter(|w| *w > 0) else {
        return;
    };
    if let Some((at, _)) = line.char_indices().nth(width) {
        let keep = line[..at].char_indices().last().map_or(0, |(last, _)| last);
        line.truncate(keep);
        line.push('…');
    }
}
