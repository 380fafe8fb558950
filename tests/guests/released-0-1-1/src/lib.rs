//! An exporter built against `wasmtel:exporter@0.1.1` as released (the frozen copy in
//! `wit/released/0.1.1`): it takes the lock of `records.txt` through `files@0.1.1` in `init`, and
//! appends to it a line per record of every typed batch it gets (`export-events`, `-spans`,
//! `-metrics`), read through the 0.1 pool, slices and ranges, and a `resource` line per batch;
//! so a test compares what it read with the records the host was given.
//!
//! Line format: `event|span|metric` then `key=value` fields separated by ` | `; texts (names,
//! keys, messages) and string values are `"text"` (Rust's `{:?}`); other values `true`, `7i`, `1.5` (`{:?}` of the float), `x` and hex bytes,
//! `[a,b]`, `{k=v,k=v}`, `empty`; ids in lowercase hex, an absent one `-`.

wit_bindgen::generate!({
    path: "../../../wit/released/0.1.1",
    world: "plugin",
});

use std::cell::RefCell;
use std::io::Write;

use exports::wasmtel::exporter::exporter::{Context, Error, Guest};
use wasmtel::exporter::files::{Lock, try_lock};
use wasmtel::exporter::log::{Level, log};
use wasmtel::exporter::types::{
    EventBatch, KeyValue, MetricBatch, MetricData, Number, Pool, Range, Scope, Slice, SpanBatch,
    Temporality, TraceId, Value,
};

const FILE: &str = "records.txt";

thread_local! {
    static HELD: RefCell<Option<Lock>> = const { RefCell::new(None) };
}

/// Reads a batch's pool, failing on a slice or range that leads outside it.
struct Read<'a> {
    pool: &'a Pool,
}

fn items<T>(list: &[T], r: Range) -> Result<&[T], Error> {
    list.get(r.start as usize..(r.start as usize).saturating_add(r.len as usize))
        .ok_or_else(|| {
            Error::Permanent(format!(
                "range {}+{} outside a list of {}",
                r.start,
                r.len,
                list.len()
            ))
        })
}

impl Read<'_> {
    fn bytes(&self, s: Slice) -> Result<&[u8], Error> {
        self.pool
            .data
            .get(s.offset as usize..(s.offset as usize).saturating_add(s.len as usize))
            .ok_or_else(|| {
                Error::Permanent(format!("slice {}+{} outside the pool", s.offset, s.len))
            })
    }

    fn text(&self, s: Slice) -> Result<String, Error> {
        String::from_utf8(self.bytes(s)?.to_vec()).map_err(|e| Error::Permanent(e.to_string()))
    }

    /// Text as Rust's `{:?}` writes it: quoted, escaped, on one line.
    fn quoted(&self, s: Slice) -> Result<String, Error> {
        Ok(format!("{:?}", self.text(s)?))
    }

    fn value(&self, v: &Value) -> Result<String, Error> {
        Ok(match v {
            Value::Empty => "empty".into(),
            Value::String(s) => self.quoted(*s)?,
            Value::Boolean(b) => b.to_string(),
            Value::Int(i) => format!("{i}i"),
            Value::Double(d) => format!("{d:?}"),
            Value::Bytes(s) => format!(
                "x{}",
                self.bytes(*s)?
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            Value::Array(r) => {
                let items: Result<Vec<String>, Error> = items(&self.pool.values, *r)?
                    .iter()
                    .map(|v| self.value(v))
                    .collect();
                format!("[{}]", items?.join(","))
            }
            Value::Kvlist(r) => self.attributes(*r)?,
        })
    }

    fn attributes(&self, r: Range) -> Result<String, Error> {
        let entries: Result<Vec<String>, Error> = items(&self.pool.attributes, r)?
            .iter()
            .map(|KeyValue { key, value }| {
                Ok(format!("{}={}", self.quoted(*key)?, self.value(value)?))
            })
            .collect();
        Ok(format!("{{{}}}", entries?.join(",")))
    }

    fn scope(&self, s: &Scope) -> Result<String, Error> {
        Ok(format!(
            "{}/{}",
            self.quoted(s.name)?,
            self.quoted(s.version)?
        ))
    }
}

fn trace(id: &TraceId) -> String {
    format!("{:016x}{:016x}", id.hi, id.lo)
}

fn span_id(id: Option<u64>) -> String {
    id.map_or("-".into(), |id| format!("{id:016x}"))
}

fn temporality(t: Temporality) -> &'static str {
    match t {
        Temporality::Delta => "delta",
        Temporality::Cumulative => "cumulative",
    }
}

fn append(lines: Vec<String>) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(FILE)
        .map_err(|e| Error::Permanent(format!("{FILE}: {e}")))?;
    let mut text = lines.join("\n");
    text.push('\n');
    file.write_all(text.as_bytes()).map_err(|e| {
        Error::Retryable(exports::wasmtel::exporter::exporter::Retryable {
            message: format!("{FILE}: {e}"),
            retry_after_ms: None,
        })
    })
}

struct Released;

