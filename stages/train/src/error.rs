use std::path::PathBuf;

/// Errors of the training stage. Input errors name the file or config field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// `[train] device` is not "cpu", "cpu:ndarray", "cpu:flex" or "cuda:N".
    #[error("[train] device = {given:?} is not a device: use \"cpu\" or \"cuda:N\" (N = GPU index, e.g. \"cuda:0\")")]
    BadDevice { given: String },
    /// CUDA was asked for but the binary lacks the `cuda` feature.
    #[error("[train] device = {given:?}: this binary was built without CUDA: rebuild with --features cuda, or use device = \"cpu\"")]
    NoCuda { given: String },
    /// A configuration value is out of range.
    #[error("{field} = {value}: {fix}")]
    Config {
        field: &'static str,
        value: String,
        fix: String,
    },
    /// The encoder source cannot be used.
    #[error("encoder {source_desc}: {msg}")]
    Encoder { source_desc: String, msg: String },
    /// A file of the encoder directory is missing or malformed.
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// The typed inputs disagree (split indices, feature matrices, class counts).
    #[error("training input: {0}")]
    Input(String),
    /// A checkpoint or weight blob cannot be decoded or does not fit the model.
    #[error("checkpoint/weights: {0}")]
    Weights(String),
    /// Tokenizer training or use failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

impl TrainError {
    /// Exit-code class for the CLI: 2 for configuration/environment errors the user fixes
    /// by editing the config or rebuilding, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            TrainError::BadDevice { .. }
            | TrainError::NoCuda { .. }
            | TrainError::Config { .. }
            | TrainError::Encoder { .. }
            | TrainError::File { .. } => 2,
            _ => 1,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        TrainError::File {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
