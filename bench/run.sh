#!/usr/bin/env bash
# Builds the release binaries, then runs the overhead benchmark end to end (about a minute).
# Extra arguments go to the bench tool, e.g. `bash bench/run.sh --secs 5 --concurrency 64`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# One target directory shared with the workspace, so nothing is built twice.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llm-proxy-target}"
cd "$root"

cargo build --release -p llm-proxy-server -p llm-proxy-testkit --bins
cargo build --release --locked --manifest-path bench/Cargo.toml

# 1,000 streams held open through the gateway take ~2,000 sockets in it and ~1,000 each in the
# bench and the mock; the children inherit this limit. Raise it as far as allowed (up to 65,536).
want=65536
hard="$(ulimit -Hn)"
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want="$hard"; fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then ulimit -n "$want"; fi

command -v taskset >/dev/null || echo "run.sh: taskset (util-linux) not found; the bench will ask for it (or pass --no-pin)" >&2

bin="$CARGO_TARGET_DIR/release"
# exec: the bench tool gets the signals directly and kills what it started. It pins itself and
# the processes it starts to CPUs (see bench/README.md).
exec "$bin/llm-proxy-bench" \
    --gateway-bin "$bin/llm-proxy" \
    --mock-bin "$bin/llm-proxy-mock" \
    --out "$root/bench/results/latest.json" \
    --label "$(git describe --always --dirty 2>/dev/null || echo unknown)" \
    "$@"
