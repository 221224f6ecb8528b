//! BM25 class shortlist and the lexical judge.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::matrix::FeatureMatrix;
use crate::text::content_tokens;
use crate::Dataset;

/// BM25 constants.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Bm25Params {
    /// Term-frequency saturation (default 1.2).
    pub k1: f64,
    /// Length normalisation (default 0.75).
    pub b: f64,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params { k1: 1.2, b: 0.75 }
    }
}

/// BM25 over one document per class: the class's `schema_text` plus its training
/// questions (never validation or test rows). Deterministic, serialisable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Bm25Ranker {
    params: Bm25Params,
    num_classes: usize,
    doc_len: Vec<f64>,
    avg_len: f64,
    /// folded term -> [(class, term frequency)], classes ascending.
    postings: BTreeMap<String, Vec<(u32, u32)>>,
}

impl Bm25Ranker {
    /// Builds the ranker with default constants.
    pub fn build(ds: &Dataset) -> Bm25Ranker {
        Self::build_with(ds, &Bm25Params::default())
    }

    /// Builds the ranker with the given constants.
    pub fn build_with(ds: &Dataset, params: &Bm25Params) -> Bm25Ranker {
        let c = ds.classes.len();
        let mut tf: Vec<HashMap<String, u32>> = vec![HashMap::new(); c];
        let mut doc_len = vec![0f64; c];
        let mut add = |class: usize, text: &str| {
            for t in content_tokens(text) {
                *tf[class].entry(t).or_default() += 1;
                doc_len[class] += 1.0;
            }
        };
        for (ci, class) in ds.classes.iter().enumerate() {
            add(ci, &class.schema_text);
        }
        for &i in &ds.train {
            if let Some(row) = ds.rows.get(i) {
                if (row.label as usize) < c {
                    add(row.label as usize, &row.question);
                }
            }
        }
        let mut postings: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
        for (ci, m) in tf.into_iter().enumerate() {
            for (t, n) in m {
                postings.entry(t).or_default().push((ci as u32, n));
            }
        }
        // Classes were visited in ascending order, so each posting list is sorted.
        let avg_len = if c == 0 {
            0.0
        } else {
            doc_len.iter().sum::<f64>() / c as f64
        };
        Bm25Ranker {
            params: params.clone(),
            num_classes: c,
            doc_len,
            avg_len,
            postings,
        }
    }

    /// Number of classes ranked.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// BM25 score of every class for `text` (`num_classes` long).
    pub fn scores(&self, text: &str) -> Vec<f64> {
        self.scores_leaving_out(text, None)
    }

    /// Like [`Self::scores`], but with `text` itself taken out of class `own`'s document
    /// (leave-one-out): a training question is part of its class's document, so scoring
    /// it against that document would find its own words there and make the feature look
    /// stronger on training rows than it is on unseen questions.
    pub fn scores_leaving_out(&self, text: &str, own: Option<u32>) -> Vec<f64> {
        let mut scores = vec![0f64; self.num_classes];
        let tokens = content_tokens(text);
        let mut own_tf: HashMap<&str, f64> = HashMap::new();
        if own.is_some() {
            for t in &tokens {
                *own_tf.entry(t.as_str()).or_default() += 1.0;
            }
        }
        let own_len = tokens.len() as f64;
        let mut q: Vec<&String> = tokens.iter().collect();
        q.sort();
        q.dedup();
        let n = self.num_classes as f64;
        let Bm25Params { k1, b } = self.params;
        for t in q {
            let Some(post) = self.postings.get(t) else {
                continue;
            };
            let df = post.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(c, f) in post {
                let (mut f, mut len) = (f as f64, self.doc_len[c as usize]);
                if own == Some(c) {
                    f -= own_tf.get(t.as_str()).copied().unwrap_or(0.0);
                    len -= own_len;
                }
                if f <= 0.0 {
                    continue;
                }
                let norm = if self.avg_len > 0.0 {
                    1.0 - b + b * len / self.avg_len
                } else {
                    1.0
                };
                scores[c as usize] += idf * f * (k1 + 1.0) / (f + k1 * norm);
            }
        }
        scores
    }

    /// The (at most) `k` best classes for `text` with their scores, best first, ties by
    /// lower class id. Classes with score 0 (no shared word) are never listed, so a
    /// question sharing no word with any class gets an empty shortlist.
    pub fn rank(&self, text: &str, k: usize) -> Vec<(u32, f64)> {
        self.rank_leaving_out(text, None, k)
    }

