//! Input checks and the preparation of one candidate's examples and feature sources.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::Device;
use crate::data::{
    check_matrix, derive_seed, EvidenceLayout, Examples, Sources, SparseRows, P_SUBSAMPLE,
};
use crate::encoder::{tokenize, EncoderAssets};
use crate::error::TrainError;
use crate::input::{Dataset, FeatureMatrix};
use crate::model::HeadKind;
use crate::model::{BranchPool, ClassifierShape};
use crate::spec::{LexicalDropout, ModelSpec, TrainConfig, TrainData};
use crate::vectors::Embeddings;

fn column_classes(column_class: &[u32], classes: usize) -> Result<Vec<u32>, TrainError> {
    for (col, &c) in column_class.iter().enumerate() {
        if c as usize >= classes {
            return Err(TrainError::Input(format!(
                "rule feature column {col} belongs to class {c}, but there are {classes} classes"
            )));
        }
    }
    Ok(column_class.to_vec())
}

/// Feature sources of the branches the shape has, checked against what their pooling needs.
pub(crate) fn sources<'a>(
    llm: Option<&FeatureMatrix>,
    rules: Option<&FeatureMatrix>,
    rule_classes: Option<&[u32]>,
    embeddings: Option<&'a Embeddings>,
    shape: &ClassifierShape,
    pad_id: u32,
) -> Result<Sources<'a>, TrainError> {
    let per_class = shape.pool == BranchPool::PerClass;
    let pooled = shape.pooled_classes();
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
            Some(SparseRows::new(
                matrix,
                Some(column_classes(classes, shape.classes)?),
                pooled,
            ))
        }
        m => m.map(|matrix| SparseRows::new(matrix, None, pooled)),
    };
    let evidence = (shape.head == HeadKind::Evidence).then(|| EvidenceLayout {
        width: embeddings.map_or(0, |e| e.dim) - shape.extra_inputs,
        classes: shape.classes,
    });
    Ok(Sources {
        embeddings,
        evidence: evidence.filter(|_| embeddings.is_some()),
        llm: llm.map(|m| SparseRows::new(m, None, pooled)),
        rules,
        kernel: shape.kernel,
        pad_id,
    })
}

pub(crate) fn shape_of(
    spec: &ModelSpec,
    channels: usize,
    classes: usize,
    pool: BranchPool,
    head: HeadKind,
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
    if head == HeadKind::Evidence && pool != BranchPool::PerClass {
        return Err(cfg(
            "[train] head",
            "evidence".into(),
            "the evidence head scores each class from its own branch outputs: set [train] \
             branch_pool = \"per-class\", or head = \"dense\"",
        ));
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
        extra_inputs: 0,
        head,
    })
}

/// Sets the values a frozen head reads after the encoder's own, and checks that the
/// evidence head gets vectors in whole per-class blocks.
pub(crate) fn set_extra_inputs(
    shape: &mut ClassifierShape,
    e: Option<&Embeddings>,
    rows: usize,
    assets: &EncoderAssets,
) -> Result<(), TrainError> {
    shape.extra_inputs = check_embeddings(e, rows, assets)?;
    if shape.head == HeadKind::Evidence {
        if e.is_none() {
            return Err(TrainError::Config {
                field: "[train] head",
                value: "evidence".into(),
                fix: "the evidence head sits on a frozen encoder's vectors: set [encoder] \
                      mode = \"frozen\", or [train] head = \"dense\""
                    .into(),
            });
        }
        if !shape.extra_inputs.is_multiple_of(shape.classes) {
            return Err(TrainError::Input(format!(
                "the vectors carry {} values after the encoder's {}, not whole blocks of one \
                 value per class ({} classes): pass the neighbour nodes' output for this \
                 dataset",
                shape.extra_inputs, assets.arch.hidden, shape.classes
            )));
        }
    }
    Ok(())
}

