//! The partner evidence on a small hand-made bank.

use super::*;

/// Two classes; rows 0/1, 2/3 and 4/5 are paraphrase pairs, 6 and 7 stand alone.
const BANK: [&str; 8] = [
    "How many singers do we have?",
    "What is the total number of singers?",
    "Show the name of the singer born in 1948.",
    "List the names of singers whose birth year is 1948.",
    "How many dogs were adopted in 2010?",
    "Count the dogs adopted in the year 2010.",
    "What is the average age of all dogs?",
    "Which breed of dog is the most common?",
];
const LABELS: [u32; 8] = [0, 0, 0, 0, 1, 1, 1, 1];

fn keys() -> Vec<Option<String>> {
    [
        Some("a"),
        Some("a"),
        Some("b"),
        Some("b"),
        Some("c"),
        Some("c"),
        None,
        None,
    ]
    .map(|k| k.map(String::from))
    .to_vec()
}

/// A crude bag-of-letters vector stands in for the encoder.
fn vectors(texts: &[&str]) -> Vec<f32> {
    texts
        .iter()
        .flat_map(|t| {
            let mut v = [0.0f32; 26];
            for c in t.to_lowercase().bytes().filter(u8::is_ascii_lowercase) {
                v[(c - b'a') as usize] += 1.0;
            }
            v
        })
        .collect()
}

fn test_bank<'a>(
    keys: &'a [Option<String>],
    vectors: &'a [f32],
    chars: &'a CharNgramIndex,
) -> PartnerBank<'a> {
    PartnerBank {
        texts: &BANK,
        vectors: Dense {
            dim: 26,
            data: vectors,
        },
        labels: &LABELS,
        keys,
        classes: 2,
        chars,
    }
}

#[test]
fn a_question_leans_to_the_class_of_its_partner_and_bank_rows_leave_themselves_out() {
    let (keys, bank_vectors) = (keys(), vectors(&BANK));
    let chars = CharNgramIndex::build(&BANK, &LABELS, 2);
    let bank = test_bank(&keys, &bank_vectors, &chars);
    let new = [
        "How many singers are there in total?",
        "How many dogs were adopted in 2010 in total?",
    ];
    let new_vectors = vectors(&new);
    let s = partner_scores(
        &bank,
        &new,
        Dense {
            dim: 26,
            data: &new_vectors,
        },
        None,
    );
    assert!(s.data[0] > s.data[1], "{:?}", s.data);
    assert!(s.data[3] > s.data[2], "{:?}", s.data);
    assert!(s.data.iter().all(|v| (0.0..=1.0).contains(v)));

    // The bank's own rows: each left out of its own list; deterministic.
    let own: Vec<Option<usize>> = (0..BANK.len()).map(Some).collect();
    let d = Dense {
        dim: 26,
        data: &bank_vectors,
    };
    let crossed = partner_scores(&bank, &BANK, d, Some(&own));
    assert_eq!(crossed, partner_scores(&bank, &BANK, d, Some(&own)));
    // Rows 0 and 4 find their partners (rows 1 and 5) without seeing themselves.
    assert!(crossed.data[0] > crossed.data[1], "{:?}", crossed.data);
    assert!(
        crossed.data[4 * 2 + 1] > crossed.data[4 * 2],
        "{:?}",
        crossed.data
    );
}

#[test]
fn taken_counts_the_other_bank_wordings_of_a_candidates_query() {
    let (keys, bank_vectors) = (keys(), vectors(&BANK));
    let chars = CharNgramIndex::build(&BANK, &LABELS, 2);
    let bank = test_bank(&keys, &bank_vectors, &chars);
    let index = PairIndex::new(&bank);
    let taken_of = |text: &str, own: Option<usize>| -> Vec<(u32, f32)> {
        let v = unit_rows(Dense {
            dim: 26,
            data: &vectors(&[text]),
        });
        let mut chars = vec![0.0; BANK.len()];
        let c = index.candidates_of(text, &v, own, &mut chars);
        c.rows
            .iter()
            .zip(&c.features)
            .map(|(&j, f)| (j, f[FEATURES - 1]))
            .collect()
    };
    // An unseen question: both wordings of "a", "b" and "c" are in the bank.
    for (j, taken) in taken_of("How many singers are there in total?", None) {
        let expected = if j < 6 { 1.0 } else { 0.0 };
        assert_eq!(taken, expected, "row {j}");
    }
    // Bank row 0 asking: its partner (row 1) has no other wording left in the bank.
    for (j, taken) in taken_of(BANK[0], Some(0)) {
        let expected = if j == 1 || j >= 6 { 0.0 } else { 1.0 };
        assert_eq!(taken, expected, "row {j}");
    }
}

#[test]
fn newton_fits_a_separable_direction_and_the_solver_inverts() {
    let x = solve([[4.0, 1.0], [1.0, 3.0]], [1.0, 2.0]);
    assert!((x[0] - 1.0 / 11.0).abs() < 1e-12 && (x[1] - 7.0 / 11.0).abs() < 1e-12);
    let pairs: Vec<(PairFeatures, bool)> = (0..200)
        .map(|i| {
            let mut f = [0.0f32; FEATURES];
            f[0] = (i % 20) as f32 / 20.0;
            (f, i % 20 >= 15)
        })
        .collect();
    let m = PairModel::fit(&pairs);
    let at = |v: f32| {
        let mut f = [0.0f32; FEATURES];
        f[0] = v;
        m.probability(&f)
    };
    assert!(at(0.95) > 0.5 && at(0.1) < 0.1, "{} {}", at(0.95), at(0.1));
}
