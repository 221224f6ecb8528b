//! Paraphrase-partner evidence: for each question and each class, the probability that
//! the class's bank holds the question's paraphrase partner.
//!
//! Spider's questions come in pairs: two wordings of one SQL query on one database. After
//! a random split, 77 % of the test questions have their partner among the training and
//! validation questions (86 classes, split seed 0), and for all but three of those the
//! partner's SQL occurs in no other class's bank: finding the partner is finding the class.
//! The nearest neighbour by encoder or character cosine is the partner only about two
//! times in three; what else marks a partner (the same names and numbers, the same rare
//! words, a near length) is learned here from the bank's own pairs, whose SQL says which
//! are partners. The SQL of the question being classified is never read.
//!
//! For every question, its [`CANDIDATES`] nearest bank rows by encoder cosine plus
//! character 2-5-gram TF-IDF cosine are scored by a logistic regression over pair
//! features; a class's value is its best candidate's probability (0 without one). The
//! regression is fitted on the bank rows' own candidate pairs (each row left out of its
//! own list). A bank row's values come from the model fitted on the other half of the
//! bank (two-fold cross-fitting, as the character SVM does), so training rows see values
//! made as an unseen question's are.
//!
//! One feature reads the bank's own keys, never the question's: how many other bank rows
//! already share the candidate's key ("taken"). Spider wrote each query twice, so a
//! candidate whose second wording is already in the bank is seldom a new question's
//! partner; the regression learns how much that counts from the bank's pairs. This is a
//! prior of how the benchmark was written and split: where users ask one query many
//! times, the regression fitted on such a bank learns a weaker weight for it.
//!
//! Measured outside the project first (`scripts/accuracy-probe.py`, variants `partner*`,
//! scikit-learn's splits, 86 classes, seeds 0-2, one head): the evidence stack 94.95 ±
//! 0.44 % test, with these values 95.68 ± 0.15 % (logistic regression) and 95.58 ± 0.20 %
//! (gradient boosting); with the "taken" feature 96.31 ± 0.40 % (variant `partner3-lr`;
//! 140 classes: 92.63 ± 0.57 -> 93.58 ± 0.55 %).

use std::collections::{BTreeSet, HashMap};

use crate::char_ngrams::{CharNgramIndex, ClassScores};
use crate::text::{content_tokens, words};

/// How many nearest bank rows of a question are scored as its possible partner.
pub const CANDIDATES: usize = 20;
const FEATURES: usize = 12;
/// The "taken" feature is capped here: two or more other wordings already in the bank.
const TAKEN_CAP: u32 = 2;
/// Under this many bank rows, the model for unseen questions is fitted on all of them.
const SMALL_BANK: usize = 1000;
/// L2 penalty on the standardised weights (scikit-learn's `LogisticRegression(C=1)`).
const L2: f64 = 1.0;

/// Dense vectors, `data.len() / dim` rows of `dim` values.
#[derive(Clone, Copy)]
pub struct Dense<'a> {
    pub dim: usize,
    pub data: &'a [f32],
}

/// The labelled questions partners are looked for among.
pub struct PartnerBank<'a> {
    pub texts: &'a [&'a str],
    /// The encoder's vector of each bank row (any scale: cosines are taken).
    pub vectors: Dense<'a>,
    pub labels: &'a [u32],
    /// Each bank row's paraphrase key (Spider: its database and normalised SQL); rows
    /// that share a key are partners. `None`: unknown, a partner of no row.
    pub keys: &'a [Option<String>],
    pub classes: usize,
    /// `texts` indexed by character n-grams with `labels` and `classes` (the index the
    /// character evidence of the same bank reads: built once for both).
    pub chars: &'a CharNgramIndex,
}

type PairFeatures = [f32; FEATURES];

/// A question's candidate partners: bank positions and their pair features.
struct Candidates {
    rows: Vec<u32>,
    features: Vec<PairFeatures>,
}

