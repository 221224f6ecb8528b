//! The LLM client and the LLM stages against a scripted HTTP server on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{chat, tiny_dataset, MockServer, Reply};
use hhnas_features::{
    judge_llm, llm_rules, schema_rules, AnswerCache, Bm25Ranker, DirAnswerCache, FeatureError,
    LlmClient, LlmConfig, LlmRulesParams, MemAnswerCache, RuleKind,
};

fn config(url: &str) -> LlmConfig {
    LlmConfig {
        base_url: url.to_string(),
        model: "test-model".into(),
        timeout_secs: 5,
        max_concurrency: 4,
        max_retries: 3,
        backoff_ms: 5,
        max_tokens: 64,
        ..LlmConfig::default()
    }
}

fn client(cfg: LlmConfig) -> (LlmClient, Arc<MemAnswerCache>) {
    let cache = Arc::new(MemAnswerCache::new());
    (LlmClient::new(cfg, cache.clone()).unwrap(), cache)
}

#[test]
fn request_shape_and_auth_header() {
    let server = MockServer::start(|_, _| chat("true"));
    let var = "HHNAS_TEST_KEY_REQUEST_SHAPE";
    std::env::set_var(var, "sk-test-123");
    let mut cfg = config(&format!("{}/v1/", server.url));
    cfg.api_key_env = Some(var.into());
    let (c, _) = client(cfg);
    assert_eq!(c.chat("Hello there").unwrap(), "true");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some("Bearer sk-test-123"));
    assert!(r
        .header("content-type")
        .unwrap()
        .contains("application/json"));
    let j = r.json();
    assert_eq!(j["model"], "test-model");
    assert_eq!(j["temperature"].as_f64(), Some(0.0));
    assert_eq!(j["max_tokens"], 64);
    assert_eq!(j["messages"][0]["role"], "user");
    assert_eq!(j["messages"][0]["content"], "Hello there");
    assert_eq!(j["messages"].as_array().unwrap().len(), 1);
}

#[test]
fn check_reachable_lists_models() {
    let server = MockServer::start(|r, _| {
        assert_eq!(r.path, "/v1/models");
        Reply::Raw(
            200,
            "application/json",
            r#"{"object":"list","data":[{"id":"test-model"}]}"#.into(),
        )
    });
    let (c, _) = client(config(&server.url));
    assert_eq!(c.check_reachable().unwrap(), vec!["test-model".to_string()]);
}

#[test]
fn judge_answers_are_parsed_into_the_matrix() {
    // "true" only when the prompt's schema is pets_1 and the question is about pets.
    let server = MockServer::start(|r, _| {
        let p = r.prompt();
        assert!(p.starts_with("Can this question be answered using this database?\nSchema: "));
        assert!(p.ends_with("\nAnswer true or false."));
        if p.contains("db: pets_1") && p.contains("Question: How heavy is the quokka pet?") {
            chat("**True.** The Pets table has weight.")
        } else if p.contains("db: concert_singer") {
            chat("I'm not sure about that.") // unparseable -> false
        } else {
            chat("No")
        }
    });
    let ds = tiny_dataset();
    let ranker = Bm25Ranker::build(&ds);
    let texts = ds.texts(&ds.valid);
    let (c, _) = client(config(&server.url));
    let (m, stats) = judge_llm(&ranker, &ds, &hhnas_features::Queries::new(&texts), 3, &c).unwrap();
    assert_eq!((m.rows, m.cols), (3, 3));
    assert_eq!(
        m.row(1),
        &[0, 1, 0],
        "quokka pet question judged true for pets_1 only"
    );
    assert_eq!(m.ones(), 1);
    let shortlisted: usize = texts.iter().map(|t| ranker.rank(t, 3).len()).sum();
    assert_eq!(server.count(), shortlisted);
    assert_eq!(stats.requests as usize, shortlisted);
    assert_eq!(stats.cached, 0);
    assert!(stats.unparseable >= 1, "{stats:?}");
}

