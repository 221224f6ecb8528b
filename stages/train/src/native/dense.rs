//! The dense layers every head ends in (SPEC §3: fc1 -> ReLU -> dropout -> fc2 -> ReLU ->
//! dropout -> out), forward with dropout, and backward; and the cross-entropy between. The
//! native encoder trainer and the native evidence head both use them.

use super::backward::{apply_mask, col_sum_acc, DropRng};
use super::encoder::Dense;
use super::kernels::{matmul, View};

/// Dropout sites of the two masks (any fixed, distinct values).
const SITE_1: u64 = 0xF1;
const SITE_2: u64 = 0xF2;

/// The dense head: fc1 -> ReLU -> dropout -> fc2 -> ReLU -> dropout -> out.
#[derive(Debug, Clone)]
pub(crate) struct DenseHead {
    pub layers: [Dense; 3],
}

/// What the backward pass needs of a forward pass: the activations after ReLU and
/// dropout, and the masks (empty when dropout is off).
pub(crate) struct DenseActs {
    a1: Vec<f32>,
    m1: Vec<f32>,
    a2: Vec<f32>,
    m2: Vec<f32>,
}

impl DenseHead {
    /// A head of zeros of the same shape (gradients).
    pub fn zeros_like(&self) -> DenseHead {
        DenseHead {
            layers: self.layers.clone().map(|l| Dense {
                w: vec![0.0; l.w.len()],
                b: vec![0.0; l.b.len()],
                ..l
            }),
        }
    }

    pub fn classes(&self) -> usize {
        self.layers[2].d_out
    }

    /// Logits `[rows, classes]` of `x` `[rows, d_in]`, with dropout drawn from `rng`
    /// (none when it is off); `first_row`: the rows' place in their batch, so that a part
    /// of a batch draws the masks the whole batch would.
    pub fn forward(
        &self,
        x: &[f32],
        rows: usize,
        first_row: usize,
        rng: DropRng,
    ) -> (Vec<f32>, DenseActs) {
        let [l1, l2, l3] = &self.layers;
        let relu_drop = |mut z: Vec<f32>, site: u64| {
            let mut m = Vec::new();
            let width = z.len() / rows.max(1);
            rng.mask(site, first_row * width, z.len(), &mut m);
            for v in z.iter_mut() {
                *v = v.max(0.0);
            }
            apply_mask(&mut z, &m);
            (z, m)
        };
        let (a1, m1) = relu_drop(affine(l1, x, rows), SITE_1);
        let (a2, m2) = relu_drop(affine(l2, &a1, rows), SITE_2);
        let logits = affine(l3, &a2, rows);
        (logits, DenseActs { a1, m1, a2, m2 })
    }

    /// Gradients of every weight into `g` (overwritten) from `d` = d loss / d logits, and
    /// d loss / d `x` when `want_dx` (empty otherwise).
    pub fn backward(
        &self,
        g: &mut DenseHead,
        x: &[f32],
        acts: &DenseActs,
        d: &[f32],
        want_dx: bool,
    ) -> Vec<f32> {
        let rows = d.len() / self.classes();
        let [l1, l2, l3] = &self.layers;
        let [g1, g2, g3] = &mut g.layers;
        let mut d2 = linear_back(l3, g3, &acts.a2, d, rows, true);
        // ReLU'(z) is 0 exactly where the (masked) activation is 0 and the mask kept it.
        relu_drop_back(&mut d2, &acts.a2, &acts.m2);
        let mut d1 = linear_back(l2, g2, &acts.a1, &d2, rows, true);
        relu_drop_back(&mut d1, &acts.a1, &acts.m1);
        linear_back(l1, g1, x, &d1, rows, want_dx)
    }
}

/// `x · w + b`, `[rows, d_out]`.
pub(crate) fn affine(l: &Dense, x: &[f32], rows: usize) -> Vec<f32> {
    let mut y = vec![0f32; rows * l.d_out];
    l.matmul(x, rows, &mut y);
    for row in y.chunks_exact_mut(l.d_out) {
        for (v, &bb) in row.iter_mut().zip(&l.b) {
            *v += bb;
        }
    }
    y
}

/// A linear layer's weight and bias gradients into `gl` (overwritten) from its input `x`
/// and output gradient `d`; d loss / d `x` when `want_dx` (empty otherwise).
pub(crate) fn linear_back(
    l: &Dense,
    gl: &mut Dense,
    x: &[f32],
    d: &[f32],
    rows: usize,
    want_dx: bool,
) -> Vec<f32> {
    matmul(
        &mut gl.w,
        l.d_out,
        View::new(x, rows, l.d_in, l.d_in).t(),
        View::new(d, rows, l.d_out, l.d_out),
        false,
    );
    gl.b.fill(0.0);
    col_sum_acc(d, &mut gl.b);
    if !want_dx {
        return Vec::new();
    }
    let mut dx = vec![0f32; rows * l.d_in];
    matmul(
        &mut dx,
        l.d_in,
        View::new(d, rows, l.d_out, l.d_out),
        View::new(&l.w, l.d_in, l.d_out, l.d_out).t(),
        false,
    );
    dx
}

pub(crate) fn relu_drop_back(d: &mut [f32], a: &[f32], mask: &[f32]) {
    for (k, (dv, &av)) in d.iter_mut().zip(a).enumerate() {
        let m = if mask.is_empty() { 1.0 } else { mask[k] };
        *dv = if av > 0.0 { *dv * m } else { 0.0 };
    }
}

/// Mean cross-entropy of `logits` `[rows, classes]` against `labels`, and its gradient
/// with respect to the logits.
pub(crate) fn cross_entropy(logits: &[f32], labels: &[u32]) -> (f64, Vec<f32>) {
    cross_entropy_part(logits, labels, labels.len())
}

/// [`cross_entropy`] of a part of a batch of `batch` rows: its share of the batch's mean
/// loss, and of the gradient.
pub(crate) fn cross_entropy_part(logits: &[f32], labels: &[u32], batch: usize) -> (f64, Vec<f32>) {
    let b = batch;
    let c = logits.len() / labels.len().max(1);
    let mut d = vec![0f32; labels.len() * c];
    let mut loss = 0f64;
    for ((row, dr), &y) in logits
        .chunks_exact(c)
        .zip(d.chunks_exact_mut(c))
        .zip(labels)
    {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
        let lse = max + sum.ln();
        loss += (lse - row[y as usize]) as f64;
        for (k, (o, &z)) in dr.iter_mut().zip(row).enumerate() {
            let p = (z - lse).exp();
            *o = (p - if k == y as usize { 1.0 } else { 0.0 }) / b as f32;
        }
    }
    (loss / b as f64, d)
}

/// The predicted class of every row of `logits` `[rows, classes]`: the first of equal
/// maxima, as burn's argmax.
pub(crate) fn argmax_rows(logits: &[f32], classes: usize) -> Vec<u32> {
    logits
        .chunks_exact(classes)
        .map(|row| {
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = k;
                }
            }
            best as u32
        })
        .collect()
}
