#!/bin/sh
# Builds the plugin with ComponentizeJS (installed by npm on first use), then runs it on the
# recorded session in fixture.jsonl and compares what it did (its files, log and calls) with
# expected/. `sh test.sh --update` accepts what it did.
set -e
cd "$(dirname "$0")"
if [ -z "$COMPONENTIZE_JS" ]; then
    [ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund
    COMPONENTIZE_JS=node_modules/.bin/componentize-js
fi
"$COMPONENTIZE_JS" plugin.js --wit wit --world-name text-plugin -o {{name}}.wasm
"${WASMTEL:-wasmtel}" test {{name}}.wasm --fixture fixture.jsonl --expect expected "$@"
