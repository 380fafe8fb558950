//! A deterministic Codex-like session, recorded as `fixtures/codex-session.jsonl` by the
//! `make-fixture` binary: the event catalog of Codex's telemetry (conversation_starts,
//! user_prompt, api_request with retries, sse_event with token counts, tool_decision,
//! tool_result), nested spans (session > turn > model request / tool call > exec), and per
//! interval counters, histograms and a gauge.

use wasmtel::model::{HistogramPoint, NumberPoint, Record, Span, SpanEvent};
use wasmtel::{
    Event, KeyValue, Metric, MetricData, Number, Scope, SpanKind, StatusCode, Temporality, Value,
};

/// The session's start: 2026-11-20T09:00:00Z.
const T0: u64 = 1_795_165_200_000_000_000;
const MS: u64 = 1_000_000;
const TURNS: u64 = 24;
const METRIC_INTERVAL_TURNS: u64 = 8;

/// xorshift64*: a small deterministic generator, so the session is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TOOLS: &[&str] = &["shell", "apply_patch", "read_file", "web_search"];
const MODEL: &str = "gpt-5.1-codex";

fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

struct Session {
    rng: Rng,
    records: Vec<Record>,
    now: u64,
    trace_id: u128,
    conversation_id: String,
    metrics: Metrics,
}

/// Per-interval aggregates, emitted as delta metrics.
#[derive(Default)]
struct Metrics {
    interval_start: u64,
    tool_calls: Vec<(String, bool, i64)>,
    api_requests: Vec<(u16, i64)>,
    api_durations: Vec<f64>,
    tokens: Vec<(&'static str, i64)>,
}

fn add<K: PartialEq>(list: &mut Vec<(K, i64)>, key: K, n: i64) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, total)) => *total += n,
        None => list.push((key, n)),
    }
}

