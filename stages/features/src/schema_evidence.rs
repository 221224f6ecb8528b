//! Schema evidence: for each question and each class, how much of the question's wording
//! the class's schema holds.
//!
//! A question about "singers" and "concerts" names tables and columns of one database;
//! the neighbour and SVM evidence only see this through the training questions of each
//! class. Two values per class read the schema itself:
//! - **share**: of the question's distinct content words, the number found among the
//!   class's schema words, divided by (1 + their count);
//! - **cosine**: the cosine between the question's word TF-IDF and the class's schema
//!   words as one document (idf fitted on the class documents plus the bank questions).
//!
//! A class's schema words are its member databases' names, table names and column
//! names, split on `_` and case; a label of a user's labelled set (`label: NAME[ |
//! description: TEXT]`) gives its name and description instead. Words are the crate's
//! content tokens ([`crate::text::content_tokens`]: stopwords dropped, plurals folded),
//! so "singers" meets the column `singer_id`. The probe this follows
//! (`scripts/accuracy-probe.py`, `schema_share` and `schema_tfidf_cos`) used a shorter
//! stopword list and folded only a trailing "s"; otherwise the computation is the same
//! (scikit-learn's `TfidfVectorizer(sublinear_tf=True)`: 1 + ln(tf), smoothed idf,
//! L2-normalised rows).
//!
//! Neither value reads a row's label, so no row needs to leave itself out: a training
//! question's values look exactly like a new question's.

use std::collections::{BTreeSet, HashMap};

use hhnas_data::{ClassInfo, ClassKind};

use crate::char_ngrams::ClassScores;
use crate::text::content_tokens;
use crate::tfidf::{smoothed_idf, weigh, Sparse};

/// The folded content words of a class's schema (see the module documentation).
pub fn class_schema_words(class: &ClassInfo) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match &class.kind {
        ClassKind::Label { description } => {
            out.extend(content_tokens(&class.name));
            out.extend(content_tokens(description.as_deref().unwrap_or("")));
        }
        ClassKind::Database { tables } => {
            for member in &class.members {
                out.extend(content_tokens(member));
            }
            for table in tables {
                out.extend(content_tokens(&table.name));
                for column in &table.columns {
                    out.extend(content_tokens(column));
                }
            }
        }
    }
    out
}

/// Every class's schema words, indexed for both kinds of schema evidence.
pub struct SchemaIndex {
    /// Per class, its folded schema words.
    class_words: Vec<BTreeSet<String>>,
    vocab: HashMap<String, u32>,
    idf: Vec<f32>,
    /// For each word of the vocabulary, the classes whose schema holds it, with the
    /// word's weight in the class's normalised TF-IDF vector.
    postings: Vec<Vec<(u32, f32)>>,
}

impl SchemaIndex {
    /// Indexes `classes`; the idf is fitted on their schema documents plus `bank_texts`
    /// (the questions the other evidence draws on), as the probe fitted it.
    pub fn build(classes: &[ClassInfo], bank_texts: &[&str]) -> Self {
        let class_words: Vec<BTreeSet<String>> = classes.iter().map(class_schema_words).collect();
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut df: Vec<u32> = Vec::new();
        let mut count = |distinct: &BTreeSet<String>| {
            for w in distinct {
                let next = vocab.len() as u32;
                let id = *vocab.entry(w.clone()).or_insert(next);
                if id as usize == df.len() {
                    df.push(0);
                }
                df[id as usize] += 1;
            }
        };
        for words in &class_words {
            count(words);
        }
        for text in bank_texts {
            count(&content_tokens(text).into_iter().collect());
        }
        let idf = smoothed_idf(&df, classes.len() + bank_texts.len());
        let mut index = SchemaIndex {
            class_words,
            postings: vec![Vec::new(); vocab.len()],
            vocab,
            idf,
        };
        for class in 0..index.class_words.len() {
            // A schema document holds each of its words once: tf 1, weight = idf.
            let tokens: Vec<&str> = index.class_words[class]
                .iter()
                .map(String::as_str)
                .collect();
            for (id, w) in index.vector(&tokens) {
                index.postings[id as usize].push((class as u32, w));
            }
        }
        index
    }

