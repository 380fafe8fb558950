//! Plugins built against released WIT versions run on this host: a 0.1.1 plugin (typed
//! batches, one call per signal) through the host's adapter, reading every field it is given.

use wasmtel::model::{
    Event, HistogramPoint, KeyValue, Metric, MetricData, Number, NumberPoint, Record, Scope, Span,
    SpanEvent, SpanKind, SpanLink, StatusCode, Temporality, Value,
};
use wasmtel::plugin::Batch;
use wasmtel_tests::{RELEASED_0_1_1, fixture, output_text, wasmtel_command};

/// Renders values, records and the resource as the 0.1.1 guest writes them (see its doc), from
/// the records themselves.
fn value(v: &Value) -> String {
    match v {
        Value::Empty => "empty".into(),
        Value::String(s) => format!("{:?}", s.as_ref()),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => format!("{i}i"),
        Value::Double(d) => format!("{d:?}"),
        Value::Bytes(b) => format!(
            "x{}",
            b.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(value).collect::<Vec<_>>().join(",")
        ),
        Value::Map(entries) => attributes(entries),
    }
}

fn attributes(entries: &[KeyValue]) -> String {
    let entries: Vec<String> = entries
        .iter()
        .map(|kv| format!("{:?}={}", kv.key.as_ref(), value(&kv.value)))
        .collect();
    format!("{{{}}}", entries.join(","))
}

fn id(id: Option<u64>) -> String {
    id.map_or("-".into(), |id| format!("{id:016x}"))
}

fn number(n: Number) -> String {
    match n {
        Number::Int(i) => format!("{i}i"),
        Number::Double(d) => format!("{d:?}"),
    }
}

fn temporality(t: Temporality) -> &'static str {
    match t {
        Temporality::Delta => "delta",
        Temporality::Cumulative => "cumulative",
    }
}

fn line(record: &Record) -> String {
    let scope = |s: &Scope| format!("{:?}/{:?}", s.name, s.version);
    match record {
        Record::Resource(r) => format!("resource {}", attributes(r)),
        Record::Event(e) => format!(
            "event | time={} | name={:?} | severity={}/{:?} | body={} | trace={} | span={} | scope={} | attributes={}",
            e.time_unix_nano,
            e.name.as_ref(),
            e.severity_number,
            e.severity_text.as_ref(),
            value(&e.body),
            e.trace_id.map_or("-".into(), |t| format!("{t:032x}")),
            id(e.span_id),
            scope(&e.scope),
            attributes(&e.attributes),
        ),
        Record::Span(s) => {
            let events: Vec<String> = s
                .events
                .iter()
                .map(|e| {
                    format!(
                        "{} {:?} {}",
                        e.time_unix_nano,
                        e.name,
                        attributes(&e.attributes)
                    )
                })
                .collect();
            let links: Vec<String> = s
                .links
                .iter()
                .map(|l| {
                    format!(
                        "{:032x} {:016x} {}",
                        l.trace_id,
                        l.span_id,
                        attributes(&l.attributes)
                    )
                })
                .collect();
            format!(
                "span | trace={:032x} | id={:016x} | parent={} | name={:?} | kind={} | start={} | end={} | status={}:{:?} | scope={} | attributes={} | events=[{}] | links=[{}]",
                s.trace_id,
                s.span_id,
                id(s.parent_span_id),
                s.name,
                s.kind as u8,
                s.start_time_unix_nano,
                s.end_time_unix_nano,
                s.status as u8,
                s.status_message,
                scope(&s.scope),
                attributes(&s.attributes),
                events.join(";"),
                links.join(";"),
            )
        }
        Record::Metric(m) => {
            let numbers = |points: &[NumberPoint]| {
                points
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {} {} {}",
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                            number(p.value),
                            attributes(&p.attributes)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            };
            let data = match &m.data {
                MetricData::Sum {
                    points,
                    temporality: t,
                    monotonic,
                } => format!(
                    "sum {} monotonic={monotonic} points=[{}]",
                    temporality(*t),
                    numbers(points)
                ),
                MetricData::Gauge { points } => format!("gauge points=[{}]", numbers(points)),
                MetricData::Histogram {
                    points,
                    temporality: t,
                } => {
                    let points: Vec<String> = points
                        .iter()
                        .map(|p| {
                            format!(
                                "{} {} {} {:?} {:?} {:?} {:?} {:?} {}",
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                p.count,
                                p.sum,
                                p.min,
                                p.max,
                                p.bounds,
                                p.counts,
                                attributes(&p.attributes)
                            )
                        })
                        .collect();
                    format!(
                        "histogram {} points=[{}]",
                        temporality(*t),
                        points.join(";")
                    )
                }
            };
            format!(
                "metric | name={:?} | description={:?} | unit={:?} | scope={} | {data}",
                m.name,
                m.description,
                m.unit,
                scope(&m.scope)
            )
        }
    }
}

