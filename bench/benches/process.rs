//! Whole-process figures, each measured in a process of its own (this benchmark run again with
//! `--child NAME`), so that its peak memory and CPU time are its own, as the kernel counts them:
//!
//! - replay of a 1,000,000-event input (the fixture's records, repeated) into file-jsonl writing
//!   a real file: events/s and peak RSS, beside reading and parsing the same input alone;
//! - a live application recording 10,000 events/s for 10 s into file-jsonl: the process's CPU
//!   time (the application's record calls included) as a share of one core;
//! - resident memory with every built-in plugin started, beside the same process before start;
//! - start to first export: the time from `Telemetry::start` until a first event has been
//!   exported, with the compiled plugins cached and cold (an empty cache).
//!
//! `cargo bench -p wasmtel-bench --bench process` prints one line per figure.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtel::{Config, Telemetry};

mod common;
#[path = "../../tests/src/fixture.rs"]
mod fixture;

use common::memory;

const EVENTS: u64 = 1_000_000;
const LIVE_RATE: u64 = 10_000;
const LIVE_SECONDS: u64 = 10;

/// A config whose one exporter writes the record format into `dir`, with room for the replay's
/// output (about 700 MB).
fn config(dir: &Path) -> Config {
    let text = format!(
        "[telemetry]\nsession_id = \"bench\"\n[exporters.session]\nplugin = \"file-jsonl\"\n\
         sandbox = {{ dir = {:?}, disk_mib = 2048 }}\nconfig = {{ max_total_bytes = 0 }}\n",
        dir.join("logs")
    );
    Config::parse(&text, Path::new("bench.toml"), dir).expect("config")
}

/// The fixture's records (all but its resource line), repeated until they hold `EVENTS`
/// events, written once under `target/`.
fn million() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data/million.jsonl");
    if path.exists() {
        return path;
    }
    let text = std::fs::read_to_string(fixture::fixture()).expect("fixture");
    let (resource, records) = text.split_once('\n').expect("a resource line first");
    let events = records
        .lines()
        .filter(|l| l.contains("\"type\":\"event\""))
        .count() as u64;
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
    let partial = path.with_extension("partial");
    let mut out = BufWriter::new(std::fs::File::create(&partial).expect("create"));
    writeln!(out, "{resource}").expect("write");
    for _ in 0..EVENTS.div_ceil(events) {
        out.write_all(records.as_bytes()).expect("write");
    }
    out.flush().expect("flush");
    std::fs::rename(&partial, &path).expect("rename");
    path
}

/// This process's CPU time so far, user and system.
fn cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: filled above (or left zeroed).
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The measurements, each run in a process of its own.
fn child(name: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    match name {
        "parse" => {
            let started = Instant::now();
            let reader = BufReader::new(std::fs::File::open(million()).expect("input"));
            let mut records = 0u64;
            for record in wasmtel::jsonl::Reader::new(reader, "million") {
                record.expect("valid");
                records += 1;
            }
            let rate = records as f64 / started.elapsed().as_secs_f64();
            println!(
                "read and parse the input alone (peer): {rate:.0} records/s, peak RSS {:.0} MiB",
                memory().0
            );
        }
        "replay" => {
            let input = million();
            let started = Instant::now();
            let open = || std::fs::File::open(&input).map(BufReader::new);
            let builder = Telemetry::builder(config(tmp.path()));
            let summary = wasmtel::replay("million", open, builder, |_, _| {}).expect("the replay");
            let elapsed = started.elapsed().as_secs_f64();
            let s = &summary.exporters[0];
            assert_eq!(s.dropped(), 0, "{s}");
            let events = count_events(&input);
            println!(
                "replay of {events} events ({} records) into file-jsonl: {:.0} events/s \
                 ({:.0} records/s), peak RSS {:.0} MiB",
                summary.records,
                events as f64 / elapsed,
                summary.records as f64 / elapsed,
                memory().0
            );
        }
        "live" => {
            let telemetry = Telemetry::start(config(tmp.path())).expect("start");
            let before = cpu();
            let started = Instant::now();
            let tick = Duration::from_millis(10);
            let per_tick = LIVE_RATE / 100;
            for n in 0..LIVE_SECONDS * 100 {
                for i in 0..per_tick {
                    telemetry
                        .event("codex.tool_result")
                        .attr("tool_name", "shell")
                        .attr("call_id", format!("call_{n}_{i}"))
                        .attr("duration_ms", i)
                        .attr("success", "true")
                        .attr("output", "ok: 42 passed; 0 failed")
                        .emit();
                }
                if let Some(wait) = (tick * (n as u32 + 1)).checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let (busy, wall) = (cpu() - before, started.elapsed());
            let s = telemetry.shutdown().remove(0);
            assert_eq!(s.dropped(), 0, "{s}");
            println!(
                "live, {LIVE_RATE} events/s for {LIVE_SECONDS} s into file-jsonl: CPU {:.2} % \
                 of one core ({} ms of CPU in {:.1} s), {} exported",
                100.0 * busy.as_secs_f64() / wall.as_secs_f64(),
                busy.as_millis(),
                wall.as_secs_f64(),
                s.records_exported
            );
        }
        "rss" => {
            let before = memory().1;
            let dir = tmp.path();
            let mut text = String::from("[telemetry]\nsession_id = \"bench\"\n");
            for name in wasmtel::plugin::builtin_names() {
                text += &format!(
                    "[exporters.{name}]\nplugin = {name:?}\nsandbox = {{ dir = {:?} }}\n",
                    dir.join(name)
                );
            }
            let config = Config::parse(&text, Path::new("bench.toml"), dir).expect("config");
            let telemetry = Telemetry::start(config).expect("start");
            let after = memory().1;
            println!(
                "resident memory with every built-in plugin started ({}): {after:.0} MiB, \
                 before start {before:.0} MiB (peer)",
                wasmtel::plugin::builtin_names().join(", ")
            );
            telemetry.shutdown();
        }
        "start" => {
            let cache = tmp.path().join("cache");
            let first_export = |what: &str| {
                let started = Instant::now();
                let telemetry = Telemetry::builder(config(tmp.path()))
                    .cache_dir(Some(cache.clone()))
                    .start()
                    .expect("start");
                telemetry.event("codex.conversation_starts").emit();
                assert!(telemetry.flush(Duration::from_secs(60)), "flushed");
                let elapsed = started.elapsed();
                let s = telemetry.shutdown().remove(0);
                assert_eq!(s.records_exported, 1, "{s}");
                println!(
                    "start to first export, {what}: {:.1} ms",
                    elapsed.as_secs_f64() * 1e3
                );
            };
            first_export("cold (empty plugin cache)");
            first_export("compiled plugins cached");
        }
        other => panic!("no measurement {other:?}"),
    }
}

fn count_events(input: &Path) -> u64 {
    let file = BufReader::new(std::fs::File::open(input).expect("input"));
    file.lines()
        .map(|l| l.expect("line"))
        .filter(|l| l.contains("\"type\":\"event\""))
        .count() as u64
}

fn main() {
    common::main(
        &["parse", "replay", "live", "rss", "start"],
        || {
            million();
        },
        child,
    );
}
