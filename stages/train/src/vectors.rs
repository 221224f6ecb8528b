//! The encode stage's output types: how token states become one vector per text, and the
//! vectors. Plain data, so the data, encode and native modules share them without a
//! circle.

use serde::{Deserialize, Serialize};

/// How token states become one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// Mean of the non-padding tokens' final states: what sentence-transformers models
    /// such as all-MiniLM-L6-v2 were trained to produce.
    #[default]
    Mean,
    /// The first token's final state (`<s>` / `[CLS]`), as the fine-tuned models use.
    Cls,
}

impl Pooling {
    pub fn name(&self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }
}

/// One vector per text, row-major. Each is L2-normalised and scaled by sqrt(dim), so a
/// component is of order 1 whatever the encoder (the head's initialisation assumes that).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embeddings {
    pub pooling: Pooling,
    pub dim: usize,
    pub rows: usize,
    pub data: Vec<f32>,
    /// blake3 of what decides the vectors (encoder weights, tokenizer, max_len, pooling).
    pub encoder_id: String,
}

impl Embeddings {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The vectors of rows `rows` (in that order).
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        Embeddings {
            pooling: self.pooling,
            dim: self.dim,
            rows: rows.len(),
            data: rows.iter().flat_map(|&i| self.row(i)).copied().collect(),
            encoder_id: self.encoder_id.clone(),
        }
    }

    /// What a head trained on these vectors needs new vectors to match.
    pub fn identity(&self) -> String {
        format!("{} {} {}", self.pooling.name(), self.dim, self.encoder_id)
    }
}
