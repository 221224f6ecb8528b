#!/usr/bin/env python3
"""One line per finished run of a cache, and mean ± sd per group, from `status --all --json`.

  hhnas-pipe --cache-dir CACHE status --all --json | python3 scripts/runs-table.py [--label RUN=NAME ...]

Per run: strategy, seed, the best single candidate (valid / test), the ensemble as
selected (valid / test), the final model's test accuracy (the refit's when refit), the
spread of P(s) (max - min) after the last update, and the training wall time (sum of the
iterations' wall times). Groups are the strategy names unless `--label RUN_PREFIX=NAME`
names them (e.g. to tell the paper's reward from the rank reward, both `hhnas`).
"""
import json
import statistics
import sys


def pct(x):
    return "-" if x is None else f"{100 * x:.2f}"


def mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{100 * xs[0]:.2f}"
    return f"{100 * statistics.mean(xs):.2f} ± {100 * statistics.stdev(xs):.2f}"


def main():
    labels = {}
    args = sys.argv[1:]
    while args:
        if args[0] == "--label":
            k, v = args[1].split("=", 1)
            labels[k] = v
            args = args[2:]
        else:
            sys.exit(__doc__)
    runs = json.load(sys.stdin)
    rows = []
    for s in runs:
        if s["state"] != "finished" or not s.get("best"):
            continue
        name = next((v for k, v in labels.items() if s["run_id"].startswith(k)), s["strategy"])
        f = s.get("final_model") or {}
        e = s.get("ensemble") or {}
        probs = list((s.get("mutation_probabilities") or {}).values())
        spread = max(probs) - min(probs) if probs else None
        wall = sum(r["wall_secs"] for r in s["iterations"] if r.get("valid_acc") is not None)
        rows.append({
            "group": name, "run": s["run_id"], "seed": s["seed"],
            "single_valid": s["best"]["valid_acc"], "single_test": s["best"]["test_acc"],
            "ens_valid": e.get("valid_acc"), "ens_test": e.get("test_acc", f.get("selected_test_acc")),
            "final_test": f.get("test_acc"), "refit": f.get("refit"),
            "spread": spread, "wall": wall, "iters": s["iterations_done"],
        })
    print("| group | run | seed | iterations | best single valid / test | ensemble valid / test | final test | P(s) spread | training wall s |")
    print("| --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: |")
    for r in rows:
        spread = "-" if r["spread"] is None else f"{r['spread']:.3f}"
        refit = " (refit)" if r["refit"] else ""
        print(f"| {r['group']} | {r['run']} | {r['seed']} | {r['iters']} | {pct(r['single_valid'])} / {pct(r['single_test'])} | "
              f"{pct(r['ens_valid'])} / {pct(r['ens_test'])} | {pct(r['final_test'])}{refit} | {spread} | {r['wall']:.0f} |")
    print()
    print("| group | runs | best single test | ensemble test | final test | best single valid | ensemble valid | P(s) spread |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    groups = []
    for r in rows:
        if r["group"] not in groups:
            groups.append(r["group"])
    for g in groups:
        rs = [r for r in rows if r["group"] == g]
        sp = [r["spread"] for r in rs if r["spread"] is not None]
        print(f"| {g} | {len(rs)} | {mean_sd([r['single_test'] for r in rs])} | {mean_sd([r['ens_test'] for r in rs])} | "
              f"{mean_sd([r['final_test'] for r in rs])} | {mean_sd([r['single_valid'] for r in rs])} | "
              f"{mean_sd([r['ens_valid'] for r in rs])} | {statistics.mean(sp) if sp else 0:.3f} |")


if __name__ == "__main__":
    main()
