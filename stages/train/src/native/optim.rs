//! The three optimizers of SPEC §4 as one fused pass per parameter tensor, with burn's
//! arithmetic and PyTorch's constants (`training::with_optimizer` builds the same three on
//! burn): AdamW, SGD with momentum, RMSProp.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::step::{adamw, Hyper};
use crate::error::TrainError;
use crate::spec::OptimizerKind;
use crate::training::{ADAMW, RMSPROP_ALPHA, RMSPROP_EPSILON, SGD_MOMENTUM};

/// An optimizer's state over a list of parameter tensors (their order fixed by the caller).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FusedOptimizer {
    kind: OptimizerKind,
    /// Steps taken.
    time: i32,
    /// AdamW: first moments; SGD: velocities; RMSProp: running means of squares.
    first: Vec<Vec<f32>>,
    /// AdamW: second moments (empty otherwise).
    second: Vec<Vec<f32>>,
}

/// One step's constants.
#[derive(Clone, Copy)]
struct Step {
    kind: OptimizerKind,
    lr: f32,
    first_step: bool,
    adamw: Hyper,
}

impl Step {
    /// The update of one slice: parameters `p`, gradient `ga + gb` (`gb` may be empty),
    /// the optimizer's state `s1` and (AdamW) `s2`.
    fn apply(&self, p: &mut [f32], ga: &[f32], gb: &[f32], s1: &mut [f32], s2: &mut [f32]) {
        let sum = |k: usize| if gb.is_empty() { ga[k] } else { ga[k] + gb[k] };
        match self.kind {
            OptimizerKind::AdamW => adamw(p, ga, gb, s1, s2, self.adamw),
            OptimizerKind::SgdMomentum => {
                // burn: the first step's velocity is the gradient itself (dampening 0).
                for (i, (p, v)) in p.iter_mut().zip(s1.iter_mut()).enumerate() {
                    let g = sum(i);
                    *v = if self.first_step {
                        g
                    } else {
                        g + *v * SGD_MOMENTUM as f32
                    };
                    *p -= *v * self.lr;
                }
            }
            OptimizerKind::RmsProp => {
                let a = RMSPROP_ALPHA;
                for (i, (p, sq)) in p.iter_mut().zip(s1.iter_mut()).enumerate() {
                    let g = sum(i);
                    *sq = *sq * a + g * g * (1.0 - a);
                    *p -= g / (sq.sqrt() + RMSPROP_EPSILON) * self.lr;
                }
            }
        }
    }
}

/// Written first in a checkpoint's optimizer bytes, so a checkpoint of burn's trainer
/// (burn's record) is told apart.
const MAGIC: &[u8] = b"hhnas fused optimizer 1\n";

impl FusedOptimizer {
    pub fn new(kind: OptimizerKind, sizes: &[usize]) -> Self {
        let zeros = || sizes.iter().map(|&n| vec![0f32; n]).collect::<Vec<_>>();
        FusedOptimizer {
            kind,
            time: 0,
            first: zeros(),
            second: if kind == OptimizerKind::AdamW {
                zeros()
            } else {
                Vec::new()
            },
        }
    }

    /// One step of every parameter tensor with its gradient, the sum of two parts
    /// (`grads[k].1` may be empty). Element-wise, so the tensors are cut into chunks that
    /// run on rayon's threads with the same result on any number of them.
    pub fn step(&mut self, params: Vec<&mut [f32]>, grads: Vec<(&[f32], &[f32])>, lr: f64) {
        const CHUNK: usize = 1 << 14;
        self.time += 1;
        let step = Step {
            kind: self.kind,
            lr: lr as f32,
            first_step: self.time == 1,
            adamw: Hyper::new(ADAMW, lr, self.time),
        };
        let mut second = self.second.iter_mut();
        let mut work = Vec::new();
        for ((p, (ga, gb)), s1) in params.into_iter().zip(grads).zip(&mut self.first) {
            let s2: &mut [f32] = second.next().map_or(&mut [], |v| v.as_mut_slice());
            let n = p.len();
            let mut s2 = s2.chunks_mut(CHUNK);
            for (k, (p, s1)) in p.chunks_mut(CHUNK).zip(s1.chunks_mut(CHUNK)).enumerate() {
                let r = k * CHUNK..(k * CHUNK + CHUNK).min(n);
                let gb = if gb.is_empty() { gb } else { &gb[r.clone()] };
                work.push((p, &ga[r], gb, s1, s2.next().unwrap_or(&mut [])));
            }
        }
        work.into_par_iter()
            .for_each(|(p, ga, gb, s1, s2)| step.apply(p, ga, gb, s1, s2));
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, TrainError> {
        let mut out = MAGIC.to_vec();
        let body = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| TrainError::Weights(format!("cannot encode optimizer state: {e}")))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The state in a checkpoint's optimizer bytes; `None` when another trainer wrote them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Option<Self>, TrainError> {
        let Some(body) = bytes.strip_prefix(MAGIC) else {
            return Ok(None);
        };
        let (s, _): (FusedOptimizer, usize) =
            bincode::serde::decode_from_slice(body, bincode::config::standard())
                .map_err(|e| TrainError::Weights(format!("cannot decode optimizer state: {e}")))?;
        Ok(Some(s))
    }

    /// Whether this state belongs to `kind` over tensors of `sizes`.
    pub fn fits(&self, kind: OptimizerKind, sizes: &[usize]) -> bool {
        let lens = |v: &Vec<Vec<f32>>| v.iter().map(Vec::len).collect::<Vec<_>>();
        self.kind == kind
            && lens(&self.first) == sizes
            && (kind != OptimizerKind::AdamW || lens(&self.second) == sizes)
    }

    /// Whether `bytes` hold this optimizer's state (not a burn record).
    pub fn recognises(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }
}
