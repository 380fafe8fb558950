//! The persistent spool (`queue.spool`) with the built-in `otlp` exporter and a real receiver on
//! 127.0.0.1: an outage longer than every retry, a `kill -9` mid-export, a spool file cut
//! mid-record, and a shutdown budget of 200 ms against a backend that never answers; what was
//! accepted arrives, counted at the receiver.

use std::path::Path;
use std::time::{Duration, Instant};

use wasmtel::model::Record;
use wasmtel_tests::receiver::{Answer, Decoded, HTTP_PATHS, Received, Receiver, refusing};
use wasmtel_tests::{KillOnDrop, config, output_text, output_within, session, wasmtel_command};

/// The session's events, spans and metric records (as the fixture holds them).
const ALL: (usize, usize, usize) = (444, 124, 15);
const RECORDS: u64 = 444 + 124 + 15;

/// A config of one `otlp` exporter `collector` sending to `addr`, with a spool in `spool/`;
/// `queue` adds keys to its queue table, `telemetry` to `[telemetry]`. A request may take 300 s
/// (one held by the receiver stays in flight).
fn spooled(dir: &Path, addr: &str, queue: &str, telemetry: &str) -> wasmtel::Config {
    config(
        dir,
        &format!(
            "[telemetry]\nsession_id = \"spool\"\n{telemetry}\n\
             [exporters.collector]\nplugin = \"otlp\"\n\
             config = {{ endpoint = \"http://{addr}\", timeout_ms = 300000 }}\n\
             queue = {{ spool = {{ dir = \"spool\" }}{queue} }}\n"
        ),
    )
}

/// Starts `config` with the session's resource and records the session, waiting for room.
fn record_session(config: wasmtel::Config) -> wasmtel::Telemetry {
    let telemetry = wasmtel::Telemetry::builder(config)
        .resource(session::resource())
        .start()
        .expect("start");
    for record in session::records() {
        telemetry.record_blocking(record);
    }
    telemetry
}

/// What the requests answered 200 carried: log records, spans, metrics.
fn delivered(requests: &[Received]) -> (usize, usize, usize) {
    let ok: Vec<Received> = requests
        .iter()
        .filter(|r| r.answered == 200)
        .cloned()
        .collect();
    Decoded::of(&ok, HTTP_PATHS).counts()
}

/// The one exporter's counters.
fn only(stats: Vec<wasmtel::ExporterStats>) -> wasmtel::ExporterStats {
    assert_eq!(stats.len(), 1, "{stats:?}");
    stats.into_iter().next().expect("one")
}

