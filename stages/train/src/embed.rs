//! The encode stage: run an encoder once over texts and keep one vector per text, so
//! candidates with a frozen encoder train only their head (sentence-transformers'
//! `encode`: batches of similar length, pooling, normalisation).

use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::backend::{dispatch, BackendTask, Device};
use crate::data::derive_seed;
use crate::encoder::{tokenize, EncoderAssets};
use crate::error::TrainError;
use crate::model::TextEncoder;
use crate::native::NativeEncoder;
use crate::vectors::{Embeddings, Pooling};
use crate::weights::Renumber;

/// The identity of the vectors `assets` and `pooling` produce.
pub fn encoder_id(assets: &EncoderAssets, pooling: Pooling) -> String {
    let key = serde_json::json!({
        "v": 1,
        "source_weights": assets.weights.as_ref().map(|w| w.blake3.clone()),
        "tok": blake3::hash(assets.tokenizer_json.as_bytes()).to_hex().to_string(),
        "arch": assets.arch,
        "max_len": assets.max_len,
        "pooling": pooling,
    });
    blake3::hash(key.to_string().as_bytes())
        .to_hex()
        .to_string()
}

/// Texts per forward pass. Sorted by length, so padding stays small.
const ENCODE_BATCH: usize = 64;

/// Encode `texts` with the encoder of `assets` (its pretrained weights; a scratch encoder
/// is initialised from a fixed seed). `progress(done, total)` is called after each batch.
///
/// `device` `"cpu"` runs the native CPU path ([`crate::native`], 3-4x burn's speed);
/// `"cpu:flex"` and `"cpu:ndarray"` run burn's encoder on that backend, `"cuda:N"` on the GPU.
pub fn embed(
    assets: &EncoderAssets,
    texts: &[&str],
    pooling: Pooling,
    device: Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Embeddings, TrainError> {
    let tokens = tokenize(assets, texts)?;
    let data = if device.native_cpu() {
        encode_native(assets, &tokens, pooling, progress)?
    } else {
        dispatch(
            device,
            EmbedTask {
                assets,
                tokens: &tokens,
                pooling,
                pad_to: device.static_len(assets.max_len),
                progress,
            },
        )??
    };
    Ok(Embeddings {
        pooling,
        dim: assets.arch.hidden,
        rows: texts.len(),
        data,
        encoder_id: encoder_id(assets, pooling),
    })
}

/// The encoder of `assets` as burn builds it for every stage: seeded initialisation, then
/// the pretrained weights if any.
pub(crate) fn build_encoder<B: Backend>(
    assets: &EncoderAssets,
    device: &B::Device,
) -> Result<TextEncoder<B>, TrainError> {
    B::seed(device, derive_seed(0, crate::data::P_INIT, 0));
    let mut encoder = TextEncoder::<B>::new(&assets.arch, device).map(&mut Renumber(0));
    if let Some(w) = &assets.weights {
        crate::hf::load_encoder_weights(&mut encoder, w)?;
    }
    Ok(encoder)
}

/// Texts per batch of the native path: the rows of its matrix products (about 1,000 tokens
/// for Spider's questions).
const NATIVE_BATCH: usize = 64;

/// The native CPU path: batches of similar length spread over rayon's threads, each batch
/// single-threaded, so the vectors do not depend on the thread count.
fn encode_native(
    assets: &EncoderAssets,
    tokens: &[Vec<u32>],
    pooling: Pooling,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f32>, TrainError> {
    use burn::backend::flex::{Flex, FlexDevice};
    use rayon::prelude::*;
    let native =
        NativeEncoder::from_module(&build_encoder::<Flex>(assets, &FlexDevice)?, &assets.arch)?;
    let dim = assets.arch.hidden;
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by_key(|&i| tokens[i].len());
    let batches: Vec<&[usize]> = order.chunks(NATIVE_BATCH).collect();
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let results = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            batches
                .par_iter()
                .map_with(tx, |tx, idx| {
                    let seqs: Vec<&[u32]> = idx.iter().map(|&i| tokens[i].as_slice()).collect();
                    let v = native.pooled(&seqs, pooling);
                    // The receiver lives until every sender is gone.
                    let _ = tx.send(idx.len());
                    v
                })
                .collect::<Vec<_>>()
        });
        let mut done = 0;
        for n in rx {
            done += n;
            progress(done, tokens.len());
        }
        worker.join()
    })
    .map_err(|_| TrainError::Input("native encoder: a worker thread panicked".into()))?;
    let mut out = vec![0f32; tokens.len() * dim];
    for (idx, v) in batches.iter().zip(results) {
        let v = v?;
        for (k, &i) in idx.iter().enumerate() {
            let row = &v[k * dim..(k + 1) * dim];
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            let scale = (dim as f32).sqrt();
            for (o, &x) in out[i * dim..(i + 1) * dim].iter_mut().zip(row) {
                *o = x / norm * scale;
            }
        }
    }
    Ok(out)
}

