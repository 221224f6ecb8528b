//! Issue 23: the native CPU path against PyTorch, side by side, repeated, with ratios.
//!
//! Each round runs, one after another on the same threads: the encode stage (native,
//! `device = "cpu"`) and PyTorch's encode over Spider's questions; then the fine-tuning step
//! at MiniLM shape (batch 16, 32 tokens, AdamW) natively, on burn (Flex) and in PyTorch.
//! Rounds interleave the contenders so that load from other processes hits all of them.
//! `HHNAS_BENCH_SKIP_BURN=1` leaves burn's fine-tuning out (it is the slowest part).
//! Then one frozen-mode candidate of the demo, ours against PyTorch and the arithmetic
//! bound ([`heads`]); `HHNAS_BENCH_HEADS_ONLY=1` runs that part alone.

pub mod heads;

use std::process::Command;
use std::time::Instant;

use burn::backend::flex::{Flex, FlexDevice};
use burn::tensor::backend::Backend;
use hhnas_train::internals::{AdamW, Classifier, ClassifierShape, NativeTrainer};
use hhnas_train::*;

/// Mean and sample standard deviation.
fn stats(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

fn torch_result(py: &str, args: &[String], key: &str) -> Option<f64> {
    torch_script_result(py, "bench-torch.py", args, key)
}

/// Runs `scripts/<script>` and reads its line "RESULT <key>\t<value>".
fn torch_script_result(py: &str, script: &str, args: &[String], key: &str) -> Option<f64> {
    let path = format!("{}/../../scripts/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(py).arg(&path).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!("{script} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| l.split_once('\t'))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Examples/s of the native fine-tuning step (batch 16 x 32 tokens, the bench's ids).
fn native_finetune(a: &EncoderArch, shape: &ClassifierShape, steps: usize) -> f64 {
    let (batch, seq) = (16, 32);
    Flex::seed(&FlexDevice, 1);
    let model = Classifier::<Flex>::new(a, shape, &FlexDevice);
    let opt = AdamW {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.01,
    };
    let mut t = NativeTrainer::from_classifier(&model, a, shape.dropout, opt).expect("native");
    let ids: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..seq)
                .map(|p| ((b * seq + p) * 7919 % (a.vocab_size - 5) + 5) as u32)
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let labels: Vec<u32> = (0..batch as u32)
        .map(|i| i % shape.classes as u32)
        .collect();
    for s in 0..2 {
        t.step(&refs, &labels, 1e-4, s).expect("step");
    }
    let start = Instant::now();
    for s in 0..steps {
        let loss = t.step(&refs, &labels, 1e-4, 2 + s as u64).expect("step");
        assert!(loss.is_finite());
    }
    (steps * batch) as f64 / start.elapsed().as_secs_f64()
}

pub struct Setup<'a> {
    pub threads: usize,
    pub torch: Option<&'a str>,
    pub repeats: usize,
    pub minilm: EncoderArch,
    pub shape: ClassifierShape,
    /// burn's fine-tuning examples/s at MiniLM shape (Flex).
    pub burn_finetune: &'a dyn Fn() -> f64,
}

pub fn run(s: Setup) {
    if std::env::var("HHNAS_BENCH_HEADS_ONLY").is_err() {
        run_encoder(&s);
    }
    run_heads(s.threads, s.torch, s.repeats);
}

/// Which candidates the head bench trains: `HHNAS_BENCH_HEAD_MODELS` (default "1,4") at
/// `HHNAS_BENCH_HEAD_LAYERS` (default the demo's initial "256x128"; e.g. "256x128,1024x512").
fn head_specs() -> Vec<(String, ModelSpec)> {
    let models = std::env::var("HHNAS_BENCH_HEAD_MODELS").unwrap_or_else(|_| "1,4".into());
    let layers = std::env::var("HHNAS_BENCH_HEAD_LAYERS").unwrap_or_else(|_| "256x128".into());
    let mut specs = Vec::new();
    for l in layers.split(',') {
        let (l1, l2) = l.split_once('x').expect("layers as L1xL2");
        for m in models.split(',') {
            let mut spec = heads::demo_spec(m.trim().parse().expect("a model number 1-4"));
            spec.layer_size1 = l1.trim().parse().expect("layer_size1");
            spec.layer_size2 = l2.trim().parse().expect("layer_size2");
            specs.push((format!("model {} {l1}x{l2}", m.trim()), spec));
        }
    }
    specs
}

/// One frozen-mode candidate at the demo's shapes: ours and PyTorch's, interleaved round by
/// round, then the ratio and the arithmetic bound.
fn run_heads(threads: usize, torch: Option<&str>, repeats: usize) {
    let Some(inputs) = heads::HeadInputs::from_env() else {
        println!("issue 23 heads: set HHNAS_SPIDER_DIR to train the demo's candidates");
        return;
    };
    let peak = heads::peak_gflops(threads);
    println!(
        "issue 23 heads: {}; {repeats} rounds, {threads} threads, peak f32 (gemm, 1024^3 per thread) {peak:.1} GFLOP/s, load average {}",
        inputs.describe(),
        load_average()
    );
    let specs = head_specs();
    let mut ours = vec![Vec::new(); specs.len()];
    let mut theirs = vec![Vec::new(); specs.len()];
    for round in 1..=repeats {
        for (i, (name, spec)) in specs.iter().enumerate() {
            let (secs, valid, hash) = heads::ours(&inputs, spec);
            println!(
                "  round {round}: {name:<20} ours    {secs:6.2} s (valid {valid:.4}, weights {hash})"
            );
            ours[i].push(secs);
            if let Some(py) = torch {
                let dir = heads::write_torch_inputs(&inputs, spec);
                // SPEC §3: Model 2 = + LLM branch, Model 3 = + rule branch, Model 4 = both.
                let model = match (spec.llm_branch, spec.rule_branch) {
                    (false, false) => 1,
                    (true, false) => 2,
                    (false, true) => 3,
                    (true, true) => 4,
                };
                let args = [
                    "--threads".to_string(),
                    threads.to_string(),
                    "--dir".into(),
                    dir.display().to_string(),
                    "--model".into(),
                    model.to_string(),
                ];
                if let Some(v) = torch_script_result(py, "torch-head.py", &args, "head") {
                    println!("  round {round}: {name:<20} PyTorch {v:6.2} s");
                    theirs[i].push(v);
                }
            }
        }
    }
    println!("issue 23 heads summary (mean ± sd over {repeats} rounds; speed ratio = PyTorch s / our s per round; bound = FLOPs / peak):");
    for (i, (name, spec)) in specs.iter().enumerate() {
        let (m, sd) = stats(&ours[i]);
        let flops = heads::candidate_flops(&inputs, spec);
        let bound = flops / (peak * 1e9);
        print!(
            "  {name:<20} ours {m:6.2} ± {sd:4.2} s, {:.2} GFLOP, bound {bound:.3} s, ours/bound {:.1}",
            flops / 1e9,
            m / bound
        );
        if theirs[i].len() == ours[i].len() {
            let (tm, tsd) = stats(&theirs[i]);
            let ratios: Vec<f64> = ours[i].iter().zip(&theirs[i]).map(|(a, b)| b / a).collect();
            let (rm, rsd) = stats(&ratios);
            print!(
                "; PyTorch {tm:6.2} ± {tsd:4.2} s, PyTorch/bound {:.1}; speed ours/PyTorch {rm:.2} ± {rsd:.2}x",
                tm / bound
            );
        }
        println!();
    }
    println!("  machine load average at the end: {}", load_average());
}

fn run_encoder(s: &Setup) {
    let encode_in = encode_inputs();
    if encode_in.is_none() {
        println!(
            "issue 23: set HHNAS_BENCH_ENCODER_DIR and HHNAS_SPIDER_DIR to time the encode stage"
        );
    }
    let questions = std::env::temp_dir().join("hhnas-bench-questions.json");
    let threads = s.threads.to_string();
    let steps = 10;
    let (mut enc_n, mut enc_t, mut ft_n, mut ft_b, mut ft_t) =
        (vec![], vec![], vec![], vec![], vec![]);
    println!(
        "issue 23: {} rounds, {} threads, machine load average at start: {}",
        s.repeats,
        s.threads,
        load_average()
    );
    for round in 1..=s.repeats {
        if let Some((assets, texts, model_dir)) = &encode_in {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let t = Instant::now();
            embed(
                assets,
                &refs,
                Pooling::Mean,
                parse_device("cpu").unwrap(),
                &mut |_, _| {},
            )
            .expect("embed");
            let rate = refs.len() as f64 / t.elapsed().as_secs_f64();
            enc_n.push(rate);
            println!("  round {round}: encode native {rate:7.1} questions/s");
            if let Some(py) = s.torch {
                std::fs::write(&questions, serde_json::to_string(&refs).unwrap()).unwrap();
                let args = [
                    "--threads".to_string(),
                    threads.clone(),
                    "--encode".into(),
                    model_dir.clone(),
                    questions.display().to_string(),
                ];
                if let Some(v) = torch_result(py, &args, "encode") {
                    println!("  round {round}: encode PyTorch {v:7.1} questions/s");
                    enc_t.push(v);
                }
            }
        }
        let v = native_finetune(&s.minilm, &s.shape, steps);
        println!("  round {round}: fine-tune native  {v:6.1} ex/s");
        ft_n.push(v);
        if std::env::var("HHNAS_BENCH_SKIP_BURN").is_err() {
            let v = (s.burn_finetune)();
            println!("  round {round}: fine-tune burn    {v:6.1} ex/s");
            ft_b.push(v);
        }
        if let Some(py) = s.torch {
            let args = [
                "--threads".to_string(),
                threads.clone(),
                "--finetune-minilm".into(),
                steps.to_string(),
            ];
            if let Some(v) = torch_result(py, &args, "MiniLM-sized h384 L6 v30522") {
                println!("  round {round}: fine-tune PyTorch {v:6.1} ex/s");
                ft_t.push(v);
            }
        }
    }
    println!(
        "issue 23 summary (mean ± sd over {} rounds; ratio = mean of the per-round ratios):",
        s.repeats
    );
    let line = |what: &str, unit: &str, ours: &[f64], theirs: &[f64], name: &str| {
        let (m, sd) = stats(ours);
        print!("  {what:<22} {m:8.1} ± {sd:5.1} {unit}");
        if !theirs.is_empty() && theirs.len() == ours.len() {
            let (tm, tsd) = stats(theirs);
            let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
            let (rm, rsd) = stats(&ratios);
            print!("   PyTorch {tm:8.1} ± {tsd:5.1}   ratio {name}/PyTorch {rm:.2} ± {rsd:.2}");
        }
        println!();
    };
    if !enc_n.is_empty() {
        line("encode, native", "q/s ", &enc_n, &enc_t, "native");
    }
    line("fine-tune, native", "ex/s", &ft_n, &ft_t, "native");
    if !ft_b.is_empty() {
        line("fine-tune, burn Flex", "ex/s", &ft_b, &ft_t, "burn");
    }
    println!("  machine load average at the end: {}", load_average());
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The encoder folder's assets and Spider's questions, if the environment names them.
fn encode_inputs() -> Option<(EncoderAssets, Vec<String>, String)> {
    let model = std::env::var("HHNAS_BENCH_ENCODER_DIR").ok()?;
    let spider = std::env::var_os("HHNAS_SPIDER_DIR")?;
    let src = hhnas_spider::read_spider_dir(std::path::Path::new(&spider)).expect("Spider");
    let ds =
        hhnas_spider::build_dataset(&src, &hhnas_spider::DataParams::default()).expect("dataset");
    let texts = ds.rows.iter().map(|r| r.question.clone()).collect();
    let cfg = EncoderConfig {
        source: EncoderSource::Dir(model.clone().into()),
        max_len: 64,
        freeze_embeddings: false,
    };
    let assets = prepare_encoder(&cfg, &ds).expect("encoder folder");
    Some((assets, texts, model))
}
