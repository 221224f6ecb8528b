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
        let mut scores = vec![0f64; self.num_classes];
        let mut q = content_tokens(text);
        q.sort();
        q.dedup();
        let n = self.num_classes as f64;
        let Bm25Params { k1, b } = self.params;
        for t in &q {
            let Some(post) = self.postings.get(t) else {
                continue;
            };
            let df = post.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(c, f) in post {
                let f = f as f64;
                let norm = if self.avg_len > 0.0 {
                    1.0 - b + b * self.doc_len[c as usize] / self.avg_len
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
        let mut ranked: Vec<(u32, f64)> = self
            .scores(text)
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

/// The deterministic stand-in for the LLM judge: a `texts.len() x C` matrix with 1 for
/// the top `min(m, k)` classes of each text's BM25 shortlist of `k`.
pub fn judge_lexical(ranker: &Bm25Ranker, texts: &[&str], k: usize, m: usize) -> FeatureMatrix {
    let c = ranker.num_classes();
    let mut out = FeatureMatrix::zeros(texts.len(), c);
    for (i, t) in texts.iter().enumerate() {
        for (class, _) in ranker.rank(t, k).into_iter().take(m) {
            out.set(i, class as usize, 1);
        }
    }
    out
}
