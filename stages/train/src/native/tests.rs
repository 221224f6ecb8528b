//! The native training step against burn's autodiff (the reference), dropout off.

use burn::backend::ndarray::{NdArray, NdArrayDevice};
use burn::backend::Autodiff;
use burn::module::Param;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use super::backward::DropRng;
use super::train::{EncoderGrads, PartOffset};
use super::{AdamW, NativeEncoder, NativeTrainer};
use crate::arch::{ArchKind, EncoderArch};
use crate::model::HeadKind;
use crate::model::{BranchPool, Classifier, ClassifierShape, TextEncoder};

type AB = Autodiff<NdArray<f32>>;

fn arch(kind: ArchKind) -> EncoderArch {
    EncoderArch {
        kind,
        hidden: 32,
        layers: 2,
        heads: 4,
        intermediate: 64,
        vocab_size: 50,
        max_positions: 40,
        type_vocab_size: if kind == ArchKind::Bert { 2 } else { 1 },
        pad_token_id: if kind == ArchKind::Bert { 0 } else { 1 },
        layer_norm_eps: 1e-5,
        hidden_dropout: 0.0,
    }
}

fn seqs() -> Vec<Vec<u32>> {
    [5usize, 9, 1, 7]
        .iter()
        .enumerate()
        .map(|(s, &n)| (0..n).map(|p| ((s * 17 + p * 7) % 45 + 3) as u32).collect())
        .collect()
}

fn padded(seqs: &[Vec<u32>], pad: u32) -> (Tensor<AB, 2, Int>, Tensor<AB, 2, Bool>, usize) {
    let dev = NdArrayDevice::Cpu;
    let n = seqs.iter().map(Vec::len).max().unwrap();
    let b = seqs.len();
    let ids: Vec<i64> = seqs
        .iter()
        .flat_map(|s| (0..n).map(|p| s.get(p).copied().unwrap_or(pad) as i64))
        .collect();
    let mask: Vec<bool> = seqs
        .iter()
        .flat_map(|s| (0..n).map(move |p| p >= s.len()))
        .collect();
    (
        Tensor::from_data(TensorData::new(ids, [b, n]), &dev),
        Tensor::from_data(TensorData::new(mask, [b, n]), &dev),
        n,
    )
}

/// burn's gradients are the reference only to about 1e-3: its GELU backward is the
/// derivative of the tanh approximation, and 4th-order finite differences of the exact
/// forward pass side with the native gradients where the two differ (checked below).
const GRAD_TOL: f32 = 2e-3;

fn grad<const D: usize>(
    p: &Param<Tensor<AB, D>>,
    g: &<AB as burn::tensor::backend::AutodiffBackend>::Gradients,
) -> Vec<f32> {
    p.val().grad(g).unwrap().into_data().into_vec().unwrap()
}

/// Max |a - b| relative to max |b| (absolute where |b| < 1) below `tol`.
fn close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
    let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(d / scale < tol, "{what}: max diff {d} (scale {scale})");
}

