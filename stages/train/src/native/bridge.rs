//! Between burn's classifier and the native trainer: weights and AdamW's moments go both
//! ways, so a native run writes the same checkpoints (burn records) as a burn run, and
//! either can resume the other's.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::optim::{AdamW as BurnAdamW, AdamWState, AdaptiveMomentumState, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

use crate::error::TrainError;
use crate::model::Classifier;

/// One burn parameter: its id, shape, and the native tensor it lives in (the index in
/// `step::params_of`'s order; `qkv` picks the query, key or value block of a fused tensor).
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub id: ParamId,
    pub dims: Vec<usize>,
    pub index: usize,
    pub qkv: Option<usize>,
}

fn slot<B: Backend, const D: usize>(
    p: &Param<Tensor<B, D>>,
    index: usize,
    qkv: Option<usize>,
) -> Slot {
    Slot {
        id: p.id,
        dims: p.val().dims().to_vec(),
        index,
        qkv,
    }
}

/// The classifier's parameters in the native order. Errors on a shape the native trainer
/// does not hold (feature branches, LayerNorm without bias, linear layers without bias).
pub(crate) fn slots<B: Backend>(m: &Classifier<B>) -> Result<Vec<Slot>, TrainError> {
    let missing =
        |what: &str| TrainError::Input(format!("native training: the classifier has no {what}"));
    let mut out = Vec::new();
    let e = &m.encoder.embeddings;
    out.push(slot(&e.word_embeddings.weight, 0, None));
    out.push(slot(&e.position_embeddings.weight, 1, None));
    out.push(slot(&e.token_type_embeddings.weight, 2, None));
    out.push(slot(&e.layer_norm.gamma, 3, None));
    let beta = e
        .layer_norm
        .beta
        .as_ref()
        .ok_or_else(|| missing("LayerNorm bias"))?;
    out.push(slot(beta, 4, None));
    let mut index = 5;
    for l in &m.encoder.transformer.layers {
        for (part, lin) in [&l.mha.query, &l.mha.key, &l.mha.value]
            .into_iter()
            .enumerate()
        {
            out.push(slot(&lin.weight, index, Some(part)));
            let b = lin.bias.as_ref().ok_or_else(|| missing("attention bias"))?;
            out.push(slot(b, index + 1, Some(part)));
        }
        index += 2;
        for lin in [&l.mha.output, &l.pwff.linear_inner, &l.pwff.linear_outer] {
            out.push(slot(&lin.weight, index, None));
            let b = lin.bias.as_ref().ok_or_else(|| missing("linear bias"))?;
            out.push(slot(b, index + 1, None));
            index += 2;
        }
        for n in [&l.norm_1, &l.norm_2] {
            out.push(slot(&n.gamma, index, None));
            let b = n.beta.as_ref().ok_or_else(|| missing("LayerNorm bias"))?;
            out.push(slot(b, index + 1, None));
            index += 2;
        }
    }
    let d = &m.head.dense;
    for lin in [&d.fc1, &d.fc2, &d.out] {
        out.push(slot(&lin.weight, index, None));
        let b = lin.bias.as_ref().ok_or_else(|| missing("linear bias"))?;
        out.push(slot(b, index + 1, None));
        index += 2;
    }
    Ok(out)
}

/// The burn-layout values of `slot` from its native tensor.
pub(crate) fn gather(native: &[f32], slot: &Slot) -> Vec<f32> {
    match slot.qkv {
        None => native.to_vec(),
        Some(part) => {
            let cols = *slot.dims.last().expect("a shape");
            let rows = slot.dims.iter().product::<usize>() / cols;
            let mut out = Vec::with_capacity(rows * cols);
            for r in 0..rows {
                out.extend_from_slice(&native[r * 3 * cols + part * cols..][..cols]);
            }
            out
        }
    }
}

/// Write burn-layout `values` of `slot` into its native tensor.
pub(crate) fn scatter(native: &mut [f32], slot: &Slot, values: &[f32]) {
    match slot.qkv {
        None => native.copy_from_slice(values),
        Some(part) => {
            let cols = *slot.dims.last().expect("a shape");
            for (r, row) in values.chunks_exact(cols).enumerate() {
                native[r * 3 * cols + part * cols..][..cols].copy_from_slice(row);
            }
        }
    }
}

/// Replaces parameters by id with new values (same shape), keeping ids and whether they
/// require gradients.
struct SetValues<'a, B: Backend> {
    values: HashMap<ParamId, Vec<f32>>,
    device: &'a B::Device,
}

