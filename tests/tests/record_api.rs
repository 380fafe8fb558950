//! The record API end to end: events, instruments and spans recorded by an application come out
//! of the real file-jsonl component as the record format says.

use wasmtel::jsonl::parse_line;
use wasmtel::model::Record;
use wasmtel::{
    Event, KeyValue, MetricData, Number, SpanKind, StatusCode, Telemetry, Temporality, Value,
};
use wasmtel_tests::{config, only_jsonl};

fn recorded(text: &str) -> (Vec<KeyValue>, Vec<Record>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let telemetry = Telemetry::builder(config(tmp.path(), text))
        .resource(vec![KeyValue::new("service.name", "codex_cli_rs")])
        .start()
        .expect("start");
    telemetry.emit(
        Event::new("codex.user_prompt")
            .attr("prompt_length", 42)
            .body("hi"),
    );
    let calls = telemetry
        .counter("codex.tool.call")
        .with_description("Tool calls");
    calls.add(1, &[KeyValue::new("tool", "shell")]);
    calls.add(2, &[KeyValue::new("tool", "shell")]);
    calls.add(5, &[KeyValue::new("tool", "apply_patch")]);
    let latency = telemetry
        .histogram("codex.api_request.duration_ms")
        .with_unit("ms")
        .with_bounds(&[100.0, f64::INFINITY, 10.0, f64::NAN]);
    for ms in [5.0, 50.0, 500.0] {
        latency.record(ms, &[]);
    }
    telemetry.gauge("codex.turn.memory").record(3.5, &[]);
    telemetry.up_down_counter("running").add(-2, &[]);
    let mut turn = telemetry
        .span("turn")
        .kind(SpanKind::Server)
        .attr("turn.index", 0)
        .start();
    let child = telemetry.span("tool_call").parent(turn.context()).start();
    let child_context = child.context();
    let output = String::from("ok");
    telemetry
        .event("codex.tool_result")
        .attr("tool_name", "shell")
        .attr("output", &output)
        .severity(13, "WARN")
        .in_span(child_context)
        .emit();
    child.end();
    turn.add_event("compacted", &[KeyValue::new("type", "local")]);
    turn.set_status(StatusCode::Error, "interrupted");
    let turn_context = turn.context();
    drop(turn);
    assert!(telemetry.flush(std::time::Duration::from_secs(10)));
    let stats = telemetry.shutdown();
    assert_eq!(stats[0].dropped(), 0, "{}", stats[0]);
    let text = std::fs::read_to_string(only_jsonl(&tmp.path().join("logs"))).expect("output");
    let records: Vec<Record> = text
        .lines()
        .map(|l| parse_line(l).expect("valid line"))
        .collect();
    let Record::Resource(resource) = &records[0] else {
        panic!("a resource first: {text}")
    };
    let spans: Vec<_> = records.iter().filter_map(Record::as_span).collect();
    assert_eq!(spans.len(), 2);
    let (child, turn) = (spans[0], spans[1]);
    assert_eq!(
        (child.name.as_str(), child.span_id, child.trace_id),
        ("tool_call", child_context.span_id, turn_context.trace_id)
    );
    assert_eq!(child.parent_span_id, Some(turn_context.span_id));
    assert_eq!(
        (turn.parent_span_id, turn.kind, turn.status),
        (None, SpanKind::Server, StatusCode::Error)
    );
    assert_eq!(
        (turn.status_message.as_str(), turn.events[0].name.as_str()),
        ("interrupted", "compacted")
    );
    assert!(
        turn.start_time_unix_nano <= child.start_time_unix_nano
            && child.end_time_unix_nano <= turn.end_time_unix_nano
    );
    (resource.clone(), records)
}

