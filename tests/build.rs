//! Builds the test plugins into OUT_DIR: the misbehaving Rust ones (`tests/guests`) and the Rust
//! example (`examples/plugins`) for wasm32-wasip2; the WAT ones (`tests/guests/wat`), made
//! components against `wit/`; and the JavaScript and Python examples, with ComponentizeJS (from
//! npm) and componentize-py (from PyPI), installed once into `target/tools`, with jsdom (from
//! npm) for the tests of HTML pages.

#[path = "../host/wasm_build.rs"]
mod wasm_build;

use std::path::Path;
use std::process::Command;

/// The versions of the scripting languages' tools.
const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The DOM the session timeline's page is run in (and Chromium, where installed).
const JSDOM: &str = "jsdom@27.4.0";

fn main() {
    wasm_build::build_workspace("guests");
    wasm_build::build_workspace("../examples/plugins");
    let out_dir = std::env::var("OUT_DIR").expect("set by cargo");
    let out_dir = Path::new(&out_dir);
    scripting_examples(out_dir);
    // 24 memories, each grown by 16 MiB a call.
    hoard(out_dir, "memories", 24, 0, 256);
    // 2 tables, each grown by 32 M elements a call.
    hoard(out_dir, "tables", 0, 2, 32 << 20);
}

/// Makes `guests/wat/hoard.wat` with `memories` extra memories and `tables` tables, each grown by
/// `grow` pages or elements a call, into the component `OUT_DIR/{name}.wasm`.
fn hoard(out_dir: &Path, name: &str, memories: usize, tables: usize, grow: u32) {
    let source = Path::new("guests/wat/hoard.wat");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(source).expect("guests/wat/hoard.wat");
    let mut wat = String::new();
    for line in text.lines() {
        let (count, one) = if line.contains(";; each memory") {
            (memories, "$m1")
        } else if line.contains(";; each table") {
            (tables, "$t1")
        } else {
            (1, "")
        };
        for n in 1..=count {
            let numbered = format!("{}{n}", &one[..one.len().saturating_sub(1)]);
            wat.push_str(&if one.is_empty() {
                line.to_string()
            } else {
                line.replace(one, &numbered)
            });
            wat.push('\n');
        }
    }
    let wat = wat
        .replace("GROW_TABLE", &grow.to_string())
        .replace("GROW", &grow.to_string());
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir("../wit").expect("the WIT of wit/");
    let version = resolve.packages[package]
        .name
        .version
        .as_ref()
        .expect("a versioned package")
        .to_string();
    let wat = wat.replace("@VERSION#", &format!("@{version}#"));
    let mut module = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{name}: {e}"));
    let world = resolve
        .select_world(&[package], Some("plugin"))
        .expect("the plugin world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embed the world");
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    std::fs::write(out_dir.join(format!("{name}.wasm")), component).expect("write the component");
}

/// Runs `command`, or stops the build saying what it was for and what it printed.
fn run(what: &str, command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", command.get_program()));
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Installs the npm `package` into `dir` unless `installed` is there.
fn npm_install(dir: &Path, package: &str, installed: &Path) {
    if installed.exists() {
        return;
    }
    std::fs::create_dir_all(dir).expect("a folder under target/tools");
    run(
        &format!("installing {package} with npm (Node.js and npm are needed)"),
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .arg(package),
    );
}

/// Builds `examples/plugins/csv-js` and `csv-python` into OUT_DIR (`csv_js.wasm`,
/// `csv_python.wasm`), installing their tools into `target/tools` first if they are not there.
fn scripting_examples(out_dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository");
    for dir in [
        "examples/plugins/csv-js",
        "examples/plugins/csv-python",
        "sdk/js",
        "sdk/python",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", repo.join(dir).display());
    }
    let tools = wasm_build::target_dir(out_dir).join("tools");
    let js = tools.join("js");
    let componentize_js = js.join("node_modules/.bin/componentize-js");
    npm_install(&js, COMPONENTIZE_JS, &componentize_js);
    let jsdom = tools.join("jsdom");
    npm_install(&jsdom, JSDOM, &jsdom.join("node_modules/jsdom"));
    println!(
        "cargo:rustc-env=JSDOM={}",
        jsdom.join("node_modules/jsdom").display()
    );
    // For the tests that build a plugin of their own.
    println!(
        "cargo:rustc-env=COMPONENTIZE_JS={}",
        componentize_js.display()
    );
    println!(
        "cargo:rustc-env=WASM_TARGET_DIR={}",
        wasm_build::wasm_target_dir(out_dir).display()
    );
    let py = tools.join("python");
    println!("cargo:rustc-env=PYTHON_TOOLS={}", py.display());
    let componentize_py = py.join("bin/componentize-py");
    if !componentize_py.exists() {
        run(
            "installing componentize-py with pip (Python 3 and pip are needed)",
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("--target")
                .arg(&py)
                .arg(COMPONENTIZE_PY),
        );
    }
    run(
        "building examples/plugins/csv-js with ComponentizeJS",
        Command::new(&componentize_js)
            .args(["examples/plugins/csv-js/csv.js", "--wit", "wit"])
            .args(["--world-name", "text-plugin", "-o"])
            .arg(out_dir.join("csv_js.wasm"))
            .current_dir(repo),
    );
    run(
        "building examples/plugins/csv-python with componentize-py",
        Command::new(&componentize_py)
            .env("PYTHONPATH", &py)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .args(["-d", "wit", "-w", "text-plugin", "componentize"])
            .args([
                "-p",
                "examples/plugins/csv-python",
                "-p",
                "sdk/python",
                "app",
                "-o",
            ])
            .arg(out_dir.join("csv_python.wasm"))
            .current_dir(repo),
    );
}
