//! Training loop, checkpoints, evaluation and prediction.

use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleMapper, Param, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{
    momentum::MomentumConfig, AdamWConfig, GradientsParams, Optimizer, RmsPropConfig, SgdConfig,
};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, ElementConversion, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::{dispatch, parse_device, BackendTask};
use crate::encoder::{tokenize, EncoderAssets};
use crate::error::TrainError;
use crate::input::{Dataset, FeatureMatrix};
use crate::model::{BranchInput, BranchPool, Classifier, ClassifierShape};

/// Optimizer chosen by `criterion_num`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// criterion_num 0: AdamW (burn defaults: betas 0.9/0.999, eps 1e-5, weight decay 1e-4).
    AdamW,
    /// criterion_num 1: SGD with momentum 0.9 (dampening 0, as PyTorch).
    SgdMomentum,
    /// criterion_num 2: RMSProp (alpha 0.99, eps 1e-8, no momentum, as PyTorch).
    RmsProp,
}

impl OptimizerKind {
    /// Map SPEC §4 `criterion_num` (0, 1, 2).
    pub fn from_criterion_num(n: u32) -> Result<Self, TrainError> {
        match n {
            0 => Ok(Self::AdamW),
            1 => Ok(Self::SgdMomentum),
            2 => Ok(Self::RmsProp),
            _ => Err(TrainError::Config {
                field: "criterion_num",
                value: n.to_string(),
                fix: "use 0 (AdamW), 1 (SGD momentum 0.9) or 2 (RMSProp)".into(),
            }),
        }
    }
}

/// One candidate's architecture and micro parameters (SPEC §3, §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub llm_branch: bool,
    pub rule_branch: bool,
    pub learning_rate: f64,
    pub optimizer: OptimizerKind,
    pub layer_size1: usize,
    pub layer_size2: usize,
    pub dropout: f64,
    pub kernel_size: usize,
}

impl ModelSpec {
    /// The paper's model number: 1 encoder alone, 2 + LLM-feature CNN, 3 + rule-feature
    /// CNN, 4 both (the same numbering as `hhnas_search::Candidate::model_number`).
    pub fn model_number(&self) -> u8 {
        2 * u8::from(self.rule_branch) + u8::from(self.llm_branch) + 1
    }
}

/// `[train]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// "cpu", "cpu:ndarray", "cpu:flex" or "cuda:N".
    pub device: String,
    /// Stop after this many epochs without a new best validation accuracy.
    pub patience: Option<usize>,
    /// Use at most this many training rows (a seeded subsample), for demos.
    pub max_train_rows: Option<usize>,
    /// Group rows of similar length into batches (less padding, faster).
    pub sort_by_length: bool,
    /// Output channels of each CNN feature branch.
    pub cnn_channels: usize,
    /// Pooling of the CNN branches. Left out of the serialized form when it is the SPEC
    /// default, so cache keys of existing runs do not change.
    #[serde(default, skip_serializing_if = "BranchPool::is_global_max")]
    pub branch_pool: BranchPool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 16,
            seed: 0,
            device: "cpu".into(),
            patience: None,
            max_train_rows: None,
            sort_by_length: true,
            cnn_channels: 32,
            branch_pool: BranchPool::GlobalMax,
        }
    }
}

/// Typed inputs of one training run. Feature matrices have one row per dataset row.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    pub dataset: &'a Dataset,
    pub llm_features: Option<&'a FeatureMatrix>,
    pub rule_features: Option<&'a FeatureMatrix>,
    /// The class each rule-feature column is evidence for (`RuleSet` order); needed by
    /// [`BranchPool::PerClass`]. LLM-feature columns are the classes themselves.
    pub rule_classes: Option<&'a [u32]>,
}

/// One epoch of the learning curve (epochs count from 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_acc: f64,
    pub secs: f64,
}

/// Training state after a completed epoch; enough to continue bit for bit (CPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// blake3 of the inputs that must not change on resume (spec, seed, batching, encoder).
    pub fingerprint: String,
    /// Completed epochs.
    pub epoch: usize,
    /// Model record (burn bincode, full precision).
    pub model: Vec<u8>,
    /// Optimizer record (burn bincode, full precision).
    pub optimizer: Vec<u8>,
    /// Seed every per-epoch stream (shuffle, dropout) is derived from.
    pub seed: u64,
    pub curve: Vec<EpochReport>,
    pub best_epoch: usize,
    pub best_valid_acc: f64,
    /// Weights of the best epoch so far (same format as `TrainOutcome::best_weights`).
    pub best_weights: Vec<u8>,
    /// Epochs since the best one (for patience).
    pub since_best: usize,
    pub stopped_early: bool,
}

