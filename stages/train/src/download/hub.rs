//! `hf:ORG/NAME[@REVISION]` encoder sources: the Hugging Face hub's files, through
//! `hf-hub`'s client and its cache (shared with Python's huggingface_hub).

use std::path::{Path, PathBuf};

use super::MODEL_FILES;
use crate::error::TrainError;

/// Where `hf:` sources come from and go to.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// Hub URL (default: `HF_ENDPOINT`, else https://huggingface.co).
    pub endpoint: Option<String>,
    /// Download cache (default: `HF_HOME`/hub, else ~/.cache/huggingface/hub), shared with
    /// Python's huggingface_hub.
    pub cache_dir: Option<PathBuf>,
}

/// Download (or find in the cache) `ORG/NAME[@REVISION]` and return the snapshot directory
/// holding [`MODEL_FILES`]. Files already cached are not fetched again.
pub fn hf_download(id: &str, opts: &HubOptions) -> Result<PathBuf, TrainError> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};
    let err = |msg: String| TrainError::Encoder {
        source_desc: format!("hf:{id}"),
        msg,
    };
    let (name, revision) = match id.split_once('@') {
        Some((n, r)) => (n, r.to_string()),
        None => (id, "main".to_string()),
    };
    // Legacy hub ids have no organisation (`roberta-base`).
    if name.split('/').count() > 2 || name.split('/').any(str::is_empty) || revision.is_empty() {
        return Err(err(
            "expected hf:ORG/NAME or hf:ORG/NAME@REVISION, e.g. hf:FacebookAI/roberta-base".into(),
        ));
    }
    let mut builder = ApiBuilder::from_env().with_progress(false).with_retries(2);
    if let Some(e) = &opts.endpoint {
        builder = builder.with_endpoint(e.clone());
    }
    if let Some(c) = &opts.cache_dir {
        builder = builder.with_cache_dir(c.clone());
    }
    let api = builder
        .build()
        .map_err(|e| err(format!("cannot set up the Hugging Face client: {e}")))?;
    let repo = api.repo(Repo::with_revision(
        name.to_string(),
        RepoType::Model,
        revision,
    ));
    let mut dir = None;
    for file in MODEL_FILES {
        let path = repo.get(file).map_err(|e| {
            err(format!(
                "cannot download {file} from {} ({e}). Without network: download the model elsewhere (e.g. `huggingface-cli download {name}`), copy the directory here and use dir:PATH; or set HF_ENDPOINT to a reachable mirror",
                repo.url(file)
            ))
        })?;
        dir = path.parent().map(Path::to_path_buf);
    }
    dir.ok_or_else(|| err("the download gave no directory".into()))
}
