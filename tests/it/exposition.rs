//! What scrapers see: `/metrics` passes `promtool check metrics` without a
//! single lint complaint, content type and gzip are negotiated from the
//! request headers, and a real Prometheus scrapes the daemon (OpenMetrics)
//! and answers PromQL with the same totals as `scan`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::daemon::{Daemon, Metrics, http_get};
use super::support::{self, real_config_root, require_tool, run_scan_json};

const TYPES: [&str; 4] = ["input", "output", "cache_read", "cache_creation"];

/// An executable called `name` in a folder of `$PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

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
    let d = started(root.path(), state.path());
    let (status, headers, body) = d.get("/metrics", &[]);
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    assert!(Metrics::parse(&String::from_utf8_lossy(&body)).has("claude_sessions_tokens_total"));
    promtool_check(&promtool, "serve /metrics", &body);

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

/// A Prometheus server, killed when dropped (also on panic).
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(bin: &Path, target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: claude-sessions\n    scrape_interval: 1s\n    scrape_timeout: 1s\n\
                 \x20   static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        Prometheus { child, addr, dir }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; `None` if Prometheus does not answer (yet).
    fn api(&mut self, path: &str) -> Option<serde_json::Value> {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("prometheus exited with {status}:\n{}", self.log_text());
        }
        let addr = self.addr;
        // Not listening yet: no request (the harness's client panics on a refused connection).
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        let (status, _, body) = std::panic::catch_unwind(|| http_get(addr, path, &[])).ok()?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (v["status"] == "success").then_some(v)
    }

    /// An instant query's result vector: (labels, value) per series.
    fn query(&mut self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let Some(v) = self.api(&format!("/api/v1/query?query={}", url_encode(promql))) else { return Vec::new() };
        assert_eq!(v["data"]["resultType"], "vector", "{promql}: {v}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                let value: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// The value of a query that returns one series without labels.
    fn scalar(&mut self, promql: &str) -> Option<f64> {
        let r = self.query(promql);
        assert!(r.len() <= 1, "{promql}: {r:?}");
        r.first().map(|(_, v)| *v)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encode everything but unreserved characters (RFC 3986).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
