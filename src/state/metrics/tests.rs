use super::*;

fn render(store: &Store, flavour: text::Flavour) -> String {
    let mut w = text::Writer::new(flavour);
    store.write_text(&mut w);
    w.finish()
}

#[test]
fn counters_encode_as_openmetrics_and_prometheus() {
    let mut s = Store::new(10);
    s.inc(Counter::Tokens, &["app", "claude-opus-4-6", "main", "input"], 5.0);
    s.inc(Counter::Tokens, &["app", "claude-opus-4-6", "main", "input"], 2.0);
    s.inc(Counter::Cost, &["app", "claude-opus-4-6", "main"], 250_000_000.0);
    s.observe(Histogram::ToolDuration, &["Bash"], 300.0);
    s.set_gauges(Gauge::CaughtUp, [(vec![], 1.0)]);
    let om = render(&s, text::Flavour::OpenMetrics);
    assert!(om.contains("# TYPE claude_sessions_tokens counter\n"), "{om}");
    let tokens =
        r#"claude_sessions_tokens_total{project="app",model="claude-opus-4-6",query_source="main",type="input"} 7.0"#;
    assert!(om.contains(tokens), "{om}");
    assert!(om.contains("# TYPE claude_sessions_cost_usd counter\n# UNIT claude_sessions_cost_usd usd\n"), "{om}");
    assert!(
        om.contains(
            r#"claude_sessions_cost_usd_total{project="app",model="claude-opus-4-6",query_source="main"} 0.25"#
        )
    );
    assert!(om.contains(r#"claude_sessions_tool_duration_seconds_bucket{tool="Bash",le="0.5"} 1"#), "{om}");
    assert!(om.contains("claude_sessions_tool_duration_seconds_sum{tool=\"Bash\"} 0.3\n"), "{om}");
    assert!(om.ends_with("# EOF\n"));
    let prom = render(&s, text::Flavour::Prometheus);
    assert!(prom.contains("# TYPE claude_sessions_tokens_total counter\n"), "{prom}");
    assert!(prom.contains("# HELP claude_sessions_tokens_total Tokens"), "{prom}");
    assert!(prom.contains(tokens), "{prom}");
    assert!(!prom.contains("# EOF") && !prom.contains("# UNIT"));
    assert!(prom.contains("# HELP claude_sessions_exporter_caught_up 1 once"), "{prom}");
}

#[test]
fn exemplars_go_on_their_bucket_in_openmetrics_only() {
    let mut s = Store::new(10);
    let ex = Exemplar { trace_id: [0xab; 16], span_id: [0xcd; 8], at_ms: 1_700_000_000_123, value: 0.0 };
    // A label value that looks like a bucket line and an exemplar: nothing reads the text back.
    s.observe_with(Histogram::ToolDuration, &["x\",le=\"2.5\"} # {"], 2400.0, Some(ex));
    s.observe(Histogram::ToolDuration, &["x\",le=\"2.5\"} # {"], 40.0);
    let om = render(&s, text::Flavour::OpenMetrics);
    let tool = r#"tool="x\",le=\"2.5\"} # {""#;
    let want = format!(
        "claude_sessions_tool_duration_seconds_bucket{{{tool},le=\"2.5\"}} 2 # {{trace_id=\"{}\",span_id=\"{}\"}} 2.4 1700000000.123\n",
        "ab".repeat(16),
        "cd".repeat(8)
    );
    assert!(om.contains(&want), "{want} not in\n{om}");
    assert_eq!(om.matches("trace_id").count(), 1, "{om}");
    let prom = render(&s, text::Flavour::Prometheus);
    assert!(prom.contains(&format!("claude_sessions_tool_duration_seconds_bucket{{{tool},le=\"2.5\"}} 2\n")));
    assert!(!prom.contains("trace_id"), "{prom}");
}

#[test]
fn series_over_the_cap_fold_into_other_and_are_counted() {
    let mut s = Store::new(2);
    for p in ["a", "b", "c", "d"] {
        s.inc(Counter::Prompts, &[p], 1.0);
    }
    assert_eq!(s.counter(Counter::Prompts, &["a"]), 1.0);
    assert_eq!(s.counter(Counter::Prompts, &["other"]), 2.0);
    assert_eq!(s.counter(Counter::Prompts, &["c"]), 0.0);
    assert_eq!(s.counter(Counter::SeriesOverflow, &["claude_sessions_prompts"]), 2.0);
    // Existing series keep counting.
    s.inc(Counter::Prompts, &["a"], 1.0);
    assert_eq!(s.counter(Counter::Prompts, &["a"]), 2.0);
}

#[test]
fn store_round_trips_through_json() {
    let mut s = Store::new(10);
    s.inc(Counter::Cost, &["p", "m", "main"], 250_000_000.0);
    s.observe(Histogram::ContextTokens, &["m"], 150_000.0);
    s.observe(Histogram::TurnDuration, &["p"], 1500.0);
    let back: Store = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back.counter(Counter::Cost, &["p", "m", "main"]), 0.25);
    assert_eq!(back.histogram(Histogram::ContextTokens, &["m"]).unwrap().count, 1);
    assert_eq!(back.histogram(Histogram::TurnDuration, &["p"]).unwrap().sum, 1.5);
}

#[test]
fn the_checkpoint_finds_families_and_labels_by_name() {
    let mut s = Store::new(10);
    s.inc(Counter::Tokens, &["p", "m", "main", "output"], 7.0);
    s.observe(Histogram::TurnDuration, &["p"], 1500.0);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["counters"]["claude_sessions_tokens"]["labels"][3], "type");
    // A family's label order changed, an unknown family appeared, families moved.
    let mut moved = json.clone();
    let series = moved["counters"]["claude_sessions_tokens"].take();
    let value = series["series"].as_object().unwrap().values().next().unwrap().clone();
    moved["counters"] = serde_json::json!({
        "claude_sessions_gone": {"labels": [], "series": {"": 3.0}},
        "claude_sessions_tokens": {"labels": ["type", "project", "model", "query_source"],
            "series": {format!("output{SEP}p{SEP}m{SEP}main"): value}},
    });
    let back: Store = serde_json::from_value(moved).unwrap();
    assert_eq!(back.counter(Counter::Tokens, &["p", "m", "main", "output"]), 7.0);
    assert_eq!(back.histogram(Histogram::TurnDuration, &["p"]).unwrap().count, 1);
}

