//! Reading and writing one parameter of a candidate in search units.

use crate::candidate::{Candidate, Param};
use crate::config::SearchSpace;
use crate::formulas::clamp;

/// Grid of a discrete parameter (criterion_num -> 0..criteria); empty for the others.
pub(crate) fn grid(space: &SearchSpace, p: Param) -> Vec<usize> {
    match p {
        Param::CriterionNum => (0..usize::from(space.criteria)).collect(),
        Param::LayerSize1 => space.layer_size1.clone(),
        Param::LayerSize2 => space.layer_size2.clone(),
        Param::KernelSize => space.kernel_size.clone(),
        _ => Vec::new(),
    }
}

/// Current value of a discrete parameter.
pub(crate) fn discrete_value(c: &Candidate, p: Param) -> usize {
    match p {
        Param::CriterionNum => usize::from(c.criterion_num),
        Param::LayerSize1 => c.layer_size1,
        Param::LayerSize2 => c.layer_size2,
        Param::KernelSize => c.kernel_size,
        _ => 0,
    }
}

/// Sets a discrete parameter.
pub(crate) fn set_discrete(c: &mut Candidate, p: Param, v: usize) {
    match p {
        Param::CriterionNum => c.criterion_num = u8::try_from(v).unwrap_or(u8::MAX),
        Param::LayerSize1 => c.layer_size1 = v,
        Param::LayerSize2 => c.layer_size2 = v,
        Param::KernelSize => c.kernel_size = v,
        _ => {}
    }
}

/// Grid position of the current value; a value off the grid counts as its nearest grid value,
/// so a hand-edited parent still steps sensibly.
pub(crate) fn grid_index(grid: &[usize], v: usize) -> Option<usize> {
    grid.iter()
        .position(|&g| g == v)
        .or_else(|| (0..grid.len()).min_by_key(|&i| grid[i].abs_diff(v)))
}

/// Range of a continuous parameter in search units (log10 for the learning rate).
pub(crate) fn range(space: &SearchSpace, p: Param) -> (f64, f64) {
    match p {
        Param::LearningRate => space.lr_log10,
        Param::DropoutRate => space.dropout,
        _ => (0.0, 0.0),
    }
}

/// Value of a continuous parameter in search units (log10 for the learning rate).
pub fn search_value(c: &Candidate, p: Param) -> f64 {
    match p {
        Param::LearningRate => c.learning_rate.log10(),
        Param::DropoutRate => c.dropout_rate,
        _ => 0.0,
    }
}

/// Sets a continuous parameter from search units, clipped to its range.
pub(crate) fn set_search_value(c: &mut Candidate, space: &SearchSpace, p: Param, v: f64) {
    let (lo, hi) = range(space, p);
    let v = clamp(v, lo, hi);
    match p {
        Param::LearningRate => c.learning_rate = 10f64.powf(v),
        Param::DropoutRate => c.dropout_rate = v,
        _ => {}
    }
}

/// Whether every parameter of `c` lies on its grid / in its range (learning rate with a
/// 1e-9 tolerance in log10 for the 10^x round trip).
pub fn in_space(c: &Candidate, space: &SearchSpace) -> bool {
    let lr = c.learning_rate.log10();
    lr >= space.lr_log10.0 - 1e-9
        && lr <= space.lr_log10.1 + 1e-9
        && c.criterion_num < space.criteria
        && space.layer_size1.contains(&c.layer_size1)
        && space.layer_size2.contains(&c.layer_size2)
        && c.dropout_rate >= space.dropout.0
        && c.dropout_rate <= space.dropout.1
        && space.kernel_size.contains(&c.kernel_size)
}
