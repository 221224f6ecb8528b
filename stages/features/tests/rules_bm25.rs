//! Schema rules, rule features, BM25 and the lexical judge on a hand-made dataset.

mod common;

use common::tiny_dataset;
use hhnas_features::{
    judge_lexical, rule_features, rule_votes, schema_rules, schema_rules_with, Bm25Ranker,
    FeatureMatrix, Queries, Rule, RuleKind, RuleSet, SchemaRuleParams,
};

fn kinds(rs: &RuleSet, class: u32) -> Vec<RuleKind> {
    rs.rules
        .iter()
        .filter(|r| r.class == class)
        .map(|r| r.kind.clone())
        .collect()
}

fn any(w: &[&str]) -> RuleKind {
    RuleKind::Any(w.iter().map(|s| s.to_string()).collect())
}

fn all(w: &[&str]) -> RuleKind {
    RuleKind::All(w.iter().map(|s| s.to_string()).collect())
}

#[test]
fn schema_rules_come_from_tables_and_columns() {
    let ds = tiny_dataset();
    // Keep every word (3 classes: the default share would drop words of 1 class in 3).
    let p = SchemaRuleParams {
        max_class_share: 1.0,
        column_word_max_share: 0.0,
        ..SchemaRuleParams::default()
    };
    let rs = schema_rules_with(&ds, &p);
    let c0 = kinds(&rs, 0);
    // Table rules, table+column pairs; `id` is a stopword, `name` kept at share 1.0.
    assert!(c0.contains(&any(&["stadium"])), "{c0:?}");
    assert!(c0.contains(&all(&["stadium", "capacity"])), "{c0:?}");
    assert!(c0.contains(&all(&["singer", "age"])), "{c0:?}");
    assert!(c0.contains(&all(&["concert", "theme"])), "{c0:?}");
    // "concert name" under table concert: the table word is not repeated.
    assert!(c0.contains(&all(&["concert", "name"])), "{c0:?}");
    assert!(!c0
        .iter()
        .any(|k| matches!(k, RuleKind::All(w) if w.iter().any(|x| x == "id"))));
    // camelCase / underscore splitting, lower-casing.
    let c1 = kinds(&rs, 1);
    assert!(
        c1.contains(&any(&["has", "pet"])) || c1.contains(&any(&["pet"])),
        "{c1:?}"
    );
    assert!(c1.contains(&all(&["student", "stu"])), "{c1:?}");
    assert!(
        c1.contains(&all(&["student", "name"])),
        "LName -> l, name: {c1:?}"
    );
    assert!(c1.contains(&all(&["pets", "type"])), "{c1:?}");
    // pet_age under Pets -> [pets, age] (pet folds into pets, not repeated).
    assert!(c1.contains(&all(&["pets", "age"])), "{c1:?}");
    // Rules are grouped by class in ascending order, deterministically.
    assert!(rs.rules.windows(2).all(|w| w[0].class <= w[1].class));
    assert_eq!(rs, schema_rules_with(&ds, &p));
    assert!(rs.validate(3).is_ok());
}

#[test]
fn common_schema_words_are_dropped() {
    let ds = tiny_dataset();
    // `age` occurs in both schemas (2 of 3 classes): dropped at share 0.5, kept at 1.0.
    let strict = schema_rules_with(
        &ds,
        &SchemaRuleParams {
            max_class_share: 0.5,
            ..SchemaRuleParams::default()
        },
    );
    let mentions_age = |rs: &RuleSet| {
        rs.rules.iter().any(|r| match &r.kind {
            RuleKind::Any(w) | RuleKind::All(w) => w.iter().any(|x| x == "age"),
            _ => false,
        })
    };
    assert!(!mentions_age(&strict));
    assert!(mentions_age(&schema_rules_with(
        &ds,
        &SchemaRuleParams {
            max_class_share: 1.0,
            ..SchemaRuleParams::default()
        }
    )));
}

#[test]
fn class_without_tables_gets_training_question_words() {
    let ds = tiny_dataset();
    let rs = schema_rules(&ds);
    let c2 = kinds(&rs, 2);
    assert!(!c2.is_empty());
    assert!(c2.contains(&any(&["memo"])), "{c2:?}");
    assert!(c2.contains(&any(&["budget"])), "{c2:?}");
    // Only training rows: "zebra" occurs in a validation row of this class.
    assert!(
        !c2.iter().any(|k| format!("{k:?}").contains("zebra")),
        "{c2:?}"
    );
}

#[test]
fn rule_features_fire_with_plural_folding() {
    let rs = RuleSet {
        rules: vec![
            Rule {
                class: 0,
                kind: any(&["singer"]),
            },
            Rule {
                class: 0,
                kind: all(&["stadium", "capacity"]),
            },
            Rule {
                class: 1,
                kind: RuleKind::Phrase("pet type".into()),
            },
            Rule {
                class: 1,
                kind: RuleKind::Regex(r"\bcats?\b".into()),
            },
            Rule {
                class: 1,
                kind: any(&["countries", "concert hall"]),
            },
            Rule {
                class: 1,
                kind: RuleKind::Regex("(".into()),
            }, // invalid: never fires
        ],
    };
    let texts = [
        "How many SINGERS are there?",
        "What is the capacity of each stadium?",
        "Show the capacity only.",
        "List pet types and cats.",
        "Which country has a concert hall?",
        "",
    ];
    let m = rule_features(&rs, &texts);
    assert_eq!((m.rows, m.cols), (6, 6));
    assert_eq!(m.row(0), &[1, 0, 0, 0, 0, 0]);
    assert_eq!(m.row(1), &[0, 1, 0, 0, 0, 0]);
    assert_eq!(m.row(2), &[0, 0, 0, 0, 0, 0]);
    assert_eq!(m.row(3), &[0, 0, 1, 1, 0, 0]);
    assert_eq!(m.row(4), &[0, 0, 0, 0, 1, 0]);
    assert_eq!(m.row(5), &[0, 0, 0, 0, 0, 0]);
    assert!(
        rs.validate(2).is_err(),
        "invalid regex is reported by validate"
    );
    assert!(RuleSet {
        rules: vec![Rule {
            class: 5,
            kind: any(&["x"])
        }]
    }
    .validate(2)
    .is_err());
    let votes = rule_votes(&rs, &m, 2);
    assert_eq!(votes[3], vec![0, 2]);
    // Empty inputs.
    assert_eq!(rule_features(&rs, &[]), FeatureMatrix::zeros(0, 6));
    assert_eq!(rule_features(&RuleSet::default(), &texts).cols, 0);
}

