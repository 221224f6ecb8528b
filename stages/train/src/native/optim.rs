//! The three optimizers of SPEC §4 as one fused pass per parameter tensor, with burn's
//! arithmetic and PyTorch's constants (`training::with_optimizer` builds the same three on
//! burn): AdamW, SGD with momentum, RMSProp.

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
    /// (`grads[k].1` may be empty).
    pub fn step(&mut self, params: Vec<&mut [f32]>, grads: Vec<(&[f32], &[f32])>, lr: f64) {
        self.time += 1;
        let lr32 = lr as f32;
        let sum =
            |ga: &[f32], gb: &[f32], k: usize| if gb.is_empty() { ga[k] } else { ga[k] + gb[k] };
        for (k, (p, (ga, gb))) in params.into_iter().zip(grads).enumerate() {
            let s = &mut self.first[k];
            match self.kind {
                OptimizerKind::AdamW => {
                    let hp = Hyper::new(ADAMW, lr, self.time);
                    adamw(p, ga, gb, s, &mut self.second[k], hp);
                }
                OptimizerKind::SgdMomentum => {
                    // burn: the first step's velocity is the gradient itself (dampening 0).
                    let first = self.time == 1;
                    for (i, (p, v)) in p.iter_mut().zip(s.iter_mut()).enumerate() {
                        let g = sum(ga, gb, i);
                        *v = if first {
                            g
                        } else {
                            g + *v * SGD_MOMENTUM as f32
                        };
                        *p -= *v * lr32;
                    }
                }
                OptimizerKind::RmsProp => {
                    let a = RMSPROP_ALPHA;
                    for (i, (p, sq)) in p.iter_mut().zip(s.iter_mut()).enumerate() {
                        let g = sum(ga, gb, i);
                        *sq = *sq * a + g * g * (1.0 - a);
                        *p -= g / (sq.sqrt() + RMSPROP_EPSILON) * lr32;
                    }
                }
            }
        }
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
