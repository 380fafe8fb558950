//! Replays are fixed points, for generated inputs: random events, spans and changes of resource
//! (some repeated), random values (doubles of every exponent among them), random batch limits.
//! Replaying file-jsonl's output N gives output N+1 byte for byte, and a repeated resource line
//! in the input changes nothing.

use std::io::BufReader;
use std::path::Path;

use proptest::prelude::*;
use wasmtel::model::{KeyValue, Record, Span, SpanKind, StatusCode, Value};
use wasmtel::{Event, Telemetry};
use wasmtel_tests::{config, diff, only_jsonl};

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Double),
        "[a-z \"\\\\é]{0,12}".prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(("[a-z]{1,6}", value()), 0..6)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
}

fn record() -> impl Strategy<Value = Record> {
    let time = 0..4_000_000_000_000_000_000u64;
    prop_oneof![
        4 => ("[a-z.]{1,12}", attributes(), time.clone())
            .prop_map(|(name, attributes, t)| Record::Event(Event {
                attributes,
                ..Event::new(name).at(t)
            })),
        2 => ("[a-z]{1,8}", attributes(), any::<u128>(), 1..u64::MAX, time.clone())
            .prop_map(|(name, attributes, trace_id, span_id, t)| Record::Span(Span {
                trace_id: trace_id.max(1),
                span_id,
                parent_span_id: None,
                name,
                kind: SpanKind::Internal,
                start_time_unix_nano: t,
                end_time_unix_nano: t.saturating_add(1000),
                attributes,
                events: Vec::new(),
                links: Vec::new(),
                status: StatusCode::Unset,
                status_message: String::new(),
                scope: Default::default(),
            })),
        1 => (0..2i64).prop_map(|n| Record::Resource(vec![KeyValue::new("service.instance", n)])),
    ]
}

/// The config of a file-jsonl exporter writing into `dir/out` with these batch limits.
fn limits(dir: &Path, max_batch: usize, max_batch_bytes: usize) -> wasmtel::Config {
    config(
        dir,
        &format!(
            "[telemetry]\nsession_id = \"p\"\ndir = \"out\"\n\
             [exporters.session]\nplugin = \"file-jsonl\"\n\
             queue = {{ max_batch = {max_batch}, max_batch_bytes = {max_batch_bytes} }}\n"
        ),
    )
}

/// Replays `input` (record-format text) with `config`; returns what file-jsonl wrote.
fn replay_text(dir: &Path, config: wasmtel::Config, input: &str) -> String {
    let open = || Ok(BufReader::new(input.as_bytes()));
    let summary = wasmtel::replay("input", open, Telemetry::builder(config), |_, _| {})
        .unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(summary.exporters[0].dropped(), 0, "{summary}");
    std::fs::read_to_string(only_jsonl(&dir.join("out"))).expect("output")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replaying_the_output_reproduces_it(
        records in prop::collection::vec(record(), 1..60),
        max_batch in 1..20usize,
        max_batch_bytes in 100..4000usize,
        repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        // A file is written once a record is: resources alone write none.
        prop_assume!(records.iter().any(|r| !matches!(r, Record::Resource(_))));
        // Output 0: the records, recorded.
        let zero = tempfile::tempdir().expect("tempdir");
        let telemetry = Telemetry::builder(limits(zero.path(), max_batch, max_batch_bytes))
            .deterministic_batching()
            .start()
            .expect("start");
        for record in records {
            telemetry.record_blocking(record);
        }
        telemetry.shutdown();
        let out0 = std::fs::read_to_string(only_jsonl(&zero.path().join("out"))).expect("out");

        // The input: output 0 with some resource lines repeated where they stand.
        let mut lines: Vec<&str> = out0.lines().collect();
        for at in &repeats {
            let i = at.index(lines.len());
            if lines[i].starts_with(r#"{"type":"resource""#) {
                lines.insert(i, lines[i]);
            }
        }
        let input = lines.join("\n") + "\n";

        let one = tempfile::tempdir().expect("tempdir");
        let out1 = replay_text(one.path(), limits(one.path(), max_batch, max_batch_bytes), &input);
        prop_assert!(out1 == out0, "a replay reproduces its input:\n{}", diff(&out0, &out1));
        let two = tempfile::tempdir().expect("tempdir");
        let out2 = replay_text(two.path(), limits(two.path(), max_batch, max_batch_bytes), &out1);
        prop_assert!(out2 == out1, "output N+1 is output N:\n{}", diff(&out1, &out2));
    }
}

#[test]
fn a_double_keeps_its_exact_value_through_replays() {
    let line = r#"{"type":"event","time":"2026-11-20T09:00:00.000000000Z","name":"e","attributes":{"x":7.370437700706685e208}}"#;
    let one = tempfile::tempdir().expect("tempdir");
    let out1 = replay_text(
        one.path(),
        limits(one.path(), 512, 1 << 20),
        &format!("{line}\n"),
    );
    let two = tempfile::tempdir().expect("tempdir");
    let out2 = replay_text(two.path(), limits(two.path(), 512, 1 << 20), &out1);
    assert_eq!(out1, out2);
    let Record::Event(event) = out1
        .lines()
        .map(|l| wasmtel::jsonl::parse_line(l).expect("valid"))
        .find(|r| matches!(r, Record::Event(_)))
        .expect("the event")
    else {
        unreachable!()
    };
    assert_eq!(
        event.attributes[0].value,
        Value::Double(7.370437700706685e208)
    );
}