/// The partner evidence of `texts` (encoder vectors `vectors`, in the bank's encoder).
/// `own_rows[q]`, when given, is query q's position in the bank: query q is that bank
/// row (same text), which leaves itself out and gets values from the half of the
/// bank's fit that did not see it.
pub fn partner_scores(
    bank: &PartnerBank,
    texts: &[&str],
    vectors: Dense,
    own_rows: Option<&[Option<usize>]>,
) -> ClassScores {
    assert_eq!(
        bank.texts.len(),
        bank.labels.len(),
        "one label per bank text"
    );
    assert_eq!(bank.texts.len(), bank.keys.len(), "one key per bank text");
    let index = PairIndex::new(bank);
    let own = |q: usize| own_rows.and_then(|o| o[q]);
    let fold = |p: usize| (splitmix64(p as u64) & 1) as usize;
    // The model for unseen questions is fitted on the pairs of a fixed quarter of the
    // bank rows (all of a small bank): enough for 12 weights, and `predict` then lists a
    // quarter of the bank instead of all of it. The run's node and `eval` fit it alike,
    // so they agree.
    let small = bank.texts.len() < SMALL_BANK;
    let in_full_fit = |p: usize| small || splitmix64(p as u64) >> 62 == 0;
    let unseen: Vec<usize> = (0..texts.len()).filter(|&q| own(q).is_none()).collect();
    let cross_fitted = unseen.len() < texts.len();
    let listed: Vec<usize> = (0..bank.texts.len())
        .filter(|&p| cross_fitted || in_full_fit(p))
        .collect();
    let mut bank_candidates: Vec<Option<Candidates>> =
        (0..bank.texts.len()).map(|_| None).collect();
    let lists = index.candidates_of_rows(bank.texts, bank.vectors, &listed, true);
    for (&p, list) in listed.iter().zip(lists) {
        bank_candidates[p] = Some(list);
    }
    let pairs = |keep: &dyn Fn(usize) -> bool| -> Vec<(PairFeatures, bool)> {
        let mut out = Vec::new();
        for (p, c) in bank_candidates.iter().enumerate().filter(|(p, _)| keep(*p)) {
            let c = c.as_ref().expect("listed");
            for (&j, f) in c.rows.iter().zip(&c.features) {
                let partner = match (&bank.keys[p], &bank.keys[j as usize]) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                };
                out.push((*f, partner));
            }
        }
        out
    };
    let full = (!unseen.is_empty()).then(|| PairModel::fit(&pairs(&in_full_fit)));
    let halves = cross_fitted.then(|| [0, 1].map(|h| PairModel::fit(&pairs(&|p| fold(p) != h))));
    let mut unseen_candidates = index
        .candidates_of_rows(texts, vectors, &unseen, false)
        .into_iter();

    let c = bank.classes;
    let mut data = vec![0.0f32; texts.len() * c];
    for (q, out) in data.chunks_exact_mut(c).enumerate() {
        let fresh;
        let (candidates, model) = match own(q) {
            Some(p) => (
                bank_candidates[p].as_ref().expect("every bank row listed"),
                &halves.as_ref().expect("fitted when a query is a bank row")[fold(p)],
            ),
            None => {
                fresh = unseen_candidates.next().expect("one list per unseen query");
                (
                    &fresh,
                    full.as_ref().expect("fitted when a query is unseen"),
                )
            }
        };
        for (&j, f) in candidates.rows.iter().zip(&candidates.features) {
            let v = &mut out[bank.labels[j as usize] as usize];
            *v = v.max(model.probability(f));
        }
    }
    ClassScores {
        rows: texts.len(),
        classes: c,
        data,
    }
}

/// The bank indexed for pair features: character n-grams, unit vectors, word sets.
struct PairIndex<'a> {
    bank: &'a PartnerBank<'a>,
    unit: Vec<f32>,
    words: Vec<TextWords>,
    idf: HashMap<String, f32>,
    /// The idf of a word no bank row holds.
    idf_unseen: f32,
    /// Per bank row, how many bank rows (itself included) share its key; 1 without one.
    key_counts: Vec<u32>,
}

/// What the pair features read of one text (ordered sets: sums over them never depend
/// on a hash seed).
struct TextWords {
    all: BTreeSet<String>,
    content: BTreeSet<String>,
    numbers: BTreeSet<String>,
    chars: usize,
}

impl TextWords {
    fn of(text: &str) -> Self {
        let all: BTreeSet<String> = words(text).into_iter().collect();
        let numbers = all
            .iter()
            .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
            .cloned()
            .collect();
        TextWords {
            content: content_tokens(text).into_iter().collect(),
            numbers,
            all,
            chars: text.chars().count(),
        }
    }
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f32 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f32 / union as f32
}

/// The rows of `v` scaled to unit length (a zero row stays zero).
fn unit_rows(v: Dense) -> Vec<f32> {
    let mut out = v.data.to_vec();
    for row in out.chunks_exact_mut(v.dim.max(1)) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
    out
}

