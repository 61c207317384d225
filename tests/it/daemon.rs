//! A `claude-sessions serve` process under test: started on 127.0.0.1 port 0, its
//! logs captured, its endpoints fetched with a minimal HTTP/1.1 client, and its
//! `/metrics` parsed by a small, independent Prometheus text parser.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::support;

pub struct Daemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Start `serve` for `config_root` (as `CLAUDE_CONFIG_DIR`) with `state_dir`, and
    /// wait until it listens (not until it is ready: see [`Daemon::wait_ready`]).
    pub fn start(config_root: &Path, state_dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_env(config_root, state_dir, extra, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_env(config_root: &Path, state_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::launch(config_root, state_dir, "127.0.0.1:0", &[], extra, env)
    }

    /// [`Daemon::start`] listening on `listen` (a loopback address, or `0.0.0.0:0`:
    /// [`Daemon::addr`] is then 127.0.0.1 with the port it got), run through `prefix`:
    /// a program and its arguments that get our binary and its arguments after them,
    /// e.g. `sh -c 'ulimit -n 1024 && exec "$0" "$@"'`.
    pub fn start_custom(config_root: &Path, state_dir: &Path, listen: &str, prefix: &[&str], extra: &[&str]) -> Daemon {
        Daemon::launch(config_root, state_dir, listen, prefix, extra, &[])
    }

    fn launch(
        config_root: &Path,
        state_dir: &Path,
        listen: &str,
        prefix: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut cmd = match prefix.split_first() {
            None => Command::new(support::bin()),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(support::bin());
                c
            }
        };
        let mut child = cmd
            .args(["serve", "--web.listen-address", listen])
            // Checkpoints often, unless the test chooses.
            .args(if extra.contains(&"--checkpoint-interval") {
                &[][..]
            } else {
                &["--checkpoint-interval", "200ms"][..]
            })
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra)
            .env("CLAUDE_CONFIG_DIR", config_root)
            .env("CLAUDE_SESSIONS_LOG", "debug")
            // A developer's own OTLP settings must not reach the daemon under test.
            .env_remove("OTEL_METRICS_EXPORTER")
            .env_remove("OTEL_TRACES_EXPORTER")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn claude-sessions serve");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("address=").nth(1).and_then(|r| r.split_whitespace().next()) {
                    let _ = tx.send(addr.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("listen address in log"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not report its address; logs:\n{}", logs.lock().unwrap().join("\n"));
            }
        };
        if addr.ip().is_unspecified() {
            // Tests only ever connect over loopback.
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Daemon { child: Some(child), addr, logs }
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// GET `path` with extra request headers; returns (status, lower-cased headers, body).
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        http_get(self.addr, path, headers)
    }

    pub fn metrics(&self) -> Metrics {
        let (status, _, body) = self.get("/metrics", &[]);
        assert_eq!(status, 200);
        Metrics::parse(&String::from_utf8(body).expect("utf-8 metrics"))
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.get("/readyz", &[]).0 == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("not ready within {timeout:?}; logs:\n{}", self.log_text());
    }

    /// Poll `/metrics` until `pred` holds; returns how long it took, or None at the timeout.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Metrics) -> bool) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if pred(&self.metrics()) {
                return Some(start.elapsed());
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no chance to write a last checkpoint.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            c.wait().expect("reap");
        }
    }

    /// SIGTERM and wait: the daemon writes its checkpoint and exits 0.
    pub fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let ok = Command::new("kill").args(["-TERM", &c.id().to_string()]).status().expect("kill -TERM");
            assert!(ok.success());
            let status = c.wait().expect("wait");
            assert!(status.success(), "serve exited with {status}");
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A one-shot HTTP/1.1 GET with `Connection: close`.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).expect("status");
    let hdrs: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if hdrs.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    (status, hdrs, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
}

/// One sample: name, label pairs, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Samples of a Prometheus text exposition.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name_labels, value) = line.rsplit_once(' ').expect("sample line has a value");
            let (name, labels) = match name_labels.split_once('{') {
                Some((n, rest)) => (n.to_owned(), parse_labels(rest.strip_suffix('}').expect("closing brace"))),
                None => (name_labels.to_owned(), Vec::new()),
            };
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
            samples.push((name, labels, v));
        }
        Metrics { samples }
    }

    /// Sum of `name` over the samples whose labels include every `filter` pair.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && filter.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }

    /// Every counter sample (`*_total`), keyed by its full identity.
    pub fn counters(&self) -> std::collections::BTreeMap<String, f64> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n.ends_with("_total"))
            .map(|(n, l, v)| (format!("{n}{l:?}"), *v))
            .collect()
    }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        assert_eq!(chars.next(), Some('"'));
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(o) => val.push(o),
                    None => {}
                },
                '"' => break,
                o => val.push(o),
            }
        }
        out.push((key.trim_start_matches(',').to_owned(), val));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// A fresh folder tree: `<root>/projects/` that may be filled later.
pub fn empty_root() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Append bytes to a file, creating it and its folders.
pub fn append(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
}

/// The complete lines of a file, each with its newline.
pub fn lines_of(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    data.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

/// `scan --format json` over an explicit projects folder.
pub fn scan_projects(projects: &Path) -> serde_json::Value {
    let out = Command::new(support::bin())
        .args(["scan", "--format", "json", "--projects-dir"])
        .arg(projects)
        .output()
        .expect("run scan");
    assert!(out.status.success(), "scan failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("scan json")
}

/// Total tokens of a scan report, per type.
pub fn scan_tokens(report: &serde_json::Value, ty: &str) -> f64 {
    report["models"].as_object().unwrap().values().map(|m| m[ty].as_f64().unwrap()).sum()
}

pub fn real(rel: &str) -> PathBuf {
    support::fixtures_dir().join("real").join(rel)
}
