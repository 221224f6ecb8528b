//! The training loop: one candidate, epoch by epoch, with a checkpoint after each.

use burn::module::{AutodiffModule, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{
    momentum::MomentumConfig, AdamWConfig, GradientsParams, Optimizer, RmsPropConfig, SgdConfig,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};

use crate::data::{
    derive_seed, eval_batches, make_batch, Batch, Examples, HideLexical, ModelInput, Sources,
    P_EPOCH, P_INIT,
};
use crate::encoder::EncoderAssets;
use crate::epochs::{fit, Fitter, Pass};
use crate::error::TrainError;
use crate::evidence::EvidenceHead;
use crate::model::{Classifier, ClassifierShape, Head};
use crate::prepare::Prepared;
use crate::spec::{Checkpoint, EpochReport, ModelSpec, OptimizerKind, TrainConfig, TrainOutcome};
use crate::weights::{decode_record, encode_record, load_record, record_bytes, Renumber};

/// A trainable model: the encoder and head together ([`Classifier`]), or the head alone
/// over a frozen encoder's vectors ([`Head`]).
pub(crate) trait Net<B: Backend>: Module<B> + Sized {
    /// Seeded initialisation (plus the pretrained encoder, if any and asked for).
    fn init(
        assets: &EncoderAssets,
        shape: &ClassifierShape,
        device: &B::Device,
        pretrained: bool,
    ) -> Result<Self, TrainError>;

    /// What stays fixed while training.
    fn freeze(self, _assets: &EncoderAssets) -> Self {
        self
    }

    fn logits(&self, batch: Batch<B>) -> Tensor<B, 2>;
}

impl<B: Backend> Net<B> for Classifier<B> {
    fn init(
        assets: &EncoderAssets,
        shape: &ClassifierShape,
        device: &B::Device,
        pretrained: bool,
    ) -> Result<Self, TrainError> {
        let mut model = Classifier::<B>::new(&assets.arch, shape, device);
        if pretrained {
            if let Some(w) = &assets.weights {
                crate::hf::load_encoder_weights(&mut model.encoder, w)?;
            }
        }
        Ok(model)
    }

    fn freeze(mut self, assets: &EncoderAssets) -> Self {
        if assets.freeze_embeddings {
            self.encoder.embeddings.word_embeddings =
                self.encoder.embeddings.word_embeddings.no_grad();
        }
        self
    }

    fn logits(&self, b: Batch<B>) -> Tensor<B, 2> {
        match b.input {
            ModelInput::Tokens { ids, mask_pad } => self.forward(ids, mask_pad, b.llm, b.rules),
            _ => unreachable!("a fine-tuned model is fed tokens"),
        }
    }
}

impl<B: Backend> Net<B> for EvidenceHead<B> {
    fn init(
        assets: &EncoderAssets,
        shape: &ClassifierShape,
        device: &B::Device,
        _pretrained: bool,
    ) -> Result<Self, TrainError> {
        Ok(EvidenceHead::new(assets.arch.hidden, shape, device))
    }

    fn logits(&self, b: Batch<B>) -> Tensor<B, 2> {
        match b.input {
            ModelInput::Evidence { vectors, blocks } => {
                self.forward_split(vectors, blocks, b.llm, b.rules)
            }
            input => self.forward(frozen_vectors(input), b.llm, b.rules),
        }
    }
}

/// The vectors a frozen-encoder head is fed.
fn frozen_vectors<B: Backend>(input: ModelInput<B>) -> Tensor<B, 2> {
    match input {
        ModelInput::Vectors(v) => v,
        _ => unreachable!("a frozen-encoder head is fed whole vectors"),
    }
}

impl<B: Backend> Net<B> for Head<B> {
    fn init(
        assets: &EncoderAssets,
        shape: &ClassifierShape,
        device: &B::Device,
        _pretrained: bool,
    ) -> Result<Self, TrainError> {
        Ok(Head::new(
            assets.arch.hidden + shape.extra_inputs,
            shape,
            device,
        ))
    }

    fn logits(&self, b: Batch<B>) -> Tensor<B, 2> {
        self.forward(frozen_vectors(b.input), b.llm, b.rules)
    }
}

/// Seeded construction with parameter ids 1, 2, 3, ... (see [`Renumber`]).
pub(crate) fn build<B: Backend, M: Net<B>>(
    assets: &EncoderAssets,
    shape: &ClassifierShape,
    seed: u64,
    device: &B::Device,
    pretrained: bool,
) -> Result<M, TrainError> {
    B::seed(device, derive_seed(seed, P_INIT, 0));
    Ok(M::init(assets, shape, device, pretrained)?.map(&mut Renumber(0)))
}

pub(crate) fn predict_argmax<B: Backend, M: Net<B>>(
    model: &M,
    ex: &Examples,
    src: &Sources,
    device: &B::Device,
) -> Vec<u32> {
    let mut pred = vec![0u32; ex.len()];
    for idx in eval_batches(ex) {
        let logits = model.logits(make_batch::<B>(ex, &idx, src, None, device));
        let am: Vec<i64> = logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .into_vec()
            .expect("argmax gives integers");
        for (&i, &p) in idx.iter().zip(&am) {
            pred[i] = p as u32;
        }
    }
    pred
}

pub(crate) fn accuracy<B: Backend, M: Net<B>>(
    model: &M,
    ex: &Examples,
    src: &Sources,
    device: &B::Device,
) -> f64 {
    if ex.len() == 0 {
        return 0.0;
    }
    let pred = predict_argmax(model, ex, src, device);
    let ok = pred.iter().zip(&ex.labels).filter(|(p, l)| p == l).count();
    ok as f64 / ex.len() as f64
}

pub(crate) struct TrainTask<'a, 'b> {
    pub prep: &'b Prepared<'a>,
    pub assets: &'b EncoderAssets,
    pub spec: &'b ModelSpec,
    pub cfg: &'b TrainConfig,
    pub resume: Option<Checkpoint>,
    pub on_epoch: &'b mut dyn FnMut(&Checkpoint, &EpochReport),
}

/// AdamW as SPEC §4 asks (PyTorch's defaults: betas 0.9 / 0.999, eps 1e-8, weight decay
/// 0.01); the native path uses the same numbers ([`crate::native::AdamW`]).
pub(crate) fn adamw_config() -> AdamWConfig {
    let n = ADAMW;
    AdamWConfig::new()
        .with_beta_1(n.beta_1)
        .with_beta_2(n.beta_2)
        .with_epsilon(n.epsilon)
        .with_weight_decay(n.weight_decay)
}

pub(crate) const ADAMW: crate::native::AdamW = crate::native::AdamW {
    beta_1: 0.9,
    beta_2: 0.999,
    epsilon: 1e-8,
    weight_decay: 0.01,
};

/// SGD's momentum (dampening 0, no Nesterov), as PyTorch's SGD with `momentum=0.9`.
pub(crate) const SGD_MOMENTUM: f64 = 0.9;
/// RMSProp's smoothing constant and epsilon (PyTorch's defaults; no momentum, not centred).
pub(crate) const RMSPROP_ALPHA: f32 = 0.99;
pub(crate) const RMSPROP_EPSILON: f32 = 1e-8;

/// SPEC §4: criterion_num 0/1/2, each with PyTorch's default constants.
pub(crate) fn with_optimizer<B, M>(
    task: TrainTask,
    device: B::Device,
) -> Result<TrainOutcome, TrainError>
where
    B: AutodiffBackend,
    M: Net<B> + AutodiffModule<B>,
    M::InnerModule: Net<B::InnerBackend>,
{
    match task.spec.optimizer {
        OptimizerKind::AdamW => {
            let o = adamw_config().init::<B, M>();
            train_loop(task, device, o)
        }
        OptimizerKind::SgdMomentum => {
            let o = SgdConfig::new()
                .with_momentum(Some(
                    MomentumConfig::new()
                        .with_momentum(SGD_MOMENTUM)
                        .with_dampening(0.0),
                ))
                .init::<B, M>();
            train_loop(task, device, o)
        }
        OptimizerKind::RmsProp => {
            let o = RmsPropConfig::new()
                .with_alpha(RMSPROP_ALPHA)
                .with_momentum(0.0)
                .with_epsilon(RMSPROP_EPSILON)
                .init::<B, M>();
            train_loop(task, device, o)
        }
    }
}

/// The loop's state between epochs; converts to and from [`Checkpoint`].
pub(crate) struct EpochState {
    pub epoch: usize,
    pub curve: Vec<EpochReport>,
    pub best_epoch: usize,
    pub best_acc: f64,
    pub best_weights: Vec<u8>,
    pub since_best: usize,
    pub stopped_early: bool,
}

impl EpochState {
    pub fn fresh() -> Self {
        EpochState {
            epoch: 0,
            curve: Vec::new(),
            best_epoch: 0,
            best_acc: -1.0,
            best_weights: Vec::new(),
            since_best: 0,
            stopped_early: false,
        }
    }

    pub fn from_checkpoint(ck: Checkpoint) -> Self {
        EpochState {
            epoch: ck.epoch,
            curve: ck.curve,
            best_epoch: ck.best_epoch,
            best_acc: ck.best_valid_acc,
            best_weights: ck.best_weights,
            since_best: ck.since_best,
            stopped_early: ck.stopped_early,
        }
    }

    pub fn checkpoint(
        &self,
        fingerprint: &str,
        seed: u64,
        model: Vec<u8>,
        optimizer: Vec<u8>,
    ) -> Checkpoint {
        Checkpoint {
            fingerprint: fingerprint.to_string(),
            epoch: self.epoch,
            model,
            optimizer,
            seed,
            curve: self.curve.clone(),
            best_epoch: self.best_epoch,
            best_valid_acc: self.best_acc,
            best_weights: self.best_weights.clone(),
            since_best: self.since_best,
            stopped_early: self.stopped_early,
        }
    }
}

/// burn's trainer: the model with its optimizer, for the shared epoch loop.
struct BurnFitter<'p, 'a, B: AutodiffBackend, M, O> {
    /// Always `Some` between calls (a step takes the model by value).
    model: Option<M>,
    optim: O,
    prep: &'p Prepared<'a>,
    learning_rate: f64,
    seed: u64,
    device: B::Device,
}

impl<B, M, O> Fitter for BurnFitter<'_, '_, B, M, O>
where
    B: AutodiffBackend,
    M: Net<B> + AutodiffModule<B>,
    M::InnerModule: Net<B::InnerBackend>,
    O: Optimizer<M, B>,
{
    fn train_epoch(&mut self, batches: &[Vec<usize>], epoch: usize) -> Result<Pass, TrainError> {
        B::seed(&self.device, derive_seed(self.seed, P_EPOCH, epoch as u64));
        let model = self.model.take().expect("the model is present");
        let hide = HideLexical::for_epoch(self.prep.lexical_dropout, self.seed, epoch);
        let (model, pass) = train_epoch(
            model,
            &mut self.optim,
            self.prep,
            batches,
            hide,
            self.learning_rate,
            &self.device,
        );
        self.model = Some(model);
        Ok(pass)
    }

    fn valid_accuracy(&mut self) -> Result<f64, TrainError> {
        let inner = self.model().valid();
        Ok(accuracy(
            &inner,
            &self.prep.valid,
            &self.prep.sources,
            &self.device,
        ))
    }

    fn weights(&mut self) -> Result<Vec<u8>, TrainError> {
        record_bytes(&self.model().valid())
    }

    fn checkpoint(&mut self) -> Result<(Vec<u8>, Vec<u8>), TrainError> {
        Ok((
            record_bytes(self.model())?,
            encode_record::<B, _>(self.optim.to_record())?,
        ))
    }

    fn test_accuracy(&mut self, record: &[u8]) -> Result<f64, TrainError> {
        let inner = load_record(self.model().valid(), record, &self.device)?;
        Ok(accuracy(
            &inner,
            &self.prep.test,
            &self.prep.sources,
            &self.device,
        ))
    }
}

impl<B: AutodiffBackend, M, O> BurnFitter<'_, '_, B, M, O> {
    fn model(&self) -> &M {
        self.model.as_ref().expect("the model is present")
    }
}

/// burn's trainer over the shared epoch loop ([`crate::epochs::fit`]), from a checkpoint
/// if one is given.
fn train_loop<B, M, O>(
    task: TrainTask,
    device: B::Device,
    mut optim: O,
) -> Result<TrainOutcome, TrainError>
where
    B: AutodiffBackend,
    M: Net<B> + AutodiffModule<B>,
    M::InnerModule: Net<B::InnerBackend>,
    O: Optimizer<M, B>,
{
    let TrainTask {
        prep,
        assets,
        spec,
        cfg,
        resume,
        on_epoch,
    } = task;
    let (model, st, optimizer) = start::<B, M>(prep, assets, cfg.seed, resume, &device)?;
    if let Some(bytes) = optimizer {
        optim = optim.load_record(decode_record::<B, O::Record>(&bytes, &device)?);
    }
    let mut fitter = BurnFitter {
        model: Some(model.freeze(assets)),
        optim,
        prep,
        learning_rate: spec.learning_rate,
        seed: cfg.seed,
        device,
    };
    fit(&mut fitter, st, prep, assets, spec, cfg, on_epoch)
}

/// Where every trainer starts: burn's seeded model, with the checkpoint's weights when
/// resuming (only the candidate and config that wrote it), the loop state, and the
/// checkpoint's optimizer bytes (each trainer reads its own).
pub(crate) fn start<B: Backend, M: Net<B>>(
    prep: &Prepared,
    assets: &EncoderAssets,
    seed: u64,
    resume: Option<Checkpoint>,
    device: &B::Device,
) -> Result<(M, EpochState, Option<Vec<u8>>), TrainError> {
    let model: M = build(assets, &prep.shape, seed, device, resume.is_none())?;
    let Some(ck) = resume else {
        return Ok((model, EpochState::fresh(), None));
    };
    if ck.fingerprint != prep.fingerprint {
        return Err(TrainError::Weights(
            "the checkpoint belongs to a different candidate/config (fingerprint mismatch): discard it and train from scratch".into(),
        ));
    }
    let model = load_record(model, &ck.model, device)?;
    let optimizer = ck.optimizer.clone();
    Ok((model, EpochState::from_checkpoint(ck), Some(optimizer)))
}

/// One pass over the training batches: the loss summed over rows and the row count, or
/// the first loss that is not finite (SPEC §6: the epoch ends there).
fn train_epoch<B, M, O>(
    mut model: M,
    optim: &mut O,
    prep: &Prepared,
    batches: &[Vec<usize>],
    hide: Option<HideLexical>,
    learning_rate: f64,
    device: &B::Device,
) -> (M, Pass)
where
    B: AutodiffBackend,
    M: Net<B> + AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut loss_sum = 0.0;
    let mut n = 0usize;
    for idx in batches {
        let b = make_batch::<B>(&prep.train, idx, &prep.sources, hide, device);
        let labels = b.labels.clone();
        let loss = loss_fn.forward(model.logits(b), labels);
        let lv: f64 = loss.clone().into_scalar().elem();
        if !lv.is_finite() {
            return (model, Err(lv));
        }
        loss_sum += lv * idx.len() as f64;
        n += idx.len();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(learning_rate, model, grads);
    }
    (model, Ok((loss_sum, n)))
}
