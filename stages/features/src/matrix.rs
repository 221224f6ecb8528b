use serde::{Deserialize, Serialize};

/// A dense 0/1 matrix, row-major: `data[i * cols + j]` is feature `j` of text `i`.
/// Shared with the training crate as the input of the CNN branches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FeatureMatrix {
    /// Number of texts.
    pub rows: usize,
    /// Number of features per text.
    pub cols: usize,
    /// `rows * cols` values, each 0 or 1.
    pub data: Vec<u8>,
}

impl FeatureMatrix {
    /// An all-zero `rows x cols` matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        FeatureMatrix {
            rows,
            cols,
            data: vec![0; rows * cols],
        }
    }

    /// Features of text `i`. Panics if `i >= rows` (an index bug, not an input error).
    pub fn row(&self, i: usize) -> &[u8] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Mutable features of text `i`.
    pub fn row_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Value at (`i`, `j`).
    pub fn get(&self, i: usize, j: usize) -> u8 {
        self.data[i * self.cols + j]
    }

    /// Sets (`i`, `j`) to `v`.
    pub fn set(&mut self, i: usize, j: usize, v: u8) {
        self.data[i * self.cols + j] = v;
    }

    /// The matrix of rows `rows` (in that order) of this one.
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        FeatureMatrix {
            rows: rows.len(),
            cols: self.cols,
            data: rows.iter().flat_map(|&i| self.row(i)).copied().collect(),
        }
    }

    /// Number of ones in the whole matrix.
    pub fn ones(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }

    /// Checks that `data.len() == rows * cols` and every value is 0 or 1 (for matrices that
    /// come back from storage).
    pub fn is_well_formed(&self) -> bool {
        self.data.len() == self.rows * self.cols && self.data.iter().all(|&v| v <= 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_row_major() {
        let mut m = FeatureMatrix::zeros(2, 3);
        m.set(1, 2, 1);
        m.row_mut(0)[0] = 1;
        assert_eq!(m.row(0), &[1, 0, 0]);
        assert_eq!(m.row(1), &[0, 0, 1]);
        assert_eq!(m.get(1, 2), 1);
        assert_eq!(m.ones(), 2);
        assert!(m.is_well_formed());
        let bad = FeatureMatrix {
            rows: 2,
            cols: 2,
            data: vec![0, 2, 0, 0],
        };
        assert!(!bad.is_well_formed());
        let picked = m.select_rows(&[1, 1, 0]);
        assert_eq!((picked.rows, picked.cols), (3, 3));
        assert_eq!(picked.data, [0, 0, 1, 0, 0, 1, 1, 0, 0]);
    }
}