struct EmbedTask<'a> {
    assets: &'a EncoderAssets,
    tokens: &'a [Vec<u32>],
    pooling: Pooling,
    pad_to: Option<usize>,
    progress: &'a mut dyn FnMut(usize, usize),
}

impl BackendTask for EmbedTask<'_> {
    type Out = Result<Vec<f32>, TrainError>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Out {
        encode_all::<B::InnerBackend>(self, &device)
    }
}

fn encode_all<B: Backend>(task: EmbedTask, device: &B::Device) -> Result<Vec<f32>, TrainError> {
    let EmbedTask {
        assets,
        tokens,
        pooling,
        pad_to,
        progress,
    } = task;
    let encoder = build_encoder::<B>(assets, device)?;
    let dim = assets.arch.hidden;
    let pad = assets.arch.pad_token_id;
    let mut out = vec![0f32; tokens.len() * dim];
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by_key(|&i| tokens[i].len());
    let mut done = 0;
    for idx in order.chunks(ENCODE_BATCH) {
        let longest = idx
            .iter()
            .map(|&i| tokens[i].len())
            .max()
            .unwrap_or(1)
            .max(1);
        let len = pad_to.map_or(longest, |p| p.max(longest));
        let mut ids = Vec::with_capacity(idx.len() * len);
        let mut mask = Vec::with_capacity(idx.len() * len);
        for &i in idx {
            let t = &tokens[i];
            for p in 0..len {
                ids.push(t.get(p).map_or(pad, |&x| x) as i64);
                mask.push(p >= t.len());
            }
        }
        let b = idx.len();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, len]), device);
        let mask_pad = Tensor::<B, 2, Bool>::from_data(TensorData::new(mask, [b, len]), device);
        let hidden = encoder.forward(ids, mask_pad.clone());
        let pooled = match pooling {
            Pooling::Cls => hidden.slice([0..b, 0..1, 0..dim]).reshape([b, dim]),
            Pooling::Mean => {
                let keep = mask_pad.bool_not().float().reshape([b, len, 1]);
                let sum = (hidden * keep.clone()).sum_dim(1).reshape([b, dim]);
                sum / keep.sum_dim(1).reshape([b, 1]).clamp_min(1.0)
            }
        };
        let norm = pooled
            .clone()
            .powf_scalar(2.0)
            .sum_dim(1)
            .sqrt()
            .clamp_min(1e-12);
        let scaled = pooled / norm * (dim as f64).sqrt();
        let v: Vec<f32> = scaled
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| TrainError::Weights(format!("encoder output: {e:?}")))?;
        for (k, &i) in idx.iter().enumerate() {
            out[i * dim..(i + 1) * dim].copy_from_slice(&v[k * dim..(k + 1) * dim]);
        }
        done += b;
        progress(done, tokens.len());
    }
    Ok(out)
}
