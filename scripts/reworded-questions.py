#!/usr/bin/env python3
"""A reworded check set: test questions whose schema words are replaced by WordNet synonyms.

A user's question rarely copies the schema's names; the character n-gram evidence that
carries most of the demo's accuracy is exactly what breaks when words change. This script
makes such questions from a run's own test split, deterministically:

  hhnas-pipe data-stats --write-test test.json          # the test split, Spider format
  python3 scripts/reworded-questions.py SPIDER_DIR test.json reworded.json
  hhnas-pipe eval RUN --input reworded.json             # accuracy on the reworded set

For every question, each word that names a table or column of its database (the natural
names in tables.json, split into words; a plural -s folded) and has a WordNet synonym is
replaced by the most common other lemma of its most frequent noun sense (one that is not
a form of the word and is attested in WordNet's sense-tagged corpus); questions with no
replacement are left out. WordNet comes from Debian's
`wordnet-base` package (/usr/share/wordnet), installed with apt-get when missing (root).
Each output row keeps the original question under "original" and lists "replaced".
"""
import json
import os
import re
import subprocess
import sys

WN = "/usr/share/wordnet"
STOP = set(
    "a an the of in on at to for by with and or is are was were be been what which who whom "
    "whose how many much all each every list show give find name names number count id ids "
    "me it its their there that this those these than then from as do does did have has "
    "average total".split()
)


def ensure_wordnet():
    if os.path.isfile(f"{WN}/index.noun"):
        return
    print("installing Debian's wordnet-base (WordNet 3.0 data)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "wordnet-base"], check=True,
                   stdout=subprocess.DEVNULL)


def load_wordnet():
    """Noun senses: lemma -> synset offsets (most frequent sense first), synset -> lemmas,
    and each lemma's count of sense-tagged uses (how common the word is)."""
    offsets, words_of, tagged = {}, {}, {}
    with open(f"{WN}/index.noun", encoding="latin-1") as f:
        for line in f:
            if line.startswith(" "):
                continue
            parts = line.split()
            lemma, n_synsets, n_ptrs = parts[0], int(parts[2]), int(parts[3])
            tagged[lemma] = int(parts[5 + n_ptrs])
            offsets[lemma] = parts[6 + n_ptrs:6 + n_ptrs + n_synsets]
    with open(f"{WN}/data.noun", encoding="latin-1") as f:
        for line in f:
            if line.startswith(" "):
                continue
            parts = line.split()
            n = int(parts[3], 16)
            words_of[parts[0]] = [parts[4 + 2 * i].lower() for i in range(n)]
    return offsets, words_of, tagged


def synonym(word, wordnet):
    """The most common other lemma of the word's most frequent noun sense, if any is in
    common use (tagged at least once in WordNet's sense-tagged corpus)."""
    offsets, words_of, tagged = wordnet
    first = offsets.get(word, [])[:1]
    best = None
    for off in first:
        for lemma in words_of.get(off, []):
            lemma = re.sub(r"\(.*\)$", "", lemma)
            if lemma == word or lemma[:4] == word[:4] or not re.fullmatch(r"[a-z_]+", lemma):
                continue
            n = tagged.get(lemma, 0)
            if n >= 1 and (best is None or n > best[1]):
                best = (lemma, n)
    return best[0].replace("_", " ") if best else None


def schema_words(tables):
    out = {}
    for t in tables:
        names = t["table_names"] + [c for _, c in t["column_names"] if c != "*"]
        ws = set()
        for n in names:
            ws.update(w for w in re.findall(r"[a-z]+", n.lower()) if len(w) >= 3 and w not in STOP)
        out[t["db_id"]] = ws
    return out


def reword(question, words, wordnet):
    replaced = []

    def sub(m):
        w = m.group(0)
        low = w.lower()
        base = low[:-1] if low.endswith("s") and low[:-1] in words else low
        if base not in words or low in STOP:
            return w
        syn = synonym(base, wordnet)
        if syn is None:
            return w
        if base != low:
            syn += "s"
        if w[0].isupper():
            syn = syn[0].upper() + syn[1:]
        replaced.append(f"{w} -> {syn}")
        return syn

    return re.sub(r"[A-Za-z]+", sub, question), replaced


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    spider, test_file, out_file = sys.argv[1:]
    ensure_wordnet()
    wordnet = load_wordnet()
    words = schema_words(json.load(open(f"{spider}/tables.json")))
    rows = json.load(open(test_file))
    out = []
    for r in rows:
        new, replaced = reword(r["question"], words.get(r["db_id"], set()), wordnet)
        if replaced:
            out.append({"db_id": r["db_id"], "question": new, "original": r["question"],
                        "replaced": replaced})
    json.dump(out, open(out_file, "w"), indent=1)
    n_rep = sum(len(r["replaced"]) for r in out)
    print(f"{len(out)} of {len(rows)} test questions reworded ({n_rep} words replaced) -> {out_file}")
    for r in out[:5]:
        print(f"  {r['original']}\n  -> {r['question']}")


if __name__ == "__main__":
    main()
