//! `wasmtel::otel_sdk`: an application instrumented with the OpenTelemetry SDK (logger, tracer
//! and meter providers) exports through the real file-jsonl plugin, and writes the same records
//! as the same telemetry recorded through wasmtel's own API, with the SDK's resource merged
//! under wasmtel's. Times and ids differ between the
//! two runs; they are compared by position (which span is whose parent, which event in which
//! span), everything else exactly.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanKind as OtelSpanKind, Status, TraceContextExt as _, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue as OtelKeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value as Json;
use wasmtel::otel_sdk::{LogExporter, MetricExporter, SpanExporter};
use wasmtel::{KeyValue, Scope, SpanKind, StatusCode, Telemetry};
use wasmtel_tests::{config, only_jsonl};

const BOUNDS: [f64; 4] = [10.0, 100.0, 1000.0, 10000.0];

fn resource() -> Vec<KeyValue> {
    vec![
        KeyValue::new("service.name", "codex_cli_rs"),
        KeyValue::new("service.version", "0.144.0"),
    ]
}

fn scope(name: &str) -> Scope {
    Scope {
        name: name.into(),
        version: "0.144.0".into(),
    }
}

/// The session through the OpenTelemetry SDK, exported by wasmtel's adapters.
fn through_the_sdk(telemetry: &Telemetry) {
    // The SDK's own resource: wasmtel's names win over it.
    let resource = Resource::builder_empty()
        .with_attributes([
            OtelKeyValue::new("service.name", "unknown_service"),
            OtelKeyValue::new("telemetry.sdk.language", "rust"),
        ])
        .build();
    let logs = SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_simple_exporter(LogExporter::new(telemetry))
        .build();
    let traces = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_simple_exporter(SpanExporter::new(telemetry))
        .build();
    let meters = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(
            PeriodicReader::builder(
                MetricExporter::new(telemetry).with_temporality(Temporality::Delta),
            )
            .build(),
        )
        .build();
    let versioned = |name: &'static str| {
        InstrumentationScope::builder(name)
            .with_version("0.144.0")
            .build()
    };
    let tracer = traces.tracer_with_scope(versioned("codex_core"));
    let logger = logs.logger_with_scope(versioned("codex_otel"));
    let meter = meters.meter_with_scope(versioned("codex"));

    let mut turn = tracer
        .span_builder("turn")
        .with_attributes([OtelKeyValue::new("model", "gpt-5.1-codex")])
        .start(&tracer);
    turn.add_event(
        "codex.turn_ttft",
        vec![OtelKeyValue::new("duration_ms", 917i64)],
    );
    let turn_cx = Context::current_with_span(turn);
    let mut request = tracer
        .span_builder("model_request")
        .with_kind(OtelSpanKind::Client)
        .start_with_context(&tracer, &turn_cx);
    request.set_status(Status::error("rate limited"));
    let request_cx = turn_cx.with_span(request);
    {
        let _in_request = request_cx.clone().attach();
        let mut record = logger.create_log_record();
        record.set_event_name("codex.api_request");
        record.set_severity_number(Severity::Warn);
        record.set_severity_text("WARN");
        record.set_body(AnyValue::from("429 Too Many Requests"));
        record.add_attribute("http.response.status_code", 429i64);
        record.add_attribute("success", false);
        record.add_attribute("attempt", 1i64);
        logger.emit(record);
    }
    request_cx.span().end();
    let mut record = logger.create_log_record();
    record.set_event_name("codex.user_prompt");
    record.set_severity_number(Severity::Info);
    record.set_severity_text("INFO");
    record.add_attribute("prompt_length", 14i64);
    record.add_attribute("prompt", "[REDACTED]");
    logger.emit(record);
    turn_cx.span().end();

    let calls = meter.u64_counter("codex.tool.call").build();
    calls.add(
        2,
        &[
            OtelKeyValue::new("tool", "shell"),
            OtelKeyValue::new("success", "true"),
        ],
    );
    calls.add(
        1,
        &[
            OtelKeyValue::new("tool", "apply_patch"),
            OtelKeyValue::new("success", "false"),
        ],
    );
    let durations = meter
        .f64_histogram("codex.tool.call.duration_ms")
        .with_unit("ms")
        .with_boundaries(BOUNDS.to_vec())
        .build();
    for ms in [3.0, 42.0, 420.0] {
        durations.record(ms, &[OtelKeyValue::new("tool", "shell")]);
    }
    let memory = meter
        .f64_gauge("codex.process.memory")
        .with_unit("By")
        .build();
    memory.record(1.5e8, &[]);
    meters.force_flush().expect("metrics exported");
    logs.shutdown().expect("logs shut down");
    traces.shutdown().expect("traces shut down");
    meters.shutdown().expect("metrics shut down");
}

