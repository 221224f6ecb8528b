//! Stored weights applied to new texts (`predict`) or to dataset rows (`evaluate`).

use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::backend::{dispatch, BackendTask, Device};
use crate::data::{check_matrix, eval_batches, make_batch, Examples, Sources};
use crate::encoder::{tokenize, EncoderAssets};
use crate::error::TrainError;
use crate::evidence::EvidenceHead;
use crate::input::FeatureMatrix;
use crate::model::HeadKind;
use crate::model::{Classifier, ClassifierShape, Head};
use crate::prepare::{set_extra_inputs, shape_of, sources};
use crate::spec::{ModelSpec, TrainData};
use crate::training::{build, predict_argmax, Net};
use crate::vectors::Embeddings;
use crate::weights::{load_record, unpack_weights};

/// New texts to score with stored weights. Feature matrices (for the branches the model
/// has) and, for a frozen-encoder head, the texts' vectors from [`crate::embed`] (same
/// encoder and pooling as in training) have one row per text.
#[derive(Debug, Clone, Copy)]
pub struct PredictInput<'a> {
    pub texts: &'a [String],
    pub embeddings: Option<&'a Embeddings>,
    pub llm: Option<&'a FeatureMatrix>,
    pub rules: Option<&'a FeatureMatrix>,
    pub rule_classes: Option<&'a [u32]>,
}

struct InferTask<'a> {
    assets: &'a EncoderAssets,
    shape: ClassifierShape,
    record: &'a [u8],
    ex: Examples,
    sources: Sources<'a>,
    probs: bool,
}

enum InferOut {
    Probs(Vec<Vec<f32>>),
    Pred(Vec<u32>),
}

impl BackendTask for InferTask<'_> {
    type Out = Result<InferOut, TrainError>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Out {
        if self.sources.embeddings.is_some() {
            match self.shape.head {
                HeadKind::Dense => infer::<B::InnerBackend, Head<B::InnerBackend>>(self, &device),
                HeadKind::Evidence => {
                    infer::<B::InnerBackend, EvidenceHead<B::InnerBackend>>(self, &device)
                }
            }
        } else {
            infer::<B::InnerBackend, Classifier<B::InnerBackend>>(self, &device)
        }
    }
}

fn infer<B: Backend, M: Net<B>>(t: InferTask, device: &B::Device) -> Result<InferOut, TrainError> {
    let model: M = build(t.assets, &t.shape, 0, device, false)?;
    let model = load_record(model, t.record, device)?;
    if !t.probs {
        return Ok(InferOut::Pred(predict_argmax(
            &model, &t.ex, &t.sources, device,
        )));
    }
    let mut out = vec![Vec::new(); t.ex.len()];
    for idx in eval_batches(&t.ex) {
        let logits = model.logits(make_batch::<B>(&t.ex, &idx, &t.sources, None, device));
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

fn check_header<'w>(
    weights: &'w [u8],
    assets: &EncoderAssets,
    spec: &ModelSpec,
    num_classes: usize,
    embeddings: Option<&Embeddings>,
) -> Result<(ClassifierShape, &'w [u8]), TrainError> {
    let (h, rec) = unpack_weights(weights)?;
    let shape = shape_of(
        spec,
        h.shape.channels,
        num_classes,
        h.shape.pool,
        h.shape.head,
    )?;
    let want = crate::weights::header_of(&shape, assets, embeddings.map(Embeddings::identity));
    if h != want {
        let hint = match (&h.frozen, embeddings) {
            (Some(_), None) => {
                ": these weights are a frozen-encoder head; pass the texts' encoder vectors"
            }
            (None, Some(_)) => ": these weights include the encoder; pass no encoder vectors",
            _ => "",
        };
        return Err(TrainError::Weights(format!(
            "the weights were trained for {h:?}, but the spec/encoder/classes describe {want:?}: use the spec and encoder assets the weights came from{hint}"
        )));
    }
    Ok((shape, rec))
}

/// The encoder of a fine-tuned candidate's `weights` (no frozen-encoder head: the
/// weights must hold the encoder) as `model.safetensors` bytes, PyTorch layout: write
/// them to a file and name it in [`EncoderAssets::weights`] (with its blake3), and every
/// stage runs the tuned encoder as it runs a pretrained one. The `warm` encoder mode
/// tunes the encoder once this way and serves its vectors frozen.
pub fn tuned_encoder(
    assets: &EncoderAssets,
    spec: &ModelSpec,
    num_classes: usize,
    weights: &[u8],
) -> Result<Vec<u8>, TrainError> {
    use burn::backend::flex::{Flex, FlexDevice};
    let (shape, rec) = check_header(weights, assets, spec, num_classes, None)?;
    let model: Classifier<Flex> = build(assets, &shape, 0, &FlexDevice, false)?;
    let model = load_record(model, rec, &FlexDevice)?;
    crate::hf::encoder_safetensors(&model.encoder)
}

/// The feature sources of an inference: one row per text (`predict`) or per dataset row
/// (`evaluate`), `rows` of them.
struct Features<'a> {
    embeddings: Option<&'a Embeddings>,
    llm: Option<&'a FeatureMatrix>,
    rules: Option<&'a FeatureMatrix>,
    rule_classes: Option<&'a [u32]>,
    rows: usize,
}

