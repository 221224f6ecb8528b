#!/usr/bin/env bash
# End-to-end check of the LLM features against a real local server (not part of the
# default test suite):
#
#   scripts/llm-e2e.sh [llm-e2e options, e.g. --n 200 --k 3]
#
# Starts scripts/llm-server.sh on 127.0.0.1:$PORT (default 8087) unless something already
# answers there, waits (bounded) for GET /v1/models, runs the llm-e2e example with answers
# cached in .dev/llm-cache, and stops the server it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-8087}"
URL="http://127.0.0.1:$PORT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/hhnas-pipe/target-light}"
cd "$ROOT"

SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

if ! curl -fsS "$URL/v1/models" >/dev/null 2>&1; then
  scripts/llm-server.sh install
  PORT="$PORT" scripts/llm-server.sh >.dev/llm-server.log 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 120); do
    curl -fsS "$URL/v1/models" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "llm-e2e: server died; see .dev/llm-server.log" >&2; exit 1; }
    sleep 1
  done
fi

cargo run -p hhnas-features --release --example llm-e2e -- --base-url "$URL" \
  --cache-dir .dev/llm-cache "$@"
