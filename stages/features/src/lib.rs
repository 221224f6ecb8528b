//! hhnas-features: the feature branches of HHNAS-AM (SPEC §2).
//!
//! - Rule features (Model 3's CNN branch): [`schema_rules`] or [`llm_rules`] build a
//!   [`RuleSet`]; [`rule_features`] turns questions into a 0/1 [`FeatureMatrix`], one column
//!   per rule in a fixed order.
//! - LLM features (Model 2's CNN branch): a [`Bm25Ranker`] over each class's schema and
//!   training questions shortlists k classes per question; [`judge_llm`] asks an
//!   OpenAI-compatible server whether each shortlisted class's database can answer the
//!   question, [`judge_lexical`] is the deterministic stand-in without a server.
//! - [`LlmClient`]: blocking OpenAI chat-completions client with bounded concurrency,
//!   retries with exponential backoff, a request budget and an answer cache behind the
//!   [`AnswerCache`] trait (the engine implements it; [`MemAnswerCache`] and
//!   [`DirAnswerCache`] ship here for tests and scripts).
//!
//! - Character n-gram evidence: [`CharNgramIndex`] gives each question its TF-IDF cosine
//!   to the nearest training question of every class, and
//!   [`CharNgramIndex::svm_scores`] its cross-fitted one-vs-rest linear SVM decision
//!   values.
//! - Paraphrase-partner evidence: [`partner_scores`] gives each question, for every
//!   class, the probability that the class's bank holds its paraphrase partner (a
//!   logistic regression over pair features, fitted on the bank's own pairs).
//! - Schema evidence: [`SchemaIndex`] gives each question, for every class, the share of
//!   its content words found among the class's schema words and the cosine of its word
//!   TF-IDF to them; [`SchemaIndex::semantic_scores`] the share with words matched by
//!   their encoder vectors ([`WordVectors`]), so a synonym of a schema word counts.
//!
//! Everything here is a pure function of its typed inputs (plus the LLM's answers, which
//! are cached by the hash of everything that determines them).

mod bm25;
mod char_ngrams;
mod char_svm;
mod error;
mod judge;
mod llm;
mod llm_rules;
mod matrix;
mod partner;
mod rules;
mod schema_evidence;
mod schema_semantic;
pub mod text;
mod tfidf;

pub use bm25::{judge_lexical, label_hit_rate, label_top1_rate, Bm25Params, Bm25Ranker, Queries};
pub use char_ngrams::{CharNgramIndex, ClassScores};
pub use char_svm::CharSvmParams;
pub use error::FeatureError;
pub use judge::{judge_class_prompt, judge_llm, judge_prompt, parse_judgement};
pub use llm::{AnswerCache, DirAnswerCache, LlmClient, LlmConfig, LlmStats, MemAnswerCache};
pub use llm_rules::{llm_rules, parse_rule_answer, rules_prompt, LlmRulesParams};
pub use matrix::FeatureMatrix;
pub use partner::{partner_scores, Dense, PartnerBank, CANDIDATES};
pub use rules::{
    rule_features, rule_votes, schema_rules, schema_rules_with, Rule, RuleKind, RuleSet,
    SchemaRuleParams,
};
pub use schema_evidence::{class_schema_words, SchemaIndex};
pub use schema_semantic::{semantic_words, WordVectors};

/// The dataset types this crate reads (from `hhnas-data`).
pub use hhnas_data::{ClassInfo, ClassKind, Dataset, Row, TableInfo};
