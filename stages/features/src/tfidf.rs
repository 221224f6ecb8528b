//! The TF-IDF weighting both lexical indexes use (character n-grams, schema words), as
//! scikit-learn's `TfidfVectorizer(sublinear_tf=True)` computes it.

use std::collections::HashMap;

/// A text as L2-normalised TF-IDF weights over a vocabulary, ids ascending.
pub(crate) type Sparse = Vec<(u32, f32)>;

/// Smoothed idf of each term from its document frequency over `documents` documents:
/// ln((1 + n) / (1 + df)) + 1.
pub(crate) fn smoothed_idf(df: &[u32], documents: usize) -> Vec<f32> {
    let n = documents as f32;
    df.iter()
        .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
        .collect()
}

/// Term counts `tf` (by term id) weighted (1 + ln tf) x idf and L2-normalised.
pub(crate) fn weigh(tf: HashMap<u32, u32>, idf: &[f32]) -> Sparse {
    let mut v: Sparse = tf
        .into_iter()
        .map(|(id, n)| (id, (1.0 + (n as f32).ln()) * idf[id as usize]))
        .collect();
    // Sorted before summing: a HashMap's order changes from process to process, and so
    // would the last bits of the norm.
    v.sort_unstable_by_key(|&(id, _)| id);
    let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|(_, w)| *w /= norm);
    }
    v
}