#[test]
fn a_format_1_store_is_read_by_its_frozen_order() {
    // Format 1: families as a list in the declaration order of release 0.1.0.
    let mut counters = vec![serde_json::json!({}); persist::V1_COUNTERS.len()];
    counters[1] = serde_json::json!({"app": 5.0}); // prompts
    counters[3] = serde_json::json!({format!("app{SEP}m{SEP}main{SEP}input"): 11.0}); // tokens
    let mut histograms = vec![serde_json::json!({}); persist::V1_HISTOGRAMS.len()];
    histograms[3] =
        serde_json::json!({"app": {"counts": vec![1; families::TURN_BUCKETS.len() + 1], "sum": 962000.0, "count": 12}});
    let v1 = serde_json::json!({"counters": counters, "histograms": histograms});
    let s: Store = serde_json::from_value(v1).unwrap();
    assert_eq!(s.counter(Counter::Prompts, &["app"]), 5.0);
    assert_eq!(s.counter(Counter::Tokens, &["app", "m", "main", "input"]), 11.0);
    assert_eq!(s.histogram(Histogram::TurnDuration, &["app"]).unwrap().sum, 962.0);
    s.check().unwrap();
}

#[test]
fn names_are_unique_and_prefixed() {
    let mut names: Vec<String> = all_defs().map(Def::exposed_name).collect();
    assert!(names.iter().all(|n| n.starts_with("claude_sessions_")));
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n);
}
