#!/usr/bin/env bash
# GPU check (run on a CUDA machine from the repository root): trains Model 1 with a
# roberta-base-shaped encoder (random weights, hidden 768, 12 layers, 12 heads) for one
# epoch on Spider with the CUDA build of hhnas-pipe, then the same shape in PyTorch.
#   scripts/gpu-check.sh BINARY SPIDER_DIR OUT_DIR
set -uo pipefail
bin=$1 spider=$2 out=$3
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
# cudarc loads libcuda and NVRTC at run time: make every NVRTC on the machine findable.
nvrtc_dirs=$( (ls -d /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib 2>/dev/null;
  find / -xdev -name 'libnvrtc.so*' -printf '%h\n' 2>/dev/null) | grep -v stubs | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${nvrtc_dirs}${LD_LIBRARY_PATH:-}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
export HHNAS_SPIDER_DIR=$spider RUST_LOG=info
cache=$(mktemp -d)
set -x
"$bin" --cache-dir "$cache" run --profile demo \
  --set run.iterations=1 --set search.strategy=fixed \
  --set encoder.source=scratch --set encoder.hidden=768 --set encoder.layers=12 \
  --set encoder.heads=12 --set encoder.intermediate=3072 --set encoder.vocab_size=8000 \
  --set encoder.max_len=32 --set train.device=cuda:0 --set train.epochs=1 \
  --set train.max_train_rows=0 --set search.initial.learning_rate=2e-5 \
  2>&1 | tee "$out/burn.log"
"$bin" --cache-dir "$cache" status --json > "$out/status.json"
"$bin" --cache-dir "$cache" status 2>&1 | tee "$out/status.txt"
python3 scripts/torch-epoch.py "$spider" --device cuda 2>&1 | tee "$out/torch.log"