impl<B: Backend> ModuleMapper<B> for SetValues<'_, B> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(v) = self.values.remove(&p.id) else {
            return p;
        };
        let device = self.device;
        p.map(|old| {
            let t = Tensor::<B, D>::from_data(TensorData::new(v, old.shape()), device);
            if old.is_require_grad() {
                t.require_grad()
            } else {
                t
            }
        })
    }
}

/// Write native weights (in `params_of` order) into the burn classifier.
pub(crate) fn write_weights<B: Backend>(
    model: Classifier<B>,
    slots: &[Slot],
    native: &[Vec<f32>],
    device: &B::Device,
) -> Classifier<B> {
    let values = slots
        .iter()
        .map(|s| (s.id, gather(&native[s.index], s)))
        .collect();
    set_values(model, values, device)
}

/// Replace parameters of any module by id with new values (same shapes).
pub(crate) fn set_values<B: Backend, M: Module<B>>(
    model: M,
    values: HashMap<ParamId, Vec<f32>>,
    device: &B::Device,
) -> M {
    model.map(&mut SetValues { values, device })
}

/// burn's AdamW record for the classifier (burn's own map type).
pub(crate) type Record<B> =
    <OptimizerAdaptor<BurnAdamW, Classifier<B>, B> as Optimizer<Classifier<B>, B>>::Record;

fn tensor<B: Backend, const D: usize>(
    v: Vec<f32>,
    dims: &[usize],
    device: &B::Device,
) -> Tensor<B, D> {
    let shape: [usize; D] = dims.try_into().expect("rank");
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn state_record<B: AutodiffBackend, const D: usize>(
    m: Vec<f32>,
    v: Vec<f32>,
    time: usize,
    dims: &[usize],
    device: &B::Device,
) -> AdaptorRecord<BurnAdamW, B> {
    AdaptorRecord::from_state::<D>(AdamWState {
        momentum: AdaptiveMomentumState {
            time,
            moment_1: tensor::<B::InnerBackend, D>(m, dims, device),
            moment_2: tensor::<B::InnerBackend, D>(v, dims, device),
            max_moment_2: None,
        },
    })
}

/// burn's AdamW record from the native moments (`m`, `v` per native tensor), for the
/// parameters that have been stepped (`frozen` ones have none, as in burn).
pub(crate) fn adam_record<B: AutodiffBackend>(
    slots: &[Slot],
    m: &[&[f32]],
    v: &[&[f32]],
    time: usize,
    skip: &dyn Fn(&Slot) -> bool,
    device: &B::Device,
) -> Record<B> {
    let mut rec = Record::<B>::default();
    if time == 0 {
        return rec;
    }
    for s in slots.iter().filter(|s| !skip(s)) {
        let (mv, vv) = (gather(m[s.index], s), gather(v[s.index], s));
        let r = match s.dims.len() {
            1 => state_record::<B, 1>(mv, vv, time, &s.dims, device),
            _ => state_record::<B, 2>(mv, vv, time, &s.dims, device),
        };
        rec.insert(s.id, r);
    }
    rec
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>, TrainError> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| TrainError::Weights(format!("optimizer state: {e:?}")))
}

/// The native moments and step count from burn's AdamW record (`None`: no step yet).
/// Every parameter must have the same step count, as when all train together.
#[allow(clippy::type_complexity)]
pub(crate) fn read_adam_record<B: AutodiffBackend>(
    slots: &[Slot],
    mut rec: Record<B>,
    m: &mut [&mut [f32]],
    v: &mut [&mut [f32]],
) -> Result<Option<usize>, TrainError> {
    let mut time = None;
    for s in slots {
        let Some(r) = rec.remove(&s.id) else {
            continue;
        };
        let (t, mv, vv) = match s.dims.len() {
            1 => {
                let st = r.into_state::<1>().momentum;
                (st.time, values(st.moment_1)?, values(st.moment_2)?)
            }
            _ => {
                let st = r.into_state::<2>().momentum;
                (st.time, values(st.moment_1)?, values(st.moment_2)?)
            }
        };
        if *time.get_or_insert(t) != t {
            return Err(TrainError::Weights(
                "optimizer state: parameters were stepped different numbers of times".into(),
            ));
        }
        scatter(m[s.index], s, &mv);
        scatter(v[s.index], s, &vv);
    }
    Ok(time)
}
