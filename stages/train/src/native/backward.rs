//! Kernels of the native backward pass: LayerNorm, GELU, attention, column sums, dropout.

use super::kernels::{
    dot8, exp_fast, gelu, head_forward, madd, matmul, simd_fn, sum8, AttnShape, Span, View,
};

/// `out[c] += Σ_rows x[r, c]` (bias gradients), rows in order.
pub(crate) fn col_sum_acc(x: &[f32], out: &mut [f32]) {
    for row in x.chunks_exact(out.len()) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// `x *= mask` element-wise (a dropout mask of 0 and 1 / (1 - p)); no-op for an empty mask.
pub(crate) fn apply_mask(x: &mut [f32], mask: &[f32]) {
    if !mask.is_empty() {
        for (v, &m) in x.iter_mut().zip(mask) {
            *v *= m;
        }
    }
}

/// Dropout masks from a counter-based hash: element `i` of site `site` is kept with
/// probability 1 - p whatever else was drawn, so masks do not depend on the order or the
/// thread that draws them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropRng {
    pub seed: u64,
    pub p: f32,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl DropRng {
    pub fn active(&self) -> bool {
        self.p > 0.0
    }

    /// Fill `out` with the mask of elements `first..first + out.len()` of `site`: 0 where
    /// dropped, 1 / (1 - p) where kept. Empty when dropout is off.
    pub fn mask(&self, site: u64, first: usize, len: usize, out: &mut Vec<f32>) {
        out.clear();
        if !self.active() {
            return;
        }
        let keep = 1.0 / (1.0 - self.p);
        // Keep when a 24-bit uniform is at least p * 2^24.
        let bound = (self.p as f64 * (1u64 << 24) as f64) as u64;
        let base = mix(self.seed ^ mix(site));
        out.extend((first..first + len).map(|i| {
            let u = mix(base.wrapping_add(i as u64)) >> 40;
            if u >= bound {
                keep
            } else {
                0.0
            }
        }));
    }
}

#[inline(always)]
fn ln_backward_imp<const F: bool>(
    dy: &mut [f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let h = gamma.len();
    let mut dxh = vec![0f32; h];
    for ((dy, xh), &r) in dy.chunks_exact_mut(h).zip(xhat.chunks_exact(h)).zip(rstd) {
        for k in 0..h {
            dgamma[k] = madd::<F>(dy[k], xh[k], dgamma[k]);
            dbeta[k] += dy[k];
            dxh[k] = dy[k] * gamma[k];
        }
        let mean = sum8(&dxh) / h as f32;
        let mean_x = dot8::<F>(&dxh, xh) / h as f32;
        for k in 0..h {
            dy[k] = r * (dxh[k] - mean - xh[k] * mean_x);
        }
    }
}

simd_fn! {
    /// LayerNorm backward, rows of width `gamma.len()`: `dy` (the gradient of the output)
    /// becomes the gradient of the input; `dgamma`, `dbeta` accumulate.
    fn ln_backward(
        dy: &mut [f32],
        xhat: &[f32],
        rstd: &[f32],
        gamma: &[f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) = ln_backward_imp
}

#[inline(always)]
fn gelu_backward_imp<const F: bool>(d: &mut [f32], pre: &[f32], mask: &[f32]) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let grad = |x: f32| {
        let cdf = 0.5 * (1.0 + super::kernels::erf_fast::<F>(x * FRAC_1_SQRT_2));
        madd::<F>(x * INV_SQRT_2PI, exp_fast::<F>(-0.5 * x * x), cdf)
    };
    if mask.is_empty() {
        for (d, &u) in d.iter_mut().zip(pre) {
            *d *= grad(u);
        }
    } else {
        for ((d, &u), &m) in d.iter_mut().zip(pre).zip(mask) {
            *d *= m * grad(u);
        }
    }
}

simd_fn! {
    /// `d = d * mask * gelu'(pre)` (an empty mask: no dropout).
    fn gelu_backward(d: &mut [f32], pre: &[f32], mask: &[f32]) = gelu_backward_imp
}

#[inline(always)]
fn gelu_masked_imp<const F: bool>(pre: &[f32], mask: &[f32], out: &mut [f32]) {
    if mask.is_empty() {
        for (o, &u) in out.iter_mut().zip(pre) {
            *o = gelu::<F>(u);
        }
    } else {
        for ((o, &u), &m) in out.iter_mut().zip(pre).zip(mask) {
            *o = gelu::<F>(u) * m;
        }
    }
}

simd_fn! {
    /// `out = gelu(pre) * mask` (an empty mask: no dropout).
    fn gelu_masked(pre: &[f32], mask: &[f32], out: &mut [f32]) = gelu_masked_imp
}

/// Query rows of a packed batch: every token, or (`cls_only`) each sequence's first.
pub(crate) fn query_rows(spans: &[Span], cls_only: bool) -> usize {
    if cls_only {
        spans.len()
    } else {
        spans.iter().map(|s| s.len).sum()
    }
}

/// Where sequence `s`'s query rows start in the `ctx` rows, and how many it has.
fn queries(sp: &Span, s: usize, cls_only: bool) -> (usize, usize) {
    if cls_only {
        (s, 1)
    } else {
        (sp.start, sp.len)
    }
}

/// Training-mode attention (burn's layout): scores `q·k / sqrt(d)` times the dropout
/// `score_mask` (empty: none), softmax, weighted values. With `cls_only` only each
/// sequence's first token is a query (all tokens stay keys and values) and `ctx` has one
/// row per sequence. `probs` keeps each sequence's `[heads, queries, len]` probabilities.
pub(crate) fn attention_train(
    qkv: &[f32],
    shape: AttnShape,
    spans: &[Span],
    cls_only: bool,
    score_mask: &[f32],
    ctx: &mut [f32],
    probs: &mut [f32],
) {
    let mut off = 0;
    for (s, sp) in spans.iter().enumerate() {
        let (row, nq) = queries(sp, s, cls_only);
        let n = nq * sp.len;
        for head in 0..shape.heads {
            let mask = if score_mask.is_empty() {
                &[][..]
            } else {
                &score_mask[off..off + n]
            };
            head_forward(
                qkv,
                shape,
                *sp,
                head,
                nq,
                mask,
                &mut probs[off..off + n],
                ctx,
                row,
            );
            off += n;
        }
    }
}

#[inline(always)]
fn softmax_backward_imp<const F: bool>(
    d: &mut [f32],
    p: &[f32],
    len: usize,
    scale: f32,
    mask: &[f32],
) {
    for (r, (dr, pr)) in d.chunks_exact_mut(len).zip(p.chunks_exact(len)).enumerate() {
        let mut s = 0f32;
        for (&pj, &dj) in pr.iter().zip(dr.iter()) {
            s = madd::<F>(pj, dj, s);
        }
        for (j, (dj, &pj)) in dr.iter_mut().zip(pr).enumerate() {
            let mut g = pj * (*dj - s) * scale;
            if !mask.is_empty() {
                g *= mask[r * len + j];
            }
            *dj = g;
        }
    }
}

simd_fn! {
    /// Rows of `d` (the gradient of softmax outputs `p`) become the gradients of the raw
    /// scores `q·k` (through the softmax, the dropout `mask` and the `scale`).
    fn softmax_backward(d: &mut [f32], p: &[f32], len: usize, scale: f32, mask: &[f32]) = softmax_backward_imp
}

/// Backward of [`attention_train`]: `dqkv` (overwritten) gets the gradients of the query,
/// key and value rows from `dctx`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_backward(
    dctx: &[f32],
    qkv: &[f32],
    probs: &[f32],
    score_mask: &[f32],
    shape: AttnShape,
    spans: &[Span],
    cls_only: bool,
    dqkv: &mut [f32],
) {
    let (h, dh) = (shape.hidden, shape.head_dim());
    let ld = 3 * h;
    let scale = 1.0 / (dh as f32).sqrt();
    dqkv.fill(0.0);
    let mut dp = Vec::new();
    let mut off = 0;
    for (s, sp) in spans.iter().enumerate() {
        let (row, nq) = queries(sp, s, cls_only);
        let l = sp.len;
        let n = nq * l;
        dp.resize(n, 0.0);
        for head in 0..shape.heads {
            let qo = head * dh;
            let p = &probs[off..off + n];
            let mask = if score_mask.is_empty() {
                &[][..]
            } else {
                &score_mask[off..off + n]
            };
            let at = |o: usize| sp.start * ld + o;
            let dc = View::new(&dctx[row * h + qo..], nq, dh, h);
            // dP = dctx · Vᵀ; dV += Pᵀ · dctx.
            matmul(
                &mut dp,
                l,
                dc,
                View::new(&qkv[at(2 * h + qo)..], l, dh, ld).t(),
                false,
            );
            matmul(
                &mut dqkv[at(2 * h + qo)..],
                ld,
                View::new(p, nq, l, l).t(),
                dc,
                true,
            );
            softmax_backward(&mut dp, p, l, scale, mask);
            // dQ += dS · K; dK += dSᵀ · Q.
            let ds = View::new(&dp, nq, l, l);
            matmul(
                &mut dqkv[at(qo)..],
                ld,
                ds,
                View::new(&qkv[at(h + qo)..], l, dh, ld),
                true,
            );
            matmul(
                &mut dqkv[at(h + qo)..],
                ld,
                ds.t(),
                View::new(&qkv[at(qo)..], nq, dh, ld),
                true,
            );
            off += n;
        }
    }
}