/// Long (~200 lines) because it builds one encoder in both worlds and compares every
/// weight's gradient by name.
#[test]
fn encoder_gradients_match_burn_autodiff() {
    for (kind, cls_only) in [
        (ArchKind::Bert, false),
        (ArchKind::Roberta, false),
        (ArchKind::Bert, true),
    ] {
        let a = arch(kind);
        let dev = NdArrayDevice::Cpu;
        AB::seed(&dev, 3);
        let enc = TextEncoder::<AB>::new(&a, &dev);
        let seqs = seqs();
        let (ids, mask, n) = padded(&seqs, a.pad_token_id);
        let h = a.hidden;
        let b = seqs.len();
        let weight = |s: usize, p: usize, k: usize| ((s * 31 + p * 7 + k) as f32 * 0.37).sin();
        let r: Vec<f32> = (0..b * n * h)
            .map(|i| {
                let (s, p, k) = (i / (n * h), (i / h) % n, i % h);
                if p < seqs[s].len() && (!cls_only || p == 0) {
                    weight(s, p, k)
                } else {
                    0.0
                }
            })
            .collect();
        let r = Tensor::<AB, 3>::from_data(TensorData::new(r, [b, n, h]), &dev);
        let g = (enc.forward(ids, mask) * r).sum().backward();

        let native = NativeEncoder::from_module(&enc, &a).unwrap();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let at = PartOffset {
            first_seq: 0,
            first_token: 0,
        };
        let trace = native
            .forward_train(&refs, at, DropRng { seed: 0, p: 0.0 }, cls_only)
            .unwrap();
        // The loss's weights on every packed row (zero but first rows with `cls_only`).
        let d_full: Vec<f32> = seqs
            .iter()
            .enumerate()
            .flat_map(|(s, q)| {
                (0..q.len()).flat_map(move |p| {
                    (0..h).map(move |k| {
                        if !cls_only || p == 0 {
                            weight(s, p, k)
                        } else {
                            0.0
                        }
                    })
                })
            })
            .collect();
        let d_out: Vec<f32> = if cls_only {
            (0..b)
                .flat_map(|s| (0..h).map(move |k| weight(s, 0, k)))
                .collect()
        } else {
            d_full.clone()
        };
        assert_eq!(trace.out.len(), d_out.len());
        let mut ng = EncoderGrads::zeros_like(&native);
        native.backward(trace, d_out, &mut ng);

        // 4th-order central differences of the native forward pass (f32, step 0.05: about
        // 5e-5 error) for a few weights.
        let loss = |e: &NativeEncoder| -> f64 {
            let (out, _) = e.forward(&refs).unwrap();
            out.iter()
                .zip(&d_full)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        type Pick = fn(&mut NativeEncoder) -> &mut f32;
        let picks: [(&str, Pick, f32); 4] = [
            (
                "1 outer b0",
                |e| &mut e.layers[1].outer.b[0],
                ng.layers[1].outer.b[0],
            ),
            (
                "0 inner b2",
                |e| &mut e.layers[0].inner.b[2],
                ng.layers[0].inner.b[2],
            ),
            (
                "0 qkv w5",
                |e| &mut e.layers[0].qkv.w[5],
                ng.layers[0].qkv.w[5],
            ),
            (
                "emb gamma3",
                |e| &mut e.emb_norm.gamma[3],
                ng.emb_norm.gamma[3],
            ),
        ];
        for (what, pick, got) in picks {
            let step = 0.05f32;
            let mut fd = 0f64;
            for (k, c) in [(-2.0f32, 1.0f64), (-1.0, -8.0), (1.0, 8.0), (2.0, -1.0)] {
                let mut e2 = native.clone();
                *pick(&mut e2) += k * step;
                fd += c * loss(&e2);
            }
            let fd = fd / (12.0 * step as f64);
            assert!(
                (got as f64 - fd).abs() < 1.5e-4,
                "{kind:?} cls {cls_only} {what}: {got} vs finite difference {fd}"
            );
        }
        let e = &enc.embeddings;
        let mut word = vec![0f32; a.vocab_size * h];
        for (t, &id) in ng.ids.iter().enumerate() {
            for k in 0..h {
                word[id as usize * h + k] += ng.word_rows[t * h + k];
            }
        }
        close(
            "word",
            &word,
            &grad(&e.word_embeddings.weight, &g),
            GRAD_TOL,
        );
        close(
            "position",
            &ng.position,
            &grad(&e.position_embeddings.weight, &g),
            GRAD_TOL,
        );
        close(
            "token type",
            &ng.token_type,
            &grad(&e.token_type_embeddings.weight, &g),
            GRAD_TOL,
        );
        close(
            "emb gamma",
            &ng.emb_norm.gamma,
            &grad(&e.layer_norm.gamma, &g),
            GRAD_TOL,
        );
        close(
            "emb beta",
            &ng.emb_norm.beta,
            &grad(e.layer_norm.beta.as_ref().unwrap(), &g),
            GRAD_TOL,
        );
        for (i, (bl, nl)) in enc.transformer.layers.iter().zip(&ng.layers).enumerate() {
            for (part, lin) in [&bl.mha.query, &bl.mha.key, &bl.mha.value]
                .iter()
                .enumerate()
            {
                let w: Vec<f32> = (0..h * h)
                    .map(|x| nl.qkv.w[(x / h) * 3 * h + part * h + x % h])
                    .collect();
                close(
                    &format!("{i} qkv {part} w"),
                    &w,
                    &grad(&lin.weight, &g),
                    GRAD_TOL,
                );
                let bias = &nl.qkv.b[part * h..(part + 1) * h];
                close(
                    &format!("{i} qkv {part} b"),
                    bias,
                    &grad(lin.bias.as_ref().unwrap(), &g),
                    GRAD_TOL,
                );
            }
            for (name, lin, d) in [
                ("out", &bl.mha.output, &nl.out),
                ("inner", &bl.pwff.linear_inner, &nl.inner),
                ("outer", &bl.pwff.linear_outer, &nl.outer),
            ] {
                close(
                    &format!("{i} {name} w"),
                    &d.w,
                    &grad(&lin.weight, &g),
                    GRAD_TOL,
                );
                close(
                    &format!("{i} {name} b"),
                    &d.b,
                    &grad(lin.bias.as_ref().unwrap(), &g),
                    GRAD_TOL,
                );
            }
            for (name, norm, d) in [
                ("norm_1", &bl.norm_1, &nl.norm_1),
                ("norm_2", &bl.norm_2, &nl.norm_2),
            ] {
                close(
                    &format!("{i} {name} gamma"),
                    &d.gamma,
                    &grad(&norm.gamma, &g),
                    GRAD_TOL,
                );
                close(
                    &format!("{i} {name} beta"),
                    &d.beta,
                    &grad(norm.beta.as_ref().unwrap(), &g),
                    GRAD_TOL,
                );
            }
        }
    }
}

fn shape() -> ClassifierShape {
    ClassifierShape {
        llm: false,
        rules: false,
        channels: 4,
        kernel: 3,
        layer_size1: 16,
        layer_size2: 8,
        dropout: 0.0,
        classes: 5,
        pool: BranchPool::GlobalMax,
        extra_inputs: 0,
        head: HeadKind::Dense,
    }
}

#[test]
fn training_steps_match_burn_adamw() {
    let a = arch(ArchKind::Bert);
    let dev = NdArrayDevice::Cpu;
    AB::seed(&dev, 5);
    let mut model = Classifier::<AB>::new(&a, &shape(), &dev);
    let opt = AdamW {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-3,
        weight_decay: 0.01,
    };
    let mut native = NativeTrainer::from_classifier(&model, &a, 0.0, opt).unwrap();
    let mut optim = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-3)
        .with_weight_decay(0.01)
        .init::<AB, Classifier<AB>>();
    let loss_fn = CrossEntropyLossConfig::new().init(&dev);
    let seqs = seqs();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let labels = [1u32, 4, 0, 2];
    let lr = 1e-3;
    for step in 0..3 {
        let (ids, mask, _) = padded(&seqs, a.pad_token_id);
        let y = Tensor::<AB, 1, Int>::from_data(
            TensorData::new(labels.iter().map(|&l| l as i64).collect(), [4]),
            &dev,
        );
        let loss = loss_fn.forward(model.forward(ids, mask, None, None), y);
        let burn_loss: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
        let native_loss = native.step(&refs, &labels, lr, step).unwrap();
        assert!(
            (native_loss - burn_loss as f64).abs() < 1e-5,
            "step {step}: loss {native_loss} vs burn {burn_loss}"
        );
    }
    let mut want = NativeTrainer::from_classifier(&model, &a, 0.0, opt).unwrap();
    for (i, (x, y)) in native
        .weight_copies()
        .iter()
        .zip(want.weight_copies())
        .enumerate()
    {
        close(&format!("weight tensor {i}"), x, &y, 5e-5);
    }
}

