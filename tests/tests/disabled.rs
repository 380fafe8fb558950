//! A record call with telemetry disabled allocates nothing: the event builder converts none of
//! its arguments, nor do Codex's session facade and metrics client; with telemetry running, a
//! record call allocates nothing per record once its thread has recorded. Counted by a global allocator that counts this thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use wasmtel::codex::{MetricsClient, SessionMetadata, SessionTelemetry, ToolResult};
use wasmtel::{KeyValue, Telemetry};
use wasmtel_tests::config;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// The allocations of 1,000 calls of `call` (given 0..1000), once 2,000 calls have grown the
/// thread's room and the queues' buffers to the load and were flushed.
fn allocations_once_warm(telemetry: &Telemetry, call: impl Fn(u64)) -> u64 {
    for i in 0..2000 {
        call(i);
    }
    assert!(
        telemetry.flush(std::time::Duration::from_secs(30)),
        "flushed"
    );
    let before = allocations();
    for i in 0..1000 {
        call(i);
    }
    allocations() - before
}

/// A successful `shell` call `i` ms long, with `output`, for Codex's session facade.
fn shell_result(i: u64, output: &str) -> ToolResult<'_> {
    ToolResult {
        tool_name: "shell",
        call_id: "call_1",
        arguments: "{}",
        duration: std::time::Duration::from_millis(i),
        success: true,
        output,
        mcp_server: None,
    }
}

/// Records a `tool_result` event as a call site writes it: borrowed and literal values.
fn tool_result(telemetry: &Telemetry, conversation: &String, i: u64) {
    telemetry
        .event("codex.tool_result")
        .attr("conversation.id", conversation)
        .attr("tool_name", "shell")
        .attr("duration_ms", i)
        .attr("success", true)
        .emit();
}

#[test]
fn a_record_call_with_telemetry_disabled_allocates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let telemetry =
        Telemetry::start(config(tmp.path(), "[telemetry]\nenabled = false\n")).expect("start");
    let counter = telemetry.counter("codex.tool.call");
    let conversation = String::from("019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f");
    let attributes = [KeyValue::new("tool", "shell")];
    let metrics = MetricsClient::new(&telemetry);
    let session = SessionTelemetry::new(&telemetry, SessionMetadata::default(), metrics.clone());
    let output = "x".repeat(4096);
    let before = allocations();
    for i in 0..1000u64 {
        tool_result(&telemetry, &conversation, i);
        counter.add(1, &attributes);
        // Codex's facade and metrics client, a tool output to cut included.
        session.tool_result(&shell_result(i, &output));
        metrics
            .counter("codex.tool.call", 1, &[("tool", "shell")])
            .expect("a valid counter");
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations in 1,000 record calls"
    );
    // The count is real: a thread's first event while telemetry runs allocates (its room).
    let running = Telemetry::start(config(tmp.path(), "")).expect("start");
    let before = allocations();
    running
        .event("one")
        .attr("conversation.id", &conversation)
        .emit();
    assert!(allocations() > before);
    running.shutdown();
}

#[test]
fn a_record_call_allocates_nothing_per_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let telemetry = Telemetry::start(config(tmp.path(), "")).expect("start");
    let conversation = String::from("019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f");
    let allocated =
        allocations_once_warm(&telemetry, |i| tool_result(&telemetry, &conversation, i));
    // A record of its own (an allocation, or an `Arc`, per record) would make 1,000; what may
    // remain is a queue's buffer growing again, a few times at most.
    assert!(
        allocated <= 16,
        "{allocated} allocations in 1,000 record calls"
    );
    let s = telemetry.shutdown().remove(0);
    assert_eq!(s.records_exported, 3000, "{s}");
}

#[test]
fn codexs_metrics_client_allocates_nothing_for_a_tag_set_it_has_seen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let telemetry = Telemetry::start(config(tmp.path(), "")).expect("start");
    let metrics = MetricsClient::new(&telemetry)
        .with_tag("surface", "cli")
        .expect("a valid tag");
    let tools = ["shell", "apply_patch", "read_file"];
    let call = |i: usize| {
        let tags = [("tool", tools[i % 3]), ("success", "true")];
        metrics
            .counter("codex.tool.call", 1, &tags)
            .expect("a valid counter");
        metrics
            .record_duration(
                "codex.tool.call.duration_ms",
                std::time::Duration::from_millis(i as u64),
                &tags,
            )
            .expect("a valid histogram");
    };
    for i in 0..3 {
        call(i);
    }
    let before = allocations();
    for i in 0..1000 {
        call(i);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations in 2,000 measurements"
    );
    telemetry.shutdown();
}

#[test]
fn codexs_session_facade_allocates_nothing_per_event_once_warm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let telemetry = Telemetry::start(config(tmp.path(), "")).expect("start");
    let session = SessionTelemetry::new(
        &telemetry,
        SessionMetadata {
            conversation_id: "019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f".into(),
            model: "gpt-5.1-codex".into(),
            ..SessionMetadata::default()
        },
        MetricsClient::new(&telemetry),
    );
    let call = |i: u64| {
        session.tool_result(&shell_result(i, "ok"));
        session.api_request(&wasmtel::codex::ApiRequest {
            attempt: 1,
            status: Some(200),
            endpoint: "/v1/responses",
            ..Default::default()
        });
    };
    let allocated = allocations_once_warm(&telemetry, call);
    // Events, metrics and their tags: what may remain is a queue's buffer growing again.
    assert!(
        allocated <= 16,
        "{allocated} allocations in 1,000 tool results and API requests"
    );
    telemetry.shutdown();
}
