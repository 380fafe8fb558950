//! The record call beside OpenTelemetry's SDK, in the same run: a Codex `tool_result` event of
//! 15 attributes, built at the call from a session's metadata and the tool call's values, then
//! recorded, each as its call site writes it: wasmtel takes borrowed strings (copied into the
//! event's layout), the SDK's log record owns a copy of every string that is not a literal.
//!
//! - wasmtel: `Telemetry::event` into one exporter, file-jsonl writing to /dev/null.
//! - The SDK (`opentelemetry_sdk` 0.31): `Logger::emit` through a `BatchLogProcessor` into an
//!   exporter that does nothing.
//!
//! - Codex's session facade: `SessionTelemetry::tool_result` (the session's metadata stamped,
//!   its timestamp formatted, the output cut at 2048 bytes) into an exporter of events only, so
//!   that it records the event alone, as the SDK's call does.
//!
//! Only accepted records are measured: the calls are timed in rounds smaller than both queues,
//! each followed (untimed) by a flush, and the run fails if a record was dropped. A record call
//! with telemetry disabled (`[telemetry] enabled = false`) is measured too, for both.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, SdkLoggerProvider,
};
use wasmtel::codex::{MetricsClient, SessionMetadata, SessionTelemetry, ToolResult};
use wasmtel::{Config, Event, Telemetry};

/// Records per timed round: well within both queues.
const ROUND: u64 = 8192;
const QUEUE: usize = 4 * ROUND as usize;

/// What a Codex session knows of itself, held as a call site holds it.
struct Session {
    conversation_id: String,
    app_version: String,
    auth_mode: String,
    terminal: String,
    model: String,
}

/// One tool call's values, borrowed at the call.
struct ToolCall<'a> {
    call_id: &'a str,
    arguments: &'a str,
    output: &'a str,
    duration_ms: u64,
    success: bool,
}

fn session() -> Session {
    Session {
        conversation_id: "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f".into(),
        app_version: "0.144.0".into(),
        auth_mode: "ChatGPT".into(),
        terminal: "xterm-256color".into(),
        model: "gpt-5.1-codex".into(),
    }
}

const CALL: ToolCall<'static> = ToolCall {
    call_id: "call_00_0_361b02",
    arguments: "{\"input\":\"*** Begin Patch\\n*** Update File: src/lib.rs\\n*** End Patch\"}",
    output: "ok: 42 passed; 0 failed",
    duration_ms: 30,
    success: true,
};

/// The attributes of a `tool_result`, added to `$event` (wasmtel's event or its builder); `$own`
/// makes the call's borrowed strings values (copying them, as a call site must when they are not
/// literals).
macro_rules! tool_result {
    ($event:expr, $session:expr, $call:expr) => {
        tool_result!($event, $session, $call, str::to_string)
    };
    ($event:expr, $session:expr, $call:expr, $own:expr) => {
        $event
            .attr("event.timestamp", $own("2026-11-20T09:00:02.989Z"))
            .attr("conversation.id", &$session.conversation_id)
            .attr("app.version", &$session.app_version)
            .attr("auth_mode", &$session.auth_mode)
            .attr("originator", "codex_cli_rs")
            .attr("terminal.type", &$session.terminal)
            .attr("model", &$session.model)
            .attr("slug", &$session.model)
            .attr("tool_name", "apply_patch")
            .attr("call_id", $own($call.call_id))
            .attr("arguments", $own($call.arguments))
            .attr("duration_ms", $call.duration_ms)
            .attr("success", if $call.success { "true" } else { "false" })
            .attr("output", $own($call.output))
            .attr("output_truncated", false)
    };
}

