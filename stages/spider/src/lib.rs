//! hhnas-spider: Spider directory -> `Dataset` (rows, merged classes with schemas, stratified
//! split), per SPEC §1. Pure functions of the input bytes and `DataParams`; never touches
//! `cache/`.

pub mod dataset;
pub mod error;
pub mod fetch;
pub mod labelled;
pub mod merge;
pub mod paraphrase;
pub mod source;
pub mod stats;

pub use dataset::{build_dataset, DataParams, MergeRule};
pub use error::{DataError, SPIDER_DIR_FIX};
pub use labelled::{
    build_labelled_dataset, labelled_records, read_labelled_file, LabelledFormat, LabelledSource,
    LabelledSummary,
};
pub use paraphrase::paraphrase_keys;
pub use source::{
    check_spider_dir, from_workspace_root, read_spider_dir, SourceFile, SpiderSource,
};
pub use stats::{dataset_stats, ClassStats, DatasetStats};
