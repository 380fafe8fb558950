//! Events per second through the Wasm `otlp` plugin (OTLP/HTTP protobuf) to a receiver on
//! 127.0.0.1, beside opentelemetry-otlp's native log exporter (the crate Codex exports with,
//! behind the SDK's batch processor) to the same kind of receiver, in the same run: each side
//! records `EVENTS` Codex-like events (a name and 10 attributes) and flushes; the time is from the
//! first record call until the receiver has every event. Both queues hold every event, so
//! neither drops. Rounds alternate between the two; the best round of each is reported, and
//! their ratio (above 1: wasmtel is faster).
//!
//! `cargo bench -p wasmtel-bench --bench otlp`

use std::time::{Duration, Instant};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use prost::Message;
use wasmtel::Telemetry;
use wasmtel_sdk::otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use wasmtel_tests::native_otlp::{Native, Transport};
use wasmtel_tests::receiver::Receiver;

const EVENTS: usize = 50_000;
const ROUNDS: usize = 5;

/// How many log records the receiver got.
fn received(receiver: &Receiver) -> usize {
    receiver
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/logs")
        .map(|r| {
            ExportLogsServiceRequest::decode(r.payload().as_slice())
                .expect("logs")
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum::<usize>()
        })
        .sum()
}

/// One round of wasmtel: the whole time, and the time spent in export calls.
fn wasmtel_round() -> (Duration, Duration) {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[telemetry]\nsession_id = \"bench\"\n[exporters.collector]\nplugin = \"otlp\"\n\
         signals = [\"events\"]\nconfig = {{ endpoint = \"http://{}\" }}\n\
         queue = {{ capacity = {} }}\n",
        receiver.addr,
        EVENTS * 2
    );
    let config = wasmtel::Config::parse(&text, std::path::Path::new("bench.toml"), dir.path())
        .expect("config");
    let telemetry = Telemetry::start(config).expect("start");
    // Warm: the instance is up and the connection open.
    telemetry.event("warm").emit();
    assert!(telemetry.flush(Duration::from_secs(30)));
    let started = Instant::now();
    for i in 0..EVENTS {
        telemetry
            .event("codex.tool_result")
            .attr("conversation.id", "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f")
            .attr("app.version", "0.144.0")
            .attr("auth_mode", "ChatGPT")
            .attr("originator", "codex_cli_rs")
            .attr("model", "gpt-5.1-codex")
            .attr("tool_name", "shell")
            .attr("call_id", "call_00_0_361b02")
            .attr("duration_ms", 31 + (i as i64 % 100))
            .attr("success", true)
            .attr("output_length", 1824)
            .emit();
    }
    assert!(telemetry.flush(Duration::from_secs(120)));
    let elapsed = started.elapsed();
    let stats = telemetry.shutdown().remove(0);
    assert_eq!(stats.dropped(), 0, "{stats}");
    assert_eq!(received(&receiver), EVENTS + 1);
    (elapsed, Duration::from_nanos(stats.export_nanos))
}

