//! CPU kernels of the native encoder path: matrix products on the `gemm` crate, and the
//! element-wise and per-row steps written as plain loops that LLVM vectorises.
//!
//! Every element-wise kernel has one generic body, compiled twice: with AVX2+FMA (chosen at
//! run time when the CPU has them, as every x86-64 CPU since 2013 does) and without. The
//! choice is fixed per machine, so results are the same bits run to run.

/// `a * b + c`: one rounding with FMA, two without.
#[inline(always)]
pub(crate) fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Whether the AVX2+FMA versions run on this CPU.
#[inline]
pub(crate) fn fast_simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Define `pub(crate) fn NAME(args)` that runs `IMPL::<true>` compiled for AVX2+FMA when the
/// CPU has them, else `IMPL::<false>`.
macro_rules! simd_fn {
    ($(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? = $imp:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                fn fast($($arg: $ty),*) $(-> $ret)? {
                    $imp::<true>($($arg),*)
                }
                if $crate::native::kernels::fast_simd() {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { fast($($arg),*) };
                }
            }
            $imp::<false>($($arg),*)
        }
    };
}

pub(crate) use simd_fn;

/// A read-only strided matrix view: element (r, c) is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// Row-major `[rows, cols]` with row stride `ld`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `c = a·b` (`acc`: `c += a·b`), `c` row-major `[a.rows, b.cols]` with row stride `ldc`.
/// Single-threaded: callers run independent products on separate threads, which keeps the
/// result independent of the thread count.
pub(crate) fn matmul(c: &mut [f32], ldc: usize, a: View, b: View, acc: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul: inner dimensions differ");
    assert!(a.fits() && b.fits(), "matmul: a view exceeds its slice");
    assert!(
        m == 0 || n == 0 || (m - 1) * ldc + n <= c.len(),
        "matmul: the output exceeds its slice"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for r in 0..m {
                c[r * ldc..r * ldc + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the asserts above keep every element gemm touches inside the three slices;
    // `c` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            acc,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Sum of `x` in 8 interleaved lanes (vectorises; the order is fixed, so deterministic).
#[inline(always)]
pub(crate) fn sum8(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ch = x.chunks_exact(8);
    for c in &mut ch {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in ch.remainder() {
        s += v;
    }
    s
}

/// Dot product in 8 interleaved lanes.
#[inline(always)]
pub(crate) fn dot8<const F: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] = madd::<F>(x[l], y[l], acc[l]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        s = madd::<F>(x, y, s);
    }
    s
}

/// e^x to about 2e-7 relative error for x in [-87, 88] (clamped outside), in plain
/// arithmetic so a loop over it vectorises: x = n ln2 + r, e^r by its Taylor series.
#[inline(always)]
pub(crate) fn exp_fast<const F: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = madd::<F>(x, LOG2E, MAGIC);
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = madd::<F>(-n, LN2_LO, madd::<F>(-n, LN2_HI, x));
    let mut p = 1.0 / 720.0;
    p = madd::<F>(p, r, 1.0 / 120.0);
    p = madd::<F>(p, r, 1.0 / 24.0);
    p = madd::<F>(p, r, 1.0 / 6.0);
    p = madd::<F>(p, r, 0.5);
    p = madd::<F>(p, r, 1.0);
    p = madd::<F>(p, r, 1.0);
    p * f32::from_bits(((ni + 127) << 23) as u32)
}

/// erf(x) to within 1e-6 absolute error (Abramowitz & Stegun 7.1.26: 1.5e-7 in exact
/// arithmetic; f32 rounding adds the rest).
#[inline(always)]
pub(crate) fn erf_fast<const F: bool>(x: f32) -> f32 {
    let ax = x.abs();
    let t = 1.0 / madd::<F>(0.327_591_1, ax, 1.0);
    let mut p = 1.061_405_4;
    p = madd::<F>(p, t, -1.453_152_1);
    p = madd::<F>(p, t, 1.421_413_7);
    p = madd::<F>(p, t, -0.284_496_74);
    p = madd::<F>(p, t, 0.254_829_6);
    let y = 1.0 - p * t * exp_fast::<F>(-ax * ax);
    y.copysign(x)
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// Exact (erf) GELU: x Φ(x).
#[inline(always)]
pub(crate) fn gelu<const F: bool>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_fast::<F>(x * FRAC_1_SQRT_2))
}

#[inline(always)]
fn bias_gelu_imp<const F: bool>(x: &mut [f32], bias: &[f32], pre: Option<&mut [f32]>) {
    let n = bias.len();
    match pre {
        Some(pre) => {
            for (row, pre) in x.chunks_exact_mut(n).zip(pre.chunks_exact_mut(n)) {
                for ((v, p), &b) in row.iter_mut().zip(pre.iter_mut()).zip(bias) {
                    let u = *v + b;
                    *p = u;
                    *v = gelu::<F>(u);
                }
            }
        }
        None => {
            for row in x.chunks_exact_mut(n) {
                for (v, &b) in row.iter_mut().zip(bias) {
                    *v = gelu::<F>(*v + b);
                }
            }
        }
    }
}

simd_fn! {
    /// Rows of `x` (width `bias.len()`): `x = gelu(x + bias)`; `pre` keeps `x + bias`.
    fn bias_gelu(x: &mut [f32], bias: &[f32], pre: Option<&mut [f32]>) = bias_gelu_imp
}

/// One row: `y = (x - mean) * rstd * gamma + beta`; returns `rstd`. `xhat` (if given)
/// gets `(x - mean) * rstd`.
#[inline(always)]
fn ln_row<const F: bool>(
    x: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    xhat: Option<&mut [f32]>,
) -> f32 {
    let h = x.len() as f32;
    let mean = sum8(x) / h;
    let mut acc = [0f32; 8];
    let mut ch = x.chunks_exact(8);
    for c in &mut ch {
        for l in 0..8 {
            let d = c[l] - mean;
            acc[l] = madd::<F>(d, d, acc[l]);
        }
    }
    let mut var = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in ch.remainder() {
        var = madd::<F>(v - mean, v - mean, var);
    }
    let rstd = 1.0 / (var / h + eps).sqrt();
    match xhat {
        Some(xh) => {
            for (((v, &g), &b), xh) in x.iter_mut().zip(gamma).zip(beta).zip(xh) {
                *xh = (*v - mean) * rstd;
                *v = madd::<F>(*xh, g, b);
            }
        }
        None => {
            for ((v, &g), &b) in x.iter_mut().zip(gamma).zip(beta) {
                *v = madd::<F>((*v - mean) * rstd, g, b);
            }
        }
    }
    rstd
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn add_ln_imp<const F: bool>(
    x: &mut [f32],
    bias: &[f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    rstd: &mut [f32],
    mut xhat: Option<&mut [f32]>,
) {
    let h = gamma.len();
    for (t, (row, res)) in x
        .chunks_exact_mut(h)
        .zip(residual.chunks_exact(h))
        .enumerate()
    {
        for ((v, &b), &s) in row.iter_mut().zip(bias).zip(res) {
            *v = (*v + b) + s;
        }
        let xh = xhat.as_deref_mut().map(|x| &mut x[t * h..(t + 1) * h]);
        rstd[t] = ln_row::<F>(row, gamma, beta, eps, xh);
    }
}

simd_fn! {
    /// Rows of `x` (width `gamma.len()`): `x = LayerNorm(x + bias + residual)`; `rstd`
    /// gets each row's 1 / sqrt(var + eps), `xhat` (if given) the normalised rows.
    fn add_ln(
        x: &mut [f32],
        bias: &[f32],
        residual: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        rstd: &mut [f32],
        xhat: Option<&mut [f32]>,
    ) = add_ln_imp
}

#[inline(always)]
fn ln_imp<const F: bool>(
    x: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    rstd: &mut [f32],
    mut xhat: Option<&mut [f32]>,
) {
    let h = gamma.len();
    for (t, row) in x.chunks_exact_mut(h).enumerate() {
        let xh = xhat.as_deref_mut().map(|x| &mut x[t * h..(t + 1) * h]);
        rstd[t] = ln_row::<F>(row, gamma, beta, eps, xh);
    }
}

simd_fn! {
    /// Rows of `x`: `x = LayerNorm(x)`; `rstd`, `xhat` as in [`add_ln`].
    fn layer_norm(
        x: &mut [f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        rstd: &mut [f32],
        xhat: Option<&mut [f32]>,
    ) = ln_imp
}

/// Where the sequences of a packed batch lie: token rows `start..start + len`.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

/// Shape of self-attention over packed rows of `[q | k | v]` (each `hidden` wide).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttnShape {
    pub hidden: usize,
    pub heads: usize,
}

impl AttnShape {
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

#[inline(always)]
fn softmax_rows_imp<const F: bool>(p: &mut [f32], len: usize, scale: f32, mask: &[f32]) {
    for (r, row) in p.chunks_exact_mut(len).enumerate() {
        let mut max = f32::NEG_INFINITY;
        for (j, s) in row.iter_mut().enumerate() {
            *s *= scale;
            if !mask.is_empty() {
                *s *= mask[r * len + j];
            }
            max = max.max(*s);
        }
        for s in row.iter_mut() {
            *s = exp_fast::<F>(*s - max);
        }
        let inv = 1.0 / sum8(row);
        for s in row.iter_mut() {
            *s *= inv;
        }
    }
}

simd_fn! {
    /// Rows of `p` (`len` wide): `softmax(p * scale * mask)` in place (an empty mask: none).
    fn softmax_rows(p: &mut [f32], len: usize, scale: f32, mask: &[f32]) = softmax_rows_imp
}

/// One head of one sequence: its first `nq` tokens attend to all its tokens. `p` gets the
/// `[nq, len]` probabilities; the output rows start at `ctx_row` of `ctx`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn head_forward(
    qkv: &[f32],
    shape: AttnShape,
    sp: Span,
    head: usize,
    nq: usize,
    mask: &[f32],
    p: &mut [f32],
    ctx: &mut [f32],
    ctx_row: usize,
) {
    let (h, dh) = (shape.hidden, shape.head_dim());
    let ld = 3 * h;
    let (qo, l) = (head * dh, sp.len);
    let at = |o: usize| &qkv[sp.start * ld + o..];
    matmul(
        p,
        l,
        View::new(at(qo), nq, dh, ld),
        View::new(at(h + qo), l, dh, ld).t(),
        false,
    );
    softmax_rows(p, l, 1.0 / (dh as f32).sqrt(), mask);
    let out = &mut ctx[ctx_row * h + qo..];
    matmul(
        out,
        h,
        View::new(p, nq, l, l),
        View::new(at(2 * h + qo), l, dh, ld),
        false,
    );
}

/// Softmax self-attention of each sequence over its own tokens: `qkv` rows are
/// `[q | k | v]` (bias included), `ctx` rows get the heads' outputs side by side.
pub(crate) fn attention(qkv: &[f32], shape: AttnShape, spans: &[Span], ctx: &mut [f32]) {
    let mut p = Vec::new();
    for sp in spans {
        p.resize(sp.len * sp.len, 0.0);
        for head in 0..shape.heads {
            head_forward(qkv, shape, *sp, head, sp.len, &[], &mut p, ctx, sp.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_close_to_std() {
        let mut worst_exp = 0f32;
        let mut worst_erf = 0f64;
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            for fast in [false, true] {
                let (e, r) = if fast {
                    (exp_fast::<true>(x), erf_fast::<true>(x / 4.0))
                } else {
                    (exp_fast::<false>(x), erf_fast::<false>(x / 4.0))
                };
                worst_exp = worst_exp.max(((e - x.exp()) / x.exp()).abs());
                let exact = libm_erf((x / 4.0) as f64);
                worst_erf = worst_erf.max((r as f64 - exact).abs());
            }
        }
        assert!(worst_exp < 5e-7, "exp rel error {worst_exp}");
        assert!(worst_erf < 1e-6, "erf abs error {worst_erf}");
        assert_eq!(exp_fast::<false>(-200.0), exp_fast::<false>(-87.0));
    }

    /// erf by its Taylor series / continued fraction in f64 (reference only).
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 2.5 {
            let mut sum = 0.0;
            let mut term = x;
            let mut n = 0.0;
            while term.abs() > 1e-17 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc by a continued fraction, good for |x| >= 2.5.
            let ax = x.abs();
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (ax + f);
            }
            let erfc = (-ax * ax).exp() / std::f64::consts::PI.sqrt() / (ax + f);
            (1.0 - erfc).copysign(x)
        }
    }

    #[test]
    fn matmul_matches_naive_with_transposes() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut c = vec![1.0; m * n];
        matmul(
            &mut c,
            n,
            View::new(&a, m, k, k),
            View::new(&b, k, n, n),
            true,
        );
        // aᵀ stored as [k, m]: the same product through a transposed view.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let mut c2 = vec![0.0; m * n];
        matmul(
            &mut c2,
            n,
            View::new(&at, k, m, m).t(),
            View::new(&b, k, n, n),
            false,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert!((c[i * n + j] - 1.0 - want).abs() < 1e-5);
                assert!((c2[i * n + j] - want).abs() < 1e-5);
            }
        }
    }
}
