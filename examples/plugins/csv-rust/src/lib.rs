//! An example exporter in Rust: a CSV row per record, with `type,time,name,trace_id,span_id,
//! detail` (an event's severity, a span's end, a metric's number of points). Config: `file`, the
//! CSV file in the sandbox directory (default `records.csv`). It reads batches through the SDK's
//! views, without allocating per record, and writes the same rows as the JavaScript and Python
//! CSV examples.

use std::fs::File;
use std::io::Write as _;

use serde::Deserialize;
use wasmtel_sdk::jsonl::TimeText;
use wasmtel_sdk::view::MetricData;
use wasmtel_sdk::{Batch, Context, Error, Exporter, Record, log};

const HEADER: &str = "type,time,name,trace_id,span_id,detail\n";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_file")]
    file: String,
}

fn default_file() -> String {
    "records.csv".into()
}

struct Csv {
    out: File,
    rows: String,
}

/// Adds `text` as a CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(rows: &mut String, text: &str) {
    if text.contains([',', '"', '\r', '\n']) {
        rows.push('"');
        rows.push_str(&text.replace('"', "\"\""));
        rows.push('"');
    } else {
        rows.push_str(text);
    }
}

/// Adds the row of `record`.
fn row(rows: &mut String, record: Record<'_>) {
    let hex = |id: Option<u128>, width| id.map_or(String::new(), |id| format!("{id:0width$x}"));
    let (kind, time, name, trace, span, detail) = match record {
        Record::Event(e) => (
            "event",
            Some(e.time_unix_nano),
            e.name,
            hex(e.trace_id, 32),
            hex(e.span_id.map(u128::from), 16),
            e.severity_text.to_string(),
        ),
        Record::Span(s) => (
            "span",
            Some(s.start_time_unix_nano),
            s.name,
            hex(Some(s.trace_id), 32),
            hex(Some(s.span_id.into()), 16),
            TimeText::of(s.end_time_unix_nano).to_string(),
        ),
        Record::Metric(m) => {
            let (last, count) = match m.data {
                MetricData::Sum { points, .. } | MetricData::Gauge { points } => {
                    (points.iter().last().map(|p| p.time_unix_nano), points.len())
                }
                MetricData::Histogram { points, .. } => {
                    (points.iter().last().map(|p| p.time_unix_nano), points.len())
                }
            };
            ("metric", last, m.name, String::new(), String::new(), count.to_string())
        }
    };
    let time = time.map(|t| TimeText::of(t).to_string()).unwrap_or_default();
    for (n, text) in [kind, &time, name, &trace, &span, &detail].into_iter().enumerate() {
        if n > 0 {
            rows.push(',');
        }
        field(rows, text);
    }
    rows.push('\n');
}

impl Exporter for Csv {
    fn init(config: &str, _context: &Context) -> Result<Self, Error> {
        let config: Config = wasmtel_sdk::parse_config(config)?;
        let failed = |e: std::io::Error| Error::permanent(format!("{}: {e}", config.file));
        let mut out = File::options()
            .create(true)
            .append(true)
            .open(&config.file)
            .map_err(failed)?;
        if out.metadata().map_err(failed)?.len() == 0 {
            out.write_all(HEADER.as_bytes()).map_err(failed)?;
        }
        log::info("writing CSV rows");
        Ok(Csv {
            out,
            rows: String::new(),
        })
    }

    fn export(&mut self, batch: &Batch<'_>) -> Result<(), Error> {
        self.rows.clear();
        for record in batch.records() {
            row(&mut self.rows, record);
        }
        self.out
            .write_all(self.rows.as_bytes())
            .map_err(|e| Error::retryable(e, None))
    }
}

wasmtel_sdk::export!(Csv);