fn native_round() -> Duration {
    let receiver = Receiver::start();
    let native = Native::new(
        &format!("http://{}", receiver.addr),
        Transport::HttpProtobuf,
    );
    let processor = opentelemetry_sdk::logs::BatchLogProcessor::builder(native.log_exporter())
        .with_batch_config(
            opentelemetry_sdk::logs::BatchConfigBuilder::default()
                .with_max_queue_size(EVENTS * 2)
                .build(),
        )
        .build();
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build();
    let logger = provider.logger("codex_otel");
    let emit = |i: usize| {
        let mut record = logger.create_log_record();
        record.set_timestamp(std::time::SystemTime::now());
        record.set_event_name("codex.tool_result");
        record.set_severity_number(opentelemetry::logs::Severity::Info);
        record.set_severity_text("INFO");
        record.add_attributes([
            (
                "conversation.id",
                AnyValue::from("019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f"),
            ),
            ("app.version", AnyValue::from("0.144.0")),
            ("auth_mode", AnyValue::from("ChatGPT")),
            ("originator", AnyValue::from("codex_cli_rs")),
            ("model", AnyValue::from("gpt-5.1-codex")),
            ("tool_name", AnyValue::from("shell")),
            ("call_id", AnyValue::from("call_00_0_361b02")),
            ("duration_ms", AnyValue::from(31 + (i as i64 % 100))),
            ("success", AnyValue::from(true)),
            ("output_length", AnyValue::from(1824i64)),
        ]);
        logger.emit(record);
    };
    emit(0);
    provider.force_flush().expect("flush");
    let started = Instant::now();
    for i in 0..EVENTS {
        emit(i);
    }
    provider.force_flush().expect("flush");
    let elapsed = started.elapsed();
    provider.shutdown().expect("shutdown");
    assert_eq!(
        received(&receiver),
        EVENTS + 1,
        "the native side delivered every event"
    );
    elapsed
}

/// The plugin's encoding (a batch's views to opentelemetry-proto messages, then protobuf) run
/// natively on a batch of 512 of the events: µs per event.
fn native_encoding() -> f64 {
    use wasmtel_sdk::model::{Event, KeyValue, Record};
    let records: Vec<Record> = (0..512)
        .map(|i: i64| {
            let mut e = Event::new("codex.tool_result");
            e.time_unix_nano = 1_795_165_200_000_000_000;
            e.attributes = vec![
                KeyValue::new("conversation.id", "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f"),
                KeyValue::new("app.version", "0.144.0"),
                KeyValue::new("auth_mode", "ChatGPT"),
                KeyValue::new("originator", "codex_cli_rs"),
                KeyValue::new("model", "gpt-5.1-codex"),
                KeyValue::new("tool_name", "shell"),
                KeyValue::new("call_id", "call_00_0_361b02"),
                KeyValue::new("duration_ms", 31 + i % 100),
                KeyValue::new("success", true),
                KeyValue::new("output_length", 1824),
            ];
            Record::Event(e)
        })
        .collect();
    let laid = wasmtel_sdk::encode::batch(&[], &records);
    let batch = wasmtel_sdk::Batch::new(&laid).expect("a batch");
    let mut best = Duration::MAX;
    // As the plugin does: one set of requests, refilled by each batch.
    let mut requests = wasmtel_sdk::otlp::Requests::default();
    for _ in 0..50 {
        let started = Instant::now();
        requests.fill(&batch, |_| true);
        let bytes = requests.logs().expect("logs").encode_to_vec();
        std::hint::black_box(bytes);
        best = best.min(started.elapsed());
    }
    best.as_secs_f64() * 1e6 / 512.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("otlp: benchmark");
        return;
    }
    println!(
        "the otlp plugin's encoding run natively: {:.2} µs per event (batches of 512)",
        native_encoding()
    );
    let (mut ours, mut theirs) = (Duration::MAX, Duration::MAX);
    for round in 0..ROUNDS {
        let (w, exporting) = wasmtel_round();
        let n = native_round();
        println!(
            "round {round}: wasmtel {:.0} events/s ({:.2} µs per event in export calls), \
             opentelemetry-otlp {:.0} events/s",
            EVENTS as f64 / w.as_secs_f64(),
            exporting.as_secs_f64() * 1e6 / EVENTS as f64,
            EVENTS as f64 / n.as_secs_f64()
        );
        ours = ours.min(w);
        theirs = theirs.min(n);
    }
    let (ours, theirs) = (
        EVENTS as f64 / ours.as_secs_f64(),
        EVENTS as f64 / theirs.as_secs_f64(),
    );
    println!(
        "otlp export, {EVENTS} events, best of {ROUNDS}: wasmtel (Wasm plugin) {ours:.0} events/s, \
         opentelemetry-otlp (native) {theirs:.0} events/s, ratio {:.2}",
        ours / theirs
    );
}