impl<'a> PairIndex<'a> {
    fn new(bank: &'a PartnerBank<'a>) -> Self {
        let words: Vec<TextWords> = bank.texts.iter().map(|t| TextWords::of(t)).collect();
        let mut df: HashMap<&str, u32> = HashMap::new();
        for w in &words {
            for x in &w.all {
                *df.entry(x.as_str()).or_insert(0) += 1;
            }
        }
        let n = bank.texts.len() as f32;
        let idf = df
            .into_iter()
            .map(|(w, d)| (w.to_string(), ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0))
            .collect();
        let mut per_key: HashMap<&str, u32> = HashMap::new();
        for k in bank.keys.iter().flatten() {
            *per_key.entry(k.as_str()).or_insert(0) += 1;
        }
        let key_counts = bank
            .keys
            .iter()
            .map(|k| k.as_ref().map_or(1, |k| per_key[k.as_str()]))
            .collect();
        PairIndex {
            key_counts,
            unit: unit_rows(bank.vectors),
            words,
            idf,
            idf_unseen: (1.0 + n).ln() + 1.0,
            bank,
        }
    }

    /// The candidate lists of rows `rows` of `texts` (vectors `vectors`); with
    /// `bank_rows`, those are bank positions, each left out of its own list.
    fn candidates_of_rows(
        &self,
        texts: &[&str],
        vectors: Dense,
        rows: &[usize],
        bank_rows: bool,
    ) -> Vec<Candidates> {
        let dim = vectors.dim;
        let queries = unit_rows(vectors);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, rows.len().max(1));
        let chunk = rows.len().div_ceil(threads).max(1);
        let mut out: Vec<Option<Candidates>> = (0..rows.len()).map(|_| None).collect();
        std::thread::scope(|scope| {
            for (slot, ids) in out.chunks_mut(chunk).zip(rows.chunks(chunk)) {
                let queries = &queries;
                scope.spawn(move || {
                    let mut chars = vec![0.0f32; self.bank.texts.len()];
                    for (s, &q) in slot.iter_mut().zip(ids) {
                        let v = &queries[q * dim..(q + 1) * dim];
                        let own = bank_rows.then_some(q);
                        *s = Some(self.candidates_of(texts[q], v, own, &mut chars));
                    }
                });
            }
        });
        out.into_iter().map(|c| c.expect("every row")).collect()
    }

    fn candidates_of(
        &self,
        text: &str,
        unit: &[f32],
        own: Option<usize>,
        chars: &mut [f32],
    ) -> Candidates {
        let dim = unit.len();
        self.bank.chars.cosines(text, chars);
        let dense: Vec<f32> = self
            .unit
            .chunks_exact(dim.max(1))
            .map(|b| b.iter().zip(unit).map(|(x, y)| x * y).sum())
            .collect();
        let mut order: Vec<u32> = (0..chars.len() as u32)
            .filter(|&j| own != Some(j as usize))
            .collect();
        let total = |j: u32| dense[j as usize] + chars[j as usize];
        // Highest total first; ties by position, so the list never depends on threads.
        let by_total = |a: &u32, b: &u32| total(*b).total_cmp(&total(*a)).then(a.cmp(b));
        if order.len() > CANDIDATES {
            order.select_nth_unstable_by(CANDIDATES - 1, by_total);
            order.truncate(CANDIDATES);
        }
        order.sort_unstable_by(by_total);
        let best_dense = order
            .iter()
            .map(|&j| dense[j as usize])
            .fold(f32::MIN, f32::max);
        let best_chars = order
            .iter()
            .map(|&j| chars[j as usize])
            .fold(f32::MIN, f32::max);
        let q = TextWords::of(text);
        // Other bank rows sharing candidate j's key; a bank row asking leaves itself out,
        // as an unseen question is not in the bank.
        let taken = |j: usize| {
            let own_share = own.is_some_and(|p| {
                self.bank.keys[p].is_some() && self.bank.keys[p] == self.bank.keys[j]
            });
            (self.key_counts[j] - 1 - u32::from(own_share)).min(TAKEN_CAP) as f32
        };
        let features = order
            .iter()
            .enumerate()
            .map(|(rank, &j)| {
                let b = &self.words[j as usize];
                let idf = |w: &String| self.idf.get(w).copied().unwrap_or(self.idf_unseen);
                let shared: f32 = q.all.intersection(&b.all).map(idf).sum();
                let union: f32 = q.all.union(&b.all).map(idf).sum();
                let (e, c) = (dense[j as usize], chars[j as usize]);
                [
                    e,
                    c,
                    rank as f32,
                    best_dense - e,
                    best_chars - c,
                    jaccard(&q.all, &b.all),
                    jaccard(&q.content, &b.content),
                    if union > 0.0 { shared / union } else { 0.0 },
                    q.numbers.intersection(&b.numbers).count() as f32,
                    q.numbers.symmetric_difference(&b.numbers).count() as f32,
                    q.chars.abs_diff(b.chars) as f32 / q.chars.max(b.chars).max(1) as f32,
                    taken(j as usize),
                ]
            })
            .collect();
        Candidates {
            rows: order,
            features,
        }
    }
}

