//! Benchmarks, each beside a peer measured in the same run (the record call is in `record.rs`):
//! - exporting a batch of the fixture's events into file-jsonl as a Wasm component, beside the
//!   same exporter compiled natively; the events/s of both and their ratio are printed at the end;
//! - a whole replay of the fixture (parse, pipeline, Wasm export).
//!
//! The export benchmark's exporters write regular files, each in a directory of its own (files of
//! 16 MiB, 64 MiB kept): the path a real exporter takes. The replay writes to /dev/null.

use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use file_jsonl::FileJsonl;
use wasmtel::model::{Event, KeyValue, Record};
use wasmtel::plugin::{Batch, Runtime, Sandbox, builtin};
use wasmtel::{Config, Telemetry};
use wasmtel_sdk::{Context, Exporter};

#[path = "../../tests/src/fixture.rs"]
mod fixture;

/// file-jsonl's config: rotated files, the oldest deleted past 64 MiB.
const FILE_CONFIG: &str = r#""file":"bench.jsonl","max_total_bytes":67108864"#;

fn fixture() -> (Vec<KeyValue>, Vec<Event>) {
    let file = std::fs::File::open(fixture::fixture()).expect("the fixture");
    let mut resource = Vec::new();
    let mut events = Vec::new();
    for record in wasmtel::jsonl::Reader::new(BufReader::new(file), "fixture") {
        match record.expect("a valid fixture") {
            Record::Resource(r) => resource = r,
            Record::Event(e) => events.push(e),
            _ => {}
        }
    }
    (resource, events)
}

/// A config whose one exporter, file-jsonl, writes to /dev/null.
fn dev_null_config() -> Config {
    let text = "[exporters.null]\nplugin = \"file-jsonl\"\n\
                config = { file = \"null\", max_total_bytes = 0 }\n\
                sandbox = { dir = \"/dev\" }\nqueue = { capacity = 65536 }\n";
    Config::parse(text, Path::new("bench.toml"), Path::new(".")).expect("a valid config")
}

struct Exporters {
    resource: Vec<KeyValue>,
    /// The fixture's events, which each export lays out as a batch (as the record calls would),
    /// then exports.
    events: Vec<Record>,
    rt: tokio::runtime::Runtime,
    wasm: wasmtel::plugin::Instance,
    /// The same plugin with none of the sandbox's limits: what they cost.
    unbounded: wasmtel::plugin::Instance,
    native: FileJsonl,
    /// Where each writes.
    _dirs: [tempfile::TempDir; 3],
}

/// file-jsonl, started in `runtime`, writing files in `dir`.
fn started(
    rt: &tokio::runtime::Runtime,
    runtime: Runtime,
    dir: &Path,
) -> wasmtel::plugin::Instance {
    let plugin = runtime
        .load("file-jsonl", builtin("file-jsonl").expect("built in"))
        .expect("load");
    let sandbox = Sandbox {
        dir: Some(dir.to_path_buf()),
        ..Sandbox::default()
    };
    rt.block_on(async {
        let mut instance = plugin
            .instantiate("bench", &sandbox)
            .await
            .expect("instantiate");
        instance
            .init(&format!("{{{FILE_CONFIG}}}"), "bench", "bench")
            .await
            .expect("init");
        instance
    })
}

impl Exporters {
    fn new() -> Self {
        let (resource, events) = fixture();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let cache = wasmtel::default_cache_dir;
        let dirs = [(); 3].map(|()| tempfile::tempdir().expect("tempdir"));
        let wasm = started(&rt, Runtime::new(cache()).expect("runtime"), dirs[0].path());
        let runtime = Runtime::unbounded(cache()).expect("runtime");
        let unbounded = started(&rt, runtime, dirs[1].path());
        let context = Context {
            exporter_name: "bench".into(),
            session_id: "bench".into(),
        };
        let native_config = format!("{{{FILE_CONFIG},\"dir\":{:?}}}", dirs[2].path());
        let native = FileJsonl::init(&native_config, &context).unwrap_or_else(|e| panic!("{e:?}"));
        Exporters {
            resource,
            events: events.into_iter().map(Record::Event).collect(),
            rt,
            wasm,
            unbounded,
            native,
            _dirs: dirs,
        }
    }

    /// The events laid out as a batch.
    fn batch(&self) -> Batch {
        Batch::of(&self.resource, &self.events)
    }

    fn wasm(&mut self) {
        let batch = self.batch();
        self.rt.block_on(self.wasm.export(&batch)).expect("export");
    }

    fn unbounded(&mut self) {
        let batch = self.batch();
        self.rt
            .block_on(self.unbounded.export(&batch))
            .expect("export");
    }

    fn native(&mut self) {
        let batch = self.batch();
        let view = wasmtel_sdk::Batch::new(batch.laid_out()).expect("a batch");
        self.native.export(&view).expect("export");
    }
}

fn export(c: &mut Criterion) {
    let mut x = Exporters::new();
    let n = x.events.len() as u64;
    let mut group = c.benchmark_group(format!("export {n} events into file-jsonl"));
    group.throughput(Throughput::Elements(n));
    group.bench_function("native (peer)", |b| b.iter(|| x.native()));
    group.bench_function("wasm", |b| b.iter(|| x.wasm()));
    group.bench_function(
        "wasm without the sandbox's limits or epoch checks (peer)",
        |b| b.iter(|| x.unbounded()),
    );
    group.finish();

    // Profiling one of the benchmarks (`--profile-time`) profiles it alone.
    if std::env::args().any(|a| a == "--profile-time") {
        return;
    }
    // The ratios, measured the same way for all three: rounds of each in turn, the best round of
    // each (what the machine's other load took least from).
    let rate = |f: &mut dyn FnMut()| {
        let (start, mut batches) = (Instant::now(), 0u64);
        while start.elapsed() < Duration::from_millis(500) {
            f();
            batches += 1;
        }
        (batches * n) as f64 / start.elapsed().as_secs_f64()
    };
    let (mut native, mut wasm, mut unbounded) = (0f64, 0f64, 0f64);
    for _ in 0..6 {
        native = native.max(rate(&mut || x.native()));
        wasm = wasm.max(rate(&mut || x.wasm()));
        unbounded = unbounded.max(rate(&mut || x.unbounded()));
    }
    println!(
        "\nexport into file-jsonl, batches of {n} fixture events (encode + export), best of 6 \
         rounds of 0.5 s: \
         native {native:.0} events/s, wasm {wasm:.0} events/s, wasm/native = {:.2}; \
         wasm without the sandbox's limits or epoch checks {unbounded:.0} events/s, limited/unlimited = {:.3}\n",
        wasm / native,
        wasm / unbounded
    );
}

fn replay(c: &mut Criterion) {
    let (_, events) = fixture();
    let records = std::fs::read_to_string(fixture::fixture())
        .expect("fixture")
        .lines()
        .count() as u64
        - 1;
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(records));
    group.bench_function(
        format!(
            "the fixture ({records} records, {} events), start to shutdown",
            events.len()
        ),
        |b| {
            b.iter(|| {
                let open = || std::fs::File::open(fixture::fixture()).map(BufReader::new);
                let summary = wasmtel::replay(
                    "fixture",
                    open,
                    Telemetry::builder(dev_null_config()),
                    |_, _| {},
                )
                .expect("replay");
                assert_eq!(summary.exporters[0].records_exported, records);
            })
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = export, replay
}
criterion_main!(benches);
