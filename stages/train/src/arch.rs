//! The encoder's architecture numbers, from a checkpoint's `config.json`
//! ([`crate::hf_config`]) or a scratch encoder's settings.

use serde::{Deserialize, Serialize};

/// Model family; decides position offsets and special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchKind {
    Bert,
    Roberta,
}

/// Architecture numbers of the encoder (from `config.json` or the scratch settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderArch {
    pub kind: ArchKind,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab_size: usize,
    pub max_positions: usize,
    pub type_vocab_size: usize,
    pub pad_token_id: u32,
    pub layer_norm_eps: f64,
    pub hidden_dropout: f64,
}

impl EncoderArch {
    /// First position id (RoBERTa: padding_idx + 1, BERT: 0).
    pub fn position_offset(&self) -> usize {
        match self.kind {
            ArchKind::Bert => 0,
            ArchKind::Roberta => self.pad_token_id as usize + 1,
        }
    }
}
