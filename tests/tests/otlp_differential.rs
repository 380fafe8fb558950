//! The fixture exported by the Wasm `otlp` plugin and by opentelemetry-otlp (native, the crate
//! Codex exports with) to receivers on 127.0.0.1, over OTLP/HTTP protobuf, OTLP/HTTP JSON and
//! OTLP/gRPC, decodes to the same resource, scopes, records, attributes, values, ids and times.
//!
//! Both sides are brought to one form to compare: protobuf requests are written as OTLP/JSON,
//! then every request is flattened to its records, each with its resource (attributes sorted:
//! the native resource keeps them in a hash map) and scope, and sorted (opentelemetry-otlp
//! groups records by scope in a hash map). Set aside: the version of a log record's scope, which
//! opentelemetry-otlp 0.31 drops (it names a logs scope by its name alone; wasmtel keeps the
//! version, which `otlp::http_protobuf_carries_every_record_over_few_connections` checks); span `flags`
//! (opentelemetry-otlp sets the bit "whether the parent is remote is known"; the batch layout
//! does not know it, so wasmtel sends 0); 64-bit integers written as numbers where the OTLP JSON
//! mapping says strings (opentelemetry-otlp 0.31 does so for some; wasmtel writes strings, which
//! `otlp::http_json_with_gzip_follows_the_otlp_json_mapping` checks); fields at their default
//! value, which OTLP/JSON may leave out. Metrics compare by their totals per stream (the native
//! side records them on the SDK's instruments, which stamp their own times); histograms are left
//! out on both sides.

use std::collections::BTreeMap;

use prost::Message;
use serde_json::Value as Json;
use wasmtel::jsonl::parse_line;
use wasmtel_sdk::model::{KeyValue, Record};
use wasmtel_sdk::otlp::json;
use wasmtel_sdk::otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use wasmtel_sdk::otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use wasmtel_sdk::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use wasmtel_tests::native_otlp::{Native, Transport};
use wasmtel_tests::receiver::{Received, Receiver};
use wasmtel_tests::{config, fixture, replay_fixture};

/// The fixture: its resource and records.
fn fixture_records() -> (Vec<KeyValue>, Vec<Record>) {
    let text = std::fs::read_to_string(fixture()).expect("fixture");
    let mut resource = Vec::new();
    let mut records = Vec::new();
    for line in text.lines() {
        match parse_line(line).expect("a valid line") {
            Record::Resource(attributes) => resource = attributes,
            record => records.push(record),
        }
    }
    (resource, records)
}

/// Every request a receiver got, as OTLP/JSON, by signal.
fn as_json(requests: &[Received], transport: Transport) -> BTreeMap<&'static str, Vec<Json>> {
    let mut by_signal: BTreeMap<&'static str, Vec<Json>> = BTreeMap::new();
    for r in requests {
        let payload = r.payload();
        let path = r.path.to_ascii_lowercase();
        let signal = ["logs", "trace", "metrics"]
            .into_iter()
            .find(|s| path.contains(s))
            .unwrap_or_else(|| panic!("a request to {}", r.path));
        let text = match transport {
            Transport::HttpJson => payload,
            _ => match signal {
                "logs" => {
                    json::logs(&ExportLogsServiceRequest::decode(payload.as_slice()).expect("logs"))
                }
                "trace" => json::traces(
                    &ExportTraceServiceRequest::decode(payload.as_slice()).expect("traces"),
                ),
                _ => json::metrics(
                    &ExportMetricsServiceRequest::decode(payload.as_slice()).expect("metrics"),
                ),
            },
        };
        let mut value: Json = serde_json::from_slice(&text).expect("OTLP/JSON");
        normalize(&mut value);
        by_signal.entry(signal).or_default().push(value);
    }
    by_signal
}

/// 64-bit integers as strings; fields at their default value, and spans' `flags`, left out.
fn normalize(value: &mut Json) {
    const INT64: [&str; 7] = [
        "timeUnixNano",
        "observedTimeUnixNano",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "asInt",
        "intValue",
        "count",
    ];
    match value {
        Json::Object(map) => {
            // A span's flags (see above): a span is what has a `parentSpanId` or `kind`.
            if map.contains_key("kind") || map.contains_key("parentSpanId") {
                map.remove("flags");
            }
            for (key, v) in map.iter_mut() {
                if INT64.contains(&key.as_str()) && v.is_number() {
                    *v = Json::String(v.to_string());
                }
                normalize(v);
            }
            map.retain(|key, v| {
                !(v.is_null()
                    || v.as_str() == Some("")
                    || v.as_array().is_some_and(Vec::is_empty)
                    || v.as_object()
                        .is_some_and(|o| o.is_empty() && key != "value")
                    || (v.as_i64() == Some(0) && key != "value" && !key.ends_with("Value"))
                    || (key == "isMonotonic" && v == &Json::Bool(false)))
            });
        }
        Json::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Where two JSON values differ: a line per path, with both values.
fn differences(a: &Json, b: &Json, path: &str) -> Vec<String> {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let null = Json::Null;
                    differences(
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        &format!("{path}.{k}"),
                    )
                })
                .collect()
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .flat_map(|(i, (p, q))| differences(p, q, &format!("{path}[{i}]")))
            .collect(),
        _ if a == b => Vec::new(),
        _ => vec![format!("  {path}: {a} | {b}")],
    }
}