impl Guest for Released {
    fn init(_config: String, context: Context) -> Result<(), Error> {
        let lock = try_lock(FILE).map_err(|e| Error::Permanent(format!("{FILE}: {e:?}")))?;
        HELD.with(|held| *held.borrow_mut() = Some(lock));
        log(
            Level::Info,
            &format!("0.1.1 plugin up for {}", context.exporter_name),
        );
        Ok(())
    }

    fn export_events(batch: EventBatch) -> Result<(), Error> {
        let read = Read { pool: &batch.pool };
        let mut lines = vec![format!("resource {}", read.attributes(batch.resource)?)];
        for e in &batch.events {
            lines.push(format!(
                "event | time={} | name={} | severity={}/{} | body={} | trace={} | span={} | scope={} | attributes={}",
                e.time_unix_nano,
                read.quoted(e.name)?,
                e.severity_number,
                read.quoted(e.severity_text)?,
                read.value(&e.body)?,
                e.trace_id.as_ref().map_or("-".into(), trace),
                span_id(e.span_id),
                read.scope(&e.scope)?,
                read.attributes(e.attributes)?,
            ));
        }
        append(lines)
    }

    fn export_spans(batch: SpanBatch) -> Result<(), Error> {
        let read = Read { pool: &batch.pool };
        let mut lines = vec![format!("resource {}", read.attributes(batch.resource)?)];
        for s in &batch.spans {
            let events: Result<Vec<String>, Error> = items(&batch.events, s.events)?
                .iter()
                .map(|e| {
                    Ok(format!(
                        "{} {} {}",
                        e.time_unix_nano,
                        read.quoted(e.name)?,
                        read.attributes(e.attributes)?
                    ))
                })
                .collect();
            let links: Result<Vec<String>, Error> = items(&batch.links, s.links)?
                .iter()
                .map(|l| {
                    Ok(format!(
                        "{} {} {}",
                        trace(&l.trace_id),
                        span_id(Some(l.span_id)),
                        read.attributes(l.attributes)?
                    ))
                })
                .collect();
            lines.push(format!(
                "span | trace={} | id={} | parent={} | name={} | kind={} | start={} | end={} | status={}:{} | scope={} | attributes={} | events=[{}] | links=[{}]",
                trace(&s.trace_id),
                span_id(Some(s.span_id)),
                span_id(s.parent_span_id),
                read.quoted(s.name)?,
                s.kind as u8,
                s.start_time_unix_nano,
                s.end_time_unix_nano,
                s.status as u8,
                read.quoted(s.status_message)?,
                read.scope(&s.scope)?,
                read.attributes(s.attributes)?,
                events?.join(";"),
                links?.join(";"),
            ));
        }
        append(lines)
    }

    fn export_metrics(batch: MetricBatch) -> Result<(), Error> {
        let read = Read { pool: &batch.pool };
        let mut lines = vec![format!("resource {}", read.attributes(batch.resource)?)];
        let numbers = |r: Range| -> Result<String, Error> {
            let points: Result<Vec<String>, Error> = items(&batch.number_points, r)?
                .iter()
                .map(|p| {
                    let value = match p.value {
                        Number::Int(i) => format!("{i}i"),
                        Number::Double(d) => format!("{d:?}"),
                    };
                    Ok(format!(
                        "{} {} {value} {}",
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        read.attributes(p.attributes)?
                    ))
                })
                .collect();
            Ok(points?.join(";"))
        };
        for m in &batch.metrics {
            let data = match m.data {
                MetricData::Sum(sum) => format!(
                    "sum {} monotonic={} points=[{}]",
                    temporality(sum.temporality),
                    sum.monotonic,
                    numbers(sum.points)?
                ),
                MetricData::Gauge(points) => format!("gauge points=[{}]", numbers(points)?),
                MetricData::Histogram(h) => {
                    let points: Result<Vec<String>, Error> =
                        items(&batch.histogram_points, h.points)?
                            .iter()
                            .map(|p| {
                                Ok(format!(
                                    "{} {} {} {:?} {:?} {:?} {:?} {:?} {}",
                                    p.start_time_unix_nano,
                                    p.time_unix_nano,
                                    p.count,
                                    p.sum,
                                    p.min,
                                    p.max,
                                    items(&batch.bounds, p.bounds)?,
                                    items(&batch.counts, p.counts)?,
                                    read.attributes(p.attributes)?
                                ))
                            })
                            .collect();
                    format!(
                        "histogram {} points=[{}]",
                        temporality(h.temporality),
                        points?.join(";")
                    )
                }
            };
            lines.push(format!(
                "metric | name={} | description={} | unit={} | scope={} | {data}",
                read.quoted(m.name)?,
                read.quoted(m.description)?,
                read.quoted(m.unit)?,
                read.scope(&m.scope)?,
            ));
        }
        append(lines)
    }

    fn flush() -> Result<(), Error> {
        Ok(())
    }

    fn shutdown() -> Result<(), Error> {
        HELD.with(|held| held.borrow_mut().take());
        Ok(())
    }
}

export!(Released);