/// Result of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    pub curve: Vec<EpochReport>,
    pub best_epoch: usize,
    pub best_valid_acc: f64,
    pub test_acc: f64,
    pub stopped_early: bool,
    /// Set when training diverged (NaN/inf loss); accuracies are then 0.
    pub failed: Option<String>,
    /// Best epoch's weights: a small header + burn record; load with `predict`/`evaluate`.
    pub best_weights: Vec<u8>,
    /// Training examples per second (forward + backward + step) in this process.
    pub examples_per_sec: f64,
}

// ---------------------------------------------------------------- weights format

const MAGIC: &[u8; 6] = b"HHNW1\n";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WeightsHeader {
    llm: bool,
    rules: bool,
    channels: usize,
    kernel: usize,
    layer_size1: usize,
    layer_size2: usize,
    classes: usize,
    hidden: usize,
    layers: usize,
    vocab: usize,
    #[serde(default, skip_serializing_if = "BranchPool::is_global_max")]
    pool: BranchPool,
}

fn header_of(shape: &ClassifierShape, assets: &EncoderAssets) -> WeightsHeader {
    WeightsHeader {
        llm: shape.llm,
        rules: shape.rules,
        channels: shape.channels,
        kernel: shape.kernel,
        layer_size1: shape.layer_size1,
        layer_size2: shape.layer_size2,
        classes: shape.classes,
        hidden: assets.arch.hidden,
        layers: assets.arch.layers,
        vocab: assets.arch.vocab_size,
        pool: shape.pool,
    }
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::<FullPrecisionSettings>::default()
}

fn model_bytes<B: Backend>(model: &Classifier<B>) -> Result<Vec<u8>, TrainError> {
    Recorder::<B>::record(&recorder(), model.clone().into_record(), ())
        .map_err(|e| TrainError::Weights(format!("cannot encode model record: {e}")))
}

fn load_model<B: Backend>(
    model: Classifier<B>,
    bytes: &[u8],
    device: &B::Device,
) -> Result<Classifier<B>, TrainError> {
    let rec = Recorder::<B>::load(&recorder(), bytes.to_vec(), device)
        .map_err(|e| TrainError::Weights(format!("cannot decode model record: {e}")))?;
    Ok(model.load_record(rec))
}

fn pack_weights(header: &WeightsHeader, record: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).expect("header serializes");
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + h.len() + record.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(record);
    out
}

fn unpack_weights(bytes: &[u8]) -> Result<(WeightsHeader, &[u8]), TrainError> {
    let bad = || TrainError::Weights("not an hhnas-train weights blob (bad magic)".into());
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(bad)?;
    let n = u32::from_le_bytes(rest.get(..4).ok_or_else(bad)?.try_into().expect("4")) as usize;
    let h = rest.get(4..4 + n).ok_or_else(bad)?;
    let header = serde_json::from_slice(h)
        .map_err(|e| TrainError::Weights(format!("bad weights header: {e}")))?;
    Ok((header, &rest[4 + n..]))
}

// ---------------------------------------------------------------- examples and batches

/// Tokenized examples; `feat_rows[i]` is example i's row in the feature matrices.
struct Examples {
    tokens: Vec<Vec<u32>>,
    labels: Vec<u32>,
    feat_rows: Vec<usize>,
    /// Pad every batch to this length (GPU: static shapes, so CubeCL compiles and
    /// autotunes each kernel once instead of once per batch length). `None`: pad to the
    /// batch's longest row (CPU).
    pad_to: Option<usize>,
}

/// Fixed padding length for devices that compile kernels per shape.
fn static_len(device: &str, max_len: usize) -> Option<usize> {
    matches!(parse_device(device), Ok(crate::backend::Device::Cuda(_))).then_some(max_len)
}

/// The rule branch's input: the matrix and, for per-class pooling, each column's class.
struct RuleInput<'a> {
    matrix: &'a FeatureMatrix,
    column_class: Option<Vec<i64>>,
}

/// Branch inputs; LLM-feature columns are the classes themselves, so they need no map.
struct Feats<'a> {
    llm: Option<&'a FeatureMatrix>,
    rules: Option<RuleInput<'a>>,
}

fn column_classes(column_class: &[u32], classes: usize) -> Result<Vec<i64>, TrainError> {
    column_class
        .iter()
        .enumerate()
        .map(|(col, &c)| {
            if (c as usize) < classes {
                Ok(i64::from(c))
            } else {
                Err(TrainError::Input(format!(
                    "rule feature column {col} belongs to class {c}, but there are {classes} classes"
                )))
            }
        })
        .collect()
}

