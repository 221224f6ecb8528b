//! Issue 23: one frozen-mode candidate of the demo, ours (`train_candidate`, the product's
//! path) against the same head in PyTorch (`scripts/torch-head.py`), and against the
//! arithmetic bound (FLOPs of the candidate / this CPU's measured peak f32 GFLOP/s).
//!
//! The demo's shapes: Spider's 86 merged classes and split (4,898 / 1,049 / 1,044 rows),
//! vectors of 384 values (all-MiniLM-L6-v2) + 3 per-class blocks (neighbours,
//! char_neighbours, char_svm), the real schema-rule matrix (4,018 columns) and the real
//! lexical judge matrix (86 columns, 4 levels), 8 channels per branch, the evidence head,
//! batch 32, 20 epochs, the demo's initial micro parameters (256 / 128, dropout 0.5, AdamW
//! at 1e-3, kernel 3). The encoder's vectors are synthetic (seeded; their values do not
//! change the work), so no encoder is needed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hhnas_features::{judge_lexical, rule_features, schema_rules, Bm25Ranker, Queries};
use hhnas_train::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// all-MiniLM-L6-v2's width.
const WIDTH: usize = 384;
/// neighbours, char_neighbours, char_svm: one value per class each.
const BLOCKS: usize = 3;
const CHANNELS: usize = 8;
const EPOCHS: usize = 20;
const BATCH: usize = 32;

/// The demo's inputs of one candidate.
pub struct HeadInputs {
    ds: Dataset,
    judge: FeatureMatrix,
    rules: FeatureMatrix,
    rule_classes: Vec<u32>,
    vectors: Embeddings,
    assets: EncoderAssets,
}

impl HeadInputs {
    /// Spider from `HHNAS_SPIDER_DIR`, the demo's features computed as its nodes do.
    pub fn from_env() -> Option<HeadInputs> {
        let spider = std::env::var_os("HHNAS_SPIDER_DIR")?;
        let src = hhnas_spider::read_spider_dir(Path::new(&spider)).expect("Spider");
        let ds = hhnas_spider::build_dataset(&src, &hhnas_spider::DataParams::default())
            .expect("dataset");
        let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
        let rule_set = schema_rules(&ds);
        let rules = rule_features(&rule_set, &texts);
        let judge = judge_lexical(&Bm25Ranker::build(&ds), &Queries::dataset(&ds), 10, 3, 4);
        let vectors = synthetic_vectors(&ds);
        let assets = EncoderAssets {
            source: "bench".into(),
            tokenizer_json: String::new(),
            arch: minilm(),
            max_len: 64,
            freeze_embeddings: false,
            weights: None,
        };
        Some(HeadInputs {
            rule_classes: rule_set.column_classes(),
            ds,
            judge,
            rules,
            vectors,
            assets,
        })
    }

    pub fn describe(&self) -> String {
        let nnz = |m: &FeatureMatrix| m.data.iter().filter(|&&v| v != 0).count() as f64;
        format!(
            "{} classes, rows {} / {} / {}, vectors {} wide, rules {} columns ({:.1} fired a row), judge {} columns ({:.1} marked a row)",
            self.ds.classes.len(),
            self.ds.train.len(),
            self.ds.valid.len(),
            self.ds.test.len(),
            self.vectors.dim,
            self.rules.cols,
            nnz(&self.rules) / self.rules.rows as f64,
            self.judge.cols,
            nnz(&self.judge) / self.judge.rows as f64,
        )
    }
}

fn minilm() -> EncoderArch {
    EncoderArch {
        kind: ArchKind::Bert,
        hidden: WIDTH,
        layers: 6,
        heads: 12,
        intermediate: 1536,
        vocab_size: 30522,
        max_positions: 512,
        type_vocab_size: 2,
        pad_token_id: 0,
        layer_norm_eps: 1e-12,
        hidden_dropout: 0.1,
    }
}