#[test]
fn events_instruments_and_spans_come_out_as_recorded() {
    let (resource, records) = recorded("[telemetry]\nsession_id = \"api\"\n");
    assert_eq!(
        resource,
        vec![KeyValue::new("service.name", "codex_cli_rs")]
    );
    let event = records.iter().find_map(Record::as_event).expect("an event");
    assert_eq!(
        (&*event.name, event.severity_number, &event.body),
        ("codex.user_prompt", 9, &Value::String("hi".into()))
    );
    assert!(
        event.time_unix_nano > 0,
        "stamped with the time of the call"
    );
    let built = records.iter().filter_map(Record::as_event).nth(1);
    let built = built.expect("the event built at its record call");
    let spans: Vec<_> = records.iter().filter_map(Record::as_span).collect();
    assert_eq!(
        (&*built.name, built.severity_number, &*built.severity_text),
        ("codex.tool_result", 13, "WARN")
    );
    assert_eq!(
        built.attributes,
        vec![
            KeyValue::new("tool_name", "shell"),
            KeyValue::new("output", "ok")
        ]
    );
    assert_eq!(
        (built.trace_id, built.span_id),
        (Some(spans[0].trace_id), Some(spans[0].span_id)),
        "in the tool call's span"
    );
    let metric = |name: &str| {
        records
            .iter()
            .find_map(|r| match r {
                Record::Metric(m) if m.name == name => Some(m.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let calls = metric("codex.tool.call");
    assert_eq!(calls.description, "Tool calls");
    let MetricData::Sum {
        points,
        temporality: Temporality::Delta,
        monotonic: true,
    } = &calls.data
    else {
        panic!("{calls:?}")
    };
    let values: Vec<(Value, Number)> = points
        .iter()
        .map(|p| (p.attributes[0].value.clone(), p.value))
        .collect();
    assert_eq!(
        values,
        vec![
            (Value::from("shell"), Number::Int(3)),
            (Value::from("apply_patch"), Number::Int(5))
        ]
    );
    let latency = metric("codex.api_request.duration_ms");
    let MetricData::Histogram { points, .. } = &latency.data else {
        panic!("{latency:?}")
    };
    assert_eq!(
        (latency.unit.as_str(), &points[0].bounds, &points[0].counts),
        ("ms", &vec![10.0, 100.0], &vec![1, 1, 1])
    );
    assert_eq!(
        (points[0].count, points[0].sum, points[0].min, points[0].max),
        (3, 555.0, Some(5.0), Some(500.0))
    );
    let MetricData::Gauge { points } = &metric("codex.turn.memory").data else {
        panic!()
    };
    assert_eq!(points[0].value, Number::Double(3.5));
    let MetricData::Sum {
        points,
        monotonic: false,
        ..
    } = &metric("running").data
    else {
        panic!()
    };
    assert_eq!(points[0].value, Number::Int(-2));
}

/// A value whose conversion fails the test: an event that no exporter takes must not be built.
struct Unwanted;

impl From<Unwanted> for Value {
    fn from(_: Unwanted) -> Value {
        panic!("an event that no exporter takes was built")
    }
}

impl wasmtel::AttrValue for Unwanted {
    fn into_value(self) -> Value {
        self.into()
    }
}

#[test]
fn an_event_that_no_exporter_takes_is_never_built() {
    for text in [
        "[telemetry]\nenabled = false\n",
        "[exporters.session]\nplugin = \"file-jsonl\"\nsignals = [\"metrics\"]\n",
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let telemetry = Telemetry::start(config(tmp.path(), text)).expect("start");
        telemetry
            .event("unwanted")
            .attr("value", Unwanted)
            .body(Unwanted)
            .emit();
        for s in telemetry.shutdown() {
            assert_eq!((s.records_exported, s.dropped()), (0, 0), "{text}: {s}");
        }
    }
}

#[test]
fn signals_and_temporality_follow_the_config() {
    let (_, records) = recorded(
        "[exporters.session]\nplugin = \"file-jsonl\"\nsignals = [\"metrics\", \"spans\"]\nmetrics = { temporality = \"cumulative\" }\n",
    );
    assert!(
        !records.iter().any(|r| matches!(r, Record::Event(_))),
        "events were not asked for"
    );
    let temporalities: Vec<Temporality> = records
        .iter()
        .filter_map(Record::as_metric)
        .filter_map(|m| match &m.data {
            MetricData::Sum { temporality, .. } | MetricData::Histogram { temporality, .. } => {
                Some(*temporality)
            }
            MetricData::Gauge { .. } => None,
        })
        .collect();
    assert!(
        temporalities.len() >= 3,
        "the sums and the histogram were written: {records:?}"
    );
    assert!(
        temporalities.iter().all(|t| *t == Temporality::Cumulative),
        "{temporalities:?}"
    );
    assert!(
        records.iter().any(|r| matches!(r, Record::Span(_))),
        "spans were asked for"
    );
}

#[test]
fn batches_are_cut_at_their_byte_cap() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(
        tmp.path(),
        "[exporters.session]\nplugin = \"file-jsonl\"\nqueue = { max_batch = 100, max_batch_bytes = 3000 }\n",
    );
    let telemetry = Telemetry::builder(config)
        .deterministic_batching()
        .start()
        .expect("start");
    for i in 0..10 {
        telemetry.record_blocking(Record::Event(
            Event::new("big")
                .attr("output", "x".repeat(1000))
                .attr("i", i)
                .at(1),
        ));
    }
    let stats = telemetry.shutdown().remove(0);
    // Each event takes about 1.1 kB: two fit under 3000 bytes, a third would not.
    assert_eq!(
        (stats.records_exported, stats.batches_ok),
        (10, 5),
        "{stats}"
    );
}
