//! A transcript or folder that cannot be read is tried again on every reconcile
//! until it can, and each failure counts once in `read_errors_total`, however
//! many reconciles it lasts. Permissions are what fails here: as root, whom
//! `chmod 000` does not stop, the daemon runs as `nobody` (setpriv, util-linux).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::daemon::{Metrics, http_get, lines_of};
use super::{oracle, support};

const NOBODY: u32 = 65534;
const RECONCILE: Duration = Duration::from_millis(500);

fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:")).expect("Uid line");
    uids.split_whitespace().nth(1).and_then(|u| u.parse().ok()).expect("effective uid")
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// `serve` as a user that permissions apply to: as root, `nobody` through setpriv.
struct Serve {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn start(config_root: &Path, state_dir: &Path, extra: &[&str]) -> Serve {
        let mut cmd = if euid() == 0 {
            let mut c = Command::new("setpriv");
            c.args(["--reuid", &NOBODY.to_string(), "--regid", &NOBODY.to_string(), "--clear-groups"]);
            c.arg(support::bin());
            c
        } else {
            Command::new(support::bin())
        };
        cmd.args(["serve", "--web.listen-address", "127.0.0.1:0", "--process-check-interval", "0"])
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra)
            .env("CLAUDE_CONFIG_DIR", config_root)
            .env("CLAUDE_SESSIONS_LOG", "info")
            .env_remove("OTEL_METRICS_EXPORTER")
            .env_remove("OTEL_TRACES_EXPORTER")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn serve (setpriv from util-linux when run as root)");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (stderr, sink) = (child.stderr.take().expect("stderr"), Arc::clone(&logs));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.split("address=").nth(1).and_then(|r| r.split_whitespace().next()) {
                    let _ = tx.send(a.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!("serve did not start; logs:\n{}", logs.lock().unwrap().join("\n"));
            }
        };
        Serve { child, addr, logs }
    }

    fn metrics(&self) -> Metrics {
        let (status, _, body) = http_get(self.addr, "/metrics", &[]);
        assert_eq!(status, 200);
        Metrics::parse(&String::from_utf8(body).expect("utf-8"))
    }

    fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    fn log_count(&self, needle: &str) -> usize {
        self.logs.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines a reader must hand on: the non-blank lines of every transcript below `dir`.
fn non_blank_lines(dir: &Path) -> f64 {
    oracle::jsonl_files(dir).iter().flat_map(|f| lines_of(f)).filter(|l| !l.iter().all(u8::is_ascii_whitespace)).count()
        as f64
}

fn lines_read(m: &Metrics) -> f64 {
    ["ok", "malformed", "unknown_type", "oversized"]
        .iter()
        .map(|r| m.sum("claude_sessions_exporter_lines_total", &[("result", r)]))
        .sum()
}

fn read_errors(m: &Metrics, kind: &str) -> f64 {
    m.sum("claude_sessions_exporter_read_errors_total", &[("kind", kind)])
}

fn tokens(m: &Metrics, ty: &str) -> u64 {
    m.sum("claude_sessions_tokens_total", &[("type", ty)]) as u64
}

#[test]
fn unreadable_file_and_folder_are_retried_each_reconcile_and_counted_once() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let projects = root.path().join("projects");
    let real = support::fixtures_dir().join("real/claude-code-log/projects");
    let file = projects.join("-w-a/cb2e607c-c758-415a-8b45-c49e4631906a.jsonl");
    let folder = projects.join("-w-b");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    support::copy_tree(
        &real.join("-Users-dain-workspace-coderabbit-review-helper/cb2e607c-c758-415a-8b45-c49e4631906a.jsonl"),
        &file,
    );
    support::copy_tree(&real.join("-src-deep-manifest"), &folder);
    // Everything readable by the daemon's user except the two under test.
    for d in [root.path(), &projects, file.parent().unwrap(), &folder] {
        chmod(d, 0o755);
    }
    for f in oracle::jsonl_files(&projects) {
        chmod(&f, 0o644);
    }
    std::os::unix::fs::chown(state.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let expected_lines = non_blank_lines(&projects);
    let expected = oracle::count(&projects);
    assert!(expected_lines > 300.0, "fixtures hold {expected_lines} lines");
    chmod(&file, 0o000);
    chmod(&folder, 0o000);

    let interval = format!("{}ms", RECONCILE.as_millis());
    let d = Serve::start(root.path(), state.path(), &["--reconcile-interval", &interval]);
    // Several reconciles while both stay unreadable.
    std::thread::sleep(RECONCILE * 5);
    let m = d.metrics();
    assert_eq!(
        (read_errors(&m, "file"), read_errors(&m, "folder")),
        (1.0, 1.0),
        "one failure each, however many reconciles\n{}",
        d.log_text()
    );
    assert_eq!(lines_read(&m), 0.0);
    assert_eq!(d.log_count("Cannot read transcript"), 1, "warned once:\n{}", d.log_text());
    assert_eq!(d.log_count("Cannot read folder"), 1, "warned once:\n{}", d.log_text());

    chmod(&file, 0o644);
    chmod(&folder, 0o755);
    let made_readable = Instant::now();
    let mut m = d.metrics();
    while lines_read(&m) < expected_lines && made_readable.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
        m = d.metrics();
    }
    let took = made_readable.elapsed();
    eprintln!("read_retry: counted {} s after becoming readable (reconcile every {RECONCILE:?})", took.as_secs_f64());
    assert_eq!(lines_read(&m), expected_lines, "every line once, after {took:?}\n{}", d.log_text());
    // One reconcile interval, plus what a shared 2-core machine may add.
    assert!(took <= RECONCILE + Duration::from_millis(700), "took {took:?} for a {RECONCILE:?} reconcile");

    let want = |f: fn(&oracle::Tokens) -> u64| expected.tokens.values().map(f).sum::<u64>();
    assert_eq!(
        [tokens(&m, "input"), tokens(&m, "output"), tokens(&m, "cache_read"), tokens(&m, "cache_creation")],
        [want(|t| t.input), want(|t| t.output), want(|t| t.cache_read), want(|t| t.cache_creation)],
        "token totals against the independent count"
    );
    // Success ended both episodes; nothing more was counted while recovering.
    std::thread::sleep(RECONCILE * 3);
    let m = d.metrics();
    assert_eq!((read_errors(&m, "file"), read_errors(&m, "folder")), (1.0, 1.0));
    assert_eq!(lines_read(&m), expected_lines, "no line read twice");
    assert_eq!(d.log_count("Transcript can be read again."), 1, "{}", d.log_text());
    assert_eq!(d.log_count("Folder can be read again."), 1, "{}", d.log_text());
}
