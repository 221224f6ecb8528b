#!/bin/sh
# A public topic-classification set for `[data] source = "labelled"`, built from Debian's
# `fortunes` package (fortune-mod's quotations, one file per topic): each quotation is a
# text, its file's topic is the label. Writes OUT/fortunes-train.jsonl and
# OUT/fortunes-test.jsonl (a stratified 80/20 split, seed 0), at most 300 quotations per
# topic. Needs apt-get (Debian's package registry) and python3.
#
#   scripts/fortunes-dataset.sh OUT
set -eu
out=${1:?usage: scripts/fortunes-dataset.sh OUT}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download fortunes >/dev/null 2>apt.log) || { cat "$work/apt.log" >&2; exit 1; }
dpkg-deb -x "$work"/fortunes_*.deb "$work/x"
python3 - "$work/x/usr/share/games/fortunes" "$out" <<'PY'
import json, os, random, re, sys
src, out = sys.argv[1], sys.argv[2]
topics = ["art", "computers", "drugs", "education", "food", "kids", "law", "linux",
          "love", "medicine", "politics", "science", "sports", "startrek", "work"]
rng = random.Random(0)
train, test = [], []
for topic in topics:
    text = open(os.path.join(src, topic), encoding="utf-8", errors="replace").read()
    items = []
    for block in text.split("\n%\n"):
        t = re.sub(r"\s+", " ", block.replace("%", " ")).strip()
        if 20 <= len(t) <= 600 and t not in items:
            items.append(t)
    rng.shuffle(items)
    items = items[:300]
    cut = len(items) // 5
    test += [{"text": t, "label": topic} for t in items[:cut]]
    train += [{"text": t, "label": topic} for t in items[cut:]]
for name, rows in (("fortunes-train.jsonl", train), ("fortunes-test.jsonl", test)):
    rng.shuffle(rows)
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{out}/{name}: {len(rows)} texts, {len({r['label'] for r in rows})} labels")
PY