impl Session {
    fn common(&self) -> Vec<KeyValue> {
        vec![
            kv(
                "event.timestamp",
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(self.now),
                )
                .to_string(),
            ),
            kv("conversation.id", &self.conversation_id),
            kv("app.version", "0.144.0"),
            kv("auth_mode", "ChatGPT"),
            kv("originator", "codex_cli_rs"),
            kv("terminal.type", "xterm-256color"),
            kv("model", MODEL),
            kv("slug", MODEL),
        ]
    }

    fn event(&mut self, name: &'static str, fields: Vec<KeyValue>, span_id: u64) {
        let mut attributes = self.common();
        attributes.extend(fields);
        self.records.push(Record::Event(Event {
            time_unix_nano: self.now,
            name: name.into(),
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Value::Empty,
            attributes,
            trace_id: Some(self.trace_id),
            span_id: Some(span_id),
            scope: Scope {
                name: "codex_otel".into(),
                version: "0.144.0".into(),
            },
        }));
    }

    fn span_id(&mut self) -> u64 {
        self.rng.next() | 1
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        id: u64,
        parent: Option<u64>,
        name: &str,
        kind: SpanKind,
        start: u64,
        attributes: Vec<KeyValue>,
        events: Vec<SpanEvent>,
        error: Option<&str>,
    ) {
        self.records.push(Record::Span(Span {
            trace_id: self.trace_id,
            span_id: id,
            parent_span_id: parent,
            name: name.into(),
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: self.now,
            attributes,
            events,
            links: Vec::new(),
            status: if error.is_some() {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            status_message: error.unwrap_or_default().into(),
            scope: Scope {
                name: "codex_core".into(),
                version: "0.144.0".into(),
            },
        }));
    }

    /// Moves the clock on by `ms` plus up to `spread` ms, plus sub-millisecond jitter.
    fn advance(&mut self, ms: u64, spread: u64) {
        let extra = if spread == 0 {
            0
        } else {
            self.rng.below(spread)
        };
        self.now += (ms + extra) * MS + self.rng.below(1000) * 1000;
    }

    /// A random duration in ms, `base` to `base + spread`.
    fn ms(&mut self, base: u64, spread: u64) -> i64 {
        (base + self.rng.below(spread)) as i64
    }

    fn turn(&mut self, session_span: u64, turn: u64) {
        let turn_span = self.span_id();
        let turn_start = self.now;
        let prompt_length = self.ms(20, 400);
        self.event(
            "codex.user_prompt",
            vec![
                kv("prompt_length", prompt_length),
                kv("prompt", "[REDACTED]"),
            ],
            turn_span,
        );
        let tool_count = self.rng.below(4);
        let mut token_total = 0;
        // One model request per tool round trip, plus the final answer.
        for round in 0..=tool_count {
            let request_span = self.span_id();
            let request_start = self.now;
            let attempts = if self.rng.below(6) == 0 { 2 } else { 1 };
            for attempt in 1..=attempts {
                self.advance(150, 900);
                let failed = attempt < attempts;
                let status: u16 = if failed { 429 } else { 200 };
                let duration = ((self.now - request_start) / MS) as i64;
                let mut fields = vec![
                    kv("attempt", attempt),
                    kv("duration_ms", duration),
                    kv("http.response.status_code", i64::from(status)),
                    kv("endpoint", "/v1/responses"),
                    kv("auth.header_attached", true),
                    kv("auth.header_name", "authorization"),
                ];
                if failed {
                    fields.push(kv("error.message", "rate limited: retry after 250ms"));
                }
                self.event("codex.api_request", fields, request_span);
                add(&mut self.metrics.api_requests, status, 1);
                self.metrics.api_durations.push(duration as f64);
                if failed {
                    self.advance(250, 0);
                }
            }
            let mut span_events = Vec::new();
            for kind in ["response.created", "response.output_item.added"] {
                self.advance(20, 80);
                span_events.push(SpanEvent {
                    time_unix_nano: self.now,
                    name: kind.into(),
                    attributes: vec![],
                });
                let duration = self.ms(1, 40);
                self.event(
                    "codex.sse_event",
                    vec![kv("event.kind", kind), kv("duration_ms", duration)],
                    request_span,
                );
            }
            for _ in 0..1 + self.rng.below(3) {
                self.advance(30, 200);
                let duration = self.ms(1, 15);
                self.event(
                    "codex.sse_event",
                    vec![
                        kv("event.kind", "response.output_text.delta"),
                        kv("duration_ms", duration),
                    ],
                    request_span,
                );
            }
            self.advance(40, 0);
            let input = self.ms(2_000, 30_000);
            let output = self.ms(50, 2_000);
            let duration = self.ms(2, 20);
            let ttft = self.ms(120, 600);
            let cached = input / 2;
            let reasoning = self.rng.below(1_500) as i64;
            token_total += input + output;
            self.event(
                "codex.sse_event",
                vec![
                    kv("event.kind", "response.completed"),
                    kv("duration_ms", duration),
                    kv("input_token_count", input),
                    kv("output_token_count", output),
                    kv("cached_token_count", cached),
                    kv("reasoning_token_count", reasoning),
                    kv("tool_token_count", 0),
                    kv("ttft_ms", ttft),
                ],
                request_span,
            );
            for (token_type, n) in [
                ("input", input),
                ("cached_input", cached),
                ("output", output),
                ("reasoning_output", reasoning),
            ] {
                add(&mut self.metrics.tokens, token_type, n);
            }
            self.span(
                request_span,
                Some(turn_span),
                "model_request",
                SpanKind::Client,
                request_start,
                vec![
                    kv("gen_ai.request.model", MODEL),
                    kv("gen_ai.usage.input_tokens", input),
                    kv("gen_ai.usage.output_tokens", output),
                ],
                span_events,
                None,
            );
            if round < tool_count {
                self.tool_call(turn_span, turn, round);
            }
        }
        self.advance(5, 0);
        self.span(
            turn_span,
            Some(session_span),
            "turn",
            SpanKind::Internal,
            turn_start,
            vec![
                kv("turn.index", turn as i64),
                kv("turn.token_total", token_total),
            ],
            Vec::new(),
            None,
        );
    }

    fn tool_call(&mut self, turn_span: u64, turn: u64, round: u64) {
        let tool = TOOLS[self.rng.below(TOOLS.len() as u64) as usize];
        let call_id = format!("call_{turn:02}_{round}_{:06x}", self.rng.below(1 << 24));
        let decision = if self.rng.below(10) == 0 {
            "denied"
        } else {
            "approved"
        };
        let source = if tool == "shell" { "user" } else { "config" };
        let tool_span = self.span_id();
        self.advance(5, 2_000);
        self.event(
            "codex.tool_decision",
            vec![
                kv("tool_name", tool),
                kv("tool_namespace", ""),
                kv("call_id", &call_id),
                kv("decision", decision),
                kv("source", source),
            ],
            tool_span,
        );
        let start = self.now;
        let success = decision == "approved" && self.rng.below(8) != 0;
        let arguments = match tool {
            "shell" => r#"{"command":["cargo","test"],"workdir":"/work"}"#,
            "apply_patch" => {
                r#"{"input":"*** Begin Patch\n*** Update File: src/lib.rs\n*** End Patch"}"#
            }
            "read_file" => r#"{"path":"README.md"}"#,
            _ => r#"{"query":"wasmtime epoch interruption"}"#,
        };
        if tool == "shell" && decision == "approved" {
            let exec_span = self.span_id();
            let exec_start = self.now;
            self.advance(200, 5_000);
            let exit_code = if success { 0 } else { 101 };
            self.span(
                exec_span,
                Some(tool_span),
                "exec_command",
                SpanKind::Internal,
                exec_start,
                vec![
                    kv(
                        "process.command_args",
                        Value::Array(vec!["cargo".into(), "test".into()]),
                    ),
                    kv("process.exit.code", exit_code),
                ],
                Vec::new(),
                (!success).then_some("exit status 101"),
            );
        }
        self.advance(3, 50);
        let output = if success {
            "ok: 42 passed; 0 failed"
        } else {
            "error: command failed\nexit status 101"
        };
        let duration = ((self.now - start) / MS) as i64;
        self.event(
            "codex.tool_result",
            vec![
                kv("tool_name", tool),
                kv("call_id", &call_id),
                kv("arguments", arguments),
                kv("duration_ms", duration),
                kv("success", if success { "true" } else { "false" }),
                kv("output", output),
                kv("output_truncated", false),
            ],
            tool_span,
        );
        self.span(
            tool_span,
            Some(turn_span),
            "tool_call",
            SpanKind::Internal,
            start,
            vec![kv("tool_name", tool), kv("call_id", &call_id)],
            Vec::new(),
            (!success).then_some(output),
        );
        let key = (tool.to_string(), success);
        match self
            .metrics
            .tool_calls
            .iter_mut()
            .find(|(t, s, _)| (t.as_str(), *s) == (key.0.as_str(), key.1))
        {
            Some((_, _, n)) => *n += 1,
            None => self.metrics.tool_calls.push((key.0, key.1, 1)),
        }
    }

    /// The metrics of the interval that ends now, as delta points.
    fn flush_metrics(&mut self, running_processes: i64) {
        let m = std::mem::take(&mut self.metrics);
        let (start, now) = (m.interval_start, self.now);
        self.metrics.interval_start = now;
        let scope = Scope {
            name: "codex".into(),
            version: "0.144.0".into(),
        };
        let point = |attributes: Vec<KeyValue>, value: i64| NumberPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Number::Int(value),
        };
        let sum = |name: &str, unit: &str, points: Vec<NumberPoint>| Metric {
            name: name.into(),
            description: String::new(),
            unit: unit.into(),
            scope: scope.clone(),
            data: MetricData::Sum {
                points,
                temporality: Temporality::Delta,
                monotonic: true,
            },
        };
        let tool_points = m
            .tool_calls
            .iter()
            .map(|(t, s, n)| point(vec![kv("tool", t), kv("success", *s)], *n))
            .collect();
        let request_points = m
            .api_requests
            .iter()
            .map(|(status, n)| {
                point(
                    vec![
                        kv("status", i64::from(*status)),
                        kv("success", *status == 200),
                    ],
                    *n,
                )
            })
            .collect();
        let token_points = m
            .tokens
            .iter()
            .map(|(t, n)| point(vec![kv("token_type", *t)], *n))
            .collect();
        let bounds = vec![0.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];
        let mut counts = vec![0u64; bounds.len() + 1];
        for d in &m.api_durations {
            counts[bounds.partition_point(|b| b < d)] += 1;
        }
        let min = m.api_durations.iter().copied().reduce(f64::min);
        let max = m.api_durations.iter().copied().reduce(f64::max);
        let metrics = vec![
            sum("codex.tool.call", "", tool_points),
            sum("codex.api_request", "", request_points),
            sum("codex.turn.token_usage", "{token}", token_points),
            Metric {
                name: "codex.api_request.duration_ms".into(),
                description: "Duration of model API requests".into(),
                unit: "ms".into(),
                scope: scope.clone(),
                data: MetricData::Histogram {
                    points: vec![HistogramPoint {
                        attributes: vec![],
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        count: m.api_durations.len() as u64,
                        sum: m.api_durations.iter().sum(),
                        min,
                        max,
                        bounds,
                        counts,
                    }],
                    temporality: Temporality::Delta,
                },
            },
            Metric {
                name: "codex.turn.unified_exec.running_processes".into(),
                description: String::new(),
                unit: "{process}".into(),
                scope,
                data: MetricData::Gauge {
                    points: vec![point(vec![], running_processes)],
                },
            },
        ];
        self.records.extend(metrics.into_iter().map(Record::Metric));
    }
}