/// Pair the matrices with what their branches' pooling needs.
fn feats<'a>(
    llm: Option<&'a FeatureMatrix>,
    rules: Option<&'a FeatureMatrix>,
    rule_classes: Option<&[u32]>,
    shape: &ClassifierShape,
) -> Result<Feats<'a>, TrainError> {
    let per_class = shape.pool == BranchPool::PerClass;
    let llm = llm.filter(|_| shape.llm);
    if let Some(m) = llm.filter(|m| per_class && m.cols != shape.classes) {
        return Err(TrainError::Input(format!(
            "per-class pooling needs one LLM-feature column per class: the matrix has {} columns for {} classes",
            m.cols, shape.classes
        )));
    }
    let rules = match rules.filter(|_| shape.rules) {
        Some(matrix) if per_class => {
            let classes = rule_classes.ok_or_else(|| {
                TrainError::Input(
                    "per-class pooling needs the class of every rule column (rule_classes)".into(),
                )
            })?;
            if classes.len() != matrix.cols {
                return Err(TrainError::Input(format!(
                    "{} rule classes for a rule matrix of {} columns: pass the rule set the matrix was computed from",
                    classes.len(),
                    matrix.cols
                )));
            }
            Some(RuleInput {
                matrix,
                column_class: Some(column_classes(classes, shape.classes)?),
            })
        }
        m => m.map(|matrix| RuleInput {
            matrix,
            column_class: None,
        }),
    };
    Ok(Feats { llm, rules })
}

struct Batch<B: Backend> {
    ids: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Bool>,
    llm: Option<Tensor<B, 2>>,
    rules: Option<BranchInput<B>>,
    labels: Tensor<B, 1, Int>,
}

fn feat_tensor<B: Backend>(m: &FeatureMatrix, rows: &[usize], device: &B::Device) -> Tensor<B, 2> {
    let mut v = Vec::with_capacity(rows.len() * m.cols);
    for &r in rows {
        v.extend(m.row(r).iter().map(|&x| f32::from(x)));
    }
    Tensor::from_data(TensorData::new(v, [rows.len(), m.cols]), device)
}

fn make_batch<B: Backend>(
    ex: &Examples,
    idx: &[usize],
    feats: &Feats,
    pad_id: u32,
    device: &B::Device,
) -> Batch<B> {
    let longest = idx
        .iter()
        .map(|&i| ex.tokens[i].len())
        .max()
        .unwrap_or(1)
        .max(1);
    let len = ex.pad_to.map_or(longest, |p| p.max(longest));
    let mut ids = Vec::with_capacity(idx.len() * len);
    let mut mask = Vec::with_capacity(idx.len() * len);
    for &i in idx {
        let t = &ex.tokens[i];
        for p in 0..len {
            ids.push(t.get(p).map_or(pad_id, |&x| x) as i64);
            mask.push(p >= t.len());
        }
    }
    let rows: Vec<usize> = idx.iter().map(|&i| ex.feat_rows[i]).collect();
    let labels: Vec<i64> = idx.iter().map(|&i| i64::from(ex.labels[i])).collect();
    Batch {
        ids: Tensor::from_data(TensorData::new(ids, [idx.len(), len]), device),
        mask: Tensor::from_data(TensorData::new(mask, [idx.len(), len]), device),
        llm: feats.llm.map(|m| feat_tensor(m, &rows, device)),
        rules: feats.rules.as_ref().map(|f| BranchInput {
            feats: feat_tensor(f.matrix, &rows, device),
            column_class: f
                .column_class
                .as_ref()
                .map(|c| Tensor::from_data(TensorData::new(c.clone(), [c.len()]), device)),
        }),
        labels: Tensor::from_data(TensorData::new(labels, [idx.len()]), device),
    }
}

/// Mix a seed with a purpose and an index (splitmix64).
fn derive_seed(seed: u64, purpose: u64, index: u64) -> u64 {
    let mut z = seed
        ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const P_INIT: u64 = 1;
const P_EPOCH: u64 = 2;
const P_SUBSAMPLE: u64 = 3;
const P_SHUFFLE: u64 = 4;

/// Batches of one epoch: a seeded permutation; with `sort_by_length`, windows of 50
/// batches are sorted by length and the batch order is shuffled again.
fn epoch_batches(
    ex: &Examples,
    batch: usize,
    sort: bool,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, P_SHUFFLE, epoch as u64));
    let mut perm: Vec<usize> = (0..ex.tokens.len()).collect();
    perm.shuffle(&mut rng);
    if !sort {
        return perm.chunks(batch).map(<[usize]>::to_vec).collect();
    }
    let mut batches = Vec::new();
    for window in perm.chunks(batch * 50) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| ex.tokens[i].len());
        batches.extend(w.chunks(batch).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Evaluation order: by length, in batches of 64.
fn eval_batches(ex: &Examples) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ex.tokens.len()).collect();
    order.sort_by_key(|&i| ex.tokens[i].len());
    order.chunks(64).map(<[usize]>::to_vec).collect()
}

