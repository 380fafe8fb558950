//! A plugin written with the SDK compiles natively too: the same file-jsonl code, run natively
//! and as a component on the same batches, writes the same bytes.

use wasmtel::model::{Event, Metric, Record, Span};
use wasmtel::plugin::{Batch, Runtime, Sandbox, builtin};
use wasmtel_sdk::encode::{event_batch, metric_batch, span_batch};
use wasmtel_sdk::{Context, Exporter};
use wasmtel_tests::fixture;

#[test]
fn file_jsonl_natively_and_as_a_component_writes_the_same_bytes() {
    let text = std::fs::read_to_string(fixture()).expect("fixture");
    let records: Vec<Record> = text
        .lines()
        .map(|l| wasmtel::jsonl::parse_line(l).expect("valid"))
        .collect();
    let Record::Resource(resource) = &records[0] else {
        panic!("a resource first")
    };
    let events: Vec<&Event> = records.iter().filter_map(Record::as_event).collect();
    let spans: Vec<&Span> = records.iter().filter_map(Record::as_span).collect();
    let metrics: Vec<&Metric> = records.iter().filter_map(Record::as_metric).collect();
    let config = r#"{"file":"out.jsonl","max_total_bytes":0}"#;
    let context = Context {
        exporter_name: "same".into(),
        session_id: "same".into(),
    };

    let native_dir = tempfile::tempdir().expect("tempdir");
    let native_config = format!(
        r#"{{"file":"out.jsonl","max_total_bytes":0,"dir":{:?}}}"#,
        native_dir.path()
    );
    let mut native =
        file_jsonl::FileJsonl::init(&native_config, &context).unwrap_or_else(|e| panic!("{e:?}"));
    native
        .export_events(&event_batch(resource, events.iter().copied()))
        .expect("events");
    native
        .export_spans(&span_batch(resource, spans.iter().copied()))
        .expect("spans");
    native
        .export_metrics(&metric_batch(resource, metrics.iter().copied()))
        .expect("metrics");
    native.flush().expect("flush syncs the file");
    native.shutdown().expect("shutdown");

    let wasm_dir = tempfile::tempdir().expect("tempdir");
    let runtime = Runtime::new(None).expect("runtime");
    let plugin = runtime
        .load("file-jsonl", builtin("file-jsonl").expect("built in"))
        .expect("load");
    let sandbox = Sandbox {
        dir: Some(wasm_dir.path().to_path_buf()),
        ..Sandbox::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut instance = plugin
            .instantiate("same", &sandbox)
            .await
            .expect("instantiate");
        instance.init(config, "same", "same").await.expect("init");
        instance
            .export(&Batch::events(resource, events.iter().map(|&e| e.clone())))
            .await
            .expect("events");
        instance
            .export(&Batch::spans(resource, spans.iter().map(|&s| s.clone())))
            .await
            .expect("spans");
        instance
            .export(&Batch::metrics(
                resource,
                metrics.iter().map(|&m| m.clone()),
            ))
            .await
            .expect("metrics");
        instance.shutdown().await.expect("shutdown");
    });

    let native =
        std::fs::read_to_string(native_dir.path().join("out.jsonl")).expect("native output");
    let wasm = std::fs::read_to_string(wasm_dir.path().join("out.jsonl")).expect("wasm output");
    assert_eq!(
        native.lines().count(),
        records.len(),
        "every record and the resource line"
    );
    assert!(native == wasm, "{}", wasmtel_tests::diff(&native, &wasm));
}