#[test]
fn malformed_rule_answers_are_reasked_then_fall_back() {
    // concert_singer: always junk -> falls back after 1 + max_retries tries.
    // pets_1: junk first, valid fenced JSON on the re-ask.
    // notes: valid at once.
    let server = MockServer::start(|r, _| {
        let p = r.prompt();
        let reask = p.contains("Your previous answer could not be used");
        if p.contains("Database name: concert_singer") {
            chat("Sure! Here are some rules: singer, concert")
        } else if p.contains("Database name: pets_1") {
            if reask {
                chat("```json\n{\"class\": \"pets_1\", \"rules\": [{\"any\": [\"pet\", \"dog\"]}, {\"all\": [\"student\", \"pet\"]}, {\"regex\": \"\\\\bcats?\\\\b\"}]}\n```")
            } else {
                chat("{\"class\": \"pets_1\", \"rules\": [{\"any\": [\"pet\"")
            }
        } else {
            assert!(
                p.contains("Which memo mentions the budget meeting?"),
                "training questions shown"
            );
            assert!(!p.contains("zebra"), "validation questions never shown");
            chat("{\"class\": \"notes\", \"rules\": [{\"any\": [\"memo\", \"memos\"]}]}")
        }
    });
    let ds = tiny_dataset();
    let (c, _) = client(config(&server.url));
    let params = LlmRulesParams {
        questions_per_class: 5,
        max_retries: 2,
    };
    let (rules, stats) = llm_rules(&ds, &c, &params).unwrap();
    // concert_singer: 3 tries; pets_1: 2; notes: 1.
    assert_eq!(server.count(), 6);
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.unparseable, 4);
    assert_eq!(stats.fallbacks, 1);
    let schema = schema_rules(&ds);
    let of = |rs: &hhnas_features::RuleSet, c: u32| -> Vec<RuleKind> {
        rs.rules
            .iter()
            .filter(|r| r.class == c)
            .map(|r| r.kind.clone())
            .collect()
    };
    assert_eq!(of(&rules, 0), of(&schema, 0), "fallback = schema rules");
    assert_eq!(
        of(&rules, 1),
        vec![
            RuleKind::Any(vec!["pet".into(), "dog".into()]),
            RuleKind::All(vec!["student".into(), "pet".into()]),
            RuleKind::Regex("\\bcats?\\b".into()),
        ]
    );
    assert_eq!(of(&rules, 2), vec![RuleKind::Any(vec!["memo".into()])]);
    assert!(rules.validate(3).is_ok());

    // Second pass: every answer (including the junk ones) comes from the cache.
    let before = server.count();
    let (rules2, stats2) = llm_rules(&ds, &c, &params).unwrap();
    assert_eq!(rules2, rules);
    assert_eq!(server.count(), before);
    assert_eq!((stats2.requests, stats2.cached), (0, 6));
}

#[test]
fn status_429_and_500_are_retried() {
    let server = MockServer::start(|_, n| match n {
        0 => Reply::Raw(429, "application/json", "{\"error\":\"slow down\"}".into()),
        1 => Reply::Raw(500, "text/plain", "oops".into()),
        _ => chat("false"),
    });
    let (c, _) = client(config(&server.url));
    assert_eq!(c.chat("q").unwrap(), "false");
    assert_eq!(server.count(), 3);
    let s = c.stats();
    assert_eq!((s.requests, s.retries, s.failed), (3, 2, 0));
}

