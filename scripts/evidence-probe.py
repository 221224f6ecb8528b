#!/usr/bin/env python3
"""Evidence probe: which per-class evidence a shared per-class scorer reads best, measured
outside the project on scikit-learn's splits (the protocol of
../shared/tools/reference-baselines.py), to decide what the pipeline computes.

  python3 scripts/evidence-probe.py [overlap|none]
  env: SETS=max2,max2+svm (feature sets to train; default all),
       BANK=tv (evidence drawn from training + validation rows; default training rows)
Needs torch, scikit-learn, numpy, and $EMB (default /tmp/exp/emb.npy): all-MiniLM-L6-v2 mean-pooled,
L2-normalised vectors of Spider's deduplicated training questions in file order.
Per class: emb/char max, top-3 mean and centroid cosine (each row left out), and the
cross-fitted (5-fold) LinearSVC decision values over character 2-5-gram TF-IDF.
Prints each feature's top-1 accuracy (train / test) and the scorer's test accuracy per set.
"""
import json, os, re, sys, time, math
from collections import defaultdict, Counter
import numpy as np

SP = os.environ.get("HHNAS_SPIDER_DIR", "../shared/datasets/spider")
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
E = np.load(os.environ.get("EMB", "/tmp/exp/emb.npy"))
import torch
torch.set_num_threads(2)
from sklearn.model_selection import train_test_split, StratifiedKFold
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

def nn_feats(S, ytr, C, own):  # S: [n, ntr] sims; own: index in train of the row itself or -1
    S = S.copy()
    for r, j in enumerate(own):
        if j >= 0: S[r, j] = -np.inf
    mx = np.full((S.shape[0], C), -1.0); t3 = np.full((S.shape[0], C), -1.0)
    for c in range(C):
        cols = np.where(ytr == c)[0]
        sc = np.sort(S[:, cols], axis=1)[:, ::-1]
        mx[:, c] = sc[:, 0]
        k = min(3, sc.shape[1] - 1)
        t3[:, c] = np.where(np.isfinite(sc[:, :k]), sc[:, :k], 0).mean(1)
    return mx, t3

def cent_feats(X, Xtr, ytr, C, own, dense):
    # centroid cosine, own row removed
    if dense:
        sums = np.zeros((C, Xtr.shape[1]))
        for c in range(C): sums[c] = Xtr[ytr == c].sum(0)
        cnt = np.bincount(ytr, minlength=C).astype(float)
        F = np.zeros((X.shape[0], C))
        for r in range(X.shape[0]):
            s = sums.copy(); j = own[r]
            if j >= 0: s[ytr[j]] -= Xtr[j]
            s /= np.linalg.norm(s, axis=1, keepdims=True) + 1e-9
            F[r] = s @ X[r]
        return F
    import scipy.sparse as sp
    Y = sp.csr_matrix((np.ones(len(ytr)), (ytr, np.arange(len(ytr)))), shape=(C, len(ytr)))
    sums = np.asarray((Y @ Xtr).todense())
    F = np.zeros((X.shape[0], C))
    Xd = X.toarray() if hasattr(X, "toarray") else X
    Xtrd = Xtr.toarray()
    for r in range(X.shape[0]):
        j = own[r]
        if j >= 0:
            s = sums.copy(); s[ytr[j]] -= Xtrd[j]
        else:
            s = sums
        n = np.linalg.norm(s, axis=1) + 1e-9
        F[r] = (s @ Xd[r]) / n
    return F

