//! Classes of a labelled text set (a label and perhaps a description, no schema): rules
//! come from the label's words and the class's training texts, prompts ask about class
//! membership, not a database.

use hhnas_data::{ClassInfo, Dataset, Row};
use hhnas_features::{judge_class_prompt, rules_prompt, schema_rules, RuleKind};

fn label(name: &str, description: &str) -> ClassInfo {
    ClassInfo::label(name, Some(description.into()))
}

fn labelled_set() -> Dataset {
    let texts = [
        ("my invoice was charged twice", 0),
        ("the invoice total looks wrong", 0),
        ("refund the double invoice charge", 0),
        ("why is my invoice so high", 0),
        ("I forgot my password again", 1),
        ("cannot log in, password expired", 1),
        ("reset my password please", 1),
        ("password link does not work", 1),
        // Validation and test rows carry a word no training row has.
        ("zebra invoice", 0),
        ("zebra password", 1),
    ];
    Dataset {
        rows: texts
            .iter()
            .map(|(t, l)| Row {
                question: t.to_string(),
                db_id: ["billing_issue", "passwordReset"][*l as usize].to_string(),
                label: *l,
            })
            .collect(),
        classes: vec![
            label("billing_issue", "payments and invoices"),
            label("passwordReset", "log-in trouble"),
        ],
        train: (0..8).collect(),
        valid: vec![8],
        test: vec![9],
        merge: "labels".into(),
    }
}

fn words_of(ds: &Dataset, class: u32) -> Vec<String> {
    schema_rules(ds)
        .rules
        .iter()
        .filter(|r| r.class == class)
        .flat_map(|r| match &r.kind {
            RuleKind::Any(w) | RuleKind::All(w) => w.clone(),
            other => panic!("unexpected rule {other:?}"),
        })
        .map(|w| w.to_lowercase())
        .collect()
}

#[test]
fn rules_come_from_the_label_name_and_the_training_texts_only() {
    let ds = labelled_set();
    let billing = words_of(&ds, 0);
    let password = words_of(&ds, 1);
    // The label's words (split on `_` and case) ...
    assert!(billing.contains(&"billing".to_string()), "{billing:?}");
    assert!(password.contains(&"reset".to_string()), "{password:?}");
    // ... and each class's distinctive training words.
    assert!(billing.contains(&"invoice".to_string()), "{billing:?}");
    assert!(password.contains(&"password".to_string()), "{password:?}");
    // Never a word only validation or test rows have.
    assert!(!billing.iter().chain(&password).any(|w| w == "zebra"));
}

#[test]
fn prompts_ask_about_the_class_not_a_database() {
    let ds = labelled_set();
    let p = judge_class_prompt(&ds.classes[0].schema_text, "my invoice is wrong", 1000);
    assert!(p.starts_with("Does this text belong to this class?"), "{p}");
    assert!(
        p.contains("billing_issue") && p.contains("payments and invoices"),
        "{p}"
    );
    let r = rules_prompt(&ds.classes[1], &["reset my password please"], 1000);
    assert!(
        r.contains("texts of one class") && r.contains("Class name: passwordReset"),
        "{r}"
    );
    assert!(
        r.contains("log-in trouble") && !r.contains("database"),
        "{r}"
    );
}
