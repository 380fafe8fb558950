//! The persistent spool's cost: events recorded and exported through file-jsonl (as a Wasm
//! component, writing to /dev/null) with the spool off (the peer) and on, for each `sync`
//! policy; the events/s of each and their ratio to the spool off are printed at the end. The
//! spool writes into a temporary directory on the machine's disk.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wasmtel::{Config, Telemetry};

/// Events per measured round: recorded (waiting for room), then flushed.
const EVENTS: u64 = 20_000;

/// The variants: a name, and the `spool` table of the queue (none: off).
const VARIANTS: [(&str, Option<&str>); 4] = [
    ("spool off (peer)", None),
    (
        "spool, sync per interval (500 ms)",
        Some("sync = \"interval\""),
    ),
    ("spool, sync never", Some("sync = \"never\"")),
    ("spool, sync per batch", Some("sync = \"batch\"")),
];

/// A telemetry whose one exporter, file-jsonl, writes to /dev/null, spooling into `dir` if
/// `spool` is given.
fn telemetry(spool: Option<&str>, dir: &Path) -> Telemetry {
    let spool = spool.map_or(String::new(), |keys| {
        format!(", spool = {{ dir = {:?}, {keys} }}", dir.join("spool"))
    });
    let text = format!(
        "[telemetry]\nshutdown_timeout_ms = 60000\n\
         [exporters.null]\nplugin = \"file-jsonl\"\n\
         config = {{ file = \"null\", max_total_bytes = 0 }}\n\
         sandbox = {{ dir = \"/dev\" }}\nqueue = {{ capacity = 65536{spool} }}\n"
    );
    let config = Config::parse(&text, Path::new("bench.toml"), Path::new(".")).expect("config");
    Telemetry::start(config).expect("start")
}

/// Records `EVENTS` events and waits until they are exported.
fn round(telemetry: &Telemetry) {
    for i in 0..EVENTS as i64 {
        let event = wasmtel::Event::new("codex.tool_result")
            .attr("tool_name", "shell")
            .attr("call_id", i)
            .attr("duration_ms", 42)
            .attr("success", "true")
            .attr(
                "output",
                "a line of what the tool printed, as Codex records it",
            );
        telemetry.record_blocking(wasmtel::model::Record::Event(event));
    }
    assert!(telemetry.flush(Duration::from_secs(60)), "flushed");
}

fn spool(c: &mut Criterion) {
    let dirs: Vec<tempfile::TempDir> = VARIANTS
        .iter()
        .map(|_| tempfile::tempdir_in(std::env::temp_dir()).expect("tempdir"))
        .collect();
    let telemetries: Vec<Telemetry> = VARIANTS
        .iter()
        .zip(&dirs)
        .map(|((_, spool), dir)| telemetry(*spool, dir.path()))
        .collect();
    let mut group = c.benchmark_group(format!("record and export {EVENTS} events"));
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    for ((name, _), telemetry) in VARIANTS.iter().zip(&telemetries) {
        group.bench_function(*name, |b| b.iter(|| round(telemetry)));
    }
    group.finish();
    if std::env::args().any(|a| a == "--profile-time") {
        return;
    }
    // The ratios, measured the same way for all: rounds of each in turn, the best of each.
    let mut best = [0f64; VARIANTS.len()];
    for _ in 0..5 {
        for (i, telemetry) in telemetries.iter().enumerate() {
            let start = Instant::now();
            round(telemetry);
            best[i] = best[i].max(EVENTS as f64 / start.elapsed().as_secs_f64());
        }
    }
    println!(
        "\nrecord and export through file-jsonl (wasm) to /dev/null, rounds of {EVENTS} events, best of 5:"
    );
    for ((name, _), rate) in VARIANTS.iter().zip(best) {
        println!(
            "  {name}: {rate:.0} events/s, {:.2} of the spool off",
            rate / best[0]
        );
    }
    for (telemetry, dir) in telemetries.iter().zip(&dirs) {
        let stats = telemetry.shutdown();
        assert!(
            stats.iter().all(|s| s.dropped() == 0 && s.spooled == 0),
            "{} lost or kept records: {stats:?}",
            dir.path().display()
        );
    }
}

criterion_group!(benches, spool);
criterion_main!(benches);