/// Unit-scale vectors, then per-class blocks where the row's own class tends to be high
/// (as the neighbour similarities are), seeded.
fn synthetic_vectors(ds: &Dataset) -> Embeddings {
    let c = ds.classes.len();
    let dim = WIDTH + BLOCKS * c;
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let mut data = Vec::with_capacity(ds.rows.len() * dim);
    for r in &ds.rows {
        data.extend((0..WIDTH).map(|_| rng.random_range(-1.0f32..1.0)));
        for _ in 0..BLOCKS {
            for class in 0..c {
                let own = if class == r.label as usize { 0.3 } else { 0.0 };
                data.push(rng.random_range(0.0f32..0.7) + own);
            }
        }
    }
    Embeddings {
        pooling: Pooling::Mean,
        dim,
        rows: ds.rows.len(),
        data,
        encoder_id: "bench".into(),
    }
}

/// Model 1 (no branch) or Model 4 (both branches) at the demo's initial parameters.
pub fn demo_spec(model: u8) -> ModelSpec {
    ModelSpec {
        llm_branch: matches!(model, 2 | 4),
        rule_branch: matches!(model, 3 | 4),
        learning_rate: 1e-3,
        optimizer: OptimizerKind::AdamW,
        layer_size1: 256,
        layer_size2: 128,
        dropout: 0.5,
        kernel_size: 3,
    }
}

fn demo_config() -> TrainConfig {
    TrainConfig {
        epochs: EPOCHS,
        batch_size: BATCH,
        seed: 0,
        device: NoDevice,
        cnn_channels: CHANNELS,
        branch_pool: BranchPool::PerClass,
        head: HeadKind::Evidence,
        ..TrainConfig::default()
    }
}

