#!/usr/bin/env python3
"""Compare two run journals line for line, timings left out (ts, pid, wall_secs, any
metric whose key names seconds or a rate, and durations inside summary strings).

Usage: python3 scripts/journal-diff.py BEFORE/journal.jsonl AFTER/journal.jsonl
"""
import json, re, sys

TIMING = re.compile(r"(secs|per_sec|_s$|^ts$|^pid$|examples_per_sec|seconds)")
DUR = re.compile(r"\d+(\.\d+)?\s*(s|ms|min|q/s|ex/s|questions/s)\b")

def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items() if not TIMING.search(k)}
    if isinstance(v, list):
        return [clean(x) for x in v]
    if isinstance(v, str):
        return DUR.sub("<t>", v)
    return v

def lines(p):
    return [clean(json.loads(l)) for l in open(p) if l.strip()]

a, b = lines(sys.argv[1]), lines(sys.argv[2])
same = 0
for i, (x, y) in enumerate(zip(a, b)):
    if x == y:
        same += 1
    else:
        print(f"line {i+1} differs:\n  before {json.dumps(x)[:400]}\n  after  {json.dumps(y)[:400]}")
print(f"{len(a)} lines before, {len(b)} after, {same} identical (timings left out)")
