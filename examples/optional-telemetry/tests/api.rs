//! Every call of wasmtel's recording API, compiled and run in both builds of this crate: with
//! `telemetry` (wasmtel's host) and without (`--no-default-features`: the calls that do
//! nothing). A call the build without the host lacks, or whose signature differs, fails to
//! compile here; what each build returns is checked below.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use wasmtel::codex::{
    ApiRequest, AuthMode, AuthRecovery, Compaction, ConversationStart, GlobalContext,
    MetricCatalog, MetricsClient, PromptInputs, SessionMetadata, SessionTags, SessionTelemetry,
    Surface, Timer, TokenUsage, ToolResult,
};
use wasmtel::model::Record;
use wasmtel::{
    ActiveSpan, Config, Counter, Event, FeedbackRing, Gauge, Histogram, KeyValue, Scope,
    SpanBuilder, SpanContext, SpanKind, StatusCode, Telemetry, TelemetryBuilder, TelemetryLayer,
    UpDownCounter,
};

const HOST: bool = cfg!(feature = "telemetry");

/// The traits of the API's types, the same in both builds.
#[test]
fn the_types_traits() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    fn sent<T: Send + Sync + 'static>() {}
    shared::<Telemetry>();
    shared::<Counter>();
    shared::<UpDownCounter>();
    shared::<Histogram>();
    shared::<Gauge>();
    shared::<FeedbackRing>();
    shared::<MetricsClient>();
    shared::<SessionTelemetry>();
    shared::<MetricCatalog>();
    sent::<TelemetryBuilder>();
    sent::<SpanBuilder>();
    sent::<ActiveSpan>();
    sent::<TelemetryLayer>();
    sent::<Timer>();
    fn config<T: Clone + std::fmt::Debug + Default + PartialEq + Send + Sync>() {}
    config::<Config>();
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<wasmtel::Error>();
    error::<wasmtel::codex::MetricsError>();
}

#[test]
fn the_config_calls() {
    let config = Config::parse(
        "[telemetry]\nenabled = true\n",
        Path::new("t.toml"),
        Path::new("."),
    )
    .expect("parses");
    assert_eq!(config.enabled(), HOST, "only the host runs");
    let config = config
        .with_enabled(true)
        .with_vars(|_| None)
        .expect("no variables")
        .with_env()
        .expect("the environment");
    assert!(config.notices().is_empty());
    assert!(config.otel().is_none());
    assert_eq!(Config::empty().enabled(), HOST);
    assert!(!Config::default().with_enabled(false).enabled());
    let missing = Config::from_file(Path::new("/nonexistent/wasmtel.toml"));
    assert_eq!(missing.is_err(), HOST, "without the host, no file is read");
}

#[test]
fn every_record_call() {
    let telemetry = Telemetry::builder(Config::empty())
        .resource(vec![KeyValue::new("service.name", "api")])
        .deterministic_batching()
        .feedback_ring(NonZeroUsize::new(1 << 20).expect("not zero"))
        .cache_dir(None)
        .start()
        .expect("starts");
    assert_eq!(telemetry.session_id().is_empty(), !HOST);

    telemetry
        .event("e")
        .attr("k", 1)
        .severity(9, "INFO")
        .body("text")
        .at(1)
        .scope(Scope::default())
        .emit();
    telemetry.emit(Event::new("plain"));
    telemetry.record(Record::Event(Event::new("record")));
    telemetry.record_blocking(Record::Event(Event::new("blocking")));

    let attributes = [KeyValue::new("k", "v")];
    telemetry
        .counter("c")
        .with_unit("1")
        .with_description("d")
        .with_scope(Scope::default())
        .add(1, &attributes);
    telemetry.up_down_counter("u").add(-1, &attributes);
    telemetry
        .histogram("h")
        .with_bounds(&[1.0, 10.0])
        .record(2.5, &attributes);
    let gauge = telemetry.gauge("g").with_callback(|observer| {
        observer.observe(1.0, &[]);
        observer.observe_int(1, &[]);
    });
    gauge.record(1.0, &attributes);
    gauge.record_int(1, &attributes);

    let incoming =
        SpanContext::from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .expect("a traceparent");
    let mut span = telemetry
        .span("s")
        .parent(incoming)
        .kind(SpanKind::Client)
        .attr("k", "v")
        .scope(Scope::default())
        .start();
    assert_eq!(
        span.context().trace_id,
        incoming.trace_id,
        "the trace goes on"
    );
    let mut headers = http::HeaderMap::new();
    span.context().inject(&mut headers, &[]);
    let injected = headers["traceparent"].to_str().expect("ASCII");
    assert_eq!(
        SpanContext::from_traceparent(injected).map(|c| c.trace_id),
        Some(incoming.trace_id)
    );
    // A root span: the host's has a context of its own; without the host, the invalid one,
    // which puts nothing into headers.
    let root = telemetry.span("root").start();
    assert_eq!(root.context().is_valid(), HOST);
    let mut headers = http::HeaderMap::new();
    root.context()
        .inject(&mut headers, &[("k".into(), "v".into())]);
    assert_eq!(headers.contains_key("traceparent"), HOST);
    assert_eq!(headers.contains_key("tracestate"), HOST);
    root.end();
    span.set_attr("k2", 2);
    span.add_event("happened", &attributes);
    span.set_status(StatusCode::Ok, "");
    telemetry.event("in span").in_span(span.context()).emit();
    span.end();

    assert!(telemetry.flush(Duration::from_secs(5)));
    let feedback = telemetry.feedback(Duration::from_secs(5));
    assert_eq!(feedback.is_some(), HOST, "only the host keeps a ring");
    if let Some((ring, complete)) = feedback {
        assert!(complete && !ring.is_empty() && ring.dropped() == 0);
        assert_eq!(
            ring.len(),
            String::from_utf8(ring.jsonl())
                .expect("UTF-8")
                .lines()
                .count()
                - 1
        );
    }
    let stats = telemetry.stats();
    assert_eq!(
        stats.len(),
        usize::from(HOST),
        "the ring's exporter: {stats:?}"
    );
    assert_eq!(
        telemetry
            .shutdown_with_timeout(Duration::from_secs(5))
            .len(),
        stats.len()
    );
    assert_eq!(telemetry.shutdown().len(), stats.len());
}

