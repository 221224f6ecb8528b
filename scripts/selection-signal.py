#!/usr/bin/env python3
"""Does the score a search chooses by predict test accuracy? One line per dataset split.

  python3 scripts/selection-signal.py CACHE [--within POINTS]

Reads every run journal under CACHE/runs and groups the trained candidates (distinct
train keys) by their dataset node (the same classes and split) and by how they were
scored: on the validation split, or out of fold over the training and validation rows
(`train.bag_folds`). Per group: the candidates, and among those whose score lies within
POINTS (default 1.5) of the group's best, the Pearson correlation of score and test
accuracy. Near +1, choosing by the score chooses what test confirms; near 0 or below,
no selection on that score can be expected to gain on that test split.
"""
import glob
import json
import math
import os
import statistics
import sys


def corr(a, b):
    ma, mb = statistics.mean(a), statistics.mean(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return num / den if den else float("nan")


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    cache, within = args[0], 1.5
    if "--within" in args:
        within = float(args[args.index("--within") + 1])
    candidates = {}
    for path in glob.glob(os.path.join(cache, "runs", "*", "journal.jsonl")):
        dataset = None
        with open(path) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") != "stage":
                    continue
                m = e.get("metrics") or {}
                if e["stage"] in ("spider", "labelled"):
                    dataset = (e["stage"], m.get("summary", ""), e["key"][:8])
                elif e["stage"] == "train" and m.get("valid_acc") and m.get("test_acc"):
                    scored = f"out of fold ({m['folds']} folds)" if m.get("folds") else "validation"
                    candidates[e["key"]] = (dataset, scored, 100 * m["valid_acc"], 100 * m["test_acc"])
    groups = {}
    for dataset, scored, score, test in candidates.values():
        groups.setdefault((dataset, scored), []).append((score, test))
    print(f"{'dataset':<70} {'scored on':<22} {'n':>4} {'top':>4} {'corr':>6}")
    for (dataset, scored), rows in sorted(groups.items(), key=lambda g: str(g[0])):
        best = max(s for s, _ in rows)
        top = [(s, t) for s, t in rows if s >= best - within]
        c = corr([s for s, _ in top], [t for _, t in top]) if len(top) >= 3 else float("nan")
        name = f"{dataset[1]} [{dataset[2]}]" if dataset else "?"
        print(f"{name:<70} {scored:<22} {len(rows):>4} {len(top):>4} {c:>+6.2f}")


if __name__ == "__main__":
    main()
