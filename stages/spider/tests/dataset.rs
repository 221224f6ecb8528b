//! Building datasets: parsing, duplicates, merges, schemas, split properties.

mod common;
use common::*;
use hhnas_data::split::split_counts;
use hhnas_data::Dataset;
use hhnas_spider::merge::{jaccard, overlap_groups, overlap_groups_brute, tokens, UnionFind};
use hhnas_spider::{build_dataset, dataset_stats, read_spider_dir, DataParams, MergeRule};
use rand::{Rng, SeedableRng};

fn fixture(rows: &[(&str, &str)], params: &DataParams) -> Dataset {
    let body = rows_json(rows);
    let dir = write_dir(&[("train_spider.json", &body), ("tables.json", TABLES)]);
    build_dataset(&read_spider_dir(dir.path()).unwrap(), params).unwrap()
}

fn none() -> DataParams {
    DataParams {
        merge: MergeRule::None,
        ..Default::default()
    }
}

#[test]
fn tokens_are_lowercase_alnum_runs() {
    assert_eq!(
        tokens("How many Heads, older than 56?"),
        ["how", "many", "heads", "older", "than", "56"]
    );
    assert_eq!(tokens("Stadium's_id é x2y"), ["stadium", "s", "id", "x2y"]);
    assert!(tokens("?!").is_empty());
}

#[test]
fn jaccard_values() {
    assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
    assert_eq!(jaccard(&[1, 2], &[1, 2]), 1.0);
    assert_eq!(jaccard(&[], &[]), 0.0);
}

#[test]
fn duplicates_dropped_and_spider_question_accepted() {
    let body = r#"[
      {"db_id": "a", "question": "list singers", "query": "x"},
      {"db_id": "a", "question": "list singers"},
      {"db_id": "b", "question": "list singers"},
      {"db_id": "b", "SpiderQuestion": "count cars", "SpiderSynQuestion": "number of autos"}
    ]"#;
    let dir = write_dir(&[("train_spider.json", body), ("tables.json", TABLES)]);
    let ds = build_dataset(&read_spider_dir(dir.path()).unwrap(), &none()).unwrap();
    let got: Vec<(&str, &str)> = ds
        .rows
        .iter()
        .map(|r| (r.db_id.as_str(), r.question.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", "list singers"),
            ("b", "list singers"),
            ("b", "count cars")
        ]
    );
}

#[test]
fn none_merge_gives_one_class_per_db_with_schema() {
    let ds = fixture(&[("b", "count cars"), ("a", "list singers")], &none());
    let names: Vec<&str> = ds.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(ds.rows[0].label, 1);
    assert_eq!(ds.rows[1].label, 0);
    let a = &ds.classes[0];
    assert_eq!(
        a.schema_text,
        "db: a | table singer: singer id, name | table concert: concert id"
    );
    assert_eq!(a.schema_tables().len(), 2);
    assert_eq!(a.schema_tables()[0].columns, ["singer id", "name"]);
    assert_eq!(ds.merge, "none");
}

#[test]
fn overlap_merge_is_transitive_and_named_by_members() {
    // a~b share a near-identical question, b~c too; d stands alone.
    let rows = [
        ("a", "show the name of every singer"),
        ("b", "show the name of every singer please"),
        ("b", "how many cars are red"),
        ("c", "how many cars are red"),
        ("d", "list the dogs"),
        ("c", "list the dogs sorted by age descending today"),
    ];
    let ds = fixture(&rows, &DataParams::default());
    let names: Vec<&str> = ds.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a+b+c", "d"]);
    assert_eq!(ds.classes[0].members, ["a", "b", "c"]);
    assert!(ds.classes[0]
        .schema_text
        .starts_with("db: a | table singer"));
    assert!(ds.classes[0]
        .schema_text
        .contains(" | db: b | table car: car id, maker | db: c"));
    assert_eq!(ds.classes[0].schema_tables().len(), 4);
    assert_eq!(ds.merge, "overlap>=0.8");
    // Jaccard 6/7 ~ 0.857: merged at 0.85, not at 0.9.
    let ds = fixture(
        &rows[..2],
        &DataParams {
            merge: MergeRule::Overlap { threshold: 0.9 },
            ..Default::default()
        },
    );
    assert_eq!(ds.classes.len(), 2);
    let ds = fixture(
        &rows[..2],
        &DataParams {
            merge: MergeRule::Overlap {
                threshold: 6.0 / 7.0,
            },
            ..Default::default()
        },
    );
    assert_eq!(
        ds.classes.len(),
        1,
        "Jaccard equal to the threshold merges (>=)"
    );
}

