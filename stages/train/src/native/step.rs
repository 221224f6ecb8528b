//! A whole fine-tuning step on the native path for the text-only classifier (Model 1:
//! encoder, first token, three dense layers, cross-entropy) with AdamW: the batch is split
//! into two fixed halves that run forward and backward on two threads, the dense head and
//! the loss run once over the whole batch, and AdamW updates every weight in one fused pass.

use rayon::prelude::*;

use super::backward::DropRng;
use super::dense::{argmax_rows, cross_entropy, DenseHead};
use super::encoder::{Dense, NativeEncoder};
use super::kernels::{madd, simd_fn};
use super::train::{EncoderGrads, PartOffset};
use crate::error::TrainError;
use crate::model::Classifier;

/// AdamW's settings (burn's `AdamWConfig` semantics: decoupled weight decay, bias-corrected
/// moments, epsilon added to the square root).
#[derive(Debug, Clone, Copy)]
pub struct AdamW {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
}

/// The classifier's weights with AdamW's moments, ready for steps.
pub struct NativeTrainer {
    enc: NativeEncoder,
    head: DenseHead,
    dropout: f32,
    head_dropout: f32,
    opt: AdamW,
    /// The word embedding stays fixed (`[encoder] freeze_embeddings`).
    frozen_word: bool,
    time: i32,
    m: Vec<f32>,
    v: Vec<f32>,
    /// One per batch half.
    grads: Vec<EncoderGrads>,
    head_grads: DenseHead,
    word_grad: Vec<f32>,
}

impl NativeTrainer {
    /// From a burn classifier without feature branches (`dropout`: the encoder's,
    /// `head_dropout`: the head's).
    pub fn from_classifier<B: burn::tensor::backend::Backend>(
        model: &Classifier<B>,
        arch: &crate::arch::EncoderArch,
        head_dropout: f64,
        opt: AdamW,
    ) -> Result<Self, TrainError> {
        if model.head.llm.is_some() || model.head.rules.is_some() {
            return Err(TrainError::Input(
                "native training: only the text-only classifier (no feature branches)".into(),
            ));
        }
        let enc = NativeEncoder::from_module(&model.encoder, arch)?;
        let d = &model.head.dense;
        let head = DenseHead {
            layers: [
                Dense::from_burn(&d.fc1, "fc1")?,
                Dense::from_burn(&d.fc2, "fc2")?,
                Dense::from_burn(&d.out, "out")?,
            ],
        };
        let head_grads = head.zeros_like();
        Ok(NativeTrainer {
            word_grad: Vec::new(),
            grads: Vec::new(),
            enc,
            head,
            dropout: arch.hidden_dropout as f32,
            head_dropout: head_dropout as f32,
            opt,
            frozen_word: false,
            time: 0,
            m: Vec::new(),
            v: Vec::new(),
            head_grads,
        })
    }

    /// The optimizer's buffers, made on first use (prediction needs none).
    fn ensure_buffers(&mut self) {
        if self.grads.is_empty() {
            let n = params_of(&mut self.enc, &mut self.head)
                .iter()
                .map(|p| p.len())
                .sum();
            self.m = vec![0.0; n];
            self.v = vec![0.0; n];
            self.grads = (0..2)
                .map(|_| EncoderGrads::zeros_like(&self.enc))
                .collect();
            self.word_grad = vec![0.0; self.enc.word.len()];
        }
    }

    /// One step on `seqs` (token ids) with `labels`; returns the mean loss.
    pub fn step(
        &mut self,
        seqs: &[&[u32]],
        labels: &[u32],
        lr: f64,
        seed: u64,
    ) -> Result<f64, TrainError> {
        self.ensure_buffers();
        let b = seqs.len();
        if b == 0 || labels.len() != b {
            return Err(TrainError::Input(
                "native step: empty batch or label count".into(),
            ));
        }
        let classes = self.head.layers[2].d_out;
        if let Some(y) = labels.iter().find(|&&y| y as usize >= classes) {
            return Err(TrainError::Input(format!(
                "native step: label {y} >= {classes} classes"
            )));
        }
        let rng = DropRng {
            seed,
            p: self.dropout,
        };
        let half = b.div_ceil(2);
        let (s0, s1) = seqs.split_at(half);
        let off1 = PartOffset {
            first_seq: half,
            first_token: s0.iter().map(|s| s.len()).sum(),
        };
        let off0 = PartOffset {
            first_seq: 0,
            first_token: 0,
        };
        let enc = &self.enc;
        let (t0, t1) = rayon::join(
            || enc.forward_train(s0, off0, rng, true),
            || enc.forward_train(s1, off1, rng, true),
        );
        let traces = [t0?, t1?];
        let h = self.enc.hidden;
        let mut cls = Vec::with_capacity(b * h);
        for tr in &traces {
            cls.extend_from_slice(&tr.out);
        }
        let head_rng = DropRng {
            seed,
            p: self.head_dropout,
        };
        let (loss, d_cls) = head_step(&self.head, &mut self.head_grads, &cls, labels, head_rng);
        if !loss.is_finite() {
            // As burn's loop: a batch whose loss is not finite ends the epoch unstepped.
            return Ok(loss);
        }
        let [tr0, tr1] = traces;
        let d0 = d_cls[..half * h].to_vec();
        let d1 = d_cls[half * h..].to_vec();
        let (g0, g1) = self.grads.split_at_mut(1);
        rayon::join(
            || enc.backward(tr0, d0, &mut g0[0]),
            || enc.backward(tr1, d1, &mut g1[0]),
        );
        self.update(lr);
        Ok(loss)
    }

