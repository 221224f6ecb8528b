//! The LLM judge: true/false per (question, shortlisted class).

use crate::bm25::{Bm25Ranker, Queries};
use crate::error::FeatureError;
use crate::llm::{Counters, LlmClient, LlmStats};
use crate::llm_rules::cut_schema;
use crate::matrix::FeatureMatrix;
use crate::Dataset;

/// The judge's prompt for one (question, class schema) pair.
pub fn judge_prompt(schema: &str, question: &str, max_schema_chars: usize) -> String {
    format!(
        "Can this question be answered using this database?\nSchema: {}\nQuestion: {}\nAnswer true or false.",
        cut_schema(schema, max_schema_chars),
        question.trim()
    )
}

/// The judge's prompt for one (text, class) pair of a labelled set, whose classes have a
/// name and perhaps a description instead of a schema.
pub fn judge_class_prompt(class_text: &str, text: &str, max_chars: usize) -> String {
    format!(
        "Does this text belong to this class?\nClass: {}\nText: {}\nAnswer true or false.",
        cut_schema(class_text, max_chars),
        text.trim()
    )
}

/// The prompt for `class`: about a database (Spider), or about class membership (a label
/// of a labelled set).
fn prompt_for(class: &crate::ClassInfo, text: &str, max_chars: usize) -> String {
    if class.is_label() {
        judge_class_prompt(&class.schema_text, text, max_chars)
    } else {
        judge_prompt(&class.schema_text, text, max_chars)
    }
}

/// Reads a true/false answer leniently: the first of `true`/`yes` or `false`/`no` (as
/// whole words, any case, Markdown and punctuation ignored) decides. `None` when neither
/// occurs.
pub fn parse_judgement(answer: &str) -> Option<bool> {
    for w in answer
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        match w.to_ascii_lowercase().as_str() {
            "true" | "yes" => return Some(true),
            "false" | "no" => return Some(false),
            _ => {}
        }
    }
    None
}

/// LLM features: for each text (a training row's shortlist leaves the row out of its
/// class document, see [`Queries`]), its BM25 shortlist of `k` classes is judged one class at
/// a time with [`judge_prompt`]; the `texts.len() x C` matrix has 1 where the answer was
/// true. Classes off the shortlist are 0; unparseable answers count as false (counted in
/// `LlmStats::unparseable`). A request that fails outright fails the stage (answers so far
/// stay cached, so a rerun continues).
pub fn judge_llm(
    ranker: &Bm25Ranker,
    ds: &Dataset,
    queries: &Queries,
    k: usize,
    client: &LlmClient,
) -> Result<(FeatureMatrix, LlmStats), FeatureError> {
    let c = ranker.num_classes();
    if c != ds.classes.len() {
        return Err(FeatureError::BadDataset {
            field: "classes".into(),
            problem: format!(
                "the ranker knows {c} classes, the dataset has {}",
                ds.classes.len()
            ),
            fix: "build the ranker from the same dataset".into(),
        });
    }
    let max_schema = client.config().max_schema_chars;
    let mut cells = Vec::new();
    let mut prompts = Vec::new();
    for (i, (t, shortlist)) in queries
        .texts
        .iter()
        .zip(queries.shortlists(ranker, k))
        .enumerate()
    {
        for (class, _) in shortlist {
            cells.push((i, class as usize));
            prompts.push(prompt_for(&ds.classes[class as usize], t, max_schema));
        }
    }
    let counters = Counters::default();
    let answers = client.chat_many_counted(&prompts, Some(&counters));
    let mut m = FeatureMatrix::zeros(queries.len(), c);
    let mut unparseable = 0u64;
    for ((i, class), a) in cells.into_iter().zip(answers) {
        match parse_judgement(&a?) {
            Some(true) => m.set(i, class, 1),
            Some(false) => {}
            None => unparseable += 1,
        }
    }
    let mut stats = counters.snapshot();
    stats.unparseable = unparseable;
    Ok((m, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judgements_parse_leniently() {
        assert_eq!(parse_judgement("true"), Some(true));
        assert_eq!(parse_judgement("**True**."), Some(true));
        assert_eq!(parse_judgement("Yes, it can."), Some(true));
        assert_eq!(parse_judgement("FALSE"), Some(false));
        assert_eq!(parse_judgement("No."), Some(false));
        assert_eq!(parse_judgement("Answer: false"), Some(false));
        assert_eq!(parse_judgement("I am not sure"), None);
        assert_eq!(parse_judgement("untrue"), None);
        assert_eq!(parse_judgement(""), None);
    }

    #[test]
    fn prompt_has_the_fixed_wording() {
        let p = judge_prompt("db: x | table t: a", "How many t?", 100);
        assert_eq!(
            p,
            "Can this question be answered using this database?\nSchema: db: x | table t: a\nQuestion: How many t?\nAnswer true or false."
        );
        assert!(judge_prompt(&"x".repeat(50), "q", 10).contains("xxxxxxxxxx …"));
    }
}
