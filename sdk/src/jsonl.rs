//! The record format, written from a batch's views: one JSON object per line, as the file-jsonl
//! plugin writes it and `wasmtel replay` reads it. The schema is documented in the repository's
//! README ("Record format").
//!
//! Lines are written straight into a buffer, in the byte-exact form of `serde_json`'s compact
//! output (which writes the numbers here): text is copied as it is, eight bytes checked at a time,
//! and only the characters JSON requires are escaped, as `serde_json` escapes them.

use crate::encode::put;
use crate::model::{Number, SpanKind, StatusCode, Temporality};
use crate::view::{HistogramPoint, List, MetricData, NumberPoint, Record, Scope};
use crate::{AnyValue, Attributes};

/// The proleptic Gregorian date (year, month, day) `days` after 1970-01-01: Howard Hinnant's
/// `civil_from_days`, in eras of 400 years counted from 0000-03-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let (era, day_of_era) = (z / 146_097, z % 146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March, so that February's leap day comes last.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// A time as the record format writes it: RFC 3339, UTC, with nanoseconds
/// (`2026-11-20T09:00:02.989000000Z`), its digits put in place rather than formatted.
#[derive(Clone, Copy)]
pub struct TimeText([u8; 30]);

impl TimeText {
    /// The text of `nanos` since the Unix epoch.
    pub fn of(nanos: u64) -> TimeText {
        let (secs, nanos) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
        let (days, secs) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        let mut text = *b"0000-00-00T00:00:00.000000000Z";
        for (at, value) in [
            (0..4, year),
            (5..7, month),
            (8..10, day),
            (11..13, secs / 3600),
            (14..16, secs / 60 % 60),
            (17..19, secs % 60),
            (20..29, nanos),
        ] {
            let mut value = value;
            for digit in text[at].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        TimeText(text)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for TimeText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Turns records into lines, with a `resource` line before the first records of a file and at
/// every change of resource.
#[derive(Default)]
pub struct LineWriter {
    buf: Vec<u8>,
    /// The line of the current resource...
    resource: Vec<u8>,
    /// ... and whether the lines so far (in this file) have it.
    resource_written: bool,
    /// The last line of [`LineWriter::record_line`].
    line: Vec<u8>,
}

impl LineWriter {
    /// The lines added since the last [`LineWriter::clear`].
    pub fn lines(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the lines added, keeping the buffer's capacity for the next batch.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The next lines go to a new file (or the last ones were lost): they start with the
    /// resource line again.
    pub fn new_file(&mut self) {
        self.resource_written = false;
    }

    /// The records that follow are of the resource `attributes` (once per batch).
    pub fn resource(&mut self, attributes: Attributes<'_>) {
        let mut line = Json(Vec::with_capacity(self.resource.len()));
        line.0
            .extend_from_slice(br#"{"type":"resource","attributes":"#);
        line.attributes(attributes);
        line.0.extend_from_slice(b"}\n");
        if line.0 != self.resource {
            self.resource = line.0;
            self.resource_written = false;
        }
    }

    /// The line of the current resource.
    pub fn resource_line(&self) -> &[u8] {
        &self.resource
    }

    /// The line of `record` alone, without a resource line; the lines added so far are left as
    /// they are.
    pub fn record_line(&mut self, record: Record<'_>) -> &[u8] {
        let (pending, written) = (std::mem::take(&mut self.buf), self.resource_written);
        self.buf = std::mem::take(&mut self.line);
        self.buf.clear();
        self.resource_written = true;
        self.record(record);
        self.line = std::mem::replace(&mut self.buf, pending);
        self.resource_written = written;
        &self.line
    }

    /// Adds the line of `record`, after the resource line if the lines so far lack it.
    pub fn record(&mut self, record: Record<'_>) {
        if !self.resource_written {
            self.buf.extend_from_slice(&self.resource);
            self.resource_written = true;
        }
        let mut j = Json(std::mem::take(&mut self.buf));
        match record {
            Record::Event(e) => {
                j.0.extend_from_slice(br#"{"type":"event","time":"#);
                j.time(e.time_unix_nano);
                if !e.name.is_empty() {
                    j.key("name");
                    j.str(e.name);
                }
                if e.severity_number != 0 {
                    j.key("severity_number");
                    j.int(e.severity_number);
                }
                if !e.severity_text.is_empty() {
                    j.key("severity_text");
                    j.str(e.severity_text);
                }
                if !matches!(e.body, AnyValue::Empty) {
                    j.key("body");
                    j.value(e.body);
                }
                j.attributes_field(e.attributes);
                if let Some(id) = e.trace_id {
                    j.key("trace_id");
                    j.trace_id(id);
                }
                if let Some(id) = e.span_id {
                    j.key("span_id");
                    j.span_id(id);
                }
                j.scope(e.scope);
            }
            Record::Span(s) => {
                j.0.extend_from_slice(br#"{"type":"span","trace_id":"#);
                j.trace_id(s.trace_id);
                j.key("span_id");
                j.span_id(s.span_id);
                if let Some(id) = s.parent_span_id {
                    j.key("parent_span_id");
                    j.span_id(id);
                }
                j.key("name");
                j.str(s.name);
                j.key("kind");
                j.str(span_kind(s.kind));
                j.key("start");
                j.time(s.start_time_unix_nano);
                j.key("end");
                j.time(s.end_time_unix_nano);
                j.attributes_field(s.attributes);
                if !s.events.is_empty() {
                    j.key("events");
                    j.list(s.events, |j, e| {
                        j.0.extend_from_slice(br#"{"time":"#);
                        j.time(e.time_unix_nano);
                        j.key("name");
                        j.str(e.name);
                        j.attributes_field(e.attributes);
                        j.0.push(b'}');
                    });
                }
                if !s.links.is_empty() {
                    j.key("links");
                    j.list(s.links, |j, l| {
                        j.0.extend_from_slice(br#"{"trace_id":"#);
                        j.trace_id(l.trace_id);
                        j.key("span_id");
                        j.span_id(l.span_id);
                        j.attributes_field(l.attributes);
                        j.0.push(b'}');
                    });
                }
                let code = match s.status {
                    StatusCode::Unset => None,
                    StatusCode::Ok => Some("ok"),
                    StatusCode::Error => Some("error"),
                };
                if let Some(code) = code {
                    j.0.extend_from_slice(br#","status":{"code":"#);
                    j.str(code);
                    if !s.status_message.is_empty() {
                        j.key("message");
                        j.str(s.status_message);
                    }
                    j.0.push(b'}');
                }
                j.scope(s.scope);
            }
            Record::Metric(m) => {
                j.0.extend_from_slice(br#"{"type":"metric","name":"#);
                j.str(m.name);
                if !m.description.is_empty() {
                    j.key("description");
                    j.str(m.description);
                }
                if !m.unit.is_empty() {
                    j.key("unit");
                    j.str(m.unit);
                }
                j.scope(m.scope);
                j.key("kind");
                match m.data {
                    MetricData::Sum {
                        points,
                        temporality,
                        monotonic,
                    } => {
                        j.str("sum");
                        j.temporality(temporality);
                        j.key("monotonic");
                        j.0.extend_from_slice(if monotonic { b"true" } else { b"false" });
                        j.number_points(points);
                    }
                    MetricData::Gauge { points } => {
                        j.str("gauge");
                        j.number_points(points);
                    }
                    MetricData::Histogram {
                        points,
                        temporality,
                    } => {
                        j.str("histogram");
                        j.temporality(temporality);
                        j.key("points");
                        j.list(points, |j, p: HistogramPoint<'_>| {
                            j.point_times(p.attributes, p.start_time_unix_nano, p.time_unix_nano);
                            j.key("count");
                            j.int(p.count);
                            j.key("sum");
                            j.double(p.sum);
                            if let Some(min) = p.min {
                                j.key("min");
                                j.double(min);
                            }
                            if let Some(max) = p.max {
                                j.key("max");
                                j.double(max);
                            }
                            j.key("bounds");
                            j.list(p.bounds, |j, b| j.number(b));
                            j.key("counts");
                            j.list(p.counts, |j, c| j.int(c));
                            j.0.push(b'}');
                        });
                    }
                }
            }
        }
        j.0.extend_from_slice(b"}\n");
        self.buf = j.0;
    }
}

fn span_kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// JSON written into a buffer.
struct Json(Vec<u8>);

impl Json {
    /// `,"key":` (the keys here never need escaping).
    fn key(&mut self, key: &str) {
        self.0.extend_from_slice(b",\"");
        put(&mut self.0, key.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    /// Text as a JSON string: copied as it is, but for `"`, `\` and control characters, escaped
    /// as `serde_json` escapes them.
    fn str(&mut self, text: &str) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        /// Whether any of the eight bytes of `w` is a control character, `"` or `\`.
        fn special(w: u64) -> bool {
            let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
            let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
            (control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))))
                != 0
        }
        let bytes = text.as_bytes();
        self.0.push(b'"');
        let (mut run, mut i) = (0, 0);
        while i < bytes.len() {
            // The next eight bytes, or the last few padded with a letter (any byte that needs no
            // escape would do). (Byte by byte rather
            // than by a copy of a variable length, which WebAssembly makes a call into the host.)
            let n = (bytes.len() - i).min(8);
            let word = match bytes.get(i..i + 8) {
                Some(eight) => u64::from_le_bytes(eight.try_into().expect("8 bytes")),
                None => bytes[i..]
                    .iter()
                    .rev()
                    .fold((ONES * u64::from(b'a')) >> (8 * n), |w, &b| {
                        (w << 8) | u64::from(b)
                    }),
            };
            if !special(word) {
                i += n;
                continue;
            }
            let byte = bytes[i];
            let escape: &[u8] = match byte {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..0x20 => &[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xf)],
                ],
                _ => {
                    i += 1;
                    continue;
                }
            };
            put(&mut self.0, &bytes[run..i]);
            put(&mut self.0, escape);
            i += 1;
            run = i;
        }
        put(&mut self.0, &bytes[run..]);
        self.0.push(b'"');
    }

    fn int(&mut self, n: impl itoa::Integer) {
        self.0
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    /// A float as `serde_json` writes it (`null` if not finite).
    fn number(&mut self, d: f64) {
        serde_json::to_writer(&mut self.0, &d).expect("writing into memory cannot fail");
    }

    /// A float: a JSON number when finite, else `{"$double": "NaN" | "Infinity" | "-Infinity"}`.
    fn double(&mut self, d: f64) {
        if d.is_finite() {
            return self.number(d);
        }
        self.0.extend_from_slice(br#"{"$double":"#);
        self.str(if d.is_nan() {
            "NaN"
        } else if d > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        });
        self.0.push(b'}');
    }

    /// A time as a JSON string of its [`TimeText`].
    fn time(&mut self, nanos: u64) {
        self.0.push(b'"');
        self.0.extend_from_slice(&TimeText::of(nanos).0);
        self.0.push(b'"');
    }

    /// A trace id as 32 lowercase hex digits.
    fn trace_id(&mut self, id: u128) {
        self.hex_string(&id.to_be_bytes());
    }

    /// A span id as 16 lowercase hex digits.
    fn span_id(&mut self, id: u64) {
        self.hex_string(&id.to_be_bytes());
    }

    /// `bytes` as a string of lowercase hex digits.
    fn hex_string(&mut self, bytes: &[u8]) {
        self.0.push(b'"');
        self.hex(bytes);
        self.0.push(b'"');
    }

    /// `bytes` as lowercase hex digits.
    fn hex(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0.push(HEX[usize::from(byte >> 4)]);
            self.0.push(HEX[usize::from(byte & 0xf)]);
        }
    }

    /// The items of `list` as a JSON array, each written by `item`.
    fn list<'a, T: wasmtel_sdk::view::Item<'a>>(
        &mut self,
        list: List<'a, T>,
        mut item: impl FnMut(&mut Self, T),
    ) {
        self.0.push(b'[');
        for (n, x) in list.iter().enumerate() {
            if n > 0 {
                self.0.push(b',');
            }
            item(self, x);
        }
        self.0.push(b']');
    }

    /// Attributes as a JSON object, in recorded order.
    fn attributes(&mut self, attributes: Attributes<'_>) {
        self.0.push(b'{');
        for (n, (k, v)) in attributes.iter().enumerate() {
            if n > 0 {
                self.0.push(b',');
            }
            self.str(k);
            self.0.push(b':');
            self.value(v);
        }
        self.0.push(b'}');
    }

    /// `,"attributes":{...}`, unless there are none.
    fn attributes_field(&mut self, attributes: Attributes<'_>) {
        if !attributes.is_empty() {
            self.key("attributes");
            self.attributes(attributes);
        }
    }

    /// A value as JSON: text, booleans, integers and arrays as themselves, floats as numbers with
    /// a fraction or exponent, maps as objects, bytes as `{"$bytes": "<hex>"}`, no value as
    /// `null`.
    fn value(&mut self, value: AnyValue<'_>) {
        match value {
            AnyValue::Empty => self.0.extend_from_slice(b"null"),
            AnyValue::Str(t) => self.str(t),
            AnyValue::Bool(b) => self.0.extend_from_slice(if b { b"true" } else { b"false" }),
            AnyValue::Int(i) => self.int(i),
            AnyValue::Double(d) => self.double(d),
            AnyValue::Bytes(b) => {
                self.0.extend_from_slice(br#"{"$bytes":"#);
                self.hex_string(b);
                self.0.push(b'}');
            }
            AnyValue::Array(items) => self.list(items, |j, v| j.value(v)),
            AnyValue::Map(entries) => self.attributes(entries),
        }
    }

    /// `,"scope":{...}`, unless the scope is empty.
    fn scope(&mut self, scope: Scope<'_>) {
        if scope.is_empty() {
            return;
        }
        self.key("scope");
        self.0.extend_from_slice(br#"{"name":"#);
        self.str(scope.name);
        if !scope.version.is_empty() {
            self.key("version");
            self.str(scope.version);
        }
        self.0.push(b'}');
    }

    fn temporality(&mut self, temporality: Temporality) {
        self.key("temporality");
        self.str(match temporality {
            Temporality::Delta => "delta",
            Temporality::Cumulative => "cumulative",
        });
    }

    /// A point's opening: `{` with its attributes (if any), start and time.
    fn point_times(&mut self, attributes: Attributes<'_>, start: u64, time: u64) {
        self.0.push(b'{');
        if !attributes.is_empty() {
            self.0.extend_from_slice(br#""attributes":"#);
            self.attributes(attributes);
            self.0.push(b',');
        }
        self.0.extend_from_slice(br#""start":"#);
        self.time(start);
        self.key("time");
        self.time(time);
    }

    /// `,"points":[...]` of a sum or gauge.
    fn number_points(&mut self, points: List<'_, NumberPoint<'_>>) {
        self.key("points");
        self.list(points, |j, p| {
            j.point_times(p.attributes, p.start_time_unix_nano, p.time_unix_nano);
            j.key("value");
            match p.value {
                Number::Int(i) => j.int(i),
                Number::Double(d) => j.double(d),
            }
            j.0.push(b'}');
        });
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";