/// Checks `weights` against the spec and the features, then runs the model over
/// `examples` (`texts[k]` is example k, feature row `rows[k]`).
#[allow(clippy::too_many_arguments)]
fn infer_examples(
    encoder: &EncoderAssets,
    spec: &ModelSpec,
    num_classes: usize,
    weights: &[u8],
    f: Features,
    texts: &[&str],
    rows: Vec<usize>,
    labels: Vec<u32>,
    device: Device,
    probs: bool,
) -> Result<InferOut, TrainError> {
    let (mut shape, rec) = check_header(weights, encoder, spec, num_classes, f.embeddings)?;
    check_matrix("llm", f.llm, spec.llm_branch, f.rows)?;
    check_matrix("rule", f.rules, spec.rule_branch, f.rows)?;
    set_extra_inputs(&mut shape, f.embeddings, f.rows, encoder)?;
    // A frozen-encoder head reads vectors; otherwise the texts are tokenized.
    let tokens = if f.embeddings.is_some() {
        Vec::new()
    } else {
        tokenize(encoder, texts)?
    };
    let ex = Examples {
        tokens,
        labels,
        rows,
        pad_to: device.static_len(encoder.max_len),
    };
    let src = sources(
        f.llm,
        f.rules,
        f.rule_classes,
        f.embeddings,
        &shape,
        encoder.arch.pad_token_id,
    )?;
    let task = InferTask {
        assets: encoder,
        shape,
        record: rec,
        ex,
        sources: src,
        probs,
    };
    dispatch(device, task)?
}