#[test]
fn persistent_5xx_gives_up_after_max_retries() {
    let server = MockServer::start(|_, _| Reply::Raw(503, "text/plain", "busy".into()));
    let mut cfg = config(&server.url);
    cfg.max_retries = 2;
    let (c, _) = client(cfg);
    let e = c.chat("q").unwrap_err();
    assert!(
        matches!(e, FeatureError::RetriesExhausted { attempts: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(server.count(), 3);
}

#[test]
fn other_4xx_is_not_retried() {
    let server = MockServer::start(|_, _| {
        Reply::Raw(
            404,
            "application/json",
            "{\"error\":\"no such model\"}".into(),
        )
    });
    let (c, _) = client(config(&server.url));
    let e = c.chat("q").unwrap_err();
    assert!(matches!(e, FeatureError::Http { status: 404, .. }), "{e}");
    assert!(e.to_string().contains("test-model"), "{e}");
    assert_eq!(server.count(), 1);
}

#[test]
fn hung_server_times_out() {
    let server = MockServer::start(|_, _| Reply::Hang(Duration::from_secs(8)));
    let mut cfg = config(&server.url);
    cfg.timeout_secs = 1;
    cfg.max_retries = 1;
    let (c, _) = client(cfg);
    let t0 = Instant::now();
    let e = c.chat("q").unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(e, FeatureError::Timeout { attempts: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&server.url), "{e}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(c.stats().retries, 1);
}

#[test]
fn html_answer_is_a_clear_error() {
    let server = MockServer::start(|_, _| {
        Reply::Raw(
            200,
            "text/html",
            "<!doctype html><html><body>Sign in</body></html>".into(),
        )
    });
    let (c, _) = client(config(&server.url));
    let e = c.chat("q").unwrap_err();
    assert!(matches!(e, FeatureError::NotJson { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("{}/v1/chat/completions", server.url)),
        "{msg}"
    );
    assert!(msg.contains("HTML") && msg.contains("base_url"), "{msg}");
    let e = c.check_reachable().unwrap_err();
    assert!(matches!(e, FeatureError::NotJson { .. }), "{e}");
    assert_eq!(server.count(), 2, "no retry on HTML");
}

#[test]
fn unset_api_key_env_is_a_clear_error() {
    let var = "HHNAS_TEST_KEY_THAT_IS_NEVER_SET";
    std::env::remove_var(var);
    let mut cfg = config("http://127.0.0.1:9");
    cfg.api_key_env = Some(var.into());
    let e = LlmClient::new(cfg, Arc::new(MemAnswerCache::new())).unwrap_err();
    assert!(matches!(e, FeatureError::MissingApiKey { .. }), "{e}");
    assert!(e.to_string().contains(var), "{e}");
}

#[test]
fn unreachable_base_url_is_a_clear_error() {
    // A port that was just free: bind, note, drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cfg = config(&url);
    cfg.max_retries = 1;
    let (c, _) = client(cfg);
    let t0 = Instant::now();
    let e = c.check_reachable().unwrap_err();
    assert!(matches!(e, FeatureError::Unreachable { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&url) && msg.contains("llm-server.sh"), "{msg}");
    let e = c.chat("q").unwrap_err();
    assert!(matches!(e, FeatureError::Unreachable { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn second_pass_is_all_cache_hits() {
    let server = MockServer::start(|r, _| {
        if r.prompt().contains("db: pets_1") {
            chat("yes")
        } else {
            chat("false")
        }
    });
    let ds = tiny_dataset();
    let ranker = Bm25Ranker::build(&ds);
    let texts = ds.texts(&ds.valid);
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let cache = Arc::new(DirAnswerCache::new(dir.path()).unwrap());
        let c = LlmClient::new(config(&server.url), cache).unwrap();
        judge_llm(&ranker, &ds, &hhnas_features::Queries::new(&texts), 2, &c).unwrap()
    };
    let (m1, s1) = run();
    let sent = server.count();
    assert!(sent > 0 && s1.requests as usize == sent && s1.cached == 0);
    let (m2, s2) = run();
    assert_eq!(m1, m2);
    assert_eq!(server.count(), sent, "no request on the second pass");
    assert_eq!((s2.requests, s2.cached as usize), (0, sent));
}

#[test]
fn budget_stops_requests_and_cache_hits_are_free() {
    let server = MockServer::start(|_, _| chat("true"));
    let mut cfg = config(&server.url);
    cfg.max_requests = Some(2);
    let (c, cache) = client(cfg);
    c.chat("a").unwrap();
    c.chat("b").unwrap();
    c.chat("a").unwrap(); // cached, free
    let e = c.chat("c").unwrap_err();
    assert!(
        matches!(e, FeatureError::BudgetExhausted { max_requests: 2 }),
        "{e}"
    );
    assert_eq!(server.count(), 2);
    assert_eq!(cache.len(), 2);
    assert!(cache.get(&c.cache_key("a")).is_some());
}

#[test]
fn chat_many_bounds_concurrency_and_keeps_order() {
    let server = MockServer::start(|r, _| {
        std::thread::sleep(Duration::from_millis(40));
        chat(&format!("echo {}", r.prompt()))
    });
    let mut cfg = config(&server.url);
    cfg.max_concurrency = 3;
    let (c, _) = client(cfg);
    let prompts: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    let out = c.chat_many(&prompts);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r.as_ref().unwrap(), &format!("echo p{i}"));
    }
    let peak = server
        .in_flight_max
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&peak), "peak in flight {peak}");
}

#[test]
fn the_judge_asks_about_class_membership_for_a_labelled_set() {
    use hhnas_data::{ClassInfo, Dataset, Row};
    let label = |name: &str, about: &str| ClassInfo::label(name, Some(about.into()));
    let texts = [
        ("my invoice was charged twice", 0),
        ("refund the invoice", 0),
        ("reset my password", 1),
        ("password expired", 1),
    ];
    let ds = Dataset {
        rows: texts
            .iter()
            .map(|(t, l)| Row {
                question: t.to_string(),
                db_id: String::new(),
                label: *l,
            })
            .collect(),
        classes: vec![
            label("billing_issue", "payments"),
            label("password_reset", "log-in"),
        ],
        train: vec![0, 1, 2, 3],
        valid: vec![],
        test: vec![],
        merge: "labels".into(),
    };
    // "true" only for billing_issue and a text about an invoice; never a database prompt.
    let server = MockServer::start(|r, _| {
        let p = r.prompt();
        assert!(
            p.starts_with("Does this text belong to this class?\nClass: label: "),
            "{p}"
        );
        if p.contains("billing_issue | description: payments") && p.contains("invoice") {
            chat("true")
        } else {
            chat("false")
        }
    });
    let ranker = Bm25Ranker::build(&ds);
    let queries = ["an invoice question", "a password question"];
    let (c, _) = client(config(&server.url));
    let (m, _) = judge_llm(&ranker, &ds, &hhnas_features::Queries::new(&queries), 2, &c).unwrap();
    assert_eq!(m.row(0), &[1, 0]);
    assert_eq!(m.row(1), &[0, 0]);
}
