//! Rules written by an LLM from each class's schema and a few training questions.

use serde::{Deserialize, Serialize};

use crate::error::FeatureError;
use crate::llm::{Counters, LlmClient, LlmStats};
use crate::rules::{compile_regex, schema_rules, Rule, RuleKind, RuleSet};
use crate::text::all_tokens;
use crate::{ClassInfo, Dataset};

/// Parameters of [`llm_rules`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LlmRulesParams {
    /// Training questions shown per class (spread over the class's training rows).
    pub questions_per_class: usize,
    /// Re-asks after an unusable answer before the class falls back to schema rules.
    pub max_retries: u32,
}

impl Default for LlmRulesParams {
    fn default() -> Self {
        LlmRulesParams {
            questions_per_class: 8,
            max_retries: 2,
        }
    }
}

/// Most rules kept from one answer.
pub const MAX_RULES_PER_ANSWER: usize = 20;

pub(crate) fn cut_schema(schema: &str, max_chars: usize) -> String {
    if schema.chars().count() <= max_chars {
        schema.to_string()
    } else {
        let mut s: String = schema.chars().take(max_chars).collect();
        s.push_str(" …");
        s
    }
}

/// Up to `n` training questions of `class`, spread evenly over its training rows.
fn sample_questions(ds: &Dataset, class: u32, n: usize) -> Vec<&str> {
    let rows: Vec<&str> = ds
        .train
        .iter()
        .filter_map(|&i| ds.rows.get(i))
        .filter(|r| r.label == class)
        .map(|r| r.question.as_str())
        .collect();
    if rows.len() <= n {
        return rows;
    }
    (0..n).map(|i| rows[i * rows.len() / n]).collect()
}

/// The first prompt for one class: about a database for a Spider class,
/// about a class of texts for a label of a labelled set (its name and description).
pub fn rules_prompt(class: &ClassInfo, questions: &[&str], max_schema_chars: usize) -> String {
    let has_schema = !class.is_label();
    let (thing, texts, item) = if has_schema {
        (
            "questions asked about one database",
            "questions about this database",
            "database",
        )
    } else {
        ("texts of one class", "texts of this class", "class")
    };
    let mut p = String::new();
    p.push_str(&format!(
        "You write keyword rules that recognise {thing}.\n"
    ));
    if has_schema {
        p.push_str(&format!("Database name: {}\n", class.name));
        p.push_str(&format!(
            "Schema: {}\n",
            cut_schema(&class.schema_text, max_schema_chars)
        ));
    } else {
        p.push_str(&format!("Class name: {}\n", class.name));
        p.push_str(&format!(
            "About the class: {}\n",
            cut_schema(&class.schema_text, max_schema_chars)
        ));
    }
    if !questions.is_empty() {
        p.push_str(&format!("Example {texts}:\n"));
        for q in questions {
            p.push_str(&format!("- {}\n", q.trim()));
        }
    }
    let noun = if has_schema { "question" } else { "text" };
    p.push_str(&format!(
        "Answer with JSON only, exactly in this form:\n\
         {{\"class\": \"{}\", \"rules\": [{{\"any\": [\"word\", \"word\"]}}, {{\"all\": [\"word\", \"word\"]}}, {{\"regex\": \"pattern\"}}]}}\n\
         Give 3 to 10 rules. An \"any\" rule fires when a {noun} contains any of its words, \
         an \"all\" rule when it contains all of them, a \"regex\" rule when the case-insensitive \
         regular expression matches. Use words specific to this {item}, not common words.",
        class.name
    ));
    p
}

/// The re-ask prompt; `attempt` (2, 3, ...) keeps repeated re-asks distinct, so that none
/// is answered from the cache with the answer just rejected.
fn reask_prompt(first: &str, previous: &str, reason: &str, attempt: u32) -> String {
    let prev: String = previous.trim().chars().take(400).collect();
    format!(
        "{first}\n\nYour previous answer could not be used: {reason}.\n\
         Previous answer: {prev}\n\
         Answer again (attempt {attempt}) with only the JSON object, no other text."
    )
}

