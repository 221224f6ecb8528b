#!/usr/bin/env python3
"""PyTorch counterpart of stages/train/benches/train_throughput.rs.

Same model shape as hhnas-train's classifier (BERT-layout encoder, first-token pooling,
Linear 256 -> ReLU -> dropout -> Linear 128 -> ReLU -> dropout -> Linear 86), AdamW,
batch 16, sequence 32, CPU, the given thread count. Prints examples/s of forward +
backward + step, and machine-readable lines "RESULT <name>\t<ex/s>".

  bench-torch.py [--threads N] [--quick]
  bench-torch.py [--threads N] --encode MODEL_DIR QUESTIONS.json
  bench-torch.py [--threads N] --finetune-minilm STEPS

--encode times what the encode stage does, in PyTorch: tokenize, forward without
gradients, mean pooling over the attention mask (as sentence-transformers does),
max_len 64, batches of 64 questions of similar length. Prints "RESULT encode\t<q/s>".

--finetune-minilm times the MiniLM-sized classifier alone (embeddings trained), STEPS
timed steps after 2 warm-up steps (issue 23's comparison in train_throughput).
"""

import argparse
import time

import torch
from torch import nn
from transformers import BertConfig, BertModel

BATCH, SEQ = 16, 32


class Classifier(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoder = BertModel(cfg, add_pooling_layer=False)
        self.head = nn.Sequential(
            nn.Linear(cfg.hidden_size, 256), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 86),
        )

    def forward(self, ids, mask):
        h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return self.head(h[:, 0])


def bench(name, hidden, layers, heads, inter, vocab, steps, frozen):
    torch.manual_seed(1)
    cfg = BertConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=inter, max_position_embeddings=512,
        layer_norm_eps=1e-12, attn_implementation="eager",
    )
    model = Classifier(cfg)
    if frozen:
        model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = (torch.arange(BATCH * SEQ) * 7919 % (vocab - 5) + 5).reshape(BATCH, SEQ)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    labels = torch.arange(BATCH) % 86
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(ids, mask), labels)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    train = steps * BATCH / (time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        model(ids, mask)
        t = time.perf_counter()
        for _ in range(steps):
            model(ids, mask)
        infer = steps * BATCH / (time.perf_counter() - t)
    print(f"  PyTorch {torch.__version__} {name:<28} frozen_emb={str(frozen):<5} "
          f"train {train:7.1f} ex/s   inference {infer:7.1f} ex/s")
    if not frozen:
        print(f"RESULT {name}\t{train:.2f}")


def encode(model_dir, questions_file):
    import json
    from transformers import AutoModel, AutoTokenizer

    texts = json.load(open(questions_file))
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    t0 = time.time()
    order = sorted(range(len(texts)), key=lambda i: len(tok.tokenize(texts[i])))
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            batch = [texts[i] for i in order[start:start + 64]]
            enc = tok(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            _ = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    secs = time.time() - t0
    rate = len(texts) / secs
    print(f"encode (PyTorch {torch.__version__}, {torch.get_num_threads()} threads): "
          f"{len(texts)} questions, {secs:.1f} s, {rate:.1f} questions/s")
    print(f"RESULT encode\t{rate:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--encode", nargs=2, metavar=("MODEL_DIR", "QUESTIONS"))
    ap.add_argument("--finetune-minilm", type=int, metavar="STEPS")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.encode:
        encode(*a.encode)
        return
    if a.finetune_minilm:
        bench("MiniLM-sized h384 L6 v30522", 384, 6, 12, 1536, 30522, a.finetune_minilm, False)
        return
    print(f"PyTorch {torch.__version__}, batch {BATCH}, seq {SEQ}, AdamW, {a.threads} threads")
    archs = [
        ("demo-profile h64 L1 v2000", 64, 1, 2, 128, 2000, 10 if a.quick else 40),
        ("small h256 L4 v8000", 256, 4, 4, 1024, 8000, 4 if a.quick else 10),
    ]
    if not a.quick:
        archs.append(("MiniLM-sized h384 L6 v30522", 384, 6, 12, 1536, 30522, 5))
    for name, h, l, heads, inter, v, steps in archs:
        for frozen in (False, True):
            bench(name, h, l, heads, inter, v, steps, frozen)


if __name__ == "__main__":
    main()
