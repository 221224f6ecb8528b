//! Character n-gram SVM evidence: for each question and each class, the decision value
//! of a one-vs-rest linear SVM over the question's character 2-5-gram TF-IDF vector.
//!
//! The per-class nearest neighbour ([`crate::CharNgramIndex::class_scores`]) reads one
//! training question per class; a linear model weighs every n-gram of every training
//! question of the class against all the others, which is what the strongest simple
//! baseline does (93.75 % on Spider, 86 classes). Measured outside the project on
//! scikit-learn's splits (3 seeds, 86 classes), a shared per-class scorer over both
//! neighbour values reaches 93.42 ± 0.67 % test; with these decision values as a third
//! value, 94.12 ± 0.22 %.
//!
//! Training rows never see a model that was fitted on them (cross-fitting): the bank is
//! split into `folds` parts, stratified by class, and a training row's values come from
//! the model fitted on the other parts. Unseen questions get the model fitted on the
//! whole bank. Without that, training rows would see margins of about +1 for their own
//! class (the SVM fits them), and the head would trust a value that unseen questions
//! never show.
//!
//! The solver is dual coordinate descent for the L2-regularised squared-hinge loss with
//! a regularised bias (LIBLINEAR's default solver, which scikit-learn's `LinearSVC`
//! calls), without shrinking; every class is fitted on its own, so they run in parallel
//! and the result does not depend on the thread count.

use crate::char_ngrams::{CharNgramIndex, ClassScores};
use crate::tfidf::Sparse;

/// The SVM's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CharSvmParams {
    /// Inverse regularisation strength (scikit-learn's `C`, default 1).
    pub c: f32,
    /// Cross-fitting folds for the bank's own rows.
    pub folds: usize,
}

impl Default for CharSvmParams {
    fn default() -> Self {
        CharSvmParams { c: 1.0, folds: 5 }
    }
}

/// Stop when the projected gradients' spread falls under this (LIBLINEAR's default).
const TOLERANCE: f32 = 0.1;
/// Passes over the rows at most, per class.
const MAX_EPOCHS: usize = 300;

/// One-vs-rest linear SVM: `classes` rows of `dim` weights plus a bias.
struct LinearSvm {
    /// Per class: `dim` weights, then the bias.
    weights: Vec<Vec<f32>>,
}

impl LinearSvm {
    fn fit(rows: &[&Sparse], labels: &[u32], classes: usize, dim: usize, c: f32) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(classes.max(1));
        let mut weights: Vec<Vec<f32>> = vec![Vec::new(); classes];
        std::thread::scope(|scope| {
            for (t, chunk) in weights.chunks_mut(classes.div_ceil(threads)).enumerate() {
                let first = t * classes.div_ceil(threads);
                scope.spawn(move || {
                    for (k, w) in chunk.iter_mut().enumerate() {
                        *w = fit_binary(rows, labels, (first + k) as u32, dim, c);
                    }
                });
            }
        });
        LinearSvm { weights }
    }

    fn decision(&self, x: &Sparse, out: &mut [f32]) {
        for (o, w) in out.iter_mut().zip(&self.weights) {
            *o = margin(w, x);
        }
    }
}

/// w . x + bias, with the bias stored after the `w.len() - 1` weights.
fn margin(w: &[f32], x: &Sparse) -> f32 {
    w[w.len() - 1] + x.iter().map(|&(id, v)| w[id as usize] * v).sum::<f32>()
}

/// Dual coordinate descent for one class against the rest (Hsieh et al., 2008, with
/// D_ii = 1 / 2C for the squared hinge). Rows are visited in a fixed pseudo-random
/// order per epoch, seeded by the class, so a fit is reproducible.
fn fit_binary(rows: &[&Sparse], labels: &[u32], class: u32, dim: usize, c: f32) -> Vec<f32> {
    let n = rows.len();
    let diag = 0.5 / c;
    let y: Vec<f32> = labels
        .iter()
        .map(|&l| if l == class { 1.0 } else { -1.0 })
        .collect();
    // The bias is a constant feature of value 1.
    let qd: Vec<f32> = rows
        .iter()
        .map(|x| x.iter().map(|(_, v)| v * v).sum::<f32>() + 1.0 + diag)
        .collect();
    let mut w = vec![0.0f32; dim + 1];
    let mut alpha = vec![0.0f32; n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (u64::from(class) + 1));
    for _ in 0..MAX_EPOCHS {
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let (mut pg_max, mut pg_min) = (f32::NEG_INFINITY, f32::INFINITY);
        for &i in &order {
            let x = rows[i];
            let g = y[i] * margin(&w, x) - 1.0 + alpha[i] * diag;
            let pg = if alpha[i] == 0.0 { g.min(0.0) } else { g };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                let step = (alpha[i] - old) * y[i];
                for &(id, v) in x {
                    w[id as usize] += step * v;
                }
                w[dim] += step;
            }
        }
        if pg_max - pg_min <= TOLERANCE {
            break;
        }
    }
    w
}