fn predict_argmax<B: Backend>(
    model: &Classifier<B>,
    ex: &Examples,
    feats: &Feats,
    pad_id: u32,
    device: &B::Device,
) -> Vec<u32> {
    let mut pred = vec![0u32; ex.tokens.len()];
    for idx in eval_batches(ex) {
        let b = make_batch::<B>(ex, &idx, feats, pad_id, device);
        let logits = model.forward(b.ids, b.mask, b.llm, b.rules);
        let am = logits.argmax(1).into_data();
        let am: Vec<i64> = am
            .convert::<i64>()
            .into_vec()
            .expect("argmax gives integers");
        for (&i, &p) in idx.iter().zip(&am) {
            pred[i] = p as u32;
        }
    }
    pred
}

fn accuracy<B: Backend>(
    model: &Classifier<B>,
    ex: &Examples,
    feats: &Feats,
    pad_id: u32,
    device: &B::Device,
) -> f64 {
    if ex.tokens.is_empty() {
        return 0.0;
    }
    let pred = predict_argmax(model, ex, feats, pad_id, device);
    let ok = pred.iter().zip(&ex.labels).filter(|(p, l)| p == l).count();
    ok as f64 / ex.tokens.len() as f64
}

// ---------------------------------------------------------------- input checks

fn check_matrix(
    name: &str,
    m: Option<&FeatureMatrix>,
    wanted: bool,
    rows: usize,
) -> Result<(), TrainError> {
    match (m, wanted) {
        (None, true) => Err(TrainError::Input(format!(
            "the model uses the {name} branch but no {name} feature matrix was given"
        ))),
        (Some(m), true) => {
            if m.rows != rows || m.data.len() != m.rows * m.cols || m.cols == 0 {
                Err(TrainError::Input(format!(
                    "{name} feature matrix is {}x{} with {} bytes; expected {rows} rows (one per input row), cols > 0, rows*cols bytes",
                    m.rows,
                    m.cols,
                    m.data.len()
                )))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn shape_of(
    spec: &ModelSpec,
    channels: usize,
    classes: usize,
    pool: BranchPool,
) -> Result<ClassifierShape, TrainError> {
    let cfg = |field: &'static str, value: String, fix: &str| TrainError::Config {
        field,
        value,
        fix: fix.into(),
    };
    if spec.layer_size1 == 0 || spec.layer_size2 == 0 {
        return Err(cfg(
            "layer_size1/layer_size2",
            format!("{}/{}", spec.layer_size1, spec.layer_size2),
            "use positive sizes",
        ));
    }
    if !(0.0..1.0).contains(&spec.dropout) {
        return Err(cfg(
            "dropout_rate",
            spec.dropout.to_string(),
            "use a value in [0, 1)",
        ));
    }
    if spec.kernel_size == 0 || spec.kernel_size.is_multiple_of(2) {
        return Err(cfg(
            "kernel_size",
            spec.kernel_size.to_string(),
            "use an odd kernel size (1, 3, 5, 7, 9) so padding 'same' is symmetric",
        ));
    }
    if (spec.llm_branch || spec.rule_branch) && channels == 0 {
        return Err(cfg("[train] cnn_channels", "0".into(), "use e.g. 32"));
    }
    if !(spec.learning_rate.is_finite() && spec.learning_rate > 0.0) {
        return Err(cfg(
            "learning_rate",
            spec.learning_rate.to_string(),
            "use a positive finite value",
        ));
    }
    if classes < 2 {
        return Err(TrainError::Input(format!(
            "{classes} classes: classification needs at least 2"
        )));
    }
    Ok(ClassifierShape {
        llm: spec.llm_branch,
        rules: spec.rule_branch,
        channels,
        kernel: spec.kernel_size,
        layer_size1: spec.layer_size1,
        layer_size2: spec.layer_size2,
        dropout: spec.dropout,
        classes,
        pool,
    })
}

fn split_examples(
    ds: &Dataset,
    idx: &[usize],
    tokens: &[Vec<u32>],
    name: &str,
    pad_to: Option<usize>,
) -> Result<Examples, TrainError> {
    let classes = ds.classes.len() as u32;
    let mut ex = Examples {
        tokens: Vec::with_capacity(idx.len()),
        labels: Vec::with_capacity(idx.len()),
        feat_rows: Vec::with_capacity(idx.len()),
        pad_to,
    };
    for &i in idx {
        let row = ds.rows.get(i).ok_or_else(|| {
            TrainError::Input(format!("{name} split index {i} >= {} rows", ds.rows.len()))
        })?;
        if row.label >= classes {
            return Err(TrainError::Input(format!(
                "row {i} has label {} but there are {classes} classes",
                row.label
            )));
        }
        ex.tokens.push(tokens[i].clone());
        ex.labels.push(row.label);
        ex.feat_rows.push(i);
    }
    Ok(ex)
}

struct Prepared<'a> {
    train: Examples,
    valid: Examples,
    test: Examples,
    feats: Feats<'a>,
    shape: ClassifierShape,
    fingerprint: String,
}

fn prepare<'a>(
    data: TrainData<'a>,
    assets: &EncoderAssets,
    spec: &ModelSpec,
    cfg: &TrainConfig,
) -> Result<Prepared<'a>, TrainError> {
    let ds = data.dataset;
    parse_device(&cfg.device)?;
    if cfg.epochs == 0 {
        return Err(TrainError::Config {
            field: "[train] epochs",
            value: "0".into(),
            fix: "use at least 1 (paper: 20)".into(),
        });
    }
    if cfg.batch_size == 0 {
        return Err(TrainError::Config {
            field: "[train] batch_size",
            value: "0".into(),
            fix: "use e.g. 16".into(),
        });
    }
    let shape = shape_of(spec, cfg.cnn_channels, ds.classes.len(), cfg.branch_pool)?;
    check_matrix("llm", data.llm_features, spec.llm_branch, ds.rows.len())?;
    check_matrix("rule", data.rule_features, spec.rule_branch, ds.rows.len())?;
    if ds.train.is_empty() || ds.valid.is_empty() {
        return Err(TrainError::Input(
            "the training and validation splits must not be empty".into(),
        ));
    }
    let mut train_idx = ds.train.clone();
    if let Some(n) = cfg.max_train_rows {
        if n < train_idx.len() {
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, P_SUBSAMPLE, 0));
            train_idx.shuffle(&mut rng);
            train_idx.truncate(n.max(1));
            train_idx.sort_unstable();
        }
    }
    // Tokenize only rows that are used.
    let mut used = vec![false; ds.rows.len()];
    for &i in train_idx.iter().chain(&ds.valid).chain(&ds.test) {
        if let Some(u) = used.get_mut(i) {
            *u = true;
        }
    }
    let used_rows: Vec<usize> = (0..ds.rows.len()).filter(|&i| used[i]).collect();
    let texts: Vec<&str> = used_rows
        .iter()
        .map(|&i| ds.rows[i].question.as_str())
        .collect();
    let toks = tokenize(assets, &texts)?;
    let mut tokens = vec![Vec::new(); ds.rows.len()];
    for (i, t) in used_rows.into_iter().zip(toks) {
        tokens[i] = t;
    }
    let fingerprint = {
        let mut fp = serde_json::json!({
            "v": 1,
            "spec": spec,
            "seed": cfg.seed,
            "batch": cfg.batch_size,
            "max_train_rows": cfg.max_train_rows,
            "sort": cfg.sort_by_length,
            "channels": cfg.cnn_channels,
            "arch": assets.arch,
            "tok": blake3::hash(assets.tokenizer_json.as_bytes()).to_hex().to_string(),
            "weights": assets.weights.as_ref().map(|w| w.blake3.clone()),
            "freeze": assets.freeze_embeddings,
            "max_len": assets.max_len,
            "train": train_idx,
            "valid": ds.valid,
        });
        // Only a non-default pool is fingerprinted, so older checkpoints stay resumable.
        if !cfg.branch_pool.is_global_max() {
            fp["pool"] = serde_json::json!(cfg.branch_pool);
        }
        blake3::hash(fp.to_string().as_bytes()).to_hex().to_string()
    };
    let pad_to = static_len(&cfg.device, assets.max_len);
    Ok(Prepared {
        train: split_examples(ds, &train_idx, &tokens, "train", pad_to)?,
        valid: split_examples(ds, &ds.valid, &tokens, "valid", pad_to)?,
        test: split_examples(ds, &ds.test, &tokens, "test", pad_to)?,
        feats: feats(
            data.llm_features,
            data.rule_features,
            data.rule_classes,
            &shape,
        )?,
        shape,
        fingerprint,
    })
}

