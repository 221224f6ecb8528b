//! `train_candidate` on the native path: device `"cpu"`, the text-only classifier (no
//! feature branches), AdamW, over the shared epoch loop (`crate::epochs`): the weights and AdamW's moments are written back
//! into burn's classifier and optimizer record at every epoch's end, so checkpoints and
//! best weights are burn records either path can load. What differs from `"cpu:flex"`:
//! the dropout masks (a counter-based hash instead of burn's generator) and the last bits
//! of every sum, so the two give close but not equal results; each is deterministic.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW as BurnAdamW, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use rayon::prelude::*;

use super::bridge::{adam_record, read_adam_record, slots, write_weights, Record, Slot};
use super::NativeTrainer;
use crate::data::{derive_seed, eval_batches, Examples, P_EPOCH};
use crate::epochs::{fit, Fitter, Pass};
use crate::error::TrainError;
use crate::model::Classifier;
use crate::prepare::Prepared;
use crate::spec::{ModelSpec, OptimizerKind, TrainOutcome};
use crate::training::{adamw_config, start, Net, TrainTask, ADAMW};
use crate::weights::{decode_record, encode_record, load_record, record_bytes};

/// Whether a candidate can train on the native path (on a device that asks for it).
pub(crate) fn eligible(prep: &Prepared, spec: &ModelSpec) -> bool {
    prep.sources.embeddings.is_none()
        && !prep.shape.llm
        && !prep.shape.rules
        && spec.optimizer == OptimizerKind::AdamW
}

/// Accuracy of `native` on `ex` (batches of similar length on rayon's threads).
fn accuracy(native: &NativeTrainer, ex: &Examples) -> Result<f64, TrainError> {
    if ex.len() == 0 {
        return Ok(0.0);
    }
    let batches = eval_batches(ex);
    let preds = batches
        .par_iter()
        .map(|idx| {
            let seqs: Vec<&[u32]> = idx.iter().map(|&i| ex.tokens[i].as_slice()).collect();
            native.predict(&seqs)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ok = batches
        .iter()
        .zip(&preds)
        .flat_map(|(idx, p)| idx.iter().zip(p))
        .filter(|(&i, &p)| ex.labels[i] == p)
        .count();
    Ok(ok as f64 / ex.len() as f64)
}

/// The text-only classifier on the native path, for the shared epoch loop: burn's
/// classifier and optimizer hold the records a checkpoint writes.
struct EncoderFitter<'p, 'a, B: AutodiffBackend> {
    model: Option<Classifier<B>>,
    optim: OptimizerAdaptor<BurnAdamW, Classifier<B>, B>,
    native: NativeTrainer,
    slots: Vec<Slot>,
    prep: &'p Prepared<'a>,
    assets: &'p crate::encoder::EncoderAssets,
    learning_rate: f64,
    seed: u64,
    device: B::Device,
}

impl<B: AutodiffBackend> EncoderFitter<'_, '_, B> {
    /// burn's classifier with the native weights written in.
    fn synced(&mut self) -> &Classifier<B> {
        let model = self.model.take().expect("the model is present");
        let model = write_weights(
            model,
            &self.slots,
            &self.native.weight_copies(),
            &self.device,
        );
        self.model.insert(model)
    }
}

impl<B: AutodiffBackend> Fitter for EncoderFitter<'_, '_, B> {
    fn train_epoch(&mut self, batches: &[Vec<usize>], epoch: usize) -> Result<Pass, TrainError> {
        let epoch_seed = derive_seed(self.seed, P_EPOCH, epoch as u64);
        let (mut loss_sum, mut n) = (0.0, 0usize);
        let ex = &self.prep.train;
        for (k, idx) in batches.iter().enumerate() {
            let seqs: Vec<&[u32]> = idx.iter().map(|&i| ex.tokens[i].as_slice()).collect();
            let labels: Vec<u32> = idx.iter().map(|&i| ex.labels[i]).collect();
            let seed = derive_seed(epoch_seed, P_EPOCH, k as u64);
            let lv = self.native.step(&seqs, &labels, self.learning_rate, seed)?;
            if !lv.is_finite() {
                return Ok(Err(lv));
            }
            loss_sum += lv * idx.len() as f64;
            n += idx.len();
        }
        Ok(Ok((loss_sum, n)))
    }

    fn valid_accuracy(&mut self) -> Result<f64, TrainError> {
        accuracy(&self.native, &self.prep.valid)
    }

    fn weights(&mut self) -> Result<Vec<u8>, TrainError> {
        record_bytes(&self.synced().valid())
    }

    fn checkpoint(&mut self) -> Result<(Vec<u8>, Vec<u8>), TrainError> {
        let model = record_bytes(self.synced())?;
        let frozen = self.native.word_frozen();
        let time = self.native.time();
        let (m, v) = self.native.moments_mut();
        let (m, v): (Vec<&[f32]>, Vec<&[f32]>) = (
            m.into_iter().map(|x| &*x).collect(),
            v.into_iter().map(|x| &*x).collect(),
        );
        let rec = adam_record::<B>(
            &self.slots,
            &m,
            &v,
            time,
            &|s| frozen && s.index == 0,
            &self.device,
        );
        let optim = std::mem::replace(&mut self.optim, adamw_config().init());
        self.optim = optim.load_record(rec);
        Ok((model, encode_record::<B, _>(self.optim.to_record())?))
    }

    fn test_accuracy(&mut self, record: &[u8]) -> Result<f64, TrainError> {
        let model = self.model.as_ref().expect("the model is present").valid();
        let best = load_record(model, record, &self.device)?;
        let best = NativeTrainer::from_classifier(&best, &self.assets.arch, 0.0, ADAMW)?;
        accuracy(&best, &self.prep.test)
    }
}

/// The text-only classifier's training on the native path, with burn's checkpoint format.
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
        start::<B, Classifier<B>>(prep, assets, cfg.seed, resume, &device)?;
    let resumed = match optimizer {
        Some(bytes) => Some(decode_record::<B, Record<B>>(&bytes, &device)?),
        None => None,
    };
    let model = model.freeze(assets);
    let slots = slots(&model)?;
    let mut native = NativeTrainer::from_classifier(&model, &assets.arch, spec.dropout, ADAMW)?;
    native.freeze_word(assets.freeze_embeddings);
    if let Some(rec) = resumed {
        let (mut m, mut v) = native.moments_mut();
        if let Some(t) = read_adam_record::<B>(&slots, rec, &mut m, &mut v)? {
            native.set_time(t);
        }
    }
    let mut fitter = EncoderFitter {
        model: Some(model),
        optim: adamw_config().init::<B, Classifier<B>>(),
        native,
        slots,
        prep,
        assets,
        learning_rate: spec.learning_rate,
        seed: cfg.seed,
        device,
    };
    fit(&mut fitter, st, prep, assets, spec, cfg, on_epoch)
}