#[test]
fn same_db_overlap_does_not_merge() {
    let ds = fixture(
        &[
            ("a", "list all singers"),
            ("a", "list all singers now"),
            ("b", "count cars"),
        ],
        &DataParams::default(),
    );
    assert_eq!(ds.classes.len(), 2);
}

#[test]
fn map_merge_uses_given_names() {
    let map = [("a", "music"), ("b", "vehicles"), ("c", "music")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ds = fixture(
        &[("a", "q1"), ("b", "q2"), ("c", "q3")],
        &DataParams {
            merge: MergeRule::Map(map),
            ..Default::default()
        },
    );
    let names: Vec<&str> = ds.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["music", "vehicles"]);
    assert_eq!(ds.classes[0].members, ["a", "c"]);
    assert_eq!(
        ds.rows.iter().map(|r| r.label).collect::<Vec<_>>(),
        [0, 1, 0]
    );
}

#[test]
fn prefix_filter_matches_brute_force() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let vocab: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    for trial in 0..60 {
        let n = rng.random_range(5..80);
        let n_db = rng.random_range(2..12);
        let qs: Vec<String> = (0..n)
            .map(|_| {
                let len = rng.random_range(0..9);
                // Small vocabulary with a skew so near-duplicates are common.
                (0..len)
                    .map(|_| {
                        let top = rng.random_range(1..40);
                        vocab[rng.random_range(0..top)].clone()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let q: Vec<&str> = qs.iter().map(String::as_str).collect();
        let db: Vec<usize> = (0..n).map(|_| rng.random_range(0..n_db)).collect();
        for t in [0.3, 0.5, 0.75, 0.8, 2.0 / 3.0, 1.0] {
            let (mut a, mut b) = (UnionFind::new(n_db), UnionFind::new(n_db));
            overlap_groups(&q, &db, t, &mut a);
            overlap_groups_brute(&q, &db, t, &mut b);
            for i in 0..n_db {
                for j in 0..n_db {
                    assert_eq!(
                        a.find(i) == a.find(j),
                        b.find(i) == b.find(j),
                        "trial {trial} t {t} dbs {i},{j}"
                    );
                }
            }
        }
    }
}

#[test]
fn split_counts_round_and_keep_a_train_row() {
    let r = [0.7, 0.15, 0.15];
    assert_eq!(split_counts(100, r), (70, 15, 15));
    assert_eq!(split_counts(1, r), (1, 0, 0));
    assert_eq!(split_counts(2, r), (1, 0, 1));
    assert_eq!(split_counts(0, r), (0, 0, 0));
    assert_eq!(split_counts(3, [0.1, 0.45, 0.45]), (1, 1, 1));
    assert_eq!(split_counts(1, [0.1, 0.8, 0.1]), (1, 0, 0));
}

/// Checks disjoint + covering + each class's split sizes equal `split_counts`.
fn check_split(ds: &Dataset, ratios: [f64; 3]) {
    let n = ds.rows.len();
    let mut seen = vec![0u8; n];
    for &i in ds.train.iter().chain(&ds.valid).chain(&ds.test) {
        seen[i] += 1;
    }
    assert!(
        seen.iter().all(|&s| s == 1),
        "splits must be disjoint and cover all rows"
    );
    let stats = dataset_stats(ds);
    for c in &stats.classes {
        let (a, b, t) = split_counts(c.total(), ratios);
        assert_eq!((c.train, c.valid, c.test), (a, b, t), "class {}", c.name);
        assert!(c.train >= 1);
        for (got, r) in [
            (c.train, ratios[0]),
            (c.valid, ratios[1]),
            (c.test, ratios[2]),
        ] {
            assert!(
                (got as f64 - r * c.total() as f64).abs() <= 1.0 + 1e-9,
                "class {} share",
                c.name
            );
        }
    }
}

#[test]
fn split_is_stratified_deterministic_and_seed_dependent() {
    let mut rows = Vec::new();
    let qs: Vec<String> = (0..200).map(|i| format!("question number {i}")).collect();
    for (i, q) in qs.iter().enumerate() {
        // Uneven class sizes: 100, 50, 43, 7.
        let db = match i {
            0..100 => "a",
            100..150 => "b",
            150..193 => "c",
            _ => "d",
        };
        rows.push((db, q.as_str()));
    }
    let p0 = none();
    let ds1 = fixture(&rows, &p0);
    let ds2 = fixture(&rows, &p0);
    check_split(&ds1, p0.ratios);
    assert_eq!(ds1, ds2);
    let p1 = DataParams {
        split_seed: 1,
        ..none()
    };
    let ds3 = fixture(&rows, &p1);
    check_split(&ds3, p1.ratios);
    assert_ne!(ds1.train, ds3.train);
    let p2 = DataParams {
        ratios: [0.5, 0.25, 0.25],
        ..none()
    };
    check_split(&fixture(&rows, &p2), p2.ratios);
}

#[test]
fn stats_display_lists_classes_and_totals() {
    let ds = fixture(&[("a", "q1"), ("b", "q2"), ("b", "q3")], &none());
    let s = dataset_stats(&ds);
    assert_eq!(s.rows, 3);
    assert_eq!(s.classes[1].total(), 2);
    let text = s.to_string();
    assert!(
        text.starts_with("3 rows, 2 classes from 2 databases (merge: none)"),
        "{text}"
    );
    assert!(
        text.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["1", "b", "1", "1", "0", "1", "2"]
        ),
        "{text}"
    );
    assert!(text.lines().last().unwrap().contains("total"));
}

#[test]
fn include_others_adds_rows() {
    let train = rows_json(&[("a", "q1")]);
    let others = rows_json(&[("b", "q2"), ("a", "q1")]);
    let dir = write_dir(&[
        ("train_spider.json", &train),
        ("train_others.json", &others),
        ("tables.json", TABLES),
    ]);
    let src = read_spider_dir(dir.path()).unwrap();
    assert_eq!(build_dataset(&src, &none()).unwrap().rows.len(), 1);
    let ds = build_dataset(
        &src,
        &DataParams {
            include_others: true,
            ..none()
        },
    )
    .unwrap();
    assert_eq!(ds.rows.len(), 2);
}

// ---- shared Spider data (skipped when HHNAS_SPIDER_DIR is unset) ----

#[test]
fn spider_overlap_gives_86_classes() {
    let dir = spider_dir();
    let src = read_spider_dir(&dir).unwrap();
    let ds = build_dataset(&src, &DataParams::default()).unwrap();
    // 7,000 rows hold 9 exact (question, db_id) duplicates; the paper reports 6,998.
    assert_eq!(ds.rows.len(), 6991);
    assert_eq!(ds.classes.len(), 86);
    let merged: Vec<usize> = ds
        .classes
        .iter()
        .map(|c| c.members.len())
        .filter(|&m| m > 1)
        .collect();
    assert_eq!(merged.len(), 13);
    assert_eq!(merged.iter().sum::<usize>(), 67);
    let mut sizes = merged.clone();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(&sizes[..2], &[23, 19]);
    check_split(&ds, DataParams::default().ratios);
    let total: usize = ds.train.len() + ds.valid.len() + ds.test.len();
    assert_eq!(total, 6991);
    for r in &ds.rows {
        assert!(
            ds.classes[r.label as usize].members.contains(&r.db_id),
            "row of {} mislabelled",
            r.db_id
        );
    }
    let names: Vec<&str> = ds.classes.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "classes sorted by name"
    );
    for c in &ds.classes {
        assert!(c.schema_text.starts_with("db: "));
        assert_eq!(c.name, c.members.join("+"));
    }
    // Thresholds 0.78..0.80 all give 86 (SPEC §1).
    let p = DataParams {
        merge: MergeRule::Overlap { threshold: 0.78 },
        ..Default::default()
    };
    assert_eq!(build_dataset(&src, &p).unwrap().classes.len(), 86);
}

#[test]
fn spider_none_gives_140_classes() {
    let dir = spider_dir();
    let src = read_spider_dir(&dir).unwrap();
    let ds = build_dataset(&src, &none()).unwrap();
    assert_eq!(ds.classes.len(), 140);
    assert!(ds
        .classes
        .iter()
        .all(|c| c.members.len() == 1 && !c.schema_tables().is_empty() && !c.is_label()));
    check_split(&ds, none().ratios);
    let ds7 = build_dataset(
        &src,
        &DataParams {
            split_seed: 7,
            ..none()
        },
    )
    .unwrap();
    assert_ne!(ds.train, ds7.train);
    assert_eq!(ds.train.len(), ds7.train.len());
}
