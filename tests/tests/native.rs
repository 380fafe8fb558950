//! A plugin written with the SDK compiles natively too: the same file-jsonl code, run natively
//! and as a component on the same batch, writes the same bytes: those of the fixture.

use wasmtel::model::Record;
use wasmtel::plugin::{Batch, builtin};
use wasmtel_sdk::{Context, Exporter, encode};
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
    let batch = Batch::of(resource, &records[1..]);
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
    let view = wasmtel_sdk::Batch::new(batch.laid_out()).expect("a batch");
    native.export(&view).expect("export");
    native.flush().expect("flush syncs the file");
    native.shutdown().expect("shutdown");

    let wasm_dir = tempfile::tempdir().expect("tempdir");
    let component = builtin("file-jsonl").expect("built in");
    wasmtel_tests::export_once("same", component, wasm_dir.path(), config, &batch);

    let native =
        std::fs::read_to_string(native_dir.path().join("out.jsonl")).expect("native output");
    let wasm = std::fs::read_to_string(wasm_dir.path().join("out.jsonl")).expect("wasm output");
    assert_eq!(
        native.lines().count(),
        records.len(),
        "every record and the resource line"
    );
    assert!(native == wasm, "{}", wasmtel_tests::diff(&native, &wasm));
    assert!(native == text, "{}", wasmtel_tests::diff(&text, &native));
}

/// file-jsonl writes text (keys and values) as `serde_json` does, byte for byte: every ASCII
/// character at every place of two eight-byte words and of a tail, and characters of every UTF-8
/// length within and across words.
#[test]
fn text_is_escaped_exactly_as_serde_json_escapes_it() {
    let mut texts: Vec<String> = Vec::new();
    for len in [1, 7, 16, 19] {
        for at in 0..len {
            for byte in 0u8..0x80 {
                let mut text = "a".repeat(len);
                text.replace_range(at..=at, &char::from(byte).to_string());
                texts.push(text);
            }
        }
    }
    for special in ["\"", "\\", "\n", "\u{1f}", "\u{7f}", "é", "€", "𝄞"] {
        for before in 0..17 {
            for after in [0, 1, 7, 8, 9] {
                texts.push(format!(
                    "{}{special}{}",
                    "a".repeat(before),
                    "b".repeat(after)
                ));
            }
        }
    }
    texts.push("\"\\\u{0}\u{8}\u{c}\t\r\n".repeat(5));
    for text in texts {
        let resource = [wasmtel::KeyValue::new(text.clone(), text.clone())];
        let laid_out = encode::batch(&resource, &[Record::Event(wasmtel::Event::new("e"))]);
        let batch = wasmtel_sdk::Batch::new(&laid_out).expect("a batch");
        let mut lines = file_jsonl::LineWriter::default();
        lines.resource(batch.resource());
        batch.records().for_each(|r| lines.record(r));
        let json = serde_json::to_string(&text).expect("serializable");
        let expected = format!("{{\"type\":\"resource\",\"attributes\":{{{json}:{json}}}}}\n");
        let written = String::from_utf8(lines.lines().to_vec()).expect("UTF-8");
        assert_eq!(
            written.lines().next().map(|l| format!("{l}\n")),
            Some(expected)
        );
    }
}

/// file-jsonl writes a time as `humantime` writes it (RFC 3339, UTC, nine digits of
/// nanoseconds): at the epoch, at the edges of days, months, leap days and centuries, at the last
/// nanosecond a `u64` holds, and at a spread of times between.
#[test]
fn times_are_written_as_humantime_writes_them() {
    const DAY: u64 = 86_400_000_000_000;
    let mut times = vec![0, 1, 999_999_999, 1_000_000_000, DAY - 1, DAY, u64::MAX];
    for date in [
        "1972-02-29T00:00:00Z",
        "1972-03-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2000-02-29T12:00:00Z",
        "2026-11-20T09:00:02.989Z",
        "2100-02-28T23:59:59Z",
        "2100-03-01T00:00:00Z",
        "2400-02-29T00:00:00Z",
    ] {
        let at = humantime::parse_rfc3339(date).expect("a date");
        let nanos = at
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64;
        times.extend([nanos - 1, nanos, nanos + 1]);
    }
    // A spread across the whole range, each a different time of day and fraction.
    times.extend((1..5000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % u64::MAX));
    for nanos in times {
        let event = wasmtel::Event::new("e").at(nanos);
        let laid_out = encode::batch(&[], &[Record::Event(event)]);
        let batch = wasmtel_sdk::Batch::new(&laid_out).expect("a batch");
        let mut lines = file_jsonl::LineWriter::default();
        batch.records().for_each(|r| lines.record(r));
        let written = String::from_utf8(lines.lines().to_vec()).expect("UTF-8");
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
        let expected = format!("\"time\":\"{}\"", humantime::format_rfc3339_nanos(at));
        assert!(
            written.contains(&expected),
            "{nanos} ns: {expected} in {written}"
        );
    }
}
