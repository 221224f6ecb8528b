//! The epoch loop every trainer shares (burn's, the native encoder's, the native head's):
//! train, validate, keep the best epoch, checkpoint, stop on patience or divergence. One
//! loop, so every trainer checkpoints and stops alike; what differs is behind [`Fitter`].

use std::time::Instant;

use crate::data::epoch_batches;
use crate::encoder::EncoderAssets;
use crate::error::TrainError;
use crate::prepare::Prepared;
use crate::spec::{Checkpoint, EpochReport, KeepEpoch, ModelSpec, TrainConfig, TrainOutcome};
use crate::training::EpochState;
use crate::weights::{header_of, pack_weights, unpack_weights};

/// One pass over an epoch's batches: the loss summed over rows and the row count, or the
/// first loss that is not finite (SPEC §6: the epoch ends there).
pub(crate) type Pass = Result<(f64, usize), f64>;

/// What the loop asks of a trainer.
pub(crate) trait Fitter {
    /// Train on `batches` (indices into the training examples) for epoch `epoch`.
    fn train_epoch(&mut self, batches: &[Vec<usize>], epoch: usize) -> Result<Pass, TrainError>;

    /// Accuracy on the validation examples, without dropout.
    fn valid_accuracy(&mut self) -> Result<f64, TrainError>;

    /// The model's record as best weights store it (burn's record of the model).
    fn weights(&mut self) -> Result<Vec<u8>, TrainError>;

    /// The model's and the optimizer's records as a checkpoint stores them.
    fn checkpoint(&mut self) -> Result<(Vec<u8>, Vec<u8>), TrainError>;

    /// Test accuracy of a model record written by [`Fitter::weights`].
    fn test_accuracy(&mut self, record: &[u8]) -> Result<f64, TrainError>;
}

/// Run epochs from `st` until `cfg.epochs`, early stopping or divergence, calling
/// `on_epoch` with a checkpoint after each; then score the best epoch on the test split.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit(
    fitter: &mut dyn Fitter,
    mut st: EpochState,
    prep: &Prepared,
    assets: &EncoderAssets,
    spec: &ModelSpec,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&Checkpoint, &EpochReport),
) -> Result<TrainOutcome, TrainError> {
    let frozen = prep.sources.embeddings.map(|e| e.identity());
    let header = header_of(&prep.shape, assets, frozen);
    let mut train_secs = 0.0;
    let mut train_examples = 0usize;
    let mut diverged = None;
    while st.epoch < cfg.epochs && !st.stopped_early {
        let t0 = Instant::now();
        let batches = epoch_batches(
            &prep.train,
            cfg.batch_size,
            cfg.sort_by_length,
            cfg.seed,
            st.epoch,
        );
        let (loss_sum, n) = match fitter.train_epoch(&batches, st.epoch)? {
            Ok(sums) => sums,
            Err(lv) => {
                // SPEC §6: the epoch ends here; the best finite epoch so far still counts.
                diverged = Some(lv);
                st.curve.push(EpochReport {
                    epoch: st.epoch + 1,
                    train_loss: lv,
                    valid_acc: 0.0,
                    secs: t0.elapsed().as_secs_f64(),
                });
                break;
            }
        };
        train_secs += t0.elapsed().as_secs_f64();
        train_examples += n;
        let acc = fitter.valid_accuracy()?;
        st.epoch += 1;
        if acc > st.best_acc || cfg.keep == KeepEpoch::Last {
            st.best_acc = acc;
            st.best_epoch = st.epoch;
            st.best_weights = pack_weights(&header, &fitter.weights()?);
            st.since_best = 0;
        } else {
            st.since_best += 1;
        }
        if let Some(p) = cfg.patience {
            if st.since_best >= p && st.epoch < cfg.epochs {
                st.stopped_early = true;
            }
        }
        let report = EpochReport {
            epoch: st.epoch,
            train_loss: if n > 0 { loss_sum / n as f64 } else { 0.0 },
            valid_acc: acc,
            secs: t0.elapsed().as_secs_f64(),
        };
        tracing::debug!(
            epoch = st.epoch,
            loss = report.train_loss,
            valid_acc = acc,
            secs = report.secs,
            "epoch"
        );
        st.curve.push(report.clone());
        let (model, optimizer) = fitter.checkpoint()?;
        let ck = st.checkpoint(&prep.fingerprint, cfg.seed, model, optimizer);
        on_epoch(&ck, &report);
    }
    let examples_per_sec = if train_secs > 0.0 {
        train_examples as f64 / train_secs
    } else {
        0.0
    };
    if st.best_weights.is_empty() {
        let failure = diverged.map(|lv| {
            format!(
                "loss became {lv} in epoch {} (learning rate {}) before any epoch finished: diverged",
                st.epoch + 1,
                spec.learning_rate
            )
        });
        return Ok(TrainOutcome {
            curve: st.curve,
            best_epoch: 0,
            best_valid_acc: 0.0,
            test_acc: 0.0,
            stopped_early: st.stopped_early,
            failed: Some(failure.unwrap_or_else(|| "no epoch finished".to_string())),
            best_weights: Vec::new(),
            examples_per_sec,
        });
    }
    let (_, rec) = unpack_weights(&st.best_weights)?;
    let test_acc = fitter.test_accuracy(rec)?;
    Ok(TrainOutcome {
        curve: st.curve,
        best_epoch: st.best_epoch,
        best_valid_acc: st.best_acc.max(0.0),
        test_acc,
        stopped_early: st.stopped_early,
        failed: None,
        best_weights: st.best_weights,
        examples_per_sec,
    })
}
