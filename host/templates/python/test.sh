#!/bin/sh
# Builds the plugin with componentize-py (installed by pip into .tools on first use), then runs it
# on the recorded session in fixture.jsonl and compares what it did (its files, log and calls)
# with expected/. `sh test.sh --update` accepts what it did.
set -e
cd "$(dirname "$0")"
if [ -z "$COMPONENTIZE_PY" ]; then
    [ -x .tools/bin/componentize-py ] || python3 -m pip install --quiet \
        --disable-pip-version-check --target .tools componentize-py==0.25.1
    COMPONENTIZE_PY=.tools/bin/componentize-py
    PYTHONPATH=.tools
    export PYTHONPATH
fi
PYTHONDONTWRITEBYTECODE=1 "$COMPONENTIZE_PY" -d wit -w text-plugin componentize -p . app \
    -o {{name}}.wasm
"${WASMTEL:-wasmtel}" test {{name}}.wasm --fixture fixture.jsonl --expect expected "$@"
