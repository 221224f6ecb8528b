//! Rule sets, schema-derived rules and the rule feature matrix.

use std::collections::{BTreeMap, HashMap, HashSet};

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::error::FeatureError;
use crate::matrix::FeatureMatrix;
use crate::text::{all_tokens, fold, is_stopword, words};
use crate::Dataset;

/// What a rule tests about a question. Keywords are matched after the same tokenising and
/// plural folding as the question (see [`crate::text`]); a keyword of several words must
/// occur as a contiguous run of the question's words. Regexes are matched
/// case-insensitively against the raw question.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// Fires if any keyword occurs.
    Any(Vec<String>),
    /// Fires if every keyword occurs.
    All(Vec<String>),
    /// Fires if the phrase occurs as a run of words.
    Phrase(String),
    /// Fires if the regular expression matches.
    Regex(String),
}

/// One boolean rule, voting for `class`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The class (index into `Dataset::classes`) this rule is evidence for.
    pub class: u32,
    /// The test.
    pub kind: RuleKind,
}

/// An ordered list of rules; rule `j` is feature column `j`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RuleSet {
    /// Rules, grouped by class in ascending class order.
    pub rules: Vec<Rule>,
}

/// Size of the regex automaton we accept (LLM-written regexes included).
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, String> {
    let re = RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())?;
    if re.is_match("") {
        return Err("it matches the empty string, so it would fire on every question".into());
    }
    Ok(re)
}

impl RuleSet {
    /// The class of every rule, in column order: what per-class pooling groups by.
    pub fn column_classes(&self) -> Vec<u32> {
        self.rules.iter().map(|r| r.class).collect()
    }

    /// Number of rules (feature columns).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules per class, `num_classes` long.
    pub fn counts_per_class(&self, num_classes: usize) -> Vec<usize> {
        let mut c = vec![0; num_classes];
        for r in &self.rules {
            if let Some(x) = c.get_mut(r.class as usize) {
                *x += 1;
            }
        }
        c
    }