/// The same session through wasmtel's own API.
fn through_wasmtel(telemetry: &Telemetry) {
    let mut turn = telemetry
        .span("turn")
        .scope(scope("codex_core"))
        .attr("model", "gpt-5.1-codex")
        .start();
    turn.add_event("codex.turn_ttft", &[KeyValue::new("duration_ms", 917i64)]);
    let mut request = telemetry
        .span("model_request")
        .scope(scope("codex_core"))
        .kind(SpanKind::Client)
        .parent(turn.context())
        .start();
    request.set_status(StatusCode::Error, "rate limited");
    telemetry
        .event("codex.api_request")
        .severity(13, "WARN")
        .body("429 Too Many Requests")
        .attr("http.response.status_code", 429i64)
        .attr("success", false)
        .attr("attempt", 1i64)
        .in_span(request.context())
        .scope(scope("codex_otel"))
        .emit();
    request.end();
    telemetry
        .event("codex.user_prompt")
        .attr("prompt_length", 14i64)
        .attr("prompt", "[REDACTED]")
        .scope(scope("codex_otel"))
        .emit();
    turn.end();

    let calls = telemetry
        .counter("codex.tool.call")
        .with_scope(scope("codex"));
    calls.add(
        2,
        &[
            KeyValue::new("tool", "shell"),
            KeyValue::new("success", "true"),
        ],
    );
    calls.add(
        1,
        &[
            KeyValue::new("tool", "apply_patch"),
            KeyValue::new("success", "false"),
        ],
    );
    let durations = telemetry
        .histogram("codex.tool.call.duration_ms")
        .with_unit("ms")
        .with_bounds(&BOUNDS)
        .with_scope(scope("codex"));
    for ms in [3.0, 42.0, 420.0] {
        durations.record(ms, &[KeyValue::new("tool", "shell")]);
    }
    telemetry
        .gauge("codex.process.memory")
        .with_unit("By")
        .with_scope(scope("codex"))
        .record(1.5e8, &[]);
}

/// The records file-jsonl wrote into `dir`, but resources: times blanked, ids numbered in order
/// of appearance, each kind of record in a stable order (the two runs interleave their signals
/// differently), and metric points in attribute order; and the last resource.
fn written(dir: &Path) -> (Vec<Json>, Json) {
    let text = std::fs::read_to_string(only_jsonl(dir)).expect("read");
    let mut ids = HashMap::new();
    let mut records: Vec<Json> = text
        .lines()
        .map(|line| {
            let mut record: Json = serde_json::from_str(line).expect("a JSON line");
            normalize(&mut record, &mut ids);
            record
        })
        .collect();
    let resource = records
        .iter()
        .rfind(|r| r["type"] == "resource")
        .map_or(Json::Null, |r| r["attributes"].clone());
    records.retain(|r| r["type"] != "resource");
    records.sort_by_key(|r| {
        let kind = r["type"].as_str().unwrap_or_default().to_string();
        let rank = ["span", "event", "metric"]
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(3);
        (rank, r["name"].as_str().unwrap_or_default().to_string())
    });
    (records, resource)
}

fn normalize(value: &mut Json, ids: &mut HashMap<String, usize>) {
    match value {
        Json::Object(map) => {
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "time" | "start" | "end" => *value = Json::String("<time>".into()),
                    "trace_id" | "span_id" | "parent_span_id" => {
                        let id = value.as_str().unwrap_or_default().to_string();
                        let next = ids.len();
                        *value = Json::from(*ids.entry(id).or_insert(next));
                    }
                    _ => normalize(value, ids),
                }
            }
            if let Some(Json::Array(points)) = map.get_mut("points") {
                points.sort_by_key(|p| p["attributes"].to_string());
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|v| normalize(v, ids)),
        _ => {}
    }
}

/// Runs `session` into a file-jsonl exporter in a directory of its own, wasmtel's resource
/// that of [`resource`]; what it wrote.
fn run(session: impl FnOnce(&Telemetry)) -> (Vec<Json>, Json) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(
        tmp.path(),
        "[exporters.file]\nplugin = \"file-jsonl\"\nsandbox = { dir = \"out\" }\n",
    );
    let telemetry = Telemetry::builder(config)
        .resource(resource())
        .start()
        .expect("start");
    session(&telemetry);
    assert!(telemetry.flush(Duration::from_secs(30)), "flushed");
    for stats in telemetry.shutdown() {
        assert_eq!(stats.dropped(), 0, "{stats}");
    }
    written(&tmp.path().join("out"))
}

#[test]
fn the_sdks_providers_export_through_a_plugin_the_records_wasmtels_api_makes() {
    let (sdk, sdk_resource) = run(through_the_sdk);
    let (native, native_resource) = run(through_wasmtel);
    let kinds: Vec<&str> = sdk.iter().filter_map(|r| r["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "span", "span", "event", "event", "metric", "metric", "metric"
        ],
        "{sdk:#?}"
    );
    // The SDK's resource under wasmtel's: wasmtel's service.name, the SDK's other attributes.
    assert_eq!(
        native_resource,
        serde_json::json!({"service.name": "codex_cli_rs", "service.version": "0.144.0"})
    );
    assert_eq!(
        sdk_resource,
        serde_json::json!({
            "service.name": "codex_cli_rs",
            "service.version": "0.144.0",
            "telemetry.sdk.language": "rust",
        })
    );
    if sdk != native {
        panic!(
            "{}",
            wasmtel_tests::diff(
                &serde_json::to_string_pretty(&native).expect("json"),
                &serde_json::to_string_pretty(&sdk).expect("json"),
            )
        );
    }
}