/// Check frozen-encoder vectors against the rows they must describe; returns how many
/// values each row holds after the encoder's own (the neighbour evidence, if any).
pub(crate) fn check_embeddings(
    e: Option<&Embeddings>,
    rows: usize,
    assets: &EncoderAssets,
) -> Result<usize, TrainError> {
    let Some(e) = e else { return Ok(0) };
    if e.rows != rows || e.data.len() != e.rows * e.dim || e.dim < assets.arch.hidden {
        return Err(TrainError::Input(format!(
            "the encoder vectors are {}x{} ({} values) for {rows} rows of an encoder of width {}: pass the encode stage's output for this dataset and encoder",
            e.rows,
            e.dim,
            e.data.len(),
            assets.arch.hidden
        )));
    }
    Ok(e.dim - assets.arch.hidden)
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
        rows: Vec::with_capacity(idx.len()),
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
        if !tokens.is_empty() {
            ex.tokens.push(tokens[i].clone());
        }
        ex.labels.push(row.label);
        ex.rows.push(i);
    }
    Ok(ex)
}

pub(crate) struct Prepared<'a> {
    pub train: Examples,
    pub valid: Examples,
    pub test: Examples,
    pub sources: Sources<'a>,
    pub shape: ClassifierShape,
    pub fingerprint: String,
    /// The config's lexical evidence dropout, checked against the head.
    pub lexical_dropout: Option<LexicalDropout>,
}

/// One candidate's examples, feature sources and shape, every input checked against the
/// others before training starts. Long (~120 lines) because each mismatch gets its own
/// error naming the field and the fix.
pub(crate) fn prepare<'a>(
    data: TrainData<'a>,
    assets: &EncoderAssets,
    spec: &ModelSpec,
    cfg: &TrainConfig,
    device: Device,
) -> Result<Prepared<'a>, TrainError> {
    let ds = data.dataset;
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
    let mut shape = shape_of(
        spec,
        cfg.cnn_channels,
        ds.classes.len(),
        cfg.branch_pool,
        cfg.head,
    )?;
    check_matrix("llm", data.llm_features, spec.llm_branch, ds.rows.len())?;
    check_matrix("rule", data.rule_features, spec.rule_branch, ds.rows.len())?;
    set_extra_inputs(&mut shape, data.embeddings, ds.rows.len(), assets)?;
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
    // A frozen encoder reads its vectors; otherwise tokenize only the rows that are used.
    let tokens = if data.embeddings.is_some() {
        Vec::new()
    } else {
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
        tokens
    };
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
        // Only non-default settings are fingerprinted, so older checkpoints stay resumable.
        if !cfg.branch_pool.is_global_max() {
            fp["pool"] = serde_json::json!(cfg.branch_pool);
        }
        if !cfg.head.is_dense() {
            fp["head"] = serde_json::json!(cfg.head);
        }
        if !cfg.keep.is_best() {
            fp["keep"] = serde_json::json!(cfg.keep);
        }
        if let Some(e) = data.embeddings {
            fp["frozen"] = serde_json::json!(e.identity());
        }
        blake3::hash(fp.to_string().as_bytes()).to_hex().to_string()
    };
    let pad_to = device.static_len(assets.max_len);
    let sources = sources(
        data.llm_features,
        data.rule_features,
        data.rule_classes,
        data.embeddings,
        &shape,
        assets.arch.pad_token_id,
    )?;
    if let Some(d) = cfg.lexical_dropout {
        if sources.evidence.is_none() || !(d.rate > 0.0 && d.rate < 1.0) {
            return Err(TrainError::Input(format!(
                "lexical_dropout (rate {}) needs the evidence head over frozen vectors and a rate in (0, 1): leave it off for this candidate",
                d.rate
            )));
        }
    }
    Ok(Prepared {
        train: split_examples(ds, &train_idx, &tokens, "train", pad_to)?,
        valid: split_examples(ds, &ds.valid, &tokens, "valid", pad_to)?,
        test: split_examples(ds, &ds.test, &tokens, "test", pad_to)?,
        sources,
        shape,
        fingerprint,
        lexical_dropout: cfg.lexical_dropout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_classes_are_checked_against_the_class_count() {
        assert_eq!(column_classes(&[2, 0, 1], 3).unwrap(), vec![2, 0, 1]);
        let e = column_classes(&[0, 5], 2).err().unwrap().to_string();
        assert!(e.contains("column 1 belongs to class 5"), "{e}");
    }
}
