//! Kernels of the native backward pass: LayerNorm, GELU, attention, column sums, dropout.

use super::kernels::{axpy, dot8, exp_fast, gelu, madd, simd_fn, sum8, AttnShape, Span};

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

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attention_train_imp<const F: bool>(
    qkv: &[f32],
    shape: AttnShape,
    spans: &[Span],
    score_mask: &[f32],
    ctx: &mut [f32],
    probs: &mut [f32],
) {
    let h = shape.hidden;
    let dh = shape.head_dim();
    let ld = 3 * h;
    let scale = 1.0 / (dh as f32).sqrt();
    let mut off = 0;
    for sp in spans {
        let l = sp.len;
        for head in 0..shape.heads {
            let qo = head * dh;
            let (ko, vo) = (h + qo, 2 * h + qo);
            for i in 0..l {
                let at = off + (head * l + i) * l;
                let p = &mut probs[at..at + l];
                let qrow = &qkv[(sp.start + i) * ld + qo..][..dh];
                let mut max = f32::NEG_INFINITY;
                for (j, s) in p.iter_mut().enumerate() {
                    let krow = &qkv[(sp.start + j) * ld + ko..][..dh];
                    *s = dot8::<F>(qrow, krow) * scale;
                    if !score_mask.is_empty() {
                        *s *= score_mask[at + j];
                    }
                    max = max.max(*s);
                }
                for s in p.iter_mut() {
                    *s = exp_fast::<F>(*s - max);
                }
                let inv = 1.0 / sum8(p);
                for s in p.iter_mut() {
                    *s *= inv;
                }
                let out = &mut ctx[(sp.start + i) * h + qo..][..dh];
                out.fill(0.0);
                for (j, &pj) in p.iter().enumerate() {
                    axpy::<F>(out, pj, &qkv[(sp.start + j) * ld + vo..][..dh]);
                }
            }
        }
        off += shape.heads * l * l;
    }
}

simd_fn! {
    /// Training-mode attention (burn's layout): scores `q·k / sqrt(d)` times the dropout
    /// `score_mask` (empty: none), softmax, weighted values. `probs` keeps each sequence's
    /// `[heads, len, len]` probabilities for the backward pass.
    fn attention_train(
        qkv: &[f32],
        shape: AttnShape,
        spans: &[Span],
        score_mask: &[f32],
        ctx: &mut [f32],
        probs: &mut [f32],
    ) = attention_train_imp
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attention_backward_imp<const F: bool>(
    dctx: &[f32],
    qkv: &[f32],
    probs: &[f32],
    score_mask: &[f32],
    shape: AttnShape,
    spans: &[Span],
    dqkv: &mut [f32],
) {
    let h = shape.hidden;
    let dh = shape.head_dim();
    let ld = 3 * h;
    let scale = 1.0 / (dh as f32).sqrt();
    dqkv.fill(0.0);
    let mut dp = Vec::new();
    let mut off = 0;
    for sp in spans {
        let l = sp.len;
        dp.resize(l, 0.0);
        for head in 0..shape.heads {
            let qo = head * dh;
            let (ko, vo) = (h + qo, 2 * h + qo);
            for i in 0..l {
                let at = off + (head * l + i) * l;
                let p = &probs[at..at + l];
                let dc = &dctx[(sp.start + i) * h + qo..][..dh];
                for (j, d) in dp.iter_mut().enumerate() {
                    *d = dot8::<F>(dc, &qkv[(sp.start + j) * ld + vo..][..dh]);
                    let pj = p[j];
                    axpy::<F>(&mut dqkv[(sp.start + j) * ld + vo..][..dh], pj, dc);
                }
                let mut s = 0f32;
                for (&pj, &d) in p.iter().zip(dp.iter()) {
                    s = madd::<F>(pj, d, s);
                }
                for (j, d) in dp.iter_mut().enumerate() {
                    let mut g = p[j] * (*d - s) * scale;
                    if !score_mask.is_empty() {
                        g *= score_mask[at + j];
                    }
                    *d = g;
                }
                let q_at = (sp.start + i) * ld + qo;
                for (j, &g) in dp.iter().enumerate() {
                    let k_at = (sp.start + j) * ld + ko;
                    // dq_i += g k_j; dk_j += g q_i.
                    axpy::<F>(&mut dqkv[q_at..q_at + dh], g, &qkv[k_at..k_at + dh]);
                    axpy::<F>(&mut dqkv[k_at..k_at + dh], g, &qkv[q_at..q_at + dh]);
                }
            }
        }
        off += shape.heads * l * l;
    }
}

simd_fn! {
    /// Backward of [`attention_train`]: `dqkv` (overwritten) gets the gradients of the
    /// query, key and value rows from `dctx`.
    fn attention_backward(
        dctx: &[f32],
        qkv: &[f32],
        probs: &[f32],
        score_mask: &[f32],
        shape: AttnShape,
        spans: &[Span],
        dqkv: &mut [f32],
    ) = attention_backward_imp
}