    /// Checks class ids against `num_classes`, that keyword lists are non-empty and contain
    /// words, and that regexes compile.
    pub fn validate(&self, num_classes: usize) -> Result<(), FeatureError> {
        for (index, r) in self.rules.iter().enumerate() {
            let bad = |problem: String, fix: &str| FeatureError::BadRule {
                index,
                class: r.class,
                problem,
                fix: fix.to_string(),
            };
            if r.class as usize >= num_classes {
                return Err(bad(
                    format!(
                        "class {} is out of range (dataset has {num_classes})",
                        r.class
                    ),
                    "rebuild the rules from the same dataset",
                ));
            }
            match &r.kind {
                RuleKind::Any(k) | RuleKind::All(k) => {
                    if k.is_empty() || k.iter().any(|w| all_tokens(w).is_empty()) {
                        return Err(bad(
                            format!("keyword list {k:?} is empty or has a keyword without words"),
                            "give each keyword at least one letter or digit",
                        ));
                    }
                }
                RuleKind::Phrase(p) => {
                    if all_tokens(p).is_empty() {
                        return Err(bad(
                            format!("phrase {p:?} has no words"),
                            "give the phrase at least one word",
                        ));
                    }
                }
                RuleKind::Regex(p) => {
                    compile_regex(p).map_err(|e| {
                        bad(
                            format!("regex {p:?} is unusable: {e}"),
                            "write a regex that compiles and does not match the empty string",
                        )
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// Parameters of [`schema_rules_with`]. [`schema_rules`] uses the defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SchemaRuleParams {
    /// Drop schema words that occur in the schemas of more than this share of classes
    /// (`name`, `date`, `type`, ...): they say nothing about which class a question is for.
    pub max_class_share: f64,
    /// Also emit an all-of rule per (table, column) pair.
    pub pair_rules: bool,
    /// For classes without usable schema words: how many distinctive training-question
    /// words become rules (one any-of rule each).
    pub fallback_words: usize,
    /// Also emit an any-of rule per column word found in the schemas of at most this
    /// share of classes (0 = no column-word rules).
    pub column_word_max_share: f64,
}

impl Default for SchemaRuleParams {
    fn default() -> Self {
        SchemaRuleParams {
            max_class_share: 0.2,
            pair_rules: true,
            fallback_words: 6,
            column_word_max_share: 0.1,
        }
    }
}

/// Deterministic rules from each class's schema (SPEC §2), with default parameters.
/// See [`schema_rules_with`].
pub fn schema_rules(ds: &Dataset) -> RuleSet {
    schema_rules_with(ds, &SchemaRuleParams::default())
}

/// Content words of a schema name: split on `_`/case/digits, lower-cased, stopwords
/// dropped, deduplicated by folded form (first spelling kept).
fn name_words(name: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    words(name)
        .into_iter()
        .filter(|w| !is_stopword(w))
        .filter(|w| seen.insert(fold(w)))
        .collect()
}

/// Deterministic rules from each class's schema:
/// - one any-of rule per table over the table name's words;
/// - one any-of rule per column word found in the schemas of at most
///   `column_word_max_share` of classes;
/// - (if `pair_rules`) one all-of rule per (table, column): the table's words plus the
///   column's words;
///
/// where words are split on `_` and camelCase, lower-cased, stopwords and words found in
/// the schemas of more than `max_class_share` of classes dropped, and duplicate rules of
/// a class dropped. A class left without rules gets one any-of rule for each of its
/// `fallback_words` most distinctive training-question words (logged as a warning).
/// Only the training split is read.
pub fn schema_rules_with(ds: &Dataset, params: &SchemaRuleParams) -> RuleSet {
    let n_classes = ds.classes.len();
    // Class document frequency of each folded schema word.
    let mut class_df: HashMap<String, usize> = HashMap::new();
    for class in &ds.classes {
        let mut in_class = HashSet::new();
        for t in class.schema_tables().iter() {
            for w in name_words(&t.name) {
                in_class.insert(fold(&w));
            }
            for c in &t.columns {
                for w in name_words(c) {
                    in_class.insert(fold(&w));
                }
            }
        }
        for w in in_class {
            *class_df.entry(w).or_default() += 1;
        }
    }
    let limit = (params.max_class_share * n_classes as f64).max(1.0);
    let keep = |w: &String| class_df.get(&fold(w)).is_some_and(|&df| df as f64 <= limit);

    let mut rules = Vec::new();
    let mut fallback_classes = Vec::new();
    for (ci, class) in ds.classes.iter().enumerate() {
        let ci = ci as u32;
        let mut seen: HashSet<(bool, Vec<String>)> = HashSet::new();
        let mut class_rules = Vec::new();
        let mut push = |all: bool, kw: Vec<String>, class_rules: &mut Vec<Rule>| {
            let mut sig: Vec<String> = kw.iter().map(|w| fold(w)).collect();
            sig.sort();
            if seen.insert((all && kw.len() > 1, sig)) {
                let kind = if all && kw.len() > 1 {
                    RuleKind::All(kw)
                } else {
                    RuleKind::Any(kw)
                };
                class_rules.push(Rule { class: ci, kind });
            }
        };
        for t in class.schema_tables().iter() {
            let tw: Vec<String> = name_words(&t.name).into_iter().filter(keep).collect();
            if !tw.is_empty() {
                push(false, tw.clone(), &mut class_rules);
            }
            let tfold: HashSet<String> = tw.iter().map(|w| fold(w)).collect();
            for c in &t.columns {
                let cw: Vec<String> = name_words(c)
                    .into_iter()
                    .filter(keep)
                    .filter(|w| !tfold.contains(&fold(w)))
                    .collect();
                if cw.is_empty() {
                    continue;
                }
                for w in &cw {
                    let df = class_df.get(&fold(w)).copied().unwrap_or(usize::MAX);
                    if df as f64 <= params.column_word_max_share * n_classes as f64 {
                        push(false, vec![w.clone()], &mut class_rules);
                    }
                }
                if !params.pair_rules {
                    continue;
                }
                let mut kw = tw.clone();
                kw.extend(cw);
                push(true, kw, &mut class_rules);
            }
        }
        // A class without schema words, or a label of a labelled set (whose only "schema"
        // is its name), also gets rules from its training texts.
        if class_rules.is_empty() || class.is_label() {
            fallback_classes.push(ci);
        }
        rules.extend(class_rules);
    }

    if !fallback_classes.is_empty() && params.fallback_words > 0 {
        let words_of = question_word_rules(ds, &fallback_classes, params.fallback_words);
        for &ci in &fallback_classes {
            let ws = words_of.get(&ci).cloned().unwrap_or_default();
            if !ds.classes[ci as usize].is_label() {
                tracing::warn!(
                    class = %ds.classes[ci as usize].name,
                    words = ?ws,
                    "class has no usable schema words; rules come from its training questions"
                );
            }
            for w in ws {
                rules.push(Rule {
                    class: ci,
                    kind: RuleKind::Any(vec![w]),
                });
            }
        }
        rules.sort_by_key(|r| r.class); // stable: keeps each class's own order
    }
    RuleSet { rules }
}

/// The `n` most distinctive training-question words of each class in `classes`:
/// score = (share of the class's training questions containing the word) x
/// ln(C / number of classes whose training questions contain it); words in fewer than 2
/// of the class's questions are skipped when the class has at least 4 questions. Ties are
/// broken by the word. Returns the first spelling seen of each folded word.
pub(crate) fn question_word_rules(
    ds: &Dataset,
    classes: &[u32],
    n: usize,
) -> BTreeMap<u32, Vec<String>> {
    let c = ds.classes.len().max(1);
    let mut per_class_df: Vec<HashMap<String, usize>> = vec![HashMap::new(); c];
    let mut per_class_n = vec![0usize; c];
    let mut spelling: HashMap<String, String> = HashMap::new();
    for &i in &ds.train {
        let Some(row) = ds.rows.get(i) else { continue };
        let l = row.label as usize;
        if l >= c {
            continue;
        }
        per_class_n[l] += 1;
        let mut seen = HashSet::new();
        for w in words(&row.question) {
            if is_stopword(&w) {
                continue;
            }
            let f = fold(&w);
            spelling.entry(f.clone()).or_insert(w);
            if seen.insert(f.clone()) {
                *per_class_df[l].entry(f).or_default() += 1;
            }
        }
    }
    let mut classes_with: HashMap<&str, usize> = HashMap::new();
    for m in &per_class_df {
        for w in m.keys() {
            *classes_with.entry(w.as_str()).or_default() += 1;
        }
    }
    let mut out = BTreeMap::new();
    for &ci in classes {
        let l = ci as usize;
        if l >= c || per_class_n[l] == 0 {
            out.insert(ci, Vec::new());
            continue;
        }
        let min_df = if per_class_n[l] >= 4 { 2 } else { 1 };
        let mut scored: Vec<(f64, &String)> = per_class_df[l]
            .iter()
            .filter(|(_, &df)| df >= min_df)
            .map(|(w, &df)| {
                let idf = (c as f64 / classes_with[w.as_str()] as f64).ln();
                (df as f64 / per_class_n[l] as f64 * idf, w)
            })
            .filter(|(s, _)| *s > 0.0)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        out.insert(
            ci,
            scored
                .into_iter()
                .take(n)
                .map(|(_, w)| spelling[w].clone())
                .collect(),
        );
    }
    out
}

/// A rule prepared for matching.
enum Compiled {
    Any(Vec<Vec<String>>),
    All(Vec<Vec<String>>),
    Phrase(Vec<String>),
    Regex(Regex),
    Never,
}

fn keyword_seqs(kw: &[String]) -> Vec<Vec<String>> {
    kw.iter()
        .map(|w| all_tokens(w))
        .filter(|s| !s.is_empty())
        .collect()
}

fn compile(rules: &RuleSet) -> Vec<Compiled> {
    rules
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| match &r.kind {
            RuleKind::Any(k) => Compiled::Any(keyword_seqs(k)),
            RuleKind::All(k) => {
                let s = keyword_seqs(k);
                if s.is_empty() {
                    Compiled::Never
                } else {
                    Compiled::All(s)
                }
            }
            RuleKind::Phrase(p) => {
                let s = all_tokens(p);
                if s.is_empty() {
                    Compiled::Never
                } else {
                    Compiled::Phrase(s)
                }
            }
            RuleKind::Regex(p) => match compile_regex(p) {
                Ok(re) => Compiled::Regex(re),
                Err(e) => {
                    tracing::warn!(rule = i, pattern = %p, error = %e, "unusable regex never fires");
                    Compiled::Never
                }
            },
        })
        .collect()
}

fn contains_seq(tokens: &[String], set: &HashSet<&str>, seq: &[String]) -> bool {
    match seq.len() {
        0 => false,
        1 => set.contains(seq[0].as_str()),
        n => tokens.windows(n).any(|w| w == seq),
    }
}

fn fire(rule: &Compiled, text: &str, tokens: &[String], set: &HashSet<&str>) -> bool {
    match rule {
        Compiled::Any(seqs) => seqs.iter().any(|s| contains_seq(tokens, set, s)),
        Compiled::All(seqs) => seqs.iter().all(|s| contains_seq(tokens, set, s)),
        Compiled::Phrase(s) => contains_seq(tokens, set, s),
        Compiled::Regex(re) => re.is_match(text),
        Compiled::Never => false,
    }
}

/// The rule outcomes of each text: a `texts.len() x rules.len()` 0/1 matrix, column `j`
/// being rule `j`. A regex that does not compile never fires (warned; use
/// [`RuleSet::validate`] to reject such rule sets up front).
pub fn rule_features(rules: &RuleSet, texts: &[&str]) -> FeatureMatrix {
    let compiled = compile(rules);
    let cols = compiled.len();
    let mut m = FeatureMatrix::zeros(texts.len(), cols);
    if cols == 0 || texts.is_empty() {
        return m;
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(texts.len());
    let chunk_rows = texts.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (chunk, out) in texts
            .chunks(chunk_rows)
            .zip(m.data.chunks_mut(chunk_rows * cols))
        {
            let compiled = &compiled;
            s.spawn(move || {
                for (t, row) in chunk.iter().zip(out.chunks_mut(cols)) {
                    let tokens = all_tokens(t);
                    let set: HashSet<&str> = tokens.iter().map(|s| s.as_str()).collect();
                    for (r, v) in compiled.iter().zip(row.iter_mut()) {
                        *v = fire(r, t, &tokens, &set) as u8;
                    }
                }
            });
        }
    });
    m
}

/// Per text, the number of fired rules of each class (`num_classes` long each).
pub fn rule_votes(rules: &RuleSet, features: &FeatureMatrix, num_classes: usize) -> Vec<Vec<u32>> {
    (0..features.rows)
        .map(|i| {
            let mut v = vec![0u32; num_classes];
            for (r, &f) in rules.rules.iter().zip(features.row(i)) {
                if f != 0 {
                    if let Some(x) = v.get_mut(r.class as usize) {
                        *x += 1;
                    }
                }
            }
            v
        })
        .collect()
}
