//! What scrapers see: `/metrics` passes `promtool check metrics` without a
//! single lint complaint, content type and gzip are negotiated from the
//! request headers, and a real Prometheus scrapes the daemon (OpenMetrics)
//! and answers PromQL with the same totals as `scan`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::daemon::{Daemon, Metrics};
use super::prom::{Prometheus, which};
use super::support::{self, real_config_root, require_tool, run_scan_json};

const TYPES: [&str; 4] = ["input", "output", "cache_read", "cache_creation"];

/// An executable called `name` in a folder of `$PATH`.
/// `promtool check metrics < text`: panics with every line it printed unless it
/// exits 0 and prints nothing.
fn promtool_check(promtool: &Path, what: &str, text: &[u8]) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let mut stdin = child.stdin.take().expect("stdin piped");
    let body = text.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let out = child.wait_with_output().expect("wait for promtool");
    writer.join().unwrap().expect("write to promtool");
    let complaints: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "promtool check metrics on {what} ({}):\n{}",
        out.status,
        complaints.join("\n")
    );
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Names of the samples of an exposition, sorted and deduplicated.
fn sample_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Metrics::parse(text).samples.into_iter().map(|(n, _, _)| n).collect();
    names.sort();
    names.dedup();
    names
}

fn started(config_root: &Path, state: &Path) -> Daemon {
    let d = Daemon::start(config_root, state, &[]);
    d.wait_ready(Duration::from_secs(60));
    d
}