    /// Keep the word embedding fixed (no update, no optimizer state), as burn's `no_grad`.
    pub fn freeze_word(&mut self, frozen: bool) {
        self.frozen_word = frozen;
    }

    pub(crate) fn word_frozen(&self) -> bool {
        self.frozen_word
    }

    /// AdamW steps taken (burn's `time`).
    pub(crate) fn time(&self) -> usize {
        self.time as usize
    }

    pub(crate) fn set_time(&mut self, t: usize) {
        self.time = t as i32;
    }

    /// Copies of every weight in `params_of` order.
    pub(crate) fn weight_copies(&mut self) -> Vec<Vec<f32>> {
        params_of(&mut self.enc, &mut self.head)
            .into_iter()
            .map(|p| p.to_vec())
            .collect()
    }

    /// AdamW's first and second moments, split per weight tensor (`params_of` order).
    pub(crate) fn moments_mut(&mut self) -> (Vec<&mut [f32]>, Vec<&mut [f32]>) {
        self.ensure_buffers();
        let lens: Vec<usize> = params_of(&mut self.enc, &mut self.head)
            .iter()
            .map(|p| p.len())
            .collect();
        (split_by(&mut self.m, &lens), split_by(&mut self.v, &lens))
    }

    /// The predicted class of each sequence (dropout off; ties go to the lower class).
    pub fn predict(&self, seqs: &[&[u32]]) -> Result<Vec<u32>, TrainError> {
        let (hidden, spans) = self.enc.forward(seqs)?;
        let h = self.enc.hidden;
        let b = seqs.len();
        let mut x = Vec::with_capacity(b * h);
        for sp in &spans {
            x.extend_from_slice(&hidden[sp.start * h..(sp.start + 1) * h]);
        }
        for (k, l) in self.head.layers.iter().enumerate() {
            let mut y = vec![0f32; b * l.d_out];
            l.matmul(&x, b, &mut y);
            for row in y.chunks_exact_mut(l.d_out) {
                for (v, &bb) in row.iter_mut().zip(&l.b) {
                    *v += bb;
                    if k < 2 {
                        *v = v.max(0.0);
                    }
                }
            }
            x = y;
        }
        Ok(argmax_rows(&x, self.head.layers[2].d_out))
    }

    fn update(&mut self, lr: f64) {
        self.time += 1;
        let hp = Hyper::new(self.opt, lr, self.time);
        let h = self.enc.hidden;
        // The word embedding's dense gradient, from the rows the batch touched.
        let mut touched = Vec::new();
        for g in self.grads.iter().filter(|_| !self.frozen_word) {
            for (t, &id) in g.ids.iter().enumerate() {
                let row = &mut self.word_grad[id as usize * h..][..h];
                for (o, &v) in row.iter_mut().zip(&g.word_rows[t * h..][..h]) {
                    *o += v;
                }
                touched.push(id);
            }
        }
        let mut grads: Vec<(&[f32], &[f32])> = vec![(&self.word_grad, &[])];
        for (a, b) in encoder_grads(&self.grads[0])
            .into_iter()
            .zip(encoder_grads(&self.grads[1]))
        {
            grads.push((a, b));
        }
        for d in &self.head_grads.layers {
            grads.push((&d.w, &[]));
            grads.push((&d.b, &[]));
        }
        let (mut m, mut v) = (self.m.as_mut_slice(), self.v.as_mut_slice());
        if self.frozen_word {
            let n = self.enc.word.len();
            m = &mut m[n..];
            v = &mut v[n..];
        }
        let mut work = Vec::new();
        const CHUNK: usize = 1 << 16;
        let params = params_of(&mut self.enc, &mut self.head);
        let skip = usize::from(self.frozen_word);
        for (p, (ga, gb)) in params.into_iter().zip(grads).skip(skip) {
            let (mp, mr) = std::mem::take(&mut m).split_at_mut(p.len());
            let (vp, vr) = std::mem::take(&mut v).split_at_mut(p.len());
            m = mr;
            v = vr;
            let n = p.len();
            for (k, ((p, m), v)) in p
                .chunks_mut(CHUNK)
                .zip(mp.chunks_mut(CHUNK))
                .zip(vp.chunks_mut(CHUNK))
                .enumerate()
            {
                let r = k * CHUNK..(k * CHUNK + CHUNK).min(n);
                let gb = if gb.is_empty() { gb } else { &gb[r.clone()] };
                work.push((p, &ga[r], gb, m, v));
            }
        }
        work.into_par_iter()
            .for_each(|(p, ga, gb, m, v)| adamw(p, ga, gb, m, v, hp));
        for id in touched {
            self.word_grad[id as usize * h..][..h].fill(0.0);
        }
    }
}

