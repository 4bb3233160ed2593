#!/usr/bin/env bash
# Builds the release binaries, then runs the overhead benchmark end to end.
# Extra arguments go to the bench tool, e.g. `bash bench/run.sh --requests 5000 --concurrency 32`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# One target directory shared with the workspace, so nothing is built twice.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llm-proxy-target}"
cd "$root"

cargo build --release -p llm-proxy-server -p llm-proxy-testkit --bins
cargo build --release --locked --manifest-path bench/Cargo.toml

bin="$CARGO_TARGET_DIR/release"
# exec: the bench tool gets the signals directly and kills what it started.
exec "$bin/llm-proxy-bench" \
    --gateway-bin "$bin/llm-proxy" \
    --mock-bin "$bin/llm-proxy-mock" \
    --out "$root/bench/results/latest.json" \
    --label "$(git describe --always --dirty 2>/dev/null || echo unknown)" \
    "$@"