/// The records of OTLP/JSON requests: each with its resource (attributes sorted) and scope.
fn flatten(requests: &[Json], resources: &str, scopes: &str, items: &str) -> Vec<Json> {
    let mut out = Vec::new();
    for request in requests {
        for r in request[resources].as_array().into_iter().flatten() {
            let mut resource = r["resource"].clone();
            if let Some(attributes) = resource.get_mut("attributes").and_then(Json::as_array_mut) {
                attributes.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
            }
            for s in r[scopes].as_array().into_iter().flatten() {
                for item in s[items].as_array().into_iter().flatten() {
                    out.push(serde_json::json!({
                        "resource": resource,
                        "scope": s.get("scope"),
                        "item": item,
                    }));
                }
            }
        }
    }
    out
}

/// The totals of sums (added up) and gauges (the last value) per stream: scope, name, unit,
/// kind, temporality, monotonic and attribute set.
fn totals(requests: &[Json]) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    for m in flatten(requests, "resourceMetrics", "scopeMetrics", "metrics") {
        let item = &m["item"];
        for (kind, data) in item.as_object().expect("a metric") {
            let Some(points) = data.get("dataPoints").and_then(Json::as_array) else {
                continue;
            };
            if kind == "histogram" {
                continue;
            }
            for p in points {
                let mut attributes = p.get("attributes").cloned().unwrap_or_default();
                if let Some(a) = attributes.as_array_mut() {
                    a.sort_by(|x, y| x["key"].as_str().cmp(&y["key"].as_str()));
                }
                let stream = format!(
                    "{} {} {} {kind} {} {} {attributes}",
                    m["scope"],
                    item["name"],
                    item.get("unit").unwrap_or(&Json::Null),
                    data.get("aggregationTemporality").unwrap_or(&Json::Null),
                    data.get("isMonotonic").unwrap_or(&Json::Null),
                );
                let value = p
                    .get("asInt")
                    .or(p.get("asDouble"))
                    .and_then(Json::as_f64)
                    .unwrap_or(0.0);
                let total = totals.entry(stream).or_insert(0.0);
                if kind == "sum" {
                    *total += value;
                } else {
                    *total = value;
                }
            }
        }
    }
    totals
}

fn differential(transport: Transport, protocol: &str) {
    let (resource, records) = fixture_records();
    let ours = Receiver::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = replay_fixture(config(
        tmp.path(),
        &format!(
            "[telemetry]\nsession_id = \"differential\"\n[exporters.collector]\nplugin = \"otlp\"\n\
             config = {{ endpoint = \"http://{}\", protocol = \"{protocol}\" }}\n",
            ours.addr
        ),
    ));
    assert_eq!(summary.exporters[0].dropped(), 0, "{summary}");
    let theirs = Receiver::start();
    Native::new(&format!("http://{}", theirs.addr), transport).export(&resource, &records);

    let ours = as_json(&ours.requests(), transport);
    let theirs = as_json(&theirs.requests(), transport);
    for (signal, resources, scopes, items, expected) in [
        ("logs", "resourceLogs", "scopeLogs", "logRecords", 444),
        ("trace", "resourceSpans", "scopeSpans", "spans", 124),
    ] {
        let (mut a, mut b) = (
            flatten(&ours[signal], resources, scopes, items),
            flatten(&theirs[signal], resources, scopes, items),
        );
        for record in a.iter_mut().chain(b.iter_mut()) {
            if signal == "logs"
                && let Some(scope) = record.get_mut("scope").and_then(Json::as_object_mut)
            {
                scope.remove("version");
            }
        }
        // opentelemetry-otlp groups records by scope in a hash map: their order across scopes
        // is its map's.
        a.sort_by_cached_key(Json::to_string);
        b.sort_by_cached_key(Json::to_string);
        assert_eq!(a.len(), expected, "{protocol} {signal}: ours");
        assert_eq!(
            b.len(),
            expected,
            "{protocol} {signal}: opentelemetry-otlp's"
        );
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let differences = differences(x, y, "");
            assert!(
                differences.is_empty(),
                "{protocol} {signal}: record {i} differs (ours, then opentelemetry-otlp's):\n{}",
                differences.join("\n")
            );
        }
    }
    let (a, b) = (totals(&ours["metrics"]), totals(&theirs["metrics"]));
    assert!(
        a.len() >= 10,
        "{protocol}: the fixture's sums and gauges: {a:#?}"
    );
    assert_eq!(a, b, "{protocol}: metric totals");
}

#[test]
fn http_protobuf_matches_opentelemetry_otlp() {
    differential(Transport::HttpProtobuf, "http/protobuf");
}

#[test]
fn http_json_matches_opentelemetry_otlp() {
    differential(Transport::HttpJson, "http/json");
}

#[test]
fn grpc_matches_opentelemetry_otlp() {
    differential(Transport::Grpc, "grpc");
}