/// Softmax class probabilities, one row per text.
pub fn predict(
    encoder: &EncoderAssets,
    spec: &ModelSpec,
    num_classes: usize,
    weights: &[u8],
    input: PredictInput,
    device: Device,
) -> Result<Vec<Vec<f32>>, TrainError> {
    let n = input.texts.len();
    let texts: Vec<&str> = input.texts.iter().map(String::as_str).collect();
    let f = Features {
        embeddings: input.embeddings,
        llm: input.llm,
        rules: input.rules,
        rule_classes: input.rule_classes,
        rows: n,
    };
    let out = infer_examples(
        encoder,
        spec,
        num_classes,
        weights,
        f,
        &texts,
        (0..n).collect(),
        vec![0; n],
        device,
        true,
    )?;
    match out {
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
    device: Device,
) -> Result<f64, TrainError> {
    let labels: Vec<u32> = rows
        .iter()
        .filter_map(|&i| data.dataset.rows.get(i).map(|r| r.label))
        .collect();
    match infer_rows(encoder, spec, weights, data, rows, device, false)? {
        InferOut::Pred(_) if labels.is_empty() => Ok(0.0),
        InferOut::Pred(p) => {
            let ok = p.iter().zip(&labels).filter(|(a, b)| a == b).count();
            Ok(ok as f64 / labels.len() as f64)
        }
        InferOut::Probs(_) => unreachable!("predictions requested"),
    }
}

/// Softmax class probabilities of `weights` on the dataset rows `rows`, one vector per
/// row (what ensemble selection averages).
pub fn row_probabilities(
    encoder: &EncoderAssets,
    spec: &ModelSpec,
    weights: &[u8],
    data: TrainData,
    rows: &[usize],
    device: Device,
) -> Result<Vec<Vec<f32>>, TrainError> {
    match infer_rows(encoder, spec, weights, data, rows, device, true)? {
        InferOut::Probs(p) => Ok(p),
        InferOut::Pred(_) => unreachable!("probabilities requested"),
    }
}

/// The model of `weights` over the dataset rows `rows`.
fn infer_rows(
    encoder: &EncoderAssets,
    spec: &ModelSpec,
    weights: &[u8],
    data: TrainData,
    rows: &[usize],
    device: Device,
    probs: bool,
) -> Result<InferOut, TrainError> {
    let ds = data.dataset;
    let f = Features {
        embeddings: data.embeddings,
        llm: data.llm_features,
        rules: data.rule_features,
        rule_classes: data.rule_classes,
        rows: ds.rows.len(),
    };
    let picked: Vec<&crate::input::Row> = rows
        .iter()
        .map(|&i| {
            ds.rows
                .get(i)
                .ok_or_else(|| TrainError::Input(format!("row {i} >= {} rows", ds.rows.len())))
        })
        .collect::<Result<_, _>>()?;
    let texts: Vec<&str> = picked.iter().map(|r| r.question.as_str()).collect();
    let labels: Vec<u32> = picked.iter().map(|r| r.label).collect();
    infer_examples(
        encoder,
        spec,
        ds.classes.len(),
        weights,
        f,
        &texts,
        rows.to_vec(),
        labels,
        device,
        probs,
    )
}

#[cfg(test)]
mod tests {
    use burn::backend::flex::{Flex, FlexDevice};
    use burn::tensor::{Bool, Int, Tensor, TensorData};

    use super::*;
    use crate::arch::{ArchKind, EncoderArch};
    use crate::model::{BranchPool, TextEncoder};
    use crate::spec::OptimizerKind;
    use crate::weights::{header_of, pack_weights, record_bytes};

    /// The tuned encoder read back from its safetensors bytes is the classifier's encoder:
    /// the same hidden states, bit for bit, and the same bytes on a second export.
    #[test]
    fn tuned_encoder_round_trips_through_safetensors() {
        let arch = EncoderArch {
            kind: ArchKind::Bert,
            hidden: 16,
            layers: 2,
            heads: 2,
            intermediate: 32,
            vocab_size: 50,
            max_positions: 20,
            type_vocab_size: 2,
            pad_token_id: 0,
            layer_norm_eps: 1e-12,
            hidden_dropout: 0.1,
        };
        let assets = EncoderAssets {
            source: "scratch".into(),
            tokenizer_json: String::new(),
            arch: arch.clone(),
            max_len: 16,
            freeze_embeddings: false,
            weights: None,
        };
        let spec = ModelSpec {
            llm_branch: false,
            rule_branch: false,
            learning_rate: 1e-3,
            optimizer: OptimizerKind::AdamW,
            layer_size1: 8,
            layer_size2: 4,
            dropout: 0.1,
            kernel_size: 1,
        };
        let shape = shape_of(&spec, 1, 3, BranchPool::GlobalMax, HeadKind::Dense).unwrap();
        let dev = FlexDevice;
        let model: Classifier<Flex> = build(&assets, &shape, 11, &dev, false).unwrap();
        let weights = pack_weights(
            &header_of(&shape, &assets, None),
            &record_bytes(&model).unwrap(),
        );
        let bytes = tuned_encoder(&assets, &spec, 3, &weights).unwrap();
        assert_eq!(bytes, tuned_encoder(&assets, &spec, 3, &weights).unwrap());
        // A differently seeded encoder with the bytes loaded.
        Flex::seed(&dev, 99);
        let mut other = TextEncoder::<Flex>::new(&arch, &dev);
        let report = crate::hf::load_encoder_bytes(&mut other, bytes, "tuned").unwrap();
        assert!(
            report.missing.is_empty() && report.unused.is_empty(),
            "{report:?}"
        );
        let ids = Tensor::<Flex, 2, Int>::from_data(
            TensorData::new(vec![2i64, 7, 9, 3, 0, 5, 11, 4], [2, 4]),
            &dev,
        );
        let pad = Tensor::<Flex, 2, Bool>::from_data(
            TensorData::new(
                vec![false, false, false, false, false, false, true, true],
                [2, 4],
            ),
            &dev,
        );
        let a: Vec<f32> = model
            .encoder
            .forward(ids.clone(), pad.clone())
            .into_data()
            .to_vec()
            .unwrap();
        let b: Vec<f32> = other.forward(ids, pad).into_data().to_vec().unwrap();
        assert_eq!(a, b);
    }
}