/// Strips a Markdown code fence (```json ... ```) if the answer has one.
fn strip_fence(answer: &str) -> &str {
    let t = answer.trim();
    if let Some(start) = t.find("```") {
        let after = &t[start + 3..];
        let after = after.strip_prefix("json").unwrap_or(after);
        let after = after.strip_prefix("JSON").unwrap_or(after);
        match after.find("```") {
            Some(end) => after[..end].trim(),
            None => after.trim(),
        }
    } else {
        t
    }
}

fn string_list(v: &serde_json::Value) -> Option<Vec<String>> {
    match v {
        serde_json::Value::String(s) => Some(vec![s.clone()]),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(String::from))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    }
}

fn clean_keywords(kw: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    kw.into_iter()
        .map(|k| k.trim().to_lowercase())
        .filter(|k| {
            let t = all_tokens(k);
            !t.is_empty() && seen.insert(t)
        })
        .collect()
}

/// Parses an LLM's rule answer: a JSON object `{"class": ..., "rules": [{"any": [...]} |
/// {"all": [...]} | {"regex": "..."} | {"phrase": "..."}]}`, optionally inside a ```json
/// fence or surrounded by prose. Unusable single rules are dropped; the answer is
/// rejected (with the reason) when no usable rule remains. At most
/// [`MAX_RULES_PER_ANSWER`] rules are kept.
pub fn parse_rule_answer(answer: &str) -> Result<Vec<RuleKind>, String> {
    let body = strip_fence(answer);
    let (Some(start), Some(end)) = (body.find('{'), body.rfind('}')) else {
        return Err("no JSON object found".into());
    };
    if end < start {
        return Err("no JSON object found".into());
    }
    let json: serde_json::Value = serde_json::from_str(&body[start..=end])
        .map_err(|e| format!("the JSON does not parse ({e})"))?;
    let Some(rules) = json.get("rules").and_then(|r| r.as_array()) else {
        return Err("the JSON object has no \"rules\" array".into());
    };
    let mut out: Vec<RuleKind> = Vec::new();
    let mut problems = Vec::new();
    for r in rules {
        let kind = if let Some(v) = r.get("any") {
            string_list(v)
                .map(clean_keywords)
                .filter(|k| !k.is_empty())
                .map(RuleKind::Any)
        } else if let Some(v) = r.get("all") {
            string_list(v)
                .map(clean_keywords)
                .filter(|k| !k.is_empty())
                .map(|k| {
                    if k.len() == 1 {
                        RuleKind::Any(k)
                    } else {
                        RuleKind::All(k)
                    }
                })
        } else if let Some(v) = r.get("phrase").and_then(|p| p.as_str()) {
            let p = v.trim().to_lowercase();
            (!all_tokens(&p).is_empty()).then_some(RuleKind::Phrase(p))
        } else if let Some(v) = r.get("regex").and_then(|p| p.as_str()) {
            match compile_regex(v) {
                Ok(_) => Some(RuleKind::Regex(v.to_string())),
                Err(e) => {
                    problems.push(format!("regex {v:?}: {e}"));
                    None
                }
            }
        } else {
            None
        };
        if let Some(k) = kind {
            if !out.contains(&k) {
                out.push(k);
            }
        }
        if out.len() >= MAX_RULES_PER_ANSWER {
            break;
        }
    }
    if out.is_empty() {
        let mut why = "no usable rule (each needs a non-empty \"any\"/\"all\" word list, \
                       a \"phrase\" or a valid \"regex\")"
            .to_string();
        if !problems.is_empty() {
            why.push_str(&format!("; {}", problems.join("; ")));
        }
        return Err(why);
    }
    Ok(out)
}

