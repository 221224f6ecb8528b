//! Stratified train/validation/test split.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Row counts (train, valid, test) for a class of `n` rows: train and validation rounded,
/// test takes the rest; a non-empty class keeps at least one training row.
pub fn split_counts(n: usize, ratios: [f64; 3]) -> (usize, usize, usize) {
    if n == 0 {
        return (0, 0, 0);
    }
    let n_train = ((n as f64 * ratios[0]).round() as usize).clamp(1, n);
    let n_valid = ((n as f64 * ratios[1]).round() as usize).min(n - n_train);
    (n_train, n_valid, n - n_train - n_valid)
}

/// The RNG for one class: the 32-byte seed holds the split seed and the class index, so
/// every (seed, class) pair gets its own stream.
fn class_rng(split_seed: u64, class: usize) -> ChaCha8Rng {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&split_seed.to_le_bytes());
    seed[8..16].copy_from_slice(&(class as u64).to_le_bytes());
    seed[16..24].copy_from_slice(b"hhnsplit");
    ChaCha8Rng::from_seed(seed)
}

/// Row counts (train, valid) for a class of `n` rows when the test rows come from a separate
/// file: train:valid in the proportion ratios[0]:ratios[1] (e.g. 0.7/0.15 -> 0.8235/0.1765),
/// train rounded and kept at least one, validation takes the rest.
pub fn split_counts_without_test(n: usize, ratios: [f64; 3]) -> (usize, usize) {
    if n == 0 {
        return (0, 0);
    }
    let share = ratios[0] / (ratios[0] + ratios[1]);
    let n_train = ((n as f64 * share).round() as usize).clamp(1, n);
    (n_train, n - n_train)
}

/// Splits row indices by class: each class's rows (in row order) are shuffled with
/// ChaCha8 seeded by (split_seed, class index) and cut by `split_counts`. Returns
/// (train, valid, test), each ascending.
pub fn stratified_split(
    labels: &[u32],
    n_classes: usize,
    split_seed: u64,
    ratios: [f64; 3],
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    split_by_class(labels, n_classes, split_seed, |n| {
        let (a, b, _) = split_counts(n, ratios);
        (a, b)
    })
}

/// The shuffle-and-cut of [`stratified_split`] with the per-class (train, valid) counts
/// given by `counts`; each class's remaining rows go to test. Returns (train, valid, test),
/// each ascending.
pub(crate) fn split_by_class(
    labels: &[u32],
    n_classes: usize,
    split_seed: u64,
    counts: impl Fn(usize) -> (usize, usize),
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        per_class[l as usize].push(i);
    }
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for (c, mut rows) in per_class.into_iter().enumerate() {
        rows.shuffle(&mut class_rng(split_seed, c));
        let (a, b) = counts(rows.len());
        train.extend_from_slice(&rows[..a]);
        valid.extend_from_slice(&rows[a..a + b]);
        test.extend_from_slice(&rows[a + b..]);
    }
    train.sort_unstable();
    valid.sort_unstable();
    test.sort_unstable();
    (train, valid, test)
}
