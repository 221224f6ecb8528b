//! A Hugging Face checkpoint's `config.json`, read once into typed fields (candle's
//! `bert.rs` does the same): an unsupported model type, activation or position scheme is
//! refused when the file is parsed, with the field and the fix in the message.

use std::path::Path;

use serde::Deserialize;

use crate::arch::{ArchKind, EncoderArch};
use crate::error::TrainError;

/// The fields of `config.json` this project reads; others are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct HfConfig {
    model_type: ModelType,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    vocab_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    /// Absent or null: the family's (BERT 0, RoBERTa 1).
    #[serde(default)]
    pad_token_id: Option<u32>,
    #[serde(default = "bert_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default = "bert_dropout")]
    hidden_dropout_prob: f64,
    #[serde(default)]
    #[allow(dead_code)] // checked when parsed: exact GELU is the only one implemented
    hidden_act: HiddenAct,
    #[serde(default)]
    #[allow(dead_code)] // checked when parsed: absolute positions are the only ones
    position_embedding_type: PositionEmbedding,
}

fn two() -> usize {
    2
}

fn bert_layer_norm_eps() -> f64 {
    1e-12
}

fn bert_dropout() -> f64 {
    0.1
}

/// `model_type`: the two families the encoder implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
struct ModelType(ArchKind);

impl TryFrom<String> for ModelType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "bert" => Ok(ModelType(ArchKind::Bert)),
            "roberta" => Ok(ModelType(ArchKind::Roberta)),
            other => Err(format!(
                "model_type = {other:?} is not supported: use a BERT or RoBERTa checkpoint \
                 (model_type \"bert\" or \"roberta\")"
            )),
        }
    }
}

/// `hidden_act`: the exact (erf) GELU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
enum HiddenAct {
    #[default]
    Gelu,
}

impl TryFrom<String> for HiddenAct {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "gelu" => Ok(HiddenAct::Gelu),
            other => Err(format!(
                "hidden_act = {other:?} is not supported: only exact \"gelu\""
            )),
        }
    }
}

/// `position_embedding_type`: learned absolute positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
enum PositionEmbedding {
    #[default]
    Absolute,
}

impl TryFrom<String> for PositionEmbedding {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "absolute" => Ok(PositionEmbedding::Absolute),
            other => Err(format!(
                "position_embedding_type = {other:?} is not supported: only \"absolute\""
            )),
        }
    }
}

impl HfConfig {
    /// Reads and checks `path`; every error names the file.
    pub(crate) fn read(path: &Path) -> Result<HfConfig, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            TrainError::file(
                path,
                format!(
                    "cannot read ({e}): the model directory needs the Hugging Face config.json"
                ),
            )
        })?;
        Self::parse(&text).map_err(|msg| TrainError::file(path, msg))
    }

    fn parse(text: &str) -> Result<HfConfig, String> {
        let conf: HfConfig = serde_json::from_str(text).map_err(|e| {
            format!("{e}. Fix: use the config.json saved with this checkpoint (transformers' save_pretrained)")
        })?;
        if conf.num_attention_heads == 0
            || !conf.hidden_size.is_multiple_of(conf.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                conf.hidden_size, conf.num_attention_heads
            ));
        }
        Ok(conf)
    }

    /// The encoder's architecture numbers.
    pub(crate) fn arch(&self) -> EncoderArch {
        let kind = self.model_type.0;
        let default_pad = match kind {
            ArchKind::Bert => 0,
            ArchKind::Roberta => 1,
        };
        EncoderArch {
            kind,
            hidden: self.hidden_size,
            layers: self.num_hidden_layers,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            vocab_size: self.vocab_size,
            max_positions: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            pad_token_id: self.pad_token_id.unwrap_or(default_pad),
            layer_norm_eps: self.layer_norm_eps,
            hidden_dropout: self.hidden_dropout_prob,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &str = r#"{"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 384,
        "initializer_range": 0.02, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
        "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute",
        "type_vocab_size": 2, "vocab_size": 30522}"#;

    #[test]
    fn a_bert_config_gives_its_numbers() {
        let a = HfConfig::parse(MINILM).unwrap().arch();
        assert_eq!(a.kind, ArchKind::Bert);
        assert_eq!(
            (a.hidden, a.layers, a.heads, a.intermediate),
            (384, 6, 12, 1536)
        );
        assert_eq!(
            (a.vocab_size, a.max_positions, a.type_vocab_size),
            (30522, 512, 2)
        );
        assert_eq!((a.pad_token_id, a.layer_norm_eps), (0, 1e-12));
    }

    #[test]
    fn roberta_defaults_its_padding_id_to_one() {
        let text = MINILM
            .replace("\"bert\"", "\"roberta\"")
            .replace("\"pad_token_id\": 0,", "");
        let a = HfConfig::parse(&text).unwrap().arch();
        assert_eq!(
            (a.kind, a.pad_token_id, a.position_offset()),
            (ArchKind::Roberta, 1, 2)
        );
    }

    #[test]
    fn what_is_not_implemented_is_refused_by_name() {
        let bad = |from: &str, to: &str| HfConfig::parse(&MINILM.replace(from, to)).unwrap_err();
        assert!(bad("\"bert\"", "\"gpt2\"").contains("model_type = \"gpt2\" is not supported"));
        assert!(bad("\"gelu\"", "\"relu\"").contains("hidden_act = \"relu\""));
        assert!(bad("\"absolute\"", "\"relative_key\"").contains("position_embedding_type"));
        assert!(bad("\"hidden_size\": 384", "\"hidden_size\": 100").contains("not divisible"));
        let e = bad("\"vocab_size\": 30522", "\"vocab_size\": -1");
        assert!(e.contains("-1") && e.contains("Fix:"), "{e}");
        let e = bad("\"num_hidden_layers\": 6,", "");
        assert!(e.contains("missing field `num_hidden_layers`"), "{e}");
    }
}
