//! One candidate's training, from its typed inputs to its outcome: the inputs prepared once,
//! then the loop that fits the candidate (burn's, or the native CPU path where it applies).

use burn::tensor::backend::AutodiffBackend;

use crate::backend::{dispatch, BackendTask};
use crate::encoder::EncoderAssets;
use crate::error::TrainError;
use crate::evidence::EvidenceHead;
use crate::model::{Classifier, Head, HeadKind};
use crate::prepare::prepare;
use crate::spec::{Checkpoint, EpochReport, ModelSpec, TrainConfig, TrainData, TrainOutcome};
use crate::training::{with_optimizer, TrainTask};

impl BackendTask for TrainTask<'_, '_> {
    type Out = Result<TrainOutcome, TrainError>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Out {
        if self.prep.sources.embeddings.is_some() {
            match self.prep.shape.head {
                HeadKind::Dense => with_optimizer::<B, Head<B>>(self, device),
                HeadKind::Evidence => with_optimizer::<B, EvidenceHead<B>>(self, device),
            }
        } else if crate::native::fit::eligible(self.prep, self.spec, self.cfg) {
            crate::native::fit::train::<B>(self, device)
        } else {
            with_optimizer::<B, Classifier<B>>(self, device)
        }
    }
}

/// Train one candidate. `on_epoch` receives a checkpoint after every epoch; pass it back as
/// `resume` to continue an interrupted run (same result as an uninterrupted run on CPU).
/// With `data.embeddings` only the head trains, over the frozen encoder's vectors.
pub fn train_candidate(
    data: TrainData,
    encoder: &EncoderAssets,
    spec: &ModelSpec,
    cfg: &TrainConfig,
    resume: Option<Checkpoint>,
    on_epoch: &mut dyn FnMut(&Checkpoint, &EpochReport),
) -> Result<TrainOutcome, TrainError> {
    let prep = prepare(data, encoder, spec, cfg)?;
    dispatch(
        &cfg.device,
        TrainTask {
            prep: &prep,
            assets: encoder,
            spec,
            cfg,
            resume,
            on_epoch,
        },
    )?
}