#[test]
fn every_codex_call() {
    let telemetry = Telemetry::start(Config::empty()).expect("starts");
    let metrics = MetricsClient::new(&telemetry)
        .with_tag("service", "api")
        .expect("a tag")
        .with_session_tags(SessionTags::default())
        .expect("tags")
        .without_metadata_tags();
    let tags = [("tool", "shell")];
    metrics.counter("codex.c", 1, &tags).expect("counts");
    metrics.histogram("codex.h", 5, &tags).expect("records");
    metrics
        .record_duration("codex.d", Duration::from_millis(5), &tags)
        .expect("records");
    metrics
        .record_duration_seconds("codex.s", Duration::from_secs(5), &tags)
        .expect("records");
    metrics.gauge("codex.g", 3, &tags).expect("sets");
    metrics
        .register_observable_gauge("codex.og", "observed", || 7)
        .expect("registers");
    let timer = metrics.start_timer("codex.t", &tags).expect("starts");
    timer.record(&tags).expect("records");
    // Codex's rules hold in both builds, whether or not anything is recorded.
    assert!(
        metrics.counter("codex.c", -1, &[]).is_err(),
        "a counter only grows"
    );
    assert!(metrics.gauge("bad name", 1, &[]).is_err());
    assert!(
        metrics
            .histogram("codex.h", 1, &[("bad key", "v")])
            .is_err()
    );
    assert!(MetricsClient::new(&telemetry).with_tag("k", "").is_err());

    let mut session = SessionTelemetry::new(&telemetry, SessionMetadata::default(), metrics)
        .with_redaction(false, 2048);
    let config = Config::parse("[otel]\n", Path::new("otel.toml"), Path::new(".")).expect("parses");
    assert_eq!(
        config.otel().is_some(),
        HOST,
        "only the host reads `[otel]`"
    );
    if let Some(otel) = config.otel() {
        session = session.with_otel(otel);
    }
    let _ = session.metrics();
    session.conversation_starts(&ConversationStart::default());
    session.user_prompt("prompt", PromptInputs::default());
    let request = ApiRequest::default();
    session.api_request(&request);
    session.websocket_connect(&request);
    session.websocket_request(Duration::from_millis(1), None, &request.auth);
    session.websocket_event("kind", Duration::from_millis(1), Some("error"));
    session.auth_recovery(&AuthRecovery::default());
    session.sse_event("kind", Duration::ZERO, None, Some(TokenUsage::default()));
    session.tool_decision("shell", "call-1", "approved", "config");
    session.tool_result(&ToolResult {
        tool_name: "shell",
        call_id: "call-1",
        arguments: "{}",
        duration: Duration::from_millis(1),
        success: true,
        output: "ok",
        mcp_server: None,
    });
    session.sandbox_outcome("shell", "call-1", "allowed", Duration::ZERO, None);
    session.startup_phase("config", "ok", Duration::ZERO);
    session.turn_ttft(Duration::ZERO);
    session.turn_cost("turn-1", 0.01, false);

    let catalog = MetricCatalog::new(
        &telemetry,
        &GlobalContext {
            surface: Surface::Subagent("review".into()),
            version: "1.0".into(),
            auth_mode: AuthMode::ChatGpt,
            model: "m".into(),
        },
    )
    .expect("a catalog");
    catalog.features_state("feature", "on");
    catalog.session_started(true);
    catalog.task_compact(Compaction::Local);
    catalog.task_user_shell();
    catalog.task_review();
    catalog.task_undo();
    catalog.approval_requested("shell", true);
    catalog.conversation_turn();
    catalog.mcp_call(Err("timeout"));
    catalog.model_call("openai", "200", 1, Duration::from_millis(10));
    catalog.tool_call("shell", Ok(()), Duration::from_millis(10));
    catalog.user_feedback_submitted("bug", true, true);
    assert!(
        telemetry.shutdown().is_empty(),
        "no exporter in either build"
    );
}

#[test]
fn the_tracing_layer() {
    let telemetry = Telemetry::start(Config::empty()).expect("starts");
    let layer = TelemetryLayer::new(&telemetry)
        .with_targets(&["api"])
        .with_span_attributes(&[("lane".into(), "canary".into())]);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(target: "api", "turn");
        let _in_span = span.enter();
        tracing::info!(target: "api", n = 1, "happened");
    });
    assert!(telemetry.shutdown().is_empty());
}