    pub fn classes(&self) -> usize {
        self.class_words.len()
    }

    /// Per class, its folded schema words.
    pub fn class_words(&self) -> &[BTreeSet<String>] {
        &self.class_words
    }

    /// A word's idf, if a class document or bank question holds it.
    pub(crate) fn idf_of(&self, word: &str) -> Option<f32> {
        self.vocab.get(word).map(|&id| self.idf[id as usize])
    }

    /// The idf for a word seen nowhere: the largest (it is at least as rare as the
    /// rarest seen).
    pub(crate) fn unseen_idf(&self) -> f32 {
        self.idf.iter().copied().fold(1.0f32, f32::max)
    }

    /// The L2-normalised sublinear TF-IDF vector of `tokens` over the vocabulary (words
    /// outside it dropped), ids ascending.
    fn vector(&self, tokens: &[&str]) -> Sparse {
        let mut tf: HashMap<u32, u32> = HashMap::new();
        for t in tokens {
            if let Some(&id) = self.vocab.get(*t) {
                *tf.entry(id).or_insert(0) += 1;
            }
        }
        weigh(tf, &self.idf)
    }

    /// Per class, the share of each query's distinct content words found among the
    /// class's schema words, over (1 + their count): 0 for a query without content words.
    pub fn share_scores(&self, queries: &[&str]) -> ClassScores {
        let c = self.classes();
        let mut data = vec![0.0f32; queries.len() * c];
        for (q, out) in data.chunks_exact_mut(c).enumerate() {
            let words: BTreeSet<String> = content_tokens(queries[q]).into_iter().collect();
            let denominator = 1.0 + words.len() as f32;
            for (class, slot) in out.iter_mut().enumerate() {
                let found = words.intersection(&self.class_words[class]).count();
                *slot = found as f32 / denominator;
            }
        }
        ClassScores {
            rows: queries.len(),
            classes: c,
            data,
        }
    }

