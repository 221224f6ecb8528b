//! Semantic schema evidence: the schema share of [`crate::SchemaIndex`] with words
//! matched by meaning instead of spelling.
//!
//! A user who asks about "vocalists" of a database whose table is `singer` shares no
//! word, and no character n-gram, with its schema: the lexical evidence gives that class
//! nothing. Here each of the question's content words counts for a class by its cosine,
//! in the encoder's space, to the nearest of the class's schema words, above
//! [`COSINE_FLOOR`] and rescaled (1 for the word itself); a class's value is the
//! idf-weighted mean of those over the question's words.
//! Words are the crate's folded content tokens, embedded one at a time by the caller's
//! encoder ([`WordVectors`]). Like the schema share it reads no row's label, so a
//! training question's values look exactly like a new question's.

use std::collections::{BTreeSet, HashMap};

use crate::char_ngrams::ClassScores;
use crate::schema_evidence::SchemaIndex;
use crate::text::content_tokens;

/// A word's cosine to a schema word counts above this, rescaled to 0..1 (the word itself
/// scores 1). Unrelated single words sit at cosines of 0.2-0.5 in a sentence encoder's
/// space; of the floors 0, 0.3, ..., 0.8 this one made the evidence's best class right
/// most often on Spider's training questions (72.4 % against 71.2 % at 0; the lexical
/// share: 71.4 %).
pub const COSINE_FLOOR: f32 = 0.6;

/// L2-normalised vectors of single words, in the encoder's space.
pub struct WordVectors {
    dim: usize,
    index: HashMap<String, usize>,
    data: Vec<f32>,
}

impl WordVectors {
    /// `data` holds one `dim`-value vector per word of `words`, in order; each is
    /// normalised here (a zero vector stays zero).
    pub fn new(words: Vec<String>, dim: usize, mut data: Vec<f32>) -> Self {
        assert_eq!(data.len(), words.len() * dim, "one vector per word");
        for v in data.chunks_exact_mut(dim.max(1)) {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        let index = words.into_iter().enumerate().map(|(i, w)| (w, i)).collect();
        WordVectors { dim, index, data }
    }

    fn get(&self, word: &str) -> Option<&[f32]> {
        let i = *self.index.get(word)?;
        Some(&self.data[i * self.dim..(i + 1) * self.dim])
    }
}

/// The distinct words whose vectors [`SchemaIndex::semantic_scores`] reads for
/// `queries`: every class's schema words and the queries' content words, sorted.
pub fn semantic_words(index: &SchemaIndex, queries: &[&str]) -> Vec<String> {
    let mut words: BTreeSet<String> = index.class_words().iter().flatten().cloned().collect();
    for q in queries {
        words.extend(content_tokens(q));
    }
    words.into_iter().collect()
}

impl SchemaIndex {
    /// Per class, the idf-weighted mean over each query's distinct content words of the
    /// word's cosine to the nearest of the class's schema words (above [`COSINE_FLOOR`],
    /// rescaled); 0 for a query without content words or without their vectors.
    pub fn semantic_scores(&self, vectors: &WordVectors, queries: &[&str]) -> ClassScores {
        let classes = self.classes();
        // Each schema word's vector once, and per class the positions of its words.
        let mut schema_ids: HashMap<&str, usize> = HashMap::new();
        let mut schema_vectors: Vec<&[f32]> = Vec::new();
        let class_members: Vec<Vec<usize>> = self
            .class_words()
            .iter()
            .map(|words| {
                words
                    .iter()
                    .filter_map(|w| {
                        let v = vectors.get(w)?;
                        Some(*schema_ids.entry(w.as_str()).or_insert_with(|| {
                            schema_vectors.push(v);
                            schema_vectors.len() - 1
                        }))
                    })
                    .collect()
            })
            .collect();
        let unseen_idf = self.unseen_idf();
        // Per distinct query word: its best cosine within each class, computed once.
        let mut best: HashMap<String, Vec<f32>> = HashMap::new();
        let mut cosines = vec![0.0f32; schema_vectors.len()];
        let mut data = vec![0.0f32; queries.len() * classes];
        for (q, out) in data.chunks_exact_mut(classes.max(1)).enumerate() {
            let words: BTreeSet<String> = content_tokens(queries[q]).into_iter().collect();
            let mut weight_sum = 0.0f32;
            for w in words {
                let Some(v) = vectors.get(&w) else { continue };
                let weight = self.idf_of(&w).unwrap_or(unseen_idf);
                let row = best.entry(w).or_insert_with(|| {
                    for (c, s) in cosines.iter_mut().zip(&schema_vectors) {
                        *c = dot(v, s);
                    }
                    class_members
                        .iter()
                        .map(|m| m.iter().map(|&i| cosines[i]).fold(0.0f32, f32::max))
                        .map(|c| ((c - COSINE_FLOOR) / (1.0 - COSINE_FLOOR)).max(0.0))
                        .collect()
                });
                for (slot, b) in out.iter_mut().zip(row.iter()) {
                    *slot += weight * b;
                }
                weight_sum += weight;
            }
            if weight_sum > 0.0 {
                out.iter_mut().for_each(|x| *x /= weight_sum);
            }
        }
        ClassScores {
            rows: queries.len(),
            classes,
            data,
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hhnas_data::{ClassInfo, ClassKind, TableInfo};

    fn database(name: &str, columns: &[&str]) -> ClassInfo {
        ClassInfo {
            name: name.to_string(),
            members: vec![name.to_string()],
            schema_text: format!("db: {name}"),
            kind: ClassKind::Database {
                tables: vec![TableInfo {
                    name: name.to_string(),
                    columns: columns.iter().map(|c| c.to_string()).collect(),
                }],
            },
        }
    }

    /// Two-dimensional "meanings": singer and vocalist point the same way, stadium
    /// and arena another.
    fn vectors(words: &[String]) -> WordVectors {
        let meaning = |w: &str| match w {
            "singer" | "vocalist" => [1.0, 0.1],
            "stadium" | "arena" | "capacity" => [0.1, 1.0],
            _ => [0.5, 0.5],
        };
        let data = words.iter().flat_map(|w| meaning(w)).collect();
        WordVectors::new(words.to_vec(), 2, data)
    }

    #[test]
    fn a_synonym_of_a_schema_word_counts_for_its_class_where_the_lexical_share_gives_nothing() {
        let classes = [
            database("singer", &["singer_id", "name"]),
            database("stadium", &["stadium_id", "capacity"]),
        ];
        let index = SchemaIndex::build(&classes, &["How many singers are there?"]);
        let queries = ["How many vocalists are there?", "Which arena is largest?"];
        let words = semantic_words(&index, &queries);
        assert!(words.contains(&"vocalist".to_string()), "{words:?}");
        let s = index.semantic_scores(&vectors(&words), &queries);
        assert!(s.data[0] > s.data[1], "vocalist: {:?}", &s.data[..2]);
        assert!(s.data[3] > s.data[2], "arena: {:?}", &s.data[2..]);
        let lexical = index.share_scores(&queries);
        assert_eq!(
            lexical.data,
            vec![0.0; 4],
            "no schema word is spelled alike"
        );
    }

    #[test]
    fn a_question_without_known_words_gets_zeros() {
        let classes = [database("singer", &["name"])];
        let index = SchemaIndex::build(&classes, &[]);
        let s = index.semantic_scores(&vectors(&[]), &["the of a", "vocalist"]);
        assert_eq!(s.data, vec![0.0, 0.0]);
    }
}
