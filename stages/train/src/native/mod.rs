//! Our own CPU path for the BERT/RoBERTa encoder, used where burn is the limit, on
//! `device = "cpu"`: the encode stage's inference, and fine-tuning of the text-only
//! classifier with AdamW (`fit.rs`). The weights come from the burn
//! [`crate::model::TextEncoder`] (so loading and its checks stay in one place), and the
//! results match it and Hugging Face to 1e-4 (tests/native.rs). Batches run on rayon's
//! threads, one batch per thread, each single-threaded, so the output does not depend on
//! the thread count.

mod backward;
mod bridge;
mod dense;
mod encoder;
pub(crate) mod fit;
mod head;
pub(crate) mod head_fit;
pub(crate) mod kernels;
mod optim;
mod step;
#[cfg(test)]
mod tests;
mod train;

pub use encoder::NativeEncoder;
pub use kernels::Span;
pub use step::{AdamW, NativeTrainer};

use crate::error::TrainError;
use crate::vectors::Pooling;

impl NativeEncoder {
    /// One pooled vector per sequence, `[seqs, hidden]` row-major (not normalised).
    pub fn pooled(&self, seqs: &[&[u32]], pooling: Pooling) -> Result<Vec<f32>, TrainError> {
        let (hidden, spans) = self.forward(seqs)?;
        let h = self.hidden;
        let mut out = vec![0f32; seqs.len() * h];
        for (o, sp) in out.chunks_exact_mut(h).zip(&spans) {
            let rows = &hidden[sp.start * h..(sp.start + sp.len) * h];
            match pooling {
                Pooling::Cls => o.copy_from_slice(&rows[..h]),
                Pooling::Mean => {
                    for r in rows.chunks_exact(h) {
                        for (o, &v) in o.iter_mut().zip(r) {
                            *o += v;
                        }
                    }
                    let n = sp.len as f32;
                    for v in o.iter_mut() {
                        *v /= n;
                    }
                }
            }
        }
        Ok(out)
    }
}
