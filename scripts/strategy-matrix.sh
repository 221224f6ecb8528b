#!/usr/bin/env bash
# The search's worth at 86 classes: every strategy x seeds 0-2 in one cache, as in
# docs/results.md ("The search's worth"). Usage: scripts/strategy-matrix.sh BINARY CACHE
# (HHNAS_SPIDER_DIR must be set, as an absolute path). Then:
#   BINARY --cache-dir CACHE status --all --json | python3 scripts/runs-table.py --label RUNPREFIX=NAME ...
# with each group's run prefix (the timestamp printed after "== NAME").
set -u
B=${1:?binary}
C=${2:?cache directory}
: "${HHNAS_SPIDER_DIR:?set HHNAS_SPIDER_DIR to the Spider folder}"
PAPER="--set search.reward=difference --set search.alpha=1.0 --set search.learning_rate.k_mean=1.0 --set search.learning_rate.k_var=0.5 --set search.dropout_rate.k_mean=0.2 --set search.dropout_rate.k_var=0.02"
run() { name=$1; shift; echo "== $name $(date +%Y%m%d-%H%M%S)"; /usr/bin/time -f "$name wall %e s" "$B" --cache-dir "$C" run "$@" 2>&1 | grep -E "created|finished|wall|error" ; }
run fixed --seeds 0,1,2 --set search.strategy=fixed
run hhnas-rank --seeds 0,1,2
run random --seeds 0,1,2 --set search.strategy=random
run repeat --seeds 0,1,2 --set search.strategy=repeat
run evolution --seeds 0,1,2 --set 'search.strategy={evolution={population=10,sample_size=3}}'
# shellcheck disable=SC2086
run hhnas-paper --seeds 0,1,2 $PAPER
echo "== done $(date +%T)"