def scorer(Ftr, ytr, Fte, Etr, Ete, seed, dense=True, epochs=20, hidden=16):
    torch.manual_seed(seed)
    k = Ftr.shape[2]; C = Ftr.shape[1]
    sc = torch.nn.Sequential(torch.nn.Linear(k, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    dn = torch.nn.Sequential(torch.nn.Linear(Etr.shape[1], 256), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(256, C))
    params = list(sc.parameters()) + (list(dn.parameters()) if dense else [])
    opt = torch.optim.AdamW(params, lr=1e-3)
    F = torch.tensor(Ftr, dtype=torch.float32); Y = torch.tensor(ytr); Et = torch.tensor(Etr, dtype=torch.float32)
    def fwd(F, E):
        out = sc(F).squeeze(-1)
        return out + dn(E) if dense else out
    for ep in range(epochs):
        sc.train(); dn.train(); perm = torch.randperm(len(F))
        for i in range(0, len(F), 16):
            b = perm[i:i+16]; opt.zero_grad()
            torch.nn.functional.cross_entropy(fwd(F[b], Et[b]), Y[b]).backward(); opt.step()
    sc.eval(); dn.eval()
    with torch.no_grad():
        return fwd(torch.tensor(Fte, dtype=torch.float32), torch.tensor(Ete, dtype=torch.float32)).argmax(1).numpy()

merge = sys.argv[1] if len(sys.argv) > 1 else "overlap"
cmap = overlap_merge(rows) if merge == "overlap" else {d: d for _, d in rows}
classes = sorted(set(cmap.values())); cid = {c: i for i, c in enumerate(classes)}
y = np.array([cid[cmap[d]] for _, d in rows]); C = len(classes)
res = defaultdict(list)
for seed in [0, 1, 2]:
    idx = np.arange(N)
    tr, rest = train_test_split(idx, test_size=0.30, stratify=y, random_state=seed)
    va, te = train_test_split(rest, test_size=0.50, stratify=y[rest], random_state=seed)
    import os
    if os.environ.get("BANK") == "tv":
        bank = np.concatenate([tr, va])
    else:
        bank = tr
    ntr = len(tr)
    ytr, yte = y[tr], y[te]
    tr_orig = tr; tr = bank; ytr = y[tr]
    t0 = time.time()
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    Xtr = vec.fit_transform([texts[i] for i in tr]); Xte = vec.transform([texts[i] for i in te])
    own_tr = np.arange(len(tr)); own_te = -np.ones(len(te), int)
    feats = {}
    for name, (A, B) in {"emb": (E[tr], E[te]), "char": (Xtr, Xte)}.items():
        Str = np.asarray((A @ B.T).T if False else (A @ A.T).todense() if hasattr(A, "todense") else A @ A.T)
        Ste = np.asarray((B @ A.T).todense() if hasattr(B, "todense") else B @ A.T)
        mtr, ttr = nn_feats(Str, ytr, C, own_tr); mte, tte = nn_feats(Ste, ytr, C, own_te)
        feats[name + "_max"] = (mtr, mte); feats[name + "_top3"] = (ttr, tte)
        ctr = cent_feats(A, A, ytr, C, own_tr, name == "emb"); cte = cent_feats(B, A, ytr, C, own_te, name == "emb")
        feats[name + "_cent"] = (ctr, cte)
    # cross-fitted SVM
    svtr = np.zeros((len(tr), C))
    for ftr, fte in StratifiedKFold(5, shuffle=True, random_state=seed).split(tr, ytr):
        v = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
        m = LinearSVC(C=1.0).fit(v.fit_transform([texts[tr[i]] for i in ftr]), ytr[ftr])
        svtr[fte] = m.decision_function(v.transform([texts[tr[i]] for i in fte]))
    m = LinearSVC(C=1.0).fit(Xtr, ytr); svte = m.decision_function(Xte)
    feats["svm"] = (svtr, svte)
    print(f"seed {seed}: features {time.time()-t0:.0f}s", flush=True)
    feats = {k: (a[:ntr], b) for k, (a, b) in feats.items()}
    tr = tr_orig; ytr = y[tr]
    for k, (a, b) in feats.items():
        res["top1 " + k].append(((a.argmax(1) == ytr).mean(), (b.argmax(1) == yte).mean()))
    sets = {
        "max2": ["emb_max", "char_max"],
        "max2+top3": ["emb_max", "char_max", "emb_top3", "char_top3"],
        "max2+cent": ["emb_max", "char_max", "emb_cent", "char_cent"],
        "max2+top3+cent": ["emb_max", "char_max", "emb_top3", "char_top3", "emb_cent", "char_cent"],
        "max2+svm": ["emb_max", "char_max", "svm"],
        "all": list(feats),
    }
    import os
    if os.environ.get("SETS"): sets = {k: v for k, v in sets.items() if k in os.environ["SETS"].split(",")}
    for sname, ks in sets.items():
        Ftr = np.stack([feats[k][0] for k in ks], 2); Fte = np.stack([feats[k][1] for k in ks], 2)
        for dense in [True]:
            p = scorer(Ftr, ytr, Fte, E[tr], E[te], seed, dense=dense)
            res[f"{sname} dense={dense}"].append((0, (p == yte).mean()))
    for k, v in res.items():
        print(f"  {k}: " + " ".join(f"{x[1]*100:.2f}" for x in v), flush=True)
print("MEAN")
for k, v in res.items():
    t = np.array([x[1] for x in v]) * 100; tr_ = np.array([x[0] for x in v]) * 100
    print(f"{k:35s} test {t.mean():.2f} ± {t.std(ddof=1) if len(t)>1 else 0:.2f}   train {tr_.mean():.2f}")
