//! The shipped dashboards and rules against a real stack: claude-sessions on the
//! real fixtures, scraped by a real Prometheus that loads the recording and
//! alert rules. Every PromQL expression of every dashboard panel and template
//! variable must parse and evaluate; every panel whose metrics the exporter
//! serves must return at least one series; every rule must evaluate healthily.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::prom::{Prometheus, url_encode, which};
use super::support::{real_config_root, require_tool};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every target expression and variable query of every Prometheus dashboard: (dashboard,
/// panel title, expr). A dashboard whose data source is Loki (the team events, LogQL) is
/// left to `dashboards.rs`, which checks its filters against what the records carry.
fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("dashboards"))
        .expect("dashboards/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards");
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let d: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let loki = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["type"] == "datasource" && v["query"] == "loki");
        if loki {
            continue;
        }
        let mut panels: Vec<&serde_json::Value> =
            d["panels"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        while let Some(p) = panels.pop() {
            if let Some(inner) = p["panels"].as_array() {
                panels.extend(inner);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                    out.push((name.clone(), p["title"].as_str().unwrap_or("").to_owned(), expr.to_owned()));
                }
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            let q = v["query"].as_str().map(str::to_owned).or_else(|| v["query"]["query"].as_str().map(str::to_owned));
            if let Some(q) = q.filter(|q| q.starts_with("label_values(")) {
                // label_values(selector, label) → a PromQL query with the same data.
                let inner = q.trim_start_matches("label_values(").trim_end_matches(')');
                let (selector, label) = inner.rsplit_once(',').expect("label_values(selector, label)");
                let expr = format!("group by ({}) ({})", label.trim(), selector.trim());
                out.push((name.clone(), format!("variable {}", v["name"].as_str().unwrap_or("?")), expr));
            }
        }
    }
    out
}

/// Grafana's variables, replaced by what they expand to with "All" selected.
fn expand(expr: &str) -> String {
    let mut e = expr.to_owned();
    for (from, to) in [
        ("$__rate_interval", "1m"),
        ("${__rate_interval}", "1m"),
        ("$__interval", "15s"),
        ("${__interval}", "15s"),
        ("$__range", "1h"),
        ("${__range}", "1h"),
        ("$__range_s", "3600"),
    ] {
        e = e.replace(from, to);
    }
    // Any other variable (`$instance`, `${project:regex}`…) with "All" selected.
    let mut out = String::with_capacity(e.len());
    let mut rest = e.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name_len, skip) = if let Some(inner) = after.strip_prefix('{') {
            let close = inner.find('}').expect("closing brace of a ${variable}");
            (close, close + 2)
        } else {
            let n = after.bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count();
            (n, n)
        };
        assert!(name_len > 0, "a lone $ in {expr}");
        out.push_str(".*");
        rest = &after[skip..];
    }
    out.push_str(rest);
    out
}

/// `claude_sessions_*` metric names (histogram series mapped to their family) and
/// `claude_sessions:*` recording rules used by an expression.
fn names(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut metrics, mut rules) = (BTreeSet::new(), BTreeSet::new());
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("claude_sessions").map(|j| i + j) {
        let end = at + b[at..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b':').count();
        let name = &expr[at..end];
        if name.contains(':') {
            rules.insert(name.to_owned());
        } else {
            let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            metrics.insert(base.to_owned());
        }
        i = end;
    }
    (metrics, rules)
}

#[test]
fn every_dashboard_and_rule_query_evaluates_on_real_data() {
    let Some(prometheus) = require_tool("prometheus", which("prometheus")) else { return };
    let rules_file = repo("alerts/claude-sessions.rules.yml");
    assert!(rules_file.exists(), "alerts/claude-sessions.rules.yml");
    let root = real_config_root();
    // Plus one made-up session with what the real fixtures lack (MCP calls, an API
    // error, an unpriced model, a compaction, a pending call).
    let features = root.path().join("projects/-work-features/f1.jsonl");
    std::fs::create_dir_all(features.parent().unwrap()).unwrap();
    std::fs::copy(super::support::fixtures_dir().join("handmade/features.jsonl"), &features).unwrap();
    let state = tempfile::tempdir().unwrap();
    // The fixtures are months old: keep their sessions live so the live gauges have data.
    let d = Daemon::start(root.path(), state.path(), &["--idle-timeout", "100000d", "--end-timeout", "100000d"]);
    d.wait_ready(Duration::from_secs(30));
    let served: BTreeSet<String> = d
        .metrics()
        .samples
        .iter()
        .map(|(n, _, _)| ["_bucket", "_count", "_sum"].iter().find_map(|s| n.strip_suffix(s)).unwrap_or(n).to_owned())
        .collect();

    // The shipped rules, with their groups evaluated every second instead of every minute.
    let rules_dir = tempfile::tempdir().unwrap();
    let rules_copy = rules_dir.path().join("rules.yml");
    let shipped = std::fs::read_to_string(&rules_file).unwrap();
    let fast: String = shipped
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("interval:") {
                l.split("interval:").next().unwrap().to_owned() + "interval: 1s"
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&rules_copy, fast).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files: ['{}']\n\
         scrape_configs:\n  - job_name: claude-sessions\n    static_configs:\n      - targets: ['{}']\n",
        rules_copy.display(),
        d.addr
    );
    let mut prom = Prometheus::start_with(&prometheus, &config, None, &[]);
    // Wait for scrapes and for the recording rules to have two samples to rate over.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prom.scalar("sum(up{job=\"claude-sessions\"})").unwrap_or(0.0);
        let rated = !prom.query("claude_sessions:tokens:rate5m").is_empty();
        if up == 1.0 && rated {
            break;
        }
        assert!(Instant::now() < deadline, "no scrape or rule data within 60 s:\n{}", prom.log_text());
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(3));

    // Every rule evaluates without error.
    let rules = prom.api("/api/v1/rules").expect("rules API");
    let mut rule_names = BTreeSet::new();
    for group in rules["data"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap();
            rule_names.insert(name.to_owned());
            assert_eq!(r["health"], "ok", "rule {name} is unhealthy: {}", r["lastError"]);
        }
    }
    assert!(rule_names.len() > 10, "rules loaded: {rule_names:?}");

    // Every dashboard query parses and, where the exporter serves its metrics, has data.
    let queries = dashboard_queries();
    assert!(queries.len() > 30, "only {} queries found", queries.len());
    let mut failures = Vec::new();
    let mut checked_with_data = 0;
    for (dash, title, expr) in &queries {
        let q = expand(expr);
        let Some(v) = prom.api(&format!("/api/v1/query?query={}", url_encode(&q))) else {
            failures.push(format!("{dash} / {title}: query failed to parse or evaluate: {q}"));
            continue;
        };
        let (metrics, recording) = names(&q);
        for r in &recording {
            if !rule_names.contains(r) {
                failures.push(format!("{dash} / {title}: unknown recording rule {r}"));
            }
        }
        let should_have_data =
            metrics.iter().all(|m| served.contains(m)) && recording.iter().all(|r| !prom.query(r).is_empty());
        let n = v["data"]["result"].as_array().map_or(1, Vec::len);
        if should_have_data {
            checked_with_data += 1;
            if n == 0 {
                failures.push(format!("{dash} / {title}: no series although the exporter serves its metrics: {q}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} queries failed:\n{}", failures.len(), queries.len(), failures.join("\n"));
    eprintln!("{} dashboard queries evaluated, {checked_with_data} of them required and returned data", queries.len());
    assert!(checked_with_data * 2 > queries.len(), "most panels should have data on the real fixtures");
}