#[test]
fn schema_rules_classify_the_tiny_validation_rows() {
    let ds = tiny_dataset();
    let rs = schema_rules(&ds);
    let m = rule_features(&rs, &ds.texts(&ds.valid));
    let votes = rule_votes(&rs, &m, 3);
    let argmax: Vec<usize> = votes
        .iter()
        .map(|v| (0..3).rev().max_by_key(|&i| v[i]).unwrap())
        .collect();
    assert_eq!(argmax, vec![0, 1, 2], "{votes:?}");
}

#[test]
fn bm25_ranks_with_training_rows_only() {
    let ds = tiny_dataset();
    let r = Bm25Ranker::build(&ds);
    assert_eq!(r.num_classes(), 3);
    let top = r.rank("How many pets does each student have?", 3);
    assert_eq!(top[0].0, 1, "{top:?}");
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
    assert_eq!(r.rank("memo about the budget", 1)[0].0, 2);
    // "zebra" and "quokka" occur only in validation rows: no class matches them.
    assert!(r.rank("zebra quokka", 3).is_empty());
    assert!(r.rank("", 3).is_empty());
    assert_eq!(r.rank("singer pets memo", 2).len(), 2);
    // Deterministic and serialisable.
    assert_eq!(r, Bm25Ranker::build(&ds));
}

#[test]
fn lexical_judge_marks_top_m_of_the_shortlist() {
    let ds = tiny_dataset();
    let r = Bm25Ranker::build(&ds);
    let texts = [
        "How many pets does each student have?",
        "singer pets memo",
        "zebra",
    ];
    let m1 = judge_lexical(&r, &Queries::new(&texts), 3, 1, 0);
    assert_eq!((m1.rows, m1.cols), (3, 3));
    assert_eq!(m1.row(0), &[0, 1, 0]);
    assert_eq!(m1.row(2), &[0, 0, 0]);
    let m2 = judge_lexical(&r, &Queries::new(&texts), 3, 2, 0);
    assert_eq!(m2.row(1).iter().map(|&v| v as usize).sum::<usize>(), 2);
    // m larger than k is capped at k.
    let m3 = judge_lexical(&r, &Queries::new(&texts), 1, 3, 0);
    assert_eq!(m3.row(1).iter().map(|&v| v as usize).sum::<usize>(), 1);
}

#[test]
fn graded_judge_keeps_the_ranking() {
    let ds = tiny_dataset();
    let r = Bm25Ranker::build(&ds);
    let texts = ["How many pets does each student have?", "zebra"];
    let g = judge_lexical(&r, &Queries::new(&texts), 3, 1, 4);
    // The best class gets the top grade; others a lower, nonzero one; no match, nothing.
    assert_eq!(g.get(0, 1), 4);
    assert!(g.row(0).iter().filter(|&&v| v > 0).all(|&v| v <= 4));
    assert_eq!(g.row(1), &[0, 0, 0]);
}

/// A training question sits in its class's BM25 document; scored against that document it
/// would find its own words. Left out, a word only it brought to the class scores nothing.
#[test]
fn leave_one_out_takes_a_training_row_out_of_its_own_document() {
    let ds = tiny_dataset();
    let r = Bm25Ranker::build(&ds);
    // "memo ... budget meeting": row 6 of class 2 (notes, whose schema has no such words).
    let i = 6;
    let text = ds.rows[i].question.as_str();
    let with = r.scores(text);
    let without = r.scores_leaving_out(text, Some(2));
    assert!(without[2] < with[2], "{with:?} vs {without:?}");
    assert!(without[2] > 0.0, "other memo questions still share words");
    assert_eq!(with[0], without[0]);
    // Queries::dataset leaves exactly the training rows out.
    let q = Queries::dataset(&ds);
    for (row, own) in q.own_class.iter().enumerate() {
        assert_eq!(own.is_some(), ds.train.contains(&row));
    }
    let loo = judge_lexical(&r, &q, 3, 3, 4);
    let leak = judge_lexical(&r, &Queries::new(&q.texts), 3, 3, 4);
    assert!(loo.get(i, 2) <= leak.get(i, 2));
    // Every training row's own-class BM25 score drops when the row leaves its class
    // document (its words no longer count for it), and no other class's score moves.
    for &row in &ds.train {
        let (text, own) = (ds.rows[row].question.as_str(), ds.rows[row].label as usize);
        let with = r.scores(text);
        let without = r.scores_leaving_out(text, Some(own as u32));
        assert!(
            without[own] < with[own],
            "row {row}: {with:?} vs {without:?}"
        );
        for c in (0..with.len()).filter(|&c| c != own) {
            assert_eq!(with[c], without[c], "row {row}, class {c}");
        }
    }
}
