//! `train_candidate` for a frozen-encoder evidence head on the native path (device
//! `"cpu"`), over the shared epoch loop (`crate::epochs`). Weights start from burn's
//! seeded initialisation and go back into burn's module for every record a checkpoint or
//! the best weights store, so stored weights are burn records as before; the optimizer's
//! state is [`FusedOptimizer`]'s. A checkpoint continues on the trainer that wrote it
//! ([`wrote`]).

use std::collections::HashMap;

use burn::module::{AutodiffModule, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::backward::DropRng;
use super::bridge::set_values;
use super::dense::DenseHead;
use super::encoder::{values, Dense};
use super::head::{Conv, HeadBatch, HeadNet, Scorer};
use super::optim::FusedOptimizer;
use crate::data::{derive_seed, eval_batches, evidence_parts, Examples, HideLexical, P_EPOCH};
use crate::epochs::{fit, Fitter, Pass};
use crate::error::TrainError;
use crate::evidence::EvidenceHead;
use crate::model::{CnnBranch, HeadKind};
use crate::prepare::Prepared;
use crate::spec::{Checkpoint, TrainOutcome};
use crate::training::{start, TrainTask};
use crate::weights::{load_record, record_bytes};

/// Whether a candidate is a frozen-encoder evidence head (what this path trains).
pub(crate) fn eligible(prep: &Prepared) -> bool {
    prep.sources.embeddings.is_some()
        && prep.sources.evidence.is_some()
        && prep.shape.head == HeadKind::Evidence
}

/// Whether this trainer wrote `ck` (else burn's did: an earlier release, or `"cpu:flex"`).
pub(crate) fn wrote(ck: &Checkpoint) -> bool {
    FusedOptimizer::recognises(&ck.optimizer)
}

fn floats<B: Backend, const D: usize>(
    p: &Param<Tensor<B, D>>,
    what: &str,
) -> Result<Vec<f32>, TrainError> {
    values(p.val(), what)
}

fn bias<'m, B: Backend>(
    b: &'m Option<Param<Tensor<B, 1>>>,
    what: &str,
) -> Result<&'m Param<Tensor<B, 1>>, TrainError> {
    b.as_ref().ok_or_else(|| {
        TrainError::Input(format!(
            "native head: {what} has no bias (the head always has one)"
        ))
    })
}

fn dense_of<B: Backend>(l: &burn::nn::Linear<B>, what: &str) -> Result<Dense, TrainError> {
    bias(&l.bias, what)?;
    Dense::from_burn(l, what)
}

fn conv_of<B: Backend>(c: &CnnBranch<B>, what: &str) -> Result<Conv, TrainError> {
    let [channels, _, kernel] = c.conv.weight.val().dims();
    Ok(Conv {
        w: floats(&c.conv.weight, what)?,
        b: floats(bias(&c.conv.bias, what)?, what)?,
        channels,
        kernel,
    })
}

/// The native head of burn's module, and the ids of its parameters in
/// [`HeadNet::params_mut`]'s order.
fn from_burn<B: Backend>(h: &EvidenceHead<B>) -> Result<(HeadNet, Vec<ParamId>), TrainError> {
    let mut ids = Vec::new();
    let d = &h.dense;
    let mut push = |l: &burn::nn::Linear<B>, what: &str| -> Result<Dense, TrainError> {
        ids.push(l.weight.id);
        ids.push(bias(&l.bias, what)?.id);
        dense_of(l, what)
    };
    let dense = DenseHead {
        layers: [
            push(&d.fc1, "fc1")?,
            push(&d.fc2, "fc2")?,
            push(&d.out, "out")?,
        ],
    };
    let scorer = match &h.scorer {
        Some(s) => Some(Scorer {
            hidden: push(&s.hidden, "scorer.hidden")?,
            out: push(&s.out, "scorer.out")?,
        }),
        None => None,
    };
    let mut conv = |c: &Option<CnnBranch<B>>, what: &str| -> Result<Option<Conv>, TrainError> {
        let Some(c) = c else { return Ok(None) };
        ids.push(c.conv.weight.id);
        ids.push(bias(&c.conv.bias, what)?.id);
        conv_of(c, what).map(Some)
    };
    let llm = conv(&h.llm, "llm branch")?;
    let rules = conv(&h.rules, "rules branch")?;
    Ok((
        HeadNet {
            dense,
            scorer,
            llm,
            rules,
        },
        ids,
    ))
}

