#!/usr/bin/env python3
"""Which candidates a cache's runs trained: per search strategy, how many, the share of
Models 2-4 (CNN branches), the mean layer sizes and the dense layers' FLOPs relative to the
initial candidate (256 x 128 over 384 values, 86 classes), and the mean wall seconds per
candidate (journal `train` lines that were computed, not replayed).

  candidate-mix.py CACHE_DIR
"""

import collections
import glob
import json
import os
import sys

WIDTH, CLASSES = 384, 86


def strategy(run_dir):
    cfg = open(os.path.join(run_dir, "config.toml")).read()
    for name in ("fixed", "repeat", "random"):
        if f'strategy = "{name}"' in cfg:
            return name
    if "evolution" in cfg:
        return "evolution"
    return "hhnas-rank" if "rank" in cfg else "hhnas-paper"


def dense_flops(l1, l2):
    return 2 * (WIDTH * l1 + l1 * l2 + l2 * CLASSES)


def main():
    rows = collections.defaultdict(list)
    for d in sorted(glob.glob(os.path.join(sys.argv[1], "runs", "*"))):
        samples = {}
        for line in open(os.path.join(d, "journal.jsonl")):
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if e.get("event") != "stage":
                continue
            if e["stage"] == "sample":
                samples[e["iteration"]] = e["metrics"]["params"]
            if e["stage"] == "train" and not e["cache_hit"]:
                p = samples[e["iteration"]]
                l1, l2 = int(p["layer_size1"]), int(p["layer_size2"])
                rows[strategy(d)].append((int(p["model"][0]), l1, l2, e["wall_secs"]))
    init = dense_flops(256, 128)
    print(f"{'strategy':<12} {'n':>4} {'ls1':>6} {'ls2':>6} {'dense/init':>10} {'M2-4':>6} {'s/cand':>7}")
    for name, v in sorted(rows.items()):
        n = len(v)
        print(f"{name:<12} {n:>4} {sum(x[1] for x in v) / n:>6.0f} {sum(x[2] for x in v) / n:>6.0f} "
              f"{sum(dense_flops(x[1], x[2]) for x in v) / n / init:>10.2f} "
              f"{sum(x[0] > 1 for x in v) / n:>6.2f} {sum(x[3] for x in v) / n:>7.1f}")


if __name__ == "__main__":
    main()
