//! `wasmtel sessions summary` over 100 MB and 1 GB of session logs (the fixture's records
//! repeated, as file-jsonl writes and numbers them, 64 MiB per file), each in a process of its
//! own: MB/s on one thread and peak resident memory, beside two peers over the same files in the
//! same run: reading their lines alone, and parsing each line into a record with the
//! record-format reader (`wasmtel::jsonl`, what `replay` reads with).
//!
//! `cargo bench -p wasmtel-bench --bench sessions` prints one line per figure.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use wasmtel::sessions::{Logs, Place};

mod common;
#[path = "../../tests/src/fixture.rs"]
mod fixture;

/// The sizes measured, and the size of each file.
const SIZES: [(&str, u64); 2] = [("100MB", 100_000_000), ("1GB", 1_000_000_000)];
const FILE_BYTES: u64 = 64 << 20;

/// A directory of one session's logs of about `bytes`, written once under `target/`.
fn logs(name: &str, bytes: u64) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../target/bench-data/sessions-{name}"));
    if dir.join("done").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("folder");
    let text = std::fs::read_to_string(fixture::fixture()).expect("fixture");
    let (resource, records) = text.split_once('\n').expect("a resource line first");
    let (mut written, mut number) = (0u64, 0u64);
    while written < bytes {
        let name = match number {
            0 => "wasmtel-bench.jsonl".to_string(),
            n => format!("wasmtel-bench.{n}.jsonl"),
        };
        let mut out = BufWriter::new(std::fs::File::create(dir.join(name)).expect("create"));
        writeln!(out, "{resource}").expect("write");
        let mut in_file = resource.len() as u64 + 1;
        while in_file < FILE_BYTES && written + in_file < bytes {
            out.write_all(records.as_bytes()).expect("write");
            in_file += records.len() as u64;
        }
        out.flush().expect("flush");
        written += in_file;
        number += 1;
    }
    std::fs::write(dir.join("done"), "").expect("mark");
    dir
}

fn size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").metadata().expect("size").len())
        .sum()
}

/// The files of the session, in order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let logs = Logs::find(&[place(dir)]).expect("logs");
    logs.sessions()[0]
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect()
}

fn place(dir: &Path) -> Place {
    Place {
        dir: dir.to_path_buf(),
        file: "wasmtel-{session_id}.jsonl".into(),
    }
}

/// One measurement: `MEASURE=NAME:SIZE`.
fn child(arg: &str) {
    let (measure, what) = arg.split_once('=').expect("MEASURE=NAME:SIZE");
    let (name, bytes) = what.split_once(':').expect("NAME:SIZE");
    let bytes: u64 = bytes.parse().expect("a size");
    let dir = logs(name, bytes);
    let total = size(&dir) as f64;
    let started = Instant::now();
    let done = |what: &str, extra: String| {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name}: {what}: {:.0} MB/s ({:.2} s for {:.0} MB), peak RSS {:.1} MiB{extra}",
            total / 1e6 / secs,
            secs,
            total / 1e6,
            common::memory().0
        );
    };
    match measure {
        "summary" => {
            let logs = Logs::find(&[place(&dir)]).expect("logs");
            let (summary, skipped) = logs.sessions()[0].summary().expect("summary");
            assert!(skipped.is_empty(), "{skipped}");
            done(
                "sessions summary",
                format!(", {} records", summary.records()),
            );
        }
        "lines" => {
            let mut lines = 0u64;
            let mut line = Vec::new();
            for file in files(&dir) {
                let mut input =
                    BufReader::with_capacity(256 << 10, std::fs::File::open(file).expect("open"));
                while input.read_until(b'\n', &mut line).expect("read") > 0 {
                    lines += 1;
                    line.clear();
                }
            }
            done("read its lines alone (peer)", format!(", {lines} lines"));
        }
        "records" => {
            let mut records = 0u64;
            for file in files(&dir) {
                let input = BufReader::new(std::fs::File::open(&file).expect("open"));
                for record in wasmtel::jsonl::Reader::new(input, "bench") {
                    record.expect("a record");
                    records += 1;
                }
            }
            done(
                "parse every record with wasmtel::jsonl (peer)",
                format!(", {records} records"),
            );
        }
        other => panic!("no measurement {other:?}"),
    }
}

fn main() {
    let measurements: Vec<String> = SIZES
        .iter()
        .flat_map(|(name, bytes)| {
            ["lines", "records", "summary"].map(|m| format!("{m}={name}:{bytes}"))
        })
        .collect();
    let names: Vec<&str> = measurements.iter().map(String::as_str).collect();
    let printed = common::main(
        &names,
        || {
            for (name, bytes) in SIZES {
                logs(name, bytes);
            }
        },
        child,
    );
    if printed.is_empty() {
        return;
    }
    // The ratios, per size: the summary's rate over each peer's.
    let rate = |text: &str| -> f64 {
        let (before, _) = text.split_once(" MB/s").expect("a rate");
        before
            .rsplit(' ')
            .next()
            .and_then(|r| r.parse().ok())
            .expect("a rate")
    };
    for (i, (name, _)) in SIZES.iter().enumerate() {
        let [lines, records, summary] = [0, 1, 2].map(|m| rate(&printed[i * 3 + m]));
        println!(
            "{name}: summary / parse every record = {:.2}; summary / read the lines = {:.2}",
            summary / records,
            summary / lines
        );
    }
}