/// burn's module with the native weights written in.
fn into_burn<B: Backend>(
    h: EvidenceHead<B>,
    net: &mut HeadNet,
    ids: &[ParamId],
    device: &B::Device,
) -> EvidenceHead<B> {
    let values: HashMap<ParamId, Vec<f32>> = ids
        .iter()
        .zip(net.params_mut())
        .map(|(&id, p)| (id, p.to_vec()))
        .collect();
    set_values(h, values, device)
}

/// The batch of examples `idx` of `ex`.
fn head_batch(
    prep: &Prepared,
    ex: &Examples,
    idx: &[usize],
    hide: Option<HideLexical>,
) -> HeadBatch {
    let src = &prep.sources;
    let rows: Vec<usize> = idx.iter().map(|&i| ex.rows[i]).collect();
    let e = src.embeddings.expect("eligible: frozen vectors");
    let layout = src.evidence.expect("eligible: evidence layout");
    let (vectors, blocks, nblocks) = evidence_parts(e, &rows, layout, hide);
    HeadBatch {
        rows: rows.len(),
        vectors,
        blocks,
        nblocks,
        llm: src.llm.as_ref().map(|s| s.windows(&rows, src.kernel, hide)),
        rules: src
            .rules
            .as_ref()
            .map(|s| s.windows(&rows, src.kernel, hide)),
        labels: idx.iter().map(|&i| ex.labels[i]).collect(),
    }
}

/// Accuracy of `net` on `batches` (built once per split), batches on rayon's threads.
fn accuracy(net: &HeadNet, batches: &[HeadBatch]) -> f64 {
    let rows: usize = batches.iter().map(|b| b.rows).sum();
    if rows == 0 {
        return 0.0;
    }
    let right: usize = batches
        .par_iter()
        .map(|b| {
            let pred = net.predict(b);
            pred.iter().zip(&b.labels).filter(|(p, l)| p == l).count()
        })
        .sum();
    right as f64 / rows as f64
}

struct HeadFitter<'p, 'a, B: AutodiffBackend> {
    /// burn's module, for records (its values are stale between records).
    model: Option<EvidenceHead<B>>,
    net: HeadNet,
    /// One per half of a batch.
    grads: [HeadNet; 2],
    ids: Vec<ParamId>,
    optim: FusedOptimizer,
    prep: &'p Prepared<'a>,
    valid: Vec<HeadBatch>,
    learning_rate: f64,
    dropout: f32,
    seed: u64,
    device: B::Device,
}

impl<B: AutodiffBackend> HeadFitter<'_, '_, B> {
    fn synced(&mut self) -> &EvidenceHead<B> {
        let model = self.model.take().expect("the model is present");
        let model = into_burn(model, &mut self.net, &self.ids, &self.device);
        self.model.insert(model)
    }
}

impl<B: AutodiffBackend> Fitter for HeadFitter<'_, '_, B> {
    fn train_epoch(&mut self, batches: &[Vec<usize>], epoch: usize) -> Result<Pass, TrainError> {
        let epoch_seed = derive_seed(self.seed, P_EPOCH, epoch as u64);
        let (mut loss_sum, mut n) = (0.0, 0usize);
        let prep = self.prep;
        let hide = HideLexical::for_epoch(prep.lexical_dropout, self.seed, epoch);
        for (k, idx) in batches.iter().enumerate() {
            let net = &self.net;
            let rng = DropRng {
                seed: derive_seed(epoch_seed, P_EPOCH, k as u64),
                p: self.dropout,
            };
            // Each half of the batch on its own thread; the halves are fixed whatever the
            // thread count, so the result does not depend on it.
            let half = idx.len().div_ceil(2);
            let [g0, g1] = &mut self.grads;
            let part = |g: &mut HeadNet, rows: &[usize], first: usize| {
                if rows.is_empty() {
                    return 0.0;
                }
                let batch = head_batch(prep, &prep.train, rows, hide);
                net.loss_and_grads(g, &batch, rng, first, idx.len())
            };
            let (l0, l1) = rayon::join(
                || part(g0, &idx[..half], 0),
                || part(g1, &idx[half..], half),
            );
            let lv = l0 + l1;
            if !lv.is_finite() {
                // As burn's loop: a batch whose loss is not finite ends the epoch unstepped.
                return Ok(Err(lv));
            }
            let second_half = half < idx.len();
            let grads: Vec<(&[f32], &[f32])> = g0
                .params_mut()
                .into_iter()
                .zip(g1.params_mut())
                .map(|(a, b)| (&*a, if second_half { &*b } else { &[][..] }))
                .collect();
            self.optim
                .step(self.net.params_mut(), grads, self.learning_rate);
            loss_sum += lv * idx.len() as f64;
            n += idx.len();
        }
        Ok(Ok((loss_sum, n)))
    }