#[test]
fn frozen_word_embeddings_do_not_move() {
    let a = arch(ArchKind::Bert);
    let dev = NdArrayDevice::Cpu;
    AB::seed(&dev, 6);
    let model = Classifier::<AB>::new(&a, &shape(), &dev);
    let opt = AdamW {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.01,
    };
    let mut t = NativeTrainer::from_classifier(&model, &a, 0.1, opt).unwrap();
    t.freeze_word(true);
    let before = t.weight_copies();
    let seqs = seqs();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    t.step(&refs, &[0, 1, 2, 3], 1e-2, 1).unwrap();
    let after = t.weight_copies();
    assert_eq!(before[0], after[0], "word embedding moved");
    assert_ne!(before[1], after[1], "position embedding did not move");
}

#[test]
fn dropout_masks_are_fixed_by_position() {
    let rng = DropRng { seed: 9, p: 0.25 };
    let (mut all, mut part) = (Vec::new(), Vec::new());
    rng.mask(3, 0, 1000, &mut all);
    rng.mask(3, 400, 100, &mut part);
    assert_eq!(&all[400..500], &part[..]);
    let dropped = all.iter().filter(|&&m| m == 0.0).count();
    assert!((200..300).contains(&dropped), "{dropped}");
    assert!(all
        .iter()
        .all(|&m| m == 0.0 || (m - 1.0 / 0.75).abs() < 1e-6));
    let off = DropRng { seed: 9, p: 0.0 };
    off.mask(3, 0, 10, &mut all);
    assert!(all.is_empty());
}

