//! Hugging Face BERT/RoBERTa `model.safetensors` -> burn encoder (burn-store).

use burn::store::{
    BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::encoder::WeightsRef;
use crate::error::TrainError;
use crate::model::TextEncoder;

/// What a weight load did, by burn parameter path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    pub applied: Vec<String>,
    pub missing: Vec<String>,
    pub unused: Vec<String>,
}

/// HF key -> burn path of [`TextEncoder`]; applied in order.
pub const KEY_REMAP: &[(&str, &str)] = &[
    (r"^(bert|roberta)\.", ""),
    (r"^embeddings\.LayerNorm\.", "embeddings.layer_norm."),
    (
        r"^encoder\.layer\.([0-9]+)\.attention\.self\.(query|key|value)\.",
        "transformer.layers.$1.mha.$2.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.attention\.output\.dense\.",
        "transformer.layers.$1.mha.output.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.attention\.output\.LayerNorm\.",
        "transformer.layers.$1.norm_1.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.intermediate\.dense\.",
        "transformer.layers.$1.pwff.linear_inner.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.output\.dense\.",
        "transformer.layers.$1.pwff.linear_outer.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.output\.LayerNorm\.",
        "transformer.layers.$1.norm_2.",
    ),
];

/// Load `model.safetensors` onto the encoder; fails if the file changed since
/// `prepare_encoder` or if any encoder tensor is missing.
pub fn load_encoder_weights<B: Backend>(
    enc: &mut TextEncoder<B>,
    w: &WeightsRef,
) -> Result<LoadReport, TrainError> {
    let bytes = std::fs::read(&w.path)
        .map_err(|e| TrainError::file(&w.path, format!("cannot read weights: {e}")))?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if hash != w.blake3 {
        return Err(TrainError::file(
            &w.path,
            "changed since the encoder stage read it (blake3 differs): re-run the encoder stage",
        ));
    }
    load_encoder_bytes(enc, bytes, &w.path.display().to_string())
}

/// The encoder's weights as `model.safetensors` bytes that [`load_encoder_bytes`] reads
/// back exactly: PyTorch's layout (linear weights transposed, LayerNorm `weight`/`bias`)
/// under the encoder's own parameter paths, no metadata, so the same weights always give
/// the same bytes.
pub(crate) fn encoder_safetensors<B: Backend>(enc: &TextEncoder<B>) -> Result<Vec<u8>, TrainError> {
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .clear_metadata();
    enc.save_into(&mut store)
        .map_err(|e| TrainError::Weights(format!("cannot write the encoder's safetensors: {e}")))?;
    store
        .get_bytes()
        .map_err(|e| TrainError::Weights(format!("cannot write the encoder's safetensors: {e}")))
}

/// Same as [`load_encoder_weights`] from bytes already in memory.
pub fn load_encoder_bytes<B: Backend>(
    enc: &mut TextEncoder<B>,
    bytes: Vec<u8>,
    what: &str,
) -> Result<LoadReport, TrainError> {
    let remap = KeyRemapper::from_patterns(KEY_REMAP.to_vec())
        .map_err(|e| TrainError::Weights(format!("key remap: {e}")))?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(remap)
        .allow_partial(true);
    let res = enc
        .load_from(&mut store)
        .map_err(|e| TrainError::Weights(format!("{what}: {e}")))?;
    if !res.errors.is_empty() {
        return Err(TrainError::Weights(format!(
            "{what}: {} tensors did not fit the encoder (shape/dtype): {:?}",
            res.errors.len(),
            res.errors.iter().take(5).collect::<Vec<_>>()
        )));
    }
    // burn-store lists LayerNorm `weight`/`bias` as unused even when it applied them under
    // their burn names `gamma`/`beta`; keep only the truly unused keys.
    let applied: std::collections::HashSet<&str> = res.applied.iter().map(String::as_str).collect();
    let renamed = |k: &str| {
        k.strip_suffix(".weight")
            .map(|p| format!("{p}.gamma"))
            .or_else(|| k.strip_suffix(".bias").map(|p| format!("{p}.beta")))
    };
    let report = LoadReport {
        applied: res.applied.clone(),
        missing: res.missing.iter().map(|(p, _)| p.clone()).collect(),
        unused: res
            .unused
            .iter()
            .filter(|k| !renamed(k).is_some_and(|r| applied.contains(r.as_str())))
            .cloned()
            .collect(),
    };
    if !report.missing.is_empty() {
        return Err(TrainError::Weights(format!(
            "{what}: {} encoder tensors are missing from the checkpoint (e.g. {:?}): is this a BERT/RoBERTa encoder checkpoint?",
            report.missing.len(),
            report.missing.iter().take(5).collect::<Vec<_>>()
        )));
    }
    tracing::info!(
        applied = report.applied.len(),
        unused = report.unused.len(),
        "loaded encoder weights from {what}"
    );
    Ok(report)
}
