//! One candidate's training, from its typed inputs to its outcome: the inputs prepared once,
//! then the loop that fits the candidate (burn's, or the native CPU path where it applies).

use burn::tensor::backend::AutodiffBackend;

use crate::backend::{dispatch, BackendTask, Device};
use crate::encoder::EncoderAssets;
use crate::error::TrainError;
use crate::evidence::EvidenceHead;
use crate::model::{Classifier, Head, HeadKind};
use crate::prepare::prepare;
use crate::spec::{Checkpoint, EpochReport, ModelSpec, TrainConfig, TrainData, TrainOutcome};
use crate::training::{with_optimizer, TrainTask};

/// A candidate's training and whether it runs on the native CPU path.
struct CandidateTask<'a, 'b> {
    task: TrainTask<'a, 'b>,
    native: bool,
}

/// Whether a candidate trains on the native CPU path: where the device asks for it and the
/// candidate is one that path trains; a frozen head's checkpoint continues on the trainer
/// that wrote it (so a candidate interrupted under an earlier release, or on another
/// device, ends as it began).
fn trains_natively(
    device: Device,
    prep: &crate::prepare::Prepared,
    spec: &ModelSpec,
    resume: Option<&Checkpoint>,
) -> bool {
    use crate::native::{fit, head_fit};
    if prep.sources.embeddings.is_some() {
        let written_natively = resume.map(head_fit::wrote);
        head_fit::eligible(prep) && written_natively.unwrap_or(device.native_cpu())
    } else {
        device.native_cpu() && fit::eligible(prep, spec)
    }
}

impl BackendTask for CandidateTask<'_, '_> {
    type Out = Result<TrainOutcome, TrainError>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Out {
        let task = self.task;
        if task.prep.sources.embeddings.is_some() && self.native {
            crate::native::head_fit::train::<B>(task, device)
        } else if task.prep.sources.embeddings.is_some() {
            match task.prep.shape.head {
                HeadKind::Dense => with_optimizer::<B, Head<B>>(task, device),
                HeadKind::Evidence => with_optimizer::<B, EvidenceHead<B>>(task, device),
            }
        } else if self.native {
            crate::native::fit::train::<B>(task, device)
        } else {
            with_optimizer::<B, Classifier<B>>(task, device)
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
    device: Device,
    resume: Option<Checkpoint>,
    on_epoch: &mut dyn FnMut(&Checkpoint, &EpochReport),
) -> Result<TrainOutcome, TrainError> {
    let prep = prepare(data, encoder, spec, cfg, device)?;
    let native = trains_natively(device, &prep, spec, resume.as_ref());
    let task = TrainTask {
        prep: &prep,
        assets: encoder,
        spec,
        cfg,
        resume,
        on_epoch,
    };
    dispatch(device, CandidateTask { task, native })?
}
