//! Every check of a resolved configuration, each naming the file, the key and the fix.

use super::{config_error, DataSource, Merge, PipelineConfig};
use crate::error::UserError;

/// Every check of a resolved configuration, each naming the field and the fix. Long
/// (~160 lines) because it is a flat list of independent checks in the file's order.
pub(super) fn validate(c: &PipelineConfig, file: &str) -> Result<(), UserError> {
    let err = |key: &str, problem: String, fix: &str| Err(config_error(file, key, problem, fix));
    if c.run.iterations == 0 {
        return err(
            "run.iterations",
            "must be at least 1".into(),
            "set a positive count",
        );
    }
    if let Some(e) = crate::dag::Evidence::enabled_in(c).first() {
        if !c.encoder.mode.frozen_vectors() {
            let key = e.switch();
            return err(
                key,
                "per-class evidence joins a frozen encoder's vectors, and a fine-tuned encoder's change with every step".into(),
                &format!("set encoder.mode = \"frozen\" (or \"warm\"), or {key} = false"),
            );
        }
    }
    if c.train.head == hhnas_train::HeadKind::Evidence {
        if !c.encoder.mode.frozen_vectors() {
            return err(
                "train.head",
                "the evidence head sits on a frozen encoder's vectors".into(),
                "set encoder.mode = \"frozen\" (or \"warm\"), or train.head = \"dense\"",
            );
        }
        if c.train.branch_pool != hhnas_train::BranchPool::PerClass {
            return err(
                "train.head",
                "the evidence head scores each class from its own branch outputs".into(),
                "set train.branch_pool = \"per-class\", or train.head = \"dense\"",
            );
        }
    }
    let lexical = c.train.lexical_dropout;
    if !(0.0..1.0).contains(&lexical) {
        return err(
            "train.lexical_dropout",
            format!("{lexical} is outside [0, 1)"),
            "use a share of training rows such as 0.5, or 0 for off",
        );
    }
    if lexical > 0.0 && c.train.head != hhnas_train::HeadKind::Evidence {
        return err(
            "train.lexical_dropout",
            "hides evidence the evidence head reads, and this head reads none".into(),
            "set train.head = \"evidence\", or train.lexical_dropout = 0",
        );
    }
    if c.train.bag_folds == 1 {
        return err(
            "train.bag_folds",
            "one fold leaves no rows out to score the candidate on".into(),
            "use 0 (each candidate trains once) or 2 or more folds, such as 5",
        );
    }
    if c.train.cross_fit_folds().is_some() && c.ensemble.refit {
        return err(
            "ensemble.refit",
            "cross-fitted candidates (train.bag_folds) already train on the validation rows".into(),
            "set ensemble.refit = false, or train.bag_folds = 0",
        );
    }
    if let Err((key, problem)) = hhnas_engine::slurm::validate(&c.slurm) {
        return err(&key, problem, "fix the [slurm] section of pipeline.toml");
    }
    if !(0.0..=1.0).contains(&c.data.overlap_threshold) {
        return err(
            "data.overlap_threshold",
            format!("{} is outside [0, 1]", c.data.overlap_threshold),
            "use a Jaccard threshold such as 0.8",
        );
    }
    if c.data.source == DataSource::Labelled && c.data.labelled_file.is_none() {
        return err(
            "data.labelled_file",
            "source = \"labelled\" needs a labelled file".into(),
            "set data.labelled_file to a JSONL or CSV file of texts and labels",
        );
    }
    if c.data.source == DataSource::Spider
        && (c.data.labelled_file.is_some() || c.data.test_file.is_some())
    {
        return err(
            "data.source",
            "a labelled_file / test_file is set, but the rows come from Spider".into(),
            "set data.source = \"labelled\" to use your file, or remove labelled_file and test_file",
        );
    }
    if c.data.merge == Merge::Map && c.data.map_file.is_none() {
        return err(
            "data.map_file",
            "merge = \"map\" needs a map file".into(),
            "set data.map_file to a JSON object {db_id: class}",
        );
    }
    let sum: f64 = c.data.ratios.iter().sum();
    if c.data.ratios.iter().any(|r| !r.is_finite() || *r <= 0.0) || (sum - 1.0).abs() > 1e-6 {
        return err(
            "data.ratios",
            format!(
                "{:?} must be three positive numbers summing to 1",
                c.data.ratios
            ),
            "use [0.7, 0.15, 0.15]",
        );
    }
    if c.features.shortlist_k == 0 || c.features.lexical_true_m > c.features.shortlist_k {
        return err(
            "features.shortlist_k",
            "shortlist_k must be >= 1 and >= lexical_true_m".into(),
            "e.g. shortlist_k = 10, lexical_true_m = 3",
        );
    }
    if c.encoder.hidden == 0
        || c.encoder.heads == 0
        || !c.encoder.hidden.is_multiple_of(c.encoder.heads)
    {
        return err(
            "encoder.heads",
            format!(
                "hidden ({}) must be a positive multiple of heads ({})",
                c.encoder.hidden, c.encoder.heads
            ),
            "e.g. hidden = 128, heads = 4",
        );
    }
    for (key, value) in [
        ("encoder.layers", c.encoder.layers),
        ("encoder.intermediate", c.encoder.intermediate),
        ("encoder.vocab_size", c.encoder.vocab_size),
        ("train.cnn_channels", c.train.cnn_channels),
        (
            "features.llm.max_concurrency",
            c.features.llm.max_concurrency,
        ),
    ] {
        if value == 0 {
            return err(key, "must be at least 1".into(), "set a positive number");
        }
    }
    if c.encoder.max_len < 2 {
        return err("encoder.max_len", "must be at least 2".into(), "e.g. 32");
    }
    if c.train.epochs == 0 || c.train.batch_size == 0 {
        return err(
            "train.epochs",
            "epochs and batch_size must be at least 1".into(),
            "e.g. epochs = 2, batch_size = 16",
        );
    }
    let w = &c.encoder.warm;
    if w.epochs == 0 {
        return err(
            "encoder.warm.epochs",
            "must be at least 1".into(),
            "e.g. encoder.warm.epochs = 2",
        );
    }
    if w.batch_size == 0 {
        return err(
            "encoder.warm.batch_size",
            "must be at least 1".into(),
            "e.g. encoder.warm.batch_size = 16",
        );
    }
    if !(w.learning_rate.is_finite() && w.learning_rate > 0.0 && w.learning_rate < 1.0) {
        return err(
            "encoder.warm.learning_rate",
            format!("{} is not a learning rate in (0, 1)", w.learning_rate),
            "e.g. encoder.warm.learning_rate = 5e-5 (fine-tuning a pretrained encoder)",
        );
    }
    if c.ensemble.enabled && c.ensemble.rounds == 0 {
        return err(
            "ensemble.rounds",
            "must be at least 1".into(),
            "e.g. rounds = 25, or ensemble.enabled = false",
        );
    }
    c.search
        .validate()
        .map_err(|e| config_error(file, "search", e, "see [search] in pipeline.toml"))?;
    Ok(())
}
