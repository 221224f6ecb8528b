//! The evidence head ([`crate::evidence::EvidenceHead`]) on the native CPU path: forward,
//! cross-entropy and backward over plain arrays, one batch at a time on one thread.
//!
//! Why: a frozen-mode candidate is ~3,000 steps of batch 32 over small matrices, where
//! burn spends most of its time outside the matrix products (an allocation and a pass over
//! memory per op, dropout masks drawn one element at a time, ~10 passes per parameter for
//! AdamW: docs/PERF.md, "Candidate heads"). Here each step is the products plus a few
//! fused passes. Same arithmetic as the burn module (tests compare logits and gradients);
//! the dropout masks come from [`DropRng`] as on the native encoder path.

use super::backward::{col_sum_acc, DropRng};
use super::dense::{affine, argmax_rows, cross_entropy_part, linear_back, DenseActs, DenseHead};
use super::encoder::Dense;
use super::kernels::{matmul, View};
use crate::data::SparseWindows;

/// A CNN branch's convolution (one input channel, "same" padding): `w` row-major
/// `[channels, kernel]` (burn's `[channels, 1, kernel]`), `b` `[channels]`.
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub channels: usize,
    pub kernel: usize,
}

/// The shared per-class scorer: `[evidence] -> [16] -> ReLU -> [1]`.
#[derive(Debug, Clone)]
pub(crate) struct Scorer {
    pub hidden: Dense,
    pub out: Dense,
}

/// The evidence head's weights (or, of the same shape, their gradients).
#[derive(Debug, Clone)]
pub(crate) struct HeadNet {
    pub dense: DenseHead,
    pub scorer: Option<Scorer>,
    pub llm: Option<Conv>,
    pub rules: Option<Conv>,
}

/// One batch as the head reads it.
pub(crate) struct HeadBatch {
    pub rows: usize,
    /// `[rows, encoder width]`.
    pub vectors: Vec<f32>,
    /// `[rows, classes, blocks]`.
    pub blocks: Vec<f32>,
    pub nblocks: usize,
    pub llm: Option<SparseWindows>,
    pub rules: Option<SparseWindows>,
    pub labels: Vec<u32>,
}

/// What a branch's backward pass needs: ReLU(conv) at the covered positions (0 at
/// padding), `[positions, channels]`.
struct BranchActs {
    y: Vec<f32>,
}

/// A forward pass's activations, for the backward pass.
pub(crate) struct Acts {
    dense: DenseActs,
    /// `[rows * classes, evidence]`.
    evidence: Vec<f32>,
    /// ReLU of the scorer's hidden layer, `[rows * classes, 16]`.
    hidden: Vec<f32>,
    llm: Option<BranchActs>,
    rules: Option<BranchActs>,
}

impl Conv {
    fn zeros_like(&self) -> Conv {
        Conv {
            w: vec![0.0; self.w.len()],
            b: vec![0.0; self.b.len()],
            ..*self
        }
    }

    /// The per-class mean of ReLU(conv) over each class's columns, `[rows * classes,
    /// channels]` (as `CnnBranch::forward_per_class`), and the covered positions' values.
    fn forward(&self, x: &SparseWindows) -> (Vec<f32>, BranchActs) {
        let (n, ch, k) = (x.rows * x.positions, self.channels, self.kernel);
        let classes = x.inv_count.len();
        let mut y = vec![0f32; n * ch];
        for row in y.chunks_exact_mut(ch) {
            row.copy_from_slice(&self.b);
        }
        matmul(
            &mut y,
            ch,
            View::new(&x.windows, n, k, k),
            View::new(&self.w, ch, k, k).t(),
            true,
        );
        let mut sums = vec![0f32; x.rows * classes * ch];
        for ((yr, &valid), &t) in y.chunks_exact_mut(ch).zip(&x.valid).zip(&x.target) {
            if valid == 0.0 {
                yr.fill(0.0);
                continue;
            }
            let s = &mut sums[t * ch..(t + 1) * ch];
            for (o, v) in s.iter_mut().zip(yr.iter_mut()) {
                *v = v.max(0.0);
                *o += *v;
            }
        }
        let base: Vec<f32> = self.b.iter().map(|&b| b.max(0.0)).collect();
        for (r, s) in sums.chunks_exact_mut(ch).enumerate() {
            let (un, inv) = (x.uncovered[r], x.inv_count[r % classes]);
            for (o, &bv) in s.iter_mut().zip(&base) {
                *o = (*o + un * bv) * inv;
            }
        }
        (sums, BranchActs { y })
    }

