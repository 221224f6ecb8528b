//! Ensemble selection on small hand-made probability tables whose right answer is known.

use hhnas_ensemble::{
    accuracy, combine, select, EnsembleError, Metric, ProbMatrix, SelectionParams,
};

/// Probabilities that put `confidence` on `predicted[i]` and share the rest evenly.
fn table(predicted: &[usize], classes: usize, confidence: f32) -> ProbMatrix {
    let rest = (1.0 - confidence) / (classes - 1) as f32;
    let rows: Vec<Vec<f32>> = predicted
        .iter()
        .map(|&p| {
            (0..classes)
                .map(|c| if c == p { confidence } else { rest })
                .collect()
        })
        .collect();
    ProbMatrix::from_rows(&rows, classes).unwrap()
}

fn params(rounds: usize, metric: Metric) -> SelectionParams {
    SelectionParams { rounds, metric }
}

/// Probabilities that put `conf[i]` on `predicted[i]` and share the rest evenly.
fn table_with(predicted: &[usize], conf: &[f32], classes: usize) -> ProbMatrix {
    let rows: Vec<Vec<f32>> = predicted
        .iter()
        .zip(conf)
        .map(|(&p, &q)| {
            let rest = (1.0 - q) / (classes - 1) as f32;
            (0..classes)
                .map(|c| if c == p { q } else { rest })
                .collect()
        })
        .collect();
    ProbMatrix::from_rows(&rows, classes).unwrap()
}

/// Three classes, six rows. A is right on rows 0-3 (at 0.9) and unsure and wrong on 4-5
/// (0.4); B is right on 2-5 and unsure and wrong on 0-1; C is confidently wrong
/// everywhere. A alone scores 4/6, B 4/6; averaged, each one's confidence outweighs the
/// other's doubt, so A and B together are right on all six rows.
#[test]
fn complementary_candidates_beat_each_alone_and_the_useless_one_is_left_out() {
    let labels = [0u32, 1, 2, 0, 1, 2];
    let a = table_with(&[0, 1, 2, 0, 0, 0], &[0.9, 0.9, 0.9, 0.9, 0.4, 0.4], 3);
    let b = table_with(&[1, 0, 2, 0, 1, 2], &[0.4, 0.4, 0.9, 0.9, 0.9, 0.9], 3);
    let c = table(&[1, 2, 0, 1, 2, 0], 3, 0.9);
    for metric in [Metric::Accuracy, Metric::LogLoss] {
        let s = select(&[&a, &b, &c], &labels, &params(10, metric)).unwrap();
        assert_eq!(s.picks[2], 0, "{metric:?}: C must stay out: {s:?}");
        assert!(s.picks[0] > 0 && s.picks[1] > 0, "{metric:?}: {s:?}");
        let bag = combine(&[&a, &b, &c], &s.weights()).unwrap();
        let acc = accuracy(&bag, &labels);
        assert_eq!(acc, s.valid_acc);
        assert_eq!(acc, 1.0, "{metric:?}: {s:?}");
        assert_eq!(accuracy(&a, &labels), 4.0 / 6.0);
        assert_eq!(accuracy(&b, &labels), 4.0 / 6.0);
    }
}

#[test]
fn one_dominant_candidate_is_the_whole_bag() {
    let labels = [0u32, 1, 2, 1];
    let good = table(&[0, 1, 2, 1], 3, 0.9);
    let bad = table(&[1, 1, 0, 0], 3, 0.9);
    let s = select(&[&bad, &good], &labels, &params(5, Metric::Accuracy)).unwrap();
    assert_eq!(s.picks, vec![0, 1]);
    assert_eq!(s.valid_acc, 1.0);
    assert_eq!(s.members(), vec![1]);
    assert_eq!(s.weights(), vec![0.0, 1.0]);
    assert_eq!(s.curve.len(), 5);
}

#[test]
fn the_same_inputs_give_the_same_bag() {
    let labels = [0u32, 1, 2, 0, 1, 2, 2, 1];
    let ms: Vec<ProbMatrix> = (0..5)
        .map(|k| {
            let pred: Vec<usize> = (0..8).map(|i| (i * (k + 1) + k) % 3).collect();
            table(&pred, 3, 0.5 + 0.08 * k as f32)
        })
        .collect();
    let refs: Vec<&ProbMatrix> = ms.iter().collect();
    let p = params(12, Metric::Accuracy);
    assert_eq!(
        select(&refs, &labels, &p).unwrap(),
        select(&refs, &labels, &p).unwrap()
    );
}

#[test]
fn bad_inputs_are_named() {
    let labels = [0u32, 1];
    let a = table(&[0, 1], 2, 0.8);
    let short = table(&[0], 2, 0.8);
    assert_eq!(
        select(&[], &labels, &SelectionParams::default()).unwrap_err(),
        EnsembleError::Empty
    );
    assert_eq!(
        select(&[&a], &labels, &params(0, Metric::Accuracy)).unwrap_err(),
        EnsembleError::NoRounds
    );
    let e = select(&[&a, &short], &labels, &SelectionParams::default()).unwrap_err();
    assert!(
        matches!(e, EnsembleError::Shape(ref m) if m.contains("candidate 1")),
        "{e}"
    );
    let e = ProbMatrix::from_rows(&[vec![0.5, 0.5], vec![1.0]], 2).unwrap_err();
    assert!(e.to_string().contains("row 1"), "{e}");
}

/// Bagged selection: weights that sum to 1, the same for the same seed, and a candidate
/// that is right everywhere outweighs one that is right on half the rows.
#[test]
fn bagged_selection_weights_sum_to_one_repeat_by_seed_and_favour_the_good_candidate() {
    let labels = [0u32, 1, 2, 0, 1, 2];
    let good = table(&[0, 1, 2, 0, 1, 2], 3, 0.8);
    let half = table(&[0, 1, 2, 1, 2, 0], 3, 0.8);
    let wrong = table(&[1, 2, 0, 1, 2, 0], 3, 0.8);
    let cands = [&good, &half, &wrong];
    let p = params(5, Metric::Accuracy);
    let w = hhnas_ensemble::select_bagged(&cands, &labels, &p, 10, 0.5, 3).unwrap();
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{w:?}");
    assert!(w[0] > w[1] && w[1] >= w[2], "{w:?}");
    assert_eq!(
        w,
        hhnas_ensemble::select_bagged(&cands, &labels, &p, 10, 0.5, 3).unwrap()
    );
}