// ---------------------------------------------------------------- model construction

/// Build the classifier: seeded init, then pretrained encoder weights (if any), then
/// freezing of the word embeddings (if asked).
fn build_model<B: Backend>(
    assets: &EncoderAssets,
    shape: &ClassifierShape,
    seed: u64,
    device: &B::Device,
    load_pretrained: bool,
) -> Result<Classifier<B>, TrainError> {
    B::seed(device, derive_seed(seed, P_INIT, 0));
    let mut model = Classifier::<B>::new(&assets.arch, shape, device);
    if load_pretrained {
        if let Some(w) = &assets.weights {
            crate::hf::load_encoder_weights(&mut model.encoder, w)?;
        }
    }
    Ok(model.map(&mut Renumber(0)))
}

/// Give parameters ids 1, 2, 3, ... in module order: burn draws `ParamId`s at random, and
/// they are part of the record bytes, so without this two identical runs would store
/// different weight bytes.
struct Renumber(u64);

impl<B: Backend> ModuleMapper<B> for Renumber {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (_, t, m) = p.consume();
        self.0 += 1;
        Param::from_mapped_value(ParamId::from(self.0), t, m)
    }
    fn map_int<const D: usize>(&mut self, p: Param<Tensor<B, D, Int>>) -> Param<Tensor<B, D, Int>> {
        let (_, t, m) = p.consume();
        self.0 += 1;
        Param::from_mapped_value(ParamId::from(self.0), t, m)
    }
    fn map_bool<const D: usize>(
        &mut self,
        p: Param<Tensor<B, D, Bool>>,
    ) -> Param<Tensor<B, D, Bool>> {
        let (_, t, m) = p.consume();
        self.0 += 1;
        Param::from_mapped_value(ParamId::from(self.0), t, m)
    }
}