/// Waits up to `limit` until `done` holds of the exporter's counters; returns them.
fn wait_for(
    telemetry: &wasmtel::Telemetry,
    limit: Duration,
    done: impl Fn(&wasmtel::ExporterStats) -> bool,
) -> wasmtel::ExporterStats {
    let end = Instant::now() + limit;
    loop {
        let stats = only(telemetry.stats());
        if done(&stats) || Instant::now() > end {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_receiver_down_longer_than_every_retry_gets_every_record_once_it_is_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The receiver is not there: connections to its address are refused.
    let (held, addr) = refusing();
    let config = spooled(
        tmp.path(),
        &addr.to_string(),
        ", max_retries = 2",
        "shutdown_timeout_ms = 30000",
    );
    let telemetry = record_session(config);
    // 60 s down: each batch's retries (2) are spent within the first second, then the exporter
    // is parked, and tried again after 5, 10, 20 and 30 s.
    std::thread::sleep(Duration::from_secs(60));
    let s = only(telemetry.stats());
    assert_eq!(
        (s.records_exported, s.dropped(), s.spooled),
        (0, 0, RECORDS),
        "everything waits in the spool: {s}"
    );
    assert_eq!(s.state, wasmtel::ExporterState::Parked, "{s}");
    assert!(s.batches_failed >= 6, "every retry was spent: {s}");

    let back = Instant::now();
    drop(held);
    let receiver = Receiver::start_at(addr);
    let s = wait_for(&telemetry, Duration::from_secs(60), |s| {
        s.records_exported == RECORDS
    });
    assert_eq!(
        (s.records_exported, s.dropped(), s.spooled, s.spooled_bytes),
        (RECORDS, 0, 0, 0),
        "{s}"
    );
    let requests = receiver.requests();
    assert!(requests.iter().all(|r| r.at >= back));
    assert_eq!(delivered(&requests), ALL, "every record, once");
    let s = only(telemetry.shutdown());
    assert_eq!(s.dropped(), 0, "{s}");
}

#[test]
fn a_process_killed_mid_export_loses_nothing_and_counts_what_may_arrive_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start();
    // The first request is held (the process is mid-export when it is killed, its request
    // timeout longer than the test); the rest are answered at once.
    receiver.script([Answer {
        delay: Duration::from_secs(300),
        ..Answer::status(200, "")
    }]);
    let addr = receiver.addr.to_string();
    let config = spooled(tmp.path(), &addr, "", "shutdown_timeout_ms = 300000");
    std::fs::write(tmp.path().join("session.jsonl"), fixture_text()).expect("write");
    let mut child = KillOnDrop(
        wasmtel_command(tmp.path())
            .args(["replay", "session.jsonl", "--config", "config.toml"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run wasmtel"),
    );
    // Accepted: every record spooled (the slot is held by the child), and the first batch is
    // at the receiver.
    let end = Instant::now() + Duration::from_secs(120);
    let held = loop {
        let slots = wasmtel::spool_status(&config)
            .remove(0)
            .slots
            .expect("the spool reads");
        let held = slots.iter().any(|s| s.held_by == Some(child.0.id()));
        let spooled: u64 = slots.iter().map(|s| s.records).sum();
        if held && spooled == RECORDS && !receiver.requests().is_empty() {
            break slots;
        }
        assert!(
            Instant::now() < end,
            "the child spooled and sent: {slots:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let index = held
        .iter()
        .position(|s| s.held_by == Some(child.0.id()))
        .expect("the child's slot");
    child.0.kill().expect("kill -9");
    child.0.wait().expect("reaped");

    let slots = wasmtel::spool_status(&config)
        .remove(0)
        .slots
        .expect("reads");
    let slot = &slots[index];
    assert_eq!(slot.held_by, None, "the lock went with the process");
    assert_eq!(slot.records, RECORDS);
    let in_doubt = slot.in_doubt;
    assert!(
        in_doubt > 0,
        "the batch being exported is in doubt: {slot:?}"
    );

    // A restart: `wasmtel spool drain` sends what the spool holds.
    let output = output_within(
        wasmtel_command(tmp.path()).args([
            "spool",
            "drain",
            "--config",
            "config.toml",
            "--timeout",
            "60s",
        ]),
        Duration::from_secs(180),
    );
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "583 exported, 0 dropped, 2 batches ok, {RECORDS} from an earlier run ({in_doubt} may arrive twice)"
        )),
        "{text}"
    );
    let requests = receiver.requests();
    // Every record arrived after the restart; the held request's records arrived twice.
    let after: Vec<Received> = requests[1..].to_vec();
    assert_eq!(delivered(&after), ALL, "{text}");
    let (logs, spans, metrics) = Decoded::of(&requests[..1], HTTP_PATHS).counts();
    let twice = (logs + spans + metrics) as u64;
    assert!(twice > 0 && twice <= in_doubt, "{twice} of {in_doubt}");
    let status = output_within(
        wasmtel_command(tmp.path()).args(["spool", "status", "--config", "config.toml"]),
        Duration::from_secs(60),
    );
    let text = output_text(&status);
    assert!(text.contains(": 0 batches, 0 records, 0 bytes"), "{text}");
}

/// The fixture's text: the session as the record format.
fn fixture_text() -> String {
    std::fs::read_to_string(wasmtel_tests::fixture()).expect("fixture")
}

/// Spools the session with a backend that takes connections and never answers, shutting down
/// within 200 ms; returns how long shutdown took and the counters.
fn spool_unsent(dir: &Path) -> (Duration, wasmtel::ExporterStats) {
    // Connections are taken by the kernel and never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = silent.local_addr().expect("an address");
    let config = spooled(
        dir,
        &addr.to_string(),
        ", max_batch = 200, max_delay_ms = 60000",
        "",
    );
    let telemetry = record_session(config);
    let started = Instant::now();
    let stats = only(telemetry.shutdown_with_timeout(Duration::from_millis(200)));
    (started.elapsed(), stats)
}

#[test]
fn shutdown_with_a_backend_that_never_answers_keeps_its_budget_and_the_next_start_delivers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (took, s) = spool_unsent(tmp.path());
    eprintln!("shutdown took {} ms of its 200", took.as_millis());
    assert!(
        took < Duration::from_millis(200 + 150),
        "shutdown took {took:?}, its budget 200 ms: {s}"
    );
    assert_eq!(
        (s.records_exported, s.dropped(), s.spooled),
        (0, 0, RECORDS),
        "{s}"
    );

    let receiver = Receiver::start();
    let config = spooled(tmp.path(), &receiver.addr.to_string(), "", "");
    let stats = wasmtel::drain_spools(config, Duration::from_secs(60), None).expect("drain");
    let s = only(stats);
    assert_eq!(
        (s.spool_replayed, s.records_exported, s.dropped(), s.spooled),
        (RECORDS, RECORDS, 0, 0),
        "{s}"
    );
    assert_eq!(delivered(&receiver.requests()), ALL);
}

#[test]
fn a_spool_file_cut_mid_record_starts_counts_the_cut_and_delivers_the_rest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, s) = spool_unsent(tmp.path());
    assert_eq!(s.spooled, RECORDS, "{s}");
    assert!(s.spooled_batches >= 3, "{s}");
    // Cut the segment in the middle of its last frame.
    let slot = tmp.path().join("spool").join("0");
    let segment = std::fs::read_dir(&slot)
        .expect("the slot")
        .map(|e| e.expect("an entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment");
    let size = std::fs::metadata(&segment).expect("size").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open");
    file.set_len(size - 100).expect("cut");
    drop(file);

    // What the batches held, in order, to know what the cut took.
    let records: Vec<Record> = session::records()
        .into_iter()
        .filter(|r| !matches!(r, Record::Resource(_)))
        .collect();
    let last_batch = records.len() as u64 % 200;

    let receiver = Receiver::start();
    let config = spooled(tmp.path(), &receiver.addr.to_string(), "", "");
    let s = only(wasmtel::drain_spools(config, Duration::from_secs(60), None).expect("starts"));
    assert_eq!(
        (s.dropped_corrupt, s.records_exported, s.spooled),
        (last_batch, RECORDS - last_batch, 0),
        "the cut batch is counted, the rest delivered: {s}"
    );
    assert!(s.spool_skipped_bytes > 0, "{s}");
    assert!(s.to_string().contains("damaged in the spool"), "{s}");
    let (logs, spans, metrics) = delivered(&receiver.requests());
    assert_eq!((logs + spans + metrics) as u64, RECORDS - last_batch);
}

