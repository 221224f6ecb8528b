#!/usr/bin/env python3
"""The simple baseline for a labelled text set: character 2-5 TF-IDF + linear SVM, trained
on the whole training file (what hhnas-pipe splits into train and validation), scored on
the test file. Prints the test accuracy, to put beside `hhnas-pipe status RUN`.

  tfidf-baseline.py TRAIN.jsonl TEST.jsonl [--text text] [--label label]
"""
import argparse
import json

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC


def read(path, text, label):
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    return [r[text] for r in rows], [r[label] for r in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--text", default="text")
    ap.add_argument("--label", default="label")
    a = ap.parse_args()
    xtr, ytr = read(a.train, a.text, a.label)
    xte, yte = read(a.test, a.text, a.label)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=True)
    model = LinearSVC(C=1.0).fit(vec.fit_transform(xtr), ytr)
    pred = model.predict(vec.transform(xte))
    acc = sum(p == y for p, y in zip(pred, yte)) / len(yte)
    print(f"char 2-5 TF-IDF + linear SVM: {len(xtr)} training texts, {len(xte)} test texts, "
          f"{len(set(ytr))} labels: test accuracy {100 * acc:.2f}%")


if __name__ == "__main__":
    main()