#[test]
fn ln_backward_matches_an_f64_reference_and_burn() {
    use burn::nn::LayerNormConfig;
    let dev = NdArrayDevice::Cpu;
    AB::seed(&dev, 1);
    let h = 32;
    let rows = 5;
    let ln = LayerNormConfig::new(h).with_epsilon(1e-5).init::<AB>(&dev);
    let x: Vec<f32> = (0..rows * h)
        .map(|i| ((i * 7) as f32 * 0.61).sin() * 2.0 + 0.3)
        .collect();
    let dy: Vec<f32> = (0..rows * h)
        .map(|i| ((i * 3) as f32 * 0.37).cos())
        .collect();
    let xt = Tensor::<AB, 2>::from_data(TensorData::new(x.clone(), [rows, h]), &dev).require_grad();
    let dyt = Tensor::<AB, 2>::from_data(TensorData::new(dy.clone(), [rows, h]), &dev);
    let g = (ln.forward(xt.clone()) * dyt).sum().backward();
    let want: Vec<f32> = xt.grad(&g).unwrap().into_data().into_vec().unwrap();
    let gamma: Vec<f32> = ln.gamma.val().into_data().into_vec().unwrap();
    let beta = vec![0f32; h];
    let mut y = x.clone();
    let mut rstd = vec![0f32; rows];
    let mut xhat = vec![0f32; rows * h];
    super::kernels::layer_norm(&mut y, &gamma, &beta, 1e-5, &mut rstd, Some(&mut xhat));
    let mut d = dy.clone();
    let (mut dg, mut db) = (vec![0f32; h], vec![0f32; h]);
    super::backward::ln_backward(&mut d, &xhat, &rstd, &gamma, &mut dg, &mut db);
    let mut refd = vec![0f64; rows * h];
    for r in 0..rows {
        let xr: Vec<f64> = x[r * h..][..h].iter().map(|&v| v as f64).collect();
        let mean = xr.iter().sum::<f64>() / h as f64;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / h as f64;
        let rs = 1.0 / (var + 1e-5).sqrt();
        let xh: Vec<f64> = xr.iter().map(|v| (v - mean) * rs).collect();
        let dxh: Vec<f64> = (0..h)
            .map(|k| dy[r * h + k] as f64 * gamma[k] as f64)
            .collect();
        let m1 = dxh.iter().sum::<f64>() / h as f64;
        let m2 = dxh.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / h as f64;
        for k in 0..h {
            refd[r * h + k] = rs * (dxh[k] - m1 - xh[k] * m2);
        }
    }
    let e_n = d
        .iter()
        .zip(&refd)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0f64, f64::max);
    let e_b = want
        .iter()
        .zip(&refd)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0f64, f64::max);
    assert!(e_n < 1e-6 && e_b < 1e-6, "native {e_n:e}, burn {e_b:e}");
}

#[test]
fn weights_and_adam_state_survive_the_burn_round_trip() {
    use super::bridge::{adam_record, read_adam_record, slots, write_weights};
    let a = arch(ArchKind::Roberta);
    let dev = NdArrayDevice::Cpu;
    AB::seed(&dev, 8);
    let model = Classifier::<AB>::new(&a, &shape(), &dev);
    let opt = AdamW {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.01,
    };
    let mut t = NativeTrainer::from_classifier(&model, &a, 0.1, opt).unwrap();
    let seqs = seqs();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    for s in 0..2 {
        t.step(&refs, &[0, 1, 2, 3], 1e-2, s).unwrap();
    }
    let sl = slots(&model).unwrap();
    let model = write_weights(model, &sl, &t.weight_copies(), &dev);
    let time = t.time();
    let (m, v) = t.moments_mut();
    let (m, v): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (
        m.into_iter().map(|x| x.to_vec()).collect(),
        v.into_iter().map(|x| x.to_vec()).collect(),
    );
    let mr: Vec<&[f32]> = m.iter().map(Vec::as_slice).collect();
    let vr: Vec<&[f32]> = v.iter().map(Vec::as_slice).collect();
    let rec = adam_record::<AB>(&sl, &mr, &vr, time, &|_| false, &dev);
    let mut back = NativeTrainer::from_classifier(&model, &a, 0.1, opt).unwrap();
    {
        let (mut m2, mut v2) = back.moments_mut();
        let t2 = read_adam_record::<AB>(&sl, rec, &mut m2, &mut v2).unwrap();
        assert_eq!(t2, Some(time));
        for (i, (x, y)) in m2.iter().zip(&m).enumerate() {
            assert_eq!(&x[..], &y[..], "m {i}");
        }
        for (i, (x, y)) in v2.iter().zip(&v).enumerate() {
            assert_eq!(&x[..], &y[..], "v {i}");
        }
    }
    back.set_time(time);
    for (i, (x, y)) in back
        .weight_copies()
        .iter()
        .zip(t.weight_copies())
        .enumerate()
    {
        assert_eq!(x, &y, "weights {i}");
    }
    // One more step on both: the same bits.
    let l1 = t.step(&refs, &[0, 1, 2, 3], 1e-2, 9).unwrap();
    let l2 = back.step(&refs, &[0, 1, 2, 3], 1e-2, 9).unwrap();
    assert_eq!(l1.to_bits(), l2.to_bits());
    assert_eq!(t.weight_copies(), back.weight_copies());
}