/// Seconds, best validation accuracy and the weights' blake3 (first 12 hex digits) of one
/// candidate through `train_candidate`.
pub fn ours(h: &HeadInputs, spec: &ModelSpec) -> (f64, f64, String) {
    let data = TrainData {
        dataset: &h.ds,
        llm_features: Some(&h.judge),
        rule_features: Some(&h.rules),
        rule_classes: Some(&h.rule_classes),
        embeddings: Some(&h.vectors),
    };
    let start = Instant::now();
    let out = train_candidate(
        data,
        &h.assets,
        spec,
        &demo_config(),
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .expect("the candidate trains");
    let secs = start.elapsed().as_secs_f64();
    let hash = blake3::hash(&out.best_weights).to_hex()[..12].to_string();
    (secs, out.best_valid_acc, hash)
}

/// Writes what `scripts/torch-head.py` reads (the same rows, vectors and matrices).
pub fn write_torch_inputs(h: &HeadInputs, spec: &ModelSpec) -> PathBuf {
    let dir = std::env::temp_dir().join("hhnas-bench-heads");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let u32s =
        |v: &mut dyn Iterator<Item = u32>| -> Vec<u8> { v.flat_map(u32::to_le_bytes).collect() };
    let f32s: Vec<u8> = h
        .vectors
        .data
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let files: [(&str, Vec<u8>); 8] = [
        ("vectors.f32", f32s),
        ("judge.u8", h.judge.data.clone()),
        ("rules.u8", h.rules.data.clone()),
        ("labels.u32", u32s(&mut h.ds.rows.iter().map(|r| r.label))),
        ("rule_class.u32", u32s(&mut h.rule_classes.iter().copied())),
        ("train.u32", u32s(&mut h.ds.train.iter().map(|&i| i as u32))),
        ("valid.u32", u32s(&mut h.ds.valid.iter().map(|&i| i as u32))),
        ("test.u32", u32s(&mut h.ds.test.iter().map(|&i| i as u32))),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("bench file");
    }
    let meta = serde_json::json!({
        "rows": h.ds.rows.len(),
        "classes": h.ds.classes.len(),
        "encoder_width": WIDTH,
        "vector_dim": h.vectors.dim,
        "layer_size1": spec.layer_size1,
        "layer_size2": spec.layer_size2,
        "dropout": spec.dropout,
        "learning_rate": spec.learning_rate,
        "kernel": spec.kernel_size,
        "channels": CHANNELS,
        "scorer_hidden": SCORER_HIDDEN,
        "epochs": EPOCHS,
        "batch_size": BATCH,
    });
    std::fs::write(dir.join("meta.json"), meta.to_string()).expect("meta.json");
    dir
}

/// Positions the sparse branch convolves in each row: those within `kernel / 2` of a
/// nonzero column (what `SparseRows::batch` covers, before padding to the batch's most).
fn covered_positions(m: &FeatureMatrix, row: usize, kernel: usize) -> usize {
    let pad = (kernel - 1) / 2;
    let mut covered = 0;
    let mut next = 0;
    for (c, &v) in m.row(row).iter().enumerate() {
        if v == 0 {
            continue;
        }
        let lo = c.saturating_sub(pad).max(next);
        let hi = (c + pad).min(m.cols - 1);
        if hi >= lo {
            covered += hi - lo + 1;
            next = hi + 1;
        }
    }
    covered
}

/// Floating-point operations of one candidate: every matrix product's forward (2 m n k)
/// counted three times for training rows (forward, input and weight gradients), once for
/// the validation pass of each epoch and the final test pass; plus AdamW's ~12 operations
/// per parameter and step. Element-wise activations, the loss and pooling are left out
/// (under 2 % here).
pub fn candidate_flops(h: &HeadInputs, spec: &ModelSpec) -> f64 {
    let c = h.ds.classes.len() as f64;
    let (l1, l2) = (spec.layer_size1 as f64, spec.layer_size2 as f64);
    let k = spec.kernel_size;
    let branches = usize::from(spec.llm_branch) + usize::from(spec.rule_branch);
    let evidence = (BLOCKS + branches * CHANNELS) as f64;
    let s = SCORER_HIDDEN as f64;
    let dense = 2.0 * (WIDTH as f64 * l1 + l1 * l2 + l2 * c);
    let scorer = c * 2.0 * (evidence * s + s);
    let branch_row = |rows: &[usize]| -> f64 {
        let mut positions = 0usize;
        for &r in rows {
            if spec.llm_branch {
                positions += covered_positions(&h.judge, r, k);
            }
            if spec.rule_branch {
                positions += covered_positions(&h.rules, r, k);
            }
        }
        positions as f64 * 2.0 * (k * CHANNELS) as f64
    };
    let per_row = dense + scorer;
    let epochs = EPOCHS as f64;
    let train = 3.0 * epochs * (per_row * h.ds.train.len() as f64 + branch_row(&h.ds.train));
    let valid = epochs * (per_row * h.ds.valid.len() as f64 + branch_row(&h.ds.valid));
    let test = per_row * h.ds.test.len() as f64 + branch_row(&h.ds.test);
    let params = WIDTH as f64 * l1
        + l1
        + l1 * l2
        + l2
        + l2 * c
        + c
        + evidence * s
        + 2.0 * s
        + 1.0
        + (branches * CHANNELS * (k + 1)) as f64;
    let steps = epochs * h.ds.train.len().div_ceil(BATCH) as f64;
    train + valid + test + 12.0 * params * steps
}

/// This CPU's f32 peak as `gemm` reaches it: one 1024^3 product per thread, all threads
/// at once (each single-threaded, as the native path runs them), best of 5.
pub fn peak_gflops(threads: usize) -> f64 {
    let n = 1024;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut c = vec![0f32; n * n];
                    // SAFETY: a, b and c are n x n, row-major, and c is this thread's own.
                    unsafe {
                        gemm::gemm(
                            n,
                            n,
                            n,
                            c.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            a.as_ptr(),
                            1,
                            n as isize,
                            b.as_ptr(),
                            1,
                            n as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                    assert!(c[0] == 0.5 * n as f32);
                });
            }
        });
        let flops = 2.0 * (n * n * n * threads) as f64;
        best = best.max(flops / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}
