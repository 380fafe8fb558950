//! Metric measurements beside the OpenTelemetry SDK's, in the same run: a counter add and a
//! histogram record, each with two attributes, into a running pipeline (wasmtel: file-jsonl
//! writing to /dev/null, collecting every second; the SDK: a meter provider with a reader). Both
//! aggregate at the call, so what is measured is the call itself: finding the attribute set's
//! point and folding the value in.
//!
//! wasmtel is measured twice: with its attributes built at the call, as most call sites write
//! them, and built once beforehand. The SDK's attributes of `&'static str` cost nothing to
//! build. Codex's metrics client (`wasmtel::codex::MetricsClient::counter`, tags as text, checked
//! by Codex's rules at every call, with the session's six tags added) is measured beside the
//! SDK's counter given the same eight attributes.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use wasmtel::codex::{MetricsClient, SessionTags};
use wasmtel::model::KeyValue;
use wasmtel::{Config, Telemetry};

/// wasmtel with one exporter, file-jsonl into /dev/null, collecting metrics every second.
fn wasmtel() -> Telemetry {
    let text = "[exporters.null]\nplugin = \"file-jsonl\"\n\
                config = { file = \"null\", max_total_bytes = 0 }\n\
                sandbox = { dir = \"/dev\" }\nmetrics = { interval_ms = 1000 }\n";
    let config = Config::parse(text, Path::new("bench.toml"), Path::new(".")).expect("config");
    Telemetry::start(config).expect("start")
}

/// The OpenTelemetry SDK's meter provider, with a reader (which collects only when asked).
fn sdk() -> SdkMeterProvider {
    SdkMeterProvider::builder()
        .with_reader(ManualReader::builder().build())
        .build()
}

/// Two attributes, with a few values each, as a call site sets them.
fn attributes(i: u64) -> [KeyValue; 2] {
    [
        KeyValue::new("tool", ["shell", "apply_patch", "read"][(i % 3) as usize]),
        KeyValue::new("success", i.is_multiple_of(2)),
    ]
}

fn sdk_attributes(i: u64) -> [opentelemetry::KeyValue; 2] {
    [
        opentelemetry::KeyValue::new("tool", ["shell", "apply_patch", "read"][(i % 3) as usize]),
        opentelemetry::KeyValue::new("success", i.is_multiple_of(2)),
    ]
}

/// Measures, in the group `name`, the SDK's call `sdk` beside wasmtel's `wasmtel`, each given
/// the measurement's number and its attributes: built at the call, and (for wasmtel) built once.
fn compare(
    c: &mut Criterion,
    name: &str,
    sdk: impl Fn(u64, &[opentelemetry::KeyValue]),
    wasmtel: impl Fn(u64, &[KeyValue]),
) {
    let built: Vec<_> = (0..6).map(attributes).collect();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    group.bench_function("opentelemetry_sdk (peer)", |b| {
        b.iter(|| {
            i += 1;
            sdk(i, &sdk_attributes(i));
        })
    });
    group.bench_function("wasmtel", |b| {
        b.iter(|| {
            i += 1;
            wasmtel(i, &attributes(i));
        })
    });
    group.bench_function("wasmtel, attributes built once", |b| {
        b.iter(|| {
            i += 1;
            wasmtel(i, black_box(&built[(i % 6) as usize]));
        })
    });
    group.finish();
    ratio(name, &|i| sdk(i, &sdk_attributes(i)), &|i| {
        wasmtel(i, &attributes(i))
    });
}

/// Prints the time per call of `sdk` and `wasmtel`, and their ratio: the best of eight rounds
/// of 100,000 calls of each, taken in turn (what the machine's other load took least from).
fn ratio(name: &str, sdk: &dyn Fn(u64), wasmtel: &dyn Fn(u64)) {
    if std::env::args().any(|a| a == "--profile-time") {
        return;
    }
    const CALLS: u64 = 100_000;
    let time = |f: &dyn Fn(u64)| {
        let start = Instant::now();
        for i in 0..CALLS {
            f(i);
        }
        start.elapsed().as_secs_f64() * 1e9 / CALLS as f64
    };
    let (mut theirs, mut ours) = (f64::MAX, f64::MAX);
    for _ in 0..8 {
        theirs = theirs.min(time(sdk));
        ours = ours.min(time(wasmtel));
    }
    println!(
        "\n{name}, best of 8 rounds of {CALLS} calls each, taken in turn: \
         opentelemetry_sdk {theirs:.1} ns, wasmtel {ours:.1} ns, wasmtel/sdk = {:.2}\n",
        ours / theirs
    );
}

