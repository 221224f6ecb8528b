//! What the report computes from a run's records before drawing or writing anything.

use std::collections::BTreeMap;

use crate::types::{ModelSummary, RunRecord};

/// Per model of one run: candidates evaluated, max / min validation accuracy and the
/// iteration of the max (the paper's Table 3). Only models that were evaluated appear,
/// sorted by model number. Non-finite accuracies (failed candidates) count but are not
/// compared.
pub fn table3(run: &RunRecord) -> Vec<ModelSummary> {
    let mut by_model: BTreeMap<u8, ModelSummary> = BTreeMap::new();
    for it in &run.iterations {
        let s = by_model.entry(it.model).or_insert(ModelSummary {
            model: it.model,
            count: 0,
            max_valid: f64::NAN,
            min_valid: f64::NAN,
            iter_of_max: it.iteration,
        });
        s.count += 1;
        let a = it.valid_acc;
        if !a.is_finite() {
            continue;
        }
        // NaN compares false, so the first finite value always replaces it.
        if s.max_valid.is_nan() || a > s.max_valid {
            s.max_valid = a;
            s.iter_of_max = it.iteration;
        }
        if s.min_valid.is_nan() || a < s.min_valid {
            s.min_valid = a;
        }
    }
    by_model.into_values().collect()
}

/// Best finite validation accuracy so far at each iteration: (iteration, best). Iterations
/// before the first finite accuracy are left out.
pub fn best_so_far(run: &RunRecord) -> Vec<(usize, f64)> {
    let mut best = f64::NAN;
    let mut out = Vec::new();
    for it in &run.iterations {
        if it.valid_acc.is_finite() && (best.is_nan() || it.valid_acc > best) {
            best = it.valid_acc;
        }
        if best.is_finite() {
            out.push((it.iteration, best));
        }
    }
    out
}