fn split_by<'a>(mut v: &'a mut [f32], lens: &[usize]) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(lens.len());
    for &n in lens {
        let (a, rest) = std::mem::take(&mut v).split_at_mut(n);
        out.push(a);
        v = rest;
    }
    out
}

/// The weights in a fixed order (the word embedding first); [`encoder_grads`] and the
/// head's gradients follow the same order.
fn params_of<'a>(e: &'a mut NativeEncoder, head: &'a mut DenseHead) -> Vec<&'a mut [f32]> {
    let mut out: Vec<&mut [f32]> = vec![
        &mut e.word,
        &mut e.position,
        &mut e.token_type,
        &mut e.emb_norm.gamma,
        &mut e.emb_norm.beta,
    ];
    for l in &mut e.layers {
        for d in [&mut l.qkv, &mut l.out, &mut l.inner, &mut l.outer] {
            out.push(&mut d.w);
            out.push(&mut d.b);
        }
        for n in [&mut l.norm_1, &mut l.norm_2] {
            out.push(&mut n.gamma);
            out.push(&mut n.beta);
        }
    }
    for d in &mut head.layers {
        out.push(&mut d.w);
        out.push(&mut d.b);
    }
    out
}

/// The encoder's gradients without the word embedding, in [`params_of`]'s order.
fn encoder_grads(g: &EncoderGrads) -> Vec<&[f32]> {
    let mut out: Vec<&[f32]> = vec![
        &g.position,
        &g.token_type,
        &g.emb_norm.gamma,
        &g.emb_norm.beta,
    ];
    for l in &g.layers {
        for d in [&l.qkv, &l.out, &l.inner, &l.outer] {
            out.push(&d.w);
            out.push(&d.b);
        }
        for n in [&l.norm_1, &l.norm_2] {
            out.push(&n.gamma);
            out.push(&n.beta);
        }
    }
    out
}

/// Head forward + cross-entropy + backward; returns the mean loss and d loss / d cls.
fn head_step(
    head: &DenseHead,
    g: &mut DenseHead,
    cls: &[f32],
    labels: &[u32],
    rng: DropRng,
) -> (f64, Vec<f32>) {
    let (logits, acts) = head.forward(cls, labels.len(), 0, rng);
    let (loss, d) = cross_entropy(&logits, labels);
    (loss, head.backward(g, cls, &acts, &d, true))
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Hyper {
    lr: f32,
    decay: f32,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    c1: f32,
    c2: f32,
}

impl Hyper {
    /// AdamW's constants for step number `time` (1 for the first) at learning rate `lr`.
    pub(crate) fn new(o: AdamW, lr: f64, time: i32) -> Hyper {
        Hyper {
            lr: lr as f32,
            decay: 1.0 - (lr * o.weight_decay as f64) as f32,
            beta_1: o.beta_1,
            beta_2: o.beta_2,
            epsilon: o.epsilon,
            c1: 1.0 - o.beta_1.powi(time),
            c2: 1.0 - o.beta_2.powi(time),
        }
    }
}

#[inline(always)]
fn adamw_imp<const F: bool>(
    p: &mut [f32],
    ga: &[f32],
    gb: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    hp: Hyper,
) {
    let (f1, f2) = (1.0 - hp.beta_1, 1.0 - hp.beta_2);
    for k in 0..p.len() {
        let g = if gb.is_empty() { ga[k] } else { ga[k] + gb[k] };
        let mk = madd::<F>(m[k], hp.beta_1, g * f1);
        let vk = madd::<F>(v[k], hp.beta_2, g * g * f2);
        m[k] = mk;
        v[k] = vk;
        let delta = (mk / hp.c1) / ((vk / hp.c2).sqrt() + hp.epsilon);
        p[k] = p[k] * hp.decay - delta * hp.lr;
    }
}

simd_fn! {
    /// One AdamW update of a slice: the gradient is `ga + gb` (`gb` may be empty).
    fn adamw(p: &mut [f32], ga: &[f32], gb: &[f32], m: &mut [f32], v: &mut [f32], hp: Hyper) = adamw_imp
}