    fn valid_accuracy(&mut self) -> Result<f64, TrainError> {
        Ok(accuracy(&self.net, &self.valid))
    }

    fn weights(&mut self) -> Result<Vec<u8>, TrainError> {
        record_bytes(&self.synced().valid())
    }

    fn checkpoint(&mut self) -> Result<(Vec<u8>, Vec<u8>), TrainError> {
        Ok((record_bytes(self.synced())?, self.optim.to_bytes()?))
    }

    fn test_accuracy(&mut self, record: &[u8]) -> Result<f64, TrainError> {
        let model = self.model.as_ref().expect("the model is present").valid();
        let best = load_record(model, record, &self.device)?;
        let (net, _) = from_burn(&best)?;
        let test: Vec<HeadBatch> = eval_batches(&self.prep.test)
            .iter()
            .map(|idx| head_batch(self.prep, &self.prep.test, idx, None))
            .collect();
        Ok(accuracy(&net, &test))
    }
}

/// A frozen-encoder evidence head's training on the native path.
pub(crate) fn train<B: AutodiffBackend>(
    task: TrainTask,
    device: B::Device,
) -> Result<TrainOutcome, TrainError> {
    let TrainTask {
        prep,
        assets,
        spec,
        cfg,
        resume,
        on_epoch,
    } = task;
    let (model, st, optimizer) =
        start::<B, EvidenceHead<B>>(prep, assets, cfg.seed, resume, &device)?;
    let optim = match optimizer {
        Some(bytes) => FusedOptimizer::from_bytes(&bytes)?,
        None => None,
    };
    let (mut net, ids) = from_burn(&model)?;
    let sizes: Vec<usize> = net.params_mut().iter().map(|p| p.len()).collect();
    let optim = match optim {
        Some(o) if o.fits(spec.optimizer, &sizes) => o,
        Some(_) => {
            return Err(TrainError::Weights(
                "the checkpoint's optimizer state does not fit this candidate: discard it and train from scratch".into(),
            ))
        }
        None => FusedOptimizer::new(spec.optimizer, &sizes),
    };
    let valid = eval_batches(&prep.valid)
        .iter()
        .map(|idx| head_batch(prep, &prep.valid, idx, None))
        .collect();
    let grads = [net.zeros_like(), net.zeros_like()];
    let mut fitter = HeadFitter {
        model: Some(model),
        net,
        grads,
        ids,
        optim,
        prep,
        valid,
        learning_rate: spec.learning_rate,
        dropout: prep.shape.dropout as f32,
        seed: cfg.seed,
        device,
    };
    fit(&mut fitter, st, prep, assets, spec, cfg, on_epoch)
}

#[cfg(test)]
mod tests {
    //! The native head against burn's module: same logits, loss and gradients (to float
    //! rounding) for every model of the search's macro level.

    use burn::backend::flex::{Flex, FlexDevice};
    use burn::backend::Autodiff;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::{Int, TensorData};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::data::{EvidenceLayout, SparseRows};
    use crate::evidence::tests::random_matrix;
    use crate::model::{BranchPool, ClassifierShape};
    use crate::vectors::{Embeddings, Pooling};

    type B = Autodiff<Flex>;

