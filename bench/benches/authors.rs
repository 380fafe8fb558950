//! The CSV example exporters (`examples/plugins`), written in Rust, JavaScript (ComponentizeJS) and
//! Python (componentize-py), on the same input: the fixture's records (events, spans and
//! metrics) as one batch, exported again and again, each plugin in the default sandbox of a
//! plugin in JavaScript or Python, writing its rows to /dev/null. Prints the records/s of each and their ratios to Rust.

use std::io::BufReader;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wasmtel::model::Record;
use wasmtel::plugin::{Batch, Instance, Limits, Runtime, Sandbox};
use wasmtel_tests::{CSV_JS, CSV_PYTHON, CSV_RUST};

#[path = "../../tests/src/fixture.rs"]
mod fixture;

/// The fixture as one batch.
fn batch() -> Batch {
    let file = std::fs::File::open(fixture::fixture()).expect("the fixture");
    let mut resource = Vec::new();
    let mut records = Vec::new();
    for record in wasmtel::jsonl::Reader::new(BufReader::new(file), "fixture") {
        match record.expect("a valid fixture") {
            Record::Resource(r) => resource = r,
            record => records.push(record),
        }
    }
    Batch::of(&resource, &records)
}

/// The example in `path`, started in the default sandbox of a plugin in JavaScript or Python, but
/// for its directory, /dev, where it writes `null`.
fn started(rt: &tokio::runtime::Runtime, runtime: &Runtime, path: &str) -> Instance {
    let bytes = std::fs::read(path).expect("the example, built by the tests' build script");
    let plugin = runtime.load(path, &bytes).expect("load");
    let sandbox = Sandbox {
        dir: Some("/dev".into()),
        // What a plugin in JavaScript or Python gets by default (one in Rust, 64 MiB).
        limits: Limits {
            memory_bytes: 256 << 20,
            ..Sandbox::default().limits
        },
        ..Sandbox::default()
    };
    rt.block_on(async {
        let mut instance = plugin.instantiate("bench", &sandbox).await.expect("start");
        instance
            .init(r#"{"file":"null"}"#, "bench", "bench")
            .await
            .expect("init");
        instance
    })
}

fn csv(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runtime = Runtime::new(wasmtel::default_cache_dir()).expect("runtime");
    let batch = batch();
    let n = batch.len() as u64;
    let mut plugins: Vec<(&str, Instance)> = [
        ("Rust", CSV_RUST),
        ("JavaScript", CSV_JS),
        ("Python", CSV_PYTHON),
    ]
    .into_iter()
    .map(|(language, path)| (language, started(&rt, &runtime, path)))
    .collect();
    let export = |instance: &mut Instance| {
        rt.block_on(instance.export(&batch)).expect("export");
    };
    let mut group = c.benchmark_group(format!("export {n} fixture records into the CSV example"));
    group.throughput(Throughput::Elements(n));
    for (language, instance) in &mut plugins {
        group.bench_function(*language, |b| b.iter(|| export(instance)));
    }
    group.finish();
    if std::env::args().any(|a| a == "--profile-time") {
        return;
    }
    // The same for all three: rounds of each in turn, the best round of each (what the machine's
    // other load took least from).
    let mut best = vec![0f64; plugins.len()];
    for _ in 0..6 {
        for ((_, instance), best) in plugins.iter_mut().zip(&mut best) {
            let (start, mut batches) = (Instant::now(), 0u64);
            while start.elapsed() < Duration::from_millis(500) {
                export(instance);
                batches += 1;
            }
            *best = best.max((batches * n) as f64 / start.elapsed().as_secs_f64());
        }
    }
    let rates: Vec<String> = plugins
        .iter()
        .zip(&best)
        .map(|((language, _), rate)| {
            format!(
                "{language} {rate:.0} records/s ({:.2} of Rust)",
                rate / best[0]
            )
        })
        .collect();
    println!(
        "\nCSV examples, the fixture's {n} records a batch, best of 6 rounds of 0.5 s each: {}\n",
        rates.join(", ")
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = csv
}
criterion_main!(benches);