/// The value of `name`'s point for the exporter `collector` in the newest line of `file` that
/// has one.
fn self_metric(file: &Path, name: &str) -> Option<wasmtel::Number> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().rev().find_map(|line| {
        let Record::Metric(m) = wasmtel::jsonl::parse_line(line).ok()? else {
            return None;
        };
        let points = match (m.name == name, &m.data) {
            (true, wasmtel::MetricData::Gauge { points }) => points,
            (true, wasmtel::MetricData::Sum { points, .. }) => points,
            _ => return None,
        };
        let collector = wasmtel::Value::from("collector".to_string());
        points
            .iter()
            .find(|p| p.attributes.iter().any(|kv| kv.value == collector))
            .map(|p| p.value)
    })
}

#[test]
fn self_metrics_tell_what_the_spool_holds_and_what_a_start_found() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_held, refused) = refusing();
    let text = format!(
        "[telemetry]\nsession_id = \"spool\"\nself_metrics_interval_ms = 50\nshutdown_timeout_ms = 500\n\
         [exporters.local]\nplugin = \"file-jsonl\"\nsignals = [\"metrics\"]\n\
         queue = {{ max_delay_ms = 10 }}\nmetrics = {{ interval_ms = 50 }}\n\
         [exporters.collector]\nplugin = \"otlp\"\nsignals = [\"events\"]\n\
         config = {{ endpoint = \"http://{refused}\" }}\n\
         queue = {{ max_retries = 0, max_delay_ms = 10, spool = {{ dir = \"spool\" }} }}\n"
    );
    let wait = |file: &Path, name: &str, ok: &dyn Fn(wasmtel::Number) -> bool| {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self_metric(file, name);
            if found.is_some_and(ok) {
                return;
            }
            assert!(Instant::now() < end, "{name}: {found:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let telemetry = wasmtel::Telemetry::start(config(tmp.path(), &text)).expect("start");
    for i in 0..10 {
        telemetry.event("codex.user_prompt").attr("i", i).emit();
    }
    let file = wasmtel_tests::only_jsonl(&tmp.path().join("logs"));
    use wasmtel::Number::{Double, Int};
    wait(&file, "wasmtel.exporter.spool.records", &|n| n == Int(10));
    wait(&file, "wasmtel.exporter.spool.batches", &|n| {
        matches!(n, Int(1..=10))
    });
    wait(
        &file,
        "wasmtel.exporter.spool.size",
        &|n| matches!(n, Int(b) if b > 10 * 28),
    );
    wait(
        &file,
        "wasmtel.exporter.spool.age",
        &|n| matches!(n, Double(s) if s > 0.0),
    );
    telemetry.shutdown();
    std::fs::remove_dir_all(tmp.path().join("logs")).expect("remove the first log");

    let telemetry = wasmtel::Telemetry::start(config(tmp.path(), &text)).expect("start");
    let file = wasmtel_tests::only_jsonl(&tmp.path().join("logs"));
    wait(&file, "wasmtel.exporter.spool.replayed", &|n| n == Int(10));
    wait(&file, "wasmtel.exporter.spool.in_doubt", &|n| n == Int(0));
    telemetry.shutdown();
}