/// A small deterministic generator for the visiting order.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

impl CharNgramIndex {
    /// Per-class SVM decision values of every query (see the module documentation).
    /// `own_rows[q]`, when given, is query q's position in the bank: its values come from
    /// the fold model that did not see it.
    pub fn svm_scores(
        &self,
        queries: &[&str],
        own_rows: Option<&[Option<usize>]>,
        params: CharSvmParams,
    ) -> ClassScores {
        let c = self.classes();
        let dim = self.vocab_len();
        let bank = self.bank_vectors();
        let labels = self.labels();
        let vectors: Vec<Sparse> = queries.iter().map(|q| self.vector(q)).collect();
        let mut data = vec![0.0f32; queries.len() * c];
        let own = |q: usize| own_rows.and_then(|o| o[q]);
        let unseen: Vec<usize> = (0..queries.len()).filter(|&q| own(q).is_none()).collect();
        if !unseen.is_empty() {
            let all: Vec<&Sparse> = bank.iter().collect();
            let model = LinearSvm::fit(&all, labels, c, dim, params.c);
            for &q in &unseen {
                model.decision(&vectors[q], &mut data[q * c..(q + 1) * c]);
            }
        }
        if unseen.len() < queries.len() {
            let folds = params.folds.max(2);
            let fold = stratified_folds(labels, c, folds);
            for f in 0..folds {
                let (rows, fold_labels): (Vec<&Sparse>, Vec<u32>) = bank
                    .iter()
                    .zip(labels)
                    .zip(&fold)
                    .filter(|(_, &k)| k != f)
                    .map(|((x, &l), _)| (x, l))
                    .unzip();
                let model = LinearSvm::fit(&rows, &fold_labels, c, dim, params.c);
                for q in 0..queries.len() {
                    if own(q).is_some_and(|p| fold[p] == f) {
                        model.decision(&vectors[q], &mut data[q * c..(q + 1) * c]);
                    }
                }
            }
        }
        ClassScores {
            rows: queries.len(),
            classes: c,
            data,
        }
    }
}

/// Fold of every bank row: each class's rows dealt out in turn, so every fold holds
/// about the same share of every class.
fn stratified_folds(labels: &[u32], classes: usize, folds: usize) -> Vec<usize> {
    let mut dealt = vec![0usize; classes];
    labels
        .iter()
        .map(|&l| {
            let k = dealt[l as usize];
            dealt[l as usize] += 1;
            k % folds
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BANK: [&str; 8] = [
        "how many singers are there",
        "list the singers by age",
        "name of the youngest singer",
        "singers from france",
        "what is the name of the oldest dog",
        "list the dogs by breed",
        "how many dogs are there",
        "which dog owners live in paris",
    ];
    const LABELS: [u32; 8] = [0, 0, 0, 0, 1, 1, 1, 1];

    #[test]
    fn unseen_questions_lean_to_the_class_whose_ngrams_they_share() {
        let index = CharNgramIndex::build(&BANK, &LABELS, 2);
        let s = index.svm_scores(
            &["count the singer rows", "oldest dogs"],
            None,
            CharSvmParams::default(),
        );
        assert!(s.data[0] > 0.0 && s.data[1] < 0.0, "{:?}", s.data);
        assert!(s.data[3] > 0.0 && s.data[2] < 0.0, "{:?}", s.data);
        // The bank's own rows, fitted on: each lies on its class's side.
        let fitted = index.svm_scores(&BANK, None, CharSvmParams::default());
        for (r, &l) in LABELS.iter().enumerate() {
            let row = &fitted.data[r * 2..r * 2 + 2];
            assert!(row[l as usize] > row[1 - l as usize], "row {r}: {row:?}");
        }
    }

    #[test]
    fn bank_rows_get_values_from_a_model_that_did_not_see_them() {
        let index = CharNgramIndex::build(&BANK, &LABELS, 2);
        let params = CharSvmParams { c: 1.0, folds: 4 };
        let own: Vec<Option<usize>> = (0..BANK.len()).map(Some).collect();
        let crossed = index.svm_scores(&BANK, Some(&own), params);
        let fitted = index.svm_scores(&BANK, None, params);
        // A row the model saw sits near its margin of 1; left out, its own class's value
        // is lower for every row.
        for (r, &l) in LABELS.iter().enumerate() {
            let l = l as usize;
            assert!(crossed.data[r * 2 + l] < fitted.data[r * 2 + l], "row {r}");
        }
        // Deterministic: the same call gives the same bits.
        assert_eq!(crossed, index.svm_scores(&BANK, Some(&own), params));
    }

    #[test]
    fn folds_deal_each_class_out_in_turn() {
        assert_eq!(
            stratified_folds(&[0, 0, 1, 0, 1, 1, 0], 2, 3),
            [0, 1, 0, 2, 1, 2, 0]
        );
    }
}
