//! An exporter that misbehaves on purpose, as its config says, so the tests can show that the
//! host contains it. Config: `{"action": ACTION, "when": "init" | "export", "path": PATH,
//! "ms": N}`.
//!
//! Sandbox probes (`read`, `write`, `http` to the authority in `path`; a test plants symlinks to
//! follow with `read`) answer `Ok` if the forbidden operation
//! succeeded, and a permanent error starting with `blocked:` if the sandbox stopped it, so a test
//! can tell an escape from containment.

use std::time::Duration;

use serde::Deserialize;
use wasmtel_sdk::{Batch, Context, Error, Exporter};

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Config {
    action: String,
    #[serde(default = "export")]
    when: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    ms: u64,
    /// How many lines `flood` writes (each to the log and to stdout), how many times
    /// `open_many` opens `path`, how many MiB the `fill_*` actions write, how many files
    /// `files` makes, how many directories `names` fills, how many HTTP fields `fields` makes.
    #[serde(default)]
    count: u64,
    /// The size of each header `fields` adds.
    #[serde(default)]
    bytes: u64,
    /// How many removed files `unlink_open` keeps open at once (0: all of them).
    #[serde(default)]
    hold: u64,
}

fn export() -> String {
    "export".into()
}

struct Rogue(Config);

fn blocked(e: std::io::Error) -> Error {
    Error::permanent(format!("blocked: {e}"))
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64];
    std::hint::black_box(&frame);
    recurse(depth + 1) + frame[3]
}

