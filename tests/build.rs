//! Builds the misbehaving test plugins into OUT_DIR: the Rust ones (`tests/guests`) for
//! wasm32-wasip2, and the WAT ones (`tests/guests/wat`), made components against `wit/`.

#[path = "../host/wasm_build.rs"]
mod wasm_build;

use std::path::Path;

fn main() {
    wasm_build::build_workspace("guests");
    let out_dir = std::env::var("OUT_DIR").expect("set by cargo");
    let out_dir = Path::new(&out_dir);
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