    /// Gradients into `g` (overwritten) from `d` = d loss / d output, read from columns
    /// `off..off + channels` of `d_evidence` `[rows * classes, width]`.
    fn backward(
        &self,
        g: &mut Conv,
        x: &SparseWindows,
        acts: &BranchActs,
        d_evidence: &[f32],
        width: usize,
        off: usize,
    ) {
        let (n, ch, k) = (x.rows * x.positions, self.channels, self.kernel);
        let classes = x.inv_count.len();
        // d loss / d (the sums before the mean) and the uncovered positions' share.
        let mut d_sums = vec![0f32; x.rows * classes * ch];
        let mut d_base = vec![0f32; ch];
        for (r, ds) in d_sums.chunks_exact_mut(ch).enumerate() {
            let (un, inv) = (x.uncovered[r], x.inv_count[r % classes]);
            let de = &d_evidence[r * width + off..][..ch];
            for ((o, &dv), db) in ds.iter_mut().zip(de).zip(d_base.iter_mut()) {
                *o = dv * inv;
                *db += *o * un;
            }
        }
        let mut dy = vec![0f32; n * ch];
        for ((dr, yr), &t) in dy
            .chunks_exact_mut(ch)
            .zip(acts.y.chunks_exact(ch))
            .zip(&x.target)
        {
            let ds = &d_sums[t * ch..(t + 1) * ch];
            for ((o, &yv), &dv) in dr.iter_mut().zip(yr).zip(ds) {
                // Padding rows hold 0, so they pass no gradient either.
                *o = if yv > 0.0 { dv } else { 0.0 };
            }
        }
        matmul(
            &mut g.w,
            k,
            View::new(&dy, n, ch, ch).t(),
            View::new(&x.windows, n, k, k),
            false,
        );
        g.b.fill(0.0);
        col_sum_acc(&dy, &mut g.b);
        for ((gb, &b), &db) in g.b.iter_mut().zip(&self.b).zip(&d_base) {
            if b > 0.0 {
                *gb += db;
            }
        }
    }
}

impl HeadNet {
    /// Gradients of the same shape, zero.
    pub fn zeros_like(&self) -> HeadNet {
        HeadNet {
            dense: self.dense.zeros_like(),
            scorer: self.scorer.as_ref().map(|s| Scorer {
                hidden: zeros(&s.hidden),
                out: zeros(&s.out),
            }),
            llm: self.llm.as_ref().map(Conv::zeros_like),
            rules: self.rules.as_ref().map(Conv::zeros_like),
        }
    }

    pub fn classes(&self) -> usize {
        self.dense.classes()
    }

    /// Every parameter in a fixed order (the optimizer's).
    pub fn params_mut(&mut self) -> Vec<&mut [f32]> {
        let mut out: Vec<&mut [f32]> = Vec::new();
        for l in &mut self.dense.layers {
            out.push(&mut l.w);
            out.push(&mut l.b);
        }
        if let Some(s) = &mut self.scorer {
            for l in [&mut s.hidden, &mut s.out] {
                out.push(&mut l.w);
                out.push(&mut l.b);
            }
        }
        for c in [&mut self.llm, &mut self.rules].into_iter().flatten() {
            out.push(&mut c.w);
            out.push(&mut c.b);
        }
        out
    }