fn counter_add(c: &mut Criterion) {
    let (telemetry, provider) = (wasmtel(), sdk());
    let counter = telemetry.counter("codex.tool.call");
    let sdk_counter = provider
        .meter("bench")
        .u64_counter("codex.tool.call")
        .build();
    compare(
        c,
        "counter add, 2 attributes",
        |_, attributes| sdk_counter.add(1, attributes),
        |_, attributes| counter.add(1, attributes),
    );
    finish(telemetry, provider);
}

fn histogram_record(c: &mut Criterion) {
    let (telemetry, provider) = (wasmtel(), sdk());
    let histogram = telemetry.histogram("codex.tool.call.duration_ms");
    let sdk_histogram = provider
        .meter("bench")
        .f64_histogram("codex.tool.call.duration_ms")
        .build();
    compare(
        c,
        "histogram record, 2 attributes",
        |i, attributes| sdk_histogram.record((i % 700) as f64, attributes),
        |i, attributes| histogram.record((i % 700) as f64, attributes),
    );
    finish(telemetry, provider);
}

fn codex_counter(c: &mut Criterion) {
    let (telemetry, provider) = (wasmtel(), sdk());
    let client = MetricsClient::new(&telemetry)
        .with_session_tags(SessionTags {
            auth_mode: Some("Chatgpt".into()),
            session_source: "cli".into(),
            originator: "codex_cli_rs".into(),
            service_name: Some("codex".into()),
            model: "gpt-5.1-codex".into(),
            app_version: "0.144.0".into(),
        })
        .expect("session tags");
    let sdk_counter = provider
        .meter("codex")
        .u64_counter("codex.tool.call")
        .build();
    let mut group = c.benchmark_group("Codex's counter, 2 tags and 6 session tags");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    let tool = |i: u64| ["shell", "apply_patch", "read"][(i % 3) as usize];
    let success = |i: u64| if i.is_multiple_of(2) { "true" } else { "false" };
    let theirs = |i: u64| {
        use opentelemetry::KeyValue as Kv;
        sdk_counter.add(
            1,
            &[
                Kv::new("auth_mode", "Chatgpt"),
                Kv::new("session_source", "cli"),
                Kv::new("originator", "codex_cli_rs"),
                Kv::new("service_name", "codex"),
                Kv::new("model", "gpt-5.1-codex"),
                Kv::new("app.version", "0.144.0"),
                Kv::new("tool", tool(i)),
                Kv::new("success", success(i)),
            ],
        );
    };
    let ours = |i: u64| {
        client
            .counter(
                "codex.tool.call",
                1,
                &[("tool", tool(i)), ("success", success(i))],
            )
            .expect("valid");
    };
    group.bench_function("opentelemetry_sdk Counter::add (peer)", |b| {
        b.iter(|| {
            i += 1;
            theirs(i);
        })
    });
    group.bench_function("wasmtel::codex::MetricsClient::counter", |b| {
        b.iter(|| {
            i += 1;
            ours(i);
        })
    });
    group.finish();
    ratio("Codex's counter", &theirs, &ours);
    finish(telemetry, provider);
}

/// Shuts both down, and shows that wasmtel exported what it collected without a drop.
fn finish(telemetry: Telemetry, provider: SdkMeterProvider) {
    provider.shutdown().expect("the SDK shuts down");
    for s in telemetry.shutdown() {
        assert_eq!(s.dropped(), 0, "{s}");
        println!("wasmtel's exporter: {s}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = counter_add, histogram_record, codex_counter
}
criterion_main!(benches);
