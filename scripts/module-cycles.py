#!/usr/bin/env python3
"""Import circles between the modules of each crate of the workspace.

  python3 scripts/module-cycles.py

A module is a file under a crate's src/ (a folder's mod.rs is the folder); an edge a -> b
is a `crate::b` path in a's file (a child module's own paths count for its parent only
when they leave the parent). Prints every strongly connected set of two or more modules.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def crates():
    yield "hhnas-pipe", os.path.join(ROOT, "src")
    for base in ("engine", "stages"):
        d = os.path.join(ROOT, base)
        if base == "engine":
            yield "hhnas-engine", os.path.join(d, "src")
            continue
        for name in sorted(os.listdir(d)):
            src = os.path.join(d, name, "src")
            if os.path.isdir(src):
                yield f"hhnas-{name}", src


def modules(src):
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                continue
            out["::".join(rel)] = open(os.path.join(dirpath, f)).read()
    return out


def edges(mods):
    g = {m: set() for m in mods}
    for m, text in mods.items():
        text = re.sub(r"//[^\n]*", "", text)
        for path in re.findall(r"crate::([a-z_]+(?:::[a-z_]+)*)", text):
            parts = path.split("::")
            # the longest module prefix that exists
            target = None
            for k in range(len(parts), 0, -1):
                cand = "::".join(parts[:k])
                if cand in mods:
                    target = cand
                    break
            if target and target != m and not target.startswith(m + "::") and not m.startswith(target + "::"):
                g[m].add(target)
    return g


def sccs(g):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index:
            visit(v)
    return out


total = 0
for crate, src in crates():
    for comp in sccs(edges(modules(src))):
        total += 1
        print(f"{crate}: {' <-> '.join(comp)}")
print(f"{total} circle(s)")
