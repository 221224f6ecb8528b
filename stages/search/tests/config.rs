//! Configuration validation names the field and the fix.

use hhnas_search::{SearchConfig, Strategy};

fn field_of(cfg: SearchConfig) -> String {
    let e = cfg.validate().expect_err("should be invalid");
    assert!(e.to_string().contains("fix:"), "{e}");
    e.field
}

#[test]
fn default_is_valid() {
    SearchConfig::default().validate().unwrap();
}

#[test]
fn each_bad_field_is_named() {
    let d = SearchConfig::default;
    let cases: Vec<(&str, SearchConfig)> = vec![
        ("q_init", SearchConfig { q_init: 0.0, ..d() }),
        ("q_min", SearchConfig { q_min: -1.0, ..d() }),
        ("q_min", SearchConfig { q_min: 2.0, ..d() }),
        (
            "alpha",
            SearchConfig {
                alpha: f64::NAN,
                ..d()
            },
        ),
        (
            "max_prob",
            SearchConfig {
                max_prob: 0.0,
                ..d()
            },
        ),
        (
            "max_prob",
            SearchConfig {
                max_prob: 1.5,
                ..d()
            },
        ),
        ("learning_rate.var_min", {
            let mut c = d();
            c.learning_rate.var_min = 0.0;
            c
        }),
        ("dropout_rate.var_init", {
            let mut c = d();
            c.dropout_rate.var_init = 1.0;
            c
        }),
        ("learning_rate.k_mean", {
            let mut c = d();
            c.learning_rate.k_mean = -1.0;
            c
        }),
        (
            "strategy.evolution.sample_size",
            SearchConfig {
                strategy: Strategy::Evolution {
                    population: 4,
                    sample_size: 5,
                },
                ..d()
            },
        ),
        (
            "strategy.evolution.population",
            SearchConfig {
                strategy: Strategy::Evolution {
                    population: 1,
                    sample_size: 1,
                },
                ..d()
            },
        ),
        ("space.lr_log10", {
            let mut c = d();
            c.space.lr_log10 = (-2.0, -6.0);
            c
        }),
        ("space.criteria", {
            let mut c = d();
            c.space.criteria = 4;
            c
        }),
        ("space.layer_size1", {
            let mut c = d();
            c.space.layer_size1.clear();
            c
        }),
        ("space.layer_size2", {
            let mut c = d();
            c.space.layer_size2 = vec![64, 32];
            c
        }),
        ("space.dropout", {
            let mut c = d();
            c.space.dropout = (0.0, 1.0);
            c
        }),
        ("space.kernel_size", {
            let mut c = d();
            c.space.kernel_size = vec![0, 3];
            c
        }),
        ("initial.learning_rate", {
            let mut c = d();
            c.initial.learning_rate = 0.1;
            c
        }),
        ("initial.learning_rate", {
            let mut c = d();
            c.initial.learning_rate = -1e-4;
            c
        }),
        ("initial.criterion_num", {
            let mut c = d();
            c.initial.criterion_num = 3;
            c
        }),
        ("initial.layer_size1", {
            let mut c = d();
            c.initial.layer_size1 = 300;
            c
        }),
        ("initial.kernel_size", {
            let mut c = d();
            c.initial.kernel_size = 4;
            c
        }),
        ("initial.dropout_rate", {
            let mut c = d();
            c.initial.dropout_rate = 0.9;
            c
        }),
    ];
    for (field, cfg) in cases {
        assert_eq!(field_of(cfg), field);
    }
}

/// Boundary values are accepted: learning rate exactly at 10^-6 and 10^-2.
#[test]
fn boundaries_are_valid() {
    for lr in [1e-6, 1e-2] {
        let mut c = SearchConfig::default();
        c.initial.learning_rate = lr;
        c.validate().unwrap();
    }
}

/// The TOML forms pipeline.toml uses: unit strategies as strings, evolution as a table,
/// ranges as arrays, and missing keys falling back to the defaults.
#[test]
fn toml_forms() {
    let c: SearchConfig = toml::from_str(
        r#"
        strategy = "random"
        max_prob = 0.4
        variance_rule = "moment"
        select = "always"
        [space]
        lr_log10 = [-5.0, -3.0]
        "#,
    )
    .unwrap();
    assert_eq!(c.strategy, Strategy::Random);
    assert_eq!(c.max_prob, 0.4);
    assert_eq!(c.space.lr_log10, (-5.0, -3.0));
    assert_eq!(c.space.kernel_size, vec![1, 3, 5, 7, 9]);
    assert_eq!(c.q_min, 0.05);
    let e: SearchConfig = toml::from_str(
        r#"
        [strategy.evolution]
        population = 10
        sample_size = 3
        "#,
    )
    .unwrap();
    assert_eq!(
        e.strategy,
        Strategy::Evolution {
            population: 10,
            sample_size: 3
        }
    );
    assert!(toml::from_str::<SearchConfig>("max_prbo = 0.5").is_err());
    e.validate().unwrap();
}
