//! The encoder's training step on the native path: a forward pass that keeps what the
//! backward pass needs (with burn's dropout placement: after the embedding LayerNorm, on
//! the attention scores before the softmax, on the attention output, after the GELU and on
//! the feed-forward output), and the backward pass to every weight.

use super::backward::{
    apply_mask, attention_backward, attention_train, col_sum_acc, gelu_backward, gelu_masked,
    ln_backward, query_rows, DropRng,
};
use super::encoder::{Dense, Layer, NativeEncoder, Norm};
use super::kernels::{add_ln, layer_norm, matmul, AttnShape, Span, View};
use crate::error::TrainError;

/// Dropout sites of one layer (multiplied into the site id with the layer index).
const SITE_SCORES: u64 = 1;
const SITE_ATTN_OUT: u64 = 2;
const SITE_FFN_MID: u64 = 3;
const SITE_FFN_OUT: u64 = 4;
const SITE_EMB: u64 = 0xE0;

fn site(layer: usize, kind: u64) -> u64 {
    ((layer as u64 + 1) << 8) | kind
}

/// What the backward pass reads of one layer.
#[derive(Default)]
struct LayerTrace {
    x: Vec<f32>,
    qkv: Vec<f32>,
    score_mask: Vec<f32>,
    probs: Vec<f32>,
    ctx: Vec<f32>,
    attn_mask: Vec<f32>,
    xhat_1: Vec<f32>,
    rstd_1: Vec<f32>,
    y_1: Vec<f32>,
    pre: Vec<f32>,
    mid_mask: Vec<f32>,
    mid: Vec<f32>,
    out_mask: Vec<f32>,
    xhat_2: Vec<f32>,
    rstd_2: Vec<f32>,
    /// Only the first token of each sequence was a query (the last layer, `cls_only`).
    cls: bool,
}

/// The forward pass of a batch part, kept for its backward pass.
pub(crate) struct Trace {
    spans: Vec<Span>,
    ids: Vec<u32>,
    emb_xhat: Vec<f32>,
    emb_rstd: Vec<f32>,
    emb_mask: Vec<f32>,
    layers: Vec<LayerTrace>,
    /// Final hidden states: `[tokens, hidden]`, or `[sequences, hidden]` (first tokens)
    /// with `cls_only`.
    pub out: Vec<f32>,
}

/// The first row of each sequence, `[sequences, h]`.
fn first_rows(x: &[f32], spans: &[Span], h: usize) -> Vec<f32> {
    spans
        .iter()
        .flat_map(|sp| x[sp.start * h..(sp.start + 1) * h].iter().copied())
        .collect()
}

/// Gradients of the encoder's weights from one batch part. The word embedding's gradient
/// is kept per token (`word_rows[t]` belongs to `ids[t]`), since a batch touches few rows.
#[derive(Debug, Clone)]
pub(crate) struct EncoderGrads {
    pub ids: Vec<u32>,
    pub word_rows: Vec<f32>,
    pub position: Vec<f32>,
    pub token_type: Vec<f32>,
    pub emb_norm: Norm,
    pub layers: Vec<Layer>,
}

fn zeros_like_dense(d: &Dense) -> Dense {
    Dense {
        w: vec![0.0; d.w.len()],
        b: vec![0.0; d.b.len()],
        d_in: d.d_in,
        d_out: d.d_out,
    }
}

fn zeros_like_norm(n: &Norm) -> Norm {
    Norm {
        gamma: vec![0.0; n.gamma.len()],
        beta: vec![0.0; n.beta.len()],
    }
}

