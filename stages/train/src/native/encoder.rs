//! The BERT/RoBERTa encoder's forward pass on the CPU, over packed sequences: the tokens of
//! a batch are rows of one matrix (no padding), so every dense layer is one matrix product
//! and attention runs per sequence over its own tokens. Same arithmetic as
//! [`crate::model::TextEncoder`] with dropout off (post-norm layers, exact GELU).

use burn::nn::{LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::kernels::{add_ln, attention, bias_gelu, layer_norm, matmul, AttnShape, Span, View};
use crate::arch::EncoderArch;
use crate::error::TrainError;
use crate::model::TextEncoder;

/// A linear layer: `y = x · w + b`, `w` row-major `[d_in, d_out]` (burn's layout).
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub d_in: usize,
    pub d_out: usize,
}

impl Dense {
    pub(crate) fn from_burn<B: Backend>(l: &Linear<B>, what: &str) -> Result<Self, TrainError> {
        let w = l.weight.val();
        let [d_in, d_out] = w.dims();
        let b = match &l.bias {
            Some(b) => values(b.val(), what)?,
            None => vec![0.0; d_out],
        };
        Ok(Dense {
            w: values(w, what)?,
            b,
            d_in,
            d_out,
        })
    }

    /// `out[rows, d_out] = x[rows, d_in] · w` (bias not added).
    pub fn matmul(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        matmul(
            out,
            self.d_out,
            View::new(x, rows, self.d_in, self.d_in),
            View::new(&self.w, self.d_in, self.d_out, self.d_out),
            false,
        );
    }
}

/// LayerNorm's scale and shift.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

impl Norm {
    fn from_burn<B: Backend>(n: &LayerNorm<B>, what: &str) -> Result<Self, TrainError> {
        let gamma = values(n.gamma.val(), what)?;
        let beta = match &n.beta {
            Some(b) => values(b.val(), what)?,
            None => vec![0.0; gamma.len()],
        };
        Ok(Norm { gamma, beta })
    }
}

/// One post-norm transformer layer; `qkv` is the query, key and value projections side by
/// side (`[hidden, 3 hidden]`).
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub qkv: Dense,
    pub out: Dense,
    pub norm_1: Norm,
    pub inner: Dense,
    pub outer: Dense,
    pub norm_2: Norm,
}

/// The encoder's weights as plain arrays.
#[derive(Debug, Clone)]
pub struct NativeEncoder {
    pub(crate) hidden: usize,
    pub(crate) heads: usize,
    pub(crate) eps: f32,
    pub(crate) vocab: usize,
    pub(crate) max_positions: usize,
    pub(crate) position_offset: usize,
    pub(crate) word: Vec<f32>,
    pub(crate) position: Vec<f32>,
    /// The token-type table `[types, hidden]`; only type 0 is fed.
    pub(crate) token_type: Vec<f32>,
    pub(crate) emb_norm: Norm,
    pub(crate) layers: Vec<Layer>,
}

pub(crate) fn values<B: Backend, const D: usize>(
    t: Tensor<B, D>,
    what: &str,
) -> Result<Vec<f32>, TrainError> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| TrainError::Weights(format!("native encoder, {what}: {e:?}")))
}

/// Concatenate the columns of three `[d_in, d_out]` layers into one `[d_in, 3 d_out]`.
fn side_by_side(parts: [Dense; 3]) -> Dense {
    let (d_in, d_out) = (parts[0].d_in, parts[0].d_out);
    let mut w = Vec::with_capacity(d_in * 3 * d_out);
    for r in 0..d_in {
        for p in &parts {
            w.extend_from_slice(&p.w[r * d_out..(r + 1) * d_out]);
        }
    }
    let b = parts.iter().flat_map(|p| p.b.iter().copied()).collect();
    Dense {
        w,
        b,
        d_in,
        d_out: 3 * d_out,
    }
}

impl NativeEncoder {
    /// Copy the weights of a burn encoder built for `arch`.
    pub fn from_module<B: Backend>(
        enc: &TextEncoder<B>,
        arch: &EncoderArch,
    ) -> Result<Self, TrainError> {
        let e = &enc.embeddings;
        let hidden = arch.hidden;
        let token_type = values(e.token_type_embeddings.weight.val(), "token types")?;
        let mut layers = Vec::with_capacity(enc.transformer.layers.len());
        for (i, l) in enc.transformer.layers.iter().enumerate() {
            let w = |name: &str| format!("layer {i} {name}");
            layers.push(Layer {
                qkv: side_by_side([
                    Dense::from_burn(&l.mha.query, &w("query"))?,
                    Dense::from_burn(&l.mha.key, &w("key"))?,
                    Dense::from_burn(&l.mha.value, &w("value"))?,
                ]),
                out: Dense::from_burn(&l.mha.output, &w("attention output"))?,
                norm_1: Norm::from_burn(&l.norm_1, &w("norm_1"))?,
                inner: Dense::from_burn(&l.pwff.linear_inner, &w("linear_inner"))?,
                outer: Dense::from_burn(&l.pwff.linear_outer, &w("linear_outer"))?,
                norm_2: Norm::from_burn(&l.norm_2, &w("norm_2"))?,
            });
        }
        let native = NativeEncoder {
            hidden,
            heads: enc.transformer.n_heads,
            eps: arch.layer_norm_eps as f32,
            vocab: e.word_embeddings.weight.dims()[0],
            max_positions: e.position_embeddings.weight.dims()[0],
            position_offset: e.position_offset,
            word: values(e.word_embeddings.weight.val(), "word embeddings")?,
            position: values(e.position_embeddings.weight.val(), "position embeddings")?,
            token_type,
            emb_norm: Norm::from_burn(&e.layer_norm, "embedding norm")?,
            layers,
        };
        native.check()?;
        Ok(native)
    }