fn act(config: &Config) -> Result<(), Error> {
    match config.action.as_str() {
        "none" => Ok(()),
        "read" => std::fs::read(&config.path).map(drop).map_err(blocked),
        "write" => std::fs::write(&config.path, b"escaped\n").map_err(blocked),
        "http" => http_get(&config.path),
        "env" => match std::env::vars()
            .next()
            .or_else(|| std::env::args().nth(1).map(|a| ("arg".into(), a)))
        {
            Some((key, _)) => {
                wasmtel_sdk::log::error(&format!("sees the host's {key}"));
                Ok(())
            }
            None => Err(Error::permanent(
                "blocked: no environment variables, no arguments",
            )),
        },
        "tcp" => std::net::TcpStream::connect(&config.path)
            .map(drop)
            .map_err(blocked),
        "panic" => panic!("rogue panics on purpose"),
        "loop" => loop {
            std::hint::black_box(());
        },
        "oom" => {
            let mut hog = Vec::new();
            loop {
                hog.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hog);
            }
        }
        "recurse" => {
            std::hint::black_box(recurse(0));
            Ok(())
        }
        "sleep" => {
            std::thread::sleep(Duration::from_millis(config.ms));
            Ok(())
        }
        "huge_error" => Err(Error::permanent("x".repeat(10 << 20))),
        "retryable" => Err(Error::retryable("try again", Some(config.ms))),
        "open_many" => {
            let mut open = Vec::new();
            for _ in 0..config.count {
                open.push(std::fs::File::create(&config.path).map_err(blocked)?);
            }
            Ok(())
        }
        "fill_stream" => {
            // Through a `wasi:io` output stream of the file, as the filesystem error code says.
            let stream = open_in_sandbox(&config.path)?
                .write_via_stream(0)
                .map_err(wasi_blocked)?;
            let chunk = vec![7u8; 4096];
            for _ in 0..config.count * 256 {
                stream
                    .blocking_write_and_flush(&chunk)
                    .map_err(stream_blocked)?;
            }
            Ok(())
        }
        "fill_std" => {
            // Through std::fs, as a Rust plugin writes.
            use std::io::Write;
            let mut file = std::fs::File::create(&config.path).map_err(blocked)?;
            let mib = vec![7u8; 1 << 20];
            for _ in 0..config.count {
                file.write_all(&mib).map_err(blocked)?;
            }
            Ok(())
        }
        "fill_at" => {
            // `descriptor.write` at growing offsets, a MiB each.
            let file = open_in_sandbox(&config.path)?;
            let mib = vec![7u8; 1 << 20];
            for i in 0..config.count {
                file.write(&mib, i << 20).map_err(wasi_blocked)?;
            }
            Ok(())
        }
        "fill_size" => open_in_sandbox(&config.path)?
            .set_size(config.count << 20)
            .map_err(wasi_blocked),
        "self_rename" => {
            // A MiB each in `count` files, each renamed onto itself (which removes nothing).
            let mib = vec![7u8; 1 << 20];
            for i in 0..config.count {
                let name = format!("{}.{i}", config.path);
                std::fs::write(&name, &mib).map_err(blocked)?;
                std::fs::rename(&name, &name).map_err(blocked)?;
            }
            Ok(())
        }
        "churn" => {
            // Within a quota, so long as what goes is counted as gone: a MiB written, renamed
            // over the last one, `count` times; a directory made and removed as often.
            let mib = vec![7u8; 1 << 20];
            let old = format!("{}.old", config.path);
            for i in 0..config.count {
                std::fs::write(&config.path, &mib).map_err(blocked)?;
                std::fs::rename(&config.path, &old).map_err(blocked)?;
                let dir = format!("{}.dir{i}", config.path);
                std::fs::create_dir(&dir).map_err(blocked)?;
                std::fs::remove_dir(&dir).map_err(blocked)?;
            }
            std::fs::remove_file(&old).map_err(blocked)
        }
        "unlink_open" => {
            // A MiB in each of `count` files, each removed while still open: the disk holds what
            // an open file holds until it is closed. `hold` of them are kept open at once.
            use std::io::Write;
            let mib = vec![7u8; 1 << 20];
            let mut open = std::collections::VecDeque::new();
            for i in 0..config.count {
                let name = format!("{}.{i}", config.path);
                let mut file = std::fs::File::create(&name).map_err(blocked)?;
                file.write_all(&mib)
                    .map_err(|e| Error::permanent(format!("blocked: {e} after {i} MiB")))?;
                std::fs::remove_file(&name).map_err(blocked)?;
                open.push_back(file);
                if config.hold > 0 && open.len() as u64 > config.hold {
                    open.pop_front();
                }
            }
            Ok(())
        }
        "symlink" => {
            // A link named `link` to `path`, relative, so the sandbox lets it be made: where it
            // leads is for whoever reads the directory afterwards not to follow.
            let (dir, _) = wasi::filesystem::preopens::get_directories()
                .into_iter()
                .next()
                .ok_or_else(|| Error::permanent("blocked: no directory"))?;
            dir.symlink_at(&config.path, "link").map_err(wasi_blocked)
        }
        "names" => {
            // `count` directories, in each of which 1,000 files of long names are made, then
            // removed: on many file systems a directory's list of names keeps its size.
            for i in 0..config.count {
                let dir = format!("{}.{i}", config.path);
                std::fs::create_dir(&dir).map_err(blocked)?;
                let names: Vec<_> = (0..1000).map(|n| format!("{dir}/{n:0>250}")).collect();
                for name in &names {
                    std::fs::File::create(name).map_err(|e| {
                        Error::permanent(format!("blocked: {e} after {i} directories"))
                    })?;
                }
                for name in &names {
                    std::fs::remove_file(name).map_err(blocked)?;
                }
            }
            Ok(())
        }
        "stream_lands" => {
            // `count` stream writes, each followed by the file's size without waiting for the
            // stream: the size shows the write (no other call can see the file in between).
            let file = open_in_sandbox(&config.path)?;
            let mut end = 0;
            for _ in 0..config.count {
                let stream = file.write_via_stream(end).map_err(wasi_blocked)?;
                let permit = stream.check_write().map_err(stream_blocked)?;
                stream
                    .write(&vec![7u8; permit as usize])
                    .map_err(stream_blocked)?;
                end += permit;
                let size = file.stat().map_err(wasi_blocked)?.size;
                if size != end {
                    return Err(Error::permanent(format!(
                        "the file holds {size} bytes after a write up to {end}"
                    )));
                }
            }
            Ok(())
        }
        "files" => {
            for i in 0..config.count {
                std::fs::File::create(format!("{}.{i}", config.path)).map_err(blocked)?;
            }
            Ok(())
        }
        "fields" => {
            // Never dropped: the host holds them as long as the instance lives.
            let mut held = Vec::new();
            let value = vec![b'x'; config.bytes as usize];
            for _ in 0..config.count {
                let fields = wasi::http::types::Fields::new();
                fields
                    .append("x-rogue", &value)
                    .map_err(|e| Error::permanent(format!("blocked: {e:?}")))?;
                held.push(fields);
            }
            std::mem::forget(held);
            Ok(())
        }
        "flood" => {
            let line = format!("flood {}", "x".repeat(4090));
            for _ in 0..config.count {
                wasmtel_sdk::log::warn(&line);
                println!("{line}");
            }
            Ok(())
        }
        "print" => {
            println!("rogue says hello on stdout");
            eprintln!("rogue says hello on stderr");
            wasmtel_sdk::log::warn("rogue logs through the host");
            Ok(())
        }
        other => Err(Error::permanent(format!("unknown action {other:?}"))),
    }
}

