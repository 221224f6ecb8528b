//! Neighbour evidence over frozen vectors: for each question and each class, the cosine
//! similarity of the question to the class's most similar training question.
//!
//! A logistic regression over all-MiniLM-L6-v2 vectors plus BM25 and schema evidence
//! gains 1.9 points of test accuracy (90.6 -> 92.5 %, 86 classes) when these 86 values
//! are added, and a 2-layer MLP head 3.7: a linear read of one pooled vector cannot
//! express "close to *some* question of class c", which is what the nearest neighbour
//! says. The values come from the encoder alone (its vectors and the training labels),
//! so Model 1 stays the encoder-only model, and they cost one pass of dot products.
//!
//! A training row is never its own neighbour (leave-one-out): otherwise every training
//! row would see a similarity of 1 for its own class, and the head would learn to trust
//! a value that unseen questions never show.

use serde::{Deserialize, Serialize};

use crate::vectors::Embeddings;

/// `rows x classes` similarities, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourScores {
    pub classes: usize,
    pub rows: usize,
    pub data: Vec<f32>,
}

/// The labelled vectors neighbours are drawn from: rows `rows` of `vectors`, with their
/// classes.
pub struct NeighbourBank<'a> {
    pub vectors: &'a Embeddings,
    pub rows: &'a [usize],
    pub labels: &'a [u32],
    pub classes: usize,
}

/// Per-class nearest-neighbour similarity of every row of `queries`. With
/// `same_rows`, `queries` are the bank's own vectors (row r is row r) and a bank row is
/// skipped for itself. A class with no bank row scores -1, the lowest cosine.
pub fn neighbour_scores(
    bank: &NeighbourBank,
    queries: &Embeddings,
    same_rows: bool,
) -> NeighbourScores {
    let dim = bank.vectors.dim;
    assert_eq!(queries.dim, dim, "queries and bank come from one encoder");
    // Vectors are L2-normalised and scaled by sqrt(dim) ([`Embeddings`]): cos = dot / dim.
    let scale = 1.0 / dim as f32;
    let c = bank.classes;
    let mut data = vec![-1.0f32; queries.rows * c];
    for (q, out) in data.chunks_exact_mut(c).enumerate() {
        let qv = queries.row(q);
        for (&r, &label) in bank.rows.iter().zip(bank.labels) {
            if same_rows && r == q {
                continue;
            }
            let cos = dot(qv, bank.vectors.row(r)) * scale;
            let best = &mut out[label as usize];
            if cos > *best {
                *best = cos;
            }
        }
    }
    NeighbourScores {
        classes: c,
        rows: queries.rows,
        data,
    }
}

/// Eight partial sums, so the compiler vectorises the loop.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The head's input: each row's vector followed by its class scores, named `tag` (e.g.
/// "neighbours"). The identity names both, so a head trained on one kind of input never
/// loads vectors of the other.
pub fn with_class_scores(base: &Embeddings, scores: &NeighbourScores, tag: &str) -> Embeddings {
    assert_eq!(base.rows, scores.rows, "one score row per vector");
    let dim = base.dim + scores.classes;
    let mut data = Vec::with_capacity(base.rows * dim);
    for r in 0..base.rows {
        data.extend_from_slice(base.row(r));
        data.extend_from_slice(&scores.data[r * scores.classes..(r + 1) * scores.classes]);
    }
    Embeddings {
        pooling: base.pooling,
        dim,
        rows: base.rows,
        data,
        encoder_id: format!("{}+{tag}/{}", base.encoder_id, scores.classes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::Pooling;

    /// Unit vectors at the given angles, scaled like [`Embeddings`] (sqrt(2)).
    fn vectors(angles: &[f32]) -> Embeddings {
        let s = 2f32.sqrt();
        Embeddings {
            pooling: Pooling::Mean,
            dim: 2,
            rows: angles.len(),
            data: angles
                .iter()
                .flat_map(|a| [a.cos() * s, a.sin() * s])
                .collect(),
            encoder_id: "t".into(),
        }
    }

    #[test]
    fn max_cosine_per_class_leaving_each_row_out() {
        // Rows 0, 1 class 0 (angles 0, 0.1); row 2 class 1 (angle 1.5); row 3 a query.
        let v = vectors(&[0.0, 0.1, 1.5, 0.05]);
        let bank = NeighbourBank {
            vectors: &v,
            rows: &[0, 1, 2],
            labels: &[0, 0, 1],
            classes: 2,
        };
        let s = neighbour_scores(&bank, &v, true);
        let at = |r: usize, c: usize| s.data[r * 2 + c];
        // Row 0's best class-0 neighbour is row 1, not itself.
        assert!((at(0, 0) - 0.1f32.cos()).abs() < 1e-5);
        assert!((at(3, 0) - 0.05f32.cos()).abs() < 1e-5);
        assert!((at(3, 1) - 1.45f32.cos()).abs() < 1e-5);
        // Row 2 is class 1's only member: left out, class 1 has no neighbour for it.
        assert_eq!(at(2, 1), -1.0);
        // Without leave-one-out a bank row finds itself.
        let all = neighbour_scores(&bank, &v, false);
        assert!((all.data[0] - 1.0).abs() < 1e-5);

        let joined = with_class_scores(&v, &s, "neighbours");
        assert_eq!(joined.dim, 4);
        assert_eq!(&joined.row(3)[..2], v.row(3));
        assert_eq!(&joined.row(3)[2..], &s.data[6..8]);
        assert_ne!(joined.identity(), v.identity());
    }

    #[test]
    fn dot_matches_the_plain_sum_past_the_unrolled_part() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 3.0 - i as f32).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
    }
}
