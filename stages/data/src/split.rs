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
    tagged_class_rng(split_seed, class, b"hhnsplit")
}

/// [`class_rng`] with its own 8-byte tag, so the fold shuffle of a seed is not its split's.
fn tagged_class_rng(seed: u64, class: usize, tag: &[u8; 8]) -> ChaCha8Rng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(class as u64).to_le_bytes());
    bytes[16..24].copy_from_slice(tag);
    ChaCha8Rng::from_seed(bytes)
}

/// Stratified k-fold assignment: the fold (0..k) of every position of `labels`. Each
/// class's positions, shuffled with ChaCha8 seeded by (seed, class), are dealt to the
/// folds in turn, each class starting where the last one stopped, so fold sizes differ
/// by at most one and a class of fewer than k rows still lands in different folds.
pub fn stratified_folds(labels: &[u32], n_classes: usize, k: usize, seed: u64) -> Vec<usize> {
    assert!(k >= 1, "at least one fold");
    let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        per_class[l as usize].push(i);
    }
    let mut fold = vec![0; labels.len()];
    let mut next = 0;
    for (c, mut positions) in per_class.into_iter().enumerate() {
        positions.shuffle(&mut tagged_class_rng(seed, c, b"hhnfolds"));
        for p in positions {
            fold[p] = next;
            next = (next + 1) % k;
        }
    }
    fold
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_balanced_and_repeat_by_seed() {
        // Class 0: 10 rows, class 1: 3 rows, class 2: 1 row.
        let labels: Vec<u32> = [vec![0; 10], vec![1; 3], vec![2; 1]].concat();
        let folds = stratified_folds(&labels, 3, 5, 7);
        let size = |f: usize| folds.iter().filter(|&&x| x == f).count();
        assert!((0..5).all(|f| (2..=3).contains(&size(f))));
        // Every fold holds two rows of the class of ten; the three rows of class 1 are in
        // three folds.
        for f in 0..5 {
            assert_eq!((0..10).filter(|&i| folds[i] == f).count(), 2);
        }
        let mut class1: Vec<usize> = folds[10..13].to_vec();
        class1.dedup();
        assert_eq!(class1.len(), 3);
        assert_eq!(folds, stratified_folds(&labels, 3, 5, 7));
        assert_ne!(folds, stratified_folds(&labels, 3, 5, 8));
    }
}
