//! `backfill` output imports into a fresh TSDB with promtool, and a Prometheus
//! started on that TSDB answers a range query whose token totals per model
//! equal `scan`'s.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use super::prom::{Prometheus, url_encode, which};
use super::support::{self, real_config_root, require_tool, run_scan_json};

#[test]
fn backfill_imports_with_promtool_and_prometheus_answers_scan_totals() {
    let Some(promtool) = require_tool("promtool", which("promtool")) else { return };
    let Some(prometheus) = require_tool("prometheus", which("prometheus")) else { return };
    let root = real_config_root();
    let tmp = tempfile::tempdir().unwrap();
    let om = tmp.path().join("history.om");
    let out = Command::new(support::bin())
        .args(["backfill", "--out"])
        .arg(&om)
        .env("CLAUDE_CONFIG_DIR", root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "backfill failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&om).unwrap();
    assert!(text.ends_with("# EOF\n"));

    let data = tmp.path().join("data");
    let import = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "promtool import failed:\n{}{}",
        String::from_utf8_lossy(&import.stdout),
        String::from_utf8_lossy(&import.stderr)
    );

    // The transcripts are months old: keep them past the default 15-day retention.
    let mut prom =
        Prometheus::start_with(&prometheus, "global: {}\n", Some(&data), &["--storage.tsdb.retention.time=100y"]);
    let last_ts = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0f64, f64::max);
    let first_ts = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(f64::MAX, f64::min);
    assert!(last_ts > first_ts + 86_400.0, "history spans more than a day: {first_ts}..{last_ts}");
    // A range query whose last step lands on the last sample.
    let step = 86_400.0;
    let start = last_ts - step * 30.0;
    let q = url_encode("sum by (model, type) (claude_sessions_tokens_total)");
    let path = format!("/api/v1/query_range?query={q}&start={start}&end={last_ts}&step={step}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        if let Some(v) = prom.api(&path) {
            break v;
        }
        assert!(Instant::now() < deadline, "prometheus did not answer:\n{}", prom.log_text());
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
    for series in result["data"]["result"].as_array().unwrap() {
        let model = series["metric"]["model"].as_str().unwrap().to_owned();
        let ty = series["metric"]["type"].as_str().unwrap().to_owned();
        let values = series["values"].as_array().unwrap();
        let (t, v) = (values.last().unwrap()[0].as_f64().unwrap(), values.last().unwrap()[1].as_str().unwrap());
        assert_eq!(t, last_ts, "{model}/{ty}: last point is not at the end of history");
        got.insert((model, ty), v.parse().unwrap());
    }
    let scan = run_scan_json(root.path());
    let mut want = BTreeMap::new();
    for (model, u) in scan["models"].as_object().unwrap() {
        for ty in ["input", "output", "cache_read", "cache_creation"] {
            let n = u[ty].as_f64().unwrap();
            if n > 0.0 {
                want.insert((model.clone(), ty.to_owned()), n);
            }
        }
    }
    assert!(want.len() > 10, "the fixtures have many model/type pairs");
    assert_eq!(got, want, "per-model token totals from the imported history differ from scan");
}