    /// [`Self::rank`] over [`Self::scores_leaving_out`].
    pub fn rank_leaving_out(&self, text: &str, own: Option<u32>, k: usize) -> Vec<(u32, f64)> {
        let mut ranked: Vec<(u32, f64)> = self
            .scores_leaving_out(text, own)
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s > 0.0)
            .map(|(c, s)| (c as u32, s))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked
    }
}

/// Texts to judge, each with the class whose document holds it (a training row of the
/// dataset the ranker was built from), so it is left out of that document.
#[derive(Debug, Clone, Default)]
pub struct Queries<'a> {
    pub texts: Vec<&'a str>,
    pub own_class: Vec<Option<u32>>,
}

impl<'a> Queries<'a> {
    /// New texts, part of no class document.
    pub fn new(texts: &[&'a str]) -> Queries<'a> {
        Queries {
            texts: texts.to_vec(),
            own_class: vec![None; texts.len()],
        }
    }

    /// Every row of `ds`; training rows leave themselves out of their class's document.
    pub fn dataset(ds: &'a Dataset) -> Queries<'a> {
        let mut own_class = vec![None; ds.rows.len()];
        for &i in &ds.train {
            if let Some(r) = ds.rows.get(i) {
                own_class[i] = Some(r.label);
            }
        }
        Queries {
            texts: ds.rows.iter().map(|r| r.question.as_str()).collect(),
            own_class,
        }
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Each text's shortlist of `k` classes.
    pub fn shortlists(&self, ranker: &Bm25Ranker, k: usize) -> Vec<Vec<(u32, f64)>> {
        self.texts
            .iter()
            .zip(&self.own_class)
            .map(|(t, &own)| ranker.rank_leaving_out(t, own, k))
            .collect()
    }
}

/// Share of `rows` whose own class carries the row's highest mark in `m` (ties count):
/// the feature's top-1 accuracy read as a classifier.
pub fn label_top1_rate(m: &FeatureMatrix, ds: &Dataset, rows: &[usize]) -> f64 {
    if rows.is_empty() {
        return 0.0;
    }
    let hits = rows
        .iter()
        .filter(|&&i| {
            let row = m.row(i);
            let best = row.iter().copied().max().unwrap_or(0);
            best > 0 && row[ds.rows[i].label as usize] == best
        })
        .count();
    hits as f64 / rows.len() as f64
}

/// Share of `rows` whose own class is marked (nonzero) in `m`. Printed for training and
/// test rows side by side: a feature that marks the right class far more often on
/// training rows than on new ones leaks the label.
pub fn label_hit_rate(m: &FeatureMatrix, ds: &Dataset, rows: &[usize]) -> f64 {
    if rows.is_empty() {
        return 0.0;
    }
    let hits = rows
        .iter()
        .filter(|&&i| m.get(i, ds.rows[i].label as usize) > 0)
        .count();
    hits as f64 / rows.len() as f64
}

/// The deterministic stand-in for the LLM judge: a `queries.len() x C` matrix over each
/// text's BM25 shortlist of `k`. With `levels == 0`, 1 for the top `min(m, k)` classes
/// (true/false, as an LLM judge answers). With `levels > 0`, every shortlisted class gets
/// a grade in `1..=levels`, ceil(levels * score / best score): the ranker's confidence,
/// which a yes/no judge cannot give.
pub fn judge_lexical(
    ranker: &Bm25Ranker,
    queries: &Queries,
    k: usize,
    m: usize,
    levels: u8,
) -> FeatureMatrix {
    let c = ranker.num_classes();
    let mut out = FeatureMatrix::zeros(queries.len(), c);
    for (i, shortlist) in queries.shortlists(ranker, k).into_iter().enumerate() {
        if levels == 0 {
            for (class, _) in shortlist.into_iter().take(m) {
                out.set(i, class as usize, 1);
            }
            continue;
        }
        let best = shortlist.first().map_or(0.0, |&(_, s)| s);
        for (class, score) in shortlist {
            let grade = (f64::from(levels) * score / best)
                .ceil()
                .clamp(1.0, f64::from(levels));
            out.set(i, class as usize, grade as u8);
        }
    }
    out
}