    /// Logits `[rows, classes]`, with dropout from `rng` (inactive: evaluation);
    /// `first_row`: the rows' place in their batch (see [`DenseHead::forward`]).
    pub fn forward(&self, x: &HeadBatch, first_row: usize, rng: DropRng) -> (Vec<f32>, Acts) {
        let c = self.classes();
        let (mut logits, dense) = self.dense.forward(&x.vectors, x.rows, first_row, rng);
        let mut acts = Acts {
            dense,
            evidence: Vec::new(),
            hidden: Vec::new(),
            llm: None,
            rules: None,
        };
        let Some(scorer) = &self.scorer else {
            return (logits, acts);
        };
        // The branches' per-class outputs, then every part of the evidence by reference
        // (the blocks are read where the batch holds them).
        let mut branch_out: Vec<(Vec<f32>, usize)> = Vec::new();
        for (conv, input, slot) in [
            (&self.llm, &x.llm, &mut acts.llm),
            (&self.rules, &x.rules, &mut acts.rules),
        ] {
            if let (Some(conv), Some(input)) = (conv, input) {
                let (pc, a) = conv.forward(input);
                branch_out.push((pc, conv.channels));
                *slot = Some(a);
            }
        }
        let blocks = (x.nblocks > 0).then_some((x.blocks.as_slice(), x.nblocks));
        let parts: Vec<(&[f32], usize)> = blocks
            .into_iter()
            .chain(branch_out.iter().map(|(v, w)| (v.as_slice(), *w)))
            .collect();
        let width = scorer.hidden.d_in;
        let cells = x.rows * c;
        let mut evidence = vec![0f32; cells * width];
        let mut off = 0;
        for &(values, w) in &parts {
            for (dst, src) in evidence.chunks_exact_mut(width).zip(values.chunks_exact(w)) {
                dst[off..off + w].copy_from_slice(src);
            }
            off += w;
        }
        let mut hidden = affine(&scorer.hidden, &evidence, cells);
        for v in hidden.iter_mut() {
            *v = v.max(0.0);
        }
        let scores = affine(&scorer.out, &hidden, cells);
        for (l, s) in logits.iter_mut().zip(&scores) {
            *l += s;
        }
        acts.evidence = evidence;
        acts.hidden = hidden;
        (logits, acts)
    }

    /// Rows `first_row..first_row + x.rows` of a training batch of `batch` rows: their
    /// share of the batch's mean loss, and of every gradient, into `g` (overwritten).
    pub fn loss_and_grads(
        &self,
        g: &mut HeadNet,
        x: &HeadBatch,
        rng: DropRng,
        first_row: usize,
        batch: usize,
    ) -> f64 {
        let (logits, acts) = self.forward(x, first_row, rng);
        let (loss, d) = cross_entropy_part(&logits, &x.labels, batch);
        if !loss.is_finite() {
            return loss;
        }
        self.dense
            .backward(&mut g.dense, &x.vectors, &acts.dense, &d, false);
        let (Some(scorer), Some(gs)) = (&self.scorer, &mut g.scorer) else {
            return loss;
        };
        let cells = d.len();
        let branches = self.llm.is_some() || self.rules.is_some();
        let mut d_hidden = linear_back(&scorer.out, &mut gs.out, &acts.hidden, &d, cells, true);
        for (dv, &h) in d_hidden.iter_mut().zip(&acts.hidden) {
            if h <= 0.0 {
                *dv = 0.0;
            }
        }
        let d_evidence = linear_back(
            &scorer.hidden,
            &mut gs.hidden,
            &acts.evidence,
            &d_hidden,
            cells,
            branches,
        );
        let width = scorer.hidden.d_in;
        let mut off = x.nblocks;
        for (conv, gc, input, a) in [
            (&self.llm, &mut g.llm, &x.llm, &acts.llm),
            (&self.rules, &mut g.rules, &x.rules, &acts.rules),
        ] {
            if let (Some(conv), Some(gc), Some(input), Some(a)) = (conv, gc, input, a) {
                conv.backward(gc, input, a, &d_evidence, width, off);
                off += conv.channels;
            }
        }
        loss
    }

    /// The predicted class of every row (no dropout).
    pub fn predict(&self, x: &HeadBatch) -> Vec<u32> {
        let off = DropRng { seed: 0, p: 0.0 };
        let (logits, _) = self.forward(x, 0, off);
        argmax_rows(&logits, self.classes())
    }
}

fn zeros(l: &Dense) -> Dense {
    Dense {
        w: vec![0.0; l.w.len()],
        b: vec![0.0; l.b.len()],
        ..*l
    }
}
