//! A record call with telemetry disabled allocates nothing: the event builder converts none of
//! its arguments. Counted by a global allocator that counts this thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

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

#[test]
fn a_record_call_with_telemetry_disabled_allocates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let telemetry =
        Telemetry::start(config(tmp.path(), "[telemetry]\nenabled = false\n")).expect("start");
    let counter = telemetry.counter("codex.tool.call");
    let conversation = String::from("019a7c5e-3b2d-7c41-9f0e-5a6b7c8d9e0f");
    let attributes = [KeyValue::new("tool", "shell")];
    let before = allocations();
    for i in 0..1000u64 {
        telemetry
            .event("codex.tool_result")
            .attr("conversation.id", &conversation)
            .attr("tool_name", "shell")
            .attr("duration_ms", i)
            .attr("success", true)
            .emit();
        counter.add(1, &attributes);
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations in 1,000 record calls"
    );
    // The count is real: an event built while telemetry runs allocates.
    let running = Telemetry::start(config(tmp.path(), "")).expect("start");
    let before = allocations();
    running
        .event("one")
        .attr("conversation.id", &conversation)
        .emit();
    assert!(allocations() > before);
    running.shutdown();
}
