//! Ensemble selection over the candidates of several runs pooled (e.g. the seeds of one
//! `run --seeds 0,1,2`), beside each run's own selection: does an ensemble across seeds
//! beat one seed's? The runs must share their dataset node (same data and split).
//!
//! ```sh
//! cargo run --release --example pooled_ensemble -- CACHE RUN... [--metric log-loss] [--rounds N] [--bags N]
//! ```
//! Prints each run's selection and the pooled one (validation and test accuracy), and the
//! plain average of every pooled candidate. Reads only the store; writes nothing.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use hhnas_engine::journal::stage_records;
use hhnas_engine::outln;
use hhnas_engine::replay::load_stored;
use hhnas_engine::rundir;
use hhnas_engine::store::{Key, Lookup, Store};
use hhnas_ensemble::{
    accuracy, combine, select, select_bagged, Metric, ProbMatrix, SelectionParams, SplitProbs,
};
use hhnas_pipe::config::Frozen;
use hhnas_pipe::dag::{Event, Stage, PROBS};
use hhnas_pipe::nodes::data::dataset_stage;

struct Candidate {
    /// The runs that trained it.
    runs: Vec<String>,
    key: Key,
    probs: SplitProbs,
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let cache = PathBuf::from(
        args.next()
            .context("usage: CACHE RUN... [--metric log-loss] [--rounds N] [--bags N]")?,
    );
    let mut params = SelectionParams::default();
    let mut bags = 0usize;
    let mut runs = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--metric" => {
                params.metric = match args.next().as_deref() {
                    Some("log-loss") => Metric::LogLoss,
                    Some("accuracy") => Metric::Accuracy,
                    other => bail!("--metric {other:?}: use accuracy or log-loss"),
                }
            }
            "--rounds" => params.rounds = args.next().context("--rounds N")?.parse()?,
            "--bags" => bags = args.next().context("--bags N")?.parse()?,
            _ => runs.push(a),
        }
    }
    let store = Store::new(&cache);
    let mut pool: Vec<Candidate> = Vec::new();
    let mut dataset: Option<(Key, hhnas_data::Dataset)> = None;
    for name in &runs {
        let run = rundir::find(&cache, Some(name), false)?
            .with_context(|| format!("run {name} not found"))?;
        let stage = dataset_stage(&run.config()?);
        let events: Vec<Event> = run.journal().read()?.events;
        let ds_key = stage_records(&events)
            .find(|r| r.stage == stage)
            .map(|r| r.key)
            .with_context(|| format!("run {name} has no dataset node yet"))?;
        match &dataset {
            None => dataset = Some((ds_key, load_stored(&store, stage, &ds_key)?)),
            Some((k, _)) if *k != ds_key => {
                bail!("run {name} has another dataset than {}", runs[0])
            }
            Some(_) => {}
        }
        for r in stage_records(&events).filter(|r| r.stage == Stage::Train) {
            // A candidate two runs share (a run extending another's search) is pooled
            // once and counts in each run's own selection.
            if let Some(c) = pool.iter_mut().find(|c| c.key == r.key) {
                if !c.runs.contains(name) {
                    c.runs.push(name.clone());
                }
                continue;
            }
            if let Lookup::Hit(probs) = store.get::<SplitProbs>(PROBS, &r.key)? {
                pool.push(Candidate {
                    runs: vec![name.clone()],
                    key: r.key,
                    probs,
                });
            }
        }
    }
    let (_, ds) = dataset.context("no runs given")?;
    let labels = |rows: &[usize]| -> Vec<u32> { rows.iter().map(|&i| ds.rows[i].label).collect() };
    let (valid_labels, test_labels) = (labels(&ds.valid), labels(&ds.test));
    let selected = |idx: &[usize]| -> Result<String> {
        let valid: Vec<&ProbMatrix> = idx.iter().map(|&i| &pool[i].probs.valid).collect();
        let test: Vec<&ProbMatrix> = idx.iter().map(|&i| &pool[i].probs.test).collect();
        let weights = match bags {
            0 => select(&valid, &valid_labels, &params)?.weights(),
            b => select_bagged(&valid, &valid_labels, &params, b, 0.5, 0)?,
        };
        let valid_acc = accuracy(&combine(&valid, &weights)?, &valid_labels);
        let test_acc = accuracy(&combine(&test, &weights)?, &test_labels);
        Ok(format!(
            "{} candidates, {} members: valid {:.2} % test {:.2} %",
            idx.len(),
            weights.iter().filter(|&&w| w > 0.0).count(),
            valid_acc * 100.0,
            test_acc * 100.0
        ))
    };
    for name in &runs {
        let idx: Vec<usize> = (0..pool.len())
            .filter(|&i| pool[i].runs.contains(name))
            .collect();
        outln!("{name}: {}", selected(&idx)?);
    }
    let all: Vec<usize> = (0..pool.len()).collect();
    outln!("pooled: {}", selected(&all)?);
    let test: Vec<&ProbMatrix> = pool.iter().map(|c| &c.probs.test).collect();
    let uniform = vec![1.0 / pool.len() as f64; pool.len()];
    outln!(
        "plain average of all {}: test {:.2} %",
        pool.len(),
        accuracy(&combine(&test, &uniform)?, &test_labels) * 100.0
    );
    Ok(())
}
