//! The closed sets of values in `pipeline.toml`, typed. Each keeps the spelling of the
//! file (what a frozen run config holds, and what cache keys hash), so reading and writing
//! a config round-trips exactly; an unknown value fails when the file is read, naming the
//! key and the accepted spellings.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[data] merge`: how Spider databases with near-identical schemas become classes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Merge {
    /// One class per database.
    None,
    /// Databases whose schema words overlap above `overlap_threshold` share a class.
    Overlap,
    /// Classes from `map_file`.
    Map,
}

/// `[data] source`: where a run's rows come from.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    /// Spider's folder (`spider_dir`): questions labelled with their database.
    #[default]
    Spider,
    /// A JSONL or CSV file of texts and labels (`labelled_file`).
    Labelled,
}

/// `[features] rules`: where the rule features' rules come from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RuleSource {
    /// Schema words of each class (no server).
    Schema,
    /// Written by the configured LLM server from each class's schema and questions.
    Llm,
}

/// `[features] judge`: who answers "does this question target this class?".
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Judge {
    /// A BM25 stand-in (no server).
    Lexical,
    /// The configured LLM server.
    Llm,
}

impl RuleSource {
    /// The spelling in the file (and in cache keys).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleSource::Schema => "schema",
            RuleSource::Llm => "llm",
        }
    }
}

impl Judge {
    /// The spelling in the file (and in cache keys).
    pub fn as_str(self) -> &'static str {
        match self {
            Judge::Lexical => "lexical",
            Judge::Llm => "llm",
        }
    }
}

/// `[encoder] source`: "scratch", "dir:PATH", "hf:ORG/NAME[@REV]" or "pypi:NAME==VERSION".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String", into = "String")]
pub enum SourceSpec {
    Scratch,
    Dir(PathBuf),
    Hf(String),
    Pypi(String),
}

impl TryFrom<String> for SourceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "scratch" {
            Ok(SourceSpec::Scratch)
        } else if let Some(p) = s.strip_prefix("dir:") {
            Ok(SourceSpec::Dir(PathBuf::from(p)))
        } else if let Some(id) = s.strip_prefix("hf:") {
            Ok(SourceSpec::Hf(id.to_string()))
        } else if let Some(spec) = s.strip_prefix("pypi:") {
            Ok(SourceSpec::Pypi(spec.to_string()))
        } else {
            Err(format!(
                "unknown source `{s}`; use \"scratch\", \"dir:PATH\", \"hf:ORG/NAME[@REV]\" \
                 or \"pypi:NAME==VERSION\""
            ))
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Scratch => write!(f, "scratch"),
            SourceSpec::Dir(p) => write!(f, "dir:{}", p.display()),
            SourceSpec::Hf(id) => write!(f, "hf:{id}"),
            SourceSpec::Pypi(spec) => write!(f, "pypi:{spec}"),
        }
    }
}

impl From<SourceSpec> for String {
    fn from(s: SourceSpec) -> String {
        s.to_string()
    }
}

/// `[train] device`: "cpu", "cpu:ndarray", "cpu:flex", "cuda" or "cuda:N", checked when the
/// file is read and kept as written (it is handed to the training crate as is).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceName(String);

impl DeviceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parsed(&self) -> hhnas_train::Device {
        hhnas_train::parse_device(&self.0).expect("checked when the config was read")
    }
}

impl TryFrom<String> for DeviceName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match hhnas_train::parse_device(&s) {
            Ok(_) => Ok(DeviceName(s)),
            Err(_) => Err(format!(
                "unknown device `{s}`; use \"cpu\" (or \"cpu:ndarray\" / \"cpu:flex\") or \
                 \"cuda:N\" (N = GPU index)"
            )),
        }
    }
}

impl From<DeviceName> for String {
    fn from(d: DeviceName) -> String {
        d.0
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_as_written() {
        for s in ["scratch", "dir:/m/x", "hf:org/name@abc", "pypi:gt-x==0.1.0"] {
            let spec = SourceSpec::try_from(s.to_string()).unwrap();
            assert_eq!(String::from(spec), s);
        }
        let e = SourceSpec::try_from("s3://x".to_string()).unwrap_err();
        assert!(
            e.contains("unknown source `s3://x`") && e.contains("pypi:"),
            "{e}"
        );
    }

    #[test]
    fn devices_are_checked_and_kept_as_written() {
        let d = DeviceName::try_from("cuda".to_string()).unwrap();
        assert_eq!(d.as_str(), "cuda");
        assert_eq!(d.parsed(), hhnas_train::Device::Cuda(0));
        let e = DeviceName::try_from("tpu:0".to_string()).unwrap_err();
        assert!(e.contains("unknown device `tpu:0`"), "{e}");
    }
}