#[test]
fn promtool_check_metrics_has_no_complaints() {
    let Some(promtool) = require_tool("promtool", which("promtool")) else { return };
    let root = real_config_root();
    let state = tempfile::tempdir().unwrap();
    // Every registered collector on: the endpoint's, the webhooks' and the OTLP sink's
    // (their targets refuse connections; only their own metrics matter here).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (hook, otlp) = (format!("http://{closed}/hook"), format!("http://{closed}"));
    let sinks = ["--webhook", &hook, "--otlp-metrics", "--otlp-traces", "--otlp-endpoint", &otlp];
    let d = Daemon::start(root.path(), state.path(), &sinks);
    d.wait_ready(Duration::from_secs(60));
    let (status, headers, body) = d.get("/metrics", &[]);
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let m = Metrics::parse(&String::from_utf8_lossy(&body));
    for name in [
        "claude_sessions_tokens_total",
        "claude_sessions_exporter_http_connections_closed_total",
        "claude_sessions_exporter_webhook_deliveries_total",
        "claude_sessions_exporter_otlp_exports_total",
    ] {
        assert!(m.has(name), "{name} missing from /metrics");
    }
    promtool_check(&promtool, "serve /metrics", &body);
    // The same families in OpenMetrics: counters named without `_total`, and one `# EOF`.
    let (_, _, om) = d.get("/metrics", &[("Accept", "application/openmetrics-text; version=1.0.0")]);
    let om = String::from_utf8(om).unwrap();
    assert!(om.contains("# TYPE claude_sessions_exporter_otlp_exports counter\n"), "{om}");
    assert_eq!(om.matches("# EOF").count(), 1);
    assert_eq!(sample_names(&om), sample_names(&String::from_utf8_lossy(&body)));

    let scan_state = tempfile::tempdir().unwrap();
    let out = Command::new(support::bin())
        .args(["scan", "--format", "prometheus", "--state-dir"])
        .arg(scan_state.path())
        .env("CLAUDE_CONFIG_DIR", root.path())
        .output()
        .expect("run scan");
    assert!(out.status.success(), "scan failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(Metrics::parse(&String::from_utf8_lossy(&out.stdout)).has("claude_sessions_tokens_total"));
    promtool_check(&promtool, "scan --format prometheus", &out.stdout);
}

#[test]
fn openmetrics_and_gzip_are_negotiated() {
    let root = real_config_root();
    let state = tempfile::tempdir().unwrap();
    let d = started(root.path(), state.path());

    let (status, headers, body) = d.get("/metrics", &[("Accept", "application/openmetrics-text; version=1.0.0")]);
    assert_eq!(status, 200);
    let ct = header(&headers, "content-type").unwrap_or_default();
    assert!(ct.starts_with("application/openmetrics-text"), "content-type {ct:?}");
    let om = String::from_utf8(body).expect("utf-8 openmetrics");
    assert!(om.ends_with("# EOF\n"), "OpenMetrics must end with # EOF: ...{}", &om[om.len().saturating_sub(200)..]);
    assert!(om.contains("# TYPE claude_sessions_tokens counter\n"), "OpenMetrics counter family has no _total");

    let (status, headers, body) = d.get("/metrics", &[]);
    assert_eq!(status, 200);
    let ct = header(&headers, "content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "content-type {ct:?}");
    assert!(header(&headers, "content-encoding").is_none());
    let prom = String::from_utf8(body).expect("utf-8 metrics");
    assert!(!prom.contains("# EOF"), "Prometheus text must not carry # EOF");
    assert!(!prom.contains("# UNIT"), "Prometheus text must not carry # UNIT");
    let names = sample_names(&prom);
    assert!(names.iter().any(|n| n == "claude_sessions_tokens_total"), "{names:?}");
    // Both formats name the same samples.
    assert_eq!(sample_names(&om), names, "OpenMetrics and Prometheus text name different samples");

    for accept in [None, Some("application/openmetrics-text; version=1.0.0")] {
        let mut req = vec![("Accept-Encoding", "gzip")];
        req.extend(accept.map(|a| ("Accept", a)));
        let (status, headers, body) = d.get("/metrics", &req);
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-encoding"), Some("gzip"), "Accept {accept:?}: {headers:?}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text).expect("gzip body decompresses");
        assert_eq!(sample_names(&text), names, "Accept {accept:?}: gzip body names different samples");
        assert_eq!(text.ends_with("# EOF\n"), accept.is_some());
    }
    // Several codings, gzip among them with a weight.
    let (_, headers, _) = d.get("/metrics", &[("Accept-Encoding", "br, gzip;q=0.8, deflate")]);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let (_, headers, body) = d.get("/metrics", &[("Accept-Encoding", "identity")]);
    assert!(header(&headers, "content-encoding").is_none());
    assert_eq!(sample_names(&String::from_utf8(body).unwrap()), names);

    assert_eq!(d.get("/healthz", &[]).0, 200);
    assert_eq!(d.get("/readyz", &[]).0, 200);
    let (status, headers, body) = d.get("/", &[]);
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").is_some_and(|c| c.starts_with("text/html")), "{headers:?}");
    assert!(String::from_utf8_lossy(&body).contains("/metrics"));
    assert_eq!(d.get("/no-such-page", &[]).0, 404);
    assert_eq!(d.get("/metrics/extra", &[]).0, 404);
}

#[test]
fn prometheus_scrapes_and_answers_the_token_total() {
    let Some(bin) = require_tool("prometheus", which("prometheus")) else { return };
    let root = real_config_root();
    let state = tempfile::tempdir().unwrap();
    let scan = run_scan_json(root.path());
    let mut want: BTreeMap<&str, f64> = BTreeMap::new();
    for m in scan["models"].as_object().unwrap().values() {
        for t in TYPES {
            *want.entry(t).or_default() += m[t].as_f64().unwrap();
        }
    }
    let total: f64 = want.values().sum();
    assert!(total > 0.0, "the real fixtures have tokens");

    let d = started(root.path(), state.path());
    let mut p = Prometheus::start(&bin, d.addr);

    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        if let Some(v) = p.scalar("sum(claude_sessions_tokens_total)") {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus has no claude_sessions_tokens_total after 60 s; targets: {:?}\nprometheus log:\n{}\ndaemon log:\n{}",
            p.api("/api/v1/targets"),
            p.log_text(),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(got, total, "sum(claude_sessions_tokens_total) vs scan");

    assert_eq!(p.scalar(r#"up{job="claude-sessions"}"#), Some(1.0), "up{{job=\"claude-sessions\"}}");
    let by_type: BTreeMap<String, f64> = p
        .query("sum by (type) (claude_sessions_tokens_total)")
        .into_iter()
        .map(|(l, v)| (l.get("type").cloned().unwrap_or_default(), v))
        .collect();
    let want_by_type: BTreeMap<String, f64> = want.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(by_type, want_by_type, "sum by (type) vs scan");
    assert_eq!(p.scalar("claude_sessions_exporter_caught_up"), Some(1.0), "claude_sessions_exporter_caught_up");

    // Prometheus asked for OpenMetrics, and only OpenMetrics carries units: a
    // unit in the target metadata shows the scrape used it.
    let meta = p.api(r#"/api/v1/targets/metadata?match_target=%7Bjob%3D%22claude-sessions%22%7D"#).expect("metadata");
    let units: BTreeMap<String, String> = meta["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["metric"].as_str().unwrap().to_owned(), m["unit"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(
        units.get("claude_sessions_cost_usd").map(String::as_str),
        Some("usd"),
        "no unit for the cost family: was the scrape OpenMetrics? {units:?}"
    );
}
