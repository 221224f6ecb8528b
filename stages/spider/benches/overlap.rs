//! Times the overlap merge on train_spider.json (HHNAS_SPIDER_DIR). Prints medians.

use std::path::Path;
use std::time::Instant;

use hhnas_spider::merge::{overlap_groups, overlap_groups_brute, UnionFind};
use hhnas_spider::{build_dataset, read_spider_dir, DataParams, MergeRule};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let Ok(dir) = std::env::var("HHNAS_SPIDER_DIR") else {
        println!("HHNAS_SPIDER_DIR unset; skipping bench");
        return;
    };
    let src = read_spider_dir(&hhnas_spider::from_workspace_root(
        Path::new(&dir),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
    ))
    .expect("spider dir");
    let ds = build_dataset(
        &src,
        &DataParams {
            merge: MergeRule::None,
            ..Default::default()
        },
    )
    .expect("dataset");
    let qs: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
    let db: Vec<usize> = ds.rows.iter().map(|r| r.label as usize).collect();
    let n_db = ds.classes.len();
    let time = |f: &dyn Fn(&mut UnionFind), reps: usize| {
        median(
            (0..reps)
                .map(|_| {
                    let mut uf = UnionFind::new(n_db);
                    let t = Instant::now();
                    f(&mut uf);
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    };
    println!("questions: {}", qs.len());
    println!(
        "overlap_groups (prefix filter) t=0.8: median {:.2} ms",
        time(&|uf| overlap_groups(&qs, &db, 0.8, uf), 11)
    );
    println!(
        "overlap_groups (prefix filter) t=0.5: median {:.2} ms",
        time(&|uf| overlap_groups(&qs, &db, 0.5, uf), 5)
    );
    println!(
        "overlap_groups_brute t=0.8: median {:.2} ms",
        time(&|uf| overlap_groups_brute(&qs, &db, 0.8, uf), 3)
    );
    let t = Instant::now();
    let ds = build_dataset(&src, &DataParams::default()).expect("dataset");
    println!(
        "build_dataset (overlap 0.8): {:.2} ms, {} classes",
        t.elapsed().as_secs_f64() * 1e3,
        ds.classes.len()
    );
}