/// Rules written by the LLM, per class: the class's schema and up to
/// `questions_per_class` training questions go into the prompt; the answer must be the
/// JSON of [`parse_rule_answer`]. An unusable answer is re-asked (with the reason, so the
/// re-ask is a new prompt and not a cache hit) up to `max_retries` times, after which the
/// class gets its schema rules (logged; counted in `LlmStats::fallbacks`). A request that
/// fails outright (server down, budget spent, ...) fails the stage; answers received so far
/// stay cached, so a rerun continues. Only the training split is read.
pub fn llm_rules(
    ds: &Dataset,
    client: &LlmClient,
    params: &LlmRulesParams,
) -> Result<(RuleSet, LlmStats), FeatureError> {
    let counters = Counters::default();
    let max_schema = client.config().max_schema_chars;
    let n = ds.classes.len();
    let first: Vec<String> = ds
        .classes
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            rules_prompt(
                c,
                &sample_questions(ds, ci as u32, params.questions_per_class),
                max_schema,
            )
        })
        .collect();
    let mut got: Vec<Option<Vec<RuleKind>>> = vec![None; n];
    let mut pending: Vec<(usize, String)> = first.iter().cloned().enumerate().collect();
    let mut unparseable = 0u64;
    let mut round = 0u32;
    while !pending.is_empty() {
        let prompts: Vec<String> = pending.iter().map(|(_, p)| p.clone()).collect();
        let answers = client.chat_many_counted(&prompts, Some(&counters));
        let mut next = Vec::new();
        for ((ci, _), answer) in pending.into_iter().zip(answers) {
            let answer = answer?;
            match parse_rule_answer(&answer) {
                Ok(kinds) => got[ci] = Some(kinds),
                Err(reason) => {
                    unparseable += 1;
                    tracing::info!(class = %ds.classes[ci].name, %reason, round, "unusable LLM rule answer");
                    if round < params.max_retries {
                        next.push((ci, reask_prompt(&first[ci], &answer, &reason, round + 2)));
                    }
                }
            }
        }
        pending = next;
        round += 1;
    }

    let fallback = schema_rules(ds);
    let mut rules = Vec::new();
    let mut fallbacks = 0u64;
    for (ci, g) in got.into_iter().enumerate() {
        match g {
            Some(kinds) => rules.extend(kinds.into_iter().map(|kind| Rule {
                class: ci as u32,
                kind,
            })),
            None => {
                fallbacks += 1;
                tracing::warn!(
                    class = %ds.classes[ci].name,
                    tries = params.max_retries + 1,
                    "no usable LLM rules; the class falls back to its schema rules"
                );
                rules.extend(
                    fallback
                        .rules
                        .iter()
                        .filter(|r| r.class as usize == ci)
                        .cloned(),
                );
            }
        }
    }
    let mut stats = counters.snapshot();
    stats.unparseable = unparseable;
    stats.fallbacks = fallbacks;
    Ok((RuleSet { rules }, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fenced_and_bare_answers() {
        let a = "Here you go:\n```json\n{\"class\": \"x\", \"rules\": [{\"any\": [\"Singer\", \"singers\", \"\"]}, {\"all\": [\"stadium\", \"capacity\"]}, {\"regex\": \"concerts? in \\\\d{4}\"}]}\n```";
        let r = parse_rule_answer(a).unwrap();
        assert_eq!(
            r,
            vec![
                RuleKind::Any(vec!["singer".into()]),
                RuleKind::All(vec!["stadium".into(), "capacity".into()]),
                RuleKind::Regex("concerts? in \\d{4}".into()),
            ]
        );
        let b = "{\"rules\": [{\"all\": \"pets\"}]}";
        assert_eq!(
            parse_rule_answer(b).unwrap(),
            vec![RuleKind::Any(vec!["pets".into()])]
        );
    }

    #[test]
    fn rejects_unusable_answers() {
        for bad in [
            "I cannot help with that.",
            "{\"class\": \"x\"}",
            "{\"rules\": []}",
            "{\"rules\": [{\"regex\": \"(\"}]}",
            "{\"rules\": [{\"regex\": \".*\"}]}",
            "{\"rules\": [{\"any\": [\"\", \"  \"]}]}",
            "{\"rules\": [{\"any\": [\"a\"",
        ] {
            assert!(parse_rule_answer(bad).is_err(), "{bad}");
        }
        let e = parse_rule_answer("{\"rules\": [{\"regex\": \"(\"}]}").unwrap_err();
        assert!(e.contains("regex"), "{e}");
    }
}
