//! What the whole-process benchmarks share: each measurement runs in a process of its own (the
//! benchmark run again with `--child NAME`), so that its peak memory is its own.

use std::process::Command;

/// This process's peak and present resident memory, in MiB.
pub fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    };
    (kib("VmHWM:") / 1024.0, kib("VmRSS:") / 1024.0)
}

/// Runs the benchmark: with `--child NAME`, the measurement `child(NAME)`; under `cargo bench`,
/// `prepare` and then each of `names` in a process of its own, printing what each prints;
/// under `cargo test --benches`, nothing. Returns what each printed.
pub fn main(names: &[&str], prepare: impl FnOnce(), child: impl FnOnce(&str)) -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        child(&args[at + 1]);
        return Vec::new();
    }
    if args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench") {
        return Vec::new();
    }
    prepare();
    let mut printed = Vec::new();
    for name in names {
        let output = Command::new(std::env::current_exe().expect("this benchmark"))
            .args(["--child", name])
            .output()
            .expect("run a measurement");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: {}\n{text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        print!("{text}");
        printed.push(text.into_owned());
    }
    printed
}