    fn floats<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().into_vec().expect("f32")
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                // Plus an absolute 1e-6: a sum that is 0 in exact arithmetic (the scorer's
                // output bias: the softmax gradients of a row sum to 0) is rounding noise.
                (g - w).abs() <= 1e-5 * scale + 1e-6,
                "{what}[{k}]: native {g}, burn {w} (scale {scale})"
            );
        }
    }

    #[test]
    fn native_head_matches_burn_logits_loss_and_gradients() {
        let (rows, width, classes, blocks, kernel) = (9, 12, 5, 3, 3);
        let device = FlexDevice;
        for (llm, rules) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let dim = width + blocks * classes;
            let data: Vec<f32> = (0..rows * dim)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let shape = ClassifierShape {
                llm,
                rules,
                channels: 3,
                kernel,
                layer_size1: 8,
                layer_size2: 6,
                dropout: 0.0,
                classes,
                pool: BranchPool::PerClass,
                extra_inputs: blocks * classes,
                head: HeadKind::Evidence,
            };
            let head = EvidenceHead::<B>::new(width, &shape, &device);
            let judge = random_matrix(&mut rng, rows, classes);
            let rule_cols = 17;
            let rule_matrix = random_matrix(&mut rng, rows, rule_cols);
            let column_class: Vec<u32> = (0..rule_cols as u32).map(|c| c * 5 / 17).collect();
            let all: Vec<usize> = (0..rows).collect();
            let labels: Vec<u32> = (0..rows).map(|r| (r * 3 % classes) as u32).collect();
            let e = Embeddings {
                pooling: Pooling::Mean,
                dim,
                rows,
                data,
                encoder_id: "test".into(),
            };
            let (vectors, per_class, nblocks) =
                evidence_parts(&e, &all, EvidenceLayout { width, classes }, None);
            let llm_rows = SparseRows::new(&judge, None, classes);
            let rule_rows = SparseRows::new(&rule_matrix, Some(column_class), classes);
            let batch = HeadBatch {
                rows,
                vectors: vectors.clone(),
                blocks: per_class.clone(),
                nblocks,
                llm: llm.then(|| llm_rows.windows(&all, kernel, None)),
                rules: rules.then(|| rule_rows.windows(&all, kernel, None)),
                labels: labels.clone(),
            };

            // burn
            let v = Tensor::<B, 2>::from_data(TensorData::new(vectors, [rows, width]), &device);
            let b = Tensor::<B, 3>::from_data(
                TensorData::new(per_class, [rows, classes, blocks]),
                &device,
            );
            let logits = head.forward_split(
                v,
                Some(b),
                llm.then(|| llm_rows.batch(&all, kernel, None, &device)),
                rules.then(|| rule_rows.batch(&all, kernel, None, &device)),
            );
            let y: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
            let y = Tensor::<B, 1, Int>::from_data(TensorData::new(y, [rows]), &device);
            let loss = CrossEntropyLossConfig::new()
                .init(&device)
                .forward(logits.clone(), y);
            let want_loss: f32 = floats(loss.clone().inner())[0];
            let grads = loss.backward();

            // native
            let (net, ids) = from_burn(&head).expect("native head");
            let mut g = net.zeros_like();
            let off = DropRng { seed: 0, p: 0.0 };
            let (got_logits, _) = net.forward(&batch, 0, off);
            let got_loss = net.loss_and_grads(&mut g, &batch, off, 0, rows);
            let case = format!("llm {llm}, rules {rules}");
            assert_close(
                &got_logits,
                &floats(logits.inner()),
                &format!("{case}: logits"),
            );
            assert!(
                (got_loss as f32 - want_loss).abs() < 1e-5,
                "{case}: loss {got_loss} against {want_loss}"
            );
            // Every parameter's gradient, by id, in the native order.
            let mut want: HashMap<ParamId, Vec<f32>> = HashMap::new();
            let mut grad2 = |p: &Param<Tensor<B, 2>>| {
                want.insert(p.id, floats(p.grad(&grads).expect("grad")));
            };
            let d = &head.dense;
            for l in [&d.fc1, &d.fc2, &d.out] {
                grad2(&l.weight);
            }
            if let Some(s) = &head.scorer {
                grad2(&s.hidden.weight);
                grad2(&s.out.weight);
            }
            let mut lins = vec![&d.fc1, &d.fc2, &d.out];
            if let Some(s) = &head.scorer {
                lins.extend([&s.hidden, &s.out]);
            }
            for l in lins {
                let b = l.bias.as_ref().expect("bias");
                want.insert(b.id, floats(b.grad(&grads).expect("grad")));
            }
            for c in [&head.llm, &head.rules].into_iter().flatten() {
                let w = &c.conv.weight;
                want.insert(w.id, floats(w.grad(&grads).expect("grad")));
                let b = c.conv.bias.as_ref().expect("bias");
                want.insert(b.id, floats(b.grad(&grads).expect("grad")));
            }
            assert_eq!(want.len(), ids.len(), "{case}: parameter count");
            for (k, (id, got)) in ids.iter().zip(g.params_mut()).enumerate() {
                assert_close(
                    got,
                    &want[id],
                    &format!("{case}: gradient of parameter {k}"),
                );
            }
        }
    }
}
