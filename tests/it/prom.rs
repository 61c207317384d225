//! A real Prometheus server for tests: started on 127.0.0.1 with a free port,
//! queried through its HTTP API, killed when dropped (also on panic).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::daemon::http_get;

/// Look a program up on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A Prometheus server, killed when dropped (also on panic).
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrape `target` every second as job `claude-sessions`.
    pub fn start(bin: &Path, target: SocketAddr) -> Prometheus {
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: claude-sessions\n    scrape_interval: 1s\n    scrape_timeout: 1s\n\
             \x20   static_configs:\n      - targets: ['{target}']\n"
        );
        Prometheus::start_with(bin, &config, None, &[])
    }

    /// Start with a configuration text, an optional existing TSDB folder, and extra flags.
    pub fn start_with(bin: &Path, config_text: &str, data: Option<&Path>, extra: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_text).unwrap();
        let data = data.map_or_else(|| dir.path().join("data"), Path::to_path_buf);
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            .args(extra)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        Prometheus { child, addr, dir }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; `None` if Prometheus does not answer (yet).
    pub fn api(&mut self, path: &str) -> Option<serde_json::Value> {
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
    pub fn query(&mut self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
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
    pub fn scalar(&mut self, promql: &str) -> Option<f64> {
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
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
