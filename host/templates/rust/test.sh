#!/bin/sh
# Builds the plugin, then runs it on the recorded session in fixture.jsonl and compares what it
# did (its files, log and calls) with expected/. `sh test.sh --update` accepts what it did.
set -e
cd "$(dirname "$0")"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release
"${WASMTEL:-wasmtel}" test "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" \
    --fixture fixture.jsonl --expect expected "$@"