/// The resource of the session.
pub fn resource() -> Vec<KeyValue> {
    vec![
        kv("service.name", "codex_cli_rs"),
        kv("service.version", "0.144.0"),
        kv("env", "dev"),
        kv("os", "linux"),
        kv("host.name", "devbox"),
    ]
}

/// The session's records, in the order they were recorded.
pub fn records() -> Vec<Record> {
    let mut s = Session {
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        records: vec![Record::Resource(resource())],
        now: T0,
        trace_id: 0,
        conversation_id: "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f".into(),
        metrics: Metrics {
            interval_start: T0,
            ..Metrics::default()
        },
    };
    s.trace_id = (u128::from(s.rng.next()) << 64) | u128::from(s.rng.next());
    let session_span = s.span_id();
    s.event(
        "codex.conversation_starts",
        vec![
            kv("provider_name", "openai"),
            kv("reasoning_effort", "medium"),
            kv("reasoning_summary", "auto"),
            kv("context_window", 272_000),
            kv("auto_compact_token_limit", 244_800),
            kv("approval_policy", "on-request"),
            kv("sandbox_policy", "workspace-write"),
            kv(
                "mcp_servers",
                Value::Array(vec!["github".into(), "linear".into()]),
            ),
        ],
        session_span,
    );
    for turn in 0..TURNS {
        s.turn(session_span, turn);
        if (turn + 1) % METRIC_INTERVAL_TURNS == 0 {
            let running = s.rng.below(3) as i64;
            s.flush_metrics(running);
        }
        s.advance(2_000, 20_000);
    }
    s.span(
        session_span,
        None,
        "session",
        SpanKind::Internal,
        T0,
        vec![kv(
            "conversation.id",
            "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f",
        )],
        Vec::new(),
        None,
    );
    s.records
}

/// Records the session through wasmtel (deterministic batches, session id `fixture`) into the
/// built-in file-jsonl exporter writing under `dir`; returns the file it wrote.
pub fn record_into(dir: &std::path::Path) -> std::path::PathBuf {
    let config = crate::config(
        dir,
        "[telemetry]\nsession_id = \"fixture\"\n[exporters.session]\nplugin = \"file-jsonl\"\nsandbox = { dir = \"out\" }\n",
    );
    let telemetry = wasmtel::Telemetry::builder(config)
        .deterministic_batching()
        .start()
        .expect("start");
    for record in records() {
        telemetry.record_blocking(record);
    }
    for exporter in telemetry.shutdown() {
        assert_eq!(exporter.dropped(), 0, "{exporter}");
    }
    crate::only_jsonl(&dir.join("out"))
}
