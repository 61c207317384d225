//! `--web.config.file` against real clients: curl over TLS with a certificate authority
//! the test makes with the openssl CLI, basic auth with bcrypt hashes the test makes,
//! client certificates, TLS versions, reloads, and the warning about exposure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::daemon::{Daemon, empty_root};
use super::support;

/// A CA, a server certificate for 127.0.0.1, a client certificate signed by the CA,
/// and a self-signed client certificate no CA vouches for.
/// Made with the `openssl` CLI; shared with the OTLP tests.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("ca.cnf"),
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = claude-sessions test CA\n\
             [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n",
        )
        .unwrap();
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        std::fs::write(
            d.join("client.ext"),
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        openssl(
            d,
            &[
                &["req", "-x509", "-new", "-config", "ca.cnf", "-extensions", "v3_ca"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            ],
        );
        for (name, cn) in [("server", "127.0.0.1"), ("client", "scraper")] {
            let (key, csr, pem, ext) =
                (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
            openssl(d, &[&["req", "-new"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={cn}")]]);
            openssl(
                d,
                &[&[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ][..]],
            );
        }
        openssl(
            d,
            &[
                &["req", "-x509", "-new"][..],
                &ec,
                &[
                    "-keyout",
                    "rogue.key",
                    "-out",
                    "rogue.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=rogue",
                    "-addext",
                    "extendedKeyUsage=clientAuth",
                ],
            ],
        );
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

fn openssl(dir: &Path, args: &[&[&str]]) {
    let args: Vec<&str> = args.concat();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("the openssl CLI is needed (Debian package openssl): {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// What curl did: its exit code, the HTTP status, seconds until the request could be
/// sent (TCP + TLS done) and until the end, the body, and the response headers.
#[derive(Debug)]
struct Curl {
    exit: i32,
    status: u16,
    pretransfer: f64,
    total: f64,
    body: String,
    headers: String,
    stderr: String,
}

impl Curl {
    /// Time from the request being sent to the response's end: the server's share.
    fn server_time(&self) -> f64 {
        self.total - self.pretransfer
    }
}

/// The handshake failed (no HTTP status) with a TLS alert whose text holds `alert`.
fn refused_by_alert(c: &Curl, what: &str, alert: &str) {
    assert!(c.exit != 0 && c.status == 0, "{what} must be refused: {c:?}");
    eprintln!("{what}: {}", c.stderr.trim());
    assert!(c.stderr.contains(alert), "{what}: refused by a TLS alert ({alert}): {c:?}");
}

fn curl(args: &[&str], url: &str) -> Curl {
    let headers = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--noproxy", "*", "-D"])
        .arg(headers.path())
        .args(["-w", "\n%{http_code} %{time_pretransfer} %{time_total}"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("curl is needed (Debian package curl): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let mut w = last.split_whitespace();
    let mut next = || w.next().unwrap_or("0").to_owned();
    let (status, pretransfer, total) = (next(), next(), next());
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: status.parse().unwrap_or(0),
        pretransfer: pretransfer.parse().unwrap_or(0.0),
        total: total.parse().unwrap_or(0.0),
        body: body.to_owned(),
        headers: std::fs::read_to_string(headers.path()).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write_config(path: &Path, text: &str) {
    // Written beside and renamed over, as the README tells users to.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Start serve with `--web.config.file` and wait until a request with `curl_args` gets 200.
fn start(root: &Path, state: &Path, config: &Path, scheme: &str, curl_args: &[&str]) -> Daemon {
    let d = Daemon::start(root, state, &["--web.config.file", config.to_str().unwrap()]);
    let url = format!("{scheme}://127.0.0.1:{}/readyz", d.addr.port());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = curl(curl_args, &url);
        if c.status == 200 {
            return d;
        }
        assert!(Instant::now() < deadline, "not ready: {c:?}\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tls_and_basic_auth_with_curl() {
    let pki = Pki::new();
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let config = pki.dir.path().join("web.yml");
    // Cost 10: a wrong password costs tens of milliseconds, an unchecked one microseconds.
    let hash = bcrypt::hash("right horse", 10).unwrap();
    write_config(
        &config,
        &format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  alice: '{hash}'\n"
        ),
    );
    let ca = pki.path("ca.pem");
    let ok = ["--cacert", ca.as_str(), "-u", "alice:right horse"];
    let d = start(root.path(), state.path(), &config, "https", &ok);
    let base = format!("https://127.0.0.1:{}", d.addr.port());

    for path in ["/metrics", "/healthz", "/api/sessions", "/"] {
        let c = curl(&ok, &format!("{base}{path}"));
        assert_eq!((c.exit, c.status), (0, 200), "{path}: {c:?}");
    }
    let m = curl(&ok, &format!("{base}/metrics"));
    assert!(m.body.contains("claude_sessions_exporter_http_auth_failures_total"), "{}", m.body);

    // The event stream is behind TLS and auth too.
    let events = curl(&[&ok[..], &["-N", "--max-time", "2"]].concat(), &format!("{base}/api/events"));
    assert_eq!(events.exit, 28, "the stream stays open until curl's time limit: {events:?}");
    assert!(events.body.contains("event: snapshot"), "{events:?}");
    let no_auth = curl(&["--cacert", ca.as_str(), "--max-time", "2"], &format!("{base}/api/events"));
    assert_eq!(no_auth.status, 401, "{no_auth:?}");

    let none = curl(&["--cacert", ca.as_str()], &format!("{base}/metrics"));
    assert_eq!(none.status, 401, "{none:?}");
    assert!(
        none.headers.lines().any(|l| l.to_ascii_lowercase().starts_with("www-authenticate: basic")),
        "{}",
        none.headers
    );

    // A wrong password and an unknown user take the same time (interleaved against drift).
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let c = curl(&["--cacert", ca.as_str(), "-u", "alice:wrong horse"], &format!("{base}/metrics"));
        assert_eq!(c.status, 401, "{c:?}");
        wrong.push(c.server_time());
        let c = curl(&["--cacert", ca.as_str(), "-u", "mallory:wrong horse"], &format!("{base}/metrics"));
        assert_eq!(c.status, 401, "{c:?}");
        unknown.push(c.server_time());
    }
    let (w, u) = (median(wrong), median(unknown));
    eprintln!("401 medians over 15 each: wrong password {:.1} ms, unknown user {:.1} ms", w * 1e3, u * 1e3);
    assert!(w > 0.005, "a cost-10 bcrypt takes milliseconds; {w} s means it was skipped");
    let ratio = u / w;
    assert!(
        (0.5..=2.0).contains(&ratio),
        "unknown user / wrong password = {ratio:.2}: user names can be told by timing"
    );

    // Plain HTTP to the TLS port gets a clean 400, and TLS goes on working.
    let plain = curl(&["-f"], &format!("http://127.0.0.1:{}/metrics", d.addr.port()));
    assert_eq!((plain.exit, plain.status), (22, 400), "{plain:?}");
    let c = curl(&ok, &format!("{base}/metrics"));
    assert_eq!((c.exit, c.status), (0, 200), "{c:?}");

    let m = curl(&ok, &format!("{base}/metrics")).body;
    let value = |name: &str| -> f64 {
        m.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(-1.0)
    };
    assert!(value("claude_sessions_exporter_http_auth_failures_total") >= 32.0, "{m}");
    assert!(value("claude_sessions_exporter_http_connections_closed_total{reason=\"tls_handshake\"}") >= 1.0, "{m}");
    assert!(!d.log_text().contains("Listening beyond loopback"), "no exposure warning on loopback");
    assert!(!d.log_text().contains("right horse"), "passwords are never logged");
}

#[test]
fn client_certificates_signed_by_the_ca_are_required() {
    let pki = Pki::new();
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let config = pki.dir.path().join("web.yml");
    write_config(
        &config,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n  \
         client_auth_type: RequireAndVerifyClientCert\n",
    );
    let ca = pki.path("ca.pem");
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    let signed = ["--cacert", ca.as_str(), "--cert", cert.as_str(), "--key", key.as_str()];
    let d = start(root.path(), state.path(), &config, "https", &signed);
    let url = format!("https://127.0.0.1:{}/metrics", d.addr.port());

    let c = curl(&signed, &url);
    assert_eq!((c.exit, c.status), (0, 200), "{c:?}");
    let none = curl(&["--cacert", ca.as_str()], &url);
    refused_by_alert(&none, "no client certificate", "alert certificate required");
    let (rogue_cert, rogue_key) = (pki.path("rogue.pem"), pki.path("rogue.key"));
    let rogue = curl(&["--cacert", ca.as_str(), "--cert", rogue_cert.as_str(), "--key", rogue_key.as_str()], &url);
    refused_by_alert(&rogue, "a certificate the CA did not sign", "alert");
    // And the server still serves the right client after refusing two.
    let c = curl(&signed, &url);
    assert_eq!((c.exit, c.status), (0, 200), "{c:?}");
}

#[test]
fn min_version_tls13_refuses_tls12() {
    let pki = Pki::new();
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let config = pki.dir.path().join("web.yml");
    write_config(
        &config,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n",
    );
    let ca = pki.path("ca.pem");
    let d = start(root.path(), state.path(), &config, "https", &["--cacert", ca.as_str()]);
    let url = format!("https://127.0.0.1:{}/metrics", d.addr.port());
    let old = curl(&["--cacert", ca.as_str(), "--tls-max", "1.2"], &url);
    assert_eq!((old.exit, old.status), (35, 0), "TLS 1.2 must be refused: {old:?}");
    eprintln!("curl --tls-max 1.2: {}", old.stderr.trim());
    assert!(old.stderr.contains("protocol version"), "{old:?}");
    let new = curl(&["--cacert", ca.as_str(), "--tlsv1.3"], &url);
    assert_eq!((new.exit, new.status), (0, 200), "{new:?}");
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[test]
fn config_changes_take_effect_without_restart() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("web.yml");
    let alice = bcrypt::hash("a-pw", 4).unwrap();
    let bob = bcrypt::hash("b-pw", 4).unwrap();
    write_config(&config, &format!("basic_auth_users:\n  alice: '{alice}'\n"));
    let d = Daemon::start(root.path(), state.path(), &["--web.config.file", config.to_str().unwrap()]);
    let (a, b) = (basic("alice", "a-pw"), basic("bob", "b-pw"));
    let status = |auth: &str| d.get("/metrics", &[("Authorization", auth)]).0;
    assert_eq!(status(&a), 200);
    assert_eq!(status(&b), 401);

    // Adding a user: seen by a new connection once the file has settled.
    write_config(&config, &format!("basic_auth_users:\n  alice: '{alice}'\n  bob: '{bob}'\n"));
    let changed = Instant::now();
    let mut took = None;
    while changed.elapsed() < Duration::from_secs(30) {
        if status(&b) == 200 {
            took = Some(changed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("new user accepted {took:?} after the file changed");
    let took = took.unwrap_or_else(|| panic!("bob never got in; log:\n{}", d.log_text()));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(d.log_text().contains("Web config reloaded."), "{}", d.log_text());

    // A broken change keeps what works, says so in the log and in /metrics.
    write_config(&config, "basic_auth_users:\n  alice: [not, a, hash\n");
    // The file is looked at when a connection comes, once it has settled for a second:
    // keep asking until the warning is logged (30 s at most, for a loaded machine),
    // rather than waiting a fixed time with no request to make it look.
    let warned = |log: &str| {
        log.lines().filter(|l| l.contains("Web config changed but cannot be used; keeping the previous one.")).count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while warned(&d.log_text()) == 0 && Instant::now() < deadline {
        assert_eq!(status(&a), 200, "the previous config keeps working");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        assert_eq!(status(&a), 200);
        assert_eq!(status(&b), 200);
    }
    let log = d.log_text();
    assert_eq!(warned(&log), 1, "warned once per change:\n{log}");
    let (_, _, body) = d.get("/metrics", &[("Authorization", &a)]);
    let m = super::daemon::Metrics::parse(&String::from_utf8(body).unwrap());
    assert_eq!(m.sum("claude_sessions_exporter_web_config_last_reload_successful", &[]), 0.0);

    // Removing a user works the same way, and the gauge recovers.
    write_config(&config, &format!("basic_auth_users:\n  alice: '{alice}'\n"));
    let changed = Instant::now();
    while status(&b) != 401 {
        assert!(changed.elapsed() < Duration::from_secs(30), "bob was never removed; log:\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, _, body) = d.get("/metrics", &[("Authorization", &a)]);
    let m = super::daemon::Metrics::parse(&String::from_utf8(body).unwrap());
    assert_eq!(m.sum("claude_sessions_exporter_web_config_last_reload_successful", &[]), 1.0);
}

#[test]
fn listening_beyond_loopback_without_tls_or_auth_warns() {
    let root = empty_root();
    let state = tempfile::tempdir().unwrap();
    let d = Daemon::start_custom(root.path(), state.path(), "0.0.0.0:0", &[], &[]);
    assert!(d.addr.ip().is_loopback(), "the test connects over loopback only");
    assert_eq!(d.get("/healthz", &[]).0, 200);
    let log = d.log_text();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("Listening beyond loopback without TLS or authentication"))
        .unwrap_or_else(|| panic!("no warning in:\n{log}"));
    assert!(warning.contains(&format!("listen=0.0.0.0:{}", d.addr.port())), "{warning}");
}

/// Runs `serve` with `config` and returns its exit status and stderr (it must stop by itself).
fn start_fails(config_text: &str, extra_files: &[(&str, &str)]) -> (Option<i32>, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("web.yml");
    std::fs::write(&config, config_text).unwrap();
    for (name, text) in extra_files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let root = empty_root();
    let mut child = Command::new(support::bin())
        .args(["serve", "--web.listen-address", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--web.config.file")
        .arg(&config)
        .env("CLAUDE_CONFIG_DIR", root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve kept running with a bad web config: {config_text:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    // Keep the folder alive until here; return the path for the caller's messages.
    let path = config.clone();
    drop(dir);
    (status.code(), stderr, path)
}

#[test]
fn a_bad_config_at_start_is_an_error_naming_the_file_and_the_key() {
    // (config, other files in its folder, what the error must say)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("tls_server_config:\n  cert_fiel: c.pem\n", &[], "unknown field `cert_fiel`"),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n",
            &[],
            "tls_server_config.cert_file: cannot read",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n",
            &[("c.pem", "not a certificate"), ("k.pem", "not a key")],
            "tls_server_config.cert_file: holds no PEM certificate",
        ),
        ("basic_auth_users:\n  alice: hunter2\n", &[], "basic_auth_users.alice: not a bcrypt hash"),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
            &[],
            "tls_server_config.client_auth_type: RequireAndVerifyClientCert needs client_ca_file",
        ),
        ("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: TLS11\n", &[], "min_version"),
    ];
    for (text, files, want) in cases {
        let (code, stderr, path) = start_fails(text, files);
        assert_eq!(code, Some(1), "{text:?}: {stderr}");
        assert!(stderr.contains(&format!("web config {}", path.display())), "{text:?} names the file: {stderr}");
        assert!(stderr.contains(want), "{text:?}: want {want:?} in {stderr}");
        assert!(!stderr.contains("hunter2"), "a value that may be a password is not echoed: {stderr}");
    }
}