/// Records with every kind of value, nesting, span event and link, and point the data model has.
fn every_shape() -> Vec<Record> {
    let nested = Value::Array(vec![
        Value::Int(-3),
        Value::Map(vec![
            KeyValue::new("deep", Value::Array(vec![Value::Bool(false), Value::Empty])),
            KeyValue::new("raw", Value::Bytes(vec![0, 255, 16])),
        ]),
        Value::Double(f64::INFINITY),
        "é ✓".into(),
    ]);
    let scope = Scope {
        name: "codex".into(),
        version: "1.2.3".into(),
    };
    vec![
        Record::Event(Event {
            time_unix_nano: 1_700_000_000_000_000_001,
            name: "codex.api_request".into(),
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Value::Map(vec![KeyValue::new("status", 503)]),
            attributes: vec![
                KeyValue::new("nested", nested.clone()),
                KeyValue::new("ratio", 0.25),
            ],
            trace_id: Some(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            span_id: Some(0x1112_1314_1516_1718),
            scope: scope.clone(),
        }),
        Record::Event(Event::new("").body("plain log line")),
        Record::Span(Span {
            trace_id: u128::MAX - 1,
            span_id: 7,
            parent_span_id: Some(u64::MAX),
            name: "turn".into(),
            kind: SpanKind::Consumer,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: vec![KeyValue::new("nested", nested)],
            events: vec![
                SpanEvent {
                    time_unix_nano: 11,
                    name: "first".into(),
                    attributes: vec![KeyValue::new("n", 1)],
                },
                SpanEvent {
                    time_unix_nano: 12,
                    name: "second".into(),
                    attributes: Vec::new(),
                },
            ],
            links: vec![SpanLink {
                trace_id: 5,
                span_id: 6,
                attributes: vec![KeyValue::new("why", "retry")],
            }],
            status: StatusCode::Error,
            status_message: "it broke".into(),
            scope: scope.clone(),
        }),
        Record::Span(Span {
            trace_id: 9,
            span_id: 8,
            parent_span_id: None,
            name: "root".into(),
            kind: SpanKind::Internal,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: StatusCode::Ok,
            status_message: String::new(),
            scope: Scope::default(),
        }),
        Record::Metric(Metric {
            name: "codex.tool.call".into(),
            description: "tool calls".into(),
            unit: "{call}".into(),
            scope: scope.clone(),
            data: MetricData::Sum {
                points: vec![
                    NumberPoint {
                        attributes: vec![KeyValue::new("tool", "shell")],
                        start_time_unix_nano: 1,
                        time_unix_nano: 2,
                        value: Number::Int(4),
                    },
                    NumberPoint {
                        attributes: Vec::new(),
                        start_time_unix_nano: 1,
                        time_unix_nano: 2,
                        value: Number::Double(-0.5),
                    },
                ],
                temporality: Temporality::Cumulative,
                monotonic: true,
            },
        }),
        Record::Metric(Metric {
            name: "queue".into(),
            description: String::new(),
            unit: String::new(),
            scope: Scope::default(),
            data: MetricData::Gauge {
                points: vec![NumberPoint {
                    attributes: Vec::new(),
                    start_time_unix_nano: 0,
                    time_unix_nano: 3,
                    value: Number::Int(12),
                }],
            },
        }),
        Record::Metric(Metric {
            name: "codex.api_request.duration_ms".into(),
            description: String::new(),
            unit: "ms".into(),
            scope,
            data: MetricData::Histogram {
                points: vec![
                    HistogramPoint {
                        attributes: vec![KeyValue::new("status", 200)],
                        start_time_unix_nano: 1,
                        time_unix_nano: 2,
                        count: 3,
                        sum: 12.5,
                        min: Some(1.0),
                        max: Some(9.0),
                        bounds: vec![5.0, 10.0],
                        counts: vec![2, 1, 0],
                    },
                    HistogramPoint {
                        attributes: Vec::new(),
                        start_time_unix_nano: 1,
                        time_unix_nano: 2,
                        count: 0,
                        sum: 0.0,
                        min: None,
                        max: None,
                        bounds: Vec::new(),
                        counts: vec![0],
                    },
                ],
                temporality: Temporality::Delta,
            },
        }),
    ]
}

#[test]
fn a_0_1_plugin_reads_every_field_of_every_record_through_the_adapter() {
    let resource = vec![
        KeyValue::new("service.name", "codex"),
        KeyValue::new("host.arch", "x86_64"),
    ];
    let mut records = every_shape();
    let text = std::fs::read_to_string(fixture()).expect("fixture");
    records.extend(
        text.lines()
            .skip(1)
            .map(|l| wasmtel::jsonl::parse_line(l).expect("valid")),
    );
    let batch = Batch::of(&resource, &records);

    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(RELEASED_0_1_1).expect("guest");
    wasmtel_tests::export_once("released-0-1-1", &bytes, dir.path(), "{}", &batch);

    let written = std::fs::read_to_string(dir.path().join("records.txt")).expect("records.txt");
    let (resources, got): (Vec<&str>, Vec<&str>) =
        written.lines().partition(|l| l.starts_with("resource "));
    assert_eq!(
        resources,
        vec![line(&Record::Resource(resource)); 3],
        "a call per signal, each with the resource"
    );
    let rendered: Vec<String> = records.iter().map(line).collect();
    let mut expected: Vec<&str> = rendered.iter().map(String::as_str).collect();
    // One call per signal: events, then spans, then metrics, each in record order.
    let signal = |l: &&str| {
        ["event", "span ", "metric"]
            .iter()
            .position(|s| l.starts_with(s))
    };
    expected.sort_by_key(signal);
    assert_eq!(got.len(), expected.len(), "{written}");
    for (got, expected) in got.iter().zip(&expected) {
        assert_eq!(got, expected);
    }
}

#[test]
fn a_0_1_plugin_replays_the_fixture_and_inspect_says_it_is_adapted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("config.toml"),
        format!("[exporters.old]\nplugin = {RELEASED_0_1_1:?}\nsandbox = {{ dir = \"out\" }}\n"),
    )
    .expect("write");
    let output = wasmtel_command(tmp.path())
        .args(["replay", "--strict", "--config", "config.toml"])
        .arg(fixture())
        .env("WASMTEL_LOG", "info")
        .output()
        .expect("run wasmtel");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("0.1.1 plugin up for old"), "{text}");
    assert!(text.contains("583 exported, 0 dropped"), "{text}");
    let written = std::fs::read_to_string(tmp.path().join("out/records.txt")).expect("records.txt");
    let records = written
        .lines()
        .filter(|l| !l.starts_with("resource "))
        .count();
    assert_eq!(records, 583, "every record of the fixture, once");

    let output = wasmtel_command(tmp.path())
        .args(["inspect", RELEASED_0_1_1])
        .output()
        .expect("run wasmtel");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "targets:   wasmtel:exporter@0.1.1: this host implements {} and adapts 0.1 plugins",
            wasmtel_sdk::WIT_VERSION
        )),
        "{text}"
    );
    assert!(text.contains("wasmtel:exporter/files@0.1.1"), "{text}");
}