    /// Per class, the cosine between each query's word TF-IDF and the class's schema
    /// document: 0 where they share no word.
    pub fn cosine_scores(&self, queries: &[&str]) -> ClassScores {
        let c = self.classes();
        let mut data = vec![0.0f32; queries.len() * c];
        for (q, out) in data.chunks_exact_mut(c).enumerate() {
            let tokens = content_tokens(queries[q]);
            let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
            for (id, w) in self.vector(&tokens) {
                for &(class, cw) in &self.postings[id as usize] {
                    out[class as usize] += w * cw;
                }
            }
        }
        ClassScores {
            rows: queries.len(),
            classes: c,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hhnas_data::TableInfo;

    fn database(name: &str, tables: &[(&str, &[&str])]) -> ClassInfo {
        ClassInfo {
            name: name.to_string(),
            members: vec![name.to_string()],
            schema_text: format!("db: {name}"),
            kind: ClassKind::Database {
                tables: tables
                    .iter()
                    .map(|(t, cols)| TableInfo {
                        name: t.to_string(),
                        columns: cols.iter().map(|c| c.to_string()).collect(),
                    })
                    .collect(),
            },
        }
    }

    fn classes() -> Vec<ClassInfo> {
        vec![
            database(
                "concert_singer",
                &[
                    ("singer", &["Singer_ID", "Name", "Age"]),
                    ("concert", &["Year"]),
                ],
            ),
            database(
                "dog_kennels",
                &[("Dogs", &["dog_id", "breed_code", "Name"])],
            ),
        ]
    }

    fn at(s: &ClassScores, r: usize, c: usize) -> f32 {
        s.data[r * s.classes + c]
    }

    #[test]
    fn schema_words_split_names_and_fold_plurals() {
        let words = class_schema_words(&classes()[0]);
        // "id" is a stopword; "Name" folds to "nam".
        let expected: BTreeSet<String> = ["concert", "singer", "nam", "age", "year"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(words, expected);
        // "Dogs" and "dog_kennels" meet in one folded form; "breed_code" splits.
        let dogs = class_schema_words(&classes()[1]);
        for w in ["dog", "kennel", "breed", "cod", "nam"] {
            assert!(dogs.contains(w), "{w} missing from {dogs:?}");
        }
    }

    #[test]
    fn a_label_gives_its_name_and_description() {
        let label = ClassInfo::label("refund", Some("money returned for a purchase".into()));
        let words = class_schema_words(&label);
        let expected: BTreeSet<String> = ["refund", "monei", "returned", "purchas"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            words, expected,
            "the description's words, not the word 'description'"
        );
        let label = ClassInfo::label("late_delivery", None);
        let words: Vec<String> = class_schema_words(&label).into_iter().collect();
        assert_eq!(words, ["deliveri", "lat"], "a label name splits on `_`");
    }

    #[test]
    fn share_counts_distinct_question_words_found_in_the_schema() {
        let index = SchemaIndex::build(&classes(), &[]);
        let s = index.share_scores(&[
            "How many singers are in each concert?",
            "Show the names of dogs, dogs and more dogs",
            "the of and",
        ]);
        // Content words {singer, concert}: both in class 0's schema, none in class 1's.
        assert!((at(&s, 0, 0) - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(at(&s, 0, 1), 0.0);
        // {nam, dog}: "nam" in both schemas, "dog" (once, however often) in class 1's.
        assert!((at(&s, 1, 0) - 1.0 / 3.0).abs() < 1e-6);
        assert!((at(&s, 1, 1) - 2.0 / 3.0).abs() < 1e-6);
        // No content words: nothing found anywhere.
        assert_eq!(&s.data[2 * s.classes..], [0.0, 0.0]);
    }

    #[test]
    fn cosine_is_sklearn_tfidf_over_schema_documents_and_bank() {
        let bank = ["list every singer", "which breed is the oldest dog"];
        let index = SchemaIndex::build(&classes(), &bank);
        let s = index.cosine_scores(&["singer age", "singer singer age", "zebra"]);
        // By hand: 4 documents (2 schemas + 2 bank questions); "singer" is in class 0's
        // schema and the first bank question (df 2), "age" in class 0's schema only (df 1).
        let idf = |df: f32| (5.0f32 / (1.0 + df)).ln() + 1.0;
        // Class 0's document: its 5 words once each, with these dfs ("nam" is in both
        // schemas).
        let doc: Vec<(&str, f32)> = vec![
            ("age", idf(1.0)),
            ("concert", idf(1.0)),
            ("nam", idf(2.0)),
            ("singer", idf(2.0)),
            ("year", idf(1.0)),
        ];
        let doc_norm = doc.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        let weight = |word: &str| doc.iter().find(|(w, _)| *w == word).unwrap().1 / doc_norm;
        let expected = |tf_singer: f32| {
            let (qs, qa) = ((1.0 + tf_singer.ln()) * idf(2.0), idf(1.0));
            let norm = (qs * qs + qa * qa).sqrt();
            (qs * weight("singer") + qa * weight("age")) / norm
        };
        assert!(
            (at(&s, 0, 0) - expected(1.0)).abs() < 1e-5,
            "{}",
            at(&s, 0, 0)
        );
        // A repeated word counts sublinearly: 1 + ln 2, not 2.
        assert!(
            (at(&s, 1, 0) - expected(2.0)).abs() < 1e-5,
            "{}",
            at(&s, 1, 0)
        );
        assert_eq!(at(&s, 0, 1), 0.0, "no word of class 1's schema");
        // A word no document holds is dropped: no similarity anywhere.
        assert_eq!(&s.data[2 * s.classes..], [0.0, 0.0]);
        // The schema document's own words give cosine 1 to it.
        let own = index.cosine_scores(&["age concert name singer year"]);
        assert!((at(&own, 0, 0) - 1.0).abs() < 1e-5);
    }
}