/// Codex's session facade over `telemetry`, with this session's metadata.
fn facade(session: &Session, telemetry: &Telemetry) -> SessionTelemetry {
    SessionTelemetry::new(
        telemetry,
        SessionMetadata {
            conversation_id: session.conversation_id.clone(),
            app_version: session.app_version.clone(),
            auth_mode: Some(session.auth_mode.clone()),
            originator: "codex_cli_rs".into(),
            account_id: None,
            account_email: None,
            terminal_type: session.terminal.clone(),
            model: session.model.clone(),
            slug: session.model.clone(),
        },
        MetricsClient::new(telemetry),
    )
}

/// The facade's `tool_result` of `call`.
fn facade_record(facade: &SessionTelemetry, call: &ToolCall) {
    facade.tool_result(&ToolResult {
        tool_name: "apply_patch",
        call_id: call.call_id,
        arguments: call.arguments,
        duration: Duration::from_millis(call.duration_ms),
        success: call.success,
        output: call.output,
        mcp_server: None,
    });
}

impl Session {
    fn wasmtel_event(&self, call: &ToolCall) -> Event {
        tool_result!(Event::new("codex.tool_result"), self, call)
    }

    fn wasmtel_record(&self, telemetry: &Telemetry, call: &ToolCall) {
        let borrowed = |s| s;
        tool_result!(telemetry.event("codex.tool_result"), self, call, borrowed).emit();
    }

    fn sdk_emit(&self, logger: &opentelemetry_sdk::logs::SdkLogger, call: &ToolCall) {
        let mut record = logger.create_log_record();
        record.set_event_name("codex.tool_result");
        record.set_severity_number(opentelemetry::logs::Severity::Info);
        record.set_severity_text("INFO");
        record.set_timestamp(std::time::SystemTime::now());
        let s = |v: &String| AnyValue::from(v.clone());
        record.add_attributes([
            (
                "event.timestamp",
                AnyValue::from("2026-11-20T09:00:02.989Z".to_string()),
            ),
            ("conversation.id", s(&self.conversation_id)),
            ("app.version", s(&self.app_version)),
            ("auth_mode", s(&self.auth_mode)),
            ("originator", AnyValue::from("codex_cli_rs")),
            ("terminal.type", s(&self.terminal)),
            ("model", s(&self.model)),
            ("slug", s(&self.model)),
            ("tool_name", AnyValue::from("apply_patch")),
            ("call_id", AnyValue::from(call.call_id.to_string())),
            ("arguments", AnyValue::from(call.arguments.to_string())),
            ("duration_ms", AnyValue::from(call.duration_ms as i64)),
            (
                "success",
                AnyValue::from(if call.success { "true" } else { "false" }),
            ),
            ("output", AnyValue::from(call.output.to_string())),
            ("output_truncated", AnyValue::from(false)),
        ]);
        logger.emit(record);
    }
}

/// An exporter that does nothing.
#[derive(Debug)]
struct Nothing;

impl LogExporter for Nothing {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        black_box(batch.iter().count());
        Ok(())
    }
}

fn wasmtel(enabled: bool) -> Telemetry {
    wasmtel_of(enabled, "[\"events\", \"spans\", \"metrics\"]")
}

/// wasmtel with one exporter taking `signals`, file-jsonl into /dev/null.
fn wasmtel_of(enabled: bool, signals: &str) -> Telemetry {
    let text = format!(
        "[telemetry]\nenabled = {enabled}\n\
         [exporters.null]\nplugin = \"file-jsonl\"\nsignals = {signals}\n\
         config = {{ file = \"null\", max_total_bytes = 0 }}\n\
         sandbox = {{ dir = \"/dev\" }}\nqueue = {{ capacity = {QUEUE} }}\n"
    );
    let config = Config::parse(&text, Path::new("bench.toml"), Path::new(".")).expect("config");
    Telemetry::start(config).expect("start")
}

fn sdk() -> SdkLoggerProvider {
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(QUEUE)
        .build();
    SdkLoggerProvider::builder()
        .with_log_processor(
            BatchLogProcessor::builder(Nothing)
                .with_batch_config(config)
                .build(),
        )
        .build()
}

