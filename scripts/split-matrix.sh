#!/usr/bin/env bash
# The demo against the fixed initial candidate on three splits of the same questions
# (data.split_seed 0, 1, 2) x seeds 0-2, as in docs/results.md (eighth session). Usage:
#   scripts/split-matrix.sh BINARY CACHE [--set k=v ...]     (e.g. --set data.merge=none)
# (HHNAS_SPIDER_DIR must be set, as an absolute path). Then:
#   BINARY --cache-dir CACHE status --all --json | python3 scripts/runs-table.py --label RUNPREFIX=NAME ...
# with each group's run prefix (the timestamp printed after "== NAME").
set -u
B=${1:?binary}
C=${2:?cache directory}
shift 2
: "${HHNAS_SPIDER_DIR:?set HHNAS_SPIDER_DIR to the Spider folder}"
run() { name=$1; shift; echo "== $name $(date +%Y%m%d-%H%M%S)"; /usr/bin/time -f "$name wall %e s" "$B" --cache-dir "$C" run "$@" 2>&1 | grep -E "created|finished|wall|error" ; }
for split in 0 1 2; do
  run "demo-split$split" --seeds 0,1,2 --devices cpu,cpu --set data.split_seed=$split "$@"
  run "fixed-split$split" --seeds 0,1,2 --devices cpu,cpu --set data.split_seed=$split --set search.strategy=fixed "$@"
done
echo "== done $(date +%T)"