impl EncoderGrads {
    pub fn zeros_like(enc: &NativeEncoder) -> Self {
        EncoderGrads {
            ids: Vec::new(),
            word_rows: Vec::new(),
            position: vec![0.0; enc.position.len()],
            token_type: vec![0.0; enc.token_type.len()],
            emb_norm: zeros_like_norm(&enc.emb_norm),
            layers: enc
                .layers
                .iter()
                .map(|l| Layer {
                    qkv: zeros_like_dense(&l.qkv),
                    out: zeros_like_dense(&l.out),
                    norm_1: zeros_like_norm(&l.norm_1),
                    inner: zeros_like_dense(&l.inner),
                    outer: zeros_like_dense(&l.outer),
                    norm_2: zeros_like_norm(&l.norm_2),
                })
                .collect(),
        }
    }
}

/// `x[r] += b` for every row.
fn add_bias(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        for (v, &b) in row.iter_mut().zip(b) {
            *v += b;
        }
    }
}

/// Where a batch part lies in its batch: dropout masks are drawn by position in the batch,
/// so they do not depend on how the batch was split.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartOffset {
    pub first_seq: usize,
    pub first_token: usize,
}

impl NativeEncoder {
    /// The training forward pass over `seqs` (packed); dropout from `rng`. With
    /// `cls_only` the output holds each sequence's first token only (one row per
    /// sequence), and the last layer computes nothing else. Long (~150 lines) because it
    /// records each op's inputs for [`Self::backward`] right where the op runs.
    pub(crate) fn forward_train(
        &self,
        seqs: &[&[u32]],
        at: PartOffset,
        rng: DropRng,
        cls_only: bool,
    ) -> Result<Trace, TrainError> {
        let spans = self.spans(seqs)?;
        let t: usize = spans.iter().map(|s| s.len).sum();
        let h = self.hidden;
        let shape = AttnShape {
            hidden: h,
            heads: self.heads,
        };
        let zero_bias = vec![0f32; h];
        let mut x = vec![0f32; t * h];
        self.embed_rows(seqs, &mut x);
        let mut emb_xhat = vec![0f32; t * h];
        let mut emb_rstd = vec![0f32; t];
        let n = &self.emb_norm;
        layer_norm(
            &mut x,
            &n.gamma,
            &n.beta,
            self.eps,
            &mut emb_rstd,
            Some(&mut emb_xhat),
        );
        let mut emb_mask = Vec::new();
        rng.mask(SITE_EMB, at.first_token * h, t * h, &mut emb_mask);
        apply_mask(&mut x, &emb_mask);
        let mut layers = Vec::with_capacity(self.layers.len());
        let n_layers = self.layers.len();
        for (li, l) in self.layers.iter().enumerate() {
            // The last layer of a first-token model only needs the first tokens' outputs.
            let cls = cls_only && li + 1 == n_layers;
            let q = query_rows(&spans, cls);
            // Dropout masks are indexed by query row: tokens, or sequences for `cls`.
            let first_q = if cls { at.first_seq } else { at.first_token };
            let inter = l.inner.d_out;
            let n_probs = spans
                .iter()
                .map(|s| self.heads * if cls { 1 } else { s.len } * s.len)
                .sum();
            let mut c = LayerTrace {
                qkv: vec![0f32; t * 3 * h],
                probs: vec![0f32; n_probs],
                ctx: vec![0f32; q * h],
                xhat_1: vec![0f32; q * h],
                rstd_1: vec![0f32; q],
                pre: vec![0f32; q * inter],
                mid: vec![0f32; q * inter],
                xhat_2: vec![0f32; q * h],
                rstd_2: vec![0f32; q],
                cls,
                ..LayerTrace::default()
            };
            l.qkv.matmul(&x, t, &mut c.qkv);
            add_bias(&mut c.qkv, &l.qkv.b);
            let mut m = Vec::new();
            for (s, sp) in spans.iter().enumerate() {
                let n = self.heads * if cls { 1 } else { sp.len } * sp.len;
                rng.mask(site(li, SITE_SCORES), (at.first_seq + s) << 32, n, &mut m);
                c.score_mask.extend_from_slice(&m);
            }
            attention_train(
                &c.qkv,
                shape,
                &spans,
                cls,
                &c.score_mask,
                &mut c.ctx,
                &mut c.probs,
            );
            // The residual: the query rows of the layer input.
            let x_q = if cls {
                first_rows(&x, &spans, h)
            } else {
                x.clone()
            };
            let mut y1 = vec![0f32; q * h];
            l.out.matmul(&c.ctx, q, &mut y1);
            rng.mask(
                site(li, SITE_ATTN_OUT),
                first_q * h,
                q * h,
                &mut c.attn_mask,
            );
            let n = &l.norm_1;
            let bias = if c.attn_mask.is_empty() {
                &l.out.b
            } else {
                add_bias(&mut y1, &l.out.b);
                apply_mask(&mut y1, &c.attn_mask);
                &zero_bias
            };
            add_ln(
                &mut y1,
                bias,
                &x_q,
                &n.gamma,
                &n.beta,
                self.eps,
                &mut c.rstd_1,
                Some(&mut c.xhat_1),
            );
            l.inner.matmul(&y1, q, &mut c.pre);
            add_bias(&mut c.pre, &l.inner.b);
            rng.mask(
                site(li, SITE_FFN_MID),
                first_q * inter,
                q * inter,
                &mut c.mid_mask,
            );
            gelu_masked(&c.pre, &c.mid_mask, &mut c.mid);
            let mut y2 = vec![0f32; q * h];
            l.outer.matmul(&c.mid, q, &mut y2);
            rng.mask(site(li, SITE_FFN_OUT), first_q * h, q * h, &mut c.out_mask);
            let n = &l.norm_2;
            let bias = if c.out_mask.is_empty() {
                &l.outer.b
            } else {
                add_bias(&mut y2, &l.outer.b);
                apply_mask(&mut y2, &c.out_mask);
                &zero_bias
            };
            add_ln(
                &mut y2,
                bias,
                &y1,
                &n.gamma,
                &n.beta,
                self.eps,
                &mut c.rstd_2,
                Some(&mut c.xhat_2),
            );
            c.x = std::mem::replace(&mut x, y2);
            c.y_1 = y1;
            layers.push(c);
        }
        Ok(Trace {
            spans,
            ids: seqs.iter().flat_map(|s| s.iter().copied()).collect(),
            emb_xhat,
            emb_rstd,
            emb_mask,
            layers,
            out: x,
        })
    }