    fn check(&self) -> Result<(), TrainError> {
        let h = self.hidden;
        let bad = |what: &str| Err(TrainError::Weights(format!("native encoder: {what}")));
        if h == 0 || self.heads == 0 || !h.is_multiple_of(self.heads) {
            return bad("hidden size not divisible by the head count");
        }
        if self.word.len() != self.vocab * h
            || self.position.len() != self.max_positions * h
            || self.token_type.len() < h
            || !self.token_type.len().is_multiple_of(h)
            || self.emb_norm.gamma.len() != h
        {
            return bad("embedding shapes do not match the hidden size");
        }
        for l in &self.layers {
            let ok = l.qkv.d_in == h
                && l.qkv.d_out == 3 * h
                && l.out.d_in == h
                && l.out.d_out == h
                && l.inner.d_in == h
                && l.outer.d_in == l.inner.d_out
                && l.outer.d_out == h
                && l.norm_1.gamma.len() == h
                && l.norm_2.gamma.len() == h;
            if !ok {
                return bad("layer shapes do not match the hidden size");
            }
        }
        Ok(())
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Where each sequence's rows lie in the packed matrix; errors on ids or lengths the
    /// encoder cannot take.
    pub(crate) fn spans(&self, seqs: &[&[u32]]) -> Result<Vec<Span>, TrainError> {
        let mut start = 0;
        let mut spans = Vec::with_capacity(seqs.len());
        for s in seqs {
            if s.is_empty() {
                return Err(TrainError::Input(
                    "native encoder: an empty token sequence".into(),
                ));
            }
            if s.len() + self.position_offset > self.max_positions {
                return Err(TrainError::Input(format!(
                    "native encoder: {} tokens exceed the {} positions of the encoder",
                    s.len(),
                    self.max_positions - self.position_offset
                )));
            }
            if let Some(&id) = s.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(TrainError::Input(format!(
                    "native encoder: token id {id} >= vocabulary size {}",
                    self.vocab
                )));
            }
            spans.push(Span {
                start,
                len: s.len(),
            });
            start += s.len();
        }
        Ok(spans)
    }

    /// Word + position + token-type embeddings of the packed tokens (before LayerNorm).
    pub(crate) fn embed_rows(&self, seqs: &[&[u32]], x: &mut [f32]) {
        let h = self.hidden;
        let mut rows = x.chunks_exact_mut(h);
        for s in seqs {
            for (p, &id) in s.iter().enumerate() {
                let row = rows.next().expect("x holds every token");
                let w = &self.word[id as usize * h..][..h];
                let pos = &self.position[(p + self.position_offset) * h..][..h];
                for (((o, &w), &p), &t) in row.iter_mut().zip(w).zip(pos).zip(&self.token_type[..h])
                {
                    *o = (w + p) + t;
                }
            }
        }
    }

    /// Final hidden states `[tokens, hidden]` of `seqs`, packed one sequence after another
    /// (the spans say where).
    pub fn forward(&self, seqs: &[&[u32]]) -> Result<(Vec<f32>, Vec<Span>), TrainError> {
        let spans = self.spans(seqs)?;
        let t: usize = spans.iter().map(|s| s.len).sum();
        let h = self.hidden;
        let inter = self.layers.first().map_or(0, |l| l.inner.d_out);
        let shape = AttnShape {
            hidden: h,
            heads: self.heads,
        };
        let mut x = vec![0f32; t * h];
        let mut rstd = vec![0f32; t];
        self.embed_rows(seqs, &mut x);
        let n = &self.emb_norm;
        layer_norm(&mut x, &n.gamma, &n.beta, self.eps, &mut rstd, None);
        let mut qkv = vec![0f32; t * 3 * h];
        let mut ctx = vec![0f32; t * h];
        let mut a = vec![0f32; t * h];
        let mut mid = vec![0f32; t * inter];
        for l in &self.layers {
            l.qkv.matmul(&x, t, &mut qkv);
            for row in qkv.chunks_exact_mut(3 * h) {
                for (v, &b) in row.iter_mut().zip(&l.qkv.b) {
                    *v += b;
                }
            }
            attention(&qkv, shape, &spans, &mut ctx);
            l.out.matmul(&ctx, t, &mut a);
            let n = &l.norm_1;
            add_ln(
                &mut a, &l.out.b, &x, &n.gamma, &n.beta, self.eps, &mut rstd, None,
            );
            l.inner.matmul(&a, t, &mut mid);
            bias_gelu(&mut mid, &l.inner.b, None);
            l.outer.matmul(&mid, t, &mut x);
            let n = &l.norm_2;
            add_ln(
                &mut x, &l.outer.b, &a, &n.gamma, &n.beta, self.eps, &mut rstd, None,
            );
        }
        Ok((x, spans))
    }
}
