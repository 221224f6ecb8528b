#!/usr/bin/env python3
"""PyTorch reference for the GPU check: one training epoch of a RoBERTa-shaped classifier
(first-token pooling, Linear 256 -> ReLU -> dropout -> Linear 128 -> ReLU -> dropout ->
Linear C, AdamW) on Spider's questions, batch 16, at most 32 tokens, random weights.
Tokens come from a hashing word tokenizer (no download needed), so sequence lengths are
close to, not equal to, hhnas-pipe's BPE lengths. Prints examples/s.

  torch-epoch.py SPIDER_DIR [--device cuda] [--hidden 768 --layers 12 --heads 12]
"""

import argparse
import json
import random
import re
import time
import zlib

import torch
from torch import nn
from transformers import RobertaConfig, RobertaModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spider")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--max-len", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rows", type=int, default=4893)
    args = ap.parse_args()

    rows = json.load(open(f"{args.spider}/train_spider.json"))
    dbs = sorted({r["db_id"] for r in rows})
    label = {d: i for i, d in enumerate(dbs)}
    random.seed(0)
    random.shuffle(rows)
    rows = rows[: args.rows]

    def ids(q):
        toks = re.findall(r"[a-z0-9]+|[^\sa-z0-9]", q.lower())[: args.max_len - 2]
        return [0] + [3 + zlib.crc32(t.encode()) % (args.vocab - 3) for t in toks] + [2]

    data = [(ids(r["question"]), label[r["db_id"]]) for r in rows]
    dev = torch.device(args.device)
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                        num_hidden_layers=args.layers, num_attention_heads=args.heads,
                        intermediate_size=4 * args.hidden, max_position_embeddings=args.max_len + 2,
                        pad_token_id=1, type_vocab_size=1)
    enc = RobertaModel(cfg, add_pooling_layer=False)
    head = nn.Sequential(nn.Linear(args.hidden, 256), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, len(dbs)))
    model = nn.ModuleDict({"enc": enc, "head": head}).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    loss_fn = nn.CrossEntropyLoss()

    def step(batch):
        width = max(len(x) for x, _ in batch)
        x = torch.full((len(batch), width), 1, dtype=torch.long)
        m = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (t, _) in enumerate(batch):
            x[i, : len(t)] = torch.tensor(t)
            m[i, : len(t)] = 1
        y = torch.tensor([l for _, l in batch])
        x, m, y = x.to(dev), m.to(dev), y.to(dev)
        h = model["enc"](input_ids=x, attention_mask=m).last_hidden_state[:, 0]
        loss = loss_fn(model["head"](h), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    batches = [data[i: i + args.batch] for i in range(0, len(data), args.batch)]
    for b in batches[:5]:  # warm-up (kernels, allocator)
        step(b)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in batches:
        loss = step(b)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    print(f"torch {torch.__version__} {args.device} "
          f"{torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}: "
          f"1 epoch of {len(data)} rows in {secs:.2f} s = {len(data) / secs:.1f} examples/s "
          f"(h{args.hidden} L{args.layers}, batch {args.batch}, <= {args.max_len} tokens, "
          f"final loss {loss.item():.3f})")


if __name__ == "__main__":
    main()
