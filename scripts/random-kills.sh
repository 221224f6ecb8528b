#!/usr/bin/env bash
# At least KILLS (default 100) kill -9 at random moments of a short run on real Spider,
# each followed by `resume`, then the run's journal metrics and its best weights compared
# with an uninterrupted run of the same config. Not part of the test suite (minutes).
#
#   HHNAS_SPIDER_DIR=/abs/path/to/spider scripts/random-kills.sh [KILLS] [WORKDIR]
#
# The run: the scratch profile (a small encoder fine-tuned with every candidate, so kills
# land inside epochs, checkpoints and store writes), 6 iterations of 4 epochs over 1000
# training rows. Delays are drawn in [0.05, MAX] s, MAX from 0.8 s; it grows when 10 kills
# in a row made no progress (the next epoch must be able to finish between two kills).
# Exits 1 when the journals or the best weights differ, or fewer than KILLS kills landed.
set -euo pipefail
KILLS=${1:-100}
WORK=${2:-$(mktemp -d)}
mkdir -p "$WORK"
BIN=${HHNAS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/hhnas-pipe}
[ -x "$BIN" ] || BIN=${CARGO_TARGET_DIR:-$HOME/.cache/hhnas-pipe/target}/release/hhnas-pipe
: "${HHNAS_SPIDER_DIR:?set HHNAS_SPIDER_DIR to an absolute Spider directory}"
SETS=(--profile scratch --set run.iterations=6 --set train.epochs=4 --set train.max_train_rows=1000)
export RUST_LOG=warn
cd "$WORK"
echo "work dir $WORK, binary $BIN"

"$BIN" --cache-dir ref run "${SETS[@]}" > /dev/null
t0=$(date +%s)
lines() { cat kill/runs/*/journal.jsonl 2>/dev/null | grep -c '"event":"stage"' || true; }
landed=0; tries=0; max=0.8; stuck=0; last=0
first=1
while true; do
  if [ $first = 1 ]; then
    "$BIN" --cache-dir kill run "${SETS[@]}" > /dev/null 2>&1 & first=0
  else
    "$BIN" --cache-dir kill resume > /dev/null 2>&1 &
  fi
  pid=$!
  delay=$(python3 -c "import random; print(round(random.uniform(0.05, $max), 2))")
  sleep "$delay"
  if kill -0 "$pid" 2> /dev/null; then
    kill -9 "$pid"; wait "$pid" 2> /dev/null || true
    landed=$((landed + 1))
  else
    wait "$pid" 2> /dev/null || true
  fi
  tries=$((tries + 1))
  now=$(lines)
  if [ "$now" -le "$last" ]; then stuck=$((stuck + 1)); else stuck=0; fi
  last=$now
  if [ $stuck -ge 10 ]; then max=$(python3 -c "print($max * 1.5)"); stuck=0; fi
  grep -qs '"event":"finished"' kill/runs/*/journal.jsonl && break
done
"$BIN" --cache-dir kill resume > /dev/null
echo "kills that landed: $landed of $tries starts ($(( $(date +%s) - t0 )) s)"

python3 - <<'EOF'
import glob, json
def comparable(path):
    out = set()
    for line in open(path):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") != "stage":
            continue
        m = e["metrics"]
        if isinstance(m, dict):
            for k in ("compute_secs", "examples_per_sec", "epoch_secs"):
                m.pop(k, None)
        out.add((e["stage"], e.get("iteration"), e["key"], json.dumps(m, sort_keys=True)))
    return out
def best(cache, path):
    trains = [json.loads(l) for l in open(path) if '"stage":"train"' in l and '"event":"stage"' in l]
    b = max(trains, key=lambda e: e["metrics"]["valid_acc"])
    return open(f"{cache}/store/weights/{b['key']}", "rb").read()
ref = glob.glob("ref/runs/*/journal.jsonl")[0]
kil = glob.glob("kill/runs/*/journal.jsonl")[0]
same = comparable(ref) == comparable(kil)
same_best = best("ref", ref) == best("kill", kil)
print(f"journal metrics equal: {same}; best weights equal: {same_best}")
raise SystemExit(0 if same and same_best else 1)
EOF
[ "$landed" -ge "$KILLS" ] || { echo "only $landed kills landed (wanted $KILLS)"; exit 1; }