fn freeze<B: Backend>(mut model: Classifier<B>, assets: &EncoderAssets) -> Classifier<B> {
    if assets.freeze_embeddings {
        model.encoder.embeddings.word_embeddings =
            model.encoder.embeddings.word_embeddings.no_grad();
    }
    model
}

// ---------------------------------------------------------------- training

struct TrainTask<'a, 'b> {
    prep: &'b Prepared<'a>,
    assets: &'b EncoderAssets,
    spec: &'b ModelSpec,
    cfg: &'b TrainConfig,
    resume: Option<Checkpoint>,
    on_epoch: &'b mut dyn FnMut(&Checkpoint, &EpochReport),
}

impl BackendTask for TrainTask<'_, '_> {
    type Out = Result<TrainOutcome, TrainError>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Out {
        match self.spec.optimizer {
            OptimizerKind::AdamW => {
                let o = AdamWConfig::new().init::<B, Classifier<B>>();
                train_loop(self, device, o)
            }
            OptimizerKind::SgdMomentum => {
                let o = SgdConfig::new()
                    .with_momentum(Some(
                        MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
                    ))
                    .init::<B, Classifier<B>>();
                train_loop(self, device, o)
            }
            OptimizerKind::RmsProp => {
                let o = RmsPropConfig::new()
                    .with_alpha(0.99)
                    .with_momentum(0.0)
                    .with_epsilon(1e-8)
                    .init::<B, Classifier<B>>();
                train_loop(self, device, o)
            }
        }
    }
}

fn train_loop<B: AutodiffBackend, O: Optimizer<Classifier<B>, B>>(
    task: TrainTask,
    device: B::Device,
    mut optim: O,
) -> Result<TrainOutcome, TrainError> {
    let TrainTask {
        prep,
        assets,
        spec,
        cfg,
        resume,
        on_epoch,
    } = task;
    let pad = assets.arch.pad_token_id;
    let header = header_of(&prep.shape, assets);
    let mut model = build_model::<B>(assets, &prep.shape, cfg.seed, &device, resume.is_none())?;
    let mut curve = Vec::new();
    let mut best_epoch = 0;
    let mut best_acc = -1.0f64;
    let mut best_weights = Vec::new();
    let mut since_best = 0;
    let mut stopped_early = false;
    let mut start = 0;
    if let Some(ck) = resume {
        if ck.fingerprint != prep.fingerprint {
            return Err(TrainError::Weights(
                "the checkpoint belongs to a different candidate/config (fingerprint mismatch): discard it and train from scratch".into(),
            ));
        }
        model = load_model(model, &ck.model, &device)?;
        let orec = Recorder::<B>::load(&recorder(), ck.optimizer.clone(), &device)
            .map_err(|e| TrainError::Weights(format!("cannot decode optimizer record: {e}")))?;
        optim = optim.load_record(orec);
        curve = ck.curve;
        best_epoch = ck.best_epoch;
        best_acc = ck.best_valid_acc;
        best_weights = ck.best_weights;
        since_best = ck.since_best;
        stopped_early = ck.stopped_early;
        start = ck.epoch;
    }
    model = freeze(model, assets);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut train_secs = 0.0;
    let mut train_examples = 0usize;
    let mut failed = None;
    let mut epoch = start;
    while epoch < cfg.epochs && !stopped_early {
        let t0 = Instant::now();
        B::seed(&device, derive_seed(cfg.seed, P_EPOCH, epoch as u64));
        let batches = epoch_batches(
            &prep.train,
            cfg.batch_size,
            cfg.sort_by_length,
            cfg.seed,
            epoch,
        );
        let mut loss_sum = 0.0;
        let mut n = 0usize;
        for idx in &batches {
            let b = make_batch::<B>(&prep.train, idx, &prep.feats, pad, &device);
            let logits = model.forward(b.ids, b.mask, b.llm, b.rules);
            let loss = loss_fn.forward(logits, b.labels);
            let lv: f64 = loss.clone().into_scalar().elem();
            if !lv.is_finite() {
                failed = Some(format!(
                    "loss became {lv} in epoch {} (learning rate {}): diverged",
                    epoch + 1,
                    spec.learning_rate
                ));
                break;
            }
            loss_sum += lv * idx.len() as f64;
            n += idx.len();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(spec.learning_rate, model, grads);
        }
        if failed.is_some() {
            break;
        }
        train_secs += t0.elapsed().as_secs_f64();
        train_examples += n;
        let inner = model.valid();
        let acc = accuracy(&inner, &prep.valid, &prep.feats, pad, &device);
        epoch += 1;
        if acc > best_acc {
            best_acc = acc;
            best_epoch = epoch;
            best_weights = pack_weights(&header, &model_bytes(&inner)?);
            since_best = 0;
        } else {
            since_best += 1;
        }
        if let Some(p) = cfg.patience {
            if since_best >= p && epoch < cfg.epochs {
                stopped_early = true;
            }
        }
        let report = EpochReport {
            epoch,
            train_loss: if n > 0 { loss_sum / n as f64 } else { 0.0 },
            valid_acc: acc,
            secs: t0.elapsed().as_secs_f64(),
        };
        tracing::info!(
            epoch,
            loss = report.train_loss,
            valid_acc = acc,
            secs = report.secs,
            "epoch"
        );
        curve.push(report.clone());
        let ck = Checkpoint {
            fingerprint: prep.fingerprint.clone(),
            epoch,
            model: model_bytes(&model)?,
            optimizer: Recorder::<B>::record(&recorder(), optim.to_record(), ())
                .map_err(|e| TrainError::Weights(format!("cannot encode optimizer: {e}")))?,
            seed: cfg.seed,
            curve: curve.clone(),
            best_epoch,
            best_valid_acc: best_acc,
            best_weights: best_weights.clone(),
            since_best,
            stopped_early,
        };
        on_epoch(&ck, &report);
    }
    let examples_per_sec = if train_secs > 0.0 {
        train_examples as f64 / train_secs
    } else {
        0.0
    };
    if let Some(reason) = failed {
        return Ok(TrainOutcome {
            curve,
            best_epoch: 0,
            best_valid_acc: 0.0,
            test_acc: 0.0,
            stopped_early,
            failed: Some(reason),
            best_weights: Vec::new(),
            examples_per_sec,
        });
    }
    let test_acc = if best_weights.is_empty() {
        0.0
    } else {
        let (_, rec) = unpack_weights(&best_weights)?;
        let inner = load_model(model.valid(), rec, &device)?;
        accuracy(&inner, &prep.test, &prep.feats, pad, &device)
    };
    Ok(TrainOutcome {
        curve,
        best_epoch,
        best_valid_acc: best_acc.max(0.0),
        test_acc,
        stopped_early,
        failed: None,
        best_weights,
        examples_per_sec,
    })
}