/// `iters` calls of `record`, timed in rounds of [`ROUND`], each round followed by `flush`.
fn in_rounds(iters: u64, mut record: impl FnMut(), mut flush: impl FnMut()) -> Duration {
    let (mut total, mut left) = (Duration::ZERO, iters);
    while left > 0 {
        let n = left.min(ROUND);
        let start = Instant::now();
        for _ in 0..n {
            record();
        }
        total += start.elapsed();
        flush();
        left -= n;
    }
    total
}

fn record_call(c: &mut Criterion) {
    let session = session();
    let (telemetry, provider) = (wasmtel(true), sdk());
    let logger = provider.logger("codex_otel");
    let events = wasmtel_of(true, "[\"events\"]");
    let codex = facade(&session, &events);
    // `n` calls of each, in rounds.
    let sdk_rounds = |n| {
        in_rounds(
            n,
            || session.sdk_emit(&logger, &CALL),
            || provider.force_flush().expect("the SDK flushes"),
        )
    };
    let wasmtel_rounds = |n| {
        in_rounds(
            n,
            || session.wasmtel_record(&telemetry, &CALL),
            || assert!(telemetry.flush(Duration::from_secs(30)), "flushed"),
        )
    };
    let codex_rounds = |n| {
        in_rounds(
            n,
            || facade_record(&codex, &CALL),
            || assert!(events.flush(Duration::from_secs(30)), "flushed"),
        )
    };
    let mut group =
        c.benchmark_group("record a tool_result event (15 attributes), building included");
    group.throughput(Throughput::Elements(1));
    group.bench_function("opentelemetry_sdk Logger::emit (peer)", |b| {
        b.iter_custom(sdk_rounds)
    });
    group.bench_function("wasmtel", |b| b.iter_custom(wasmtel_rounds));
    group.bench_function(
        "build an Event alone (strings copied, for `Telemetry::emit`)",
        |b| b.iter(|| black_box(session.wasmtel_event(&CALL))),
    );
    let disabled = wasmtel(false);
    group.bench_function("wasmtel, telemetry disabled", |b| {
        b.iter(|| session.wasmtel_record(&disabled, black_box(&CALL)))
    });
    group.bench_function("codex facade", |b| b.iter_custom(codex_rounds));
    let codex_disabled = facade(&session, &disabled);
    group.bench_function("codex facade, telemetry disabled", |b| {
        b.iter(|| facade_record(&codex_disabled, black_box(&CALL)))
    });
    group.finish();

    // The ratio, from rounds of each in turn: the best round of each (what the machine's other
    // load took least from).
    if !std::env::args().any(|a| a == "--profile-time") {
        let best = |rounds: &dyn Fn(u64) -> Duration| {
            (0..8)
                .map(|_| rounds(8 * ROUND).as_secs_f64() / (8 * ROUND) as f64)
                .fold(f64::MAX, f64::min)
        };
        let (mut sdk, mut ours, mut codex_ours) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..4 {
            codex_ours = codex_ours.min(best(&codex_rounds));
            sdk = sdk.min(best(&sdk_rounds));
            ours = ours.min(best(&wasmtel_rounds));
        }
        println!(
            "\nrecord a tool_result event, best of 32 rounds of {} calls each: \
             opentelemetry_sdk {:.0} ns, wasmtel {:.0} ns, wasmtel/sdk = {:.2} (aim: 0.20 or less)\n",
            8 * ROUND,
            sdk * 1e9,
            ours * 1e9,
            ours / sdk
        );
        println!(
            "Codex's facade, tool_result, same rounds: wasmtel {:.0} ns, wasmtel/sdk = {:.2}\n",
            codex_ours * 1e9,
            codex_ours / sdk
        );
    }
    provider.shutdown().expect("the SDK shuts down");
    for s in telemetry.shutdown().into_iter().chain(events.shutdown()) {
        println!("wasmtel's exporter: {s}");
        assert_eq!(s.dropped(), 0, "the benchmark measured drops: {s}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = record_call
}
criterion_main!(benches);
