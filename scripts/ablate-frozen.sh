#!/usr/bin/env bash
# Ablations of the frozen demo, one knob at a time: Model 4 with the demo's initial micro
# parameters (strategy fixed), seed 0. Prints valid/test accuracy and wall time per variant.
# Usage: scripts/ablate-frozen.sh [CACHE_DIR]   (HHNAS_SPIDER_DIR must name Spider; the
# binary is $HHNAS_BIN or target/release/hhnas-pipe). Reuses the cache's encode stage.
# ONLY="default no-char-svm" runs just the variants named.
set -euo pipefail
bin="${HHNAS_BIN:-$(pwd)/target/release/hhnas-pipe}"
cache="${1:-cache}"
base=(--set search.strategy=fixed --set search.initial.llm_branch=true --set search.initial.rule_branch=true)
# Each variant: NAME:KEY=VALUE[,KEY=VALUE...] (the global max pool needs the dense head).
for v in "default:" "dense-head:train.head=dense" "no-char-neighbours:features.char_neighbours=false" \
         "no-char-svm:features.char_svm=false" "train-bank:features.evidence_bank=train" \
         "no-char-svm-train-bank:features.char_svm=false,features.evidence_bank=train" \
         "no-neighbours:encoder.neighbours=false,features.char_neighbours=false,features.char_svm=false" \
         "no-loo:features.leave_one_out=false" "global-max:train.branch_pool=global-max,train.head=dense" \
         "binary-judge:features.lexical_levels=0" "cls:encoder.pooling=cls" "scratch-frozen:encoder.source=scratch"; do
  name=${v%%:*}; knobs=${v#*:}
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then continue; fi
  extra=()
  IFS=',' read -ra kv <<<"$knobs"
  for k in "${kv[@]}"; do extra+=(--set "$k"); done
  start=$(date +%s)
  log=$("$bin" --cache-dir "$cache" run "${base[@]}" "${extra[@]}" 2>&1)
  echo "$name: $(grep -E 'train \(iteration 0\): model' <<<"$log" | sed 's/.*INFO //') wall $(( $(date +%s) - start )) s"
done
