//! hhnas-ensemble: ensemble selection over every candidate a search trained (Caruana,
//! Niculescu-Mizil, Crew and Ksikes 2004, "Ensemble selection from libraries of models",
//! as auto-sklearn and AutoGluon use it).
//!
//! Greedy forward selection with replacement on the validation split: starting from an
//! empty bag, each round adds the candidate whose addition gives the bag's averaged class
//! probabilities the best validation score; after `rounds` rounds the best-scoring prefix
//! of the additions is kept. A candidate picked k times weighs k / (picks in the bag).
//! Pure functions of typed inputs: the engine reads the candidates' stored probabilities
//! and stores what comes out.

use serde::{Deserialize, Serialize};

/// Class probabilities of some rows, row-major (`rows * classes`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProbMatrix {
    pub rows: usize,
    pub classes: usize,
    pub data: Vec<f32>,
}

impl ProbMatrix {
    /// From one probability vector per row; every row must have `classes` values.
    pub fn from_rows(rows: &[Vec<f32>], classes: usize) -> Result<Self, EnsembleError> {
        let mut data = Vec::with_capacity(rows.len() * classes);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != classes {
                return Err(EnsembleError::Shape(format!(
                    "row {i} has {} class probabilities, expected {classes}",
                    r.len()
                )));
            }
            data.extend_from_slice(r);
        }
        Ok(ProbMatrix {
            rows: rows.len(),
            classes,
            data,
        })
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.classes..(i + 1) * self.classes]
    }

    /// The predicted class of every row (the first of equal maxima).
    pub fn argmax(&self) -> Vec<usize> {
        (0..self.rows).map(|i| argmax(self.row(i))).collect()
    }
}

/// The validation and test probabilities of one trained candidate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SplitProbs {
    pub valid: ProbMatrix,
    pub test: ProbMatrix,
}

/// What a bag is scored by on the validation split.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Accuracy, ties broken by the lower log loss (what the search optimises too).
    #[default]
    Accuracy,
    /// Mean negative log likelihood of the true class (smoother; fewer ties).
    LogLoss,
}

/// How the selection runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SelectionParams {
    /// Additions to the bag (auto-sklearn's `ensemble_size`); the best prefix is kept.
    pub rounds: usize,
    pub metric: Metric,
}

impl Default for SelectionParams {
    fn default() -> Self {
        SelectionParams {
            rounds: 25,
            metric: Metric::Accuracy,
        }
    }
}

/// The selected bag: how often each candidate was picked, and its scores.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Selection {
    /// Picks per candidate, in the order the candidates were given (0 = not in the bag).
    pub picks: Vec<u32>,
    /// Validation accuracy of the bag (0..1).
    pub valid_acc: f64,
    /// Validation log loss of the bag.
    pub valid_log_loss: f64,
    /// The bag's validation accuracy after each round (the selection curve).
    pub curve: Vec<f64>,
}

impl Selection {
    /// Weight of each candidate: picks / total picks.
    pub fn weights(&self) -> Vec<f64> {
        let total: u32 = self.picks.iter().sum();
        self.picks
            .iter()
            .map(|&p| f64::from(p) / f64::from(total.max(1)))
            .collect()
    }