/// Train one candidate. `on_epoch` receives a checkpoint after every epoch; pass it back as
/// `resume` to continue an interrupted run (same result as an uninterrupted run on CPU).
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

// ---------------------------------------------------------------- inference

struct InferTask<'a> {
    assets: &'a EncoderAssets,
    shape: ClassifierShape,
    record: &'a [u8],
    ex: Examples,
    feats: Feats<'a>,
    probs: bool,
}

enum InferOut {
    Probs(Vec<Vec<f32>>),
    Pred(Vec<u32>),
}

impl BackendTask for InferTask<'_> {
    type Out = Result<InferOut, TrainError>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Out {
        let model = Classifier::<B::InnerBackend>::new(&self.assets.arch, &self.shape, &device)
            .map(&mut Renumber(0));
        let model = load_model(model, self.record, &device)?;
        let pad = self.assets.arch.pad_token_id;
        if !self.probs {
            return Ok(InferOut::Pred(predict_argmax(
                &model,
                &self.ex,
                &self.feats,
                pad,
                &device,
            )));
        }
        let mut out = vec![Vec::new(); self.ex.tokens.len()];
        for idx in eval_batches(&self.ex) {
            let b = make_batch::<B::InnerBackend>(&self.ex, &idx, &self.feats, pad, &device);
            let logits = model.forward(b.ids, b.mask, b.llm, b.rules);
            let p = burn::tensor::activation::softmax(logits, 1);
            let c = p.dims()[1];
            let v: Vec<f32> = p
                .into_data()
                .convert::<f32>()
                .into_vec()
                .map_err(|e| TrainError::Weights(format!("{e:?}")))?;
            for (k, &i) in idx.iter().enumerate() {
                out[i] = v[k * c..(k + 1) * c].to_vec();
            }
        }
        Ok(InferOut::Probs(out))
    }
}

fn check_header<'w>(
    weights: &'w [u8],
    assets: &EncoderAssets,
    spec: &ModelSpec,
    num_classes: usize,
) -> Result<(ClassifierShape, &'w [u8]), TrainError> {
    let (h, rec) = unpack_weights(weights)?;
    let shape = shape_of(spec, h.channels, num_classes, h.pool)?;
    let want = header_of(&shape, assets);
    if h != want {
        return Err(TrainError::Weights(format!(
            "the weights were trained for {h:?}, but the spec/encoder/classes describe {want:?}: use the spec and encoder assets the weights came from"
        )));
    }
    Ok((shape, rec))
}

