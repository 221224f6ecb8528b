#!/usr/bin/env python3
"""PyTorch counterpart of one frozen-mode candidate of the demo (issue 23's head bench).

The evidence head hhnas-train builds (stages/train/src/evidence.rs), in PyTorch:
  logits = out(drop(relu(fc2(drop(relu(fc1(vector))))))) + score(evidence[c]) per class,
  evidence[c] = the vectors' per-class blocks after the encoder's width, then the
  per-class outputs of each CNN branch (Conv1d 1 -> channels, "same" padding, ReLU; the
  LLM branch has one column per class, the rule branch is averaged over each class's
  columns), score = Linear(E, 16) -> ReLU -> Linear(16, 1) shared by all classes.
The branches run as PyTorch's dense Conv1d (the natural PyTorch form); ours convolves only
the positions near nonzero columns (same values).

Training as train_candidate does it: AdamW (0.9/0.999, eps 1e-8, weight decay 0.01),
shuffled batches, mean cross-entropy, the validation accuracy after every epoch with a
copy of the weights when it improves, the test accuracy of the best epoch at the end.

Inputs are the files the Rust bench writes (DIR/meta.json names the shapes): the same
rows, vectors, feature matrices and labels the product's candidate reads.

  torch-head.py --threads N --dir DIR --model 1|4
Prints "RESULT head\t<seconds>" and "RESULT valid\t<best valid accuracy>".
"""

import argparse
import copy
import json
import os
import time

import numpy as np
import torch
from torch import nn


class EvidenceHead(nn.Module):
    def __init__(self, m, llm, rules, rule_class):
        super().__init__()
        c, width = m["classes"], m["encoder_width"]
        self.c, self.width = c, width
        self.blocks = (m["vector_dim"] - width) // c
        self.fc1 = nn.Linear(width, m["layer_size1"])
        self.fc2 = nn.Linear(m["layer_size1"], m["layer_size2"])
        self.out = nn.Linear(m["layer_size2"], c)
        self.drop = nn.Dropout(m["dropout"])
        ch, k = m["channels"], m["kernel"]
        conv = lambda: nn.Conv1d(1, ch, k, padding=k // 2)
        self.llm = conv() if llm else None
        self.rules = conv() if rules else None
        if rules:
            self.register_buffer("rule_class", rule_class)
            counts = torch.zeros(c).index_add_(0, rule_class, torch.ones(len(rule_class)))
            self.register_buffer("inv_count", 1.0 / counts.clamp(min=1.0))
        evidence = self.blocks + ch * (int(llm) + int(rules))
        self.hidden = nn.Linear(evidence, m["scorer_hidden"])
        self.score = nn.Linear(m["scorer_hidden"], 1)

    def forward(self, v, judge, rules):
        b = v.shape[0]
        x = self.drop(torch.relu(self.fc1(v[:, : self.width])))
        x = self.drop(torch.relu(self.fc2(x)))
        dense = self.out(x)
        parts = [v[:, self.width :].reshape(b, self.blocks, self.c)]
        if self.llm is not None:
            parts.append(torch.relu(self.llm(judge.unsqueeze(1))))
        if self.rules is not None:
            y = torch.relu(self.rules(rules.unsqueeze(1)))
            pooled = torch.zeros(b, y.shape[1], self.c).index_add_(2, self.rule_class, y)
            parts.append(pooled * self.inv_count)
        ev = torch.cat(parts, 1).transpose(1, 2)
        return dense + self.score(torch.relu(self.hidden(ev))).squeeze(-1)


def load(d):
    m = json.load(open(os.path.join(d, "meta.json")))
    rows = m["rows"]
    vec = np.fromfile(os.path.join(d, "vectors.f32"), dtype=np.float32).reshape(rows, -1)
    judge = np.fromfile(os.path.join(d, "judge.u8"), dtype=np.uint8).reshape(rows, -1)
    rules = np.fromfile(os.path.join(d, "rules.u8"), dtype=np.uint8).reshape(rows, -1)
    labels = np.fromfile(os.path.join(d, "labels.u32"), dtype=np.uint32).astype(np.int64)
    rule_class = np.fromfile(os.path.join(d, "rule_class.u32"), dtype=np.uint32)
    split = {
        s: torch.from_numpy(np.fromfile(os.path.join(d, f"{s}.u32"), dtype=np.uint32).astype(np.int64))
        for s in ("train", "valid", "test")
    }
    return (m, torch.from_numpy(vec), torch.from_numpy(judge), torch.from_numpy(rules),
            torch.from_numpy(labels), torch.from_numpy(rule_class.astype(np.int64)), split)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--model", type=int, choices=[1, 2, 3, 4], required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m, vec, judge, rules, labels, rule_class, split = load(a.dir)
    llm, use_rules = a.model in (2, 4), a.model in (3, 4)
    start = time.perf_counter()
    model = EvidenceHead(m, llm, use_rules, rule_class)
    opt = torch.optim.AdamW(model.parameters(), lr=m["learning_rate"], betas=(0.9, 0.999),
                            eps=1e-8, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def batch(idx):
        j = judge[idx].float() if llm else None
        r = rules[idx].float() if use_rules else None
        return vec[idx], j, r

    def accuracy(rows):
        model.eval()
        ok = 0
        with torch.no_grad():
            for s in range(0, len(rows), 64):
                idx = rows[s : s + 64]
                ok += (model(*batch(idx)).argmax(1) == labels[idx]).sum().item()
        model.train()
        return ok / len(rows)

    best, best_state = -1.0, None
    train = split["train"]
    for _ in range(m["epochs"]):
        perm = train[torch.randperm(len(train))]
        for s in range(0, len(perm), m["batch_size"]):
            idx = perm[s : s + m["batch_size"]]
            loss = loss_fn(model(*batch(idx)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        acc = accuracy(split["valid"])
        if acc > best:
            best, best_state = acc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    test = accuracy(split["test"])
    secs = time.perf_counter() - start
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, model {a.model}: "
          f"{secs:.2f} s, valid {best:.4f}, test {test:.4f}")
    print(f"RESULT head\t{secs:.4f}")
    print(f"RESULT valid\t{best:.4f}")


if __name__ == "__main__":
    main()