fn wasi_blocked(e: wasi::filesystem::types::ErrorCode) -> Error {
    Error::permanent(format!("blocked: {e:?}"))
}

/// A stream's failure, as the filesystem error code says.
fn stream_blocked(e: wasi::io::streams::StreamError) -> Error {
    use wasi::io::streams::StreamError;
    match e {
        StreamError::LastOperationFailed(e) => {
            match wasi::filesystem::types::filesystem_error_code(&e) {
                Some(code) => wasi_blocked(code),
                None => Error::permanent(format!("blocked: {}", e.to_debug_string())),
            }
        }
        StreamError::Closed => Error::permanent("blocked: closed"),
    }
}

/// Opens (creating) `path` in the sandbox directory through `wasi:filesystem` itself.
fn open_in_sandbox(path: &str) -> Result<wasi::filesystem::types::Descriptor, Error> {
    use wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let (dir, _) = wasi::filesystem::preopens::get_directories()
        .into_iter()
        .next()
        .ok_or_else(|| Error::permanent("blocked: no directory"))?;
    dir.open_at(
        PathFlags::empty(),
        path,
        OpenFlags::CREATE,
        DescriptorFlags::READ | DescriptorFlags::WRITE,
    )
    .map_err(wasi_blocked)
}

/// Sends `GET http://{authority}/` through wasi:http: `Ok` if a response came back.
fn http_get(authority: &str) -> Result<(), Error> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, OutgoingRequest, Scheme};
    let refused = |e: &dyn std::fmt::Debug| Error::permanent(format!("blocked: {e:?}"));
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|e| refused(&e))?;
    request
        .set_authority(Some(authority))
        .map_err(|e| refused(&e))?;
    request
        .set_path_with_query(Some("/rogue"))
        .map_err(|e| refused(&e))?;
    let response = outgoing_handler::handle(request, None).map_err(|e| refused(&e))?;
    response.subscribe().block();
    match response.get() {
        Some(Ok(Ok(response))) => {
            wasmtel_sdk::log::info(&format!(
                "reached {authority}: status {}",
                response.status()
            ));
            Ok(())
        }
        Some(Ok(Err(e))) => Err(refused(&e)),
        other => Err(refused(&other.is_some())),
    }
}

impl Rogue {
    fn on_export(&self) -> Result<(), Error> {
        if self.0.when == "export" {
            act(&self.0)
        } else {
            Ok(())
        }
    }
}

impl Exporter for Rogue {
    fn init(config: &str, _context: &Context) -> Result<Self, Error> {
        let config: Config = wasmtel_sdk::parse_config(config)?;
        if config.when == "init" {
            act(&config)?;
        }
        Ok(Rogue(config))
    }

    fn export(&mut self, _batch: &Batch<'_>) -> Result<(), Error> {
        self.on_export()
    }
}

wasmtel_sdk::export!(Rogue);