/// Softmax class probabilities for `texts` (one row per text). Feature matrices, when the
/// spec uses a branch, have one row per text.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    encoder: &EncoderAssets,
    spec: &ModelSpec,
    num_classes: usize,
    weights: &[u8],
    texts: &[String],
    llm: Option<&FeatureMatrix>,
    rules: Option<&FeatureMatrix>,
    rule_classes: Option<&[u32]>,
    device: &str,
) -> Result<Vec<Vec<f32>>, TrainError> {
    parse_device(device)?;
    let (shape, rec) = check_header(weights, encoder, spec, num_classes)?;
    check_matrix("llm", llm, spec.llm_branch, texts.len())?;
    check_matrix("rule", rules, spec.rule_branch, texts.len())?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens = tokenize(encoder, &refs)?;
    let ex = Examples {
        labels: vec![0; tokens.len()],
        feat_rows: (0..tokens.len()).collect(),
        tokens,
        pad_to: static_len(device, encoder.max_len),
    };
    let feats = feats(llm, rules, rule_classes, &shape)?;
    let task = InferTask {
        assets: encoder,
        shape,
        record: rec,
        ex,
        feats,
        probs: true,
    };
    match dispatch(device, task)?? {
        InferOut::Probs(p) => Ok(p),
        InferOut::Pred(_) => unreachable!("probs requested"),
    }
}

/// Accuracy of `weights` on the dataset rows `rows` (e.g. `&dataset.test`).
pub fn evaluate(
    encoder: &EncoderAssets,
    spec: &ModelSpec,
    weights: &[u8],
    data: TrainData,
    rows: &[usize],
    device: &str,
) -> Result<f64, TrainError> {
    parse_device(device)?;
    let ds = data.dataset;
    let (shape, rec) = check_header(weights, encoder, spec, ds.classes.len())?;
    check_matrix("llm", data.llm_features, spec.llm_branch, ds.rows.len())?;
    check_matrix("rule", data.rule_features, spec.rule_branch, ds.rows.len())?;
    if rows.is_empty() {
        return Ok(0.0);
    }
    let texts: Vec<&str> = rows
        .iter()
        .map(|&i| {
            ds.rows
                .get(i)
                .map(|r| r.question.as_str())
                .ok_or_else(|| TrainError::Input(format!("row {i} >= {} rows", ds.rows.len())))
        })
        .collect::<Result<_, _>>()?;
    let toks = tokenize(encoder, &texts)?;
    let labels: Vec<u32> = rows.iter().map(|&i| ds.rows[i].label).collect();
    let ex = Examples {
        tokens: toks,
        labels: labels.clone(),
        feat_rows: rows.to_vec(),
        pad_to: static_len(device, encoder.max_len),
    };
    let feats = feats(
        data.llm_features,
        data.rule_features,
        data.rule_classes,
        &shape,
    )?;
    let task = InferTask {
        assets: encoder,
        shape,
        record: rec,
        ex,
        feats,
        probs: false,
    };
    match dispatch(device, task)?? {
        InferOut::Pred(p) => {
            let ok = p.iter().zip(&labels).filter(|(a, b)| a == b).count();
            Ok(ok as f64 / labels.len() as f64)
        }
        InferOut::Probs(_) => unreachable!("predictions requested"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_purpose_and_index() {
        assert_ne!(derive_seed(1, P_EPOCH, 0), derive_seed(1, P_EPOCH, 1));
        assert_ne!(derive_seed(1, P_EPOCH, 0), derive_seed(1, P_SHUFFLE, 0));
    }

    #[test]
    fn column_classes_are_checked_against_the_class_count() {
        assert_eq!(column_classes(&[2, 0, 1], 3).unwrap(), vec![2, 0, 1]);
        let e = column_classes(&[0, 5], 2).err().unwrap().to_string();
        assert!(e.contains("column 1 belongs to class 5"), "{e}");
    }

    #[test]
    fn weights_blob_roundtrip_and_bad_magic() {
        let h = WeightsHeader {
            llm: true,
            rules: false,
            channels: 8,
            kernel: 3,
            layer_size1: 4,
            layer_size2: 2,
            classes: 3,
            hidden: 16,
            layers: 1,
            vocab: 100,
            pool: BranchPool::GlobalMax,
        };
        let b = pack_weights(&h, &[1, 2, 3]);
        let (h2, rec) = unpack_weights(&b).unwrap();
        assert_eq!(h, h2);
        assert_eq!(rec, &[1, 2, 3]);
        assert!(unpack_weights(b"nope").is_err());
    }
}