    /// Indices of the candidates in the bag.
    pub fn members(&self) -> Vec<usize> {
        (0..self.picks.len())
            .filter(|&i| self.picks[i] > 0)
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnsembleError {
    #[error("no candidate to select from: the run has trained none yet")]
    Empty,
    #[error("ensemble rounds must be at least 1 (got 0). Fix: set [ensemble] rounds = 25")]
    NoRounds,
    #[error("class probabilities do not line up: {0}")]
    Shape(String),
}

/// Greedy forward selection with replacement of `candidates` (validation probabilities)
/// against `labels`. Deterministic: among equal scores the earlier candidate wins.
pub fn select(
    candidates: &[&ProbMatrix],
    labels: &[u32],
    params: &SelectionParams,
) -> Result<Selection, EnsembleError> {
    let first = candidates.first().ok_or(EnsembleError::Empty)?;
    if params.rounds == 0 {
        return Err(EnsembleError::NoRounds);
    }
    check_shapes(candidates, labels.len(), first.classes)?;
    let (rows, classes) = (first.rows, first.classes);
    // Sum of the picked candidates' probabilities; the bag's are sum / picks.
    let mut sum = vec![0f64; rows * classes];
    let mut picks = vec![0u32; candidates.len()];
    let mut order = Vec::with_capacity(params.rounds);
    let mut scores = Vec::with_capacity(params.rounds);
    for round in 0..params.rounds {
        let n = (round + 1) as f64;
        let mut best: Option<(usize, Score)> = None;
        for (c, m) in candidates.iter().enumerate() {
            let s = score_with(&sum, m, n, labels, classes);
            if best.is_none_or(|(_, b)| s.better_than(&b, params.metric)) {
                best = Some((c, s));
            }
        }
        let (c, s) = best.expect("at least one candidate");
        for (acc, &p) in sum.iter_mut().zip(&candidates[c].data) {
            *acc += f64::from(p);
        }
        order.push(c);
        scores.push(s);
    }
    // The best prefix; the shorter one on equal scores.
    let mut keep = 0;
    for k in 1..scores.len() {
        if scores[k].better_than(&scores[keep], params.metric) {
            keep = k;
        }
    }
    for &c in &order[..=keep] {
        picks[c] += 1;
    }
    Ok(Selection {
        picks,
        valid_acc: scores[keep].accuracy,
        valid_log_loss: scores[keep].log_loss,
        curve: scores.iter().map(|s| s.accuracy).collect(),
    })
}

/// Bagged ensemble selection (Caruana et al. 2004, section 4.3): `bags` selections, each
/// over a random `fraction` of the candidates, their weights averaged. A candidate that
/// only fits the validation split's noise wins fewer bags than one that is good, so the
/// ensemble leans less on the validation rows it was chosen on. `seed` fixes the draws.
pub fn select_bagged(
    candidates: &[&ProbMatrix],
    labels: &[u32],
    params: &SelectionParams,
    bags: usize,
    fraction: f64,
    seed: u64,
) -> Result<Vec<f64>, EnsembleError> {
    use rand::seq::index::sample;
    use rand::SeedableRng;
    let n = candidates.len();
    if n == 0 {
        return Err(EnsembleError::Empty);
    }
    let bags = bags.max(1);
    let drawn = ((n as f64 * fraction).round() as usize).clamp(1, n);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut weights = vec![0f64; n];
    for _ in 0..bags {
        let mut subset = sample(&mut rng, n, drawn).into_vec();
        subset.sort_unstable();
        let chosen: Vec<&ProbMatrix> = subset.iter().map(|&i| candidates[i]).collect();
        let sel = select(&chosen, labels, params)?;
        for (&i, w) in subset.iter().zip(sel.weights()) {
            weights[i] += w / bags as f64;
        }
    }
    Ok(weights)
}

/// The weighted average of `members`' probabilities (weights as [`Selection::weights`]).
pub fn combine(members: &[&ProbMatrix], weights: &[f64]) -> Result<ProbMatrix, EnsembleError> {
    let first = members.first().ok_or(EnsembleError::Empty)?;
    if weights.len() != members.len() {
        return Err(EnsembleError::Shape(format!(
            "{} weights for {} candidates",
            weights.len(),
            members.len()
        )));
    }
    check_shapes(members, first.rows, first.classes)?;
    let mut acc = vec![0f64; first.data.len()];
    for (m, &w) in members.iter().zip(weights) {
        if w == 0.0 {
            continue;
        }
        for (a, &p) in acc.iter_mut().zip(&m.data) {
            *a += w * f64::from(p);
        }
    }
    Ok(ProbMatrix {
        rows: first.rows,
        classes: first.classes,
        data: acc.into_iter().map(|v| v as f32).collect(),
    })
}

/// Share of rows whose most probable class is the label.
pub fn accuracy(p: &ProbMatrix, labels: &[u32]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let ok = p
        .argmax()
        .iter()
        .zip(labels)
        .filter(|(a, &l)| **a == l as usize)
        .count();
    ok as f64 / labels.len() as f64
}

fn check_shapes(ms: &[&ProbMatrix], rows: usize, classes: usize) -> Result<(), EnsembleError> {
    for (i, m) in ms.iter().enumerate() {
        if m.rows != rows || m.classes != classes || m.data.len() != rows * classes {
            return Err(EnsembleError::Shape(format!(
                "candidate {i} has {} rows x {} classes ({} values), expected {rows} x {classes}",
                m.rows,
                m.classes,
                m.data.len()
            )));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct Score {
    accuracy: f64,
    log_loss: f64,
}

impl Score {
    fn better_than(&self, other: &Score, metric: Metric) -> bool {
        match metric {
            Metric::Accuracy => {
                self.accuracy > other.accuracy
                    || (self.accuracy == other.accuracy && self.log_loss < other.log_loss)
            }
            Metric::LogLoss => self.log_loss < other.log_loss,
        }
    }
}

/// The score of the bag `sum / (n - 1)` with `m` added (n members in all).
fn score_with(sum: &[f64], m: &ProbMatrix, n: f64, labels: &[u32], classes: usize) -> Score {
    let mut correct = 0usize;
    let mut loss = 0.0;
    let mut row = vec![0f64; classes];
    for (i, &label) in labels.iter().enumerate() {
        let base = i * classes;
        for c in 0..classes {
            row[c] = (sum[base + c] + f64::from(m.data[base + c])) / n;
        }
        let mut best = 0;
        for c in 1..classes {
            if row[c] > row[best] {
                best = c;
            }
        }
        if best == label as usize {
            correct += 1;
        }
        loss -= row[label as usize].max(1e-12).ln();
    }
    let rows = labels.len().max(1) as f64;
    Score {
        accuracy: correct as f64 / rows,
        log_loss: loss / rows,
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