/// A logistic regression over standardised pair features, fitted by Newton's method.
struct PairModel {
    mean: [f64; FEATURES],
    scale: [f64; FEATURES],
    /// Weights, then the bias.
    weights: [f64; FEATURES + 1],
}

impl PairModel {
    // Index loops read as the matrix algebra they are.
    #[allow(clippy::needless_range_loop)]
    fn fit(pairs: &[(PairFeatures, bool)]) -> Self {
        let n = pairs.len().max(1) as f64;
        let mut mean = [0.0f64; FEATURES];
        let mut scale = [0.0f64; FEATURES];
        for (f, _) in pairs {
            for k in 0..FEATURES {
                mean[k] += f[k] as f64 / n;
            }
        }
        for (f, _) in pairs {
            for k in 0..FEATURES {
                scale[k] += (f[k] as f64 - mean[k]).powi(2) / n;
            }
        }
        scale
            .iter_mut()
            .for_each(|s| *s = if *s > 0.0 { s.sqrt() } else { 1.0 });
        let mut model = PairModel {
            mean,
            scale,
            weights: [0.0; FEATURES + 1],
        };
        const D: usize = FEATURES + 1;
        for _ in 0..50 {
            let mut grad = [0.0f64; D];
            let mut hess = [[0.0f64; D]; D];
            for (f, partner) in pairs {
                let x = model.standardised(f);
                let p = sigmoid(model.logit(&x));
                let r = p - if *partner { 1.0 } else { 0.0 };
                let w = p * (1.0 - p);
                for a in 0..D {
                    grad[a] += r * x[a];
                    for b in 0..=a {
                        hess[a][b] += w * x[a] * x[b];
                    }
                }
            }
            for a in 0..D {
                for b in 0..a {
                    hess[b][a] = hess[a][b];
                }
            }
            // The bias (last) is not penalised.
            for a in 0..FEATURES {
                grad[a] += L2 * model.weights[a];
                hess[a][a] += L2;
            }
            hess[FEATURES][FEATURES] += 1e-9;
            let step = solve(hess, grad);
            let mut largest = 0.0f64;
            for (w, s) in model.weights.iter_mut().zip(step) {
                *w -= s;
                largest = largest.max(s.abs());
            }
            if largest < 1e-9 {
                break;
            }
        }
        model
    }

    /// The features standardised, with a trailing 1 for the bias.
    fn standardised(&self, f: &PairFeatures) -> [f64; FEATURES + 1] {
        let mut x = [1.0f64; FEATURES + 1];
        for k in 0..FEATURES {
            x[k] = (f[k] as f64 - self.mean[k]) / self.scale[k];
        }
        x
    }

    fn logit(&self, x: &[f64; FEATURES + 1]) -> f64 {
        x.iter().zip(&self.weights).map(|(a, b)| a * b).sum()
    }

    fn probability(&self, f: &PairFeatures) -> f32 {
        sigmoid(self.logit(&self.standardised(f))) as f32
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Solves `a x = b` (symmetric positive definite `a`) by Gaussian elimination with
/// partial pivoting.
#[allow(clippy::needless_range_loop)]
fn solve<const D: usize>(mut a: [[f64; D]; D], mut b: [f64; D]) -> [f64; D] {
    for col in 0..D {
        let pivot = (col..D)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let d = a[col][col];
        if d.abs() < 1e-300 {
            continue;
        }
        for row in col + 1..D {
            let m = a[row][col] / d;
            if m != 0.0 {
                for k in col..D {
                    a[row][k] -= m * a[col][k];
                }
                b[row] -= m * b[col];
            }
        }
    }
    let mut x = [0.0f64; D];
    for row in (0..D).rev() {
        let s: f64 = (row + 1..D).map(|k| a[row][k] * x[k]).sum();
        x[row] = if a[row][row].abs() < 1e-300 {
            0.0
        } else {
            (b[row] - s) / a[row][row]
        };
    }
    x
}

/// A fixed hash of a bank position: which half of the cross-fit it falls in.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests;