    /// The backward pass: `d_out` is the gradient of the final hidden states (the trace's
    /// `out` rows); `g` is overwritten with the weights' gradients. Long (~120 lines)
    /// because it mirrors [`Self::forward_train`] op by op, in reverse.
    pub(crate) fn backward(&self, trace: Trace, d_out: Vec<f32>, g: &mut EncoderGrads) {
        let h = self.hidden;
        let t: usize = trace.spans.iter().map(|s| s.len).sum();
        let shape = AttnShape {
            hidden: h,
            heads: self.heads,
        };
        let mut dy = d_out;
        for ((l, c), gl) in self
            .layers
            .iter()
            .zip(&trace.layers)
            .zip(g.layers.iter_mut())
            .rev()
        {
            let inter = l.inner.d_out;
            let q = query_rows(&trace.spans, c.cls);
            // y2 = LN2(y1 + mask_out * (mid · W_outer + b)).
            clear_norm(&mut gl.norm_2);
            let n2 = &mut gl.norm_2;
            ln_backward(
                &mut dy,
                &c.xhat_2,
                &c.rstd_2,
                &l.norm_2.gamma,
                &mut n2.gamma,
                &mut n2.beta,
            );
            // dy is now d(y1 + ...): the residual's gradient and, masked, the FFN output's.
            let mut tmp = dy.clone();
            apply_mask(&mut tmp, &c.out_mask);
            dense_grads(&l.outer, &mut gl.outer, &c.mid, &tmp, q);
            let mut d_mid = vec![0f32; q * inter];
            let w_outer = View::new(&l.outer.w, inter, h, h).t();
            matmul(&mut d_mid, inter, View::new(&tmp, q, h, h), w_outer, false);
            gelu_backward(&mut d_mid, &c.pre, &c.mid_mask);
            dense_grads(&l.inner, &mut gl.inner, &c.y_1, &d_mid, q);
            let w_inner = View::new(&l.inner.w, h, inter, inter).t();
            matmul(
                &mut dy,
                h,
                View::new(&d_mid, q, inter, inter),
                w_inner,
                true,
            );
            // y1 = LN1(x + mask_attn * (ctx · W_out + b)).
            clear_norm(&mut gl.norm_1);
            let n1 = &mut gl.norm_1;
            ln_backward(
                &mut dy,
                &c.xhat_1,
                &c.rstd_1,
                &l.norm_1.gamma,
                &mut n1.gamma,
                &mut n1.beta,
            );
            tmp.copy_from_slice(&dy);
            apply_mask(&mut tmp, &c.attn_mask);
            dense_grads(&l.out, &mut gl.out, &c.ctx, &tmp, q);
            let mut d_ctx = vec![0f32; q * h];
            matmul(
                &mut d_ctx,
                h,
                View::new(&tmp, q, h, h),
                View::new(&l.out.w, h, h, h).t(),
                false,
            );
            let mut d_qkv = vec![0f32; t * 3 * h];
            attention_backward(
                &d_ctx,
                &c.qkv,
                &c.probs,
                &c.score_mask,
                shape,
                &trace.spans,
                c.cls,
                &mut d_qkv,
            );
            dense_grads(&l.qkv, &mut gl.qkv, &c.x, &d_qkv, t);
            // dx = dqkv · W_qkvᵀ + the residual's gradient at the query rows.
            let mut dx = vec![0f32; t * h];
            let w_qkv = View::new(&l.qkv.w, h, 3 * h, 3 * h).t();
            matmul(&mut dx, h, View::new(&d_qkv, t, 3 * h, 3 * h), w_qkv, false);
            if c.cls {
                for (sp, r) in trace.spans.iter().zip(dy.chunks_exact(h)) {
                    for (o, &v) in dx[sp.start * h..(sp.start + 1) * h].iter_mut().zip(r) {
                        *o += v;
                    }
                }
            } else {
                for (o, &v) in dx.iter_mut().zip(&dy) {
                    *o += v;
                }
            }
            dy = dx;
        }
        // x0 = mask_emb * LN(word + position + type).
        apply_mask(&mut dy, &trace.emb_mask);
        clear_norm(&mut g.emb_norm);
        let en = &mut g.emb_norm;
        ln_backward(
            &mut dy,
            &trace.emb_xhat,
            &trace.emb_rstd,
            &self.emb_norm.gamma,
            &mut en.gamma,
            &mut en.beta,
        );
        g.position.fill(0.0);
        g.token_type.fill(0.0);
        for sp in &trace.spans {
            for p in 0..sp.len {
                let row = &dy[(sp.start + p) * h..][..h];
                let at = (p + self.position_offset) * h;
                for (o, &v) in g.position[at..at + h].iter_mut().zip(row) {
                    *o += v;
                }
            }
        }
        col_sum_acc(&dy, &mut g.token_type[..h]);
        g.ids = trace.ids;
        g.word_rows = dy;
    }
}

fn clear_norm(n: &mut Norm) {
    n.gamma.fill(0.0);
    n.beta.fill(0.0);
}

/// `g.w = xᵀ · d`, `g.b = Σ d` for `y = x · w + b` over `rows` rows.
fn dense_grads(layer: &Dense, g: &mut Dense, x: &[f32], d: &[f32], rows: usize) {
    let (i, o) = (layer.d_in, layer.d_out);
    matmul(
        &mut g.w,
        o,
        View::new(x, rows, i, i).t(),
        View::new(d, rows, o, o),
        false,
    );
    g.b.fill(0.0);
    col_sum_acc(d, &mut g.b);
}
